package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import ai.llmref.llama.Vocabulary;
import ai.llmref.server.structured.GrammarVerdict;
import ai.llmref.server.structured.ReasoningStream;
import ai.llmref.server.structured.SplitStream;
import ai.llmref.server.structured.ToolCalls;
import ai.llmref.server.structured.ToolStream;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * GPT-OSS's harmony replies through the server, on stories260K with seven unused byte tokens made
 * harmony's tokens ({@code <|start|>}, {@code <|channel|>}, {@code <|message|>}, {@code <|end|>},
 * {@code <|return|>}, {@code <|call|>}, {@code <|constrain|>}) and GPT-OSS's template: llama.cpp's
 * vocabulary rules for them apply as for GPT-OSS (the markers show as text, {@code <|return|>} and
 * {@code <|call|>} end a generation, {@code <|end|>} does not). Before, the markers and the
 * analysis were the reply's content.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class HarmonyReasoningTest {
    static final Map<Integer, String> HARMONY = Map.of(19, "<|start|>", 20, "<|channel|>", 21, "<|message|>", 22, "<|end|>",
            23, "<|return|>", 24, "<|call|>", 25, "<|constrain|>");
    private TestServer server;
    private Path model;

    @BeforeAll
    void start() throws Exception {
        Path dir = Files.createTempDirectory("llmref-harmony");
        model = GgufPatch.withControlTokens(TestServer.model(), HARMONY, dir.resolve("stories260K-harmony.gguf"));
        model.toFile().deleteOnExit();
        dir.toFile().deleteOnExit();
        server = TestServer.start(Map.of("model.path", model.toString(), "model.chat-template",
                ToolCallsTest.template("openai-gpt-oss-120b.jinja"), "engine.slot-context", "4096", "limits.max-tokens", "1200"));
    }

    @AfterAll
    void stop() {
        server.close();
    }

    @Test
    void theVocabularyTreatsTheTokensAsGptOssDoes() {
        try (LlamaModel m = LlamaModel.load(model, ModelParams.defaults().withGpuLayers(0))) {
            Vocabulary v = m.vocabulary();
            assertThat(new String(v.tokenBytes(20, false), StandardCharsets.UTF_8)).as("shown as text").isEqualTo("<|channel|>");
            assertThat(new String(v.tokenBytes(22, false), StandardCharsets.UTF_8)).isEqualTo("<|end|>");
            assertThat(v.isEndOfGeneration(23)).isTrue();
            assertThat(v.isEndOfGeneration(24)).isTrue();
            assertThat(v.isEndOfGeneration(22)).as("<|end|> ends a message, not the reply").isFalse();
        }
    }

    /**
     * A prefill that leaves an analysis message open (Anthropic's API continues a final assistant
     * message) and a thinking budget: the model's text is the thinking block until the budget, then
     * the server writes the analysis message's end and the final message's header in the model's
     * place, and what the model writes next is the text block; neither shows harmony's markers.
     */
    @Test
    void theAnalysisIsTheThinkingAndTheFinalMessageTheText() throws Exception {
        ObjectNode body = ToolCallsTest.MAPPER.createObjectNode().put("model", "stories260K").put("max_tokens", 1040)
                .put("temperature", 0);
        body.putObject("thinking").put("type", "enabled").put("budget_tokens", 1024);
        ArrayNode messages = body.putArray("messages");
        messages.addObject().put("role", "user").put("content", "Tell me a story.");
        messages.addObject().put("role", "assistant").put("content", "<|channel|>analysis<|message|>Once upon a time");
        HttpResponse<String> r = server.post("/v1/messages", body.toString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        JsonNode content = ToolCallsTest.MAPPER.readTree(r.body()).get("content");
        assertThat(content.get(0).get("type").asText()).as(r.body()).isEqualTo("thinking");
        String thinking = content.get(0).get("thinking").asText();
        assertThat(thinking).isNotBlank().doesNotContain("<|");
        JsonNode text = content.get(1);
        assertThat(text.get("type").asText()).isEqualTo("text");
        assertThat(text.get("text").asText()).as(r.body()).isNotBlank().doesNotContain("<|");
        // streamed: the same two blocks
        body.put("stream", true);
        HttpResponse<String> s = server.post("/v1/messages", body.toString());
        StringBuilder streamedThinking = new StringBuilder();
        StringBuilder streamedText = new StringBuilder();
        for (String line : s.body().split("\n")) {
            if (line.startsWith("data: {")) {
                JsonNode ev = ToolCallsTest.MAPPER.readTree(line.substring(6));
                JsonNode delta = ev.path("delta");
                if (delta.path("type").asText().equals("thinking_delta")) {
                    streamedThinking.append(delta.get("thinking").asText());
                } else if (delta.path("type").asText().equals("text_delta")) {
                    streamedText.append(delta.get("text").asText());
                }
            }
        }
        assertThat(streamedThinking.toString()).isEqualTo(thinking);
        assertThat(streamedText.toString()).isEqualTo(text.get("text").asText());
    }

    /** A reply that is no harmony message (this model's own text) is content, as it is written. */
    @Test
    void aReplyWithoutMessagesIsContent() throws Exception {
        ObjectNode body = ToolCallsTest.MAPPER.createObjectNode().put("max_tokens", 12).put("temperature", 0);
        body.putArray("messages").addObject().put("role", "user").put("content", "Hello");
        HttpResponse<String> r = server.post("/v1/chat/completions", body.toString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        JsonNode msg = ToolCallsTest.MAPPER.readTree(r.body()).get("choices").get(0).get("message");
        assertThat(msg.get("content").asText()).isNotEmpty();
        assertThat(msg.has("reasoning_content")).isFalse();
        body.put("reasoning_format", "none");
        JsonNode raw = ToolCallsTest.MAPPER.readTree(server.post("/v1/chat/completions", body.toString()).body());
        assertThat(raw.get("choices").get(0).get("message").get("content").asText()).isEqualTo(msg.get("content").asText());
    }

    static final List<ToolCalls.Function> FUNCTIONS = List.of(
            new ToolCalls.Function("get_weather", GrammarVerdict.json("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"
                    + "\"required\":[\"city\"]}")),
            new ToolCalls.Function("get", GrammarVerdict.json("{\"type\":\"object\"}")));
    /** A call as GPT-OSS's template writes one after the generation prompt's {@code <|start|>assistant}. */
    static final String CALL = " to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Rome\"}";

    /**
     * GPT-OSS's calls: a message to {@code functions.NAME} (in its role, as the template writes
     * it, or in its header, as harmony allows); the analysis before it is the reasoning; the
     * grammars (forced, and under "auto" from {@code to=functions.} on) in llama.cpp's engine with
     * the harmony vocabulary; the stream's pieces against the whole reply.
     */
    @Test
    void callsAreMessagesToFunctions() {
        ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.HARMONY, CALL, FUNCTIONS);
        assertThat(r.content()).isNull();
        assertThat(r.calls()).singleElement().satisfies(c -> {
            assertThat(c.name()).isEqualTo("get_weather");
            assertThat(c.arguments()).isEqualTo("{\"city\":\"Rome\"}");
        });
        assertThat(ToolCalls.parse(ToolCalls.Format.HARMONY, "to=functions.get<|channel|>commentary <|constrain|>json<|message|>{}", FUNCTIONS)
                .calls()).hasSize(1);
        for (String notACall : List.of(CALL + " more", " to=functions.nope<|channel|>commentary json<|message|>{}", "Hello there.")) {
            assertThat(ToolCalls.parse(ToolCalls.Format.HARMONY, notACall, FUNCTIONS).calls()).as(notACall).isEmpty();
        }
        // after an analysis message: the reasoning, then the call as the tool-call format reads it
        String withAnalysis = "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant" + CALL;
        ReasoningStream.Split split = ReasoningStream.splitHarmony(withAnalysis, false);
        assertThat(split.reasoning()).isEqualTo("Need the weather.");
        assertThat(ToolCalls.parse(ToolCalls.Format.HARMONY, split.content(), FUNCTIONS).calls()).hasSize(1);
        String inHeader = "<|channel|>analysis<|message|>Hmm.<|end|><|start|>assistant<|channel|>commentary to=functions.get <|constrain|>json<|message|>{}";
        assertThat(ToolCalls.parse(ToolCalls.Format.HARMONY, ReasoningStream.splitHarmony(inHeader, false).content(), FUNCTIONS).calls())
                .singleElement().satisfies(c -> assertThat(c.name()).isEqualTo("get"));
        try (LlamaModel m = LlamaModel.load(model, ModelParams.defaults().withGpuLayers(0))) {
            Vocabulary v = m.vocabulary();
            String forced = ToolCalls.grammar(ToolCalls.Format.HARMONY, FUNCTIONS, true);
            String late = ToolCalls.lateGrammar(ToolCalls.Format.HARMONY, FUNCTIONS, true);
            assertThat(GrammarVerdict.of(v, forced, CALL)).isEqualTo(GrammarVerdict.MAY_END);
            assertThat(GrammarVerdict.of(v, forced, " to=functions.get<|channel|>commentary <|constrain|>json<|message|>{}"))
                    .isEqualTo(GrammarVerdict.MAY_END);
            assertThat(GrammarVerdict.of(v, late, CALL.strip())).isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of(" to=functions.get_weather<|channel|>commentary json<|message|>{}", CALL + "x",
                    " to=functions.nope", "<|channel|>final")) {
                assertThat(GrammarVerdict.of(v, forced, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        Random rnd = new Random(9);
        for (int trial = 0; trial < 30; trial++) {
            ToolStream s = SplitStream.feed(ToolCalls.Format.HARMONY, trial % 2 == 0, FUNCTIONS, CALL, rnd, 5).stream();
            assertThat(s.wellFormed()).isTrue();
            assertThat(s.calls()).singleElement().satisfies(c -> assertThat(c.arguments()).isEqualTo("{\"city\":\"Rome\"}"));
        }
    }

    /**
     * A JSON response_format: as llama.cpp lets GPT-OSS reason first, the prompt opens the
     * analysis message for the model and the grammar applies from the next message's
     * {@code <|start|>}: the final message's header and the document. The tiny model never ends its
     * analysis, so the reply is reasoning cut by max_tokens (no 500), and pushed toward
     * {@code <|return|>} it still cannot end before the grammar. A budget ends the analysis for it
     * ({@code <|end|><|start|>}, then the grammar writes the header): the reasoning, then the
     * document as the content, streamed alike, no markers. json_object alike (an object begun). With
     * {@code reasoning_format: "none"} the grammar applies from the start, as before.
     */
    @Test
    void aJsonAnswerComesAfterTheAnalysis() throws Exception {
        ObjectNode b = ReasoningTest.askJson(40);
        b.putObject("logit_bias").put("23", 100); // <|return|>
        JsonNode out = ReasoningTest.post(server, b);
        JsonNode choice = out.get("choices").get(0);
        assertThat(choice.get("finish_reason").asText()).as(out.toString()).isEqualTo("length");
        assertThat(out.at("/usage/completion_tokens").asInt()).as("never ended early").isEqualTo(40);
        assertThat(choice.get("message").get("reasoning_content").asText()).isNotBlank().doesNotContain("<|");
        assertThat(choice.get("message").get("content").asText()).isEmpty();
        b.remove("logit_bias");
        b.put("max_tokens", 200).put("reasoning_budget_tokens", 8).put("reasoning_budget_message", "Answer now.");
        JsonNode answered = ReasoningTest.post(server, b);
        JsonNode msg = answered.get("choices").get(0).get("message");
        assertThat(answered.get("choices").get(0).get("finish_reason").asText()).as(answered.toString()).isEqualTo("stop");
        assertThat(msg.get("reasoning_content").asText()).endsWith("Answer now.").doesNotContain("<|");
        assertThat(ToolCallsTest.MAPPER.readTree(msg.get("content").asText()).get("why").isTextual()).as(msg.toString()).isTrue();
        ReasoningTest.Streamed s = ReasoningTest.stream(server, b);
        assertThat(s.reasoning()).isEqualTo(msg.get("reasoning_content").asText());
        assertThat(s.content()).isEqualTo(msg.get("content").asText());
        ObjectNode object = b.deepCopy();
        object.putObject("response_format").put("type", "json_object");
        JsonNode obj = ReasoningTest.post(server, object).get("choices").get(0).get("message");
        // the tiny model's keys run on (json_object bounds nothing): the object begun after the analysis
        assertThat(obj.get("reasoning_content").asText()).isEqualTo(msg.get("reasoning_content").asText());
        assertThat(obj.get("content").asText()).as(obj.toString()).startsWith("{").doesNotContain("<|");
        ObjectNode none = b.deepCopy().put("reasoning_format", "none");
        none.remove("reasoning_budget_tokens");
        JsonNode plain = ReasoningTest.post(server, none);
        assertThat(plain.get("choices").get(0).get("message").get("content").asText()).as("the document from the start")
                .startsWith("{");
        assertThat(out.at("/usage/prompt_tokens").asInt()).as("the analysis header the server opened")
                .isGreaterThan(plain.at("/usage/prompt_tokens").asInt());
        // a budget message that would end the analysis itself (forced text after it would not be the grammar's)
        HttpResponse<String> bad = server.post("/v1/chat/completions", b.deepCopy().put("reasoning_budget_message", "Done<|end|>").toString());
        assertThat(bad.statusCode()).as(bad.body()).isEqualTo(400);
        assertThat(bad.body()).contains("reasoning_budget_message");
    }

    /**
     * A forced call after the analysis: its grammar in llama.cpp's engine from the next message's
     * start, and through the server with a budget (the tiny model never ends its analysis): the
     * reasoning, then a valid call.
     */
    @Test
    void aForcedCallComesAfterTheAnalysis() throws Exception {
        try (LlamaModel m = LlamaModel.load(model, ModelParams.defaults().withGpuLayers(0))) {
            String after = ToolCalls.grammarAfterAnalysis(FUNCTIONS);
            assertThat(GrammarVerdict.of(m.vocabulary(), after, "<|start|>assistant" + CALL)).isEqualTo(GrammarVerdict.MAY_END);
            for (String refused : List.of(CALL, "<|start|>assistant<|channel|>final<|message|>", "<|start|>assistant" + CALL + "x")) {
                assertThat(GrammarVerdict.of(m.vocabulary(), after, refused)).as(refused).isEqualTo(GrammarVerdict.REFUSED);
            }
        }
        ObjectNode forced = ToolCallsTest.request("required").put("reasoning_budget_tokens", 6);
        JsonNode out = ToolCallsTest.MAPPER.readTree(server.post("/v1/chat/completions", forced.toString()).body());
        JsonNode choice = out.get("choices").get(0);
        assertThat(choice.get("finish_reason").asText()).as(out.toString()).isEqualTo("tool_calls");
        assertThat(choice.get("message").get("reasoning_content").asText()).isNotBlank().doesNotContain("<|");
        ToolCallsTest.assertValidCall(choice.get("message").get("tool_calls").get(0));
        ObjectNode unbudgeted = ToolCallsTest.request("required").put("max_tokens", 30);
        JsonNode reasoned = ToolCallsTest.MAPPER.readTree(server.post("/v1/chat/completions", unbudgeted.toString()).body());
        assertThat(reasoned.at("/choices/0/finish_reason").asText()).as(reasoned.toString()).isEqualTo("length");
        assertThat(reasoned.at("/choices/0/message/reasoning_content").asText()).isNotBlank();
    }

    /** A forced call through GPT-OSS's template, and the call and its result back in the history. */
    @Test
    void aForcedCallRoundTrips() throws Exception {
        ObjectNode forced = ToolCallsTest.request("required").put("reasoning_budget_tokens", 4);
        JsonNode first = ToolCallsTest.MAPPER.readTree(server.post("/v1/chat/completions", forced.toString()).body());
        JsonNode choice = first.get("choices").get(0);
        assertThat(choice.get("finish_reason").asText()).as(first.toString()).isEqualTo("tool_calls");
        JsonNode call = choice.get("message").get("tool_calls").get(0);
        ToolCallsTest.assertValidCall(call);
        ObjectNode next = ToolCallsTest.withCallAndResult(ToolCallsTest.request("auto"), call, "{\"temperature\": 21}");
        HttpResponse<String> r = server.post("/v1/chat/completions", next.toString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        assertThat(ToolCallsTest.MAPPER.readTree(r.body()).get("usage").get("prompt_tokens").asLong())
                .isGreaterThan(first.get("usage").get("prompt_tokens").asLong() + 10);
    }

    /**
     * An earlier call's analysis, sent back as the turn's {@code reasoning_content}, reaches
     * GPT-OSS's template as {@code thinking} (which it reads; llama.cpp passes it there too), and
     * the template renders it before the call while no final answer follows.
     */
    @Test
    void anEarlierCallsAnalysisIsInThePrompt() throws Exception {
        ai.llmref.server.chat.ChatTemplateRenderer r = new ai.llmref.server.chat.ChatTemplateRenderer(
                ToolCallsTest.template("openai-gpt-oss-120b.jinja"), "", "");
        Map<String, Object> call = Map.of("id", "call_1", "type", "function", "function",
                Map.of("name", "get_weather", "arguments", new java.util.LinkedHashMap<>(Map.of("city", "Rome"))));
        String out = r.render(List.of(ai.llmref.server.chat.ChatMessage.of("user", "Weather in Rome?"),
                new ai.llmref.server.chat.ChatMessage("assistant", "", List.of(call), null, null, "Need the weather tool."),
                new ai.llmref.server.chat.ChatMessage("tool", "{\"temperature\": 21}", null, "call_1", null)), true, List.of());
        assertThat(out).contains("<|start|>assistant<|channel|>analysis<|message|>Need the weather tool.<|end|>"
                + "<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Rome\"}<|call|>");
    }
}
