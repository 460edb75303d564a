"""Reading a dump of tests/parity_dump: the records the C model wrote (its config,
weights, batches, logits, gradients, training steps), for the PyTorch reference
(tests/pytorch_reference.py) and the fast-against-reference check
(tests/compare_dumps.py). Needs numpy alone.

A dump is "GPTPAR01", an int32 1 (the byte order), then records: name length
(uint32), name, dtype (int32: 0 float32, 1 int32, 2 float64), ndim (int32), the
dims (int32 each), the values; a last record "end" holds the record count.
"""
import struct

import numpy as np

MAGIC = b"GPTPAR01"
DTYPES = {0: np.float32, 1: np.int32, 2: np.float64}


def read_dump(path):
    """All records of a dump as {name: numpy array}; scalars come back 0-d.
    A short, corrupt or foreign file stops the run with a FAIL line."""
    with open(path, "rb") as f:
        buf = f.read()
    if buf[:8] != MAGIC:
        raise SystemExit(f"FAIL {path}: not a parity dump (magic {buf[:8]!r})")
    if struct.unpack_from("<i", buf, 8)[0] != 1:
        raise SystemExit(f"FAIL {path}: written with another byte order")
    pos, records = 12, {}
    try:
        while True:
            (name_len,) = struct.unpack_from("<I", buf, pos)
            name = buf[pos + 4:pos + 4 + name_len].decode()
            pos += 4 + name_len
            dtype, ndim = struct.unpack_from("<ii", buf, pos)
            dims = struct.unpack_from(f"<{ndim}i", buf, pos + 8)
            pos += 8 + 4 * ndim
            dt = np.dtype(DTYPES[dtype])
            count = int(np.prod(dims)) if ndim else 1
            if pos + count * dt.itemsize > len(buf):
                raise ValueError(f"record {name!r} runs past the end")
            arr = np.frombuffer(buf, dtype=dt, count=count, offset=pos).reshape(dims).copy()
            pos += count * dt.itemsize
            if name == "end":
                break
            records[name] = arr
    except (struct.error, ValueError, KeyError, UnicodeDecodeError) as e:
        raise SystemExit(f"FAIL {path}: truncated or corrupt after {len(records)} records ({e})")
    if int(arr) != len(records) or pos != len(buf):
        raise SystemExit(f"FAIL {path}: {len(records)} records, the end record says {int(arr)}; "
                         f"{len(buf) - pos} bytes after it")
    return records
