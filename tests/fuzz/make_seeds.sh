#!/usr/bin/env bash
# make_seeds.sh: (re)write the seed corpora of the fuzz targets, tests/fuzz/corpus/<target>/.
#   config            the configs/ files, plus overrides ("--" lines), quotes, comments, near misses
#   everything else   written by make_seeds.c with the project's own writers (tokens_write,
#                     st_write, checkpoint_save_model/state, tokenizer_serialize), plus near misses
# Files of the same name are overwritten; others (inputs a fuzzer once crashed on) are kept.
# The seeds are committed: run this only when a format changes.
set -euo pipefail
cd "$(dirname "$0")/../.."
corpus=tests/fuzz/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- config: text ----
mkdir -p "$corpus/config"
for f in configs/*.conf; do cp "$f" "$corpus/config/$(basename "$f")"; done
printf 'n_layer = 2\nn_embd = 64\n--n_head=2\n--resume\n--out_dir=runs/a b\n--tokenizer=sentencepiece\n' \
    > "$corpus/config/overrides.conf"
printf '# comment = not a key\nout_dir = "runs/a#1"   # a comment\ninput = '"'"'data/x y.txt'"'"'\nembed_probes = e,T,.,\\n\nembed_scale = auto\npos_encoding = sinusoidal\n\r\n' \
    > "$corpus/config/quotes_comments.conf"
printf 'n_embd = 128\nn_head = 5\n' > "$corpus/config/not_divisible.conf"
printf 'n_layer = 2\nn_layer = 3\nlearning_rate = 1e-3x\n' > "$corpus/config/set_twice.conf"

# ---- the binary formats: the project's writers ----
sources=$(grep -L '^int main(' ./*.c | tr '\n' ' ')
spm=tokenizer/sentencepiece_none.c
libs=(-lm)
if pkg-config --exists sentencepiece; then
    g++ -O1 -std=c++17 -I. $(pkg-config --cflags sentencepiece) -c -o "$tmp/shim.o" tokenizer/sentencepiece_shim.cc
    spm="$tmp/shim.o"
    libs+=($(pkg-config --libs sentencepiece) -lstdc++)
fi
gcc -O1 -fopenmp -std=c11 -D_POSIX_C_SOURCE=200809L -I. -Itests/fuzz -o "$tmp/make_seeds" \
    tests/fuzz/make_seeds.c tests/fuzz/fuzz_common.c $sources tokenizer/tokenizer.c tokenizer/char_tokenizer.c \
    "$spm" "${libs[@]}"
head -c 30000 README.md > "$tmp/text.txt"   # trains the char and SentencePiece seeds
seed_tmp=$("$tmp/make_seeds" "$corpus" "$tmp/text.txt")
rm -rf "$seed_tmp"
for d in "$corpus"/*/; do
    printf '%-40s %3d files, largest %6d bytes\n' "$d" "$(ls "$d" | wc -l)" "$(stat -c %s "$d"* | sort -n | tail -1)"
done
