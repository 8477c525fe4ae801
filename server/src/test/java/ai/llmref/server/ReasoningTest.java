package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.http.HttpResponse;
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

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class OpenBlockDeepSeekR1 {
        TestServer server;

        @BeforeAll
        void start() throws Exception {
            server = TestServer.start(Map.of("model.chat-template", ToolCallsTest.template("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja"),
                    "engine.slot-context", "1024", "engine.slots", "2"));
        }

        @AfterAll
        void stop() {
            server.close();
        }

        /** The prompt left {@code <think>} open and no {@code </think>} came: all of the reply is reasoning, streamed alike. */
        @Test
        void aReplyInsideTheOpenBlockIsReasoning() throws Exception {
            JsonNode whole = post(server, ask(24)).get("choices").get(0);
            JsonNode msg = whole.get("message");
            assertThat(whole.get("finish_reason").asText()).isEqualTo("length");
            assertThat(msg.get("reasoning_content").asText()).as(msg.toString()).isNotBlank();
            assertThat(msg.get("content").asText()).isEmpty();
            Streamed s = stream(server, ask(24));
            assertThat(s.reasoning()).isEqualTo(msg.get("reasoning_content").asText());
            assertThat(s.content()).isEmpty();
            assertThat(s.reasoningChunks()).as("the reasoning streams as it comes").isGreaterThan(3);
            assertThat(s.finish()).isEqualTo("length");
            // reasoning_format "none": the reply as the model wrote it, in the content
            JsonNode none = post(server, ask(24).put("reasoning_format", "none")).get("choices").get(0).get("message");
            assertThat(none.has("reasoning_content")).isFalse();
            assertThat(none.get("content").asText()).as("the same text, untrimmed").contains(msg.get("reasoning_content").asText());
            Streamed noneStreamed = stream(server, ask(24).put("reasoning_format", "none"));
            assertThat(noneStreamed.reasoningChunks()).isZero();
            assertThat(noneStreamed.content()).isEqualTo(none.get("content").asText());
        }

        /** A grammar from the start leaves no room for reasoning: its output is the content, and passes its check. */
        @Test
        void aJsonResponseFormatIsTheContent() throws Exception {
            ObjectNode b = ask(120);
            b.putObject("response_format").put("type", "json_schema").putObject("json_schema").put("name", "answer")
                    .set("schema", MAPPER.readTree("{\"type\":\"object\",\"properties\":{\"why\":{\"type\":\"string\",\"maxLength\":40}},"
                            + "\"required\":[\"why\"],\"additionalProperties\":false}"));
            JsonNode choice = post(server, b).get("choices").get(0);
            assertThat(choice.get("finish_reason").asText()).isEqualTo("stop");
            assertThat(choice.get("message").has("reasoning_content")).isFalse();
            assertThat(MAPPER.readTree(choice.get("message").get("content").asText()).get("why").isTextual()).isTrue();
        }

        @Test
        void badReasoningParametersAreA400() throws Exception {
            for (String[] c : new String[][] {
                    {"\"reasoning_format\":\"deepseek-legacy\"", "reasoning_format", "invalid_value"},
                    {"\"reasoning_format\":true", "reasoning_format", null},
                    {"\"chat_template_kwargs\":[1]", "chat_template_kwargs", null}}) {
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
    class ReplyOpensTheBlockQwen3 {
        TestServer server;

        @BeforeAll
        void start() throws Exception {
            server = TestServer.start(Map.of("model.chat-template", ToolCallsTest.template("Qwen-Qwen3-0.6B.jinja"),
                    "engine.slot-context", "2048", "engine.slots", "2"));
        }

        @AfterAll
        void stop() {
            server.close();
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
