package ai.llmref.server.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Consumer;

/**
 * A model's recommended sampling, from its GGUF ({@code general.sampling.*}, which llama.cpp's
 * converter writes from the model's generation config): the request fields a request that leaves
 * them out gets, as llama-server applies them (model.sampling-defaults {@code model}). Each value
 * is checked as the request field is; one that a request could not send is left out, with a
 * warning.
 */
public final class SamplingDefaults {
    private SamplingDefaults() {}

    /** The GGUF keys (llama.cpp's {@code LLM_KV_GENERAL_SAMPLING_*}) and the request fields they stand for. */
    static final Map<String, String> KEYS;

    static {
        Map<String, String> k = new LinkedHashMap<>();
        k.put("general.sampling.sequence", "samplers");
        k.put("general.sampling.top_k", "top_k");
        k.put("general.sampling.top_p", "top_p");
        k.put("general.sampling.min_p", "min_p");
        k.put("general.sampling.xtc_probability", "xtc_probability");
        k.put("general.sampling.xtc_threshold", "xtc_threshold");
        k.put("general.sampling.temp", "temperature");
        k.put("general.sampling.penalty_last_n", "repeat_last_n");
        k.put("general.sampling.penalty_repeat", "repeat_penalty");
        k.put("general.sampling.mirostat", "mirostat");
        k.put("general.sampling.mirostat_tau", "mirostat_tau");
        k.put("general.sampling.mirostat_eta", "mirostat_eta");
        KEYS = java.util.Collections.unmodifiableMap(k);
    }

    /**
     * The request fields the model's metadata recommends, each checked as a request's would be
     * ({@code model}'s parser); the values a request could not send are reported to {@code warn}
     * and left out. Empty when the model recommends nothing.
     */
    public static ObjectNode fromMetadata(Map<String, String> metadata, PromptModel model, Consumer<String> warn) {
        JsonNodeFactory nodes = JsonNodeFactory.instance;
        ObjectNode out = nodes.objectNode();
        CompletionParser parser = new CompletionParser(model, Integer.MAX_VALUE, Integer.MAX_VALUE, 1);
        for (Map.Entry<String, String> e : KEYS.entrySet()) {
            String raw = metadata.get(e.getKey());
            if (raw == null) {
                continue;
            }
            String field = e.getValue();
            JsonNode value;
            if (field.equals("samplers")) {
                var names = nodes.arrayNode();
                for (String name : raw.split(";")) {
                    if (!name.isBlank()) {
                        names.add(name.strip());
                    }
                }
                value = names;
            } else {
                try {
                    double d = Double.parseDouble(raw.strip());
                    value = field.equals("top_k") || field.equals("repeat_last_n") || field.equals("mirostat")
                            ? nodes.numberNode(Math.round(d)) : nodes.numberNode(d);
                } catch (NumberFormatException ex) {
                    warn.accept("model metadata " + e.getKey() + " = '" + abbreviate(raw) + "' is not a number; not used");
                    continue;
                }
            }
            ObjectNode one = nodes.objectNode();
            one.set(field, value);
            try {
                parser.checkSampling(one);
            } catch (ApiException ex) {
                warn.accept("model metadata " + e.getKey() + " = '" + abbreviate(raw) + "' is not a valid '" + field + "' ("
                        + ex.getMessage() + "); not used");
                continue;
            }
            out.set(field, value);
        }
        return out;
    }

    private static String abbreviate(String s) {
        return s.length() <= 60 ? s : s.substring(0, 60) + "...";
    }
}
