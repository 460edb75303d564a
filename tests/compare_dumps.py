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

Usage: /usr/bin/python3 tests/compare_dumps.py DUMP_A DUMP_B
"""
import struct
import sys

TOL = 1e-5
STEP_TOL = 1e-5
DTYPES = {0: ("f", 4), 1: ("i", 4), 2: ("d", 8)}


def read_dump(path):
    """{name: tuple of values} for every record before "end"."""
    with open(path, "rb") as f:
        buf = f.read()
    if buf[:8] != b"GPTPAR01" or struct.unpack_from("<i", buf, 8)[0] != 1:
        raise SystemExit(f"FAIL {path}: not a parity dump in this byte order")
    pos, records = 12, {}
    while True:
        (name_len,) = struct.unpack_from("<I", buf, pos)
        name = buf[pos + 4:pos + 4 + name_len].decode()
        pos += 4 + name_len
        dtype, ndim = struct.unpack_from("<ii", buf, pos)
        dims = struct.unpack_from(f"<{ndim}i", buf, pos + 8)
        pos += 8 + 4 * ndim
        count = 1
        for d in dims:
            count *= d
        code, size = DTYPES[dtype]
        values = struct.unpack_from(f"<{count}{code}", buf, pos)
        pos += count * size
        if name == "end":
            return records
        records[name] = values


def relative_max_diff(a, b):
    """max|a - b| / max|b| over a tensor (0 when both are all zeros, or empty: an absent tensor)"""
    diff = max((abs(x - y) for x, y in zip(a, b)), default=0.0)
    scale = max((abs(y) for y in b), default=0.0)
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
            print(f"  {name:<28} {len(a[name]):7d} values, max|diff| / max|ref| {r:.2e}")
            if not r <= TOL:
                failures.append(f"{name}: {r:.2e} > {TOL}")
        elif kind == "step" and name.endswith(("/loss", "/grad_norm", "/grad_norm_clipped")):
            r = relative_max_diff(a[name], b[name])
            if name.endswith("/loss"):
                print(f"  {name:<28} {a[name][0]:.7f} {b[name][0]:.7f}, relative diff {r:.2e}")
            if not r <= STEP_TOL:
                failures.append(f"{name}: {r:.2e} > {STEP_TOL}")
        elif a[name] != b[name]:  # no kernel in between: the same bits
            failures.append(f"{name}: differs, but no kernel computes it")
    for f in failures:
        print(f"  {f}")
    print(f"FAIL {len(failures)} checks" if failures else "OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
