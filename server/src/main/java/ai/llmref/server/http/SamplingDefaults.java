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

    /** The request fields an operator may give defaults for (model.sampling): the sampling ones. */
    public static final java.util.Set<String> FIELDS = java.util.Set.of("temperature", "top_p", "top_k", "min_p", "presence_penalty",
            "frequency_penalty", "repeat_penalty", "repeat_last_n", "typical_p", "top_n_sigma", "xtc_probability", "xtc_threshold",
            "dry_multiplier", "dry_base", "dry_allowed_length", "dry_penalty_last_n", "dry_sequence_breakers", "mirostat", "mirostat_tau",
            "mirostat_eta", "dynatemp_range", "dynatemp_exponent", "min_keep", "samplers");

    /**
     * The operator's defaults (model.sampling): a JSON object of request sampling fields, each
     * checked as a request's; empty for a blank text.
     *
     * @param model the model the fields are checked against (its vocabulary bounds {@code min_keep}),
     *              or null to check them against no model (at configuration time)
     * @throws IllegalArgumentException what is wrong, for the configuration error
     */
    public static ObjectNode operator(String json, PromptModel model) {
        ObjectNode out = JsonNodeFactory.instance.objectNode();
        if (json == null || json.isBlank()) {
            return out;
        }
        JsonNode parsed;
        try {
            parsed = new com.fasterxml.jackson.databind.ObjectMapper().readTree(json);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException("must be a JSON object of request sampling fields (e.g. {\"temperature\": 0.7, \"top_k\": 40})");
        }
        if (!(parsed instanceof ObjectNode o)) {
            throw new IllegalArgumentException("must be a JSON object of request sampling fields (e.g. {\"temperature\": 0.7, \"top_k\": 40})");
        }
        for (java.util.Iterator<String> it = o.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!FIELDS.contains(f)) {
                throw new IllegalArgumentException("'" + abbreviate(f) + "' is not a sampling field; one of " + new java.util.TreeSet<>(FIELDS));
            }
        }
        java.util.List<String> unknown = CompletionParser.unknownStages(o.get("samplers"));
        if (!unknown.isEmpty()) {
            // a request's unknown stage is skipped, as llama-server skips it; the operator's is a typo
            throw new IllegalArgumentException("'samplers' names no stage as " + unknown + "; the stages: penalties, dry, top_n_sigma,"
                    + " top_k, typ_p, top_p, min_p, xtc, temperature, infill");
        }
        try {
            new CompletionParser(model != null ? model : ANY_MODEL, Integer.MAX_VALUE, Integer.MAX_VALUE, 1).checkSampling(o);
        } catch (ApiException e) {
            throw new IllegalArgumentException(e.getMessage());
        }
        out.setAll(o);
        return out;
    }

    /** A model of no particular vocabulary, for the checks at configuration time. */
    private static final PromptModel ANY_MODEL = new PromptModel() {
        @Override
        public String id() {
            return "";
        }

        @Override
        public int[] tokenize(String text, boolean chat) {
            return new int[0];
        }

        @Override
        public String detokenize(int[] tokens) {
            return "";
        }

        @Override
        public String renderChat(java.util.List<Message> messages) {
            return "";
        }

        @Override
        public int vocabSize() {
            return Integer.MAX_VALUE;
        }

        @Override
        public int slotContext() {
            return Integer.MAX_VALUE;
        }

        @Override
        public int slots() {
            return 1;
        }
    };

    private static String abbreviate(String s) {
        return s.length() <= 60 ? s : s.substring(0, 60) + "...";
    }
}
