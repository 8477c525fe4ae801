package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Differential test of {@link JsonSchemaGrammar} against llama.cpp's converter in the pinned
 * tree (src/test/cpp/schema_grammar_ref.cpp). For every corpus schema, both grammars run in
 * llama.cpp's grammar engine over the same documents (valid ones, invalid ones, reordered ones,
 * each compact and pretty-printed): they must accept and reject alike. The one allowed
 * difference is where llama.cpp's grammar accepts a document the schema rejects (it does not
 * enforce {@code minimum} on a {@code number}); ours must then reject it. Ours must accept every
 * valid corpus document and reject every invalid one.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class JsonSchemaGrammarReferenceTest {
    private GrammarReference ref;
    private int stricterThanLlama;

    @BeforeAll
    void build() throws Exception {
        ref = GrammarReference.build();
    }

    List<SchemaCorpus.Entry> corpus() {
        return SchemaCorpus.all();
    }

    @Test
    void corpusHasAtLeastFiftySchemas() {
        assertThat(corpus()).hasSizeGreaterThanOrEqualTo(50);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("corpus")
    void sameDocumentsAsLlamaCpp(SchemaCorpus.Entry e) throws Exception {
        String ours = JsonSchemaGrammar.convert(e.schema());
        String theirs = ref.llamaGrammar(e.schema());
        assertThat(theirs).as("llama.cpp converts %s", e.name()).isNotNull();

        List<String> docs = new ArrayList<>();
        List<JsonNode> all = new ArrayList<>(e.valid());
        all.addAll(e.invalid());
        all.addAll(e.unordered());
        for (JsonNode d : all) {
            docs.add(SchemaCorpus.MAPPER.writeValueAsString(d));
            docs.add(SchemaCorpus.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsString(d));
        }
        boolean[] a = ref.accepts(ours, docs);
        boolean[] b = ref.accepts(theirs, docs);
        for (int i = 0; i < docs.size(); i++) {
            String doc = docs.get(i);
            boolean valid = SchemaCorpus.referenceErrors(e.schema(), doc).isEmpty();
            if (a[i]) {
                assertThat(valid).as("%s: our grammar accepts a document the schema rejects: %s%n%s", e.name(), doc, ours).isTrue();
            }
            if (a[i] != b[i]) {
                assertThat(!a[i] && b[i] && !valid).as("%s: ours %s, llama.cpp %s: %s%nours:%n%s%nllama.cpp:%n%s", e.name(),
                        a[i] ? "accepts" : "rejects", b[i] ? "accepts" : "rejects", doc, ours, theirs).isTrue();
                stricterThanLlama++;
                System.out.println("stricter than llama.cpp (" + e.name() + "): rejects invalid " + doc.replace("\n", " "));
            }
        }
        for (int i = 0; i < e.valid().size(); i++) {
            assertThat(a[2 * i]).as("%s: our grammar rejects the valid %s%n%s", e.name(), docs.get(2 * i), ours).isTrue();
        }
        for (int i = e.valid().size(); i < e.valid().size() + e.invalid().size(); i++) {
            assertThat(a[2 * i] || a[2 * i + 1]).as("%s: our grammar accepts the invalid %s", e.name(), docs.get(2 * i)).isFalse();
        }
    }

    /**
     * Length and item bounds up to llama.cpp's repetition limit (2000) are exact in its grammar
     * engine; a bound above it, which the engine would leave unbounded, is refused by the converter.
     */
    @Test
    void lengthAndItemBoundsAtTheEngineLimitAreExact() throws Exception {
        int limit = JsonSchemaGrammar.MAX_REPEAT;
        String string = JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree("{\"type\":\"string\",\"minLength\":" + limit
                + ",\"maxLength\":" + limit + "}"));
        assertThat(ref.accepts(string, List.of(quoted("\u00e9".repeat(limit)), quoted("a".repeat(limit + 1)), quoted("a".repeat(limit - 1)))))
                .containsExactly(true, false, false);
        String array = JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree("{\"type\":\"array\",\"items\":{\"type\":\"integer\"},"
                + "\"maxItems\":" + limit + "}"));
        assertThat(ref.accepts(array, List.of(items(limit), items(limit + 1), "[]"))).containsExactly(true, false, true);
        for (String k : List.of("maxLength", "minLength")) {
            String schema = "{\"type\":\"string\",\"" + k + "\":" + (limit + 1) + "}";
            assertThatThrownBy(() -> JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree(schema))).as(schema)
                    .isInstanceOfSatisfying(SchemaException.class, e -> assertThat(e.keyword()).isEqualTo(k));
        }
    }

    /**
     * Optional properties: the grammar grows linearly with their number (each optional property
     * one rule of constant size, as llama.cpp writes them), and a wide object loads in llama.cpp's
     * engine and admits any ordered subset; more than 128 are refused (each that may come next is an
     * alternative the grammar follows).
     */
    @Test
    void manyOptionalPropertiesMakeALinearGrammar() throws Exception {
        String half = JsonSchemaGrammar.convert(optionalProperties(64));
        String wide = JsonSchemaGrammar.convert(optionalProperties(128));
        assertThat((double) wide.length() / half.length()).as("twice the properties").isLessThan(2.5);
        assertThat(ref.accepts(wide, List.of("{}", "{\"p3\": \"a\", \"p100\": \"b\", \"p127\": \"\"}", "{\"p0\":\"x\"}",
                "{\"p3\": 1}", "{\"p127\": \"a\", \"p127\": \"a\"}", "{\"q\": \"a\"}")))
                .containsExactly(true, true, true, false, false, false);
        // more optional properties than alternatives the grammar may follow at once: 1600 cost 80 ms a token
        assertThatThrownBy(() -> JsonSchemaGrammar.convert(optionalProperties(129))).isInstanceOf(SchemaException.class)
                .hasMessageContaining("129 optional properties").hasMessageContaining("(at #/properties)");
    }

    /**
     * Enum values share their common prefixes in the grammar: llama.cpp's sampler checks every
     * token against every alternative still alive, so 20000 values with one prefix made each token
     * cost 20000 vocabulary scans on the scheduler thread. The grammar admits exactly the values,
     * prefixes of each other and a chain deeper than a rule's nesting included.
     */
    @Test
    void enumValuesShareTheirPrefixes() throws Exception {
        com.fasterxml.jackson.databind.node.ObjectNode schema = SchemaCorpus.MAPPER.createObjectNode();
        com.fasterxml.jackson.databind.node.ArrayNode values = schema.putArray("enum");
        for (int i = 0; i < 3000; i++) {
            values.add("shared-prefix-" + i);
        }
        for (int i = 1; i <= 40; i++) {
            values.add("x".repeat(i)); // each a prefix of the next: one nesting level each
        }
        values.add(12).add(1).add(SchemaCorpus.MAPPER.readTree("{\"a\":[1,\"b\"]}")).addNull().add("shared-prefix-1");
        String g = JsonSchemaGrammar.convert(schema);
        assertThat(g).containsOnlyOnce("shared-prefix-");
        List<String> docs = List.of("\"shared-prefix-0\"", "\"shared-prefix-2999\"", "\"shared-prefix-299\"", "\"x\"",
                quoted("x".repeat(17)), quoted("x".repeat(40)), "12", "1", "{\"a\":[1,\"b\"]}", "null",
                "\"shared-prefix-3000\"", "\"shared-prefix-\"", "\"shared-prefix-01\"", quoted("x".repeat(41)), "\"\"", "123", "nul");
        boolean[] expected = new boolean[docs.size()];
        java.util.Arrays.fill(expected, 0, 10, true);
        assertThat(ref.accepts(g, docs)).containsExactly(expected);
    }

    /**
     * A long property name beside additionalProperties: the grammar of "any other key" follows the
     * name character by character; 2000 characters overflowed the converter's stack (a 500).
     */
    @Test
    void aLongPropertyNameBesideAdditionalPropertiesConverts() throws Exception {
        String k = "k".repeat(5000);
        String g = JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree("{\"type\":\"object\",\"properties\":{\"" + k
                + "\":{\"type\":\"string\"}},\"required\":[\"" + k + "\"],\"additionalProperties\":{\"type\":\"integer\"}}"));
        String shorter = quoted(k.substring(1));
        assertThat(ref.accepts(g, List.of("{" + quoted(k) + ": \"a\"}", "{" + quoted(k) + ": \"a\", " + shorter + ": 1, " + quoted(k + "k") + ": 2}",
                "{" + quoted(k) + ": \"a\", " + quoted(k) + ": 1}", "{" + quoted(k) + ": 1}", "{" + shorter + ": \"a\"}")))
                .containsExactly(true, true, false, false, false);
    }

    /**
     * A forced call's grammar writes the call's head once and shares the function names' common
     * prefixes: llama.cpp's sampler checks every candidate token against every alternative still
     * alive, and one alternative per function kept all 128 alive through {@code {"name": "} and the
     * names' shared prefix on every step. It admits exactly a declared name with that function's
     * arguments (a name that is a prefix of others included).
     */
    @Test
    void toolCallNamesShareTheirPrefixes() throws Exception {
        List<ToolCalls.Function> functions = new ArrayList<>();
        for (int i = 0; i < 127; i++) {
            functions.add(new ToolCalls.Function("get_weather_for_city_" + i, SchemaCorpus.MAPPER.readTree(
                    "{\"type\":\"object\",\"properties\":{\"n" + i + "\":{\"type\":\"integer\"}},\"required\":[\"n" + i
                            + "\"],\"additionalProperties\":false}")));
        }
        functions.add(new ToolCalls.Function("get", SchemaCorpus.MAPPER.readTree("{\"type\":\"object\",\"additionalProperties\":false}")));
        String g = ToolCalls.grammar(ToolCalls.Format.HERMES, functions, false);
        assertThat(g).containsOnlyOnce("_weather_for_city_").containsOnlyOnce("\\\"name\\\"");
        List<String> docs = List.of(call("get_weather_for_city_0", "{\"n0\": 1}"), call("get_weather_for_city_1", "{\"n1\": 2}"),
                call("get_weather_for_city_12", "{\"n12\": 3}"), call("get_weather_for_city_126", "{\"n126\":4}"),
                call("get", "{}"),
                call("get_weather_for_city_127", "{\"n127\": 1}"), call("get_weather_for_city_", "{}"),
                call("get_weather_for_city_5", "{\"n6\": 1}"), call("get_weather_for_city_1", "{\"n12\": 1}"), call("ge", "{}"),
                call("get", "{\"n0\": 1}"));
        assertThat(ref.accepts(g, docs)).containsExactly(true, true, true, true, true, false, false, false, false, false, false);
        assertThat(ref.accepts(ToolCalls.grammar(ToolCalls.Format.LLAMA3_JSON, functions.subList(3, 5), false),
                List.of("{\"name\": \"get_weather_for_city_4\", \"parameters\": {\"n4\": 1}}",
                        "{\"name\": \"get_weather_for_city_3\", \"parameters\": {\"n3\": 1}}",
                        "{\"name\": \"get_weather_for_city_5\", \"parameters\": {\"n5\": 1}}")))
                .containsExactly(true, true, false);
    }

    /**
     * "required" with parallel_tool_calls: one Hermes block or more, a newline between them, each
     * call valid; without: exactly one block. A Llama 3 JSON reply holds one call either way.
     */
    @Test
    void severalForcedCallsAreBlocksInARow() throws Exception {
        List<ToolCalls.Function> functions = List.of(
                new ToolCalls.Function("a", SchemaCorpus.MAPPER.readTree("{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"}},\"additionalProperties\":false}")),
                new ToolCalls.Function("b", SchemaCorpus.MAPPER.readTree("{\"type\":\"object\",\"additionalProperties\":false}")));
        List<String> docs = List.of(call("a", "{\"x\": 1}"), call("a", "{\"x\": 1}") + "\n" + call("b", "{}"),
                call("b", "{}") + "\n" + call("b", "{}") + "\n" + call("a", "{}"), call("a", "{}") + call("b", "{}"),
                call("a", "{}") + "\n", call("a", "{}") + "\n" + call("a", "{\"x\": \"1\"}"), "");
        assertThat(ref.accepts(ToolCalls.grammar(ToolCalls.Format.HERMES, functions, true), docs))
                .containsExactly(true, true, true, false, false, false, false);
        assertThat(ref.accepts(ToolCalls.grammar(ToolCalls.Format.HERMES, functions, false), docs))
                .containsExactly(true, false, false, false, false, false, false);
        assertThat(ToolCalls.grammar(ToolCalls.Format.LLAMA3_JSON, functions, true))
                .isEqualTo(ToolCalls.grammar(ToolCalls.Format.LLAMA3_JSON, functions, false));
    }

    private static String call(String name, String arguments) {
        return "<tool_call>\n{\"name\": \"" + name + "\", \"arguments\": " + arguments + "}\n</tool_call>";
    }

    private static JsonNode optionalProperties(int n) {
        com.fasterxml.jackson.databind.node.ObjectNode schema = SchemaCorpus.MAPPER.createObjectNode().put("type", "object");
        com.fasterxml.jackson.databind.node.ObjectNode props = schema.putObject("properties");
        for (int i = 0; i < n; i++) {
            props.putObject("p" + i).put("type", "string");
        }
        return schema;
    }

    private static String quoted(String s) {
        return "\"" + s + "\"";
    }

    private static String items(int n) {
        return "[" + String.join(",", java.util.Collections.nCopies(n, "1")) + "]";
    }

    /** Integer ranges: exactly the integers of the range, checked number by number against the engine. */
    @ParameterizedTest(name = "[{0}, {1}]")
    @org.junit.jupiter.params.provider.CsvSource({"0,255", "-40,60", "1,5", "18,9999999999999999", "-9999999999999999,-3",
            "1000,123456", "-1005,-995", "7,7", "0,0", "-12,0", "99,1001"})
    void integerRangesAreExact(long lo, long hi) throws Exception {
        String schema = "{\"type\":\"integer\",\"minimum\":" + lo + ",\"maximum\":" + hi + "}";
        String grammar = JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree(schema));
        List<Long> probes = new ArrayList<>();
        for (long v : new long[] {lo, hi, lo - 1, hi + 1, 0, -1, 1, 9, 10, 99, 100, 101, 999, 1000, 1001, (lo + hi) / 2}) {
            probes.add(v);
        }
        for (long v = Math.max(lo - 30, -2000); v <= Math.min(hi + 30, 2000); v += Math.max(1, (hi - lo) / 200)) {
            probes.add(v);
        }
        List<String> docs = new ArrayList<>(probes.stream().map(String::valueOf).toList());
        docs.add("-0");
        docs.add("007");
        boolean[] a = ref.accepts(grammar, docs);
        for (int i = 0; i < probes.size(); i++) {
            long v = probes.get(i);
            assertThat(a[i]).as("%d in [%d, %d]%n%s", v, lo, hi, grammar).isEqualTo(v >= lo && v <= hi);
        }
        assertThat(a[probes.size()]).as("-0").isFalse();
        assertThat(a[probes.size() + 1]).as("leading zeros").isFalse();
    }
}
