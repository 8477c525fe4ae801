package ai.llmref.server.http;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The {@code tool_calls} of an assistant message in a request, as chat templates expect them:
 * {@code {id, type, function: {name, arguments}}} with the arguments as a JSON object (OpenAI
 * sends a JSON string; templates write {@code arguments | tojson}, as llama.cpp passes them).
 */
final class ToolMessages {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private ToolMessages() {}

    /**
     * Another API's {@code tools} as chat tools ({@code {"type":"function","function":{...}}}):
     * {@code function} reads one tool (named {@code tools[i]} in errors) into the chat function
     * object, or refuses it.
     */
    static ArrayNode chatTools(JsonNode tools, java.util.function.BiFunction<ObjectNode, String, ObjectNode> function) {
        if (!tools.isArray()) {
            throw ApiException.badRequest("tools", "'tools' must be an array");
        }
        ArrayNode out = MAPPER.createArrayNode();
        for (int i = 0; i < tools.size(); i++) {
            String where = "tools[" + i + "]";
            out.addObject().put("type", "function").set("function", function.apply(Params.object(tools, i, where), where));
        }
        return out;
    }

    /** The message's tool calls, or null when it has none. */
    static List<Map<String, Object>> toolCalls(ObjectNode message, String where) {
        JsonNode tc = Params.get(message, "tool_calls");
        if (tc == null || tc.isArray() && tc.isEmpty()) {
            return null;
        }
        if (!tc.isArray()) {
            throw ApiException.badRequest(where + ".tool_calls", where + ".tool_calls must be an array");
        }
        List<Map<String, Object>> out = new ArrayList<>();
        for (int i = 0; i < tc.size(); i++) {
            String at = where + ".tool_calls[" + i + "]";
            JsonNode call = tc.get(i);
            JsonNode fn = call.path("function");
            if (!call.isObject() || !fn.path("name").isTextual()) {
                throw ApiException.badRequest(at, at + " must be {\"id\",\"type\":\"function\",\"function\":{\"name\",\"arguments\"}}");
            }
            JsonNode args = fn.path("arguments");
            Object arguments;
            if (args.isTextual()) {
                try {
                    JsonNode parsed = MAPPER.readTree(args.textValue().isBlank() ? "{}" : args.textValue());
                    arguments = MAPPER.convertValue(parsed, Object.class);
                } catch (JsonProcessingException e) {
                    throw ApiException.badValue(at + ".function.arguments", at + ".function.arguments is not valid JSON");
                }
            } else if (args.isObject()) {
                arguments = MAPPER.convertValue(args, Object.class);
            } else if (args.isMissingNode() || args.isNull()) {
                arguments = new LinkedHashMap<String, Object>();
            } else {
                throw ApiException.badRequest(at + ".function.arguments", at + ".function.arguments must be a JSON string");
            }
            Map<String, Object> function = new LinkedHashMap<>();
            function.put("name", fn.get("name").textValue());
            function.put("arguments", arguments);
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("id", call.path("id").asText(""));
            m.put("type", "function");
            m.put("function", function);
            out.add(m);
        }
        return out;
    }
}
