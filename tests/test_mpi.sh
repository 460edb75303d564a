#!/usr/bin/env bash
# test_mpi.sh: data-parallel training over Open MPI (dist.h); run by `make MPI=1 test`.
# np 2 x batch_size 6 against 1 x 12: the same losses within 1e-5 relative over 20 steps
# (with and without dropout, and in batch groups); the same N twice: bit-identical; only rank 0 writes; the
# global batch in config.conf; --resume with the same and with another rank count; a
# rank killed mid-run takes the job down and the run resumes from its last checkpoint; a
# SIGTERM to one rank during an evaluation stops both there, and the run resumes bit for
# bit; a pipe as the input is refused (exit 2).
. "$(dirname "$0")/lib.sh" mpi
if ! command -v mpirun > /dev/null; then
    bad "mpirun" "not found: install openmpi-bin (scripts/install_deps.sh)"; exit 1
fi
# Open MPI refuses to run as root unless told (CI runs as root); in containers its
# shared-memory transport cannot use cross-process copies (CMA): plain copies instead
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
run_np() {  # run_np N OUT_DIR [args...]
    local n=$1 out=$2; shift 2
    OMP_NUM_THREADS=1 mpirun -np "$n" --bind-to none -x OMP_NUM_THREADS ./train "$tmp/conf" \
        --out_dir="$out" "$@" > "$out.txt" 2>&1
}
# the columns that repeat bit for bit (not the timing ones)
fixed() { cut -d, -f1-5,8,9 "$1/log.csv"; }
small_conf "$tmp/conf" "max_iters = 20" "eval_interval = 10" "sample_tokens = 0"

# $1, $2: log.csv files; losses (train_loss, val_loss, train_loss_eval) within 1e-5 relative
close_losses() {
    "$PYTHON" - "$1" "$2" << 'PY'
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:3])
assert len(a) == len(b) == 21, (len(a), len(b))
worst = 0.0
for ra, rb in zip(a, b):
    for k in ("train_loss", "val_loss", "train_loss_eval"):
        if ra[k] or rb[k]:
            x, y = float(ra[k]), float(rb[k])
            worst = max(worst, abs(x - y) / abs(y))
print(f"worst relative difference {worst:.2e}")
sys.exit(0 if worst <= 1e-5 else 1)
PY
}

for drop in 0 0.1; do
    run_np 1 "$tmp/one$drop" --batch_size=12 --dropout=$drop && run_np 2 "$tmp/two$drop" --batch_size=6 --dropout=$drop \
        || { bad "runs (dropout $drop)" "$(tail -5 "$tmp/two$drop.txt" "$tmp/one$drop.txt")"; continue; }
    if msg=$(close_losses "$tmp/one$drop/log.csv" "$tmp/two$drop/log.csv"); then
        ok "np 2 x batch_size 6 = np 1 x 12 over 20 steps, dropout $drop: $msg"
    else
        bad "np 2 x 6 against np 1 x 12, dropout $drop" "$msg"
    fi
done

# Batch groups inside the ranks: each group draws the dropout masks of its rows of the global
# batch (rank offset + group offset), so np 2 x 6 in 3 groups each still follows np 1 x 12.
if ! run_np 2 "$tmp/twog" --batch_size=6 --batch_groups=3 --dropout=0.1; then
    bad "np 2 in batch groups" "$(tail -5 "$tmp/twog.txt")"
elif msg=$(close_losses "$tmp/one0.1/log.csv" "$tmp/twog/log.csv"); then
    ok "np 2 x batch_size 6 in 3 batch groups = np 1 x 12 over 20 steps, dropout 0.1: $msg"
else
    bad "np 2 x 6 in 3 batch groups against np 1 x 12" "$msg"
fi

run_np 2 "$tmp/again" --batch_size=6
if cmp -s <(fixed "$tmp/two0") <(fixed "$tmp/again"); then ok "np 2 twice: log.csv bit-identical"
else bad "np 2 twice" "log.csv differs"; fi

if grep -q "^# global batch: 2 rank(s) x batch_size 6 = 12 windows" "$tmp/two0/config.conf" &&
   grep -q "2 MPI rank(s) x batch_size 6 = global batch 12" "$tmp/two0.txt"; then
    ok "the global batch (2 x 6 = 12) printed and recorded in config.conf"
else bad "global batch" "not in config.conf or the output"; fi
if [ "$(grep -c '^step 20: train loss' "$tmp/two0.txt")" = 1 ] && [ "$(tail -n +2 "$tmp/two0/log.csv" | wc -l)" = 21 ]; then
    ok "rank 0 alone prints and writes (one progress line per step, 21 log rows)"
else bad "rank 0 alone" "output or log.csv repeated"; fi

# resume: the same rank count continues bit for bit; another one warns and goes on
run_np 2 "$tmp/half" --batch_size=6 --max_iters=10 && run_np 2 "$tmp/half" --batch_size=6 --resume
if cmp -s <(fixed "$tmp/two0") <(fixed "$tmp/half"); then ok "np 2 --resume at step 10: log.csv bit-identical to the run without a stop"
else bad "np 2 resume" "$(tail -3 "$tmp/half.txt")"; fi
run_np 2 "$tmp/other" --batch_size=6 --max_iters=10 && run_np 1 "$tmp/other" --batch_size=6 --resume
if grep -q "warning: resume: 1 rank(s) (was 2): the global batch is now 6" "$tmp/other.txt" &&
   [ "$(tail -n 1 "$tmp/other/log.csv" | cut -d, -f1)" = 20 ]; then
    ok "--resume on 1 rank of a 2-rank run: warns that the global batch changed, and finishes"
else bad "resume with another rank count" "$(tail -3 "$tmp/other.txt")"; fi

# a rank killed mid-run: the job stops, the last checkpoint loads, --resume finishes
run_np 2 "$tmp/killed" --batch_size=6 --max_iters=2000 --eval_interval=10 &
job=$!
for _ in $(seq 600); do [ -s "$tmp/killed/last/model.safetensors" ] && break; sleep 0.1; done
victim=$(pgrep -n -f "train $tmp/conf --out_dir=$tmp/killed")
[ -n "$victim" ] && kill -9 "$victim"
wait $job; rc=$?
if [ -n "$victim" ] && [ $rc -ne 0 ] && run_np 2 "$tmp/killed" --batch_size=6 --max_iters=2000 --eval_interval=10 --resume &&
   [ "$(tail -n 1 "$tmp/killed/log.csv" | cut -d, -f1)" = 2000 ]; then
    ok "a rank killed (SIGKILL): mpirun exits $rc, --resume from the last checkpoint ($(grep -o 'resuming from .*: step [0-9]*' "$tmp/killed.txt" | grep -o '[0-9]*$')) reaches step 2000"
else bad "a killed rank" "victim '$victim', mpirun rc $rc; $(tail -3 "$tmp/killed.txt")"; fi

# a signal to one rank during an evaluation: every rank abandons it at the same round (the
# stop is asked of all ranks together between rounds), the checkpoint holds step 10's update,
# and --resume makes the evaluation first and ends bit-identical
run_np 2 "$tmp/evref" --batch_size=6 --eval_iters=1500 || bad "evaluation reference (np 2)" "$(tail -3 "$tmp/evref.txt")"
eval_s=$(sed -n 's/^step 10: .*(eval \([0-9.]*\) s)$/\1/p' "$tmp/evref.txt")
run_np 2 "$tmp/evsig" --batch_size=6 --eval_iters=1500 &
job=$!
for _ in $(seq 3000); do grep -q '^9,' "$tmp/evsig/log.csv" 2> /dev/null && break; sleep 0.01; done
sleep "$(awk -v s="${eval_s:-1}" 'BEGIN { print s / 4 }')"
victim=$(pgrep -n -f "train $tmp/conf --out_dir=$tmp/evsig")
[ -n "$victim" ] && kill -TERM "$victim"
wait $job; rc=$?
row=$(tail -n 1 "$tmp/evsig/log.csv" | cut -d, -f1,4)
if [ -z "$victim" ] || [ $rc -eq 0 ] || ! grep -q "stopped by SIGTERM after step 10 " "$tmp/evsig.txt" || [ "$row" != "10," ]; then
    bad "SIGTERM to one rank during an evaluation" "victim '$victim', mpirun rc $rc, last row '$row': $(tail -3 "$tmp/evsig.txt")"
elif ! run_np 2 "$tmp/evsig" --batch_size=6 --eval_iters=1500 --resume || ! cmp -s <(fixed "$tmp/evref") <(fixed "$tmp/evsig"); then
    bad "np 2 resume after an abandoned evaluation" "$(tail -3 "$tmp/evsig.txt")"
else ok "SIGTERM to one rank during an evaluation ($eval_s s): both ranks stop at step 10 (mpirun exits $rc); --resume makes the evaluation first, log.csv bit-identical"; fi

# a stream as the input: every rank would read it, and it gives its text once: refused
OMP_NUM_THREADS=1 mpirun -np 2 --bind-to none ./train "$tmp/conf" --out_dir="$tmp/stdin" --input=/dev/stdin \
    < "$corpus" > "$tmp/stdin.txt" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q "input = /dev/stdin is not a regular file (a pipe, FIFO or terminal): with 2 MPI ranks" "$tmp/stdin.txt" &&
   [ ! -e "$tmp/stdin" ]; then
    ok "np 2 with --input=/dev/stdin: exit 2, $(grep -m1 -o 'input = /dev/stdin is not.*' "$tmp/stdin.txt" | head -c 160)..."
else bad "np 2 with --input=/dev/stdin" "mpirun rc $rc: $(tail -5 "$tmp/stdin.txt")"; fi

echo "mpi: $pass passed, $fail failed"
[ $fail -eq 0 ]
