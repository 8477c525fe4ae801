package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Fuzzes the JSON schema to grammar converter against llama.cpp's grammar engine: every schema is
 * either refused with a {@link SchemaException} that names a place in the schema, or converted to a
 * grammar that llama.cpp loads with the real model's vocabulary. A grammar llama.cpp refuses (as a
 * left recursion was, found this way) would reach the client as the engine's message about rule
 * indexes instead of one about the schema it sent.
 *
 * <p>A converted grammar is then sampled with, without the model: a walk of up to
 * {@link #MAX_TOKENS} tokens ({@link GrammarWalk}) picks each next token among those the grammar allows, in an order
 * drawn from a generator seeded by the input (pseudo-random logits), so an input always makes the
 * same walk. Two more oracles watch the walk:
 * <ul>
 * <li>No step (loading the grammar, or checking candidate tokens and accepting one) takes longer
 * than {@link GrammarWalk#STEP_LIMIT_MILLIS}: the server samples every request's grammar on its one scheduler thread,
 * and an ambiguous grammar ({@code (.{0,2000}){0,2000}} as a {@code pattern}) held it for more
 * than ten minutes in one step while it loaded in milliseconds.</li>
 * <li>Wherever the grammar allows the end of generation, the text so far is one JSON document that
 * {@link SchemaValidator} finds valid under the schema (a {@code oneOf} read as {@code anyOf}, as
 * the converter documents), and where it allows neither the end nor any token the walk has found a
 * dead end (the server would fail the request halfway).</li>
 * </ul>
 *
 * <p>Without {@code JAZZER_FUZZ=1} the method runs once per committed input in
 * {@code src/test/resources/ai/llmref/server/structured/SchemaGrammarFuzzTestInputs/convert/}
 * (regression mode, part of every test run); the seeds there are schemas of the corpus.
 */
class SchemaGrammarFuzzTest {
    /**
     * Most tokens a walk generates. With the closing from a step below half of it ({@link GrammarWalk}),
     * nearly every walk ends a document: of 40 walks for each of the corpus's 61 schemas, 2437 of the
     * 2440 did (with 64 tokens, 2040, and none for the order, invoice, log-entry and calendar-tool
     * schemas).
     */
    static final int MAX_TOKENS = 128;
    private static LlamaModel model;
    private static GrammarWalk walk;

    private static synchronized LlamaModel model() {
        if (model == null) {
            model = LlamaModel.load(Path.of(System.getProperty("test.model")), ModelParams.defaults().withGpuLayers(0));
            walk = new GrammarWalk(model.vocabulary(), MAX_TOKENS, Set.of("\"", "]", "}"));
        }
        return model;
    }

    @AfterAll
    static synchronized void closeModel() {
        if (model != null && !walk.leftRunning()) {
            model.close();
            model = null;
        }
    }

    @FuzzTest(maxDuration = "30s")
    void convert(FuzzedDataProvider data) {
        String input = data.consumeRemainingAsString();
        JsonNode schema;
        try {
            schema = SchemaCorpus.MAPPER.readTree(input);
        } catch (JsonProcessingException e) {
            return; // not JSON: the request parser's concern, fuzzed elsewhere
        }
        if (schema == null || !(schema.isObject() || schema.isBoolean())) {
            return;
        }
        String grammar;
        try {
            grammar = JsonSchemaGrammar.convert(schema);
        } catch (SchemaException e) {
            assertThat(e.getMessage()).as("a refusal names its place in the schema").contains("(at #");
            return;
        }
        // llama.cpp must take every grammar the converter gives (GrammarException otherwise), and sample with it
        JsonNode enforced = oneOfAsAnyOf(schema);
        model();
        walk.watched(grammar, input.hashCode(), text -> checkDocument(schema, enforced, grammar, text), "schema: " + schema);
    }

    /**
     * The schema the walk's documents are checked under reads oneOf as anyOf at schema places only
     * (not in a property name or a const), and its references still reach the same schemas.
     */
    @Test
    void oneOfIsReadAsAnyOfWhereItIsAKeyword() throws Exception {
        JsonNode schema = SchemaCorpus.MAPPER.readTree("""
                {"type":"object","properties":{"oneOf":{"oneOf":[{"oneOf":[{"type":"integer"},{"type":"number"}]},{"const":{"oneOf":1}}]},
                 "b":{"$ref":"#/properties/oneOf/oneOf/0/oneOf/1"},"c":{"$ref":"#/$defs/a~1%25"}},"required":["oneOf"],
                 "$defs":{"a/%":{"type":"null"}}}""");
        JsonNode enforced = oneOfAsAnyOf(schema);
        assertThat(enforced).isEqualTo(SchemaCorpus.MAPPER.readTree("""
                {"type":"object","properties":{"oneOf":{"anyOf":[{"anyOf":[{"type":"integer"},{"type":"number"}]},{"const":{"oneOf":1}}]},
                 "b":{"$ref":"#/properties/oneOf/anyOf/0/anyOf/1"},"c":{"$ref":"#/$defs/a~1%25"}},"required":["oneOf"],
                 "$defs":{"a/%":{"type":"null"}}}"""));
        JsonNode doc = SchemaCorpus.MAPPER.readTree("{\"oneOf\":3,\"b\":2.5,\"c\":null}");
        assertThat(SchemaValidator.validate(schema, doc)).isNotEmpty(); // 3 is an integer and a number
        assertThat(SchemaValidator.validate(enforced, doc)).isEmpty();
        assertThat(SchemaValidator.validate(enforced, SchemaCorpus.MAPPER.readTree("{\"oneOf\":3,\"c\":1}"))).isNotEmpty();
    }

    /** The walk's UTF-8 check, which decides the tokens it may pick: it must pass a model's UTF-8 and nothing else. */
    @Test
    void utf8TailKeepsWellFormedTextOnly() {
        assertThat(GrammarWalk.utf8Tail(new byte[0], "a\u00e9\u4e2d\uD83D\uDE00".getBytes(StandardCharsets.UTF_8))).isEmpty();
        assertThat(GrammarWalk.utf8Tail(new byte[0], bytes(0x61, 0xE4, 0xB8))).containsExactly(bytes(0xE4, 0xB8));
        assertThat(GrammarWalk.utf8Tail(bytes(0xE4, 0xB8), bytes(0xAD, 0x62))).isEmpty();
        assertThat(GrammarWalk.utf8Tail(bytes(0xF0), bytes(0x9F))).containsExactly(bytes(0xF0, 0x9F));
        for (byte[] bad : List.of(bytes(0xC0, 0xA2), bytes(0xC1), bytes(0xE0, 0x9F), bytes(0xED, 0xA0), bytes(0xF0, 0x8F), bytes(0xF4, 0x90),
                bytes(0xF5), bytes(0xFF), bytes(0x80), bytes(0xE4, 0x62))) {
            assertThat(GrammarWalk.utf8Tail(new byte[0], bad)).as(Arrays.toString(bad)).isNull();
        }
        assertThat(GrammarWalk.utf8Tail(bytes(0xE4), bytes(0x22))).isNull();
    }

    private static byte[] bytes(int... values) {
        byte[] b = new byte[values.length];
        for (int i = 0; i < values.length; i++) {
            b[i] = (byte) values[i];
        }
        return b;
    }

    /**
     * Text at a point where the grammar allows the end: exactly one JSON document, valid under the
     * schema as the grammar enforces it ({@code enforced}, from {@link #oneOfAsAnyOf}).
     */
    private static void checkDocument(JsonNode schema, JsonNode enforced, String grammar, String text) {
        try (JsonParser p = SchemaCorpus.MAPPER.createParser(text)) {
            p.nextToken();
            p.skipChildren();
            assertThat(p.nextToken()).as("text after the document: %s", quote(text)).isNull();
        } catch (IOException e) {
            throw new AssertionError("the grammar ends with text that is not one JSON document: " + quote(text) + " (" + e.getMessage()
                    + "); schema: " + schema + "\ngrammar:\n" + grammar, e);
        }
        List<String> errors;
        try {
            errors = SchemaValidator.validate(enforced, SchemaValidator.read(text));
        } catch (JsonProcessingException e) {
            throw new AssertionError(e);
        }
        assertThat(errors).as("the grammar ends with a document the schema rejects: %s; schema: %s%ngrammar:%n%s", quote(text), schema,
                grammar).isEmpty();
    }

    /** Where a node of a schema is: a schema, an object or array of schemas, or data (const, enum, required, ...). */
    private enum Place { SCHEMA, SCHEMAS, DATA }

    /** The keywords of the converter's subset whose values are schemas, or objects or arrays of schemas. */
    private static final Set<String> SCHEMA_VALUED = Set.of("additionalProperties", "items");
    private static final Set<String> SCHEMAS_VALUED = Set.of("properties", "$defs", "definitions", "anyOf", "oneOf", "allOf", "prefixItems");

    /**
     * The schema with each {@code oneOf} read as {@code anyOf}, which is how the converter enforces
     * it (docs/server.md): a document that matches more than one alternative is the server's output
     * check's to catch (a 500), not a finding. Each {@code $ref} is rewritten to the same place.
     */
    static JsonNode oneOfAsAnyOf(JsonNode schema) {
        Map<JsonNode, String> places = new IdentityHashMap<>();
        place(schema, Place.SCHEMA, "", places);
        return copy(schema, schema, Place.SCHEMA, places);
    }

    private static Place child(Place parent, String key) {
        return switch (parent) {
            case SCHEMA -> SCHEMAS_VALUED.contains(key) ? Place.SCHEMAS : SCHEMA_VALUED.contains(key) ? Place.SCHEMA : Place.DATA;
            case SCHEMAS -> Place.SCHEMA;
            case DATA -> Place.DATA;
        };
    }

    private static String renamed(Place at, String key) {
        return at == Place.SCHEMA && key.equals("oneOf") ? "anyOf" : key;
    }

    /** Records the pointer (in the rewritten schema) of every object and array under {@code n}. */
    private static void place(JsonNode n, Place at, String pointer, Map<JsonNode, String> places) {
        if (!n.isContainerNode()) {
            return;
        }
        places.put(n, pointer);
        if (n.isArray()) {
            for (int i = 0; i < n.size(); i++) {
                place(n.get(i), at == Place.DATA ? Place.DATA : Place.SCHEMA, pointer + "/" + i, places);
            }
            return;
        }
        for (Map.Entry<String, JsonNode> e : n.properties()) {
            String segment = renamed(at, e.getKey()).replace("~", "~0").replace("/", "~1").replace("%", "%25");
            place(e.getValue(), child(at, e.getKey()), pointer + "/" + segment, places);
        }
    }

    private static JsonNode copy(JsonNode n, JsonNode root, Place at, Map<JsonNode, String> places) {
        if (n.isArray()) {
            ArrayNode out = SchemaCorpus.MAPPER.createArrayNode();
            n.forEach(e -> out.add(copy(e, root, at == Place.DATA ? Place.DATA : Place.SCHEMA, places)));
            return out;
        }
        if (!n.isObject()) {
            return n;
        }
        ObjectNode out = SchemaCorpus.MAPPER.createObjectNode();
        for (Map.Entry<String, JsonNode> e : n.properties()) {
            JsonNode v = e.getValue();
            if (at == Place.SCHEMA && e.getKey().equals("$ref") && v.isTextual()) {
                String target;
                try {
                    target = places.get(SchemaKeywords.resolve(root, v.textValue(), ""));
                } catch (SchemaException unresolved) {
                    target = null; // the converter refused it already
                }
                out.put("$ref", target == null ? v.textValue() : "#" + target); // a boolean schema is where it was
            } else {
                out.set(renamed(at, e.getKey()), copy(v, root, child(at, e.getKey()), places));
            }
        }
        return out;
    }

    private static String quote(String text) {
        return GrammarWalk.quote(text);
    }
}
