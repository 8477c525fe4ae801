package ai.llmref.server.http;

import ai.llmref.server.engine.FinishReason;
import ai.llmref.server.engine.GenerationEvent;
import ai.llmref.server.engine.TokenLogprob;
import ai.llmref.server.structured.ToolCalls;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * llama-server's {@code /infill} and {@code /completion} answers: a result object
 * ({@code content}, {@code tokens}, {@code stop}, {@code stop_type}, {@code tokens_predicted},
 * {@code tokens_evaluated}, {@code tokens_cached}, {@code truncated}, {@code timings}, and
 * {@code completion_probabilities} when asked) and, streamed, {@code data:} lines of
 * {@code {"content", "stop": false}} pieces (each with its tokens' probabilities when asked), then
 * the result with {@code content: ""} and {@code stop: true}; no {@code [DONE]}.
 */
final class InfillObjects {
    private final Json json;
    private final String model;
    private final int promptTokens;
    private final boolean truncated;
    private final List<String> fields;
    private final int probs;
    private final boolean returnTokens;

    /**
     * @param fields       {@code response_fields}: the result's fields answered (empty: all)
     * @param probs        {@code n_probs}: alternatives listed per token in {@code completion_probabilities} (0: none)
     * @param returnTokens {@code return_tokens}: the generated token ids in {@code tokens}
     */
    InfillObjects(Json json, String model, int promptTokens, boolean truncated, List<String> fields, int probs, boolean returnTokens) {
        this.json = json;
        this.model = model;
        this.promptTokens = promptTokens;
        this.truncated = truncated;
        this.fields = fields;
        this.probs = probs;
        this.returnTokens = returnTokens;
    }

    /** {@code tokens}: the ids of these tokens when asked, else empty (as llama-server answers). */
    private void tokens(ObjectNode o, List<TokenLogprob> tokens) {
        com.fasterxml.jackson.databind.node.ArrayNode ids = o.putArray("tokens");
        if (returnTokens) {
            tokens.forEach(t -> ids.add(t.token()));
        }
    }

    /** llama-server's {@code completion_probabilities}: per token its id, text, log-probability, bytes and the most likely tokens. */
    private void probabilities(ObjectNode o, List<TokenLogprob> tokens) {
        if (probs <= 0 || tokens.isEmpty()) {
            return;
        }
        com.fasterxml.jackson.databind.node.ArrayNode out = o.putArray("completion_probabilities");
        for (TokenLogprob t : tokens) {
            ObjectNode p = out.addObject();
            p.put("id", t.token());
            p.put("token", t.text());
            p.put("logprob", OpenAiService.finite(t.logprob()));
            OpenAiService.bytes(p.putArray("bytes"), t.bytes());
            com.fasterxml.jackson.databind.node.ArrayNode top = p.putArray("top_logprobs");
            for (TokenLogprob.Alternative a : t.top()) {
                ObjectNode alt = top.addObject();
                alt.put("id", a.token());
                alt.put("token", a.text());
                alt.put("logprob", OpenAiService.finite(a.logprob()));
                OpenAiService.bytes(alt.putArray("bytes"), a.bytes());
            }
        }
    }


    /**
     * The whole result; streamed, its last line (with {@code content} ""). With
     * {@code response_fields}, as llama-server answers them: an object of those paths that the
     * result has, each path its key ({@code "timings/prompt_n": 12}).
     */
    ObjectNode result(String content, GenerationEvent.Done done, List<TokenLogprob> tokens) {
        ObjectNode whole = wholeResult(content, done, tokens);
        if (fields.isEmpty()) {
            return whole;
        }
        ObjectNode o = json.object();
        for (String path : fields) {
            com.fasterxml.jackson.databind.JsonNode at = whole;
            for (String key : path.split("/", -1)) {
                at = at != null && at.isObject() ? at.get(key) : null;
            }
            if (at != null) {
                o.set(path, at);
            }
        }
        return o;
    }

    private ObjectNode wholeResult(String content, GenerationEvent.Done done, List<TokenLogprob> tokens) {
        ObjectNode o = json.object();
        o.put("index", 0);
        o.put("content", content);
        tokens(o, tokens);
        o.put("id_slot", -1);
        o.put("stop", true);
        o.put("model", model);
        o.put("tokens_predicted", done.completionTokens());
        o.put("tokens_evaluated", done.promptTokens());
        o.put("tokens_cached", done.cachedPromptTokens());
        o.put("truncated", truncated);
        o.put("has_new_line", content.contains("\n"));
        o.put("stop_type", done.reason() == FinishReason.LENGTH ? "limit" : done.stopSequence() != null ? "word" : "eos");
        o.put("stopping_word", done.stopSequence() == null ? "" : done.stopSequence());
        GenerationEvent.Timings t = done.timings();
        ObjectNode tm = o.putObject("timings");
        int prefilled = done.promptTokens() - done.cachedPromptTokens();
        double promptMs = t.prefillNanos() / 1e6;
        double predictedMs = t.decodeNanos() / 1e6;
        tm.put("prompt_n", prefilled);
        tm.put("prompt_ms", promptMs);
        tm.put("prompt_per_token_ms", prefilled == 0 ? 0 : promptMs / prefilled);
        tm.put("prompt_per_second", promptMs == 0 ? 0 : prefilled / (promptMs / 1e3));
        tm.put("predicted_n", done.completionTokens());
        tm.put("predicted_ms", predictedMs);
        tm.put("predicted_per_token_ms", done.completionTokens() == 0 ? 0 : predictedMs / done.completionTokens());
        tm.put("predicted_per_second", predictedMs == 0 ? 0 : done.completionTokens() / (predictedMs / 1e3));
        probabilities(o, tokens);
        return o;
    }

    TypedStream events(OutputStream out) {
        return new Events(out);
    }

    private final class Events implements TypedStream {
        private final OutputStream out;
        private int pieces;

        Events(OutputStream out) {
            this.out = out;
        }

        private void line(ObjectNode o, boolean flush) {
            try {
                out.write("data: ".getBytes(StandardCharsets.US_ASCII));
                out.write(json.write(o));
                out.write("\n\n".getBytes(StandardCharsets.US_ASCII));
                if (flush) {
                    out.flush();
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        @Override
        public void start() {}

        @Override
        public void openReasoning() {}

        @Override
        public void reasoning(String piece) {}

        @Override
        public void closeReasoning(String text) {}

        @Override
        public void openText() {}

        @Override
        public void text(String piece, List<TokenLogprob> logprobs) {
            if (piece.isEmpty()) {
                return;
            }
            ObjectNode o = json.object();
            o.put("index", 0);
            o.put("content", piece);
            tokens(o, logprobs);
            o.put("stop", false);
            o.put("id_slot", -1);
            o.put("tokens_predicted", ++pieces);
            o.put("tokens_evaluated", promptTokens);
            probabilities(o, logprobs);
            line(o, true);
        }

        @Override
        public void closeText(String text, List<TokenLogprob> tokens, FinishReason reason) {}

        @Override
        public void callStart(int index, String id, String name) {}

        @Override
        public void callArguments(int index, String delta) {}

        @Override
        public void callEnd(int index, ToolCalls.Call call) {}

        @Override
        public void finish(OpenAiService.Reply reply, List<TokenLogprob> tokens, GenerationEvent.Done done) {
            line(result("", done, List.of()), false);
        }

        @Override
        public void failed(ApiException e) {
            ObjectNode o = json.object();
            ObjectNode err = o.putObject("error");
            err.put("code", e.status());
            err.put("message", e.getMessage());
            err.put("type", e.type());
            line(o, true);
        }
    }
}
