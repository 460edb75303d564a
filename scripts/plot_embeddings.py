#!/usr/bin/python3
"""Plot how the token embeddings E of one training run emerge.

Usage:
  scripts/plot_embeddings.py OUT_DIR --out PNG [--steps S1,S2,S3] [--stats-out PNG2]
      [--gif GIF] [--title T]

OUT_DIR is a run directory written by ./train. Read from it:
  embeddings/E_NNNNNN.safetensors  snapshots of E (tensor "wte", shape [V, C]); required
  embeddings.csv                   step,norm_mean,norm_std,norm_freq_spearman,mean_cosine,
                                   effective_rank,knn_purity,seconds (one row per
                                   evaluation; empty field = not applicable); optional
  tokenizer.bin                    to label the points ("ETOK", version, kind, vocab_size as
                                   4 x uint32, then char: the vocabulary bytes; byte: none;
                                   sentencepiece: model type uint32 + ModelProto; then the
                                   fnv1a64 of all that as uint64); optional (without it the
                                   labels are the ids)

--out PNG: E projected on two axes at three steps side by side: the first snapshot
  (initialisation), the snapshot nearest to the middle step and the last one, or the
  snapshots of --steps (1 to 6 of them, each must exist). The projection is the same in all
  panels: PCA of the LAST snapshot (rows centred by their mean, top-2 right singular
  vectors), and every panel is centred by its own mean row and projected on that basis.
  All panels share the axis limits, so the motion of the points is visible. When a panel's
  points occupy less than a quarter of the common range (E at initialisation, N(0, 0.02),
  sits near the origin), it also gets a zoomed inset, labelled with the zoom factor, that
  carries its labels. Points are labelled with their token text and coloured by class (char
  and byte tokenizers: upper case, lower-case vowel, lower-case consonant, digit,
  whitespace, punctuation, other; SentencePiece: one colour). Panel titles carry the
  embeddings.csv measurements of that step when it has a row for it. With more than
  MAX_LABELS tokens only the MAX_LABELS points farthest from the centre are labelled.
--stats-out PNG2: the embeddings.csv measurements over steps in 4 panels: mean pairwise
  cosine; effective rank (dotted: its maximum min(V, C)); k-NN class purity with the
  chance level as a dashed line (sum_c n_c (n_c - 1) / (N (N - 1)) over the classified
  tokens, from the tokenizer); row norm mean +- std (band) and, on a twin axis, the
  Spearman correlation of the row norm with the token frequency.
--gif GIF: an animation over all snapshots (at most MAX_FRAMES, evenly spaced, the last
  always included, and held for GIF_HOLD more frames) at GIF_FPS frames/s, with one PCA
  basis (of the last snapshot) and one set of axis limits for all frames. Skipped with a message (exit status 0) when PIL is not importable.
--title T: the title of the main figure (default: names the run, tokenizer, V and C).

Outputs are written to NAME.tmp.png (.tmp.gif) and renamed over NAME. Prints one line per
panel: step, spread of its points in the plane (rms distance from the centre), the full
C-dimensional rms distance from the mean row, and the share of that variance the plane
shows. A missing directory, no snapshots, a malformed file or a --steps step without a
snapshot is reported naming the file, with exit status 2.
"""
import argparse
import math
import os
import sys

import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import matplotlib.patheffects as path_effects  # noqa: E402

from emergent_embed import (CLASS_NAMES, COLOURS, PIECE, InputError, list_snapshots, load_snapshot,  # noqa: E402
                            pca_basis, project, read_vocab)
from emergent_io import read_table, write_atomically  # noqa: E402

PROG = "plot_embeddings.py"
MAX_LABELS = 300
MAX_FRAMES = 25
GIF_HOLD = 5  # extra frames showing the last snapshot before the loop restarts
GIF_FPS = 5
INSET_BELOW = 0.25  # a panel whose extent is below this share of the common one gets an inset


def spread(P):
    """rms distance of the projected points from their centre."""
    return float(np.sqrt((P ** 2).sum(axis=1).mean()))


def common_limits(projections, pad=0.06):
    allp = np.concatenate(projections)
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    span = np.maximum(hi - lo, 1e-12)
    lo, hi = lo - pad * span, hi + pad * span
    return (lo[0], hi[0]), (lo[1], hi[1])


def labelled_ids(P, limit=MAX_LABELS):
    if len(P) <= limit:
        return np.arange(len(P))
    return np.argsort(-(P ** 2).sum(axis=1))[:limit]


# ----------------------------------------------------------------------------- drawing

STROKE = [path_effects.withStroke(linewidth=2.2, foreground="white")]


def draw_points(ax, P, vocab, dot=12):
    cols = [COLOURS[c] for c in vocab.classes]
    ax.scatter(P[:, 0], P[:, 1], s=dot, c=cols, alpha=0.55, linewidths=0, zorder=2)


# label offsets tried, nearest first: (distance from the point in points, direction)
_DIRECTIONS = [(1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1)]
_CANDIDATES = [(r, d) for r in (1.5, 6.0, 11.0, 17.0) for d in _DIRECTIONS]


def place_labels(ax, P, vocab, fontsize):
    """Labels the points of ax (at most MAX_LABELS), each put greedily at the nearest of a few
    offsets where its box overlaps the fewest labels already placed and dots; a label pushed
    away from its point gets a thin leader line. Call once the axes have their final size."""
    ids = labelled_ids(P)
    to_pt = 72.0 / ax.figure.dpi
    xy = ax.transData.transform(P) * to_pt  # points, in the figure
    box = ax.get_window_extent()
    bx0, by0, bx1, by1 = box.x0 * to_pt, box.y0 * to_pt, box.x1 * to_pt, box.y1 * to_pt
    dots = np.concatenate([xy - 1.8, xy + 1.8], axis=1)  # [x0, y0, x1, y1] of every dot
    placed = np.zeros((0, 4))
    # the most crowded points choose first
    d2 = ((xy[ids, None, :] - xy[None, ids, :]) ** 2).sum(axis=2)
    crowd = (d2 < (3 * fontsize) ** 2).sum(axis=1)
    for i in ids[np.argsort(-crowd, kind="stable")]:
        label = vocab.labels[i]
        size = fontsize * 1.5 if label == "\u2423" else fontsize  # the open box is a small glyph
        w, h = 0.62 * size * max(len(label), 1) + 1.0, 1.05 * size
        best = None
        for r, (dx, dy) in _CANDIDATES:
            cx = xy[i, 0] + dx * (w / 2 + r) if dx else xy[i, 0]
            cy = xy[i, 1] + dy * (h / 2 + r) if dy else xy[i, 1]
            if not dx:  # straight above or below: clear the dot
                cy = xy[i, 1] + dy * (h / 2 + r + 1.5)
            b = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
            cost = _overlap(b, placed) + 0.5 * _overlap(b, np.delete(dots, i, axis=0)) + 0.4 * r
            outside = max(bx0 - b[0], 0) + max(b[2] - bx1, 0) + max(by0 - b[1], 0) + max(b[3] - by1, 0)
            cost += 50.0 * outside
            if best is None or cost < best[0]:
                best = (cost, r, b, cx - xy[i, 0], cy - xy[i, 1])
        _, r, b, ox, oy = best
        placed = np.vstack([placed, b])
        colour = COLOURS[vocab.classes[i]]
        arrow = dict(arrowstyle="-", lw=0.5, color=colour, alpha=0.7, shrinkA=0, shrinkB=1.5) if r > 5 else None
        ax.annotate(label.replace("$", r"\$"), (P[i, 0], P[i, 1]), xytext=(ox, oy), textcoords="offset points",
                    ha="center", va="center", fontsize=size, color=colour, zorder=3, path_effects=STROKE,
                    arrowprops=arrow, annotation_clip=True)


def _overlap(b, boxes):
    """Total overlap area of box b with boxes [n, 4]."""
    if len(boxes) == 0:
        return 0.0
    w = np.clip(np.minimum(b[2], boxes[:, 2]) - np.maximum(b[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(b[3], boxes[:, 3]) - np.maximum(b[1], boxes[:, 1]), 0, None)
    return float((w * h).sum())


def stats_text(stats, step):
    """The embeddings.csv values of step for a panel title, or ''."""
    if not stats:
        return ""
    hit = np.nonzero(stats["step"] == step)[0]
    if len(hit) == 0:
        return ""
    r = hit[-1]
    parts = []
    for col, name, fmt in (("mean_cosine", "mean cos", "{:.3f}"), ("effective_rank", "eff. rank", "{:.1f}"),
                           ("knn_purity", "kNN purity", "{:.2f}")):
        if col in stats and not math.isnan(stats[col][r]):
            parts.append(f"{name} {fmt.format(stats[col][r])}")
    return "  ".join(parts)


def emptiest_corner(P, xlim, ylim):
    """Axes-fraction origin of the 0.44-wide corner box holding the fewest points."""
    fx = (P[:, 0] - xlim[0]) / (xlim[1] - xlim[0])
    fy = (P[:, 1] - ylim[0]) / (ylim[1] - ylim[0])
    best = None
    for x0, y0 in ((0.54, 0.02), (0.02, 0.02), (0.54, 0.54), (0.02, 0.54)):
        n = int(((fx >= x0 - 0.03) & (fx <= x0 + 0.47) & (fy >= y0 - 0.03) & (fy <= y0 + 0.47)).sum())
        if best is None or n < best[0]:
            best = (n, x0, y0)
    return best[1], best[2]


def save_atomically(fig, path, ext, **kw):
    write_atomically(path, path + ".tmp." + ext, lambda tmp: fig.savefig(tmp, **kw))


def class_legend(fig, vocab, **kw):
    present = sorted(set(int(c) for c in vocab.classes))
    handles = [plt.Line2D([], [], marker="o", linestyle="", markersize=7, color=COLOURS[c]) for c in present]
    names = [CLASS_NAMES[c] for c in present]
    if present == [PIECE]:
        return
    fig.legend(handles, names, ncol=len(present), frameon=False, **kw)


def main_figure(args, snaps, snapshots, vocab, stats, run_name):
    steps = [s for s, _ in snaps]
    last_step = snapshots[-1][0]
    E_last = load_snapshot(*snapshots[-1])
    basis, share = pca_basis(E_last)
    Es = [E_last if s == last_step else load_snapshot(s, p) for s, p in snaps]
    V, C = E_last.shape
    P = [project(E, basis) for E in Es]
    xlim, ylim = common_limits(P)
    extent = max(xlim[1] - xlim[0], ylim[1] - ylim[0])

    n = len(snaps)
    # equal aspect: size the panels to the shape of the common limits, so no room is wasted
    ratio = min(max((ylim[1] - ylim[0]) / (xlim[1] - xlim[0]), 0.45), 1.3)
    panel_w = 7.0
    fig, axes = plt.subplots(1, n, figsize=(panel_w * n, (panel_w - 1.2) * ratio + 1.75), squeeze=False)
    axes = axes[0]
    fontsize = 8 if V <= 100 else 6.5
    label_jobs = []
    for ax, step, E, p in zip(axes, steps, Es, P):
        ext = max(np.ptp(p[:, 0]), np.ptp(p[:, 1]))
        small = ext < INSET_BELOW * extent
        draw_points(ax, p, vocab)
        if not small:
            label_jobs.append((ax, p, fontsize))
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect("equal", adjustable="box")
        ax.axhline(0, color="0.85", lw=0.6, zorder=0)
        ax.axvline(0, color="0.85", lw=0.6, zorder=0)
        ax.set_xlabel(f"PC1 of step {last_step} ({100 * share[0]:.0f}% of its variance)")
        if ax is axes[0]:
            ax.set_ylabel(f"PC2 of step {last_step} ({100 * share[1]:.0f}% of its variance)")
        ax.tick_params(labelsize=8)
        title = f"step {step}"
        extra = stats_text(stats, step)
        ax.set_title(title + ("\n" + extra if extra else "\n "), fontsize=11)
        if small and ext > 0:
            x0, y0 = emptiest_corner(p, xlim, ylim)
            ins = ax.inset_axes([x0, y0, 0.44, 0.44])
            draw_points(ins, p, vocab, dot=8)
            label_jobs.append((ins, p, max(fontsize - 1.0, 6.0)))
            c = (p.max(axis=0) + p.min(axis=0)) / 2
            half = 0.56 * ext
            ins.set_xlim(c[0] - half, c[0] + half)
            ins.set_ylim(c[1] - half, c[1] + half)
            ins.set_aspect("equal", adjustable="box")
            ins.tick_params(labelsize=6)
            ins.set_facecolor("#fbfbfb")
            zoom = extent / (2 * half)
            ins.set_title(f"zoom \u00d7{zoom:.0f} (same basis)", fontsize=7, pad=2)
            ax.indicate_inset_zoom(ins, edgecolor="0.4")
        full = float(np.sqrt(((E - E.mean(axis=0)) ** 2).sum(axis=1).mean()))
        shown = spread(p) ** 2 / full ** 2 if full > 0 else 0.0
        print(f"step {step}: spread in the PCA plane {spread(p):.4g} (x {p[:, 0].min():.3g}..{p[:, 0].max():.3g}, "
              f"y {p[:, 1].min():.3g}..{p[:, 1].max():.3g}), full-dimensional rms distance from the mean row "
              f"{full:.4g}, {100 * shown:.1f}% of that variance in the plane"
              + (f"; zoomed inset x{extent / (1.12 * ext):.0f}" if small and ext > 0 else ""))
    fig.suptitle(args.title or (f"token embeddings E of {run_name} ({vocab.kind}, V={V}, C={C}): "
                                f"one PCA basis (fitted at step {last_step}) and the same limits in all panels"),
                 fontsize=12)
    class_legend(fig, vocab, loc="lower center", fontsize=9, bbox_to_anchor=(0.5, 0.0))
    h = fig.get_size_inches()[1]
    fig.tight_layout(rect=(0, 0.7 / h, 1, 1 - 0.4 / h))
    fig.canvas.draw()  # fixes the axes' sizes (equal aspect, insets) before placing the labels
    for ax, p, size in label_jobs:
        place_labels(ax, p, vocab, size)
    save_atomically(fig, args.out, "png", dpi=110)
    plt.close(fig)


def stats_figure(args, stats, stats_path, vocab, V, C, run_name):
    if not stats:
        raise InputError(f"{stats_path}: not found or no rows, needed for --stats-out")
    step = stats["step"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    (a_cos, a_rank), (a_knn, a_norm) = axes

    def series(ax, col, label, colour):
        y = stats.get(col)
        if y is None or np.isnan(y).all():
            ax.text(0.5, 0.5, f"{col}: not applicable" if y is not None else f"no column {col}",
                    transform=ax.transAxes, ha="center", va="center", color="0.4")
            return False
        ok = ~np.isnan(y)
        ax.plot(step[ok], y[ok], marker="o", ms=3.5, color=colour, label=label)
        return True

    series(a_cos, "mean_cosine", "mean cosine", "C0")
    a_cos.axhline(0, color="0.7", lw=0.8, ls=":")
    a_cos.set_title("mean pairwise cosine of the rows", fontsize=10)

    if series(a_rank, "effective_rank", "effective rank", "C1"):
        a_rank.axhline(min(V, C), color="0.5", lw=0.8, ls=":", label=f"maximum min(V, C) = {min(V, C)}")
        a_rank.set_ylim(0, min(V, C) * 1.05)
        a_rank.legend(fontsize=8, loc="lower left")
    a_rank.set_title("effective rank (exp of the singular-value entropy)", fontsize=10)

    if series(a_knn, "knn_purity", "k-NN class purity", "C2"):
        chance = vocab.knn_chance()
        if not math.isnan(chance):
            a_knn.axhline(chance, color="0.3", lw=1, ls="--", label=f"chance {chance:.3f}")
        a_knn.set_ylim(0, 1)
        a_knn.legend(fontsize=8, loc="lower right")
    elif vocab.kind == "sentencepiece":
        a_knn.texts[-1].set_text("k-NN class purity: not applicable\n(SentencePiece vocabulary)")
    a_knn.set_title("k-NN class purity (share of neighbours in the same class)", fontsize=10)

    lines = []
    nm, ns = stats.get("norm_mean"), stats.get("norm_std")
    if nm is not None and not np.isnan(nm).all():
        ok = ~np.isnan(nm)
        lines += a_norm.plot(step[ok], nm[ok], marker="o", ms=3.5, color="C3", label="row norm mean")
        if ns is not None:
            ok2 = ok & ~np.isnan(ns)
            lines.append(a_norm.fill_between(step[ok2], nm[ok2] - ns[ok2], nm[ok2] + ns[ok2], color="C3",
                                             alpha=0.2, label="\u00b1 std"))
        a_norm.set_ylabel("row norm", color="C3", fontsize=9)
        top = np.nanmax(nm + (ns if ns is not None else 0))
        a_norm.set_ylim(0, 1.08 * top if top > 0 else 1)
    sp = stats.get("norm_freq_spearman")
    if sp is not None and not np.isnan(sp).all():
        tw = a_norm.twinx()
        ok = ~np.isnan(sp)
        lines += tw.plot(step[ok], sp[ok], marker="s", ms=3.5, color="C4", ls="--",
                         label="Spearman(norm, frequency)")
        tw.axhline(0, color="C4", lw=0.6, ls=":", alpha=0.6)
        tw.set_ylim(-1, 1)
        tw.set_ylabel("Spearman(norm, frequency)", color="C4", fontsize=9)
        tw.tick_params(labelsize=8)
    if lines:
        a_norm.legend(lines, [l.get_label() for l in lines], fontsize=8, loc="upper left", framealpha=0.85)
    a_norm.set_title("row norm mean \u00b1 std; its rank correlation with frequency", fontsize=10)

    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in axes[1]:
        ax.set_xlabel("step")
    fig.suptitle(f"embedding diagnostics of {run_name} ({vocab.kind}, V={V}, C={C}) from embeddings.csv",
                 fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    save_atomically(fig, args.stats_out, "png", dpi=110)
    plt.close(fig)
    print(f"stats: {len(step)} rows, steps {int(step[0])}..{int(step[-1])} -> {args.stats_out}")


def gif(args, snapshots, vocab, stats, run_name):
    try:
        import PIL  # noqa: F401
        from matplotlib.animation import FuncAnimation, PillowWriter
    except ImportError:
        print(f"{PROG}: PIL is not importable, --gif {args.gif} skipped")
        return
    if len(snapshots) > MAX_FRAMES:
        idx = sorted(set(np.linspace(0, len(snapshots) - 1, MAX_FRAMES).round().astype(int).tolist()))
        frames = [snapshots[i] for i in idx]
    else:
        frames = list(snapshots)
    E_last = load_snapshot(*snapshots[-1])
    basis, share = pca_basis(E_last)
    P = [project(load_snapshot(s, p), basis) for s, p in frames]
    xlim, ylim = common_limits(P)
    V, C = E_last.shape
    ratio = min(max((ylim[1] - ylim[0]) / (xlim[1] - xlim[0]), 0.45), 1.3)
    fig, ax = plt.subplots(figsize=(6.4, 5.6 * ratio + 1.2))
    fontsize = 8 if V <= 100 else 6

    def draw(i):
        ax.clear()
        draw_points(ax, P[i], vocab)
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect("equal", adjustable="box")
        ax.axhline(0, color="0.85", lw=0.6, zorder=0)
        ax.axvline(0, color="0.85", lw=0.6, zorder=0)
        ax.tick_params(labelsize=7)
        ax.set_xlabel(f"PC1 of step {frames[-1][0]} (same basis and limits in all frames)", fontsize=8)
        ax.set_ylabel(f"PC2 of step {frames[-1][0]}", fontsize=8)
        extra = stats_text(stats, frames[i][0])
        ax.set_title(f"{run_name}: E at step {frames[i][0]}" + ("\n" + extra if extra else "\n "), fontsize=10)
        ax.apply_aspect()
        place_labels(ax, P[i], vocab, fontsize)
        return []

    h = fig.get_size_inches()[1]
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.5 / h, top=1 - 0.5 / h)
    order = list(range(len(frames))) + [len(frames) - 1] * GIF_HOLD
    anim = FuncAnimation(fig, draw, frames=order, blit=False)
    tmp = args.gif + ".tmp.gif"
    try:
        anim.save(tmp, writer=PillowWriter(fps=GIF_FPS), dpi=80)
        os.replace(tmp, args.gif)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise InputError(f"{args.gif}: cannot write: {e.strerror}")
    finally:
        plt.close(fig)
    print(f"gif: {len(frames)} frames, steps {frames[0][0]}..{frames[-1][0]}, {GIF_FPS} fps -> {args.gif}")


# ----------------------------------------------------------------------------- main


def parse_steps(text):
    try:
        steps = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of steps: {text!r}")
    if not 1 <= len(steps) <= 6:
        raise argparse.ArgumentTypeError(f"give 1 to 6 steps, not {len(steps)}")
    return steps


def main(argv=None):
    ap = argparse.ArgumentParser(prog=PROG, description="Plot the token embeddings E of a run as they emerge.")
    ap.add_argument("out_dir", metavar="OUT_DIR", help="run directory written by ./train")
    ap.add_argument("--out", required=True, metavar="PNG", help="the PCA panels")
    ap.add_argument("--steps", type=parse_steps, metavar="S1,S2,S3",
                    help="snapshot steps of the panels (default: first, middle, last)")
    ap.add_argument("--stats-out", metavar="PNG2", help="the embeddings.csv diagnostics over steps")
    ap.add_argument("--gif", metavar="GIF", help="an animation over all snapshots")
    ap.add_argument("--title", help="title of the main figure")
    args = ap.parse_args(argv)

    try:
        if not os.path.isdir(args.out_dir):
            raise InputError(f"{args.out_dir}: no such directory")
        run_name = os.path.basename(os.path.normpath(os.path.abspath(args.out_dir)))
        snapshots = list_snapshots(args.out_dir)
        by_step = dict(snapshots)
        if args.steps:
            snaps = []
            for s in args.steps:
                if s not in by_step:
                    near = min(by_step, key=lambda t: abs(t - s))
                    raise InputError(f"{os.path.join(args.out_dir, 'embeddings', f'E_{s:06d}.safetensors')}: "
                                     f"no snapshot of step {s} (nearest: {near})")
                snaps.append((s, by_step[s]))
        else:
            first, last = snapshots[0][0], snapshots[-1][0]
            mid = min(by_step, key=lambda t: (abs(t - (first + last) / 2), t))
            snaps = [(s, by_step[s]) for s in sorted({first, mid, last})]
        E_last = load_snapshot(*snapshots[-1])
        V, C = E_last.shape
        vocab = read_vocab(args.out_dir, V)
        stats_path = os.path.join(args.out_dir, "embeddings.csv")
        stats = None
        if os.path.isfile(stats_path):
            stats = read_table(stats_path, (), PROG)
            if len(stats["step"]) == 0:
                stats = None
        else:
            print(f"{PROG}: note: {stats_path}: not found, panel titles carry the step only", file=sys.stderr)

        if args.stats_out and not stats:
            raise InputError(f"{stats_path}: not found or no rows, needed for --stats-out")
        main_figure(args, snaps, snapshots, vocab, stats, run_name)
        print(f"figure: {len(snaps)} panels -> {args.out}")
        if args.stats_out:
            stats_figure(args, stats, stats_path, vocab, V, C, run_name)
        if args.gif:
            gif(args, snapshots, vocab, stats, run_name)
    except InputError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
