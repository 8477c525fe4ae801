#!/usr/bin/env bash
# The README's test command: builds everything (native libraries through the cache) and runs all
# tests. On a fresh Debian/Ubuntu machine it installs the build tools it lacks (needs root/sudo).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/prereqs.sh"
export JAVA_HOME=${JAVA_HOME_25:-/usr/lib/jvm/temurin-25-jdk-amd64}
export PATH="$JAVA_HOME/bin:$PATH"
cd "$root"
exec mvn -B -ntp verify "$@"
