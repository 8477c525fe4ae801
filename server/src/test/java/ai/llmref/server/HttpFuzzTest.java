package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.api.BugDetectors;
import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;

/**
 * Fuzzes the HTTP handlers over loopback against one real server (real model, real Helidon): a
 * fuzzed body for each API route, and fuzzed raw bytes (request line, headers, body) on a socket.
 * The properties: never a 5xx; every error is a JSON body in the OpenAI error shape whose message
 * leaks nothing internal; the server still serves afterwards.
 *
 * <p>Without {@code JAZZER_FUZZ=1} each method runs once per committed input in
 * {@code src/test/resources/ai/llmref/server/HttpFuzzTestInputs/<method>/} (regression mode).
 */
class HttpFuzzTest {
    static final ObjectMapper JSON = new ObjectMapper();
    private static TestServer server;
    /** The server's default limits.max-request-line-bytes. */
    static final int MAX_REQUEST_LINE = 4096;
    private static long executions;

    record Route(String method, String path) {}

    static final List<Route> ROUTES = List.of(
            new Route("POST", "/v1/chat/completions"), new Route("POST", "/v1/completions"),
            new Route("POST", "/v1/embeddings"), new Route("POST", "/tokenize"), new Route("POST", "/detokenize"),
            new Route("GET", "/v1/models"), new Route("GET", "/v1/models/"), new Route("POST", "/v1/responses"),
            new Route("POST", "/v1/messages"), new Route("POST", "/infill"),
            // added after the committed inputs, which name routes 0-9 by their first byte: theirs stay
            new Route("POST", "/completion"), new Route("POST", "/apply-template"), new Route("GET", "/props"),
            new Route("POST", "/v1/messages/count_tokens"), new Route("POST", "/v1/responses/input_tokens"),
            new Route("POST", "/v1/chat/completions/input_tokens"));

    /** One server for all executions: small limits keep each generation short. */
    static synchronized TestServer server() throws InterruptedException {
        if (server == null) {
            // stories260K with stand-in fill-in-the-middle tokens, so that suffix and /infill generate too
            Path model;
            try {
                Path dir = java.nio.file.Files.createTempDirectory("http-fuzz");
                model = GgufPatch.withUint32(TestServer.model(), Map.of("tokenizer.ggml.fim_pre_token_id", 4,
                        "tokenizer.ggml.fim_suf_token_id", 5, "tokenizer.ggml.fim_mid_token_id", 6), dir.resolve("stories-fim.gguf"));
                model.toFile().deleteOnExit();
                dir.toFile().deleteOnExit();
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
            server = TestServer.start(Map.of("limits.max-body-bytes", "65536", "limits.max-json-depth", "16",
                    "limits.max-tokens", "8", "limits.request-timeout-ms", "30000", "model.path", model.toString(),
                    "model.id", "stories260K"));
        }
        return server;
    }

    /**
     * Jazzer's SSRF detector reports every connection the fuzzed code opens unless allowed; these go
     * to our own server only. (Allowed per execution: the fuzzing run resets the detectors.)
     */
    private static com.code_intelligence.jazzer.api.SilentCloseable onlyOurServer(TestServer t) {
        int api = t.server.port();
        int admin = t.server.adminPort();
        return BugDetectors.allowNetworkConnections((host, port) -> (host.equals("127.0.0.1") || host.equals("localhost"))
                && (port == api || port == admin));
    }

    @AfterAll
    static synchronized void stillServesThenStop() throws Exception {
        if (server == null) {
            return;
        }
        try {
            assertServes(server);
        } finally {
            server.close();
            server = null;
        }
    }

    /**
     * Byte 0 picks the route, byte 1 the Content-Type (bit 0: application/json, bit 1: text/plain,
     * neither: none), the rest is the body (for {@code GET /v1/models/{id}}: the id, URL-encoded).
     * A plain framing keeps the committed inputs readable: two bytes, then the JSON.
     */
    @FuzzTest(maxDuration = "30s")
    void apiRoute(byte[] input) throws Exception {
        TestServer t = server();
        try (var allowed = onlyOurServer(t)) {
            apiRoute(t, input);
        }
    }

    private static void apiRoute(TestServer t, byte[] input) throws Exception {
        Route r = ROUTES.get(input.length > 0 ? Byte.toUnsignedInt(input[0]) % ROUTES.size() : 0);
        int flags = input.length > 1 ? input[1] : 1;
        byte[] body = input.length > 2 ? java.util.Arrays.copyOfRange(input, 2, input.length) : new byte[0];
        String path = r.path();
        if (path.endsWith("/")) {
            path += URLEncoder.encode(new String(body, StandardCharsets.UTF_8), StandardCharsets.UTF_8);
        }
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(t.base() + path)).timeout(Duration.ofSeconds(60));
        if ((flags & 1) != 0) {
            b.header("Content-Type", "application/json");
        } else if ((flags & 2) != 0) {
            b.header("Content-Type", "text/plain; charset=utf-8");
        }
        b.method(r.method(), r.method().equals("GET") ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofByteArray(body));
        // over limits.max-request-line-bytes Helidon answers 414 and closes with the rest unread, so
        // the client may see the connection reset before it reads the answer
        boolean overLineLimit = ("GET " + path + " HTTP/1.1").length() > MAX_REQUEST_LINE;
        HttpResponse<String> res;
        try {
            res = t.http.send(b.build(), HttpResponse.BodyHandlers.ofString());
        } catch (java.net.http.HttpTimeoutException e) {
            // no answer at all is never right, over the limit or not (docs/reliability.md finding 8)
            throw new AssertionError("no answer within 60 s to " + r.method() + " " + r.path(), e);
        } catch (java.io.IOException e) {
            if (overLineLimit) {
                return;
            }
            throw e;
        }
        if (overLineLimit) {
            assertThat(res.statusCode()).as(res.body()).isEqualTo(414);
        }
        assertThat(res.statusCode()).as(res.body()).isLessThan(500);
        String text = new String(body, StandardCharsets.UTF_8);
        if (r.path().startsWith("/v1/messages")) {
            assertAnthropicAnswer(res.statusCode(), res.headers().firstValue("content-type").orElse(""), res.body(), text);
        } else {
            assertAnswer(res.statusCode(), res.headers().firstValue("content-type").orElse(""), res.body(), text);
        }
        periodicHealthCheck(t);
    }

    private static final Pattern STATUS_LINE = Pattern.compile("HTTP/1\\.[01] (\\d{3})[^\\r\\n]*\\r\\n");

    /** Raw bytes on a fresh connection, the write side closed after them; every answer on it is checked. */
    @FuzzTest(maxDuration = "30s")
    void rawRequest(byte[] request) throws Exception {
        TestServer t = server();
        try (var allowed = onlyOurServer(t)) {
            rawRequest(t, request);
        }
    }

    private static void rawRequest(TestServer t, byte[] request) throws Exception {
        byte[] answer;
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress("127.0.0.1", t.server.port()), 5000);
            s.setSoTimeout(10_000);
            OutputStream out = s.getOutputStream();
            try {
                out.write(request);
                out.flush();
                s.shutdownOutput();
            } catch (java.io.IOException refused) {
                // the server may close a connection it has rejected before we finished writing
            }
            answer = readAll(s.getInputStream());
        }
        String text = new String(answer, StandardCharsets.ISO_8859_1);
        Matcher m = STATUS_LINE.matcher(text);
        String input = new String(request, StandardCharsets.ISO_8859_1);
        while (m.find()) {
            int status = Integer.parseInt(m.group(1));
            int headersEnd = text.indexOf("\r\n\r\n", m.end() - 2);
            String headers = headersEnd < 0 ? text.substring(m.end()) : text.substring(m.end(), Math.max(m.end(), headersEnd));
            // 505 "HTTP Version Not Supported" is the right answer to, e.g., an HTTP/2 preface, and 501 to a
            // transfer coding other than chunked (RFC 9112 section 6.1)
            if (status != 505 && status != 501) {
                assertThat(status).as("raw answer:\n%s", text).isLessThan(500);
            }
            if (status >= 400 && !headers.toLowerCase().contains("content-type: text/event-stream")) {
                String body = headersEnd < 0 ? "" : firstBody(text.substring(headersEnd + 4), headers);
                assertAnswer(status, contentType(headers), body, input);
            }
        }
        periodicHealthCheck(t);
    }

    /** The body that follows a header block: content-length bytes (the raw tests never ask for chunked error bodies). */
    private static String firstBody(String rest, String headers) {
        Matcher cl = Pattern.compile("(?im)^content-length:\\s*(\\d+)").matcher(headers);
        if (cl.find()) {
            int n = Integer.parseInt(cl.group(1));
            byte[] b = rest.getBytes(StandardCharsets.ISO_8859_1);
            return new String(b, 0, Math.min(n, b.length), StandardCharsets.UTF_8);
        }
        return rest;
    }

    private static String contentType(String headers) {
        Matcher ct = Pattern.compile("(?im)^content-type:\\s*([^\\r\\n]*)").matcher(headers);
        return ct.find() ? ct.group(1) : "";
    }

    private static byte[] readAll(InputStream in) throws java.io.IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        byte[] buf = new byte[8192];
        try {
            int n;
            while ((n = in.read(buf)) > 0) {
                b.write(buf, 0, n);
            }
        } catch (SocketTimeoutException | java.net.SocketException e) {
            // what arrived is checked; a server that keeps the connection open without answering is not a failure here
        }
        return b.toByteArray();
    }

    /** No 5xx; an error is an OpenAI error envelope in JSON that leaks nothing the input did not bring. */
    static void assertAnswer(int status, String contentType, String body, String input) throws Exception {
        if (status != 505 && status != 501) {
            assertThat(status).as(body).isLessThan(500);
        }
        if (status < 400) {
            return;
        }
        assertThat(contentType).as("status %d, body %s", status, body).startsWith("application/json");
        JsonNode error = JSON.readTree(body).get("error");
        assertThat(error).as(body).isNotNull();
        assertThat(error.path("message").asText()).as(body).isNotBlank();
        assertThat(error.path("type").asText()).as(body).isNotBlank();
        assertThat(error.path("code").asText()).as(body).isNotBlank();
        ai.llmref.server.http.LeakMarkers.assertNoLeak(error.path("message").asText(), input);
    }

    /** The same for the Messages API's routes, whose errors are in Anthropic's envelope. */
    static void assertAnthropicAnswer(int status, String contentType, String body, String input) throws Exception {
        assertThat(status).as(body).isLessThan(500);
        if (status < 400) {
            return;
        }
        assertThat(contentType).as("status %d, body %s", status, body).startsWith("application/json");
        JsonNode answer = JSON.readTree(body);
        assertThat(answer.path("type").asText()).as(body).isEqualTo("error");
        assertThat(answer.at("/error/type").asText()).as(body).isNotBlank();
        assertThat(answer.at("/error/message").asText()).as(body).isNotBlank();
        ai.llmref.server.http.LeakMarkers.assertNoLeak(answer.at("/error/message").asText(), input);
    }

    private static void periodicHealthCheck(TestServer t) throws Exception {
        if (++executions % 200 == 0) {
            assertThat(t.getAdmin("/health/live").statusCode()).isEqualTo(200);
        }
    }

    static void assertServes(TestServer t) throws Exception {
        assertThat(t.getAdmin("/health/ready").statusCode()).isEqualTo(200);
        HttpResponse<String> ok = t.post("/v1/chat/completions",
                "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":4,\"temperature\":0}");
        assertThat(ok.statusCode()).as(ok.body()).isEqualTo(200);
    }
}
