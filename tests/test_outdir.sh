#!/usr/bin/env bash
# test_outdir.sh: nothing of a run is lost to another run, even by mistake.
#   one run per out_dir: a second ./train into a busy out_dir exits 2 naming the
#     first one's pid, and writes nothing; a run killed with SIGKILL leaves no lock
#     behind, and --resume then ends bit-identical to a run never disturbed;
#   no silent overwrite: a new run into an out_dir that holds a run exits 2 naming
#     --resume and --overwrite, every file untouched; --overwrite leaves the old run
#     whole (and --resume-able) until its own first checkpoint, then moves it to
#     out_dir/previous-<UTC time>/; files of no run (the lock, caches, previous-*)
#     do not count as a run;
#   config.conf repeats the run: it never says resume or overwrite, a resumed run's
#     is the original's, and ./train out_dir/config.conf --out_dir=NEW repeats it;
#   an --overwrite killed inside its final renames is finished by the next run;
#   temporaries left by a killed writer are cleared by the next run into out_dir.
set -u
. "$(dirname "$0")/lib.sh" outdir

small_conf "$tmp/small.conf" "max_iters = 20" "lr_decay_iters = 100" "eval_interval = 10" "sample_tokens = 0" \
    "embed_snapshot_interval = 10"
rows() { cut -d, -f1-5,8,9 "$1/log.csv"; }  # every log.csv column but the timing ones
files_md5() { (cd "$1" && find . -type f ! -name .lock | sort | xargs md5sum); }  # every file but the lock
saved_step() { head -c 4000 "$1/train_state.safetensors" | grep -ao '"emergent.step":"[0-9]*"' | tr -dc '0-9'; }
wait_for() {  # FILE PID: until FILE exists (or PID ended)
    while [ ! -e "$1" ] && kill -0 "$2" 2> /dev/null; do sleep 0.01; done
}
./train "$tmp/small.conf" --out_dir="$tmp/done" > /dev/null 2> "$tmp/err" || bad "setup" "$(cat "$tmp/err")"

# ---- one run per out_dir ----
out="$tmp/busy"
./train "$tmp/small.conf" --out_dir="$out" --max_iters=100000 > /dev/null 2>&1 &
first=$!
wait_for "$out/train_state.safetensors" $first
./train "$tmp/small.conf" --out_dir="$out" --max_iters=100000 --seed=7 > /dev/null 2> "$tmp/err"
rc=$?
if [ $rc -ne 2 ] || ! grep -qF "error: out_dir $out is in use by another ./train (pid $first holds $out/.lock)" "$tmp/err"; then
    bad "a second run into a busy out_dir" "exit $rc: $(cat "$tmp/err")"
elif grep -q "seed = 7" "$out/config.conf"; then bad "a second run into a busy out_dir" "it wrote config.conf"
else ok "a second run into a busy out_dir: exit 2, $(head -c 150 "$tmp/err")..."; fi
./train "$tmp/small.conf" --out_dir="$out" --resume > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 2 ] && grep -q "pid $first" "$tmp/err" && ok "--resume into a busy out_dir is refused the same way" ||
    bad "--resume into a busy out_dir" "exit $rc: $(cat "$tmp/err")"
kill -9 $first
wait $first 2> /dev/null
saved=$(saved_step "$out")
to=$((saved + 10))
if [ -z "$saved" ]; then bad "SIGKILL leaves no lock" "no training state"
elif ! ./train "$tmp/small.conf" --out_dir="$out" --resume --max_iters=$to > /dev/null 2> "$tmp/err"; then
    bad "SIGKILL leaves no lock" "--resume after SIGKILL: $(cat "$tmp/err")"
elif ! ./train "$tmp/small.conf" --out_dir="$tmp/busy_ref" --max_iters=$to > /dev/null 2> "$tmp/err" ||
     ! cmp -s <(rows "$out") <(rows "$tmp/busy_ref"); then
    bad "SIGKILL leaves no lock" "the resumed run differs from one never disturbed: $(diff <(rows "$out") <(rows "$tmp/busy_ref") | head -3)"
else ok "the lock of a run killed by SIGKILL blocks nothing: --resume runs to step $to, rows bit-identical to an undisturbed run's"; fi

# ---- no silent overwrite ----
before=$(files_md5 "$tmp/done")
./train "$tmp/small.conf" --out_dir="$tmp/done" > /dev/null 2> "$tmp/err"
rc=$?
if [ $rc -ne 2 ] || ! grep -qF "error: out_dir $tmp/done holds another run (config.conf, log.csv, embeddings.csv, train_state.safetensors, model.safetensors, config.json, tokenizer.bin, last/, embeddings/): continue it with --resume, or start anew with --overwrite" "$tmp/err"; then
    bad "a new run into a finished run's out_dir" "exit $rc: $(cat "$tmp/err")"
elif [ "$before" != "$(files_md5 "$tmp/done")" ]; then bad "a new run into a finished run's out_dir" "files changed"
else ok "a new run into a finished run's out_dir: exit 2, every file untouched: $(head -c 120 "$tmp/err")..."; fi
./train "$tmp/small.conf" --out_dir="$tmp/done" --resume --overwrite > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 2 ] && grep -q "\-\-resume and --overwrite exclude each other" "$tmp/err" &&
    ok "--resume with --overwrite: exit 2, $(head -c 100 "$tmp/err")" || bad "--resume --overwrite" "exit $rc: $(cat "$tmp/err")"

# --overwrite, killed before its first checkpoint: the old run is whole and resumes
out="$tmp/over"
cp -r "$tmp/done" "$out"
before=$(files_md5 "$out")
./train "$tmp/small.conf" --out_dir="$out" --overwrite --seed=7 --max_iters=100000 --eval_interval=100000 \
    > "$tmp/over.out" 2>&1 &
pid=$!
while kill -0 $pid 2> /dev/null && [ "$(cat "$out/.overwriting/log.csv" 2> /dev/null | wc -l)" -lt 5 ]; do sleep 0.01; done
kill -9 $pid
wait $pid 2> /dev/null
if [ ! -s "$out/.overwriting/log.csv" ]; then bad "--overwrite killed early" "no rows in .overwriting/log.csv: $(cat "$tmp/over.out")"
elif [ "$before" != "$(files_md5 "$out" | grep -v '\./\.overwriting/')" ]; then
    bad "--overwrite killed early" "the old run's files changed"
elif ! ./train "$out/config.conf" --out_dir="$out" --resume --max_iters=30 > /dev/null 2> "$tmp/err"; then
    bad "--overwrite killed early" "the old run does not resume: $(cat "$tmp/err")"
elif [ -e "$out/.overwriting" ] || [ "$(tail -n 1 "$out/log.csv" | cut -d, -f1)" != 30 ]; then
    bad "--overwrite killed early" "after --resume: $(ls -A "$out"), last row $(tail -n 1 "$out/log.csv" | cut -d, -f1)"
else ok "--overwrite killed before its first checkpoint: every file of the old run untouched, and --resume continues it to step 30"; fi

# --overwrite to the end: the new run in out_dir, the old one whole in previous-<UTC time>/
out="$tmp/over2"
cp -r "$tmp/done" "$out"
before=$(files_md5 "$out")
./train "$tmp/small.conf" --out_dir="$out" --overwrite --seed=7 > "$tmp/over2.out" 2> "$tmp/err"
rc=$?
./train "$tmp/small.conf" --out_dir="$tmp/seed7" --seed=7 > /dev/null 2>&1
prev=$(ls -d "$out"/previous-* 2> /dev/null)
if [ $rc -ne 0 ]; then bad "--overwrite" "exit $rc: $(cat "$tmp/err")"
elif [ "$(echo "$prev" | wc -w)" != 1 ] || ! [[ $prev =~ /previous-[0-9]{8}T[0-9]{6}Z$ ]]; then bad "--overwrite" "previous folders: '$prev'"
elif [ "$before" != "$(files_md5 "$prev")" ]; then bad "--overwrite" "the old run's files changed on the way to $prev"
elif ! cmp -s <(rows "$out") <(rows "$tmp/seed7") || ! grep -q "^seed = 7$" "$out/config.conf" ||
     ! cmp -s "$out/embeddings/E_000020.safetensors" "$tmp/seed7/embeddings/E_000020.safetensors"; then
    bad "--overwrite" "out_dir does not hold the new run: $(diff <(rows "$out") <(rows "$tmp/seed7") | head -3)"
elif [ -e "$out/.overwriting" ]; then bad "--overwrite" "the staging folder is left"
elif ! ./sample "$prev" --max_new_tokens=10 > /dev/null 2> "$tmp/err"; then bad "--overwrite" "./sample $prev: $(cat "$tmp/err")"
else ok "--overwrite: at the first checkpoint the old run moved whole to ${prev#$out/}/ (./sample loads it); out_dir holds the new run, bit-identical to one in a fresh out_dir"; fi

# --overwrite killed inside its final renames (the state built by hand, as out_dir.h's
# journal describes it): the next run finishes the move, the old run whole in previous-*,
# and the new one resumes to the end, bit-identical to the run never stopped
./train "$tmp/small.conf" --out_dir="$tmp/b10" --seed=7 --max_iters=10 > /dev/null 2>&1
run_files="config.conf log.csv embeddings.csv train_state.safetensors model.safetensors config.json tokenizer.bin last embeddings"
for cut in first second; do  # killed in the first phase (old files out) or the second (new files in)
    out="$tmp/cut_$cut" prev_name="previous-20260101T000000Z"
    cp -r "$tmp/done" "$out"
    mkdir -p "$out/.overwriting" "$out/$prev_name"
    printf '%s\n' "$prev_name" > "$out/.overwriting/moving"
    for f in $run_files; do
        [ -e "$tmp/b10/$f" ] && cp -r "$tmp/b10/$f" "$out/.overwriting/" && echo "$f" >> "$out/.overwriting/moving"
    done
    if [ $cut = first ]; then mv "$out/config.conf" "$out/log.csv" "$out/$prev_name/"
    else
        for f in $run_files; do [ -e "$out/$f" ] && mv "$out/$f" "$out/$prev_name/"; done
        mv "$out/.overwriting/config.conf" "$out/.overwriting/log.csv" "$out/"
    fi
    ./train "$tmp/small.conf" --out_dir="$out" --seed=7 --resume > /dev/null 2> "$tmp/err"
    rc=$?
    if [ $rc -ne 0 ]; then bad "--overwrite cut in its $cut phase" "exit $rc: $(cat "$tmp/err")"
    elif [ "$(files_md5 "$tmp/done")" != "$(files_md5 "$out/$prev_name")" ]; then
        bad "--overwrite cut in its $cut phase" "the old run is not whole in $prev_name: $(ls "$out/$prev_name")"
    elif [ -e "$out/.overwriting" ] || ! cmp -s <(rows "$out") <(rows "$tmp/seed7"); then
        bad "--overwrite cut in its $cut phase" "the new run: $(ls -A "$out"); $(diff <(rows "$out") <(rows "$tmp/seed7")  | head -3)"
    elif ! grep -q "^note: finished moving an interrupted --overwrite" "$tmp/err"; then
        bad "--overwrite cut in its $cut phase" "no note: $(cat "$tmp/err")"
    else ok "--overwrite killed in its $cut phase of renames: the next run finishes the move (the old run whole in previous-*, the new one resumes bit-identical)"; fi
done

# files of no run: the lock, previous-* folders, a data cache inside out_dir
out="$tmp/norun"
mkdir -p "$out/previous-20000101T000000Z"
: > "$out/.lock"
if ./train "$tmp/small.conf" --out_dir="$out" --data_dir="$out/cache" --max_iters=10 > /dev/null 2> "$tmp/err" &&
   ./train "$tmp/small.conf" --out_dir="$out" --data_dir="$out/cache" --max_iters=10 --overwrite > /dev/null 2> "$tmp/err" &&
   [ -n "$(ls "$out/cache")" ] && [ "$(ls -d "$out"/previous-* | wc -l)" = 2 ]; then
    ok "the lock, previous-* folders and a data cache in out_dir are no run: a new run starts; --overwrite moves the run's files only"
else bad "files of no run" "$(cat "$tmp/err")"; fi

# ---- config.conf repeats the run ----
out="$tmp/conf"
./train "$tmp/small.conf" --out_dir="$out" > /dev/null 2>&1 && cp "$out/config.conf" "$tmp/original.conf" &&
    ./train "$out/config.conf" --resume > /dev/null 2> "$tmp/err"
if grep -q "^resume\|^overwrite" "$out/config.conf" "$tmp/done/config.conf"; then
    bad "config.conf" "it records resume or overwrite: $(grep "^resume\|^overwrite" "$out/config.conf")"
elif ! cmp -s "$tmp/original.conf" "$out/config.conf"; then
    bad "config.conf" "--resume changed it: $(diff "$tmp/original.conf" "$out/config.conf" | head -4)"
elif ! ./train "$out/config.conf" --out_dir="$tmp/again" > /dev/null 2> "$tmp/err" || ! cmp -s <(rows "$out") <(rows "$tmp/again"); then
    bad "config.conf" "./train out_dir/config.conf --out_dir=NEW does not repeat the run: $(tail -2 "$tmp/err")"
else ok "config.conf records neither resume nor overwrite; --resume leaves it as it was; ./train out_dir/config.conf --out_dir=NEW repeats the run bit for bit"; fi

# ---- temporaries a killed writer left ----
out="$tmp/left"
cp -r "$tmp/done" "$out"
printf 'x' > "$out/train_state.safetensors.999999.tmp"
printf 'x' > "$out/last/model.safetensors.999999-1.tmp"
printf 'x' > "$out/embeddings/E_000010.safetensors.999999.tmp"
printf 'x' > "$out/notes.tmp"  # not one of the run's files: left alone
./train "$out/config.conf" --out_dir="$out" --resume --max_iters=30 > "$tmp/left.out" 2> "$tmp/err"
rc=$?
left=$(cd "$out" && find . -name '*.tmp' | sort | paste -sd' ')
if [ $rc -ne 0 ]; then bad "leftover temporaries" "exit $rc: $(cat "$tmp/err")"
elif [ "$left" != "./notes.tmp" ] || ! grep -q "^note: removed 3 temporary file(s) that an interrupted run left in $out" "$tmp/err"; then
    bad "leftover temporaries" "left: '$left'; $(grep note "$tmp/err")"
else ok "the next run into out_dir removes the temporaries a killed writer left (3), and no other file"; fi

echo "test_outdir: $pass passed, $fail failed"
[ $fail -eq 0 ]
