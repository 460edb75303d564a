#!/usr/bin/python3
"""The PyTorch peer of scripts/bench_step: the same model, batch shape, step and FLOP count.

The model is scripts/pytorch_reference.py's GPT (the one the parity test checks against
the C model: tied weights, learned or sinusoidal positions, GELU tanh, biases, no
dropout), initialised as scripts/pytorch_train.py does. One timed step is what
pytorch_train.py's loop does: set the learning rate, forward with the loss,
zero_grad(set_to_none=True), backward, clip_grad_norm_, torch.optim.AdamW's step
(decay on matrices only). Batches are random ids from a seeded torch.Generator, drawn
outside the clock. The evaluation forward runs in eval mode under no_grad, as
pytorch_train.py's evaluate.

Usage: /usr/bin/python3 scripts/bench_torch.py CONFIG [--key=value ...] [--steps=N]
           [--warmup=N] [--eval_reps=N] [--vocab_size=V] [--threads=N] [--setup=tuned|installed]
Options and defaults as bench_step's (steps 30, warmup 5, eval_reps 10, vocab_size 65);
--threads=N (default: every CPU) sets torch.set_num_threads. With --setup=tuned (the
default), before torch loads, it also sets OMP_NUM_THREADS and OPENBLAS_NUM_THREADS, so
the BLAS it calls uses N threads too, and OMP_WAIT_POLICY=PASSIVE unless it is set (see
below). --setup=installed leaves the environment as it is: Debian's torch as a user
runs it, calling only torch.set_num_threads (the peer the issue's numbers describe).

The last line is machine-readable, in bench_step's format:
  bench impl=torch|torch-installed config=NAME threads=N B= T= params= steps= ms_median= ms_min= tok_s=
        gflop_per_step= attn_share= gflops= eval_ms= rss_base_mb= rss_mb=
rss_base_mb is the peak RSS once torch is imported, before the model: the runtime's own share.
"""
import math
import os
import resource
import statistics
import sys
import time

DEFAULTS = {"steps": 30, "warmup": 5, "eval_reps": 10, "vocab_size": 65}
MB = 1024.0 * 1024.0
INIT_STD = 0.02


def parse_args(argv):
    """CONFIG, the bench's own options, the threads, and the --key=value config overrides."""
    if len(argv) < 1 or argv[0] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if argv else 2)
    opts = dict(DEFAULTS)
    threads = os.cpu_count() or 1
    setup = "tuned"
    overrides = {}
    for arg in argv[1:]:
        if not arg.startswith("--") or "=" not in arg:
            sys.exit(f"error: expected --key=value, got '{arg}'")
        key, value = arg[2:].split("=", 1)
        if key == "setup":
            if value not in ("tuned", "installed"):
                sys.exit(f"error: --setup expects tuned or installed, got '{value}'")
            setup = value
        elif key in DEFAULTS or key == "threads":
            if not value.isdigit() or int(value) < 1:
                sys.exit(f"error: --{key} expects a positive integer, got '{value}'")
            if key == "threads":
                threads = int(value)
            else:
                opts[key] = int(value)
        else:
            overrides[key] = value
    return argv[0], opts, threads, setup, overrides


CONFIG_PATH, OPTS, THREADS, SETUP, OVERRIDES = parse_args(sys.argv[1:])
# Before torch loads: its OpenMP runtime and OpenBLAS size their thread pools from these.
# The two pools take turns on the same cores (torch's own kernels, then a BLAS call), and
# with libgomp's default policy the idle OpenMP threads spin while OpenBLAS works: on the
# 2-core machine a baby step took 125 ms on 2 threads against 64 ms with PASSIVE (about
# 65 ms on 1 thread), and seconds when another process was busy. PASSIVE unless set.
# With --setup=installed none of this: the slower defaults are what a user gets.
if SETUP == "tuned":
    os.environ["OMP_NUM_THREADS"] = str(THREADS)
    os.environ["OPENBLAS_NUM_THREADS"] = str(THREADS)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_reference import GPT, get_lr, tensor_map  # noqa: E402
from pytorch_train import read_config  # noqa: E402


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0 / MB  # Linux reports kB


def count_flops(L, C, V, B, T):
    """bench_step.c's count_flops, term for term (the derivation is there): useful FLOPs of
    the matrix products, an FMA = 2; a step is 3 x the forward."""
    matmuls = L * 24.0 * B * T * C * C
    attention = L * 2.0 * B * C * T * (T + 1)   # causal: key s <= query t only
    logits = 2.0 * B * T * C * V
    forward = matmuls + attention + logits
    return {"matmuls": matmuls, "attention": attention, "logits": logits, "forward": forward,
            "step": 3.0 * forward}


def main():
    rss_base = peak_rss_mb()
    torch.set_num_threads(THREADS)
    cfg = {"seed": "1337", "bias": "true", "tie_weights": "true", "pos_encoding": "learned",
           "embed_scale": "auto", "dropout": "0", "grad_clip": "1.0", "weight_decay": "0.1",
           "beta1": "0.9", "beta2": "0.99", "learning_rate": "1e-3", "min_lr": "1e-4",
           "warmup_iters": "100", "lr_decay_iters": "2000"}   # config.c's defaults for the keys used
    cfg.update(read_config(CONFIG_PATH, OVERRIDES))
    geti = lambda k: int(cfg[k])
    getf = lambda k: float(cfg[k])
    if getf("dropout") != 0.0:
        sys.exit(f"error: {CONFIG_PATH}: dropout = {cfg['dropout']}: the PyTorch peer has no dropout, "
                 "so its step would not be the C model's; benchmark with --dropout=0")
    L, NH, C, T, B = geti("n_layer"), geti("n_head"), geti("n_embd"), geti("block_size"), geti("batch_size")
    V = OPTS["vocab_size"]
    if C % NH != 0:
        sys.exit(f"error: n_embd = {C} must be divisible by n_head = {NH}")
    sinusoidal = cfg["pos_encoding"] == "sinusoidal"
    scale = math.sqrt(C) if sinusoidal else 1.0
    if cfg["embed_scale"] != "auto":
        scale = float(cfg["embed_scale"])
    bias, tied = cfg["bias"] in ("true", "1", "yes"), cfg["tie_weights"] in ("true", "1", "yes")

    torch.manual_seed(geti("seed"))
    model = GPT(V, T, L, NH, C, sinusoidal, tied, scale, bias)
    params = [p for _, _, p in tensor_map(model)]
    with torch.no_grad():  # pytorch_train.py's GPT-2 init
        for name, _, p in tensor_map(model):
            if p.dim() >= 2:
                p.normal_(0.0, INIT_STD / math.sqrt(2 * L) if name in ("attprojw", "fcprojw") else INIT_STD)
            elif name.endswith("b"):
                p.zero_()
    opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": getf("weight_decay")},
                             {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                            lr=getf("learning_rate"), betas=(getf("beta1"), getf("beta2")), eps=1e-8)
    gen = torch.Generator().manual_seed(geti("seed"))
    flops = count_flops(L, C, V, B, T)
    n_params = sum(p.numel() for p in params)
    name = os.path.basename(CONFIG_PATH).split(".")[0]

    print(f"bench_torch: {CONFIG_PATH} on {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"setup {SETUP}: OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print(f"model: n_layer {L}, n_head {NH}, n_embd {C}, block_size {T}, vocab_size {V}, "
          f"{'tied' if tied else 'untied'} weights, {'biases' if bias else 'no biases'}: {n_params} parameters")
    print(f"batch: {B} x {T} = {B * T} tokens per step, random ids (torch.Generator, seed {geti('seed')})")
    print(f"FLOPs: {flops['step'] * 1e-9:.3f} G per step = 3 x forward {flops['forward'] * 1e-9:.3f} G "
          f"(matmuls {flops['matmuls'] * 1e-9:.3f}, attention {flops['attention'] * 1e-9:.3f}, "
          f"logits {flops['logits'] * 1e-9:.3f})")

    def batch():
        return torch.randint(V, (B, T), generator=gen), torch.randint(V, (B, T), generator=gen)

    # ---- training steps: pytorch_train.py's loop body, batch drawn outside the clock ----
    steps, warmup = OPTS["steps"], OPTS["warmup"]
    times, losses = [], []
    model.train()
    for step in range(1, warmup + steps + 1):
        x, y = batch()
        t0 = time.perf_counter()
        lr = get_lr(step - 1, getf("learning_rate"), getf("min_lr"), geti("warmup_iters"), geti("lr_decay_iters"))
        for group in opt.param_groups:
            group["lr"] = lr
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if getf("grad_clip") > 0:
            torch.nn.utils.clip_grad_norm_(params, getf("grad_clip"))
        opt.step()
        losses.append(loss.item())  # inside the clock: C's step returns its loss as a float too
        if step > warmup:
            times.append(time.perf_counter() - t0)
    ms_median, ms_min = statistics.median(times) * 1e3, min(times) * 1e3
    ms_mean, ms_max = statistics.mean(times) * 1e3, max(times) * 1e3

    # ---- one evaluation forward ----
    model.eval()
    eval_times = []
    with torch.no_grad():
        for _ in range(OPTS["eval_reps"]):
            x, y = batch()
            t0 = time.perf_counter()
            model(x, y)[1].item()
            eval_times.append(time.perf_counter() - t0)
    eval_ms = statistics.median(eval_times) * 1e3
    rss = peak_rss_mb()
    tok_s = B * T / (ms_median * 1e-3)
    gflops = flops["step"] / (ms_median * 1e-3) * 1e-9

    print(f"loss: {losses[0]:.4f} at step 1, {losses[-1]:.4f} at step {len(losses)} "
          f"(random ids: about ln {V} = {math.log(V):.2f})")
    print(f"train step: median {ms_median:.2f} ms, min {ms_min:.2f}, mean {ms_mean:.2f}, max {ms_max:.2f} over "
          f"{steps} steps after {warmup} warmup: {tok_s:.0f} tokens/s, {gflops:.1f} GFLOP/s")
    print(f"eval forward: median {eval_ms:.2f} ms over {OPTS['eval_reps']}: "
          f"{flops['forward'] / (eval_ms * 1e-3) * 1e-9:.1f} GFLOP/s")
    print(f"peak RSS: {rss:.1f} MB ({rss_base:.1f} MB with torch loaded, before the model)")
    print(f"bench impl={'torch' if SETUP == 'tuned' else 'torch-installed'} config={name} threads={torch.get_num_threads()} B={B} T={T} params={n_params} "
          f"steps={steps} ms_median={ms_median:.3f} ms_min={ms_min:.3f} tok_s={tok_s:.1f} "
          f"gflop_per_step={flops['step'] * 1e-9:.4f} attn_share={flops['attention'] / flops['forward']:.3f} "
          f"gflops={gflops:.2f} eval_ms={eval_ms:.3f} "
          f"rss_base_mb={rss_base:.1f} rss_mb={rss:.1f}")


if __name__ == "__main__":
    main()
