#!/usr/bin/python3
"""Train the same recipe in PyTorch, independently of the C trainer's RNG.

The parity test (tests/test_parity.sh) shows that the C model computes what a
PyTorch model computes on the same weights and batches. This script checks the
recipe as a whole: it reads a config (configs/*.conf), initialises a model
with torch's own RNG (GPT-2 init), draws batches with torch.randint over the
same token files as nanoGPT's get_batch does, and trains with
torch.optim.AdamW, nanoGPT's schedule and clip_grad_norm_. Its val loss
over seeds is the distribution the C trainer's val loss should fall in.

Usage: /usr/bin/python3 scripts/pytorch_train.py CONFIG TRAIN_BIN VAL_BIN
           [--seed=N] [--key=value ...] [--threads=N] [--csv=PATH]
TRAIN_BIN / VAL_BIN: the token files ./train prepared (data/cache/*.train.bin, *.val.bin).
"""
import sys
import time

import numpy as np
import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from torch_gpt import GPT, get_lr, gpt2_init, param_groups, read_config, tensor_map  # noqa: E402

def read_tokens(path):
    header = np.fromfile(path, dtype=np.int32, count=256)
    assert header[0] == 20240520 and header[1] == 1, f"{path}: not a token file"
    return torch.from_numpy(np.fromfile(path, dtype=np.uint16, offset=1024).astype(np.int64)), int(header[3])


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
    threads = int(opts.pop("threads", torch.get_num_threads()))
    csv = opts.pop("csv", None)
    cfg = read_config(args[0], opts)
    train, V = read_tokens(args[1])
    val, _ = read_tokens(args[2])
    torch.set_num_threads(threads)
    torch.manual_seed(int(cfg["seed"]))
    geti = lambda k: int(cfg[k])
    getf = lambda k: float(cfg[k])
    L, C, T, B = geti("n_layer"), geti("n_embd"), geti("block_size"), geti("batch_size")
    bias = cfg.get("bias", "true") == "true"
    tied = cfg.get("tie_weights", "true") == "true"
    assert cfg.get("pos_encoding", "learned") == "learned", "this script trains learned positions only"
    model = GPT(V, T, L, geti("n_head"), C, "learned", tied, 1.0, bias)
    params = [p for _, _, p in tensor_map(model)]
    gpt2_init(model, L)
    opt = torch.optim.AdamW(param_groups(params, getf("weight_decay")), lr=getf("learning_rate"),
                            betas=(getf("beta1"), getf("beta2")), eps=1e-8)

    def batch(data):
        ix = torch.randint(len(data) - T, (B,))
        x = torch.stack([data[i:i + T] for i in ix])
        y = torch.stack([data[i + 1:i + 1 + T] for i in ix])
        return x, y

    @torch.no_grad()
    def evaluate(data):
        return float(np.mean([model(*batch(data))[1].item() for _ in range(geti("eval_iters"))]))

    rows, t0 = [], time.time()
    for step in range(geti("max_iters") + 1):
        if step % geti("eval_interval") == 0 or step == geti("max_iters"):
            tl, vl = evaluate(train), evaluate(val)
            rows.append((step, tl, vl))
            print(f"step {step}: train loss {tl:.4f}, val loss {vl:.4f} ({time.time() - t0:.0f} s)", flush=True)
        if step == geti("max_iters"):
            break
        lr = get_lr(step, getf("learning_rate"), getf("min_lr"), geti("warmup_iters"), geti("lr_decay_iters"))
        for g in opt.param_groups:
            g["lr"] = lr
        _, loss = model(*batch(train))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if getf("grad_clip") > 0:
            torch.nn.utils.clip_grad_norm_(params, getf("grad_clip"))
        opt.step()
    if csv:
        with open(csv, "w") as f:
            f.write("step,train_loss,val_loss\n")
            f.writelines(f"{s},{tl:.6f},{vl:.6f}\n" for s, tl, vl in rows)


if __name__ == "__main__":
    main()
