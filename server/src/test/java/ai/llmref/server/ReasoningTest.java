package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.http.HttpResponse;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * A reasoning model's {@code <think>} block, returned apart from the content
 * ({@code message.reasoning_content}, {@code delta.reasoning_content}), with the pinned tree's
 * real templates. The tiny model writes stories, never the tags, so what these tests can see end
 * to end is the reply a template leaves inside an open block (DeepSeek R1's generation prompt ends
 * with {@code <think>}: all of the reply is reasoning until a {@code </think>}) and the reply of a
 * template that leaves none open (Qwen 3: all content); where the tags fall inside a reply is
 * {@code ReasoningStreamTest}'s.
 */
class ReasoningTest {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    static ObjectNode ask(int maxTokens) {
        ObjectNode b = MAPPER.createObjectNode();
        b.putArray("messages").addObject().put("role", "user").put("content", "Why is the sky blue?");
        b.put("max_tokens", maxTokens);
        b.put("temperature", 0);
        return b;
    }

    /** {@link #ask} with a JSON schema response_format, pushed toward end-of-generation by logit_bias. */
    static ObjectNode askJson(int maxTokens) throws Exception {
        ObjectNode b = ask(maxTokens);
        b.putObject("response_format").put("type", "json_schema").putObject("json_schema").put("name", "answer")
                .set("schema", MAPPER.readTree("{\"type\":\"object\",\"properties\":{\"why\":{\"type\":\"string\",\"maxLength\":40}},"
                        + "\"required\":[\"why\"],\"additionalProperties\":false}"));
        b.putObject("logit_bias").put("2", 100); // stories260K's end of generation
        return b;
    }

    /**
     * {@link #askJson}'s request (40 tokens) answered with reasoning alone: the tiny model never
     * closes the block, and the grammar after it keeps the output from ending before max_tokens.
     */
    static JsonNode reasonsToMaxTokens(TestServer server, ObjectNode b) throws Exception {
        JsonNode out = post(server, b);
        JsonNode choice = out.get("choices").get(0);
        assertThat(choice.get("finish_reason").asText()).as(choice.toString()).isEqualTo("length");
        assertThat(out.at("/usage/completion_tokens").asInt()).as("never ended early").isEqualTo(40);
        assertThat(choice.get("message").get("reasoning_content").asText()).isNotBlank();
        assertThat(choice.get("message").get("content").asText()).isEmpty();
        return out;
    }

    /** A stream's reasoning and content deltas, joined, and its finish_reason. */
    record Streamed(String reasoning, String content, String finish, int reasoningChunks) {}

    static Streamed stream(TestServer server, ObjectNode body) throws Exception {
        ObjectNode b = body.deepCopy().put("stream", true);
        HttpResponse<String> r = server.post("/v1/chat/completions", b.toString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        StringBuilder reasoning = new StringBuilder();
        StringBuilder content = new StringBuilder();
        String finish = null;
        int chunks = 0;
        for (String line : r.body().split("\n")) {
            if (!line.startsWith("data: {")) {
                continue;
            }
            JsonNode ch = MAPPER.readTree(line.substring(6)).get("choices").get(0);
            JsonNode delta = ch.get("delta");
            if (delta.hasNonNull("reasoning_content")) {
                reasoning.append(delta.get("reasoning_content").asText());
                chunks++;
                assertThat(delta.has("content")).as("a reasoning delta carries no content").isFalse();
            }
            if (delta.hasNonNull("content")) {
                content.append(delta.get("content").asText());
            }
            if (!ch.get("finish_reason").isNull()) {
                finish = ch.get("finish_reason").asText();
            }
        }
        return new Streamed(reasoning.toString(), content.toString(), finish, chunks);
    }

    static JsonNode post(TestServer server, ObjectNode body) throws Exception {
        HttpResponse<String> r = server.post("/v1/chat/completions", body.toString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return MAPPER.readTree(r.body());
    }

    /** Streams a Messages API request into {@code acc}, each event validated; returns how many thinking deltas came. */
    static int streamThinking(com.anthropic.client.AnthropicClient client, com.anthropic.models.messages.MessageCreateParams params,
            com.anthropic.helpers.MessageAccumulator acc) {
        int[] deltas = {0};
        try (var s = client.messages().createStreaming(params)) {
            s.stream().forEach(e -> {
                e.validate();
                acc.accumulate(e);
                if (e.isContentBlockDelta() && e.asContentBlockDelta().delta().isThinking()) {
                    deltas[0]++;
                }
            });
        }
        return deltas[0];
    }

    /** The {@code encrypted_content} this server writes for a reasoning text (docs/server.md): not encrypted, encoded. */
    static String encryptedByThisServer(String text) {
        return "llmref.v1." + java.util.Base64.getUrlEncoder().withoutPadding().encodeToString(text.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }

    /** A server rendering one of the pinned tree's templates, for a nested class's tests. */
    abstract static class WithTemplate {
        TestServer server;

        abstract String templateFile();

        @BeforeAll
        void start() throws Exception {
            server = TestServer.start(Map.of("model.chat-template", ToolCallsTest.template(templateFile()),
                    "engine.slot-context", "2048", "engine.slots", "2"));
        }

        @AfterAll
        void stop() {
            server.close();
        }
    }

    /**
     * Apriel 1.6: its prompt opens the reasoning with "Here are my reasoning steps:", and
     * {@code [BEGIN FINAL RESPONSE]} ends it (plain text). The tiny model never writes the marker:
     * its reply is all reasoning; a budget writes the marker in its place, and the model answers,
     * whole and streamed alike.
     */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class OpenBlockApriel16 extends WithTemplate {
        @Override
        String templateFile() {
            return "Apriel-1.6-15b-Thinker-fixed.jinja";
        }

        @Test
        void theReasoningStepsAreTheReasoningAndTheFinalResponseTheContent() throws Exception {
            JsonNode msg = post(server, ask(24)).get("choices").get(0).get("message");
            assertThat(msg.get("reasoning_content").asText()).as(msg.toString()).isNotBlank();
            assertThat(msg.get("content").asText()).isEmpty();
            ObjectNode b = ask(60).put("reasoning_budget_tokens", 12);
            JsonNode budgeted = post(server, b).get("choices").get(0).get("message");
            assertThat(budgeted.get("reasoning_content").asText()).as(budgeted.toString()).isNotBlank().doesNotContain("[BEGIN");
            assertThat(budgeted.get("content").asText()).as("the model answers after the marker").isNotBlank().doesNotContain("[BEGIN");
            Streamed s = stream(server, b);
            assertThat(s.reasoning()).isEqualTo(budgeted.get("reasoning_content").asText());
            assertThat(s.content()).isEqualTo(budgeted.get("content").asText());
            JsonNode none = post(server, ask(24).put("reasoning_format", "none")).get("choices").get(0).get("message");
            assertThat(none.has("reasoning_content")).isFalse();
            assertThat(none.get("content").asText()).contains(msg.get("reasoning_content").asText());
            // tools (its <tool_calls> list): a forced call comes after the reasoning, which a budget ends
            ToolCallsTest.assertCallAfterReasoning(post(server, ToolCallsTest.request("required").put("reasoning_budget_tokens", 8)),
                    "<tool_calls>");
        }
    }

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class OpenBlockDeepSeekR1 extends WithTemplate {
        @Override
        String templateFile() {
            return "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja";
        }

        /** The prompt left {@code <think>} open and no {@code </think>} came: all of the reply is reasoning, streamed alike. */
        @Test
        void aReplyInsideTheOpenBlockIsReasoning() throws Exception {
            JsonNode out = post(server, ask(24));
            JsonNode whole = out.get("choices").get(0);
            JsonNode msg = whole.get("message");
            assertThat(out.at("/usage/completion_tokens_details/reasoning_tokens").asInt()).as("all of the reply is reasoning")
                    .isEqualTo(out.at("/usage/completion_tokens").asInt()).isEqualTo(24);
            assertThat(whole.get("finish_reason").asText()).isEqualTo("length");
            assertThat(msg.get("reasoning_content").asText()).as(msg.toString()).isNotBlank();
            assertThat(msg.get("content").asText()).isEmpty();
            Streamed s = stream(server, ask(24));
            assertThat(s.reasoning()).isEqualTo(msg.get("reasoning_content").asText());
            assertThat(s.content()).isEmpty();
            assertThat(s.reasoningChunks()).as("the reasoning streams as it comes").isGreaterThan(3);
            assertThat(s.finish()).isEqualTo("length");
            ObjectNode withUsage = ask(24).put("stream", true);
            withUsage.putObject("stream_options").put("include_usage", true);
            String body = server.post("/v1/chat/completions", withUsage.toString()).body();
            JsonNode usage = null;
            for (String line : body.split("\n")) {
                if (line.startsWith("data: {") && MAPPER.readTree(line.substring(6)).get("usage") instanceof ObjectNode u) {
                    usage = u;
                }
            }
            assertThat(usage).as(body).isNotNull();
            assertThat(usage.at("/completion_tokens_details/reasoning_tokens").asInt()).as("streamed: the same count").isEqualTo(24);
            // reasoning_format "none": the reply as the model wrote it, in the content
            JsonNode noneOut = post(server, ask(24).put("reasoning_format", "none"));
            assertThat(noneOut.at("/usage/completion_tokens_details").isMissingNode()).isTrue();
            JsonNode none = noneOut.get("choices").get(0).get("message");
            assertThat(none.has("reasoning_content")).isFalse();
            assertThat(none.get("content").asText()).as("the same text, untrimmed").contains(msg.get("reasoning_content").asText());
            Streamed noneStreamed = stream(server, ask(24).put("reasoning_format", "none"));
            assertThat(noneStreamed.reasoningChunks()).isZero();
            assertThat(noneStreamed.content()).isEqualTo(none.get("content").asText());
        }

        /**
         * A JSON response_format after the block the prompt left open: the model reasons first
         * and the grammar applies from the {@code </think>} on. The tiny model never closes the
         * block, so its reply is all reasoning, cut by max_tokens (content ""), never a 500; and
         * the output cannot end before the grammar: pushed toward end-of-generation by logit_bias,
         * it still runs to max_tokens. With {@code reasoning_format: "none"} the grammar applies
         * from the start and its JSON is the content, checked as always.
         */
        @Test
        void aJsonResponseFormatComesAfterTheReasoning() throws Exception {
            ObjectNode b = askJson(40);
            JsonNode choice = reasonsToMaxTokens(server, b).get("choices").get(0);
            Streamed s = stream(server, b);
            assertThat(s.reasoning()).isEqualTo(choice.get("message").get("reasoning_content").asText());
            assertThat(s.finish()).isEqualTo("length");
            b.remove("logit_bias");
            b.put("reasoning_format", "none").put("max_tokens", 120);
            JsonNode json = post(server, b).get("choices").get(0);
            assertThat(json.get("finish_reason").asText()).isEqualTo("stop");
            assertThat(json.get("message").has("reasoning_content")).isFalse();
            assertThat(MAPPER.readTree(json.get("message").get("content").asText()).get("why").isTextual()).isTrue();
        }

        /**
         * A reasoning budget: once the reasoning has taken that many tokens, the server writes the
         * message and {@code </think>} in the model's place, and the model answers (the tiny
         * model never closes the block itself). Whole and streamed alike; budget 0 closes it at
         * once; the usage counts the reasoning up to the forced tag; the metric counts each.
         */
        @Test
        void aReasoningBudgetClosesTheReasoning() throws Exception {
            ObjectNode b = ask(60).put("reasoning_budget_tokens", 12).put("reasoning_budget_message", "Time to answer.");
            JsonNode out = post(server, b);
            JsonNode msg = out.get("choices").get(0).get("message");
            assertThat(msg.get("reasoning_content").asText()).as(out.toString()).endsWith("Time to answer.");
            assertThat(msg.get("content").asText()).as("the model answers after the closed block").isNotBlank();
            int reasoningTokens = out.at("/usage/completion_tokens_details/reasoning_tokens").asInt();
            assertThat(reasoningTokens).as("the budget, then the message and the tag").isGreaterThan(12)
                    .isLessThan(out.at("/usage/completion_tokens").asInt());
            Streamed s = stream(server, b);
            assertThat(s.reasoning()).isEqualTo(msg.get("reasoning_content").asText());
            assertThat(s.content()).isEqualTo(msg.get("content").asText());
            JsonNode thinking = post(server, ask(60).put("thinking_budget_tokens", 12)).get("choices").get(0).get("message");
            assertThat(thinking.get("reasoning_content").asText()).as("llama-server's other name; no message")
                    .isEqualTo(msg.get("reasoning_content").asText().replace("Time to answer.", "").strip());
            JsonNode none = post(server, ask(30).put("reasoning_budget_tokens", 0));
            assertThat(none.get("choices").get(0).get("message").has("reasoning_content")).as(none.toString()).isFalse();
            assertThat(none.get("choices").get(0).get("message").get("content").asText()).isNotBlank();
            double spent = server.getAdmin("/metrics").body().lines().filter(l -> l.startsWith("llmref_reasoning_budgets_spent_total "))
                    .mapToDouble(l -> Double.parseDouble(l.substring(l.indexOf(' ') + 1))).sum();
            assertThat(spent).as("the five budgets spent so far, at least").isGreaterThanOrEqualTo(5);
            for (String bad : new String[] {"\"reasoning_budget_tokens\":-2", "\"reasoning_budget_tokens\":\"x\"",
                    "\"reasoning_budget_message\":\"" + "x".repeat(1001) + "\""}) {
                HttpResponse<String> r = server.post("/v1/chat/completions", ask(4).toString().replaceFirst("\\{", "{" + bad + ","));
                assertThat(r.statusCode()).as(bad + ": " + r.body()).isEqualTo(400);
            }
        }

        /**
         * The budget and a JSON response_format: the server closes the reasoning, and the grammar,
         * applying from the {@code </think>} on, makes the answer a valid document (without the
         * budget the tiny model reasons until max_tokens, aJsonResponseFormatComesAfterTheReasoning).
         * The Messages API's {@code thinking.budget_tokens} is such a budget.
         */
        @Test
        void aBudgetLetsAStructuredAnswerCome() throws Exception {
            ObjectNode b = askJson(200).put("reasoning_budget_tokens", 16);
            b.remove("logit_bias");
            JsonNode choice = post(server, b).get("choices").get(0);
            assertThat(choice.get("finish_reason").asText()).as(choice.toString()).isEqualTo("stop");
            assertThat(choice.get("message").get("reasoning_content").asText()).isNotBlank();
            assertThat(MAPPER.readTree(choice.get("message").get("content").asText()).get("why").isTextual()).isTrue();
            HttpResponse<String> m = server.post("/v1/messages", "{\"max_tokens\":1100,\"temperature\":0,\"thinking\":{\"type\":"
                    + "\"enabled\",\"budget_tokens\":1024},\"messages\":[{\"role\":\"user\",\"content\":\"Why is the sky blue?\"}]}");
            assertThat(m.statusCode()).as(m.body()).isEqualTo(200);
            JsonNode content = MAPPER.readTree(m.body()).get("content");
            assertThat(content.get(0).get("type").asText()).isEqualTo("thinking");
            assertThat(content.get(1).get("type").asText()).as("the answer after the closed thinking").isEqualTo("text");
            assertThat(content.get(1).get("text").asText()).isNotBlank();
        }

        /**
         * The Responses API: a {@code reasoning} item (output 0, one {@code reasoning_text} part)
         * before the message, streamed as {@code response.reasoning_text.delta} events that the
         * openai-java client validates and accumulates into the same item; {@code effort: "none"}
         * asks the template not to think (DeepSeek R1's then closes its block: no reasoning item);
         * a reasoning item sent back in {@code input} is taken (and dropped).
         */
        @Test
        void theResponsesApiGivesAReasoningItem() throws Exception {
            com.openai.client.OpenAIClient client = server.openAiClient();
            var params = com.openai.models.responses.ResponseCreateParams.builder().model("stories260K").input("Why is the sky blue?")
                    .maxOutputTokens(24).temperature(0.0).build();
            var whole = client.responses().create(params);
            whole.validate();
            var items = whole.output();
            assertThat(items.getFirst().isReasoning()).as(items.toString()).isTrue();
            var reasoning = items.getFirst().asReasoning();
            String text = reasoning.content().orElseThrow().getFirst().text();
            assertThat(text).isNotBlank();
            assertThat(reasoning.id()).startsWith("rs_");
            assertThat(whole.usage().orElseThrow().outputTokensDetails().reasoningTokens()).isEqualTo(24);
            assertThat(items.get(1).isMessage()).isTrue();
            var acc = com.openai.helpers.ResponseAccumulator.create();
            java.util.List<String> types = new java.util.ArrayList<>();
            try (var s = client.responses().createStreaming(params)) {
                s.stream().forEach(e -> {
                    e.validate();
                    acc.accumulate(e);
                    types.add(e._json().orElseThrow().convert(JsonNode.class).get("type").asText());
                });
            }
            assertThat(types).containsSubsequence("response.output_item.added", "response.content_part.added",
                    "response.reasoning_text.delta", "response.reasoning_text.done", "response.content_part.done",
                    "response.output_item.done", "response.output_item.added", "response.incomplete");
            assertThat(types.stream().filter("response.reasoning_text.delta"::equals).count()).isGreaterThan(3);
            var streamed = acc.response().output();
            assertThat(streamed.getFirst().asReasoning().content().orElseThrow().getFirst().text()).isEqualTo(text);
            assertThat(streamed.get(1).isMessage()).isTrue();
            // effort "none": no thinking asked, the block closed in the prompt, no reasoning item
            ObjectNode none = MAPPER.createObjectNode().put("model", "stories260K").put("input", "Why is the sky blue?")
                    .put("max_output_tokens", 24).put("temperature", 0);
            none.putObject("reasoning").put("effort", "none");
            HttpResponse<String> r = server.post("/v1/responses", none.toString());
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
            JsonNode out = MAPPER.readTree(r.body());
            assertThat(out.get("output").get(0).get("type").asText()).isEqualTo("message");
            assertThat(out.at("/reasoning/effort").asText()).isEqualTo("none");
            // the whole output sent back as input, the reasoning item with it
            ObjectNode again = MAPPER.createObjectNode().put("model", "stories260K").put("max_output_tokens", 8);
            com.fasterxml.jackson.databind.node.ArrayNode input = again.putArray("input");
            input.addObject().put("role", "user").put("content", "Why is the sky blue?");
            for (JsonNode item : MAPPER.readTree(server.post("/v1/responses", MAPPER.createObjectNode().put("model", "stories260K")
                    .put("input", "Why is the sky blue?").put("max_output_tokens", 24).put("temperature", 0).toString()).body()).get("output")) {
                input.add(item);
            }
            input.addObject().put("role", "user").put("content", "And at night?");
            assertThat(input.get(1).get("type").asText()).isEqualTo("reasoning");
            HttpResponse<String> back = server.post("/v1/responses", again.toString());
            assertThat(back.statusCode()).as(back.body()).isEqualTo(200);
        }

        /**
         * {@code include: ["reasoning.encrypted_content"]} (Codex and the Agents SDK send it with
         * {@code store: false}): the reasoning item carries {@code encrypted_content}, its text
         * base64url-encoded after this server's prefix, whole and streamed; not without the include.
         */
        @Test
        void encryptedReasoningContentIsGivenWhenAsked() throws Exception {
            com.openai.client.OpenAIClient client = server.openAiClient();
            var params = com.openai.models.responses.ResponseCreateParams.builder().model("stories260K").input("Why is the sky blue?")
                    .maxOutputTokens(16).temperature(0.0).store(false)
                    .addInclude(com.openai.models.responses.ResponseIncludable.REASONING_ENCRYPTED_CONTENT).build();
            var whole = client.responses().create(params);
            whole.validate();
            var reasoning = whole.output().getFirst().asReasoning();
            String text = reasoning.content().orElseThrow().getFirst().text();
            String encrypted = reasoning.encryptedContent().orElseThrow();
            assertThat(encrypted).isEqualTo(encryptedByThisServer(text)).doesNotContain(text);
            var acc = com.openai.helpers.ResponseAccumulator.create();
            try (var s = client.responses().createStreaming(params)) {
                s.stream().forEach(acc::accumulate);
            }
            assertThat(acc.response().output().getFirst().asReasoning().encryptedContent()).contains(encrypted);
            assertThat(client.responses().create(params.toBuilder().include(java.util.List.of()).build()).output().getFirst()
                    .asReasoning().encryptedContent()).as("not without include").isEmpty();

        }

        /**
         * The Messages API: with {@code thinking} enabled a {@code thinking} block comes first,
         * streamed as {@code thinking_delta}s that the anthropic-java SDK accumulates into the same
         * block; without it the template is asked not to think (no thinking block); a thinking
         * block sent back in the conversation is taken (and dropped).
         */
        @Test
        void theMessagesApiGivesAThinkingBlock() throws Exception {
            var client = com.anthropic.client.okhttp.AnthropicOkHttpClient.builder().baseUrl(server.base()).apiKey("unused").maxRetries(0)
                    .build();
            var params = com.anthropic.models.messages.MessageCreateParams.builder().model("stories260K").addUserMessage("Why is the sky blue?")
                    .maxTokens(1025).enabledThinking(1024).putAdditionalBodyProperty("temperature", com.anthropic.core.JsonValue.from(0))
                    .build();
            var whole = client.messages().create(params);
            whole.validate();
            var first = whole.content().getFirst();
            assertThat(first.isThinking()).as(whole.content().toString()).isTrue();
            String thinking = first.asThinking().thinking();
            assertThat(thinking).isNotBlank();
            var acc = com.anthropic.helpers.MessageAccumulator.create();
            assertThat(streamThinking(client, params, acc)).isGreaterThan(3);
            assertThat(acc.message().content().getFirst().asThinking().thinking()).isEqualTo(thinking);
            assertThat(acc.message().content().get(1).isText()).isTrue();
            var plain = client.messages().create(params.toBuilder().thinking(com.anthropic.models.messages.ThinkingConfigParam.ofDisabled(
                    com.anthropic.models.messages.ThinkingConfigDisabled.builder().build())).build());
            assertThat(plain.content().stream().noneMatch(b -> b.isThinking())).as(plain.content().toString()).isTrue();
            var back = client.messages().create(params.toBuilder().addMessage(whole).addUserMessage("And at night?").build());
            back.validate();
        }

        /**
         * The Messages API's adaptive thinking ({@code {"type":"adaptive"}}: the model decides how
         * far to think, no budget) asks the template to think as enabled thinking does; with
         * {@code display: "omitted"} the thinking block comes without its text, whole and streamed
         * (no thinking_delta), and the text after it is the same.
         */
        @Test
        void theMessagesApiThinksAdaptivelyAndOmitsTheThinkingWhenAsked() throws Exception {
            var client = com.anthropic.client.okhttp.AnthropicOkHttpClient.builder().baseUrl(server.base()).apiKey("unused").maxRetries(0)
                    .build();
            var budgeted = client.messages().create(com.anthropic.models.messages.MessageCreateParams.builder().model("stories260K")
                    .addUserMessage("Why is the sky blue?").maxTokens(1025).enabledThinking(1024)
                    .putAdditionalBodyProperty("temperature", com.anthropic.core.JsonValue.from(0)).build());
            String thinking = budgeted.content().getFirst().asThinking().thinking();
            var adaptive = com.anthropic.models.messages.MessageCreateParams.builder().model("stories260K").addUserMessage("Why is the sky blue?")
                    .maxTokens(40).thinking(com.anthropic.models.messages.ThinkingConfigAdaptive.builder().build())
                    .putAdditionalBodyProperty("temperature", com.anthropic.core.JsonValue.from(0)).build();
            var whole = client.messages().create(adaptive);
            whole.validate();
            assertThat(whole.stopReason()).hasValue(com.anthropic.models.messages.StopReason.MAX_TOKENS);
            String adaptiveThinking = whole.content().getFirst().asThinking().thinking();
            assertThat(adaptiveThinking).as("thinking without a budget: the same start").isNotBlank();
            assertThat(thinking).startsWith(adaptiveThinking);
            // display omitted, with enabled thinking: the same reply, its thinking block empty
            var omitted = com.anthropic.models.messages.MessageCreateParams.builder().model("stories260K").addUserMessage("Why is the sky blue?")
                    .maxTokens(1040).thinking(com.anthropic.models.messages.ThinkingConfigEnabled.builder().budgetTokens(1024)
                            .display(com.anthropic.models.messages.ThinkingConfigEnabled.Display.OMITTED).build())
                    .putAdditionalBodyProperty("temperature", com.anthropic.core.JsonValue.from(0)).build();
            var quiet = client.messages().create(omitted);
            quiet.validate();
            assertThat(quiet.content().getFirst().asThinking().thinking()).isEmpty();
            String text = quiet.content().get(1).asText().text();
            assertThat(text).as(quiet.content().toString()).isNotBlank();
            assertThat(quiet.usage().outputTokens()).as("the thinking was written, only not sent").isGreaterThan(1024);
            var acc = com.anthropic.helpers.MessageAccumulator.create();
            assertThat(streamThinking(client, omitted, acc)).isZero();
            assertThat(acc.message().content().getFirst().asThinking().thinking()).isEmpty();
            assertThat(acc.message().content().get(1).asText().text()).isEqualTo(text);
            HttpResponse<String> bad = server.post("/v1/messages", "{\"model\":\"stories260K\",\"max_tokens\":8,\"messages\":"
                    + "[{\"role\":\"user\",\"content\":\"hi\"}],\"thinking\":{\"type\":\"adaptive\",\"display\":\"full\"}}");
            assertThat(bad.statusCode()).as(bad.body()).isEqualTo(400);
            assertThat(MAPPER.readTree(bad.body()).at("/error/message").asText()).contains("thinking.display");
        }

        @Test
        void badReasoningParametersAreA400() throws Exception {
            for (String[] c : new String[][] {
                    {"\"reasoning_format\":\"deepseek-legacy\"", "reasoning_format", "invalid_value"},
                    {"\"reasoning_format\":true", "reasoning_format", null},
                    {"\"chat_template_kwargs\":[1]", "chat_template_kwargs", null},
                    // the message would close the reasoning itself, before the budget's own tag
                    {"\"reasoning_budget_tokens\":2,\"reasoning_budget_message\":\"ok</think>\"", "reasoning_budget_message", "invalid_value"}}) {
                String body = ask(4).toString();
                body = body.substring(0, body.length() - 1) + "," + c[0] + "}";
                HttpResponse<String> r = server.post("/v1/chat/completions", body);
                assertThat(r.statusCode()).as(body + " " + r.body()).isEqualTo(400);
                JsonNode err = MAPPER.readTree(r.body()).get("error");
                assertThat(err.get("param").asText()).isEqualTo(c[1]);
                if (c[2] != null) {
                    assertThat(err.get("code").asText()).isEqualTo(c[2]);
                }
            }
        }
    }

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class ReplyOpensTheBlockQwen3 extends WithTemplate {
        @Override
        String templateFile() {
            return "Qwen-Qwen3-0.6B.jinja";
        }

        /**
         * Qwen 3 leaves no block open: a reply that does not open with {@code <think>} is all
         * content. {@code chat_template_kwargs} reach the template: {@code enable_thinking: false}
         * writes an empty block into the prompt (more prompt tokens).
         */
        @Test
        void aReplyWithoutTheTagIsContentAndTemplateVariablesReachTheTemplate() throws Exception {
            JsonNode thinking = post(server, ask(16));
            JsonNode msg = thinking.get("choices").get(0).get("message");
            assertThat(msg.has("reasoning_content")).isFalse();
            assertThat(thinking.at("/usage/completion_tokens_details/reasoning_tokens").asInt()).as("no reasoning").isZero();
            assertThat(thinking.at("/usage/completion_tokens_details/reasoning_tokens").isInt()).isTrue();
            assertThat(msg.get("content").asText()).isNotBlank();
            ObjectNode off = ask(16);
            off.putObject("chat_template_kwargs").put("enable_thinking", false);
            JsonNode plain = post(server, off);
            assertThat(plain.get("usage").get("prompt_tokens").asInt()).as("the empty <think></think> block in the prompt")
                    .isGreaterThan(thinking.get("usage").get("prompt_tokens").asInt());
            assertThat(plain.get("choices").get(0).get("message").has("reasoning_content")).isFalse();
            Streamed s = stream(server, ask(16));
            assertThat(s.reasoningChunks()).isZero();
            assertThat(s.content()).isEqualTo(msg.get("content").asText());
        }

        /**
         * A reasoning item sent back with only {@code encrypted_content} (as Codex and the Agents
         * SDK keep it with {@code store: false}) puts the same reasoning in the prompt as its text
         * would: the counts of {@code /v1/responses/input_tokens} agree. Another server's encrypted
         * content is accepted and adds nothing (it cannot be read); a damaged one of this server's
         * is a 400 naming it. (The server writes it: {@code OpenBlockDeepSeekR1}.)
         */
        @Test
        void encryptedReasoningContentComesBackAsTheReasoning() throws Exception {
            String text = "The user wants the weather in Paris, so I call the tool.";
            String encrypted = encryptedByThisServer(text);
            String tool = "[{\"type\":\"function\",\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\"}}]";
            java.util.function.Function<String, Long> count = item -> {
                try {
                    HttpResponse<String> r = server.post("/v1/responses/input_tokens", "{\"tools\":" + tool + ",\"input\":[{\"role\":"
                            + "\"user\",\"content\":\"Weather in Paris?\"}" + item + ",{\"type\":\"function_call\",\"call_id\":\"call_1\","
                            + "\"name\":\"get_weather\",\"arguments\":\"{}\"},{\"type\":\"function_call_output\",\"call_id\":\"call_1\","
                            + "\"output\":\"sunny\"}]}");
                    assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
                    return MAPPER.readTree(r.body()).get("input_tokens").asLong();
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            };
            long withText = count.apply(",{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[],\"content\":[{\"type\":"
                    + "\"reasoning_text\",\"text\":" + MAPPER.writeValueAsString(text) + "}]}");
            long withEncrypted = count.apply(",{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[],\"encrypted_content\":\""
                    + encrypted + "\"}");
            long without = count.apply("");
            assertThat(withText).as("the reasoning is rendered").isGreaterThan(without + 5);
            assertThat(withEncrypted).isEqualTo(withText);
            assertThat(count.apply(",{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[],\"encrypted_content\":\"gAAAAABo\"}"))
                    .as("another server's: accepted, unread").isEqualTo(without);
            HttpResponse<String> damaged = server.post("/v1/responses/input_tokens", "{\"input\":[{\"type\":\"reasoning\",\"summary\":[],"
                    + "\"encrypted_content\":\"llmref.v1.%%%\"},{\"role\":\"user\",\"content\":\"Hi\"}]}");
            assertThat(damaged.statusCode()).isEqualTo(400);
            assertThat(MAPPER.readTree(damaged.body()).at("/error/param").asText()).isEqualTo("input[0].encrypted_content");
        }

        /**
         * An earlier turn's reasoning sent back reaches the template, which renders it in the
         * turns after the last user message (Qwen 3's, in a tool loop): chat's
         * {@code reasoning_content}, the Responses API's reasoning item, the Messages API's
         * thinking block each make the prompt longer by the same text.
         */
        @Test
        void earlierReasoningSentBackReachesTheTemplate() throws Exception {
            String why = "The user wants the weather in Paris, so I call the tool.";
            String tools = "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\"}}}]";
            String call = "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{}\"}}";
            java.util.function.Function<String, Integer> chat = extra -> {
                try {
                    JsonNode r = post(server, (ObjectNode) MAPPER.readTree("{\"max_tokens\":1,\"tools\":" + tools + ",\"messages\":["
                            + "{\"role\":\"user\",\"content\":\"Weather in Paris?\"},{\"role\":\"assistant\",\"content\":null" + extra
                            + ",\"tool_calls\":[" + call + "]},{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"sunny\"}]}"));
                    return r.get("usage").get("prompt_tokens").asInt();
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            };
            int without = chat.apply("");
            int with = chat.apply(",\"reasoning_content\":\"" + why + "\"");
            assertThat(with).as("chat: reasoning_content rendered").isGreaterThan(without + 5);
            java.util.function.Function<String, Integer> responses = extra -> {
                try {
                    HttpResponse<String> r = server.post("/v1/responses", "{\"max_output_tokens\":1,\"tools\":[{\"type\":\"function\","
                            + "\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\"}}],\"input\":[{\"role\":\"user\",\"content\":"
                            + "\"Weather in Paris?\"}," + extra + "{\"type\":\"function_call\",\"call_id\":\"call_1\",\"name\":\"get_weather\","
                            + "\"arguments\":\"{}\"},{\"type\":\"function_call_output\",\"call_id\":\"call_1\",\"output\":\"sunny\"}]}");
                    assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
                    return MAPPER.readTree(r.body()).get("usage").get("input_tokens").asInt();
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            };
            assertThat(responses.apply("")).isEqualTo(without);
            assertThat(responses.apply("{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[],\"content\":[{\"type\":\"reasoning_text\","
                    + "\"text\":\"" + why + "\"}]},")).as("Responses: the reasoning item rendered").isEqualTo(with);
            java.util.function.Function<String, Integer> messages = extra -> {
                try {
                    HttpResponse<String> r = server.post("/v1/messages/count_tokens", "{\"tools\":[{\"name\":\"get_weather\","
                            + "\"input_schema\":{\"type\":\"object\"}}],\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
                            + "{\"role\":\"assistant\",\"content\":[" + extra + "{\"type\":\"tool_use\",\"id\":\"call_1\",\"name\":"
                            + "\"get_weather\",\"input\":{}}]},{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
                            + "\"call_1\",\"content\":\"sunny\"}]}]}");
                    assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
                    return MAPPER.readTree(r.body()).get("input_tokens").asInt();
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            };
            int plainMessages = messages.apply("");
            assertThat(messages.apply("{\"type\":\"thinking\",\"thinking\":\"" + why + "\",\"signature\":\"\"},"))
                    .as("Messages: the thinking block rendered").isEqualTo(plainMessages + (with - without));
        }

        /**
         * Qwen 3 asked to think (its template reads {@code enable_thinking}, true unless told
         * otherwise) opens its reply with a block; under a JSON response_format or a forced call
         * the prompt opens it for the model, so that the grammar applies after the reasoning, as
         * where the template leaves the block open: the reply is reasoning (all of it here, the
         * tiny model never closes the block), it cannot end before the grammar, and the prompt
         * is longer by the opened tag. Told not to think (the template writes an empty block),
         * the grammar applies from the start and the JSON is the content; so with
         * {@code reasoning_format: "none"} (no block opened). The Messages API asks the template
         * to think only with {@code thinking} enabled: then a forced call comes after reasoning.
         */
        @Test
        void aGrammarComesAfterTheReasoningTheServerOpens() throws Exception {
            ObjectNode b = askJson(40);
            JsonNode out = reasonsToMaxTokens(server, b);
            JsonNode choice = out.get("choices").get(0);
            assertThat(out.at("/usage/completion_tokens_details/reasoning_tokens").asInt()).isEqualTo(40);
            Streamed s = stream(server, b);
            assertThat(s.reasoning()).isEqualTo(choice.get("message").get("reasoning_content").asText());
            assertThat(s.content()).isEmpty();
            b.remove("logit_bias");
            b.put("max_tokens", 120);
            ObjectNode off = b.deepCopy();
            off.putObject("chat_template_kwargs").put("enable_thinking", false);
            ObjectNode none = b.deepCopy().put("reasoning_format", "none");
            for (ObjectNode plain : List.of(off, none)) {
                JsonNode r = post(server, plain);
                JsonNode json = r.get("choices").get(0);
                assertThat(json.get("finish_reason").asText()).as(json.toString()).isEqualTo("stop");
                assertThat(json.get("message").has("reasoning_content")).isFalse();
                assertThat(MAPPER.readTree(json.get("message").get("content").asText()).get("why").isTextual()).isTrue();
            }
            int opened = out.get("usage").get("prompt_tokens").asInt();
            assertThat(opened).as("the <think> the server wrote into the prompt")
                    .isGreaterThan(post(server, none.put("max_tokens", 1)).get("usage").get("prompt_tokens").asInt());
            // the Messages API: a forced call after reasoning only when thinking is enabled
            String tools = "\"tools\":[{\"name\":\"get_weather\",\"input_schema\":{\"type\":\"object\",\"properties\":{\"city\":"
                    + "{\"type\":\"string\"}},\"required\":[\"city\"]}}],\"tool_choice\":{\"type\":\"any\"},"
                    + "\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"}]";
            HttpResponse<String> thinking = server.post("/v1/messages", "{\"max_tokens\":1100,\"temperature\":0,"
                    + "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024}," + tools + "}");
            assertThat(thinking.statusCode()).as(thinking.body()).isEqualTo(200);
            JsonNode thought = MAPPER.readTree(thinking.body());
            assertThat(thought.get("content").get(0).get("type").asText()).as(thinking.body()).isEqualTo("thinking");
            assertThat(thought.get("stop_reason").asText()).isEqualTo("max_tokens");
            HttpResponse<String> direct = server.post("/v1/messages", "{\"max_tokens\":250,\"temperature\":0,"
                    + tools.replace("\"any\"", "\"any\",\"disable_parallel_tool_use\":true") + "}");
            assertThat(direct.statusCode()).as(direct.body()).isEqualTo(200);
            JsonNode called = MAPPER.readTree(direct.body());
            assertThat(called.get("stop_reason").asText()).as(direct.body()).isEqualTo("tool_use");
            JsonNode use = called.get("content").get(called.get("content").size() - 1);
            assertThat(use.get("type").asText()).isEqualTo("tool_use");
            assertThat(use.get("input").get("city").isTextual()).isTrue();
        }

        /** Tools under auto with a reasoning template: the reply, free, is content, streamed alike. */
        @Test
        void toolsUnderAutoKeepTheReplyAsContent() throws Exception {
            ObjectNode b = ask(16);
            b.putArray("tools").addObject().put("type", "function").putObject("function").put("name", "get_weather")
                    .set("parameters", MAPPER.readTree("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}"));
            JsonNode msg = post(server, b).get("choices").get(0).get("message");
            assertThat(msg.has("reasoning_content")).isFalse();
            assertThat(msg.get("content").asText()).isNotBlank();
            assertThat(stream(server, b).content()).isEqualTo(msg.get("content").asText());
        }
    }

    /**
     * QwQ leaves {@code <think>} open and writes Hermes calls: a forced call comes after the
     * reasoning. The tiny model never closes the block, so the reply is all reasoning, cut by
     * max_tokens, with no call and no 500, even pushed toward its end; with
     * {@code reasoning_format: "none"} the call's grammar applies from the start and the call is
     * whole and valid.
     */
    @Test
    void aForcedCallComesAfterTheReasoning() throws Exception {
        try (TestServer server = TestServer.start(Map.of("model.chat-template", ToolCallsTest.template("Qwen-QwQ-32B.jinja"),
                "engine.slot-context", "2048", "engine.slots", "2"))) {
            ObjectNode b = ToolCallsTest.request("required").put("max_tokens", 40);
            b.putObject("logit_bias").put("2", 100);
            JsonNode out = post(server, b);
            JsonNode choice = out.get("choices").get(0);
            assertThat(choice.get("finish_reason").asText()).as(choice.toString()).isEqualTo("length");
            assertThat(out.at("/usage/completion_tokens").asInt()).isEqualTo(40);
            assertThat(choice.get("message").get("reasoning_content").asText()).isNotBlank();
            assertThat(choice.get("message").has("tool_calls")).isFalse();
            b.remove("logit_bias");
            b.put("reasoning_format", "none").put("max_tokens", 250);
            JsonNode forced = post(server, b).get("choices").get(0);
            assertThat(forced.get("finish_reason").asText()).as(forced.toString()).isEqualTo("tool_calls");
            ToolCallsTest.assertValidCall(forced.get("message").get("tool_calls").get(0));
        }
    }

    /**
     * The templates the server opens a block for under a grammar: those that write the tags and
     * read {@code enable_thinking}, whose prompt, asked to think, neither leaves a block open nor
     * closes one (the model opens its own) and, asked not to, ends with an empty block. Templates
     * with the tags and no switch (Kimi K2 Thinking, LFM 2.5, Granite 3.3: the tags may only strip
     * earlier turns' reasoning) are left alone.
     */
    @Test
    void theTemplatesThatThinkWhenAskedAreTheOnesOpenedFor() throws Exception {
        List<ai.llmref.server.chat.ChatMessage> hi = List.of(ai.llmref.server.chat.ChatMessage.of("user", "Hi"));
        for (String file : List.of("Qwen-Qwen3-0.6B.jinja", "HuggingFaceTB-SmolLM3-3B.jinja", "GLM-4.6.jinja")) {
            String source = ToolCallsTest.template(file);
            assertThat(ai.llmref.server.structured.ReasoningStream.switchedBy(source)).as(file).isTrue();
            var renderer = new ai.llmref.server.chat.ChatTemplateRenderer(source, "<s>", "</s>");
            String on = renderer.render(hi, true, null, Map.of("enable_thinking", true));
            String off = renderer.render(hi, true, null, Map.of("enable_thinking", false));
            assertThat(ai.llmref.server.structured.ReasoningStream.THINK.leftOpen(on)).as(file).isFalse();
            assertThat(ai.llmref.server.structured.ReasoningStream.THINK.closedAtEnd(on)).as(file).isFalse();
            assertThat(ai.llmref.server.structured.ReasoningStream.THINK.closedAtEnd(off)).as(file + ": " + off).isTrue();
        }
        for (String file : List.of("Kimi-K2-Thinking.jinja", "LFM2.5-8B-A1B.jinja", "ibm-granite-granite-3.3-2B-Instruct.jinja")) {
            String source = ToolCallsTest.template(file);
            assertThat(ai.llmref.server.structured.ReasoningStream.usedBy(source)).as(file).isTrue();
            assertThat(ai.llmref.server.structured.ReasoningStream.switchedBy(source)).as(file).isFalse();
        }
    }

    /** model.reasoning-format none: the reply as the model wrote it, whatever the template. */
    @Test
    void theOperatorCanTurnItOff() throws Exception {
        try (TestServer server = TestServer.start(Map.of("model.chat-template",
                ToolCallsTest.template("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja"), "engine.slot-context", "1024",
                "model.reasoning-format", "none"))) {
            JsonNode msg = post(server, ask(16)).get("choices").get(0).get("message");
            assertThat(msg.has("reasoning_content")).isFalse();
            assertThat(msg.get("content").asText()).isNotBlank();
        }
    }
}
