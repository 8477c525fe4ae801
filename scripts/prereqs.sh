#!/usr/bin/env bash
# Installs the build tools a fresh Debian machine may lack: the native build needs cmake, ninja,
# a C/C++ compiler, git, npm (to fetch the pinned source package), openssl, objdump and flock; the
# server tests need node and npm (the npm openai client's conformance run); the deployment tests
# need yamllint (kubectl, for kustomize, comes with the machine image).
set -euo pipefail
need=()
for pair in cmake:cmake ninja:ninja-build gcc:gcc g++:g++ git:git node:nodejs npm:npm openssl:openssl \
            objdump:binutils flock:util-linux mvn:maven yamllint:yamllint; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
jdk=${JAVA_HOME_25:-/usr/lib/jvm/temurin-25-jdk-amd64}
[ -x "$jdk/bin/java" ] || { echo "prereqs: Java 25 not found at $jdk (set JAVA_HOME_25 to a JDK 25)" >&2; exit 1; }
if [ ${#need[@]} -gt 0 ]; then
  # Installing needs apt-get (Debian, Ubuntu) and root or sudo: without them, say what to install
  # rather than fail on "sudo: command not found".
  command -v apt-get >/dev/null 2>&1 \
    || { echo "prereqs: missing ${need[*]} (Debian package names), and this machine has no apt-get: install them with its package manager" >&2; exit 1; }
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 \
      || { echo "prereqs: missing ${need[*]}; run this as root, or install them: apt-get install ${need[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  echo "prereqs: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
