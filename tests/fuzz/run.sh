#!/usr/bin/env bash
# run.sh: run libFuzzer targets (built by make fuzz), one after another, each for
# FUZZ_SECONDS on a fresh copy of its seed corpus, and print one line of numbers each.
#   tests/fuzz/run.sh [TARGET ...]       default: every tests/fuzz/fuzz_*.c
# Environment: FUZZ_SECONDS (default 60); FUZZ_ARTIFACTS, where a crashing input is
# kept (default a temporary directory, named in the message); FUZZ_KEEP_CORPUS=DIR
# keeps each run's final corpus in DIR/<target>. Exit status 1 if any target found
# a crash, a leak, a timeout (one input over 10 s) or an out-of-memory (2 GB RSS,
# or one allocation over it); libFuzzer's own exit status says which, and its log is shown.
set -u
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-60}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in tests/fuzz/fuzz_*.c; do
        t=${f#tests/fuzz/fuzz_}; t=${t%.c}
        [ "$t" = common ] || targets+=("$t")
    done
fi
work=$(mktemp -d /tmp/emergent_fuzz_run.XXXXXX)
artifacts=${FUZZ_ARTIFACTS:-$work/artifacts}
mkdir -p "$artifacts"
failed=0
printf '%-18s %7s %12s %8s %12s %8s %s\n' target seconds executions exec/s "cov/ft" corpus result
for t in "${targets[@]}"; do
    bin=tests/fuzz/fuzz_$t
    if [ ! -x "$bin" ]; then echo "$bin is missing: run make fuzz"; failed=1; continue; fi
    corpus=$work/corpus/$t
    mkdir -p "$corpus"
    cp tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null
    dict=()
    [ -f tests/fuzz/"$t".dict ] && dict=(-dict=tests/fuzz/"$t".dict)
    log=$work/$t.log
    start=$(date +%s)
    OMP_NUM_THREADS=1 nice "$bin" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/$t-" "$corpus" > "$log" 2>&1
    rc=$?
    elapsed=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/\1\/\2/p' <<< "$last")
    size=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<< "$last")
    result=ok
    if [ $rc -ne 0 ]; then
        result="FAILED (libFuzzer exit $rc)"
        failed=1
    fi
    printf '%-18s %7s %12s %8s %12s %8s %s\n' "$t" "$elapsed" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${size:-?}" "$result"
    if [ $rc -ne 0 ]; then
        echo "---- $t: the end of its log ($log) ----"
        grep -v '^#[0-9]' "$log" | tail -60
        echo "---- the input is kept in $artifacts ----"
    fi
    if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then mkdir -p "$FUZZ_KEEP_CORPUS/$t" && cp "$corpus"/* "$FUZZ_KEEP_CORPUS/$t"/; fi
done
# keep the logs and artifacts of a failure; otherwise clean up
if [ $failed -eq 0 ]; then rm -rf "$work"; fi
exit $failed
