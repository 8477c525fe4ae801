package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Where the engine places requests among its slots (docs/server.md, "Slots"): in the lowest free
 * slot, so that busy slots form one run of sequence ids (with per-sequence KV streams llama.cpp
 * decodes one micro-batch per run), and a longer cached prefix held by another free slot is copied
 * there first. Real server, real model, 4 slots.
 */
class SlotPlacementTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String LONG = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park"
            + " with her friends and her big brown dog";

    /** A streamed greedy request with EOS banned (stories260K's EOS is 2) that runs for 200 tokens. */
    private static final class Held {
        final CountDownLatch started = new CountDownLatch(1);
        final CompletableFuture<Void> done = new CompletableFuture<>();
    }

    private static Held hold(TestServer server, String prompt) throws Exception {
        Held h = new Held();
        String body = "{\"prompt\":" + JSON.writeValueAsString(prompt)
                + ",\"max_tokens\":200,\"temperature\":0,\"stream\":true,\"logit_bias\":{\"2\":-100}}";
        HttpRequest req = HttpRequest.newBuilder(URI.create(server.base() + "/v1/completions"))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build();
        server.http.sendAsync(req, HttpResponse.BodyHandlers.ofLines()).thenAccept(r -> {
            try (Stream<String> lines = r.body()) {
                lines.forEach(line -> {
                    if (line.startsWith("data: {")) {
                        h.started.countDown(); // a token came back: the request holds a slot
                    }
                });
                h.done.complete(null);
            } catch (RuntimeException e) {
                h.done.completeExceptionally(e);
            }
        }).exceptionally(e -> {
            h.done.completeExceptionally(e);
            return null;
        });
        assertThat(h.started.await(30, TimeUnit.SECONDS)).as("the held request started").isTrue();
        return h;
    }

    private static JsonNode complete(TestServer server, String prompt, int maxTokens) throws Exception {
        HttpResponse<String> r = server.post("/v1/completions", "{\"prompt\":" + JSON.writeValueAsString(prompt)
                + ",\"max_tokens\":" + maxTokens + ",\"temperature\":0}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return JSON.readTree(r.body());
    }

    @Test
    void aLongerCachedPrefixElsewhereIsCopiedIntoTheLowestFreeSlot() throws Exception {
        try (TestServer server = TestServer.start(Map.of())) {
            String prompt = LONG + ". One day";
            JsonNode reference = complete(server, prompt, 24); // the first request: nothing cached yet
            assertThat(reference.at("/usage/prompt_tokens_details/cached_tokens").asInt()).isZero();

            // LONG must end up cached in slot 1 while slot 0 holds something else: slot 0 is
            // busy with a held request when LONG arrives, and free again afterwards.
            boolean overlapped = false;
            for (int attempt = 0; attempt < 3 && !overlapped; attempt++) {
                Held busy = hold(server, "The sun was hot and the cat slept " + attempt);
                complete(server, LONG, 4);
                overlapped = !busy.done.isDone();
                busy.done.get(60, TimeUnit.SECONDS);
            }
            assertThat(overlapped).as("a request held slot 0 while the long prompt ran").isTrue();

            long copiesBefore = server.metric("llmref_engine_prefix_copies_total");
            JsonNode again = complete(server, prompt, 24);
            assertThat(server.metric("llmref_engine_prefix_copies_total") - copiesBefore).isEqualTo(1);
            // the copied KV cache serves the prompt exactly as a cold decode did
            assertThat(again.at("/usage/prompt_tokens_details/cached_tokens").asInt()).isGreaterThanOrEqualTo(16);
            assertThat(again.at("/choices/0/text").asText()).isEqualTo(reference.at("/choices/0/text").asText());
            assertThat(again.at("/usage/prompt_tokens").asInt()).isEqualTo(reference.at("/usage/prompt_tokens").asInt());
        }
    }

    @Test
    void busySlotsStayTogetherWhenShortPrefixesMatchHigherSlots() throws Exception {
        try (TestServer server = TestServer.start(Map.of())) {
            // slots 0..3 get prompts whose first words differ, each held while the next arrives
            String[] openings = {"Tom had a red ball", "Sue saw a big tree", "Max ate a green apple", "Ann found a blue box"};
            // (up to three tries: on a loaded machine the first can finish before the fourth starts;
            // the prompts are too short for a cached copy to be worth moving, so each try places
            // them in slots 0..3 again)
            boolean allBusy = false;
            for (int attempt = 0; attempt < 3 && !allBusy; attempt++) {
                List<Held> held = new ArrayList<>();
                for (String opening : openings) {
                    held.add(hold(server, opening + " and"));
                }
                allBusy = held.stream().noneMatch(h -> h.done.isDone());
                for (Held h : held) {
                    h.done.get(60, TimeUnit.SECONDS);
                }
            }
            assertThat(allBusy).as("all four slots were busy together in one of three tries").isTrue();

            // Two requests that share a few tokens with slots 3 and 1: the old placement (longest
            // prefix) put them there, two runs of sequence ids; now they take slots 0 and 1. They
            // must overlap for the count to mean anything; on a loaded machine the first can finish
            // its 200 tokens before the second starts, so up to three tries (each places them in the
            // lowest free slots, 0 and 1: no cached prefix elsewhere saves the 16 tokens a copy needs).
            boolean together = false;
            for (int attempt = 0; attempt < 3 && !together; attempt++) {
                long steps = server.metric("llmref_engine_step_phase_seconds_count{phase=\"decode\"}");
                long runs = server.metric("llmref_engine_sequence_runs_total");
                long copies = server.metric("llmref_engine_prefix_copies_total");
                long reused = server.metric("llmref_engine_graphs_reused_total");
                Held first = hold(server, "Ann found a small red hat");
                Held second = hold(server, "Sue saw a little bird");
                together = !first.done.isDone();
                first.done.get(60, TimeUnit.SECONDS);
                second.done.get(60, TimeUnit.SECONDS);
                long stepsAfter = server.metric("llmref_engine_step_phase_seconds_count{phase=\"decode\"}");
                long runsAfter = server.metric("llmref_engine_sequence_runs_total");
                assertThat(stepsAfter - steps).isGreaterThan(200);
                assertThat(runsAfter - runs).as("one run of consecutive sequences per step").isEqualTo(stepsAfter - steps);
                // llama.cpp builds its graph again only around a change of shape (a prompt beside a
                // generated token, a request that joins or ends): a handful of steps, the rest reuse it
                assertThat(server.metric("llmref_engine_graphs_reused_total") - reused).as("steps that reused llama.cpp's graph")
                        .isBetween(stepsAfter - steps - 12, stepsAfter - steps);
                assertThat(server.metric("llmref_engine_prefix_copies_total")).as("a few common tokens are not worth a copy")
                        .isEqualTo(copies);
            }
            assertThat(together).as("both requests ran together in one of three tries").isTrue();
        }
    }
}
