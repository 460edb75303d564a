"""emergent_io.py: reading the files ./train writes, for the scripts beside it
(plot_curves.py, plot_embeddings.py, tests/gpt2_check.py), and writing safetensors files
the C side accepts (tests/scale_tensor.py). Problems raise InputError with a message that
names the file; the scripts turn it into exit status 2.
"""
import json
import math
import os
import struct
import sys

import numpy as np


class InputError(Exception):
    """A problem with an input file; the message names the file."""


def read_bytes(path):
    """The whole file, or InputError naming it."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}")


def write_atomically(path, tmp, write):
    """write(tmp), then rename tmp over path, so path is the old file or the whole new one;
    on failure tmp is removed and InputError names path."""
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise InputError(f"{path}: cannot write: {e.strerror}")


def read_safetensors(path):
    """Returns ({name: (dtype, shape, begin, end)}, data bytes, metadata dict) of a .safetensors file.

    Layout: u64 little-endian N, N bytes of JSON header, then the data; each tensor's
    data_offsets [begin, end) count from the first byte after the header.
    """
    blob = read_bytes(path)
    if len(blob) < 8:
        raise InputError(f"{path}: {len(blob)} bytes, too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise InputError(f"{path}: header length {n} runs past the end of the file ({len(blob)} bytes)")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: header is not JSON: {e}")
    if not isinstance(header, dict):
        raise InputError(f"{path}: header is not a JSON object")
    data = memoryview(blob)[8 + n:]
    entries = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], list(info["shape"]), info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise InputError(f"{path}: tensor {name}: header entry lacks dtype, shape or data_offsets")
        if not 0 <= begin <= end <= len(data):
            raise InputError(f"{path}: tensor {name}: data_offsets [{begin}, {end}) outside the "
                             f"{len(data)} data bytes")
        entries[name] = (dtype, shape, begin, end)
    metadata = header.get("__metadata__")
    return entries, data, metadata if isinstance(metadata, dict) else {}


# The two checksums of this project's safetensors files (formats/safetensors.h): one of the
# data section, one of the header's canonical text. A file with any "emergent." metadata key
# must carry both, or ./sample and ./train --resume refuse it.
CHECKSUM_KEY = "emergent.fnv1a64"
HEADER_CHECKSUM_KEY = "emergent.header_fnv1a64"
FNV1A64_BASIS = 14695981039346656037


def fnv1a64(data, h=FNV1A64_BASIS):
    """FNV-1a, 64 bits (util/utils.h); h continues an earlier hash."""
    for b in bytes(data):
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def header_fnv1a64(metadata, entries):
    """The header checksum: fnv1a64 of the canonical text of safetensors.c's header_hash,
    "M" key NUL value NUL for each metadata pair but HEADER_CHECKSUM_KEY, by key, then
    "T" name NUL dtype NUL shape NUL begin NUL end NUL for each tensor, by name (the
    shape's dimensions joined by ','); keys and names sort by their UTF-8 bytes."""
    h = FNV1A64_BASIS
    for key in sorted(metadata, key=lambda k: k.encode()):
        if key != HEADER_CHECKSUM_KEY:
            h = fnv1a64(b"M" + key.encode() + b"\0" + metadata[key].encode() + b"\0", h)
    for name in sorted(entries, key=lambda k: k.encode()):
        dtype, shape, begin, end = entries[name]
        shape_text = ",".join(str(d) for d in shape)
        h = fnv1a64(f"T{name}\0{dtype}\0{shape_text}\0{begin}\0{end}\0".encode(), h)
    return h


def seal(metadata, entries, data):
    """metadata with both checksums set for a file of these entries and data bytes."""
    meta = {k: v for k, v in metadata.items() if k != HEADER_CHECKSUM_KEY}
    meta[CHECKSUM_KEY] = f"{fnv1a64(data):016x}"
    meta[HEADER_CHECKSUM_KEY] = f"{header_fnv1a64(meta, entries):016x}"
    return meta


def write_safetensors(path, entries, data, metadata):
    """Write a safetensors file: entries {name: (dtype, shape, begin, end)} over the bytes
    data, with metadata as given (seal() it for a file the C side checks). The header is
    padded with spaces to align the data; the file goes through a temporary and a rename."""
    header = {"__metadata__": metadata} if metadata else {}
    for name, (dtype, shape, begin, end) in entries.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [begin, end]}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-(8 + len(text)) % 8)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text + bytes(data))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise InputError(f"{path}: cannot write: {e.strerror}")


def read_table(path, required=(), prog="emergent"):
    """Reads a CSV of numbers into {column: float64 array}; empty fields become NaN.

    A last line without its newline (a run still being written) is dropped with a note.
    """
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file ended with a newline
    elif len(lines) > 1:
        print(f"{prog}: note: {path}: ignoring an incomplete last line", file=sys.stderr)
        lines.pop()
    if not lines or not lines[0].strip():
        raise InputError(f"{path}: empty file, expected a CSV header")
    header = [h.strip() for h in lines[0].split(",")]
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (header: {lines[0].strip()})")
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != len(header):
            raise InputError(f"{path}:{lineno}: {len(fields)} fields, the header has {len(header)}")
        row = []
        for name, field in zip(header, fields):
            field = field.strip()
            try:
                row.append(float(field) if field else math.nan)
            except ValueError:
                raise InputError(f"{path}:{lineno}: column {name}: not a number: {field!r}")
        rows.append(row)
    data = np.array(rows, dtype=np.float64).reshape(len(rows), len(header))
    return {name: data[:, j] for j, name in enumerate(header)}
