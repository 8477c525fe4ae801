package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * llama-server's sampling fields over HTTP: each stage set so that its effect is known (and
 * differs from the chain without it), the three APIs passing them on, bad values refused with the
 * field named, and llama-server's fields this server does not take refused rather than ignored.
 */
class LlamaSamplingTest {
    private static final ObjectMapper MAPPER = new ObjectMapper();
    private static TestServer server;

    @BeforeAll
    static void start() throws Exception {
        server = TestServer.start(Map.of("engine.slot-context", "512"));
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    private static ObjectNode ask(int maxTokens) {
        ObjectNode b = MAPPER.createObjectNode();
        b.put("prompt", "Once upon a time, there was a little girl named Lily. She");
        b.put("max_tokens", maxTokens);
        return b;
    }

    private static JsonNode complete(ObjectNode body) throws Exception {
        HttpResponse<String> r = server.post("/v1/completions", body.toString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return MAPPER.readTree(r.body()).get("choices").get(0);
    }

    private static String text(ObjectNode body) throws Exception {
        return complete(body).get("text").asText();
    }

    /** The chosen tokens and their log-probabilities, and the least likely of each position's 5 listed alternatives. */
    private static List<double[]> picks(ObjectNode body) throws Exception {
        JsonNode lp = complete(body.deepCopy().put("logprobs", 5)).get("logprobs");
        List<double[]> out = new ArrayList<>();
        for (int i = 0; i < lp.get("tokens").size(); i++) {
            double least = Double.MAX_VALUE;
            for (JsonNode alt : lp.get("top_logprobs").get(i)) {
                least = Math.min(least, alt.asDouble());
            }
            out.add(new double[] {lp.get("token_logprobs").get(i).asDouble(), least});
        }
        return out;
    }

    @Test
    void ignoreEosRunsToMaxTokens() throws Exception {
        ObjectNode pushed = ask(20);
        pushed.putObject("logit_bias").put("2", 100); // stories260K's end of generation
        JsonNode ended = complete(pushed);
        assertThat(ended.get("finish_reason").asText()).isEqualTo("stop");
        assertThat(ended.get("text").asText()).isEmpty();
        JsonNode ran = complete(pushed.deepCopy().put("ignore_eos", true));
        assertThat(ran.get("finish_reason").asText()).isEqualTo("length");
        assertThat(ran.get("text").asText()).isNotEmpty();
    }

    /**
     * repeat_penalty over the prompt and the output: a greedy story repeats tokens; with a huge
     * penalty over a window longer than both, no token of the output is one already seen.
     */
    @Test
    void theRepetitionPenaltySeesThePromptAndTheOutput() throws Exception {
        ObjectNode greedy = ask(40).put("temperature", 0);
        greedy.put("logprobs", 0);
        JsonNode plain = complete(greedy).get("logprobs").get("tokens");
        assertThat(distinct(plain)).as("a greedy story repeats itself").isLessThan(plain.size());
        ObjectNode penalised = greedy.deepCopy().put("repeat_penalty", 1000).put("repeat_last_n", 256);
        JsonNode tokens = complete(penalised).get("logprobs").get("tokens");
        assertThat(distinct(tokens)).as(tokens.toString()).isEqualTo(tokens.size());
        HttpResponse<String> tok = server.post("/tokenize", "{\"content\":\"" + ask(1).get("prompt").asText() + "\",\"with_pieces\":true}");
        Set<String> prompt = new HashSet<>();
        for (JsonNode t : MAPPER.readTree(tok.body()).get("tokens")) {
            prompt.add(t.get("piece").asText());
        }
        for (JsonNode t : tokens) {
            assertThat(prompt).as("no prompt token comes again").doesNotContain(t.asText());
        }
        assertThat(text(greedy.deepCopy().put("repeat_penalty", 1000).put("repeat_last_n", 0)))
                .as("window 0: no penalty").isEqualTo(complete(greedy).get("text").asText());
        assertThat(complete(penalised.deepCopy().put("repeat_last_n", -1)).get("logprobs").get("tokens"))
                .as("window -1: the whole context, as llama-server reads it").isEqualTo(tokens);
    }

    private static int distinct(JsonNode tokens) {
        Set<String> seen = new HashSet<>();
        tokens.forEach(t -> seen.add(t.asText()));
        return seen.size();
    }

    /** XTC at probability 1 and threshold 0 leaves the least likely token: each pick is below the 5 most likely. */
    @Test
    void xtcPicksOutsideTheTopChoices() throws Exception {
        ObjectNode b = ask(12).put("temperature", 1).put("seed", 3).put("xtc_probability", 1).put("xtc_threshold", 0);
        for (double[] p : picks(b)) {
            assertThat(p[0]).isLessThan(p[1]);
        }
        ObjectNode off = ask(12).put("temperature", 1).put("seed", 3).put("xtc_probability", 0);
        assertThat(picks(off).stream().filter(p -> p[0] >= p[1]).count()).as("without XTC most picks are among the top 5").isGreaterThan(6);
    }

    /** Stages that keep only the best token draw what greedy decoding writes, at any seed. */
    @ParameterizedTest
    @CsvSource(delimiter = ';', value = {
            "top_n_sigma: a tiny sigma; {\"temperature\":2,\"top_n_sigma\":0.000001}",
            "Mirostat 2 aiming at no surprise; {\"temperature\":1,\"mirostat\":2,\"mirostat_tau\":0,\"mirostat_eta\":0.1}"})
    void stagesThatKeepTheBestTokenAreGreedy(String what, String fields) throws Exception {
        String greedy = text(ask(24).put("temperature", 0));
        for (int seed = 1; seed <= 3; seed++) {
            ObjectNode b = ask(24).put("seed", seed);
            b.setAll((ObjectNode) MAPPER.readTree(fields));
            assertThat(text(b)).as(what).isEqualTo(greedy);
        }
    }

    /** top_p 0 keeps the best token alone; with min_keep 3 the draw is among the 3 best. */
    @Test
    void minKeepWidensACut() throws Exception {
        String greedy = text(ask(24).put("temperature", 0));
        boolean differs = false;
        for (int seed = 1; seed <= 4; seed++) {
            assertThat(text(ask(24).put("temperature", 1.5).put("seed", seed).put("top_p", 0))).isEqualTo(greedy);
            ObjectNode kept = ask(24).put("temperature", 1.5).put("seed", seed).put("top_p", 0).put("min_keep", 3).put("logprobs", 5);
            JsonNode lp = complete(kept).get("logprobs");
            for (int i = 0; i < lp.get("tokens").size(); i++) {
                List<Double> alts = new ArrayList<>();
                lp.get("top_logprobs").get(i).forEach(a -> alts.add(a.asDouble()));
                alts.sort(java.util.Comparator.reverseOrder());
                assertThat(lp.get("token_logprobs").get(i).asDouble()).as("among the 3 best").isGreaterThanOrEqualTo(alts.get(2));
            }
            differs |= !text(kept.without("logprobs")).equals(greedy);
        }
        assertThat(differs).as("some draw leaves the best token").isTrue();
    }

    /** The order is the request's: top_k 1 before XTC keeps the best token, XTC before it the worst. */
    @Test
    void samplersSetTheOrder() throws Exception {
        ObjectNode b = ask(12).put("temperature", 1).put("seed", 5).put("top_k", 1).put("xtc_probability", 1).put("xtc_threshold", 0);
        ObjectNode topKFirst = b.deepCopy();
        topKFirst.putArray("samplers").add("top_k").add("xtc").add("temperature");
        assertThat(text(topKFirst)).isEqualTo(text(ask(12).put("temperature", 0)));
        ObjectNode xtcFirst = b.deepCopy();
        xtcFirst.putArray("samplers").add("xtc").add("top_k").add("temperature");
        for (double[] p : picks(xtcFirst)) {
            assertThat(p[0]).isLessThan(p[1]);
        }
    }

    /**
     * {@code samplers} as llama-server reads it: names in any case and spelling llama.cpp knows
     * ({@code Top-K}, {@code topk}, {@code temp}), a string of one-letter names ({@code "kt"}), and
     * names it does not know skipped (SillyTavern's presets still list {@code tfs_z}, and
     * {@code typical_p}, which is no name of llama.cpp's; {@code adaptive_p} without a target is
     * the plain draw): each is the same chain as its plain list.
     */
    @Test
    void samplersReadAsLlamaServerReadsThem() throws Exception {
        ObjectNode b = ask(16).put("temperature", 1.5).put("seed", 11).put("top_k", 2);
        ObjectNode plain = b.deepCopy();
        plain.putArray("samplers").add("top_k").add("temperature");
        String reference = text(plain);
        ObjectNode noTopK = b.deepCopy();
        noTopK.putArray("samplers").add("temperature");
        assertThat(text(noTopK)).as("the list decides: top-k left out draws otherwise").isNotEqualTo(reference);
        assertThat(text(b.deepCopy().put("samplers", "kt"))).isEqualTo(reference);
        ObjectNode spelled = b.deepCopy();
        spelled.putArray("samplers").add("tfs_z").add("Top-K").add("typical_p").add("TEMP").add("adaptive_p");
        assertThat(text(spelled)).isEqualTo(reference);
        ObjectNode noDash = b.deepCopy();
        noDash.putArray("samplers").add("topk").add("temperature");
        assertThat(text(noDash)).isEqualTo(reference);
    }

    /** DRY: with a huge multiplier, no sequence of 3 tokens comes twice in a greedy story that otherwise loops. */
    @Test
    void dryStopsRepeatedSequences() throws Exception {
        ObjectNode greedy = ask(120).put("temperature", 0).put("logprobs", 0);
        assertThat(repeatedTrigrams(complete(greedy))).as("the tiny model's greedy story repeats itself").isPositive();
        ObjectNode dry = greedy.deepCopy().put("dry_multiplier", 1000).put("dry_allowed_length", 2).put("dry_penalty_last_n", 256);
        dry.putArray("dry_sequence_breakers").add("\u0001");
        assertThat(repeatedTrigrams(complete(dry))).isZero();
    }

    /**
     * A DRY stage is made once per setting (before the request is queued, off the scheduler's
     * thread) and copied into each chain: requests with the same settings at once, or with other
     * settings in between, each see their own history, so each writes what it writes alone.
     */
    @Test
    void dryStagesAreSharedWithoutSharingHistory() throws Exception {
        ObjectNode dry = ask(60).put("temperature", 0).put("dry_multiplier", 1000).put("dry_allowed_length", 2);
        String alone = text(dry);
        ObjectNode other = dry.deepCopy().put("dry_multiplier", 3).put("dry_base", 1.2);
        String otherAlone = text(other);
        List<java.util.concurrent.Future<String>> runs = new ArrayList<>();
        try (var pool = java.util.concurrent.Executors.newVirtualThreadPerTaskExecutor()) {
            for (int i = 0; i < 6; i++) {
                ObjectNode b = i % 2 == 0 ? dry : other;
                runs.add(pool.submit(() -> text(b)));
            }
            for (int i = 0; i < runs.size(); i++) {
                assertThat(runs.get(i).get()).isEqualTo(i % 2 == 0 ? alone : otherAlone);
            }
        }
    }

    private static int repeatedTrigrams(JsonNode choice) {
        JsonNode t = choice.get("logprobs").get("tokens");
        Set<String> seen = new HashSet<>();
        int repeats = 0;
        for (int i = 2; i < t.size(); i++) {
            if (!seen.add(t.get(i - 2).asText() + "\u0000" + t.get(i - 1).asText() + "\u0000" + t.get(i).asText())) {
                repeats++;
            }
        }
        return repeats;
    }

    /** The other stages run and a seed repeats their draw: typical_p, a dynamic temperature, Mirostat 1. */
    @ParameterizedTest
    @CsvSource(delimiter = ';', value = {
            "{\"typical_p\":0.5}", "{\"dynatemp_range\":0.5,\"dynatemp_exponent\":2}", "{\"mirostat\":1,\"mirostat_tau\":3}"})
    void otherStagesDrawTheSameForASeed(String fields) throws Exception {
        ObjectNode b = ask(24).put("temperature", 1).put("seed", 11);
        b.setAll((ObjectNode) MAPPER.readTree(fields));
        assertThat(text(b)).isNotBlank().isEqualTo(text(b));
    }

    /** The Responses and Messages APIs pass llama-server's fields to the chat route. */
    @Test
    void theResponsesAndMessagesApisPassThemOn() throws Exception {
        HttpResponse<String> r = server.post("/v1/responses", "{\"input\":\"Hi\",\"max_output_tokens\":4,\"repeat_penalty\":0}");
        assertThat(r.statusCode()).isEqualTo(400);
        assertThat(r.body()).contains("repeat_penalty");
        HttpResponse<String> m = server.post("/v1/messages", "{\"max_tokens\":4,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                + "\"mirostat\":3}");
        assertThat(m.statusCode()).isEqualTo(400);
        assertThat(m.body()).contains("mirostat");
        HttpResponse<String> ok = server.post("/v1/messages", "{\"max_tokens\":4,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                + "\"repeat_penalty\":1.1,\"dry_multiplier\":0.8,\"samplers\":[\"dry\",\"top_k\",\"temperature\"]}");
        assertThat(ok.statusCode()).as(ok.body()).isEqualTo(200);
    }

    @ParameterizedTest
    @CsvSource(delimiter = ';', value = {
            "repeat_penalty; 0", "repeat_penalty; -1", "repeat_last_n; -2", "dry_penalty_last_n; -2", "typical_p; 1.5", "top_n_sigma; \"x\"",
            "xtc_probability; 2", "xtc_threshold; -0.1", "dry_multiplier; -1", "dry_base; 0.5", "dry_allowed_length; -1",
            "dry_penalty_last_n; 2000000", "dry_sequence_breakers; []", "dry_sequence_breakers; [\"\"]", "dry_sequence_breakers; \"\\n\"",
            "dry_sequence_breakers; [1]", "dry_sequence_breakers; [\"0123456789012345678901234567890123456789x\"]",
            "mirostat; 3", "mirostat_tau; 21", "mirostat_eta; 1.5", "dynatemp_range; -1", "min_keep; 513", "samplers; 5",
            "samplers; [\"top_k\",\"top_k\"]", "samplers; [\"top_k\",\"Top-K\"]", "samplers; \"kk\"", "samplers; [1]", "ignore_eos; 1",
            "grammar; \"root ::= \\\"a\\\"\"", "json_schema; {}", "n_predict; 5", "n_probs; 2", "post_sampling_probs; true",
            "adaptive_target; 0.5", "lora; []"})
    void badValuesAndUnsupportedFieldsAreRefused(String field, String value) throws Exception {
        ObjectNode b = ask(4);
        b.set(field, MAPPER.readTree(value));
        HttpResponse<String> r = server.post("/v1/completions", b.toString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(400);
        assertThat(MAPPER.readTree(r.body()).at("/error/param").asText()).as(r.body()).isEqualTo(field);
    }

    @Test
    void ignoreEosIsRefusedWithAGrammar() throws Exception {
        HttpResponse<String> r = server.post("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                + "\"max_tokens\":8,\"ignore_eos\":true,\"response_format\":{\"type\":\"json_object\"}}");
        assertThat(r.statusCode()).as(r.body()).isEqualTo(400);
        assertThat(r.body()).contains("ignore_eos");
    }
}
