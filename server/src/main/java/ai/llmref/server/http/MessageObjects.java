package ai.llmref.server.http;

import ai.llmref.server.engine.FinishReason;
import ai.llmref.server.engine.GenerationEvent;
import ai.llmref.server.engine.TokenLogprob;
import ai.llmref.server.structured.ToolCalls;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.OutputStream;
import java.util.List;

/**
 * Anthropic's Messages API shapes: the message ({@code content} blocks: a reasoning model's
 * {@code thinking} block, one {@code text} block unless the reply is only tool calls, then one
 * {@code tool_use} block per call), its
 * {@code stop_reason}, its {@code usage}, the error envelope, and the stream's events
 * ({@code message_start}, {@code ping}, {@code content_block_start} / {@code _delta} /
 * {@code _stop} per block, {@code message_delta}, {@code message_stop}; {@code error}).
 */
final class MessageObjects {
    private static final ObjectMapper MAPPER = new ObjectMapper();
    private final Json json;
    private final String id;
    private final String model;
    private final int promptTokens;
    /** {@code thinking.display} "omitted": thinking blocks come without their text (no thinking_delta). */
    private final boolean omitThinking;

    MessageObjects(Json json, String id, String model, int promptTokens, boolean omitThinking) {
        this.json = json;
        this.id = id;
        this.model = model;
        this.promptTokens = promptTokens;
        this.omitThinking = omitThinking;
    }

    /** end_turn (end of generation), stop_sequence, max_tokens, or tool_use. */
    static String stopReason(OpenAiService.Reply reply, GenerationEvent.Done d) {
        if (!reply.calls().isEmpty() && d.reason() == FinishReason.STOP) {
            return "tool_use";
        }
        if (d.reason() == FinishReason.LENGTH) {
            return "max_tokens";
        }
        return d.stopSequence() != null ? "stop_sequence" : "end_turn";
    }

    /** Anthropic's error type for a status: the SDKs pick their exception by status, the type says the same. */
    static ObjectNode error(Json json, ApiException e) {
        String type = switch (e.status()) {
            case 400 -> "invalid_request_error";
            case 401 -> "authentication_error";
            case 403 -> "permission_error";
            case 404 -> "not_found_error";
            case 413 -> "request_too_large";
            case 429 -> "rate_limit_error";
            case 503 -> "overloaded_error";
            default -> "api_error";
        };
        ObjectNode o = json.object();
        o.put("type", "error");
        // no 'param' in this envelope: the message names the field where it does not already
        String message = e.param() != null && !e.getMessage().contains(e.param()) ? e.param() + ": " + e.getMessage() : e.getMessage();
        o.putObject("error").put("type", type).put("message", message);
        return o;
    }

    /** The whole message. */
    ObjectNode message(OpenAiService.Reply reply, GenerationEvent.Done d) {
        ObjectNode m = envelope();
        ArrayNode content = m.putArray("content");
        if (reply.reasoning() != null) {
            content.add(thinkingBlock(omitThinking ? "" : reply.reasoning()));
        }
        String text = reply.content() == null ? "" : reply.content();
        if (!text.isEmpty() || reply.calls().isEmpty()) { // as streamed: a text block unless the reply is only calls
            content.add(textBlock(text));
        }
        for (ToolCalls.Call c : reply.calls()) {
            content.add(toolUse(c, true));
        }
        m.put("stop_reason", stopReason(reply, d));
        putStopSequence(m, d);
        usage(m.putObject("usage"), d);
        return m;
    }

    private ObjectNode envelope() {
        ObjectNode m = json.object();
        m.put("id", id);
        m.put("type", "message");
        m.put("role", "assistant");
        m.put("model", model);
        return m;
    }

    private static void putStopSequence(ObjectNode o, GenerationEvent.Done d) {
        if (d != null && d.stopSequence() != null) {
            o.put("stop_sequence", d.stopSequence());
        } else {
            o.putNull("stop_sequence");
        }
    }

    /** input_tokens are the prompt tokens decoded for this request; the prefix reused from the slot's cache is cache_read. */
    private static void usage(ObjectNode u, GenerationEvent.Done d) {
        u.put("input_tokens", d.promptTokens() - d.cachedPromptTokens());
        u.put("cache_creation_input_tokens", 0);
        u.put("cache_read_input_tokens", d.cachedPromptTokens());
        u.put("output_tokens", d.completionTokens());
    }

    /**
     * A thinking block. Its {@code signature} is empty: Anthropic signs its own thinking so that it
     * can check a block sent back; this server checks none (a block sent back is the turn's
     * {@code reasoning_content} for the template, text like any other message's).
     */
    private ObjectNode thinkingBlock(String thinking) {
        ObjectNode b = json.object();
        b.put("type", "thinking");
        b.put("thinking", thinking);
        b.put("signature", "");
        return b;
    }

    private ObjectNode textBlock(String text) {
        ObjectNode b = json.object();
        b.put("type", "text");
        b.put("text", text);
        return b;
    }

    /**
     * A tool call as a tool_use block; its input the parsed arguments (empty while streaming: they
     * come as JSON deltas; and for a call cut short by max_tokens, whose part is not an object).
     */
    private ObjectNode toolUse(ToolCalls.Call c, boolean withInput) {
        ObjectNode b = json.object();
        b.put("type", "tool_use");
        b.put("id", "toolu_" + c.id().substring(c.id().indexOf('_') + 1));
        b.put("name", c.name());
        JsonNode input = json.object(); // streaming: the arguments come as JSON deltas; cut short: no object to give
        if (withInput && c.complete()) {
            try {
                input = MAPPER.readTree(c.arguments());
            } catch (JsonProcessingException e) {
                throw new IllegalStateException("a parsed tool call's arguments are not JSON", e);
            }
        }
        b.set("input", input);
        return b;
    }

    TypedStream events(OutputStream out) {
        return new Events(out);
    }

    /** The stream: {@code event: <type>} and a {@code data:} object with the same {@code type}. */
    private final class Events implements TypedStream {
        private final OutputStream out;
        /** The text block's index: 1 after a thinking block. */
        private int textIndex;

        Events(OutputStream out) {
            this.out = out;
        }

        private void send(String type, ObjectNode data, boolean flush) {
            ObjectNode e = json.object();
            e.put("type", type);
            e.setAll(data);
            TypedStream.write(out, type, json.write(e), flush);
        }

        @Override
        public void start() {
            ObjectNode m = envelope();
            m.putArray("content");
            m.putNull("stop_reason");
            m.putNull("stop_sequence");
            m.putObject("usage").put("input_tokens", promptTokens).put("cache_creation_input_tokens", 0)
                    .put("cache_read_input_tokens", 0).put("output_tokens", 0);
            ObjectNode d = json.object();
            d.set("message", m);
            send("message_start", d, false);
            send("ping", json.object(), true);
        }

        @Override
        public void openReasoning() {
            textIndex = 1;
            ObjectNode d = json.object().put("index", 0);
            d.set("content_block", thinkingBlock(""));
            send("content_block_start", d, true);
        }

        @Override
        public void reasoning(String piece) {
            if (omitThinking) {
                return;
            }
            ObjectNode d = json.object().put("index", 0);
            d.putObject("delta").put("type", "thinking_delta").put("thinking", piece);
            send("content_block_delta", d, true);
        }

        @Override
        public void closeReasoning(String text) {
            send("content_block_stop", json.object().put("index", 0), true);
        }

        @Override
        public void openText() {
            ObjectNode d = json.object().put("index", textIndex);
            d.set("content_block", textBlock(""));
            send("content_block_start", d, true);
        }

        @Override
        public void text(String piece, List<TokenLogprob> logprobs) {
            if (piece.isEmpty()) {
                return;
            }
            ObjectNode d = json.object().put("index", textIndex);
            d.putObject("delta").put("type", "text_delta").put("text", piece);
            send("content_block_delta", d, true);
        }

        @Override
        public void closeText(String text, List<TokenLogprob> tokens, FinishReason reason) {
            send("content_block_stop", json.object().put("index", textIndex), true);
        }

        @Override
        public void callStart(int index, String id, String name) {
            ObjectNode start = json.object().put("index", index);
            start.set("content_block", toolUse(new ToolCalls.Call(id, name, ""), false));
            send("content_block_start", start, true);
        }

        @Override
        public void callArguments(int index, String delta) {
            ObjectNode d = json.object().put("index", index);
            d.putObject("delta").put("type", "input_json_delta").put("partial_json", delta);
            send("content_block_delta", d, true);
        }

        @Override
        public void callEnd(int index, ToolCalls.Call call) {
            send("content_block_stop", json.object().put("index", index), true);
        }

        @Override
        public void finish(OpenAiService.Reply reply, List<TokenLogprob> tokens, GenerationEvent.Done done) {
            ObjectNode d = json.object();
            ObjectNode delta = d.putObject("delta").put("stop_reason", stopReason(reply, done));
            putStopSequence(delta, done);
            usage(d.putObject("usage"), done);
            send("message_delta", d, true);
            send("message_stop", json.object(), false); // stays buffered: it leaves with the end of the body
        }

        @Override
        public void failed(ApiException e) {
            ObjectNode err = error(json, e);
            err.remove("type");
            send("error", err, true);
        }
    }
}
