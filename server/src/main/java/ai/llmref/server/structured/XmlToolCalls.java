package ai.llmref.server.structured;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The XML tool-call format of Qwen3-Coder, Qwen 3.5, Nemotron 3 Nano and StepFun 3.5 Flash:
 *
 * <pre>
 * &lt;tool_call&gt;
 * &lt;function=get_weather&gt;
 * &lt;parameter=city&gt;
 * Paris
 * &lt;/parameter&gt;
 * &lt;/function&gt;
 * &lt;/tool_call&gt;
 * </pre>
 *
 * <p>And its dialect of GLM 4.5 to 4.7, Ling 3.0, Spark 2.5 and Laguna ({@link Dialect#GLM}):
 * {@code <tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value></tool_call>},
 * the templates putting line breaks after the name and between the elements or not; and MiniMax
 * M2's ({@link Dialect#MINIMAX}), its calls in one block:
 * {@code <minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Paris</parameter>\n</invoke>\n</minimax:tool_call>};
 * and DeepSeek V3.2's and V4's ({@link Dialect#DSML}), the same with {@code <｜DSML｜>} tags and
 * each parameter saying whether its value is a string ({@code string="true"}, raw) or JSON; and
 * Tencent Hy3's ({@link Dialect#HY}), GLM's pairs with tags of its own in one block:
 * {@code <tool_calls:opensource>\n<tool_call:opensource>get_weather<tool_sep:opensource>\n<arg_key:opensource>city</arg_key:opensource>\n<arg_value:opensource>Paris</arg_value:opensource>\n</tool_call:opensource>\n</tool_calls:opensource>};
 * MiniCPM5's ({@link Dialect#MINICPM}), calls one after another, a value containing {@code <},
 * {@code &} or a line break in a CDATA section:
 * {@code <function name="get_weather"><param name="city">Paris</param></function>};
 * and Kimi K3's ({@link Dialect#KIMI3}), elements of its own markup in one section:
 * {@code <|open|>tools<|sep|><|open|>call tool="get_weather" index="1"<|sep|><|open|>argument key="city" type="string"<|sep|>Paris<|close|>argument<|sep|><|close|>call<|sep|><|close|>tools<|sep|>}.
 *
 * <p>A parameter's value is written as its template renders it: a string raw (no quotes, no
 * escapes, any number of lines), anything else as JSON. So the type of a value comes from the
 * parameter's schema ({@link Kind}): a parameter that can only be a string is read raw, one that
 * can never be a string as JSON, and one that may be either (no type, {@code ["string","null"]},
 * pydantic's {@code Optional[str]}) as a JSON value of another type where the text is one that the
 * schema admits, otherwise as the string, as llama.cpp reads it. The arguments are then the JSON
 * object of the values, in the order written.
 */
final class XmlToolCalls {
    static final String CLOSE = "</tool_call>";
    static final String FUNCTION = "<function=";
    /** MiniMax M2's block, which holds all of a reply's calls. */
    static final String MINIMAX_OPEN = "<minimax:tool_call>";
    static final String MINIMAX_CLOSE = "</minimax:tool_call>";
    static final String INVOKE = "<invoke name=\"";
    /** DeepSeek's marker token and tags. */
    static final String DSML = "｜DSML｜";
    static final String DSML_INVOKE = "<" + DSML + "invoke name=\"";
    /** What follows a DeepSeek parameter's name: its value is a string, written raw, or JSON. */
    static final String DSML_STRING = "\" string=\"true\">";
    static final String DSML_JSON = "\" string=\"false\">";
    /** Tencent Hy3's tags: each of its template's tags ends with this. */
    static final String HY_TAG = ":opensource";
    static final String HY_INVOKE = "<tool_call" + HY_TAG + ">";
    static final String HY_SEP = "<tool_sep" + HY_TAG + ">";
    static final String HY_KEY = "<arg_key" + HY_TAG + ">";
    static final String HY_KEY_END = "</arg_key" + HY_TAG + ">";
    static final String HY_VALUE = "<arg_value" + HY_TAG + ">";
    static final String HY_VALUE_END = "</arg_value" + HY_TAG + ">";
    static final String HY_CALL_END = "</tool_call" + HY_TAG + ">";
    /** MiniCPM5's call up to its name, and its parameter up to its name; a CDATA section's start and end. */
    static final String MC_FUNCTION = "<function name=\"";
    static final String MC_PARAM = "<param name=\"";
    static final String CDATA_OPEN = "<![CDATA[";
    static final String CDATA_CLOSE = "]]>";
    /** Kimi K3's markers (control tokens): what opens and closes an element and ends its head. */
    static final String K3_OPEN = "<|open|>";
    static final String K3_CLOSE = "<|close|>";
    static final String K3_SEP = "<|sep|>";
    /** A Kimi K3 call up to its name, and its argument up to its key (each then {@code "}, attributes and {@code <|sep|>}). */
    static final String K3_INVOKE = K3_OPEN + "call tool=\"";
    static final String K3_ARGUMENT = K3_OPEN + "argument key=\"";
    /** muse-glimmer's call up to its name, and its parameter up to its name. */
    static final String ATEM_INVOKE = "<atem:invoke name=\"";
    static final String ATEM_PARAM = "<atem:parameter name=\"";

    /** The layouts. */
    enum Dialect {
        /** {@code <function=NAME>}, then {@code <parameter=P>\nVALUE\n</parameter>\n} each, then {@code </function>}. */
        QWEN("<parameter=", "\n</parameter>", "</parameter>", "</function>", "xml"),
        /** {@code NAME}, then {@code <arg_key>P</arg_key><arg_value>VALUE</arg_value>} each (line breaks between them optional), then the block's end. */
        GLM("<arg_key>", "</arg_value>", "</arg_value>", CLOSE, "glm"),
        /** {@code <invoke name="NAME">\n}, then {@code <parameter name="P">VALUE</parameter>\n} each, then {@code </invoke>}. */
        MINIMAX("<parameter name=\"", "</parameter>", "</parameter>", "</invoke>", "mm"),
        /** {@code <｜DSML｜invoke name="NAME">\n}, then {@code <｜DSML｜parameter name="P" string="true|false">VALUE</｜DSML｜parameter>\n} each, then {@code </｜DSML｜invoke>}. */
        DSML("<" + XmlToolCalls.DSML + "parameter name=\"", "</" + XmlToolCalls.DSML + "parameter>", "</" + XmlToolCalls.DSML + "parameter>",
                "</" + XmlToolCalls.DSML + "invoke>", "ds"),
        /** Seed-OSS: {@code <function=NAME>}, then {@code <parameter=P>VALUE</parameter>\n} each (no line breaks around the value), then {@code </function>}. */
        SEED("<parameter=", "</parameter>", "</parameter>", "</function>", "seed"),
        /** Tencent Hy3: {@code <tool_call:opensource>NAME<tool_sep:opensource>\n}, then GLM's pairs in its tags, a line each, then {@code </tool_call:opensource>}. */
        HY(HY_KEY, HY_VALUE_END, HY_VALUE_END, HY_CALL_END, "hy"),
        /**
         * Kimi K3: {@code <|open|>call tool="NAME" index="N"<|sep|>}, then
         * {@code <|open|>argument key="P" type="T"<|sep|>VALUE<|close|>argument<|sep|>} each, then {@code <|close|>call<|sep|>};
         * a value's type is its schema's, as llama.cpp reads it (the attribute is skipped).
         */
        KIMI3(K3_ARGUMENT, K3_CLOSE + "argument" + K3_SEP, K3_CLOSE + "argument" + K3_SEP, K3_CLOSE + "call" + K3_SEP, "k3"),
        /**
         * MiniCPM5: {@code <function name="NAME">}, then {@code <param name="P">VALUE</param>} each, then
         * {@code </function>} (the call's block); a raw value with {@code <}, {@code &} or a line break in a CDATA section.
         */
        MINICPM(MC_PARAM, "</param>", "</param>", "</function>", "mc"),
        /**
         * muse-glimmer's ATEM: {@code <atem:invoke name="NAME">\n}, then
         * {@code <atem:parameter name="P">VALUE</atem:parameter>\n} each, then {@code </atem:invoke>}
         * (MiniMax M2's layout with tags of its own; a call in each message's block, {@link ToolCalls.Format#MUSE}).
         */
        ATEM(ATEM_PARAM, "</atem:parameter>", "</atem:parameter>", "</atem:invoke>", "at");

        /** What opens a parameter. */
        final String parameter;
        /** What ends a value: a raw string never holds it (the grammar keeps it out). */
        final String valueEnd;
        /** What closes a parameter after a JSON value (whitespace may come before it). */
        final String valueClose;
        /** What ends the call. */
        final String callEnd;
        /** The prefix of the rules every grammar of the dialect holds. */
        final String rules;

        Dialect(String parameter, String valueEnd, String valueClose, String callEnd, String rules) {
            this.parameter = parameter;
            this.valueEnd = valueEnd;
            this.valueClose = valueClose;
            this.callEnd = callEnd;
            this.rules = rules;
        }

        static Dialect of(ToolCalls.Format format) {
            return switch (format) {
                case GLM_XML -> GLM;
                case MINIMAX_XML -> MINIMAX;
                case DEEPSEEK_V32, DEEPSEEK_V4 -> DSML;
                case SEED_XML -> SEED;
                case HUNYUAN -> HY;
                case KIMI3 -> KIMI3;
                case MINICPM5 -> MINICPM;
                case MUSE -> ATEM;
                default -> QWEN;
            };
        }

        /** Whether calls are {@code <function=NAME>} elements (Qwen's layout, Seed-OSS's). */
        boolean functions() {
            return this == QWEN || this == SEED;
        }

        /** Whether calls are {@code <invoke name="NAME">} elements in one block (MiniMax, DeepSeek; Hy3's {@code <tool_call:opensource>NAME}). */
        boolean invokes() {
            return this == MINIMAX || this == DSML || this == HY || this == KIMI3 || this == ATEM;
        }

        /** What opens an {@code <invoke>} call, up to its name. */
        String invoke() {
            return switch (this) {
                case DSML -> DSML_INVOKE;
                case HY -> HY_INVOKE;
                case KIMI3 -> K3_INVOKE;
                case ATEM -> ATEM_INVOKE;
                default -> INVOKE;
            };
        }

        /** What ends an {@code <invoke>} call's name. */
        String nameEnd() {
            return this == HY ? HY_SEP : this == KIMI3 ? "\"" : "\">";
        }

        /** What ends an element's head after its name or key and the attributes after them (Kimi K3's {@code <|sep|>}), or null. */
        String headEnd() {
            return this == KIMI3 ? K3_SEP : null;
        }

        /**
         * What a raw value never holds, as the grammar keeps it out: its end; Kimi K3's
         * {@code <|close|>}, its end's start (the end holds its first character twice, which the scan cannot take).
         */
        String scanEnd() {
            return this == KIMI3 ? K3_CLOSE : valueEnd;
        }

        /** Whether parameters are key and value elements (GLM's, Hy3's), the value's opening tag {@link #valueOpen}. */
        boolean pairs() {
            return this == GLM || this == HY;
        }

        /** What opens a pair's value. */
        String valueOpen() {
            return this == HY ? HY_VALUE : "<arg_value>";
        }

        /** What ends a parameter's name: Qwen's {@code >}; GLM's {@code </arg_key>}; MiniMax's {@code ">}. */
        String keyEnd() {
            return switch (this) {
                case QWEN, SEED -> ">";
                case GLM -> "</arg_key>";
                case HY -> HY_KEY_END;
                case MINIMAX, MINICPM, ATEM -> "\">";
                case KIMI3 -> "\"";
                case DSML -> "\"";
            };
        }
    }
    private static final Set<String> ROOT_WORDS = Set.of("type", "properties", "required", "additionalProperties", "$defs",
            "definitions", "title", "description", "$schema", "$id", "$comment", "examples", "default");
    static final Set<String> ANNOTATIONS = Set.of("title", "description", "$comment", "examples", "default", "deprecated",
            "readOnly", "writeOnly");
    static final Set<String> STRING_BOUNDS = Set.of("type", "minLength", "maxLength");

    private XmlToolCalls() {}

    /** How a parameter's value is written. */
    enum Kind {
        /** Only a string: the raw text. */
        RAW,
        /** Never a string: JSON. */
        JSON,
        /** Either: a JSON value of another type the schema admits, else the raw text as a string. */
        JSON_FIRST
    }

    /** A declared parameter. */
    record Param(String name, JsonNode schema, Kind kind, boolean required) {}

    /** A function's parameters, in the schema's order, and the schema that checks a value of each. */
    record Plan(List<Param> params, JsonNode root) {
        Param param(String name) {
            return params.stream().filter(p -> p.name().equals(name)).findFirst().orElse(null);
        }

        /** The value of {@code raw} for the parameter, or null where JSON was due and the text is none. */
        JsonNode value(Param p, String raw) {
            return value(p, p.kind(), raw);
        }

        /** The same with the value's kind given (DeepSeek's parameters say whether theirs is a string). */
        JsonNode value(Param p, Kind kind, String raw) {
            if (kind == Kind.RAW) {
                return JsonNodeFactory.instance.textNode(raw);
            }
            JsonNode json = json(raw);
            if (kind == Kind.JSON) {
                return json;
            }
            if (json != null && !json.isTextual() && admits(p.name(), json)) {
                return json;
            }
            return JsonNodeFactory.instance.textNode(raw);
        }

        private boolean admits(String name, JsonNode value) {
            ObjectNode schema = root.isObject() ? ((ObjectNode) root).deepCopy() : JsonNodeFactory.instance.objectNode();
            schema.remove(List.of("required", "additionalProperties"));
            ObjectNode doc = JsonNodeFactory.instance.objectNode();
            doc.set(name, value);
            try {
                return SchemaValidator.validate(schema, doc).isEmpty();
            } catch (RuntimeException e) {
                return false;
            }
        }
    }

    /** The JSON value that is all of {@code raw} but whitespace around it, or null. */
    private static JsonNode json(String raw) {
        String t = raw.strip();
        ToolCalls.Json j = ToolCalls.json(t, 0);
        return j != null && ToolCalls.skipSpace(t, j.end()) == t.length() ? j.value() : null;
    }

    /** The plan of a function's parameters, read leniently (for parsing what a model wrote; never throws). */
    static Plan plan(ToolCalls.Function f) {
        JsonNode root = f.parameters();
        List<Param> params = new ArrayList<>();
        JsonNode props = root.path("properties");
        Set<String> required = new HashSet<>();
        root.path("required").forEach(r -> required.add(r.asText()));
        props.properties().forEach(e -> params.add(new Param(e.getKey(), e.getValue(), kind(stringness(root, e.getValue(), 0)),
                required.contains(e.getKey()))));
        return new Plan(List.copyOf(params), root);
    }

    enum Stringness { ONLY, NEVER, BOTH }

    private static Kind kind(Stringness s) {
        return switch (s) {
            case ONLY -> Kind.RAW;
            case NEVER -> Kind.JSON;
            case BOTH -> Kind.JSON_FIRST;
        };
    }

    /** Whether a schema's values are all strings, none, or some (references followed, at most 32 deep). */
    static Stringness stringness(JsonNode root, JsonNode schema, int depth) {
        if (!schema.isObject() || depth > 32) {
            return Stringness.BOTH;
        }
        if (schema.has("$ref")) {
            try {
                return stringness(root, SchemaKeywords.resolve(root, schema.get("$ref").asText(), ""), depth + 1);
            } catch (SchemaException e) {
                return Stringness.BOTH;
            }
        }
        if (schema.has("const")) {
            return schema.get("const").isTextual() ? Stringness.ONLY : Stringness.NEVER;
        }
        if (schema.has("enum") && schema.get("enum").isArray() && !schema.get("enum").isEmpty()) {
            int strings = 0;
            for (JsonNode v : schema.get("enum")) {
                strings += v.isTextual() ? 1 : 0;
            }
            return strings == schema.get("enum").size() ? Stringness.ONLY : strings == 0 ? Stringness.NEVER : Stringness.BOTH;
        }
        for (String comb : List.of("anyOf", "oneOf", "allOf")) {
            if (schema.get(comb) instanceof com.fasterxml.jackson.databind.node.ArrayNode alts && !alts.isEmpty()) {
                Set<Stringness> seen = new HashSet<>();
                alts.forEach(a -> seen.add(stringness(root, a, depth + 1)));
                return seen.size() == 1 ? seen.iterator().next() : Stringness.BOTH;
            }
        }
        List<String> types;
        try {
            types = SchemaKeywords.types(schema, "");
        } catch (SchemaException e) {
            return Stringness.BOTH;
        }
        if (types.isEmpty()) {
            return Stringness.BOTH;
        }
        return !types.contains("string") ? Stringness.NEVER : types.size() == 1 ? Stringness.ONLY : Stringness.BOTH;
    }

    // --- the grammar ---------------------------------------------------------------------------

    /**
     * The rules of one function's call after its name ({@code restRule}: from the {@code >} that
     * ends the name to {@code </function>}), its parameters in the schema's order, the required
     * ones always, each value valid under its schema. What the format cannot enforce is refused:
     * the schema's root must be an object of declared properties, a raw string may carry only
     * length bounds, an enum or a const, and a parameter that may be a string or something else
     * must admit every string (its text is then a string wherever it is not another value).
     *
     * @throws SchemaException with a pointer into the function's parameters
     */
    static Map<String, String> rules(ToolCalls.Function f, String prefix, String restRule, Dialect dialect) {
        JsonNode root = f.parameters();
        declaredProperties(root, "XML");
        Plan plan = plan(f);
        Map<String, String> rules = new LinkedHashMap<>();
        Map<String, JsonNode> jsonValues = new LinkedHashMap<>();
        Map<String, String> pointers = new LinkedHashMap<>();
        // after the name: a line break; GLM's optional one; Kimi K3's index and the head's end
        StringBuilder body = new StringBuilder(switch (dialect) {
            case GLM -> "glm-nl";
            case KIMI3 -> "\" index=\\\"\" [0-9]{1,4} " + JsonSchemaGrammar.literal("\"" + K3_SEP);
            case MINICPM -> "\"\"";
            default -> "\"\\n\"";
        });
        int k = 0;
        for (Param p : plan.params()) {
            String ptr = "/properties/" + p.name().replace("~", "~0").replace("/", "~1");
            if (p.name().isEmpty() || p.name().chars().anyMatch(c -> c == '>' || c == '<' || c == '"' || c == '\n' || c == '\r')) {
                throw new SchemaException(ptr, "properties", "the property name " + SchemaKeywords.abbreviate(p.name())
                        + " cannot be written in the XML tool-call format (<parameter=NAME>: no '<', '>', '\"' or line break)");
            }
            String rule = prefix + "-p" + k++;
            String value = switch (p.kind()) {
                case JSON -> {
                    jsonValues.put(rule + "-value", p.schema());
                    pointers.put(rule + "-value", ptr);
                    yield rule + "-value";
                }
                case RAW -> raw(root, p.schema(), ptr, dialect);
                case JSON_FIRST -> {
                    if (!admitsEveryString(root, p.schema(), 0)) {
                        throw new SchemaException(ptr, null, "in the XML tool-call format a value that may be a string is written "
                                + "raw, so a parameter that may be a string or another type must admit every string");
                    }
                    if (dialect == Dialect.DSML) { // DeepSeek says which: a raw string, or a JSON value of the schema
                        jsonValues.put(rule + "-value", p.schema());
                        pointers.put(rule + "-value", ptr);
                    }
                    yield dialect.rules + "-text";
                }
            };
            rules.put(rule, switch (dialect) {
                case QWEN, SEED -> JsonSchemaGrammar.literal(dialect.parameter + p.name() + (dialect == Dialect.QWEN ? ">\n" : ">")) + " "
                        + value + " " + JsonSchemaGrammar.literal(dialect.valueEnd + "\n");
                case GLM -> JsonSchemaGrammar.literal(dialect.parameter + p.name() + "</arg_key>") + " glm-nl \"<arg_value>\" " + value + " "
                        + JsonSchemaGrammar.literal(dialect.valueEnd) + " glm-nl";
                case HY -> JsonSchemaGrammar.literal(dialect.parameter + p.name() + HY_KEY_END + "\n" + HY_VALUE) + " " + value + " "
                        + JsonSchemaGrammar.literal(dialect.valueEnd + "\n");
                case MINIMAX, ATEM -> JsonSchemaGrammar.literal(dialect.parameter + p.name() + "\">") + " " + value + " "
                        + JsonSchemaGrammar.literal(dialect.valueEnd + "\n");
                case MINICPM -> JsonSchemaGrammar.literal(dialect.parameter + p.name() + "\">") + " " + value + " "
                        + JsonSchemaGrammar.literal(dialect.valueEnd);
                // the type a raw string's attribute says; another value's, any word (its schema tells its type)
                case KIMI3 -> JsonSchemaGrammar.literal(dialect.parameter + p.name() + "\" type=\"") + " "
                        + (p.kind() == Kind.RAW ? "\"string\"" : "[a-z]{1,8}") + " " + JsonSchemaGrammar.literal("\"" + K3_SEP) + " " + value
                        + " " + JsonSchemaGrammar.literal(dialect.valueEnd);
                // a value that may be a string or another type is either, as the parameter says
                case DSML -> (p.kind() == Kind.JSON_FIRST
                        ? "(" + JsonSchemaGrammar.literal(dialect.parameter + p.name() + DSML_STRING) + " " + value + " | "
                                + JsonSchemaGrammar.literal(dialect.parameter + p.name() + DSML_JSON) + " " + rule + "-value)"
                        : JsonSchemaGrammar.literal(dialect.parameter + p.name() + (p.kind() == Kind.JSON ? DSML_JSON : DSML_STRING)) + " "
                                + value) + " " + JsonSchemaGrammar.literal(dialect.valueEnd + "\n");
            });
            body.append(' ').append(rule).append(p.required() ? "" : "?");
        }
        if (dialect != Dialect.GLM) {
            body.append(' ').append(JsonSchemaGrammar.literal(dialect.callEnd));
        }
        rules.put(restRule, body.toString());
        rules.putAll(JsonSchemaGrammar.rules(root, prefix, jsonValues, pointers));
        return rules;
    }

    /**
     * Checks that a function's parameters are an object of declared properties, which a format
     * that writes them one by one ({@code format}: its name, for the message) can enforce.
     *
     * @throws SchemaException with a pointer into the parameters
     */
    static void declaredProperties(JsonNode root, String format) {
        root.properties().forEach(e -> {
            if (!ROOT_WORDS.contains(e.getKey())) {
                throw new SchemaException("/" + e.getKey(), e.getKey(), "in the " + format + " tool-call format the arguments are the "
                        + "declared properties, written one by one: '" + e.getKey() + "' at the parameters' root cannot be enforced");
            }
        });
        if (root.has("type") && !"object".equals(root.get("type").asText())) {
            throw new SchemaException("/type", "type", "the parameters must be an object");
        }
        JsonNode props = root.path("properties");
        if (!props.isMissingNode() && !props.isObject()) {
            throw new SchemaException("/properties", "properties", "'properties' must be an object");
        }
        for (JsonNode r : root.path("required")) {
            if (!r.isTextual() || !props.has(r.asText())) {
                throw new SchemaException("/required", "required", "in the " + format + " tool-call format only declared properties can "
                        + "be written, and the required '" + r.asText() + "' is not among 'properties'");
            }
        }
    }

    /** The rules every grammar of the dialect holds: raw text without its value's end, a character of a bounded one, GLM's optional line break. */
    static String sharedRules(Dialect dialect) {
        if (dialect == Dialect.MINICPM) {
            // as its template writes a string: raw without '<', '&' or a line break, else in a
            // CDATA section, which never holds "]]>" (a scan of the last two characters read)
            return "mc-text ::= mc-plain | \"<![CDATA[\" mc-c0 \"]]>\"\n"
                    + "mc-plain ::= [^<&\\n\\x00]*\n"
                    + "mc-c0 ::= ( [^\\]] mc-c0 | \"]\" mc-c1 )?\n"
                    + "mc-c1 ::= ( [^\\]] mc-c0 | \"]\" mc-c2 )?\n"
                    + "mc-c2 ::= ( [^\\]>] mc-c0 | \"]\" mc-c2 )?\n"
                    + "mc-bounded ::= [^<&\\n\\x00]\n";
        }
        StringBuilder sb = new StringBuilder(scanRules(dialect.rules + "-text", dialect.scanEnd()));
        sb.append(dialect.rules).append("-bounded ::= [^<\\x00]\n");
        if (dialect == Dialect.GLM) {
            sb.append("glm-nl ::= \"\\n\"?\n");
        }
        return sb.toString();
    }

    /**
     * The rule {@code name}: any text that does not hold {@code end} (a raw value's text before its
     * end), as the states of a scan for the end: {@code name-tK} has read its first K characters
     * (never all); {@code end}'s first character comes back nowhere else in it, so a mismatch
     * restarts at 0 or 1.
     */
    static String scanRules(String name, String end) {
        String t = name + "-t";
        char f = end.charAt(0);
        String first = inClass(f);
        StringBuilder sb = new StringBuilder(name + " ::= " + t + "0\n");
        sb.append(t).append("0 ::= ( [^").append(first).append("] ").append(t).append("0 | ").append(JsonSchemaGrammar.literal(String.valueOf(f)))
                .append(' ').append(t).append("1 )?\n");
        for (int k = 1; k < end.length(); k++) {
            char c = end.charAt(k);
            sb.append(t).append(k).append(" ::= ( [^").append(first).append(inClass(c)).append("] ").append(t).append("0 | ")
                    .append(JsonSchemaGrammar.literal(String.valueOf(f))).append(' ').append(t).append("1");
            if (k + 1 < end.length()) {
                sb.append(" | ").append(JsonSchemaGrammar.literal(String.valueOf(c))).append(' ').append(t).append(k + 1);
            }
            sb.append(" )?\n");
        }
        return sb.toString();
    }

    /** A character as GBNF writes it inside a character class. */
    private static String inClass(char c) {
        return switch (c) {
            case '\n' -> "\\n";
            case ']', '\\', '^', '-', '[', '"' -> "\\" + c;
            default -> String.valueOf(c);
        };
    }

    /** A raw string's value rule: an enum's or const's strings, or text within length bounds. */
    private static String raw(JsonNode root, JsonNode schema, String ptr, Dialect dialect) {
        return raw(root, schema, ptr, dialect.rules, dialect.scanEnd(), dialect == Dialect.MINICPM, "the XML tool-call format");
    }

    /**
     * A raw string's value rule in a format whose rules begin with {@code rules} ({@code rules-text},
     * {@code rules-bounded}), a raw value never holding {@code stop} ({@code cdata}: MiniCPM5's
     * CDATA sections for a string with {@code <}, {@code &} or a line break); {@code format} names
     * the format in a refusal.
     */
    static String raw(JsonNode root, JsonNode schema, String ptr, String rules, String stop, boolean cdata, String format) {
        JsonNode s = schema;
        for (int depth = 0; s.has("$ref") && depth < 32; depth++) {
            s = SchemaKeywords.resolve(root, s.get("$ref").asText(), ptr);
        }
        List<String> literals = new ArrayList<>();
        if (s.has("const")) {
            literals.add(s.get("const").textValue());
        } else if (s.has("enum")) {
            s.get("enum").forEach(v -> literals.add(v.textValue()));
        }
        if (s.has("const") || s.has("enum")) {
            SchemaKeywords.checkLiteralTypes(s, s.has("const") ? List.of(s.get("const")) : s.get("enum"), ptr);
        }
        if (!literals.isEmpty()) {
            List<String> alts = new ArrayList<>();
            for (String l : literals) {
                if (cdata && (l.contains("<") || l.contains("&") || l.contains("\n"))) {
                    if (l.contains(CDATA_CLOSE)) {
                        throw new SchemaException(ptr, "enum", "a string that holds both '<', '&' or a line break and ]]> cannot be "
                                + "written in MiniCPM5's tool-call format");
                    }
                    alts.add(JsonSchemaGrammar.literal(CDATA_OPEN + l + CDATA_CLOSE)); // as the template writes it
                    continue;
                }
                if (l.contains(stop)) {
                    throw new SchemaException(ptr, "enum", "a string that holds " + stop.strip() + " cannot be written in " + format);
                }
                alts.add(l.isEmpty() ? "\"\"" : JsonSchemaGrammar.literal(l));
            }
            return "(" + String.join(" | ", alts) + ")";
        }
        JsonNode resolved = s;
        for (String key : ((Iterable<String>) () -> resolved.fieldNames())) {
            if (!STRING_BOUNDS.contains(key) && !ANNOTATIONS.contains(key)) {
                throw new SchemaException(ptr + "/" + key, key, "in " + format + " a string parameter is written raw, and '"
                        + key + "' on it cannot be enforced (length bounds, enum and const can)");
            }
        }
        int[] bounds = JsonSchemaGrammar.bounds(s, "minLength", "maxLength", ptr);
        int min = bounds[0];
        int max = bounds[1];
        // within length bounds no '<': the value's end begins with one, and a count cannot be
        // combined with the scan that keeps it out (a value that held its end was read short)
        return min == 0 && max < 0 ? rules + "-text" : rules + "-bounded" + JsonSchemaGrammar.repeat(min, max);
    }

    /** Whether every string is valid under the schema (a plain string type, no schema, or an alternative that is one). */
    static boolean admitsEveryString(JsonNode root, JsonNode schema, int depth) {
        if (schema.isBoolean()) {
            return schema.booleanValue();
        }
        if (!schema.isObject() || depth > 32) {
            return false;
        }
        if (schema.has("$ref")) {
            return admitsEveryString(root, SchemaKeywords.resolve(root, schema.get("$ref").asText(), ""), depth + 1);
        }
        for (String comb : List.of("anyOf", "oneOf")) {
            if (schema.get(comb) instanceof com.fasterxml.jackson.databind.node.ArrayNode alts) {
                int admitting = 0;
                int stringy = 0;
                for (JsonNode a : alts) {
                    admitting += admitsEveryString(root, a, depth + 1) ? 1 : 0;
                    stringy += stringness(root, a, depth + 1) != Stringness.NEVER ? 1 : 0;
                }
                // oneOf: a string matching two alternatives would be invalid
                return admitting > 0 && (comb.equals("anyOf") || stringy == 1);
            }
        }
        for (String key : ((Iterable<String>) () -> schema.fieldNames())) {
            if (!key.equals("type") && !ANNOTATIONS.contains(key)) {
                return false;
            }
        }
        return !schema.has("type") || SchemaKeywords.types(schema, "").contains("string");
    }

    // --- parsing -------------------------------------------------------------------------------

    /** The longest run of attributes read in an element's head (Kimi K3's {@code index="N"}, {@code type="T"}). */
    static final int MAX_ATTRIBUTES = 64;

    /** Where an element's head that goes on at {@code from} ends: after its {@link Dialect#headEnd}, within {@link #MAX_ATTRIBUTES}; -1 where it does not. */
    private static int headEnd(String text, int from, Dialect dialect) {
        int end = text.indexOf(dialect.headEnd(), from);
        return end < 0 || end - from > MAX_ATTRIBUTES || text.substring(from, end).contains("<") ? -1 : end + dialect.headEnd().length();
    }

    /**
     * Reads one call from {@code from} (Qwen: {@code <function=...>...</function>}; MiniMax and
     * DeepSeek: {@code <invoke name="...">...</invoke>}; GLM: the name
     * and the elements, up to the block's end, which is left to read); returns the index after it, or -1.
     */
    static int call(String text, int from, List<ToolCalls.Function> functions, List<ToolCalls.Call> calls, Dialect dialect) {
        int at = ToolCalls.skipSpace(text, from);
        int nameEnd;
        String name;
        if (dialect.functions()) {
            if (!text.startsWith(FUNCTION, at) || (nameEnd = text.indexOf('>', at)) < 0) {
                return -1;
            }
            name = text.substring(at + FUNCTION.length(), nameEnd++);
        } else if (dialect.invokes()) {
            if (!text.startsWith(dialect.invoke(), at) || (nameEnd = text.indexOf(dialect.nameEnd(), at + dialect.invoke().length())) < 0) {
                return -1;
            }
            name = text.substring(at + dialect.invoke().length(), nameEnd);
            nameEnd += dialect.nameEnd().length();
            if (dialect.headEnd() != null) { // the attributes after the name
                nameEnd = headEnd(text, nameEnd, dialect);
                if (nameEnd < 0) {
                    return -1;
                }
            }
        } else if (dialect == Dialect.MINICPM) { // from its block's start: the name, then '">'
            if ((nameEnd = text.indexOf("\">", at)) < 0) {
                return -1;
            }
            name = text.substring(at, nameEnd);
            nameEnd += 2;
        } else {
            nameEnd = ToolCalls.nameEnd(text, at);
            name = text.substring(at, nameEnd);
        }
        ToolCalls.Function f = functions.stream().filter(x -> x.name().equals(name)).findFirst().orElse(null);
        if (f == null) {
            return -1;
        }
        Plan plan = plan(f);
        ObjectNode args = JsonNodeFactory.instance.objectNode();
        at = nameEnd;
        while (true) {
            at = ToolCalls.skipSpace(text, at);
            boolean blockEnds = dialect == Dialect.GLM || dialect == Dialect.MINICPM; // the call's end is its block's, read by the caller
            boolean ended = blockEnds && at == text.length();
            if (text.startsWith(dialect.callEnd, at) || ended) {
                calls.add(new ToolCalls.Call(ToolCalls.newId(), name, JsonSchemaGrammar.dump(args)));
                return blockEnds ? at : at + dialect.callEnd.length();
            }
            if (!text.startsWith(dialect.parameter, at)) {
                return -1;
            }
            int keyEnd = text.indexOf(dialect.keyEnd(), at + dialect.parameter.length());
            if (keyEnd < 0) {
                return -1;
            }
            Param p = plan.param(text.substring(at + dialect.parameter.length(), keyEnd));
            if (p == null || args.has(p.name())) {
                return -1;
            }
            int start;
            Kind kind = p.kind();
            if (dialect == Dialect.QWEN) {
                start = text.startsWith("\n", keyEnd + 1) ? keyEnd + 2 : keyEnd + 1;
            } else if (dialect == Dialect.SEED) {
                start = keyEnd + 1;
            } else if (dialect == Dialect.MINIMAX || dialect == Dialect.MINICPM || dialect == Dialect.ATEM) {
                start = keyEnd + 2;
            } else if (dialect == Dialect.KIMI3) {
                start = headEnd(text, keyEnd + 1, dialect); // the type attribute is skipped
                if (start < 0) {
                    return -1;
                }
            } else if (dialect == Dialect.DSML) {
                // the value's type as the parameter says it
                if (text.startsWith(DSML_STRING, keyEnd)) {
                    kind = Kind.RAW;
                    start = keyEnd + DSML_STRING.length();
                } else if (text.startsWith(DSML_JSON, keyEnd)) {
                    kind = Kind.JSON;
                    start = keyEnd + DSML_JSON.length();
                } else {
                    return -1;
                }
            } else { // GLM's and Hy3's pairs
                start = ToolCalls.skipSpace(text, keyEnd + dialect.keyEnd().length());
                if (!text.startsWith(dialect.valueOpen(), start)) {
                    return -1;
                }
                start += dialect.valueOpen().length();
            }
            int close;
            if (dialect == Dialect.MINICPM && kind != Kind.JSON && text.startsWith(CDATA_OPEN, start)) { // a CDATA section, then the end
                int cdataEnd = text.indexOf(CDATA_CLOSE, start + CDATA_OPEN.length());
                if (cdataEnd < 0 || !text.startsWith(dialect.valueClose, cdataEnd + CDATA_CLOSE.length())) {
                    return -1;
                }
                JsonNode v = plan.value(p, kind, text.substring(start + CDATA_OPEN.length(), cdataEnd));
                if (v == null) {
                    return -1;
                }
                args.set(p.name(), v);
                at = cdataEnd + CDATA_CLOSE.length() + dialect.valueClose.length();
                continue;
            }
            close = text.indexOf(dialect.valueClose, start);
            if (close < 0) {
                return -1;
            }
            boolean lineBefore = dialect == Dialect.QWEN && close > start && text.charAt(close - 1) == '\n';
            JsonNode v = plan.value(p, kind, text.substring(start, lineBefore ? close - 1 : close));
            if (v == null) {
                return -1;
            }
            args.set(p.name(), v);
            at = close + dialect.valueClose.length();
        }
    }
}
