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
 * What the text model or this server cannot honour (images, documents, extended thinking, server
 * tools, MCP servers) is a 400 naming the field. The chat parser's errors are renamed to this API's
 * fields.
 *
 * @param chat    the equivalent {@code /v1/chat/completions} body
 * @param request the client's body
 */
record MessagesRequest(ObjectNode chat, ObjectNode request) {
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    /** Fields that mean the same here and in chat, and llama.cpp's sampling extensions. */
    private static final List<String> SHARED = java.util.stream.Stream.concat(java.util.stream.Stream.of("model", "stream", "temperature", "top_p", "top_k", "min_p", "seed",
            "presence_penalty", "frequency_penalty", "logit_bias"), CompletionParser.LLAMA_SAMPLING_FIELDS.stream()).toList();

    private static final Map<String, String> REFUSED = Map.of(
            "container", "'container' (code execution) is not supported",
            "mcp_servers", "'mcp_servers' are not supported: no remote tools run here",
            "n", "'n' is not supported: the Messages API has one answer per request",
            "response_format", "'response_format' is a Chat Completions field; constrain the output with a forced tool instead",
            "max_completion_tokens", "'max_completion_tokens' is a Chat Completions field; the Messages API takes 'max_tokens'");

    /** A request to generate: {@code max_tokens} is required. */
    static MessagesRequest of(ObjectNode body) {
        return read(body, true);
    }

    /**
     * {@code thinking} (extended thinking): a reasoning model is asked to think
     * ({@code enable_thinking}) only with {@code {"type":"enabled","budget_tokens":N}}, N at least
     * 1024 and below max_tokens as Anthropic requires; left out or {@code disabled}, it is not, as
     * Anthropic's models do not think unless asked. The budget caps the reasoning (the chat
     * route's {@code reasoning_budget_tokens}). Returns the budget, or -1 when not asked to think.
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
        if (!"enabled".equals(type)) {
            throw ApiException.badValue("thinking.type", "'thinking.type' must be enabled or disabled");
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

    private static MessagesRequest read(ObjectNode body, boolean generate) {
        for (Map.Entry<String, String> e : REFUSED.entrySet()) {
            if (Params.get(body, e.getKey()) != null) {
                throw ApiException.unsupported(e.getKey(), e.getValue());
            }
        }
        long budget = thinking(body, generate);
        boolean thinks = budget >= 0;
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
        } else {
            chat.put("reasoning_budget_tokens", budget);
        }
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
        return new MessagesRequest(chat, body);
    }

    /**
     * The chat parser's view of the request, its errors named as the Messages API names the fields.
     * A final assistant message is a prefill: the answer continues its text (Anthropic's API), where
     * chat would answer it with a new turn.
     */
    CompletionParser.Parsed parse(CompletionParser parser) {
        return ApiException.renaming(MessagesRequest::rename, () -> parser.chat(chat, true));
    }

    /** The prompt's tokens (count_tokens): rendered and checked as for generation, but not against the limits. */
    int promptTokens(CompletionParser parser) {
        return ApiException.renaming(MessagesRequest::rename, () -> parser.chatPromptTokens(chat, true)).length;
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
