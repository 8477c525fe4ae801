package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.net.http.HttpResponse;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Every test of {@link CompletionsTest} again with {@code engine.emit-during-decode=true}: the text
 * of a step's tokens is made while the next decode runs, the default with the model on a GPU, here
 * forced on the CPU. Greedy output, streaming, 16 concurrent requests, stop strings and prefix reuse
 * must not change.
 */
class CompletionsEmitDuringDecodeTest extends CompletionsTest {

    @BeforeAll
    static void start() throws Exception { // hides CompletionsTest.start
        startWith(Map.of("engine.emit-during-decode", "true"));
    }

    @Test
    void aStopStringEndsTheOutputAtEveryPositionAndLeavesTheCacheUsable() throws Exception {
        // Stops ending at different tokens: each must cut exactly where the text has it, although
        // the slot had already decoded one more token when the stop was found.
        for (String stop : List.of(" she ", "was", ".", "a little")) {
            int cut = reference.indexOf(stop);
            if (cut < 0) {
                continue;
            }
            HttpResponse<String> r = server.post("/v1/completions",
                    body(PROMPT, 48, false).replace("}", ",\"stop\":" + JSON.valueToTree(stop) + "}"));
            JsonNode j = JSON.readTree(r.body());
            assertThat(j.at("/choices/0/text").asText()).as(stop).isEqualTo(reference.substring(0, cut));
            assertThat(j.at("/choices/0/finish_reason").asText()).as(stop).isEqualTo("stop");
            // The stopped slot is reused next (it holds the longest matching prefix): the output is unchanged.
            HttpResponse<String> again = server.post("/v1/completions", body(PROMPT, 48, false));
            assertThat(JSON.readTree(again.body()).at("/choices/0/text").asText()).as("after " + stop).isEqualTo(reference);
            assertThat(JSON.readTree(again.body()).at("/usage/prompt_tokens_details/cached_tokens").asInt()).isPositive();
        }
    }

    @Test
    void aClientThatGoesAwayWithATokenHeldBackStillFreesItsSlot() throws Exception {
        try (TestServer s = TestServer.start(Map.of("engine.slots", "2", "engine.emit-during-decode", "true"))) {
            ai.llmref.server.engine.Engine engine = s.server.engine();
            java.net.http.HttpResponse<java.io.InputStream> r = s.http.send(java.net.http.HttpRequest.newBuilder(
                            java.net.URI.create(s.base() + "/v1/completions"))
                    .header("Content-Type", "application/json")
                    .POST(java.net.http.HttpRequest.BodyPublishers.ofString(AdmissionAndCancellationTest.longStream())).build(),
                    java.net.http.HttpResponse.BodyHandlers.ofInputStream());
            assertThat(r.statusCode()).isEqualTo(200);
            java.io.BufferedReader in = new java.io.BufferedReader(new java.io.InputStreamReader(r.body(), java.nio.charset.StandardCharsets.UTF_8));
            assertThat(TestServer.nextEvent(in)).startsWith("data: ");
            assertThat(TestServer.nextEvent(in)).as("a second token's text, held back one step").startsWith("data: ");
            in.close(); // mid-stream, with the slot generating (and a token's text held back most of the time)
            long deadline = System.nanoTime() + java.time.Duration.ofSeconds(10).toNanos();
            while (engine.stats().busySlots() > 0 && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            assertThat(engine.stats().busySlots()).as("slot freed after disconnect").isZero();
            HttpResponse<String> next = s.post("/v1/completions", body(PROMPT, 48, false));
            assertThat(JSON.readTree(next.body()).at("/choices/0/text").asText()).isEqualTo(reference);
        }
    }

    @Test
    void maxTokensOneToThreeGiveTheSameTextStreamedOrNot() throws Exception {
        // The first token is never held back, and the last is emitted with its request's end.
        for (int n : new int[] {1, 2, 3}) {
            HttpResponse<String> r = server.post("/v1/completions", body(PROMPT, n, true));
            StringBuilder text = new StringBuilder();
            for (String e : sse(r.body())) {
                if (!e.equals("[DONE]")) {
                    text.append(JSON.readTree(e).at("/choices/0/text").asText());
                }
            }
            HttpResponse<String> whole = server.post("/v1/completions", body(PROMPT, n, false));
            assertThat(text.toString()).as("max_tokens " + n).isEqualTo(JSON.readTree(whole.body()).at("/choices/0/text").asText());
            assertThat(reference).startsWith(text.toString());
            assertThat(JSON.readTree(whole.body()).at("/usage/completion_tokens").asInt()).isEqualTo(n);
        }
    }
}
