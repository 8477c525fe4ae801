package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.http.HttpResponse;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** A matrix of bad requests: each gets its status and the OpenAI error shape, and the server stays up. */
class BadRequestTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static TestServer server;

    @BeforeAll
    static void start() throws Exception {
        server = TestServer.start(Map.of("limits.max-body-bytes", "65536", "limits.max-json-depth", "16", "limits.max-tokens", "200"));
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    static final String OK_CHAT = "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":4,\"temperature\":0}";

    static Stream<Arguments> cases() {
        String deep = "[".repeat(40) + "]".repeat(40);
        return Stream.of(
                Arguments.of("malformed JSON", "/v1/chat/completions", "{\"model\":", 400, "invalid_request", null),
                Arguments.of("not an object", "/v1/chat/completions", "[1,2]", 400, "invalid_request", null),
                Arguments.of("empty body", "/v1/chat/completions", "", 400, "invalid_request", null),
                Arguments.of("trailing garbage", "/v1/chat/completions", OK_CHAT + " xyz", 400, "invalid_request", null),
                // Jackson's messages for these name its own features ("enable `JsonReadFeature...`"): not for clients
                Arguments.of("NaN in JSON", "/v1/chat/completions", withField("\"temperature\":NaN"), 400, "invalid_request", null),
                Arguments.of("single-quoted JSON", "/v1/chat/completions", "{'messages':[]}", 400, "invalid_request", null),
                Arguments.of("comment in JSON", "/v1/chat/completions", "{/* x */\"messages\":[]}", 400, "invalid_request", null),
                Arguments.of("leading zero in JSON", "/v1/chat/completions", withField("\"max_tokens\":007"), 400, "invalid_request", null),
                Arguments.of("record separator in JSON", "/v1/chat/completions", "\u001E" + OK_CHAT, 400, "invalid_request", null),
                Arguments.of("messages missing", "/v1/chat/completions", "{\"model\":\"stories260K\"}", 400, "invalid_request", "messages"),
                Arguments.of("messages wrong type", "/v1/chat/completions", "{\"messages\":\"hi\"}", 400, "invalid_request", "messages"),
                Arguments.of("messages empty", "/v1/chat/completions", "{\"messages\":[]}", 400, "invalid_value", "messages"),
                Arguments.of("message not object", "/v1/chat/completions", "{\"messages\":[3]}", 400, "invalid_request", "messages[0]"),
                Arguments.of("role missing", "/v1/chat/completions", "{\"messages\":[{\"content\":\"x\"}]}", 400, "invalid_request", "messages[0].role"),
                Arguments.of("role unknown", "/v1/chat/completions", "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", 400, "invalid_value", "messages[0].role"),
                Arguments.of("content wrong type", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", 400, "invalid_request", "messages[0].content"),
                Arguments.of("image content", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}", 400, "unsupported_parameter", "messages[0].content"),
                Arguments.of("negative max_tokens", "/v1/chat/completions", withField("\"max_tokens\":-5"), 400, "invalid_value", "max_tokens"),
                Arguments.of("zero max_tokens", "/v1/chat/completions", withField("\"max_tokens\":0"), 400, "invalid_value", "max_tokens"),
                Arguments.of("huge max_tokens", "/v1/chat/completions", withField("\"max_tokens\":99999999999"), 400, "invalid_value", "max_tokens"),
                Arguments.of("max_tokens over ceiling", "/v1/chat/completions", withField("\"max_tokens\":201"), 400, "invalid_value", "max_tokens"),
                Arguments.of("max_tokens string", "/v1/chat/completions", withField("\"max_tokens\":\"ten\""), 400, "invalid_request", "max_tokens"),
                Arguments.of("max_tokens fractional", "/v1/chat/completions", withField("\"max_tokens\":2.5"), 400, "invalid_request", "max_tokens"),
                Arguments.of("temperature too high", "/v1/chat/completions", withField("\"temperature\":7"), 400, "invalid_value", "temperature"),
                Arguments.of("top_p wrong type", "/v1/chat/completions", withField("\"top_p\":\"high\""), 400, "invalid_request", "top_p"),
                Arguments.of("n > limits.max-choices", "/v1/chat/completions", withField("\"n\":17"), 400, "invalid_value", "n"),
                Arguments.of("n = 0", "/v1/chat/completions", withField("\"n\":0"), 400, "invalid_value", "n"),
                Arguments.of("stream not boolean", "/v1/chat/completions", withField("\"stream\":\"yes\""), 400, "invalid_request", "stream"),
                Arguments.of("stop wrong type", "/v1/chat/completions", withField("\"stop\":7"), 400, "invalid_request", "stop"),
                Arguments.of("too many stops", "/v1/chat/completions", withField("\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]"), 400, "invalid_value", "stop"),
                Arguments.of("unknown model", "/v1/chat/completions", OK_CHAT.replace("stories260K", "gpt-9"), 404, "model_not_found", "model"),
                Arguments.of("logit_bias not object", "/v1/chat/completions", withField("\"logit_bias\":[1]"), 400, "invalid_request", "logit_bias"),
                Arguments.of("logit_bias bad key", "/v1/chat/completions", withField("\"logit_bias\":{\"abc\":1}"), 400, "invalid_value", "logit_bias"),
                Arguments.of("logit_bias token out of vocab", "/v1/chat/completions", withField("\"logit_bias\":{\"99999\":1}"), 400, "invalid_value", "logit_bias"),
                // OpenAI's limit: every entry costs every step of the request's sampling, on the threads all requests share
                Arguments.of("logit_bias over 300 tokens", "/v1/chat/completions", withField("\"logit_bias\":{" + java.util.stream.IntStream.range(0, 301)
                        .mapToObj(t -> "\"" + t + "\":1").collect(java.util.stream.Collectors.joining(",")) + "}"), 400, "invalid_value", "logit_bias"),
                Arguments.of("logit_bias value out of range", "/v1/chat/completions", withField("\"logit_bias\":{\"5\":500}"), 400, "invalid_value", "logit_bias"),
                Arguments.of("response_format schema unenforceable", "/v1/chat/completions", withField("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":{\"type\":\"string\",\"pattern\":\"(?=a)a+\"}}}"), 400, "unsupported_schema", "response_format.json_schema.schema"),
                // llama.cpp would expand its 30 x 2000 repetitions into 60000 rules on the scheduler thread
                Arguments.of("response_format schema expands too far", "/v1/chat/completions", withField("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":"
                        + "{\"type\":\"array\",\"prefixItems\":[" + String.join(",", java.util.Collections.nCopies(30, "{\"type\":\"string\",\"maxLength\":2000}")) + "]}}}"), 400, "unsupported_schema", "response_format.json_schema.schema"),
                Arguments.of("response_format schema missing", "/v1/chat/completions", withField("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\"}}"), 400, "invalid_request", "response_format.json_schema.schema"),
                Arguments.of("response_format unknown", "/v1/chat/completions", withField("\"response_format\":{\"type\":\"yaml\"}"), 400, "invalid_value", "response_format"),
                Arguments.of("response_format wrong type", "/v1/chat/completions", withField("\"response_format\":\"json\""), 400, "invalid_request", "response_format"),
                Arguments.of("tools not supported", "/v1/chat/completions", withField("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]"), 400, "unsupported_parameter", "tools"),
                // asking for audio output or web search: refused, not answered with text alone
                Arguments.of("audio output", "/v1/chat/completions", withField("\"modalities\":[\"text\",\"audio\"],\"audio\":{\"voice\":\"alloy\",\"format\":\"wav\"}"), 400, "unsupported_parameter", "audio"),
                Arguments.of("the audio modality", "/v1/chat/completions", withField("\"modalities\":[\"text\",\"audio\"]"), 400, "unsupported_parameter", "modalities"),
                Arguments.of("modalities not strings", "/v1/chat/completions", withField("\"modalities\":[1]"), 400, "invalid_request", "modalities"),
                Arguments.of("modalities not an array", "/v1/chat/completions", withField("\"modalities\":\"text\""), 400, "invalid_request", "modalities"),
                Arguments.of("web search", "/v1/chat/completions", withField("\"web_search_options\":{}"), 400, "unsupported_parameter", "web_search_options"),
                Arguments.of("apply-template checks as chat does", "/apply-template", withField("\"web_search_options\":{}"), 400, "unsupported_parameter", "web_search_options"),
                Arguments.of("duplicate key", "/v1/chat/completions", withField("\"max_tokens\":4,\"max_tokens\":5"), 400, "invalid_request", null),
                Arguments.of("deep nesting", "/v1/chat/completions", withField("\"metadata\":" + deep), 400, "json_too_deep", null),
                Arguments.of("prompt missing", "/v1/completions", "{\"model\":\"stories260K\"}", 400, "invalid_request", "prompt"),
                Arguments.of("prompt wrong type", "/v1/completions", "{\"prompt\":{\"a\":1}}", 400, "invalid_request", "prompt"),
                Arguments.of("prompt tokens out of vocab", "/v1/completions", "{\"prompt\":[1,2,70000]}", 400, "invalid_value", "prompt"),
                Arguments.of("empty prompt list", "/v1/completions", "{\"prompt\":[]}", 400, "invalid_request", "prompt"),
                Arguments.of("a list holding an object", "/v1/completions", "{\"prompt\":[\"a\",{\"b\":1}]}", 400, "invalid_request", "prompt"),
                Arguments.of("a list holding an empty token list", "/v1/completions", "{\"prompt\":[[1,2],[]]}", 400, "invalid_request", "prompt"),
                Arguments.of("a token out of vocab in a list", "/v1/completions", "{\"prompt\":[[1,2],[3,70000]]}", 400, "invalid_value", "prompt"),
                Arguments.of("more prompts than choices allowed", "/v1/completions",
                        "{\"prompt\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"],\"n\":2}", 400, "invalid_value", "prompt"),
                Arguments.of("prompt plus max_tokens too long", "/v1/completions", "{\"prompt\":\"" + "Once upon a time ".repeat(40) + "\",\"max_tokens\":200}", 400, "context_length_exceeded", "max_tokens"),
                Arguments.of("completions suffix", "/v1/completions", "{\"prompt\":\"Once\",\"suffix\":\" the end\"}", 400, "unsupported_parameter", "suffix"),
                Arguments.of("completions best_of over n", "/v1/completions", "{\"prompt\":\"Once\",\"best_of\":3}", 400, "unsupported_parameter", "best_of"),
                Arguments.of("completions best_of under n", "/v1/completions", "{\"prompt\":\"Once\",\"best_of\":1,\"n\":2}", 400, "invalid_value", "best_of"),
                Arguments.of("a user's refusal part", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"refusal\",\"refusal\":\"no\"}]}]}", 400, "unsupported_parameter", "messages[0].content"),
                Arguments.of("embeddings token out of vocab", "/v1/embeddings", "{\"input\":[[1,2],[3,70000]]}", 400, "invalid_value", "input"),
                Arguments.of("embeddings empty token list", "/v1/embeddings", "{\"input\":[[]]}", 400, "invalid_request", "input"),
                Arguments.of("embeddings without input", "/v1/embeddings", "{\"model\":\"stories260K\"}", 400, "invalid_request", "input"),
                Arguments.of("embeddings bad format", "/v1/embeddings", "{\"input\":\"x\",\"encoding_format\":\"hex\"}", 400, "invalid_value", "encoding_format"),
                Arguments.of("detokenize bad ids", "/detokenize", "{\"tokens\":[1,-4]}", 400, "invalid_value", "tokens"),
                Arguments.of("tokenize without content", "/tokenize", "{}", 400, "invalid_request", "content"));
    }

    /** A valid chat request plus one field (the base sets neither max_tokens nor temperature). */
    static String withField(String field) {
        return "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]," + field + "}";
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void badRequestGetsItsStatusAndTheErrorShape(String name, String path, String body, int status, String code, String param)
            throws Exception {
        HttpResponse<String> r = server.post(path, body);
        assertError(r, status, code, param);
        assertServerStillServes();
    }

    /**
     * OpenAI's chat fields that need nothing the server does not do (storage, billing, cache
     * routing, a predicted output, the text modality) are taken, as OpenAI's clients send them.
     */
    @Test
    void openAisFieldsThatAskForNothingElseAreTaken() throws Exception {
        String fields = "\"store\":false,\"metadata\":{\"k\":\"v\"},\"service_tier\":\"auto\",\"user\":\"u\",\"prompt_cache_key\":\"c\","
                + "\"safety_identifier\":\"s\",\"prediction\":{\"type\":\"content\",\"content\":\"x\"},\"modalities\":[\"text\"],"
                + "\"audio\":null,\"web_search_options\":null,\"max_tokens\":4,\"temperature\":0";
        HttpResponse<String> r = server.post("/v1/chat/completions", withField(fields));
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        HttpResponse<String> plain = server.post("/v1/chat/completions", OK_CHAT);
        assertThat(JSON.readTree(r.body()).at("/choices/0/message/content").asText()).as("the same greedy answer")
                .isEqualTo(JSON.readTree(plain.body()).at("/choices/0/message/content").asText());
    }

    @ParameterizedTest(name = "invalid UTF-8 in {0}")
    @MethodSource("paths")
    void invalidUtf8IsA400(String path) throws Exception {
        byte[] bad = "{\"prompt\":\"ab\u00ff\",\"messages\":[{\"role\":\"user\",\"content\":\"xx\"}],\"content\":\"q\",\"input\":\"q\"}"
                .getBytes(java.nio.charset.StandardCharsets.ISO_8859_1); // 0xFF is never valid UTF-8
        assertError(server.postBytes(path, bad), 400, "invalid_request", null);
        assertServerStillServes();
    }

    static Stream<String> paths() {
        return Stream.of("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/tokenize");
    }

    @ParameterizedTest(name = "oversize body on {0}")
    @MethodSource("paths")
    void oversizeBodyIsA413(String path) throws Exception {
        String big = "{\"prompt\":\"" + "a".repeat(70_000) + "\"}";
        assertError(server.post(path, big), 413, "request_too_large", null);
        assertServerStillServes();
    }

    static void assertError(HttpResponse<String> r, int status, String code, String param) throws Exception {
        assertThat(r.statusCode()).as(r.body()).isEqualTo(status);
        assertThat(r.headers().firstValue("content-type")).hasValueSatisfying(v -> assertThat(v).startsWith("application/json"));
        JsonNode e = JSON.readTree(r.body()).get("error");
        assertThat(e).as(r.body()).isNotNull();
        assertThat(e.get("message").asText()).isNotBlank().doesNotContain("Exception").doesNotContain("/work/").doesNotContain("\tat ")
                .doesNotContainPattern("(^|[\\s'\"(=:])/[\\w.-]+"); // no absolute path (prose like "within/between" is fine)
        ai.llmref.server.http.LeakMarkers.assertNoLeak(e.get("message").asText(), ""); // no class, package or file names
        assertThat(e.get("type").asText()).isNotBlank();
        assertThat(e.get("code").asText()).isEqualTo(code);
        if (param != null) {
            assertThat(e.get("param").asText()).isEqualTo(param);
        }
    }

    static void assertServerStillServes() throws Exception {
        HttpResponse<String> ok = server.post("/v1/chat/completions", OK_CHAT);
        assertThat(ok.statusCode()).as(ok.body()).isEqualTo(200);
    }
}
