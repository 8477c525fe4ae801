#!/usr/bin/env bash
# Fuzzes one Jazzer @FuzzTest for a while (docs/reliability.md, "Fuzzing").
#   scripts/fuzz.sh 'RequestParsingFuzzTest#chatBody' 10m
# Without JAZZER_FUZZ the same tests run in regression mode over the committed inputs (every test run).
# A finding fails the run and Jazzer writes the input to
# server/src/test/resources/<package>/<Class>Inputs/<method>/crash-*: fix the bug, keep the file (a regression input).
# The working corpus grows in server/.cifuzz-corpus/ (git-ignored).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
test=${1:?usage: scripts/fuzz.sh 'Class#method' [duration, e.g. 5m]}
export JAVA_HOME=${JAVA_HOME_25:-/usr/lib/jvm/temurin-25-jdk-amd64}
export PATH="$JAVA_HOME/bin:$PATH"
export JAZZER_FUZZ=1
export JAZZER_MAX_DURATION=${2:-5m}
# coverage feedback from our code and the JSON parser (the JDK and Helidon are not instrumented)
export JAZZER_INSTRUMENTATION_INCLUDES=${JAZZER_INSTRUMENTATION_INCLUDES:-'ai.llmref.**:com.fasterxml.jackson.**'}
# HttpFuzzTest connects to its own loopback server by design; Jazzer's SSRF detector would report the
# first connection (and in fuzzing mode its report is lost in surefire's output), so it is off there
if [[ $test == HttpFuzzTest* ]]; then
  export JAZZER_DISABLED_HOOKS=${JAZZER_DISABLED_HOOKS:-com.code_intelligence.jazzer.sanitizers.ServerSideRequestForgery}
fi
cd "$root"
# the reactor (not ~/.m2) provides bindings: a jar replaced under a running fuzzer breaks its class loading
exec mvn -B -ntp test -pl native,bindings,server -Dtest="$test" -Dsurefire.failIfNoSpecifiedTests=false
