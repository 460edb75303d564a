#!/usr/bin/env bash
# test_embeddings.sh: watching E end to end. A run writes embeddings.csv at every
# evaluation and snapshots of E; a resumed run repeats them; ./embeddings finds
# neighbours, analogies and principal axes, and its exports parse back to the very
# vectors of the checkpoint.
set -u
. "$(dirname "$0")/lib.sh" embeddings

small_conf "$tmp/small.conf" "max_iters = 40" "lr_decay_iters = 40" "eval_interval = 20" "sample_tokens = 0" \
    "embed_snapshot_interval = 10"

./train "$tmp/small.conf" --out_dir="$tmp/a" > "$tmp/a.out" 2>&1 || bad "run" "$(tail -3 "$tmp/a.out")"
rows=$(awk -F, 'NR > 1 { printf "%s ", $1 }' "$tmp/a/embeddings.csv")
if head -1 "$tmp/a/embeddings.csv" | grep -q '^step,norm_mean,norm_std,norm_freq_spearman,mean_cosine,effective_rank,knn_purity,seconds$' &&
   [ "$rows" = "0 20 40 " ] && awk -F, 'NR > 1 && (NF != 8 || $7 == "") { exit 1 }' "$tmp/a/embeddings.csv"; then
    ok "embeddings.csv: a row at each evaluation (steps $rows), purity filled for char tokens"
else bad "embeddings.csv" "$(cat "$tmp/a/embeddings.csv")"; fi
snaps=$(cd "$tmp/a/embeddings" 2>/dev/null && ls | tr '\n' ' ')
[ "$snaps" = "E_000000.safetensors E_000010.safetensors E_000020.safetensors E_000030.safetensors E_000040.safetensors " ] &&
    ok "snapshots of E every 10 steps: $snaps" || bad "snapshots" "'$snaps'"
grep -q "^  'e' -> " "$tmp/a.out" && ok "each evaluation prints the probes' neighbours: $(grep -m1 "^  'e' -> " "$tmp/a.out")" ||
    bad "probes" "no neighbours of 'e' printed"
grep -q "purity by chance would be" "$tmp/a.out" && ok "the chance level of k-NN purity is printed" || bad "chance" "missing"

# resume repeats the measurements (all but the timing column)
./train "$tmp/small.conf" --out_dir="$tmp/b" --max_iters=20 > /dev/null 2>&1 &&
./train "$tmp/small.conf" --out_dir="$tmp/b" --resume > /dev/null 2>&1
if cmp -s <(cut -d, -f1-7 "$tmp/a/embeddings.csv") <(cut -d, -f1-7 "$tmp/b/embeddings.csv") &&
   cmp -s "$tmp/a/embeddings/E_000040.safetensors" "$tmp/b/embeddings/E_000040.safetensors"; then
    ok "stopped at 20 and resumed: embeddings.csv and the last snapshot are identical"
else bad "resume" "$(diff "$tmp/a/embeddings.csv" "$tmp/b/embeddings.csv" | head -4)"; fi

./train "$tmp/small.conf" --out_dir="$tmp/c" --max_iters=1 --anisotropy_warn=-1 --embed_probes=e,@ > "$tmp/c.out" 2> "$tmp/c.err"
grep -q "^warning: E's rows are collapsing: mean cosine" "$tmp/c.err" && grep -q "^note: embed_probes: '@' is not a token" "$tmp/c.err" &&
    ! grep -q "warning\|note" "$tmp/c.out" && ok "a mean cosine above anisotropy_warn prints a warning, on stderr (as the note on a probe)" ||
    bad "anisotropy warning" "not printed on stderr: $(cat "$tmp/c.err")"

# ./embeddings
./embeddings "$tmp/a" neighbors e --k=3 > "$tmp/n.out" 2>&1
[ "$(wc -l < "$tmp/n.out")" -eq 3 ] && ! grep -q "^e " "$tmp/n.out" && ok "neighbors e --k=3: $(tr '\n' ' ' < "$tmp/n.out")" ||
    bad "neighbors" "$(cat "$tmp/n.out")"
./embeddings "$tmp/a" analogy a A e --k=4 > "$tmp/an.out" 2>&1
[ "$(wc -l < "$tmp/an.out")" -eq 4 ] && ! grep -qE "^(a|A|e) " "$tmp/an.out" && ok "analogy a A e: 4 answers, none of the inputs" ||
    bad "analogy" "$(cat "$tmp/an.out")"
./embeddings "$tmp/a" pca --dims=3 > "$tmp/pca.csv" 2>&1
[ "$(head -1 "$tmp/pca.csv")" = "token,pc1,pc2,pc3" ] && [ "$(wc -l < "$tmp/pca.csv")" -eq 66 ] &&
    ok "pca --dims=3: 65 tokens x 3 coordinates" || bad "pca" "$(head -3 "$tmp/pca.csv")"
./embeddings "$tmp/a" export --format=word2vec --out="$tmp/w2v.txt" > /dev/null &&
./embeddings "$tmp/a" export --format=tsv --out="$tmp/proj" > /dev/null
"$PYTHON" - "$tmp/a/model.safetensors" "$tmp/w2v.txt" "$tmp/proj" > "$tmp/parse.out" 2>&1 <<'PY'
import json, struct, sys
import numpy as np
model, w2v, proj = sys.argv[1:4]
raw = open(model, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
b, e = head["transformer.wte.weight"]["data_offsets"]
E = np.frombuffer(raw[8 + n + b:8 + n + e], dtype="<f4").reshape(head["transformer.wte.weight"]["shape"])
lines = open(w2v).read().split("\n")
V, C = map(int, lines[0].split())
words = [l.split(" ")[0] for l in lines[1:V + 1]]
W = np.array([[np.float32(x) for x in l.split(" ")[1:]] for l in lines[1:V + 1]], dtype=np.float32)
T = np.loadtxt(proj + "/vectors.tsv", delimiter="\t", dtype=np.float32)
meta = open(proj + "/metadata.tsv").read().split("\n")[:V]
assert (V, C) == E.shape and W.shape == E.shape and T.shape == E.shape, (E.shape, W.shape, T.shape)
assert np.array_equal(W, E) and np.array_equal(T, E), "vectors differ"
assert len(set(words)) == V and words == meta and all(w and " " not in w for w in words), words
print(f"{V} x {C}, bit-identical; tokens {' '.join(words[:6])} ...")
PY
[ $? -eq 0 ] && ok "word2vec and TensorBoard exports parse back to the checkpoint's E exactly: $(cat "$tmp/parse.out")" ||
    bad "export parse-back" "$(cat "$tmp/parse.out")"
# gensim, where installed (Debian's python3-gensim; not a dependency), reads the word2vec file
if "$PYTHON" -c "import gensim" 2> /dev/null; then
    "$PYTHON" - "$tmp/w2v.txt" > "$tmp/gensim.out" 2>&1 <<'PY'
import sys
from gensim.models import KeyedVectors
kv = KeyedVectors.load_word2vec_format(sys.argv[1], binary=False)
assert len(kv.index_to_key) == 65 and kv.vector_size == 32
print(" ".join(w for w, _ in kv.most_similar("e", topn=3)))
PY
    if [ $? -eq 0 ] && [ "$(cat "$tmp/gensim.out")" = "$(./embeddings "$tmp/a" neighbors e --k=3 | awk '{ printf "%s%s", (NR > 1 ? " " : ""), $1 }')" ]; then
        ok "gensim's KeyedVectors loads the word2vec export and finds the same neighbours of e: $(cat "$tmp/gensim.out")"
    else bad "gensim" "$(cat "$tmp/gensim.out")"; fi
else echo "note: gensim is not installed: the word2vec file was checked by the parser above only"; fi
# both formats make the folders their --out names
./embeddings "$tmp/a" export --format=word2vec --out="$tmp/new/dir/w2v.txt" > /dev/null 2> "$tmp/err" &&
./embeddings "$tmp/a" export --format=tsv --out="$tmp/new2/proj" > /dev/null 2>> "$tmp/err" &&
cmp -s "$tmp/w2v.txt" "$tmp/new/dir/w2v.txt" && cmp -s "$tmp/proj/vectors.tsv" "$tmp/new2/proj/vectors.tsv" &&
    ok "export into folders that do not exist yet: made, for word2vec as for tsv" || bad "export into new folders" "$(cat "$tmp/err")"
for args in "neighbors zzz" "frobnicate" "export --format=csv --out=$tmp/x"; do
    # shellcheck disable=SC2086
    ./embeddings "$tmp/a" $args > /dev/null 2> "$tmp/err"
    rc=$?
    [ $rc -eq 2 ] && ok "./embeddings $args: exit 2: $(head -c 120 "$tmp/err")" || bad "./embeddings $args" "exit $rc"
done

# embed_init: a word2vec export starts a new run's E exactly (frozen, its E exports
# to the same bytes after 10 steps), and a file of another vocabulary or width is
# refused before training, naming the line
if ./train "$tmp/small.conf" --out_dir="$tmp/w" --max_iters=10 --embed_init="$tmp/w2v.txt" --freeze_embeddings=true \
        > "$tmp/w.out" 2> "$tmp/w.err" &&
   ./embeddings "$tmp/w" export --format=word2vec --out="$tmp/w2v_again.txt" > /dev/null 2>> "$tmp/w.err" &&
   cmp -s "$tmp/w2v.txt" "$tmp/w2v_again.txt" && grep -q "E starts as the vectors of" "$tmp/w.out"; then
    ok "embed_init = a word2vec export: the new run's E is that file's vectors, bit for bit"
else bad "embed_init" "$(cat "$tmp/w.err") $(cmp "$tmp/w2v.txt" "$tmp/w2v_again.txt")"; fi
{ head -1 "$tmp/w2v.txt"; sed -n '2p;2p' "$tmp/w2v.txt"; sed -n '4,$p' "$tmp/w2v.txt"; } > "$tmp/twice.txt"   # line 3: line 2 again
{ head -1 "$tmp/w2v.txt"; sed -n '2,$p' "$tmp/w2v.txt" | sed '5s/^[^ ]* /@@ /'; } > "$tmp/alien.txt"
{ head -1 "$tmp/w2v.txt"; sed -n '2,$p' "$tmp/w2v.txt" | sed '7s/ [^ ]*$/ 1e99/'; } > "$tmp/huge.txt"
sed -n '1,10p' "$tmp/w2v.txt" > "$tmp/short.txt"
for case in "twice.txt|:3: token .* appears a second time" "alien.txt|:6: '@@' is not a token" \
            "huge.txt|:8: token .*1e99.*not a finite" "short.txt|have vectors; token" \
            "w2v.txt --n_embd=16|:1: the file holds .* x 32 dimensions; this model's E is .* x 16"; do
    file=${case%%|*}; want=${case#*|}; n=$((${n:-0} + 1))
    # shellcheck disable=SC2086
    ./train "$tmp/small.conf" --out_dir="$tmp/wbad$n" --max_iters=1 --embed_init="$tmp/"$file > /dev/null 2> "$tmp/err"
    rc=$?
    if [ $rc -eq 2 ] && grep -q "embed_init: .*$want" "$tmp/err" && [ ! -e "$tmp/wbad$n/log.csv" ]; then
        ok "embed_init = $file: exit 2 before training: $(head -c 150 "$tmp/err")"
    else bad "embed_init = $file" "exit $rc: $(cat "$tmp/err")"; fi
done

# E = A B (embed_rank): ./embeddings and the snapshots see the full E. Its word2vec export is
# A B of the checkpoint's factors (within float rounding of numpy's product), and a snapshot at
# a step without an evaluation (30) holds the E of that step's factors: the bits the export of
# a run stopped at step 30 gives
./train "$tmp/small.conf" --out_dir="$tmp/r" --embed_rank=8 > "$tmp/r.out" 2>&1 &&
./train "$tmp/small.conf" --out_dir="$tmp/r30" --embed_rank=8 --max_iters=30 > /dev/null 2>&1 &&
./embeddings "$tmp/r" export --format=word2vec --out="$tmp/rw2v.txt" > /dev/null &&
./embeddings "$tmp/r30" export --format=word2vec --out="$tmp/rw2v30.txt" > /dev/null &&
./embeddings "$tmp/r" neighbors e --k=3 > "$tmp/rn.out" 2>&1
"$PYTHON" - "$tmp/r/last/model.safetensors" "$tmp/rw2v.txt" "$tmp/r/embeddings/E_000030.safetensors" "$tmp/rw2v30.txt" \
    > "$tmp/rparse.out" 2>&1 <<'PY'
import sys
import numpy as np
sys.path.insert(0, "scripts")
from emergent_io import read_safetensors
def tensor(path, name):
    entries, data, _ = read_safetensors(path)
    _, shape, begin, end = entries[name]
    return np.frombuffer(bytes(data[begin:end]), dtype="<f4").reshape(shape)
def w2v(path):
    lines = open(path).read().split("\n")
    V = int(lines[0].split()[0])
    return np.array([[np.float32(x) for x in l.split(" ")[1:]] for l in lines[1:V + 1]], dtype=np.float32)
model, export, snapshot, export30 = sys.argv[1:5]
entries, _, _ = read_safetensors(model)
assert "transformer.wte.weight" not in entries, "the checkpoint holds E itself"
A, Bt = tensor(model, "transformer.wte_a.weight"), tensor(model, "transformer.wte_b.weight")
E = A.astype(np.float64) @ Bt.T.astype(np.float64)
W = w2v(export)
rel = np.abs(W - E).max() / np.abs(E).max()
assert W.shape == E.shape and rel < 1e-6, (W.shape, E.shape, rel)
assert np.array_equal(tensor(snapshot, "wte"), w2v(export30)), "the step-30 snapshot is not A B of step 30"
print(f"E {E.shape[0]} x {E.shape[1]} = A ({A.shape[1]}) B: export within {rel:.1e} of A B; snapshot 30 = A B of step 30")
PY
if [ $? -eq 0 ] && [ "$(wc -l < "$tmp/rn.out")" -eq 3 ] && grep -q "^embeddings: E = A B, A" "$tmp/r.out"; then
    ok "embed_rank 8: ./embeddings export and neighbors and the snapshots use E = A B: $(cat "$tmp/rparse.out")"
else bad "embed_rank ./embeddings" "$(tail -3 "$tmp/rparse.out") $(cat "$tmp/rn.out")"; fi

# ./embeddings explain: every printed number recomputed from the ones before it
if "$PYTHON" tests/test_explain.py > "$tmp/explain.out" 2>&1; then
    ok "./embeddings explain: $(grep -c '^PASS' "$tmp/explain.out") checks of its numbers against numpy ($(grep -o 'took [0-9.]* s' "$tmp/explain.out"))"
else bad "./embeddings explain" "$(grep -v '^PASS' "$tmp/explain.out" | head -5)"; fi

# the pictures: PCA panels in one basis, and the diagnostics over steps
if "$PYTHON" scripts/plot_embeddings.py "$tmp/a" --out "$tmp/pca.png" --stats-out "$tmp/stats.png" > "$tmp/plot.out" 2>&1 &&
   [ "$(head -c 4 "$tmp/pca.png" | tail -c 3)" = PNG ] && [ "$(head -c 4 "$tmp/stats.png" | tail -c 3)" = PNG ]; then
    ok "plot_embeddings.py: $(grep -c '^step' "$tmp/plot.out") panels and the diagnostics drawn"
else bad "plot_embeddings.py" "$(tail -3 "$tmp/plot.out")"; fi

echo "embeddings: $pass passed, $fail failed"
[ $fail -eq 0 ]
