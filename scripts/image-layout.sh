#!/usr/bin/env bash
# Assembles the final-stage file tree of the container image into a root directory: the jlinked Java
# runtime, the application jars, the llama.cpp libraries (and the user-space libraries they need that
# the runtime base image lacks) and the launcher's argument file. Dockerfile.cuda runs this script in
# its build stage and copies the result into the final stage as is; deploy/ runs it with
# --variant cpu and starts the server from the result, so the tree that is tested is the tree that
# ships. Documented in docs/deployment.md.
#
#   scripts/image-layout.sh --root DIR [--variant cpu|cuda] [--cuda-arch "80;86;89;90"]
#                           [--cpu-variants host|all] [--prebuilt]
#
#   --root DIR      the image root to (re)create; the tree lands in DIR/opt/llmref
#   --variant       native variant (default cpu); cuda needs the CUDA toolkit (see native/build.sh)
#   --cuda-arch     CUDA architectures for --variant cuda (default 80;86;89;90)
#   --cpu-variants  host: this machine's CPU features; all: every x86 variant, chosen at run time
#                   (default all: an image runs on machines other than the one that built it)
#   --prebuilt      do not run Maven: take server/target/*.jar and server/target/libs as they are
#                   (the tests use this after the reactor has built them)
#
# What lands under DIR/opt/llmref:
#   runtime/             jlinked Java runtime (modules below), with a CDS archive
#   app/lib/*.jar        the server jar and its runtime dependencies (not the native jar: see native/)
#   app/jvm.args         the launcher's argument file: java @/opt/llmref/app/jvm.args [server options]
#   app/layout.properties what went in (variant, llama.cpp tree, Java version, modules)
#   native/              LLAMA_NATIVE_DIR: libggml*, libllama, backend plugins, and the user-space
#                        libraries they need beyond the base image (libgomp; cudart/cuBLAS for cuda)
#
# Environment:
#   JAVA_HOME        the JDK 25 whose jlink builds the runtime (default: Temurin 25 as in README.md)
#   AIREF_CACHE_DIR  the cache shared with native/build.sh; the jlinked runtime is cached under jlink/
#   CUDA_HOME        CUDA toolkit root for --variant cuda (default: /usr/local/cuda)
#   LAYOUT_REVISION  the source revision recorded in layout.properties (default: git rev-parse HEAD)
#   BASE_IMAGE_LIBS  sonames the runtime base image provides (default: distroless cc-debian12's glibc,
#                    libgcc_s and libstdc++); every other library a shipped ELF file needs is copied in
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "image-layout.sh: error: $*" >&2; exit 1; }
log() { echo "image-layout.sh: $*" >&2; }

root=""
variant=cpu
cuda_arch="80;86;89;90"
cpu_variants=all
prebuilt=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=${2?"$1 needs a value"}; shift 2 ;;
    --variant) variant=${2?"$1 needs a value"}; shift 2 ;;
    --cuda-arch) cuda_arch=${2?"$1 needs a value"}; shift 2 ;;
    --cpu-variants) cpu_variants=${2?"$1 needs a value"}; shift 2 ;;
    --prebuilt) prebuilt=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -n "$root" ] || die "--root DIR is required (see --help)"
case "$variant" in cpu|cuda) ;; *) die "--variant must be cpu or cuda, got '$variant'" ;; esac

export JAVA_HOME=${JAVA_HOME:-${JAVA_HOME_25:-/usr/lib/jvm/temurin-25-jdk-amd64}}
[ -x "$JAVA_HOME/bin/jlink" ] || die "no jlink in JAVA_HOME=$JAVA_HOME (a JDK 25 is needed)"
export PATH="$JAVA_HOME/bin:$PATH"
cache=${AIREF_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-llm-reference-app}
cuda_home=${CUDA_HOME:-/usr/local/cuda}

# The in-image paths. Dockerfile.cuda, the Helm chart and k8s/ use the same ones.
prefix=/opt/llmref
# Sonames distroless cc-debian12 provides (glibc, libgcc_s, libstdc++). libcuda.so.1 and the other
# driver libraries are mounted by the NVIDIA container runtime and must never be shipped.
base_libs=${BASE_IMAGE_LIBS:-"ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 libutil.so.1 libresolv.so.2 libgcc_s.so.1 libstdc++.so.6"}
driver_libs="libcuda.so.1 libnvidia-ml.so.1 libnvidia-ptxjitcompiler.so.1"
# Java modules of the runtime: what jdeps finds for the server's class path (deploy/ checks this on
# every build; java.net.http carries the OTLP trace export), less java.compiler, java.instrument,
# jdk.attach and jdk.jdi, which only build-time and agent code paths of dependencies reference.
# java.desktop is there for java.beans (Jinja templates); its X11/ALSA native parts are excluded
# below and AWT runs headless.
modules=java.base,java.desktop,java.logging,java.management,java.net.http,java.sql,java.xml,jdk.unsupported
# Native parts of java.desktop that would need X11 or ALSA, which the image does not have.
jlink_excludes='**/libawt_xawt.so,**/libjawt.so,**/libsplashscreen.so,**/libjsound.so'

# --root is wiped first: refuse anything but a fresh folder or an earlier output of this script.
root=$(realpath -m "$root")
[ "$root" != / ] || die "--root / would replace this machine's root"
if [ -e "$root" ] && [ -n "$(ls -A "$root" 2>/dev/null)" ] \
   && { [ "$(ls -A "$root")" != opt ] || [ "$(ls -A "$root/opt")" != llmref ]; }; then
  die "--root $root is not empty and not an earlier image layout; refusing to delete it"
fi
rm -rf "$root"
mkdir -p "$root$prefix/app/lib" "$root$prefix/native"

# --- native libraries: the project's own build, through its cache ----------------------------------
native_args=(--variant "$variant" --cpu-variants "$cpu_variants")
[ "$variant" = cuda ] && native_args+=(--cuda-arch "$cuda_arch")
"$here/native/build.sh" "${native_args[@]}" --out "$root$prefix/native"

# --- application jars ------------------------------------------------------------------------------
if [ "$prebuilt" = 0 ]; then
  mvn_args=(-B -ntp -DskipTests "-Dnative.cpu.variants=$cpu_variants")
  # Same variant and flags as above, so Maven's own call of native/build.sh is a cache hit.
  [ "$variant" = cuda ] && mvn_args+=(-Pcuda "-Dnative.cuda.arch=$cuda_arch")
  log "building the server and its dependencies with Maven"
  (cd "$here" && mvn "${mvn_args[@]}" install -pl server -am)
fi
server_jar=$(ls "$here"/server/target/server-*.jar 2>/dev/null | grep -v -- '-sources\|-tests' | head -1 || true)
[ -n "$server_jar" ] && [ -d "$here/server/target/libs" ] \
  || die "no server/target/server-*.jar and server/target/libs: build first (mvn -DskipTests install) or drop --prebuilt"
cp "$server_jar" "$root$prefix/app/lib/"
jars=("$(basename "$server_jar")")
# Exactly the jars of the server jar's manifest Class-Path (target/libs may hold stale ones from
# earlier builds), less the native jar: it carries the same libraries as native/, which the image
# loads in place.
manifest_dir=$(mktemp -d)
(cd "$manifest_dir" && "$JAVA_HOME/bin/jar" -xf "$server_jar" META-INF/MANIFEST.MF)
class_path=$(sed -e ':a;N;$!ba;s/\r\{0,1\}\n //g' "$manifest_dir/META-INF/MANIFEST.MF" | tr -d '\r' | sed -n 's/^Class-Path: //p')
rm -rf "$manifest_dir"
[ -n "$class_path" ] || die "$server_jar has no Class-Path in its manifest"
for entry in $class_path; do
  case "$(basename "$entry")" in native-*.jar) continue ;; esac
  [ -f "$here/server/target/$entry" ] || die "$server_jar lists $entry, which is not in server/target (rebuild the server)"
  cp "$here/server/target/$entry" "$root$prefix/app/lib/"
  jars+=("$(basename "$entry")")
done

# --- Java runtime: jlink, cached by JDK, modules and options ---------------------------------------
jlink_opts=(--strip-debug --no-header-files --no-man-pages --compress=zip-6 --generate-cds-archive
            "--exclude-files=$jlink_excludes")
jdk_id=$("$JAVA_HOME/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.\(vm\.version\|vendor\|home\) = //p' | paste -sd' ')
jlink_key=$(printf '%s\n' "layout=1" "$jdk_id" "$modules" "${jlink_opts[@]}" | sha256sum | cut -c1-16)
runtime_cache="$cache/jlink/$jlink_key"
if [ ! -x "$runtime_cache/bin/java" ]; then
  mkdir -p "$cache/jlink"
  stage="$runtime_cache.tmp.$$"
  rm -rf "$stage"
  log "jlink: $modules"
  jlink --add-modules "$modules" "${jlink_opts[@]}" --output "$stage" \
    || { rm -rf "$stage"; die "jlink failed"; }
  rm -rf "$runtime_cache"
  mv "$stage" "$runtime_cache"
else
  log "jlink cache hit: $runtime_cache"
fi
cp -a "$runtime_cache" "$root$prefix/runtime"

# --- shared libraries the shipped ELF files need and the base image lacks --------------------------
# Resolves NEEDED entries breadth-first: found beside the file ($ORIGIN) or in the runtime -> fine;
# in the base image or the driver -> not shipped; else copied from the CUDA toolkit or the system
# into native/ (where the ggml libraries' $ORIGIN rpath finds it).
needed_of() { objdump -p "$1" 2>/dev/null | sed -n 's/^ *NEEDED *//p'; }
find_system_lib() {
  local name=$1 d
  for d in "$cuda_home/lib64" "$cuda_home"/targets/*/lib /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu \
           /lib64 /usr/lib64 /lib /usr/lib; do
    [ -e "$d/$name" ] && { readlink -f "$d/$name"; return 0; }
  done
  ldconfig -p 2>/dev/null | awk -v n="$name" '$1 == n && /x86-64/ {print $NF; exit}'
}
queue=("$root$prefix/native"/*.so*)
while [ ${#queue[@]} -gt 0 ]; do
  f=${queue[0]}; queue=("${queue[@]:1}")
  for lib in $(needed_of "$f"); do
    case " $base_libs $driver_libs " in *" $lib "*) continue ;; esac
    [ -e "$root$prefix/native/$lib" ] && continue
    src=$(find_system_lib "$lib")
    [ -n "$src" ] || die "$(basename "$f") needs $lib, which is neither in the base image nor found on this machine"
    log "adding $lib (from $src), needed by $(basename "$f")"
    cp "$src" "$root$prefix/native/$lib"
    queue+=("$root$prefix/native/$lib")
  done
done

# --- launcher arguments ----------------------------------------------------------------------------
# The server jar, then its manifest's Class-Path in order.
classpath=$(printf "$prefix/app/lib/%s\n" "${jars[@]}" | paste -sd:)
cat > "$root$prefix/app/jvm.args" <<EOF
--enable-native-access=ALL-UNNAMED
-Djava.io.tmpdir=/tmp
-Djava.awt.headless=true
-XX:+ExitOnOutOfMemoryError
-XX:ErrorFile=/tmp/hs_err_pid%p.log
-XX:HeapDumpPath=/tmp
-XX:-UsePerfData
-cp
$classpath
ai.llmref.server.Main
EOF

tree=$(sed -n 's/^llama.cpp.tree=//p' "$root$prefix/native/build-info.properties")
{
  echo "# generated by scripts/image-layout.sh"
  echo "variant=$variant"
  echo "cpu.variants=$cpu_variants"
  [ "$variant" = cuda ] && echo "cuda.architectures=$cuda_arch"
  echo "llama.cpp.tree=$tree"
  echo "java.runtime=$jdk_id"
  echo "java.modules=$modules"
  echo "server.jar=$(basename "$server_jar")"
  echo "git.commit=${LAYOUT_REVISION:-$(git -C "$here" rev-parse HEAD 2>/dev/null || echo unknown)}"
} > "$root$prefix/app/layout.properties"

# --- ownership and modes: root-owned, nothing writable but by root, no set-id bits -----------------
chmod -R u+rwX,go+rX,go-w,ug-s "$root$prefix"
[ "$(id -u)" != 0 ] || chown -R 0:0 "$root$prefix"
log "layout ready: $root$prefix ($(du -sh "$root$prefix" | cut -f1))"
