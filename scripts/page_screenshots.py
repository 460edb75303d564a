#!/usr/bin/python3
"""page_screenshots.py PAGE.html --steps S1,S2,S3 --out PNG [--token T] [--width W]

The page of `./embeddings OUT_DIR html` photographed by headless chromium (Debian's chromium,
chromium-driver and python3-selenium) at a few snapshot steps, the panels side by side in one
PNG: the README's picture. --token keeps a token (as the search box finds it), so each panel
also shows its neighbours at that step. Each panel is scaled to --width pixels (default 640)
and the whole is reduced to 256 colours, which keeps the file small.
"""
import argparse
import io
import os
import shutil
import sys
import tempfile

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys


def main():
    ap = argparse.ArgumentParser(prog="page_screenshots.py")
    ap.add_argument("page")
    ap.add_argument("--steps", required=True, help="snapshot steps, comma-separated")
    ap.add_argument("--out", required=True)
    ap.add_argument("--token", help="a token to keep, with its neighbours")
    ap.add_argument("--width", type=int, default=640)
    args = ap.parse_args()
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,900",
                f"--user-data-dir={tempfile.mkdtemp(prefix='emergent-chromium-')}",
                "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    panels = []
    try:
        driver.get("file://" + os.path.abspath(args.page))
        steps = driver.execute_script("return emergent.steps")
        if args.token:
            box = driver.find_element(By.ID, "search")
            box.send_keys(args.token, Keys.ENTER)
        for step in (int(s) for s in args.steps.split(",")):
            if step not in steps:
                sys.exit(f"page_screenshots.py: the page has no snapshot of step {step}")
            driver.execute_script("emergent.setStep(arguments[0])", steps.index(step))
            # the controls, the scatter with its legend, and the panels beside them
            top, bottom = driver.execute_script(
                "return [document.querySelector('.controls').getBoundingClientRect().top,"
                " document.getElementById('legend').getBoundingClientRect().bottom]")
            shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
            crop = shot.crop((0, int(top) - 4, shot.width, min(shot.height, int(bottom) + 4)))
            panels.append(crop.resize((args.width, round(crop.height * args.width / crop.width)), Image.LANCZOS))
    finally:
        driver.quit()
    gap = 8
    out = Image.new("RGB", (sum(p.width for p in panels) + gap * (len(panels) - 1), panels[0].height), "white")
    x = 0
    for p in panels:
        out.paste(p, (x, 0))
        x += p.width + gap
    tmp = f"{args.out}.{os.getpid()}.tmp"
    out.quantize(256).save(tmp, format="PNG", optimize=True)
    os.replace(tmp, args.out)
    print(f"{args.out}: {out.width} x {out.height}, {os.path.getsize(args.out):,} bytes")


if __name__ == "__main__":
    main()
