#!/usr/bin/python3
"""The embedding lab: run one experiment's variants x seeds and write its page.

Usage:
  scripts/lab.py EXPERIMENT [--runs DIR] [--docs DIR] [--only-page] [--list]

EXPERIMENT is the name of a file lab/EXPERIMENT.lab (or a path to any .lab file):

  # a comment
  claim   = what the literature or a tutorial says (one line)
  source  = where it comes from
  base    = configs/shakespeare_char.conf      the config every run starts from
  args    = --eval_iters=50 ...                 overrides shared by every variant
  seeds   = 1 2 3                               at least 3
  setup   = SHELL COMMAND                       optional: run once, before the runs, when
  creates = PATH                                PATH does not exist (a file the variants read)
  report  = frequency                           optional: a section on the final E by token
                                                frequency (row norm, neighbours stable across seeds)
  variant tied   = --tie_weights=true           a name and its overrides, one line each
  variant untied = --tie_weights=false

Each (variant, seed) is one `./train BASE ARGS OVERRIDES --seed=S --out_dir=RUNS/EXPERIMENT/VARIANT/seed-S`,
run one at a time. A finished run leaves lab_run.json beside its log (the command and the
CPU; the wall time is the log's elapsed_s); a run whose lab_run.json holds the same command is not run again, a run cut
short resumes (--resume), and a run of another command starts over (--overwrite, which keeps
the old run in previous-*/). Then the page docs/lab/EXPERIMENT.md and its two PNGs are written
from the runs' log.csv and embeddings.csv alone, so running an experiment a second time
reuses its runs and writes the same page.

  --runs DIR     where the runs live (default out/lab)
  --docs DIR     where the page goes (default docs/lab)
  --only-page    write the page from the runs there are; run nothing
  --list         list the experiments in lab/ with their claims
"""
import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from emergent_embed import f32_matrix, read_config, token_counts  # noqa: E402
from emergent_io import InputError, read_safetensors, read_table  # noqa: E402

LAB_DIR = os.path.join(ROOT, "lab")
MIN_SEEDS = 3
# the emergence metrics of embeddings.csv drawn against step, with their labels
METRICS = [("knn_purity", "k-NN purity of E's rows"), ("effective_rank", "effective rank of E"),
           ("norm_freq_spearman", "Spearman(row norm, frequency)"), ("mean_cosine", "mean cosine between rows")]


def fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


# ---------------------------------------------------------------------------
# the experiment file

def read_experiment(arg):
    path = arg if arg.endswith(".lab") or os.sep in arg else os.path.join(LAB_DIR, arg + ".lab")
    if not os.path.isfile(path):
        known = sorted(f[:-4] for f in os.listdir(LAB_DIR) if f.endswith(".lab")) if os.path.isdir(LAB_DIR) else []
        fail(f"{path}: no such experiment file (experiments: {', '.join(known) or 'none'})")
    exp = {"name": os.path.basename(path)[:-4], "path": os.path.relpath(path, ROOT), "arg": arg, "args": "",
           "variants": []}
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, eq, value = line.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not key:
                fail(f"{path}:{n}: expected 'key = value' or 'variant NAME = overrides', got '{line}'")
            if key.startswith("variant "):
                name = key[len("variant "):].strip()
                if not name or not all(c.isalnum() or c in "-_." for c in name):
                    fail(f"{path}:{n}: variant name '{name}' must be letters, digits, '-', '_' or '.'")
                if any(v[0] == name for v in exp["variants"]):
                    fail(f"{path}:{n}: variant '{name}' appears twice")
                exp["variants"].append((name, value))
            elif key in ("claim", "source", "base", "args", "seeds", "setup", "creates", "report"):
                if key in exp and key != "args":
                    fail(f"{path}:{n}: key '{key}' appears twice")
                exp[key] = value
            else:
                fail(f"{path}:{n}: unknown key '{key}' (claim, source, base, args, seeds, setup, creates, "
                     "report, variant NAME)")
    for key in ("claim", "base", "seeds"):
        if key not in exp:
            fail(f"{path}: key '{key}' is missing")
    try:
        exp["seeds"] = [int(s) for s in exp["seeds"].split()]
    except ValueError:
        fail(f"{path}: seeds must be integers, got '{exp['seeds']}'")
    if len(exp["seeds"]) < MIN_SEEDS or len(set(exp["seeds"])) != len(exp["seeds"]):
        fail(f"{path}: seeds: need at least {MIN_SEEDS} different seeds, got {exp['seeds']}")
    if len(exp["variants"]) < 2:
        fail(f"{path}: an experiment compares at least 2 variants")
    if exp.get("report", "frequency") != "frequency":
        fail(f"{path}: report: the one report is 'frequency', got '{exp['report']}'")
    if ("setup" in exp) != ("creates" in exp):
        fail(f"{path}: setup and creates go together: the command, and the file it makes")
    if not os.path.isfile(os.path.join(ROOT, exp["base"])):
        fail(f"{path}: base config {exp['base']} does not exist")
    return exp


# ---------------------------------------------------------------------------
# running

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
            else:
                name = platform.processor() or platform.machine()
    except OSError:
        name = platform.machine()
    return f"{name}, {os.cpu_count()} logical CPUs"


def run_command(exp, variant_args, seed, out_dir):
    return (["./train", exp["base"]] + shlex.split(exp["args"]) + shlex.split(variant_args) +
            [f"--seed={seed}", f"--out_dir={out_dir}"])


def ensure_run(exp, variant, variant_args, seed, runs_dir, dry):
    out_dir = os.path.join(runs_dir, exp["name"], variant, f"seed-{seed}")
    cmd = run_command(exp, variant_args, seed, out_dir)
    meta_path = os.path.join(out_dir, "lab_run.json")
    if os.path.isfile(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("command") == cmd:
            return out_dir, "reused"
        extra = ["--overwrite"]  # the experiment changed: this run is of another command
    elif os.path.isfile(os.path.join(out_dir, "train_state.safetensors")):
        extra = ["--resume"]
    elif os.path.isdir(out_dir) and os.listdir(out_dir):
        extra = ["--overwrite"]
    else:
        extra = []
    if dry:
        return out_dir, "missing"
    print(f"[{exp['name']}] {variant} seed {seed}: {shlex.join(cmd + extra)}", flush=True)
    with open(os.devnull, "w") as quiet:
        rc = subprocess.call(cmd + extra, cwd=ROOT, stdout=quiet)
    if rc != 0:
        fail(f"{shlex.join(cmd + extra)} exited with {rc}; its messages are above. Fix the experiment or the run "
             f"and run scripts/lab.py {exp['name']} again: finished runs are kept")
    meta = {"command": cmd, "cpu": cpu_model()}  # the run's wall time is its log's elapsed_s
    with open(meta_path + ".tmp", "w") as f:
        json.dump(meta, f, indent=1)
    os.replace(meta_path + ".tmp", meta_path)
    return out_dir, "ran"


# ---------------------------------------------------------------------------
# reading the runs

def column(table, name):
    """(steps, values) of the rows of a read_table where column name is filled."""
    if name not in table:
        return [], []
    filled = ~np.isnan(table[name])
    return [int(s) for s in table["step"][filled]], [float(v) for v in table[name][filled]]


def read_run(out_dir):
    try:
        log = read_table(os.path.join(out_dir, "log.csv"), required=("step", "val_loss", "elapsed_s"), prog="lab")
        emb = read_table(os.path.join(out_dir, "embeddings.csv"), required=("step",), prog="lab")
    except InputError as e:
        fail(str(e))
    with open(os.path.join(out_dir, "lab_run.json")) as f:
        meta = json.load(f)
    return {"log": log, "emb": emb, "meta": meta, "dir": out_dir}


def mean_std(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    if not xs:
        return None, None
    m = sum(xs) / len(xs)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, s


def final(table, name):
    steps, values = column(table, name)
    return values[-1] if values else None


# ---------------------------------------------------------------------------
# report = frequency: the final E token by token, against how often each token occurs

NEIGHBOURS = 5
FREQ_GROUPS = 5


def run_config(out_dir):
    try:
        return read_config(os.path.join(out_dir, "config.conf"))
    except InputError as e:
        fail(str(e))


def final_embedding(out_dir):
    """E (V, C) of the run's final model, as float64."""
    path = os.path.join(out_dir, "model.safetensors")
    try:
        entries, data, _ = read_safetensors(path)
        if "transformer.wte_a.weight" in entries:  # embed_rank: E = A B, B stored transposed (C, r)
            return (f32_matrix(path, entries, data, "transformer.wte_a.weight")
                    @ f32_matrix(path, entries, data, "transformer.wte_b.weight").T)
        return f32_matrix(path, entries, data, "transformer.wte.weight")
    except InputError as e:
        fail(str(e))


def train_counts(out_dir, vocab_size):
    """How often each token id occurs in the run's training split (its cached token file)."""
    try:
        counts = token_counts(out_dir, run_config(out_dir), vocab_size)
    except InputError as e:
        fail(str(e))
    if counts is None:
        fail(f"{out_dir}: the token counts of its training split are needed for report = frequency")
    return counts


def neighbour_sets(E):
    """Each row's NEIGHBOURS nearest other rows by cosine."""
    U = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-30)
    sim = U @ U.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :NEIGHBOURS]


def frequency_groups(counts):
    """Token ids in groups of (nearly) equal size from the rarest to the most frequent; the ids
    never seen in training in a group of their own, first."""
    order = np.argsort(counts, kind="stable")
    unseen = order[counts[order] == 0]
    seen = order[counts[order] > 0]
    groups = [("never in training", unseen)] if len(unseen) else []
    for i, part in enumerate(np.array_split(seen, min(FREQ_GROUPS, len(seen)))):
        lo, hi = int(counts[part].min()), int(counts[part].max())
        groups.append((f"{i + 1} ({lo}-{hi})", part))
    return groups


def frequency_report(exp, runs_by_variant, docs_dir, save_fig, plt):
    """Per variant and frequency group: the mean row norm over the seeds, and how many of a
    token's nearest neighbours the seeds agree on (a row still near its random start has
    different neighbours in every seed; one that learned has the same ones)."""
    name = exp["name"]
    lines = ["", "## E by token frequency", "",
             f"The final E of every run, its tokens in groups from the rarest to the most frequent by their "
             f"count in the training split (the count range in brackets). `norm`: the mean row norm (mean ± "
             f"standard deviation over the seeds); `agreement`: of each token's {NEIGHBOURS} nearest "
             f"neighbours by cosine, the fraction two seeds share, averaged over the pairs of seeds "
             f"(chance: {NEIGHBOURS} / (V - 1)); `Spearman`: the rank correlation of row norm with "
             f"count over the seen tokens.", "", f"![E by frequency]({name}_frequency.png)", ""]
    variants = [v for v, _ in exp["variants"]]
    fig, axes = plt.subplots(1, len(variants) + 1, figsize=(3.6 * (len(variants) + 1), 3.6), squeeze=False)
    for i, variant in enumerate(variants):
        runs = runs_by_variant[variant]
        Es = [final_embedding(r["dir"]) for r in runs]
        V = Es[0].shape[0]
        counts = train_counts(runs[0]["dir"], V)
        norms = [np.linalg.norm(E, axis=1) for E in Es]
        nbrs = [neighbour_sets(E) for E in Es]
        pairs = [(a, b) for a in range(len(Es)) for b in range(a + 1, len(Es))]
        agree = np.mean([[len(set(nbrs[a][t]) & set(nbrs[b][t])) / NEIGHBOURS for t in range(V)]
                         for a, b in pairs], axis=0)
        seen = counts > 0
        rank = lambda x: np.argsort(np.argsort(x, kind="stable"), kind="stable")
        spear = [float(np.corrcoef(rank(counts[seen]), rank(n[seen]))[0, 1]) for n in norms]
        m, sd = mean_std(spear)
        lines += [f"**{variant}** (V = {V}, {int(seen.sum())} tokens seen in training, Spearman {m:.3f} ± {sd:.3f}; "
                  f"chance agreement {NEIGHBOURS / (V - 1):.3f}):", "",
                  "| frequency group | tokens | norm | agreement |", "|---|---|---|---|"]
        xs, ys = [], []
        for label, ids in frequency_groups(counts):
            nm, ns = mean_std([float(n[ids].mean()) for n in norms])
            lines.append(f"| {label} | {len(ids)} | {nm:.3f} ± {ns:.3f} | {float(agree[ids].mean()):.3f} |")
            if label != "never in training":
                xs.append(float(np.median(counts[ids])))
                ys.append(float(agree[ids].mean()))
        lines.append("")
        ax = axes[0][i]
        ax.scatter(np.log10(counts + 1), norms[0], s=4, alpha=0.5, color=f"C{i}")
        ax.set_xlabel("log10(count in training + 1)")
        ax.set_ylabel(f"row norm (seed {exp['seeds'][0]})")
        ax.set_title(f"{variant}: V = {V}", fontsize=9)
        ax.grid(alpha=0.3)
        axes[0][-1].plot(xs, ys, marker="o", color=f"C{i}", label=variant)
    ax = axes[0][-1]
    ax.set_xscale("log")
    ax.set_xlabel("median count of the group")
    ax.set_ylabel("neighbour agreement across seeds")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.suptitle(f"{name}: the final E against token frequency")
    fig.tight_layout()
    save_fig(fig, os.path.join(docs_dir, f"{name}_frequency.png"))
    plt.close(fig)
    return lines


# ---------------------------------------------------------------------------
# the page

def band_plot(ax, runs_by_variant, table, name, ylabel, zoom=False):
    """Per variant the mean of the seeds and their min-max band. zoom: the y axis from the lowest
    value up to the second evaluation's highest, so the untrained start does not flatten the rest."""
    low, second = math.inf, -math.inf
    for i, (variant, runs) in enumerate(runs_by_variant.items()):
        curves = [column(r[table], name) for r in runs]
        steps = sorted(set.intersection(*[set(s) for s, _ in curves])) if curves else []
        if not steps:
            continue
        ys = np.array([[dict(zip(s, v))[t] for t in steps] for s, v in curves])
        colour = f"C{i}"
        ax.plot(steps, ys.mean(axis=0), color=colour, marker="o", markersize=2.5, linewidth=1.2,
                label=f"{variant} (mean of {len(runs)})")
        ax.fill_between(steps, ys.min(axis=0), ys.max(axis=0), color=colour, alpha=0.2, linewidth=0)
        low = min(low, float(ys.min()))
        if len(steps) > 2:
            second = max(second, float(ys[:, 1].max()))
    if zoom and math.isfinite(low) and math.isfinite(second) and second > low:
        ax.set_ylim(low - 0.05 * (second - low), second)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def save(fig, path):
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110, metadata={"Software": None})  # no version stamp: the same runs give the same bytes
    os.replace(tmp, path)


def write_page(exp, runs_by_variant, docs_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(docs_dir, exist_ok=True)
    name = exp["name"]
    has_ece = any(column(r["log"], "val_ece")[1] for runs in runs_by_variant.values() for r in runs)

    fig, axes = plt.subplots(1, 2 if has_ece else 1, figsize=(11 if has_ece else 6.5, 4.2), squeeze=False)
    band_plot(axes[0][0], runs_by_variant, "log", "val_loss", "validation loss (nats/token)", zoom=True)
    axes[0][0].legend(fontsize=8)
    if has_ece:
        band_plot(axes[0][1], runs_by_variant, "log", "val_ece", "validation ECE (15 bins)")
    fig.suptitle(f"{name}: validation loss, mean of the seeds and their min-max band")
    fig.tight_layout()
    save(fig, os.path.join(docs_dir, f"{name}_loss.png"))
    plt.close(fig)

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, (metric, label) in zip(axes.flat, METRICS):
        band_plot(ax, runs_by_variant, "emb", metric, label)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{name}: how E emerges (embeddings.csv at each evaluation)")
    fig.tight_layout()
    save(fig, os.path.join(docs_dir, f"{name}_embeddings.png"))
    plt.close(fig)

    def cell(values, digits=4):
        m, s = mean_std(values)
        return "-" if m is None else f"{m:.{digits}f} ± {s:.{digits}f}"

    # early: the val loss at the first evaluation after step 0, where a faster start shows
    early = min((s for runs in runs_by_variant.values() for r in runs for s in column(r["log"], "val_loss")[0]
                 if s > 0), default=None)
    # best: the lowest val loss of a run, shown where some run's final is worse by 0.01 (it overfits)
    best = lambda r: min(column(r["log"], "val_loss")[1], default=None)
    overfits = any(best(r) is not None and final(r["log"], "val_loss") - best(r) > 0.01
                   for runs in runs_by_variant.values() for r in runs)
    cols = [("final val loss", "log", "val_loss", 4)] + ([("final val ECE", "log", "val_ece", 4)] if has_ece else [])
    # losses per token of different vocabularies do not compare; per byte of text they do
    vocabularies = {(c.get("tokenizer"), c.get("vocab_size") if c.get("tokenizer") == "sentencepiece" else "")
                    for runs in runs_by_variant.values() for c in (run_config(r["dir"]) for r in runs)}
    if len(vocabularies) > 1:
        cols.insert(1, ("final val bits per byte", "log", "val_bpb", 4))
    cols += [(label.split(" of ")[0].split(" between")[0], "emb", metric, 3) for metric, label in METRICS]
    lines = [f"# Lab: {name}", "",
             f"**Claim.** {exp['claim']}" + (f" ({exp['source']})" if exp.get("source") else ""), "",
             "Regenerate (reuses finished runs): `scripts/lab.py " + exp["arg"] + "`; the experiment is "
             f"[{exp['path']}](../../{exp['path']}): base `{exp['base']}`"
             + (f" with `{exp['args']}`" if exp["args"] else "") + f", seeds {' '.join(map(str, exp['seeds']))}.", "",
             f"![validation loss]({name}_loss.png)", "", f"![embedding metrics]({name}_embeddings.png)", "",
             "Final values, mean ± standard deviation over the seeds:", "",
             "| variant | overrides | " + (f"val loss at step {early} | " if early else "")
             + " | ".join(c[0] for c in cols) + (" | lowest val loss (step)" if overfits else "") + " | wall s per run |",
             "|---" * (len(cols) + 3 + (1 if early else 0) + (1 if overfits else 0)) + "|"]
    cpus = set()
    total_wall = 0.0
    for variant, args in exp["variants"]:
        runs = runs_by_variant[variant]
        walls = [final(r["log"], "elapsed_s") for r in runs]
        total_wall += sum(walls)
        cpus.update(r["meta"]["cpu"] for r in runs)
        cells = [cell([final(r[t], c) for r in runs], d) for _, t, c, d in cols]
        if early:
            cells.insert(0, cell([dict(zip(*column(r["log"], "val_loss"))).get(early) for r in runs]))
        if overfits:
            at = [min(zip(*column(r["log"], "val_loss")[::-1]))[1] for r in runs]  # the step of each run's lowest
            cells.append(cell([best(r) for r in runs]) + " (" + ", ".join(map(str, at)) + ")")
        lines.append(f"| {variant} | `{args}` | " + " | ".join(cells) + f" | {cell(walls, 1)} |")
    # the two best variants by mean final val loss (bits per byte across vocabularies): is their
    # gap bigger than the seeds' spread?
    key, what = ("val_bpb", "val bits per byte") if len(vocabularies) > 1 else ("val_loss", "val loss")
    ranked = sorted((mean_std([final(r["log"], key) for r in runs_by_variant[v]]), v)
                    for v, _ in exp["variants"])
    (m1, s1), v1 = ranked[0]
    (m2, s2), v2 = ranked[1]
    se = math.sqrt((s1 ** 2 + s2 ** 2) / len(exp["seeds"])) or float("inf")
    lines += ["", f"Lowest final {what}: {v1} ({m1:.4f}), then {v2} ({m2:.4f}): a gap of {m2 - m1:.4f}, "
              f"{(m2 - m1) / se:.1f} standard errors of the difference over {len(exp['seeds'])} seeds.", "",
              f"Measured on {', '.join(sorted(cpus))}; all {sum(len(r) for r in runs_by_variant.values())} runs took "
              f"{total_wall / 60:.1f} minutes, one at a time."]
    if exp.get("report") == "frequency":
        lines += frequency_report(exp, runs_by_variant, docs_dir, save, plt)
    path = os.path.join(docs_dir, f"{name}.md")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("experiment", nargs="?")
    ap.add_argument("--runs", default="out/lab")
    ap.add_argument("--docs", default="docs/lab")
    ap.add_argument("--only-page", action="store_true")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    os.chdir(ROOT)
    if args.list or not args.experiment:
        for f in sorted(os.listdir(LAB_DIR)):
            if f.endswith(".lab"):
                exp = read_experiment(f[:-4])
                print(f"{exp['name']:<14} {len(exp['variants'])} variants x {len(exp['seeds'])} seeds: {exp['claim']}")
        return
    exp = read_experiment(args.experiment)
    if not os.access("train", os.X_OK):
        fail("./train is not built: run make first")
    if "setup" in exp and not os.path.exists(exp["creates"]) and not args.only_page:
        print(f"[{exp['name']}] setup: {exp['setup']}", flush=True)
        if subprocess.call(["bash", "-c", exp["setup"]], cwd=ROOT) != 0 or not os.path.exists(exp["creates"]):
            fail(f"{exp['path']}: setup failed or did not create {exp['creates']}")
    runs_by_variant = {}
    counts = {"reused": 0, "ran": 0, "missing": 0}
    for variant, variant_args in exp["variants"]:
        runs_by_variant[variant] = []
        for seed in exp["seeds"]:
            out_dir, how = ensure_run(exp, variant, variant_args, seed, args.runs, args.only_page)
            counts[how] += 1
            if how != "missing":
                runs_by_variant[variant].append(read_run(out_dir))
    if counts["missing"]:
        fail(f"{counts['missing']} run(s) of {exp['name']} are not finished: run scripts/lab.py {exp['name']}")
    path = write_page(exp, runs_by_variant, args.docs)
    print(f"{exp['name']}: {counts['ran']} run(s) made, {counts['reused']} reused; wrote {path}")


if __name__ == "__main__":
    main()
