#!/usr/bin/env bash
# Prepares, on a machine with Maven and network, everything scripts/gpu-verify.sh needs on a GPU
# machine that has a CUDA toolkit but no Java, no Maven repository and no network:
#
#   .carry/gpu/jre.tar.xz      a jlinked Java 25 runtime (the server's modules plus what the tests use)
#   .carry/gpu/app.tar.xz      the built classes and jars, unpacked over the checkout by gpu-verify.sh:
#                              bindings/target/{classes,test-classes}, server/target/{server jar, the
#                              libs its manifest names, test-classes}, target/gpu-libs/ (the other test
#                              dependencies, the JUnit console launcher, <module>.classpath lists)
#   .carry/gpu/src.tar.xz      the build's part of the pinned llama.cpp tree with a manifest of the
#                              whole tree (native/build.sh --pack-source; verified again there)
#   .carry/gpu/stories260K.gguf, mkmodel.py   the test model and the real-shape model writer
#   .carry/gpu/pack.properties what went in (commit, JDK, sizes)
#
#   scripts/gpu-pack.sh [--out DIR]     (default .carry/gpu, which git ignores)
#
# Environment: STORIES_MODEL (default ../shared/models/stories260K.gguf beside this checkout), MKMODEL
# (default ../shared/tools/mkmodel.py), JAVA_HOME_25 (default /usr/lib/jvm/temurin-25-jdk-amd64).
#
# Jars are rewritten uncompressed before xz compresses the whole set (the OpenAI client alone is a
# 75 MB jar; stored entries let xz find what zip could not), so the pack stays far below the 64 MiB a
# checkout may carry to the GPU machine. Documented in docs/gpu.md.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "gpu-pack: error: $*" >&2; exit 1; }
log() { echo "gpu-pack: $*" >&2; }

out=$root/.carry/gpu
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2?"$1 needs a value"}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

"$root/scripts/prereqs.sh"
command -v python3 >/dev/null || die "python3 is needed"
command -v xz >/dev/null || die "xz is needed"
export JAVA_HOME=${JAVA_HOME_25:-/usr/lib/jvm/temurin-25-jdk-amd64}
export PATH="$JAVA_HOME/bin:$PATH"
stories=${STORIES_MODEL:-$root/../shared/models/stories260K.gguf}
mkmodel=${MKMODEL:-$root/../shared/tools/mkmodel.py}
[ -f "$stories" ] || die "stories260K not found at $stories (set STORIES_MODEL)"
[ -f "$mkmodel" ] || die "mkmodel.py not found at $mkmodel (set MKMODEL)"

mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log "building the jars and test classes"
(cd "$root" && mvn -B -ntp -q install -DskipTests -pl native,bindings,server -am >&2)
# The exact test class paths Maven uses for the two modules (one version of every artifact), and the
# JUnit console launcher of the same JUnit version.
for m in bindings server; do
  (cd "$root" && mvn -B -ntp -q dependency:build-classpath -pl "$m" -Dmdep.includeScope=test \
    -Dmdep.outputFile="$work/cp-$m.txt" >&2)
done
# The console launcher must be the JUnit platform version of the module's class path (the server's
# comes from Helidon's BOM, the bindings' from ours).
junit_versions=""
for m in bindings server; do
  v=$(tr ':' '\n' <"$work/cp-$m.txt" | sed -n 's#.*/junit-platform-engine-\([^/]*\)\.jar$#\1#p' | head -1)
  [ -n "$v" ] || die "no junit-platform-engine on the $m test class path"
  echo "$v" >"$work/junit-$m.txt"
  junit_versions="$junit_versions $m=$v"
  (cd "$root" && mvn -B -ntp -q dependency:copy -Dartifact="org.junit.platform:junit-platform-console-standalone:$v" \
    -DoutputDirectory="$work/console" >&2)
done

log "packing the classes and jars"
python3 - "$root" "$work" <<'PY'
import os, shutil, sys, zipfile
root, work = sys.argv[1], sys.argv[2]
dest = os.path.join(work, "app")
def stored(src, dst):  # the same jar with every entry stored, so that xz can compress the set
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            info.compress_type = zipfile.ZIP_STORED
            zout.writestr(info, data)
for rel in ("bindings/target/classes", "bindings/target/test-classes", "server/target/test-classes"):
    shutil.copytree(os.path.join(root, rel), os.path.join(dest, rel))
# The server jar and exactly the jars its manifest's Class-Path names (target/libs may hold stale
# ones from earlier builds), less the native jar: the GPU machine builds its own libraries.
st = os.path.join(root, "server/target")
jar = [f for f in os.listdir(st) if f.startswith("server-") and f.endswith(".jar") and "-sources" not in f and "-tests" not in f][0]
stored(os.path.join(st, jar), os.path.join(dest, "server/target", jar))
mf = zipfile.ZipFile(os.path.join(st, jar)).read("META-INF/MANIFEST.MF").decode().replace("\r\n ", "").replace("\n ", "")
class_path = next(l.split(":", 1)[1].split() for l in mf.splitlines() if l.startswith("Class-Path:"))
in_libs = {}
for entry in class_path:
    name = os.path.basename(entry)
    if name.startswith("native-"):
        continue
    stored(os.path.join(st, entry), os.path.join(dest, "server/target", entry))
    in_libs[name] = "server/target/" + entry
# Test class paths: entries already in server/target/libs are referenced there, the rest (and the
# project's own bindings jar for the server) go to target/gpu-libs; each module's list is kept in
# target/gpu-libs/<module>.classpath, paths relative to the checkout.
os.makedirs(os.path.join(dest, "target/gpu-libs"), exist_ok=True)
def place(path):
    name = os.path.basename(path)
    if name in in_libs:
        return in_libs[name]
    rel = "target/gpu-libs/" + name
    if not os.path.exists(os.path.join(dest, rel)):
        stored(path, os.path.join(dest, rel))
    return rel
# Test dependencies the GPU run's test classes never load (fuzzing, the schema reference validator
# and its Jackson 3, Anthropic's SDK of MessagesApiTest: its core jar alone is 47 MB) stay behind,
# and an artifact both modules use in different versions travels once, in the newer version.
SKIP = ("/com/code-intelligence/", "/com/networknt/", "/tools/jackson/", "/com/ethlo/", "/com/anthropic/",
        "/com/standardwebhooks/")
def artifact(path):  # ~/.m2/.../<group path>/<artifact>/<version>/<file> -> (group/artifact, version)
    parts = path.split("/")
    return "/".join(parts[:-2]), tuple(int(x) if x.isdigit() else 0 for x in parts[-2].replace("-", ".").split("."))
newest = {}
for m in ("bindings", "server"):
    for e in open(os.path.join(work, "cp-%s.txt" % m)).read().strip().split(":"):
        if e:
            a, v = artifact(e)
            if a not in newest or v > newest[a][0]:
                newest[a] = (v, e)
def chosen(e):  # JUnit stays as each module has it: its console launcher must match it
    return e if "/org/junit/" in e else newest[artifact(e)[0]][1]
for m in ("bindings", "server"):
    v = open(os.path.join(work, "junit-%s.txt" % m)).read().strip()
    console = [os.path.join(work, "console", "junit-platform-console-standalone-%s.jar" % v)]
    entries = [e for e in open(os.path.join(work, "cp-%s.txt" % m)).read().strip().split(":") if e]
    entries = [e for e in entries if not os.path.basename(e).startswith("native-") and not any(k in e for k in SKIP)]
    entries = list(dict.fromkeys(chosen(e) for e in entries))
    with open(os.path.join(dest, "target/gpu-libs/%s.classpath" % m), "w") as f:
        for e in entries + console:
            f.write(place(e) + "\n")
PY
tar -C "$work/app" --sort=name --owner=0 --group=0 --numeric-owner -cf - . | xz -T0 -9 >"$out/app.tar.xz"

log "linking the Java runtime"
# The image's modules (scripts/image-layout.sh) plus what the tests and the JUnit launcher use.
modules=java.base,java.desktop,java.logging,java.management,java.net.http,java.sql,java.xml,jdk.unsupported,java.instrument,java.naming,java.scripting,jdk.httpserver,jdk.management,jdk.crypto.ec,jdk.zipfs
# Stored modules (xz compresses them better than jlink's zip), no X11/ALSA natives (headless, as in
# the image), no CDS archive (the JVM starts without it; it is 15 MB).
jlink --add-modules "$modules" --strip-debug --no-header-files --no-man-pages --compress=zip-0 \
  --exclude-files='**/libawt_xawt.so,**/libjawt.so,**/libsplashscreen.so,**/libjsound.so' --output "$work/jre"
rm -f "$work"/jre/lib/server/*.jsa
tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner -cf - jre | xz -T0 -6 >"$out/jre.tar.xz"

log "packing the llama.cpp source"
"$root/native/build.sh" --pack-source "$out/src.tar.xz"
cp "$stories" "$out/stories260K.gguf"
cp "$mkmodel" "$out/mkmodel.py"
{
  echo "commit=$(git -C "$root" rev-parse HEAD)$(git -C "$root" diff --quiet HEAD -- . ':!.carry' || echo '+changes')"
  echo "created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "jdk=$(java -version 2>&1 | head -1)"
  echo "junit=${junit_versions# }"
  echo "modules=$modules"
  for f in jre.tar.xz app.tar.xz src.tar.xz stories260K.gguf mkmodel.py; do echo "size.$f=$(stat -c %s "$out/$f")"; done
} >"$out/pack.properties"
total=$(du -cb "$out"/* | tail -1 | cut -f1)
log "wrote $out: $(du -sh "$out" | cut -f1) ($total bytes; the device machine takes at most 64 MiB with the checkout)"
[ "$total" -lt $((56 * 1024 * 1024)) ] || die "the pack is $total bytes: too close to the 64 MiB a checkout may carry"
