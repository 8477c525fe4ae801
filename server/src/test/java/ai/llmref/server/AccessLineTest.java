package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.Test;

/**
 * Every request on the API port writes one access line and is counted: one to a path without a
 * route (under the route "(unmatched)", a method of the client's own as "_OTHER"), and a stream
 * that fails after its 200 (its error event's code in the line, as a refused request's).
 */
class AccessLineTest {

    @Test
    void unmatchedRoutesAndFailedStreamsAreLoggedAndCounted() throws Exception {
        List<String> access = new CopyOnWriteArrayList<>();
        try (AutoCloseable capture = captureAccessLines(access);
             TestServer s = TestServer.start(Map.of("limits.request-timeout-ms", "800", "engine.slots", "1"))) {
            assertThat(s.get("/v1/no-such-route").statusCode()).isEqualTo(404);
            HttpResponse<String> odd = s.http.send(HttpRequest.newBuilder(URI.create(s.base() + "/v1/chat/completions/x"))
                    .method("BREW", HttpRequest.BodyPublishers.noBody()).build(), HttpResponse.BodyHandlers.ofString());
            assertThat(odd.statusCode()).isEqualTo(404);

            // queued behind a stalled scheduler past the request's time: a 200, then the timeout event
            s.server.engine().stallFor(2000);
            HttpResponse<String> chat = s.post("/v1/chat/completions",
                    "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":20,\"stream\":true}");
            assertThat(chat.statusCode()).isEqualTo(200);
            assertThat(chat.body()).contains("\"code\":\"timeout\"");
            s.server.engine().stallFor(2000);
            HttpResponse<String> responses = s.post("/v1/responses", "{\"input\":\"Hi\",\"max_output_tokens\":20,\"stream\":true}");
            assertThat(responses.statusCode()).isEqualTo(200);
            assertThat(responses.body()).contains("timeout");

            String metrics = s.getAdmin("/metrics").body();
            assertThat(metrics).containsPattern("llmref_requests_total\\{[^}]*route=\"\\(unmatched\\)\"[^}]*status=\"404\"[^}]*} 2(\\.0)?\\n");
            // counted under status 200 in llmref_requests_total; the failure itself is counted here
            for (String route : List.of("/v1/chat/completions", "/v1/responses")) {
                assertThat(metrics).contains("llmref_stream_errors_total{route=\"" + route + "\",code=\"timeout\"} 1");
            }
        }
        assertThat(access).filteredOn(l -> l.contains("\"route\":\"(unmatched)\"")).hasSize(2)
                .allSatisfy(l -> assertThat(l).contains("\"status\":404").contains("\"error_code\":\"unknown_route\"").doesNotContain("no-such-route"))
                .anySatisfy(l -> assertThat(l).contains("\"method\":\"GET\""))
                .anySatisfy(l -> assertThat(l).contains("\"method\":\"_OTHER\"").doesNotContain("BREW"));
        for (String route : List.of("/v1/chat/completions", "/v1/responses")) {
            assertThat(access).as(route).filteredOn(l -> l.contains("\"route\":\"" + route + "\"")).singleElement()
                    .satisfies(l -> assertThat(l).contains("\"status\":200").contains("\"error_code\":\"timeout\""));
        }
    }

    /**
     * Every API answer carries an X-Request-Id (the client's plain token, else a new one) and its
     * access line the same id; requests refused before any route (Helidon's own 400, the version
     * refusal's 505, a request target without a path) are counted and logged too.
     */
    @Test
    void requestIdsAndRefusalsBeforeAnyRoute() throws Exception {
        List<String> access = new CopyOnWriteArrayList<>();
        String generated;
        String metrics;
        try (AutoCloseable capture = captureAccessLines(access); TestServer s = TestServer.start(Map.of())) {
            HttpResponse<String> given = s.http.send(HttpRequest.newBuilder(URI.create(s.base() + "/v1/models"))
                    .header("X-Request-Id", "client-7f.3:a").build(), HttpResponse.BodyHandlers.ofString());
            assertThat(given.headers().firstValue("x-request-id")).hasValue("client-7f.3:a");
            HttpResponse<String> none = s.get("/v1/no-such-route");
            generated = none.headers().firstValue("x-request-id").orElseThrow();
            assertThat(generated).matches("req_[0-9a-f]{32}");
            for (String bad : List.of("x".repeat(129), "a\"b", "two words")) {
                HttpResponse<String> r = s.http.send(HttpRequest.newBuilder(URI.create(s.base() + "/v1/models"))
                        .header("X-Request-Id", bad).build(), HttpResponse.BodyHandlers.ofString());
                assertThat(r.headers().firstValue("x-request-id").orElseThrow()).as(bad).matches("req_[0-9a-f]{32}");
            }
            assertThat(raw(s.server.port(), "GET /v1/models HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")).startsWith("HTTP/1.1 400");
            assertThat(raw(s.server.port(), "GET /v1/models HTTP/1.0\r\n\r\n")).startsWith("HTTP/1.1 505");
            assertThat(raw(s.server.port(), "GET http:\u00f2//host/x HTTP/1.1\r\nHost: x\r\n\r\n")).startsWith("HTTP/1.1 400");
            metrics = s.getAdmin("/metrics").body();
        }
        assertThat(access).anySatisfy(l -> assertThat(l).contains("\"route\":\"/v1/models\"").contains("\"request_id\":\"client-7f.3:a\""))
                .anySatisfy(l -> assertThat(l).contains("\"route\":\"(unmatched)\"").contains("\"request_id\":\"" + generated + "\""))
                .noneSatisfy(l -> assertThat(l).contains("two words"))
                .anySatisfy(l -> assertThat(l).contains("\"route\":\"(transport)\"").contains("\"status\":400")
                        .contains("\"error_code\":\"invalid_request\""))
                .anySatisfy(l -> assertThat(l).contains("\"route\":\"(transport)\"").contains("\"status\":505")
                        .contains("\"method\":\"GET\"").contains("\"error_code\":\"http_version_not_supported\""))
                .anySatisfy(l -> assertThat(l).contains("\"route\":\"(unmatched)\"").contains("\"status\":400")
                        .containsPattern("\"request_id\":\"req_[0-9a-f]{32}\""));
        assertThat(metrics).containsPattern("llmref_requests_total\\{[^}]*route=\"\\(transport\\)\"[^}]*status=\"400\"[^}]*} 1(\\.0)?\\n")
                .containsPattern("llmref_requests_total\\{[^}]*route=\"\\(transport\\)\"[^}]*status=\"505\"[^}]*} 1(\\.0)?\\n")
                .containsPattern("llmref_requests_total\\{[^}]*route=\"\\(unmatched\\)\"[^}]*status=\"400\"[^}]*} 1(\\.0)?\\n");
    }

    /** Keeps the access lines logged until it is closed (the server's own closing lines included, when it closes first). */
    static AutoCloseable captureAccessLines(List<String> into) {
        Handler handler = accessLines(into);
        Logger root = Logger.getLogger("");
        root.addHandler(handler);
        return () -> root.removeHandler(handler);
    }

    /** A log handler that keeps the access lines. */
    private static Handler accessLines(List<String> into) {
        return new Handler() {
            @Override
            public void publish(LogRecord r) {
                if (r.getMessage() != null && r.getMessage().contains("\"type\":\"access\"")) {
                    into.add(r.getMessage());
                }
            }

            @Override
            public void flush() {}

            @Override
            public void close() {}
        };
    }

    /** Sends bytes as they are (ISO-8859-1) and returns what the server answered before closing or within 5 s. */
    static String raw(int port, String request) throws Exception {
        try (java.net.Socket socket = new java.net.Socket("127.0.0.1", port)) {
            socket.setSoTimeout(5000);
            socket.getOutputStream().write(request.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
            socket.getOutputStream().flush();
            byte[] buf = new byte[4096];
            int n = socket.getInputStream().read(buf);
            return n <= 0 ? "" : new String(buf, 0, n, java.nio.charset.StandardCharsets.ISO_8859_1);
        }
    }
}
