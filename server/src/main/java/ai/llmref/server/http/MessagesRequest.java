package ai.llmref.server.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;
import java.util.Map;

/**
 * A {@code POST /v1/messages} body (Anthropic's Messages API) read as the chat request it amounts
 * to: {@code system} becomes a system message, each message's text blocks its content, an
 * assistant's {@code tool_use} blocks its tool calls, a user's {@code tool_result} blocks tool
 * messages; {@code tools} (with {@code input_schema}) and {@code tool_choice} ({@code auto},
 * {@code any}, {@code tool}, {@code none}) map to chat's; {@code stop_sequences} to {@code stop}.
 * {@code output_config} (a JSON schema, an effort) maps to chat's {@code response_format} and
 * {@code reasoning_effort}. What the text model or this server cannot honour (images, documents,
 * server tools, MCP servers) is a 400 naming the field. The chat parser's errors are renamed to this API's
 * fields.
 *
 * @param chat          the equivalent {@code /v1/chat/completions} body
 * @param request       the client's body
 * @param formatField   the field that gave a JSON schema ({@code output_config.format}, the beta's
 *                      {@code output_format}), for the chat parser's errors; null: none
 * @param omitsThinking {@code thinking.display} "omitted": thinking blocks come without their text
 */
record MessagesRequest(ObjectNode chat, ObjectNode request, String formatField, boolean omitsThinking) {
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    /** Fields that mean the same here and in chat, and llama.cpp's sampling extensions. */
    private static final List<String> SHARED = java.util.stream.Stream.concat(java.util.stream.Stream.of("model", "stream", "temperature", "top_p", "top_k", "min_p", "seed",
            "presence_penalty", "frequency_penalty", "logit_bias"), CompletionParser.LLAMA_SAMPLING_FIELDS.stream()).toList();

    private static final Map<String, String> REFUSED = Map.of(
            "container", "'container' (code execution) is not supported",
            "mcp_servers", "'mcp_servers' are not supported: no remote tools run here",
            "n", "'n' is not supported: the Messages API has one answer per request",
            "response_format", "'response_format' is a Chat Completions field; the Messages API takes 'output_config': {\"format\": {\"type\": \"json_schema\", \"schema\": ...}}",
            "max_completion_tokens", "'max_completion_tokens' is a Chat Completions field; the Messages API takes 'max_tokens'");

    /** A request to generate: {@code max_tokens} is required. */
    static MessagesRequest of(ObjectNode body) {
        return read(body, true);
    }

    /** Asked to think without a budget ({@code thinking.type} "adaptive"). */
    private static final long NO_BUDGET = Long.MAX_VALUE;

    /**
     * {@code thinking} (extended thinking): a reasoning model is asked to think
     * ({@code enable_thinking}) only with {@code {"type":"enabled","budget_tokens":N}}, N at least
     * 1024 and below max_tokens as Anthropic requires, or with {@code {"type":"adaptive"}} (the
     * model decides how far to think: no budget); left out or {@code disabled}, it is not, as
     * Anthropic's models do not think unless asked. The budget caps the reasoning (the chat
     * route's {@code reasoning_budget_tokens}). Returns the budget, {@link #NO_BUDGET}, or -1 when
     * not asked to think.
     */
    private static long thinking(ObjectNode body, boolean generate) {
        JsonNode thinking = Params.get(body, "thinking");
        if (thinking == null) {
            return -1;
        }
        if (!(thinking instanceof ObjectNode t)) {
            throw ApiException.badRequest("thinking", "'thinking' must be an object");
        }
        String type = Params.string(t, "type");
        if ("disabled".equals(type)) {
            return -1;
        }
        if ("adaptive".equals(type)) {
            return NO_BUDGET;
        }
        if (!"enabled".equals(type)) {
            throw ApiException.badValue("thinking.type", "'thinking.type' must be enabled, adaptive or disabled");
        }
        Long budget = Params.integer(t, "budget_tokens", 1024, Integer.MAX_VALUE);
        if (budget == null) {
            throw ApiException.badRequest("thinking.budget_tokens", "'thinking.budget_tokens' is required when thinking is enabled");
        }
        JsonNode max = Params.get(body, "max_tokens");
        if (generate && max != null && max.canConvertToLong() && budget >= max.longValue()) {
            throw ApiException.badValue("thinking.budget_tokens", "'thinking.budget_tokens' must be less than 'max_tokens'");
        }
        return budget;
    }

    /** A count_tokens request: the same body without {@code max_tokens}. */
    static MessagesRequest forCount(ObjectNode body) {
        return read(body, false);
    }

    /**
     * {@code thinking.display} (enabled or adaptive thinking): "summarized" (Anthropic's default; the
     * thinking here is the model's own, never summarized) or "omitted" (thinking blocks come empty).
     */
    private static boolean omitsThinking(ObjectNode body) {
        if (!(Params.get(body, "thinking") instanceof ObjectNode t)) {
            return false;
        }
        String display = Params.string(t, "display");
        if (display != null && !display.equals("summarized") && !display.equals("omitted")) {
            throw ApiException.badValue("thinking.display", "'thinking.display' must be summarized or omitted");
        }
        return "omitted".equals(display);
    }

    private static final java.util.Set<String> EFFORTS = java.util.Set.of("low", "medium", "high", "xhigh", "max");

    /**
     * {@code output_config}: {@code effort} (low, medium, high, xhigh, max) is the chat route's
     * {@code reasoning_effort} (the template's variable: GPT-OSS's "Reasoning: high");
     * {@code format} ({@code {"type":"json_schema","schema":{...}}}, Anthropic's structured
     * outputs) is chat's JSON schema {@code response_format}, as is the beta's top-level
     * {@code output_format}. Returns the field that gave a schema, or null.
     */
    private static String outputConfig(ObjectNode body, ObjectNode chat) {
        JsonNode oc = Params.get(body, "output_config");
        JsonNode format = null;
        String field = null;
        if (oc != null) {
            if (!(oc instanceof ObjectNode o)) {
                throw ApiException.badRequest("output_config", "'output_config' must be an object");
            }
            String effort = Params.string(o, "effort");
            if (effort != null) {
                if (!EFFORTS.contains(effort)) {
                    throw ApiException.badValue("output_config.effort", "'output_config.effort' must be one of low, medium, high, xhigh, max");
                }
                chat.put("reasoning_effort", effort);
            }
            format = Params.get(o, "format");
            field = "output_config.format";
        }
        JsonNode beta = Params.get(body, "output_format");
        if (beta != null) {
            if (format != null) {
                throw ApiException.badRequest("output_format", "give the JSON schema once: 'output_config.format' or 'output_format'");
            }
            format = beta;
            field = "output_format";
        }
        if (format == null) {
            return null;
        }
        if (!(format instanceof ObjectNode f)) {
            throw ApiException.badRequest(field, "'" + field + "' must be an object");
        }
        String type = Params.string(f, "type");
        if (!"json_schema".equals(type)) {
            throw ApiException.badValue(field + ".type", "'" + field + ".type' must be json_schema");
        }
        JsonNode schema = Params.get(f, "schema");
        if (schema == null) {
            throw ApiException.badRequest(field + ".schema", "'" + field + ".schema' is required");
        }
        ObjectNode rf = chat.putObject("response_format").put("type", "json_schema");
        rf.putObject("json_schema").put("name", "output").put("strict", true).set("schema", schema);
        return field;
    }

    private static MessagesRequest read(ObjectNode body, boolean generate) {
        for (Map.Entry<String, String> e : REFUSED.entrySet()) {
            if (Params.get(body, e.getKey()) != null) {
                throw ApiException.unsupported(e.getKey(), e.getValue());
            }
        }
        long budget = thinking(body, generate);
        boolean thinks = budget >= 0;
        boolean omitsThinking = omitsThinking(body);
        JsonNode metadata = Params.get(body, "metadata");
        if (metadata != null && !metadata.isObject()) {
            throw ApiException.badRequest("metadata", "'metadata' must be an object");
        }
        if (generate && Params.get(body, "max_tokens") == null) {
            throw ApiException.badRequest("max_tokens", "'max_tokens' is required");
        }
        ObjectNode chat = NODES.objectNode();
        for (String f : SHARED) {
            if (body.has(f)) {
                chat.set(f, body.get(f));
            }
        }
        if (!thinks) {
            chat.putObject("chat_template_kwargs").put("enable_thinking", false);
        } else if (budget != NO_BUDGET) {
            chat.put("reasoning_budget_tokens", budget);
        }
        String formatField = outputConfig(body, chat);
        if (body.has("max_tokens")) {
            chat.set("max_completion_tokens", body.get("max_tokens"));
        }
        chat.set("messages", messages(body));
        JsonNode stops = Params.get(body, "stop_sequences");
        if (stops != null) {
            chat.set("stop", stops);
        }
        JsonNode tools = Params.get(body, "tools");
        if (tools != null) {
            chat.set("tools", tools(tools));
        }
        JsonNode choice = Params.get(body, "tool_choice");
        if (choice != null) {
            chat.set("tool_choice", toolChoice(choice));
            JsonNode single = choice.get("disable_parallel_tool_use");
            if (single != null && !single.isNull()) {
                if (!single.isBoolean()) {
                    throw ApiException.badRequest("tool_choice.disable_parallel_tool_use", "'disable_parallel_tool_use' must be a boolean");
                }
                chat.put("parallel_tool_calls", !single.booleanValue());
            }
        }
        return new MessagesRequest(chat, body, formatField, omitsThinking);
    }

    /**
     * The chat parser's view of the request, its errors named as the Messages API names the fields.
     * A final assistant message is a prefill: the answer continues its text (Anthropic's API), where
     * chat would answer it with a new turn.
     */
    CompletionParser.Parsed parse(CompletionParser parser) {
        return ApiException.renaming(this::renameField, () -> parser.chat(chat, true));
    }

    /** The prompt's tokens (count_tokens): rendered and checked as for generation, but not against the limits. */
    int promptTokens(CompletionParser parser) {
        return ApiException.renaming(this::renameField, () -> parser.chatPromptTokens(chat, true)).length;
    }

    /** {@link #rename}, and the JSON schema's field as the client gave it. */
    private String renameField(String s) {
        String f = formatField == null ? "output_config.format" : formatField;
        return rename(s.replace("response_format.json_schema.schema", f + ".schema").replace("response_format.json_schema", f)
                .replace("response_format", f));
    }

    static String rename(String s) {
        if (s.equals("stop")) {
            return "stop_sequences";
        }
        return s.replace("max_completion_tokens", "max_tokens")
                .replace("'stop'", "'stop_sequences'")
                .replace("stop strings", "stop_sequences")
                .replaceAll("tools\\[(\\d+)]\\.function\\.parameters", "tools[$1].input_schema")
                .replaceAll("tools\\[(\\d+)]\\.function\\.", "tools[$1].")
                .replaceAll("/tools/(\\d+)/function/parameters", "/tools/$1/input_schema")
                .replaceAll("\\bmessages\\[\\d+]", "messages");
    }

    /** {@code system}, then the messages: a user turn's tool results become tool messages before its text. */
    private static ArrayNode messages(ObjectNode body) {
        ArrayNode out = NODES.arrayNode();
        JsonNode system = Params.get(body, "system");
        if (system != null) {
            out.addObject().put("role", "system").put("content", system.isTextual() ? system.textValue()
                    : text(system, "system", false, null, null));
        }
        JsonNode messages = Params.get(body, "messages");
        if (messages == null) {
            throw ApiException.badRequest("messages", "'messages' is required");
        }
        if (!messages.isArray() || messages.isEmpty()) {
            throw ApiException.badRequest("messages", "'messages' must be a non-empty array");
        }
        for (int i = 0; i < messages.size(); i++) {
            String where = "messages[" + i + "]";
            ObjectNode m = Params.object(messages, i, where);
            String role = Params.string(m, "role");
            if (!"user".equals(role) && !"assistant".equals(role)) {
                throw ApiException.badValue(where + ".role", where + ".role must be user or assistant (the system prompt is 'system')");
            }
            JsonNode content = Params.get(m, "content");
            if (content == null) {
                throw ApiException.badRequest(where + ".content", where + ".content is required");
            }
            if (content.isTextual()) {
                out.addObject().put("role", role).put("content", content.textValue());
                continue;
            }
            if (!content.isArray()) {
                throw ApiException.badRequest(where + ".content", where + ".content must be a string or an array of content blocks");
            }
            if (role.equals("assistant")) {
                ArrayNode calls = NODES.arrayNode();
                StringBuilder thinking = new StringBuilder();
                String text = text(content, where + ".content", true, calls, thinking);
                ObjectNode msg = out.addObject().put("role", "assistant");
                if (!thinking.isEmpty()) {
                    msg.put("reasoning_content", thinking.toString()); // the templates that show earlier reasoning render it
                }
                if (calls.isEmpty()) {
                    msg.put("content", text);
                } else {
                    if (text.isEmpty()) {
                        msg.putNull("content");
                    } else {
                        msg.put("content", text);
                    }
                    msg.set("tool_calls", calls);
                }
            } else {
                ArrayNode results = NODES.arrayNode();
                String text = text(content, where + ".content", false, results, null);
                out.addAll(results);
                if (!text.isEmpty() || results.isEmpty()) {
                    out.addObject().put("role", "user").put("content", text);
                }
            }
        }
        return out;
    }

    /**
     * The text of content blocks; an assistant's {@code thinking} blocks to {@code thinking} (its
     * reasoning); an assistant's {@code tool_use} blocks go to {@code extra} as chat
     * tool calls, a user's {@code tool_result} blocks as tool messages (null {@code extra}: text only).
     */
    private static String text(JsonNode blocks, String where, boolean assistant, ArrayNode extra, StringBuilder thinking) {
        if (!blocks.isArray()) {
            throw ApiException.badRequest(where, where + " must be a string or an array of text blocks");
        }
        StringBuilder sb = new StringBuilder();
        for (int j = 0; j < blocks.size(); j++) {
            String at = where + "[" + j + "]";
            ObjectNode b = Params.object(blocks, j, at);
            String type = Params.string(b, "type");
            if ("text".equals(type)) {
                CompletionParser.joinPart(sb, Params.required(b, "text", at));
            } else if ("tool_use".equals(type) && assistant && extra != null) {
                JsonNode input = Params.get(b, "input");
                if (input != null && !input.isObject()) {
                    throw ApiException.badRequest(at + ".input", at + ".input must be an object");
                }
                ObjectNode call = extra.addObject();
                call.put("id", Params.required(b, "id", at));
                call.put("type", "function");
                call.putObject("function").put("name", Params.required(b, "name", at))
                        .put("arguments", input == null ? "{}" : input.toString());
            } else if ("tool_result".equals(type) && !assistant && extra != null) {
                JsonNode c = Params.get(b, "content");
                String result = c == null ? "" : c.isTextual() ? c.textValue() : text(c, at + ".content", false, null, null);
                Boolean error = Params.bool(b, "is_error");
                extra.addObject().put("role", "tool").put("tool_call_id", Params.required(b, "tool_use_id", at))
                        .put("content", error != null && error ? "Error: " + result : result);
            } else if ("thinking".equals(type) && assistant && thinking != null) {
                CompletionParser.joinPart(thinking, Params.required(b, "thinking", at)); // the turn's reasoning
            } else if ("redacted_thinking".equals(type) && assistant) {
                continue; // encrypted by Anthropic: nothing to read
            } else if (type != null && List.of("image", "document", "search_result", "thinking", "redacted_thinking",
                    "server_tool_use", "web_search_tool_result", "container_upload").contains(type)) {
                throw ApiException.unsupported(at + ".type", at + ": '" + type + "' blocks are not supported; the served model reads "
                        + "and writes text");
            } else {
                throw ApiException.badValue(at + ".type", at + ".type must be " + (extra == null ? "text"
                        : assistant ? "text or tool_use" : "text or tool_result"));
            }
        }
        return sb.toString();
    }

    /** Client tools ({@code name}, {@code description}, {@code input_schema}) as chat tools; server tools are refused. */
    private static ArrayNode tools(JsonNode tools) {
        return ToolMessages.chatTools(tools, (t, where) -> {
            String type = Params.string(t, "type");
            if (type != null && !type.equals("custom")) {
                throw ApiException.unsupported(where + ".type", where + ": only client tools are supported, not '"
                        + CompletionParser.abbreviate(type) + "' (no server tools run here)");
            }
            ObjectNode fn = NODES.objectNode();
            fn.set("name", t.get("name"));
            if (t.has("description")) {
                fn.set("description", t.get("description"));
            }
            JsonNode schema = t.get("input_schema");
            if (schema == null || schema.isNull()) {
                throw ApiException.badRequest(where + ".input_schema", where + ".input_schema is required");
            }
            fn.set("parameters", schema);
            return fn;
        });
    }

    private static JsonNode toolChoice(JsonNode choice) {
        if (choice instanceof ObjectNode o) {
            switch (o.path("type").asText("")) {
                case "auto" -> {
                    return NODES.textNode("auto");
                }
                case "any" -> {
                    return NODES.textNode("required");
                }
                case "none" -> {
                    return NODES.textNode("none");
                }
                case "tool" -> {
                    if (o.path("name").isTextual()) {
                        ObjectNode out = NODES.objectNode().put("type", "function");
                        out.putObject("function").put("name", o.get("name").textValue());
                        return out;
                    }
                }
                default -> { }
            }
        }
        throw ApiException.badValue("tool_choice", "'tool_choice' must be {\"type\":\"auto\"}, {\"type\":\"any\"}, {\"type\":\"none\"} "
                + "or {\"type\":\"tool\",\"name\":...}");
    }
}
