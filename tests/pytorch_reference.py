#!/usr/bin/python3
"""PyTorch parity check for the C trainer.

Reads a dump written by tests/parity_dump (format described at the top of
tests/parity_dump.c), builds an independent PyTorch GPT (scripts/torch_gpt.py)
with the same weights, and checks that

  1. on the fixed batch, the logits, the loss and every parameter gradient agree
     (per layer for the stacked tensors): for each tensor
     max|c - torch| / max(max|torch|, tiny) <= TOL (1e-5);
  2. over the 10 training steps (torch.optim.AdamW with nanoGPT's two parameter
     groups, nanoGPT's schedule, torch.nn.utils.clip_grad_norm_), every step's
     learning rate, loss, and gradient norm before and after clipping agree,
     and the steps really cover warmup, cosine decay, min_lr, clipped and
     unclipped steps.

The reference takes only the weights, the batches and the hyperparameters
from the dump; everything it compares against is computed here.
Prints one line per check and exits 1 if any check fails.

Usage: /usr/bin/python3 tests/pytorch_reference.py DUMP [--no-float64]
"""
import argparse
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from torch_gpt import GPT, get_lr, tensor_map  # noqa: E402  (the model itself)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dump_io import read_dump  # noqa: E402

TOL = 1e-5           # per-tensor relative max difference on the fixed batch (the bar)
STEP_LOSS_TOL = 1e-5  # relative difference of each training step's loss, see check_training
STEP_NORM_TOL = 1e-5  # relative difference of each step's gradient norm (before and after clipping)
TINY = 1e-30          # keeps the metric finite for an all-zero reference tensor

# C tensor names in memory order; per-layer tensors are stacked over n_layer in the dump
LAYER_TENSORS = ["ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
                 "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb"]
ALL_TENSORS = ["wte", "wte_a", "wte_b", "wpe"] + LAYER_TENSORS + ["lnfw", "lnfb", "lm_head"]
POS_NAMES = ["learned", "sinusoidal", "none", "rope"]  # config/pos_encoding: C's PosEncoding


# ---------------------------------------------------------------------------
# embed_dropout's masks, recomputed from their definition (kernels/dropout.h,
# model.c's drop_key): position r of step s is kept when the top 32 bits of
# mix64(key + r * STRIDE) reach p * 2^32, key = dropout_key(seed, s, 0, DROP_TOKEN)

MASK64 = (1 << 64) - 1
DROPOUT_INDEX_STRIDE = 0x9E3779B97F4A7C15
DROP_TOKEN = 4


def mix64(z):
    """SplitMix64's finaliser on a 64-bit word."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def token_keep(seed, step, p, B, T):
    """(B, T) factors: 1/(1-p) where the position keeps its embedding, else 0."""
    key = mix64((mix64((mix64(seed ^ 0xD50F0D50F0D50F0D) + step) & MASK64) + DROP_TOKEN) & MASK64)
    threshold = int(float(np.float32(p)) * 4294967296.0)
    keep = np.array([(mix64((key + r * DROPOUT_INDEX_STRIDE) & MASK64) >> 32) >= threshold
                     for r in range(B * T)], dtype=np.float64).reshape(B, T)
    return torch.from_numpy(keep / (1.0 - float(np.float32(p))))


# ---------------------------------------------------------------------------
# the model of the dump

def build_model(rec, dtype):
    cfg = lambda k: rec["config/" + k].item()
    tied = bool(cfg("tie_weights"))
    pos = POS_NAMES[cfg("pos_encoding")]
    # embed_scale is a float32 in C; use exactly that value
    model = GPT(cfg("vocab_size"), cfg("block_size"), cfg("n_layer"), cfg("n_head"), cfg("n_embd"),
                pos, tied, float(rec["config/embed_scale"]), bool(cfg("bias")), embed_rank=cfg("embed_rank"))
    model.to(dtype)
    return model


def c_slice(rec, prefix, name, layer):
    a = rec[f"{prefix}/{name}"]
    return a if layer is None else a[layer]


def label(name, layer):
    return name if layer is None else f"{name}[{layer}]"


def load_weights(model, rec):
    mapped = {name for name, _, _ in tensor_map(model)}
    for name in ALL_TENSORS:  # absent in C exactly when absent here
        present = rec["init/" + name].size > 0
        if present != (name in mapped):
            raise SystemExit(f"FAIL layout: C tensor {name} has {rec['init/' + name].shape}, "
                             f"the reference {'has' if name in mapped else 'has no'} such tensor")
    with torch.no_grad():
        for name, layer, p in tensor_map(model):
            w = torch.from_numpy(c_slice(rec, "init", name, layer))
            if tuple(w.shape) != tuple(p.shape):
                raise SystemExit(f"FAIL layout: {label(name, layer)} is {tuple(w.shape)} in C, "
                                 f"{tuple(p.shape)} in the reference")
            p.copy_(w.to(p.dtype))


# ---------------------------------------------------------------------------
# comparisons

class Report:
    def __init__(self):
        self.failures = []

    def rel(self, what, c, ref, tol, extra=""):
        """max|c - ref| / max(max|ref|, TINY) against tol; one line, PASS or FAIL."""
        c = np.asarray(c, dtype=np.float64)
        ref = np.asarray(ref, dtype=np.float64)
        if c.shape != ref.shape:
            self.failures.append(what)
            print(f"FAIL {what}: shape {c.shape} in C, {ref.shape} in torch")
            return math.inf
        diff = np.abs(c - ref)
        scale = max(float(np.max(np.abs(ref))) if ref.size else 0.0, TINY)
        worst = float(np.max(diff)) if diff.size else 0.0
        metric = worst / scale
        # NaN in either side makes the metric NaN; "not <=" catches it
        ok = metric <= tol and np.all(np.isfinite(c)) and np.all(np.isfinite(ref))
        if not ok:
            self.failures.append(what)
        print(f"{'PASS' if ok else 'FAIL'} {what:<22} rel {metric:9.3e} (max|diff| {worst:.3e}, "
              f"scale {scale:.3e}, tol {tol:.0e}){extra}")
        return metric

    def check(self, what, ok, detail):
        if not ok:
            self.failures.append(what)
        print(f"{'PASS' if ok else 'FAIL'} {what}: {detail}")


def fixed_batch(rec, dtype):
    """Logits, loss and {(name, layer): grad} of the reference on the fixed batch."""
    model = build_model(rec, dtype)
    load_weights(model, rec)
    ids = torch.from_numpy(rec["fixed/inputs"]).long()
    targets = torch.from_numpy(rec["fixed/targets"]).long()
    logits, loss = model(ids, targets)
    loss.backward()
    grads = {(n, l): p.grad.detach().numpy() for n, l, p in tensor_map(model)}
    if model.embed_rank:  # E = A B and dE, the gradient of the loss at E itself
        E = model.embedding().detach().requires_grad_(True)
        dE, = torch.autograd.grad(model(ids, targets, E=E)[1], E)  # leaves the parameters' .grad as they are
        grads[("E", None)] = E.detach().numpy()
        grads[("dE", None)] = dE.numpy()
    return logits.detach().numpy(), loss.item(), grads, model


def check_fixed_batch(rec, report, with_f64):
    print("== fixed batch: C float32 vs torch float32 (tol %.0e)%s" %
          (TOL, "; C and torch float32 vs torch float64 for information" if with_f64 else ""))
    logits32, loss32, grads32, model = fixed_batch(rec, torch.float32)
    f64 = fixed_batch(rec, torch.float64) if with_f64 else None

    def info(c, t32, key):
        if f64 is None:
            return ""
        ref = {"logits": f64[0], "loss": f64[1]}.get(key)
        if ref is None:
            ref = f64[2][key]
        s = max(float(np.max(np.abs(ref))), TINY)
        return (f" | vs f64: C {np.max(np.abs(np.asarray(c, np.float64) - ref)) / s:.1e}"
                f" torch32 {np.max(np.abs(np.asarray(t32, np.float64) - ref)) / s:.1e}")

    worst = ("", 0.0)
    m = report.rel("logits", rec["fixed/logits"], logits32, TOL, info(rec["fixed/logits"], logits32, "logits"))
    worst = max(worst, ("logits", m), key=lambda w: w[1])
    m = report.rel("loss", rec["fixed/loss"], loss32, TOL, info(rec["fixed/loss"], loss32, "loss"))
    worst = max(worst, ("loss", m), key=lambda w: w[1])
    for name, layer, _ in tensor_map(model):
        c = c_slice(rec, "grad", name, layer)
        t = grads32[(name, layer)]
        m = report.rel("grad " + label(name, layer), c, t, TOL, info(c, t, (name, layer)))
        worst = max(worst, (label(name, layer), m), key=lambda w: w[1])
    if model.embed_rank:  # the (V, C) E = A B that C computes once per forward, and its gradient
        for key in ("E", "dE"):
            c, t = rec["fixed/" + key], grads32[(key, None)]
            m = report.rel(key + " = A B" if key == "E" else key, c, t, TOL, info(c, t, (key, None)))
            worst = max(worst, (key, m), key=lambda w: w[1])
    # (load_weights has already failed the run if C and the reference disagree on these)
    absent = [n for n in ALL_TENSORS if rec["grad/" + n].size == 0]
    if absent:
        print(f"info no tensor of its own in this variant: {', '.join(absent)} "
              "(sinusoidal positions are fixed, none has none; a tied output layer is wte; bias = 0 has no biases; "
              "wte is A B with embed_rank, and has factors only then)")
    return worst


def train(rec, dtype):
    """The 10 steps in PyTorch; per step (lr, loss, grad norm, clipped, norm after clipping)."""
    cfg = lambda k: rec["config/" + k].item()
    model = build_model(rec, dtype)
    load_weights(model, rec)
    # freeze_embeddings: E takes no part in training (no gradient, so neither in the
    # clipped norm nor in AdamW), as C's trained_params leaves it out
    if cfg("freeze_embeddings"):
        for _, _, p in tensor_map(model)[:2 if model.embed_rank else 1]:  # E, or its factors A and B
            p.requires_grad_(False)
    # nanoGPT's configure_optimizers: decay every parameter with dim >= 2
    params = [p for _, _, p in tensor_map(model) if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg("weight_decay")},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg("learning_rate"), betas=(cfg("beta1"), cfg("beta2")), eps=1e-8)
    history = []
    dropped = 0
    for step in range(1, cfg("steps") + 1):
        lr = get_lr(step - 1, cfg("learning_rate"), cfg("min_lr"), cfg("warmup_iters"), cfg("lr_decay_iters"))
        for group in opt.param_groups:
            group["lr"] = lr
        ids = torch.from_numpy(rec[f"step/{step}/inputs"]).long()
        targets = torch.from_numpy(rec[f"step/{step}/targets"]).long()
        keep = None
        if cfg("embed_dropout") > 0:
            keep = token_keep(cfg("seed"), step, cfg("embed_dropout"), *ids.shape)
            dropped += int((keep == 0).sum())
        _, loss = model(ids, targets, keep)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, cfg("grad_clip")).item()
        # clip_grad_norm_ scales by max_norm / (norm + 1e-6) when that is below 1
        clipped = cfg("grad_clip") / (norm + 1e-6) < 1.0
        norm_after = torch.norm(torch.stack([p.grad.norm() for p in params])).item()
        opt.step()
        history.append((lr, loss.item(), norm, clipped, norm_after))
    if cfg("embed_dropout") > 0:
        print(f"info embed_dropout {cfg('embed_dropout'):g}: {dropped} of {cfg('steps') * cfg('batch_size') * cfg('seq_len')}"
              " positions dropped over the steps (masks recomputed here from their definition)")
    return history, model


def check_decay_flags(rec, report):
    """The C optimizer must decay exactly the tensors nanoGPT decays (dim >= 2)."""
    model = build_model(rec, torch.float32)
    seen = {}
    for name, _, p in tensor_map(model):
        seen[name] = p.dim() >= 2
    bad = [n for n, d in seen.items() if bool(rec["decay/" + n]) != d]
    report.check("weight decay set", not bad,
                 "C decays " + ", ".join(n for n in seen if rec["decay/" + n]) +
                 (f"; differs from nanoGPT on {bad}" if bad else " (as nanoGPT: dim >= 2)"))


def report_final_params(rec, model32, model64):
    """For information only: how far the weights after the last step are apart,
    relative to how far training moved them. Not a gate: the key part of qkvb has
    a true gradient of 0 (adding a constant to every score of a query leaves the
    softmax unchanged), so both float32 sides get rounding noise there, which Adam
    divides by its own tiny sqrt(v) and turns into steps of random sign. Those
    weights cannot change the loss. Key weights of a head with a nearly saturated
    softmax get gradients close to 0 as well and show the same effect, smaller
    (up to ~3e-3 of the update, in float32 and float64 alike). The per-step loss
    and gradient-norm checks are the gate."""
    C = rec["config/n_embd"].item()

    def worst(model):
        out = ("", 0.0)
        for name, layer, p in tensor_map(model):
            t = p.detach().double().numpy()
            c = c_slice(rec, "final", name, layer).astype(np.float64)
            moved = np.max(np.abs(t - c_slice(rec, "init", name, layer)))
            diff = np.abs(c - t)
            if name == "qkvb":
                diff[C:2 * C] = 0.0  # the key bias, see above
            out = max(out, (label(name, layer), float(np.max(diff)) / max(moved, TINY)), key=lambda w: w[1])
        return out
    n32, m32 = worst(model32)
    line = f"info final weights but the key bias, max|C - torch| / max|update|: float32 {m32:.1e} ({n32})"
    if model64 is not None:
        n64, m64 = worst(model64)
        line += f", float64 {m64:.1e} ({n64})"
    print(line)


def check_training(rec, report, with_f64):
    """Each step's lr, loss, gradient norm and clipping decision against torch.

    The lr is double on both sides: 1e-12. Loss and gradient norm: 1e-5 relative.
    Step 1 starts from the same weights, so only float32 rounding differs (~1e-7).
    Later steps also carry earlier updates made from gradients that differ by
    ~1e-6 relative; Adam's update m / sqrt(v) passes that on at the same relative
    size, so the losses stay within a few 1e-7 of each other (measured: at most
    3.6e-7 over the four variants, gradient norms 1.1e-6, and C is as close to the
    float64 run as torch float32 is). Small optimizer mistakes tried on purpose in
    a copy of optim.c move these numbers far more within 10 steps: decay on every
    tensor or a first moment 0.1% too small change the step-2 loss by 3e-5 to
    8e-5, a clip eps of 1e-3 instead of 1e-6 the clipped norm by 1.4e-4 or more.
    So 1e-5 keeps a margin of ~25x above the noise and still sees them. The
    float64 columns say, when a check fails, whether torch float32 itself drifted."""
    cfg = lambda k: rec["config/" + k].item()
    steps = cfg("steps")
    print("== %d AdamW steps (lr %g -> min %g, warmup %d, decay to %d, clip %g, wd %g, betas %g %g)" %
          (steps, cfg("learning_rate"), cfg("min_lr"), cfg("warmup_iters"), cfg("lr_decay_iters"),
           cfg("grad_clip"), cfg("weight_decay"), cfg("beta1"), cfg("beta2")))
    report.check("adamw eps", abs(cfg("adamw_eps") - 1e-8) <= 1e-15, f"C uses {cfg('adamw_eps'):g}, torch 1e-8")
    check_decay_flags(rec, report)
    hist32, model32 = train(rec, torch.float32)
    hist64, model64 = train(rec, torch.float64) if with_f64 else (None, None)
    worst_loss = 0.0
    regimes = set()
    for step in range(1, steps + 1):
        lr, loss, norm, clipped, norm_after = hist32[step - 1]
        c_lr = rec[f"step/{step}/lr"].item()
        it = step - 1
        regimes.add("warmup" if it < cfg("warmup_iters") else "min_lr" if it >= cfg("lr_decay_iters") else "cosine")
        report.rel(f"step {step:2d} lr", c_lr, lr, 1e-12)
        extra = ""
        if hist64:
            extra = f" | torch32 vs f64 {abs(loss - hist64[step - 1][1]) / abs(hist64[step - 1][1]):.1e}"
        worst_loss = max(worst_loss, report.rel(f"step {step:2d} loss", rec[f"step/{step}/loss"], loss,
                                                STEP_LOSS_TOL, f" C {rec[f'step/{step}/loss'].item():.7f}"
                                                f" torch {loss:.7f}{extra}"))
        c_norm = rec[f"step/{step}/grad_norm"].item()
        extra = f" {norm:.5f}{' clipped' if clipped else ''}"
        if hist64:
            n64 = hist64[step - 1][2]
            extra += f" | vs f64: C {abs(c_norm - n64) / n64:.1e} torch32 {abs(norm - n64) / n64:.1e}"
        report.rel(f"step {step:2d} grad norm", c_norm, norm, STEP_NORM_TOL, extra)
        # the norm the gradients have after clipping: this checks what grad_clip did
        did = lambda flag: "clipped" if flag else "did not clip"
        report.rel(f"step {step:2d} clipped norm", rec[f"step/{step}/grad_norm_clipped"], norm_after,
                   STEP_NORM_TOL, f" {norm_after:.5f} (C {did(rec[f'step/{step}/clipped'])}, torch {did(clipped)})")
    report_final_params(rec, model32, model64)
    if cfg("freeze_embeddings"):
        names = ["wte_a", "wte_b"] if cfg("embed_rank") else ["wte"]
        report.check("E frozen", all(np.array_equal(rec["final/" + n], rec["init/" + n]) for n in names),
                     f"C's {' and '.join(names)} after the steps are the initial ones, bit for bit")
    # the test must exercise what it claims to: clipping on some steps but not all,
    # and the three parts of the schedule
    n_clipped = sum(h[3] for h in hist32)
    report.check("clipping exercised", 0 < n_clipped < steps,
                 f"{n_clipped} of {steps} steps clipped (need some but not all; retune GRAD_CLIP "
                 "in tests/parity_dump.c if not)")
    report.check("schedule exercised", regimes == {"warmup", "cosine", "min_lr"},
                 f"steps cover {sorted(regimes)}")
    return worst_loss


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dump")
    ap.add_argument("--no-float64", action="store_true", help="skip the float64 reference runs")
    args = ap.parse_args()
    torch.set_num_threads(1)  # small tensors; and the result then cannot depend on threads
    rec = read_dump(args.dump)
    cfg = lambda k: rec["config/" + k].item()
    print("variant: pos=%s tied=%d freeze=%d embed_dropout=%g embed_rank=%d embed_scale=%g | V %d, block %d, L %d, "
          "NH %d, C %d, batch %dx%d" % (POS_NAMES[cfg("pos_encoding")], cfg("tie_weights"), cfg("freeze_embeddings"),
                           cfg("embed_dropout"), cfg("embed_rank"), cfg("embed_scale"),
           cfg("vocab_size"), cfg("block_size"), cfg("n_layer"), cfg("n_head"), cfg("n_embd"),
           cfg("batch_size"), cfg("seq_len")))
    report = Report()
    worst_name, worst = check_fixed_batch(rec, report, not args.no_float64)
    worst_loss = check_training(rec, report, not args.no_float64)
    if report.failures:
        print(f"FAIL: {len(report.failures)} check(s) failed: {', '.join(report.failures)}")
        sys.exit(1)
    print(f"summary: all checks pass; worst fixed-batch rel diff {worst:.2e} ({worst_name}), "
          f"worst step-loss rel diff {worst_loss:.2e}")


if __name__ == "__main__":
    main()
