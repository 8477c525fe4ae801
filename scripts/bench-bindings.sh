#!/usr/bin/env bash
# Java bindings vs llama-bench on CPU: same machine, same build, same models, same settings, one run.
# Prints a markdown results block (also written to target/bench-bindings/results.md) with the
# Java/native ratios for pp and tg, where a token's time goes, and the cost of sampling one token.
# Method and recorded results: docs/benchmarks.md.
#
#   scripts/bench-bindings.sh [--threads N] [--rounds N] [--quick] [--no-1b] [--threadpool]
#                             [--max-other-load CORES] [--retries N] [--quiet-wait S] [--ngl N]
#                             [--models LIST] [--prebuilt] [--alone] [--alone-also LIST] [--c-loop]
#                             [--pairs] [--reps N]
#
#   --threads N       -t for both llama-bench and Java (default: nproc, llama-bench's own default here)
#   --rounds N        llama-bench and Java alternate N times per model, order flipped every round (default 3)
#   --quick           stories260K and the tiny 128k-vocabulary model, one round (a smoke run)
#   --no-1b           leave out the 1B-shape model
#   --threadpool      also measure the Java API with a llama-bench-style ggml threadpool attached
#   --max-other-load  repeat a run when other processes kept more than this many cores busy during
#                     it (default 0.25)
#   --retries N       at most N repeats per run (default 3)
#   --quiet-wait S    before each run, wait up to S seconds for the machine to be idle (below 0.1 busy
#                     cores; default 60)
#   --ngl N           layers on the GPU for both sides (default 0; scripts/gpu-verify.sh passes 99)
#   --models LIST     which models, of: stories260K tiny-128k 1B-128k (default: all three)
#   --prebuilt        use the classes already in bindings/target (no Maven, no prereqs.sh): for a
#                     machine that has a Java runtime but no Maven (scripts/gpu-verify.sh)
#   --alone           also run the Java API alone in a third process per round (one model and one
#                     context per test, its repetitions back to back as llama-bench runs them, no JIT
#                     warm-up; row "api-alone"): whether interleaving several contexts' repetitions,
#                     or the warm-up's contexts, change the Java figure (on a GPU a token takes about
#                     1 ms, against a microsecond or so for a not-yet-compiled FFM call)
#   --alone-also LIST more processes per round like --alone's, each with one difference from it
#                     that the interleaved Java process has (GPU run 4: the API alone read 0.993 of
#                     llama-bench's tg128, the interleaved process 0.945, all of it in the device's
#                     wait), of: jit (the JIT warm-up on stories260K first, on the same device; row
#                     "api-alone-jit"), idle (two more contexts of the model alive while it
#                     measures; row "api-alone-idle2")
#   --pairs           llama-bench and the Java API alone (--alone's process) only, one of each per
#                     round, order flipped every round: the Java/native ratio as a distribution over
#                     process pairs (GPU run 5: the same llama-bench's pp512 median read 11.24 ms in
#                     one process and 12.05 ms in another a few minutes later, while the repetitions
#                     inside a process scatter by under 1%; one pair cannot resolve a 1% goal). The
#                     main table then compares api-alone, with each round's ratio; no --c-loop,
#                     --alone-also or --threadpool with it
#   --reps N          repetitions per process (default: 20 for stories260K, 10 for tiny-128k, 30 for
#                     the 1B model on a GPU, 4 on a CPU)
#   --c-loop          also run bindings/src/test/c/decode_loop.c per round (compiled here with $CC,
#                     default gcc): llama-bench's pp and tg loops written again in plain C, the Java
#                     raw-bindings loop's calls in a process without a JVM (row "c-loop"), each
#                     generated token split into the llama_decode call and the llama_synchronize wait
#                     as the Java raw loop's profile splits it: whether a Java-vs-llama-bench gap
#                     belongs to the JVM process or to the calls; then the same generation test on a
#                     thread of its own (row "c-loop-thread": the Java loops decode on a thread that
#                     is not the process's first); both, and the Java raw loop, count their decoding
#                     thread's minor page faults and context switches per token
#
# Needs what the README lists (Temurin 25, Maven, the build tools scripts/prereqs.sh installs) and
# python3 with numpy (the shared tools/mkmodel.py writes the random-weight real-shape models).
# Generated models are cached under ${AIREF_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/ai-llm-reference-app}/models.
# Environment: STORIES_MODEL (default ../shared/models/stories260K.gguf beside this checkout),
# MKMODEL (default ../shared/tools/mkmodel.py), JAVA_OPTS (JVM flags for the Java side; default: a
# quiet JVM, "-XX:+UseSerialGC -XX:-UsePerfData -XX:+UnlockDiagnosticVMOptions
# -XX:GuaranteedSafepointInterval=0": no concurrent GC threads, no perf-data sampling every 50 ms, no
# periodic safepoint; set JAVA_OPTS="" for the JVM's defaults; docs/benchmarks.md compares both),
# NATIVE_BUILD_ARGS (extra native/build.sh arguments, e.g. "--variant cuda --cuda-arch 90").
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "bench-bindings: error: $*" >&2; exit 1; }
log() { echo "bench-bindings: $*" >&2; }

threads=$(nproc)
rounds=3
quick=0
threadpool=()
max_other_load=0.25
retries=3
quiet_wait=60
ngl=0
models="stories260K tiny-128k 1B-128k"
prebuilt=0
alone=0
alone_also=""
c_loop=0
pairs=0
reps=""
quiet_jvm="-XX:+UseSerialGC -XX:-UsePerfData -XX:+UnlockDiagnosticVMOptions -XX:GuaranteedSafepointInterval=0"
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=${2?"$1 needs a value"}; shift 2 ;;
    --rounds) rounds=${2?"$1 needs a value"}; shift 2 ;;
    --quick) quick=1; rounds=1; models="stories260K tiny-128k"; shift ;;
    --no-1b) models="stories260K tiny-128k"; shift ;;
    --ngl) ngl=${2?"$1 needs a value"}; shift 2 ;;
    --models) models=${2?"$1 needs a value"}; shift 2 ;;
    --prebuilt) prebuilt=1; shift ;;
    --threadpool) threadpool=(--threadpool); shift ;;
    --max-other-load) max_other_load=${2?"$1 needs a value"}; shift 2 ;;
    --retries) retries=${2?"$1 needs a value"}; shift 2 ;;
    --quiet-wait) quiet_wait=${2?"$1 needs a value"}; shift 2 ;;
    --alone) alone=1; shift ;;
    --alone-also) alone_also=${2?"$1 needs a value"}; shift 2 ;;
    --c-loop) c_loop=1; shift ;;
    --pairs) pairs=1; shift ;;
    --reps) reps=${2?"$1 needs a value"}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
[[ "$retries" =~ ^[0-9]+$ ]] || die "--retries must be a non-negative integer"
[[ "$quiet_wait" =~ ^[0-9]+$ ]] || die "--quiet-wait must be a non-negative number of seconds"
[[ "$max_other_load" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--max-other-load must be a number of cores"
[[ "$ngl" =~ ^[0-9]+$ ]] || die "--ngl must be a non-negative integer"
[ -z "$reps" ] || [[ "$reps" =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer"
if [ "$pairs" = 1 ]; then
  [ "$c_loop" = 0 ] && [ -z "$alone_also" ] && [ ${#threadpool[@]} = 0 ] \
    || die "--pairs runs llama-bench and the API alone only: leave out --c-loop, --alone-also and --threadpool"
  alone=1
fi
for m in $models; do
  case "$m" in stories260K|tiny-128k|1B-128k) ;; *) die "--models: unknown model '$m' (stories260K, tiny-128k, 1B-128k)" ;; esac
done
[ -n "$models" ] || die "--models must name at least one model"
for v in $alone_also; do
  case "$v" in jit|idle) ;; *) die "--alone-also: unknown process '$v' (jit, idle)" ;; esac
done
has_model() { [[ " $models " == *" $1 "* ]]; }

[ "$prebuilt" = 1 ] || "$root/scripts/prereqs.sh"
command -v python3 >/dev/null || die "python3 is needed (with numpy) to write the real-shape models"
python3 -c 'import numpy' 2>/dev/null || die "python3 lacks numpy (apt-get install python3-numpy)"
export JAVA_HOME=${JAVA_HOME_25:-${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}}
export PATH="$JAVA_HOME/bin:$PATH"

out_dir="$root/target/bench-bindings"
mkdir -p "$out_dir"
run_dir=$(mktemp -d "$out_dir/run-XXXXXX")

# --- builds: native libraries and reference tools, then the Java classes (main and test) ---------
log "building the native libraries and llama-bench (cached after the first time)"
# shellcheck source=lib/native-tools.sh
. "$root/scripts/lib/native-tools.sh"
native_tools llama-bench
if [ "$prebuilt" = 1 ]; then
  [ -d "$root/bindings/target/classes" ] && [ -d "$root/bindings/target/test-classes" ] \
    || die "--prebuilt: bindings/target/classes and test-classes are missing"
else
  log "building the Java classes"
  (cd "$root" && mvn -B -ntp -q -pl native,bindings -am install -DskipTests >&2)
fi
# A private copy of the classes: a concurrent build in this checkout cannot change them mid-run.
cp -r "$root/bindings/target/classes" "$run_dir/classes"
cp -r "$root/bindings/target/test-classes" "$run_dir/test-classes"
classpath="$run_dir/classes:$run_dir/test-classes"

# --- models --------------------------------------------------------------------------------------
cache=${AIREF_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-llm-reference-app}/models
mkdir -p "$cache"
stories=${STORIES_MODEL:-$root/../shared/models/stories260K.gguf}
mkmodel=${MKMODEL:-$root/../shared/tools/mkmodel.py}
[ -f "$stories" ] || die "stories260K not found at $stories (set STORIES_MODEL)"
stories=$(cd "$(dirname "$stories")" && pwd)/$(basename "$stories")
vocab="$src_dir/models/ggml-vocab-llama-bpe.gguf" # Llama 3's 128256-token vocabulary
[ -f "$vocab" ] || die "$vocab is missing from the pinned llama.cpp tree"

# A random-weight Llama of a real shape with the 128k vocabulary, quantized to Q4_K_M (cached).
real_shape() { # preset -> path
  local preset=$1 q="$cache/llama-bpe-$1-q4km.gguf" f16="$cache/llama-bpe-$1-f16.gguf.tmp"
  if [ ! -f "$q" ]; then
    [ -f "$mkmodel" ] || die "mkmodel.py not found at $mkmodel (set MKMODEL)"
    log "writing the $preset model (random weights, 128k vocabulary) to $q"
    python3 "$mkmodel" "$vocab" "$f16" "$preset" >&2
    # absolute paths: llama-quantize takes an output name that starts with a digit for a type
    "$bin_dir/llama-quantize" "$f16" "$q.tmp" Q4_K_M >"$run_dir/quantize-$preset.log" 2>&1 \
      || { cat "$run_dir/quantize-$preset.log" >&2; die "llama-quantize failed"; }
    mv "$q.tmp" "$q"
    rm -f "$f16"
  fi
  echo "$q"
}

# label|model|n_prompt|n_gen|repetitions per round
# (on a GPU the 1B model runs the shapes ../shared/gpu/README.md reports: pp512, tg128)
{
  if has_model stories260K; then echo "stories260K|$stories|512|128|${reps:-20}"; fi
  if has_model tiny-128k; then echo "tiny-128k|$(real_shape tiny)|512|128|${reps:-10}"; fi
  if has_model 1B-128k; then
    # on a GPU a repetition takes about 12 ms (pp512) or 150 ms (tg128), and llama-bench's pp512
    # varied by about 10% between repetitions there: 30 of them
    if [ "$ngl" -gt 0 ]; then echo "1B-128k|$(real_shape 1b)|512|128|${reps:-30}"; else echo "1B-128k|$(real_shape 1b)|256|64|${reps:-4}"; fi
  fi
} >"$run_dir/configs.txt"

# --- runs ------------------------------------------------------------------------------------------
# One driver runs llama-bench and the Java benchmark alternately (order flipped every round). Before
# each run it waits (up to 60 s) for the machine to be idle; it records each run's wall time, own CPU
# time and the machine's busy CPU time (/proc/stat), and repeats a run (up to --retries times) when
# other processes kept more than --max-other-load cores busy during it, so that a shared machine
# still gives comparable figures. Whatever it could not clean up is reported with the results.
write_cmd() { # file command... -> the command as a JSON list, for the driver below
  python3 -c 'import json, sys; json.dump(sys.argv[1:], open(sys.argv[1], "w"))' "$@"
}
# shellcheck disable=SC2206 # JAVA_OPTS is a list of flags
decode_benchmark=(java --enable-native-access=ALL-UNNAMED ${JAVA_OPTS-$quiet_jvm} -Dllama.native.dir="$lib_dir" -cp "$classpath"
  ai.llmref.llama.bench.DecodeBenchmark -t "$threads" -ngl "$ngl" -b 2048 -ub 512 -fa auto)
# (--pairs: no interleaved Java process)
[ "$pairs" = 1 ] || write_cmd "$run_dir/java-cmd.json" "${decode_benchmark[@]}" --jit-model "$stories" --profile "${threadpool[@]}"
if [ "$alone" = 1 ]; then
  write_cmd "$run_dir/alone-cmd.json" "${decode_benchmark[@]}" --jit-decodes 0 --alone
fi
for v in $alone_also; do
  case "$v" in
    jit) write_cmd "$run_dir/alonejit-cmd.json" "${decode_benchmark[@]}" --jit-model "$stories" --alone --alone-suffix -jit ;;
    idle) write_cmd "$run_dir/aloneidle-cmd.json" "${decode_benchmark[@]}" --jit-decodes 0 --idle-contexts 2 --alone --alone-suffix -idle2 ;;
  esac
done
write_cmd "$run_dir/native-cmd.json" "$bin_dir/llama-bench" -t "$threads" -ngl "$ngl" -b 2048 -ub 512 -fa auto -o jsonl
if [ "$c_loop" = 1 ]; then
  log "compiling decode_loop.c with ${CC:-gcc}"
  "${CC:-gcc}" -O2 -std=c11 -Wall -Wextra -I"$(prop native.include.dir)" "$root/bindings/src/test/c/decode_loop.c" \
    -L"$lib_dir" -lllama -lggml -lggml-base -Wl,-rpath,"$lib_dir" -o "$run_dir/decode_loop" >&2 \
    || die "decode_loop.c did not compile"
  # MODEL, then P N REPS LABEL are added per run
  write_cmd "$run_dir/c-cmd.json" "$run_dir/decode_loop" "$lib_dir" "$ngl" "$threads"
fi
started=$(date +%s)
python3 - "$run_dir" "$rounds" "$max_other_load" "$retries" "$quiet_wait" <<'PY_DRIVER'
import json, os, resource, shutil, subprocess, sys, time
run_dir, rounds, max_load, retries = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
quiet_wait = float(sys.argv[5])
native_cmd = json.load(open(os.path.join(run_dir, "native-cmd.json")))[1:]
java_cmds = {}
if os.path.exists(os.path.join(run_dir, "java-cmd.json")):  # the interleaved process (not with --pairs)
    java_cmds["java"] = json.load(open(os.path.join(run_dir, "java-cmd.json")))[1:]
for impl in ("alone", "alonejit", "aloneidle"):  # the Java API alone, and with one difference each (--alone-also)
    f = os.path.join(run_dir, impl + "-cmd.json")
    if os.path.exists(f):
        java_cmds[impl] = json.load(open(f))[1:]
c_file = os.path.join(run_dir, "c-cmd.json")
c_cmd = json.load(open(c_file))[1:] if os.path.exists(c_file) else None
impls = ["native"] + list(java_cmds) + (["c"] if c_cmd else [])
HZ = os.sysconf("SC_CLK_TCK")

def busy():  # seconds of CPU the whole machine spent busy: user nice system irq softirq steal
    v = list(map(int, open("/proc/stat").readline().split()[1:]))
    return (sum(v[:8]) - v[3] - v[4]) / HZ

GPU_FIELDS = ["clocks.sm", "clocks.mem", "temperature.gpu", "power.draw", "clocks_event_reasons.active"]

def gpu_state():
    """The GPU's SM and memory clocks (MHz), temperature (C), power (W) and active clock-event reasons,
    where nvidia-smi answers (a process-to-process difference of a few percent could be the clocks)."""
    if not shutil.which("nvidia-smi"):
        return None
    for fields in (GPU_FIELDS, GPU_FIELDS[:-1]):  # older drivers lack the reasons field
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits", "-i", "0"],
                                 capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if out.returncode == 0 and out.stdout.strip():
            return dict(zip(fields, (v.strip() for v in out.stdout.strip().splitlines()[0].split(","))))
    return None

def wait_quiet(limit=quiet_wait):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        b0 = busy()
        time.sleep(0.5)
        if (busy() - b0) / 0.5 < 0.1:
            return

runs = []
for line in open(os.path.join(run_dir, "configs.txt")):
    label, model, p, n, reps = line.strip().split("|")
    for r in range(1, rounds + 1):
        for impl in (impls if r % 2 else impls[::-1]):
            base = os.path.join(run_dir, "%s-%s-%d" % (impl, label, r))
            if impl == "native":
                cmd = native_cmd + ["-m", model, "-p", p, "-n", n, "-r", reps]
            elif impl == "c":
                cmd = c_cmd[:1] + [model] + c_cmd[1:] + [p, n, reps, label]
            else:
                cmd = java_cmds[impl] + ["-m", model, "-p", p, "-n", n, "-r", reps, "--label", label, "--jsonl", base + ".jsonl"]
            for attempt in range(1, retries + 2):
                wait_quiet()
                g0 = gpu_state()
                b0, t0, r0 = busy(), time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
                with open(base + ".out", "w") as out, open(base + ".log", "w") as err:
                    rc = subprocess.call(cmd, stdout=out, stderr=err)
                b1, t1, r1 = busy(), time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
                g1 = gpu_state()
                if rc != 0:
                    sys.stderr.write(open(base + ".log", errors="replace").read()[-3000:])
                    sys.exit("bench-bindings: %s failed on %s (exit %d), see %s.log" % (impl, model, rc, base))
                if impl in ("native", "c"):
                    os.replace(base + ".out", base + ".jsonl")
                own = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
                other = max(0.0, (b1 - b0) - own) / (t1 - t0)
                again = other > max_load and attempt <= retries
                print("bench-bindings: %s round %d/%d %s: %.1f s, other load %.2f cores%s"
                      % (label, r, rounds, impl, t1 - t0, other, " -> again" if again else ""), file=sys.stderr, flush=True)
                if not again:
                    break
            runs.append({"label": label, "impl": impl, "round": r, "attempts": attempt, "wall_s": round(t1 - t0, 2),
                         "other_load": round(other, 3), "clean": other <= max_load, "gpu_before": g0, "gpu_after": g1})
json.dump(runs, open(os.path.join(run_dir, "runs.json"), "w"), indent=1)
PY_DRIVER
log "runs took $(($(date +%s) - started)) s; raw results in $run_dir"

# --- the results block -----------------------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
args="--threads $threads --rounds $rounds"
if [ "$quick" = 1 ]; then args="$args --quick"; elif [ "$models" != "stories260K tiny-128k 1B-128k" ]; then args="$args --models \"$models\""; fi
if [ "$ngl" != 0 ]; then args="$args --ngl $ngl"; fi
if [ "$prebuilt" = 1 ]; then args="$args --prebuilt"; fi
if [ ${#threadpool[@]} -gt 0 ]; then args="$args --threadpool"; fi
if [ -n "$alone_also" ]; then args="$args --alone-also \"$alone_also\""; fi
if [ "$c_loop" = 1 ]; then args="$args --c-loop"; fi
if [ "$pairs" = 1 ]; then args="$args --pairs"; elif [ "$alone" = 1 ]; then args="$args --alone"; fi
if [ -n "$reps" ]; then args="$args --reps $reps"; fi
{
  echo "Machine: $cpu, $(nproc) CPUs online, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM;" \
    "threads: -t $threads for both; -ngl $ngl."
  echo "Build: llama.cpp tree $(prop llama.cpp.tree) ($(prop native.variant) variant); $(java -version 2>&1 | head -1)."
  echo "Command: \`scripts/bench-bindings.sh $args\` ($(date -u +%Y-%m-%dT%H:%MZ)); Java flags: ${JAVA_OPTS-$quiet_jvm}."
  echo
  python3 - "$run_dir" <<'PY_REPORT'
import glob, json, os, statistics as st, sys
d = sys.argv[1]
samples = {}      # (label, test, who) -> all repetitions of all rounds
units = {}        # (label, test, who) -> unit of the samples
per_round = {}    # (label, test, who) -> {round: median of the round}
order, labels, model_desc = [], [], {}
runs = json.load(open(os.path.join(d, "runs.json")))
for line in open(os.path.join(d, "configs.txt")):
    labels.append(line.split("|")[0])
for f in sorted(glob.glob(os.path.join(d, "*.jsonl"))):
    impl, rest = os.path.basename(f)[:-6].split("-", 1)
    label, rnd = rest.rsplit("-", 1)
    for line in open(f):
        j = json.loads(line)
        if impl == "native":
            test = ("pp%d" % j["n_prompt"]) if j["n_prompt"] else ("tg%d" % j["n_gen"])
            who = "llama-bench"
            model_desc[label] = "`%s` (%s, %.0f M parameters, %.1f MiB)" % (os.path.basename(j["model_filename"]),
                j["model_type"], j["model_n_params"] / 1e6, j["model_size"] / 2**20)
        else:  # the Java benchmark's variants, and the C loop's ("c-loop"), in the same format
            test = j["test"] + (str(j["n_prompt"]) if j["n_prompt"] else "") + (str(j["n_gen"]) if j["n_gen"] else "")
            who = "java " + j["variant"]
        key = (label, test, who)
        if key not in samples:
            samples[key] = []
            order.append(key)
        samples[key].extend(j["samples_ts"])
        units[key] = j.get("unit", "t/s")
        per_round.setdefault(key, {})[int(rnd)] = st.median(j["samples_ts"])

def ms(v):
    return "%.2f ± %.2f" % (st.mean(v), st.stdev(v) if len(v) > 1 else 0.0)

def round_ratios(key, ref):
    a, b = per_round.get(key, {}), per_round.get(ref, {})
    return [a[r] / b[r] for r in sorted(a) if r in b]

# the Java figure: the API in the interleaved process, or (--pairs) the API alone in a process of its own
main_who = "java api" if any(w == "java api" for (_, _, w) in order) else "java api-alone"
print("| model | test | llama-bench t/s | Java t/s | Java/native | range | per round |")
print("| --- | --- | ---: | ---: | ---: | --- | --- |")
for lab in labels:
    for (l, test, who) in order:
        ref, key = (lab, test, "llama-bench"), (lab, test, main_who)
        if l != lab or who != "llama-bench" or key not in samples:
            continue
        rr = round_ratios(key, ref)
        print("| %s | %s | %s | %s | **%.3f** | %.3f-%.3f | %s |" % (lab, test, ms(samples[ref]), ms(samples[key]),
              st.median(rr), min(rr), max(rr), " ".join("%.3f" % x for x in rr)))
print()
print("t/s: mean ± sd of all repetitions of all rounds, as llama-bench reports them. Java/native: the median")
print("over rounds of (median Java t/s of the round / median llama-bench t/s of the same round); range: the")
print("least and greatest of those per-round ratios. Java: %s." % ("the API in the process that also measures the raw bindings and the samplers"
      if main_who == "java api" else "the API alone in a process of its own, one per round (--pairs)"))
print()
print("All Java variants, same runs (Δ: per-token time minus llama-bench's, from the medians; the last column")
print("compares with the raw-bindings loop measured in the same process, repetitions interleaved; c-loop is")
print("decode_loop.c, the raw loop's calls in a C program, a process of its own):")
print()
print("| model | test | Java variant | t/s | vs llama-bench | Δ µs/token | vs raw, same process |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
for lab in labels:
    for key in order:
        l, test, who = key
        ref = (lab, test, "llama-bench")
        if l != lab or not who.startswith("java") or ref not in samples:
            continue
        dus = 1e6 / st.median(samples[key]) - 1e6 / st.median(samples[ref])
        raw = (lab, test, "java raw")
        # (api-alone and c-loop(-thread) ran in processes of their own: no same-process comparison)
        vs_raw = "%.3f" % st.median(round_ratios(key, raw)) if raw in samples and key != raw and "-alone" not in who and not who.startswith("java c-loop") else ""
        print("| %s | %s | %s | %s | %.3f | %+.2f | %s |" % (lab, test, who[5:], ms(samples[key]),
              st.median(round_ratios(key, ref)), dus, vs_raw))
print()
print("Per-token costs measured in the Java process (c-loop: in the C program; mean ± sd over the repetitions of all rounds;")
print("\"per run\": per prompt repetition, \"in all\": the process's count):")
print()
print("| model | what | per token |")
print("| --- | --- | ---: |")
for lab in labels:
    for key in order:
        l, test, who = key
        if l == lab and (test.startswith("sample") or test.startswith("profile")):
            unit = {"us/token": "µs", "B/token": "bytes", "n/token": "", "n/run": "per run", "n": "in all"}.get(units[key], units[key])
            print("| %s | %s | %s %s |" % (lab, who[5:], ms(samples[key]), unit))
print()
print("Models: " + "; ".join("%s = %s" % (l, model_desc.get(l, "?")) for l in labels) + ".")
print()
gpu_runs = [r for r in runs if r.get("gpu_before")]
if gpu_runs:
    print("GPU state before and after each process (nvidia-smi: SM clock MHz, memory clock MHz, temperature C, power W,")
    print("active clock-event reasons as a bit mask; 0x0 = none):")
    print()
    print("| model | round | process | SM MHz | memory MHz | temperature C | power W | clock events |")
    print("| --- | ---: | --- | --- | --- | --- | --- | --- |")
    def pair(r, f):
        a, b = (r.get("gpu_before") or {}).get(f, "?"), (r.get("gpu_after") or {}).get(f, "?")
        return a if a == b else "%s -> %s" % (a, b)
    for r in gpu_runs:
        print("| %s | %d | %s | %s | %s | %s | %s | %s |" % (r["label"], r["round"], r["impl"], pair(r, "clocks.sm"),
              pair(r, "clocks.mem"), pair(r, "temperature.gpu"), pair(r, "power.draw"), pair(r, "clocks_event_reasons.active")))
    print()
short = {"native": "n", "java": "j", "alone": "a", "alonejit": "aj", "aloneidle": "ai", "c": "c"}
print("Other load on the machine during each run (cores busy outside the benchmark; n = llama-bench, j = Java, a = Java alone, "
      "aj and ai = alone with the JIT warm-up or idle contexts, c = the C loop, then the round): "
      + "; ".join("%s %s" % (l, " ".join("%s%d %.2f" % (short[r["impl"]], r["round"],
      r["other_load"]) for r in runs if r["label"] == l)) for l in labels)
      + ". Runs repeated because of it: %d; still above the limit after the retries: %d."
      % (sum(r["attempts"] - 1 for r in runs), sum(1 for r in runs if not r["clean"])))
PY_REPORT
} | tee "$out_dir/results.md"
cp "$out_dir/results.md" "$run_dir/results.md"
