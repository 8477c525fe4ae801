package ai.llmref.server.structured;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Gemma 4's tool calls: {@code <|tool_call>call:NAME{key:value,...}<tool_call|>} a call, calls one
 * after another, the arguments in Gemma's own notation, as its template writes them
 * ({@code format_argument}): a string between two {@code <|"|>} tokens, raw (no escapes); an
 * object's keys unquoted; numbers, {@code true}, {@code false} and {@code null} as JSON writes
 * them; arrays in brackets; no space. The client gets the arguments as JSON.
 *
 * <p>The grammar writes each value as its schema admits it (llama.cpp's grammar for Gemma 4 leaves
 * the arguments untyped). What the notation cannot enforce is refused: a string may carry length
 * bounds, an enum or a const, not a {@code pattern} or {@code format}; an object its declared
 * properties (no {@code additionalProperties} beyond {@code false}), an array its {@code items}
 * and counts. Numbers, booleans and null are JSON's, and their rules are the JSON grammar's.
 */
final class GemmaToolCalls {
    /** A call's start (a control token of Gemma 4's), then {@code call:} and the name. */
    static final String CALL = "<|tool_call>";
    /** What comes between a call's start and its name. */
    static final String CALL_WORD = "call:";
    static final String CALL_NAME = CALL + CALL_WORD;
    static final String CALL_END = "<tool_call|>";
    /** What a string is written between (a control token of Gemma 4's). */
    static final String QUOTE = "<|\"|>";
    /** The most declared properties an object may have that the model may leave out (each an alternative a comma opens). */
    static final int MAX_OPTIONAL = 64;

    private static final Set<String> STRING_WORDS = Set.of("minLength", "maxLength");
    private static final Set<String> OBJECT_WORDS = Set.of("properties", "required", "additionalProperties");
    private static final Set<String> ARRAY_WORDS = Set.of("items", "minItems", "maxItems");
    private static final Pattern NUMBER = Pattern.compile("-?(?:0|[1-9][0-9]*)(?:\\.[0-9]+)?(?:[eE][-+]?[0-9]+)?");

    private GemmaToolCalls() {}

    // --- reading -------------------------------------------------------------------------------

    /**
     * Reads one value of Gemma's notation as it comes, character by character, and writes it as
     * JSON in the compact form Jackson writes ({@link CompactJson}): keys quoted, a string's raw
     * text escaped. White space outside strings is dropped (llama.cpp's reader allows it where the
     * template writes none), a key may also be written between quotes, and an unquoted key is all
     * up to its {@code :} (at most 256 characters). Streamed and whole, a reply's arguments are the
     * same text, since both are read here.
     */
    static final class Reader {
        private enum Mode { VALUE, FIRST_ITEM, FIRST_KEY, KEY, QUOTE_OPEN, STRING, SCALAR, AFTER, DONE, FAILED }

        private Mode mode = Mode.VALUE;
        /** The open objects ('{') and arrays ('['). */
        private final StringBuilder nest = new StringBuilder();
        /** A key, a scalar or a quote being read, or a string's tail that may begin its end. */
        private final StringBuilder pending = new StringBuilder();
        private final StringBuilder json = new StringBuilder();
        private final CompactJson compact = new CompactJson();

        /** Takes the next character, the JSON it completes appended to {@code out}; false once the text is no value of the notation. */
        boolean feed(char c, StringBuilder out) {
            json.setLength(0);
            step(c);
            for (int i = 0; i < json.length(); i++) {
                compact.feed(json.charAt(i), out);
            }
            return mode != Mode.FAILED;
        }

        /** True once the value is whole. */
        boolean done() {
            return mode == Mode.DONE;
        }

        private void step(char c) {
            switch (mode) {
                case DONE, FAILED -> mode = Mode.FAILED;
                case FIRST_ITEM -> {
                    if (c == ']') {
                        close(c);
                    } else if (!Character.isWhitespace(c)) {
                        value(c);
                    }
                }
                case VALUE -> {
                    if (!Character.isWhitespace(c)) {
                        value(c);
                    }
                }
                case FIRST_KEY -> {
                    if (c == '}') {
                        close(c);
                    } else if (!Character.isWhitespace(c)) {
                        mode = Mode.KEY;
                        step(c);
                    }
                }
                case KEY -> {
                    if (c == ':') {
                        String key = pending.toString().strip();
                        if (key.length() > 2 * QUOTE.length() && key.startsWith(QUOTE) && key.endsWith(QUOTE)) {
                            key = key.substring(QUOTE.length(), key.length() - QUOTE.length());
                        }
                        pending.setLength(0);
                        if (key.isEmpty() || key.contains(QUOTE)) {
                            mode = Mode.FAILED;
                            return;
                        }
                        json.append(JsonSchemaGrammar.dump(JsonNodeFactory.instance.textNode(key))).append(':');
                        mode = Mode.VALUE;
                    } else if (c == '}' || c == ',' || c == '{' || pending.length() >= 256 + 2 * QUOTE.length()) {
                        mode = Mode.FAILED;
                    } else {
                        pending.append(c);
                    }
                }
                case QUOTE_OPEN -> {
                    pending.append(c);
                    if (pending.length() == QUOTE.length() && pending.toString().equals(QUOTE)) {
                        pending.setLength(0);
                        json.append('"');
                        mode = Mode.STRING;
                    } else if (!QUOTE.startsWith(pending.toString())) {
                        mode = Mode.FAILED;
                    }
                }
                case STRING -> {
                    pending.append(c);
                    boolean end = pending.length() >= QUOTE.length() && pending.substring(pending.length() - QUOTE.length()).equals(QUOTE);
                    int upTo = end ? pending.length() - QUOTE.length() : pending.length() - ReasoningStream.partial(pending, QUOTE);
                    for (int i = 0; i < upTo; i++) {
                        escape(pending.charAt(i));
                    }
                    pending.delete(0, upTo);
                    if (end) {
                        pending.setLength(0);
                        json.append('"');
                        mode = Mode.AFTER;
                        endIfTop();
                    }
                }
                case SCALAR -> {
                    if (c < 128 && (Character.isLetterOrDigit(c) || c == '.' || c == '-' || c == '+') && pending.length() < 64) {
                        pending.append(c);
                        return;
                    }
                    String t = pending.toString();
                    pending.setLength(0);
                    if (!t.equals("true") && !t.equals("false") && !t.equals("null") && !NUMBER.matcher(t).matches()) {
                        mode = Mode.FAILED;
                        return;
                    }
                    json.append(t);
                    mode = Mode.AFTER;
                    step(c);
                }
                case AFTER -> {
                    if (Character.isWhitespace(c)) {
                        return;
                    }
                    char top = nest.isEmpty() ? 0 : nest.charAt(nest.length() - 1);
                    if (c == ',' && top != 0) {
                        json.append(',');
                        mode = top == '{' ? Mode.KEY : Mode.VALUE;
                    } else if (c == '}' && top == '{' || c == ']' && top == '[') {
                        close(c);
                    } else {
                        mode = Mode.FAILED;
                    }
                }
                default -> throw new IllegalStateException(mode.name());
            }
        }

        /** The first character of a value. */
        private void value(char c) {
            if (c == '{' || c == '[') {
                if (nest.length() >= 64) {
                    mode = Mode.FAILED;
                    return;
                }
                nest.append(c);
                json.append(c);
                mode = c == '{' ? Mode.FIRST_KEY : Mode.FIRST_ITEM;
            } else if (c == QUOTE.charAt(0)) {
                pending.setLength(0);
                pending.append(c);
                mode = Mode.QUOTE_OPEN;
            } else if (c == '-' || c >= '0' && c <= '9' || c == 't' || c == 'f' || c == 'n') {
                pending.setLength(0);
                pending.append(c);
                mode = Mode.SCALAR;
            } else {
                mode = Mode.FAILED;
            }
        }

        private void close(char c) {
            nest.setLength(nest.length() - 1);
            json.append(c);
            mode = Mode.AFTER;
            endIfTop();
        }

        private void endIfTop() {
            if (nest.isEmpty()) {
                mode = Mode.DONE;
            }
        }

        /** A raw string's character as JSON text (CompactJson then writes it as Jackson does). */
        private void escape(char c) {
            switch (c) {
                case '"' -> json.append("\\\"");
                case '\\' -> json.append("\\\\");
                default -> {
                    if (c < 0x20) {
                        json.append(String.format("\\u%04x", (int) c));
                    } else {
                        json.append(c);
                    }
                }
            }
        }
    }

    /**
     * Reads one call at {@code from} ({@code <|tool_call>call:NAME{...}}, then its {@code <tool_call|>},
     * which may be missing at the reply's end): the call of a declared function with an object of
     * arguments is added to {@code calls}; returns the index after it, or -1.
     */
    static int call(String text, int from, List<ToolCalls.Function> functions, List<ToolCalls.Call> calls) {
        if (!text.startsWith(CALL_NAME, from)) {
            return -1;
        }
        int nameStart = from + CALL_NAME.length();
        int nameEnd = ToolCalls.nameEnd(text, nameStart);
        String name = text.substring(nameStart, nameEnd);
        if (!text.startsWith("{", nameEnd) || functions.stream().noneMatch(f -> f.name().equals(name))) {
            return -1;
        }
        Reader reader = new Reader();
        StringBuilder args = new StringBuilder();
        int at = nameEnd;
        while (at < text.length() && !reader.done()) {
            if (!reader.feed(text.charAt(at++), args)) {
                return -1;
            }
        }
        if (!reader.done()) {
            return -1;
        }
        calls.add(new ToolCalls.Call(ToolCalls.newId(), name, args.toString()));
        at = ToolCalls.skipSpace(text, at);
        if (text.startsWith(CALL_END, at)) {
            return at + CALL_END.length();
        }
        return at == text.length() ? at : -1;
    }

    // --- writing (the grammar) -----------------------------------------------------------------

    /** A value in Gemma's notation, as the template writes it (an enum's or const's member). */
    static String text(JsonNode v, String ptr) {
        if (v.isTextual()) {
            if (v.textValue().contains(QUOTE)) {
                throw new SchemaException(ptr, "enum", "a string that holds " + QUOTE + " cannot be written in Gemma's tool-call notation");
            }
            return QUOTE + v.textValue() + QUOTE;
        }
        if (v.isObject()) {
            StringBuilder sb = new StringBuilder("{");
            v.properties().forEach(e -> sb.append(sb.length() > 1 ? "," : "").append(key(e.getKey(), ptr)).append(':')
                    .append(text(e.getValue(), ptr)));
            return sb.append('}').toString();
        }
        if (v.isArray()) {
            StringBuilder sb = new StringBuilder("[");
            v.forEach(e -> sb.append(sb.length() > 1 ? "," : "").append(text(e, ptr)));
            return sb.append(']').toString();
        }
        return JsonSchemaGrammar.dump(v);
    }

    /** An object's key as the notation writes it (unquoted): refused where it could not be read back. */
    private static String key(String name, String ptr) {
        if (name.isEmpty() || name.length() > 256 || name.chars().anyMatch(c -> c == ':' || c == ',' || c == '{' || c == '}' || c == '['
                || c == ']' || c == '<' || c < 0x20 || Character.isWhitespace(c))) {
            throw new SchemaException(ptr, "properties", "the property name " + SchemaKeywords.abbreviate(name) + " cannot be written in "
                    + "Gemma's tool-call notation (keys are unquoted: no ':', ',', brackets, '<', space or control character)");
        }
        return name;
    }

    /**
     * The rules of one function's arguments ({@code argsRule}: the object, from its <code>{</code>
     * to its <code>}</code>), each value valid under its schema.
     *
     * @throws SchemaException with a pointer into the function's parameters
     */
    static Map<String, String> rules(ToolCalls.Function f, String prefix, String argsRule) {
        Converter c = new Converter(f.parameters(), prefix);
        JsonNode root = f.parameters();
        if (root.has("type") && !"object".equals(root.path("type").asText())) {
            throw new SchemaException("/type", "type", "the parameters must be an object");
        }
        c.rules.put(argsRule, c.value(root, "", 0));
        return c.allRules();
    }

    /** The rules every Gemma grammar holds: any value, a raw string's text (never {@link #QUOTE}), a character of a bounded one. */
    static String sharedRules() {
        return XmlToolCalls.scanRules("gm-text", QUOTE)
                + "gm-bounded ::= [^<\\x00]\n"
                + "gm-string ::= " + JsonSchemaGrammar.literal(QUOTE) + " gm-text " + JsonSchemaGrammar.literal(QUOTE) + "\n"
                + "gm-key ::= [a-zA-Z0-9_.$-]{1,64}\n"
                + "gm-dict ::= \"{\" (gm-key \":\" gm-any (\",\" gm-key \":\" gm-any)*)? \"}\"\n"
                + "gm-any ::= gm-string | gm-dict | \"[\" (gm-any (\",\" gm-any)*)? \"]\" | gm-number | \"true\" | \"false\" | \"null\"\n"
                + "gm-number ::= \"-\"? ([0-9] | [1-9] [0-9]{1,15}) (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?\n";
    }

    /** Turns a function's schema into rules of Gemma's notation; numbers, booleans and null are left to the JSON grammar. */
    private static final class Converter extends CallGrammarConverter {
        Converter(JsonNode root, String prefix) {
            super(root, prefix, "-g");
        }

        /** The grammar expression of a schema's values. */
        String value(JsonNode schema, String ptr, int depth) {
            if (depth > 32) {
                throw new SchemaException(ptr, "$ref", "the schema nests more than 32 levels (a recursive '$ref' cannot be written in "
                        + "Gemma's tool-call notation)");
            }
            if (schema.isBoolean()) {
                if (!schema.booleanValue()) {
                    throw new SchemaException(ptr, null, "the schema 'false' admits no value");
                }
                return "gm-any";
            }
            if (!schema.isObject()) {
                throw new SchemaException(ptr, null, "a schema must be an object or a boolean");
            }
            SchemaKeywords.check(schema, ptr);
            if (schema.has("$ref")) {
                only(schema, ptr, Set.of("$ref"));
                return value(SchemaKeywords.resolve(root, schema.get("$ref").asText(), ptr), ptr, depth + 1);
            }
            if (schema.has("const") || schema.has("enum")) {
                List<JsonNode> members = new ArrayList<>();
                if (schema.has("const")) {
                    members.add(schema.get("const"));
                } else if (schema.get("enum") instanceof ArrayNode a && !a.isEmpty()) {
                    a.forEach(members::add);
                } else {
                    throw new SchemaException(ptr + "/enum", "enum", "'enum' must be a non-empty array");
                }
                SchemaKeywords.checkLiteralTypes(schema, members, ptr);
                List<String> alts = new ArrayList<>();
                for (JsonNode m : members) {
                    alts.add(JsonSchemaGrammar.literal(text(m, ptr + (schema.has("const") ? "/const" : "/enum"))));
                }
                return "(" + String.join(" | ", alts) + ")";
            }
            for (String comb : List.of("anyOf", "oneOf", "allOf")) {
                if (schema.has(comb)) {
                    only(schema, ptr, Set.of(comb));
                    if (!(schema.get(comb) instanceof ArrayNode alts) || alts.isEmpty()) {
                        throw new SchemaException(ptr + "/" + comb, comb, "'" + comb + "' must be a non-empty array");
                    }
                    if (comb.equals("allOf") && alts.size() > 1) {
                        throw new SchemaException(ptr + "/allOf", "allOf", "'allOf' with more than one schema cannot be enforced");
                    }
                    List<String> out = new ArrayList<>();
                    for (int i = 0; i < alts.size(); i++) {
                        out.add(value(alts.get(i), ptr + "/" + comb + "/" + i, depth + 1));
                    }
                    return "(" + String.join(" | ", out) + ")";
                }
            }
            List<String> types = SchemaKeywords.types(schema, ptr);
            if (types.isEmpty()) {
                only(schema, ptr, Set.of());
                return "gm-any";
            }
            java.util.Set<String> allowed = new java.util.HashSet<>(Set.of("type"));
            List<String> alts = new ArrayList<>();
            for (String t : types) {
                switch (t) {
                    case "string" -> {
                        allowed.addAll(STRING_WORDS);
                        alts.add(string(schema, ptr));
                    }
                    case "object" -> {
                        allowed.addAll(OBJECT_WORDS);
                        alts.add(object(schema, ptr, depth));
                    }
                    case "array" -> {
                        allowed.addAll(ARRAY_WORDS);
                        alts.add(array(schema, ptr, depth));
                    }
                    default -> { // numbers, booleans and null are written as JSON writes them: the JSON grammar's rules
                        allowed.addAll(SchemaKeywords.NUMBER_WORDS);
                        ObjectNode sub = JsonNodeFactory.instance.objectNode().put("type", t);
                        if (t.equals("number") || t.equals("integer")) {
                            SchemaKeywords.NUMBER_WORDS.forEach(w -> {
                                if (schema.has(w)) {
                                    sub.set(w, schema.get(w));
                                }
                            });
                        }
                        alts.add(jsonRule(sub, ptr));
                    }
                }
            }
            only(schema, ptr, allowed);
            return alts.size() == 1 ? alts.getFirst() : "(" + String.join(" | ", alts) + ")";
        }

        /** Refuses a keyword beside the allowed ones (annotations aside). */
        private static void only(JsonNode schema, String ptr, Set<String> allowed) {
            List<String> others = SchemaKeywords.others(schema, allowed);
            if (!others.isEmpty()) {
                String k = others.getFirst();
                throw new SchemaException(ptr + "/" + SchemaKeywords.escape(k), k, "'" + k + "' cannot be enforced in Gemma's tool-call "
                        + "notation here (strings: length bounds, enum and const; objects: declared properties; arrays: items and counts)");
            }
        }

        private String string(JsonNode s, String ptr) {
            int[] bounds = JsonSchemaGrammar.bounds(s, "minLength", "maxLength", ptr);
            int min = bounds[0];
            int max = bounds[1];
            // within length bounds no '<': the end's quote begins with one, and a count cannot be
            // combined with the scan that keeps it out (as the XML format's bounded strings)
            return min == 0 && max < 0 ? "gm-string"
                    : JsonSchemaGrammar.literal(QUOTE) + " gm-bounded" + JsonSchemaGrammar.repeat(min, max) + " " + JsonSchemaGrammar.literal(QUOTE);
        }

        private String object(JsonNode s, String ptr, int depth) {
            JsonNode props = s.path("properties");
            if (!props.isMissingNode() && !props.isObject()) {
                throw new SchemaException(ptr + "/properties", "properties", "'properties' must be an object");
            }
            JsonNode extra = s.get("additionalProperties");
            if (extra != null && !(extra.isBoolean() && !extra.booleanValue())) {
                throw new SchemaException(ptr + "/additionalProperties", "additionalProperties", "in Gemma's tool-call notation an "
                        + "object holds its declared properties only ('additionalProperties' may only be false)");
            }
            java.util.Set<String> required = new java.util.LinkedHashSet<>();
            for (JsonNode r : s.path("required")) {
                if (!r.isTextual() || !props.has(r.asText())) {
                    throw new SchemaException(ptr + "/required", "required", "the required '" + r.asText() + "' is not among 'properties'");
                }
                required.add(r.asText());
            }
            if (props.isMissingNode() && extra == null) {
                return "gm-dict"; // a free object: any keys the notation can write, any values
            }
            List<String> req = new ArrayList<>();
            List<String> opt = new ArrayList<>();
            for (var e : props.properties()) {
                String p = ptr + "/properties/" + SchemaKeywords.escape(e.getKey());
                String kv = JsonSchemaGrammar.literal(key(e.getKey(), p) + ":") + " " + value(e.getValue(), p, depth + 1);
                (required.contains(e.getKey()) ? req : opt).add(kv);
            }
            if (opt.size() > MAX_OPTIONAL) {
                throw new SchemaException(ptr + "/properties", "properties", "at most " + MAX_OPTIONAL + " optional properties in an object "
                        + "(make some of them required)");
            }
            String rule = newRule();
            // the optional ones in order, any of them left out: a chain of rules, each the rest after one
            List<String> tails = new ArrayList<>();
            for (int i = 0; i < opt.size(); i++) {
                tails.add(rule + "-t" + i);
            }
            for (int i = 0; i < opt.size(); i++) {
                rules.put(tails.get(i), "(\",\" " + opt.get(i) + ")?" + (i + 1 < opt.size() ? " " + tails.get(i + 1) : ""));
            }
            String body;
            if (!req.isEmpty()) {
                body = "\"{\" " + String.join(" \",\" ", req) + (opt.isEmpty() ? "" : " " + tails.getFirst()) + " \"}\"";
            } else if (!opt.isEmpty()) {
                List<String> firsts = new ArrayList<>();
                for (int i = 0; i < opt.size(); i++) {
                    firsts.add(opt.get(i) + (i + 1 < opt.size() ? " " + tails.get(i + 1) : ""));
                }
                body = "\"{\" (" + String.join(" | ", firsts) + ")? \"}\"";
            } else {
                body = "\"{}\"";
            }
            rules.put(rule, body);
            return rule;
        }

        private String array(JsonNode s, String ptr, int depth) {
            JsonNode items = s.get("items");
            String item = items == null ? "gm-any" : value(items, ptr + "/items", depth + 1);
            int[] bounds = JsonSchemaGrammar.bounds(s, "minItems", "maxItems", ptr);
            int min = bounds[0];
            int max = bounds[1];
            String rule = newRule();
            if (max == 0) {
                rules.put(rule, "\"[]\"");
                return rule;
            }
            String more = "(\",\" " + item + ")" + JsonSchemaGrammar.repeat(Math.max(0, min - 1), max < 0 ? -1 : max - 1);
            String list = item + (max == 1 ? "" : " " + more);
            rules.put(rule, "\"[\" " + (min == 0 ? "(" + list + ")?" : list) + " \"]\"");
            return rule;
        }
    }
}
