#!/usr/bin/env python3
# How slow a fresh server's first requests on one route are, for two or more builds of the server
# (docs/benchmarks.md, "Warm-up on every generation route"): each build is started with
# server.warmup-requests, and once /health/ready turns 200 one client sends N requests one after
# another (8 tokens, greedy) on the route and times each. The builds alternate in ABBA order over
# the rounds. Prints, per build and round: the time to readiness (the warm-up included), the median
# and p90 of the first 100 and of the last 100 requests, and the mean of all.
#
#   python3 scripts/experiments/cold-requests.py --jar old=server/target/old.jar --jar new=server/target/server-0.1.0-SNAPSHOT.jar \
#       --route /completion [--rounds 2] [--requests 400] [--warmup-requests 3000] [--native-dir DIR] [--model GGUF]
#
# A jar's libs/ folder must lie beside it (copy another build's jar into server/target). The native
# directory defaults to the newest CPU build in the user's cache (native/build.sh puts it there).
import argparse
import glob
import http.client
import json
import os
import statistics
import subprocess
import time

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ap = argparse.ArgumentParser()
ap.add_argument("--jar", action="append", required=True, help="LABEL=PATH, at least two")
ap.add_argument("--route", default="/completion", choices=["/completion", "/v1/chat/completions", "/v1/completions"])
ap.add_argument("--rounds", type=int, default=2)
ap.add_argument("--requests", type=int, default=400)
ap.add_argument("--warmup-requests", type=int, default=3000)
ap.add_argument("--native-dir")
ap.add_argument("--model", default=os.path.join(root, "..", "shared", "models", "stories260K.gguf"))
ap.add_argument("--port", type=int, default=18080)
args = ap.parse_args()

java = os.path.join(os.environ.get("JAVA_HOME", "/usr/lib/jvm/temurin-25-jdk-amd64"), "bin", "java")
cache = os.environ.get("AIREF_CACHE_DIR", os.path.expanduser("~/.cache/ai-llm-reference-app"))
native = args.native_dir or max(glob.glob(os.path.join(cache, "out", "cpu-*", "lib")), key=os.path.getmtime)
jars = dict(j.split("=", 1) for j in args.jar)


def body(i):
    if args.route == "/completion":
        return {"prompt": "Once upon a time %d" % i, "n_predict": 8, "temperature": 0}
    if args.route == "/v1/completions":
        return {"prompt": "Once upon a time %d" % i, "max_tokens": 8, "temperature": 0}
    return {"messages": [{"role": "user", "content": "Tell me a story %d" % i}], "max_tokens": 8, "temperature": 0}


def measure(jar):
    server = subprocess.Popen([java, "--enable-native-access=ALL-UNNAMED", "-XX:+UseZGC",
                               "-Dserver.warmup-requests=%d" % args.warmup_requests, "-Dllama.native.dir=" + native,
                               "-Dserver.admin-port=%d" % (args.port + 1), "-Dengine.slots=4", "-Dengine.slot-context=256",
                               "-jar", jar, "--model", args.model, "--port", str(args.port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        while True:
            if server.poll() is not None:
                raise SystemExit("cold-requests: %s exited with %d" % (jar, server.returncode))
            try:
                probe = http.client.HTTPConnection("127.0.0.1", args.port + 1, timeout=5)
                probe.request("GET", "/health/ready")
                if probe.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() - t0 > 600:
                raise SystemExit("cold-requests: %s not ready after 600 s" % jar)
            time.sleep(0.2)
        ready = time.time() - t0
        client = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
        times = []
        for i in range(args.requests):
            t = time.perf_counter()
            client.request("POST", args.route, json.dumps(body(i)), {"Content-Type": "application/json"})
            r = client.getresponse()
            r.read()
            if r.status != 200:
                raise SystemExit("cold-requests: %s answered %d" % (args.route, r.status))
            times.append((time.perf_counter() - t) * 1000)
        return ready, times
    finally:
        server.terminate()
        server.wait()


def p90(xs):
    return sorted(xs)[int(0.9 * (len(xs) - 1))]


labels = list(jars)
print("route %s, %d requests after readiness, server.warmup-requests=%d, native %s" % (
    args.route, args.requests, args.warmup_requests, native))
for rnd in range(args.rounds):
    for label in (labels if rnd % 2 == 0 else labels[::-1]):
        ready, t = measure(jars[label])
        first, last = t[:100], t[-100:]
        print("%s round %d: ready in %.1f s; first 100: median %.2f ms, p90 %.2f; last 100: median %.2f, p90 %.2f; mean %.2f ms"
              % (label, rnd + 1, ready, statistics.median(first), p90(first), statistics.median(last), p90(last),
                 statistics.mean(t)), flush=True)
