#!/usr/bin/env bash
# test_html.sh: `./embeddings OUT_DIR html --out=FILE.html`, the page that plays a run's snapshots
# of E. The command: one self-contained file, written whole or not at all, and exit 2 naming the
# problem for a bad out_dir, a run without snapshots, a missing or unwritable --out; --step gives
# the other commands a snapshot's E. The page itself in headless chromium (tests/test_html.py),
# skipped with a note where chromium, chromedriver or python3-selenium is missing.
set -u
. "$(dirname "$0")/lib.sh" html

small_conf "$tmp/small.conf" "max_iters = 40" "lr_decay_iters = 40" "eval_interval = 20" "sample_tokens = 0" \
    "embed_snapshot_interval = 10"
./train "$tmp/small.conf" --out_dir="$tmp/a" > "$tmp/a.out" 2>&1 || bad "run" "$(tail -3 "$tmp/a.out")"

# --step: a snapshot's E; the last snapshot is the checkpoint in last/
if [ "$(./embeddings "$tmp/a" neighbors e --step=40 2>&1)" = "$(./embeddings "$tmp/a/last" neighbors e 2>&1)" ] &&
   [ "$(./embeddings "$tmp/a" neighbors e --step=10)" != "$(./embeddings "$tmp/a" neighbors e --step=40)" ]; then
    ok "neighbors --step=40 is the step-40 checkpoint's answer, --step=10 another"
else bad "--step" "$(./embeddings "$tmp/a" neighbors e --step=40 2>&1 | head -3)"; fi
./embeddings "$tmp/a" neighbors e --step=15 > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 2 ] && grep -q "no snapshot .*E_000015.safetensors" "$tmp/err" && ok "--step=15 (no snapshot): exit 2: $(head -c 100 "$tmp/err")" ||
    bad "--step=15" "exit $rc: $(cat "$tmp/err")"

# the page
if ./embeddings "$tmp/a" html --out="$tmp/page/run.html" > "$tmp/html.out" 2>&1 && [ -s "$tmp/page/run.html" ] &&
   [ -z "$(ls "$tmp/page" | grep -v '^run.html$')" ] && grep -q '<script type="application/json" id="run-data">{' "$tmp/page/run.html"; then
    ok "html into a folder it makes: $(cat "$tmp/html.out")"
else bad "html" "$(cat "$tmp/html.out")"; fi
if grep -Eiq '<(script|link|img|iframe)[^>]*(src|href)=|@import|url\(' "$tmp/page/run.html"; then
    bad "self-contained" "the page names an outside resource: $(grep -Eio '<(script|link|img|iframe)[^>]*(src|href)=[^>]*' "$tmp/page/run.html" | head -2)"
else ok "self-contained: no src=, href=, @import or url( in the page"; fi

# bad input: exit 2, a message naming the problem, nothing written
mkdir -p "$tmp/empty" "$tmp/nosnap"
cp "$tmp/a/config.conf" "$tmp/a/tokenizer.bin" "$tmp/nosnap/"
touch "$tmp/afile"
cp "$tmp/page/run.html" "$tmp/keep.html"
cp -r "$tmp/a" "$tmp/broken"
head -c 100 "$tmp/a/embeddings/E_000020.safetensors" > "$tmp/broken/embeddings/E_000020.safetensors"
cp "$tmp/keep.html" "$tmp/broken.html"
for case in "$tmp/missing html --out=$tmp/x.html|is not a directory" \
            "$tmp/empty html --out=$tmp/x.html|no snapshots of E in $tmp/empty/embeddings" \
            "$tmp/nosnap html --out=$tmp/x.html|no snapshots of E" \
            "$tmp/a html|where to?" \
            "$tmp/a html --out=$tmp/afile/x.html|afile exists and is not a directory" \
            "$tmp/a html --out=$tmp/page|is a directory" \
            "$tmp/broken html --out=$tmp/broken.html|E_000020.safetensors"; do
    args=${case%%|*}; want=${case#*|}
    # shellcheck disable=SC2086
    ./embeddings $args > /dev/null 2> "$tmp/err"
    rc=$?
    if [ $rc -eq 2 ] && grep -q -- "$want" "$tmp/err" && [ ! -e "$tmp/x.html" ] && [ -z "$(ls "$tmp" | grep '\.tmp$')" ]; then
        ok "html ${args#"$tmp"/}: exit 2: $(head -c 140 "$tmp/err")"
    else bad "html ${args#"$tmp"/}" "exit $rc: $(cat "$tmp/err")"; fi
done
cmp -s "$tmp/keep.html" "$tmp/broken.html" && ok "a page that could not be built leaves the earlier file as it was" ||
    bad "atomic" "broken.html changed"

# the page in a browser
missing=()
command -v chromium > /dev/null || missing+=(chromium)
command -v chromedriver > /dev/null || missing+=(chromium-driver)
"$PYTHON" -c "import selenium" 2> /dev/null || missing+=(python3-selenium)
if [ ${#missing[@]} -gt 0 ]; then
    echo "SKIP the page in a browser: ${missing[*]} not installed (scripts/install_deps.sh installs them)"
else
    "$PYTHON" tests/test_html.py "$tmp/a" "$tmp/page/run.html" "$tmp/shot.png" > "$tmp/browser.out" 2>&1
    rc=$?
    cat "$tmp/browser.out"
    p=$(grep -c '^PASS' "$tmp/browser.out"); f=$(grep -c '^FAIL' "$tmp/browser.out")
    pass=$((pass + p)); fail=$((fail + f))
    [ $rc -ne 0 ] && [ "$f" -eq 0 ] && bad "browser test" "exit $rc: $(tail -3 "$tmp/browser.out")"
fi

echo "html: $pass passed, $fail failed"
[ $fail -eq 0 ]
