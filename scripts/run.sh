#!/usr/bin/env bash
# The README's run command: builds what is missing (native libraries from the cache, the jars) and
# starts the server on CPU with the tiny TinyStories model, on 127.0.0.1:8080.
#   scripts/run.sh [server options...]    e.g. --port 9000, --model /path/x.gguf, --config app.yaml
# Environment: MODEL (default ../shared/models/stories260K.gguf), LLMREF_* configuration keys.
# The model: --model, else MODEL, else model.path from LLMREF_MODEL_PATH or the --config file, else
# the default above (a --model on the command line would outrank those two, docs/server.md). The
# default is not used once --config is given: a file without model.path needs --model or MODEL.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/prereqs.sh"
export JAVA_HOME=${JAVA_HOME_25:-/usr/lib/jvm/temurin-25-jdk-amd64}
export PATH="$JAVA_HOME/bin:$PATH"
cd "$root"
jar=server/target/server-0.1.0-SNAPSHOT.jar
if [ ! -f "$jar" ] || [ -n "$(find native bindings server pom.xml -newer "$jar" -type f -not -path '*/target/*' -print -quit)" ]; then
  mvn -B -ntp -q -DskipTests install
fi
args=("$@")
given_model=0 given_config=0
for a in "$@"; do case "$a" in --model) given_model=1 ;; --config) given_config=1 ;; esac; done
if [ "$given_model" = 0 ]; then
  if [ -n "${MODEL:-}" ]; then
    args=(--model "$MODEL" "${args[@]+"${args[@]}"}")
  elif [ -z "${LLMREF_MODEL_PATH:-}" ] && [ "$given_config" = 0 ]; then
    args=(--model "$root/../shared/models/stories260K.gguf" "${args[@]+"${args[@]}"}")
  fi
fi
exec java --enable-native-access=ALL-UNNAMED -XX:+UseZGC -jar "$jar" "${args[@]}"
