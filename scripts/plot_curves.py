#!/usr/bin/python3
"""Plot the loss curves of one or more training runs into one PNG.

Usage:
  scripts/plot_curves.py RUN_DIR_OR_LOG_CSV [...] --out PNG
      [--label NAME ...] [--point STEP:VALUE:LABEL ...] [--reference CSV[:LABEL] ...]
      [--title T] [--smooth N] [--ylim LO:HI]

Each positional argument is a run directory holding log.csv (written by ./train) or the
path of a log.csv itself; config.conf is read from the same directory. Columns are found
by name: step,lr,train_loss,val_loss,grad_norm,ms_per_step,tokens_per_s,val_bpb,
train_loss_eval,elapsed_s (older logs lack the last two). Row 0 is the evaluation before training; val_loss
(and train_loss_eval) are filled only on evaluation rows; train_loss is the loss of the
step's one training batch.

The figure has three panels that share the y axis (loss in nats/token):
  1. x = optimizer step;
  2. x = tokens seen = step * batch_size * block_size (from config.conf; a run without a
     readable config.conf is left out of this panel, with a note on stderr);
  3. x = seconds: elapsed_s when the log has it, otherwise the running sum of
     ms_per_step, which counts training steps only (the axis label says which).
Per run, in one colour: the per-step batch train loss as a thin translucent line, the
evaluated val loss as a solid line with circles, and train_loss_eval (when logged) as a
dashed line with squares.

Options:
  --out PNG               output file (written to PNG.tmp.png, then renamed over PNG)
  --label NAME            legend name per run, in the order of the runs (repeat the flag or
                          give several names); default: the run directory's name
  --point STEP:VALUE:LABEL  a reference point, e.g. --point "2000:1.88:nanoGPT (published)",
                          drawn on the step and tokens panels (tokens use the first run's
                          batch_size * block_size); repeatable
  --reference CSV[:LABEL] a reference curve from a CSV with a `step` column and `val_loss`
                          and/or `train_loss` columns (empty fields skipped), drawn in grey
                          on the step and tokens panels (tokens as for --point); repeatable
  --title T               figure title
  --smooth N              centred moving average of the batch train loss over N steps
                          (the window shrinks at the ends of the run; no lag, so it lines up
                          with the evaluations). Default 1: raw per-step losses.
  --ylim LO:HI            y range. Default: from the lowest plotted loss - 0.05 up to 1.5 times
                          the height (above that low) of the highest first intermediate
                          evaluation (the first after step 0 that is not the last one),
                          so that the step-0 loss (about ln V) does not squash the curves.

Prints one summary line per run to stdout (final step, final val loss, best val loss and
its step). A missing file, a log without evaluations or a missing/non-numeric column is
reported naming the file, with exit status 2.
"""
import argparse
import os
import sys

import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from emergent_io import InputError, read_table  # noqa: E402

REQUIRED_COLUMNS = ("step", "train_loss", "val_loss")
PROG = "plot_curves.py"


def read_config(path):
    """Reads `key = value` lines; a comment starts at a '#' that begins a line or follows a space."""
    config = {}
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            for i, ch in enumerate(line):
                if ch == "#" and (i == 0 or line[i - 1] in " \t"):
                    line = line[:i]
                    break
            if "=" in line:
                key, value = line.split("=", 1)
                config[key.strip()] = value.strip()
    return config


class Run:
    """One training run: its log columns, tokens per step and a legend label."""

    def __init__(self, arg, label):
        if os.path.isdir(arg):
            self.log_path = os.path.join(arg, "log.csv")
        else:
            self.log_path = arg
        if not os.path.isfile(self.log_path):
            raise InputError(f"{self.log_path}: no such file")
        run_dir = os.path.dirname(os.path.abspath(self.log_path))
        self.label = label or os.path.basename(run_dir)
        self.cols = read_table(self.log_path, REQUIRED_COLUMNS, PROG)
        self.step = self.cols["step"]
        if len(self.step) == 0:
            raise InputError(f"{self.log_path}: no rows after the header")
        if np.isnan(self.step).any():
            raise InputError(f"{self.log_path}: empty step field")
        self.val = self.cols["val_loss"]
        self.is_eval = ~np.isnan(self.val)
        if not self.is_eval.any():
            raise InputError(f"{self.log_path}: no evaluation rows (val_loss is empty everywhere)")
        self.train = self.cols["train_loss"]
        self.train_eval = self.cols.get("train_loss_eval")
        if self.train_eval is not None and np.isnan(self.train_eval).all():
            self.train_eval = None

        # x axis 2: tokens seen
        self.tokens_per_step = None
        config_path = os.path.join(run_dir, "config.conf")
        if not os.path.isfile(config_path):
            print(f"{PROG}: note: {config_path}: not found, {self.label} is left out of the tokens panel",
                  file=sys.stderr)
        else:
            config = read_config(config_path)
            try:
                self.tokens_per_step = int(config["batch_size"]) * int(config["block_size"])
            except (KeyError, ValueError):
                print(f"{PROG}: note: {config_path}: no integer batch_size and block_size, "
                      f"{self.label} is left out of the tokens panel", file=sys.stderr)

        # x axis 3: seconds
        elapsed = self.cols.get("elapsed_s")
        if elapsed is not None and not np.isnan(elapsed).all():
            self.time_kind = "elapsed"
            self.seconds = elapsed
        elif "ms_per_step" in self.cols:
            self.time_kind = "training"
            self.seconds = np.nancumsum(self.cols["ms_per_step"]) / 1000.0
        else:
            self.time_kind = None
            self.seconds = None
            print(f"{PROG}: note: {self.log_path}: neither elapsed_s nor ms_per_step, "
                  f"{self.label} is left out of the time panel", file=sys.stderr)

    def summary(self):
        steps, vals = self.step[self.is_eval], self.val[self.is_eval]
        best = int(np.argmin(vals))
        return (f"{self.label}: final step {int(self.step[-1])}, final val loss {vals[-1]:.4f} "
                f"(step {int(steps[-1])}), best val loss {vals[best]:.4f} at step {int(steps[best])} "
                f"[{self.log_path}]")


def read_reference(spec):
    """--reference CSV[:LABEL] -> (label, steps, {'val_loss': array, 'train_loss': array})."""
    if os.path.isfile(spec) or ":" not in spec:
        path, label = spec, None
    else:
        path, label = spec.rsplit(":", 1)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file (from --reference {spec})")
    cols = read_table(path, ("step",), PROG)
    curves = {k: cols[k] for k in ("val_loss", "train_loss") if k in cols}
    if not curves:
        raise InputError(f"{path}: needs a val_loss or a train_loss column besides step")
    label = label or os.path.splitext(os.path.basename(path))[0]
    return label, cols["step"], curves


def parse_point(spec):
    parts = spec.split(":", 2)
    try:
        if len(parts) != 3:
            raise ValueError
        return float(parts[0]), float(parts[1]), parts[2]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--point wants STEP:VALUE:LABEL, got {spec!r}")


def parse_ylim(spec):
    try:
        lo, hi = (float(v) for v in spec.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--ylim wants LO:HI, got {spec!r}")
    if not lo < hi:
        raise argparse.ArgumentTypeError(f"--ylim wants LO < HI, got {spec!r}")
    return lo, hi


# ----------------------------------------------------------------------------- plotting


def moving_average(y, n):
    """Centred mean over n points (n - 1 of them around each one), ignoring NaNs; shrinks at the ends."""
    if n <= 1:
        return y
    ok = ~np.isnan(y)
    kernel = np.ones(n)
    total = np.convolve(np.where(ok, y, 0.0), kernel, mode="same")
    count = np.convolve(ok.astype(np.float64), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, total / count, np.nan)


def default_ylim(runs, smoothed, extra_values):
    """Low: lowest plotted loss - 0.05. High: 1.5 times the height (above that low) of the first
    evaluation after step 0 that is not the last one (falling back to the train curve at a
    tenth of the run), never above the highest plotted value."""
    values = list(extra_values)
    anchors = []
    for run, train in zip(runs, smoothed):
        values += [run.val[run.is_eval], train[~np.isnan(train)]]
        if run.train_eval is not None:
            values.append(run.train_eval[~np.isnan(run.train_eval)])
        eval_steps = run.step[run.is_eval]
        mid = np.nonzero(run.is_eval & (run.step > 0) & (run.step < eval_steps.max()))[0]
        if len(mid):
            anchors.append(run.val[mid[0]])
        else:
            finite = np.nonzero(~np.isnan(train))[0]
            if len(finite):
                anchors.append(train[finite[len(finite) // 10]])
    values = np.concatenate([np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in values])
    values = values[np.isfinite(values)]
    lo = values.min() - 0.05
    top = values.max() + 0.05
    hi = lo + 1.5 * (max(anchors) - lo) if anchors else top
    hi = min(max(hi, lo + 0.5), top)
    return lo, hi


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description="Plot training curves from log.csv files into one PNG (see the module docstring).")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR_OR_LOG_CSV")
    parser.add_argument("--out", required=True, metavar="PNG")
    parser.add_argument("--label", action="extend", nargs="+", default=[], metavar="NAME")
    parser.add_argument("--point", action="extend", nargs="+", type=parse_point, default=[],
                        metavar="STEP:VALUE:LABEL")
    parser.add_argument("--reference", action="append", default=[], metavar="CSV[:LABEL]")
    parser.add_argument("--title")
    parser.add_argument("--smooth", type=int, default=1, metavar="N")
    parser.add_argument("--ylim", type=parse_ylim, metavar="LO:HI")
    args = parser.parse_args(argv)
    if args.smooth < 1:
        parser.error("--smooth must be >= 1")
    if len(args.label) > len(args.runs):
        parser.error(f"{len(args.label)} labels for {len(args.runs)} runs")

    try:
        runs = [Run(arg, args.label[i] if i < len(args.label) else None) for i, arg in enumerate(args.runs)]
        references = [read_reference(spec) for spec in args.reference]
    except InputError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2

    for run in runs:
        print(run.summary())

    fig, axes = plt.subplots(1, 3, sharey=True, figsize=(18, 5.5))
    ax_step, ax_tok, ax_time = axes
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    smoothed = [moving_average(run.train, args.smooth) for run in runs]
    train_name = "train batch" if args.smooth == 1 else f"train batch, {args.smooth}-step mean"

    for i, (run, train) in enumerate(zip(runs, smoothed)):
        colour = colours[i % len(colours)]
        xs = [(ax_step, run.step)]
        if run.tokens_per_step is not None:
            xs.append((ax_tok, run.step * run.tokens_per_step))
        if run.seconds is not None:
            xs.append((ax_time, run.seconds))
        for ax, x in xs:
            labelled = ax is ax_step  # one legend, on the first panel
            ax.plot(x, train, color=colour, lw=0.6, alpha=0.35 if args.smooth == 1 else 0.7,
                    label=f"{run.label}: {train_name}" if labelled else None)
            ax.plot(x[run.is_eval], run.val[run.is_eval], color=colour, lw=1.6, marker="o", ms=4,
                    label=f"{run.label}: val" if labelled else None)
            if run.train_eval is not None:
                ok = ~np.isnan(run.train_eval)
                ax.plot(x[ok], run.train_eval[ok], color=colour, lw=1.2, ls="--", marker="s", ms=3.5,
                        label=f"{run.label}: train (eval)" if labelled else None)

    # reference curves and points: step panel, and tokens panel at the first run's tokens per step
    ref_scale = runs[0].tokens_per_step
    ref_panels = [(ax_step, 1)] + ([(ax_tok, ref_scale)] if ref_scale is not None else [])
    ref_values = []
    ref_styles = {"val_loss": dict(color="black", lw=1.2, marker="^", ms=4),
                  "train_loss": dict(color="grey", lw=1.0, ls=":", marker="v", ms=3.5)}
    for k, (label, steps, curves) in enumerate(references):
        for name, y in curves.items():
            ok = ~np.isnan(y) & ~np.isnan(steps)
            ref_values.append(y[ok])
            for ax, scale in ref_panels:
                ax.plot(steps[ok] * scale, y[ok], alpha=0.8, **ref_styles[name],
                        label=f"{label}: {name.replace('_loss', '')}" if ax is ax_step else None)
    point_markers = "*PXD"
    for k, (step, value, label) in enumerate(args.point):
        ref_values.append(np.array([value]))
        for ax, scale in ref_panels:
            ax.plot([step * scale], [value], ls="none", marker=point_markers[k % len(point_markers)], ms=11,
                    color="crimson", markeredgecolor="black", zorder=5, label=label if ax is ax_step else None)

    ylim = args.ylim or default_ylim(runs, smoothed, ref_values)
    ax_step.set_ylim(*ylim)

    ax_step.set_xlabel("step")
    ax_step.set_ylabel("loss (nats/token)")
    ax_tok.set_xlabel("tokens seen (step x batch_size x block_size)")
    if not any(run.tokens_per_step is not None for run in runs):
        ax_tok.text(0.5, 0.5, "no config.conf: tokens unknown", transform=ax_tok.transAxes,
                    ha="center", va="center", color="grey")
    time_labels = {"elapsed": "wall time (s), elapsed_s", "training": "training time (s), evals excluded"}
    kinds = {run.time_kind for run in runs if run.time_kind}
    if not kinds:
        ax_time.set_xlabel("time (s): not logged")
    elif len(kinds) == 1:
        ax_time.set_xlabel(time_labels[kinds.pop()])
    else:  # mixed old and new logs: say which run is on which clock
        ax_time.set_xlabel("\n".join(
            f"{time_labels[k]}: " + ", ".join(run.label for run in runs if run.time_kind == k) for k in sorted(kinds)))
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.set_xlim(left=0)
    ax_step.legend(fontsize=8, loc="upper right")
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()

    tmp = args.out + ".tmp.png"
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, args.out)
    except OSError as e:
        print(f"{PROG}: error: {args.out}: cannot write: {e}", file=sys.stderr)
        return 2
    finally:
        plt.close(fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
