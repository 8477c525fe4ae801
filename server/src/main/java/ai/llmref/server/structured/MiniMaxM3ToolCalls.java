package ai.llmref.server.structured;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * MiniMax M3's tool calls: XML whose every tag is prefixed by the namespace token
 * {@code ]<]minimax[>[} ({@link #NS}), all of a reply's calls in one block, a parameter's name its
 * element's tag, and values nested as elements, as its template's {@code to_xml} writes them:
 *
 * <pre>
 * NS&lt;tool_call&gt;
 * NS&lt;invoke name="get_weather"&gt;NS&lt;city&gt;Paris NS&lt;/city&gt;NS&lt;days&gt;3NS&lt;/days&gt;NS&lt;/invoke&gt;
 * NS&lt;/tool_call&gt;
 * </pre>
 *
 * <p>A value is read by its schema, as llama.cpp reads it: one that may be a string is the raw
 * text up to its element's end (a union with a string alternative too); an object with declared
 * properties, its members as elements; an array, its items as {@code NS<item>} elements; a union,
 * the first alternative that reads; anything else (numbers, booleans, null, a free object) JSON.
 * The arguments are the JSON object so read, members in the order written.
 *
 * <p>{@link Reader} reads a call whole, or, for a reply still being written, as far as it goes:
 * the JSON read so far, unclosed (a string's or a JSON value's text then as much as cannot be
 * the start of its end), which a stream sends as it grows.
 */
final class MiniMaxM3ToolCalls {
    /** The namespace token every tag of a call begins with. */
    static final String NS = "]<]minimax[>[";
    static final String OPEN = NS + "<tool_call>";
    static final String CLOSE = NS + "</tool_call>";
    static final String INVOKE = NS + "<invoke name=\"";
    static final String INVOKE_END = NS + "</invoke>";
    static final String ITEM = NS + "<item>";
    static final String ITEM_END = NS + "</item>";
    /** What a raw value never holds in the grammar (the namespace token's start, so its end is the first NS after it). */
    static final String RAW_STOP = "]<";
    /** The deepest nesting of values read or enforced. */
    static final int MAX_DEPTH = 16;
    /** The longest element tag read. */
    static final int MAX_TAG = 256;

    private MiniMaxM3ToolCalls() {}

    /** How a value is written: raw text, elements of an object's members or an array's items, one of several, or JSON. */
    private enum Shape { RAW, OBJECT, ARRAY, ANY_OF, JSON }

    /** A schema's shape, references followed (at most {@link #MAX_DEPTH}); null where none can be told. */
    private static Shape shape(JsonNode root, JsonNode schema) {
        if (!schema.isObject()) {
            return schema.isBoolean() ? Shape.RAW : null; // true: any value, written as text
        }
        if (XmlToolCalls.stringness(root, schema, 0) != XmlToolCalls.Stringness.NEVER) {
            return Shape.RAW; // a string accepts anything, so a union with a string alternative is a string (llama.cpp)
        }
        if (schema.has("anyOf") || schema.has("oneOf")) {
            return Shape.ANY_OF;
        }
        List<String> types;
        try {
            types = SchemaKeywords.types(schema, "");
        } catch (SchemaException e) {
            return Shape.JSON;
        }
        if (types.equals(List.of("object")) && schema.path("properties").isObject() && !schema.path("properties").isEmpty()) {
            return Shape.OBJECT;
        }
        return types.equals(List.of("array")) ? Shape.ARRAY : Shape.JSON;
    }

    private static JsonNode deref(JsonNode root, JsonNode schema) {
        JsonNode s = schema;
        for (int depth = 0; s.isObject() && s.has("$ref") && depth <= MAX_DEPTH; depth++) {
            try {
                s = SchemaKeywords.resolve(root, s.get("$ref").asText(), "");
            } catch (SchemaException e) {
                return JsonNodeFactory.instance.objectNode();
            }
        }
        return s;
    }

    // --- parsing -------------------------------------------------------------------------------

    /**
     * Reads a call at {@code at} ({@code NS<invoke name="NAME">}, its members, {@code NS</invoke>}):
     * whole, or with {@code partial} as far as the text goes ({@link #ended}: it ended inside the
     * call; {@link #out} the arguments read so far, unclosed).
     */
    static final class Reader {
        private final String text;
        private final boolean partial;
        int at;
        final StringBuilder out = new StringBuilder();
        /** The text ended inside the call (partial reading). */
        boolean ended;
        /** The call's function, once its name is whole. */
        ToolCalls.Function function;
        private JsonNode root;

        Reader(String text, int at, boolean partial) {
            this.text = text;
            this.at = at;
            this.partial = partial;
        }

        /** Reads the call; false where the text is not one (a partial read is true while the text may still become one). */
        boolean call(List<ToolCalls.Function> functions) {
            if (!expect(INVOKE)) {
                return false;
            }
            if (ended) {
                return true;
            }
            int nameEnd = text.indexOf("\">", at);
            if (nameEnd < 0) {
                ended = partial;
                int quote = text.indexOf('"', at); // none yet, or the name's end just written
                return partial && (quote < 0 || quote == text.length() - 1) && text.length() - at <= MAX_TAG;
            }
            String name = text.substring(at, nameEnd);
            function = functions.stream().filter(f -> f.name().equals(name)).findFirst().orElse(null);
            if (function == null) {
                return false;
            }
            root = function.parameters();
            at = nameEnd + 2;
            JsonNode r = deref(root, root);
            if (!members(shape(root, r) == Shape.OBJECT ? r : JsonNodeFactory.instance.objectNode(), 0) || ended) {
                return ended;
            }
            skipSpace();
            return expect(INVOKE_END);
        }

        /** Matches {@code s} at the reading point; with partial reading, a text that ends inside it ends the reading. */
        private boolean expect(String s) {
            if (text.startsWith(s, at)) {
                at += s.length();
                return true;
            }
            if (partial && s.startsWith(text.substring(at))) {
                at = text.length();
                ended = true;
                return true;
            }
            return false;
        }

        private void skipSpace() {
            at = ToolCalls.skipSpace(text, at);
        }

        /** An object's members as elements, up to (not including) the first closing tag. */
        private boolean members(JsonNode schema, int depth) {
            JsonNode props = schema.path("properties");
            Set<String> written = new HashSet<>();
            out.append('{');
            while (true) {
                skipSpace();
                if (at == text.length()) {
                    ended = partial;
                    return partial;
                }
                if (text.startsWith(NS + "</", at)) {
                    break;
                }
                if (!text.startsWith(NS + "<", at)) {
                    if (partial && (NS + "</").startsWith(text.substring(at))) {
                        ended = true;
                        return true;
                    }
                    return false;
                }
                int tagStart = at + NS.length() + 1;
                int tagEnd = text.indexOf('>', tagStart);
                if (tagEnd < 0) {
                    ended = partial;
                    return partial && text.length() - tagStart <= MAX_TAG;
                }
                String key = text.substring(tagStart, tagEnd);
                if (key.startsWith("/") || !props.has(key) || !written.add(key)) {
                    return false;
                }
                if (written.size() > 1) {
                    out.append(',');
                }
                out.append(JsonSchemaGrammar.dump(JsonNodeFactory.instance.textNode(key))).append(':');
                at = tagEnd + 1;
                if (!value(props.get(key), NS + "</" + key + ">", depth + 1) || ended) {
                    return ended;
                }
            }
            out.append('}');
            return true;
        }

        /** A value of the schema, then {@code close}. */
        private boolean value(JsonNode schema, String close, int depth) {
            if (depth > MAX_DEPTH) {
                return false;
            }
            JsonNode s = deref(root, schema);
            Shape shape = shape(root, s);
            if (shape == null) {
                return false;
            }
            switch (shape) {
                case RAW, JSON -> {
                    int end = text.indexOf(close, at);
                    if (end < 0) {
                        if (!partial) {
                            return false;
                        }
                        String t = text.substring(at);
                        t = t.substring(0, t.length() - ReasoningStream.partial(t, close));
                        if (shape == Shape.RAW) {
                            String q = JsonSchemaGrammar.dump(JsonNodeFactory.instance.textNode(t));
                            out.append(q, 0, q.length() - 1); // unclosed
                        } else {
                            out.append(t.strip());
                        }
                        at = text.length();
                        ended = true;
                        return true;
                    }
                    String raw = text.substring(at, end);
                    if (shape == Shape.RAW) {
                        out.append(JsonSchemaGrammar.dump(JsonNodeFactory.instance.textNode(raw)));
                    } else {
                        String t = raw.strip();
                        ToolCalls.Json j = ToolCalls.json(t, 0);
                        if (j == null || j.end() != t.length()) {
                            return false;
                        }
                        out.append(t); // as written: a number read as it came
                    }
                    at = end + close.length();
                    return true;
                }
                case OBJECT -> {
                    if (!members(s, depth) || ended) {
                        return ended;
                    }
                }
                case ARRAY -> {
                    JsonNode items = s.has("items") ? s.get("items") : JsonNodeFactory.instance.objectNode();
                    out.append('[');
                    int n = 0;
                    while (true) {
                        skipSpace();
                        if (text.startsWith(ITEM, at)) {
                            if (n++ > 0) {
                                out.append(',');
                            }
                            at += ITEM.length();
                            if (!value(items, ITEM_END, depth + 1) || ended) {
                                return ended;
                            }
                        } else if (partial && ITEM.startsWith(text.substring(at))) {
                            at = text.length();
                            ended = true;
                            return true;
                        } else {
                            break;
                        }
                    }
                    out.append(']');
                }
                case ANY_OF -> {
                    ArrayNode alts = (ArrayNode) (s.has("anyOf") ? s.get("anyOf") : s.get("oneOf"));
                    int from = at;
                    int written = out.length();
                    for (JsonNode alt : alts) {
                        if (value(alt, close, depth + 1)) {
                            return true; // its close read, or the text ended inside it
                        }
                        at = from;
                        out.setLength(written);
                        ended = false;
                    }
                    return false;
                }
            }
            skipSpace();
            return expect(close);
        }
    }

    /**
     * A reply's calls after {@code from} (just after {@link #OPEN}): calls, white space between
     * them, then {@link #CLOSE} or the reply's end, nothing but white space after. Null where the
     * text is not that.
     */
    static List<ToolCalls.Call> calls(String text, int from, List<ToolCalls.Function> functions) {
        List<ToolCalls.Call> calls = new ArrayList<>();
        int at = from;
        while (true) {
            at = ToolCalls.skipSpace(text, at);
            if (at == text.length()) {
                break;
            }
            if (text.startsWith(CLOSE, at)) {
                if (ToolCalls.skipSpace(text, at + CLOSE.length()) != text.length()) {
                    return null; // text after the calls: not a clean tool-call reply
                }
                break;
            }
            Reader r = new Reader(text, at, false);
            if (!r.call(functions)) {
                return null;
            }
            calls.add(new ToolCalls.Call(ToolCalls.newId(), r.function.name(), r.out.toString()));
            at = r.at;
        }
        return calls.isEmpty() ? null : calls;
    }

    // --- the grammar ---------------------------------------------------------------------------

    /** The rules every MiniMax M3 grammar holds: raw text (never {@link #RAW_STOP}), a character of a bounded one. */
    static String sharedRules() {
        return XmlToolCalls.scanRules("m3-text", RAW_STOP) + "m3-bounded ::= [^<\\x00]\n";
    }

    /**
     * The rules of one function's call after its name ({@code restRule}: from the {@code ">} that
     * ends the name to {@code NS</invoke>}): its parameters in the schema's order, the required
     * ones always, each value as its schema has it written. What the format cannot enforce is
     * refused: a raw string may carry only length bounds, an enum or a const; a value that may be
     * a string or something else must admit every string; a free object (no properties) is JSON.
     *
     * @throws SchemaException with a pointer into the function's parameters
     */
    static Map<String, String> rules(ToolCalls.Function f, String prefix, String restRule) {
        JsonNode root = f.parameters();
        XmlToolCalls.declaredProperties(root, "MiniMax M3");
        Converter c = new Converter(root, prefix);
        c.rules.put(restRule, c.members(root, "", 0) + " " + JsonSchemaGrammar.literal(INVOKE_END));
        return c.allRules();
    }

    /** Turns a function's schema into rules of M3's elements; numbers, booleans, null and free objects are left to the JSON grammar. */
    private static final class Converter extends CallGrammarConverter {
        Converter(JsonNode root, String prefix) {
            super(root, prefix, "-m");
        }

        /** An object's declared properties as elements, in the schema's order, the optional ones each left out or not. */
        String members(JsonNode schema, String ptr, int depth) {
            JsonNode props = schema.path("properties");
            Set<String> required = new HashSet<>();
            schema.path("required").forEach(r -> required.add(r.asText()));
            List<String> parts = new ArrayList<>();
            for (var e : props.properties()) {
                String p = ptr + "/properties/" + SchemaKeywords.escape(e.getKey());
                String key = e.getKey();
                if (key.isEmpty() || key.length() > MAX_TAG || key.startsWith("/")
                        || key.chars().anyMatch(ch -> ch == '<' || ch == '>' || ch == ']' || Character.isWhitespace(ch))) {
                    throw new SchemaException(p, "properties", "the property name " + SchemaKeywords.abbreviate(key)
                            + " cannot be written as a tag in MiniMax M3's tool-call format (no '<', '>', ']', white space or leading '/')");
                }
                String element = JsonSchemaGrammar.literal(NS + "<" + key + ">") + " " + value(e.getValue(), p, depth + 1) + " "
                        + JsonSchemaGrammar.literal(NS + "</" + key + ">");
                parts.add(required.contains(key) ? element : "(" + element + ")?");
            }
            return parts.isEmpty() ? "\"\"" : String.join(" ", parts);
        }

        /** The grammar expression of a value of the schema, as the template writes it. */
        String value(JsonNode schema, String ptr, int depth) {
            if (depth > MAX_DEPTH) {
                throw new SchemaException(ptr, "$ref", "the schema nests more than " + MAX_DEPTH + " levels (a recursive '$ref' cannot be "
                        + "written in MiniMax M3's tool-call format)");
            }
            if (schema.isBoolean()) {
                if (!schema.booleanValue()) {
                    throw new SchemaException(ptr, null, "the schema 'false' admits no value");
                }
                return "m3-text";
            }
            if (!schema.isObject()) {
                throw new SchemaException(ptr, null, "a schema must be an object or a boolean");
            }
            SchemaKeywords.check(schema, ptr);
            if (schema.has("$ref")) {
                return value(SchemaKeywords.resolve(root, schema.get("$ref").asText(), ptr), ptr, depth + 1);
            }
            Shape shape = shape(root, schema);
            switch (shape) {
                case RAW -> {
                    if (XmlToolCalls.stringness(root, schema, 0) == XmlToolCalls.Stringness.ONLY) {
                        return raw(schema, ptr);
                    }
                    if (!XmlToolCalls.admitsEveryString(root, schema, 0)) {
                        throw new SchemaException(ptr, null, "in MiniMax M3's tool-call format a value that may be a string is written "
                                + "raw and read as a string, so a parameter that may be a string or another type must admit every string");
                    }
                    return "m3-text";
                }
                case OBJECT -> {
                    JsonNode extra = schema.get("additionalProperties");
                    if (extra != null && !(extra.isBoolean() && !extra.booleanValue())) {
                        throw new SchemaException(ptr + "/additionalProperties", "additionalProperties", "in MiniMax M3's tool-call format "
                                + "an object with properties holds its declared ones only ('additionalProperties' may only be false)");
                    }
                    for (JsonNode r : schema.path("required")) {
                        if (!r.isTextual() || !schema.path("properties").has(r.asText())) {
                            throw new SchemaException(ptr + "/required", "required", "the required '" + r.asText() + "' is not among 'properties'");
                        }
                    }
                    String rule = newRule();
                    rules.put(rule, members(schema, ptr, depth));
                    return rule;
                }
                case ARRAY -> {
                    JsonNode items = schema.has("items") ? schema.get("items") : JsonNodeFactory.instance.booleanNode(true);
                    String item = JsonSchemaGrammar.literal(ITEM) + " " + value(items, ptr + "/items", depth + 1) + " "
                            + JsonSchemaGrammar.literal(ITEM_END);
                    int[] bounds = JsonSchemaGrammar.bounds(schema, "minItems", "maxItems", ptr);
                    String rule = newRule();
                    rules.put(rule, bounds[1] == 0 ? "\"\"" : "(" + item + ")" + JsonSchemaGrammar.repeat(bounds[0], bounds[1]));
                    return rule;
                }
                case ANY_OF -> {
                    String comb = schema.has("anyOf") ? "anyOf" : "oneOf";
                    if (!(schema.get(comb) instanceof ArrayNode alts) || alts.isEmpty()) {
                        throw new SchemaException(ptr + "/" + comb, comb, "'" + comb + "' must be a non-empty array");
                    }
                    List<String> out = new ArrayList<>();
                    for (int i = 0; i < alts.size(); i++) {
                        out.add(value(alts.get(i), ptr + "/" + comb + "/" + i, depth + 1));
                    }
                    return "(" + String.join(" | ", out) + ")";
                }
                default -> { // numbers, booleans, null, a free object: JSON, as llama.cpp has them written
                    return jsonRule(schema, ptr);
                }
            }
        }

        /** A raw string: an enum's or const's strings, or text within length bounds. */
        private String raw(JsonNode s, String ptr) {
            return XmlToolCalls.raw(root, s, ptr, "m3", RAW_STOP, false, "MiniMax M3's tool-call format");
        }
    }
}
