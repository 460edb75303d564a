# lib.sh: what every shell suite starts with. Source it from a suite in tests/:
#   . "$(dirname "$0")/lib.sh" NAME
# It moves to the repository root, finds Tiny Shakespeare ($corpus: $TINYSHAKESPEARE,
# data/ or ../shared/data/; a FAIL line and exit 1 without it), makes $tmp (removed on
# exit), and defines ok/bad, which print the PASS/FAIL lines run_all.sh counts, and
# small_conf, the small fast model the suites train.
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
PYTHON=${PYTHON:-/usr/bin/python3}
corpus=""
for c in "${TINYSHAKESPEARE:-}" data/tinyshakespeare.txt ../shared/data/tinyshakespeare.txt; do
    [ -n "$c" ] && [ -s "$c" ] && { corpus=$(realpath "$c"); break; }
done
if [ -z "$corpus" ]; then
    echo "FAIL $1: Tiny Shakespeare not found: run 'make data' or set TINYSHAKESPEARE=/path/to/it"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { echo "PASS $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }

# small_conf FILE ['key = value' ...]: the small model (2 layers, n_embd 32, 32 x 8 tokens)
# on Tiny Shakespeare with its data cached under $tmp, plus the suite's own keys.
small_conf() {
    local file=$1; shift
    {
        printf 'input = %s\ndata_dir = %s/cache\n' "$corpus" "$tmp"
        printf '%s\n' "n_layer = 2" "n_head = 2" "n_embd = 32" "block_size = 32" "batch_size = 8" \
            "warmup_iters = 5" "eval_iters = 2" "log_interval = 10" "$@"
    } > "$file"
}
