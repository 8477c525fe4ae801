# Sourced by the benchmark scripts. native_tools TOOL...: builds (or takes from the cache) the native
# libraries and llama.cpp's reference tools with native/build.sh ($NATIVE_BUILD_ARGS passed on, e.g.
# "--variant cuda --cuda-arch 90"), writes where they are to $out_dir/native.properties, sets
# lib_dir, bin_dir and src_dir, defines prop KEY (a value of that file), and checks that each TOOL
# was built. Needs root, out_dir and die from the calling script.

native_tools() {
  # shellcheck disable=SC2086
  "$root/native/build.sh" ${NATIVE_BUILD_ARGS:-} --tools --info "$out_dir/native.properties" >&2
  lib_dir=$(prop native.lib.dir)
  bin_dir=$(prop native.bin.dir)
  src_dir=$(prop llama.cpp.dir)
  local tool
  for tool in "$@"; do
    [ -x "$bin_dir/$tool" ] || die "$tool is missing from $bin_dir"
  done
}

prop() { sed -n "s/^$1=//p" "$out_dir/native.properties"; }
