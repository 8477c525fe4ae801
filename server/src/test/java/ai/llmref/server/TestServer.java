package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.server.config.ServerConfig;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;

/** A real server on 127.0.0.1 (ephemeral port) serving the real test model, plus a raw HTTP client. */
final class TestServer implements AutoCloseable {
    static final int SLOT_CONTEXT = 256;

    final Server server;
    final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

    private TestServer(Server server) {
        this.server = server;
    }

    static Path model() {
        Path p = Path.of(System.getProperty("test.model", ""));
        if (!Files.isRegularFile(p)) {
            throw new IllegalStateException("the test model " + p + " is missing: these tests need the real model");
        }
        return p;
    }

    /** Layers on the GPU: 0 in CI; scripts/gpu-verify.sh sets test.gpu-layers to offload them all. */
    static int gpuLayers() {
        return Integer.getInteger("test.gpu-layers", 0);
    }

    /** Default test settings: 4 slots of 256 positions, 2 threads; {@code extra} overrides any key. */
    static TestServer start(Map<String, String> extra) throws InterruptedException {
        return start(extra, null);
    }

    /** With {@code tracing} non-null, spans go there. */
    static TestServer start(Map<String, String> extra, ai.llmref.server.observe.Tracing tracing) throws InterruptedException {
        ServerConfig config = config(extra);
        Server s = tracing == null ? Server.start(config) : Server.start(config, tracing);
        assertThat(s.awaitLoaded(Duration.ofSeconds(60))).isEqualTo(Server.State.READY);
        return new TestServer(s);
    }

    /** The test settings of {@link #start(Map)}, bound, for a test that starts the server itself. */
    static ServerConfig config(Map<String, String> extra) {
        Map<String, String> cfg = new HashMap<>();
        cfg.put("server.port", "0");
        cfg.put("server.admin-port", "0");
        cfg.put("model.path", model().toString());
        cfg.put("model.id", "stories260K");
        cfg.put("engine.slots", "4");
        cfg.put("engine.slot-context", Integer.toString(SLOT_CONTEXT));
        cfg.put("engine.batch-size", "256");
        cfg.put("engine.threads", "2");
        cfg.put("engine.threads-batch", "2");
        cfg.put("model.gpu-layers", Integer.toString(gpuLayers()));
        cfg.putAll(extra);
        return ServerConfig.from(ServerConfig.load(null, cfg));
    }

    static TestServer start() throws InterruptedException {
        return start(Map.of());
    }

    /**
     * The next SSE line with content: blank lines and comments (the keep-alives a stream gets while
     * it waits a second or more, e.g. on a loaded machine) skipped; null at the end.
     */
    static String nextEvent(java.io.BufferedReader in) throws java.io.IOException {
        String line;
        do {
            line = in.readLine();
        } while (line != null && (line.isEmpty() || line.startsWith(":")));
        return line;
    }

    String base() {
        return "http://127.0.0.1:" + server.port();
    }

    /** The official OpenAI Java client pointed at this server (no retries: every answer is the first). */
    com.openai.client.OpenAIClient openAiClient() {
        return com.openai.client.okhttp.OpenAIOkHttpClient.builder().baseUrl(base() + "/v1").apiKey("unused").maxRetries(0).build();
    }

    String admin() {
        return "http://127.0.0.1:" + server.adminPort();
    }

    HttpResponse<String> getAdmin(String path) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create(admin() + path)).GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    /** The value of one series on the admin port's metrics page (fails when the series is absent). */
    long metric(String series) throws Exception {
        return OperabilityTest.value(OperabilityTest.scrape(http, admin()), series);
    }

    HttpResponse<String> post(String path, String body) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create(base() + path))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    /** The tokens /tokenize makes of a text (special-token text parsed, its default), with BOS where {@code addSpecial} and the model adds it. */
    int[] tokenize(String text, boolean addSpecial) throws Exception {
        var m = new com.fasterxml.jackson.databind.ObjectMapper();
        HttpResponse<String> r = post("/tokenize", m.createObjectNode().put("content", text).put("add_special", addSpecial).toString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return m.readTree(r.body()).get("tokens").traverse(m).readValueAs(int[].class);
    }

    HttpResponse<String> postBytes(String path, byte[] body) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create(base() + path))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofByteArray(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    HttpResponse<String> get(String path) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create(base() + path)).GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    @Override
    public void close() {
        server.drainAndStop(Duration.ofSeconds(5));
    }
}
