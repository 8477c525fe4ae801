package ai.llmref.server.structured;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * LFM2's and LFM2.5's tool calls, in Python's call notation: a list of calls between
 * {@code <|tool_call_start|>} and {@code <|tool_call_end|>},
 * {@code <|tool_call_start|>[get_weather(city="Paris", days=3), get_time()]<|tool_call_end|>}.
 * Each argument is {@code KEY=VALUE}, the value a Python literal or JSON, as llama.cpp reads them:
 * strings between double or single quotes, numbers, {@code True}/{@code False}/{@code None} or
 * {@code true}/{@code false}/{@code null}, lists and dicts of these (read into JSON). The grammar
 * writes JSON values, each valid under its parameter's schema (a string parameter with at most
 * length bounds may also be a string in single quotes, as LFM2.5's template writes them and
 * llama.cpp's grammar allows), the declared parameters in the schema's order, the required ones
 * always, separated by {@code ", "}.
 */
final class PythonToolCalls {
    static final String OPEN = "<|tool_call_start|>";
    static final String CLOSE = "<|tool_call_end|>";
    private static final Pattern KEY = Pattern.compile("[A-Za-z_][A-Za-z0-9_]*");
    private static final Pattern NUMBER = Pattern.compile("-?(?:0|[1-9][0-9]*)(?:\\.[0-9]+)?(?:[eE][+-]?[0-9]+)?");
    /** The deepest nesting read in a value (Jackson's default limit for JSON). */
    private static final int MAX_DEPTH = 1000;

    private PythonToolCalls() {}

    /** A value read and the index just after it. */
    record Value(JsonNode value, int end) {}

    /**
     * The rules of one function's call after its {@code NAME(} ({@code restRule}: the arguments
     * and the closing parenthesis).
     *
     * @throws SchemaException with a pointer into the function's parameters
     */
    static Map<String, String> rules(ToolCalls.Function f, String prefix, String restRule) {
        JsonNode root = f.parameters();
        XmlToolCalls.declaredProperties(root, "Python call");
        List<XmlToolCalls.Param> params = XmlToolCalls.plan(f).params();
        Map<String, String> rules = new LinkedHashMap<>();
        Map<String, JsonNode> values = new LinkedHashMap<>();
        Map<String, String> pointers = new LinkedHashMap<>();
        for (int k = 0; k < params.size(); k++) {
            XmlToolCalls.Param p = params.get(k);
            String ptr = "/properties/" + p.name().replace("~", "~0").replace("/", "~1");
            if (!KEY.matcher(p.name()).matches()) {
                throw new SchemaException(ptr, "properties", "the property name " + SchemaKeywords.abbreviate(p.name())
                        + " cannot be written in the Python call format (KEY=VALUE: a name of letters, digits and '_')");
            }
            String quoted = p.kind() == XmlToolCalls.Kind.RAW ? singleQuoted(root, p.schema(), ptr) : null;
            rules.put(prefix + "-a" + k, JsonSchemaGrammar.literal(p.name() + "=") + " " + (quoted == null ? prefix + "-v" + k
                    : "(" + prefix + "-v" + k + " | " + quoted + ")"));
            values.put(prefix + "-v" + k, p.schema());
            pointers.put(prefix + "-v" + k, ptr);
        }
        // first-K: the first argument written is the K-th or a later one; next-K: after one was
        // written, the K-th (after ", ") or a later one; an optional one may be left out
        int n = params.size();
        for (int k = n; k >= 0; k--) {
            if (k == n) {
                rules.put(prefix + "-first" + k, "\"\"");
                rules.put(prefix + "-next" + k, "\"\"");
                continue;
            }
            boolean optional = !params.get(k).required();
            rules.put(prefix + "-first" + k, prefix + "-a" + k + " " + prefix + "-next" + (k + 1) + (optional ? " | " + prefix + "-first" + (k + 1) : ""));
            rules.put(prefix + "-next" + k, "\", \" " + prefix + "-a" + k + " " + prefix + "-next" + (k + 1)
                    + (optional ? " | " + prefix + "-next" + (k + 1) : ""));
        }
        rules.put(restRule, prefix + "-first0 \")\"");
        rules.putAll(JsonSchemaGrammar.rules(root, prefix, values, pointers));
        return rules;
    }

    /** The rule of a string in single quotes: any character but a quote, a backslash or a control character, or an escape. */
    static final String SQ_CHAR_RULE = "py-sq-char ::= [^'\\\\\\x7F\\x00-\\x1F] | \"\\\\\" [\"'\\\\/bfnrt]\n";

    /**
     * A string parameter's value in single quotes ({@code py-sq-char}s within its length bounds),
     * or null where its schema says more of it than length bounds (then only JSON).
     */
    private static String singleQuoted(JsonNode root, JsonNode schema, String ptr) {
        JsonNode s = schema;
        for (int depth = 0; s.has("$ref") && depth < 32; depth++) {
            s = SchemaKeywords.resolve(root, s.get("$ref").asText(), ptr);
        }
        for (String key : ((Iterable<String>) s::fieldNames)) {
            if (!XmlToolCalls.STRING_BOUNDS.contains(key) && !XmlToolCalls.ANNOTATIONS.contains(key)) {
                return null;
            }
        }
        int[] bounds = JsonSchemaGrammar.bounds(s, "minLength", "maxLength", ptr);
        return "\"'\" py-sq-char" + JsonSchemaGrammar.repeat(bounds[0], bounds[1]) + " \"'\"";
    }

    /**
     * Reads one call at {@code from} ({@code NAME(KEY=VALUE, ...)}, white space allowed around its
     * parts) of a declared function, each key a declared parameter once; adds it to {@code calls}
     * and returns the index after its {@code )}, or -1.
     */
    static int call(String text, int from, List<ToolCalls.Function> functions, List<ToolCalls.Call> calls) {
        int at = ToolCalls.skipSpace(text, from);
        int nameEnd = ToolCalls.nameEnd(text, at);
        String name = text.substring(at, nameEnd);
        ToolCalls.Function f = functions.stream().filter(x -> x.name().equals(name)).findFirst().orElse(null);
        if (f == null || !text.startsWith("(", nameEnd)) {
            return -1;
        }
        XmlToolCalls.Plan plan = XmlToolCalls.plan(f);
        ObjectNode args = JsonNodeFactory.instance.objectNode();
        at = ToolCalls.skipSpace(text, nameEnd + 1);
        if (text.startsWith(")", at)) {
            calls.add(new ToolCalls.Call(ToolCalls.newId(), name, "{}"));
            return at + 1;
        }
        while (true) {
            Matcher key = KEY.matcher(text).region(at, text.length());
            if (!key.lookingAt()) {
                return -1;
            }
            XmlToolCalls.Param p = plan.param(key.group());
            at = key.end();
            if (p == null || args.has(p.name()) || !text.startsWith("=", at)) { // '=' right after the key, as Python writes it
                return -1;
            }
            Value v = value(text, ToolCalls.skipSpace(text, at + 1), 0);
            if (v == null) {
                return -1;
            }
            args.set(p.name(), v.value());
            at = ToolCalls.skipSpace(text, v.end());
            if (text.startsWith(")", at)) {
                calls.add(new ToolCalls.Call(ToolCalls.newId(), name, JsonSchemaGrammar.dump(args)));
                return at + 1;
            }
            if (!text.startsWith(",", at)) {
                return -1;
            }
            at = ToolCalls.skipSpace(text, at + 1);
        }
    }

    /** A Python literal or JSON value at {@code from}, read into JSON, or null where none is. */
    static Value value(String text, int from, int depth) {
        if (from >= text.length() || depth > MAX_DEPTH) {
            return null;
        }
        char c = text.charAt(from);
        if (c == '"' || c == '\'') {
            return string(text, from);
        }
        if (c == '[' || c == '{') {
            boolean list = c == '[';
            char end = list ? ']' : '}';
            ArrayNode items = JsonNodeFactory.instance.arrayNode();
            ObjectNode members = JsonNodeFactory.instance.objectNode();
            int at = ToolCalls.skipSpace(text, from + 1);
            boolean first = true;
            while (true) {
                if (text.startsWith(String.valueOf(end), at)) {
                    return new Value(list ? items : members, at + 1);
                }
                if (!first) {
                    if (!text.startsWith(",", at)) {
                        return null;
                    }
                    at = ToolCalls.skipSpace(text, at + 1);
                    if (text.startsWith(String.valueOf(end), at)) { // Python allows a trailing comma
                        return new Value(list ? items : members, at + 1);
                    }
                }
                first = false;
                if (list) {
                    Value item = value(text, at, depth + 1);
                    if (item == null) {
                        return null;
                    }
                    items.add(item.value());
                    at = ToolCalls.skipSpace(text, item.end());
                } else {
                    Value key = at < text.length() && (text.charAt(at) == '"' || text.charAt(at) == '\'') ? string(text, at) : null;
                    if (key == null) {
                        return null;
                    }
                    at = ToolCalls.skipSpace(text, key.end());
                    if (!text.startsWith(":", at)) {
                        return null;
                    }
                    Value member = value(text, ToolCalls.skipSpace(text, at + 1), depth + 1);
                    if (member == null) {
                        return null;
                    }
                    members.set(key.value().textValue(), member.value());
                    at = ToolCalls.skipSpace(text, member.end());
                }
            }
        }
        for (String word : List.of("True", "true", "False", "false", "None", "null")) {
            if (text.startsWith(word, from) && (from + word.length() == text.length() || !Character.isLetterOrDigit(text.charAt(from + word.length())))) {
                JsonNode v = switch (word) {
                    case "True", "true" -> JsonNodeFactory.instance.booleanNode(true);
                    case "False", "false" -> JsonNodeFactory.instance.booleanNode(false);
                    default -> JsonNodeFactory.instance.nullNode();
                };
                return new Value(v, from + word.length());
            }
        }
        Matcher m = NUMBER.matcher(text).region(from, text.length());
        if (m.lookingAt()) {
            try {
                return new Value(SchemaValidator.number(m.group()), m.end()); // exact, as the other formats read numbers
            } catch (IOException e) {
                return null;
            }
        }
        return null;
    }

    /**
     * A string between double or single quotes, its backslash escapes read as JSON's (another
     * escaped character is itself, as {@link CompactJson} reads a grammar's strings), and in single
     * quotes Python's {@code \xHH} too.
     */
    private static Value string(String text, int from) {
        char quote = text.charAt(from);
        StringBuilder sb = new StringBuilder();
        int i = from + 1;
        while (i < text.length()) {
            char c = text.charAt(i);
            if (c == quote) {
                return new Value(JsonNodeFactory.instance.textNode(sb.toString()), i + 1);
            }
            if (c != '\\') {
                sb.append(c);
                i++;
                continue;
            }
            if (i + 1 >= text.length()) {
                return null;
            }
            int end = i + 2 + hexDigits(text.charAt(i + 1), quote);
            Character ch = end > text.length() ? null : escaped(text.substring(i, end));
            if (ch == null) {
                return null;
            }
            sb.append(ch.charValue());
            i = end;
        }
        return null;
    }

    /** The hex digits a backslash escape of {@code e} takes in a string between {@code quote}s: {@code \\u}'s 4, {@code \\x}'s 2 in single quotes. */
    static int hexDigits(char e, char quote) {
        return e == 'u' ? 4 : e == 'x' && quote == '\'' ? 2 : 0;
    }

    /**
     * The character a whole backslash escape stands for ({@code \\n}, {@code \\u00e9}, {@code \\x41}; any other
     * character as itself: {@code \\\\ \\" \\' \\/}), or null where its hex digits are not.
     */
    static Character escaped(String escape) {
        char e = escape.charAt(1);
        if (escape.length() > 2) {
            try {
                return (char) Integer.parseInt(escape, 2, escape.length(), 16);
            } catch (NumberFormatException ex) {
                return null;
            }
        }
        return switch (e) {
            case 'n' -> '\n';
            case 't' -> '\t';
            case 'r' -> '\r';
            case 'b' -> '\b';
            case 'f' -> '\f';
            default -> e;
        };
    }
}
