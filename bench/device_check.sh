#!/usr/bin/env bash
# bench/device_check.sh OUT_DIR: the checks for a machine with many cores and PyTorch 2.x
# (e.g. a 16-core Xeon with MKL), in one run of about 7 minutes, its results under OUT_DIR:
#   machine.txt      the CPU, the compiler, torch's build
#   determinism.txt  the default config's first 200 steps on 1, 2 and all threads: log.csv's
#                    md5 (the columns that do not hold times) must be the same on every count;
#                    the script exits 1 at its end where they differ
#   bench.md         make bench on 1, 2 and all threads (BENCH_THREADS="2 N"), without the
#                    block_size sweep and the per-CPU steps: C against PyTorch at 2 and at N
#                    threads, and medium's scaling from 1 to N; there the peer runs torch 2.x's
#                    fused attention (F.scaled_dot_product_attention) and, tuned, AdamW(fused=True)
#                    where that torch has them (bench/bench_torch.py), and bench.md says which
# Such a machine may lack libsentencepiece: everything here builds with SPM=0. The corpus
# comes from data/tinyshakespeare.txt (carry it there), else scripts/get_data.sh's sources;
# without it the determinism check is skipped and says so.
#   DEVICE_THREADS  "all threads" (default: nproc)    PYTHON  the Python with torch (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench/device_check.sh OUT_DIR}
N=${DEVICE_THREADS:-$(nproc)}
export PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
status=0

{
    lscpu
    echo "nproc: $(nproc)"
    ${CC:-gcc} --version | head -n 1
    "$PYTHON" -c 'import torch; print("torch", torch.__version__); print(torch.__config__.show())'
} >"$OUT/machine.txt" 2>&1 || echo "device_check: machine.txt is incomplete (see it)" >&2

make -s SPM=0 -j"$N" train bench/bench_step bench/fma_peak

echo "== determinism: 200 steps of configs/shakespeare_char.conf on 1, 2 and $N threads" | tee "$OUT/determinism.txt"
if [[ -f data/tinyshakespeare.txt ]] || scripts/get_data.sh >/dev/null 2>&1; then
    run_dir=$(mktemp -d)
    trap 'rm -rf "$run_dir"' EXIT
    counts=$(printf '%s\n' 1 2 "$N" | sort -n -u)
    for t in $counts; do
        OMP_NUM_THREADS=$t ./train configs/shakespeare_char.conf --max_iters=200 --eval_interval=100 \
            --out_dir="$run_dir/t$t" >"$OUT/train_t$t.log" 2>&1
        echo "threads $t: $(cut -d, -f1-5,8,9 "$run_dir/t$t/log.csv" | md5sum | cut -d' ' -f1)" | tee -a "$OUT/determinism.txt"
        cp "$run_dir/t$t/log.csv" "$OUT/log_t$t.csv"
    done
    if [[ $(grep '^threads' "$OUT/determinism.txt" | cut -d' ' -f3 | sort -u | wc -l) -eq 1 ]]; then
        echo "the same bits on every thread count" | tee -a "$OUT/determinism.txt"
    else
        echo "DIFFERENT bits across thread counts" | tee -a "$OUT/determinism.txt"
        status=1
    fi
else
    echo "skipped: no data/tinyshakespeare.txt and scripts/get_data.sh found none" | tee -a "$OUT/determinism.txt"
fi

echo "== make bench on 1, 2 and $N threads" >&2
BENCH_THREADS="2 $N" BENCH_SWEEP=0 BENCH_PER_CPU=0 BENCH_OUT="$OUT/bench.md" BENCH_RAW="$OUT/bench_raw" \
    make -s SPM=0 bench
exit $status
