package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The converter's refusals and the validator against the reference validator (unit tier: no native library). */
class JsonSchemaGrammarTest {

    static Stream<Arguments> refused() {
        return Stream.of(
                // pattern's subset is RegexGrammar's (RegexGrammarTest); a lookahead is beyond it
                Arguments.of("{\"type\":\"string\",\"pattern\":\"^(?!x)[a-z]+$\"}", "pattern", "/pattern"),
                Arguments.of("{\"type\":\"string\",\"pattern\":7}", "pattern", "/pattern"),
                Arguments.of("{\"type\":\"string\",\"pattern\":\"^[a-z]+$\",\"maxLength\":3}", "pattern", "/pattern"),
                Arguments.of("{\"not\":{\"type\":\"string\"}}", "not", "/not"),
                Arguments.of("{\"type\":\"object\",\"properties\":{\"a\":{\"if\":{\"type\":\"string\"}}}}", "if", "/properties/a/if"),
                Arguments.of("{\"type\":\"object\",\"patternProperties\":{\"^x\":{}}}", "patternProperties", "/patternProperties"),
                Arguments.of("{\"type\":\"object\",\"dependentSchemas\":{}}", "dependentSchemas", "/dependentSchemas"),
                Arguments.of("{\"type\":\"array\",\"uniqueItems\":true}", "uniqueItems", "/uniqueItems"),
                Arguments.of("{\"type\":\"integer\",\"multipleOf\":5}", "multipleOf", "/multipleOf"),
                Arguments.of("{\"type\":\"object\",\"minProperties\":1}", "minProperties", "/minProperties"),
                Arguments.of("{\"type\":\"array\",\"contains\":{\"type\":\"integer\"}}", "contains", "/contains"),
                Arguments.of("{\"$ref\":\"https://example.com/schema.json\"}", "$ref", "/$ref"),
                Arguments.of("{\"$ref\":\"#/$defs/missing\"}", "$ref", "/$ref"),
                // a '%' that starts no escape (URLDecoder's IllegalArgumentException), an index beyond an int
                Arguments.of("{\"type\":\"object\",\"properties\":{\"o\":{\"$ref\":\"#/$defs/Use%\"}},\"$defs\":{\"User\":{}}}", "$ref",
                        "/properties/o/$ref"),
                Arguments.of("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"}]},"
                        + "\"b\":{\"$ref\":\"#/properties/a/prefixItems/99999999999\"}}}", "$ref", "/properties/b/$ref"),
                // left recursion (a reference back to itself before any text): llama.cpp refuses such a
                // grammar with a message that names no part of the schema
                Arguments.of("{\"$defs\":{\"a\":{\"anyOf\":[{\"$ref\":\"#/$defs/a\"},{\"type\":\"string\"}]}},\"$ref\":\"#/$defs/a\"}", "$ref", "/$ref"),
                Arguments.of("{\"anyOf\":[{\"type\":\"integer\"},{\"allOf\":[{\"$ref\":\"#\"}]}]}", "$ref", "/anyOf/1/allOf/0/$ref"),
                Arguments.of("{\"type\":\"object\",\"properties\":{\"v\":{\"$ref\":\"#/$defs/x\"}},\"$defs\":{"
                        + "\"x\":{\"oneOf\":[{\"type\":\"null\"},{\"$ref\":\"#/$defs/y\"}]},"
                        + "\"y\":{\"anyOf\":[{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/x\"}},{\"$ref\":\"#/$defs/x\"}]}}}",
                        "$ref", "/properties/v/$ref"),
                Arguments.of("{\"type\":\"string\",\"format\":\"email\"}", "format", "/format"),
                // bounds on a number that are no number, or admit no number of at most 16 digits before and after the point
                // (NumberRangeGrammarTest)
                Arguments.of("{\"type\":\"number\",\"minimum\":0.5,\"exclusiveMaximum\":0.5}", "minimum", "/minimum"),
                Arguments.of("{\"type\":\"number\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":1e-17}", "exclusiveMinimum", "/exclusiveMinimum"),
                Arguments.of("{\"type\":\"number\",\"exclusiveMinimum\":\"0\"}", "exclusiveMinimum", "/exclusiveMinimum"),
                Arguments.of("{\"type\":\"number\",\"exclusiveMinimum\":0,\"maximum\":0}", "exclusiveMinimum", "/exclusiveMinimum"),
                Arguments.of("{\"type\":\"number\",\"maximum\":-1e20}", "maximum", "/maximum"),
                Arguments.of("{\"allOf\":[{\"type\":\"object\"},{\"required\":[\"a\"]}]}", "allOf", "/allOf"),
                Arguments.of("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},\"required\":[\"b\"]}", "required", "/required"),
                Arguments.of("{\"type\":\"strings\"}", "type", "/type"),
                Arguments.of("{\"minimum\":3}", "type", ""),
                Arguments.of("{\"type\":\"object\",\"properties\":{\"x\":{\"anyOf\":[{\"type\":\"string\"}],\"maxLength\":3}}}", "maxLength", "/properties/x/maxLength"),
                Arguments.of("{\"type\":\"integer\",\"enum\":[1,\"two\"]}", "enum", ""),
                Arguments.of("{\"type\":\"integer\",\"minimum\":10,\"maximum\":5}", "minimum", ""),
                Arguments.of("{\"type\":\"string\",\"contentEncoding\":\"base64\"}", "contentEncoding", "/contentEncoding"),
                // llama.cpp's grammar engine refuses a repetition above 2000 and makes a longer maximum unbounded
                Arguments.of("{\"type\":\"string\",\"maxLength\":2001}", "maxLength", "/maxLength"),
                Arguments.of("{\"type\":\"string\",\"minLength\":5000,\"maxLength\":6000}", "minLength", "/minLength"),
                Arguments.of("{\"type\":\"object\",\"properties\":{\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
                        + "\"maxItems\":10000}}}", "maxItems", "/properties/tags/maxItems"),
                Arguments.of("{\"type\":\"array\",\"minItems\":2001}", "minItems", "/minItems"),
                // numbers beyond a double's range: the request parser reads them as Infinity, which has no exact value
                Arguments.of("{\"type\":\"integer\",\"maximum\":1e400}", "maximum", "/maximum"),
                Arguments.of("{\"type\":\"string\",\"maxLength\":1e999}", "maxLength", "/maxLength"),
                Arguments.of("{\"type\":\"object\",\"properties\":{\"v\":{\"enum\":[1,[2,-1e400]]}}}", "enum", "/properties/v/enum"),
                Arguments.of("{\"const\":1e400}", "const", "/const"),
                Arguments.of("{\"type\":\"object\",\"properties\":{\"a/b\":{\"type\":\"string\",\"const\":\"x\",\"minLength\":1}}}", "minLength",
                        "/properties/a~1b/minLength"));
    }

    @ParameterizedTest(name = "{1} at {2}")
    @MethodSource("refused")
    void unsupportedFeaturesAreRefusedByNameAndPointer(String schema, String keyword, String pointer) throws Exception {
        JsonNode s = SchemaCorpus.MAPPER.readTree(schema);
        assertThatThrownBy(() -> JsonSchemaGrammar.convert(s))
                .isInstanceOfSatisfying(SchemaException.class, e -> {
                    assertThat(e.keyword()).isEqualTo(keyword);
                    assertThat(e.pointer()).isEqualTo(pointer);
                    assertThat(e.getMessage()).contains("#" + pointer);
                });
    }

    /** Bounds on a number that admit no value are refused with the reason, naming the first bound. */
    @Test
    void boundsOnANumberThatAdmitNoValueAreRefusedWithTheReason() throws Exception {
        JsonNode s = SchemaCorpus.MAPPER.readTree("{\"type\":\"object\",\"properties\":{\"p\":{\"type\":\"number\",\"minimum\":0.75,"
                + "\"maximum\":0.5}}}");
        assertThatThrownBy(() -> JsonSchemaGrammar.convert(s)).isInstanceOfSatisfying(SchemaException.class, e -> {
            assertThat(e.keyword()).isEqualTo("minimum");
            assertThat(e.getMessage()).contains("the bounds on a 'number' admit no value").contains("#/properties/p/minimum");
        });
        assertThatThrownBy(() -> JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree("{\"type\":\"number\",\"minimum\":2,"
                + "\"exclusiveMaximum\":2}"))).isInstanceOfSatisfying(SchemaException.class,
                        e -> assertThat(e.getMessage()).contains("the bounds on a 'number' admit no value"));
        // 1.0 and 1e2 are integers
        assertThat(JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree("{\"type\":\"number\",\"minimum\":1.0,\"maximum\":1e2}")))
                .contains("\"100\"");
    }

    /** {"type":"object"} with {@code n} required strings of maxLength {@code max}. */
    static String boundedStrings(int n, int max) {
        List<String> props = new ArrayList<>();
        List<String> names = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            props.add("\"p" + i + "\":{\"type\":\"string\",\"maxLength\":" + max + "}");
            names.add("\"p" + i + "\"");
        }
        return "{\"type\":\"object\",\"properties\":{" + String.join(",", props) + "},\"required\":[" + String.join(",", names) + "]}";
    }

    @Test
    void repetitionsAreBoundedInAll() throws Exception {
        // llama.cpp writes x{0,2000} out as 2000 rules on the scheduler thread: 2400 such properties (135 KB of
        // schema) took it 3.6 s and 1 GB; the bounds may add up to MAX_EXPANSION, no more
        int each = JsonSchemaGrammar.MAX_REPEAT;
        int fit = (JsonSchemaGrammar.MAX_EXPANSION - 1_000) / each; // room for the primitives' small repetitions
        assertThat(JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree(boundedStrings(fit, each)))).startsWith("root ::= ");
        JsonNode tooMany = SchemaCorpus.MAPPER.readTree(boundedStrings(fit + 1, each));
        assertThatThrownBy(() -> JsonSchemaGrammar.convert(tooMany)).isInstanceOfSatisfying(SchemaException.class, e -> {
            assertThat(e.pointer()).isEmpty();
            assertThat(e.getMessage()).contains("too large").contains("maxLength").contains(String.valueOf(JsonSchemaGrammar.MAX_EXPANSION));
        });
        // braces inside literals and character classes are text, not repetitions
        assertThat(JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree("{\"enum\":[\"{99999999}\",\"[{99999999}]\"]}")))
                .contains("{99999999}");
    }

    static String anyOf(int n, String alternative) {
        return "{\"anyOf\":[" + String.join(",", java.util.Collections.nCopies(n, alternative)) + "]}";
    }

    @Test
    void nestedAlternativesAreBoundedByTheirProduct() throws Exception {
        // llama.cpp's sampler checks each token against every alternative alive: 1500 objects cost 0.4 s a token
        int max = JsonSchemaGrammar.MAX_ALTERNATIVES;
        String object = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}";
        assertThat(JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree(anyOf(max, object)))).startsWith("root ::= ");
        String u = anyOf(12, "{\"type\":\"integer\"}");
        List<String[]> refused = List.of(
                new String[] {anyOf(max + 1, object), "anyOf", "/anyOf"},
                new String[] {anyOf(11, u).replace("anyOf", "oneOf").replaceFirst("oneOf", "anyOf"), "oneOf", "/anyOf/0/oneOf"},
                // a reference first used outside any alternative, then inside 11 of them
                new String[] {"{\"$defs\":{\"u\":" + u + "},\"type\":\"object\",\"properties\":{\"x\":{\"$ref\":\"#/$defs/u\"},\"y\":"
                        + anyOf(11, "{\"$ref\":\"#/$defs/u\"}") + "}}", "$ref", "/properties/y/anyOf/0/$ref"});
        for (String[] r : refused) {
            JsonNode s = SchemaCorpus.MAPPER.readTree(r[0]);
            assertThatThrownBy(() -> JsonSchemaGrammar.convert(s)).as(r[2]).isInstanceOfSatisfying(SchemaException.class, e -> {
                assertThat(e.keyword()).isEqualTo(r[1]);
                assertThat(e.pointer()).isEqualTo(r[2]);
                assertThat(e.getMessage()).contains("more than " + max + " alternatives");
            });
        }
        // pydantic's Optional[Model] nested twelve deep (2^12 alternatives if they multiplied across
        // brackets): past each '{' only the object is alive, so each level counts 2
        String nested = "{\"type\":\"string\"}";
        for (int i = 0; i < 12; i++) {
            nested = "{\"anyOf\":[{\"type\":\"object\",\"properties\":{\"child\":" + nested + "}},{\"type\":\"null\"}]}";
        }
        assertThat(JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree(nested))).startsWith("root ::= ");
    }

    static String consts(int n) {
        List<String> alts = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            alts.add("{\"const\":\"x" + i + "\"}");
        }
        return "{\"anyOf\":[" + String.join(",", alts) + "]}";
    }

    /**
     * Past an object's (array's) bracket, every alternative around it that begins with that bracket
     * is alive, each with the alternatives it holds: they multiply. Found by sampling with the
     * grammars (SchemaGrammarFuzzTest's walk): 45 object alternatives that hold a 100-wide anyOf
     * under the same key cost 90 ms a token with the 512-token vocabulary, some 4500 alternatives.
     */
    @Test
    void alternativesPastABracketMultiplyWhatItHolds() throws Exception {
        int max = JsonSchemaGrammar.MAX_ALTERNATIVES;
        String holding = "{\"type\":\"object\",\"properties\":{\"a\":" + consts(max / 2) + "},\"required\":[\"a\"]}";
        assertThat(JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree(anyOf(2, holding)))).startsWith("root ::= ");
        String holdingMore = "{\"type\":\"object\",\"properties\":{\"a\":" + consts(max / 2 + 1) + "},\"required\":[\"a\"]}";
        // an anyOf of a null and such an object is one object past the bracket
        assertThat(JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree("{\"anyOf\":[{\"type\":\"null\"}," + holdingMore + "]}")))
                .startsWith("root ::= ");
        String recursive = holdingMore.replace("},\"required\"", ",\"c\":{\"type\":\"array\",\"items\":"
                + anyOf(2, "{\"$ref\":\"#/$defs/o\"}") + "}},\"required\"");
        List<String[]> refused = List.of(
                new String[] {anyOf(2, holdingMore), "anyOf", "/anyOf/0/properties/a/anyOf", "begin with its bracket"},
                new String[] {anyOf(2, "{\"type\":\"array\",\"items\":" + consts(max / 2 + 1) + "}"), "anyOf", "/anyOf/0/items/anyOf",
                        "begin with its bracket"},
                // a reference first used where one object begins, then where two do
                new String[] {"{\"$defs\":{\"o\":" + holdingMore + "},\"type\":\"object\",\"properties\":{\"x\":{\"$ref\":\"#/$defs/o\"},"
                        + "\"y\":" + anyOf(2, "{\"$ref\":\"#/$defs/o\"}") + "}}", "$ref", "/properties/y/anyOf/0/$ref",
                        "2 alternatives here begin with its object"},
                // the same inside its own schema (a recursion), checked once the reference is visited
                new String[] {"{\"$defs\":{\"o\":" + recursive + "},\"$ref\":\"#/$defs/o\"}", "$ref",
                        "/$defs/o/properties/c/items/anyOf/0/$ref", "2 alternatives here begin with its object"});
        for (String[] r : refused) {
            JsonNode s = SchemaCorpus.MAPPER.readTree(r[0]);
            assertThatThrownBy(() -> JsonSchemaGrammar.convert(s)).as(r[2]).isInstanceOfSatisfying(SchemaException.class, e -> {
                assertThat(e.keyword()).isEqualTo(r[1]);
                assertThat(e.pointer()).isEqualTo(r[2]);
                assertThat(e.getMessage()).contains("more than " + max + " alternatives").contains(r[3]);
            });
        }
    }

    /**
     * The ways a pattern can be matching the text at once (at most 64: RegexGrammar.ambiguity) are
     * alive in each alternative around it: 128 anyOf alternatives of the unanchored a{1,60}, each
     * within that limit, kept some 7800 alive after fifty a's, and accepting one token took 115 ms.
     */
    @Test
    void patternWaysMultiplyTheAlternativesAroundThem() throws Exception {
        int max = JsonSchemaGrammar.MAX_ALTERNATIVES;
        // unanchored "abc": the text before a match, and each place a match may have reached
        String abc = "{\"type\":\"string\",\"pattern\":\"abc\"}";
        assertThat(JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree(anyOf(max / 4, abc)))).startsWith("root ::= ");
        assertThat(JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree(anyOf(max, abc.replace("abc", "^abc$"))))).startsWith("root ::= ");
        List<String[]> refused = List.of(
                new String[] {anyOf(max / 4 + 1, abc), "4 ways at once, in " + (max / 4 + 1) + " alternatives"},
                new String[] {anyOf(3, "{\"type\":\"string\",\"pattern\":\"a{1,60}\"}"), "62 ways at once, in 3 alternatives"});
        for (String[] r : refused) {
            JsonNode s = SchemaCorpus.MAPPER.readTree(r[0]);
            assertThatThrownBy(() -> JsonSchemaGrammar.convert(s)).as(r[1]).isInstanceOfSatisfying(SchemaException.class, e -> {
                assertThat(e.keyword()).isEqualTo("pattern");
                assertThat(e.pointer()).isEqualTo("/anyOf/0/pattern");
                assertThat(e.getMessage()).contains(r[1]).contains("more than " + max);
            });
        }
    }

    @Test
    void leftRecursionIsNamedWithItsCycle() throws Exception {
        JsonNode s = SchemaCorpus.MAPPER.readTree("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"anyOf\":[{\"type\":\"string\"},"
                + "{\"$ref\":\"#/$defs/a\"}]}},\"type\":\"object\",\"properties\":{\"k\":{\"$ref\":\"#/$defs/a\"}}}");
        assertThatThrownBy(() -> JsonSchemaGrammar.convert(s)).isInstanceOf(SchemaException.class)
                .hasMessageContaining("#/$defs/a -> #/$defs/b -> #/$defs/a").hasMessageContaining("(at #/properties/k/$ref)");
    }

    @Test
    void recursionAfterTextIsKept() throws Exception {
        // the same references, with the recursion inside an array: a grammar takes it, and so does llama.cpp
        String g = JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"anyOf\":["
                + "{\"type\":\"string\"},{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/a\"}}]}},\"$ref\":\"#/$defs/a\"}"));
        assertThat(g).contains("ref-defs-a").contains("ref-defs-b");
    }

    @Test
    void annotationsAreIgnored() throws Exception {
        String plain = JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}"));
        String annotated = JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree("""
                {"$schema":"https://json-schema.org/draft/2020-12/schema","title":"T","description":"d","type":"object",
                 "properties":{"a":{"type":"integer","description":"x","examples":[1,1e400],"default":2,"$comment":"c","deprecated":false}}}"""));
        assertThat(annotated).isEqualTo(plain);
    }

    @Test
    void everyCorpusSchemaConverts() {
        for (SchemaCorpus.Entry e : SchemaCorpus.all()) {
            assertThat(JsonSchemaGrammar.convert(e.schema())).as(e.name()).startsWith("root ::= ");
        }
    }

    /** Our validator and networknt's agree on every corpus document. */
    @Test
    void validatorAgreesWithTheReferenceValidator() throws Exception {
        int checked = 0;
        for (SchemaCorpus.Entry e : SchemaCorpus.all()) {
            List<JsonNode> docs = new ArrayList<>(e.valid());
            docs.addAll(e.invalid());
            docs.addAll(e.unordered());
            for (JsonNode d : docs) {
                String text = SchemaCorpus.MAPPER.writeValueAsString(d);
                boolean reference = SchemaCorpus.referenceErrors(e.schema(), text).isEmpty();
                List<String> ours = SchemaValidator.validate(e.schema(), d);
                assertThat(ours.isEmpty()).as("%s: %s (ours: %s)", e.name(), text, ours).isEqualTo(reference);
                checked++;
            }
            for (JsonNode d : e.valid()) {
                assertThat(SchemaValidator.validate(e.schema(), d)).as("%s valid %s", e.name(), d).isEmpty();
            }
            for (JsonNode d : e.invalid()) {
                assertThat(SchemaValidator.validate(e.schema(), d)).as("%s invalid %s", e.name(), d).isNotEmpty();
            }
        }
        assertThat(checked).isGreaterThan(200);
    }

    /** Numbers are compared exactly, as JSON Schema does, also beyond a double's range (which the number grammar admits). */
    @Test
    void validatorReadsNumbersExactly() throws Exception {
        JsonNode number = SchemaCorpus.MAPPER.readTree("{\"type\":\"number\",\"minimum\":0}");
        JsonNode integer = SchemaCorpus.MAPPER.readTree("{\"type\":\"integer\"}");
        for (String doc : List.of("1e400", "1.5E+400", "1e9999999999999999", "2.5e-400")) {
            assertThat(SchemaValidator.validate(number, SchemaValidator.read(doc))).as(doc).isEmpty();
        }
        assertThat(SchemaValidator.validate(number, SchemaValidator.read("-1e400"))).containsExactly("(root) violates minimum 0");
        // an integer is a number without a fractional part (networknt reads 1e400 as a double and calls it no integer)
        for (String doc : List.of("1e400", "1.5E+400", "12345678901234567.5", "9999999999999999.5", "2.5e-400", "-1e400", "20.0")) {
            List<String> ours = SchemaValidator.validate(integer, SchemaValidator.read(doc));
            assertThat(ours.isEmpty()).as("%s: %s", doc, ours).isEqualTo(new java.math.BigDecimal(doc).stripTrailingZeros().scale() <= 0);
        }
    }

    @Test
    void validatorReportsPointerAndReason() throws Exception {
        JsonNode schema = SchemaCorpus.MAPPER.readTree("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"maximum\":3}}}}");
        assertThat(SchemaValidator.validate(schema, SchemaCorpus.MAPPER.readTree("{\"a\":[1,7]}"))).containsExactly("/a/1 violates maximum 3");
        assertThat(SchemaValidator.validate(schema, SchemaCorpus.MAPPER.readTree("{\"a\":[1.0,2]}"))).isEmpty();
    }
}
