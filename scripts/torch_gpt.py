#!/usr/bin/python3
"""nanoGPT's GPT in PyTorch, written out: the model that the parity check
(tests/pytorch_reference.py), the PyTorch trainer (scripts/pytorch_train.py) and the
benchmark's peer (bench/bench_torch.py) share, with nanoGPT's learning-rate schedule and
the config reader. It needs torch alone (no numpy), so that the peer runs on a machine whose
torch came without it.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm(nn.Module):
    """nn.LayerNorm with an optional bias (torch 1.13's has none to turn off)."""
    def __init__(self, C, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))
        self.bias = nn.Parameter(torch.zeros(C)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    """sdpa: torch's fused F.scaled_dot_product_attention(is_causal=True) (torch 2.0 and
    later; nanoGPT's choice there) in place of the masked softmax written out below. The
    parity check uses the written-out form; the benchmark's peer uses the fused one where
    torch has it (bench/bench_torch.py)."""
    def __init__(self, C, n_head, bias, sdpa=False, rope=None):
        super().__init__()
        self.n_head = n_head
        self.sdpa = sdpa
        self.rope = rope  # None, or the (block_size, hs/2, 2) cos/sin table of rotary positions
        self.qkv = nn.Linear(C, 3 * C, bias=bias)      # fused q, k, v (rows q then k then v)
        self.proj = nn.Linear(C, C, bias=bias)

    def forward(self, x):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, NH, T, hs)
        q, k, v = (u.view(B, T, self.n_head, hs).transpose(1, 2) for u in (q, k, v))
        if self.rope is not None:
            q, k = rotate(q, self.rope[:T]), rotate(k, self.rope[:T])
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(y.transpose(1, 2).reshape(B, T, C))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)  # key s > query t
        scores = scores.masked_fill(future, float("-inf"))
        att = torch.softmax(scores, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, C, n_head, bias, sdpa=False, rope=None):
        super().__init__()
        self.ln1 = LayerNorm(C, bias)
        self.attn = CausalSelfAttention(C, n_head, bias, sdpa, rope)
        self.ln2 = LayerNorm(C, bias)
        self.fc = nn.Linear(C, 4 * C, bias=bias)
        self.fcproj = nn.Linear(4 * C, C, bias=bias)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


def rope_table(T, hs, base=10000.0):
    """(T, hs/2, 2): cos and sin of t * base^(-2i/hs), in float64 then rounded to float32 as C does."""
    t = torch.arange(T, dtype=torch.float64)[:, None]
    i = torch.arange(hs // 2, dtype=torch.float64)[None, :]
    angle = t * torch.pow(torch.tensor(base, dtype=torch.float64), -2.0 * i / hs)
    return torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1).float()


def rotate(x, cs):
    """Rotary positions on x (B, NH, T, hs): each pair (x_2i, x_2i+1) of position t turned by
    its angle: (a cos - b sin, a sin + b cos)."""
    cos, sin = cs[..., 0].to(x.dtype), cs[..., 1].to(x.dtype)   # (T, hs/2)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)


def sinusoid_table(T, C):
    """PE[t, 2i] = sin(t / 10000^(2i/C)), PE[t, 2i+1] = cos(t / 10000^(2i/C)), in float64."""
    t = torch.arange(T, dtype=torch.float64)[:, None]
    i2 = torch.arange(0, C, 2, dtype=torch.float64)[None, :]
    angle = t / torch.pow(torch.tensor(10000.0, dtype=torch.float64), i2 / C)
    pe = torch.zeros(T, C, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe


class GPT(nn.Module):
    def __init__(self, V, block_size, n_layer, n_head, C, pos, tied, embed_scale, bias, sdpa=False, embed_rank=0):
        """pos: "learned", "sinusoidal", "none" (no positions at all) or "rope" (rotary, on q and k).
        embed_rank r > 0: E = A B, A = wte_a (V, r), B = wte_b^T with wte_b (C, r) as nn.Linear(r, C)
        stores its weight, as ALBERT factorises the embedding; tied, logits = h (A B)^T."""
        super().__init__()
        if pos not in ("learned", "sinusoidal", "none", "rope"):
            raise ValueError(f"pos must be learned, sinusoidal, none or rope, not {pos!r}")
        self.embed_scale = embed_scale
        self.tied = tied
        self.embed_rank = embed_rank
        if embed_rank:
            self.wte = None
            self.wte_a = nn.Parameter(torch.zeros(V, embed_rank))
            self.wte_b = nn.Parameter(torch.zeros(C, embed_rank))
        else:
            self.wte = nn.Parameter(torch.zeros(V, C))
            self.wte_a = self.wte_b = None
        if pos in ("none", "rope"):
            self.wpe = None
        elif pos == "sinusoidal":
            # fixed, not trained; rounded to float32 as C stores it, also in the float64
            # run, so that run measures the arithmetic and not the table's rounding
            self.register_buffer("wpe", sinusoid_table(block_size, C).float())
        else:
            self.wpe = nn.Parameter(torch.zeros(block_size, C))
        rope = rope_table(block_size, C // n_head) if pos == "rope" else None
        self.blocks = nn.ModuleList(Block(C, n_head, bias, sdpa, rope) for _ in range(n_layer))
        self.lnf = LayerNorm(C, bias)
        # tied: the output layer is wte itself (one Parameter, both gradients add up)
        self.lm_head = None if tied else nn.Linear(C, V, bias=False)

    def embedding(self):
        """E (V, C): wte, or A B = wte_a wte_b^T."""
        return self.wte if self.wte is not None else self.wte_a @ self.wte_b.t()

    def forward(self, ids, targets, token_keep=None, E=None):
        """token_keep: None, or (B, T) factors for each position's token embedding
        (embed_dropout: 0 for a dropped position, 1/(1-p) for a kept one).
        E: None, or a (V, C) tensor used as the embedding in place of self.embedding()
        (a leaf of its own gives the parity check dE)."""
        T = ids.shape[1]
        if E is None:
            E = self.embedding()
        x = self.embed_scale * E[ids]
        if token_keep is not None:
            x = x * token_keep.to(x.dtype)[..., None]
        if self.wpe is not None:
            x = x + self.wpe[:T]
        for block in self.blocks:
            x = block(x)
        h = self.lnf(x)
        logits = h @ E.t() if self.tied else self.lm_head(h)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return logits, loss


def tensor_map(model):
    """(C tensor name, layer or None, torch Parameter) for every trained tensor."""
    out = [("wte", None, model.wte), ("wte_a", None, model.wte_a), ("wte_b", None, model.wte_b)]
    if isinstance(model.wpe, nn.Parameter):
        out.append(("wpe", None, model.wpe))
    for l, b in enumerate(model.blocks):
        out += [("ln1w", l, b.ln1.weight), ("ln1b", l, b.ln1.bias),
                ("qkvw", l, b.attn.qkv.weight), ("qkvb", l, b.attn.qkv.bias),
                ("attprojw", l, b.attn.proj.weight), ("attprojb", l, b.attn.proj.bias),
                ("ln2w", l, b.ln2.weight), ("ln2b", l, b.ln2.bias),
                ("fcw", l, b.fc.weight), ("fcb", l, b.fc.bias),
                ("fcprojw", l, b.fcproj.weight), ("fcprojb", l, b.fcproj.bias)]
    out += [("lnfw", None, model.lnf.weight), ("lnfb", None, model.lnf.bias)]
    if model.lm_head is not None:
        out.append(("lm_head", None, model.lm_head.weight))
    return [t for t in out if t[2] is not None]  # without biases (bias = 0), or E's factors, they are None


INIT_STD = 0.02  # GPT-2's init, as model.c's


def gpt2_init(model, n_layer):
    """GPT-2's init, as the C model's: matrices N(0, 0.02), the residual projections'
    std divided by sqrt(2 n_layer), biases 0 (nn.Linear would start them uniform in
    +-1/sqrt(fan_in)); layer norms keep their 1 and 0; E's factors (embed_rank r) each
    N(0, sqrt(0.02 / sqrt(r))), so that A B has E's 0.02. Draws from torch's global RNG."""
    with torch.no_grad():
        for name, _, p in tensor_map(model):
            if name in ("wte_a", "wte_b"):
                p.normal_(0.0, math.sqrt(INIT_STD / math.sqrt(model.embed_rank)))
            elif p.dim() >= 2:
                p.normal_(0.0, INIT_STD / math.sqrt(2 * n_layer) if name in ("attprojw", "fcprojw") else INIT_STD)
            elif name.endswith("b"):
                p.zero_()


def param_groups(params, weight_decay):
    """nanoGPT's two AdamW groups: weight decay on the matrices, none on vectors."""
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def get_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    """nanoGPT's schedule: linear warmup, cosine decay to min_lr, then min_lr."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


def read_config(path, overrides):
    """A config file's key = value pairs (comments after #), then the overrides."""
    cfg = {}
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if line:
            k, v = (s.strip() for s in line.split("=", 1))
            cfg[k] = v
    cfg.update(overrides)
    return cfg
