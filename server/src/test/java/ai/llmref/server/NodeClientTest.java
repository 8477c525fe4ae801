package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The npm {@code openai} client (v6, pinned with its integrity in src/test/node/package-lock.json)
 * and Anthropic's npm SDK ({@code @anthropic-ai/sdk}, on /v1/messages) drive the server from Node: src/test/node/conformance.mjs checks every route, streaming against
 * whole answers, log-probabilities, embeddings and typed errors, then the openai client's helpers
 * (the chat stream helper, {@code parse()} with a JSON schema and with {@code zod}, tool calls whole,
 * streamed and parsed, the {@code runTools} loop, the Responses API's function calls and their
 * outputs sent back) on a second server whose chat template has a tool-call format, and reports
 * what it saw; here that is compared with the server's answers to the same requests over plain
 * HTTP. Needs node and npm (scripts/prereqs.sh installs them); the packages come from the npm
 * registry, or npm's cache.
 */
class NodeClientTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final Path SOURCE = Path.of("src/test/node");
    static final Path WORK = Path.of("target/node-client");

    @Test
    void theNpmOpenAiClientDrivesEveryRoute() throws Exception {
        Files.createDirectories(WORK);
        for (String f : List.of("package.json", "package-lock.json", "conformance.mjs")) {
            Files.copy(SOURCE.resolve(f), WORK.resolve(f), StandardCopyOption.REPLACE_EXISTING);
        }
        run(List.of("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"), 300);
        try (TestServer t = TestServer.start(); TestServer tools = ToolCallsTest.startWithToolTemplate()) {
            String out = run(List.of("node", "conformance.mjs", t.base() + "/v1", "stories260K", tools.base() + "/v1"), 180);
            JsonNode seen = JSON.readTree(out.strip().lines().reduce((a, b) -> b).orElseThrow());
            assertThat(seen.get("client").asText()).isEqualTo("openai-node 6.49.0");
            assertThat(seen.get("models")).containsExactly(JSON.getNodeFactory().textNode("stories260K"));
            // the client's greedy answers are the server's greedy answers
            JsonNode chatReply = JSON.readTree(t.post("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":"
                    + "\"Tell me about a dog.\"}],\"max_tokens\":24,\"temperature\":0}").body());
            String chat = chatReply.at("/choices/0/message/content").asText();
            assertThat(seen.get("chat").asText()).isNotEmpty().isEqualTo(chat);
            String completion = JSON.readTree(t.post("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":30,\"temperature\":0}")
                    .body()).at("/choices/0/text").asText();
            assertThat(seen.get("completion").asText()).isNotEmpty().isEqualTo(completion);
            String response = JSON.readTree(t.post("/v1/chat/completions", "{\"messages\":[{\"role\":\"system\",\"content\":"
                    + "\"You tell short stories.\"},{\"role\":\"user\",\"content\":\"Tell me about a dog.\"}],\"max_tokens\":24,"
                    + "\"temperature\":0}").body()).at("/choices/0/message/content").asText();
            assertThat(seen.get("responses").asText()).as("the Responses API answers as chat does").isNotEmpty().isEqualTo(response);
            assertThat(seen.get("messages").asText()).as("the Messages API answers as chat does").isEqualTo(response);
            assertThat(seen.get("messageTokens").asInt()).isPositive();
            assertThat(seen.get("anthropicModels")).containsExactly(JSON.getNodeFactory().textNode("stories260K"));
            assertThat(seen.get("anthropicError").get("status").asInt()).isEqualTo(404);
            assertThat(seen.get("anthropicError").get("type").asText()).isEqualTo("not_found_error");
            assertThat(seen.get("responseEvents").get(1).asText()).isEqualTo("response.in_progress");
            assertThat(seen.get("responseEvents").toString()).contains("response.output_text.delta", "response.output_item.done");
            assertThat(seen.get("logprobTokens").asInt()).isEqualTo(12);
            assertThat(seen.get("embeddingSize").asInt()).isEqualTo(64);
            JsonNode errors = seen.get("errors");
            assertError(errors.get("negative max_tokens"), 400, "invalid_value", "max_tokens");
            assertError(errors.get("unknown model"), 404, "model_not_found", "model");
            assertError(errors.get("n above limits.max-choices"), 400, "invalid_value", "n");
            assertThat(seen.get("choices").asInt()).isEqualTo(2);
            assertThat(seen.get("batch").asInt()).isEqualTo(2);
            assertError(errors.get("unknown model id"), 404, "model_not_found", "model");
            assertError(errors.get("previous_response_id"), 400, "unsupported_parameter", "previous_response_id");
            assertThat(seen.at("/chatHelper/finish_reason").asText()).isEqualTo(chatReply.at("/choices/0/finish_reason").asText());
            assertThat(seen.at("/chatHelper/deltas").asInt()).isGreaterThan(1);
            assertHelpers(seen, t, tools);
        }
    }

    /** The client's helpers: what they parsed and called with equals the server's plain greedy answers. */
    static void assertHelpers(JsonNode seen, TestServer t, TestServer tools) throws Exception {
        // parse() with a JSON schema, written out and by zod: message.parsed is the plain answer's JSON
        String petSchema = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":12},"
                + "\"kind\":{\"type\":\"string\",\"enum\":[\"dog\",\"cat\",\"bird\"]},\"friendly\":{\"type\":\"boolean\"}},"
                + "\"required\":[\"name\",\"kind\",\"friendly\"],\"additionalProperties\":false}";
        for (var c : List.of(List.of("parsed", petSchema), List.of("zodParsed", seen.get("zodSchema").toString()))) {
            JsonNode reply = JSON.readTree(t.post("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Describe a pet.\"}],"
                    + "\"max_tokens\":60,\"temperature\":0,\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"pet\","
                    + "\"strict\":true,\"schema\":" + c.get(1) + "}}}").body());
            assertThat(reply.at("/choices/0/finish_reason").asText()).isEqualTo("stop");
            assertThat(seen.get(c.getFirst())).as(c.getFirst()).isEqualTo(JSON.readTree(reply.at("/choices/0/message/content").asText()));
        }
        assertThat(seen.get("zodSchema").get("additionalProperties").asBoolean(true)).isFalse();
        assertThat(seen.get("responsesParsed")).as("responses.parse() with zodTextFormat").isEqualTo(seen.get("zodParsed"));

        // a forced call: the name and arguments the client saw (whole, streamed, parsed) are the plain answer's
        String weather = "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Current weather at a place\","
                + "\"parameters\":" + ToolCallsTest.WEATHER_PARAMS + "}}";
        String question = "\"messages\":[{\"role\":\"user\",\"content\":\"What is the weather in Paris?\"}],\"temperature\":0";
        String forced = ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}";
        JsonNode call = JSON.readTree(tools.post("/v1/chat/completions", "{" + question + ",\"max_tokens\":250,\"tools\":[" + weather + "]"
                + forced + "}").body()).at("/choices/0/message/tool_calls/0/function");
        assertThat(seen.get("toolCall").get("name").asText()).isEqualTo("get_weather").isEqualTo(call.get("name").asText());
        assertThat(seen.get("toolCall").get("arguments").asText()).isEqualTo(call.get("arguments").asText());
        assertThat(JSON.readTree(call.get("arguments").asText()).properties()).extracting(java.util.Map.Entry::getKey)
                .containsExactly("location", "unit");
        assertThat(seen.at("/toolStream/argumentDeltas").asInt()).isPositive();
        assertThat(seen.at("/toolStream/argumentsDone").asInt()).isEqualTo(1);
        JsonNode zodCall = JSON.readTree(tools.post("/v1/chat/completions", "{" + question + ",\"max_tokens\":250,\"tools\":["
                + seen.at("/zodToolCall/tool") + "]" + forced + "}").body()).at("/choices/0/message/tool_calls/0/function");
        assertThat(seen.at("/zodToolCall/arguments").asText()).isEqualTo(zodCall.get("arguments").asText());

        // runTools: the function ran once per round, twice each way; the conversation it built (the
        // assistant's tool_calls, the tool's result) answers as over plain HTTP
        for (String run : List.of("runTools", "runToolsStreamed")) {
            assertThat(seen.get(run)).as(run).hasSize(2);
            for (JsonNode args : seen.get(run)) {
                assertThat(args.get("unit").asText()).isIn("celsius", "fahrenheit");
            }
        }
        JsonNode roundTrip = seen.get("toolRoundTrip");
        assertThat(roundTrip.at("/messages/2/role").asText()).isEqualTo("tool");
        assertThat(roundTrip.at("/messages/2/tool_call_id").asText()).isEqualTo(roundTrip.at("/messages/1/tool_calls/0/id").asText());
        String answer = JSON.readTree(tools.post("/v1/chat/completions", "{\"messages\":" + roundTrip.get("messages") + ",\"max_tokens\":24,"
                + "\"temperature\":0,\"tools\":[" + weather + "],\"tool_choice\":\"none\"}").body()).at("/choices/0/message/content").asText();
        assertThat(roundTrip.get("answer").asText()).isNotEmpty().isEqualTo(answer);

        // the Responses API: the forced function_call, then the conversation with its output sent back
        String fnTool = "{\"type\":\"function\",\"name\":\"get_weather\",\"description\":\"Current weather at a place\",\"parameters\":"
                + ToolCallsTest.WEATHER_PARAMS + ",\"strict\":true}";
        JsonNode fn = JSON.readTree(tools.post("/v1/responses", "{\"input\":\"What is the weather in Paris?\",\"max_output_tokens\":250,"
                + "\"temperature\":0,\"tools\":[" + fnTool + "],\"tool_choice\":{\"type\":\"function\",\"name\":\"get_weather\"}}").body());
        JsonNode fnCall = fn.at("/output/0");
        assertThat(fnCall.get("type").asText()).isEqualTo("function_call");
        assertThat(seen.at("/responsesCall/name").asText()).isEqualTo(fnCall.get("name").asText());
        assertThat(seen.at("/responsesCall/arguments").asText()).isEqualTo(fnCall.get("arguments").asText());
        JsonNode followUp = seen.get("responsesFollowUp");
        assertThat(followUp.get("input")).extracting(i -> i.path("type").asText("message"))
                .containsExactly("message", "function_call", "function_call_output");
        JsonNode reply = JSON.readTree(tools.post("/v1/responses", "{\"input\":" + followUp.get("input") + ",\"max_output_tokens\":24,"
                + "\"temperature\":0,\"tools\":[" + fnTool + "],\"tool_choice\":\"none\"}").body());
        assertThat(followUp.get("answer").asText()).isNotEmpty().isEqualTo(reply.at("/output/0/content/0/text").asText());
        assertThat(seen.get("responsesFollowUpTokens").asInt()).as("the client's input-token count").isEqualTo(reply.at("/usage/input_tokens").asInt())
                .isPositive();
    }

    static void assertError(JsonNode e, int status, String code, String param) {
        assertThat(e.get("status").asInt()).isEqualTo(status);
        assertThat(e.get("code").asText()).isEqualTo(code);
        assertThat(e.get("param").asText()).isEqualTo(param);
    }

    /** Runs a command in {@link #WORK}; its standard output, or a failure with both streams. */
    static String run(List<String> command, long timeoutSeconds) throws IOException, InterruptedException {
        Path err = Files.createTempFile("node-client", ".err");
        Process p;
        try {
            p = new ProcessBuilder(command).directory(WORK.toFile()).redirectError(err.toFile()).start();
        } catch (IOException e) {
            throw new AssertionError(command.getFirst() + " is needed for this test (scripts/prereqs.sh installs node and npm)", e);
        }
        byte[] out = p.getInputStream().readAllBytes();
        boolean done = p.waitFor(timeoutSeconds, TimeUnit.SECONDS);
        if (!done) {
            p.destroyForcibly();
        }
        String stderr = Files.readString(err);
        Files.delete(err);
        assertThat(done && p.exitValue() == 0).as("%s exited %s\nstdout: %s\nstderr: %s", command, done ? p.exitValue() : "by timeout",
                new String(out, StandardCharsets.UTF_8), stderr).isTrue();
        return new String(out, StandardCharsets.UTF_8);
    }
}
