package ai.llmref.server.structured;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.cfg.JsonNodeFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.util.RawValue;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Validates a document against a schema of the supported subset ({@link SchemaKeywords}), with
 * JSON Schema 2020-12 semantics; written apart from {@link JsonSchemaGrammar} so that it checks
 * the grammar's output rather than repeating its reasoning. (A general validator library would
 * also check keywords the converter refuses, which never reach it; this one has no dependencies
 * and checks exactly the subset the server accepts.)
 */
public final class SchemaValidator {
    private static final Pattern DATE = Pattern.compile("\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])");
    private static final Pattern TIME = Pattern.compile("([01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(\\.\\d+)?(Z|z|[+-]([01]\\d|2[0-3]):[0-5]\\d)");
    private static final Pattern UUID = Pattern.compile("[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}");
    private static final int MAX_DEPTH = 256;
    /** Reads numbers exactly, as JSON Schema compares them (a double would turn 1e400 into Infinity, 0.1000000000000000001 into 0.1). */
    static final ObjectMapper EXACT = JsonMapper.builder().enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
            .disable(JsonNodeFeature.STRIP_TRAILING_BIGDECIMAL_ZEROES).build();
    private static final ObjectMapper PLAIN = new ObjectMapper();

    private final JsonNode root;
    private final List<String> errors = new ArrayList<>();

    private SchemaValidator(JsonNode root) {
        this.root = root;
    }

    /** The violations of the document (JSON pointer and reason each); empty when it is valid. */
    public static List<String> validate(JsonNode schema, JsonNode document) {
        SchemaValidator v = new SchemaValidator(schema);
        v.check(schema, document, "", 0);
        return List.copyOf(v.errors);
    }

    /**
     * Reads a generated document for {@link #validate}: numbers exact; one whose exponent is beyond
     * what a BigDecimal holds (|exponent| above 2^31) is read as a double (±Infinity or ±0).
     */
    public static JsonNode read(String text) throws JsonProcessingException {
        try {
            return EXACT.readTree(text);
        } catch (NumberFormatException e) {
            return PLAIN.readTree(text);
        }
    }

    /**
     * A number read exactly, or one whose exponent is beyond what a BigDecimal holds (a grammar's
     * numbers may have 16 exponent digits, as llama.cpp's) kept as written: a node that Jackson
     * writes back as that text, as {@link CompactJson} passes such a number on while it streams.
     */
    static JsonNode number(String raw) throws JsonProcessingException {
        try (JsonParser p = EXACT.createParser(raw)) {
            JsonToken t = p.nextToken();
            if (t != JsonToken.VALUE_NUMBER_INT && t != JsonToken.VALUE_NUMBER_FLOAT) {
                throw new com.fasterxml.jackson.core.JsonParseException(p, "not a number");
            }
            JsonNode n = keepingNumbers(p);
            if (p.nextToken() != null) {
                throw new com.fasterxml.jackson.core.JsonParseException(p, "not one number");
            }
            return n;
        } catch (JsonProcessingException e) {
            throw e;
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e); // a String source does no I/O
        }
    }

    /**
     * The value at the parser's current token, read as {@link #EXACT} reads it (the same node
     * types), but a number whose exponent is beyond a BigDecimal's kept as written (see
     * {@link #number}); the parser is left on the value's last token.
     */
    static JsonNode keepingNumbers(JsonParser p) throws IOException {
        JsonNodeFactory f = JsonNodeFactory.instance;
        JsonToken t = p.currentToken();
        if (t == null) {
            throw new com.fasterxml.jackson.core.JsonParseException(p, "no value");
        }
        return switch (t) {
            case START_OBJECT -> {
                ObjectNode o = f.objectNode();
                while (p.nextToken() == JsonToken.FIELD_NAME) {
                    String name = p.currentName();
                    p.nextToken();
                    o.set(name, keepingNumbers(p));
                }
                yield o;
            }
            case START_ARRAY -> {
                ArrayNode a = f.arrayNode();
                while (p.nextToken() != JsonToken.END_ARRAY) {
                    a.add(keepingNumbers(p));
                }
                yield a;
            }
            case VALUE_STRING -> f.textNode(p.getText());
            case VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT -> {
                String raw = p.getText();
                try {
                    yield EXACT.readTree(raw);
                } catch (NumberFormatException e) {
                    yield f.rawValueNode(new RawValue(raw));
                }
            }
            case VALUE_TRUE -> f.booleanNode(true);
            case VALUE_FALSE -> f.booleanNode(false);
            case VALUE_NULL -> f.nullNode();
            default -> throw new com.fasterxml.jackson.core.JsonParseException(p, "unexpected " + t);
        };
    }

    private boolean check(JsonNode s, JsonNode doc, String at, int depth) {
        int before = errors.size();
        if (depth > MAX_DEPTH) {
            return fail(at, "schema recursion deeper than " + MAX_DEPTH);
        }
        if (s.isBoolean()) {
            return s.booleanValue() || fail(at, "the schema 'false' admits no value");
        }
        if (s.has("$ref")) {
            check(SchemaKeywords.resolve(root, s.get("$ref").textValue(), ""), doc, at, depth + 1);
        }
        if (s.has("const") && !jsonEquals(s.get("const"), doc)) {
            fail(at, "is not the constant " + SchemaKeywords.abbreviate(s.get("const").toString()));
        }
        if (s.has("enum")) {
            boolean any = false;
            for (JsonNode e : s.get("enum")) {
                any |= jsonEquals(e, doc);
            }
            if (!any) {
                fail(at, "is not one of the enum values");
            }
        }
        if (s.has("anyOf") && matching(s.get("anyOf"), doc, at, depth) == 0) {
            fail(at, "matches none of anyOf");
        }
        if (s.has("oneOf")) {
            int n = matching(s.get("oneOf"), doc, at, depth);
            if (n != 1) {
                fail(at, "matches " + n + " of oneOf's schemas, not exactly one");
            }
        }
        if (s.has("allOf")) {
            for (JsonNode sub : s.get("allOf")) {
                check(sub, doc, at, depth + 1);
            }
        }
        if (s.has("type") && !hasType(doc, SchemaKeywords.types(s, at))) {
            fail(at, "does not have type " + s.get("type"));
        }
        if (doc.isObject()) {
            object(s, doc, at, depth);
        } else if (doc.isArray()) {
            array(s, doc, at, depth);
        } else if (doc.isTextual()) {
            string(s, doc.textValue(), at);
        } else if (doc.isNumber()) {
            number(s, doc, at);
        }
        return errors.size() == before;
    }

    private int matching(JsonNode alternatives, JsonNode doc, String at, int depth) {
        int n = 0;
        for (JsonNode alt : alternatives) {
            SchemaValidator probe = new SchemaValidator(root);
            if (probe.check(alt, doc, at, depth + 1)) {
                n++;
            }
        }
        return n;
    }

    private void object(JsonNode s, JsonNode doc, String at, int depth) {
        JsonNode props = s.get("properties");
        if (s.has("required")) {
            for (JsonNode r : s.get("required")) {
                if (!doc.has(r.textValue())) {
                    fail(at, "lacks the required property '" + r.textValue() + "'");
                }
            }
        }
        for (Map.Entry<String, JsonNode> f : doc.properties()) {
            String p = at + "/" + SchemaKeywords.escape(f.getKey());
            if (props != null && props.has(f.getKey())) {
                check(props.get(f.getKey()), f.getValue(), p, depth + 1);
            } else if (s.has("additionalProperties")) {
                check(s.get("additionalProperties"), f.getValue(), p, depth + 1);
            }
        }
    }

    private void array(JsonNode s, JsonNode doc, String at, int depth) {
        int prefix = 0;
        if (s.has("prefixItems")) {
            JsonNode pi = s.get("prefixItems");
            prefix = pi.size();
            for (int i = 0; i < Math.min(pi.size(), doc.size()); i++) {
                check(pi.get(i), doc.get(i), at + "/" + i, depth + 1);
            }
        }
        if (s.has("items")) {
            for (int i = prefix; i < doc.size(); i++) {
                check(s.get("items"), doc.get(i), at + "/" + i, depth + 1);
            }
        }
        if (s.has("minItems") && doc.size() < s.get("minItems").asLong()) {
            fail(at, "has fewer than " + s.get("minItems").asLong() + " items");
        }
        if (s.has("maxItems") && doc.size() > s.get("maxItems").asLong()) {
            fail(at, "has more than " + s.get("maxItems").asLong() + " items");
        }
    }

    private void string(JsonNode s, String v, String at) {
        int len = v.codePointCount(0, v.length());
        if (s.has("minLength") && len < s.get("minLength").asLong()) {
            fail(at, "is shorter than " + s.get("minLength").asLong() + " characters");
        }
        if (s.has("maxLength") && len > s.get("maxLength").asLong()) {
            fail(at, "is longer than " + s.get("maxLength").asLong() + " characters");
        }
        if (s.has("format")) {
            String f = s.get("format").asText();
            boolean ok = switch (f) {
                case "date" -> DATE.matcher(v).matches();
                case "time" -> TIME.matcher(v).matches();
                case "date-time" -> {
                    int t = v.indexOf('T') >= 0 ? v.indexOf('T') : v.indexOf('t');
                    yield t == 10 && DATE.matcher(v.substring(0, t)).matches() && TIME.matcher(v.substring(t + 1)).matches();
                }
                case "uuid" -> UUID.matcher(v).matches();
                default -> true; // formats outside the subset never reach here (the converter refuses them)
            };
            if (!ok) {
                fail(at, "is not a valid " + f);
            }
        }
        if (s.has("pattern")) {
            String p = s.get("pattern").asText();
            try {
                if (!Pattern.compile(javaRegex(p)).matcher(v).find()) {
                    fail(at, "does not match the pattern " + SchemaKeywords.abbreviate(s.get("pattern").toString()));
                }
            } catch (StackOverflowError e) {
                fail(at, "could not be checked against the pattern (too long for java.util.regex)");
            }
        }
        for (int i = 0; i < v.length(); i++) {
            char c = v.charAt(i);
            if (Character.isHighSurrogate(c) && (i + 1 >= v.length() || !Character.isLowSurrogate(v.charAt(i + 1)))
                    || Character.isLowSurrogate(c) && (i == 0 || !Character.isHighSurrogate(v.charAt(i - 1)))) {
                fail(at, "holds a lone UTF-16 surrogate");
                break;
            }
        }
    }

    /** ECMA-262's white space and line terminators ({@code \s}), as the inside of a Java class. */
    private static final String ECMA_SPACE = "\\t\\n\\x0B\\f\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
            + "\\x{205F}\\x{3000}\\x{FEFF}";

    /**
     * A pattern of the supported ECMA-262 subset (the converter refuses the rest before a document
     * is generated) as a java.util.regex pattern of the same language: {@code \d \w \s} and their
     * negations as ECMA's sets (ASCII digits and word characters, ECMA's white space), {@code .}
     * without exactly ECMA's line terminators, {@code $} as the end of the input ({@code \z}),
     * {@code \v} as the vertical tab and {@code \b} in a class as the backspace, '[' and '&' in a
     * class as literals, a named group as a plain group, {@code [^]} as any character.
     */
    static String javaRegex(String ecma) {
        StringBuilder out = new StringBuilder();
        boolean inClass = false;
        for (int i = 0; i < ecma.length(); i++) {
            char c = ecma.charAt(i);
            if (c == '\\' && i + 1 < ecma.length()) {
                char n = ecma.charAt(++i);
                out.append(switch (n) {
                    case 'd' -> inClass ? "0-9" : "[0-9]";
                    case 'D' -> "[^0-9]";
                    case 'w' -> inClass ? "a-zA-Z0-9_" : "[a-zA-Z0-9_]";
                    case 'W' -> "[^a-zA-Z0-9_]";
                    case 's' -> inClass ? ECMA_SPACE : "[" + ECMA_SPACE + "]";
                    case 'S' -> "[^" + ECMA_SPACE + "]";
                    case 'v' -> "\\x0B";
                    case 'b' -> inClass ? "\\x08" : "\\b";
                    default -> "\\" + n;
                });
            } else if (inClass) {
                if (c == ']') {
                    inClass = false;
                    out.append(']');
                } else if (c == '[' || c == '&') {
                    out.append('\\').append(c);
                } else {
                    out.append(c);
                }
            } else if (c == '[') {
                if (ecma.startsWith("[^]", i)) {
                    out.append("[\\x{0}-\\x{10FFFF}]");
                    i += 2;
                    continue;
                }
                inClass = true;
                out.append('[');
                if (i + 1 < ecma.length() && ecma.charAt(i + 1) == '^') {
                    out.append('^');
                    i++;
                }
            } else if (c == '.') {
                out.append("[^\\n\\r\\x{2028}\\x{2029}]");
            } else if (c == '$') {
                out.append("\\z");
            } else if (c == '(' && ecma.startsWith("(?<", i) && !ecma.startsWith("(?<=", i) && !ecma.startsWith("(?<!", i)) {
                out.append("(?:");
                i = ecma.indexOf('>', i);
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }

    private void number(JsonNode s, JsonNode v, String at) {
        bound(s, "minimum", v, at, c -> c >= 0);
        bound(s, "maximum", v, at, c -> c <= 0);
        bound(s, "exclusiveMinimum", v, at, c -> c > 0);
        bound(s, "exclusiveMaximum", v, at, c -> c < 0);
    }

    private void bound(JsonNode s, String k, JsonNode v, String at, java.util.function.IntPredicate ok) {
        JsonNode b = s.get(k);
        if (b != null && b.isNumber() && !ok.test(compare(v, b))) {
            fail(at, "violates " + k + " " + b);
        }
    }

    /** Numeric order: exact, or by double where one is beyond a double's range (±Infinity, which has no BigDecimal). */
    private static int compare(JsonNode a, JsonNode b) {
        return finite(a) && finite(b) ? a.decimalValue().compareTo(b.decimalValue()) : Double.compare(a.doubleValue(), b.doubleValue());
    }

    /** Whether a value is not a number beyond a double's range (read as a double: ±Infinity). */
    static boolean finite(JsonNode n) {
        return !n.isFloatingPointNumber() || n.isBigDecimal() || Double.isFinite(n.doubleValue());
    }

    private boolean fail(String at, String why) {
        errors.add((at.isEmpty() ? "(root)" : at) + " " + why);
        return false;
    }

    /** Whether a value has one of the JSON Schema types (an integral number is an "integer", 1.0 included). */
    static boolean hasType(JsonNode v, List<String> types) {
        for (String t : types) {
            boolean ok = switch (t) {
                case "object" -> v.isObject();
                case "array" -> v.isArray();
                case "string" -> v.isTextual();
                case "boolean" -> v.isBoolean();
                case "null" -> v.isNull();
                case "number" -> v.isNumber();
                // beyond a double's range (|v| > 1.8e308 with at most a few dozen digits written) a number is integral
                case "integer" -> v.isIntegralNumber() || v.isNumber() && (!finite(v) || v.decimalValue().stripTrailingZeros().scale() <= 0);
                default -> false;
            };
            if (ok) {
                return true;
            }
        }
        return false;
    }

    /** JSON equality: numbers by value (1 equals 1.0), objects regardless of key order. */
    static boolean jsonEquals(JsonNode a, JsonNode b) {
        if (a.isNumber() && b.isNumber()) {
            return compare(a, b) == 0;
        }
        if (a.isObject() && b.isObject()) {
            if (a.size() != b.size()) {
                return false;
            }
            Set<String> seen = new HashSet<>();
            for (Map.Entry<String, JsonNode> f : a.properties()) {
                seen.add(f.getKey());
                if (!b.has(f.getKey()) || !jsonEquals(f.getValue(), b.get(f.getKey()))) {
                    return false;
                }
            }
            return seen.size() == a.size();
        }
        if (a.isArray() && b.isArray()) {
            if (a.size() != b.size()) {
                return false;
            }
            for (int i = 0; i < a.size(); i++) {
                if (!jsonEquals(a.get(i), b.get(i))) {
                    return false;
                }
            }
            return true;
        }
        return a.equals(b);
    }
}
