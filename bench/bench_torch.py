#!/usr/bin/python3
"""The PyTorch peer of bench/bench_step: the same model, batch shape, step and FLOP count.

The model is scripts/torch_gpt.py's GPT (the one the parity test checks against
the C model: tied weights, learned or sinusoidal positions, GELU tanh, biases, no
dropout), initialised as scripts/pytorch_train.py does. One timed step is what
pytorch_train.py's loop does: set the learning rate, forward with the loss,
zero_grad(set_to_none=True), backward, clip_grad_norm_, torch.optim.AdamW's step
(decay on matrices only). Batches are random ids from a seeded torch.Generator, drawn
outside the clock. The evaluation forward runs in eval mode under no_grad, as
pytorch_train.py's evaluate.

Usage: /usr/bin/python3 bench/bench_torch.py CONFIG [--key=value ...] [--steps=N]
           [--warmup=N] [--eval_reps=N] [--vocab_size=V] [--threads=N] [--setup=tuned|installed]
           [--attention=auto|sdpa|manual]
Options and defaults as bench_step's (steps 30, warmup 5, eval_reps 10, vocab_size 65);
--threads=N (default: every CPU) sets torch.set_num_threads. With --setup=tuned (the
default), before torch loads, it also sets OMP_NUM_THREADS and OPENBLAS_NUM_THREADS, so
the BLAS it calls uses N threads too, and OMP_WAIT_POLICY=PASSIVE unless it is set (see
below). --setup=installed leaves the environment as it is: Debian's torch as a user
runs it, calling only torch.set_num_threads.

The peer is PyTorch at its best where the torch at hand offers more than 1.13 does:
- attention: --attention=auto (the default) takes torch's fused
  F.scaled_dot_product_attention(is_causal=True) where it exists (torch 2.0 and later, as
  nanoGPT does), else the masked softmax written out; sdpa or manual force one. Before
  timing, the fused form is checked against the written-out one on one attention layer
  (random input, PyTorch's default init), and a difference over SDPA_TOL (1e-3) stops the run.
- AdamW: with --setup=tuned, fused=True where torch runs it on the CPU (2.4 and later),
  else torch's default; --setup=installed keeps the default.
Both choices are printed, and are fields of the last line.

The last line is machine-readable, in bench_step's format:
  bench impl=torch|torch-installed config=NAME threads=N B= T= params= steps= ms_median= ms_min= tok_s=
        gflop_per_step= attn_share= gflops= eval_ms= rss_base_mb= rss_mb= attention=sdpa|manual
        adamw=fused|default
rss_base_mb is the peak RSS once torch is imported, before the model: the runtime's own share.
"""
import math
import os
import resource
import statistics
import sys
import time

DEFAULTS = {"steps": 30, "warmup": 5, "eval_reps": 10, "vocab_size": 65}
CHOICES = {"setup": ("tuned", "installed"), "attention": ("auto", "sdpa", "manual")}
# max|fused - written out| / max|written out| on one attention layer: a wrong mask or scale
# gives 0.5 and more (tests/test_bench_peer.sh), float32 rounding about 1e-7, and torch's
# fused CPU kernels may use a faster exp of about 20 bits (1e-6): 1e-3 separates them
SDPA_TOL = 1e-3
MB = 1024.0 * 1024.0


def parse_args(argv):
    """CONFIG, the bench's own options, the threads, the choices, and the --key=value config overrides."""
    if len(argv) < 1 or argv[0] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if argv else 2)
    opts = dict(DEFAULTS)
    threads = os.cpu_count() or 1
    choices = {key: values[0] for key, values in CHOICES.items()}
    overrides = {}
    for arg in argv[1:]:
        if not arg.startswith("--") or "=" not in arg:
            sys.exit(f"error: expected --key=value, got '{arg}'")
        key, value = arg[2:].split("=", 1)
        if key in CHOICES:
            if value not in CHOICES[key]:
                sys.exit(f"error: --{key} expects {' or '.join(CHOICES[key])}, got '{value}'")
            choices[key] = value
        elif key in DEFAULTS or key == "threads":
            if not value.isdigit() or int(value) < 1:
                sys.exit(f"error: --{key} expects a positive integer, got '{value}'")
            if key == "threads":
                threads = int(value)
            else:
                opts[key] = int(value)
        else:
            overrides[key] = value
    return argv[0], opts, threads, choices, overrides


CONFIG_PATH, OPTS, THREADS, CHOSEN, OVERRIDES = parse_args(sys.argv[1:])
SETUP = CHOSEN["setup"]
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
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from torch_gpt import GPT, CausalSelfAttention, get_lr, gpt2_init, param_groups, read_config, tensor_map  # noqa: E402


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


def use_sdpa(choice):
    """Whether the peer's attention is the fused F.scaled_dot_product_attention."""
    has = hasattr(F, "scaled_dot_product_attention")
    if choice == "sdpa" and not has:
        sys.exit(f"error: --attention=sdpa: torch {torch.__version__} has no "
                 "F.scaled_dot_product_attention (torch 2.0 and later)")
    return has and choice != "manual"


def check_sdpa(C, NH, B, T, bias):
    """The fused attention against the written-out one, on one layer with PyTorch's default
    init (scores of order one, so a wrong scale or mask shows) and N(0, 1) input. Runs after
    the model's init, so that the peer's weights do not depend on it. Returns the difference."""
    attn = CausalSelfAttention(C, NH, bias)
    x = torch.randn(B, T, C)
    with torch.no_grad():
        attn.sdpa = False
        y_ref = attn(x)
        attn.sdpa = True
        y = attn(x)
    diff = (y - y_ref).abs().max().item() / max(y_ref.abs().max().item(), 1e-30)
    if not diff <= SDPA_TOL:
        sys.exit(f"error: torch {torch.__version__}'s F.scaled_dot_product_attention(is_causal=True) "
                 f"differs from the written-out causal softmax by {diff:.3g} (relative max, over "
                 f"{SDPA_TOL:g}): not the same model; rerun with --attention=manual")
    return diff


def make_adamw(groups, fused, **kw):
    """torch.optim.AdamW, fused where asked and torch runs it on the CPU. Returns it and its name."""
    if fused:
        try:
            return torch.optim.AdamW(groups, fused=True, **kw), "fused"
        except (TypeError, RuntimeError):  # before 2.0: no such argument; 2.0-2.3: CUDA only
            pass
    return torch.optim.AdamW(groups, **kw), "default"


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
    sdpa = use_sdpa(CHOSEN["attention"])
    model = GPT(V, T, L, NH, C, cfg["pos_encoding"], tied, scale, bias, sdpa)
    params = [p for _, _, p in tensor_map(model)]
    gpt2_init(model, L)  # as pytorch_train.py
    opt, adamw = make_adamw(param_groups(params, getf("weight_decay")), SETUP == "tuned",
                            lr=getf("learning_rate"), betas=(getf("beta1"), getf("beta2")), eps=1e-8)
    sdpa_diff = check_sdpa(C, NH, B, T, bias) if sdpa else None
    gen = torch.Generator().manual_seed(geti("seed"))
    flops = count_flops(L, C, V, B, T)
    n_params = sum(p.numel() for p in params)
    name = os.path.basename(CONFIG_PATH).split(".")[0]

    print(f"bench_torch: {CONFIG_PATH} on {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"setup {SETUP}: OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    if sdpa:
        print(f"attention: F.scaled_dot_product_attention(is_causal=True), within {sdpa_diff:.2g} "
              f"of the written-out causal softmax (relative max, one layer)")
    else:
        print("attention: the causal softmax written out (T x T scores per head)")
    print(f"AdamW: {'fused=True' if adamw == 'fused' else 'torch default (fused not asked for or not run on the CPU)'}")
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
          f"rss_base_mb={rss_base:.1f} rss_mb={rss:.1f} attention={'sdpa' if sdpa else 'manual'} adamw={adamw}")


if __name__ == "__main__":
    main()
