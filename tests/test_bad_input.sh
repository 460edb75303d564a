#!/usr/bin/env bash
# test_bad_input.sh: every bad input we know of, fed to ./train and ./sample. Each must
# end with a non-zero exit, one "error: ..." line that names the file, line, key or
# value at fault, and no *.tmp file, half-written checkpoint or log left behind.
# The runs also make the bad-input table of docs/robustness.md (between its
# "bad-input-table" markers): the test fails when the table there differs from what
# the programs print now, so it cannot drift from the code. Checksums in the messages
# are printed as "<16 hex digits>": they hash trained bytes, and those differ between
# instruction sets (AVX2, AVX-512, NEON sum in other orders); the pid in a temporary
# file's name (NAME.<pid>.tmp) as "<pid>".
#   UPDATE_DOCS=1 tests/test_bad_input.sh    rewrite the table in docs/robustness.md
set -u
. "$(dirname "$0")/lib.sh" bad_input
root=$(pwd)
doc="$root/docs/robustness.md"
w="$tmp/w"   # every path in the table is relative to this directory
mkdir -p "$w" && cd "$w" || exit 1
train=$root/train sample=$root/sample

head -c 20000 "$corpus" > text.txt
printf '%s\n' "input = text.txt" "data_dir = cache" "out_dir = out" "n_layer = 2" "n_head = 2" "n_embd = 32" \
    "block_size = 32" "batch_size = 8" "max_iters = 20" "warmup_iters = 5" "lr_decay_iters = 40" "eval_interval = 10" "eval_iters = 2" \
    "sample_tokens = 0" > base.conf
"$train" base.conf > /dev/null 2> err || { bad "setup" "$(cat err)"; exit 1; }  # out/: a run with a checkpoint
with() { local f=$1; shift; cp base.conf "$f"; printf '%s\n' "$@" >> "$f"; }  # with FILE LINES...: base.conf + LINES
copy_run() { rm -rf "$1"; cp -r out "$1"; }
# edit FILE FROM TO: replace the one FROM in FILE by TO (as long): an edit by hand
edit() { "$PYTHON" -c 'import sys; p, a, b = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode(); d = open(p, "rb").read()
assert d.count(a) == 1 and len(a) == len(b), p; open(p, "wb").write(d.replace(a, b))' "$@"; }

table="$tmp/table.md"
printf '| bad input | command | exit | message (stderr) | files changed |\n|---|---|---|---|---|\n' > "$table"
# every file but the data cache, this script's err and out_dir/.lock (every run takes it, and writes its pid there)
snapshot() { find . -type f ! -path './cache/*' ! -name err ! -name .lock -print0 | sort -z | xargs -0 md5sum; }
# row WHAT SETUP COMMAND...: run COMMAND (after the shell code SETUP) in $w; it must fail
# with one "error:" line; the row records its exit code, message and the files it changed
row() {
    local what=$1 setup=$2; shift 2
    eval "$setup"
    local before; before=$(snapshot)
    ( eval "$*" ) > /dev/null 2> err
    local rc=$?
    local msg; msg=$(grep -m1 '^error: ' err)
    local changed; changed=$(diff <(echo "$before") <(snapshot) | sed -n 's/^[<>] [0-9a-f]*  \.\///p' | sort -u | paste -sd' ')
    local tmps; tmps=$(find . -name '*.tmp' ! -path './cache/*')
    if [ $rc -eq 0 ] || [ -z "$msg" ]; then bad "$what" "exit $rc: $(head -c 300 err)"
    elif [ -n "$tmps" ]; then bad "$what" "left $tmps"
    else ok "$what: exit $rc"; fi
    rm -f $tmps
    printf '| %s | `%s` | %d | %s | %s |\n' "$what" "$(echo "$*" | sed "s|\$train|./train|g; s|\$sample|./sample|g")" $rc \
        "$(echo "${msg#error: }" | sed 's/|/\\|/g; s/\b[0-9a-f]\{16\}\b/<16 hex digits>/g; s/\.[0-9]\+\.tmp\b/.<pid>.tmp/g')" "${changed:-none}" >> "$table"
}

# ---- the config and the command line ----
row "unknown key in the config file" 'with c1.conf "learnig_rate = 1e-3"' '$train c1.conf'
row "unknown --key=value override" '' '$train base.conf --n_embed=64'
row "value of the wrong type" 'with c2.conf "seed = forty-two"' '$train c2.conf'
row "value out of range" '' '$train base.conf --dropout=1.5'
row "a line without '='" 'with c3.conf "bias false"' '$train c3.conf'
row "a key set twice" 'with c4.conf "n_layer = 3"' '$train c4.conf'
row "keys that contradict each other" '' '$train base.conf --n_embd=30 --n_head=4'
row "missing config file" '' '$train nothere.conf'
row "a key set twice on the command line" '' '$train base.conf --seed=1 --seed=2'
row "pos_encoding = rope with an odd head size" '' '$train base.conf --pos_encoding=rope --n_embd=30 --n_head=2'
row "embed_init: a word2vec file of another width" '$root/embeddings out export --format=word2vec --out=w2v.txt > /dev/null' \
    '$train base.conf --out_dir=w1 --embed_init=w2v.txt --n_embd=16'
row "embed_init: a word2vec file with a token of another vocabulary" "sed '3s/^[^ ]* /@@ /' w2v.txt > w2v_alien.txt" \
    '$train base.conf --out_dir=w2 --embed_init=w2v_alien.txt'
row "embed_rank not below n_embd" '' '$train base.conf --embed_rank=32'
row "embed_rank not below the vocabulary" "printf 'ab%.0s' {1..2000} > ab.txt" \
    '$train base.conf --input=ab.txt --embed_rank=4 --out_dir=o'
row "embed_rank with embed_init (a whole E)" '' '$train base.conf --out_dir=w3 --embed_rank=8 --embed_init=w2v.txt'
row "a float that rounds onto a bound as a 32-bit float" '' '$train base.conf --beta2=0.99999999999'
row "an integer too large for any key" '' '$train base.conf --seed=99999999999999999999'
row "out_dir is a file" ': > afile' '$train base.conf --out_dir=afile'
row "data_dir is a file" ': > afile' '$train base.conf --data_dir=afile --out_dir=o'
# ---- the text ----
row "missing text file" '' '$train base.conf --input=nothere.txt --out_dir=o'
row "empty text file" ': > empty.txt' '$train base.conf --input=empty.txt --out_dir=o'
row "text shorter than block_size + 1 tokens" 'head -c 40 text.txt > short.txt' '$train base.conf --input=short.txt --out_dir=o'
row "text that is not UTF-8 (sentencepiece)" "printf '\\377\\376 not utf-8 %.0s' {1..300} > latin.txt" \
    '$train base.conf --input=latin.txt --tokenizer=sentencepiece --vocab_size=100 --out_dir=o'
row "vocab_size larger than the text allows" '' '$train base.conf --tokenizer=sentencepiece --vocab_size=65536 --out_dir=o'
# ---- token files (the cache ./prepare and ./train make) ----
tokfile=$(ls cache/text.txt.*.char.train.bin)  # the train split of base.conf's text
row "token id outside the vocabulary" \
    "rm -rf cache2 && cp -r cache cache2 && printf '\\377\\377' | dd of=cache2/${tokfile#cache/} bs=1 seek=1100 conv=notrunc 2> /dev/null" \
    '$train base.conf --data_dir=cache2 --out_dir=o'
row "truncated token file" "rm -rf cache2 && cp -r cache cache2 && truncate -s 1500 cache2/${tokfile#cache/}" \
    '$train base.conf --data_dir=cache2 --out_dir=o'
row "token file rewritten with other valid ids" \
    "rm -rf cache2 && cp -r cache cache2 && printf '\\001\\000\\002\\000' | dd of=cache2/${tokfile#cache/} bs=1 seek=1100 conv=notrunc 2> /dev/null" \
    '$train base.conf --data_dir=cache2 --out_dir=o'
# ---- checkpoints ----
row "--resume with no checkpoint" '' '$train base.conf --out_dir=none --resume'
row "a new run into an out_dir that holds a run" '' '$train base.conf'
row "--resume with --overwrite" '' '$train base.conf --resume --overwrite'
row "truncated training state" 'copy_run trunc && truncate -s 100000 trunc/train_state.safetensors' \
    '$train base.conf --out_dir=trunc --resume --max_iters=40'
row "corrupted training state (one byte)" \
    "copy_run flip && printf 'X' | dd of=flip/train_state.safetensors bs=1 seek=200000 conv=notrunc 2> /dev/null" \
    '$train base.conf --out_dir=flip --resume --max_iters=40'
row "checkpoint of another model shape" 'copy_run shape' '$train base.conf --out_dir=shape --resume --n_embd=64'
row "wrong tokenizer on resume" 'copy_run tok' '$train base.conf --out_dir=tok --resume --tokenizer=byte'
row "training state's header edited (step 20 -> 30)" \
    "copy_run hdr && edit hdr/train_state.safetensors '\"emergent.step\":\"20\"' '\"emergent.step\":\"30\"'" \
    '$train base.conf --out_dir=hdr --resume --max_iters=40'
row "training state's header edited (AdamW's step 20 -> 19)" \
    "copy_run adam && edit adam/train_state.safetensors '\"emergent.adam_step\":\"20\"' '\"emergent.adam_step\":\"19\"'" \
    '$train base.conf --out_dir=adam --resume --max_iters=40'
# the text edited in place (the same characters, so the same tokenizer): text.txt is put back after
row "--resume after the text was edited in place" \
    "copy_run edited && cp text.txt text.orig && sed -i 's/First Citizen/Frist Citizen/' text.txt" \
    '$train base.conf --out_dir=edited --resume --max_iters=40'
mv text.orig text.txt
row "./sample: truncated model.safetensors" 'copy_run strunc && truncate -s 5000 strunc/model.safetensors' '$sample strunc'
row "./sample: corrupted model.safetensors" \
    "copy_run sflip && printf 'X' | dd of=sflip/model.safetensors bs=1 seek=50000 conv=notrunc 2> /dev/null" '$sample sflip'
row "./sample: model.safetensors's header edited (n_head 2 -> 4)" \
    "copy_run shdr && edit shdr/model.safetensors '\"emergent.n_head\":\"2\"' '\"emergent.n_head\":\"4\"'" '$sample shdr'
row "./sample: damaged tokenizer.bin" "copy_run stok && printf 'garbage' > stok/tokenizer.bin" '$sample stok'
row "./sample: tokenizer.bin with one byte changed" \
    "copy_run stok1 && printf 'X' | dd of=stok1/tokenizer.bin bs=1 seek=20 conv=notrunc 2> /dev/null" '$sample stok1'
# another run's tokenizer of as many tokens: the text with each 'z' made a '~' (absent from it)
row "./sample: tokenizer.bin of another run (as many tokens)" \
    "copy_run stok2 && tr z '~' < text.txt > other.txt && \$root/prepare base.conf --input=other.txt --data_dir=cache3 > /dev/null && cp cache3/other.txt.*.tokenizer stok2/tokenizer.bin" \
    '$sample stok2'
row "./sample: bad option value" '' '$sample out --temperature=hot'
# ---- while training ----
row "non-finite loss (weights that blew up)" \
    'copy_run nan && $PYTHON "$root/tests/scale_tensor.py" nan/train_state.safetensors qkvw 1e30' \
    '$train base.conf --out_dir=nan --resume --max_iters=40'
partial=""  # why some rows are left out, and the table then not compared
if [ "${MPI:-0}" = 1 ]; then  # Open MPI's runtime writes shared-memory files over 200 KB at start
    partial="in the MPI=1 build the ulimit -f row is left out"
else
    row "full disk (ulimit -f 200: files over 200 KB fail)" 'copy_run full' \
        'ulimit -f 200; $train base.conf --out_dir=full --resume --max_iters=40'
    row "full disk while log.csv grows (ulimit -f 8: files over 8 KB fail)" '' \
        'ulimit -f 8; $train base.conf --out_dir=rows --max_iters=1000 --eval_interval=1000 --embed_snapshot_interval=0'
fi
if [ -n "${SANITIZE:-}" ]; then  # ASan reserves terabytes of address space: no ulimit -v under it
    partial="under make sanitize the ulimit -v row is left out"
else
    row "a model larger than the memory limit (ulimit -v 2000000)" '' \
        'ulimit -v 2000000; $train base.conf --out_dir=o --n_embd=2048 --n_head=16 --n_layer=12'
fi

cd "$root"
begin="<!-- bad-input-table: made by tests/test_bad_input.sh, do not edit -->"
end="<!-- end of bad-input-table -->"
documented() {  # the table between the markers in docs/robustness.md
    awk -v b="$begin" -v e="$end" '$0 == e { on = 0 } on { print } $0 == b { on = 1 }' "$doc"
}
if [ -n "$partial" ]; then
    echo "note: $partial: the table is not compared"
elif [ -n "${UPDATE_DOCS:-}" ]; then
    awk -v b="$begin" -v e="$end" -v t="$table" '
        $0 == e { while ((getline line < t) > 0) print line; skip = 0 }
        !skip { print } $0 == b { skip = 1 }' "$doc" > "$tmp/doc" && cp "$tmp/doc" "$doc"
    echo "updated the table in $doc"
elif cmp -s "$table" <(documented); then
    ok "docs/robustness.md's bad-input table is what the programs print now ($(($(wc -l < "$table") - 2)) rows)"
else
    bad "docs/robustness.md" "its bad-input table differs from what the programs print now (UPDATE_DOCS=1 $0 rewrites it): $(diff <(documented) "$table" | head -6)"
fi
echo "test_bad_input: $pass passed, $fail failed"
[ $fail -eq 0 ]
