#!/usr/bin/env bash
# tests/test_bench_peer.sh: the benchmark's PyTorch peer (bench/bench_torch.py) picks
# torch's fused attention and AdamW where they exist, and checks the fused attention
# against the written-out one before it times anything.
#
# Debian's torch (1.13) has neither F.scaled_dot_product_attention nor a fused AdamW, and
# a lent machine's torch 2.x has both. So that these paths run here, each case starts the
# peer under a stand-in installed before it loads: an SDPA (right; without the causal
# mask; without the 1/sqrt(hs) scale) or none at all, and an AdamW that takes fused=; or
# numpy made unimportable, as on a machine whose torch came without it.
# A right stand-in must give the written-out model's loss; a wrong one must stop the run.
. "$(dirname "$0")/lib.sh" bench_peer

# a model small enough to start in a second; three timed steps
tiny=(configs/bench_baby.conf --n_layer=1 --n_head=2 --n_embd=32 --block_size=16 --batch_size=2
      --steps=3 --warmup=1 --eval_reps=1 --threads=1)

# peer CASE ARGS...: bench_torch.py under the stand-ins of CASE; output in $tmp/CASE.log
peer() {
    local case=$1; shift
    STAND_IN=$case "$PYTHON" - "$@" >"$tmp/$case.log" 2>&1 <<'EOF'
import math, os, runpy, sys
import torch
import torch.nn.functional as F

def attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """torch's documented SDPA semantics, written out; a stand-in may drop the mask or the scale."""
    scores = q @ k.transpose(-2, -1)
    if case != "sdpa-unscaled":
        scores = scores / math.sqrt(q.shape[-1])
    if is_causal and case != "sdpa-noncausal":
        T, S = q.shape[-2], k.shape[-2]
        scores = scores.masked_fill(torch.ones(T, S, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v

class AdamW(torch.optim.AdamW):
    """Takes fused= as torch 2.4 does on the CPU, and runs the default update."""
    def __init__(self, *args, fused=False, **kw):
        super().__init__(*args, **kw)

case = os.environ["STAND_IN"]
if case == "no-numpy":
    sys.modules["numpy"] = None  # an import of numpy now fails, as where torch came without it
if hasattr(F, "scaled_dot_product_attention"):
    del F.scaled_dot_product_attention
if case.startswith("sdpa"):
    F.scaled_dot_product_attention = attention
    torch.optim.AdamW = AdamW
sys.argv = ["bench/bench_torch.py"] + sys.argv[1:]
runpy.run_path("bench/bench_torch.py", run_name="__main__")
EOF
}
last() { grep '^bench impl=' "$tmp/$1.log"; }
first_loss() { sed -n 's/^loss: \([0-9.]*\) at step 1,.*/\1/p' "$tmp/$1.log"; }

if peer none "${tiny[@]}" && [[ $(last none) == *" attention=manual adamw=default" ]]; then
    ok "without F.scaled_dot_product_attention nor a fused AdamW: the written-out attention, the default AdamW"
else
    bad "peer without the fused kernels" "$(tail -n 3 "$tmp/none.log")"
fi

if peer no-numpy "${tiny[@]}" && [[ -n $(last no-numpy) ]]; then
    ok "the peer runs where numpy cannot be imported (torch_gpt.py needs torch alone)"
else
    bad "the peer without numpy" "$(tail -n 3 "$tmp/no-numpy.log")"
fi

if peer sdpa "${tiny[@]}" && [[ $(last sdpa) == *" attention=sdpa adamw=fused" ]] &&
   grep -q '^attention: F.scaled_dot_product_attention(is_causal=True), within 0 ' "$tmp/sdpa.log"; then
    ok "with both (tuned): SDPA, checked against the written-out attention, and AdamW(fused=True)"
else
    bad "peer with the fused kernels" "$(tail -n 3 "$tmp/sdpa.log")"
fi

# the same seed and init, so the same model: the first step's loss must not depend on the path
l_none=$(first_loss none) l_sdpa=$(first_loss sdpa)
if [[ -n $l_none && $l_none == "$l_sdpa" ]]; then
    ok "SDPA's model is the written-out model: the first loss $l_sdpa both ways"
else
    bad "first loss" "written out '$l_none', SDPA '$l_sdpa'"
fi

if peer sdpa-installed "${tiny[@]}" --setup=installed && [[ $(last sdpa-installed) == *" attention=sdpa adamw=default" ]]; then
    ok "as installed: SDPA (model code), the default AdamW (a setting)"
else
    bad "peer as installed" "$(tail -n 3 "$tmp/sdpa-installed.log")"
fi

if peer sdpa-manual "${tiny[@]}" --attention=manual && [[ $(last sdpa-manual) == *" attention=manual "* ]]; then
    ok "--attention=manual: the written-out attention where SDPA exists"
else
    bad "--attention=manual" "$(tail -n 3 "$tmp/sdpa-manual.log")"
fi

for wrong in sdpa-noncausal sdpa-unscaled; do
    if ! peer "$wrong" "${tiny[@]}" && grep -q "differs from the written-out causal softmax" "$tmp/$wrong.log" &&
       ! grep -q '^bench impl=' "$tmp/$wrong.log"; then
        ok "a wrong SDPA ($wrong) stops the run before timing: $(grep -o 'by [0-9.e+-]* (relative max' "$tmp/$wrong.log")"
    else
        bad "a wrong SDPA ($wrong)" "$(tail -n 3 "$tmp/$wrong.log")"
    fi
done

if ! peer none "${tiny[@]}" --attention=sdpa && grep -q "has no F.scaled_dot_product_attention" "$tmp/none.log"; then
    ok "--attention=sdpa without it: an error naming what is missing"
else
    bad "--attention=sdpa without it" "$(tail -n 3 "$tmp/none.log")"
fi

if ! peer none "${tiny[@]}" --attention=fused && grep -q "error: --attention expects auto or sdpa or manual, got 'fused'" "$tmp/none.log"; then
    ok "--attention=fused: an error naming the choices"
else
    bad "--attention=fused" "$(tail -n 3 "$tmp/none.log")"
fi

echo "bench_peer: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
