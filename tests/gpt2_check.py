#!/usr/bin/python3
"""Check that a checkpoint in Hugging Face GPT-2 layout computes the C model's logits.

Usage:
  tests/gpt2_check.py CKPT_DIR --ids 1,5,2,... [--logits FILE] [--tol 1e-4]

CKPT_DIR holds model.safetensors and config.json as Hugging Face's GPT2LMHeadModel
reads them. The script rebuilds GPT-2's forward pass by hand in float64 with numpy (no
transformers, no safetensors package) from those two files alone, runs it on the token
ids, and:

  * with --logits FILE (the C model's logits for the same ids: raw little-endian float32,
    shape (len(ids), vocab_size), row-major), reports the max |difference| and that
    difference relative to the largest |logit| of the reference;
  * without --logits, prints the argmax and the top logits at every position;
  * if `import transformers` works, also runs GPT2LMHeadModel.from_pretrained(CKPT_DIR)
    and compares its logits with the reference (and with FILE); otherwise says it skipped it.

Exit status: 0 when every comparison made has relative difference <= --tol (default 1e-4),
1 when one does not, 2 when the checkpoint cannot be checked: a file is missing or
malformed, a tensor is missing, not F32 or of the wrong shape, config.json has a key or
value this forward pass cannot honour (for example "emergent_pos_encoding": "sinusoidal",
a checkpoint that is not GPT-2 compatible), an id is out of range or there are more ids
than n_positions.

The forward pass (Hugging Face's names; Conv1D weights are stored [in, out], y = x W + b):
  x = wte[ids] + wpe[0..T-1]
  per block: x += c_proj(attn(c_attn(ln_1(x))));  x += mlp.c_proj(gelu(mlp.c_fc(ln_2(x))))
             c_attn's 3C output columns are q | k | v, each split into n_head heads of
             C / n_head consecutive columns; attention is causal softmax(q k^T / sqrt(hs)) v
  logits = ln_f(x) wte^T when tie_word_embeddings (the default), else ln_f(x) lm_head^T
"""
import argparse
import json
import math
import os
import sys

import numpy as np

PROG = "gpt2_check.py"

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from emergent_io import InputError as CheckError, read_safetensors  # noqa: E402  (exit status 2)


# ----------------------------------------------------------------------------- safetensors


def load_f32(path, entries, data, name, shape):
    """The tensor `name` as float64, after checking that it exists, is F32 and has `shape`."""
    if name not in entries:
        raise CheckError(f"{path}: required tensor {name} (shape {list(shape)}) is missing")
    dtype, got_shape, begin, end = entries[name]
    if dtype != "F32":
        raise CheckError(f"{path}: tensor {name} is {dtype}; only F32 is supported")
    if list(got_shape) != list(shape):
        raise CheckError(f"{path}: tensor {name} has shape {list(got_shape)}, expected {list(shape)}")
    count = int(np.prod(shape, dtype=np.int64))
    if end - begin != 4 * count:
        raise CheckError(f"{path}: tensor {name}: {end - begin} bytes for {count} float32 values")
    return np.frombuffer(data, dtype="<f4", count=count, offset=begin).reshape(shape).astype(np.float64)


# ----------------------------------------------------------------------------- config

ACTIVATIONS = {
    "gelu_new": "tanh",            # GPT-2's own: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    "gelu_pytorch_tanh": "tanh",   # the same formula
    "gelu": "erf",                 # exact: 0.5 x (1 + erf(x / sqrt 2))
}
# keys this script reads and honours
USED_KEYS = {"vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "layer_norm_epsilon",
             "activation_function", "tie_word_embeddings"}
# keys that must have one of these values, or be absent (None means JSON null)
REQUIRED_VALUES = {
    "model_type": {"gpt2"},
    "n_inner": {None},                       # or 4 * n_embd, checked below
    "scale_attn_weights": {True},
    "scale_attn_by_inverse_layer_idx": {False},
    "add_cross_attention": {False},
    "pruned_heads": {None},                  # or {}, checked below
    "torch_dtype": {"float32", None},
    # this project's own keys (checkpoint.c): only the GPT-2 compatible values
    "emergent_gpt2_compatible": {True},
    "emergent_pos_encoding": {"learned"},
    "emergent_embed_scale": {1, 1.0},
    "emergent_embed_rank": {0},              # E = A B: no GPT-2 wte.weight in the file
}
# keys that do not change the forward pass at inference (dropout, heads for other tasks, ids, ...)
IGNORED_KEYS = {
    "architectures", "attn_pdrop", "embd_pdrop", "resid_pdrop", "initializer_range", "n_ctx",
    "summary_activation", "summary_first_dropout", "summary_proj_to_labels", "summary_type",
    "summary_use_proj", "task_specific_params", "use_cache", "bos_token_id", "eos_token_id",
    "pad_token_id", "transformers_version", "_name_or_path", "reorder_and_upcast_attn",
    "return_dict", "output_hidden_states", "output_attentions", "torchscript", "id2label",
    "label2id", "tokenizer_class", "is_decoder", "is_encoder_decoder",
    "emergent_step",  # the training step the checkpoint was taken at
    "emergent_bias",  # bias = false is exported as zero biases, which the tensors carry
    "emergent_tokenizer_fnv1a64",  # which tokenizer.bin the model was trained with
}


def same_value(a, b):
    """JSON equality that keeps true apart from 1 and false from 0."""
    return isinstance(a, bool) == isinstance(b, bool) and type(a) not in (dict, list) and a == b


def read_config(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            cfg = json.load(f)
    except OSError as e:
        raise CheckError(f"{path}: cannot read: {e.strerror}")
    except json.JSONDecodeError as e:
        raise CheckError(f"{path}: not JSON: {e}")
    if not isinstance(cfg, dict):
        raise CheckError(f"{path}: not a JSON object")

    def need_int(key):
        value = cfg.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise CheckError(f"{path}: {key} must be a positive integer, got {value!r}")
        return value

    c = {key: need_int(key) for key in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")}
    if c["n_embd"] % c["n_head"]:
        raise CheckError(f"{path}: n_embd {c['n_embd']} is not divisible by n_head {c['n_head']}")
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or eps < 0:
        raise CheckError(f"{path}: layer_norm_epsilon must be a number >= 0, got {eps!r}")
    c["eps"] = float(eps)
    act = cfg.get("activation_function", "gelu_new")
    if act not in ACTIVATIONS:
        raise CheckError(f"{path}: activation_function {act!r} is not supported (only {', '.join(ACTIVATIONS)})")
    c["activation"] = act
    tie = cfg.get("tie_word_embeddings", True)
    if not isinstance(tie, bool):
        raise CheckError(f"{path}: tie_word_embeddings must be true or false, got {tie!r}")
    c["tied"] = tie

    problems = []
    for key, value in cfg.items():
        if key in USED_KEYS or key in IGNORED_KEYS:
            continue
        if key in REQUIRED_VALUES:
            ok = any(same_value(value, allowed) for allowed in REQUIRED_VALUES[key])
            if key == "n_inner":
                ok = ok or value == 4 * c["n_embd"]
            if key == "pruned_heads":
                ok = ok or value == {}
            if not ok:
                allowed = " or ".join(json.dumps(v) for v in sorted(REQUIRED_VALUES[key], key=repr))
                problems.append(f"{key} = {json.dumps(value)} (this check needs {allowed}"
                                + (f" or {4 * c['n_embd']}" if key == "n_inner" else "") + ")")
        elif key.startswith("emergent_"):
            problems.append(f"{key} = {json.dumps(value)} (an emergent extension this check does not know)")
        else:
            print(f"{PROG}: note: {path}: ignoring unknown key {key!r} (assumed not to change the forward pass)",
                  file=sys.stderr)
    if problems:
        raise CheckError(f"{path}: not a GPT-2 compatible checkpoint, cannot honour: " + "; ".join(problems))
    return c


# ----------------------------------------------------------------------------- forward pass


def layer_norm(x, weight, bias, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # biased variance, as torch's layer_norm
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def gelu(x, kind):
    if kind == "tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def causal_self_attention(h, w_attn, b_attn, w_proj, b_proj, n_head):
    T, C = h.shape
    hs = C // n_head
    qkv = h @ w_attn + b_attn                                   # (T, 3C): q | k | v
    q, k, v = (qkv[:, i * C:(i + 1) * C].reshape(T, n_head, hs).transpose(1, 0, 2) for i in range(3))
    scores = q @ k.transpose(0, 2, 1) / math.sqrt(hs)           # (NH, T, T)
    future = np.triu(np.ones((T, T), dtype=bool), k=1)          # key position > query position
    scores = np.where(future, -np.inf, scores)
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=-1, keepdims=True)
    y = (weights @ v).transpose(1, 0, 2).reshape(T, C)          # heads side by side again
    return y @ w_proj + b_proj


def load_weights(path, cfg):
    entries, data, _ = read_safetensors(path)
    V, P, C, L = cfg["vocab_size"], cfg["n_positions"], cfg["n_embd"], cfg["n_layer"]
    shapes = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (P, C),
              "transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,)}
    for i in range(L):
        p = f"transformer.h.{i}."
        shapes.update({
            p + "ln_1.weight": (C,), p + "ln_1.bias": (C,),
            p + "attn.c_attn.weight": (C, 3 * C), p + "attn.c_attn.bias": (3 * C,),
            p + "attn.c_proj.weight": (C, C), p + "attn.c_proj.bias": (C,),
            p + "ln_2.weight": (C,), p + "ln_2.bias": (C,),
            p + "mlp.c_fc.weight": (C, 4 * C), p + "mlp.c_fc.bias": (4 * C,),
            p + "mlp.c_proj.weight": (4 * C, C), p + "mlp.c_proj.bias": (C,),
        })
    if not cfg["tied"] or "lm_head.weight" in entries:
        shapes["lm_head.weight"] = (V, C)
    w = {name: load_f32(path, entries, data, name, shape) for name, shape in shapes.items()}
    if cfg["tied"] and "lm_head.weight" in w and not np.array_equal(w["lm_head.weight"], w["transformer.wte.weight"]):
        raise CheckError(f"{path}: tie_word_embeddings is true but lm_head.weight differs from transformer.wte.weight")
    # Hugging Face's attention-mask buffers (attn.bias, attn.masked_bias) are not weights
    extra = sorted(n for n in entries if n not in shapes
                   and not n.endswith((".attn.bias", ".attn.masked_bias")))
    if extra:
        print(f"{PROG}: note: {path}: ignoring {len(extra)} tensor(s) GPT-2 does not use: "
              + ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else ""), file=sys.stderr)
    return w


def gpt2_logits(w, cfg, ids):
    """float64 logits, shape (len(ids), vocab_size)."""
    T = len(ids)
    x = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][:T]
    for i in range(cfg["n_layer"]):
        p = f"transformer.h.{i}."
        h = layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], cfg["eps"])
        x = x + causal_self_attention(h, w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"],
                                      w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"], cfg["n_head"])
        h = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], cfg["eps"])
        h = gelu(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"], ACTIVATIONS[cfg["activation"]])
        x = x + h @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = layer_norm(x, w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], cfg["eps"])
    head = w["transformer.wte.weight"] if cfg["tied"] else w["lm_head.weight"]
    return x @ head.T


# ----------------------------------------------------------------------------- comparing


def transformers_logits(ckpt_dir, ids):
    """(logits, description) from transformers' GPT2LMHeadModel in float32; (None, reason) when
    transformers is not importable; raises CheckError when it is but cannot run the checkpoint."""
    try:
        import torch
        import transformers
    except Exception as e:  # ImportError, or a broken install
        return None, f"{type(e).__name__}: {e}"
    try:
        model = transformers.GPT2LMHeadModel.from_pretrained(ckpt_dir).float().eval()
        with torch.no_grad():
            out = model(torch.tensor([ids], dtype=torch.long)).logits[0]
    except Exception as e:
        raise CheckError(f"transformers {transformers.__version__} could not run {ckpt_dir}: {type(e).__name__}: {e}")
    return out.double().numpy(), f"transformers {transformers.__version__}"


def compare(name, got, ref, tol):
    """Prints one line comparing `got` with the float64 reference; returns whether it passes."""
    diff = float(np.max(np.abs(got - ref)))
    scale = float(np.max(np.abs(ref)))
    rel = diff / max(scale, 1e-30)
    ok = rel <= tol  # also False for NaN
    agree = int(np.sum(np.argmax(got, axis=1) == np.argmax(ref, axis=1)))
    print(f"{name} vs reference: max |diff| {diff:.3e}, max |logit| {scale:.4g}, relative {rel:.3e} "
          f"(tol {tol:g}), argmax agrees at {agree}/{len(ref)} positions: {'OK' if ok else 'FAIL'}")
    return ok


def parse_ids(text):
    try:
        ids = [int(t) for t in text.replace(" ", "").split(",") if t != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--ids wants comma-separated integers, got {text!r}")
    if not ids:
        raise argparse.ArgumentTypeError("--ids is empty")
    return ids


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description="Check a GPT-2 layout checkpoint against the C model's logits (see the module docstring).")
    parser.add_argument("ckpt_dir", metavar="CKPT_DIR")
    parser.add_argument("--ids", required=True, type=parse_ids, metavar="1,5,2,...")
    parser.add_argument("--logits", metavar="FILE", help="raw little-endian float32 logits, (len(ids), vocab_size)")
    parser.add_argument("--tol", type=float, default=1e-4, help="relative tolerance (default 1e-4)")
    parser.add_argument("--top", type=int, default=5, help="logits printed per position without --logits")
    args = parser.parse_args(argv)

    try:
        cfg = read_config(os.path.join(args.ckpt_dir, "config.json"))
        ids = args.ids
        if len(ids) > cfg["n_positions"]:
            raise CheckError(f"{len(ids)} ids but n_positions is {cfg['n_positions']}")
        bad = [i for i in ids if not 0 <= i < cfg["vocab_size"]]
        if bad:
            raise CheckError(f"ids {bad[:5]} outside [0, vocab_size {cfg['vocab_size']})")
        weights = load_weights(os.path.join(args.ckpt_dir, "model.safetensors"), cfg)
        c_logits = None
        if args.logits:
            try:
                raw = open(args.logits, "rb").read()
            except OSError as e:
                raise CheckError(f"{args.logits}: cannot read: {e.strerror}")
            want = len(ids) * cfg["vocab_size"] * 4
            if len(raw) != want:
                raise CheckError(f"{args.logits}: {len(raw)} bytes, expected {want} "
                                 f"({len(ids)} ids x vocab_size {cfg['vocab_size']} x 4-byte float32)")
            c_logits = np.frombuffer(raw, dtype="<f4").reshape(len(ids), cfg["vocab_size"]).astype(np.float64)
    except CheckError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2

    print(f"checkpoint {args.ckpt_dir}: n_layer {cfg['n_layer']}, n_head {cfg['n_head']}, n_embd {cfg['n_embd']}, "
          f"vocab_size {cfg['vocab_size']}, n_positions {cfg['n_positions']}, {cfg['activation']}, "
          f"eps {cfg['eps']:g}, {'tied' if cfg['tied'] else 'untied'} output weights; {len(ids)} ids")
    ref = gpt2_logits(weights, cfg, ids)
    passed = True

    if c_logits is None:
        k = max(1, min(args.top, cfg["vocab_size"]))
        for t, row in enumerate(ref):
            top = np.argsort(-row, kind="stable")[:k]
            print(f"pos {t:3d} id {ids[t]:6d} -> argmax {top[0]:6d} | "
                  + "  ".join(f"{j}:{row[j]:.4f}" for j in top))
    else:
        passed &= compare(f"C logits ({args.logits})", c_logits, ref, args.tol)

    try:
        hf, note = transformers_logits(args.ckpt_dir, ids)
    except CheckError as e:
        print(f"transformers: FAIL: {e}")
        hf, note, passed = None, None, False
    if hf is None and note is not None:
        print(f"transformers: skipped (not importable: {note})")
    elif hf is not None:
        passed &= compare(f"GPT2LMHeadModel ({note}, float32)", hf, ref, args.tol)
        if c_logits is not None:
            diff = float(np.max(np.abs(c_logits - hf)))
            print(f"C logits vs GPT2LMHeadModel: max |diff| {diff:.3e}, relative "
                  f"{diff / max(float(np.max(np.abs(hf))), 1e-30):.3e}")
    if c_logits is None and hf is None and passed:
        print("nothing compared (no --logits, no transformers)")
    else:
        print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
