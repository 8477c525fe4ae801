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
        Handler capture = new Handler() {
            @Override
            public void publish(LogRecord r) {
                if (r.getMessage() != null && r.getMessage().contains("\"type\":\"access\"")) {
                    access.add(r.getMessage());
                }
            }

            @Override
            public void flush() {}

            @Override
            public void close() {}
        };
        Logger root = Logger.getLogger("");
        root.addHandler(capture);
        try (TestServer s = TestServer.start(Map.of("limits.request-timeout-ms", "800", "engine.slots", "1"))) {
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
        } finally {
            root.removeHandler(capture);
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
}
