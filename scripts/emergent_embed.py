"""emergent_embed.py: what the pictures of E share (plot_embeddings.py's PNG and GIF,
embeddings_html.py's page): the run's snapshots of E, the tokenizer's labels and classes,
and the one PCA basis every step is projected on, so that all of them show the same
numbers. Problems raise emergent_io.InputError naming the file.
"""
import json
import math
import os
import re
import struct
import sys

import numpy as np

from emergent_io import InputError, fnv1a64, read_bytes, read_safetensors

TOKENS_MAGIC = 20240520  # data/dataloader.h

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


def f32_matrix(path, entries, data, name):
    """The finite float32 matrix name of a read_safetensors result, as float64."""
    if name not in entries:
        raise InputError(f"{path}: no tensor \"{name}\" in the header")
    dtype, shape, begin, end = entries[name]
    if dtype != "F32":
        raise InputError(f"{path}: {name} has dtype {dtype!r}, expected F32")
    if len(shape) != 2 or not all(isinstance(d, int) and d > 0 for d in shape) or end - begin != shape[0] * shape[1] * 4:
        raise InputError(f"{path}: {name} has shape {shape!r} and {end - begin} bytes, expected a float32 matrix")
    M = np.frombuffer(data[begin:end], dtype="<f4").astype(np.float64).reshape(shape)
    if not np.isfinite(M).all():
        raise InputError(f"{path}: {name} holds NaN or infinite values")
    return M


def read_safetensors_e(path):
    """Returns (E as float64 [V, C], metadata dict) of the tensor "wte" of a snapshot."""
    entries, data, meta = read_safetensors(path)
    return f32_matrix(path, entries, data, "wte"), meta


def read_config(path):
    """config.conf as {key: value string}: `key = value`, '#' comments, values maybe quoted."""
    config = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}")
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = (s.strip() for s in line.split("=", 1))
        if value[:1] in "\"'" and len(value) >= 2 and value[-1] == value[0]:
            value = value[1:-1]
        config[key] = value
    return config


def safetensors_header(path):
    """The JSON header of a safetensors file (read alone: a training state may be large)."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            return json.loads(f.read(n).decode("utf-8"))
    except (OSError, struct.error, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot read its header: {e}")


def token_counts(out_dir, config, V):
    """Each token's count in the run's training split, or None with a note. The token file is the
    one data/dataloader.c cached for the run: data_dir/<input's name>.<text hash>.<tokenizer>.train.bin,
    the text hash and the file's checksum as train_state.safetensors records them."""
    state_path = os.path.join(out_dir, "train_state.safetensors")
    if not os.path.isfile(state_path):
        _note(f"{state_path}: not found, token frequencies are left out")
        return None
    meta = safetensors_header(state_path).get("__metadata__", {})
    text_hash, checksum = meta.get("emergent.text_fnv1a64"), meta.get("emergent.train_tokens_fnv1a64")
    if not text_hash or not checksum or "input" not in config or "data_dir" not in config:
        _note(f"{state_path}: names no text or token file, token frequencies are left out")
        return None
    kind = config.get("tokenizer", "char")
    tag = f"spm-{config.get('spm_model_type', 'bpe')}-{config.get('vocab_size')}" if kind == "sentencepiece" else kind
    path = os.path.join(config["data_dir"], f"{os.path.basename(config['input'])}.{text_hash}.{tag}.train.bin")
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        _note(f"{path}: {e.strerror} (the run's cached training tokens), token frequencies are left out")
        return None
    head = np.frombuffer(blob[:1024], dtype="<i4") if len(blob) >= 1024 else None
    if head is None or head[0] != TOKENS_MAGIC or len(blob) != 1024 + 2 * int(head[2]):
        raise InputError(f"{path}: not a token file of the size its header gives")
    recorded = (int(head[5]) & 0xFFFFFFFF) | ((int(head[6]) & 0xFFFFFFFF) << 32)
    if f"{recorded:016x}" != checksum:
        _note(f"{path}: checksum {recorded:016x}, the run trained on {checksum}: token frequencies are left out")
        return None
    ids = np.frombuffer(blob, dtype="<u2", offset=1024)
    if len(ids) and int(ids.max()) >= V:
        raise InputError(f"{path}: token id {int(ids.max())} outside the vocabulary of {V}")
    return np.bincount(ids, minlength=V)


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
