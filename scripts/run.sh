#!/usr/bin/env bash
# The README's run command: builds what is missing (native libraries from the cache, the jars) and
# starts the server on CPU with the tiny TinyStories model, on 127.0.0.1:8080.
#   scripts/run.sh [server options...]    e.g. --port 9000, --model /path/x.gguf, --config app.yaml
# Environment: MODEL (default ../shared/models/stories260K.gguf), LLMREF_* configuration keys.
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
model=${MODEL:-$root/../shared/models/stories260K.gguf}
args=("$@")
if [[ " ${args[*]-} " != *" --model "* ]]; then
  args=(--model "$model" "${args[@]+"${args[@]}"}")
fi
exec java --enable-native-access=ALL-UNNAMED -XX:+UseZGC -jar "$jar" "${args[@]}"
