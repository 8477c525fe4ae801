#!/usr/bin/env bash
# What a completions request with `echo` and `logprobs` over a long prompt costs: the request's own
# time, and what it does to another stream in the same steps. llama-server has no `echo`, so there
# is no native reference; the same prompt without `echo` (a plain prefill) is measured beside it.
# Results: stdout and target/bench-echo/results.md.
#
#   scripts/bench-echo.sh [--model M] [--tokens N] [--threads N] [--prebuilt]
#
#   --model M     the GGUF to serve (default: the tiny-128k model bench-bindings.sh makes, else
#                 stories260K beside this checkout); a 128k vocabulary is where each output row costs
#   --tokens N    prompt tokens (default 7000; the server gets slots of N + 1024 positions)
#   --threads N   engine.threads and engine.threads-batch (default 0: the server's auto)
#   --prebuilt    use the jar already in server/target (no Maven); SERVER_JAR=... names another
#
# Four requests, each once: the prompt plain (max_tokens 1), then with echo and logprobs 5, each
# alone and then while another client streams 16-token completions of a short prompt back to back.
# The other client's time per token is reported before the long request (alone) and over the requests
# that overlapped it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { echo "bench-echo: $*" >&2; }
die() { log "$*"; exit 2; }

model="" tokens=7000 threads=0 prebuilt=0
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=${2?"$1 needs a value"}; shift 2 ;;
    --tokens) tokens=${2?"$1 needs a value"}; shift 2 ;;
    --threads) threads=${2?"$1 needs a value"}; shift 2 ;;
    --prebuilt) prebuilt=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (--help)" ;;
  esac
done
[[ "$tokens" =~ ^[1-9][0-9]*$ ]] || die "--tokens must be a positive integer, got '$tokens'"
[[ "$threads" =~ ^[0-9]+$ ]] || die "--threads must be a non-negative integer, got '$threads'"
out_dir="$root/target/bench-echo"
mkdir -p "$out_dir"
# shellcheck source=lib/bench-inputs.sh
. "$root/scripts/lib/bench-inputs.sh"
bench_inputs "$prebuilt" "$model"

exec 9>/tmp/bench.lock
flock 9 # one benchmark at a time on a shared machine

# shellcheck source=lib/server-process.sh
. "$root/scripts/lib/server-process.sh"
port=$(free_port) admin=$(free_port)
body_bytes=$(( tokens * 8 + 65536 ))
[ "$body_bytes" -ge 1048576 ] || body_bytes=1048576
LLMREF_SERVER_ADMIN__PORT=$admin java --enable-native-access=ALL-UNNAMED -Dengine.slots=2 \
  -Dengine.slot-context=$(( tokens + 1024 )) -Dlimits.max-prompt-tokens=$(( tokens + 1 )) \
  -Dlimits.max-body-bytes=$body_bytes -Dengine.threads="$threads" -Dengine.threads-batch="$threads" \
  -Dmodel.id=m -jar "$jar" --model "$model" --port "$port" > "$out_dir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 240); do curl -sf "http://127.0.0.1:$admin/health/ready" >/dev/null && break; sleep 0.5; done
curl -sf "http://127.0.0.1:$admin/health/ready" >/dev/null || die "the server did not get ready: $out_dir/server.log"

python3 - "http://127.0.0.1:$port" "$tokens" "$model" "$jar" > "$out_dir/results.md" <<'EOF'
import json, sys, threading, time, urllib.request
url, n, model, jar = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

def post(body):
    r = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode(),
                               headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(r, timeout=1800))

def prompt(seed):  # ids spread over the vocabulary, different for each request (no prefix reuse)
    return [(i * 7919 + seed * 104729) % 100000 + 100 for i in range(n)]

def long_request(seed, echo):
    body = {"prompt": prompt(seed), "max_tokens": 1, "temperature": 0}
    if echo:
        body.update(echo=True, logprobs=5)
    t = time.time()
    r = post(body)
    took = time.time() - t
    if echo:
        got = len(r["choices"][0]["logprobs"]["token_logprobs"])
        assert got == n + 1, f"{got} log-probabilities for {n} prompt tokens and 1 generated"
    return took

def with_stream(seed, echo):
    done, stop = [], threading.Event()  # the other client's requests: (start, end, seconds a token)
    def other():
        while not stop.is_set():
            t = time.time()
            r = post({"prompt": "Once upon a time", "max_tokens": 16, "temperature": 0})
            done.append((t, time.time(), (time.time() - t) / max(1, r["usage"]["completion_tokens"])))
    th = threading.Thread(target=other)
    th.start()
    time.sleep(3)
    start = time.time()
    took = long_request(seed, echo)
    end = time.time()
    stop.set()
    th.join()  # its last request, which overlapped the long one, is in
    before = [d[2] for d in done if d[1] <= start]
    during = [d[2] for d in done if d[0] < end and d[1] > start]
    return took, 1000 * sum(before) / len(before), 1000 * sum(during) / len(during), 1000 * max(during)

post({"prompt": "Once upon a time", "max_tokens": 16, "temperature": 0})  # warm-up
rows = []
for seed, (kind, echo) in enumerate((("plain", False), ("echo + logprobs 5", True)), start=1):
    alone = long_request(seed, echo)
    took, before, mean, worst = with_stream(seed + 10, echo)
    rows.append((kind, alone, took, before, mean, worst))
print(f"Model {model.split('/')[-1]}, {n}-token prompt, server {jar.split('/')[-1]}.\n")
print("| request | alone s | beside a stream s | the stream's ms a token before | during (mean) | during (worst request) |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for kind, alone, took, before, mean, worst in rows:
    print(f"| {kind} | {alone:.2f} | {took:.2f} | {before:.1f} | {mean:.1f} | {worst:.1f} |")
EOF
stop_server
cat "$out_dir/results.md"
