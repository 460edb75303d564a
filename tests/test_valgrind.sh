#!/usr/bin/env bash
# test_valgrind.sh: valgrind's memcheck on a short training run (train, evaluate,
# sample, checkpoint, resume) and on ./sample: no invalid read or write, no use of an
# uninitialised value, and nothing lost (definitely, indirectly or possibly) at exit.
# The programs are tests/memcheck/train and tests/memcheck/sample, built for AVX2
# (memcheck cannot decode AVX-512). Only libgomp's worker-thread TLS is suppressed
# (tests/valgrind.supp); libgomp's own thread pool stays "still reachable".
set -u
. "$(dirname "$0")/lib.sh" valgrind
if [ -n "${SANITIZE:-}" ]; then echo "note: skipped under make sanitize (valgrind cannot run ASan builds)"; exit 0; fi
if ! command -v valgrind > /dev/null; then bad "valgrind" "not installed: run scripts/install_deps.sh"; exit 1; fi

memcheck() {  # NAME PROGRAM ARGS...: run under memcheck, PASS if it is clean
    local name=$1; shift
    valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect,possible \
        --errors-for-leak-kinds=definite,indirect,possible \
        --suppressions=tests/valgrind.supp --error-exitcode=99 "$@" > "$tmp/stdout" 2> "$tmp/vg"
    local rc=$?
    local errors; errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$tmp/vg" | tail -1)
    local lost; lost=$(sed -n 's/.*\(definitely\|indirectly\|possibly\) lost: \([0-9,]*\) bytes.*/\2/p' "$tmp/vg" | paste -sd/)
    local leaks="definitely/indirectly/possibly lost: ${lost:-0/0/0} bytes"
    grep -q "All heap blocks were freed" "$tmp/vg" && leaks="all heap blocks freed"
    leaks="$leaks; $(sed -n 's/.*\(still reachable: [0-9,]* bytes\).*/\1/p; s/.*\(suppressed: [0-9,]* bytes\).*/\1/p' "$tmp/vg" | paste -sd' ')"
    if [ $rc -eq 0 ] && [ "$errors" = 0 ]; then ok "$name: 0 errors; $leaks"
    else bad "$name" "exit $rc, $errors errors: $(grep -A12 -m1 -E 'Invalid|uninitialised|lost in loss record' "$tmp/vg")"; fi
}

small_conf "$tmp/vg.conf" "max_iters = 4" "lr_decay_iters = 8" "eval_interval = 2" \
    "sample_tokens = 8" "embed_snapshot_interval = 2"
memcheck "memcheck: 4 training steps (evaluations, samples, checkpoints)" \
    tests/memcheck/train "$tmp/vg.conf" --out_dir="$tmp/run"
memcheck "memcheck: --resume to step 6" tests/memcheck/train "$tmp/run/config.conf" --resume --max_iters=6
memcheck "memcheck: ./sample" tests/memcheck/sample "$tmp/run" --max_new_tokens=40 --num_samples=2

echo "test_valgrind: $pass passed, $fail failed"
[ $fail -eq 0 ]
