#!/usr/bin/python3
"""Build one self-contained HTML page that plays a run's snapshots of E.

Usage (through the C program, which checks its arguments first):
  ./embeddings OUT_DIR html --out=FILE.html
  scripts/embeddings_html.py OUT_DIR --out FILE.html [--labels N]

What goes into the page (scripts/embeddings_page.html is its HTML, CSS and JavaScript; this
script fills in the data, so the page needs nothing but itself, and no network):
  coordinates  every snapshot's rows projected on the two principal axes of the LAST snapshot,
               each snapshot centred by its own mean row: emergent_embed's pca_basis and project,
               the very numbers of plot_embeddings.py's PNG. Stored as uint16 over the range of
               all steps on each axis: a coordinate is kept to 1/65535 of that range.
  neighbours   each token's 5 nearest rows by cosine at every snapshot, ranked as
               `./embeddings OUT_DIR neighbors TOKEN --step=S` ranks them (the cosine rounded to
               float, ties to the lower id), with the cosine to 1e-4.
  row norms    |e_i| at every snapshot, uint16 over [0, the largest norm].
  tokens       printed forms (tokenizer_piece's escapes; a space as U+2423), classes (those of
               embed/embed_metrics: upper case, vowel, consonant, digit, whitespace, punctuation)
               and counts in the training split, read from the run's cached token file (named in
               config.conf and train_state.safetensors; without it the page says n/a).
  curves       log.csv's train and val loss, embeddings.csv's k-NN purity, effective rank, mean
               cosine and Spearman(norm, frequency).
  header       config.conf's model, tokenizer, tied or not, positions; the parameter count of
               model.safetensors.
The page is written to FILE.<pid>.tmp, fsynced and renamed over FILE. Bad input (a missing
folder, no snapshots, a malformed file, an unwritable FILE) exits with status 2 and a message
that names the file.
"""
import argparse
import base64
import html
import json
import math
import os
import sys

try:
    import numpy as np
except ImportError as e:  # said plainly: ./embeddings runs this script, and its user may not know it
    sys.exit(f"embeddings_html.py: the page is built with numpy, which this Python lacks ({e}): install "
             f"python3-numpy, or name another Python in PYTHON=")

from emergent_embed import (CLASS_NAMES, COLOURS, InputError, OTHER, PIECE, list_snapshots, load_snapshot,
                            pca_basis, project, read_config, read_vocab, safetensors_header, token_counts)
from emergent_io import read_table, write_atomically

PROG = "embeddings_html.py"
TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "embeddings_page.html")
K = 5                 # neighbours per token, as the training log prints them (EMBED_KNN)
ALL_LABELS = 300      # vocabularies up to this size label every point
LABELS = 120          # larger ones label their most frequent tokens only
MAX_CURVE_POINTS = 1000  # the per-step train loss is averaged over bins beyond this
BLOCK = 512           # rows of the cosine matrix computed at once


# ----------------------------------------------------------------------------- the run's files


def note(text):
    print(f"{PROG}: note: {text}", file=sys.stderr)


def parameter_count(out_dir):
    for path in (os.path.join(out_dir, "model.safetensors"), os.path.join(out_dir, "last", "model.safetensors")):
        if os.path.isfile(path):
            header = safetensors_header(path)
            return sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
    return None


def printed_form(label, kind):
    """The label as the page prints it: SentencePiece pieces get tokenizer_piece's escapes (a
    piece may hold a newline); char and byte labels come escaped already."""
    if kind != "sentencepiece":
        return label
    out = []
    for ch in label:
        if ch in "\n\t\r\\":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def read_curves(out_dir, V, C, vocab):
    """The run's curves as lists ({name: [[step, value], ...]}), None for a value not measured."""
    curves = {}
    log_path = os.path.join(out_dir, "log.csv")
    if os.path.isfile(log_path):
        log = read_table(log_path, ("step", "train_loss", "val_loss"), PROG)
        step, train = log["step"], log["train_loss"]
        ok = ~np.isnan(train)
        s, t = step[ok], train[ok]
        if len(s) > MAX_CURVE_POINTS:  # bin means: the page stays small for long runs
            edges = np.linspace(0, len(s), MAX_CURVE_POINTS + 1).astype(int)
            s = np.array([s[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
            t = np.array([t[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
        curves["train_loss"] = pairs(s, t)
        ok = ~np.isnan(log["val_loss"])
        curves["val_loss"] = pairs(step[ok], log["val_loss"][ok])
    else:
        note(f"{log_path}: not found, the page has no loss curve")
    emb_path = os.path.join(out_dir, "embeddings.csv")
    if os.path.isfile(emb_path):
        emb = read_table(emb_path, ("step",), PROG)
        for col in ("knn_purity", "effective_rank", "mean_cosine", "norm_freq_spearman"):
            if col in emb:
                curves[col] = pairs(emb["step"], emb[col])
    else:
        note(f"{emb_path}: not found, the page has no curves of E's measurements")
    chance = vocab.knn_chance()
    return curves, {"knn_chance": None if math.isnan(chance) else round(chance, 4), "rank_max": min(V, C)}


def pairs(x, y):
    return [[int(a) if float(a).is_integer() else round(float(a), 2), None if math.isnan(b) else float(f"{b:.6g}")]
            for a, b in zip(x, y)]


# ----------------------------------------------------------------------------- the numbers


def nearest(E, k):
    """The k nearest rows of each row by cosine, itself excluded: ids (V, k) and cosines (V, k),
    ranked as nearest_rows (embed/embed_metrics.c) ranks them: by the cosine rounded to float,
    ties to the lower id; a zero row has cosine 0 with every row."""
    V = E.shape[0]
    norms = np.sqrt((E * E).sum(axis=1))
    U = E / np.where(norms > 0, norms, 1.0)[:, None]
    ids = np.zeros((V, k), dtype=np.int64)
    cos = np.zeros((V, k), dtype=np.float32)
    if k == 0:
        return ids, cos
    for a in range(0, V, BLOCK):
        b = min(a + BLOCK, V)
        S = (U[a:b] @ U.T).astype(np.float32)
        S[np.arange(b - a), np.arange(a, b)] = -np.inf
        # the k+1 largest of each row, ordered by score, then by id
        part = np.argpartition(S, V - k - 1, axis=1)[:, V - k - 1:] if k < V - 1 else np.argsort(-S, axis=1)[:, :k + 1]
        vals = np.take_along_axis(S, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)
        part, vals = np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)
        # a tie across the cut (the k-th and the (k+1)-th score equal): the whole row decides
        for r in np.nonzero(vals[:, k - 1] == vals[:, k])[0] if part.shape[1] > k else []:
            part[r, :k] = np.lexsort((np.arange(V), -S[r]))[:k]
            vals[r, :k] = S[r, part[r, :k]]
        ids[a:b], cos[a:b] = part[:, :k], vals[:, :k]
    return ids, cos


def b64(array, dtype):
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def build(out_dir, n_labels):
    if not os.path.isdir(out_dir):
        raise InputError(f"{out_dir}: no such directory")
    snapshots = list_snapshots(out_dir)
    steps = [s for s, _ in snapshots]
    E_last = load_snapshot(*snapshots[-1])
    V, C = E_last.shape
    basis, share = pca_basis(E_last)
    vocab = read_vocab(out_dir, V)
    config_path = os.path.join(out_dir, "config.conf")
    config = read_config(config_path) if os.path.isfile(config_path) else {}
    if not config:
        note(f"{config_path}: not found, the header names no model")
    counts = token_counts(out_dir, config, V) if config else None
    k = min(K, V - 1)

    S = len(snapshots)
    P = np.zeros((S, V, 2))
    norms = np.zeros((S, V))
    nbr = np.zeros((S, V, k), dtype=np.int64)
    nbr_cos = np.zeros((S, V, k), dtype=np.float32)
    for i, (step, path) in enumerate(snapshots):
        E = E_last if i == S - 1 else load_snapshot(step, path)
        if E.shape != (V, C):
            raise InputError(f"{path}: E is {E.shape[0]} x {E.shape[1]}, the last snapshot {V} x {C}")
        P[i] = project(E, basis)
        norms[i] = np.sqrt((E * E).sum(axis=1))
        nbr[i], nbr_cos[i] = nearest(E, k)

    lo, hi = P.reshape(-1, 2).min(axis=0), P.reshape(-1, 2).max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    q = np.rint((P - lo) / span * 65535)
    norm_max = float(norms.max()) if norms.max() > 0 else 1.0
    labels = [printed_form(label, vocab.kind) for label in vocab.labels]
    if V <= ALL_LABELS:
        labelled = list(range(V))
    elif counts is not None:
        labelled = np.argsort(-counts, kind="stable")[:n_labels].tolist()
    else:  # no frequencies: the points farthest out at the last step, as the PNG labels them
        labelled = np.argsort(-(P[-1] ** 2).sum(axis=1), kind="stable")[:n_labels].tolist()
    curves, marks = read_curves(out_dir, V, C, vocab)
    present = sorted(set(int(c) for c in vocab.classes))
    data = {
        "run": os.path.basename(os.path.normpath(os.path.abspath(out_dir))),
        "summary": summary(config, V, C, parameter_count(out_dir), vocab.kind),
        "V": V, "C": C, "K": k, "steps": steps,
        "basis_step": steps[-1], "share": [round(float(x), 4) for x in share],
        "labels": labels, "classes": [int(c) for c in vocab.classes], "labelled": labelled,
        "class_names": [CLASS_NAMES[c] for c in range(len(CLASS_NAMES))], "colours": COLOURS,
        "legend": [] if present == [PIECE] else present, "other": OTHER,
        "counts": None if counts is None else [int(c) for c in counts],
        "coords": {"lo": lo.tolist(), "span": span.tolist(), "q": b64(q, "<u2")},
        "norms": {"max": norm_max, "q": b64(np.rint(norms / norm_max * 65535), "<u2")},
        "neighbours": {"ids": b64(nbr, "<u2"), "cos": b64(np.rint(nbr_cos.astype(np.float64) * 10000), "<i2")},
        "curves": curves, "marks": marks,
    }
    return data, span / 65535


def summary(config, V, C, params, kind):
    """The header's facts, each a short phrase, from config.conf."""
    if not config:
        return [f"vocabulary {V}", f"n_embd {C}"]
    g = config.get
    tok = {"char": f"characters ({V} tokens)", "byte": f"bytes ({V} tokens)",
           "sentencepiece": f"SentencePiece {g('spm_model_type', 'bpe').upper()} ({V} pieces)"}.get(g("tokenizer"),
                                                                                                f"{V} tokens")
    out = [f"{g('n_layer')} layers, {g('n_head')} heads, n_embd {g('n_embd')}, block_size {g('block_size')}"
           + (f": {params:,} parameters" if params else ""),
           tok,
           "tied E (the output layer is E)" if g("tie_weights") == "true" else "untied E (an output layer of its own)",
           f"{g('pos_encoding')} positions",
           f"{g('max_iters')} steps, batch {g('batch_size')}, lr {g('learning_rate')}, seed {g('seed')}"]
    if g("freeze_embeddings") == "true":
        out.append("E frozen")
    return out


def write_page(path, data, title):
    try:
        with open(TEMPLATE, encoding="utf-8") as f:
            template = f.read()
    except OSError as e:
        raise InputError(f"{TEMPLATE}: cannot read the page's template: {e.strerror}")
    # "</" inside the JSON would end the script element early; "<\/" reads the same to JSON
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")
    for marker in ("__TITLE__", "__RUN_DATA__"):
        if template.count(marker) != 1:
            raise InputError(f"{TEMPLATE}: expected {marker} once")
    page = template.replace("__TITLE__", html.escape(title)).replace("__RUN_DATA__", text).encode("utf-8")
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(page)
            f.flush()
            os.fsync(f.fileno())
    write_atomically(path, f"{path}.{os.getpid()}.tmp", write)
    return len(page)


def main(argv=None):
    ap = argparse.ArgumentParser(prog=PROG, description="One self-contained page that plays a run's snapshots of E.")
    ap.add_argument("out_dir", metavar="OUT_DIR", help="run directory written by ./train")
    ap.add_argument("--out", required=True, metavar="FILE.html")
    ap.add_argument("--labels", type=int, default=LABELS, metavar="N",
                    help=f"vocabularies over {ALL_LABELS} tokens: label the N most frequent (default {LABELS})")
    args = ap.parse_args(argv)
    try:
        data, precision = build(args.out_dir, max(args.labels, 0))
        size = write_page(args.out, data, f"E in motion: {data['run']}")
    except InputError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {size:,} bytes, {len(data['steps'])} snapshots (steps {data['steps'][0]}.."
          f"{data['steps'][-1]}) x {data['V']} tokens; coordinates kept to {precision[0]:.2g} x {precision[1]:.2g} "
          f"(1/65535 of their range)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
