#!/usr/bin/env bash
# Load and soak: starts the real server (jar, its own process) on 127.0.0.1 with stories260K and
# runs the soak client (server/src/test/java/ai/llmref/server/bench/SoakClient.java) against it:
# many concurrent streaming and non-streaming chat/completions clients with random cancellations
# and slow readers, every response compared with its greedy reference. Prints a results block
# (also target/soak/results.md; the client's full JSON report is beside it) and exits non-zero when
# a goal failed (a 5xx, a mismatch, another error, a slot left busy, an unclean exit).
#
#   scripts/soak.sh [--duration 10m] [--clients 16] [--slots 4] [--slot-context 256] [--warmup 30s]
#                   [--seed 1] [--model M] [--sample 10]
#
#   --duration D   load time after the warm-up: 600, 600s or 10m (default 10m)
#   --clients N    concurrent clients (default 16)
#   --slots N      server slots (engine.slots, default 4); clients beyond it queue
#   --slot-context N  positions per slot (default 256)
#   --warmup D     warm-up load before the measured phase (default 30s)
#   --sample S     seconds between samples of the server's RSS, descriptors, threads (default 10)
#   --seed N       the soak client's random seed: which requests, cancellations and slow readers (default 1)
#   --model M      the GGUF to serve (default STORIES_MODEL, else ../shared/models/stories260K.gguf)
#
# Environment: STORIES_MODEL; JAVA_OPTS (the server's JVM flags, default -XX:+UseZGC -Xms512m -Xmx512m
# -XX:+AlwaysPreTouch: a heap committed and touched at start, so that resident memory growth during
# the run is not the collector growing its heap but something else); the server also runs with
# -XX:NativeMemoryTracking=summary, and the JVM's own native memory growth (jcmd summary.diff from
# just after start to the end) is reported next to RSS;
# SOAK_CLIENT_OPTS (more SoakClient options, e.g. "--cancel 0.3 --slow 0.2").
# The run holds /tmp/bench.lock (flock) so that it never overlaps a benchmark on a shared machine.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "soak: error: $*" >&2; exit 1; }
log() { echo "soak: $*" >&2; }

seconds() { # 600 | 600s | 10m | 1h -> seconds
  case "$1" in
    *h) echo $(( ${1%h} * 3600 )) ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}

args_given="$*"
duration=600
clients=16
slots=4
slot_ctx=256
warmup=30
seed=1
sample=10
model=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$(seconds "${2?"$1 needs a value"}"); shift 2 ;;
    --clients) clients=${2?"$1 needs a value"}; shift 2 ;;
    --slots) slots=${2?"$1 needs a value"}; shift 2 ;;
    --slot-context) slot_ctx=${2?"$1 needs a value"}; shift 2 ;;
    --warmup) warmup=$(seconds "${2?"$1 needs a value"}"); shift 2 ;;
    --seed) seed=${2?"$1 needs a value"}; shift 2 ;;
    --sample) sample=${2?"$1 needs a value"}; shift 2 ;;
    --model) model=${2?"$1 needs a value"}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
for v in "$duration" "$clients" "$slots" "$slot_ctx" "$seed" "$sample"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "--duration, --clients, --slots, --slot-context, --seed, --sample must be positive integers (got '$v')"
done
[[ "$warmup" =~ ^[0-9]+$ ]] || die "--warmup must be a whole number of seconds"

"$root/scripts/prereqs.sh"
command -v python3 >/dev/null || die "python3 is needed"
command -v curl >/dev/null || die "curl is needed"
export JAVA_HOME=${JAVA_HOME_25:-/usr/lib/jvm/temurin-25-jdk-amd64}
export PATH="$JAVA_HOME/bin:$PATH"

out_dir="$root/target/soak"
mkdir -p "$out_dir"
run_dir=$(mktemp -d "$out_dir/run-XXXXXX")

log "building the server and the soak client (native libraries from the cache)"
(cd "$root" && mvn -B -ntp -q -pl native,bindings -am install -Dmaven.test.skip=true >&2 \
  && mvn -B -ntp -q -pl server install -DskipTests >&2)
jar="$root/server/target/server-0.1.0-SNAPSHOT.jar"
[ -f "$jar" ] || die "server jar not found: $jar"
client_cp="$root/server/target/test-classes:$root/server/target/libs/*"

model=${model:-${STORIES_MODEL:-$root/../shared/models/stories260K.gguf}}
[ -f "$model" ] || die "model not found: $model (--model or STORIES_MODEL)"
model=$(cd "$(dirname "$model")" && pwd)/$(basename "$model")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

exec 9>/tmp/bench.lock
if ! flock -n 9; then
  log "waiting for /tmp/bench.lock (a benchmark or another soak is running)"
  flock 9
fi

port=$(free_port)
admin=$(free_port)
# shellcheck disable=SC2206
server_cmd=(java --enable-native-access=ALL-UNNAMED ${JAVA_OPTS:--XX:+UseZGC -Xms512m -Xmx512m -XX:+AlwaysPreTouch} -XX:NativeMemoryTracking=summary -Dserver.admin-port="$admin"
  -Dengine.slots="$slots" -Dengine.slot-context="$slot_ctx" -Dserver.shutdown-grace-ms=30000
  -jar "$jar" --model "$model" --port "$port")
(cd "$run_dir" && exec "${server_cmd[@]}") >"$run_dir/server.log" 2>&1 &
server_pid=$!
stop_server() {
  if kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 400); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
}
trap stop_server EXIT
for i in $(seq 600); do
  curl -sf -o /dev/null "http://127.0.0.1:$admin/health/ready" && break
  kill -0 "$server_pid" 2>/dev/null || { tail -20 "$run_dir/server.log" >&2; die "the server exited while starting"; }
  [ "$i" = 600 ] && { tail -20 "$run_dir/server.log" >&2; die "the server was not ready within 60 s"; }
  sleep 0.1
done
jcmd "$server_pid" VM.native_memory baseline >/dev/null 2>&1 || log "warning: jcmd baseline failed"
log "server pid $server_pid ready on 127.0.0.1:$port (admin $admin); $clients clients, ${warmup}s warm-up, ${duration}s load"

started=$(date -u +%Y-%m-%dT%H:%MZ)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
client_rc=0
# shellcheck disable=SC2086
java -cp "$client_cp" ai.llmref.server.bench.SoakClient --url "http://127.0.0.1:$port" --admin "http://127.0.0.1:$admin" \
  --clients "$clients" --duration "$duration" --warmup "$warmup" --seed "$seed" --sample "$sample" \
  --server-pid "$server_pid" --raw "$run_dir/requests.jsonl" ${SOAK_CLIENT_OPTS:-} \
  >"$run_dir/report.json" 2>"$run_dir/client.log" || client_rc=$?
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
jcmd "$server_pid" VM.native_memory summary.diff >"$run_dir/nmt-diff.txt" 2>&1 || true
nmt=$(sed -n 's/^Total: *//p' "$run_dir/nmt-diff.txt" | head -1)
[ -s "$run_dir/report.json" ] || { cat "$run_dir/client.log" >&2; die "the soak client produced no report (exit $client_rc)"; }

# SIGTERM: the server must drain and exit 143 (not a crash), leaving no hs_err file behind
kill -TERM "$server_pid"
exit_rc=0
wait "$server_pid" || exit_rc=$?
trap - EXIT
flock -u 9
clean_exit=yes
[ "$exit_rc" = 143 ] || clean_exit="no (exit $exit_rc)"
grep -q '"msg":"stopped"' "$run_dir/server.log" || clean_exit="no ('stopped' not logged)"
ls "$run_dir"/hs_err_pid*.log >/dev/null 2>&1 && clean_exit="no (hs_err file in $run_dir)"

{
  echo "Machine: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) CPUs, $(free -g | awk '/^Mem:/{print $2}') GiB; $(java -version 2>&1 | head -1)."
  echo "Server: $(basename "$model"), $slots slots x $slot_ctx positions, JVM flags ${JAVA_OPTS:--XX:+UseZGC -Xms512m -Xmx512m -XX:+AlwaysPreTouch}."
  echo "Command: scripts/soak.sh${args_given:+ $args_given}; started $started; load average at start $load_start, at end $load_end."
  echo
  python3 - "$run_dir/report.json" "$clean_exit" "${nmt:-not measured}" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["config"]
def st(name, key="p50"):
    s = r.get(name, {})
    return s.get(key, float("nan"))
srv, m, g = r["server_process"], r["metrics_end"], r["goals"]
print("| figure | value |")
print("| --- | --- |")
print("| clients, load time | %d clients, %.0f s (+ %.0f s warm-up, %d requests); measured wall %.1f s |" % (c["clients"], c["duration_s"], c["warmup_s"], r.get("warmup_requests", 0), r["wall_s"]))
print("| mix | whole %.2f, stream %.2f, cancel %.2f, slow %.2f; routes completions, chat and responses, a third each; max_tokens %d (whole, stream) / %d (cancel, slow) |" % (c["share_whole"], c["share_stream"], c["share_cancel"], c["share_slow"], c["short_tokens"], c["long_tokens"]))
print("| requests | %d (%s); %d chat, %d responses; %d cancelled before any answer |" % (r["requests"], ", ".join("%s %d" % kv for kv in r["by_kind"].items()), r["chat_requests"], r.get("responses_requests", 0), r["cancelled_before_answer"]))
print("| errors | %d (%s); 5xx seen by clients %d, counted by the server %d; mismatches %d |" % (r["errors"], ", ".join("%s %d" % kv for kv in r["errors_by_kind"].items()) or "none", r["client_seen_5xx"], m["server_counted_5xx"], r["mismatches"]))
print("| references | %d, %d distinct |" % (r["references"]["count"], r["references"]["distinct_texts"]))
print("| latency ms p50 / p95 / p99 (non-streaming) | %.1f / %.1f / %.1f |" % (st("latency_ms_whole"), st("latency_ms_whole", "p95"), st("latency_ms_whole", "p99")))
print("| latency ms p50 / p95 / p99 (streams) | %.1f / %.1f / %.1f |" % (st("latency_ms_stream"), st("latency_ms_stream", "p95"), st("latency_ms_stream", "p99")))
print("| TTFT ms p50 / p95 / p99 (streams) | %.1f / %.1f / %.1f |" % (st("ttft_ms_stream"), st("ttft_ms_stream", "p95"), st("ttft_ms_stream", "p99")))
print("| gap between chunks ms p50 / p99 / max, while slow readers read (n) | %.2f / %.1f / %.1f (%d) |" % (st("stream_gap_ms_while_slow_readers"), st("stream_gap_ms_while_slow_readers", "p99"), st("stream_gap_ms_while_slow_readers", "max"), st("stream_gap_ms_while_slow_readers", "n")))
print("| gap between chunks ms p50 / p99 / max, no slow reader (n) | %.2f / %.1f / %.1f (%d) |" % (st("stream_gap_ms_without_slow_readers"), st("stream_gap_ms_without_slow_readers", "p99"), st("stream_gap_ms_without_slow_readers", "max"), st("stream_gap_ms_without_slow_readers", "n")))
print("| slow stream duration s p50 / max | %.1f / %.1f |" % (st("slow_stream_s"), st("slow_stream_s", "max")))
print("| server RSS MiB start / max / end | %.1f / %.1f / %.1f |" % (srv["rss_kib_start"] / 1024, srv["rss_kib_max"] / 1024, srv["rss_kib_end"] / 1024))
print("| server open fds start / max / end | %d / %d / %d |" % (srv["fds_start"], srv["fds_max"], srv["fds_end"]))
print("| server threads start / end | %d / %d |" % (srv["threads_start"], srv["threads_end"]))
print("| JVM memory by NMT (heap included), just after start to the end | %s |" % sys.argv[3])
print("| /metrics at end | slots busy %d of %d, queue %d, KV cells holding cached prefixes %d of %d |" % (m["llmref_slots_busy"], m["llmref_slots_total"], m["llmref_queue_depth"], m["llmref_kv_cache_cells_used"], m["llmref_kv_cache_cells_total"]))
steps = m.get('llmref_engine_step_phase_seconds_count{phase="decode"}') or float("nan")
print("| scheduler | %d steps, %.2f runs of consecutive sequences per step, %.2f graphs reused per step, %d cached prefixes copied between slots, %d device sampler attaches |" % (
    steps, m.get("llmref_engine_sequence_runs_total", float("nan")) / steps, m.get("llmref_engine_graphs_reused_total", float("nan")) / steps,
    m.get("llmref_engine_prefix_copies_total", float("nan")),
    m.get("llmref_engine_device_sampler_attaches_total", float("nan"))))
print("| requests counted by the server | %s |" % ", ".join("%s %d" % (k.replace('route=', '').replace('status=', ''), v) for k, v in m["requests_total"].items()))
print("| SIGTERM after the run | clean exit: %s |" % sys.argv[2])
print("| goals met | %s |" % ("yes" if g["met"] and sys.argv[2] == "yes" else "NO"))
tl = srv["timeline"]
if tl:
    print()
    print("RSS MiB / fds / threads over the run (every %d-th sample): %s" % (max(1, len(tl) // 12), "; ".join(
        "%gs %.0f/%d/%d" % (t[0], t[1] / 1024, t[2], t[3]) for t in tl[::max(1, len(tl) // 12)])))
PY
} | tee "$out_dir/results.md"
cp "$out_dir/results.md" "$run_dir/results.md"
log "report: $run_dir/report.json; per request: $run_dir/requests.jsonl; server log: $run_dir/server.log"
python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["goals"]["met"] else 1)' "$run_dir/report.json" || die "a goal failed (see $run_dir/report.json)"
[ "$clean_exit" = yes ] || die "the server did not exit cleanly on SIGTERM: $clean_exit"
