#!/usr/bin/python3
"""The same model on the two kernel layers: compare two dumps of tests/parity_dump.

tests/parity_dump (the build's kernels, fast by default) and
tests/reference/parity_dump (the reference kernels) start from the same weights
and batches, so their dumps must hold the same records, and
  - the same bits wherever no kernel is involved: the configuration, the initial
    weights, the batches, the learning rates;
  - on the fixed batch, the logits, the loss and every parameter gradient within
    TOL, per tensor max|a - b| / max|b| (the bar tests/pytorch_reference.py sets
    for C against PyTorch);
  - each of the 10 training steps' loss and gradient norms within STEP_TOL.
The final weights are not compared: AdamW divides a gradient by its own size,
so a gradient of nearly 0 in both dumps can step either way.
Prints one line per tensor, and a last line FAIL ... or OK; exits 1 on a failure.

Usage: /usr/bin/python3 tests/compare_dumps.py DUMP_A DUMP_B    (numpy)
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dump_io import read_dump  # noqa: E402

TOL = 1e-5
STEP_TOL = 1e-5


def relative_max_diff(a, b):
    """max|a - b| / max|b| over a tensor (0 when both are all zeros, or empty: an absent tensor)"""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    a, b = read_dump(sys.argv[1]), read_dump(sys.argv[2])
    failures = []
    if a.keys() != b.keys():
        failures.append(f"records differ: {sorted(a.keys() ^ b.keys())[:5]}")
    in_order = lambda n: [int(part) if part.isdigit() else part for part in n.split("/")]  # step/2 before step/10
    for name in sorted(a.keys() & b.keys(), key=in_order):
        kind = name.split("/")[0]
        if kind == "final" or name.endswith("/clipped"):
            continue
        if kind in ("fixed", "grad") and not name.endswith(("inputs", "targets")):
            r = relative_max_diff(a[name], b[name])
            print(f"  {name:<28} {a[name].size:7d} values, max|diff| / max|ref| {r:.2e}")
            if not r <= TOL:
                failures.append(f"{name}: {r:.2e} > {TOL}")
        elif kind == "step" and name.endswith(("/loss", "/grad_norm", "/grad_norm_clipped")):
            r = relative_max_diff(a[name], b[name])
            if name.endswith("/loss"):
                print(f"  {name:<28} {float(a[name].ravel()[0]):.7f} {float(b[name].ravel()[0]):.7f}, relative diff {r:.2e}")
            if not r <= STEP_TOL:
                failures.append(f"{name}: {r:.2e} > {STEP_TOL}")
        elif a[name].shape != b[name].shape or a[name].tobytes() != b[name].tobytes():  # no kernel in between: the same bits
            failures.append(f"{name}: differs, but no kernel computes it")
    for f in failures:
        print(f"  {f}")
    print(f"FAIL {len(failures)} checks" if failures else "OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
