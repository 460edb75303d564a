"""scale_tensor.py STATE TENSOR FACTOR: multiply one tensor of a training state (or
any safetensors file ./train writes) by FACTOR in place and store the checksum the
new data hashes to. The file stays valid, as a run whose weights blew up would
leave it: tests use it to make a loss that is no longer finite.
"""
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import emergent_io  # noqa: E402

CHECKSUM_KEY = "emergent.fnv1a64"  # safetensors.h ST_CHECKSUM_KEY


def fnv1a64(data):
    h = 14695981039346656037
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def main(path, name, factor):
    entries, data, meta = emergent_io.read_safetensors(path)
    dtype, shape, begin, end = entries[name]
    data = bytearray(data)
    x = np.frombuffer(bytes(data[begin:end]), dtype="<f4") * np.float32(factor)
    data[begin:end] = x.astype("<f4").tobytes()
    blob = bytearray(emergent_io.read_bytes(path))
    (n,) = struct.unpack("<Q", blob[:8])
    old = f'"{CHECKSUM_KEY}":"{meta[CHECKSUM_KEY]}"'.encode()
    new = f'"{CHECKSUM_KEY}":"{fnv1a64(bytes(data)):016x}"'.encode()
    header = bytes(blob[8:8 + n])
    assert header.count(old) == 1 and len(old) == len(new)
    with open(path, "wb") as f:
        f.write(blob[:8] + header.replace(old, new) + bytes(data))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
