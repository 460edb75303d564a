#!/usr/bin/env bash
# run_all.sh: every test suite, then one closing line "N passed, N failed".
# C suites (cmocka): kernels, model, config, training, tokenizer, safetensors, checkpoint,
# embeddings. Shell suites: ./train and ./prepare end to end; checkpoints, resume and ./sample
# (with the GPT-2 layout checked by a hand-written forward); kills, signals, NaNs, a full disk
# and too little memory (test_crash.sh); one run per out_dir, --overwrite and config.conf
# (test_outdir.sh); the bad-input table (test_bad_input.sh); valgrind
# memcheck; watching E and ./embeddings; the page of E in motion in headless chromium (test_html.sh);
# the embedding lab's harness (test_lab.sh);
# parity with PyTorch; the benchmark's PyTorch peer (its fused attention checked); the model on the
# reference kernels against the build's (test_reference.sh).
set -u
cd "$(dirname "$0")/.."
passed=0; failed=0; broken=()

for suite in tests/test_kernels tests/test_model tests/test_config tests/test_training tests/test_tokenizer \
             tests/test_safetensors tests/test_checkpoint tests/test_embeddings; do
    echo "== $suite"
    out=$("$suite" 2>&1); rc=$?
    echo "$out"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' <<< "$out"); f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' <<< "$out")
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
    [ $rc -ne 0 ] && broken+=("$suite")
    [ $rc -ne 0 ] && [ -z "$f" ] && failed=$((failed + 1))  # crashed before reporting
done

for suite in tests/test_cli.sh tests/test_checkpoint.sh tests/test_crash.sh tests/test_outdir.sh tests/test_bad_input.sh \
             tests/test_valgrind.sh tests/test_embeddings.sh tests/test_html.sh tests/test_lab.sh tests/test_parity.sh \
             tests/test_bench_peer.sh tests/test_reference.sh; do
    echo "== $suite"
    out=$("$suite" 2>&1); rc=$?
    echo "$out"
    p=$(grep -c '^PASS' <<< "$out"); f=$(grep -c '^FAIL' <<< "$out")
    passed=$((passed + p)); failed=$((failed + f))
    [ $rc -ne 0 ] && broken+=("$suite")
    [ $rc -ne 0 ] && [ "$f" -eq 0 ] && failed=$((failed + 1))
done

[ ${#broken[@]} -gt 0 ] && echo "failing suites: ${broken[*]}"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ ${#broken[@]} -eq 0 ]
