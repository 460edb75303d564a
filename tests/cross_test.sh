#!/usr/bin/env bash
# cross_test.sh: the aarch64 build (make cross-build, in $CROSS_DIR) proven under
# qemu-aarch64 on this machine, with no ARM hardware (docs/testing.md, "ARM under
# emulation"). Run by `make cross-test`, which installs the toolchain and builds first.
#   1. objdump: the matmul tile of the aarch64 build is NEON, fmla on v*.4s
#   2. tests/test_kernels, test_model, test_training under qemu: finite differences,
#      fast against reference, determinism (the suites' own thread checks included)
#   3. ./prepare, ./train (20 steps of a 2-layer n_embd 32 model on the first 50 KB
#      of Tiny Shakespeare: the loss falls; on 2 threads the same log.csv; on the
#      reference kernels the same losses), ./sample and ./embeddings on its checkpoint
# Prints PASS/FAIL lines and closes with "N passed, N failed". Timings under qemu
# are those of an emulator: no measure of speed on ARM.
set -u
. "$(dirname "$0")/lib.sh" cross
CROSS=${CROSS:-aarch64-linux-gnu-}
CROSS_DIR=${CROSS_DIR:-build/aarch64}
QEMU=${QEMU:-qemu-aarch64}
start=$SECONDS
# every emulated run under a time limit: a hang (see docs/testing.md) fails, not stalls
emu() { timeout "${CROSS_TIMEOUT:-600}" "$QEMU" "$@"; }

for tool in "${CROSS}objdump" "$QEMU"; do
    command -v "$tool" > /dev/null || { echo "FAIL cross: $tool not found (scripts/install_cross_deps.sh)"; exit 1; }
done
for bin in train prepare sample embeddings reference/train tests/test_kernels tests/test_model tests/test_training; do
    [ -x "$CROSS_DIR/$bin" ] || { echo "FAIL cross: $CROSS_DIR/$bin not built (make cross-build)"; exit 1; }
done
file_of() { file -b "$1" 2>/dev/null | cut -d, -f1-2; }
echo "== aarch64 binaries: $(file_of "$CROSS_DIR/train") ($($QEMU --version | head -1))"

# ---- 1. the matmul tile is NEON: fmla on four-float vectors ----
# The tile is a static function (or inlined into one); count the vector fmla in every
# function of matmul.o named tile* or gemm*.
dis=$("${CROSS}objdump" -d --no-show-raw-insn "$CROSS_DIR/kernels/fast/matmul.o")
fmla=$(awk '/^[0-9a-f]+ <.*>:$/ { fn = $2; gsub(/[<>:]/, "", fn) }
            fn ~ /^(tile|gemm)/ && /\tfmla\t/ && /v[0-9]+\.4s/ { n[fn]++ }
            END { for (f in n) printf "%s: %d\n", f, n[f] }' <<< "$dis" | sort)
if [ -n "$fmla" ]; then
    ok "objdump: the matmul tile is NEON fmla on v*.4s ($(tr '\n' ' ' <<< "$fmla" | sed 's/ $//'))"
    awk '/^[0-9a-f]+ <(tile|gemm)/ { on = 1 } /^$/ { on = 0 } on && /\tfmla\t/ && /v[0-9]+\.4s/ { print "    " $0; if (++k == 3) exit }' <<< "$dis"
else
    bad "objdump" "no fmla on v*.4s registers in the tile or gemm functions of $CROSS_DIR/kernels/fast/matmul.o"
fi

# ---- 2. the C suites under qemu ----
# One thread by default (the kernels' threads only slow emulation down); the suites'
# determinism tests set 2 to 4 threads themselves. OMP_WAIT_POLICY=passive: threads
# waiting at a barrier sleep instead of spinning, which under emulation costs seconds.
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
for suite in tests/test_kernels tests/test_model tests/test_training; do
    t0=$SECONDS
    out=$(emu "$CROSS_DIR/$suite" 2>&1); rc=$?
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' <<< "$out")
    s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' <<< "$out")
    if [ $rc -eq 0 ] && [ -n "$p" ]; then
        ok "$suite under qemu-aarch64: $p tests passed${s:+ ($s skipped)} in $((SECONDS - t0)) s"
    else
        echo "$out" | grep -E '^\[  (FAILED|ERROR) |^\[  FAILED  \]|error|Error' | head -20
        bad "$suite under qemu-aarch64" "exit $rc ($(tail -1 <<< "$out"))"
    fi
done

# ---- 3. the programs: prepare, train 20 steps, sample, embeddings ----
head -c 50000 "$corpus" > "$tmp/ts50k.txt"
small_conf "$tmp/cross.conf" "max_iters = 20" "lr_decay_iters = 20" "eval_interval = 20" "sample_tokens = 0" \
    "learning_rate = 1e-2"
over=(--input="$tmp/ts50k.txt" --warmup_iters=2 --log_interval=1)
if emu "$CROSS_DIR/prepare" "$tmp/cross.conf" "${over[@]}" > "$tmp/prepare.out" 2>&1; then
    ok "prepare: $(head -1 "$tmp/prepare.out")"
else bad "prepare" "exit $? ($(tail -2 "$tmp/prepare.out"))"; fi
t0=$SECONDS
if emu "$CROSS_DIR/train" "$tmp/cross.conf" "${over[@]}" --out_dir="$tmp/out" > "$tmp/train.out" 2>&1; then
    # log.csv: step,lr,train_loss,val_loss,...: the loss of step 1 and step 20's batch, and
    # the validation loss at steps 0 and 20 (one thread: the same numbers every run)
    first=$(awk -F, 'NR > 1 && $3 != "" { print $1, $3; exit }' "$tmp/out/log.csv")
    last=$(awk -F, 'NR > 1 && $3 != "" { l = $1 " " $3 } END { print l }' "$tmp/out/log.csv")
    val=$(awk -F, 'NR > 1 && $4 != "" { printf "%s%s", (n++ ? " " : ""), $4 }' "$tmp/out/log.csv")
    set -- $val
    if [ -n "$first" ] && [ "${last% *}" = 20 ] && [ $# -eq 2 ] &&
       awk -v a="${first#* }" -v b="${last#* }" -v v0="$1" -v v1="$2" 'BEGIN { exit !(b < a - 0.4 && v1 < v0 - 0.4) }'; then
        ok "train: 20 steps under qemu learn: loss ${first#* } at step ${first% *}, ${last#* } at step 20; val loss $1 -> $2 ($((SECONDS - t0)) s)"
    else bad "train" "the loss did not fall by 0.4: step ${first:-?} -> ${last:-?}, val $val: $(head -4 "$tmp/out/log.csv")"; fi
else bad "train" "exit $? ($(tail -3 "$tmp/train.out"))"; fi
# the same run on 2 threads: the same log.csv (all but the timing columns), bit for bit;
# and on the reference kernels alone: the same train losses within 1e-4 relative
cols() { cut -d, -f1-5,8,9 "$1"; }
if OMP_NUM_THREADS=2 emu "$CROSS_DIR/train" "$tmp/cross.conf" "${over[@]}" --out_dir="$tmp/out2" > "$tmp/train2.out" 2>&1 &&
   cmp -s <(cols "$tmp/out/log.csv") <(cols "$tmp/out2/log.csv"); then
    ok "train on 2 threads under qemu: log.csv identical to 1 thread's ($(wc -l < "$tmp/out2/log.csv") lines)"
else bad "train on 2 threads" "log.csv differs or the run failed: $(diff <(cols "$tmp/out/log.csv") <(cols "$tmp/out2/log.csv") 2>&1 | head -3)"; fi
if emu "$CROSS_DIR/reference/train" "$tmp/cross.conf" "${over[@]}" --out_dir="$tmp/ref" > "$tmp/ref.out" 2>&1; then
    report=$(paste -d, <(awk -F, 'NR > 1 && $3 != "" { print $1 "," $3 }' "$tmp/out/log.csv") \
                       <(awk -F, 'NR > 1 && $3 != "" { print $3 }' "$tmp/ref/log.csv") |
             awk -F, '{ d = $2 - $3; d = d < 0 ? -d : d; r = d / ($3 < 0 ? -$3 : $3); if (r > worst) worst = r;
                        if (r > 1e-4 || $3 == "") bad = bad " step " $1 ": " $2 " vs " $3; n++ }
                      END { printf "%d %.2e%s", n, worst, bad }')
    read -r steps worst rest <<< "$report"
    if [ "$steps" = 20 ] && [ -z "$rest" ]; then
        ok "train on the reference kernels under qemu: the 20 train losses within $worst relative of the fast kernels'"
    else bad "reference train" "$steps steps, worst $worst:$rest"; fi
else bad "reference train" "exit $? ($(tail -3 "$tmp/ref.out"))"; fi
if emu "$CROSS_DIR/sample" "$tmp/out" --seed=1 --max_new_tokens=60 > "$tmp/sample.out" 2> "$tmp/sample.err" &&
   [ "$(wc -c < "$tmp/sample.out")" -ge 60 ]; then
    ok "sample: 60 tokens from the checkpoint: $(head -c 60 "$tmp/sample.out" | tr '\n' ' ')"
else bad "sample" "$(tail -2 "$tmp/sample.err")"; fi
if emu "$CROSS_DIR/embeddings" "$tmp/out" neighbors e --k=3 > "$tmp/emb.out" 2>&1 && [ "$(wc -l < "$tmp/emb.out")" -eq 3 ]; then
    ok "embeddings: neighbors of 'e': $(tr '\n' ' ' < "$tmp/emb.out")"
else bad "embeddings" "$(tail -2 "$tmp/emb.out")"; fi

echo "cross-test: $pass passed, $fail failed in $((SECONDS - start)) s under qemu-aarch64 (emulated: these times are no measure of ARM speed)"
[ "$fail" -eq 0 ]
