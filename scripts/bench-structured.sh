#!/usr/bin/env bash
# Structured output against llama-server: the same chat request, greedy, with and without a
# response_format, to each server in turn (ABBA order over rounds), one slot and the same CPU threads
# on both. What it shows is the grammar's cost per generated token on the thread that samples: the
# wall time of a request with the format minus the same request without it, per token, and the
# requests' throughput side by side. Results: stdout and target/bench-structured/results.md.
#
#   scripts/bench-structured.sh [--model M] [--rounds N] [--requests N] [--max-tokens N]
#                               [--threads N] [--prebuilt]
#
#   --model M       the GGUF to serve (default: the tiny-128k model bench-bindings.sh makes, else
#                   stories260K beside this checkout); a 128k vocabulary is where a grammar costs
#   --rounds N      rounds; llama-server first in odd rounds, ours first in even ones (default 2)
#   --requests N    measured requests of each kind per server and round, after 2 unmeasured (default 4)
#   --max-tokens N  tokens each request generates (default 48)
#   --threads N     -t/-tb for llama-server, engine.threads/threads-batch for ours (default 1)
#   --prebuilt      use the jar already in server/target (no Maven)
#
# Kinds: plain (no response_format), json_object, json_schema (an object with a string, an integer
# and an array of strings). Both servers render the model's chat template and generate with
# temperature 0; the token counts used are the ones each server reports.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { echo "bench-structured: $*" >&2; }
die() { log "$*"; exit 2; }

model="" rounds=2 requests=4 max_tokens=48 threads=1 prebuilt=0
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=${2?"$1 needs a value"}; shift 2 ;;
    --rounds) rounds=${2?"$1 needs a value"}; shift 2 ;;
    --requests) requests=${2?"$1 needs a value"}; shift 2 ;;
    --max-tokens) max_tokens=${2?"$1 needs a value"}; shift 2 ;;
    --threads) threads=${2?"$1 needs a value"}; shift 2 ;;
    --prebuilt) prebuilt=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (--help)" ;;
  esac
done
for v in rounds requests max_tokens threads; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "--${v//_/-} must be a positive integer, got '${!v}'"
done
out_dir="$root/target/bench-structured"
mkdir -p "$out_dir"

# shellcheck source=lib/native-tools.sh
. "$root/scripts/lib/native-tools.sh"
native_tools llama-server
# shellcheck source=lib/bench-inputs.sh
. "$root/scripts/lib/bench-inputs.sh"
bench_inputs "$prebuilt" "$model"

exec 9>/tmp/bench.lock
flock 9 # one benchmark at a time on a shared machine

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
schema='{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"toys":{"type":"array","items":{"type":"string"}}},"required":["name","age","toys"]}'
declare -A formats=([plain]="" [json_object]=',"response_format":{"type":"json_object"}'
  [json_schema]=',"response_format":{"type":"json_schema","json_schema":{"name":"cat","schema":'"$schema"'}}')
kinds="plain json_object json_schema"
samples=$out_dir/samples.tsv
: > "$samples"

# one request; appends "server kind round tokens seconds" to the samples (measured only)
request() { # url server kind round measured
  local body t0 t1 r n
  body='{"model":"m","messages":[{"role":"user","content":"Describe a cat as JSON."}],"max_tokens":'$max_tokens',"temperature":0'${formats[$3]}'}'
  t0=$(date +%s.%N)
  r=$(curl -s --max-time 600 "$1/v1/chat/completions" -H 'content-type: application/json' -d "$body")
  t1=$(date +%s.%N)
  n=$(printf '%s' "$r" | python3 -c 'import sys,json; print(json.load(sys.stdin)["usage"]["completion_tokens"])' 2>/dev/null) \
    || die "$2 $3: no usage in the answer: ${r:0:300}"
  [ "$5" = 1 ] && printf '%s\t%s\t%s\t%s\t%s\n' "$2" "$3" "$4" "$n" "$(python3 -c "print($t1 - $t0)")" >> "$samples"
  return 0
}

measure() { # server round
  local port admin pid url k i
  port=$(free_port)
  if [ "$1" = llama-server ]; then
    "$bin_dir/llama-server" -m "$model" --host 127.0.0.1 --port "$port" -np 1 -c 1024 -t "$threads" -tb "$threads" \
      --no-webui > "$out_dir/llama-server.log" 2>&1 &
    pid=$!
    url=http://127.0.0.1:$port
    for i in $(seq 120); do curl -sf "$url/health" >/dev/null && break; sleep 0.5; done
  else
    admin=$(free_port)
    LLMREF_SERVER_ADMIN__PORT=$admin java --enable-native-access=ALL-UNNAMED -Dengine.slots=1 -Dengine.slot-context=1024 \
      -Dengine.threads="$threads" -Dengine.threads-batch="$threads" -Dmodel.id=m -jar "$jar" --model "$model" --port "$port" \
      > "$out_dir/ours.log" 2>&1 &
    pid=$!
    url=http://127.0.0.1:$port
    for i in $(seq 120); do curl -sf "http://127.0.0.1:$admin/health/ready" >/dev/null && break; sleep 0.5; done
  fi
  for k in $kinds; do request "$url" "$1" "$k" "$2" 0; request "$url" "$1" "$k" "$2" 0; done
  for i in $(seq "$requests"); do
    for k in $kinds; do request "$url" "$1" "$k" "$2" 1; done
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

for r in $(seq "$rounds"); do
  if [ $((r % 2)) = 1 ]; then order="llama-server ours"; else order="ours llama-server"; fi
  for s in $order; do log "round $r: $s"; measure "$s" "$r"; done
done

python3 - "$samples" "$model" "$threads" "$rounds" "$requests" "$max_tokens" > "$out_dir/results.md" <<'EOF'
import sys, statistics as st
samples, model, threads, rounds, requests, max_tokens = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(samples)]
def med(server, kind, f):
    return st.median(f(int(r[3]), float(r[4])) for r in rows if r[0] == server and r[1] == kind)
print(f"Model {model.split('/')[-1]}, {threads} thread(s), {rounds} round(s) x {requests} requests of each kind per server, "
      f"max_tokens {max_tokens}, greedy; medians.\n")
print("| kind | llama-server s | ours s | llama-server tok/s | ours tok/s | ours / llama-server | llama-server ms a token over plain | ours ms a token over plain |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
base = {s: med(s, "plain", lambda n, t: t) for s in ("llama-server", "ours")}
for kind in ("plain", "json_object", "json_schema"):
    w = {s: med(s, kind, lambda n, t: t) for s in ("llama-server", "ours")}
    tps = {s: med(s, kind, lambda n, t: n / t) for s in ("llama-server", "ours")}
    over = {s: med(s, kind, lambda n, t, s=s: (t - base[s]) / n * 1000) for s in ("llama-server", "ours")}
    extra = ("", "") if kind == "plain" else (f"{over['llama-server']:.2f}", f"{over['ours']:.2f}")
    print(f"| {kind} | {w['llama-server']:.3f} | {w['ours']:.3f} | {tps['llama-server']:.0f} | {tps['ours']:.0f} | "
          f"**{tps['ours'] / tps['llama-server']:.2f}x** | {extra[0]} | {extra[1]} |")
EOF
cat "$out_dir/results.md"
