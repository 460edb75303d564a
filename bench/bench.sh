#!/usr/bin/env bash
# bench/bench.sh: the speed benchmark, in one run (`make bench`): the CPU's FMA peak,
# then full training steps of the C model (bench/bench_step) against the same model in
# PyTorch (bench/bench_torch.py), and writes docs/bench.md with the machine and the tables.
#
#   baby and medium configs (configs/bench_*.conf), C and torch, on 1 thread and on all (or on
#   each thread count BENCH_THREADS lists); C on all threads also in one pass
#   (--batch_groups=1), against the configs' 2 batch groups;
#   torch twice: tuned (bench/bench_torch.py's settings) and as installed (environment untouched)
#   the linear layers' products alone (bench/bench_step --products), hot and cold, at each count
#   a block_size sweep 64..1024 on the baby shape, B = 768/T (at least 1), all threads
#   BENCH_FULL=1: also the wall time of the default run, ./train configs/shakespeare_char.conf
#
# Each config runs C then torch back to back, so both see the same machine. Raw outputs go
# to out/bench/. Environment:
#   PYTHON         the Python with torch (default /usr/bin/python3)
#   BENCH_THREADS  "all threads" (default: nproc), or a list of thread counts ("2 16": rows for 1, 2
#                  and 16 threads, "all threads" the largest)
#   BENCH_SWEEP=0  leave out the block_size sweep; BENCH_PER_CPU=0 the 1-thread step on each CPU
#   BENCH_OUT      the report (default docs/bench.md); BENCH_RAW the raw outputs (default out/bench)
#   BENCH_FULL=1   add the default run's wall time (about a minute more on 2 cores)
#   BENCH_QUICK=1  3 steps per run: checks that everything works, measures nothing
#   BENCH_ROUNDS=N each baby and medium measurement N times (default 1), the implementations
#                  in a rotated order each round; the tables take each one's median run, and
#                  list every round's median step. A shared machine's speed can drift by 10-35% within
#                  minutes, so one C run and one torch run back to back can meet different moments.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-/usr/bin/python3}
THREAD_LIST=${BENCH_THREADS:-$(nproc)}
read -ra THREAD_LIST <<<"${THREAD_LIST//,/ }"
OUT=${BENCH_OUT:-docs/bench.md}
RAW=${BENCH_RAW:-out/bench}
FULL=${BENCH_FULL:-0}
QUICK=${BENCH_QUICK:-0}
ROUNDS=${BENCH_ROUNDS:-1}
SWEEP=${BENCH_SWEEP:-1}
PER_CPU_STEPS=${BENCH_PER_CPU:-1}
SWEEP_T="64 128 256 512 1024"
SWEEP_TOKENS=768

# timed steps, warmup steps, timed evaluation forwards: at least 20 timed steps everywhere
BABY_OPTS=(--steps=30 --warmup=5 --eval_reps=10)
MEDIUM_OPTS=(--steps=20 --warmup=2 --eval_reps=5)
SWEEP_OPTS=(--steps=20 --warmup=3 --eval_reps=5)
PRODUCT_REPS=10  # calls of each product, hot and cold: the fastest counts
if [[ $QUICK == 1 ]]; then
    BABY_OPTS=(--steps=3 --warmup=1 --eval_reps=2)
    MEDIUM_OPTS=("${BABY_OPTS[@]}")
    SWEEP_OPTS=("${BABY_OPTS[@]}")
    PRODUCT_REPS=2
fi

die() { echo "error: $*" >&2; exit 1; }

# ---- preconditions ----
"$PYTHON" -c 'import torch' 2>/dev/null ||
    die "$PYTHON cannot import torch: install python3-torch (scripts/install_deps.sh) or set PYTHON=/path/to/python"
make -s bench/bench_step bench/fma_peak || die "cannot build bench/bench_step and bench/fma_peak"
[[ -x bench/bench_step && -x bench/fma_peak ]] || die "bench/bench_step or bench/fma_peak is missing after make"
if [[ $FULL == 1 ]]; then
    make -s train data/tinyshakespeare.txt || die "BENCH_FULL=1 needs ./train and data/tinyshakespeare.txt"
fi
[[ ${#THREAD_LIST[@]} -gt 0 ]] || die "BENCH_THREADS is empty"
for t in "${THREAD_LIST[@]}"; do
    [[ $t =~ ^[1-9][0-9]*$ ]] || die "BENCH_THREADS=\"${BENCH_THREADS:-}\": '$t' is not a positive integer"
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS=$ROUNDS is not a positive integer"
mkdir -p "$RAW" "$(dirname "$OUT")"
# 1 and every listed count, ascending; "all threads" is the largest
mapfile -t THREAD_COUNTS < <(printf '%s\n' 1 "${THREAD_LIST[@]}" | sort -n -u)
NTHREADS=${THREAD_COUNTS[-1]}

COMMANDS=$RAW/commands.txt  # every measuring command, for the report
: >"$COMMANDS"
START=$(date +%s)

# ---- helpers ----
# field LINE KEY: the value of KEY=value in a "bench ..." line
field() {
    local kv
    for kv in $1; do
        if [[ $kv == "$2="* ]]; then echo "${kv#*=}"; return; fi
    done
    die "no field '$2' in: $1"
}
# calc FORMAT EXPR: awk arithmetic, printf-formatted
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
# ms LINE KEY: a time in ms, about 3 significant figures
ms() { awk -v x="$(field "$1" "$2")" 'BEGIN { printf(x >= 100 ? "%.0f" : x >= 10 ? "%.1f" : "%.2f", x) }'; }

# run_logged NAME CMD...: run CMD, keep its output in $RAW/NAME.log, print its "bench" line
run_logged() {
    local name=$1 log="$RAW/$1.log"
    shift
    echo "$*" >>"$COMMANDS"
    echo "  $*" >&2
    "$@" >"$log" 2>&1 || { tail -n 20 "$log" >&2; die "failed: $* (output in $log)"; }
    grep '^bench ' "$log" | tail -n 1
}
# bench_c NAME THREADS ARGS...  /  bench_torch NAME THREADS ARGS...
bench_c() { local name=$1 t=$2; shift 2; run_logged "$name" env OMP_NUM_THREADS="$t" bench/bench_step "$@"; }
bench_torch() { local name=$1 t=$2; shift 2; run_logged "$name" "$PYTHON" bench/bench_torch.py "$@" --threads="$t"; }

# ---- the machine ----
echo "machine and FMA peak" >&2
CPU=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
CORES=$(lscpu | awk -F: '/^Core\(s\) per socket/ {c = $2} /^Socket\(s\)/ {s = $2} END {print c * s}')
TPC=$(lscpu | sed -n 's/^Thread(s) per core: *//p')
FLAGS=$(lscpu | sed -n 's/^Flags: *//p')
# family and model tell CPU generations apart that share a model name ("AMD EPYC" is both Zen 4,
# family 25, and Zen 5, family 26, whose FMA peaks per core differ by 2x); and the caches
FAMILY=$(lscpu | sed -n 's/^CPU family: *//p' | head -n 1)
MODEL=$(lscpu | sed -n 's/^Model: *//p' | head -n 1)
CACHES=$(lscpu | sed -n 's/^\(L1d\|L2\|L3\) cache: *\(.*\)/\1 \2/p' | paste -sd ',' - | sed 's/,/, /g')
if [[ -z "$CACHES" ]]; then  # some VMs' lscpu lists no caches; glibc reads them from CPUID (per core, or as the VM reports them)
    CACHES=$(getconf -a 2>/dev/null | awk '/^LEVEL1_DCACHE_SIZE|^LEVEL2_CACHE_SIZE|^LEVEL3_CACHE_SIZE/ && $2 > 0 {
        name = $1 ~ /LEVEL1/ ? "L1d" : $1 ~ /LEVEL2/ ? "L2" : "L3"
        out = out (out ? ", " : "") name " " ($2 >= 1048576 ? $2 / 1048576 " MiB" : $2 / 1024 " KiB")
    } END {if (out) print out " (getconf; lscpu lists none)"}')
fi
VEC="no AVX2"
if [[ " $FLAGS " == *" avx2 "* ]]; then VEC=AVX2; fi
if [[ " $FLAGS " == *" avx512f "* ]]; then VEC=AVX-512; fi
CFLAGS_USED=$(make -s -n -B bench/fma_peak | grep -- ' -o bench/fma_peak ' | head -n 1 | sed 's/^[^ ]* //; s/ -o bench.*//')
GCC=$(${CC:-gcc} --version | head -n 1)
TORCH=$("$PYTHON" - <<'EOF'
import re
import torch
torch.randn(64, 64) @ torch.randn(64, 64)  # loads the BLAS, so /proc/self/maps names it
show = torch.__config__.show()
blas = re.search(r"BLAS_INFO=([^,\s]+)", show)
cap = re.search(r"CPU capability usage: (\S+)", show)
libs = sorted({line.split()[-1] for line in open("/proc/self/maps") if "blas" in line.lower() and "/" in line})
print(f"torch {torch.__version__}, BLAS_INFO={blas.group(1) if blas else '?'}, "
      f"CPU capability {cap.group(1) if cap else '?'}, mkldnn {torch.backends.mkldnn.is_available()}, "
      f"BLAS loaded: {', '.join(libs) or 'none found'}")
EOF
)
# the netlib reference BLAS (Debian's libblas3) would make a peer ten times slower than torch
# as Debian ships it with OpenBLAS: refuse to race that
if [[ $TORCH == *"/blas/libblas.so"* ]]; then
    die "PyTorch loads the reference BLAS ($TORCH): install libopenblas0-pthread (scripts/install_deps.sh)"
fi
COMMIT=$(git describe --always --dirty 2>/dev/null || echo unknown)
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# the probes run at the start and again at the end; the peak is the best of them, so one
# disturbed probe does not inflate every "% of peak" (each run of fma_peak probes 1 thread
# and OMP_NUM_THREADS threads: one run per count above 1)
run_fma_peak() {
    local t
    for t in "${THREAD_COUNTS[@]}"; do
        if [[ $t -eq 1 && $NTHREADS -gt 1 ]]; then continue; fi
        echo "OMP_NUM_THREADS=$t bench/fma_peak" >>"$COMMANDS"
        OMP_NUM_THREADS=$t bench/fma_peak >>"$RAW/fma_peak.log" 2>&1 || die "bench/fma_peak failed"
    done
}
: >"$RAW/fma_peak.log"
run_fma_peak

# One core at a time: a 1-thread baby step pinned to each CPU the threads run on, at the start
# and at the end. On a shared host one core can be slower than another for minutes (a
# neighbour's load), and the FMA probe barely shows it; a step on all threads, whose batch
# groups each run on one core, then waits for the slowest.
PER_CPU=()
CPU_LIST=$(lscpu -p=CPU 2>/dev/null | grep -v '^#' | head -n "$NTHREADS" | paste -sd' ')
run_per_cpu() {  # run_per_cpu start|end
    local cpu line i=0
    for cpu in $CPU_LIST; do
        line=$(run_logged "cpu${cpu}_$1" taskset -c "$cpu" env OMP_NUM_THREADS=1 bench/bench_step \
            configs/bench_baby.conf --steps=10 --warmup=2 --eval_reps=1)
        PER_CPU[i]+="${PER_CPU[i]:+ / }$(ms "$line" ms_median)"
        i=$((i + 1))
    done
}
if [[ $PER_CPU_STEPS != 0 && $NTHREADS -gt 1 && -n $CPU_LIST ]] && command -v taskset >/dev/null; then
    echo "a 1-thread step on each CPU" >&2
    run_per_cpu start
fi

# ---- baby and medium, C then torch, 1 and N threads ----
# bench_impl IMPL NAME THREADS CONFIG ARGS...: one run of an implementation, its bench line
#   c: the C step (the configs' 2 batch groups); c1: the same in one pass (--batch_groups=1);
#   torch: the tuned peer; torchi: torch as installed
bench_impl() {
    local impl=$1 name=$2 t=$3
    shift 3
    case $impl in
        c) bench_c "$name" "$t" "$@" ;;
        c1) bench_c "$name" "$t" "$@" --batch_groups=1 ;;
        torch) bench_torch "$name" "$t" "$@" ;;
        torchi) bench_torch "$name" "$t" "$@" --setup=installed ;;
    esac
}
# median_line: of the bench lines on stdin, the one with the median ms_median (the lower
# middle one for an even count)
median_line() {
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^ms_median=/) { v = $i; sub(/^ms_median=/, "", v); print v "\t" $0; next } }' |
        sort -g -k1,1 | awk -F'\t' '{ line[NR] = $2 } END { print line[int((NR + 1) / 2)] }'
}
declare -A RES     # "impl model threads" -> bench line (the median round's)
declare -A ROUND_MS  # "impl model threads" -> every round's median step, in ms
for model in baby medium; do
    if [[ $model == baby ]]; then opts=("${BABY_OPTS[@]}"); else opts=("${MEDIUM_OPTS[@]}"); fi
    for t in "${THREAD_COUNTS[@]}"; do
        impls=(c)
        if [[ $t -eq $NTHREADS && $t -gt 1 ]]; then impls+=(c1); fi  # the one-pass step: what the groups give
        impls+=(torch torchi)
        declare -A lines=()
        for ((r = 0; r < ROUNDS; r++)); do
            echo "$model, $t thread(s)$([[ $ROUNDS -gt 1 ]] && echo ", round $((r + 1)) of $ROUNDS")" >&2
            for ((i = 0; i < ${#impls[@]}; i++)); do  # round r starts with implementation r
                impl=${impls[(i + r) % ${#impls[@]}]}
                name="${impl}_${model}_t$t"
                if [[ $ROUNDS -gt 1 ]]; then name+="_r$((r + 1))"; fi
                line=$(bench_impl "$impl" "$name" "$t" "configs/bench_$model.conf" "${opts[@]}")
                lines[$impl]+="$line"$'\n'
                ROUND_MS["$impl $model $t"]+="${ROUND_MS["$impl $model $t"]:+, }$(ms "$line" ms_median)"
            done
        done
        for impl in "${impls[@]}"; do RES["$impl $model $t"]=$(printf '%s' "${lines[$impl]}" | median_line); done
        unset lines
    done
done

# ---- the linear products alone, as a step runs them: how near the kernel comes to the peak,
# and how much of a step is everything else ----
for model in baby medium; do
    for t in "${THREAD_COUNTS[@]}"; do
        echo "$model, the products alone, $t thread(s)" >&2
        RES["products $model $t"]=$(bench_c "products_${model}_t$t" "$t" "configs/bench_$model.conf" \
            --products="$PRODUCT_REPS")
    done
done

# ---- block_size sweep on the baby shape, all threads ----
if [[ $SWEEP == 0 ]]; then SWEEP_T=""; fi
for T in $SWEEP_T; do
    B=$((SWEEP_TOKENS / T))
    if [[ $B -lt 1 ]]; then B=1; fi
    G=$((B % 2 == 0 ? 2 : 1))  # the config's 2 batch groups where they divide the batch
    echo "sweep: block_size $T, batch $B, batch_groups $G" >&2
    RES["c sweep $T"]=$(bench_c "c_sweep_T$T" "$NTHREADS" configs/bench_baby.conf --block_size="$T" \
        --batch_size="$B" --batch_groups="$G" "${SWEEP_OPTS[@]}")
    RES["torch sweep $T"]=$(bench_torch "torch_sweep_T$T" "$NTHREADS" configs/bench_baby.conf --block_size="$T" \
        --batch_size="$B" "${SWEEP_OPTS[@]}")
done

# ---- optional: the whole default run ----
FULL_LINE=""
if [[ $FULL == 1 ]]; then
    echo "the default run (BENCH_FULL=1)" >&2
    cmd=(./train configs/shakespeare_char.conf --out_dir=out/bench_full)
    rm -rf out/bench_full  # the last bench's run: ./train refuses to start over another run
    echo "OMP_NUM_THREADS=$NTHREADS ${cmd[*]}" >>"$COMMANDS"
    OMP_NUM_THREADS=$NTHREADS "${cmd[@]}" >"$RAW/train_full.log" 2>&1 || die "failed: ${cmd[*]} ($RAW/train_full.log)"
    FULL_LINE=$(grep '^done:' "$RAW/train_full.log" | tail -n 1)
    [[ -n $FULL_LINE ]] || die "no 'done:' line in $RAW/train_full.log"
fi
run_fma_peak
if [[ ${#PER_CPU[@]} -gt 0 ]]; then run_per_cpu end; fi
FMA_ISA=$(grep '^fma_peak isa=' "$RAW/fma_peak.log" | head -n 1 | sed 's/^fma_peak //; s/ iters=.*//')
# the C kernels' path, as bench_step names it (matmul_path: layer, ISA, vector width, tile)
C_KERNELS=$(grep -ho '^bench impl=c .* kernels=[^ ]*' "$RAW"/*.log | head -n 1 | sed 's/.* kernels=//')
declare -A PEAK PEAK_RUNS
for t in "${THREAD_COUNTS[@]}"; do
    PEAK_RUNS[$t]=$(grep "^fma_peak threads=$t " "$RAW/fma_peak.log" | sed 's/.*gflops=//' | paste -sd' ')
    PEAK[$t]=$(tr ' ' '\n' <<<"${PEAK_RUNS[$t]}" | sort -g | tail -n 1)
done
ELAPSED=$(($(date +%s) - START))
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the report ----
# per-row values from a bench line
# of_peak GFLOPS THREADS [DECIMALS]: a rate as a % of the FMA peak on that many threads
of_peak() { calc "%.${3:-1}f" "$1 / ${PEAK[$2]} * 100"; }
pct_peak() { of_peak "$(field "$1" gflops)" "$2"; }
# peer_kernels LINE: which attention and AdamW a PyTorch bench line ran
peer_kernels() {
    local attn adamw
    attn=$([[ $(field "$1" attention) == sdpa ]] && echo "F.scaled_dot_product_attention(is_causal=True)" \
        || echo "the causal softmax written out")
    adamw=$([[ $(field "$1" adamw) == fused ]] && echo "AdamW(fused=True)" || echo "torch's default AdamW")
    echo "$attn and $adamw"
}
# sweep_peer_attention LINE: what the sweep's PyTorch attention keeps, by the attention it ran
sweep_peer_attention() {
    if [[ $(field "$1" attention) == sdpa ]]; then
        echo "Its attention is torch's fused F.scaled_dot_product_attention(is_causal=True)."
    else
        echo "The PyTorch model keeps T x T attention probabilities per layer and head for its backward, and computes the whole T x T product and masks it."
    fi
}
# step_ms LINE: the median step time, marked (!) when it is over 1.5 x the fastest step
step_ms() {
    ms "$1" ms_median
    awk -v m="$(field "$1" ms_median)" -v f="$(field "$1" ms_min)" 'BEGIN { if (m > 1.5 * f) printf " (!)" }'
}
DISTURBED="(!) marks a run whose median step took over 1.5 x its fastest: something else used the cores"
DISTURBED+=" (the times of such a run are not this code's); rerun on a quiet machine."
{
    echo "# Speed: training steps of the C model against PyTorch"
    echo
    RUN_OPTS=""  # the options of this run, as a user would type them
    for v in BENCH_QUICK BENCH_ROUNDS BENCH_FULL BENCH_THREADS BENCH_SWEEP BENCH_PER_CPU; do
        if [[ ${!v:-} == *" "* ]]; then RUN_OPTS+="$v=\"${!v}\" "; elif [[ -n ${!v:-} ]]; then RUN_OPTS+="$v=${!v} "; fi
    done
    MAKE_OPTS=""  # make's, where the build is not this CPU's own (MARCH=x86-64-v3: the AVX2 path)
    [[ ${MARCH:-native} != native ]] && MAKE_OPTS=" MARCH=$MARCH"
    echo "Written by \`${RUN_OPTS}make bench${MAKE_OPTS}\` (bench/bench.sh) at commit \`$COMMIT\` in ${ELAPSED} s; load average"
    echo "$LOAD at the start, $LOAD_END at the end (other work on the machine disturbs every number)."
    echo "What was tried to get here, and why it was kept or dropped: [optimizations.md](optimizations.md)."
    if [[ $QUICK == 1 ]]; then
        echo
        echo "**BENCH_QUICK=1: 3 steps per run, a smoke test. These numbers measure nothing.**"
    fi
    echo
    echo "## Machine"
    echo
    echo "- CPU: $CPU (family ${FAMILY:-?}, model ${MODEL:-?}), $CORES cores, $TPC hardware thread(s) per core, $VEC;"
    echo "  caches: ${CACHES:-?}"
    peaks=""
    for t in "${THREAD_COUNTS[@]}"; do peaks+="${peaks:+, }$t thread(s) ${PEAK[$t]}"; done
    echo "- FP32 peak (bench/fma_peak: independent FMAs in registers, $FMA_ISA; the best probe of the start"
    echo "  and the end), GFLOP/s: $peaks"
    if [[ ${#PER_CPU[@]} -gt 0 ]]; then
        cells="" i=0
        for cpu in $CPU_LIST; do cells+="${cells:+; }CPU $cpu: ${PER_CPU[i]} ms"; i=$((i + 1)); done
        echo "- A 1-thread baby step pinned to each CPU (start / end): $cells. A step on all threads"
        echo "  runs one batch group per core and waits for the slowest."
    fi
    echo "- C compiler: $GCC, \`$CFLAGS_USED\`; kernels: \`${C_KERNELS:-?}\` (layer-ISA-vector width-register tile)"
    echo "- PyTorch: $TORCH"
    echo "- PyTorch runs twice: \"tuned\" (OMP_WAIT_POLICY=PASSIVE, OPENBLAS_NUM_THREADS = its thread count;"
    echo "  bench/bench_torch.py says why) and \"as installed\" (only torch.set_num_threads). Tuned ran"
    echo "  $(peer_kernels "${RES["torch baby $NTHREADS"]}"); as installed, $(peer_kernels "${RES["torchi baby $NTHREADS"]}")."
    echo
    echo "## Training steps"
    echo
    echo "\`configs/bench_baby.conf\` is the default run's model (4 layers, 4 heads, n_embd 128, block_size 64,"
    echo "batch 12); \`configs/bench_medium.conf\` has the shape of nanoGPT's GPU config (6 layers, 6 heads,"
    echo "n_embd 384, block_size 256) with batch 8. vocab_size 65, random token ids, dropout 0. A step is"
    echo "./train's: forward and backward (C: in the configs' 2 batch groups; \"c, one pass\": \`--batch_groups=1\`),"
    echo "clip to norm 1.0, AdamW. ms/step is the median over the timed steps (baby: ${BABY_OPTS[*]};"
    echo "medium: ${MEDIUM_OPTS[*]}). GFLOP/s counts the useful FLOPs of the matrix products (causal attention:"
    echo "keys <= query; bench/bench_step.c, count_flops). \"eval\" is one evaluation forward with the loss."
    echo "\"estimate\" is gpt_memory_estimate's, which ./train prints at start."
    if [[ $ROUNDS -gt 1 ]]; then
        echo "BENCH_ROUNDS=$ROUNDS: each row is the median of $ROUNDS runs, one per round (the order of the"
        echo "implementations rotated each round); \"rounds\" lists every round's median step."
    fi
    echo
    head="| model | impl | threads | ms/step | tokens/s | GFLOP/s (% of peak) | eval ms | peak RSS MB | estimate MB |"
    rule="|---|---|---|---|---|---|---|---|---|"
    if [[ $ROUNDS -gt 1 ]]; then head+=" rounds, ms |"; rule+="---|"; fi
    echo "$head"
    echo "$rule"
    for model in baby medium; do
        for t in "${THREAD_COUNTS[@]}"; do
            for impl in c c1 torch torchi; do
                l=${RES["$impl $model $t"]:-}
                if [[ -z $l ]]; then continue; fi
                est="-"
                if [[ $impl == c* ]]; then est=$(field "$l" est_mb); fi
                label=$impl
                if [[ $impl == c1 ]]; then label="c, one pass"; fi
                if [[ $impl == torch ]]; then label="torch tuned"; fi
                if [[ $impl == torchi ]]; then label="torch as installed"; fi
                row="| $model | $label | $t | $(step_ms "$l") | $(calc "%.0f" "$(field "$l" tok_s)") | $(calc "%.1f" "$(field "$l" gflops)") ($(pct_peak "$l" "$t")%) | $(ms "$l" eval_ms) | $(field "$l" rss_mb) | $est |"
                if [[ $ROUNDS -gt 1 ]]; then row+=" ${ROUND_MS["$impl $model $t"]} |"; fi
                echo "$row"
            done
        done
    done
    echo
    echo "$DISTURBED"
    echo
    echo "Ratios (tokens/s against tokens/s); scaling is tokens/s on t threads over 1 thread, with the FMA"
    echo "peak's own ratio beside it:"
    echo
    echo "| model | threads t | C / torch tuned | C / torch as installed | scaling: C | torch tuned | torch as installed | FMA peak |"
    echo "|---|---|---|---|---|---|---|---|"
    for model in baby medium; do
        for t in "${THREAD_COUNTS[@]}"; do
            c=$(field "${RES["c $model $t"]}" tok_s)
            row="| $model | $t | $(calc "%.2f" "$c / $(field "${RES["torch $model $t"]}" tok_s)") | $(calc "%.2f" "$c / $(field "${RES["torchi $model $t"]}" tok_s)") |"
            if [[ $t -eq 1 ]]; then
                row+=" - | - | - | - |"
            else
                for impl in c torch torchi; do
                    row+=" $(calc "%.2f" "$(field "${RES["$impl $model $t"]}" tok_s) / $(field "${RES["$impl $model 1"]}" tok_s)") |"
                done
                row+=" $(calc "%.2f" "${PEAK[$t]} / ${PEAK[1]}") |"
            fi
            echo "$row"
        done
    done
    if [[ $NTHREADS -gt 1 ]]; then
        cells=""
        for model in baby medium; do
            cells+="${cells:+; }$model $(calc "%.2f" "$(field "${RES["c1 $model $NTHREADS"]}" ms_median) / $(field "${RES["c $model $NTHREADS"]}" ms_median)")x"
        done
        echo
        echo "Batch groups: on $NTHREADS threads the one-pass step takes this many times the 2-group step: $cells."
    fi
    echo
    echo "## The linear products alone"
    echo
    echo "\`bench/bench_step CONFIG --products=$PRODUCT_REPS\`: each linear layer's forward product and its backward"
    echo "(dinp, dweight, dbias), called as a step calls them, the fastest of $PRODUCT_REPS calls: hot (the same"
    echo "operands again) and cold (after the last-level cache's size was written elsewhere). GFLOP/s (% of peak),"
    echo "on $NTHREADS thread(s):"
    echo
    echo "| model | product | rows x C x OC, a group | forward hot | forward cold | backward hot | backward cold |"
    echo "|---|---|---|---|---|---|---|"
    for model in baby medium; do
        while read -r l; do
            row="| $model | $(field "$l" layer) | $(field "$l" rows) x $(field "$l" C) x $(field "$l" OC) |"
            for k in fwd_hot fwd_cold bwd_hot bwd_cold; do row+=" $(calc "%.0f" "$(field "$l" "$k")") ($(of_peak "$(field "$l" "$k")" "$NTHREADS" 0)%) |"; done
            echo "$row"
        done < <(grep '^products ' "$RAW/products_${model}_t$NTHREADS.log")
    done
    echo
    echo "All the products of a step against the whole step; the rest is attention, layer norms, GELU,"
    echo "cross-entropy, the clip and AdamW:"
    echo
    echo "| model | threads | products, ms a step (hot / cold) | their GFLOP/s hot (% of peak) | the step, ms | the rest, ms |"
    echo "|---|---|---|---|---|---|"
    for model in baby medium; do
        for t in "${THREAD_COUNTS[@]}"; do
            l=${RES["products $model $t"]}
            st=${RES["c $model $t"]}
            echo "| $model | $t | $(ms "$l" ms_hot) / $(ms "$l" ms_cold) | $(calc "%.1f" "$(field "$l" hot)") ($(of_peak "$(field "$l" hot)" "$t" 0)%) | $(ms "$st" ms_median) | $(calc "%.1f" "$(field "$st" ms_median) - $(field "$l" ms_hot)") |"
        done
    done
    if [[ -n $SWEEP_T ]]; then
        echo
        echo "## block_size sweep"
        echo
        echo "The baby model with block_size T and batch B = $SWEEP_TOKENS / T (at least 1), $NTHREADS threads,"
        echo "${SWEEP_OPTS[*]}; C in 2 batch groups where B is even. \"torch\" is the tuned peer."
        echo "$(sweep_peer_attention "${RES["torch sweep ${SWEEP_T%% *}"]}")"
        echo
        echo "| T | B | GFLOP/step | attention share | C ms/step | torch ms/step | C / torch | C RSS MB | C estimate MB | torch RSS MB |"
        echo "|---|---|---|---|---|---|---|---|---|---|"
        for T in $SWEEP_T; do
            lc=${RES["c sweep $T"]}
            lp=${RES["torch sweep $T"]}
            share=$(calc "%.0f%%" "$(field "$lc" attn_share) * 100")
            echo "| $T | $(field "$lc" B) | $(calc "%.2f" "$(field "$lc" gflop_per_step)") | $share | $(step_ms "$lc") | $(step_ms "$lp") | $(calc "%.2f" "$(field "$lp" ms_median) / $(field "$lc" ms_median)") | $(field "$lc" rss_mb) | $(field "$lc" est_mb) | $(field "$lp" rss_mb) |"
        done
    fi
    if [[ -n $FULL_LINE ]]; then
        echo
        echo "## The default run"
        echo
        echo "\`./train configs/shakespeare_char.conf\` (2000 steps, 9 evaluations of 2 x 200 batches) on $NTHREADS threads:"
        echo
        echo "    $FULL_LINE"
    fi
    echo
    echo "## Reproduce"
    echo
    echo "\`make bench\` (about 7 minutes; options at the top of bench/bench.sh: \`BENCH_ROUNDS=3\` for medians of"
    echo "three rounds, \`BENCH_FULL=1\` for the default run, \`BENCH_THREADS=\"2 16\"\` for more thread counts)."
    echo "What it runs, for each model M (baby, medium) and thread count T (${THREAD_COUNTS[*]}),"
    echo "every command as run in $RAW/commands.txt and its output in $RAW/*.log:"
    echo
    echo '```'
    echo "OMP_NUM_THREADS=T bench/fma_peak                   # at the start and at the end"
    echo "taskset -c CPU env OMP_NUM_THREADS=1 bench/bench_step configs/bench_baby.conf --steps=10 --warmup=2 --eval_reps=1"
    echo "OMP_NUM_THREADS=T bench/bench_step configs/bench_M.conf OPTS [--batch_groups=1]"
    echo "$PYTHON bench/bench_torch.py configs/bench_M.conf OPTS [--setup=installed] --threads=T"
    echo "OMP_NUM_THREADS=T bench/bench_step configs/bench_M.conf --products=$PRODUCT_REPS"
    if [[ -n $SWEEP_T ]]; then
        echo "OMP_NUM_THREADS=$NTHREADS bench/bench_step configs/bench_baby.conf --block_size=S --batch_size=$SWEEP_TOKENS/S --batch_groups=1|2 ${SWEEP_OPTS[*]}"
        echo "$PYTHON bench/bench_torch.py configs/bench_baby.conf --block_size=S --batch_size=$SWEEP_TOKENS/S ${SWEEP_OPTS[*]} --threads=$NTHREADS"
    fi
    if [[ -n $FULL_LINE ]]; then echo "OMP_NUM_THREADS=$NTHREADS ./train configs/shakespeare_char.conf --out_dir=out/bench_full"; fi
    echo '```'
    echo
    echo "OPTS: baby ${BABY_OPTS[*]}; medium ${MEDIUM_OPTS[*]}. On a machine with many cores,"
    echo "\`bench/device_check.sh OUT_DIR\` checks that 200 default steps give the same log.csv bits on 1, 2"
    echo "and all threads, then runs this bench with \`BENCH_THREADS=\"2 N\"\`."
} >"$OUT"
echo "wrote $OUT (${ELAPSED} s)" >&2
