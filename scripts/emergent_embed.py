"""emergent_embed.py: what the pictures of E share (plot_embeddings.py's PNG and GIF,
embeddings_html.py's page): the run's snapshots of E, the tokenizer's labels and classes,
and the one PCA basis every step is projected on, so that all of them show the same
numbers. Problems raise emergent_io.InputError naming the file.
"""
import math
import os
import re
import struct
import sys

import numpy as np

from emergent_io import InputError, fnv1a64, read_bytes, read_safetensors

SNAPSHOT_RE = re.compile(r"^E_(\d+)\.safetensors$")
TOKENIZER_MAGIC = 0x4B4F5445  # "ETOK" little-endian
KIND_NAMES = {0: "char", 1: "byte", 2: "sentencepiece"}

# class name, colour; the order is the legend's
CLASSES = [
    ("upper case", "#1f77b4"),
    ("vowel", "#d62728"),
    ("consonant", "#ff7f0e"),
    ("digit", "#9467bd"),
    ("whitespace", "#2ca02c"),
    ("punctuation", "#8c564b"),
    ("other", "#7f7f7f"),
]
OTHER = len(CLASSES) - 1
PIECE_CLASS = ("piece", "#1f77b4")  # SentencePiece tokens and unlabelled ids: one colour
PIECE = len(CLASSES)
COLOURS = [c for _, c in CLASSES] + [PIECE_CLASS[1]]
CLASS_NAMES = [n for n, _ in CLASSES] + [PIECE_CLASS[0]]


def _note(text):
    print(f"{os.path.basename(sys.argv[0])}: note: {text}", file=sys.stderr)


# ----------------------------------------------------------------------------- reading


def read_safetensors_e(path):
    """Returns (E as float64 [V, C], metadata dict) of the tensor "wte" of a snapshot."""
    entries, data, meta = read_safetensors(path)
    if "wte" not in entries:
        raise InputError(f"{path}: no tensor \"wte\" in the header")
    dtype, shape, begin, end = entries["wte"]
    if dtype != "F32":
        raise InputError(f"{path}: wte has dtype {dtype!r}, expected F32")
    if len(shape) != 2 or not all(isinstance(d, int) and d > 0 for d in shape) or end - begin != shape[0] * shape[1] * 4:
        raise InputError(f"{path}: wte has shape {shape!r} and {end - begin} bytes, expected [V, C] float32")
    E = np.frombuffer(data[begin:end], dtype="<f4").astype(np.float64).reshape(shape)
    if not np.isfinite(E).all():
        raise InputError(f"{path}: wte holds NaN or infinite values")
    return E, meta


def list_snapshots(out_dir):
    """[(step, path)] of OUT_DIR/embeddings/E_*.safetensors, by step."""
    emb_dir = os.path.join(out_dir, "embeddings")
    if not os.path.isdir(emb_dir):
        raise InputError(f"{emb_dir}: no such directory (was the run trained with embedding snapshots?)")
    found = []
    for name in os.listdir(emb_dir):
        m = SNAPSHOT_RE.match(name)
        if m:
            found.append((int(m.group(1)), os.path.join(emb_dir, name)))
    if not found:
        raise InputError(f"{emb_dir}: no snapshots E_NNNNNN.safetensors")
    found.sort()
    return found


def load_snapshot(step, path):
    E, meta = read_safetensors_e(path)
    meta_step = meta.get("emergent.step")
    if meta_step is not None and str(meta_step).strip() != str(step):
        _note(f"{path}: metadata says step {meta_step}, the name says {step}; using the name")
    return E


def _varint(buf, pos):
    value, shift = 0, 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("bad varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _fields(buf):
    """Yields (field number, wire type, value) of a protobuf message (bytes for wire type 2)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated message")
        yield field, wire, value


def sentencepiece_pieces(proto):
    """The pieces of a SentencePiece ModelProto (field 1: SentencePiece, whose field 1 is the piece)."""
    pieces = []
    for field, wire, value in _fields(proto):
        if field == 1 and wire == 2:
            piece = None
            for f2, w2, v2 in _fields(value):
                if f2 == 1 and w2 == 2:
                    piece = v2.decode("utf-8", errors="replace")
            pieces.append(piece)
    return pieces


def byte_label(b):
    if b == 0x0A:
        return "\\n"
    if b == 0x09:
        return "\\t"
    if b == 0x0D:
        return "\\r"
    if b == 0x20:
        return "\u2423"  # OPEN BOX, a visible space
    if 0x20 < b < 0x7F:
        return chr(b)
    return f"\\x{b:02X}"


def byte_class(b):
    c = chr(b)
    if "A" <= c <= "Z":
        return 0
    if "a" <= c <= "z":
        return 1 if c in "aeiou" else 2
    if "0" <= c <= "9":
        return 3
    if c in " \n\t\r":
        return 4
    if 0x20 < b < 0x7F:
        return 5
    return OTHER


class Vocab:
    """Labels and classes of the V tokens; classed = False when classes do not apply."""

    def __init__(self, labels, classes, kind, classed):
        self.labels, self.classes, self.kind, self.classed = labels, np.asarray(classes), kind, classed

    def knn_chance(self):
        """Chance k-NN class purity over the classified tokens (as embed/embed_metrics.c computes it)."""
        if not self.classed:
            return math.nan
        cls = self.classes[self.classes != OTHER]
        n = len(cls)
        if n < 2:
            return math.nan
        counts = np.bincount(cls)
        return float((counts * (counts - 1.0)).sum() / (n * (n - 1.0)))


def read_vocab(out_dir, V):
    path = os.path.join(out_dir, "tokenizer.bin")
    ids = Vocab([str(i) for i in range(V)], [PIECE] * V, "ids", False)
    if not os.path.isfile(path):
        _note(f"{path}: not found, labelling the points by id")
        return ids
    blob = read_bytes(path)
    if len(blob) < 16:
        raise InputError(f"{path}: {len(blob)} bytes, too short for a tokenizer")
    magic, version, kind, vocab_size = struct.unpack("<4I", blob[:16])
    if magic != TOKENIZER_MAGIC:
        raise InputError(f"{path}: not a tokenizer (magic {magic:#010x}, expected {TOKENIZER_MAGIC:#010x} \"ETOK\")")
    payload = blob[16:]
    if version == 3:  # the last 8 bytes: fnv1a64 of the rest
        if len(blob) < 24 or fnv1a64(blob[:-8]) != struct.unpack("<Q", blob[-8:])[0]:
            raise InputError(f"{path}: checksum mismatch (file corrupted?)")
        payload = blob[16:-8]
    else:
        _note(f"{path}: tokenizer version {version}, this script knows version 3")
    if kind == 0:
        if len(payload) != vocab_size:
            raise InputError(f"{path}: char tokenizer of {vocab_size} tokens with {len(payload)} payload bytes")
        byte_of = list(payload)
    elif kind == 1:
        byte_of = list(range(256))
        vocab_size = 256 if vocab_size == 0 else vocab_size
    elif kind == 2:
        pieces = None
        try:
            pieces = sentencepiece_pieces(payload[4:])
        except ValueError as e:
            _note(f"{path}: cannot read the SentencePiece pieces ({e}), labelling by id")
        if pieces is not None and len(pieces) != vocab_size:
            _note(f"{path}: {len(pieces)} SentencePiece pieces for {vocab_size} tokens, labelling by id")
            pieces = None
        if vocab_size != V:
            raise InputError(f"{path}: {vocab_size} tokens, the snapshots have V = {V}")
        if pieces is None:
            ids.kind = "sentencepiece"
            return ids
        labels = [p if p else str(i) for i, p in enumerate(pieces)]
        return Vocab(labels, [PIECE] * V, "sentencepiece", False)
    else:
        raise InputError(f"{path}: unknown tokenizer kind {kind}")
    if vocab_size != V or len(byte_of) != V:
        raise InputError(f"{path}: {vocab_size} tokens, the snapshots have V = {V}")
    return Vocab([byte_label(b) for b in byte_of], [byte_class(b) for b in byte_of], KIND_NAMES[kind], True)


# ----------------------------------------------------------------------------- geometry


def pca_basis(E):
    """Top-2 right singular vectors of E centred by its mean row, as a [C, 2] matrix (signs fixed so
    that the largest-magnitude entry of each is positive), and the share of variance of each."""
    X = E - E.mean(axis=0)
    _, s, vt = np.linalg.svd(X, full_matrices=False)
    basis = vt[:2].T.copy()
    for j in range(basis.shape[1]):
        if basis[np.argmax(np.abs(basis[:, j])), j] < 0:
            basis[:, j] = -basis[:, j]
    var = s ** 2
    share = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
    return basis, share


def project(E, basis):
    return (E - E.mean(axis=0)) @ basis
