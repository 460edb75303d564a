#!/usr/bin/env bash
# test_lab.sh: scripts/lab.py, the embedding lab's harness, on a micro experiment
# (2 variants x 3 seeds of the small model, 20 steps): it runs every (variant, seed)
# and writes the page; a second call runs nothing and writes the same bytes; a
# changed variant reruns that variant only; a run cut short resumes; malformed
# experiment files are refused with exit 2 naming the line.
set -u
. "$(dirname "$0")/lib.sh" lab

small_conf "$tmp/base.conf" "max_iters = 20" "lr_decay_iters = 20" "eval_interval = 10" "sample_tokens = 0" \
    "embed_snapshot_interval = 0"
lab() { "$PYTHON" scripts/lab.py "$@" --runs "$tmp/runs" --docs "$tmp/docs" > "$tmp/lab.out" 2> "$tmp/lab.err"; }
experiment() {  # FILE UNTIED_ARGS
    printf '%s\n' "# a micro experiment" "claim = tying helps" "source = a test" "base = $tmp/base.conf" \
        "args = --n_layer=1" "seeds = 1 2 3" "variant tied = --tie_weights=true" "variant untied = $2" > "$1"
}
experiment "$tmp/micro.lab" "--tie_weights=false"

if lab "$tmp/micro.lab" && grep -q "6 run(s) made, 0 reused" "$tmp/lab.out" &&
   grep -q "^| untied | \`--tie_weights=false\` | [0-9.]* ± [0-9.]* |" "$tmp/docs/micro.md" &&
   [ "$(head -c 4 "$tmp/docs/micro_loss.png" | tail -c 3)" = PNG ] &&
   [ "$(head -c 4 "$tmp/docs/micro_embeddings.png" | tail -c 3)" = PNG ]; then
    ok "lab.py: 2 variants x 3 seeds run one at a time; the page has mean ± std per variant and both figures"
else bad "lab.py first call" "$(cat "$tmp/lab.out" "$tmp/lab.err" | tail -5)"; fi
sums=$(md5sum "$tmp"/docs/*)
if lab "$tmp/micro.lab" && grep -q "0 run(s) made, 6 reused" "$tmp/lab.out" && [ "$(md5sum "$tmp"/docs/*)" = "$sums" ]; then
    ok "lab.py a second time: every run reused, the page and PNGs the same bytes"
else bad "lab.py second call" "$(cat "$tmp/lab.out" "$tmp/lab.err" | tail -3)"; fi

# a changed variant: only its 3 runs again, over the old ones (--overwrite)
experiment "$tmp/micro.lab" "--tie_weights=false --embed_init_std=0.05"
if lab "$tmp/micro.lab" && grep -q "3 run(s) made, 3 reused" "$tmp/lab.out" &&
   grep -q "embed_init_std=0.05" "$tmp/docs/micro.md"; then
    ok "a changed variant reruns its seeds only: $(tail -1 "$tmp/lab.out")"
else bad "changed variant" "$(cat "$tmp/lab.out" "$tmp/lab.err" | tail -3)"; fi

# a run cut short (no lab_run.json, a checkpoint at step 10) resumes to the same log
run="$tmp/runs/micro/tied/seed-2"
cp "$run/log.csv" "$tmp/full_log.csv"
rm -rf "$run" && ./train "$tmp/base.conf" --n_layer=1 --tie_weights=true --seed=2 --out_dir="$run" --max_iters=10 \
    --lr_decay_iters=20 > /dev/null 2>&1
if lab "$tmp/micro.lab" && grep -q "1 run(s) made, 5 reused" "$tmp/lab.out" &&
   cmp -s <(cut -d, -f1-5,8,9 "$tmp/full_log.csv") <(cut -d, -f1-5,8,9 "$run/log.csv"); then
    ok "a run cut short resumes (--resume) to the uninterrupted run's log"
else bad "resume a cut run" "$(cat "$tmp/lab.out" "$tmp/lab.err" | tail -3)"; fi

# report = frequency: the final E by frequency group, from the same runs
mkdir -p "$tmp/freq" && { cat "$tmp/micro.lab"; echo "report = frequency"; } > "$tmp/freq/micro.lab"
if lab "$tmp/freq/micro.lab" --only-page && grep -q "^## E by token frequency" "$tmp/docs/micro.md" &&
   [ "$(head -c 4 "$tmp/docs/micro_frequency.png" | tail -c 3)" = PNG ] &&
   [ "$(awk -F'|' '/^\*\*untied\*\* \(V = 65,/ { on = 1 } on && /^\| [1-5] \(/ { n += $3 } END { print n }' "$tmp/docs/micro.md")" = 65 ]; then
    ok "report = frequency: per variant 5 frequency groups holding all 65 tokens, norm and neighbour agreement, a figure"
else bad "report = frequency" "$(cat "$tmp/lab.out" "$tmp/lab.err" | tail -3) $(sed -n '/E by token/,$p' "$tmp/docs/micro.md" | head -20)"; fi

# malformed experiment files
printf '%s\n' "claim = x" "base = $tmp/base.conf" "seeds = 1 2" "variant a = " "variant b = --seed=1" > "$tmp/seeds.lab"
printf '%s\n' "claim = x" "base = $tmp/base.conf" "seeds = 1 2 3" "varient a = x" > "$tmp/key.lab"
printf '%s\n' "claim = x" "base = $tmp/base.conf" "seeds = 1 2 3" "variant a = " "variant a = --n_layer=1" > "$tmp/twice.lab"
printf '%s\n' "claim = x" "base = $tmp/base.conf" "seeds = 1 2 3" "report = norms" "variant a = " "variant b = --n_layer=1" > "$tmp/report.lab"
for case in "seeds.lab|need at least 3 different seeds" "key.lab|:4: unknown key 'varient a'" \
            "twice.lab|:5: variant 'a' appears twice" "report.lab|the one report is 'frequency'" \
            "nosuch|no such experiment file"; do
    file=${case%%|*}; want=${case#*|}
    lab "$tmp/$file"
    rc=$?
    if [ $rc -eq 2 ] && grep -q "$want" "$tmp/lab.err"; then ok "lab.py $file: exit 2: $(head -c 120 "$tmp/lab.err")"
    else bad "lab.py $file" "exit $rc: $(cat "$tmp/lab.err")"; fi
done

echo "lab: $pass passed, $fail failed"
[ $fail -eq 0 ]
