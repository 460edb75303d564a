#!/usr/bin/python3
"""test_html.py OUT_DIR PAGE SHOT.png: the page of `./embeddings OUT_DIR html` in a real browser.

Debian's chromium, headless, through chromedriver and python3-selenium, with the network off
(DevTools' offline emulation, and every host name resolving to nothing). Prints one PASS or FAIL
line per check, as the shell suites do, and the step-change time (printed, never judged). The
numbers the page shows are checked against numbers made without it: the projection from the
snapshot files by numpy's SVD here, and by `./embeddings OUT_DIR pca --step=S` (the C side's
Jacobi PCA) at the basis step; the neighbours against `./embeddings OUT_DIR neighbors TOKEN --step=S`.
"""
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

out_dir, page, shot = sys.argv[1:4]
failed = 0


def ok(text):
    print(f"PASS {text}")


def bad(text, why):
    global failed
    failed += 1
    print(f"FAIL {text}: {why}")


def snapshot(step):
    """E of a snapshot, read straight from the safetensors bytes (header length, JSON, data)."""
    raw = open(os.path.join(out_dir, "embeddings", f"E_{step:06d}.safetensors"), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    entry = json.loads(raw[8:8 + n])["wte"]
    b, e = entry["data_offsets"]
    return np.frombuffer(raw[8 + n + b:8 + n + e], dtype="<f4").astype(np.float64).reshape(entry["shape"])


def axes(E):
    """The two leading principal axes of E's centred rows, each signed so its largest entry is positive."""
    X = E - E.mean(axis=0)
    w, vecs = np.linalg.eigh(X.T @ X)
    basis = vecs[:, np.argsort(-w)[:2]]
    for j in range(2):
        if basis[np.argmax(np.abs(basis[:, j])), j] < 0:
            basis[:, j] *= -1
    return basis


def cli(*args):
    return subprocess.run(["./embeddings", out_dir, *args], capture_output=True, text=True, check=True).stdout


steps = sorted(int(f[2:8]) for f in os.listdir(os.path.join(out_dir, "embeddings")) if f.startswith("E_"))
E_last = snapshot(steps[-1])
V = E_last.shape[0]
basis = axes(E_last)
# the tokens as the command line writes them, in id order (pca lists every token)
words = [line.rsplit(",", 2)[0][1:-1].replace('""', '"') for line in cli("pca").splitlines()[1:]]

options = webdriver.ChromeOptions()
for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={tempfile.mkdtemp(prefix='emergent-chromium-')}", "--window-size=1280,900",
            "--host-resolver-rules=MAP * ~NOTFOUND", "--disable-background-networking", "--no-first-run"):
    options.add_argument(arg)
options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
try:
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions",
                           {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0})
    driver.get_log("performance")  # the browser's own start-up pages: not the page's requests
    t0 = time.time()
    driver.get("file://" + os.path.abspath(page))
    load_s = time.time() - t0
    js = driver.execute_script

    # the network: every request the page made (DevTools' log) and every resource it loaded
    urls = [json.loads(e["message"])["message"]["params"]["request"]["url"] for e in driver.get_log("performance")
            if '"Network.requestWillBeSent"' in e["message"]]
    urls += js("return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [u for u in urls if not u.startswith(("file:", "data:"))]
    if not outside and urls and urls[0].startswith("file:"):
        ok(f"network off, and no request left file:// ({len(urls)} request(s): the page itself); loaded in {load_s:.2f} s")
    else:
        bad("network", f"requests outside file://: {outside or urls}")

    count = js("return [emergent.V, emergent.drawn().points]")
    if count == [V, V]:
        ok(f"{V} points drawn, the vocabulary size")
    else:
        bad("points", f"page {count}, vocabulary {V}")

    # the slider to a middle step: the points are that snapshot's rows on the last step's axes
    mid = len(steps) // 2

    def move_slider(i):
        js("const s = document.getElementById('slider'); s.value = arguments[0];"
           "s.dispatchEvent(new Event('input', {bubbles: true}))", i)

    before = np.array(js("return emergent.points()")).reshape(V, 2)
    move_slider(mid)
    shown = np.array(js("return emergent.points()")).reshape(V, 2)
    E_mid = snapshot(steps[mid])
    want = (E_mid - E_mid.mean(axis=0)) @ basis
    allP = np.concatenate([(snapshot(s) - snapshot(s).mean(axis=0)) @ basis for s in steps])
    quantum = (allP.max(axis=0) - allP.min(axis=0)) / 65535
    err = np.abs(shown - want).max(axis=0)
    if js("return [emergent.step(), emergent.drawn().step]") == [mid, mid] and (err <= quantum + 1e-9).all() \
            and np.abs(shown - before).max() > 100 * quantum.max():
        ok(f"slider to step {steps[mid]}: the points move to its snapshot on the step-{steps[-1]} axes "
           f"(numpy from the file: largest difference {err.max():.2g}, quantum {quantum.max():.2g})")
    else:
        bad(f"slider to step {steps[mid]}", f"difference {err} against quantum {quantum}")

    # the last step against the C side's PCA of that snapshot (its own axes are the page's)
    move_slider(len(steps) - 1)
    shown = np.array(js("return emergent.points()")).reshape(V, 2)
    c_side = np.array([[float(x) for x in line.rsplit(",", 2)[1:]] for line in
                       cli("pca", f"--step={steps[-1]}").splitlines()[1:]])
    err = np.abs(shown - c_side).max()
    tol = quantum.max() + 1e-5 * np.abs(c_side).max()  # pca prints 6 significant digits
    if err <= tol:
        ok(f"step {steps[-1]}: the points equal `./embeddings OUT pca --step={steps[-1]}` "
           f"(largest difference {err:.2g}, tolerance {tol:.2g})")
    else:
        bad("last step against ./embeddings pca", f"difference {err} > {tol}")

    # hover over a token: its neighbours are those of ./embeddings neighbors at that step
    move_slider(mid)
    canvas = driver.find_element(By.ID, "scatter")
    size = js("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height]", canvas)
    pix = np.array([js("return emergent.pixel(arguments[0])", i) for i in range(V)])
    target = None
    for w in ["e", "a", "t", "T", "o"] + words:   # a token whose point stands alone, so the hover is unambiguous
        i = words.index(w) if w in words else -1
        if i < 0 or not (20 < pix[i, 0] < size[0] - 20 and 20 < pix[i, 1] < size[1] - 20):
            continue
        if np.sort(np.hypot(*(pix - pix[i]).T))[1] > 6:
            target = i
            break
    if target is None:
        sys.exit("FAIL hover: no token stands alone in the view at this step")
    ActionChains(driver).move_to_element_with_offset(canvas, int(round(pix[target, 0] - size[0] / 2)),
                                                     int(round(pix[target, 1] - size[1] / 2))).perform()
    time.sleep(0.1)
    focus = js("const f = document.querySelector('#info [data-role=focus]'); return f ? +f.dataset.id : -1")
    items = driver.find_elements(By.CSS_SELECTOR, "#neighbours li")
    page_nbrs = [(words[int(li.get_attribute("data-id"))], li.find_element(By.CLASS_NAME, "cos").text) for li in items]
    want = [tuple(line.split()) for line in cli("neighbors", words[target], "--k=5", f"--step={steps[mid]}").splitlines()]
    same = [w for w, _ in page_nbrs] == [w for w, _ in want] and \
        all(abs(float(a) - float(b)) <= 1.5e-4 for (_, a), (_, b) in zip(page_nbrs, want))
    if focus == target and same and len(want) == 5:
        ok(f"hover over '{words[target]}' at step {steps[mid]}: its 5 neighbours are those of `./embeddings OUT neighbors "
           f"{words[target]} --step={steps[mid]}`: {' '.join(f'{w} {c}' for w, c in page_nbrs)}")
    else:
        bad(f"hover over '{words[target]}'", f"focus {focus}, page {page_nbrs}, ./embeddings {want}")

    # the search box finds a token by its printed form and lists its neighbours
    ActionChains(driver).move_to_element(driver.find_element(By.TAG_NAME, "h1")).perform()  # the hover ends
    box = driver.find_element(By.ID, "search")
    box.clear()
    box.send_keys("e", Keys.ENTER)
    focus = js("const f = document.querySelector('#info [data-role=focus]'); return f ? +f.dataset.id : -1")
    n = len(driver.find_elements(By.CSS_SELECTOR, "#neighbours li"))
    if focus == words.index("e") and n == 5:
        ok("search 'e': the token is kept and its 5 neighbours listed")
    else:
        bad("search", f"focus {focus}, {n} neighbours")

    # play advances the step, pause stops it (1x: a snapshot every 250 ms)
    move_slider(0)
    driver.find_element(By.CSS_SELECTOR, "#speeds button[data-speed='1']").click()
    play = driver.find_element(By.ID, "play")
    play.click()
    time.sleep(0.6)
    if play.get_attribute("aria-label") == "pause":
        play.click()
    at = js("return emergent.step()")
    time.sleep(0.4)
    still = js("return emergent.step()")
    if at > 0 and still == at:
        ok(f"play at 1x advanced to snapshot {at + 1} of {len(steps)} in 0.6 s; pause held it")
    else:
        bad("play", f"step {at} after 0.6 s of play, {still} after pause")

    # a screenshot that is not blank: the class colours are there
    move_slider(len(steps) - 1)
    driver.save_screenshot(shot)
    try:
        from PIL import Image
        img = np.asarray(Image.open(shot).convert("RGB"))
        x0, y0, w, h = (int(round(v)) for v in js(
            "const r = document.getElementById('scatter').getBoundingClientRect(); return [r.left, r.top, r.width, r.height]"))
        scatter = img[y0:y0 + h, x0:x0 + w].reshape(-1, 3).astype(int)
        colours = {tuple(c) for c in scatter}
        classes = js("return emergent.classColours()")
        # a point's centre is its class colour at the page's opacity 0.75 over white
        blend = [0.75 * np.array([int(c[k:k + 2], 16) for k in (1, 3, 5)]) + 0.25 * 255 for c in classes]
        found = [c for c, b in zip(classes, blend) if (np.abs(scatter - b).max(axis=1) <= 3).any()]
        if len(colours) > 20 and len(found) >= min(3, len(classes)):
            ok(f"screenshot {img.shape[1]} x {img.shape[0]}: {len(colours)} distinct colours in the scatter, "
               f"{len(found)} of the {len(classes)} class colours among the points")
        else:
            bad("screenshot", f"{len(colours)} colours, class colours found: {found}")
    except ImportError:
        print(f"note: PIL is not importable: the screenshot {shot} was taken but not looked at")

    # console: no errors (and nothing else either)
    logs = driver.get_log("browser")
    errors = [e for e in logs if e["level"] in ("SEVERE", "ERROR")]
    if not errors:
        ok(f"no console errors ({len(logs)} console messages)")
    else:
        bad("console", errors)

    # step-change time: the slider's handler, synchronous (canvas draw, token panel, curve cursors)
    times = js("""const s = document.getElementById('slider'), n = emergent.steps.length, t = [];
        for (let j = 0; j < 21; j++) {
          const t0 = performance.now();
          s.value = (j * 7) % n; s.dispatchEvent(new Event('input', {bubbles: true}));
          t.push(performance.now() - t0);
        }
        return t;""")
    print(f"step change: median {statistics.median(times[1:]):.2f} ms over 20 changes "
          f"(max {max(times[1:]):.2f} ms; {V} points, headless chromium; measured, not judged)")
finally:
    driver.quit()
sys.exit(1 if failed else 0)
