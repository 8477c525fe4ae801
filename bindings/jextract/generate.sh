#!/usr/bin/env bash
# Regenerates the jextract FFM bindings for llama.cpp into
#   bindings/src/generated/java/ai/llmref/bindings/ffi/
# and records what produced them in bindings/jextract/stamp.properties.
#
# Usage: bindings/jextract/generate.sh [LLAMA_CPP_DIR]
#   LLAMA_CPP_DIR  llama.cpp source tree at the pinned revision
#                  (default: $LLAMA_CPP_DIR from the environment)
# Environment:
#   JEXTRACT           jextract launcher to use (default: `jextract` on PATH)
#   JEXTRACT_REVISION  openjdk/jextract git commit, needed only when
#                      `jextract --version` does not print one
#
# See bindings/jextract/README.md. The generated sources are never edited.
set -euo pipefail

readonly PINNED_LLAMA_H_SHA256=0199c9f12a5dd4099191a9b508d62ad715212981d181046a0d29750c57dd8694
readonly PINNED_LLAMA_CPP_TREE=fd570ef54b10ec5fecb739e7e04c8ce44a6f415a
readonly TARGET_PACKAGE=ai.llmref.bindings.ffi
readonly HEADER_CLASS=llama_h
readonly REQUIRED_LIBCLANG_MAJOR=13

usage() {
    echo "usage: $0 [LLAMA_CPP_DIR]" >&2
    echo "  LLAMA_CPP_DIR: llama.cpp source tree (git tree $PINNED_LLAMA_CPP_TREE);" >&2
    echo "  may also be given as the environment variable LLAMA_CPP_DIR." >&2
}

die() {
    echo "generate.sh: error: $*" >&2
    exit 1
}

if [[ $# -gt 1 ]]; then
    usage
    exit 2
fi
if [[ $# -eq 1 && ( $1 == -h || $1 == --help ) ]]; then
    usage
    exit 0
fi

llama_dir=${1:-${LLAMA_CPP_DIR:-}}
if [[ -z $llama_dir ]]; then
    echo "generate.sh: error: no llama.cpp directory given" >&2
    usage
    exit 2
fi
[[ -d $llama_dir ]] || die "not a directory: $llama_dir"
llama_dir=$(cd "$llama_dir" && pwd)

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/../.." && pwd)
symbols_file=$script_dir/symbols.txt
stamp_file=$script_dir/stamp.properties
out_root=$repo_root/bindings/src/generated/java
out_pkg_dir=$out_root/${TARGET_PACKAGE//.//}

[[ -f $symbols_file ]] || die "missing $symbols_file"

# --- jextract -------------------------------------------------------------
if [[ -n ${JEXTRACT:-} ]]; then
    jextract_cmd=$JEXTRACT
    [[ -x $jextract_cmd ]] || jextract_cmd=$(command -v -- "$JEXTRACT" 2>/dev/null) \
        || die "JEXTRACT=$JEXTRACT is not an executable"
else
    jextract_cmd=$(command -v jextract 2>/dev/null) \
        || die "jextract not found: set JEXTRACT to the jextract launcher or put jextract on PATH (see bindings/jextract/README.md)"
fi

# --- pinned header check ----------------------------------------------------
llama_h=$llama_dir/include/llama.h
[[ -f $llama_h ]] || die "$llama_h not found (is $llama_dir a llama.cpp source tree?)"
[[ -d $llama_dir/ggml/include ]] || die "$llama_dir/ggml/include not found"

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum -- "$1" | cut -d' ' -f1
    else
        shasum -a 256 -- "$1" | cut -d' ' -f1
    fi
}
found_sha=$(sha256_of "$llama_h")
if [[ $found_sha != "$PINNED_LLAMA_H_SHA256" ]]; then
    echo "generate.sh: error: $llama_h is not the pinned header" >&2
    echo "  expected sha256: $PINNED_LLAMA_H_SHA256" >&2
    echo "  found sha256:    $found_sha" >&2
    echo "  (check out llama.cpp git tree $PINNED_LLAMA_CPP_TREE)" >&2
    exit 1
fi

# --- jextract identity --------------------------------------------------------
version_out=$("$jextract_cmd" --version 2>&1) || die "'$jextract_cmd --version' failed:
$version_out"

version_line=$(grep -m1 '^jextract ' <<<"$version_out" || true)
revision=$(grep -oE '[0-9a-f]{40}' <<<"$version_line" | head -n1 || true)
if [[ -n $revision ]]; then
    if [[ -n ${JEXTRACT_REVISION:-} && ${JEXTRACT_REVISION} != "$revision" ]]; then
        die "JEXTRACT_REVISION=$JEXTRACT_REVISION but '$jextract_cmd --version' reports $revision"
    fi
elif [[ -n ${JEXTRACT_REVISION:-} ]]; then
    [[ $JEXTRACT_REVISION =~ ^[0-9a-f]{40}$ ]] \
        || die "JEXTRACT_REVISION must be a full 40-hex-digit git commit, got '$JEXTRACT_REVISION'"
    revision=$JEXTRACT_REVISION
else
    die "'$jextract_cmd --version' prints no git revision ($version_line);
  set JEXTRACT_REVISION to the openjdk/jextract commit this jextract was built from"
fi

clang_line=$(grep -m1 '^LibClang version ' <<<"$version_out" || true)
[[ -n $clang_line ]] || die "cannot find 'LibClang version' in '$jextract_cmd --version' output:
$version_out"
libclang_version=$(grep -oE 'clang version [0-9][^ ]*' <<<"$clang_line" | head -n1 | sed 's/^clang version //' || true)
[[ -n $libclang_version ]] || libclang_version=${clang_line#LibClang version }
if [[ ${libclang_version%%.*} != "$REQUIRED_LIBCLANG_MAJOR" ]]; then
    die "jextract uses libclang '$libclang_version' but libclang $REQUIRED_LIBCLANG_MAJOR is required
  (newer libclang emits uncompilable code for anonymous unions in the ggml headers; see README.md)"
fi

# --- generate ------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/llama-jextract.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/cwd" "$work/out"

echo "jextract:  $jextract_cmd ($revision, libclang $libclang_version)"
echo "llama.cpp: $llama_dir"
# Run from an empty directory: jextract reads ./compile_flags.txt if present.
if ! (
    cd "$work/cwd"
    exec "$jextract_cmd" \
        --output "$work/out" \
        --target-package "$TARGET_PACKAGE" \
        --header-class-name "$HEADER_CLASS" \
        -I "$llama_dir/include" \
        -I "$llama_dir/ggml/include" \
        "@$symbols_file" \
        "$llama_h"
) >"$work/jextract.log" 2>&1; then
    cat "$work/jextract.log" >&2
    die "jextract failed"
fi
# "Skipping X (type ... is not supported)" warnings concern opaque structs and
# system-header declarations outside the symbol filter; show everything else.
grep -v ': warning: Skipping ' "$work/jextract.log" || true
skipped=$(grep -c ': warning: Skipping ' "$work/jextract.log" || true)
echo "($skipped 'Skipping ... not supported' warnings suppressed)"

gen_pkg_dir=$work/out/${TARGET_PACKAGE//.//}
[[ -f $gen_pkg_dir/$HEADER_CLASS.java ]] || die "jextract produced no $HEADER_CLASS.java"
if grep -rqE 'SymbolLookup\.libraryLookup|System\.loadLibrary' "$gen_pkg_dir"; then
    die "generated code loads libraries itself; expected SymbolLookup.loaderLookup() only"
fi

rm -rf "$out_pkg_dir"
mkdir -p "$(dirname "$out_pkg_dir")"
mv "$gen_pkg_dir" "$out_pkg_dir"

cat >"$stamp_file" <<EOF
# Written by bindings/jextract/generate.sh; do not edit.
llama.h.sha256=$found_sha
llama.cpp.tree=$PINNED_LLAMA_CPP_TREE
jextract.revision=$revision
libclang.version=$libclang_version
EOF

count=$(find "$out_pkg_dir" -name '*.java' | wc -l | tr -d ' ')
echo "wrote $count files to ${out_pkg_dir#"$repo_root"/}"
echo "wrote ${stamp_file#"$repo_root"/}"
