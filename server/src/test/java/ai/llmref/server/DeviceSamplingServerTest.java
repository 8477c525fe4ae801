package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/**
 * {@code engine.device-sampling=true}: greedy requests (with and without a logit bias) have their
 * tokens picked by llama.cpp's backend sampling, and answer exactly as the default server does,
 * also when requests that need the logits (log-probabilities, a temperature) share the slots.
 */
class DeviceSamplingServerTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String[] PROMPTS = {"Once upon a time", "Tom had a big", "The cat sat on", "Lily and Ben went to the",
        "One day, a little girl", "The sun was"};

    private static String body(String prompt, int i) throws Exception {
        // every other request bans a token and boosts another, as clients do with logit_bias; every
        // fourth bans 20 more (a list longer than the project's own device stage takes: llama.cpp's)
        StringBuilder more = new StringBuilder();
        for (int t = 40; i % 4 == 3 && t < 60; t++) {
            more.append(",\"").append(t).append("\":-100");
        }
        String bias = i % 2 == 1 ? ",\"logit_bias\":{\"2\":-100,\"300\":4" + more + "}" : "";
        return "{\"prompt\":" + JSON.writeValueAsString(prompt) + ",\"max_tokens\":40,\"temperature\":0" + bias + "}";
    }

    /** Every prompt twice (plain and biased), 8 at a time; also a logprobs and a sampled request among them on device servers. */
    private static List<String> run(TestServer server, boolean mixed) throws Exception {
        List<Future<String>> answers = new ArrayList<>();
        List<Future<HttpResponse<String>>> others = new ArrayList<>();
        try (ExecutorService pool = Executors.newFixedThreadPool(8)) {
            for (int round = 0; round < 2; round++) {
                for (int i = 0; i < PROMPTS.length * 2; i++) {
                    String b = body(PROMPTS[i % PROMPTS.length], i);
                    answers.add(pool.submit(() -> text(server, b)));
                    if (mixed && i % 4 == 0) {
                        others.add(pool.submit(() -> server.post("/v1/completions",
                                "{\"prompt\":\"The dog\",\"max_tokens\":12,\"temperature\":0,\"logprobs\":2}")));
                        others.add(pool.submit(() -> server.post("/v1/completions",
                                "{\"prompt\":\"The bird\",\"max_tokens\":12,\"temperature\":0.9,\"seed\":5}")));
                    }
                }
            }
            List<String> texts = new ArrayList<>();
            for (Future<String> f : answers) {
                texts.add(f.get());
            }
            for (Future<HttpResponse<String>> f : others) {
                HttpResponse<String> r = f.get();
                assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
                JsonNode j = JSON.readTree(r.body());
                assertThat(j.at("/choices/0/text").asText()).isNotEmpty();
                if (r.body().contains("top_logprobs")) {
                    assertThat(j.at("/choices/0/logprobs/token_logprobs")).isNotEmpty(); // read from the host's logits
                }
            }
            return texts;
        }
    }

    /** The text of a completion that must succeed. */
    private static String text(TestServer server, String body) throws Exception {
        HttpResponse<String> r = server.post("/v1/completions", body);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return JSON.readTree(r.body()).at("/choices/0/text").asText();
    }

    @Test
    void greedyAnswersAreTheDefaultServersAnswers() throws Exception {
        List<String> reference;
        try (TestServer plain = TestServer.start(Map.of())) {
            reference = run(plain, false);
            assertThat(plain.metric("llmref_engine_device_sampler_attaches_total")).isZero();
        }
        try (TestServer device = TestServer.start(Map.of("engine.device-sampling", "true"))) {
            assertThat(run(device, false)).isEqualTo(reference);
            long attaches = device.metric("llmref_engine_device_sampler_attaches_total");
            assertThat(attaches).isPositive();
            // one after the other, the same settings: slot 0 keeps its chain (at most one attach)
            for (int k : new int[] {0, 2, 4, 0, 2}) { // the unbiased ones
                assertThat(text(device, body(PROMPTS[k], k))).isEqualTo(reference.get(k));
            }
            assertThat(device.metric("llmref_engine_device_sampler_attaches_total") - attaches).isLessThanOrEqualTo(1);
            attaches = device.metric("llmref_engine_device_sampler_attaches_total");
            assertThat(run(device, true)).as("with requests that need the logits on the same slots").isEqualTo(reference);
            assertThat(device.metric("llmref_engine_device_sampler_attaches_total")).isGreaterThan(attaches);
        }
    }
}
