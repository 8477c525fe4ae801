package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.anthropic.client.AnthropicClient;
import com.anthropic.client.okhttp.AnthropicOkHttpClient;
import com.anthropic.core.JsonValue;
import com.anthropic.core.http.StreamResponse;
import com.anthropic.errors.UnauthorizedException;
import com.anthropic.errors.BadRequestException;
import com.anthropic.errors.NotFoundException;
import com.anthropic.helpers.MessageAccumulator;
import com.anthropic.models.messages.ContentBlock;
import com.anthropic.models.messages.ContentBlockParam;
import com.anthropic.models.messages.Message;
import com.anthropic.models.messages.MessageContentParam;
import com.anthropic.models.messages.MessageCountTokensParams;
import com.anthropic.models.messages.MessageCreateParams;
import com.anthropic.models.messages.RawMessageStreamEvent;
import com.anthropic.models.messages.StopReason;
import com.anthropic.models.messages.Tool;
import com.anthropic.models.messages.ToolChoice;
import com.anthropic.models.messages.ToolChoiceAny;
import com.anthropic.models.messages.ToolResultBlockParam;
import com.anthropic.models.messages.ToolUseBlock;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@code POST /v1/messages} (Anthropic's Messages API) driven by Anthropic's official Java SDK:
 * the answer equals the chat completion of the same conversation, the stream rebuilt by the SDK's
 * own {@code MessageAccumulator} equals the whole message, a stop sequence is reported as such, a
 * forced tool call and its result round trip, tokens are counted, errors come in Anthropic's
 * envelope as the SDK's typed exceptions, and {@code x-api-key} authenticates. The server renders
 * the Qwen 2.5 tool template.
 */
class MessagesApiTest {
    static final ObjectMapper MAPPER = new ObjectMapper();
    static TestServer server;
    static AnthropicClient client;

    @BeforeAll
    static void start() throws Exception {
        server = ToolCallsTest.startWithToolTemplate();
        client = AnthropicOkHttpClient.builder().baseUrl(server.base()).apiKey("unused").maxRetries(0).build();
    }

    @AfterAll
    static void stop() {
        client.close();
        server.close();
    }

    static MessageCreateParams.Builder ask(long maxTokens) {
        return MessageCreateParams.builder().model("stories260K").system("You tell short stories.")
                .addUserMessage("Tell me about a dog.").maxTokens(maxTokens).putAdditionalBodyProperty("temperature", JsonValue.from(0));
    }

    static String text(Message m) {
        StringBuilder sb = new StringBuilder();
        m.content().forEach(b -> b.text().ifPresent(t -> sb.append(t.text())));
        return sb.toString();
    }

    @Test
    void answerEqualsTheChatCompletionOfTheSameConversation() {
        Message m = client.messages().create(ask(40).build());
        m.validate();
        var openai = server.openAiClient();
        ChatCompletion c = openai.chat().completions().create(ChatCompletionCreateParams.builder().model("stories260K")
                .addSystemMessage("You tell short stories.").addUserMessage("Tell me about a dog.")
                .maxCompletionTokens(40).temperature(0.0).build());
        openai.close();
        assertThat(m.id()).startsWith("msg_");
        assertThat(text(m)).isNotBlank().isEqualTo(c.choices().getFirst().message().content().orElseThrow());
        var usage = c.usage().orElseThrow();
        assertThat(m.usage().inputTokens() + m.usage().cacheReadInputTokens().orElse(0L)).isEqualTo(usage.promptTokens());
        assertThat(m.usage().outputTokens()).isEqualTo(usage.completionTokens());
        boolean cut = c.choices().getFirst().finishReason().equals(ChatCompletion.Choice.FinishReason.LENGTH);
        assertThat(m.stopReason()).contains(cut ? StopReason.MAX_TOKENS : StopReason.END_TURN);
        assertThat(m.stopSequence()).isEmpty();
    }

    @Test
    void streamRebuiltByTheSdkEqualsTheWholeMessage() {
        Message whole = client.messages().create(ask(40).build());
        MessageAccumulator acc = MessageAccumulator.create();
        List<String> types = new ArrayList<>();
        try (StreamResponse<RawMessageStreamEvent> s = client.messages().createStreaming(ask(40).build())) {
            s.stream().forEach(e -> {
                e.validate();
                acc.accumulate(e); // the SDK's reassembly: throws on an event out of order
                types.add(e._json().orElseThrow().convert(JsonNode.class).get("type").asText());
            });
        }
        assertThat(types.getFirst()).isEqualTo("message_start");
        assertThat(types).containsSubsequence("content_block_start", "content_block_delta", "content_block_stop", "message_delta",
                "message_stop");
        assertThat(types.getLast()).isEqualTo("message_stop");
        Message rebuilt = acc.message();
        assertThat(text(rebuilt)).isEqualTo(text(whole));
        assertThat(rebuilt.stopReason()).isEqualTo(whole.stopReason());
        assertThat(rebuilt.usage().outputTokens()).isEqualTo(whole.usage().outputTokens());
    }

    @Test
    void aStopSequenceIsReportedWithItsText() {
        String full = text(client.messages().create(ask(40).build()));
        String stop = full.substring(12, 16); // a piece of the greedy answer, so the answer must stop there
        Message m = client.messages().create(ask(40).stopSequences(List.of(stop, "zzzz")).build());
        assertThat(m.stopReason()).contains(StopReason.STOP_SEQUENCE);
        assertThat(m.stopSequence()).contains(stop);
        assertThat(text(m)).isEqualTo(full.substring(0, full.indexOf(stop)));
    }

    /**
     * Anthropic's prefill: a final assistant message is continued, not answered; the answer holds
     * only the continuation. The greedy answer cut before a word and sent back as the assistant's
     * turn goes on as the whole answer does, streamed or not, and the prompt is counted so; the
     * chat route answers the same conversation with a new turn (OpenAI's semantics), a longer prompt.
     */
    @Test
    void aFinalAssistantMessageIsContinued() {
        String full = text(client.messages().create(ask(40).build()));
        String prefill = full.substring(0, full.indexOf(' ', 8));
        MessageCreateParams continued = ask(8).addAssistantMessage(prefill).build();
        Message m = client.messages().create(continued);
        assertThat(text(m)).isNotEmpty();
        assertThat(full).startsWith(prefill + text(m));
        MessageAccumulator acc = MessageAccumulator.create();
        try (StreamResponse<RawMessageStreamEvent> s = client.messages().createStreaming(continued)) {
            s.stream().forEach(acc::accumulate);
        }
        assertThat(text(acc.message())).isEqualTo(text(m));
        long counted = client.messages().countTokens(MessageCountTokensParams.builder().model("stories260K")
                .system("You tell short stories.").addUserMessage("Tell me about a dog.").addAssistantMessage(prefill).build())
                .inputTokens();
        long prompt = m.usage().inputTokens() + m.usage().cacheReadInputTokens().orElse(0L);
        assertThat(counted).isEqualTo(prompt);
        var openai = server.openAiClient();
        ChatCompletion c = openai.chat().completions().create(ChatCompletionCreateParams.builder().model("stories260K")
                .addSystemMessage("You tell short stories.").addUserMessage("Tell me about a dog.").addAssistantMessage(prefill)
                .maxCompletionTokens(1).build());
        openai.close();
        assertThat(c.usage().orElseThrow().promptTokens()).as("chat closes the assistant's turn and opens another").isGreaterThan(prompt);
    }

    static Tool weatherTool() {
        return Tool.builder().name("get_weather").description("Current weather in a city")
                .inputSchema(Tool.InputSchema.builder()
                        .properties(JsonValue.from(Map.of("city", Map.of("type", "string", "maxLength", 12))))
                        .addRequired("city").putAdditionalProperty("additionalProperties", JsonValue.from(false)).build())
                .build();
    }

    @Test
    void forcedToolUseAndItsResultRoundTrip() throws Exception {
        MessageCreateParams first = MessageCreateParams.builder().model("stories260K").addUserMessage("Is it cold in Oslo?")
                .addTool(weatherTool()).toolChoice(ToolChoice.ofAny(ToolChoiceAny.builder().disableParallelToolUse(true).build())).maxTokens(200).putAdditionalBodyProperty("temperature", JsonValue.from(0.7))
                .putAdditionalBodyProperty("seed", JsonValue.from(9)).build();
        Message m = client.messages().create(first);
        m.validate();
        assertThat(m.stopReason()).contains(StopReason.TOOL_USE);
        ToolUseBlock call = m.content().stream().filter(ContentBlock::isToolUse).findFirst().orElseThrow().asToolUse();
        assertThat(call.id()).startsWith("toolu_");
        assertThat(call.name()).isEqualTo("get_weather");
        JsonNode input = call._input().convert(JsonNode.class);
        assertThat(input.get("city").isTextual()).as(input.toString()).isTrue();

        Message answer = client.messages().create(first.toBuilder().toolChoice(ToolChoice.ofAuto(
                        com.anthropic.models.messages.ToolChoiceAuto.builder().build()))
                .addMessage(m)
                .addUserMessage(MessageContentParam.ofContentBlockParams(List.of(ContentBlockParam.ofToolResult(
                        ToolResultBlockParam.builder().toolUseId(call.id()).content("2 degrees and snowing").build()))))
                .maxTokens(16).build());
        answer.validate();
        // the call and its result are rendered into the prompt
        assertThat(answer.usage().inputTokens() + answer.usage().cacheReadInputTokens().orElse(0L))
                .isGreaterThan(m.usage().inputTokens() + m.usage().cacheReadInputTokens().orElse(0L) + 5);
    }

    @Test
    void streamedToolUseIsAccumulatedByTheSdk() throws Exception {
        MessageCreateParams p = MessageCreateParams.builder().model("stories260K").addUserMessage("Is it cold in Oslo?")
                .addTool(weatherTool()).toolChoice(ToolChoice.ofAny(ToolChoiceAny.builder().disableParallelToolUse(true).build())).maxTokens(200).putAdditionalBodyProperty("temperature", JsonValue.from(0.7))
                .putAdditionalBodyProperty("seed", JsonValue.from(9)).build();
        Message whole = client.messages().create(p);
        MessageAccumulator acc = MessageAccumulator.create();
        int[] jsonDeltas = {0};
        try (StreamResponse<RawMessageStreamEvent> s = client.messages().createStreaming(p)) {
            s.stream().forEach(e -> {
                acc.accumulate(e);
                if (e.isContentBlockDelta() && e.asContentBlockDelta().delta().isInputJson()) {
                    jsonDeltas[0]++;
                }
            });
        }
        assertThat(jsonDeltas[0]).as("the input streams as the model writes it").isGreaterThan(3);
        Message rebuilt = acc.message();
        assertThat(rebuilt.stopReason()).contains(StopReason.TOOL_USE);
        ToolUseBlock a = rebuilt.content().stream().filter(ContentBlock::isToolUse).findFirst().orElseThrow().asToolUse();
        ToolUseBlock b = whole.content().stream().filter(ContentBlock::isToolUse).findFirst().orElseThrow().asToolUse();
        assertThat(a.name()).isEqualTo(b.name());
        assertThat(a._input().convert(JsonNode.class)).isEqualTo(b._input().convert(JsonNode.class));
    }

    /** A mood, for {@link Verdict}. */
    enum Mood { CALM, CROSS }

    /** What the SDK's typed structured output reads back: a class the SDK derives the schema of. */
    record Verdict(boolean happy, Mood mood) {}

    /**
     * Anthropic's structured outputs: {@code output_config.format} (and the beta's
     * {@code output_format}) constrain the text block to the JSON schema, through the SDK's typed
     * call ({@code outputConfig(Class)}: the SDK writes the schema and parses the answer) and with
     * a schema of the client's own; streamed alike. Before, the field was ignored and the answer
     * was free text that the SDK could not read.
     */
    @Test
    void structuredOutputsFollowTheSchema() throws Exception {
        var typed = client.messages().create(ask(60).outputConfig(Verdict.class).build());
        Verdict v = typed.content().stream().flatMap(b -> b.text().stream()).findFirst().orElseThrow().text();
        assertThat(v.mood()).isNotNull();
        assertThat(typed.stopReason()).hasValue(StopReason.END_TURN);
        JsonNode schema = MAPPER.readTree("{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":12},"
                + "\"legs\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":8}},\"required\":[\"name\",\"legs\"],\"additionalProperties\":false}");
        var format = com.anthropic.models.messages.JsonOutputFormat.builder().schema(
                com.anthropic.models.messages.JsonOutputFormat.Schema.builder().additionalProperties(
                        MAPPER.convertValue(schema, new com.fasterxml.jackson.core.type.TypeReference<Map<String, JsonValue>>() {})).build()).build();
        var params = ask(60).outputConfig(com.anthropic.models.messages.OutputConfig.builder().format(format).build()).build();
        Message m = client.messages().create(params);
        JsonNode out = MAPPER.readTree(text(m));
        assertThat(out.get("name").asText().length()).isLessThanOrEqualTo(12);
        assertThat(out.get("legs").asInt()).isBetween(0, 8);
        assertThat(out.size()).isEqualTo(2);
        try (StreamResponse<RawMessageStreamEvent> s = client.messages().createStreaming(params)) {
            MessageAccumulator acc = MessageAccumulator.create();
            s.stream().forEach(acc::accumulate);
            assertThat(text(acc.message())).isEqualTo(text(m));
        }
        // the beta's top-level output_format: the same answer
        String body = "{\"model\":\"stories260K\",\"max_tokens\":60,\"temperature\":0,\"system\":\"You tell short stories.\","
                + "\"messages\":[{\"role\":\"user\",\"content\":\"Tell me about a dog.\"}],\"output_format\":{\"type\":\"json_schema\","
                + "\"schema\":" + schema + "}}";
        HttpResponse<String> beta = server.post("/v1/messages", body);
        assertThat(beta.statusCode()).as(beta.body()).isEqualTo(200);
        assertThat(MAPPER.readTree(beta.body()).at("/content/0/text").asText()).isEqualTo(text(m));
    }

    @Test
    void tokensAreCountedAsTheMessageWouldBePrompted() {
        long counted = client.messages().countTokens(MessageCountTokensParams.builder().model("stories260K")
                .system("You tell short stories.").addUserMessage("Tell me about a dog.").build()).inputTokens();
        Message m = client.messages().create(ask(4).build());
        assertThat(counted).isEqualTo(m.usage().inputTokens() + m.usage().cacheReadInputTokens().orElse(0L));
    }

    /**
     * anthropic-java's {@code models().list()} and {@code retrieve()} on {@code /v1/models}: the
     * one served model passes the SDK's {@code validate()} (its required {@code type},
     * {@code display_name}, {@code created_at}, {@code lifecycle}), one page; the largest prompt
     * it gives is accepted and one token more is refused; an unknown id is the SDK's 404.
     */
    @Test
    void theSdkListsTheServedModel() throws Exception {
        var page = client.models().list();
        var models = page.data();
        assertThat(models).hasSize(1);
        var model = models.getFirst();
        model.validate();
        assertThat(model.id()).isEqualTo("stories260K");
        assertThat(model.displayName()).isEqualTo("stories260K");
        assertThat(model.lifecycle()).isEqualTo(com.anthropic.models.models.ModelInfo.Lifecycle.ACTIVE);
        assertThat(model.createdAt()).isBefore(java.time.OffsetDateTime.now().plusSeconds(1));
        assertThat(page.hasMore()).contains(false);
        assertThat(page.autoPager().stream().count()).as("one page").isEqualTo(1);
        assertThat(client.models().retrieve("stories260K").id()).isEqualTo("stories260K");
        assertThatThrownBy(() -> client.models().retrieve("claude-opus-4")).isInstanceOf(NotFoundException.class);
        long maxInput = model.maxInputTokens().orElseThrow();
        assertThat(model.maxTokens()).hasValueSatisfying(t -> assertThat(t).isPositive());
        // a prompt of exactly max_input_tokens ids fits with one token to write; one more does not
        String ids = "[" + "1,".repeat((int) maxInput - 1) + "1]";
        HttpResponse<String> fits = server.post("/v1/completions", "{\"prompt\":" + ids + ",\"max_tokens\":1}");
        assertThat(fits.statusCode()).as(fits.body()).isEqualTo(200);
        HttpResponse<String> over = server.post("/v1/completions", "{\"prompt\":[1," + ids.substring(1) + ",\"max_tokens\":1}");
        assertThat(over.statusCode()).isEqualTo(400);
    }

    @Test
    void errorsAreTypedInAnthropicsEnvelope() throws Exception {
        assertThatThrownBy(() -> client.messages().create(ask(8).model("claude-opus-4").build())).isInstanceOf(NotFoundException.class);
        assertThatThrownBy(() -> client.messages().create(ask(100_000).build()))
                .isInstanceOfSatisfying(BadRequestException.class, e -> assertThat(e.getMessage()).contains("max_tokens")
                        .doesNotContain("max_completion_tokens"));
        Object[][] cases = {
                {"{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "'max_tokens' is required"},
                {"{\"max_tokens\":4,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{}}]}]}", "'image' blocks"},
                {"{\"max_tokens\":4,\"messages\":[{\"role\":\"system\",\"content\":\"hi\"}]}", "user or assistant"},
                {"{\"max_tokens\":4,\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024},\"messages\":[{\"role\":\"user\","
                        + "\"content\":\"hi\"}]}", "less than 'max_tokens'"},
                {"{\"max_tokens\":4,\"thinking\":{\"type\":\"auto\"},\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                        "enabled, adaptive or disabled"},
                {"{\"max_tokens\":4,\"output_config\":{\"effort\":\"extreme\"},\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                        "'output_config.effort' must be one of low, medium, high, xhigh, max"},
                {"{\"max_tokens\":4,\"output_config\":{\"format\":{\"type\":\"text\"}},\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                        "'output_config.format.type' must be json_schema"},
                {"{\"max_tokens\":4,\"output_config\":{\"format\":{\"type\":\"json_schema\"}},\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                        "'output_config.format.schema' is required"},
                {"{\"max_tokens\":4,\"output_config\":[],\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                        "'output_config' must be an object"},
                // the chat parser's schema errors, named as the client named the field
                {"{\"max_tokens\":4,\"output_config\":{\"format\":{\"type\":\"json_schema\",\"schema\":{\"type\":\"string\",\"pattern\":"
                        + "\"(?=a)a+\"}}},\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "output_config.format.schema"},
                {"{\"max_tokens\":4,\"output_format\":{\"type\":\"json_schema\",\"schema\":{\"type\":\"string\",\"pattern\":"
                        + "\"(?=a)a+\"}},\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "output_format.schema"},
                {"{\"max_tokens\":4,\"output_format\":{\"type\":\"json_schema\",\"schema\":{}},\"output_config\":{\"format\":"
                        + "{\"type\":\"json_schema\",\"schema\":{}}},\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "once"},
                {"{\"max_tokens\":4000,\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":100},\"messages\":[{\"role\":\"user\","
                        + "\"content\":\"hi\"}]}", "budget_tokens"},
                {"{\"max_tokens\":4,\"tools\":[{\"type\":\"web_search_20250305\",\"name\":\"web_search\"}],\"messages\":[{\"role\":"
                        + "\"user\",\"content\":\"hi\"}]}", "server tools"},
                {"{\"max_tokens\":4,\"stop_sequences\":[\"a\",\"b\",\"c\",\"d\",\"e\"],\"messages\":[{\"role\":\"user\",\"content\":"
                        + "\"hi\"}]}", "'stop_sequences'"},
                {"{\"max_tokens\":4,\"tool_choice\":{\"type\":\"sometimes\"},\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                        "tool_choice"},
                {"{\"max_tokens\":4,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}", "not valid JSON"},
                // Anthropic's envelope has no 'param': the message names the field
                {"{\"max_tokens\":4,\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "'n' is not supported"},
        };
        for (Object[] c : cases) {
            HttpResponse<String> r = server.post("/v1/messages", (String) c[0]);
            assertThat(r.statusCode()).as(r.body()).isEqualTo(400);
            JsonNode body = MAPPER.readTree(r.body());
            assertThat(body.get("type").asText()).as(r.body()).isEqualTo("error");
            assertThat(body.at("/error/type").asText()).isEqualTo("invalid_request_error");
            assertThat(body.at("/error/message").asText()).as(r.body()).contains((String) c[1]);
        }
        assertThat(server.post("/v1/messages", "{\"max_tokens\":4,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}")
                .statusCode()).as("still serving").isEqualTo(200);
    }

    /** With keys configured: Anthropic's clients send {@code x-api-key}, and it is accepted like a bearer token. */
    @Test
    void xApiKeyAuthenticates() throws Exception {
        String key = "sk-messages-0123456789abcdef";
        try (TestServer keyed = TestServer.start(Map.of("auth.api-keys", key))) {
            AnthropicClient good = AnthropicOkHttpClient.builder().baseUrl(keyed.base()).apiKey(key).maxRetries(0).build();
            AnthropicClient bad = AnthropicOkHttpClient.builder().baseUrl(keyed.base()).apiKey("sk-wrong").maxRetries(0).build();
            try {
                assertThat(text(good.messages().create(ask(4).build()))).isNotEmpty();
                assertThatThrownBy(() -> bad.messages().create(ask(4).build())).isInstanceOf(UnauthorizedException.class);
            } finally {
                good.close();
                bad.close();
            }
            HttpResponse<String> viaHeader = keyed.http.send(HttpRequest.newBuilder(URI.create(keyed.base() + "/v1/models"))
                    .header("x-api-key", key).GET().build(), HttpResponse.BodyHandlers.ofString());
            assertThat(viaHeader.statusCode()).as("x-api-key on the OpenAI routes too").isEqualTo(200);
        }
    }
}
