package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.server.structured.SchemaCorpus;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * response_format json_schema and json_object over HTTP with the real model: every corpus schema
 * is enforced (each output that ends with "stop" parses and passes the independent reference
 * validator), refusals are 400s naming the keyword, streaming and /v1/completions are enforced too.
 */
class StructuredOutputTest {
    static final ObjectMapper MAPPER = new ObjectMapper();
    static final int SEEDS = 3;
    static TestServer server;

    @BeforeAll
    static void start() throws Exception {
        server = TestServer.start(Map.of("engine.slot-context", "512", "limits.max-tokens", "400"));
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    static List<SchemaCorpus.Entry> corpus() {
        return SchemaCorpus.all();
    }

    static ObjectNode chat(JsonNode schema, long seed) {
        ObjectNode b = MAPPER.createObjectNode();
        b.put("model", "stories260K");
        b.putArray("messages").addObject().put("role", "user").put("content", "Once upon a time there was a little dog.");
        b.put("max_tokens", 300);
        b.put("temperature", 0.7);
        b.put("seed", seed);
        ObjectNode js = b.putObject("response_format").put("type", "json_schema").putObject("json_schema");
        js.put("name", "answer");
        js.put("strict", true);
        js.set("schema", schema);
        return b;
    }

    /**
     * Under each corpus schema, seeded generations until one ends with "stop" (at most
     * {@value #SEEDS}): every "stop" output validates, and one per schema must end with "stop" (the
     * grammar leads the model to a complete document). A "length" cut is legitimately incomplete.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("corpus")
    void generationUnderEverySchemaValidates(SchemaCorpus.Entry e) throws Exception {
        int stops = 0;
        List<String> cut = new ArrayList<>();
        for (long seed = 1; seed <= SEEDS && stops == 0; seed++) {
            HttpResponse<String> r = server.post("/v1/chat/completions", chat(e.schema(), seed).toString());
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
            JsonNode choice = MAPPER.readTree(r.body()).get("choices").get(0);
            String text = choice.get("message").get("content").asText();
            if (choice.get("finish_reason").asText().equals("stop")) {
                stops++;
                assertThat(SchemaCorpus.referenceErrors(e.schema(), text)).as("%s seed %d: %s", e.name(), seed, text).isEmpty();
                MAPPER.readTree(text); // also plain JSON
            } else {
                cut.add(text);
            }
        }
        assertThat(stops).as("%s: no generation finished; cut outputs: %s", e.name(), cut).isPositive();
    }

    /**
     * json_object: every output is JSON: a complete object when it ends with "stop", else a
     * prefix of one (only the end of input is missing). Free JSON rarely ends within the tiny
     * model's budget, so a logit bias toward '"' and "}" (a client's ordinary lever) makes it close
     * strings and objects; the grammar still decides what is allowed.
     */
    @Test
    void jsonObjectIsEnforced() throws Exception {
        JsonNode close = MAPPER.readTree(server.post("/tokenize", "{\"content\":\"}\"}").body()).get("tokens");
        JsonNode quote = MAPPER.readTree(server.post("/tokenize", "{\"content\":\"\\\"\"}").body()).get("tokens");
        int stops = 0;
        for (long seed = 1; seed <= 6; seed++) {
            ObjectNode b = chat(MAPPER.createObjectNode(), seed);
            b.putObject("response_format").put("type", "json_object");
            b.put("max_tokens", 200);
            // the last token is the character (SPM may put a word-start token before it)
            b.putObject("logit_bias").put(close.get(close.size() - 1).asText(), 10).put(quote.get(quote.size() - 1).asText(), 4);
            HttpResponse<String> r = server.post("/v1/chat/completions", b.toString());
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
            JsonNode choice = MAPPER.readTree(r.body()).get("choices").get(0);
            String text = choice.get("message").get("content").asText();
            assertThat(text).startsWith("{");
            if (choice.get("finish_reason").asText().equals("stop")) {
                stops++;
                assertThat(MAPPER.readTree(text).isObject()).as(text).isTrue();
            } else {
                assertThat(isJsonPrefix(text)).as(text).isTrue();
            }
        }
        assertThat(stops).isPositive();
    }

    /** Whether text is JSON cut short: parsing fails, if at all, only at the end of the input. */
    static boolean isJsonPrefix(String text) throws Exception {
        try (com.fasterxml.jackson.core.JsonParser p = MAPPER.getFactory().createParser(text)) {
            while (p.nextToken() != null) {
                // read on
            }
            return true;
        } catch (com.fasterxml.jackson.core.io.JsonEOFException e) {
            return true;
        } catch (com.fasterxml.jackson.core.JsonParseException e) {
            return e.getMessage().contains("end-of-input");
        }
    }

    /**
     * Stop strings end only free text: under a JSON response_format the grammar ends the output,
     * so a stop string the document contains does not cut it (it did, and the cut document failed
     * its check: a 500).
     */
    @Test
    void stopStringsDoNotCutAStructuredOutput() throws Exception {
        JsonNode schema = MAPPER.readTree("{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":40}},"
                + "\"required\":[\"name\"],\"additionalProperties\":false}");
        ObjectNode b = chat(schema, 3);
        b.set("stop", MAPPER.createArrayNode().add("\"").add("a").add("e").add(":"));
        for (boolean stream : new boolean[] {false, true}) {
            HttpResponse<String> r = server.post("/v1/chat/completions", b.deepCopy().put("stream", stream).toString());
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
            String text;
            if (stream) {
                StringBuilder sb = new StringBuilder();
                for (String line : r.body().split("\n")) {
                    if (line.startsWith("data: {")) {
                        JsonNode d = MAPPER.readTree(line.substring(6)).at("/choices/0/delta/content");
                        sb.append(d.isTextual() ? d.asText() : "");
                        assertThat(line).doesNotContain("\"error\"");
                    }
                }
                text = sb.toString();
            } else {
                JsonNode choice = MAPPER.readTree(r.body()).get("choices").get(0);
                assertThat(choice.get("finish_reason").asText()).isEqualTo("stop");
                text = choice.get("message").get("content").asText();
            }
            assertThat(MAPPER.readTree(text).get("name").isTextual()).as(text).isTrue();
        }
        b.set("stop", MAPPER.createArrayNode().add(""));
        assertThat(server.post("/v1/chat/completions", b.toString()).statusCode()).as("stop strings are still checked").isEqualTo(400);
    }

    @Test
    void streamingIsEnforcedAndAssemblesTheSameDocument() throws Exception {
        JsonNode schema = corpus().getFirst().schema();
        ObjectNode b = chat(schema, 7);
        String whole = MAPPER.readTree(server.post("/v1/chat/completions", b.toString()).body())
                .get("choices").get(0).get("message").get("content").asText();
        b.put("stream", true);
        HttpResponse<String> r = server.post("/v1/chat/completions", b.toString());
        assertThat(r.statusCode()).isEqualTo(200);
        StringBuilder text = new StringBuilder();
        String finish = null;
        for (String line : r.body().split("\n")) {
            if (line.startsWith("data: {")) {
                JsonNode c = MAPPER.readTree(line.substring(6));
                assertThat(c.has("error")).as(line).isFalse();
                JsonNode ch = c.get("choices").get(0);
                if (ch.get("delta").has("content")) {
                    text.append(ch.get("delta").get("content").asText());
                }
                if (!ch.get("finish_reason").isNull()) {
                    finish = ch.get("finish_reason").asText();
                }
            }
        }
        assertThat(text.toString()).isEqualTo(whole);
        assertThat(finish).isEqualTo("stop");
        assertThat(SchemaCorpus.referenceErrors(schema, text.toString())).isEmpty();
    }

    @Test
    void completionsEndpointEnforcesTheSchemaToo() throws Exception {
        JsonNode schema = MAPPER.readTree("{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":9}},\"required\":[\"n\"]}");
        ObjectNode b = chat(schema, 3);
        b.remove("messages");
        b.put("prompt", "The number is ");
        HttpResponse<String> r = server.post("/v1/completions", b.toString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        JsonNode choice = MAPPER.readTree(r.body()).get("choices").get(0);
        assertThat(choice.get("finish_reason").asText()).isEqualTo("stop");
        assertThat(SchemaCorpus.referenceErrors(schema, choice.get("text").asText())).as(choice.get("text").asText()).isEmpty();
    }

    /** A pattern over HTTP: every finished output's value matches it (by java.util.regex and the reference validator). */
    @Test
    void patternIsEnforced() throws Exception {
        JsonNode schema = MAPPER.readTree("{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\","
                + "\"pattern\":\"^[A-Z]{3}-[0-9]{4}$\"}},\"required\":[\"code\"],\"additionalProperties\":false}");
        int stops = 0;
        for (long seed = 1; seed <= 4; seed++) {
            ObjectNode b = chat(schema, seed);
            b.put("temperature", 1.0);
            HttpResponse<String> r = server.post("/v1/chat/completions", b.toString());
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
            JsonNode choice = MAPPER.readTree(r.body()).get("choices").get(0);
            String text = choice.get("message").get("content").asText();
            if (choice.get("finish_reason").asText().equals("stop")) {
                stops++;
                assertThat(MAPPER.readTree(text).get("code").asText()).as(text).matches("[A-Z]{3}-[0-9]{4}");
                assertThat(SchemaCorpus.referenceErrors(schema, text)).as(text).isEmpty();
            }
        }
        assertThat(stops).isPositive();
    }

    static Stream<Arguments> refused() {
        return Stream.of(
                // zod 4's z.email() pattern starts with a lookahead
                Arguments.of("{\"type\":\"object\",\"properties\":{\"mail\":{\"type\":\"string\",\"pattern\":\"^(?!\\\\.)[a-z.]+@[a-z]+$\"}}}",
                        "lookahead (?! ...) cannot be enforced", "#/properties/mail/pattern"),
                Arguments.of("{\"type\":\"string\",\"pattern\":\"^\\\\p{L}+$\"}", "\\p{...}", "#/pattern"),
                Arguments.of("{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"uniqueItems\":true}", "'uniqueItems'", "#/uniqueItems"),
                Arguments.of("{\"type\":\"object\",\"properties\":{\"a\":{\"not\":{\"type\":\"null\"}}}}", "'not'", "#/properties/a/not"),
                Arguments.of("{\"type\":\"string\",\"format\":\"email\"}", "format", "#/format"),
                Arguments.of("{\"$ref\":\"http://example.com/s.json\"}", "'#/...'", "#/$ref"),
                Arguments.of("{\"type\":\"object\",\"if\":{},\"then\":{}}", "'if'", "#/if"),
                Arguments.of("{\"type\":\"number\",\"minimum\":1.5,\"maximum\":0.5}", "admit no value", "#/minimum"));
    }

    @ParameterizedTest(name = "{2}")
    @MethodSource("refused")
    void unenforceableSchemasAreRefusedWith400NamingTheFeature(String schema, String names, String pointer) throws Exception {
        HttpResponse<String> r = server.post("/v1/chat/completions", chat(MAPPER.readTree(schema), 1).toString());
        assertThat(r.statusCode()).isEqualTo(400);
        JsonNode err = MAPPER.readTree(r.body()).get("error");
        assertThat(err.get("code").asText()).isEqualTo("unsupported_schema");
        assertThat(err.get("param").asText()).isEqualTo("response_format.json_schema.schema");
        assertThat(err.get("message").asText()).contains(names).contains(pointer);
        assertThat(server.get("/v1/models").statusCode()).isEqualTo(200); // still serving
    }

    /**
     * The fail-closed path, with real components: oneOf is generated as anyOf, so under
     * {"oneOf":[{"const":7},{"const":7}]} the only document the grammar admits, 7, matches both
     * alternatives and fails the output check: a 500 (the stream gets an error event instead of
     * its finish chunk), logged and counted; the server keeps serving.
     */
    @Test
    void anOutputThatFailsItsCheckIsA500AndCounted() throws Exception {
        String metric = "llmref_structured_output_invalid_total{check=\"json_schema\"}";
        String before = server.getAdmin("/metrics").body();
        assertThat(before).contains("# TYPE llmref_structured_output_invalid_total counter").doesNotContain(metric);
        JsonNode schema = MAPPER.readTree("{\"oneOf\":[{\"const\":7},{\"const\":7}]}");
        HttpResponse<String> r = server.post("/v1/chat/completions", chat(schema, 1).toString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(500);
        JsonNode err = MAPPER.readTree(r.body()).get("error");
        assertThat(err.get("code").asText()).isEqualTo("structured_output_invalid");
        assertThat(err.get("type").asText()).isEqualTo("server_error");
        ObjectNode b = chat(schema, 1);
        b.put("stream", true);
        HttpResponse<String> s = server.post("/v1/chat/completions", b.toString());
        assertThat(s.statusCode()).isEqualTo(200);
        assertThat(s.body()).contains("\"code\":\"structured_output_invalid\"").doesNotContain("\"finish_reason\":\"stop\"");
        assertThat(server.getAdmin("/metrics").body()).contains(metric + " 2");
        assertThat(server.post("/v1/chat/completions", chat(MAPPER.readTree("{\"const\":7}"), 1).toString()).statusCode()).isEqualTo(200);
    }
}
