#!/usr/bin/python3
"""Check every number `./embeddings explain` prints against a direct computation.

Runs `./embeddings explain --digits=9` (floats printed exactly), parses its blocks
(NAME (R x C) = and R rows of numbers), and recomputes each block from the blocks
before it in numpy: the one-hot product is the lookup, x = E[ids] + PE, z = h E^T,
the losses and dz from softmax(z), the dense term dz^T h, the sparse scatter of dx
into the rows of the input ids (zero elsewhere), dE as their sum, and E after the
first AdamW step. Also: the default output (4 digits) has the same blocks; the
time the command took is printed (a speed is measured, never asserted). Prints one line per check; exit 1 if any fails.

Usage: /usr/bin/python3 tests/test_explain.py [PATH_TO_EMBEDDINGS]
"""
import re
import subprocess
import sys
import time

import numpy as np

# the step explain.c prints (its #defines)
LR, BETA1, BETA2, EPS, WD = 0.01, 0.9, 0.99, 1e-8, 0.1
HEADER = re.compile(r"^(\w+) \((\d+) x (\d+)\) =$")
failures = []


def check(what, ok, detail=""):
    print(f"{'PASS' if ok else 'FAIL'} explain: {what}{': ' + detail if detail else ''}")
    if not ok:
        failures.append(what)


def parse(text):
    blocks, lines, i = {}, text.split("\n"), 0
    while i < len(lines):
        m = HEADER.match(lines[i])
        i += 1
        if m:
            name, r, c = m.group(1), int(m.group(2)), int(m.group(3))
            rows = [[float(v) for v in lines[i + k].split()] for k in range(r)]
            if any(len(row) != c for row in rows):
                raise SystemExit(f"FAIL explain: block {name} does not have {r} rows of {c} numbers")
            blocks[name] = np.array(rows, dtype=np.float64)
            i += r
    return blocks


def close(what, got, want, tol):
    scale = max(float(np.max(np.abs(want))), 1e-30)
    err = float(np.max(np.abs(got - want))) / scale
    check(what, err <= tol, f"max|diff| / max|value| = {err:.1e} (tolerance {tol:.0e})")


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else "./embeddings"
    t0 = time.monotonic()
    precise = subprocess.run([exe, "explain", "--digits=9"], capture_output=True, text=True, check=True).stdout
    seconds = time.monotonic() - t0
    default = subprocess.run([exe, "explain"], capture_output=True, text=True, check=True).stdout
    b, d = parse(precise), parse(default)
    check("the default output has the same blocks", list(b) == list(d), ", ".join(b))
    print(f"info explain: ./embeddings explain --digits=9 took {seconds:.2f} s (measured, not asserted)")

    ids = b["inputs"][0].astype(int)
    targets = b["targets"][0].astype(int)
    E, PE, h = b["E"], b["PE"], b["h"]
    T, V = len(ids), E.shape[0]
    check("the one-hot row is id inputs[0]", np.array_equal(b["one_hot"][0], np.eye(V)[ids[0]]))
    check("one-hot x E is the lookup E[i_0]", np.array_equal(b["one_hot_times_E"][0], E[ids[0]]))
    close("x = E[ids] + PE", b["x"], (E[ids].astype(np.float32) + PE.astype(np.float32)).astype(np.float64), 1e-7)
    close("z = h E^T", b["z"], h @ E.T, 1e-6)
    z = b["z"]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    losses = -np.log(p[np.arange(T), targets])
    close("losses = -log softmax(z)[target]", b["losses"][0], losses, 1e-6)
    close("loss = their mean", b["loss"][0], [losses.mean()], 1e-6)
    dz = (p - np.eye(V)[targets]) / T
    close("dz = (softmax(z) - onehot(target)) / T", b["dz"], dz, 1e-6)
    close("dE_output = dz^T h (dense)", b["dE_output"], b["dz"].T @ h, 1e-6)
    check("dE_output touches every row", bool(np.all(np.any(b["dE_output"] != 0, axis=1))))
    scatter = np.zeros_like(E)
    for t in range(T):
        scatter[ids[t]] += b["dx"][t]
    close("dE_lookup = dx scattered into the rows of the ids (sparse)", b["dE_lookup"], scatter, 1e-6)
    absent = sorted(set(range(V)) - set(ids))
    check("dE_lookup is zero on the rows of absent tokens", bool(np.all(b["dE_lookup"][absent] == 0)),
          f"rows {absent}")
    close("dE = dE_output + dE_lookup", b["dE"], b["dE_output"] + b["dE_lookup"], 1e-6)
    g = b["dE"]
    m_hat = (1 - BETA1) * g / (1 - BETA1)
    v_hat = (1 - BETA2) * g * g / (1 - BETA2)
    after = E * (1 - LR * WD) - LR * m_hat / (np.sqrt(v_hat) + EPS)
    close("E_after = one AdamW step from E and dE", b["E_after"], after, 1e-5)
    print(f"explain: {len(b)} blocks checked")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
