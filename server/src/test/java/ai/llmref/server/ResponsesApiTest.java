package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.llmref.server.OpenAiStructuredClientTest.Forecast;
import ai.llmref.server.OpenAiStructuredClientTest.GetWeather;
import ai.llmref.server.structured.SchemaCorpus;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.openai.client.OpenAIClient;
import com.openai.core.JsonValue;
import com.openai.core.http.StreamResponse;
import com.openai.errors.BadRequestException;
import com.openai.errors.NotFoundException;
import com.openai.helpers.ResponseAccumulator;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.responses.Response;
import com.openai.models.responses.ResponseCreateParams;
import com.openai.models.responses.ResponseFunctionToolCall;
import com.openai.models.responses.ResponseIncludable;
import com.openai.models.responses.ResponseInputItem;
import com.openai.models.responses.ResponseOutputItem;
import com.openai.models.responses.ResponseOutputText;
import com.openai.models.responses.ResponseStatus;
import com.openai.models.responses.ResponseStreamEvent;
import com.openai.models.responses.StructuredResponse;
import com.openai.models.responses.ToolChoiceOptions;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@code POST /v1/responses} (OpenAI's Responses API) driven by the official Java client: the
 * answer equals the chat completion of the same conversation, the stream's typed events rebuild
 * the whole response in the client's own accumulator, structured output and a function-call round
 * trip work through the client's helpers (the record and the tool of {@link OpenAiStructuredClientTest}), and what the stateless server cannot honour is a typed
 * 400 naming the Responses API's field. The server renders the Qwen 2.5 tool template.
 */
@SuppressWarnings("deprecation") // seed(): not a Responses API field, sent as an extra body property
class ResponsesApiTest {
    static final ObjectMapper MAPPER = new ObjectMapper();
    static TestServer server;
    static OpenAIClient client;

    @BeforeAll
    static void start() throws Exception {
        server = ToolCallsTest.startWithToolTemplate();
        client = server.openAiClient();
    }

    @AfterAll
    static void stop() {
        client.close();
        server.close();
    }

    static ResponseCreateParams.Builder ask(long maxTokens) {
        return ResponseCreateParams.builder().model("stories260K").instructions("You tell short stories.")
                .input("Tell me about a dog.").maxOutputTokens(maxTokens).temperature(0.0);
    }

    static String text(Response r) {
        StringBuilder sb = new StringBuilder();
        for (ResponseOutputItem item : r.output()) {
            item.message().ifPresent(m -> m.content().forEach(c -> c.outputText().ifPresent(t -> sb.append(t.text()))));
        }
        return sb.toString();
    }

    @Test
    void answerEqualsTheChatCompletionOfTheSameConversation() {
        Response r = client.responses().create(ask(40).metadata(JsonValue.from(Map.of("ticket", "T-1"))).build());
        r.validate(); // every field the client's model requires, with its type
        ChatCompletion c = client.chat().completions().create(ChatCompletionCreateParams.builder().model("stories260K")
                .addSystemMessage("You tell short stories.").addUserMessage("Tell me about a dog.")
                .maxCompletionTokens(40).temperature(0.0).build());
        assertThat(r.id()).startsWith("resp_");
        assertThat(text(r)).isNotBlank().isEqualTo(c.choices().getFirst().message().content().orElseThrow());
        assertThat(r.usage().orElseThrow().inputTokens()).isEqualTo(c.usage().orElseThrow().promptTokens());
        assertThat(r.usage().orElseThrow().outputTokens()).isEqualTo(c.usage().orElseThrow().completionTokens());
        boolean cut = c.choices().getFirst().finishReason().equals(ChatCompletion.Choice.FinishReason.LENGTH);
        assertThat(r.status()).contains(cut ? ResponseStatus.INCOMPLETE : ResponseStatus.COMPLETED);
        assertThat(r.instructions().orElseThrow().asString()).isEqualTo("You tell short stories.");
        assertThat(r.maxOutputTokens()).contains(40L);
        assertThat(r.metadata().orElseThrow()._additionalProperties().get("ticket")).isEqualTo(JsonValue.from("T-1"));
        assertThat(r.output()).hasSize(1);
        assertThat(r.output().getFirst().asMessage().id()).startsWith("msg_");
    }

    @Test
    void lengthCutIsIncompleteWithItsReason() {
        Response r = client.responses().create(ask(3).build());
        r.validate();
        assertThat(r.status()).contains(ResponseStatus.INCOMPLETE);
        assertThat(r.incompleteDetails().orElseThrow().reason()).contains(Response.IncompleteDetails.Reason.MAX_OUTPUT_TOKENS);
        assertThat(r.usage().orElseThrow().outputTokens()).isEqualTo(3);
        assertThat(r.output().getFirst().asMessage().status().asString()).isEqualTo("incomplete");
    }

    @Test
    void streamedEventsRebuildTheWholeResponse() {
        Response whole = client.responses().create(ask(40).build());
        ResponseAccumulator acc = ResponseAccumulator.create();
        List<ResponseStreamEvent> events = new ArrayList<>();
        StringBuilder deltas = new StringBuilder();
        try (StreamResponse<ResponseStreamEvent> s = client.responses().createStreaming(ask(40).build())) {
            s.stream().forEach(e -> {
                e.validate();
                events.add(e);
                acc.accumulate(e); // the client's own reassembly: throws on an event out of order
                e.outputTextDelta().ifPresent(d -> deltas.append(d.delta()));
            });
        }
        assertThat(events.getFirst().isCreated()).isTrue();
        assertThat(events.get(1).isInProgress()).isTrue();
        assertThat(events.getLast().isCompleted() || events.getLast().isIncomplete()).isTrue();
        List<Long> sequence = events.stream().map(ResponsesApiTest::sequenceNumber).toList();
        for (int i = 0; i < sequence.size(); i++) {
            assertThat(sequence.get(i)).as("sequence numbers count from 0 without gaps").isEqualTo(i);
        }
        Response rebuilt = acc.response();
        assertThat(deltas.toString()).isEqualTo(text(whole));
        assertThat(text(rebuilt)).isEqualTo(text(whole));
        assertThat(rebuilt.status()).isEqualTo(whole.status());
        assertThat(rebuilt.usage().orElseThrow().outputTokens()).isEqualTo(whole.usage().orElseThrow().outputTokens());
    }

    static long sequenceNumber(ResponseStreamEvent e) {
        return e._json().orElseThrow().convert(JsonNode.class).get("sequence_number").asLong();
    }

    @Test
    void structuredOutputParsesIntoARecord() {
        StructuredResponse<Forecast> r = client.responses().create(ResponseCreateParams.builder().model("stories260K")
                .input("What will the weather be tomorrow?").text(Forecast.class).maxOutputTokens(200).temperature(0.7)
                .putAdditionalBodyProperty("seed", JsonValue.from(5)).build());
        assertThat(r.status()).contains(ResponseStatus.COMPLETED);
        Forecast f = r.output().getFirst().asMessage().content().getFirst().asOutputText();
        assertThat(f.sky()).isNotNull();
    }

    @Test
    void functionCallRoundTrip() {
        var first = ResponseCreateParams.builder().model("stories260K").input("Is it cold in Oslo?")
                .addTool(GetWeather.class).toolChoice(ToolChoiceOptions.REQUIRED).parallelToolCalls(false).maxOutputTokens(200).temperature(0.7)
                .putAdditionalBodyProperty("seed", JsonValue.from(9)).build();
        Response r = client.responses().create(first);
        r.validate();
        assertThat(r.status()).contains(ResponseStatus.COMPLETED);
        ResponseFunctionToolCall call = r.output().stream().filter(ResponseOutputItem::isFunctionCall).findFirst().orElseThrow()
                .asFunctionCall();
        assertThat(call.name()).isEqualTo("GetWeather");
        assertThat(call.callId()).startsWith("call_");
        var args = call.arguments(GetWeather.class); // the client parses and checks the arguments
        assertThat(args.unit()).isNotNull();

        Response answer = client.responses().create(ResponseCreateParams.builder().model("stories260K")
                .inputOfResponse(List.of(
                        ResponseInputItem.ofEasyInputMessage(com.openai.models.responses.EasyInputMessage.builder()
                                .role(com.openai.models.responses.EasyInputMessage.Role.USER).content("Is it cold in Oslo?").build()),
                        ResponseInputItem.ofFunctionCall(call),
                        ResponseInputItem.ofFunctionCallOutput(ResponseInputItem.FunctionCallOutput.builder().callId(call.callId())
                                .output("2 degrees and snowing").build())))
                .addTool(GetWeather.class).maxOutputTokens(16).temperature(0.0).build());
        answer.validate();
        // the call and its output are rendered into the prompt
        assertThat(answer.usage().orElseThrow().inputTokens()).isGreaterThan(r.usage().orElseThrow().inputTokens() + 5);
    }

    /**
     * OpenAI's {@code POST /v1/responses/input_tokens} through the client's
     * {@code responses().inputTokens().count()}: the count is the {@code usage.input_tokens} the
     * same request is answered with (instructions, a tool, a function call and its output in the
     * input all rendered), and its errors are the Responses API's. llama-server's
     * {@code /v1/chat/completions/input_tokens} counts a chat request as the chat route does.
     */
    @Test
    void inputTokensCountWhatTheResponseUses() throws Exception {
        var created = ResponseCreateParams.builder().model("stories260K").instructions("You answer about weather.")
                .inputOfResponse(List.of(
                        ResponseInputItem.ofEasyInputMessage(com.openai.models.responses.EasyInputMessage.builder()
                                .role(com.openai.models.responses.EasyInputMessage.Role.USER).content("Is it cold in Oslo?").build()),
                        ResponseInputItem.ofFunctionCall(ResponseFunctionToolCall.builder().callId("call_1").name("GetWeather")
                                .arguments("{\"city\":\"Oslo\",\"unit\":\"celsius\"}").build()),
                        ResponseInputItem.ofFunctionCallOutput(ResponseInputItem.FunctionCallOutput.builder().callId("call_1")
                                .output("2 degrees and snowing").build())))
                .addTool(GetWeather.class).maxOutputTokens(4).temperature(0.0).build();
        Response r = client.responses().create(created);
        var counted = client.responses().inputTokens().count(com.openai.models.responses.inputtokens.InputTokenCountParams.builder()
                .model("stories260K").instructions("You answer about weather.")
                .input(com.openai.models.responses.inputtokens.InputTokenCountParams.Input.ofResponseInputItems(
                        created.input().orElseThrow().asResponse()))
                .tools(created.tools().orElseThrow()).build());
        counted.validate();
        assertThat(counted._object_()).isEqualTo(JsonValue.from("response.input_tokens"));
        assertThat(counted.inputTokens()).isEqualTo(r.usage().orElseThrow().inputTokens()).isGreaterThan(20);
        long plain = client.responses().inputTokens().count(com.openai.models.responses.inputtokens.InputTokenCountParams.builder()
                .model("stories260K").input("Is it cold in Oslo?").build()).inputTokens();
        assertThat(plain).as("the tool, the call and its output count").isLessThan(counted.inputTokens());
        assertThatThrownBy(() -> client.responses().inputTokens().count(com.openai.models.responses.inputtokens.InputTokenCountParams
                .builder().input("Hi").previousResponseId("resp_1").build()))
                .isInstanceOfSatisfying(BadRequestException.class, e -> assertThat(e.param()).contains("previous_response_id"));

        ObjectNode chat = MAPPER.createObjectNode();
        chat.putArray("messages").addObject().put("role", "user").put("content", "Is it cold in Oslo?");
        chat.put("max_tokens", 1);
        long promptTokens = MAPPER.readTree(server.post("/v1/chat/completions", chat.toString()).body()).at("/usage/prompt_tokens").asLong();
        for (String path : List.of("/v1/chat/completions/input_tokens", "/chat/completions/input_tokens")) {
            HttpResponse<String> c = server.post(path, chat.toString());
            assertThat(c.statusCode()).as(c.body()).isEqualTo(200);
            assertThat(MAPPER.readTree(c.body()).get("input_tokens").asLong()).as(path).isEqualTo(promptTokens).isPositive();
        }
        HttpResponse<String> bad = server.post("/v1/chat/completions/input_tokens", "{\"messages\":[]}");
        assertThat(bad.statusCode()).isEqualTo(400);
        assertThat(MAPPER.readTree(bad.body()).at("/error/param").asText()).isEqualTo("messages");
        HttpResponse<String> badInput = server.post("/v1/responses/input_tokens", "{\"input\":7}");
        assertThat(badInput.statusCode()).isEqualTo(400);
        assertThat(MAPPER.readTree(badInput.body()).at("/error/param").asText()).isEqualTo("input");
    }

    /**
     * The OpenAI routes without "/v1", as llama-server serves them: a client whose base URL lacks
     * "/v1" gets the same answers.
     */
    @Test
    void routesWithoutV1AnswerAsTheirV1Routes() throws Exception {
        OpenAIClient bare = com.openai.client.okhttp.OpenAIOkHttpClient.builder().baseUrl(server.base()).apiKey("unused")
                .maxRetries(0).build();
        try {
            ChatCompletionCreateParams chat = ChatCompletionCreateParams.builder().model("stories260K")
                    .addUserMessage("Tell me about a dog.").maxCompletionTokens(12).temperature(0.0).build();
            assertThat(bare.chat().completions().create(chat).choices().getFirst().message().content())
                    .isEqualTo(client.chat().completions().create(chat).choices().getFirst().message().content()).isNotEmpty();
            assertThat(text(bare.responses().create(ask(12).build()))).isEqualTo(text(client.responses().create(ask(12).build())))
                    .isNotEmpty();
            assertThat(bare.models().list().data()).extracting(com.openai.models.models.Model::id).containsExactly("stories260K");
        } finally {
            bare.close();
        }
    }

    @Test
    void streamedFunctionCallIsAccumulatedByTheClient() throws Exception {
        var params = ResponseCreateParams.builder().model("stories260K").input("Is it cold in Oslo?")
                .addTool(GetWeather.class).toolChoice(ToolChoiceOptions.REQUIRED).parallelToolCalls(false).maxOutputTokens(200).temperature(0.7)
                .putAdditionalBodyProperty("seed", JsonValue.from(9)).build();
        Response whole = client.responses().create(params);
        ResponseAccumulator acc = ResponseAccumulator.create();
        List<String> types = new ArrayList<>();
        try (StreamResponse<ResponseStreamEvent> s = client.responses().createStreaming(params)) {
            s.stream().forEach(e -> {
                e.validate();
                acc.accumulate(e);
                types.add(e._json().orElseThrow().convert(JsonNode.class).get("type").asText());
            });
        }
        assertThat(types).containsSubsequence("response.created", "response.output_item.added", "response.function_call_arguments.delta",
                "response.function_call_arguments.done", "response.output_item.done", "response.completed");
        // the arguments stream as the model writes them: many deltas, then done
        assertThat(types.stream().filter("response.function_call_arguments.delta"::equals).count()).isGreaterThan(3);
        assertThat(types.lastIndexOf("response.function_call_arguments.delta")).isLessThan(types.indexOf("response.function_call_arguments.done"));
        ResponseFunctionToolCall streamed = acc.response().output().stream().filter(ResponseOutputItem::isFunctionCall).findFirst()
                .orElseThrow().asFunctionCall();
        ResponseFunctionToolCall expected = whole.output().stream().filter(ResponseOutputItem::isFunctionCall).findFirst()
                .orElseThrow().asFunctionCall();
        assertThat(streamed.name()).isEqualTo(expected.name());
        assertThat(MAPPER.readTree(streamed.arguments())).isEqualTo(MAPPER.readTree(expected.arguments()));
        assertThat(streamed.arguments()).as("the same text, streamed or whole").isEqualTo(expected.arguments());
    }

    @Test
    void logprobsComeWithTheOutputText() {
        Response r = client.responses().create(ask(12).addInclude(ResponseIncludable.MESSAGE_OUTPUT_TEXT_LOGPROBS).topLogprobs(2L)
                .build());
        r.validate();
        ResponseOutputText t = r.output().getFirst().asMessage().content().getFirst().asOutputText();
        List<ResponseOutputText.Logprob> lp = t.logprobs().orElseThrow();
        assertThat(lp).hasSize((int) r.usage().orElseThrow().outputTokens());
        assertThat(String.join("", lp.stream().map(ResponseOutputText.Logprob::token).toList())).isEqualTo(t.text());
        assertThat(lp).allSatisfy(p -> {
            assertThat(p.logprob()).isLessThanOrEqualTo(0.0);
            assertThat(p.topLogprobs()).hasSize(2);
            assertThat(p.topLogprobs().getFirst().token()).as("greedy: the pick is the most likely").isEqualTo(p.token());
        });
        Response plain = client.responses().create(ask(12).build());
        assertThat(plain.output().getFirst().asMessage().content().getFirst().asOutputText().logprobs().orElseThrow()).isEmpty();
    }

    @Test
    void clientSeesTypedErrors() {
        assertThatThrownBy(() -> client.responses().create(ask(8).previousResponseId("resp_1").build()))
                .isInstanceOfSatisfying(BadRequestException.class, e -> {
                    assertThat(e.param()).contains("previous_response_id");
                    assertThat(e.code()).contains("unsupported_parameter");
                });
        assertThatThrownBy(() -> client.responses().create(ask(8).model("gpt-5").build())).isInstanceOf(NotFoundException.class);
        // a stored response's routes: none is stored, and the 404 says so
        String id = client.responses().create(ask(4).build()).id();
        List<org.assertj.core.api.ThrowableAssert.ThrowingCallable> stored = List.of(() -> client.responses().retrieve(id),
                () -> client.responses().delete(id), () -> client.responses().inputItems().list(id), () -> client.responses().cancel(id));
        for (var call : stored) {
            assertThatThrownBy(call).isInstanceOfSatisfying(NotFoundException.class,
                    e -> assertThat(e.getMessage()).contains(id, "keeps no responses"));
        }
        assertThatThrownBy(() -> client.responses().create(ask(100_000).build()))
                .isInstanceOfSatisfying(BadRequestException.class, e -> {
                    assertThat(e.param()).contains("max_output_tokens");
                    assertThat(e.getMessage()).contains("max_output_tokens").doesNotContain("max_completion_tokens");
                });
    }

    /** Raw bodies the client libraries would not send: each a 400 (or 404) naming the field, and the server stays up. */
    @Test
    void badInputsNameTheirField() throws Exception {
        String ok = "\"model\":\"stories260K\",\"max_output_tokens\":4";
        Object[][] cases = {
                {"{" + ok + "}", "input", "invalid_request"},
                {"{" + ok + ",\"input\":7}", "input", "invalid_request"},
                {"{" + ok + ",\"input\":[]}", "input", "invalid_request"},
                {"{" + ok + ",\"input\":[\"hi\"]}", "input[0]", "invalid_request"},
                {"{" + ok + ",\"input\":[{\"content\":\"hi\"}]}", "input[0].role", "invalid_value"},
                {"{" + ok + ",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\",\"image_url\":\"http://x\"}]}]}",
                        "input[0].content[0].type", "unsupported_parameter"},
                {"{" + ok + ",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\"}]}]}", "input[0].content[0].text",
                        "invalid_request"},
                {"{" + ok + ",\"input\":[{\"type\":\"function_call\",\"name\":\"f\",\"arguments\":\"{}\"}]}", "input[0].call_id",
                        "invalid_request"},
                {"{" + ok + ",\"input\":[{\"type\":\"function_call_output\",\"call_id\":\"c\"}]}", "input[0].output", "invalid_request"},
                {"{" + ok + ",\"input\":[{\"type\":\"item_reference\",\"id\":\"msg_1\"}]}", "input[0]", "unsupported_parameter"},
                {"{" + ok + ",\"input\":\"hi\",\"store\":true}", "store", "unsupported_parameter"},
                {"{" + ok + ",\"input\":\"hi\",\"background\":true}", "background", "unsupported_parameter"},
                {"{" + ok + ",\"input\":\"hi\",\"conversation\":\"conv_1\"}", "conversation", "unsupported_parameter"},
                {"{" + ok + ",\"input\":\"hi\",\"truncation\":\"auto\"}", "truncation", "unsupported_parameter"},
                {"{" + ok + ",\"input\":\"hi\",\"reasoning\":{\"effort\":\"extreme\"}}", "reasoning.effort", "invalid_value"},
                {"{" + ok + ",\"input\":\"hi\",\"reasoning\":{\"summary\":\"long\"}}", "reasoning.summary", "invalid_value"},
                {"{" + ok + ",\"input\":\"hi\",\"reasoning\":\"high\"}", "reasoning", "invalid_request"},
                {"{" + ok + ",\"input\":\"hi\",\"messages\":[]}", "messages", "unsupported_parameter"},
                {"{" + ok + ",\"input\":\"hi\",\"n\":2}", "n", "unsupported_parameter"},
                {"{" + ok + ",\"input\":\"hi\",\"tools\":[{\"type\":\"web_search\"}]}", "tools[0].type", "unsupported_parameter"},
                {"{" + ok + ",\"input\":\"hi\",\"tools\":[{\"type\":\"function\",\"name\":\"bad name\"}]}", "tools[0].name",
                        "invalid_value"},
                {"{" + ok + ",\"input\":\"hi\",\"tool_choice\":{\"type\":\"web_search\"}}", "tool_choice", "invalid_value"},
                {"{" + ok + ",\"input\":\"hi\",\"include\":[\"file_search_call.results\"]}", "include", "unsupported_parameter"},
                {"{" + ok + ",\"input\":\"hi\",\"top_logprobs\":3}", "top_logprobs", "invalid_request"},
                {"{" + ok + ",\"input\":\"hi\",\"text\":{\"format\":{\"type\":\"yaml\"}}}", "text.format", "invalid_value"},
                {"{" + ok + ",\"input\":\"hi\",\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"x\",\"schema\":"
                        + "{\"type\":\"string\",\"format\":\"hostname\"}}}}", "text.format.schema", "unsupported_schema"},
                {"{\"model\":\"stories260K\",\"input\":\"hi\",\"max_output_tokens\":0}", "max_output_tokens", "invalid_value"},
                {"{" + ok + ",\"input\":\"hi\",\"metadata\":{\"k\":1}}", "metadata", "invalid_value"},
        };
        for (Object[] c : cases) {
            HttpResponse<String> r = server.post("/v1/responses", (String) c[0]);
            assertThat(r.statusCode()).as((String) c[0] + " -> " + r.body()).isEqualTo(400);
            JsonNode err = MAPPER.readTree(r.body()).get("error");
            assertThat(err.get("param").asText()).as(r.body()).isEqualTo(c[1]);
            assertThat(err.get("code").asText()).as(r.body()).isEqualTo(c[2]);
            assertThat(err.get("message").asText()).as(r.body()).doesNotContain("messages[", "max_completion_tokens", "response_format");
        }
        HttpResponse<String> alive = server.post("/v1/responses", "{" + ok + ",\"input\":\"hi\"}");
        assertThat(alive.statusCode()).isEqualTo(200);
        assertThat(MAPPER.readTree(alive.body()).get("object").asText()).isEqualTo("response");
    }

    /** Items as the Responses API lists them: one model turn (message, then calls) is one assistant message in the prompt. */
    @Test
    void itemsOfOneTurnRenderAsOneAssistantMessage() throws Exception {
        String history = """
                {"model":"stories260K","max_output_tokens":2,"temperature":0,"input":[
                 {"role":"user","content":[{"type":"input_text","text":"Weather?"}]},
                 {"type":"message","role":"assistant","content":[{"type":"output_text","text":"Let me look."}]},
                 {"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\\"city\\":\\"Oslo\\"}"},
                 {"type":"function_call_output","call_id":"call_1","output":"cold"}],
                 "tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}]}""";
        String chat = """
                {"model":"stories260K","max_tokens":2,"temperature":0,"messages":[
                 {"role":"user","content":"Weather?"},
                 {"role":"assistant","content":"Let me look.","tool_calls":[{"id":"call_1","type":"function",
                  "function":{"name":"get_weather","arguments":"{\\"city\\":\\"Oslo\\"}"}}]},
                 {"role":"tool","tool_call_id":"call_1","content":"cold"}],
                 "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}""";
        HttpResponse<String> r = server.post("/v1/responses", history);
        HttpResponse<String> c = server.post("/v1/chat/completions", chat);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        assertThat(c.statusCode()).as(c.body()).isEqualTo(200);
        assertThat(MAPPER.readTree(r.body()).at("/usage/input_tokens").asInt())
                .isEqualTo(MAPPER.readTree(c.body()).at("/usage/prompt_tokens").asInt());
        ObjectNode body = (ObjectNode) MAPPER.readTree(r.body());
        assertThat(body.get("tools").get(0).get("name").asText()).as("the request's tools, as sent").isEqualTo("get_weather");
        assertThat(body.get("store").asBoolean()).isFalse();
    }

    @Test
    void jsonSchemaFormatIsEnforced() throws Exception {
        String schema = """
                {"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"type":"integer","minimum":1,"maximum":9}},
                 "required":["name","age"],"additionalProperties":false}""";
        String body = "{\"model\":\"stories260K\",\"input\":\"Describe a character.\",\"max_output_tokens\":120,\"temperature\":0.7,"
                + "\"seed\":3,\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"character\",\"strict\":true,\"schema\":" + schema + "}}}";
        HttpResponse<String> r = server.post("/v1/responses", body);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        JsonNode out = MAPPER.readTree(r.body());
        assertThat(out.get("status").asText()).isEqualTo("completed");
        assertThat(out.at("/text/format/name").asText()).isEqualTo("character");
        String text = out.at("/output/0/content/0/text").asText();
        assertThat(SchemaCorpus.referenceErrors(MAPPER.readTree(schema), text)).as(text).isEmpty();
    }

    /**
     * The wire format (an {@code event:} line naming the {@code data:} object's type, no
     * {@code [DONE]}), and a stream that times out: the 200 has gone, so the failure is an
     * {@code error} event and a {@code response.failed} with the code; the slot is freed.
     */
    @Test
    void aStreamThatTimesOutEndsWithResponseFailed() throws Exception {
        try (TestServer s = TestServer.start(Map.of("limits.request-timeout-ms", "1000", "engine.slots", "1"))) {
            HttpResponse<String> ok = s.post("/v1/responses", "{\"input\":\"Once\",\"max_output_tokens\":5,\"stream\":true}");
            assertThat(ok.statusCode()).isEqualTo(200);
            assertThat(ok.headers().firstValue("content-type")).hasValue("text/event-stream");
            String[] lines = ok.body().split("\n");
            int events = 0;
            for (int i = 0; i < lines.length; i++) {
                if (lines[i].startsWith("event: ")) {
                    assertThat(lines[i + 1]).startsWith("data: {");
                    JsonNode data = MAPPER.readTree(lines[i + 1].substring(6));
                    assertThat(data.get("type").asText()).isEqualTo(lines[i].substring(7));
                    assertThat(data.get("sequence_number").asInt()).isEqualTo(events++);
                }
            }
            assertThat(events).isGreaterThan(8);
            assertThat(ok.body()).doesNotContain("[DONE]");

            s.server.engine().stallFor(2500); // the request stays queued past its deadline
            HttpResponse<String> r = s.post("/v1/responses", "{\"input\":\"Once\",\"max_output_tokens\":50,\"stream\":true}");
            assertThat(r.statusCode()).isEqualTo(200);
            assertThat(r.body()).startsWith("event: response.created\n").contains("event: error\n").contains("\"code\":\"timeout\"")
                    .contains("event: response.failed\n").doesNotContain("response.completed");
            JsonNode failed = null;
            for (String line : r.body().split("\n")) {
                if (line.startsWith("data: ") && line.contains("\"response.failed\"")) {
                    failed = MAPPER.readTree(line.substring(6));
                }
            }
            assertThat(failed.at("/response/status").asText()).isEqualTo("failed");
            assertThat(failed.at("/response/error/code").asText()).isEqualTo("timeout");
            long deadline = System.nanoTime() + java.time.Duration.ofSeconds(10).toNanos();
            while ((s.server.engine().stats().busySlots() > 0 || s.server.engine().stats().queued() > 0) && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            assertThat(s.server.engine().stats().busySlots()).isZero();
        }
    }
}
