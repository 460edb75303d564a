#!/usr/bin/env bash
# tests/test_parity.sh: PyTorch parity of the C model, for the four variants
# pos_encoding learned/sinusoidal x tie_weights 1/0 (with biases), nanoGPT's
# default model without biases (learned, tied, bias 0), no positions at all
# (pos_encoding none), rotary positions (rope, tied with biases, untied without), training with E frozen (freeze_embeddings, tied and
# untied: the steps' norms and losses without E, and E unchanged), training
# with embed_dropout (the reference recomputes the masks from their definition),
# and E factorised as A B (embed_rank 8, tied and untied, and frozen: E = A B and
# dE are compared too).
#
# For each variant tests/parity_dump writes the weights, batches, logits, loss,
# gradients and 10 training steps; tests/pytorch_reference.py recomputes them
# with an independent PyTorch model and compares (see the two files).
# Builds nothing: run `make tests/parity_dump` first.
# Prints `PASS parity <variant>` or `FAIL parity <variant>` (with the checks that
# failed) per variant and exits 1 if any variant fails. VERBOSE=1 shows every check.
set -u
cd "$(dirname "$0")/.." || exit 1

PY="${PYTHON:-/usr/bin/python3}"
DUMP=tests/parity_dump
REF=tests/pytorch_reference.py

# A missing tool is a failure, never a skip: a parity test that silently does
# not run cannot catch anything.
if [ ! -x "$DUMP" ]; then
    echo "FAIL parity: $DUMP is not built (run: make tests/parity_dump)"
    exit 1
fi
if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "FAIL parity: $PY cannot import torch and numpy (set PYTHON to Debian's /usr/bin/python3)"
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/parity.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

failed=0
for variant in pos=learned,tied=1,bias=1 pos=learned,tied=0,bias=1 pos=sinusoidal,tied=1,bias=1 \
               pos=sinusoidal,tied=0,bias=1 pos=learned,tied=1,bias=0 pos=none,tied=1,bias=1 \
               pos=learned,tied=1,bias=1,freeze=1 pos=none,tied=0,bias=1,freeze=1 \
               pos=learned,tied=0,bias=1,embed-dropout=0.3 pos=rope,tied=1,bias=1 pos=rope,tied=0,bias=0 \
               pos=learned,tied=1,bias=1,embed-rank=8 pos=rope,tied=0,bias=0,embed-rank=8 \
               pos=learned,tied=1,bias=1,embed-rank=5,freeze=1; do
    IFS=, read -r pos tied bias extra <<<"$variant"
    bin="$tmp/$variant.bin"
    log="$tmp/$variant.log"
    extras=()  # the options after bias, each as --option
    [ -n "$extra" ] && IFS=, read -ra extras <<<"$extra"
    "$DUMP" "$bin" --"$pos" --"$tied" --"$bias" "${extras[@]/#/--}" >"$log" 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "$DUMP exited with status $rc" >>"$log"
    else
        "$PY" "$REF" "$bin" >>"$log" 2>&1
        rc=$?
    fi
    if [ $rc -eq 0 ]; then
        if [ "${VERBOSE:-0}" = 1 ]; then sed 's/^/  /' "$log"; else grep -E '^(summary|info)' "$log" | sed 's/^/  /'; fi
        echo "PASS parity $variant"
    else
        # the whole log when VERBOSE; else the failing checks, or the end of the
        # log when nothing printed FAIL (a crash: its message or traceback is there).
        # Indented, so that only the verdict line per variant starts with FAIL
        # (tests/run_all.sh counts those).
        if [ "${VERBOSE:-0}" = 1 ]; then
            sed 's/^/  /' "$log"
        elif ! grep -E '^FAIL' "$log" | sed 's/^/  /' | grep .; then
            tail -n 15 "$log" | sed 's/^/  /'
        fi
        echo "FAIL parity $variant"
        failed=1
    fi
done
exit $failed
