# Sourced by native/build.sh and scripts/gpu-verify.sh (here, beside build.sh, so that the image
# build's context, which admits native/, has it): what a shared library links, and which
# library the loader would give a process.

# elf_needed LIB: its NEEDED entries, one per line (binutils' readelf, else its objdump; status 1
# with neither).
elf_needed() {
  if command -v readelf >/dev/null; then
    readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'
  elif command -v objdump >/dev/null; then
    objdump -p "$1" | awk '$1 == "NEEDED" {print $2}'
  else
    return 1
  fi
}

# loader_lib SONAME: the path the loader's cache (ldconfig -p) gives for SONAME on this machine's
# architecture, or nothing.
loader_lib() {
  local tag=x86-64
  [ "$(uname -m)" = aarch64 ] && tag=AArch64
  { ldconfig -p 2>/dev/null | awk -v so="$1" -v tag="$tag" '$1 == so && index($0, tag) {print $NF; exit}'; } || true
}
