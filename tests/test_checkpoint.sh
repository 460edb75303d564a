#!/usr/bin/env bash
# test_checkpoint.sh: checkpoints, --resume and ./sample end to end. A run stopped at
# step k and resumed writes the same log.csv rows as the uninterrupted run (also after
# a crash left rows past the checkpoint); mismatched or damaged checkpoints are refused
# with exit 2 and a message, and so are a resume on an edited text (unless --allow_data_change)
# and another run's tokenizer.bin beside a model; the GPT-2-layout file computes the same logits in a
# hand-written GPT-2 forward (tests/gpt2_check.py); sampling is reproducible.
set -u
. "$(dirname "$0")/lib.sh" checkpoint

small_conf "$tmp/small.conf" "max_iters = 40" "lr_decay_iters = 40" "eval_interval = 10" "sample_tokens = 20"
run() { ./train "$tmp/small.conf" "$@" > "$tmp/run.out" 2> "$tmp/run.err"; }
same_rows() { cmp -s <(cut -d, -f1-5,8,9 "$1") <(cut -d, -f1-5,8,9 "$2"); }  # all but the timing columns

# ---- the files a run leaves ----
run --out_dir="$tmp/full" || bad "full run" "$(cat "$tmp/run.err")"
missing=""
for f in config.conf log.csv model.safetensors config.json tokenizer.bin train_state.safetensors \
         last/model.safetensors last/config.json last/tokenizer.bin; do
    [ -s "$tmp/full/$f" ] || missing="$missing $f"
done
leftovers=$(find "$tmp/full" -name '*.tmp')
if [ -z "$missing" ] && [ -z "$leftovers" ]; then ok "a run leaves best, last/ and train_state.safetensors, no .tmp files"
else bad "checkpoint files" "missing:$missing leftovers: $leftovers"; fi
best_step=$(sed -n 's/.*"emergent_step": \([0-9]*\).*/\1/p' "$tmp/full/config.json")
best_val=$(awk -F, 'NR > 1 && $4 != "" && $1 > 0 && (b == "" || $4 < b) { b = $4; s = $1 } END { print s }' "$tmp/full/log.csv")
last_step=$(sed -n 's/.*"emergent_step": \([0-9]*\).*/\1/p' "$tmp/full/last/config.json")
if [ "$best_step" = "$best_val" ] && [ "$last_step" = 40 ]; then
    ok "out_dir holds the lowest-val model (step $best_step), last/ the final one (step 40)"
else bad "best/last" "best step '$best_step' (log says '$best_val'), last step '$last_step'"; fi
grep -q "^sample at step 10 " "$tmp/run.out" && ok "training prints a sample at each evaluation" ||
    bad "samples" "no 'sample at step 10' in the output"

# ---- resume: stop at step 20, continue to 40 ----
run --out_dir="$tmp/resumed" --max_iters=20 && run --out_dir="$tmp/resumed" --resume ||
    bad "resume" "$(cat "$tmp/run.err")"
if same_rows "$tmp/full/log.csv" "$tmp/resumed/log.csv"; then
    ok "stopped at step 20 and resumed: log.csv rows identical to the uninterrupted run's"
else bad "resume" "$(diff <(cut -d, -f1-5,8,9 "$tmp/full/log.csv") <(cut -d, -f1-5,8,9 "$tmp/resumed/log.csv") | head -4)"; fi
cmp -s "$tmp/full/last/model.safetensors" "$tmp/resumed/last/model.safetensors" &&
    ok "resumed run ends with a bit-identical model.safetensors" || bad "resume" "final models differ"

# a crash after step 27: rows 21-27 and a torn row were written after the step-20 checkpoint
run --out_dir="$tmp/crashed" --max_iters=20
sed -n '23,29p' "$tmp/full/log.csv" >> "$tmp/crashed/log.csv"
printf '28,0.000' >> "$tmp/crashed/log.csv"
run --out_dir="$tmp/crashed" --resume
if same_rows "$tmp/full/log.csv" "$tmp/crashed/log.csv"; then
    ok "resume after a crash drops the rows past the checkpoint and repeats them exactly"
else bad "crash resume" "$(diff <(cut -d, -f1-5,8,9 "$tmp/full/log.csv") <(cut -d, -f1-5,8,9 "$tmp/crashed/log.csv") | head -4)"; fi

# dropout masks are keyed by (seed, step): resume and thread count do not change them
OMP_NUM_THREADS=1 run --out_dir="$tmp/drop1" --dropout=0.2 &&
OMP_NUM_THREADS=2 run --out_dir="$tmp/drop2" --max_iters=20 --dropout=0.2 &&
OMP_NUM_THREADS=2 run --out_dir="$tmp/drop2" --resume --dropout=0.2
if ! same_rows "$tmp/drop1/log.csv" "$tmp/drop2/log.csv"; then bad "dropout determinism" "rows differ"
elif same_rows "$tmp/drop1/log.csv" "$tmp/full/log.csv"; then bad "dropout" "dropout 0.2 changed nothing"
else ok "dropout 0.2: 1 thread uninterrupted = 2 threads stopped at 20 and resumed; differs from dropout 0"; fi

# the same in batch groups (the shipped configs' batch_groups = 2)
OMP_NUM_THREADS=1 run --out_dir="$tmp/group1" --dropout=0.2 --batch_groups=2 &&
OMP_NUM_THREADS=2 run --out_dir="$tmp/group2" --max_iters=20 --dropout=0.2 --batch_groups=2 &&
OMP_NUM_THREADS=2 run --out_dir="$tmp/group2" --resume --dropout=0.2 --batch_groups=2
if ! same_rows "$tmp/group1/log.csv" "$tmp/group2/log.csv"; then bad "batch groups resume" "rows differ"
else ok "batch_groups 2, dropout 0.2: 1 thread uninterrupted = 2 threads stopped at 20 and resumed"; fi

# the embedding lab's options: no positions, token-row dropout, a wider E init and
# a frozen E, in batch groups; resumed on 2 threads = uninterrupted on 1; E stays
# as initialised (after 40 steps the same bits as after 1); ./sample loads it
lab=(--pos_encoding=none --embed_dropout=0.2 --embed_init_std=0.05 --freeze_embeddings=true --batch_groups=2)
OMP_NUM_THREADS=1 run --out_dir="$tmp/lab1" "${lab[@]}" &&
OMP_NUM_THREADS=2 run --out_dir="$tmp/lab2" --max_iters=20 "${lab[@]}" &&
OMP_NUM_THREADS=2 run --out_dir="$tmp/lab2" --resume "${lab[@]}" &&
run --out_dir="$tmp/lab0" --max_iters=1 "${lab[@]}"
if ! same_rows "$tmp/lab1/log.csv" "$tmp/lab2/log.csv"; then bad "lab options resume" "rows differ: $(cat "$tmp/run.err")"
elif ! "$PYTHON" - "$tmp/lab1/last/model.safetensors" "$tmp/lab0/last/model.safetensors" <<'PY'
import sys
sys.path.insert(0, "scripts")
from emergent_io import read_safetensors
def wte(path):
    entries, data, _ = read_safetensors(path)
    _, _, begin, end = entries["transformer.wte.weight"]
    return bytes(data[begin:end])
sys.exit(0 if wte(sys.argv[1]) == wte(sys.argv[2]) else 1)
PY
then bad "freeze_embeddings" "E after 40 steps is not the initial E"
elif ! ./sample "$tmp/lab1" --max_new_tokens=10 > /dev/null 2> "$tmp/err"; then bad "lab options sample" "$(cat "$tmp/err")"
else ok "pos_encoding none, embed_dropout, embed_init_std, freeze_embeddings: resumed on 2 threads = 1 thread uninterrupted; E unchanged after 40 steps; ./sample loads it"; fi

# rotary positions end to end: stopped at 20 and resumed on 2 threads = uninterrupted on 1; ./sample
OMP_NUM_THREADS=1 run --out_dir="$tmp/rope1" --pos_encoding=rope &&
OMP_NUM_THREADS=2 run --out_dir="$tmp/rope2" --pos_encoding=rope --max_iters=20 &&
OMP_NUM_THREADS=2 run --out_dir="$tmp/rope2" --pos_encoding=rope --resume
if ! same_rows "$tmp/rope1/log.csv" "$tmp/rope2/log.csv"; then bad "rope resume" "rows differ: $(cat "$tmp/run.err")"
elif same_rows "$tmp/rope1/log.csv" "$tmp/full/log.csv"; then bad "rope" "pos_encoding = rope changed nothing"
elif ! ./sample "$tmp/rope1" --max_new_tokens=20 > /dev/null 2> "$tmp/err"; then bad "rope sample" "$(cat "$tmp/err")"
else ok "pos_encoding = rope: resumed on 2 threads = 1 thread uninterrupted, differs from learned; ./sample loads it"; fi

# E = A B (embed_rank) end to end, in batch groups: stopped at 20 and resumed on 2 threads =
# uninterrupted on 1, the final model bit-identical; the files hold A and B (model.safetensors
# under transformer.wte_a/wte_b, train_state with their AdamW moments), never E; ./sample
# loads it; a resume with another embed_rank is refused
rank=(--embed_rank=8 --batch_groups=2)
OMP_NUM_THREADS=1 run --out_dir="$tmp/rank1" "${rank[@]}" &&
OMP_NUM_THREADS=2 run --out_dir="$tmp/rank2" --max_iters=20 "${rank[@]}" &&
OMP_NUM_THREADS=2 run --out_dir="$tmp/rank2" --resume "${rank[@]}"
run --out_dir="$tmp/rank2" --resume --embed_rank=4 --max_iters=50
rank_rc=$?
if ! same_rows "$tmp/rank1/log.csv" "$tmp/rank2/log.csv"; then bad "embed_rank resume" "rows differ: $(cat "$tmp/run.err")"
elif same_rows "$tmp/rank1/log.csv" "$tmp/full/log.csv"; then bad "embed_rank" "embed_rank = 8 changed nothing"
elif ! cmp -s "$tmp/rank1/last/model.safetensors" "$tmp/rank2/last/model.safetensors"; then bad "embed_rank resume" "final models differ"
elif ! "$PYTHON" - "$tmp/rank1/last/model.safetensors" "$tmp/rank1/train_state.safetensors" <<'PY'
import sys
sys.path.insert(0, "scripts")
from emergent_io import read_safetensors
model, _, meta = read_safetensors(sys.argv[1])
state, _, _ = read_safetensors(sys.argv[2])
C = int(meta["emergent.n_embd"])
ok = (model["transformer.wte_a.weight"][1] == [int(meta["emergent.vocab_size"]), 8] and
      model["transformer.wte_b.weight"][1] == [C, 8] and meta["emergent.embed_rank"] == "8" and
      "transformer.wte.weight" not in model and "wte" not in state and
      all(k + n in state for k in ("", "adam_m.", "adam_v.") for n in ("wte_a", "wte_b")))
sys.exit(0 if ok else 1)
PY
then bad "embed_rank files" "the checkpoint's tensors are not A (V, 8) and B stored (C, 8)"
elif ! ./sample "$tmp/rank1" --max_new_tokens=20 > /dev/null 2> "$tmp/err"; then bad "embed_rank sample" "$(cat "$tmp/err")"
elif [ $rank_rc -ne 2 ] || ! grep -q "embed_rank = 8, this config gives 4" "$tmp/run.err"; then
    bad "embed_rank resume refusal" "exit $rank_rc: $(cat "$tmp/run.err")"
else ok "embed_rank = 8 in batch groups: resumed on 2 threads = 1 thread uninterrupted, the same final model; A and B in the files, not E; ./sample loads it; a resume with embed_rank 4 is refused"; fi

# a new run in an old out_dir replaces it only when told (--overwrite), and then only
# at its first checkpoint: the old run moves whole to previous-<UTC time>/, so nothing is
# left for --resume to mix with the new log (tests/test_outdir.sh has the other cases)
cp -r "$tmp/crashed" "$tmp/rerun"
run --out_dir="$tmp/rerun" --max_iters=5 --overwrite
if grep -q "^--overwrite: the other run's files are now in $tmp/rerun/previous-" "$tmp/run.out" &&
   head -c 4000 "$tmp/rerun/train_state.safetensors" | grep -q '"emergent.step":"5"' &&
   cmp -s "$tmp/crashed/train_state.safetensors" "$tmp"/rerun/previous-*/train_state.safetensors; then
    ok "a new run with --overwrite over an earlier run's out_dir replaces its training state, keeping the old one in previous-*/"
else bad "rerun" "$(head -c 300 "$tmp/run.out")"; fi

# ---- refused resumes: exit 2, a message, the checkpoint untouched ----
expect_refusal() {  # NAME FRAGMENT OVERRIDES...
    local name=$1 fragment=$2; shift 2
    local before; before=$(md5sum "$tmp/full/train_state.safetensors" "$tmp/full/log.csv" 2>/dev/null)
    ./train "$tmp/small.conf" "$@" > /dev/null 2> "$tmp/err"
    local rc=$?
    if [ $rc -ne 2 ]; then bad "$name" "exit $rc, expected 2 ($(cat "$tmp/err"))"
    elif ! grep -qF -- "$fragment" "$tmp/err"; then bad "$name" "message '$(cat "$tmp/err")' lacks '$fragment'"
    elif [ "$before" != "$(md5sum "$tmp/full/train_state.safetensors" "$tmp/full/log.csv" 2>/dev/null)" ]; then
        bad "$name" "the checkpoint or log changed"
    else ok "$name: $(head -c 220 "$tmp/err")"; fi
}
expect_refusal "resume without a checkpoint" "train_state.safetensors does not exist" --out_dir="$tmp/nothing" --resume
expect_refusal "resume with another model shape" "n_embd = 32, this config gives 64" --out_dir="$tmp/full" --resume --n_embd=64
expect_refusal "resume with another tokenizer" "trained with a different tokenizer (char, 65 tokens" --out_dir="$tmp/full" --resume --tokenizer=byte
cp -r "$tmp/full" "$tmp/trunc"
truncate -s 100000 "$tmp/trunc/train_state.safetensors"
./train "$tmp/small.conf" --out_dir="$tmp/trunc" --resume > /dev/null 2> "$tmp/err"
rc=$?
if [ $rc -eq 2 ] && grep -qF "$tmp/trunc/train_state.safetensors" "$tmp/err"; then ok "truncated training state refused: $(head -c 200 "$tmp/err")"
else bad "truncated state" "exit $rc: $(cat "$tmp/err")"; fi

# ---- data changed under a run: the state records the hashes of the text and token files ----
head -c 60000 "$corpus" > "$tmp/text.txt"
run --input="$tmp/text.txt" --out_dir="$tmp/edit" --max_iters=20 || bad "edited text" "$(cat "$tmp/run.err")"
# a token file of the cache without a checksum (an earlier version's, or llm.c's) is prepared again
f=$(ls "$tmp"/cache/text.txt.*.char.train.bin)
cp "$f" "$tmp/train.bin.orig"
dd if=/dev/zero of="$f" bs=4 seek=4 count=3 conv=notrunc 2> /dev/null  # header slots 4-6
./prepare "$tmp/small.conf" --input="$tmp/text.txt" > /dev/null 2> "$tmp/err"
rc=$?
if [ $rc -eq 0 ] && grep -qF "note: data cache: $f has no checksum: preparing the data again" "$tmp/err" &&
   cmp -s "$f" "$tmp/train.bin.orig"; then
    ok "a cached token file without a checksum is prepared again, the same bytes as before: $(head -c 120 "$tmp/err")"
else bad "cache without checksum" "exit $rc: $(cat "$tmp/err")"; fi
sed -i 's/First Citizen/Frist Citizen/' "$tmp/text.txt"  # edited in place, the same characters: the same tokenizer
before=$(md5sum < "$tmp/edit/train_state.safetensors")
./train "$tmp/small.conf" --input="$tmp/text.txt" --out_dir="$tmp/edit" --resume > /dev/null 2> "$tmp/err"
rc=$?
if [ $rc -eq 2 ] &&
   grep -qF -- "--resume: the data differs from what the run in $tmp/edit trained on: the text $tmp/text.txt hashes to" "$tmp/err" &&
   grep -qF "the train token file" "$tmp/err" && grep -qF -- "--allow_data_change" "$tmp/err" &&
   [ "$before" = "$(md5sum < "$tmp/edit/train_state.safetensors")" ]; then
    ok "--resume after the text was edited in place: exit 2, the checkpoint untouched: $(head -c 200 "$tmp/err")"
else bad "edited text" "exit $rc: $(cat "$tmp/err")"; fi
./train "$tmp/small.conf" --input="$tmp/text.txt" --out_dir="$tmp/edit" --resume --allow_data_change > /dev/null 2> "$tmp/err"
rc=$?
if [ $rc -eq 0 ] && grep -q "^warning: resume: --allow_data_change: the data differs" "$tmp/err" &&
   [ "$(tail -1 "$tmp/edit/log.csv" | cut -d, -f1)" = 40 ] && ! grep -q allow_data_change "$tmp/edit/config.conf"; then
    ok "--allow_data_change resumes on the edited text with a warning, and config.conf does not record it"
else bad "allow_data_change" "exit $rc: $(cat "$tmp/err")"; fi

# ---- ./sample ----
./sample "$tmp/full" --seed=7 --max_new_tokens=100 > "$tmp/s1" 2> /dev/null &&
./sample "$tmp/full" --seed=7 --max_new_tokens=100 > "$tmp/s2" 2> /dev/null &&
OMP_NUM_THREADS=1 ./sample "$tmp/full" --seed=8 --max_new_tokens=100 > "$tmp/s3" 2> /dev/null
if [ $? -ne 0 ]; then bad "sample" "a run failed"
elif ! cmp -s "$tmp/s1" "$tmp/s2"; then bad "sample" "the same seed gave different text"
elif cmp -s "$tmp/s1" "$tmp/s3"; then bad "sample" "another seed gave the same text"
else ok "./sample: the same seed repeats the text, another seed changes it"; fi
./sample "$tmp/full/last" --prompt="ROMEO:" --max_new_tokens=150 --temperature=0 > "$tmp/s4" 2> /dev/null
if head -c 6 "$tmp/s4" | grep -q "ROMEO:" && [ "$(head -n -1 "$tmp/s4" | wc -c)" -ge 150 ]; then
    ok "./sample continues a prompt past block_size (32) greedily: $(head -c 60 "$tmp/s4" | tr '\n' ' ')"
else bad "sample prompt" "$(head -c 200 "$tmp/s4")"; fi
sample_refusal() {  # NAME FRAGMENT ARGS...
    local name=$1 fragment=$2; shift 2
    ./sample "$@" > /dev/null 2> "$tmp/err"
    local rc=$?
    if [ $rc -eq 2 ] && grep -qF -- "$fragment" "$tmp/err"; then ok "$name: $(head -c 160 "$tmp/err")"
    else bad "$name" "exit $rc: $(cat "$tmp/err")"; fi
}
sample_refusal "sample: unknown option" "unknown option '--topk'" "$tmp/full" --topk=3
sample_refusal "sample: bad number" "--temperature=hot: expected a number in [0, 100], got 'hot'" "$tmp/full" --temperature=hot
sample_refusal "sample: prompt outside the vocabulary" "--prompt:" "$tmp/full" --prompt="€"
sample_refusal "sample: no checkpoint" "$tmp/none/model.safetensors" "$tmp/none"
# another run's tokenizer of as many tokens (the text with each 'z' made a '~'): refused by
# ./sample and ./embeddings, naming the file and both hashes
cp -r "$tmp/full" "$tmp/othertok"
tr z '~' < "$corpus" > "$tmp/other.txt"
./prepare "$tmp/small.conf" --input="$tmp/other.txt" > /dev/null && cp "$tmp"/cache/other.txt.*.tokenizer "$tmp/othertok/tokenizer.bin"
sample_refusal "sample: another run's tokenizer.bin" \
    "$tmp/othertok/tokenizer.bin: not the tokenizer this model was trained with: the file (char, 65 tokens) hashes to" "$tmp/othertok"
./embeddings "$tmp/othertok" pca > /dev/null 2> "$tmp/err"
rc=$?
if [ $rc -eq 2 ] && grep -qF "$tmp/othertok/model.safetensors records" "$tmp/err"; then
    ok "embeddings: another run's tokenizer.bin refused: $(head -c 160 "$tmp/err")"
else bad "embeddings: another run's tokenizer" "exit $rc: $(cat "$tmp/err")"; fi

# a sample is printed as it is drawn: killed 2 s into 10 million tokens, it has shown
# text, and that text is how a whole 200-token sample with the same seed begins
(timeout -s KILL 2 ./sample "$tmp/full" --seed=9 --max_new_tokens=10000000 > "$tmp/s6") 2> /dev/null
./sample "$tmp/full" --seed=9 --max_new_tokens=200 > "$tmp/s7" 2> /dev/null
shown=$(wc -c < "$tmp/s6") whole=$(($(wc -c < "$tmp/s7") - 17))  # 17: "\n---------------\n" after the text
if [ "$shown" -le 1 ]; then bad "sample streams" "after 2 s of a long sample, $shown bytes on stdout"
elif ! cmp -s -n $((shown < whole ? shown : whole)) "$tmp/s6" "$tmp/s7"; then
    bad "sample streams" "the text shown differs from the same seed's whole sample: $(head -c 80 "$tmp/s6")"
else ok "./sample prints as it draws: killed after 2 s it had shown $shown bytes, the same seed's text"; fi

# a text of one repeated letter: a vocabulary of 1 token, no newline for the default
# prompt, so ./sample starts from token 0 and says so; a --prompt outside it is refused
head -c 3000 /dev/zero | tr '\0' a > "$tmp/a.txt"
if ! ./train "$tmp/small.conf" --input="$tmp/a.txt" --out_dir="$tmp/one" --max_iters=2 --eval_interval=2 \
        > /dev/null 2> "$tmp/err"; then bad "1-token vocabulary" "training failed: $(cat "$tmp/err")"
elif ! ./sample "$tmp/one" --max_new_tokens=10 > "$tmp/s8" 2> "$tmp/err"; then
    bad "1-token vocabulary" "./sample failed: $(cat "$tmp/err")"
elif [ "$(head -1 "$tmp/s8")" != aaaaaaaaaaa ] || ! grep -q "no newline, the default prompt: starting from token 0 ('a')" "$tmp/err"; then
    bad "1-token vocabulary" "$(head -c 100 "$tmp/s8") / $(cat "$tmp/err")"
else ok "./sample on a 1-token vocabulary without a newline: $(grep note "$tmp/err" | head -c 120)"; fi
sample_refusal "sample: a prompt outside a 1-token vocabulary" "--prompt: byte 0x62 at offset 0 is not in the vocabulary" \
    "$tmp/one" --prompt=b
truncate -s 5000 "$tmp/trunc/model.safetensors"
sample_refusal "sample: truncated checkpoint" "$tmp/trunc/model.safetensors" "$tmp/trunc"

# ---- the GPT-2 layout, read by a hand-written GPT-2 forward ----
ids=1,20,30,40,50,0,13,64,7,7,2
check_gpt2() {  # NAME DIR
    tests/logits_dump "$2" "$ids" "$tmp/logits.f32" > /dev/null &&
        "$PYTHON" tests/gpt2_check.py "$2" --ids "$ids" --logits "$tmp/logits.f32" > "$tmp/g2" 2>&1
    if [ $? -eq 0 ]; then ok "$1: $(grep -o 'relative [0-9.e+-]*' "$tmp/g2" | head -1) against a hand-written GPT-2 forward"
    else bad "$1" "$(cat "$tmp/g2")"; fi
}
check_gpt2 "GPT-2 layout, tied weights" "$tmp/full"
run --out_dir="$tmp/untied" --max_iters=10 --tie_weights=false --bias=false
check_gpt2 "GPT-2 layout, untied head, bias = false (zeros exported)" "$tmp/untied"
run --out_dir="$tmp/sinus" --max_iters=10 --pos_encoding=sinusoidal
tests/logits_dump "$tmp/sinus" "$ids" "$tmp/logits.f32" > /dev/null
"$PYTHON" tests/gpt2_check.py "$tmp/sinus" --ids "$ids" --logits "$tmp/logits.f32" > "$tmp/g2" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q "sinusoidal" "$tmp/g2"; then ok "a sinusoidal checkpoint is refused as not GPT-2: $(head -c 160 "$tmp/g2")"
else bad "sinusoidal is not GPT-2" "exit $rc: $(cat "$tmp/g2")"; fi
./sample "$tmp/sinus" --max_new_tokens=10 > /dev/null 2>&1 && ok "./sample loads a sinusoidal checkpoint" ||
    bad "sinusoidal sample" "failed"
# E = A B is no GPT-2 embedding: config.json says so, and the check refuses it, naming embed_rank
tests/logits_dump "$tmp/rank1" "$ids" "$tmp/logits.f32" > /dev/null
"$PYTHON" tests/gpt2_check.py "$tmp/rank1" --ids "$ids" --logits "$tmp/logits.f32" > "$tmp/g2" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q "emergent_embed_rank = 8" "$tmp/g2" && grep -q '"emergent_gpt2_compatible": false' "$tmp/rank1/config.json"
then ok "an embed_rank checkpoint is refused as not GPT-2: $(head -c 200 "$tmp/g2")"
else bad "embed_rank is not GPT-2" "exit $rc: $(cat "$tmp/g2")"; fi

# samples go through the run's tokenizer: a SentencePiece run's text comes out as text
head -c 60000 "$corpus" > "$tmp/part.txt"
if ./train "$tmp/small.conf" --out_dir="$tmp/bpe" --max_iters=10 --tokenizer=sentencepiece --vocab_size=400 \
        --input="$tmp/part.txt" > "$tmp/bpe.out" 2>&1; then
    ./sample "$tmp/bpe" --prompt="First Citizen:" --max_new_tokens=40 > "$tmp/s5" 2> /dev/null
    if head -c 14 "$tmp/s5" | grep -q "First Citizen:" && ! grep -q "<0x\|▁" "$tmp/s5"; then
        ok "a SentencePiece run samples decoded text: $(head -c 70 "$tmp/s5" | tr '\n' ' ')"
    else bad "sentencepiece sample" "$(head -c 200 "$tmp/s5")"; fi
elif grep -q "no SentencePiece" "$tmp/bpe.out"; then ok "SentencePiece sample skipped: this build has no SentencePiece"
else bad "sentencepiece run" "$(tail -3 "$tmp/bpe.out")"; fi

# the curves script draws a run (and a reference point) into a PNG
if "$PYTHON" scripts/plot_curves.py "$tmp/full" "$tmp/resumed" --out "$tmp/curves.png" --point "40:2.5:ref" \
        > "$tmp/plot.out" 2>&1 && [ "$(head -c 4 "$tmp/curves.png" | tail -c 3)" = PNG ] &&
        grep -q "final step 40" "$tmp/plot.out"; then
    ok "plot_curves.py: $(head -1 "$tmp/plot.out")"
else bad "plot_curves.py" "$(cat "$tmp/plot.out")"; fi

echo "checkpoint: $pass passed, $fail failed"
[ $fail -eq 0 ]
