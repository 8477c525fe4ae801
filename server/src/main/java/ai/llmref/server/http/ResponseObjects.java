package ai.llmref.server.http;

import ai.llmref.server.engine.FinishReason;
import ai.llmref.server.engine.GenerationEvent;
import ai.llmref.server.engine.TokenLogprob;
import ai.llmref.server.structured.ToolCalls;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.OutputStream;
import java.util.List;
import java.util.function.BiConsumer;

/**
 * The Responses API's shapes: the response object, its output items (a reasoning model's
 * {@code reasoning} item with one {@code reasoning_text} part, an assistant message with one
 * {@code output_text} part, then one {@code function_call} item per tool call) and, when
 * streaming, its typed server-sent events ({@code event: <type>} and a {@code data:} object with
 * the same {@code type} and a {@code sequence_number}).
 */
final class ResponseObjects {
    private final Json json;
    private final ResponsesRequest request;
    private final String id;
    private final long created;
    private final String model;
    /** Writes a chat-shaped logprobs entry list ({token, logprob, bytes, top_logprobs}). */
    private final BiConsumer<ArrayNode, List<TokenLogprob>> logprobs;

    ResponseObjects(Json json, ResponsesRequest request, String id, long created, String model,
            BiConsumer<ArrayNode, List<TokenLogprob>> logprobs) {
        this.json = json;
        this.request = request;
        this.id = id;
        this.created = created;
        this.model = model;
        this.logprobs = logprobs;
    }

    String messageId() {
        return "msg_" + id.substring("resp_".length());
    }

    String reasoningId() {
        return "rs_" + id.substring("resp_".length());
    }

    /**
     * The reasoning item: its one reasoning_text part (none while in progress), no summary, and
     * when asked ({@code include}) the same text as its {@code encrypted_content}.
     */
    ObjectNode reasoningItem(String status, String text) {
        ObjectNode r = json.object();
        r.put("id", reasoningId());
        r.put("type", "reasoning");
        r.putArray("summary");
        ArrayNode content = r.putArray("content");
        if (text != null) {
            content.add(reasoningPart(text));
            if (request.encryptedReasoning()) {
                r.put("encrypted_content", ResponsesRequest.encrypt(text));
            }
        }
        r.put("status", status);
        return r;
    }

    private ObjectNode reasoningPart(String text) {
        return json.object().put("type", "reasoning_text").put("text", text);
    }

    static String status(FinishReason reason) {
        return reason == FinishReason.LENGTH ? "incomplete" : "completed";
    }

    /** The response object; {@code output} and {@code usage} are filled in when it has finished. */
    ObjectNode response(String status, ArrayNode output, GenerationEvent.Done done) {
        return response(status, output, done, 0);
    }

    /** As above; {@code reasoningTokens}: the output tokens a reasoning model's reasoning took. */
    ObjectNode response(String status, ArrayNode output, GenerationEvent.Done done, int reasoningTokens) {
        ObjectNode r = json.object();
        ObjectNode q = request.request();
        r.put("id", id);
        r.put("object", "response");
        r.put("created_at", created);
        r.put("status", status);
        if (done != null && status.equals("completed")) {
            r.put("completed_at", System.currentTimeMillis() / 1000);
        } else {
            r.putNull("completed_at");
        }
        r.put("background", false);
        r.putNull("error");
        if (status.equals("incomplete")) {
            r.putObject("incomplete_details").put("reason", "max_output_tokens");
        } else {
            r.putNull("incomplete_details");
        }
        r.set("instructions", value(q, "instructions"));
        r.set("max_output_tokens", value(q, "max_output_tokens"));
        r.putNull("max_tool_calls");
        r.put("model", model);
        r.set("output", output == null ? json.object().arrayNode() : output);
        r.put("parallel_tool_calls", !q.path("parallel_tool_calls").isBoolean() || q.get("parallel_tool_calls").booleanValue());
        r.putNull("previous_response_id");
        ObjectNode reasoning = r.putObject("reasoning");
        JsonNode asked = q.path("reasoning");
        reasoning.set("effort", asked.path("effort").isTextual() ? asked.get("effort") : json.object().nullNode());
        reasoning.set("summary", asked.path("summary").isTextual() ? asked.get("summary") : json.object().nullNode());
        r.put("service_tier", "default");
        r.put("store", false);
        r.put("temperature", q.path("temperature").isNumber() ? q.get("temperature").doubleValue() : 1.0);
        JsonNode text = q.get("text");
        if (text instanceof ObjectNode t && t.get("format") instanceof ObjectNode) {
            r.set("text", t);
        } else {
            r.putObject("text").putObject("format").put("type", "text");
        }
        JsonNode choice = value(q, "tool_choice");
        r.set("tool_choice", choice.isNull() ? json.object().textNode("auto") : choice);
        JsonNode tools = value(q, "tools");
        r.set("tools", tools.isNull() ? json.object().arrayNode() : tools);
        r.put("top_logprobs", q.path("top_logprobs").asInt(0));
        r.put("top_p", q.path("top_p").isNumber() ? q.get("top_p").doubleValue() : 1.0);
        r.put("truncation", "disabled");
        if (done == null) {
            r.putNull("usage");
        } else {
            ObjectNode u = r.putObject("usage");
            u.put("input_tokens", done.promptTokens());
            // written: the prompt tokens decoded into the slot's cache, where a later request with the same prefix reuses them
            u.putObject("input_tokens_details").put("cached_tokens", done.cachedPromptTokens())
                    .put("cache_write_tokens", done.promptTokens() - done.cachedPromptTokens());
            u.put("output_tokens", done.completionTokens());
            u.putObject("output_tokens_details").put("reasoning_tokens", reasoningTokens);
            u.put("total_tokens", done.promptTokens() + done.completionTokens());
        }
        r.set("user", value(q, "user"));
        JsonNode metadata = q.get("metadata");
        r.set("metadata", metadata instanceof ObjectNode ? metadata : json.object());
        return r;
    }

    private JsonNode value(ObjectNode q, String field) {
        JsonNode v = q.get(field);
        return v == null ? json.object().nullNode() : v;
    }

    /** The assistant message item with its one output_text part. */
    ObjectNode message(String status, String text, List<TokenLogprob> tokens) {
        ObjectNode m = json.object();
        m.put("id", messageId());
        m.put("type", "message");
        m.put("status", status);
        m.put("role", "assistant");
        ArrayNode content = m.putArray("content");
        if (text != null) {
            content.add(textPart(text, tokens));
        }
        return m;
    }

    ObjectNode textPart(String text, List<TokenLogprob> tokens) {
        ObjectNode part = json.object();
        part.put("type", "output_text");
        part.put("text", text);
        part.putArray("annotations");
        logprobs.accept(part.putArray("logprobs"), request.logprobs() ? tokens : List.of());
        return part;
    }

    /** A function_call item's id, from its call's. */
    private static String itemId(String callId) {
        return "fc_" + callId.substring(callId.indexOf('_') + 1);
    }

    ObjectNode functionCall(ToolCalls.Call call, String status) {
        ObjectNode f = json.object();
        f.put("id", itemId(call.id()));
        f.put("type", "function_call");
        f.put("status", status);
        f.put("call_id", call.id());
        f.put("name", call.name());
        f.put("arguments", status.equals("in_progress") ? "" : call.arguments());
        return f;
    }

    /** The output items of a finished reply: its reasoning, a message unless the reply is only tool calls, then the calls. */
    ArrayNode output(OpenAiService.Reply reply, String status, List<TokenLogprob> tokens) {
        ArrayNode out = json.object().arrayNode();
        if (reply.reasoning() != null) {
            out.add(reasoningItem(status, reply.reasoning()));
        }
        if (reply.calls().isEmpty() || reply.content() != null && !reply.content().isEmpty()) {
            out.add(message(status, reply.content() == null ? "" : reply.content(), tokens));
        }
        for (ToolCalls.Call c : reply.calls()) {
            out.add(functionCall(c, c.complete() ? "completed" : "incomplete"));
        }
        return out;
    }

    /** Server-sent events of one streamed response, numbered in order. */
    final class Events implements TypedStream {
        private final OutputStream out;
        private int sequence;
        /** The function_call items' ids, by output index. */
        private final java.util.Map<Integer, String> itemIds = new java.util.HashMap<>();
        /** The message's output index: 1 after a reasoning item. */
        private int messageIndex;

        Events(OutputStream out) {
            this.out = out;
        }

        /** Adds the event to the response's buffer; flushed when {@code flush}. */
        void send(String type, ObjectNode data, boolean flush) {
            ObjectNode e = json.object();
            e.put("type", type);
            e.put("sequence_number", sequence++);
            e.setAll(data);
            TypedStream.write(out, type, json.write(e), flush);
        }

        void send(String type, ObjectNode data) {
            send(type, data, true);
        }

        private ObjectNode item(int index, ObjectNode item) {
            ObjectNode d = json.object();
            d.put("output_index", index);
            d.set("item", item);
            return d;
        }

        /** The message's one text part. */
        private ObjectNode part() {
            return part(messageId(), messageIndex);
        }

        private ObjectNode part(String itemId, int index) {
            ObjectNode d = json.object();
            d.put("item_id", itemId);
            d.put("output_index", index);
            d.put("content_index", 0);
            return d;
        }

        private ObjectNode withResponse(ObjectNode response) {
            ObjectNode d = json.object();
            d.set("response", response);
            return d;
        }

        @Override
        public void start() {
            send("response.created", withResponse(response("in_progress", null, null)), false);
            send("response.in_progress", withResponse(response("in_progress", null, null)));
        }

        @Override
        public void openReasoning() {
            messageIndex = 1;
            send("response.output_item.added", item(0, reasoningItem("in_progress", null)));
            ObjectNode part = part(reasoningId(), 0);
            part.set("part", reasoningPart(""));
            send("response.content_part.added", part);
        }

        @Override
        public void reasoning(String piece) {
            send("response.reasoning_text.delta", part(reasoningId(), 0).put("delta", piece));
        }

        @Override
        public void closeReasoning(String text) {
            send("response.reasoning_text.done", part(reasoningId(), 0).put("text", text));
            ObjectNode part = part(reasoningId(), 0);
            part.set("part", reasoningPart(text));
            send("response.content_part.done", part);
            send("response.output_item.done", item(0, reasoningItem("completed", text)));
        }

        @Override
        public void openText() {
            send("response.output_item.added", item(messageIndex, message("in_progress", null, List.of())));
            ObjectNode part = part();
            part.set("part", textPart("", List.of()));
            send("response.content_part.added", part);
        }

        @Override
        public void text(String piece, List<TokenLogprob> tokens) {
            ObjectNode d = part().put("delta", piece);
            logprobs.accept(d.putArray("logprobs"), request.logprobs() ? tokens : List.of());
            send("response.output_text.delta", d);
        }

        @Override
        public void closeText(String text, List<TokenLogprob> tokens, FinishReason reason) {
            ObjectNode d = part().put("text", text);
            d.set("logprobs", textPart(text, tokens).get("logprobs"));
            send("response.output_text.done", d);
            ObjectNode part = part();
            part.set("part", textPart(text, tokens));
            send("response.content_part.done", part);
            send("response.output_item.done", item(messageIndex, message(status(reason), text, tokens)));
        }

        @Override
        public void callStart(int index, String id, String name) {
            itemIds.put(index, itemId(id));
            send("response.output_item.added", item(index, functionCall(new ToolCalls.Call(id, name, ""), "in_progress")));
        }

        @Override
        public void callArguments(int index, String delta) {
            send("response.function_call_arguments.delta", json.object().put("item_id", itemIds.get(index)).put("output_index", index)
                    .put("delta", delta));
        }

        @Override
        public void callEnd(int index, ToolCalls.Call call) {
            ObjectNode item = functionCall(call, call.complete() ? "completed" : "incomplete");
            send("response.function_call_arguments.done", json.object().put("item_id", itemIds.get(index)).put("output_index", index)
                    .put("name", call.name()).put("arguments", call.arguments()));
            send("response.output_item.done", item(index, item));
        }

        @Override
        public void finish(OpenAiService.Reply reply, List<TokenLogprob> tokens, GenerationEvent.Done done) {
            String status = status(done.reason());
            send(status.equals("completed") ? "response.completed" : "response.incomplete",
                    withResponse(response(status, output(reply, status, tokens), done, reply.reasoningTokens())), false);
        }

        /** A failure after the 200: an {@code error} event, then {@code response.failed}. */
        @Override
        public void failed(ApiException e) {
            ObjectNode err = json.object();
            err.put("code", e.code());
            err.put("message", e.getMessage());
            if (e.param() == null) {
                err.putNull("param");
            } else {
                err.put("param", e.param());
            }
            send("error", err);
            ObjectNode r = response("failed", null, null);
            r.putObject("error").put("code", e.code()).put("message", e.getMessage());
            send("response.failed", withResponse(r));
        }
    }

    Events events(OutputStream out) {
        return new Events(out);
    }
}
