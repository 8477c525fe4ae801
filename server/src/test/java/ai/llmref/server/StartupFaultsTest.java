package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.server.config.ServerConfig;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A model that cannot be served: the server stays up (HTTP and probes answer), readiness and
 * liveness are 503 with the reason, the API answers 503 {@code model_unavailable}, and nothing
 * crashes. In-process for each kind of bad file; as a real child process (no hs_err file, a clean
 * SIGTERM exit) for a corrupt file and for a context too large for the memory the process may use.
 */
class StartupFaultsTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir Path tmp;

    /** Writes the faulty model file for {@code fault}; returns its path and the words the reason must contain. */
    Object[] fault(String fault) throws IOException {
        byte[] real = Files.readAllBytes(TestServer.model());
        return switch (fault) {
            case "missing" -> new Object[] {tmp.resolve("absent.gguf"), "no such file"};
            case "directory" -> new Object[] {tmp, "is a directory"};
            case "empty" -> new Object[] {Files.createFile(tmp.resolve("empty.gguf")), "too short for a GGUF header"};
            case "not-gguf" -> new Object[] {Files.writeString(tmp.resolve("notes.gguf"), "# a text file, not a model\n".repeat(10)),
                "is not a GGUF file"};
            case "truncated-tables" -> new Object[] {Files.write(tmp.resolve("cut.gguf"), Arrays.copyOf(real, 20_000)), "truncated"};
            case "truncated-data" -> new Object[] {Files.write(tmp.resolve("nodata.gguf"), Arrays.copyOf(real, real.length - 100)),
                "cannot load"};
            case "corrupt-length" -> {
                byte[] b = real.clone();
                ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(24, 0x7fff_ffff_ffffL); // first key's length
                yield new Object[] {Files.write(tmp.resolve("corrupt.gguf"), b), "impossible string length"};
            }
            case "wrong-version" -> {
                byte[] b = real.clone();
                ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(4, 9);
                yield new Object[] {Files.write(tmp.resolve("v9.gguf"), b), "GGUF version 9"};
            }
            default -> throw new IllegalArgumentException(fault);
        };
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"missing", "directory", "empty", "not-gguf", "truncated-tables", "truncated-data", "corrupt-length",
        "wrong-version"})
    void aBadModelFileLeavesTheServerUpAndNotReadyWithTheReason(String name) throws Exception {
        Object[] f = fault(name);
        Path path = (Path) f[0];
        Map<String, String> cfg = new HashMap<>(Map.of("server.port", "0", "server.admin-port", "0", "model.path", path.toString(),
                "engine.threads", "2", "engine.threads-batch", "2"));
        Server s = Server.start(ServerConfig.from(ServerConfig.load(null, cfg)));
        try {
            assertThat(s.awaitLoaded(Duration.ofSeconds(60))).isEqualTo(Server.State.FAILED);
            assertNotReady(HttpClient.newHttpClient(), "http://127.0.0.1:" + s.port(), "http://127.0.0.1:" + s.adminPort(),
                    (String) f[1], path.toString());
        } finally {
            s.drainAndStop(Duration.ofSeconds(5));
        }
        assertThat(s.state()).isEqualTo(Server.State.STOPPED);
    }

    /**
     * A quantized KV cache on a model whose attention heads no 32-value block fits (stories260K's
     * are 8 wide): llama.cpp refuses the context, and the server says so and stays up, not ready.
     */
    @Test
    void aKvCacheTypeTheModelCannotHoldLeavesTheServerUpAndNotReadyWithTheReason() throws Exception {
        assertRefusedAtLoad(Map.of("engine.kv-cache-type-k", "q8_0", "engine.kv-cache-type-v", "q4_0"),
                "K cache type q8_0 with block size 32 does not divide n_embd_head_k=8");
    }

    /** Tensor parallelism without GPUs: llama.cpp refuses the model; a split on the CPU is harmless. */
    @Test
    void aSplitModeTheMachineCannotRunLeavesTheServerUpAndNotReadyWithTheReason() throws Exception {
        // on a GPU the tensor mode may well load (scripts/gpu-verify.sh does not run this class)
        Assumptions.assumeTrue(TestServer.gpuLayers() == 0, "runs without GPU layers");
        assertRefusedAtLoad(Map.of("model.split-mode", "tensor"), "LLAMA_SPLIT_MODE_TENSOR needs >= 1 devices");
        try (TestServer t = TestServer.start(Map.of("model.split-mode", "none", "model.tensor-split", "1,0"))) {
            assertThat(t.post("/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":4}").statusCode()).isEqualTo(200);
        }
    }

    /** The test settings with {@code settings}: the model load fails with {@code reason}, the server stays up, not ready. */
    static void assertRefusedAtLoad(Map<String, String> settings, String reason) throws Exception {
        Server s = Server.start(TestServer.config(settings));
        try {
            assertThat(s.awaitLoaded(Duration.ofSeconds(60))).isEqualTo(Server.State.FAILED);
            assertNotReady(HttpClient.newHttpClient(), "http://127.0.0.1:" + s.port(), "http://127.0.0.1:" + s.adminPort(), reason, null);
            // llama.cpp refused the model or its context: its libraries are loaded, and /metrics says
            // which build and how many GPUs, the first things to look at (they read "unknown" and
            // nothing until a model was served)
            String metrics = get(HttpClient.newHttpClient(), "http://127.0.0.1:" + s.adminPort() + "/metrics").body();
            assertThat(metrics).containsPattern("llmref_build_info\\{[^}]*llama_cpp_tree=\"[0-9a-f]{40}\"[^}]*variant=\"(cpu|cuda)\"")
                    .containsPattern("(?m)^llmref_gpu_devices [0-9]");
        } finally {
            s.drainAndStop(Duration.ofSeconds(5));
        }
    }

    static void assertNotReady(HttpClient http, String api, String admin, String reason, String path) throws Exception {
        HttpResponse<String> ready = get(http, admin + "/health/ready");
        assertThat(ready.statusCode()).isEqualTo(503);
        JsonNode body = JSON.readTree(ready.body());
        assertThat(body.get("status").asText()).isEqualTo("failed");
        assertThat(body.get("reason").asText()).contains(reason);
        if (path != null) {
            assertThat(body.get("reason").asText()).contains(path);
        }
        // the start-up is over: Kubernetes runs the liveness probe only once the startup probe passed
        HttpResponse<String> started = get(http, admin + "/health/started");
        assertThat(started.statusCode()).as("the startup probe passes after a failed load").isEqualTo(200);
        assertThat(JSON.readTree(started.body()).get("status").asText()).isEqualTo("failed");
        assertThat(get(http, admin + "/health/live").statusCode()).as("liveness fails: the orchestrator restarts it").isEqualTo(503);
        HttpResponse<String> metrics = get(http, admin + "/metrics");
        assertThat(metrics.body()).contains("llmref_ready 0");
        for (String route : new String[] {"/v1/completions", "/v1/chat/completions"}) {
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(api + route))
                    .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\":\"x\",\"messages\":[]}")).build(), HttpResponse.BodyHandlers.ofString());
            assertThat(r.statusCode()).isEqualTo(503);
            assertThat(r.headers().firstValue("retry-after")).isPresent();
            JsonNode e = JSON.readTree(r.body()).get("error");
            assertThat(e.get("code").asText()).isEqualTo("model_unavailable");
            assertThat(e.get("message").asText()).doesNotContain("/"); // no paths to clients
        }
        assertThat(get(http, api + "/v1/models").statusCode()).isEqualTo(503);
    }

    /**
     * The real process: a corrupt file, and a KV cache (one slot of 16M positions, 10 GiB) larger
     * than the address space the process may use ({@code ulimit -v}, so that the machine's memory is
     * never touched). Both run at once; each stays up and not ready, says why, and exits cleanly on
     * SIGTERM without an hs_err file.
     */
    @Test
    void theServerProcessSurvivesACorruptModelAndAContextTooLargeForMemory() throws Exception {
        Path corrupt = (Path) fault("corrupt-length")[0];
        Child bad = Child.start(tmp.resolve("corrupt-run"), List.of(), corrupt, Map.of());
        Child huge = Child.start(tmp.resolve("huge-run"), List.of("-Xmx256m", "-XX:+UseSerialGC", "-XX:ReservedCodeCacheSize=64m",
                "-XX:CompressedClassSpaceSize=64m", "-XX:MaxMetaspaceSize=128m"), TestServer.model(),
                Map.of("engine.slots", "1", "engine.slot-context", "16777216", "engine.embeddings", "false"));
        try {
            HttpClient http = HttpClient.newHttpClient();
            bad.awaitLine("cannot serve the model");
            assertNotReady(http, bad.api(), bad.admin(), "impossible string length", corrupt.toString());
            huge.awaitLine("cannot serve the model");
            assertNotReady(http, huge.api(), huge.admin(), "failed to allocate", null);
            assertThat(get(http, huge.admin() + "/health/ready").body()).contains("kv cache").contains("insufficient memory");
            assertThat(bad.process.isAlive()).isTrue();
            assertThat(huge.process.isAlive()).isTrue();
            bad.stopAndCheck();
            huge.stopAndCheck();
        } finally {
            bad.process.destroyForcibly();
            huge.process.destroyForcibly();
        }
    }

    static HttpResponse<String> get(HttpClient http, String url) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create(url)).build(), HttpResponse.BodyHandlers.ofString());
    }

    /** A server process (Main) started in its own directory, its output collected. */
    static final class Child {
        final Process process;
        final Path dir;
        final ServerOutput output;
        final List<String> log;

        private Child(Process process, Path dir) {
            this.process = process;
            this.dir = dir;
            this.output = new ServerOutput(process);
            this.log = output.lines;
        }

        /**
         * {@code bash -c 'ulimit -v ...'} limits the address space of the JVM it then becomes: 4 GB,
         * ample for the server, far below a 10 GiB KV cache. If the limit cannot be set nothing starts.
         */
        static Child start(Path dir, List<String> jvm, Path model, Map<String, String> settings) throws IOException {
            Files.createDirectories(dir);
            List<String> cmd = new ArrayList<>(List.of("bash", "-c", "ulimit -v 4000000 && exec \"$@\"", "bash",
                    Path.of(System.getProperty("java.home"), "bin", "java").toString(), "--enable-native-access=ALL-UNNAMED"));
            cmd.addAll(jvm);
            cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "-Dserver.port=0", "-Dserver.admin-port=0",
                    "-Dengine.threads=2", "-Dserver.shutdown-grace-ms=5000"));
            settings.forEach((k, v) -> cmd.add("-D" + k + "=" + v));
            cmd.addAll(List.of("ai.llmref.server.Main", "--model", model.toString()));
            ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true);
            pb.environment().put("MALLOC_ARENA_MAX", "2"); // glibc reserves 64 MiB of address space per arena
            return new Child(pb.start(), dir);
        }

        String api() throws Exception {
            return "http://127.0.0.1:" + output.ports.get(60, TimeUnit.SECONDS)[0];
        }

        String admin() throws Exception {
            return "http://127.0.0.1:" + output.ports.get(60, TimeUnit.SECONDS)[1];
        }

        void awaitLine(String text) throws Exception {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (log.stream().noneMatch(l -> l.contains(text))) {
                assertThat(process.isAlive()).as("process alive; log:\n" + String.join("\n", log)).isTrue();
                assertThat(System.nanoTime()).as("'" + text + "' logged within 60 s; log:\n" + String.join("\n", log)).isLessThan(deadline);
                Thread.sleep(20);
            }
        }

        /** SIGTERM: exit status 143 (not 134 or 139, an abort or a crash), "stopped" logged, no hs_err file. */
        void stopAndCheck() throws Exception {
            process.toHandle().destroy();
            assertThat(process.waitFor(30, TimeUnit.SECONDS)).isTrue();
            assertThat(process.exitValue()).as("exit status; log:\n" + String.join("\n", log)).isEqualTo(143);
            output.awaitEnd();
            assertThat(output.all()).contains("\"msg\":\"stopped\"").doesNotContain("SIGSEGV").doesNotContain("hs_err");
            try (var files = Files.list(dir)) {
                assertThat(files.map(p -> p.getFileName().toString())).noneMatch(n -> n.startsWith("hs_err") || n.startsWith("core"));
            }
        }
    }
}
