#!/usr/bin/env bash
# Proves the GPU path on a machine with an NVIDIA GPU and a CUDA toolkit (no Java, Maven or network
# needed there): builds the cuda variant for the local GPU's architecture, runs the native
# integration tests with every layer offloaded (and checks the layers really are on the GPU), runs
# the OpenAI-client conformance tests against the server on the GPU, checks the CPU fallback (GPU
# hidden, CUDA plugin removed, GPU required), and benchmarks against llama-bench, llama-server and
# llama-batched-bench built from the same tree in the same run. Documented in docs/gpu.md.
#
#   scripts/gpu-verify.sh [--pack DIR] [--results DIR] [--phases "build test fallback bench"]
#                         [--cpu] [--cuda-arch ARCH] [--rounds N] [--duration S] [--models "1b"]
#                         [--server-warmup N] [--budget S] [--benchmarks "server variant bindings profile cores"]
#                         [--variant "LABEL:JVM-FLAGS"] [--server-args "ARGS"]
#
#   --pack DIR      what scripts/gpu-pack.sh prepared (default .carry/gpu): Java runtime, classes and
#                   jars, the llama.cpp source part, the test model, mkmodel.py
#   --results DIR   where the summary and logs go (default target/gpu-verify; pass $OUT/... on the
#                   project's device machine)
#   --phases LIST   any of build test fallback bench, in that order (default: all four). A later
#                   call may run the later phases alone: the build is cached.
#   --cpu           no GPU: the cpu variant, tests with 0 GPU layers (and expecting none), the
#                   fallback checks that need no GPU, short benchmarks. This is how the script is
#                   tested on a CPU machine.
#   --cuda-arch A   CUDA architecture to build for (default: the first GPU's compute capability)
#   --rounds N      benchmark rounds (default: 8 process pairs for the bindings on a GPU, as many as
#                   the budget holds when short, 1 on a CPU; 1 for the server)
#   --duration S    seconds per concurrency level in the server benchmark (default 10)
#   --server-warmup N  short warm-up requests before each server is measured (default 1000; see
#                   scripts/bench-server.sh --warmup-requests)
#   --models LIST   real-shape models to benchmark, of: 1b 8b (default "1b"; 8b needs about 5 min
#                   more to write and quantize)
#   --benchmarks L  which benchmarks the bench phase runs, in this order, of: server (ours against
#                   llama-server and llama-batched-bench), variant (our server also with --variant's
#                   flags, in the same rounds: bench-server.sh --variant; "device-sampling", its
#                   name in runs 1-4, still works), bindings (the Java API against llama-bench at
#                   the server's CPU threads: on a GPU in process pairs, bench-bindings.sh --pairs),
#                   profile (GPU only: one round of the diagnostic processes at the same threads:
#                   the interleaved process with its per-token costs, the API alone with the JIT
#                   warm-up and with idle contexts, the C loop), cores (GPU only: the bindings at
#                   every core, one round); default all five. Each is skipped, and the summary
#                   says so, when the budget left cannot hold it; a second call on a warm machine
#                   can run those (e.g. --phases bench --benchmarks "bindings profile")
#   --variant L:F   what the variant benchmark measures as the variant of our server (default
#                   "no-wake-ahead:-Dengine.sampling-wake-ahead=false": the sampling helpers woken
#                   with the rows instead of during the decode); e.g.
#                   "device-sampling:-Dengine.device-sampling=true" (runs 1-4's variant) or
#                   "t16:-Dengine.threads=16 -Dengine.threads-batch=16" (the CPU threads of runs 1-2)
#   --server-args A more scripts/bench-server.sh arguments for the server benchmark (e.g. "--eos
#                   allow": requests without the EOS ban, whose logit_bias changes what
#                   engine.device-sampling does)
#   --budget S      the run must end within S seconds of its start (a time limit it runs under):
#                   when the benchmark phase starts with less time left than its benchmarks take at
#                   full length (about 600 s for all five with the model still to write), it runs
#                   short (5 s per server level, 300 warm-up requests, as many bindings pairs as
#                   fit) rather than be cut off, and the summary says so; a benchmark the time
#                   left cannot hold is skipped, not started (default 600: the issue's "about 10
#                   minutes"; 0: no budget)
#
# Every run writes toolchain.txt (OS, compilers, the C++ runtimes, each library's size, NEEDED
# entries and exported std:: symbols). When the bindings tests crash the JVM, the benchmarks are
# replaced by a triage: the same offload test with the loader's libstdc++.so.6 preloaded, and a
# native tool (llama-bench) loading the test model with every layer offloaded, from the same build
# (GPU_VERIFY_TRIAGE=1 runs the triage without a crash, which is how it is tested). If the preload
# helps, the tests run again under it and, when the bindings tests pass, so do the benchmarks (the
# summary says they ran with LD_PRELOAD).
#
# GPU_VERIFY_SIMULATE_CRASH=1 (for testing this script only) treats the bindings tests as crashed.
# GPU_VERIFY_BENCH_AS_GPU=1 (with --cpu, for testing this script only) runs the benchmark phase as on
# a GPU (its order, thread counts, model writing and budget rules) with the small 128k-vocabulary
# model and 1 and 4 streams.
#
# Exit status 0 when every step that ran passed. The summary (summary.md) lists each step's result;
# logs.tar.gz holds every log, JUnit report and raw benchmark output.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "gpu-verify: error: $*" >&2; exit 2; }
log() { echo "gpu-verify: $(date -u +%H:%M:%S) $*" >&2; }

pack=$root/.carry/gpu
results=$root/target/gpu-verify
phases="build test fallback bench"
mode=gpu
cuda_arch=""
rounds=""
duration=10
models="1b"
server_warmup=1000
budget=600
benchmarks="server variant bindings profile cores"
server_variant="no-wake-ahead:-Dengine.sampling-wake-ahead=false"
server_args=""
device_sampling_ok="" # set to 1 when the test phase's device-sampling tests pass, 0 when they fail
while [ $# -gt 0 ]; do
  case "$1" in
    --pack) pack=${2?"$1 needs a value"}; shift 2 ;;
    --results) results=${2?"$1 needs a value"}; shift 2 ;;
    --phases) phases=${2?"$1 needs a value"}; shift 2 ;;
    --cpu) mode=cpu; shift ;;
    --cuda-arch) cuda_arch=${2?"$1 needs a value"}; shift 2 ;;
    --rounds) rounds=${2?"$1 needs a value"}; shift 2 ;;
    --duration) duration=${2?"$1 needs a value"}; shift 2 ;;
    --models) models=${2?"$1 needs a value"}; shift 2 ;;
    --server-warmup) server_warmup=${2?"$1 needs a value"}; shift 2 ;;
    --budget) budget=${2?"$1 needs a value"}; shift 2 ;;
    --benchmarks) benchmarks=${2?"$1 needs a value"}; shift 2 ;;
    --variant) server_variant=${2?"$1 needs a value"}; shift 2 ;;
    --server-args) server_args=${2?"$1 needs a value"}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
for p in $phases; do case "$p" in build|test|fallback|bench) ;; *) die "--phases: unknown phase '$p'" ;; esac; done
for m in $models; do case "$m" in 1b|8b) ;; *) die "--models: unknown model '$m' (1b, 8b)" ;; esac; done
benchmarks=${benchmarks//device-sampling/variant} # the variant benchmark's name in runs 1-4
for b in $benchmarks; do case "$b" in bindings|server|variant|profile|cores) ;; *) die "--benchmarks: unknown benchmark '$b' (server, variant, bindings, profile, cores)" ;; esac; done
has_bench() { [[ " $benchmarks " == *" $1 "* ]]; }
[[ "$duration" =~ ^[1-9][0-9]*$ ]] || die "--duration must be a positive integer"
[[ "$server_warmup" =~ ^[0-9]+$ ]] || die "--server-warmup must be a non-negative integer"
[[ "$budget" =~ ^[0-9]+$ ]] || die "--budget must be a non-negative integer (seconds)"
[[ "$server_variant" =~ ^[a-z0-9][a-z0-9.=-]*:.*[^[:space:]] ]] || die "--variant must be LABEL:JVM-FLAGS (a lower-case label, a colon, then the flags)"
[ -z "$rounds" ] || [[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
has_phase() { [[ " $phases " == *" $1 "* ]]; }
pack=$(cd "$pack" 2>/dev/null && pwd) || die "no pack at --pack (make it with scripts/gpu-pack.sh where Maven runs)"
for f in jre.tar.xz app.tar.xz src.tar.xz stories260K.gguf mkmodel.py; do
  [ -f "$pack/$f" ] || die "$pack/$f is missing (make the pack with scripts/gpu-pack.sh)"
done
mkdir -p "$results"
results=$(cd "$results" && pwd)
work=$root/target/gpu-verify-work
mkdir -p "$work"
summary=$results/summary.md
failures=0
jvm_crashed=0
# --- summary (rewritten after every step, so that a run stopped part-way still leaves one) -----------
write_summary() {
  {
    echo "# gpu-verify $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "Device: $device."
    [ -z "${toolchain:-}" ] || echo "Toolchain: $toolchain."
    echo "Checkout: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'); pack: $(sed -n 's/^commit=//p' "$pack/pack.properties"); native: ${native_args[*]}; phases: $phases; $(( $(date +%s) - started )) s."
    echo
    echo "| step | result | detail |"
    echo "| --- | --- | --- |"
    cat "$work/steps.md"
    [ ! -s "$work/placement.txt" ] || { echo; echo "Placement seen by GpuOffloadTest:"; echo; sed 's/^/    /' "$work/placement.txt"; }
    [ ! -s "$work/build-profile.md" ] || { echo; echo "## build profile"; echo; cat "$work/build-profile.md"; }
    for f in "$work"/bench-bindings*.md "$work"/bench-server-*.md; do
      [ -s "$f" ] || continue
      echo; echo "## $(basename "$f" .md)"; echo; cat "$f"
    done
  } >"$summary"
}
step() { # name status detail
  printf '| %s | %s | %s |\n' "$1" "$2" "$3" >>"$work/steps.md"
  [ "$2" = pass ] || [ "$2" = skipped ] || failures=$((failures + 1))
  log "$1: $2${3:+ ($3)}"
  write_summary
}
# Nothing from an earlier run may reach this run's summary: keep only the unpacked runtime and the
# build's properties (a run without the build phase needs them).
find "$work" -mindepth 1 -maxdepth 1 ! -name runtime ! -name native.properties -exec rm -rf {} +
: >"$work/steps.md"
touch "$work/started" # marks what this run wrote
started=$(date +%s)
# Every log, JUnit report and the benchmarks' raw output (not the runtime, classes or models).
pack_logs() {
  tar -C "$root/target" -czf "$results/logs.tar.gz" --exclude=runtime --exclude=lib-without-cuda --exclude=standins \
    --exclude=classes --exclude=test-classes --exclude='*.gguf' \
    gpu-verify-work $(cd "$root/target" && find bench-server bench-bindings -mindepth 1 -maxdepth 1 -newer gpu-verify-work/started 2>/dev/null) \
    2>/dev/null || true
}
# Stopped from outside (a time limit): the summary says so and the logs are packed before exiting.
trap 'step run STOPPED "stopped by a signal after $(( $(date +%s) - started )) s; the steps above ran"; pack_logs; exit 143' TERM INT

# --- the machine ---------------------------------------------------------------------------------
# A GPU image may lack curl or xz: python3 stand-ins for the few uses these scripts make of them
# (GPU_VERIFY_STANDINS=1 uses them even where the real tools are, which is how they are tested).
mkdir -p "$work/standins"
rm -f "$work/standins"/*
for t in curl xz; do
  if [ "${GPU_VERIFY_STANDINS:-0}" = 1 ] || ! command -v "$t" >/dev/null; then
    ln -s "$root/scripts/lib/standins/$t" "$work/standins/$t"
    log "using the python3 stand-in for $t (scripts/lib/standins/$t)"
  fi
done
export PATH="$work/standins:$PATH"
threads=$(nproc)
if [ "$mode" = gpu ]; then
  command -v nvidia-smi >/dev/null || die "nvidia-smi not found: is this a GPU machine? (--cpu tests the script without one)"
  gpu_line=$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader | head -1)
  [ -n "$gpu_line" ] || die "nvidia-smi lists no GPU"
  cap=$(echo "$gpu_line" | awk -F', ' '{print $4}')
  cuda_arch=${cuda_arch:-${cap//./}}
  cuda_home=${CUDA_HOME:-/usr/local/cuda}
  nvcc_version=$("${CUDACXX:-$cuda_home/bin/nvcc}" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p' || true)
  native_args=(--variant cuda --cuda-arch "$cuda_arch")
  # The libraries' rpath is $ORIGIN alone: the CUDA plugin finds cudart and cuBLAS through the
  # loader's cache or LD_LIBRARY_PATH (the image copies them beside it instead, scripts/image-layout.sh).
  if ! ldconfig -p 2>/dev/null | grep -q 'libcublas\.so\.'; then
    for d in "$cuda_home"/targets/*/lib "$cuda_home/lib64"; do
      [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    done
    log "cuBLAS is not in the loader's cache: LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  fi
  ngl=99
  expect_gpu=true
  device="$gpu_line (GPU name, driver, memory, compute capability); CUDA toolkit ${nvcc_version:-?}; $threads CPU cores"
else
  native_args=(--variant cpu)
  ngl=0
  expect_gpu=false
  device="CPU only (--cpu): $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $threads CPU cores"
fi
log "device: $device"

# --- Java runtime and the prebuilt classes from the pack -------------------------------------------
rt=$work/runtime
if [ ! -x "$rt/jre/bin/java" ] || ! cmp -s "$pack/pack.properties" "$rt/pack.properties"; then
  log "unpacking the Java runtime and the classes"
  rm -rf "$rt"
  mkdir -p "$rt"
  tar -xJf "$pack/jre.tar.xz" -C "$rt"
  tar -xJf "$pack/app.tar.xz" -C "$root"
  cp "$pack/pack.properties" "$rt/pack.properties"
fi
export JAVA_HOME=$rt/jre JAVA_HOME_25=$rt/jre
export PATH="$JAVA_HOME/bin:$PATH"
java -version >/dev/null 2>&1 || die "the packed Java runtime does not start here"
export LLAMA_CPP_SUBSET=$pack/src.tar.xz STORIES_MODEL=$pack/stories260K.gguf MKMODEL=$pack/mkmodel.py
export NATIVE_BUILD_ARGS="${native_args[*]}"
info=$work/native.properties

# --- build ---------------------------------------------------------------------------------------
# Where the build's time went, from ninja's log of the build directory (native/build.sh keeps it at
# $cache/work/<key> beside $cache/out/<key>): its wall time against the sum of its compile and link
# steps, the longest steps, and the last to finish (the tail no other core could share). The raw
# log goes along (ninja-log.txt): a later ninja (1.12 and newer) reads such a log to start the
# longest steps first.
build_profile() { # native.entry
  local ninja_log
  ninja_log="$(dirname "$(dirname "$1")")/work/$(basename "$1")/.ninja_log"
  [ "$ninja_log" -nt "$work/started" ] || return 0 # a cached build: no build ran in this run
  cp "$ninja_log" "$work/ninja-log.txt"
  python3 - "$ninja_log" "$(ninja --version 2>/dev/null || echo '?')" >"$work/build-profile.md" 2>/dev/null <<'EOF' || rm -f "$work/build-profile.md"
import os, sys
steps = {}
for line in open(sys.argv[1]):
    f = line.split("\t")
    if line.startswith("#") or len(f) < 4:
        continue
    steps[f[3]] = (int(f[0]) / 1000, int(f[1]) / 1000)  # the last entry of each output
if not steps:
    sys.exit(1)
t0, t1 = min(s for s, _ in steps.values()), max(e for _, e in steps.values())
busy = sum(e - s for s, e in steps.values())
short = lambda o: o.replace("ggml/src/ggml-cuda/", "cuda/").replace("CMakeFiles/", "").replace(".o", "")
print("ninja %s, %d steps: wall %.0f s, the steps' own time %.0f s (%.1f cores busy on average)." % (
    sys.argv[2], len(steps), t1 - t0, busy, busy / max(t1 - t0, 1e-9)))
print()
print("| longest steps | s | started at s |")
print("| --- | ---: | ---: |")
for o, (s, e) in sorted(steps.items(), key=lambda kv: kv[1][0] - kv[1][1])[:12]:
    print("| %s | %.1f | %.1f |" % (short(o), e - s, s - t0))
print()
print("| last to finish | s | started at s | ended at s |")
print("| --- | ---: | ---: | ---: |")
for o, (s, e) in sorted(steps.items(), key=lambda kv: -kv[1][1])[:8]:
    print("| %s | %.1f | %.1f | %.1f |" % (short(o), e - s, s - t0, e - t0))
EOF
}
if has_phase build || [ ! -f "$info" ]; then
  t0=$(date +%s)
  if "$root/native/build.sh" "${native_args[@]}" --tools --info "$info" >"$work/build.log" 2>&1; then
    lib=$(sed -n 's/^native.lib.dir=//p' "$info")
    step build pass "${native_args[*]} --tools: $(( $(date +%s) - t0 )) s; libraries: $(cd "$lib" && for f in lib*.so; do printf '%s %s, ' "$f" "$(du -hL "$f" | cut -f1)"; done)"
    build_profile "$(sed -n 's/^native.entry=//p' "$info")"
    if [ "$mode" = gpu ]; then
      # what the plugin links, as the tests' processes will resolve it
      ldd "$lib/libggml-cuda.so" >"$work/ldd-cuda.txt" 2>&1 || true
      if grep -q 'not found' "$work/ldd-cuda.txt"; then
        step "CUDA plugin's libraries resolve" FAIL "$(grep 'not found' "$work/ldd-cuda.txt" | awk '{print $1}' | paste -sd' ' -) not found (ldd-cuda.txt)"
      else
        step "CUDA plugin's libraries resolve" pass "$(grep -oE '(libcudart|libcublas|libcuda)\.so[^ ]* => [^ ]*' "$work/ldd-cuda.txt" | paste -sd';' -)"
      fi
    fi
  else
    step build FAIL "see build.log"
    tail -30 "$work/build.log" >&2
  fi
fi
[ -f "$info" ] || die "no native build; nothing else can run"
prop() { sed -n "s/^$1=//p" "$info"; }
lib_dir=$(prop native.lib.dir)
bin_dir=$(prop native.bin.dir)

# --- toolchain facts (what a crash or a failed link is read against) ------------------------------
# shellcheck source=../native/elf.sh
. "$root/native/elf.sh" # elf_needed, loader_lib
newest_glibcxx() { { grep -ao 'GLIBCXX_3\.4\.[0-9]*' "$1" 2>/dev/null | sort -uV | tail -1; } || true; }
loader_libstdcxx=$(loader_lib libstdc++.so.6)
cxx_used=${CXX:-$(command -v c++ || command -v g++ || echo '?')}
{
  echo "os: $(sed -n 's/^PRETTY_NAME=//p' /etc/os-release 2>/dev/null | tr -d '"')"
  echo "env: CC=${CC:-} CXX=${CXX:-} CUDAHOSTCXX=${CUDAHOSTCXX:-} LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  for c in "${CC:-}" "${CXX:-}" "${CUDAHOSTCXX:-}" gcc g++ c++ /usr/bin/g++-[0-9]* /usr/bin/gcc-[0-9]*; do
    p=$(command -v "$c" 2>/dev/null) || continue
    echo "compiler $c -> $(readlink -f "$p"): $("$p" --version 2>/dev/null | head -1)"
  done | sort -u
  echo "$cxx_used -print-file-name: libstdc++.so.6=$("$cxx_used" -print-file-name=libstdc++.so.6 2>/dev/null) libstdc++.a=$("$cxx_used" -print-file-name=libstdc++.a 2>/dev/null)"
  echo "$cxx_used configured with: $("$cxx_used" -v 2>&1 | sed -n 's/^Configured with: //p' | cut -c1-600)"
  echo "$cxx_used link line of a shared C++ library: $(echo 'int f(){return 0;}' | "$cxx_used" -x c++ -shared -fPIC -o /dev/null -### - 2>&1 | grep -E 'collect2|/ld ' | head -1 | grep -oE -- '-(Bstatic|Bdynamic|lstdc\+\+|static-libstdc\+\+)|libstdc\+\+[^ ]*' | paste -sd' ' -)"
  ldconfig -p 2>/dev/null | grep -E 'libstdc\+\+|libgcc_s' | sed 's/^/loader: /'
  for f in "$loader_libstdcxx" $("$cxx_used" -print-file-name=libstdc++.so.6 2>/dev/null); do
    [ -f "$f" ] && echo "newest symbol version in $(readlink -f "$f"): $(newest_glibcxx "$f")"
  done
  for f in "$lib_dir"/lib*.so*; do
    [ -L "$f" ] && continue
    echo "library $(basename "$f"): $(du -hL "$f" | cut -f1); NEEDED $(elf_needed "$f" 2>/dev/null | paste -sd' ' -); exported std:: symbols $(nm -D --defined-only "$f" 2>/dev/null | grep -c ' _ZNK\?St' || true)"
  done
} >"$work/toolchain.txt" 2>&1 || true
toolchain="$(sed -n 's/^os: //p' "$work/toolchain.txt"); CXX ${cxx_used} ($("$cxx_used" --version 2>/dev/null | head -1 || true)); loader's libstdc++.so.6 ${loader_libstdcxx:-none} ($(newest_glibcxx "$loader_libstdcxx")); details in toolchain.txt"
log "toolchain: $toolchain"

# --- tests ---------------------------------------------------------------------------------------
joined() { local IFS=:; echo "$*"; }
server_jar=$(ls "$root"/server/target/server-*.jar | grep -v -- '-sources\|-tests' | head -1)
# The test class path of a module as Maven had it (gpu-pack.sh wrote the list), JUnit console included.
module_cp() { sed "s#^#$root/#" "$root/target/gpu-libs/$1.classpath" | paste -sd: -; }
junit() { # label classpath classes...
  local label=$1 cp=$2; shift 2
  local sel=() c
  for c in "$@"; do sel+=(--select-class "$c"); done
  touch "$work/step-mark"
  env ${junit_preload:+LD_PRELOAD=$junit_preload} java --enable-native-access=ALL-UNNAMED -Xshare:auto -XX:ErrorFile="$work/hs_err_%p.log" \
    -Dtest.model="$pack/stories260K.gguf" -Dnative.build.info="$info" -Dbindings.dir="$root/bindings" \
    -Dpin.file="$root/native/pin.properties" -Dllama.native.dir="$lib_dir" \
    -Dtest.gpu-layers="$ngl" -Dtest.expect-gpu="$expect_gpu" \
    -Djava.util.logging.config.file="$root/.ci/test-logging.properties" \
    -cp "$cp" org.junit.platform.console.ConsoleLauncher execute --disable-banner --details=tree \
    --reports-dir "$work/junit-$label" "${sel[@]}" >"$work/test-$label.log" 2>&1
}
# "; JVM crash in <frame> (hs_err_<pid>.log)" for a JVM crash report written since junit/run_server
# last started a JVM (the file step-mark), if any
crash_note() {
  local f
  f=$(find "$work" -maxdepth 1 -name 'hs_err_*.log' -newer "$work/step-mark" 2>/dev/null | head -1)
  [ -n "$f" ] || return 0
  printf '; JVM crash in %s (%s)' "$(grep -A1 -m1 '^# Problematic frame:' "$f" | tail -1 | sed 's/^# *//' | cut -c1-160)" "$(basename "$f")"
}
test_summary() { # log -> "N tests successful, M failed"
  sed -n 's/^\[ *\([0-9]*\) tests \(successful\|failed\) *\]$/\1 \2/p' "$1" | paste -sd, -
}
bindings_cp=$(joined "$root/bindings/target/classes" "$root/bindings/target/test-classes" "$(module_cp bindings)")
server_cp=$(joined "$root/server/target/test-classes" "$server_jar" "$(module_cp server)")
p=ai.llmref.llama
bindings_tests=($p.GpuOffloadTest $p.GenerationTest $p.NativeGreedyReferenceTest $p.ModelAndContextTest
  $p.BatchInvarianceTest $p.GrammarSamplingTest $p.SamplerTest $p.ArgmaxTest $p.SamplingPoolTest $p.SoftmaxDrawTest
  $p.TruncatedDrawTest $p.LogitsTest $p.OutputRowsTest
  $p.StreamingDetokenizerTest $p.BadInputTest
  $p.KvCacheTest)
server_tests=(ai.llmref.server.OpenAiClientTest ai.llmref.server.CompletionsTest)
if has_phase test; then
  if [ "${GPU_VERIFY_SIMULATE_CRASH:-0}" = 1 ]; then
    jvm_crashed=1
    step "bindings tests, $ngl GPU layers" FAIL "simulated JVM crash (GPU_VERIFY_SIMULATE_CRASH=1: a test of this script)"
  elif junit bindings "$bindings_cp" "${bindings_tests[@]}"; then
    step "bindings tests, $ngl GPU layers" pass "$(test_summary "$work/test-bindings.log")"
  else
    crash=$(crash_note)
    [ -z "$crash" ] || jvm_crashed=1
    step "bindings tests, $ngl GPU layers" FAIL "$(test_summary "$work/test-bindings.log")$crash; see test-bindings.log"
  fi
  grep -E '^(devices|placement|CUDA|Vulkan).*' "$work/test-bindings.log" 2>/dev/null | head -5 >"$work/placement.txt" || true
  if junit server "$server_cp" "${server_tests[@]}"; then
    step "server conformance (OpenAI Java client), $ngl GPU layers" pass "$(test_summary "$work/test-server.log")"
  else
    step "server conformance (OpenAI Java client), $ngl GPU layers" FAIL "$(test_summary "$work/test-server.log")$(crash_note); see test-server.log"
  fi
  # llama.cpp's backend sampling is experimental: its tests run in JVMs of their own, so that a
  # crash there costs neither the steps above nor the benchmarks
  device_sampling_ok=0
  if junit device-bindings "$bindings_cp" $p.DeviceSamplingTest $p.DeviceGreedyTest && junit device-server "$server_cp" ai.llmref.server.DeviceSamplingServerTest; then
    device_sampling_ok=1
    step "device sampling (engine.device-sampling), $ngl GPU layers" pass "$(test_summary "$work/test-device-bindings.log"), $(test_summary "$work/test-device-server.log")"
  else
    step "device sampling (engine.device-sampling), $ngl GPU layers" FAIL "$(test_summary "$work/test-device-bindings.log") $(test_summary "$work/test-device-server.log" 2>/dev/null)$(crash_note); see test-device-*.log"
  fi
fi

# --- CPU fallback and GPU requirement ----------------------------------------------------------------
# shellcheck source=lib/server-process.sh
. "$root/scripts/lib/server-process.sh"
# label libdir cuda_visible extra-java-options... -> starts the server, waits until it answers
# readiness (200 or 503 after loading); sets api, admin
run_server() {
  local label=$1 dir=$2 visible=$3; shift 3
  local port admin_port
  port=$(free_port); admin_port=$(free_port)
  touch "$work/step-mark"
  # shellcheck disable=SC2086
  env ${visible:+CUDA_VISIBLE_DEVICES=$visible} java --enable-native-access=ALL-UNNAMED -XX:ErrorFile="$work/hs_err_%p.log" -Dllama.native.dir="$dir" \
    -Dserver.admin-port="$admin_port" -Dengine.slots=2 -Dengine.slot-context=256 -Dmodel.gpu-layers="$ngl" "$@" \
    -jar "$server_jar" --model "$pack/stories260K.gguf" --port "$port" >"$work/fallback-$label.log" 2>&1 &
  server_pid=$!
  api=http://127.0.0.1:$port
  admin=http://127.0.0.1:$admin_port
  for _ in $(seq 600); do
    if grep -q '"status":"\(loading\)"' <(curl -s "$admin/health/ready" 2>/dev/null || echo '"status":"loading"'); then
      kill -0 "$server_pid" 2>/dev/null || return 1
      sleep 0.1
    else
      return 0
    fi
  done
  return 1
}
# label expectation(cpu|gpu|refused) libdir cuda_visible extra...
check_fallback() {
  local label=$1 expect=$2; shift 2
  local ready code metrics detail cpu_threads ok=1
  if ! run_server "$label" "$@"; then
    step "fallback: $label" FAIL "the server did not come up$(crash_note); see fallback-$label.log"
    stop_server
    return
  fi
  code=$(curl -s -o "$work/ready-$label.json" -w '%{http_code}' "$admin/health/ready")
  ready=$(cat "$work/ready-$label.json")
  metrics=$(curl -s "$admin/metrics" | grep -E '^llmref_(gpu_devices|model_layers_offloaded)' | tr '\n' ' ')
  # llama.cpp's CPU threads the server chose (engine.threads auto): every core (the JVM's count) for
  # both on the CPU, 1 and at most 4 with every layer on the GPU
  cpu_threads=$(grep -o 'CPU threads [0-9]*/[0-9]*' "$work/fallback-$label.log" | head -1 || true)
  detail="readiness $code $ready; metrics: $metrics; ${cpu_threads:-no CPU threads in the log}"
  case "$expect" in
    cpu)
      [ "$code" = 200 ] || ok=0
      [[ "$cpu_threads" =~ ^CPU\ threads\ ([0-9]+)/([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ] || ok=0
      grep -q '"layers_offloaded":0' <<<"$ready" || ok=0
      grep -q 'running on CPU' "$work/fallback-$label.log" || ok=0
      grep -q 'llmref_model_layers_offloaded 0' <<<"$metrics" || ok=0
      curl -sf "$api/v1/completions" -H 'Content-Type: application/json' \
        -d '{"prompt":"Once upon a time","max_tokens":8,"temperature":0}' >"$work/completion-$label.json" || ok=0
      ;;
    gpu)
      [ "$code" = 200 ] || ok=0
      python3 - "$work/ready-$label.json" <<'EOF' || ok=0
import json, sys
p = json.load(open(sys.argv[1]))["placement"]
sys.exit(0 if p["gpu_devices"] >= 1 and p["layers_offloaded"] == p["layers_total"] > 0 else 1)
EOF
      [[ "$cpu_threads" =~ ^CPU\ threads\ 1/[1-4]$ ]] || ok=0
      curl -sf "$api/v1/completions" -H 'Content-Type: application/json' \
        -d '{"prompt":"Once upon a time","max_tokens":8,"temperature":0}' >"$work/completion-$label.json" || ok=0
      ;;
    refused)
      [ "$code" = 503 ] || ok=0
      grep -q '"status":"not_on_gpu"' <<<"$ready" || ok=0
      [ "$(curl -s -o /dev/null -w '%{http_code}' "$admin/health/live")" = 200 ] || ok=0
      ;;
  esac
  stop_server
  if [ "$ok" = 1 ]; then step "fallback: $label" pass "$detail"; else step "fallback: $label" FAIL "$detail; see fallback-$label.log"; fi
}
if has_phase fallback; then
  if [ "$mode" = gpu ]; then
    check_fallback "on the GPU" gpu "$lib_dir" ""
    check_fallback "no GPU visible (CUDA_VISIBLE_DEVICES=-1)" cpu "$lib_dir" "-1"
    no_plugin=$work/lib-without-cuda
    rm -rf "$no_plugin"; cp -r "$lib_dir" "$no_plugin"; rm -f "$no_plugin"/libggml-cuda*.so
    check_fallback "CUDA plugin absent" cpu "$no_plugin" ""
    check_fallback "GPU required, none visible" refused "$lib_dir" "-1" -Dmodel.require-gpu=TRUE
  else
    check_fallback "no GPU (CPU build)" cpu "$lib_dir" ""
    check_fallback "GPU required, none visible" refused "$lib_dir" "" -Dmodel.require-gpu=TRUE
  fi
fi

# --- crash triage ----------------------------------------------------------------------------------
# With the JVM crashing the Java side cannot be measured: the time goes to two questions instead.
if [ "$jvm_crashed" = 1 ] || [ "${GPU_VERIFY_TRIAGE:-0}" = 1 ]; then
  if [ -n "$loader_libstdcxx" ]; then
    if junit_preload=$loader_libstdcxx junit triage-preload "$bindings_cp" $p.GpuOffloadTest; then
      step "triage: offload test with $loader_libstdcxx preloaded" pass "$(test_summary "$work/test-triage-preload.log")"
      if [ "$jvm_crashed" = 1 ]; then
        # A workaround to measure with, not a fix: every later step runs with the runtime preloaded
        # (the summary says so), and the tests run again under it first.
        export LD_PRELOAD=$loader_libstdcxx
        log "continuing with LD_PRELOAD=$LD_PRELOAD"
        if junit bindings-preload "$bindings_cp" "${bindings_tests[@]}"; then
          step "bindings tests, $ngl GPU layers, LD_PRELOAD=$LD_PRELOAD" pass "$(test_summary "$work/test-bindings-preload.log")"
          grep -E '^(devices|placement|CUDA|Vulkan).*' "$work/test-bindings-preload.log" | head -5 >"$work/placement.txt" || true
          jvm_crashed=0
        else
          step "bindings tests, $ngl GPU layers, LD_PRELOAD=$LD_PRELOAD" FAIL "$(test_summary "$work/test-bindings-preload.log")$(crash_note); see test-bindings-preload.log"
        fi
        if junit server-preload "$server_cp" "${server_tests[@]}"; then
          step "server conformance, $ngl GPU layers, LD_PRELOAD=$LD_PRELOAD" pass "$(test_summary "$work/test-server-preload.log")"
        else
          step "server conformance, $ngl GPU layers, LD_PRELOAD=$LD_PRELOAD" FAIL "$(test_summary "$work/test-server-preload.log")$(crash_note); see test-server-preload.log"
        fi
      fi
    else
      step "triage: offload test with $loader_libstdcxx preloaded" FAIL "$(test_summary "$work/test-triage-preload.log")$(crash_note); see test-triage-preload.log"
    fi
  fi
  if timeout 120 "$bin_dir/llama-bench" -m "$pack/stories260K.gguf" -p 16 -n 16 -r 1 -ngl "$ngl" -o md >"$work/triage-native.log" 2>&1; then
    step "triage: llama-bench loads the model, $ngl GPU layers, same build" pass "$(awk -F' *[|] *' '/tg16/ {print "backend " $5 ", tg16 " $(NF-1) " t/s"; exit}' "$work/triage-native.log")"
  else
    step "triage: llama-bench loads the model, $ngl GPU layers, same build" FAIL "see triage-native.log"
  fi
fi

# --- benchmarks ----------------------------------------------------------------------------------
if has_phase bench && [ -n "${LD_PRELOAD:-}" ] && [ "$jvm_crashed" = 0 ]; then
  step "benchmarks below" "pass" "run with LD_PRELOAD=$LD_PRELOAD (the triage's workaround; the libraries alone crash the JVM here)"
fi
if has_phase bench && [ "$jvm_crashed" = 1 ]; then
  # the Java side cannot run here: the triage above used the time instead
  step "benchmarks" skipped "the JVM crashed in the bindings tests (see above and the triage)"
elif has_phase bench; then
  left=$(( budget - ($(date +%s) - started) ))
  # What the phase takes at full length on the H200 machine (runs 3-5): the 1B model written and
  # quantized 29 s (30); bench-server with 10 s levels and 1000 warm-up requests 160 s for the two
  # servers and llama-batched-bench (170, and 30 to spare), 238 s with the variant as a third
  # server (+80); a bindings process pair (llama-bench 6 s, the API alone 7 s, the idle waits) about
  # 15 s, 8 of them (120); the profile's round 93 s (100: the interleaved process 51 s, the API alone
  # three times, the C loop 10 s); the bindings at every core 65 s (70). It runs short unless that
  # fits: 5 s per server level, 300 warm-up requests, as many bindings pairs as the time left holds.
  pair_s=15 profile_s=100 cores_s=70
  full=30
  if has_bench server || has_bench variant; then
    full=$((full + 170 + 30))
    ! has_bench variant || full=$((full + 80))
  fi
  ! has_bench bindings || full=$((full + 8 * pair_s))
  ! has_bench profile || full=$((full + profile_s))
  ! has_bench cores || full=$((full + cores_s))
  short=0
  if [ "$budget" -gt 0 ] && [ "$left" -lt "$full" ]; then
    short=1; duration=5; server_warmup=300
    step "benchmarks run short" pass "$left s of the $budget s budget left (a full phase: $full s): 5 s per server level, 300 warm-up requests, as many bindings pairs as fit"
  fi
  cache=${AIREF_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-llm-reference-app}/models
  bench_mode=$mode b_model=1B-128k s_levels="1 32 64"
  if [ "${GPU_VERIFY_BENCH_AS_GPU:-0}" = 1 ]; then
    bench_mode=gpu b_model=tiny-128k s_levels="1 4" models=tiny
  fi
  if [ "$bench_mode" = gpu ]; then
    # The GPU does the work: CPU noise matters less, and the machine's own daemons must not make
    # every run wait or repeat.
    b_args=(--ngl "$ngl" --models "$b_model" --quiet-wait 10 --max-other-load 1)
    # The bindings at the server's CPU threads for a model wholly on the GPU (1; docs/server.md, "CPU
    # threads"): llama-bench and the Java API alone in a process of its own (one context,
    # llama-bench's order), in alternating process pairs, because on this machine two processes of
    # the same program differ by up to 7% (run 5) while the repetitions inside one scatter by under 1%
    b_threads=1
    # the profile, one round at the same threads: the interleaved process (the API and the raw
    # bindings' loops, the per-token costs, the samplers), the API alone, with the JIT warm-up
    # first, with two idle contexts, and the raw loop's calls in a C program (decode_loop.c) (run 4:
    # 0.993 alone, 0.945 interleaved; run 5: the C program 0.972 pp, 0.996 tg)
    b_profile=(--alone --alone-also "jit idle" --c-loop)
    # then at every core (-t 16 was llama-bench's setting in the earlier runs): with many threads
    # OpenMP's idle workers spin on every core between tokens
    b_cores=$threads
    # both servers and llama-batched-bench with our server's own choice for a model on the GPU
    s_threads=(--threads 1 --threads-batch $((threads < 4 ? threads : 4)))
    # the 1-minute load average still carries the CUDA build's 16 busy cores for a while
    s_load=$((threads * 3 / 4))
  else
    b_args=(--models stories260K)
    b_threads=$threads
    s_threads=(--threads "$threads")
    s_levels="1 4"
    s_load=$((threads / 4 + 1))
  fi
  no_room() { # need what -> true, with a "skipped" step, when the budget left cannot hold a benchmark of need seconds
    local left=$(( budget - ($(date +%s) - started) ))
    [ "$budget" -gt 0 ] && [ "$left" -lt "$1" ] || return 1
    step "benchmark: $2" skipped "$left s of the budget left, $1 s needed (a second call with --phases bench --benchmarks ... runs it)"
  }
  model_file() { # m -> the model's path
    if [ "$bench_mode" = gpu ]; then echo "$cache/llama-bpe-$1-q4km.gguf"; else echo "$pack/stories260K.gguf"; fi
  }
  model_for() { # m -> the model's path, written first when missing
    local model vocab
    model=$(model_file "$1")
    if [ "$bench_mode" = gpu ] && [ ! -f "$model" ]; then
      mkdir -p "$cache"
      vocab="$(prop llama.cpp.dir)/models/ggml-vocab-llama-bpe.gguf"
      python3 "$MKMODEL" "$vocab" "$model.f16.tmp" "$1" >"$work/mkmodel-$1.log" 2>&1 \
        && "$bin_dir/llama-quantize" "$model.f16.tmp" "$model.tmp" Q4_K_M >>"$work/mkmodel-$1.log" 2>&1 \
        && mv "$model.tmp" "$model"
      rm -f "$model.f16.tmp"
    fi
    echo "$model"
  }
  [ "$bench_mode" = gpu ] || models=${models%% *}
  # In order of what the issue's goals need most: the server against both references (with
  # --variant's flags measured in the same rounds as a variant of ours, when the budget leaves room
  # and, for engine.device-sampling=true, this run's device-sampling tests did not fail), then the
  # bindings (at the server's thread count first).
  for m in $models; do
    has_bench server || has_bench variant || break
    # what the variant needs: a third server in the run (about 170 s when short), the model written
    # first when it is not there yet (about 40 s), and the least bindings run (3 process pairs) when
    # the bindings follow
    need=170
    [ -f "$(model_file "$m")" ] || need=$((need + 40))
    ! has_bench bindings || need=$((need + 3 * pair_s + 10))
    model=$(model_for "$m")
    variant=()
    if ! has_bench variant; then
      :
    elif [ "$device_sampling_ok" = 0 ] && [[ "$server_variant" == *engine.device-sampling=true* ]]; then
      step "benchmark: server variant ${server_variant%%:*} ($(basename "$model" .gguf))" skipped "its tests failed above"
    elif no_room "$need" "server variant ${server_variant%%:*} ($(basename "$model" .gguf))"; then
      :
    else
      variant=(--variant "$server_variant")
    fi
    has_bench server || [ ${#variant[@]} -gt 0 ] || continue
    what="server vs llama-server and llama-batched-bench$([ ${#variant[@]} = 0 ] || echo ", with the variant ${server_variant%%:*} (${server_variant#*:})") ($(basename "$model" .gguf))"
    # the least the server benchmark takes when short (run 5: 138 s; the variant as a third server
    # about 60 s more); the model was written above
    need=140
    [ ${#variant[@]} = 0 ] || need=$((need + 60))
    if [ ! -f "$model" ]; then
      step "benchmark: $what" FAIL "no model $model; see mkmodel-$m.log"
    elif no_room "$need" "$what"; then
      :
    # shellcheck disable=SC2086 # --server-args is a list of arguments
    elif "$root/scripts/bench-server.sh" --prebuilt --ngl "$ngl" --model "$model" --concurrency "$s_levels" --batched-bench "${variant[@]}" $server_args \
        --rounds "${rounds:-1}" --duration "$duration" --warmup-requests "$server_warmup" --warmup-seconds 5 "${s_threads[@]}" --max-load "$s_load" \
        >"$work/bench-server-$m.md" 2>"$work/bench-server-$m.log"; then
      step "benchmark: $what" pass "bench-server-$m.md"
    else
      step "benchmark: $what" FAIL "see bench-server-$m.log"
    fi
  done
  bindings_bench() { # name what need args... -> one bench-bindings run, skipped when the budget left is under need
    local f=$1 what=$2 need=$3
    shift 3
    if no_room "$need" "$what"; then
      :
    elif "$root/scripts/bench-bindings.sh" --prebuilt "${b_args[@]}" "$@" >"$work/$f.md" 2>"$work/$f.log"; then
      step "benchmark: $what" pass "$f.md"
    else
      step "benchmark: $what" FAIL "see $f.log"
    fi
  }
  if has_bench bindings; then
    if [ "$bench_mode" = gpu ]; then
      # process pairs: --rounds, else 8, else (short) as many as the budget holds, at least 3
      pairs=${rounds:-8}
      # bench-bindings writes the model first when no benchmark before it has (about 40 s)
      model_s=0
      [ -f "$(model_file "$([ "$b_model" = 1B-128k ] && echo 1b || echo tiny)")" ] || model_s=40
      if [ -z "$rounds" ] && [ "$short" = 1 ]; then
        left=$(( budget - ($(date +%s) - started) - model_s ))
        later=0
        ! has_bench profile || later=$((later + profile_s))
        ! has_bench cores || later=$((later + cores_s))
        pairs=$(( (left - 10 - later) / pair_s ))
        [ "$pairs" -ge 3 ] || pairs=$(( (left - 10) / pair_s )) # the pairs before the diagnostics
        [ "$pairs" -le 8 ] || pairs=8
        [ "$pairs" -ge 3 ] || pairs=3
      fi
      bindings_bench bench-bindings "bindings vs llama-bench (-t $b_threads, $pairs process pairs)" $((pairs * pair_s + 10 + model_s)) \
        --threads "$b_threads" --pairs --rounds "$pairs"
    else
      bindings_bench bench-bindings "bindings vs llama-bench (-t $b_threads)" 0 --threads "$b_threads" --rounds "${rounds:-1}" --c-loop
    fi
  fi
  if [ "$bench_mode" = gpu ]; then
    ! has_bench profile || bindings_bench bench-bindings-profile "bindings profile (-t $b_threads: interleaved, alone, alone with the JIT warm-up, alone with idle contexts, C loop)" \
      "$profile_s" --threads "$b_threads" --rounds 1 "${b_profile[@]}"
    ! has_bench cores || bindings_bench "bench-bindings-t$b_cores" "bindings vs llama-bench (-t $b_cores)" "$cores_s" --threads "$b_cores" --rounds 1
  else
    for b in profile cores; do
      ! has_bench $b || step "benchmark: $b" skipped "GPU only"
    done
  fi
fi

write_summary
pack_logs
cat "$summary"
log "$failures step(s) failed; summary in $summary"
[ "$failures" = 0 ]
