#!/usr/bin/env bash
# This server vs llama-server from the same pinned llama.cpp build, same machine, same model, same
# settings, same client, in one run: single-stream generation tok/s, time to first token, and
# aggregate tok/s at 1, 4 and 16 concurrent streams. Prints a markdown results block (also written
# to target/bench-server/results.md) with ours/llama-server ratios. Method: docs/benchmarks.md.
#
#   scripts/bench-server.sh [--quick] [--model M] [--threads N] [--threads-batch N] [--rounds N] [--duration S]
#                           [--concurrency "1 4 16"] [--slots N] [--slot-context N] [--max-load L]
#                           [--ngl N] [--batched-bench] [--prebuilt] [--warmup-requests N]
#                           [--warmup-seconds S] [--api completions|responses|messages|native]
#                           [--variant "LABEL:JVM-FLAGS"] [--eos ban|allow]
#                           [--sampling greedy|temperature|top-p|llama-defaults]
#
#   --quick          one round of 5 s per concurrency level (a smoke run, about 2 minutes)
#   --api A          the route measured on both servers: completions (/v1/completions, the default)
#                    or responses (/v1/responses, the Responses API: the prompt as 'input', so each
#                    server applies its chat template; its typed events are timed) or messages
#                    (/v1/messages, Anthropic's Messages API: the prompt as the user's message) or
#                    native (/completion, llama-server's own route: the prompt and n_predict)
#   --model M        the GGUF to serve (default: stories260K beside this checkout)
#   --threads N      -t for llama-server and llama-batched-bench, engine.threads for ours (default: nproc)
#   --threads-batch N  -tb for them, engine.threads-batch for ours (default: --threads). With every
#                    layer on a GPU our server's own default is 1 and min(4, cores) (docs/server.md)
#   --rounds N       servers measured in ABBA order, N rounds; medians over rounds (default 2)
#   --duration S     seconds of closed-loop load per concurrency level (default 15)
#   --concurrency L  client streams per level (default "1 4 16")
#   --slots N        server slots (llama-server -np, engine.slots; default: the largest level)
#   --slot-context N positions per slot (default 256; -c is slots x this for llama-server)
#   --max-load L     before measuring, wait (up to 5 min) until the 1-minute load average is below
#                    L, and before each server until the machine's busy CPUs are below L (default 0.5)
#   --ngl N          layers on the GPU for both servers (default 0; scripts/gpu-verify.sh passes 99)
#   --variant L:F    also measure our server a second time with extra JVM flags F (e.g.
#                    "device-sampling:-Dengine.device-sampling=true"; given last, so they may also
#                    override the settings here, as in "t16:-Dengine.threads=16"), in the same
#                    rounds between the two servers, so that one run compares the variant with our
#                    default and with llama-server under the same conditions
#   --eos ban|allow  ban the model's end-of-generation tokens in every request (logit_bias -100
#                    and ignore_eos, the default: each request generates exactly its max_tokens) or
#                    send neither (requests may stop early at EOS: the counts are still the ones each
#                    server reports; for measuring paths that a logit_bias changes, such as
#                    llama.cpp's backend sampling behind engine.device-sampling)
#   --sampling S     what every request asks both servers for: greedy (temperature 0, the default),
#                    temperature (1.0 over the whole vocabulary: an OpenAI request's default; top_k 0,
#                    top_p 1 and min_p 0 sent too, so that llama-server leaves out its own default
#                    stages), top-p (temperature 0.8, top_p 0.95, top_k 0, min_p 0: what many chat
#                    clients send) or llama-defaults (temperature 0.8, top_k 40, top_p 0.95, min_p
#                    0.05: llama-server's defaults, sent to both). Each request draws with a seed of
#                    its own, so the two servers' texts differ; the token counts do not
#   --batched-bench  also run llama-batched-bench (the library's continuous-batching ceiling) at each
#                    level above 1 with the same prompt and generation lengths, and compare with it
#   --prebuilt       use the jars already in server/target (no Maven, no prereqs.sh): for a machine
#                    with a Java runtime but no Maven (scripts/gpu-verify.sh)
#   --warmup-requests N  unmeasured warm-up before each server's first level, the same for both:
#                    two requests per slot at full concurrency, then N short requests (8 tokens)
#                    on 2 streams (default 3000; 0: none), then --warmup-seconds S of the measured
#                    workload on one stream (default 5). Our server's per-request code (HTTP,
#                    parsing, tokenizing) is JIT-compiled only after some thousands of requests;
#                    docs/benchmarks.md shows TTFT before and after
#
# The servers run one after the other, never together, on 127.0.0.1, each warmed up first. The
# lock /tmp/bench.lock (flock) is held while measuring so that benchmarks on a shared machine do not
# overlap.
#
# Environment: STORIES_MODEL; OURS_GC (our server's collector flag, default -XX:+UseZGC as in
# scripts/run.sh); JAVA_OPTS (extra JVM flags for our server); MAX_GEN (most tokens generated per
# request, default 128); SERVER_JAR (measure another build of our server, e.g. an experiment);
# NATIVE_BUILD_ARGS (extra native/build.sh arguments, e.g. "--variant cuda --cuda-arch 90").
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "bench-server: error: $*" >&2; exit 1; }
log() { echo "bench-server: $*" >&2; }

args_given="$*"
threads=$(nproc)
threads_batch=""
rounds=2
duration=15
levels="1 4 16"
slots=""
slot_ctx=256
max_load=0.5
model=""
quick=0
ngl=0
batched=0
prebuilt=0
warmup_s=5
warmup_n=3000
api=completions
eos=ban
sampling=greedy
variant_label=""
variant_flags=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; rounds=1; duration=5; warmup_s=3; warmup_n=300; shift ;;
    --model) model=${2?"$1 needs a value"}; shift 2 ;;
    --threads) threads=${2?"$1 needs a value"}; shift 2 ;;
    --threads-batch) threads_batch=${2?"$1 needs a value"}; shift 2 ;;
    --rounds) rounds=${2?"$1 needs a value"}; shift 2 ;;
    --duration) duration=${2?"$1 needs a value"}; shift 2 ;;
    --concurrency) levels=${2?"$1 needs a value"}; shift 2 ;;
    --slots) slots=${2?"$1 needs a value"}; shift 2 ;;
    --slot-context) slot_ctx=${2?"$1 needs a value"}; shift 2 ;;
    --max-load) max_load=${2?"$1 needs a value"}; shift 2 ;;
    --ngl) ngl=${2?"$1 needs a value"}; shift 2 ;;
    --batched-bench) batched=1; shift ;;
    --prebuilt) prebuilt=1; shift ;;
    --warmup-seconds) warmup_s=${2?"$1 needs a value"}; shift 2 ;;
    --warmup-requests) warmup_n=${2?"$1 needs a value"}; shift 2 ;;
    --api) api=${2?"$1 needs a value"}; shift 2 ;;
    --eos) eos=${2?"$1 needs a value"}; shift 2 ;;
    --sampling) sampling=${2?"$1 needs a value"}; shift 2 ;;
    --variant)
      [[ "${2:-}" =~ ^([a-z0-9][a-z0-9.=-]*):(.*[^[:space:]].*)$ ]] \
        || die "--variant must be LABEL:JVM-FLAGS (a lower-case label, a colon, then the flags)"
      variant_label=${BASH_REMATCH[1]}; variant_flags=${BASH_REMATCH[2]}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer"
threads_batch=${threads_batch:-$threads}
[[ "$threads_batch" =~ ^[1-9][0-9]*$ ]] || die "--threads-batch must be a positive integer"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
[[ "$duration" =~ ^[1-9][0-9]*$ ]] || die "--duration must be a positive integer (seconds)"
[[ "$slot_ctx" =~ ^[1-9][0-9]*$ ]] || die "--slot-context must be a positive integer"
[[ "$max_load" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--max-load must be a number"
[[ "$warmup_s" =~ ^[0-9]+$ ]] || die "--warmup-seconds must be a whole number of seconds"
[[ "$warmup_n" =~ ^[0-9]+$ ]] || die "--warmup-requests must be a whole number"
[[ "$ngl" =~ ^[0-9]+$ ]] || die "--ngl must be a non-negative integer"
case "$api" in
  completions) route=/v1/completions ;; responses) route=/v1/responses ;; messages) route=/v1/messages ;;
  native) route=/completion ;;
  *) die "--api must be completions, responses, messages or native" ;;
esac
case "$eos" in ban|allow) ;; *) die "--eos must be ban or allow" ;; esac
case "$sampling" in
  greedy) sampling_json='{"temperature": 0}' ;;
  temperature) sampling_json='{"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0}' ;;
  top-p) sampling_json='{"temperature": 0.8, "top_k": 0, "top_p": 0.95, "min_p": 0}' ;;
  llama-defaults) sampling_json='{"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05}' ;;
  *) die "--sampling must be greedy, temperature, top-p or llama-defaults" ;;
esac
for c in $levels; do [[ "$c" =~ ^[1-9][0-9]*$ ]] || die "--concurrency must list positive integers"; done
top=$(printf '%s\n' $levels | sort -n | tail -1)
slots=${slots:-$top}
[[ "$slots" =~ ^[1-9][0-9]*$ ]] || die "--slots must be a positive integer"
max_gen=${MAX_GEN:-128}

[ "$prebuilt" = 1 ] || "$root/scripts/prereqs.sh"
command -v python3 >/dev/null || die "python3 is needed"
command -v curl >/dev/null || die "curl is needed"
export JAVA_HOME=${JAVA_HOME_25:-${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}}
export PATH="$JAVA_HOME/bin:$PATH"

out_dir="$root/target/bench-server"
mkdir -p "$out_dir"
run_dir=$(mktemp -d "$out_dir/run-XXXXXX")

# --- builds: native libraries + llama-server (cached), then the server jar and the load generator --
log "building the native libraries and llama-server (cached after the first time)"
# shellcheck source=lib/native-tools.sh
. "$root/scripts/lib/native-tools.sh"
native_tools llama-server
if [ "$prebuilt" = 0 ]; then
  log "building the server and the load generator"
  # the modules below the server without their tests (not needed here), then the server with its test
  # classes (the load generator)
  (cd "$root" && mvn -B -ntp -q -pl native,bindings -am install -Dmaven.test.skip=true >&2 \
    && mvn -B -ntp -q -pl server install -DskipTests >&2)
fi
jar=${SERVER_JAR:-$root/server/target/server-0.1.0-SNAPSHOT.jar}
[ -f "$jar" ] || die "server jar not found: $jar"
client_cp="$root/server/target/test-classes:$root/server/target/libs/*"

model=${model:-${STORIES_MODEL:-$root/../shared/models/stories260K.gguf}}
[ -f "$model" ] || die "model not found: $model (--model or STORIES_MODEL)"
model=$(cd "$(dirname "$model")" && pwd)/$(basename "$model")

# End-of-generation ids from the GGUF (banned with logit_bias on both servers, so that both generate
# the same number of tokens; the counts used are still the ones each server reports).
eos_ids=$(PYTHONPATH="$src_dir/gguf-py" python3 - "$model" <<'EOF' 2>/dev/null || true
import sys
from gguf import GGUFReader
r = GGUFReader(sys.argv[1])
ids = []
for k in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"):
    f = r.fields.get(k)
    if f is not None and int(f.contents()) not in ids:
        ids.append(int(f.contents()))
print(" ".join(map(str, ids)))
EOF
)
[ -n "$eos_ids" ] || log "warning: could not read the end-of-generation ids of $model (gguf-py needs numpy); EOS is not banned"
logit_bias=$(for id in $eos_ids; do printf '"%s":-100,' "$id"; done)
logit_bias="{${logit_bias%,}}"
[ "$eos" = ban ] || logit_bias=""
prompt='{{n}}. Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day,'

clk_tck=$(getconf CLK_TCK)

# --- quiet machine, one benchmark at a time ---------------------------------------------------------
exec 9>/tmp/bench.lock
if ! flock -n 9; then
  log "waiting for /tmp/bench.lock (another benchmark is running)"
  flock 9
fi
busy_cpus() { # busy CPUs of the whole machine over 3 s (all processes)
  python3 - <<'EOF'
import time
def busy():
    v = list(map(int, open("/proc/stat").readline().split()[1:9]))
    return sum(v) - v[3] - v[4], sum(v)
b0, t0 = busy(); time.sleep(3); b1, t1 = busy()
import os
print("%.2f" % ((b1 - b0) / max(1, t1 - t0) * os.cpu_count()))
EOF
}
below() { python3 -c "import sys; sys.exit(0 if float('$1') < float('$2') else 1)"; }
waited=0
while ! below "$(cut -d' ' -f1 /proc/loadavg)" "$max_load" && [ $waited -lt 300 ]; do
  [ $waited = 0 ] && log "waiting for the 1-minute load average ($(cut -d' ' -f1 /proc/loadavg)) to drop below $max_load"
  sleep 5; waited=$((waited + 5))
done
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average at start: $load_start (waited ${waited} s)"
quiet() { # label -> waits until fewer than max_load CPUs are busy (up to 2 min), records what it saw
  local b w=0
  b=$(busy_cpus)
  while ! below "$b" "$max_load" && [ $w -lt 120 ]; do
    sleep 2; w=$((w + 5)); b=$(busy_cpus)
  done
  echo "$1 $b $(cut -d' ' -f1 /proc/loadavg)" >>"$run_dir/quiet.txt"
}

# --- servers -----------------------------------------------------------------------------------------
# shellcheck source=lib/server-process.sh
. "$root/scripts/lib/server-process.sh"

start_llama() { # log -> sets server_pid, base_url
  local port; port=$(free_port)
  llama_cmd=("$bin_dir/llama-server" -m "$model" --host 127.0.0.1 --port "$port" -t "$threads" -tb "$threads_batch"
    -np "$slots" -c $((slots * slot_ctx)) -b 512 -ub 512 -fa auto --no-kv-unified --cache-ram 0 --no-webui -ngl "$ngl")
  "${llama_cmd[@]}" >"$1" 2>&1 &
  server_pid=$!
  base_url="http://127.0.0.1:$port"
  wait_ready "$base_url/health" "$1"
}

start_java() { # log extra-JVM-flags -> our server; sets java_cmd, server_pid, base_url, admin_url
  local port admin; port=$(free_port); admin=$(free_port)
  # the extra flags come last before -jar: a -D given twice takes the last value, so a variant can
  # also change the settings here (e.g. -Dengine.threads=16)
  # shellcheck disable=SC2206
  java_cmd=(java --enable-native-access=ALL-UNNAMED ${OURS_GC:--XX:+UseZGC} ${JAVA_OPTS:-} -Dllama.native.dir="$lib_dir"
    -Dserver.admin-port="$admin" -Dengine.slots="$slots" -Dengine.slot-context="$slot_ctx"
    -Dengine.threads="$threads" -Dengine.threads-batch="$threads_batch" -Dengine.batch-size=512 -Dengine.ubatch-size=512
    -Dengine.flash-attention=auto -Dmodel.gpu-layers="$ngl" $2 -jar "$jar" --model "$model" --port "$port")
  "${java_cmd[@]}" >"$1" 2>&1 &
  server_pid=$!
  base_url="http://127.0.0.1:$port"
  admin_url="http://127.0.0.1:$admin"
  wait_ready "$admin_url/health/ready" "$1"
}
start_ours() { # log
  start_java "$1" ""
  ours_cmd=("${java_cmd[@]}")
}
start_variant() { # log -> our server with the --variant flags
  start_java "$1" "$variant_flags"
  variant_cmd=("${java_cmd[@]}")
}
scrape_steps() { # file: our scheduler's step metrics now (ours only; llama-server has no such metrics)
  [ "$impl" != llama ] || return 0
  curl -sf "$admin_url/metrics" | grep -E '^llmref_engine_(step_phase_seconds_(sum|count)|decode_call_seconds_sum|step_seconds_(sum|count)|step_tokens_total|batch_tokens_total|step_outputs_total|sequence_runs_total|graphs_reused_total|prefix_copies_total|sampling_rows_total|sampling_pick_seconds_sum|sampling_helper_start_seconds_(sum|count)|sampling_helpers_total|sampling_helpers_ahead_total)' >"$1" || true
}

wait_ready() { # url log
  for _ in $(seq 600); do
    curl -sf -o /dev/null "$1" && return 0
    kill -0 "$server_pid" 2>/dev/null || { tail -20 "$2" >&2; die "the server exited while starting (log: $2)"; }
    sleep 0.1
  done
  tail -20 "$2" >&2
  die "the server was not ready within 60 s (log: $2)"
}

body() { # max_tokens
  python3 -c 'import json, sys
b = json.loads(sys.argv[5])
if sys.argv[3]:
    b.update(logit_bias=json.loads(sys.argv[3]), ignore_eos=True)
if sys.argv[4] == "responses":
    b.update(input=sys.argv[1], max_output_tokens=int(sys.argv[2]))
elif sys.argv[4] == "messages":
    b.update(messages=[{"role": "user", "content": sys.argv[1]}], max_tokens=int(sys.argv[2]))
elif sys.argv[4] == "native":
    b.update(prompt=sys.argv[1], n_predict=int(sys.argv[2]))
else:
    b.update(prompt=sys.argv[1], max_tokens=int(sys.argv[2]))
print(json.dumps(b))' "$prompt" "$1" "$logit_bias" "$api" "$sampling_json"
}

load() { # label concurrency outfile [generator options...]; load_tokens=N: max_tokens (default $gen)
  local label=$1 c=$2 out=$3 rc=0; shift 3
  java -cp "$client_cp" ai.llmref.server.bench.LoadGenerator --url "$base_url" --route "$route" \
    --body "$(body "${load_tokens:-$gen}")" --concurrency "$c" --label "$label" --server-pid "$server_pid" --clock-ticks "$clk_tck" "$@" \
    >"$out" 2>"$out.log" || rc=$?
  # Exit 1 is "some requests failed". In the short warm-up a request may legitimately fail the
  # generator's "stream carried text" check (a few tokens of a byte-level vocabulary can be half a
  # character); the counts stay in its summary. Anywhere else it is fatal.
  if [ "$rc" = 1 ] && [ -n "${load_tokens:-}" ] && [ -s "$out" ]; then
    log "$label: $(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("%d of %d warm-up requests failed: %s" % (s["errors"], s["requests"], s.get("first_error")))' "$out")"
  elif [ "$rc" != 0 ]; then
    cat "$out" "$out.log" >&2; die "the load generator failed ($label, $c streams)"
  fi
}

# Tokens to generate: the same for both, fitting the slot context llama-server grants (it caps a
# slot at the model's training context) with room for the prompt.
gen=""
phase() { # impl round
  local impl=$1 r=$2
  quiet "$impl-r$r"
  log "round $r: $impl: starting"
  "start_$impl" "$run_dir/$impl-r$r.server.log"
  if [ -z "$gen" ]; then
    [ "$impl" = llama ] || die "the first phase must be llama-server"
    local n_ctx ptoks
    n_ctx=$(curl -sf "$base_url/props" | python3 -c 'import json,sys; print(json.load(sys.stdin)["default_generation_settings"]["n_ctx"])')
    ptoks=$(curl -sf "$base_url/tokenize" -d "$(python3 -c 'import json,sys; print(json.dumps({"content": sys.argv[1].replace("{{n}}", "123456"), "add_special": True}))' "$prompt")" \
      | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tokens"]))')
    gen=$(( n_ctx - ptoks - 4 < max_gen ? n_ctx - ptoks - 4 : max_gen ))
    [ "$gen" -ge 16 ] || die "the slot context ($n_ctx) leaves too little room after the $ptoks-token prompt"
    echo "$n_ctx $ptoks $gen" >"$run_dir/shape.txt"
    ptoks_run=$ptoks
    log "slot context $n_ctx, prompt $ptoks tokens, $gen generated tokens per request"
  fi
  log "round $r: $impl: warming up"
  load "$impl-warmup" "$slots" "$run_dir/$impl-r$r-warmup.json" --requests 2
  if [ "$warmup_n" -gt 1 ]; then
    load_tokens=8 load "$impl-warmup" 2 "$run_dir/$impl-r$r-warmupn.json" --requests $((warmup_n / 2))
  fi
  if [ "$warmup_s" -gt 0 ]; then
    load "$impl-warmup" 1 "$run_dir/$impl-r$r-warmup1.json" --duration "$warmup_s"
  fi
  for c in $levels; do
    log "round $r: $impl: $c stream(s) for $duration s"
    scrape_steps "$run_dir/$impl-r$r-c$c.steps0"
    load "$impl" "$c" "$run_dir/$impl-r$r-c$c.json" --duration "$duration" --warmup 1 --raw "$run_dir/$impl-r$r-c$c.jsonl"
    scrape_steps "$run_dir/$impl-r$r-c$c.steps1"
  done
  stop_server
}

started=$(date +%s)
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2 == 1)); then
    phase llama "$r"; phase ours "$r"; [ -z "$variant_label" ] || phase variant "$r"
  else
    [ -z "$variant_label" ] || phase variant "$r"; phase ours "$r"; phase llama "$r"
  fi
done
# The library's own continuous-batching ceiling at the same parallelism and lengths (same build).
if [ "$batched" = 1 ]; then
  npl=$(printf '%s\n' $levels | awk '$1 > 1' | paste -sd, -)
  if [ -n "$npl" ]; then
    quiet batched
    log "llama-batched-bench at $npl parallel sequences"
    batched_args=(-m "$model" -c $(( top * (ptoks_run + gen + 8) )) -b 2048 -ub 512 -npp "$ptoks_run" -ntg "$gen"
      -ngl "$ngl" -t "$threads" -tb "$threads_batch" -fa auto --output-format jsonl)
    batched_cmd=("$bin_dir/llama-batched-bench" "${batched_args[@]}" -npl "$npl")
    # One level per run; llama.cpp's asynchronous logger sometimes loses the last line at exit, so a
    # level whose result line is missing is run again (up to 3 times).
    : >"$run_dir/batched-bench.jsonl"
    for pl in ${npl//,/ }; do
      for try in 1 2 3; do
        "$bin_dir/llama-batched-bench" "${batched_args[@]}" -npl "$pl" >"$run_dir/batched-bench-$pl.out" 2>"$run_dir/batched-bench-$pl.log" \
          || { tail -20 "$run_dir/batched-bench-$pl.log" >&2; die "llama-batched-bench failed (log: $run_dir/batched-bench-$pl.log)"; }
        if grep -q '^{' "$run_dir/batched-bench-$pl.out"; then
          grep '^{' "$run_dir/batched-bench-$pl.out" >>"$run_dir/batched-bench.jsonl"
          break
        fi
        log "llama-batched-bench printed no result for $pl sequences (try $try)"
      done
    done
  fi
fi
flock -u 9
log "runs took $(($(date +%s) - started)) s; raw results in $run_dir"

# --- the results block ---------------------------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
read -r n_ctx ptoks gen <"$run_dir/shape.txt"
{
  echo "Machine: $cpu, $(nproc) CPUs online, $(awk '/^MemTotal:/{printf "%d", $2 / 1048576}' /proc/meminfo) GiB; threads used: $threads/$threads_batch (-t/-tb, both servers)."
  echo "Build: llama.cpp tree $(prop llama.cpp.tree), $(prop native.variant) variant, one build for both ($lib_dir); $(java -version 2>&1 | head -1)."
  echo "Model: $(basename "$model") ($(du -h "$model" | cut -f1)); slot context granted by llama-server: $n_ctx."
  if [ "$api" = responses ]; then
    echo "Workload: /v1/responses, streamed (typed events; text from response.output_text.delta, counts from response.completed);"
    echo "input $ptoks tokens before each server's chat template (a random 6-digit number, then a fixed story opening),"
  elif [ "$api" = native ]; then
    echo "Workload: /completion (llama-server's own route), streamed (data: lines; text from content, counts from the last line's"
    echo "tokens_predicted and tokens_evaluated); prompt $ptoks tokens (a random 6-digit number, then a fixed story opening),"
  elif [ "$api" = messages ]; then
    echo "Workload: /v1/messages, streamed (Anthropic's events; text from content_block_delta, counts from message_delta);"
    echo "user message of $ptoks tokens before each server's chat template (a random 6-digit number, then a fixed story opening),"
  else
    echo "Workload: /v1/completions, streamed; prompt $ptoks tokens (a random 6-digit number, then a fixed story opening),"
  fi
  if [ "$eos" = ban ]; then
    echo "$gen generated tokens per request ($sampling_json, EOS ids [$eos_ids] banned with logit_bias, ignore_eos), closed loop."
  else
    echo "at most $gen generated tokens per request ($sampling_json, EOS allowed: no logit_bias, no ignore_eos), closed loop."
  fi
  echo "Settings: $slots slots x $slot_ctx positions, batch 512, ubatch 512, flash attention auto, non-unified KV, threads $threads/$threads_batch."
  echo "llama-server: ${llama_cmd[*]//$model/M}" | sed "s#$bin_dir/##; s#--port [0-9]*#--port P#"
  show_ours() { # label command... -> the command line with the run's paths and ports named
    local label=$1; shift
    echo "$label: ${*//$model/M}" | sed "s#$jar#${SERVER_JAR:+(SERVER_JAR=$SERVER_JAR) }server.jar#; s#$lib_dir#LIBDIR#; s#--port [0-9]*#--port P#; s#admin-port=[0-9]*#admin-port=P2#"
  }
  show_ours ours "${ours_cmd[@]}"
  [ -z "$variant_label" ] || show_ours "ours ($variant_label)" "${variant_cmd[@]}"
  if [ -n "${batched_cmd[*]-}" ]; then
    echo "llama-batched-bench: ${batched_cmd[*]//$model/M}" | sed "s#$bin_dir/##"
  fi
  echo "Command: scripts/bench-server.sh${args_given:+ $args_given} (rounds $rounds, $duration s per level, levels $levels, threads $threads/$threads_batch, warm-up $warmup_n short requests + $warmup_s s); $(date -u +%Y-%m-%dT%H:%MZ); load average at start $load_start."
  echo
  python3 - "$run_dir" "$levels" "$variant_label" <<'EOF'
import glob, json, os, statistics as st, sys
d, levels, variant = sys.argv[1], [int(x) for x in sys.argv[2].split()], sys.argv[3]
runs = {}  # (impl, c) -> [summary per round]
for f in sorted(glob.glob(os.path.join(d, "*-r*-c*.json"))):
    impl, rest = os.path.basename(f)[:-5].split("-r", 1)
    c = int(rest.split("-c")[1])
    runs.setdefault((impl, c), []).append(json.load(open(f)))
def vals(impl, c, get):
    return [get(s) for s in runs.get((impl, c), [])]
def med(v):
    return st.median(v) if v else float("nan")
def cell(v, fmt):
    if not v:
        return "-"
    s = fmt % med(v)
    return s + (" (" + ", ".join(fmt % x for x in v) + ")" if len(v) > 1 else "")
rows = []
c1 = levels[0]
def row(name, c, get, fmt, higher):
    rows.append((name, vals("ours", c, get), vals("llama", c, get), vals("variant", c, get), fmt, higher))
row("single-stream tok/s (%d stream, per-stream rate, p50)" % c1, c1, lambda s: s["stream_tps"]["p50"], "%.0f", True)
row("TTFT p50 ms (%d stream)" % c1, c1, lambda s: s["ttft_ms"]["p50"], "%.2f", False)
for c in levels:
    row("aggregate tok/s, %d stream%s" % (c, "s" if c > 1 else ""), c, lambda s: s["aggregate_tps"], "%.0f", True)
batched = {}
bpath = os.path.join(d, "batched-bench.jsonl")
if os.path.exists(bpath):
    for line in open(bpath):
        line = line.strip()
        if line.startswith("{"):
            j = json.loads(line)
            batched[int(j["pl"])] = j
def ratio(a, b, higher):
    return (med(a) / med(b)) if higher else (med(b) / med(a))
if variant:
    print("| metric | ours | llama-server | ratio (ours vs llama-server, >= 1.0 = ours as good or better) | ours (%s) | ratio (%s vs llama-server) | %s vs ours |" % (variant, variant, variant))
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
else:
    print("| metric | ours | llama-server | ratio (ours vs llama-server, >= 1.0 = ours as good or better) |")
    print("| --- | ---: | ---: | ---: |")
for name, o, l, v, fmt, higher in rows:
    line = "| %s | %s | %s | **%.2fx**%s |" % (name, cell(o, fmt), cell(l, fmt), ratio(o, l, higher), "" if higher else " (llama TTFT / ours)")
    if variant:
        line += " %s | **%.2fx** | %.2fx |" % (cell(v, fmt), ratio(v, l, higher), ratio(v, o, higher))
    print(line)
if batched:
    print()
    print("Against llama-batched-bench (same build and lengths; its S_TG counts generation time only, ours is")
    print("generated tokens over the whole wall time, prompt processing and HTTP included):")
    print()
    extra = " ours (%s) tok/s | ours (%s) / batched-bench |" % (variant, variant) if variant else ""
    print("| parallel streams | ours aggregate tok/s | llama-server aggregate tok/s | llama-batched-bench S_TG tok/s | ours / batched-bench | llama-server / batched-bench |" + extra)
    print("| ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: | ---: |" if variant else ""))
    for c in levels:
        if c in batched:
            o = med(vals("ours", c, lambda s: s["aggregate_tps"]))
            l = med(vals("llama", c, lambda s: s["aggregate_tps"]))
            b = batched[c]["speed_tg"]
            line = "| %d | %.0f | %.0f | %.0f | **%.2fx** | %.2fx |" % (c, o, l, b, o / b, l / b)
            if variant:
                v = med(vals("variant", c, lambda s: s["aggregate_tps"]))
                line += " %.0f | **%.2fx** |" % (v, v / b)
            print(line)
# Our scheduler's own account of its steps (llmref_engine_* metrics scraped before and after each
# level, its 1 s warm-up included): where a step's time goes, and how full the batches were.
def scraped(path):
    m = {}
    if os.path.exists(path):
        for line in open(path):
            k, v = line.rsplit(" ", 1)
            m[k] = float(v)
    return m
steps_rows = []
for impl, c in [(i, c) for i in ("ours", "variant") for c in levels]:
    per_round = []
    for f in sorted(glob.glob(os.path.join(d, "%s-r*-c%d.steps1" % (impl, c)))):
        a, b = scraped(f[:-1] + "0"), scraped(f)
        delta = lambda k: b.get(k, 0.0) - a.get(k, 0.0)
        n = delta('llmref_engine_step_phase_seconds_count{phase="decode"}')
        if n > 0:
            ph = {p: delta('llmref_engine_step_phase_seconds_sum{phase="%s"}' % p) * 1000 / n for p in ("schedule", "decode", "sample", "emit")}
            # the llama_decode call's part of the decode phase (the host's; nan from a server without the metric)
            call_ms = delta("llmref_engine_decode_call_seconds_sum") * 1000 / n if "llmref_engine_decode_call_seconds_sum" in b else float("nan")
            rows, starts = delta("llmref_engine_sampling_rows_total"), delta("llmref_engine_sampling_helper_start_seconds_count")
            # the sampling pool's own account: µs per pick (argmax or draw, all threads), the last helper's start in ms
            pick_us = delta("llmref_engine_sampling_pick_seconds_sum") * 1e6 / rows if rows > 0 else float("nan")
            start_ms = delta("llmref_engine_sampling_helper_start_seconds_sum") * 1000 / starts if starts > 0 else float("nan")
            per_round.append((n, ph, delta("llmref_engine_batch_tokens_total") / n, delta("llmref_engine_step_outputs_total") / n,
                              delta("llmref_engine_sequence_runs_total") / n, delta("llmref_engine_prefix_copies_total"),
                              pick_us, start_ms, delta("llmref_engine_graphs_reused_total") / n,
                              delta("llmref_engine_sampling_helpers_total") / n, delta("llmref_engine_sampling_helpers_ahead_total") / n, call_ms))
    if per_round:
        steps_rows.append((impl, c, per_round))
if steps_rows:
    print()
    print("Our scheduler's steps, from its metrics (llmref_engine_*, docs/operations.md; each level's whole run, median over rounds):")
    print()
    print("| streams |" + (" server |" if variant else "") + " steps | tokens per step | sampled per step | sequence runs per step | graphs reused per step | prefix copies | schedule ms | decode ms | of it the call ms | sample ms | emit ms | step ms | decode share | µs per pick | last helper's start ms | helpers per step (woken ahead) |")
    print("| ---: |" + (" --- |" if variant else "") + " ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for impl, c, pr in steps_rows:
        m = lambda get: med([get(x) for x in pr])
        total = m(lambda x: sum(x[1].values()))
        who = (" ours |" if impl == "ours" else " ours (%s) |" % variant) if variant else ""
        opt = lambda v, fmt: "" if v != v else fmt % v  # nan (no host picks, no helpers): an empty cell
        print(("| %d |" + who + " %d | %.1f | %.1f | %.2f | %.2f | %d | %.3f | %.3f | %s | %.3f | %.3f | %.3f | %.0f%% | %s | %s | %.1f (%.1f) |") % (
            c, m(lambda x: x[0]), m(lambda x: x[2]), m(lambda x: x[3]), m(lambda x: x[4]), m(lambda x: x[8]), m(lambda x: x[5]),
            m(lambda x: x[1]["schedule"]), m(lambda x: x[1]["decode"]), opt(m(lambda x: x[11]), "%.3f"),
            m(lambda x: x[1]["sample"]), m(lambda x: x[1]["emit"]), total, 100 * m(lambda x: x[1]["decode"] / sum(x[1].values())),
            opt(m(lambda x: x[6]), "%.1f"), opt(m(lambda x: x[7]), "%.3f"), m(lambda x: x[9]), m(lambda x: x[10])))
# The same steps by kind (llmref_engine_step_seconds, _tokens_total): "generation" steps decode only
# the generating slots' next tokens, as every step of llama-batched-bench's generation phase does;
# "prompt" steps also hold prompt tokens (llama.cpp decodes a chunk's tokens after its first in
# micro-batches of their own). Their tokens per second of step time set beside its S_TG separate
# the per-step overhead from the prompts' share of the time.
kind_rows = []
for impl, c in [(i, c) for i in ("ours", "variant") for c in levels]:
    per_round = []
    for f in sorted(glob.glob(os.path.join(d, "%s-r*-c%d.steps1" % (impl, c)))):
        a, b = scraped(f[:-1] + "0"), scraped(f)
        if 'llmref_engine_step_seconds_count{kind="generation"}' not in b and 'llmref_engine_step_seconds_count{kind="prompt"}' not in b:
            continue  # a server without the metric
        k = {}
        for kind in ("generation", "prompt"):
            k[kind] = tuple(b.get(n % kind, 0.0) - a.get(n % kind, 0.0) for n in (
                'llmref_engine_step_seconds_count{kind="%s"}', 'llmref_engine_step_seconds_sum{kind="%s"}', 'llmref_engine_step_tokens_total{kind="%s"}'))
        if k["generation"][0] + k["prompt"][0] > 0:
            per_round.append(k)
    if per_round:
        kind_rows.append((impl, c, per_round))
if kind_rows:
    print()
    print("Our steps by kind (llmref_engine_step_seconds and _step_tokens_total; median over rounds): generation steps hold only the generating slots' next tokens, prompt steps prompt tokens too:")
    print()
    print("| streams |" + (" server |" if variant else "") + " prompt steps | their share of the step time | prompt step ms | generation step ms | tokens per generation step | tok/s in generation steps |" + (" of batched-bench S_TG |" if batched else ""))
    print("| ---: |" + (" --- |" if variant else "") + " ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if batched else ""))
    nan = float("nan")
    for impl, c, pr in kind_rows:
        m = lambda get: med([get(x) for x in pr])
        share = lambda x: x["prompt"][0] / (x["prompt"][0] + x["generation"][0])
        time_share = lambda x: x["prompt"][1] / (x["prompt"][1] + x["generation"][1])
        per_step = lambda kind: (lambda x: x[kind][1] * 1000 / x[kind][0] if x[kind][0] > 0 else nan)
        gen_tokens = lambda x: x["generation"][2] / x["generation"][0] if x["generation"][0] > 0 else nan
        gen_tps = lambda x: x["generation"][2] / x["generation"][1] if x["generation"][1] > 0 else nan
        who = (" ours |" if impl == "ours" else " ours (%s) |" % variant) if variant else ""
        opt = lambda v, fmt: "" if v != v else fmt % v
        line = ("| %d |" + who + " %.0f%% | %.0f%% | %s | %s | %s | %s |") % (
            c, 100 * m(share), 100 * m(time_share), opt(m(per_step("prompt")), "%.3f"), opt(m(per_step("generation")), "%.3f"),
            opt(m(gen_tokens), "%.1f"), opt(m(gen_tps), "%.0f"))
        if batched:
            tg = batched.get(c, {}).get("speed_tg")
            line += " %s |" % (opt(m(gen_tps) / tg, "**%.2fx**") if tg else "")
        print(line)
print()
print("Median over rounds; per-round values in parentheses. Diagnostics (medians over rounds):")
print()
print("| streams | impl | TTFT p50 / p90 ms | per-stream tok/s p50 | requests | tokens/request | server CPU µs/token | client CPU s | other CPU s | wall s |")
print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for c in levels:
    for impl, name in (("ours", "ours"), ("variant", "ours (%s)" % variant), ("llama", "llama-server")):
        v = runs.get((impl, c), [])
        if not v:
            continue
        m = lambda get: med([get(s) for s in v])
        print("| %d | %s | %.2f / %.2f | %.0f | %d | %.1f | %.0f | %.2f | %.2f | %.1f |" % (
            c, name, m(lambda s: s["ttft_ms"]["p50"]), m(lambda s: s["ttft_ms"]["p90"]), m(lambda s: s["stream_tps"]["p50"]),
            m(lambda s: s["requests"]), m(lambda s: s["tokens_per_request"]["mean"]), m(lambda s: s.get("server_cpu_us_per_token", float("nan"))),
            m(lambda s: s["client_cpu_s"]), m(lambda s: s.get("other_cpu_s", float("nan"))), m(lambda s: s["wall_s"])))
errs = sum(s["errors"] for v in runs.values() for s in v)
src = sorted({s["tokens_from"] for v in runs.values() for s in v})
reasons = {}
for v in runs.values():
    for s in v:
        for k, n in s["finish_reasons"].items():
            reasons[k] = reasons.get(k, 0) + n
quiet = [l.split() for l in open(os.path.join(d, "quiet.txt"))]
print()
retries = {impl: sum(s.get("retries", 0) for (i, c), v in runs.items() if i == impl for s in v) for impl in ("ours", "variant", "llama")}
print("Token counts from: %s; errors: %d; finish reasons: %s; requests re-sent on a connection the server had closed: ours %d%s, llama-server %d."
      % (", ".join(src), errs, ", ".join("%s %d" % kv for kv in sorted(reasons.items())), retries["ours"],
         ", ours (%s) %d" % (variant, retries["variant"]) if variant else "", retries["llama"]))
print("Busy CPUs (3 s sample) / load average before each server: " + "; ".join("%s %s / %s" % tuple(q) for q in quiet) + ".")
EOF
} | tee "$out_dir/results.md"
cp "$out_dir/results.md" "$run_dir/results.md"
