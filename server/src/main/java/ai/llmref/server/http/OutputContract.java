package ai.llmref.server.http;

import ai.llmref.server.structured.JsonSchemaGrammar;
import ai.llmref.server.structured.SchemaException;
import ai.llmref.server.structured.SchemaValidator;
import ai.llmref.server.structured.ToolCalls;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * What a request demands of its output, read from {@code response_format}, {@code tools} and
 * {@code tool_choice}: the grammar enforced while sampling, and the check the finished text must
 * pass. Anything that cannot be enforced is a 400 here, before generation.
 *
 * @param grammar   GBNF enforced by the sampler, or null
 * @param schema    the json_schema the output must validate against, or null
 * @param jsonObject the output must be a JSON object (json_object)
 * @param format    the chat template's tool-call format (tools active only when not NONE)
 * @param functions declared functions (empty: no tools)
 * @param toolChoice "none", "auto", "required", or "function" (one named function)
 * @param parallelCalls a reply may hold several calls ({@code parallel_tool_calls}, default true)
 * @param lateGrammar GBNF that applies once the model begins a call under "auto"
 *                  ({@link ToolCalls#lateGrammar}), or null (no tools, a forced call, a JSON
 *                  response_format, or parameters the grammar cannot enforce: the reply stays free)
 */
record OutputContract(String grammar, JsonNode schema, boolean jsonObject, ToolCalls.Format format,
                      List<ToolCalls.Function> functions, String toolChoice, boolean parallelCalls, String lateGrammar) {
    static final OutputContract NONE = new OutputContract(null, null, false, ToolCalls.Format.NONE, List.of(), "none", true, null);
    private static final ObjectMapper MAPPER = new ObjectMapper();
    private static final Pattern FUNCTION_NAME = Pattern.compile("[a-zA-Z0-9_-]{1,64}");

    /** Tools are rendered and the output is parsed for calls. */
    boolean toolsActive() {
        return !functions.isEmpty() && !toolChoice.equals("none");
    }

    /** The grammar forces a call (tool_choice required or named). */
    boolean callForced() {
        return toolChoice.equals("required") || toolChoice.equals("function");
    }

    /** Tool definitions as the chat template sees them, or null when tools are not rendered. */
    List<Map<String, Object>> templateTools(ObjectNode body) {
        if (!toolsActive()) {
            return null;
        }
        List<Map<String, Object>> out = new ArrayList<>();
        for (JsonNode t : body.get("tools")) {
            out.add(MAPPER.convertValue(t, MAPPER.getTypeFactory().constructMapType(LinkedHashMap.class, String.class, Object.class)));
        }
        return out;
    }

    /**
     * Violations of the response format by a finished ("stop") text: empty when it complies. A
     * tool-call reply is checked by {@link #callViolations}.
     */
    List<String> violations(String text) {
        if (schema == null && !jsonObject) {
            return List.of();
        }
        JsonNode doc;
        try {
            doc = SchemaValidator.read(text);
        } catch (JsonProcessingException e) {
            // where, not what: Jackson's message quotes the output's text, and violations are logged
            return List.of("the output is not JSON (at character " + e.getLocation().getCharOffset() + ")");
        }
        if (doc == null || doc.isMissingNode()) {
            return List.of("the output is empty");
        }
        if (jsonObject && !doc.isObject()) {
            return List.of("the output is not a JSON object");
        }
        return schema == null ? List.of() : SchemaValidator.validate(schema, doc);
    }

    /**
     * The calls a reply may make: all of them, or with {@code parallel_tool_calls: false} the first
     * (a forced call is always one; under {@code auto} the model may write more, and they go unsent).
     */
    ToolCalls.Reply limitCalls(ToolCalls.Reply reply) {
        return parallelCalls || reply.calls().size() <= 1 ? reply : new ToolCalls.Reply(reply.content(), reply.calls().subList(0, 1));
    }

    /**
     * Violations of calls a grammar wrote (forced, or under "auto" once the late grammar applied:
     * {@code constrained}): a forced reply must hold one; each names an allowed function, with
     * arguments valid under its schema.
     */
    List<String> callViolations(ToolCalls.Reply reply, boolean constrained) {
        if (!callForced() && !constrained) {
            return List.of();
        }
        if (reply.calls().isEmpty() && callForced()) {
            return List.of("the output holds no tool call although one was required");
        }
        List<String> out = new ArrayList<>();
        for (ToolCalls.Call c : reply.calls()) {
            try {
                ToolCalls.Function f = ToolCalls.function(functions, c.name());
                for (String v : SchemaValidator.validate(f.parameters(), SchemaValidator.read(c.arguments()))) {
                    out.add(c.name() + " arguments: " + v);
                }
            } catch (JsonProcessingException | java.util.NoSuchElementException e) {
                out.add("call of " + c.name() + " does not parse");
            }
        }
        return out;
    }

    /**
     * What ends a reply's reasoning besides {@code </think>}: with tools in the XML format, a
     * {@code <tool_call>} (Qwen 3.5 and Nemotron 3 Nano may call without closing their reasoning;
     * llama.cpp ends it there too); in Kimi K2's and DeepSeek's, their block's start (likewise); null otherwise.
     */
    String reasoningEnd() {
        if (!toolsActive()) {
            return null;
        }
        return switch (format()) {
            case XML -> ToolCalls.HERMES_OPENING;
            case KIMI, DEEPSEEK_V32, DEEPSEEK_V4 -> ToolCalls.opening(format()); // as llama.cpp ends theirs
            default -> null;
        };
    }

    /** Whether {@link #afterAnalysis} has a grammar, told without making it: there is a grammar, and a call it forces is in GPT-OSS's format. */
    boolean hasAfterAnalysis() {
        return grammar != null && (!callForced() || format == ToolCalls.Format.HARMONY);
    }

    /** Where GPT-OSS's analysis message ends: the next message's start, from which {@link #afterAnalysis} applies. */
    static final String HARMONY_NEXT = "<|start|>";

    /**
     * For GPT-OSS (harmony messages), the grammar that applies from the {@code <|start|>} after the
     * reply's analysis message ({@link #HARMONY_NEXT}, a late grammar's literal), as llama.cpp lets
     * GPT-OSS reason before a grammar: the final message's header (as GPT-OSS writes it, with or
     * without a content type) and the JSON document, or the forced call's message; null without a
     * grammar (or tools in another format).
     */
    String afterAnalysis() {
        if (!hasAfterAnalysis()) {
            return null;
        }
        try {
            if (callForced()) {
                return ToolCalls.grammarAfterAnalysis(functions);
            }
            String header = "\"" + HARMONY_NEXT + "assistant<|channel|>final\" (\" json\" | \" <|constrain|>json\")? \"<|message|>\"";
            if (jsonObject) {
                return JsonGrammars.JSON_OBJECT.replaceFirst("root +::= object", "root ::= " + java.util.regex.Matcher.quoteReplacement(header) + " object");
            }
            StringBuilder sb = new StringBuilder("root ::= ").append(header).append(" final-json\n");
            JsonSchemaGrammar.rules(schema, "final-json").forEach((k, v) -> sb.append(k).append(" ::= ").append(v).append('\n'));
            JsonSchemaGrammar.checkExpansion(sb.toString());
            return sb.toString();
        } catch (SchemaException e) {
            return null; // not reached: the same schemas made the grammar from the start
        }
    }

    /** Reads response_format, tools and tool_choice of a request (tools only for chat). */
    static OutputContract of(ObjectNode body, boolean chat, ToolCalls.Format format) {
        String grammar = null;
        JsonNode schema = null;
        boolean jsonObject = false;
        JsonNode rf = Params.get(body, "response_format");
        if (rf != null) {
            if (!(rf instanceof ObjectNode rfo)) {
                throw ApiException.badRequest("response_format", "'response_format' must be an object");
            }
            String type = Params.string(rfo, "type");
            if (type == null) {
                throw ApiException.badRequest("response_format", "'response_format.type' is required");
            }
            switch (type) {
                case "text" -> { }
                case "json_object" -> {
                    grammar = JsonGrammars.JSON_OBJECT;
                    jsonObject = true;
                }
                case "json_schema" -> {
                    schema = jsonSchema(rfo);
                    grammar = convert(schema, "response_format.json_schema.schema");
                }
                default -> throw ApiException.badValue("response_format", "unknown response_format type '"
                        + CompletionParser.abbreviate(type) + "'; supported: text, json_object, json_schema");
            }
        }
        if (!chat) {
            rejectPresent(body, "tools");
            rejectPresent(body, "tool_choice");
            return new OutputContract(grammar, schema, jsonObject, ToolCalls.Format.NONE, List.of(), "none", true, null);
        }
        JsonNode legacy = Params.get(body, "functions");
        if (legacy != null && !(legacy.isArray() && legacy.isEmpty()) || Params.get(body, "function_call") != null) {
            throw ApiException.unsupported("functions", "the deprecated 'functions'/'function_call' are not supported; use 'tools' and 'tool_choice'");
        }
        List<ToolCalls.Function> functions = functions(body);
        String choice = functions.isEmpty() ? "none" : "auto";
        String named = null;
        JsonNode tc = Params.get(body, "tool_choice");
        if (tc != null) {
            if (tc.isTextual() && Set.of("none", "auto", "required").contains(tc.textValue())) {
                choice = tc.textValue();
            } else if (tc instanceof ObjectNode o && "function".equals(o.path("type").asText(null)) && o.path("function").path("name").isTextual()) {
                choice = "function";
                named = o.path("function").path("name").textValue();
            } else {
                throw ApiException.badValue("tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or "
                        + "{\"type\":\"function\",\"function\":{\"name\":...}}");
            }
            if (functions.isEmpty() && !choice.equals("none")) {
                throw ApiException.badValue("tool_choice", "'tool_choice' requires 'tools'");
            }
        }
        if (!functions.isEmpty() && !choice.equals("none") && format == ToolCalls.Format.NONE) {
            throw ApiException.unsupported("tools", "the model's chat template renders no tool calls in a format this server can "
                    + "read (the formats of 65 of llama.cpp's 70 pinned templates are supported: Hermes, Llama 3 JSON, the XML and GLM "
                    + "formats, Mistral, GPT-OSS, MiniMax, Kimi, DeepSeek, Gemma 4, Cohere, and more; see the server's docs, 'Tool calls'); "
                    + "remove 'tools' or use tool_choice \"none\"");
        }
        if (format == ToolCalls.Format.MUSE && !choice.equals("none")) { // its template's own recipients: a message to them is the reasoning or the text
            for (int i = 0; i < functions.size(); i++) {
                if (Set.of("self", "user").contains(functions.get(i).name())) {
                    throw ApiException.badValue("tools[" + i + "].function.name", "the function name '" + functions.get(i).name()
                            + "' is one of the chat template's own recipients (self: its reasoning, user: its answer); rename the function");
                }
            }
        }
        List<ToolCalls.Function> allowed = functions;
        if (named != null) {
            String n = named;
            allowed = functions.stream().filter(f -> f.name().equals(n)).toList();
            if (allowed.isEmpty()) {
                throw ApiException.badValue("tool_choice", "tool_choice names the function '" + CompletionParser.abbreviate(n)
                        + "', which is not among 'tools'");
            }
        }
        Boolean parallel = Params.bool(body, "parallel_tool_calls");
        boolean several = parallel == null || parallel;
        if (choice.equals("required") || choice.equals("function")) {
            if (grammar != null) {
                throw ApiException.unsupported("response_format", "a JSON response_format cannot be combined with tool_choice \""
                        + choice + "\": the reply is a tool call");
            }
            try {
                grammar = ToolCalls.grammar(format, allowed, several && choice.equals("required"));
            } catch (SchemaException e) {
                throw schemaError("tools", e);
            }
        }
        String late = null;
        if (choice.equals("auto") && grammar == null) {
            try {
                late = ToolCalls.lateGrammar(format, allowed, several);
            } catch (SchemaException e) {
                // parameters the grammar cannot enforce: under "auto" the call is parsed as written
            }
        }
        return new OutputContract(grammar, schema, jsonObject, format, allowed, choice, several, late);
    }

    private static JsonNode jsonSchema(ObjectNode rf) {
        JsonNode js = Params.get(rf, "json_schema");
        if (!(js instanceof ObjectNode jso)) {
            throw ApiException.badRequest("response_format.json_schema", "'response_format.json_schema' must be an object with a 'schema'");
        }
        Params.string(jso, "name");
        Params.bool(jso, "strict"); // type-checked; the schema is always enforced
        JsonNode schema = Params.get(jso, "schema");
        if (schema == null) {
            throw ApiException.badRequest("response_format.json_schema.schema", "'response_format.json_schema.schema' is required");
        }
        return schema;
    }

    private static String convert(JsonNode schema, String param) {
        try {
            return JsonSchemaGrammar.convert(schema);
        } catch (SchemaException e) {
            throw schemaError(param, e);
        }
    }

    private static ApiException schemaError(String param, SchemaException e) {
        return new ApiException(400, "invalid_request_error", "unsupported_schema", param,
                "the JSON schema cannot be enforced: " + e.getMessage());
    }

    private static List<ToolCalls.Function> functions(ObjectNode body) {
        JsonNode tools = Params.get(body, "tools");
        if (tools == null || tools.isArray() && tools.isEmpty()) {
            return List.of();
        }
        if (!tools.isArray()) {
            throw ApiException.badRequest("tools", "'tools' must be an array");
        }
        if (tools.size() > 128) {
            throw ApiException.badValue("tools", "at most 128 tools are supported");
        }
        List<ToolCalls.Function> out = new ArrayList<>();
        Set<String> names = new HashSet<>();
        for (int i = 0; i < tools.size(); i++) {
            String where = "tools[" + i + "]";
            JsonNode t = tools.get(i);
            if (!(t instanceof ObjectNode o) || !"function".equals(o.path("type").asText(null))) {
                throw ApiException.unsupported(where, where + " must be {\"type\":\"function\",\"function\":{...}}; only function tools are supported");
            }
            JsonNode f = o.get("function");
            if (!(f instanceof ObjectNode fo) || !fo.path("name").isTextual()) {
                throw ApiException.badRequest(where + ".function", where + ".function must be an object with a 'name'");
            }
            String name = fo.get("name").textValue();
            if (!FUNCTION_NAME.matcher(name).matches()) {
                throw ApiException.badValue(where + ".function.name", "function names are 1 to 64 of a-z, A-Z, 0-9, _ and -");
            }
            if (!names.add(name)) {
                throw ApiException.badValue(where + ".function.name", "the function name '" + name + "' appears twice");
            }
            JsonNode params = fo.get("parameters");
            if (params == null) {
                params = MAPPER.createObjectNode().put("type", "object").set("properties", MAPPER.createObjectNode());
                ((ObjectNode) params).put("additionalProperties", false);
            } else if (!params.isObject()) {
                throw ApiException.badRequest(where + ".function.parameters", where + ".function.parameters must be a JSON schema object");
            }
            try {
                params = ToolCalls.argumentsSchema(params);
            } catch (SchemaException e) {
                throw new ApiException(400, "invalid_request_error", "invalid_value", where + ".function.parameters" + e.pointer().replace('/', '.'),
                        e.getMessage());
            }
            out.add(new ToolCalls.Function(name, params));
        }
        return List.copyOf(out);
    }

    private static void rejectPresent(ObjectNode body, String field) {
        if (Params.get(body, field) != null) {
            throw ApiException.unsupported(field, "'" + field + "' is only supported on /v1/chat/completions");
        }
    }
}
