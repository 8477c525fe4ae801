# Sourced by the server checks that measure one build of our server on one model (bench-echo.sh,
# bench-structured.sh). bench_inputs PREBUILT MODEL: checks for python3 and curl, puts Java 25 first
# on the PATH, builds the jars unless PREBUILT is 1, then sets jar (SERVER_JAR, else this checkout's server jar) and model (MODEL if given, else the tiny-128k
# model bench-bindings.sh makes in the cache, else stories260K beside this checkout); dies (through
# the caller's die) when either is missing.
bench_inputs() {
  command -v python3 >/dev/null || die "python3 is needed"
  command -v curl >/dev/null || die "curl is needed"
  export JAVA_HOME=${JAVA_HOME_25:-${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}}
  export PATH="$JAVA_HOME/bin:$PATH"
  if [ "$1" = 0 ]; then
    (cd "$root" && mvn -B -ntp -q -pl native,bindings,server -am package -DskipTests >&2)
  fi
  jar=${SERVER_JAR:-$root/server/target/server-0.1.0-SNAPSHOT.jar}
  [ -f "$jar" ] || die "server jar not found: $jar"
  model=$2
  if [ -z "$model" ]; then
    local cache=${AIREF_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-llm-reference-app}
    model=$cache/models/llama-bpe-tiny-q4km.gguf
    [ -f "$model" ] || model=$root/../shared/models/stories260K.gguf
  fi
  [ -f "$model" ] || die "model not found: $model"
}
