#!/usr/bin/env bash
# tests/test_reference.sh: the whole model on the reference kernels
# (kernels/reference/) against the build's (the fast layer by default).
#   - tests/parity_dump on each layer (tests/reference/parity_dump: the reference):
#     on a fixed batch the logits, the loss and every parameter gradient, and
#     10 training steps' losses and gradient norms agree (tests/compare_dumps.py);
#   - the reference layer's dump is the same bytes on 1, 2 and 3 threads;
#   - ./train and tests/reference/train, configs/shakespeare_char.conf for 20
#     steps: the 20 train losses of log.csv agree within 1e-4 relative.
# Builds nothing: `make test` builds ./train, tests/parity_dump,
# tests/reference/train and tests/reference/parity_dump first.
. "$(dirname "$0")/lib.sh" reference

for bin in ./train tests/parity_dump tests/reference/train tests/reference/parity_dump; do
    if [ ! -x "$bin" ]; then
        echo "FAIL reference: $bin is not built (run: make $bin)"
        exit 1
    fi
done

# ---- one forward/backward and 10 steps of the small model, on both layers
for variant in "--pos=learned --tied=1 --bias=1" "--pos=sinusoidal --tied=0 --bias=0" \
               "--pos=learned --tied=1 --bias=1 --embed-rank=8"; do
    name="parity_dump ${variant//--/}"
    if tests/parity_dump "$tmp/build.bin" $variant > "$tmp/build.log" 2>&1 &&
       tests/reference/parity_dump "$tmp/ref.bin" $variant > "$tmp/ref.log" 2>&1; then
        if "$PYTHON" tests/compare_dumps.py "$tmp/build.bin" "$tmp/ref.bin" > "$tmp/compare.log" 2>&1; then
            grep -E 'fixed/loss|grad/qkvw|step/10/loss' "$tmp/compare.log"
            ok "$name: the build's kernels match the reference"
        else
            sed 's/^/  /' "$tmp/compare.log" | grep -v '^  OK$'
            bad "$name" "the build's kernels differ from the reference (above)"
        fi
    else
        cat "$tmp/build.log" "$tmp/ref.log" | tail -n 5
        bad "$name" "a parity_dump failed"
    fi
done

# ---- the reference layer gives the same bits on any number of threads
same=1
for threads in 1 2 3; do
    OMP_NUM_THREADS=$threads tests/reference/parity_dump "$tmp/ref$threads.bin" > /dev/null 2>&1 || same=0
    [ "$threads" -gt 1 ] && ! cmp -s "$tmp/ref1.bin" "$tmp/ref$threads.bin" && same=0
done
if [ $same = 1 ]; then ok "reference parity_dump: the same bytes on 1, 2 and 3 threads"
else bad "reference parity_dump" "its dump differs between 1, 2 and 3 threads"; fi

# ---- 20 training steps of the default config on both layers
args=(configs/shakespeare_char.conf --max_iters=20 --eval_iters=2 --input="$corpus" --data_dir="$tmp/cache")
if ./train "${args[@]}" --out_dir="$tmp/build" > "$tmp/build.log" 2>&1 &&
   tests/reference/train "${args[@]}" --out_dir="$tmp/ref" > "$tmp/ref.log" 2>&1; then
    # train_loss is column 3 of log.csv; its rows for steps 1..20
    report=$(paste -d, <(awk -F, 'NR > 1 && $1 > 0 {print $1 "," $3}' "$tmp/build/log.csv") \
                       <(awk -F, 'NR > 1 && $1 > 0 {print $3}' "$tmp/ref/log.csv") |
             awk -F, '{ d = $2 - $3; d = d < 0 ? -d : d; r = d / ($3 < 0 ? -$3 : $3); if (r > worst) worst = r;
                        if (r > 1e-4) bad = bad " step " $1 ": " $2 " vs " $3; n++ }
                      END { printf "%d %.2e%s", n, worst, bad }')
    read -r steps worst rest <<< "$report"
    echo "  20 steps of configs/shakespeare_char.conf: worst relative difference of train_loss $worst"
    if [ "$steps" = 20 ] && [ -z "$rest" ]; then ok "train 20 steps: reference train losses within 1e-4 of the build's"
    else bad "train 20 steps" "$steps steps compared;$rest"; fi
else
    tail -n 5 "$tmp/build.log" "$tmp/ref.log"
    bad "train 20 steps" "a run failed"
fi

[ $fail -eq 0 ]
