package ai.llmref.server.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A {@code POST /v1/responses} body (OpenAI's Responses API) read as the chat request it amounts
 * to. The server keeps no state: a request carries its whole conversation in {@code input}
 * (messages, the model's earlier {@code function_call} items and the client's
 * {@code function_call_output} items), so anything that needs stored responses
 * ({@code previous_response_id}, {@code conversation}, {@code store: true}, {@code background}) is a
 * 400 naming the field, as is every input the text model cannot read (images, files, audio) and
 * every hosted tool. The chat body then goes through {@link CompletionParser#chat}, whose errors
 * are renamed to the Responses API's fields.
 *
 * @param chat    the equivalent {@code /v1/chat/completions} body
 * @param request the client's body, for the fields a response repeats
 * @param logprobs the output text carries log-probabilities ({@code include})
 * @param encryptedReasoning reasoning items carry {@code encrypted_content} ({@code include})
 */
record ResponsesRequest(ObjectNode chat, ObjectNode request, boolean logprobs, boolean encryptedReasoning) {
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;
    static final String LOGPROBS_INCLUDE = "message.output_text.logprobs";
    static final String ENCRYPTED_REASONING_INCLUDE = "reasoning.encrypted_content";
    /**
     * What this server's {@code encrypted_content} starts with: the reasoning text follows,
     * base64url-encoded. Not encrypted (the item's {@code content} shows the same text); it lets
     * a stateless client (Codex, the Agents SDK with {@code store: false}) send a turn's reasoning
     * back in the field it keeps for that.
     */
    static final String ENCRYPTED_PREFIX = "llmref.v1.";

    /** Request fields that mean the same in both APIs, and llama.cpp's sampling extensions. */
    private static final List<String> SHARED = java.util.stream.Stream.concat(java.util.stream.Stream.of("model", "stream", "temperature", "top_p", "user", "top_k", "min_p", "seed",
            "presence_penalty", "frequency_penalty", "logit_bias", "stop", "parallel_tool_calls"), CompletionParser.LLAMA_SAMPLING_FIELDS.stream()).toList();

    /** Chat Completions fields, refused with the Responses API's name for them. */
    private static final Map<String, String> CHAT_ONLY = Map.of(
            "messages", "'messages' is a Chat Completions field; the Responses API takes 'input' (and 'instructions')",
            "max_tokens", "'max_tokens' is a Chat Completions field; the Responses API takes 'max_output_tokens'",
            "max_completion_tokens", "'max_completion_tokens' is a Chat Completions field; the Responses API takes 'max_output_tokens'",
            "response_format", "'response_format' is a Chat Completions field; the Responses API takes 'text.format'",
            "n", "the Responses API has one output per request ('n' is a Chat Completions field)",
            "logprobs", "the Responses API returns log-probabilities with include [\"" + LOGPROBS_INCLUDE + "\"] and 'top_logprobs'",
            "functions", "the deprecated 'functions' are not supported; use 'tools'",
            "function_call", "the deprecated 'function_call' is not supported; use 'tool_choice'");

    private static final Set<String> MESSAGE_ROLES = Set.of("user", "system", "developer", "assistant");

    static ResponsesRequest of(ObjectNode body) {
        for (Map.Entry<String, String> e : CHAT_ONLY.entrySet()) {
            if (Params.get(body, e.getKey()) != null) {
                throw ApiException.unsupported(e.getKey(), e.getValue());
            }
        }
        refuseState(body);
        ObjectNode chat = NODES.objectNode();
        for (String f : SHARED) {
            if (body.has(f)) {
                chat.set(f, body.get(f));
            }
        }
        if (!thinks(body)) {
            chat.putObject("chat_template_kwargs").put("enable_thinking", false);
        }
        if (body.path("reasoning").path("effort").isTextual()) { // the chat route's reasoning_effort, as llama-server passes it
            chat.set("reasoning_effort", body.get("reasoning").get("effort"));
        }
        Params.bool(body, "parallel_tool_calls");
        Params.string(body, "instructions");
        metadata(body);
        chat.set("messages", messages(body));
        if (body.has("max_output_tokens")) {
            chat.set("max_completion_tokens", body.get("max_output_tokens"));
        }
        JsonNode tools = Params.get(body, "tools");
        if (tools != null) {
            chat.set("tools", tools(tools));
        }
        JsonNode choice = Params.get(body, "tool_choice");
        if (choice != null) {
            chat.set("tool_choice", toolChoice(choice));
        }
        JsonNode format = format(body);
        if (format != null) {
            chat.set("response_format", format);
        }
        Set<String> include = include(body);
        boolean logprobs = include.contains(LOGPROBS_INCLUDE);
        Long top = Params.integer(body, "top_logprobs", 0, ai.llmref.server.engine.GenerationRequest.MAX_TOP_LOGPROBS);
        if (top != null && !logprobs) {
            throw ApiException.badRequest("top_logprobs", "'top_logprobs' needs include [\"" + LOGPROBS_INCLUDE + "\"]");
        }
        if (logprobs) {
            chat.put("logprobs", true);
            chat.put("top_logprobs", top == null ? 0 : top.intValue());
        }
        return new ResponsesRequest(chat, body, logprobs, include.contains(ENCRYPTED_REASONING_INCLUDE));
    }

    /** The chat parser's view of the request, its errors named as the Responses API names the fields. */
    CompletionParser.Parsed parse(CompletionParser parser) {
        return ApiException.renaming(ResponsesRequest::rename, () -> parser.chat(chat));
    }

    /** The prompt tokens the request would take ({@code /v1/responses/input_tokens}), its errors named as {@link #parse}'s. */
    int promptTokens(CompletionParser parser) {
        return ApiException.renaming(ResponsesRequest::rename, () -> parser.chatPromptTokens(chat, false)).length;
    }

    static String rename(String s) {
        return s.replace("max_completion_tokens", "max_output_tokens")
                .replace("response_format.json_schema.schema", "text.format.schema")
                .replace("response_format.json_schema", "text.format")
                .replace("response_format", "text.format")
                .replaceAll("tools\\[(\\d+)]\\.function\\.", "tools[$1].")
                .replaceAll("\\bmessages(\\[\\d+])?", "input");
    }

    /** Fields that need responses kept by the server: it keeps none. */
    private static void refuseState(ObjectNode body) {
        String stateless = "this server keeps no responses or conversations: send the whole conversation in 'input'";
        if (Params.get(body, "previous_response_id") != null) {
            throw ApiException.unsupported("previous_response_id", "'previous_response_id' is not supported; " + stateless);
        }
        if (Params.get(body, "conversation") != null) {
            throw ApiException.unsupported("conversation", "'conversation' is not supported; " + stateless);
        }
        Boolean store = Params.bool(body, "store");
        if (store != null && store) {
            throw ApiException.unsupported("store", "'store': true is not supported; " + stateless + " (leave 'store' out or set it false)");
        }
        Boolean background = Params.bool(body, "background");
        if (background != null && background) {
            throw ApiException.unsupported("background", "'background': true is not supported; stream the response instead");
        }
        if (Params.get(body, "prompt") != null) {
            throw ApiException.unsupported("prompt", "stored prompt templates ('prompt') are not supported; send 'instructions' and 'input'");
        }
        if (Params.get(body, "max_tool_calls") != null) {
            throw ApiException.unsupported("max_tool_calls", "'max_tool_calls' is not supported");
        }
        String truncation = Params.string(body, "truncation");
        if (truncation != null && !truncation.equals("disabled")) {
            throw ApiException.unsupported("truncation", "only 'truncation': \"disabled\" is supported: an input that does not fit "
                    + "the context is refused, never cut");
        }
    }

    private static final Set<String> EFFORTS = Set.of("none", "minimal", "low", "medium", "high", "xhigh");
    private static final Set<String> SUMMARIES = Set.of("auto", "concise", "detailed");

    /**
     * {@code reasoning}: whether a reasoning model is asked to think ({@code enable_thinking}):
     * yes unless {@code effort} is "none" or "minimal". The effort also goes to the chat route as
     * its {@code reasoning_effort} (a template that reads it, GPT-OSS's, tells the others apart); a
     * summary is accepted and none is written (the reasoning item carries the reasoning itself).
     */
    private static boolean thinks(ObjectNode body) {
        JsonNode reasoning = Params.get(body, "reasoning");
        if (reasoning == null) {
            return true;
        }
        if (!(reasoning instanceof ObjectNode r)) {
            throw ApiException.badRequest("reasoning", "'reasoning' must be an object");
        }
        String effort = Params.string(r, "effort");
        if (effort != null && !EFFORTS.contains(effort)) {
            throw ApiException.badValue("reasoning.effort", "'reasoning.effort' must be one of none, minimal, low, medium, high, xhigh");
        }
        for (String f : List.of("summary", "generate_summary")) {
            String summary = Params.string(r, f);
            if (summary != null && !SUMMARIES.contains(summary)) {
                throw ApiException.badValue("reasoning." + f, "'reasoning." + f + "' must be one of auto, concise, detailed");
            }
        }
        return effort == null || !(effort.equals("none") || effort.equals("minimal"));
    }

    private static void metadata(ObjectNode body) {
        JsonNode m = Params.get(body, "metadata");
        if (m == null) {
            return;
        }
        if (!m.isObject() || m.size() > 16) {
            throw ApiException.badRequest("metadata", "'metadata' must be an object of at most 16 string values");
        }
        for (Map.Entry<String, JsonNode> e : m.properties()) {
            if (e.getKey().length() > 64 || !e.getValue().isTextual() || e.getValue().textValue().length() > 512) {
                throw ApiException.badValue("metadata", "'metadata' keys are at most 64 characters and values strings of at most 512");
            }
        }
    }

    /** The instructions as a system message, then the input's items as chat messages. */
    private static ArrayNode messages(ObjectNode body) {
        ArrayNode out = NODES.arrayNode();
        String instructions = Params.string(body, "instructions");
        if (instructions != null) {
            out.addObject().put("role", "system").put("content", instructions);
        }
        JsonNode input = Params.get(body, "input");
        if (input == null) {
            throw ApiException.badRequest("input", "'input' is required");
        }
        if (input.isTextual()) {
            out.addObject().put("role", "user").put("content", input.textValue());
            return out;
        }
        if (!input.isArray() || input.isEmpty()) {
            throw ApiException.badRequest("input", "'input' must be a string or a non-empty array of input items");
        }
        for (int i = 0; i < input.size(); i++) {
            item(out, input.get(i), "input[" + i + "]");
        }
        return out;
    }

    /**
     * One input item. The items of one model turn (its message and its function calls, which the
     * Responses API lists separately) become one assistant message, as chat templates expect.
     */
    private static void item(ArrayNode out, JsonNode node, String where) {
        if (!(node instanceof ObjectNode item)) {
            throw ApiException.badRequest(where, where + " must be an object");
        }
        String type = Params.string(item, "type");
        ObjectNode previous = out.isEmpty() ? null : (ObjectNode) out.get(out.size() - 1);
        boolean afterAssistant = previous != null && "assistant".equals(previous.path("role").asText());
        if (type == null || type.equals("message")) {
            String role = Params.string(item, "role");
            if (role == null || !MESSAGE_ROLES.contains(role)) {
                throw ApiException.badValue(where + ".role", where + ".role must be one of user, system, developer, assistant");
            }
            String text = text(item, where, role.equals("assistant"));
            if (role.equals("assistant") && afterAssistant) {
                String before = previous.path("content").isTextual() ? previous.get("content").textValue() : "";
                previous.put("content", before + text);
            } else {
                out.addObject().put("role", role).put("content", text);
            }
            return;
        }
        switch (type) {
            case "function_call" -> {
                ObjectNode call = NODES.objectNode();
                call.put("id", Params.required(item, "call_id", where));
                call.put("type", "function");
                call.putObject("function").put("name", Params.required(item, "name", where)).put("arguments", Params.required(item, "arguments", where));
                ObjectNode assistant = afterAssistant ? previous : out.addObject().put("role", "assistant").putNull("content");
                JsonNode calls = assistant.get("tool_calls");
                (calls instanceof ArrayNode a ? a : assistant.putArray("tool_calls")).add(call);
            }
            case "function_call_output" -> {
                String id = Params.required(item, "call_id", where);
                JsonNode output = Params.get(item, "output");
                String text;
                if (output != null && output.isTextual()) {
                    text = output.textValue();
                } else if (output != null && output.isArray()) {
                    text = parts(output, where + ".output", Set.of("input_text"));
                } else {
                    throw ApiException.badRequest(where + ".output", where + ".output must be a string or an array of input_text parts");
                }
                out.addObject().put("role", "tool").put("tool_call_id", id).put("content", text);
            }
            case "reasoning" -> { // an earlier turn's reasoning, sent back: its assistant message's reasoning_content
                String text = reasoningText(item, where);
                ObjectNode assistant = afterAssistant ? previous : out.addObject().put("role", "assistant").put("content", "");
                if (!text.isEmpty()) {
                    String before = assistant.path("reasoning_content").asText("");
                    assistant.put("reasoning_content", before.isEmpty() ? text : before + "\n" + text);
                }
            }
            case "item_reference" -> throw ApiException.unsupported(where, where + ": item references need stored responses; this "
                    + "server keeps none, send the item itself");
            default -> throw ApiException.unsupported(where + ".type", where + ".type '" + CompletionParser.abbreviate(type)
                    + "' is not supported; supported: message, function_call, function_call_output");
        }
    }

    /**
     * A reasoning item's text: its reasoning_text parts joined, or without them the text in the
     * {@code encrypted_content} this server wrote (its summary is not read; another server's
     * encrypted content cannot be).
     */
    private static String reasoningText(ObjectNode item, String where) {
        JsonNode content = Params.get(item, "content");
        JsonNode encrypted = Params.get(item, "encrypted_content");
        if (encrypted != null && !encrypted.isTextual()) {
            throw ApiException.badRequest(where + ".encrypted_content", where + ".encrypted_content must be a string");
        }
        if (content == null || content.isArray() && content.isEmpty()) {
            String text = encrypted == null ? null : decrypt(encrypted.textValue(), where);
            return text == null ? "" : text;
        }
        if (!content.isArray()) {
            throw ApiException.badRequest(where + ".content", where + ".content must be an array of reasoning_text parts");
        }
        StringBuilder sb = new StringBuilder();
        for (int j = 0; j < content.size(); j++) {
            ObjectNode part = Params.object((ArrayNode) content, j, where + ".content[" + j + "]");
            CompletionParser.joinPart(sb, Params.required(part, "text", where + ".content[" + j + "]"));
        }
        return sb.toString();
    }

    /** A message's content: a string, or text parts (a model turn's output_text and refusal parts too). */
    private static String text(ObjectNode item, String where, boolean assistant) {
        JsonNode c = Params.get(item, "content");
        if (c == null) {
            throw ApiException.badRequest(where + ".content", where + ".content is required");
        }
        if (c.isTextual()) {
            return c.textValue();
        }
        if (!c.isArray()) {
            throw ApiException.badRequest(where + ".content", where + ".content must be a string or an array of content parts");
        }
        return parts(c, where + ".content", assistant ? Set.of("output_text", "input_text", "refusal") : Set.of("input_text"));
    }

    private static String parts(JsonNode parts, String where, Set<String> allowed) {
        StringBuilder sb = new StringBuilder();
        for (int j = 0; j < parts.size(); j++) {
            String at = where + "[" + j + "]";
            ObjectNode part = Params.object(parts, j, at);
            String type = Params.string(part, "type");
            if (type == null || !allowed.contains(type)) {
                if (type != null && (type.startsWith("input_") || type.equals("image_url"))) {
                    throw ApiException.unsupported(at + ".type", at + ": '" + CompletionParser.abbreviate(type)
                            + "' content is not supported; the served model reads text only");
                }
                throw ApiException.badValue(at + ".type", at + ".type must be one of " + String.join(", ", allowed.stream().sorted().toList()));
            }
            String field = type.equals("refusal") ? "refusal" : "text";
            CompletionParser.joinPart(sb, Params.required(part, field, at));
        }
        return sb.toString();
    }

    /** Function tools, from the Responses API's flat shape to the chat shape; hosted tools are refused. */
    private static ArrayNode tools(JsonNode tools) {
        return ToolMessages.chatTools(tools, (t, where) -> {
            String type = Params.string(t, "type");
            if (!"function".equals(type)) {
                throw ApiException.unsupported(where + ".type", where + ": only function tools are supported"
                        + (type == null ? "" : ", not '" + CompletionParser.abbreviate(type) + "' (no hosted tools run here)"));
            }
            ObjectNode fn = t.deepCopy();
            fn.remove("type");
            return fn;
        });
    }

    private static JsonNode toolChoice(JsonNode choice) {
        if (choice.isTextual()) {
            return choice;
        }
        if (choice instanceof ObjectNode o && "function".equals(o.path("type").asText(null)) && o.path("name").isTextual()) {
            ObjectNode out = NODES.objectNode().put("type", "function");
            out.putObject("function").put("name", o.get("name").textValue());
            return out;
        }
        throw ApiException.badValue("tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or "
                + "{\"type\":\"function\",\"name\":...}");
    }

    /** {@code text.format} as the chat API's response_format, or null for plain text. */
    private static JsonNode format(ObjectNode body) {
        JsonNode text = Params.get(body, "text");
        if (text == null) {
            return null;
        }
        if (!(text instanceof ObjectNode t)) {
            throw ApiException.badRequest("text", "'text' must be an object");
        }
        JsonNode f = Params.get(t, "format");
        if (f == null) {
            return null;
        }
        if (!(f instanceof ObjectNode format)) {
            throw ApiException.badRequest("text.format", "'text.format' must be an object");
        }
        String type = Params.string(format, "type");
        if ("json_schema".equals(type)) {
            ObjectNode schema = NODES.objectNode();
            for (String k : List.of("name", "schema", "strict", "description")) {
                if (format.has(k)) {
                    schema.set(k, format.get(k));
                }
            }
            ObjectNode out = NODES.objectNode().put("type", "json_schema");
            out.set("json_schema", schema);
            return out;
        }
        return format;
    }

    /** What {@code include} asks for: the output's log-probabilities, reasoning items' encrypted content (what this server can add). */
    private static Set<String> include(ObjectNode body) {
        JsonNode inc = Params.get(body, "include");
        if (inc == null) {
            return Set.of();
        }
        if (!inc.isArray()) {
            throw ApiException.badRequest("include", "'include' must be an array of strings");
        }
        Set<String> out = new java.util.HashSet<>();
        for (JsonNode i : inc) {
            if (!i.isTextual()) {
                throw ApiException.badRequest("include", "'include' must be an array of strings");
            }
            if (!i.textValue().equals(LOGPROBS_INCLUDE) && !i.textValue().equals(ENCRYPTED_REASONING_INCLUDE)) {
                throw ApiException.unsupported("include", "include '" + CompletionParser.abbreviate(i.textValue())
                        + "' is not supported; supported: " + LOGPROBS_INCLUDE + ", " + ENCRYPTED_REASONING_INCLUDE);
            }
            out.add(i.textValue());
        }
        return out;
    }

    /** A reasoning item's {@code encrypted_content} for its text. */
    static String encrypt(String reasoning) {
        return ENCRYPTED_PREFIX + java.util.Base64.getUrlEncoder().withoutPadding()
                .encodeToString(reasoning.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }

    /**
     * The reasoning text in an {@code encrypted_content} this server wrote; null for another's
     * (OpenAI's cannot be read: such an item adds no reasoning to the prompt).
     */
    private static String decrypt(String encrypted, String where) {
        if (!encrypted.startsWith(ENCRYPTED_PREFIX)) {
            return null;
        }
        try {
            return new String(java.util.Base64.getUrlDecoder().decode(encrypted.substring(ENCRYPTED_PREFIX.length())),
                    java.nio.charset.StandardCharsets.UTF_8);
        } catch (IllegalArgumentException e) {
            throw ApiException.badValue(where + ".encrypted_content", where + ".encrypted_content is not one this server wrote");
        }
    }
}
