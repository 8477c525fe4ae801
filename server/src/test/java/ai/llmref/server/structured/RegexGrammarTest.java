package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@code pattern} as a grammar, checked in llama.cpp's own grammar engine (GrammarReference: the
 * pinned tree's llama-grammar, which the sampler uses): for each pattern, the grammar of
 * {"type":"string","pattern":...} must load and accept exactly the JSON strings whose value
 * java.util.regex finds the pattern in. The strings: hand-written ones that match and ones that
 * do not, strings generated from the pattern, and those mutated by a character.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class RegexGrammarTest {
    /** zod 4.6.7's z.toJSONSchema of z.uuid() and z.iso.date(), exactly (their format beside). */
    static final String ZOD_UUID = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
            + "|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$";
    static final String ZOD_DATE = "^(?:(?:\\d\\d[2468][048]|\\d\\d[13579][26]|\\d\\d0[48]|[02468][048]00|[13579][26]00)-02-29|"
            + "\\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)|(?:02)-(?:0[1-9]|1\\d|2[0-8])))$";
    /** zod 4.6.7's z.email(): its lookahead cannot be enforced. */
    static final String ZOD_EMAIL = "^(?!\\.)(?!.*\\.\\.)([A-Za-z0-9_'+\\-\\.]*)[A-Za-z0-9_+-]@([A-Za-z0-9][A-Za-z0-9\\-]*\\.)+[A-Za-z]{2,}$";

    private GrammarReference ref;

    @BeforeAll
    void build() throws Exception {
        ref = GrammarReference.build();
    }

    static Stream<Arguments> patterns() {
        return Stream.of(
                Arguments.of("^[A-Z]{3}-\\d{4}$", List.of("ABC-1234", "ZZZ-0000"), List.of("AB-1234", "abc-1234", "ABC-12345", "ABC-123",
                        " ABC-1234", "ABC-1234\n")),
                Arguments.of("^[a-z0-9_-]{3,16}$", List.of("abc", "a_b-c", "0123456789abcdef"), List.of("ab", "ABC", "a b",
                        "0123456789abcdefg", "abc!")),
                Arguments.of(ZOD_UUID, List.of("123e4567-e89b-12d3-a456-426614174000", "00000000-0000-0000-0000-000000000000",
                        "FFFFFFFF-FFFF-4FFF-8FFF-FFFFFFFFFFFF"), List.of("123e4567-e89b-02d3-a456-426614174000",
                        "123e4567-e89b-12d3-c456-426614174000", "123e4567e89b12d3a456426614174000", "g23e4567-e89b-12d3-a456-426614174000")),
                Arguments.of(ZOD_DATE, List.of("2024-02-29", "2000-02-29", "2023-12-31", "1999-04-30", "2023-02-28"),
                        List.of("2023-02-29", "1900-02-29", "2023-04-31", "2023-13-01", "2023-00-10", "23-01-01", "2023-1-01")),
                // not anchored: anything before and after
                Arguments.of("abc", List.of("abc", "xxabcyy", "a\"abc\\"), List.of("", "ab", "acb", "ABC")),
                Arguments.of("^ab|cd$", List.of("ab", "abzz", "zzcd", "cd"), List.of("zab", "cdz", "", "a")),
                Arguments.of("^(?:foo|bar)+baz?$", List.of("fooba", "barfoobaz", "foofoofooba"), List.of("baz", "foobaz2", "fooba z")),
                Arguments.of("^(?<year>\\d{4})-(?<m>\\d\\d)$", List.of("2024-01", "0000-99"), List.of("2024-1", "2024_01")),
                // characters JSON escapes: the quote, the backslash, controls, DEL
                Arguments.of("^[\"\\\\\\n\\t\\u0001\\x7f]+$", List.of("\"", "\\\\", "\n\t\u0001\u007f\""), List.of("", "a", "\r")),
                Arguments.of("^[^\"\\\\]*$", List.of("", "plain text", "é ☃ 😀", "tab\there"), List.of("\"", "a\\b")),
                Arguments.of("^.{2,5}$", List.of("ab", "é😀", "a\tb c", "\u0001\u0002"), List.of("a", "abcdef", "a\nb", "a\rb", "a\u2028b")),
                Arguments.of("^\\s*\\S+\\s*$", List.of("x", "  word\t", "\u00a0x\u3000", "\ufeffx"), List.of("", " ", "a b")),
                Arguments.of("^\\w+\\W\\w+$", List.of("ab-cd", "a b", "x_y.z_"), List.of("ab", "é-a", "a--b")),
                Arguments.of("^(a|b)*?c{2,}$", List.of("cc", "abbaccc"), List.of("c", "abc", "acca")),
                Arguments.of("^x(y(z(w)?)?)?$", List.of("x", "xy", "xyz", "xyzw"), List.of("xw", "xyw", "xyzwz")),
                Arguments.of("^\\+?[0-9]{1,3}[ .-]?\\(?\\d{3}\\)?$", List.of("+1 (555)", "44-123", "1555"), List.of("+1 (55)", "++1555")),
                Arguments.of("^$", List.of(""), List.of(" ", "a")),
                Arguments.of("", List.of("", "anything"), List.of()),
                Arguments.of("\\$\\d+\\.\\d\\d", List.of("$1.00", "cost: $12.50!"), List.of("$1.0", "1.00", "$.50")),
                Arguments.of("^\\x41\\u00e9[\\u4e00-\\u9fff]\\uD83D\\uDE00$", List.of("Aé中😀"), List.of("Ae中😀", "Aéa😀", "Aé中")),
                Arguments.of("^[^a-c\\d]{1,3}?$", List.of("x", "xyz", "é"), List.of("a", "x1", "wxyz", "")),
                // empty groups and alternatives, a repetition of nothing (a fuzz finding: ""? does not load)
                Arguments.of("^a()?b(|c)(?:)?x{0}(d|)$", List.of("ab", "abc", "abd", "abcd"), List.of("a", "abx", "abcc", "")),
                // a bounded repetition of something that can be empty is no left recursion
                Arguments.of("^(a?b?){0,3}(c|){2}$", List.of("", "ab", "aba", "abababcc", "c"), List.of("ccc", "aaaa")),
                Arguments.of("^(?:[0-9]{1,2}){2}$", List.of("12", "1234", "123"), List.of("1", "12345")),
                // few places, however many sets of them (a deterministic automaton for it has thousands of states)
                Arguments.of("^(a|b)*a(a|b){12}$", List.of("abbbbbbbbbbbb", "bbaaaaaaaaaaaaa"), List.of("bbbbbbbbbbbbb", "abbbbbbbbbbb")),
                // nested repetitions that a delimiter keeps unambiguous stay allowed (a host name)
                Arguments.of("^(?:[a-z0-9-]+\\.)+[a-z]{2,}$", List.of("example.com", "a.b-c.io"), List.of("com", "example.", ".com",
                        "Example.com")));
    }

    @ParameterizedTest(name = "[{index}] {0}")
    @MethodSource("patterns")
    void grammarAcceptsExactlyTheMatchingStrings(String pattern, List<String> matching, List<String> others) throws Exception {
        Pattern java = Pattern.compile(SchemaValidator.javaRegex(pattern));
        for (String s : matching) {
            assertThat(java.matcher(s).find()).as("%s matches %s", pattern, s).isTrue();
        }
        for (String s : others) {
            assertThat(java.matcher(s).find()).as("%s does not match %s", pattern, s).isFalse();
        }
        Set<String> values = new LinkedHashSet<>(matching);
        values.addAll(others);
        Random random = new Random(pattern.hashCode());
        List<RegexGrammar.Branch> branches = RegexGrammar.parse(pattern, "/pattern");
        for (int i = 0; i < 20; i++) {
            String g = generate(branches, random);
            assertThat(java.matcher(g).find()).as("%s matches the generated %s", pattern, g).isTrue();
            values.add(g);
        }
        for (String s : List.copyOf(values)) {
            for (int i = 0; i < 4 && !s.isEmpty(); i++) {
                values.add(mutate(s, random));
            }
        }
        ObjectNode schema = JsonNodeFactory.instance.objectNode().put("type", "string").put("pattern", pattern);
        String grammar = JsonSchemaGrammar.convert(schema);
        List<String> list = List.copyOf(values);
        // as Jackson writes them (short escapes, other controls as upper-case hex escapes), DEL escaped as the grammar writes it
        List<String> docs = list.stream().map(v -> JsonNodeFactory.instance.textNode(v).toString().replace("\u007f", "\\u007F")).toList();
        boolean[] accepted = ref.accepts(grammar, docs);
        for (int i = 0; i < list.size(); i++) {
            boolean matches = java.matcher(list.get(i)).find();
            assertThat(accepted[i]).as("%s: the grammar %s %s%n%s", pattern, accepted[i] ? "accepts" : "rejects", docs.get(i), grammar)
                    .isEqualTo(matches);
            // the output check agrees: a document the grammar writes passes, another fails
            assertThat(SchemaValidator.validate(schema, JsonNodeFactory.instance.textNode(list.get(i))).isEmpty()).isEqualTo(matches);
        }
    }

    @Test
    void translationAgreesWithJavaWhereTheSyntaxesAgree() {
        // plain patterns mean the same in ECMA-262 and in Java: the translation must not change them
        for (String p : List.of("^[A-Z]{3}-[0-9]{4}$", "abc", "^(?:foo|bar)+$", "^[a-z0-9_-]{3,16}$")) {
            for (String s : List.of("ABC-1234", "xabcx", "foobar", "abc_def", "ab", "")) {
                assertThat(Pattern.compile(SchemaValidator.javaRegex(p)).matcher(s).find()).isEqualTo(Pattern.compile(p).matcher(s).find());
            }
        }
        // where they differ, ECMA's meaning: $ is the end (Java's also matches before a final newline),
        // \s is ECMA's white space, \d ASCII digits, . excludes \u2028
        assertThat(Pattern.compile(SchemaValidator.javaRegex("^a$")).matcher("a\n").find()).isFalse();
        assertThat(Pattern.compile(SchemaValidator.javaRegex("^\\s$")).matcher("\u00a0").find()).isTrue();
        assertThat(Pattern.compile(SchemaValidator.javaRegex("^.$")).matcher("\u2028").find()).isFalse();
        assertThat(Pattern.compile(SchemaValidator.javaRegex("^[\\b]$")).matcher("\b").find()).isTrue();
        assertThat(Pattern.compile(SchemaValidator.javaRegex("^[a[&]+$")).matcher("[&a").find()).isTrue();
    }

    static Stream<Arguments> refusals() {
        return Stream.of(
                Arguments.of(ZOD_EMAIL, "lookahead (?! ...)"),
                Arguments.of("^(?=a)a$", "lookahead (?= ...)"),
                Arguments.of("(?<=a)b", "lookbehind (?<= ...)"),
                Arguments.of("(?<!a)b", "lookbehind (?<! ...)"),
                Arguments.of("^(a)\\1$", "backreference \\1"),
                Arguments.of("^(?<n>a)\\k<n>$", "named backreference"),
                Arguments.of("\\bword\\b", "word boundary \\b"),
                Arguments.of("a\\Bb", "word boundary \\B"),
                Arguments.of("a^b", "anchor '^'"),
                Arguments.of("(^a)", "anchor '^'"),
                Arguments.of("a$b", "anchor '$'"),
                Arguments.of("(a$)", "anchor '$'"),
                Arguments.of("^\\p{L}+$", "unicode property escape \\p{...}"),
                Arguments.of("^\\P{Lu}$", "unicode property escape \\P{...}"),
                Arguments.of("(?i)abc", "inline flags"),
                Arguments.of("^\\cJ$", "escape \\c"),
                Arguments.of("^\\u{1F600}$", "\\u{...}"),
                Arguments.of("a{3", "malformed quantifier"),
                Arguments.of("a{", "unescaped '{'"),
                Arguments.of("a**", "quantifier after a quantifier"),
                Arguments.of("*a", "nothing to repeat"),
                Arguments.of("(ab", "not closed"),
                Arguments.of("ab)", "unmatched ')'"),
                Arguments.of("[ab", "not closed"),
                Arguments.of("[]", "matches no character"),
                Arguments.of("[z-a]", "out of order"),
                Arguments.of("[\\d-z]", "range with a class escape"),
                Arguments.of("^a{2001}$", "repetition above 2000"),
                Arguments.of("^a{5,2}$", "minimum above its maximum"),
                Arguments.of("^\\uD800$", "lone surrogate"),
                Arguments.of("(((((((((((((((((a)))))))))))))))))", "nested more than 16"),
                Arguments.of("a\\", "lone backslash"),
                // unbounded repetitions of what can be empty (a recursion that reads nothing; refused as a precaution)
                Arguments.of("^(a?)*$", "unbounded repetition ((a?)*)"),
                Arguments.of("^(?:a|)+$", "unbounded repetition"),
                Arguments.of("^(?:)*$", "unbounded repetition"),
                Arguments.of("^(b*c*){2,}$", "unbounded repetition"),
                // ambiguous repetitions: llama.cpp's grammar engine follows every way to split the text among them; the
                // first held the scheduler thread in one llama_sampler_apply for more than ten minutes before this check
                Arguments.of("^(.{0,2000}){0,2000}$", "too large to enforce"),
                Arguments.of("^(a{1,40}){1,40}$", "in more than 64 ways at once"),
                Arguments.of("^(?:\\w+\\s?){1,200}$", "in more than 64 ways at once"),
                Arguments.of("^(a|a?){1,100}$", "in more than 64 ways at once"),
                Arguments.of("a{1,200}", "in more than 64 ways at once"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("refusals")
    void unsupportedConstructsAreRefusedByName(String pattern, String named) {
        ObjectNode schema = JsonNodeFactory.instance.objectNode();
        schema.putObject("properties").putObject("p").put("type", "string").put("pattern", pattern);
        assertThatThrownBy(() -> JsonSchemaGrammar.convert(schema)).isInstanceOfSatisfying(SchemaException.class, e -> {
            assertThat(e.keyword()).isEqualTo("pattern");
            assertThat(e.pointer()).isEqualTo("/properties/p/pattern");
            assertThat(e.getMessage()).contains(named);
        });
    }

    @Test
    void zodSchemasWithFormatBesideThePatternConvertAndLoad() throws Exception {
        // exactly as zod 4.6.7's z.toJSONSchema writes z.object({id: z.uuid(), day: z.iso.date(), code: z.string().regex(...)})
        JsonNode zod = SchemaCorpus.MAPPER.readTree("{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"type\":\"object\","
                + "\"properties\":{\"id\":{\"type\":\"string\",\"format\":\"uuid\",\"pattern\":" + quote(ZOD_UUID) + "},"
                + "\"day\":{\"type\":\"string\",\"format\":\"date\",\"pattern\":" + quote(ZOD_DATE) + "},"
                + "\"code\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{3}-\\\\d{4}$\"}},\"required\":[\"id\",\"day\",\"code\"],"
                + "\"additionalProperties\":false}");
        String grammar = JsonSchemaGrammar.convert(zod);
        List<String> docs = List.of(
                "{\"id\":\"123e4567-e89b-12d3-a456-426614174000\",\"day\":\"2024-02-29\",\"code\":\"ABC-1234\"}",
                "{\"id\":\"123e4567-e89b-02d3-a456-426614174000\",\"day\":\"2024-02-29\",\"code\":\"ABC-1234\"}",
                "{\"id\":\"123e4567-e89b-12d3-a456-426614174000\",\"day\":\"2023-02-29\",\"code\":\"ABC-1234\"}",
                "{\"id\":\"123e4567-e89b-12d3-a456-426614174000\",\"day\":\"2024-02-29\",\"code\":\"AB-1234\"}");
        boolean[] a = ref.accepts(grammar, docs);
        assertThat(a).containsExactly(true, false, false, false);
        for (int i = 0; i < docs.size(); i++) {
            assertThat(SchemaValidator.validate(zod, SchemaCorpus.MAPPER.readTree(docs.get(i))).isEmpty()).isEqualTo(a[i]);
            assertThat(SchemaCorpus.referenceErrors(zod, docs.get(i)).isEmpty()).as("reference validator on %s", docs.get(i)).isEqualTo(a[i]);
        }
    }

    @Test
    void patternBesideFormatOrLengthsMustStayWithinThem() throws Exception {
        // pydantic's constr(pattern=..., min_length=3, max_length=16): the pattern admits only such lengths
        assertThat(convert("{\"type\":\"string\",\"pattern\":\"^[a-z0-9_-]{3,16}$\",\"minLength\":3,\"maxLength\":16}")).startsWith("root ::= ");
        assertThat(convert("{\"type\":\"string\",\"pattern\":\"^\\\\d{4}-\\\\d{2}-\\\\d{2}$\",\"maxLength\":10}")).startsWith("root ::= ");
        assertRefused("{\"type\":\"string\",\"pattern\":\"^[a-z]+$\",\"maxLength\":8}", "minLength/maxLength", "\"aaaaaaaaa\"");
        assertRefused("{\"type\":\"string\",\"pattern\":\"^[a-z]*$\",\"minLength\":1}", "minLength/maxLength", "\"\"");
        assertRefused("{\"type\":\"string\",\"pattern\":\"^[a-z]{3}$\",\"format\":\"uuid\"}", "'format' uuid", "\"aaa\"");
        // \d{2} admits month 13: not every match is a date
        assertRefused("{\"type\":\"string\",\"pattern\":\"^\\\\d{4}-\\\\d{2}-\\\\d{2}$\",\"format\":\"date\"}", "'format' date", "");
        assertRefused("{\"type\":\"string\",\"pattern\":\"[0-9]\",\"format\":\"date\"}", "'format' date", "");
        assertRefused("{\"type\":\"string\",\"pattern\":\"^a$\",\"format\":\"email\"}", "email", "");
    }

    private static String convert(String schema) throws Exception {
        return JsonSchemaGrammar.convert(SchemaCorpus.MAPPER.readTree(schema));
    }

    private static void assertRefused(String schema, String what, String example) throws Exception {
        JsonNode s = SchemaCorpus.MAPPER.readTree(schema);
        assertThatThrownBy(() -> JsonSchemaGrammar.convert(s)).isInstanceOfSatisfying(SchemaException.class,
                e -> assertThat(e.getMessage()).contains(what).contains(example));
    }

    private static String quote(String s) {
        return JsonNodeFactory.instance.textNode(s).toString();
    }

    // --- strings from a pattern ----------------------------------------------------------------

    private static String generate(List<RegexGrammar.Branch> branches, Random r) {
        RegexGrammar.Branch b = branches.get(r.nextInt(branches.size()));
        StringBuilder sb = new StringBuilder();
        if (!b.start() && r.nextBoolean()) {
            sb.append(randomChar(RegexGrammar.ANY, r));
        }
        generate(b.node(), r, sb);
        if (!b.end() && r.nextBoolean()) {
            sb.append(randomChar(RegexGrammar.ANY, r));
        }
        return sb.toString();
    }

    private static void generate(RegexGrammar.Node n, Random r, StringBuilder sb) {
        switch (n) {
            case RegexGrammar.Chars c -> sb.appendCodePoint(randomChar(c.ranges(), r));
            case RegexGrammar.Seq s -> s.items().forEach(i -> generate(i, r, sb));
            case RegexGrammar.Alt a -> generate(a.alternatives().get(r.nextInt(a.alternatives().size())), r, sb);
            case RegexGrammar.Repeat p -> {
                int max = p.max() < 0 ? p.min() + 3 : Math.min(p.max(), p.min() + 3);
                int times = p.min() + r.nextInt(max - p.min() + 1);
                for (int i = 0; i < times; i++) {
                    generate(p.body(), r, sb);
                }
            }
        }
    }

    /** A code point of the set: mostly near a range's ends (where off-by-ones live), some ASCII and escapes. */
    private static int randomChar(int[] set, Random r) {
        int i = 2 * r.nextInt(set.length / 2);
        int lo = set[i];
        int hi = Math.min(set[i + 1], lo + (r.nextInt(4) == 0 ? 0x2FF : 3));
        return r.nextBoolean() ? lo + r.nextInt(hi - lo + 1) : r.nextBoolean() ? lo : set[i + 1];
    }

    private static final int[] NOISE = {'a', 'Z', '0', '9', '-', '_', ' ', '"', '\\', '\n', 0x7F, 0xE9, 0x2028, 0x1F600};

    private static String mutate(String s, Random r) {
        int[] cps = s.codePoints().toArray();
        List<Integer> out = new ArrayList<>();
        for (int cp : cps) {
            out.add(cp);
        }
        int at = r.nextInt(out.size());
        int noise = NOISE[r.nextInt(NOISE.length)];
        switch (r.nextInt(3)) {
            case 0 -> out.remove(at);
            case 1 -> out.add(at, noise);
            default -> out.set(at, noise);
        }
        StringBuilder sb = new StringBuilder();
        out.forEach(sb::appendCodePoint);
        return sb.toString();
    }
}
