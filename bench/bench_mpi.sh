#!/usr/bin/env bash
# bench_mpi.sh: data-parallel scaling on this machine, one global batch of 12 x 64 tokens
# (the default config) split three ways: 1 rank x 1 thread, 2 ranks x 1 thread (batch_size 6
# each), 1 rank x 2 threads. Needs `make MPI=1`. Prints a markdown table (docs/mpi.md).
#   bench/bench_mpi.sh [STEPS] [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-300}; repeats=${2:-3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# ms/step of training (evaluations excluded: the done line's figure), the median of the repeats
run() {  # run RANKS THREADS BATCH
    local ms=()
    for _ in $(seq "$repeats"); do
        rm -rf "$tmp/out"  # ./train refuses to start over the last repeat's run
        out=$(OMP_NUM_THREADS=$2 mpirun -np "$1" --bind-to none -x OMP_NUM_THREADS ./train \
              configs/shakespeare_char.conf --batch_size="$3" --max_iters="$steps" --eval_interval="$steps" \
              --eval_iters=5 --sample_tokens=0 --out_dir="$tmp/out" 2>&1)
        ms+=("$(sed -n 's/.*wall (\([0-9.]*\) ms\/step training).*/\1/p' <<< "$out")")
    done
    printf '%s\n' "${ms[@]}" | sort -n | sed -n "$(( (repeats + 1) / 2 ))p"
}
one=$(run 1 1 12); two_ranks=$(run 2 1 6); two_threads=$(run 1 2 12)
echo "| ranks x threads | batch_size per rank | ms/step (median of $repeats runs of $steps steps) | tokens/s | speed-up over 1 x 1 |"
echo "|---|---|---|---|---|"
for row in "1 x 1|12|$one" "2 x 1|6|$two_ranks" "1 x 2|12|$two_threads"; do
    IFS='|' read -r rt b ms <<< "$row"
    awk -v rt="$rt" -v b="$b" -v ms="$ms" -v base="$one" \
        'BEGIN { printf "| %s | %s | %.1f | %.0f | %.2fx |\n", rt, b, ms, 768 / (ms / 1000), base / ms }'
done
