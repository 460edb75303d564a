"""scale_tensor.py STATE TENSOR FACTOR: multiply one tensor of a training state (or
any safetensors file ./train writes) by FACTOR in place and store the checksums the
new file hashes to. The file stays valid, as a run whose weights blew up would
leave it: tests use it to make a loss that is no longer finite.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import emergent_io  # noqa: E402


def main(path, name, factor):
    entries, data, meta = emergent_io.read_safetensors(path)
    dtype, shape, begin, end = entries[name]
    data = bytearray(data)
    x = np.frombuffer(bytes(data[begin:end]), dtype="<f4") * np.float32(factor)
    data[begin:end] = x.astype("<f4").tobytes()
    emergent_io.write_safetensors(path, entries, data, emergent_io.seal(meta, entries, data))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
