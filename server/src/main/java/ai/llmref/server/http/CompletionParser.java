package ai.llmref.server.http;

import ai.llmref.llama.Sampler;
import ai.llmref.server.engine.GenerationRequest;
import ai.llmref.server.engine.LateGrammar;
import ai.llmref.server.engine.LineLimits;
import ai.llmref.server.engine.ReasoningBudget;
import ai.llmref.server.engine.SamplingParams;
import ai.llmref.server.structured.MarkerFilter;
import ai.llmref.server.structured.ReasoningStream;
import ai.llmref.server.structured.ToolCalls;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Turns a /v1/chat/completions or /v1/completions body into a {@link GenerationRequest}, checking
 * every field's type and range; anything the server cannot honour is a 400 that names the field.
 */
final class CompletionParser {
    static final Set<String> ROLES = Set.of("system", "developer", "user", "assistant");
    private static final int MAX_STOP = 4;
    /** The most stop strings on llama-server's routes (/infill, /completion). */
    static final int MAX_LLAMA_STOP = 64;
    /**
     * Most tokens a {@code logit_bias} may bias (OpenAI's limit): each is applied on every step of
     * the request's sampling, on threads every request shares; 80000 of them (a 1 MB body) took the
     * sampling of a token with the 128k vocabulary from 0.18 to 1.3 ms, for each choice.
     */
    static final int MAX_LOGIT_BIAS = 300;
    static final int MAX_COMPLETION_LOGPROBS = 5;
    /**
     * llama.cpp's {@code LLAMA_DEFAULT_SEED} (4294967295, what a seed of -1 reduces to): a sampler
     * seeded with it draws a random seed, so a request's seed that reduces to it means "random" (as
     * llama-server reads -1), and the seeds of later choices never land on it.
     */
    static final long RANDOM_SEED = 0xFFFFFFFFL;

    /** What the handler needs besides the engine request. */
    /** @param echo the prompt text to send back before the completion (completions' {@code echo}), or null */
    /**
     * @param requests one engine request per choice: prompt by prompt, {@code n} each (choice
     *                 {@code i} answers prompt {@code i / n})
     * @param echoes   per choice, the prompt text to send back before its completion
     *                 (completions' {@code echo}), or null
     * @param n        choices per prompt
     */
    record Parsed(List<GenerationRequest> requests, List<String> echoes, int n, boolean stream, boolean includeUsage, String model,
                  OutputContract contract, Reasoning reasoning, ReasoningStream.Tags tags, MarkerFilter.Envelope envelope) {
        /** The first choice's request: what every choice shares (sampling but the seed, logprobs, grammar). */
        GenerationRequest request() {
            return requests.getFirst();
        }

        int choices() {
            return requests.size();
        }

        String echo(int choice) {
            return echoes.get(choice);
        }
    }

    /**
     * Where a reply's reasoning is: none to split off ({@code OFF}: no reasoning template,
     * {@code reasoning_format: "none"}, a grammar from the start, a prefill, or completions); a
     * {@code <think>} block the reply may open with ({@code REPLY}); or a block the prompt left
     * open, so that the reply begins with reasoning ({@code OPEN}).
     */
    enum Reasoning {
        OFF, REPLY, OPEN,
        /** Harmony messages (GPT-OSS): the reply's analysis channel, or one the prompt left open. */
        HARMONY_REPLY, HARMONY_OPEN;

        /**
         * A reply's reasoning as it is generated, or null when off; {@code tags}: the model's
         * ({@link PromptModel#thinkTags}); {@code alsoEnds}: see {@link ReasoningStream}.
         */
        ReasoningStream stream(ReasoningStream.Tags tags, String alsoEnds) {
            return this == OFF ? null : new ReasoningStream(open(), alsoEnds, this == HARMONY_REPLY || this == HARMONY_OPEN, tags);
        }

        /** The prompt left the reasoning open: the reply begins with it. */
        boolean open() {
            return this == OPEN || this == HARMONY_OPEN;
        }
    }

    /** One prompt of a request, with the text to echo (or null). */
    private record Prompt(int[] tokens, String echo) {}

    private final PromptModel model;
    private final int maxTokensCeiling;
    private final int maxPromptTokens;
    private final int maxChoices;

    CompletionParser(PromptModel model, int maxTokensCeiling, int maxPromptTokens, int maxChoices) {
        this.maxChoices = maxChoices;
        this.model = model;
        this.maxTokensCeiling = maxTokensCeiling;
        this.maxPromptTokens = maxPromptTokens;
    }

    Parsed chat(ObjectNode body) {
        return chat(body, false);
    }

    /**
     * @param continueFinal a final assistant message (text, no tool calls) is continued, not
     *                      answered: the conversation before it is rendered up to the assistant's
     *                      turn and its text follows (Anthropic's prefill, llama-server's
     *                      {@code prefill_assistant}); OpenAI's APIs answer it with a new turn
     */
    Parsed chat(ObjectNode body, boolean continueFinal) {
        String modelId = checkModel(body);
        ChatPrompt prompt = chatPrompt(body, continueFinal);
        Boolean logprobs = Params.bool(body, "logprobs");
        Long top = Params.integer(body, "top_logprobs", 0, GenerationRequest.MAX_TOP_LOGPROBS);
        if (top != null && (logprobs == null || !logprobs)) {
            throw ApiException.badRequest("top_logprobs", "'top_logprobs' needs 'logprobs': true");
        }
        return build(body, "messages", List.of(new Prompt(tokens(prompt), null)), modelId, prompt.contract(),
                logprobs != null && logprobs ? (top == null ? 0 : top.intValue()) : -1, prompt.reasoning(), null);
    }

    /** A chat request's prompt tokens, checked but not against the limits (a token count). */
    int[] chatPromptTokens(ObjectNode body, boolean continueFinal) {
        checkModel(body);
        return tokens(chatPrompt(body, continueFinal));
    }

    /**
     * A chat request's prompt as text, what the chat route tokenizes (special tokens parsed): the
     * conversation rendered with the chat template, and what the server adds after it (a block it
     * opens for a grammar to follow). Checked as the chat route checks it, not against the limits.
     */
    String chatPromptText(ObjectNode body) {
        checkModel(body);
        return chatPrompt(body, false).text();
    }

    /** A chat prompt rendered, not yet tokenized (/apply-template needs only its text). */
    private record ChatPrompt(OutputContract contract, String text, Reasoning reasoning) {}

    /** A chat prompt's tokens: its text with special tokens parsed, as the template writes them. */
    private int[] tokens(ChatPrompt prompt) {
        return model.tokenize(prompt.text(), true);
    }

    /**
     * OpenAI's chat fields that ask for what a text model served here cannot give: audio output
     * ({@code audio}, {@code modalities} other than "text") and web search
     * ({@code web_search_options}). Refused, not ignored: a client that asked for audio would
     * otherwise read a reply without it.
     */
    private static void refuseOtherOutputs(ObjectNode body) {
        if (Params.get(body, "audio") != null) {
            throw ApiException.unsupported("audio", "audio output is not supported: the served model writes text");
        }
        JsonNode modalities = Params.get(body, "modalities");
        if (modalities != null) {
            if (!modalities.isArray()) {
                throw ApiException.badRequest("modalities", "'modalities' must be an array, got " + Params.kind(modalities));
            }
            for (int i = 0; i < modalities.size(); i++) {
                JsonNode m = modalities.get(i);
                if (!m.isTextual()) {
                    throw ApiException.badRequest("modalities", "modalities[" + i + "] must be a string, got " + Params.kind(m));
                }
                if (!m.textValue().equals("text")) {
                    throw ApiException.unsupported("modalities", "modalities[" + i + "]: only the \"text\" modality is supported"
                            + " (no audio output)");
                }
            }
        }
        if (Params.get(body, "web_search_options") != null) {
            throw ApiException.unsupported("web_search_options", "web search is not supported: no tools run on the server");
        }
    }

    /**
     * The messages rendered with the chat template (tools included when active); with
     * {@code continueFinal} a final assistant text message is left open for the model to continue.
     */
    private ChatPrompt chatPrompt(ObjectNode body, boolean continueFinal) {
        JsonNode messages = Params.get(body, "messages");
        if (messages == null) {
            throw ApiException.badRequest("messages", "'messages' is required");
        }
        if (!messages.isArray()) {
            throw ApiException.badRequest("messages", "'messages' must be an array, got " + Params.kind(messages));
        }
        if (messages.isEmpty()) {
            throw ApiException.badValue("messages", "'messages' must contain at least one message");
        }
        refuseOtherOutputs(body);
        OutputContract contract = OutputContract.of(body, true, model.toolFormat());
        List<PromptModel.Message> list = new ArrayList<>();
        for (int i = 0; i < messages.size(); i++) {
            list.add(message(messages.get(i), i));
        }
        PromptModel.Message last = list.getLast();
        String prefill = null;
        if (continueFinal && last.role().equals("assistant") && last.toolCalls() == null) {
            // as llama.cpp continues a final message: the turns before it up to the assistant's
            // turn (the generation prompt), then its text, without the end of its turn
            prefill = last.content() == null ? "" : last.content();
            list.removeLast();
        }
        java.util.Map<String, Object> variables = templateVariables(body);
        String rendered = model.renderChat(list, contract.templateTools(body), variables);
        Reasoning reasoning = Reasoning.OFF;
        if (model.harmony() && reasoningFormat(body)) {
            // GPT-OSS: the reply's messages (or the analysis message a prefill leaves open). A
            // grammar (a JSON response_format, a forced call) applies after the analysis, from the
            // next message's start on (build); GPT-OSS writes one before its answer, and the prompt
            // opens it for the model as it writes it, as llama.cpp's grammar for GPT-OSS has it.
            if (ReasoningStream.harmonyLeftOpen(rendered + (prefill == null ? "" : prefill))) {
                reasoning = Reasoning.HARMONY_OPEN;
            } else if (prefill == null || prefill.isEmpty()) {
                if (contract.grammar() == null) {
                    reasoning = Reasoning.HARMONY_REPLY;
                } else if (contract.hasAfterAnalysis()) {
                    rendered += HARMONY_ANALYSIS;
                    reasoning = Reasoning.HARMONY_OPEN;
                }
            }
        } else if (model.reasoningTags() && reasoningFormat(body) && (prefill == null || prefill.isEmpty())) {
            // A grammar (a JSON response_format, a forced call) applies after a reasoning block the
            // prompt left open (build: a required late grammar). A model that thinks when asked
            // (its template reads enable_thinking) and was not told otherwise opens its reply with
            // a block: the prompt opens it for the model, as the model writes it, so that the
            // grammar applies after the reasoning there too. Elsewhere, where the reply may open a
            // block, the grammar applies from the start and leaves no room for it: its output is
            // the content.
            ReasoningStream.Tags tags = model.thinkTags();
            if (tags.leftOpen(rendered)) {
                reasoning = Reasoning.OPEN;
            } else if (contract.grammar() == null) {
                reasoning = Reasoning.REPLY;
            } else if (model.thinkingSwitch() && !Boolean.FALSE.equals(variables.get("enable_thinking"))
                    && !tags.closedAtEnd(rendered)) {
                rendered += tags.open() + "\n";
                reasoning = Reasoning.OPEN;
            }
        }
        return new ChatPrompt(contract, prefill == null ? rendered : rendered + prefill, reasoning);
    }

    /**
     * The chat template's extra variables: {@code chat_template_kwargs} (an object; e.g.
     * {@code {"enable_thinking": false}}), then OpenAI's {@code reasoning_effort} as llama-server
     * takes it: "none" asks the template not to think ({@code enable_thinking} false, and no
     * {@code reasoning_effort} variable), any other effort is the template's
     * {@code reasoning_effort} variable (GPT-OSS's "Reasoning: high"), over one the kwargs gave. A
     * {@code reasoning_effort} variable is also the template's {@code reasoning_strength} unless the
     * kwargs give that, as llama.cpp binds the two.
     */
    private static java.util.Map<String, Object> templateVariables(ObjectNode body) {
        JsonNode kw = Params.get(body, "chat_template_kwargs");
        String effort = reasoningEffort(body);
        if (kw == null && effort == null) {
            return java.util.Map.of();
        }
        java.util.Map<String, Object> vars = new java.util.LinkedHashMap<>();
        if (kw != null) {
            if (!(kw instanceof ObjectNode o)) {
                throw ApiException.badRequest("chat_template_kwargs", "'chat_template_kwargs' must be an object, got " + Params.kind(kw));
            }
            vars = KWARGS.convertValue(o, new com.fasterxml.jackson.core.type.TypeReference<java.util.LinkedHashMap<String, Object>>() {});
        }
        if ("none".equals(effort)) {
            vars.put("enable_thinking", false);
            vars.remove("reasoning_effort");
        } else if (effort != null) {
            vars.put("reasoning_effort", effort);
        }
        if (vars.get("reasoning_effort") instanceof String e && !e.isEmpty()) {
            vars.putIfAbsent("reasoning_strength", e);
        }
        return vars;
    }

    /** The longest {@code reasoning_effort} taken. */
    static final int MAX_REASONING_EFFORT = 32;
    private static final java.util.regex.Pattern EFFORT_NAME = java.util.regex.Pattern.compile("[A-Za-z0-9_-]+");

    /**
     * {@code reasoning_effort}: OpenAI's efforts (none, minimal, low, medium, high, xhigh) and the
     * words templates read there (DeepSeek V4's "max", Hy3's "no_think"): a name of letters,
     * digits, {@code _} and {@code -}, at most 32 characters. What it does is the template's.
     */
    private static String reasoningEffort(ObjectNode body) {
        String effort = Params.string(body, "reasoning_effort");
        if (effort != null && (effort.length() > MAX_REASONING_EFFORT || !EFFORT_NAME.matcher(effort).matches())) {
            throw ApiException.badValue("reasoning_effort", "'reasoning_effort' must be a name of 1 to " + MAX_REASONING_EFFORT
                    + " letters, digits, '_' or '-' (none, minimal, low, medium, high, xhigh, or one the model's chat template reads)");
        }
        return effort;
    }

    private static final com.fasterxml.jackson.databind.ObjectMapper KWARGS = new com.fasterxml.jackson.databind.ObjectMapper();

    /** {@code reasoning_format} (llama-server's): "auto" or "deepseek" split a reasoning block off (the default), "none" does not. */
    private static boolean reasoningFormat(ObjectNode body) {
        String f = Params.string(body, "reasoning_format");
        if (f == null || f.equals("auto") || f.equals("deepseek")) {
            return true;
        }
        if (f.equals("none")) {
            return false;
        }
        throw ApiException.badValue("reasoning_format", "'reasoning_format' must be one of auto, deepseek, none");
    }

    Parsed completion(ObjectNode body) {
        String modelId = checkModel(body);
        JsonNode p = Params.get(body, "prompt");
        if (p == null) {
            throw ApiException.badRequest("prompt", "'prompt' is required");
        }
        // one prompt (a string, token ids) or several (strings, arrays of token ids: a batch, as
        // evaluation harnesses send), each answered by n choices
        List<JsonNode> items = new ArrayList<>();
        if (p.isTextual() || p.isArray() && !p.isEmpty() && p.get(0).isIntegralNumber()) {
            items.add(p);
        } else if (p.isArray() && !p.isEmpty()) {
            p.forEach(items::add);
        } else {
            throw ApiException.badRequest("prompt", "'prompt' must be a string, an array of token ids, or an array of those (several prompts)");
        }
        // suffix: fill in the middle (a code model's insertion between the prompt and the suffix)
        String suffix = Params.string(body, "suffix");
        int[] fim = null;
        int[] suffixTokens = null;
        if (suffix != null && !suffix.isEmpty()) {
            fim = model.fillInTheMiddle();
            if (fim == null) {
                throw ApiException.unsupported("suffix", "'suffix' needs a model with fill-in-the-middle tokens (a code model's prefix,"
                        + " suffix and middle tokens); this model has none");
            }
            if (Params.bool(body, "echo") == Boolean.TRUE) {
                throw ApiException.unsupported("echo", "'echo' cannot be used with 'suffix': the prompt of an insertion is not the"
                        + " text before the completion alone");
            }
            suffixTokens = model.tokenizePlain(suffix);
        }
        List<int[]> tokenized = new ArrayList<>(items.size());
        List<String> texts = new ArrayList<>(items.size());
        for (int k = 0; k < items.size(); k++) {
            JsonNode item = items.get(k);
            String where = items.size() == 1 ? "" : " (prompt " + k + ")";
            if (item.isTextual() && fim != null) {
                texts.add(null);
                tokenized.add(model.tokenizePlain(item.textValue()));
            } else if (item.isTextual()) {
                texts.add(item.textValue());
                tokenized.add(model.tokenize(item.textValue(), false));
            } else if (item.isArray() && !item.isEmpty()) {
                int[] tokens = new int[item.size()];
                for (int i = 0; i < item.size(); i++) {
                    tokens[i] = promptToken(item.get(i), i, where);
                }
                texts.add(null);
                tokenized.add(tokens);
            } else {
                throw ApiException.badRequest("prompt", "each prompt of a list must be a string or a non-empty array of token ids"
                        + where);
            }
        }
        if (fim != null) {
            for (int k = 0; k < tokenized.size(); k++) {
                tokenized.set(k, fillInTheMiddle(fim, tokenized.get(k), suffixTokens));
            }
        }
        // fields whose meaning this server cannot give: refused rather than ignored (the answer
        // would not be what the client asked for)
        Long bestOf = Params.integer(body, "best_of", 1, Integer.MAX_VALUE);
        Long n = bestOf == null ? null : Params.integer(body, "n", 1, Integer.MAX_VALUE); // n's own limits: build()
        long choices = n == null ? 1 : n;
        if (bestOf != null && bestOf < choices) {
            throw ApiException.badValue("best_of", "'best_of' (" + bestOf + ") must be at least 'n' (" + choices + ")");
        }
        if (bestOf != null && bestOf > choices) {
            throw ApiException.unsupported("best_of", "'best_of' greater than 'n' is not supported (no candidates are generated and "
                    + "ranked on the server); ask for 'n' choices instead");
        }
        // the legacy API's logprobs: how many alternatives per token (OpenAI allows at most 5)
        Long logprobs = Params.integer(body, "logprobs", 0, MAX_COMPLETION_LOGPROBS);
        // echo: the prompt comes back before the completion (as the model reads it, for token ids),
        // with its tokens' log-probabilities when logprobs is set
        Boolean echo = Params.bool(body, "echo");
        List<Prompt> prompts = new ArrayList<>(tokenized.size());
        for (int k = 0; k < tokenized.size(); k++) {
            String text = texts.get(k) != null ? texts.get(k) : model.detokenize(tokenized.get(k));
            prompts.add(new Prompt(tokenized.get(k), echo != null && echo ? text : null));
        }
        return build(body, "prompt", prompts, modelId, OutputContract.of(body, false, ai.llmref.server.structured.ToolCalls.Format.NONE),
                logprobs == null ? -1 : logprobs.intValue(), Reasoning.OFF, null);
    }

    /**
     * @param promptField the field that holds the prompt ({@code messages}, {@code prompt}), named when it does not fit
     * @param lines       limits on the output's lines (/infill), or null
     */
    private Parsed build(ObjectNode body, String promptField, List<Prompt> prompts, String modelId, OutputContract contract, int logprobs,
            Reasoning reasoning, LineLimits lines) {
        if (logprobs >= 0 && contract.toolsActive()) {
            throw ApiException.unsupported("logprobs", "'logprobs' is not supported together with 'tools'");
        }
        Long n = Params.integer(body, "n", 1, Integer.MAX_VALUE);
        int perPrompt = n == null ? 1 : n.intValue();
        if ((long) perPrompt * prompts.size() > maxChoices) {
            throw ApiException.badValue(prompts.size() > 1 ? "prompt" : "n", (prompts.size() > 1 ? prompts.size() + " prompts x " : "")
                    + "'n' (" + perPrompt + ") must be at most " + maxChoices + " choices (limits.max-choices)");
        }
        boolean echo = prompts.getFirst().echo() != null;
        // 0 only with echo: the prompt alone, for its log-probabilities
        int least = echo ? 0 : 1;
        Long maxTokens = Params.integer(body, "max_completion_tokens", least, Integer.MAX_VALUE);
        Long legacyMax = Params.integer(body, "max_tokens", least, Integer.MAX_VALUE);
        if (maxTokens == null) {
            maxTokens = legacyMax;
        }
        String maxName = Params.get(body, "max_completion_tokens") != null ? "max_completion_tokens" : "max_tokens";
        // stop strings end only free text: a grammar from the start (a forced call, a JSON
        // response_format) rules the whole output and ends it (a stop string inside the JSON cut it,
        // and the cut output failed its own check: a 500); they are still checked
        // llama-server's routes (those with line limits: /infill, /completion) take more stop
        // strings than OpenAI's four, as its clients send them (a chat's speaker names, the
        // template's end markers); llama-server sets no limit
        List<String> requested = stops(body, lines == null ? MAX_STOP : MAX_LLAMA_STOP);
        List<String> stops = contract.grammar() != null ? List.of() : requested;
        // the grammar that rules the output from its start, or from the end of the reasoning the
        // prompt left open on (a late grammar the output must reach)
        boolean afterReasoning = contract.grammar() != null && reasoning.open();
        SamplingParams sampling = sampling(body, afterReasoning ? null : contract.grammar());
        if (sampling.llama().ignoreEos() && (contract.grammar() != null || contract.toolsActive())) {
            throw ApiException.unsupported("ignore_eos", "'ignore_eos' cannot be used with a grammar (a JSON response_format, tools): the"
                    + " grammar's output ends with an end-of-generation token");
        }
        LateGrammar late;
        String afterAnalysis = reasoning == Reasoning.HARMONY_OPEN ? contract.afterAnalysis() : null;
        if (afterReasoning && afterAnalysis != null) {
            // GPT-OSS: from the start of the message after the analysis (<|end|> shows as nothing)
            late = new LateGrammar(afterAnalysis, List.of(OutputContract.HARMONY_NEXT), null, null, true);
        } else if (afterReasoning) {
            late = LateGrammar.opening(contract.grammar(), LateGrammar.AT_ONCE,
                    () -> afterReasoning(reasoning.stream(model.thinkTags(), contract.reasoningEnd())), true);
        } else if (contract.lateGrammar() != null) {
            List<String> openings = ToolCalls.openings(contract.format(), contract.functions());
            late = new LateGrammar(contract.lateGrammar(), openings, openings != null ? null : ToolCalls.LLAMA3_OPENING,
                    // a call begins after the reasoning
                    reasoning == Reasoning.OFF ? null : () -> afterReasoning(reasoning.stream(model.thinkTags(), contract.reasoningEnd())), false);
        } else {
            late = null;
        }
        ReasoningBudget budget = reasoningBudget(body, reasoning, contract.reasoningEnd(), afterAnalysis != null);
        int[] preserved = preserved(contract, promptField.equals("messages"));
        List<GenerationRequest> requests = new ArrayList<>();
        List<String> echoes = new ArrayList<>();
        for (Prompt prompt : prompts) {
            int limit = limit(prompt.tokens(), promptField, maxTokens, maxName);
            for (int j = 0; j < perPrompt; j++) {
                // choice j samples with seed + j: the answers differ, and repeat (wrapping below
                // llama.cpp's random seed, which a later choice's seed must not become)
                SamplingParams s = sampling.seed() == null || j == 0 ? sampling : sampling.withSeed((sampling.seed() + j) % RANDOM_SEED);
                requests.add(new GenerationRequest(prompt.tokens(), limit, stops, s, logprobs, echo && logprobs >= 0, late, budget, preserved,
                        lines));
                echoes.add(prompt.echo());
            }
        }
        Boolean stream = Params.bool(body, "stream");
        boolean includeUsage = false;
        JsonNode so = Params.get(body, "stream_options");
        if (so != null) {
            if (!(so instanceof ObjectNode soObj)) {
                throw ApiException.badRequest("stream_options", "'stream_options' must be an object");
            }
            Boolean iu = Params.bool(soObj, "include_usage");
            includeUsage = iu != null && iu;
        }
        Params.string(body, "user"); // accepted (type-checked), not used for generation
        return new Parsed(List.copyOf(requests), java.util.Collections.unmodifiableList(echoes), perPrompt, stream != null && stream,
                includeUsage, modelId, contract, reasoning, model.thinkTags(),
                // a chat reply's markup around its text (Kimi K3's response element, Functionary v3.2's recipients)
                promptField.equals("messages") ? model.envelope() : MarkerFilter.Envelope.NONE);
    }

    /** What opens GPT-OSS's analysis message after the generation prompt's {@code <|start|>assistant}. */
    static final String HARMONY_ANALYSIS = "<|channel|>analysis<|message|>";

    /** The longest {@code reasoning_budget_message}, in characters. */
    static final int MAX_BUDGET_MESSAGE = 1000;

    /**
     * With tools in a format whose calls are marked by control tokens (Mistral's {@code [TOOL_CALLS]}),
     * and in a chat reply whose reasoning block is marked by control tokens (Gemma 4's channel,
     * whatever the {@code reasoning_format}, as llama-server preserves them): those of the markers
     * that are one token of the model's vocabulary, which the output then shows and a grammar may
     * pick; null otherwise.
     */
    private int[] preserved(OutputContract contract, boolean chat) {
        List<String> markers = new ArrayList<>(chat ? model.thinkTags().markers() : List.of());
        if (contract.toolsActive()) {
            markers.addAll(ToolCalls.markers(contract.format()));
        }
        if (markers.isEmpty()) {
            return null;
        }
        List<Integer> out = new ArrayList<>();
        for (String marker : markers) {
            int[] t = model.tokenizeInside(marker);
            if (t.length == 1) {
                out.add(t[0]);
            }
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    /**
     * {@code reasoning_budget_tokens} (or {@code thinking_budget_tokens}, llama-server's names; -1:
     * none) and {@code reasoning_budget_message}: once the reasoning has taken that many tokens,
     * the message and {@code </think>} are written in the model's place. Null without a budget, or
     * without reasoning to cap (a template without reasoning tags, {@code reasoning_format: none}).
     */
    private ReasoningBudget reasoningBudget(ObjectNode body, Reasoning reasoning, String alsoEnds, boolean grammarNext) {
        String name = Params.get(body, "reasoning_budget_tokens") != null || Params.get(body, "thinking_budget_tokens") == null
                ? "reasoning_budget_tokens" : "thinking_budget_tokens";
        Long tokens = Params.integer(body, name, -1, Integer.MAX_VALUE);
        String message = Params.string(body, "reasoning_budget_message");
        if (message != null && message.length() > MAX_BUDGET_MESSAGE) {
            throw ApiException.badValue("reasoning_budget_message", "'reasoning_budget_message' may be at most " + MAX_BUDGET_MESSAGE
                    + " characters");
        }
        if (tokens == null || tokens < 0 || reasoning == Reasoning.OFF) {
            return null;
        }
        // up to the tag and no further: from there a late grammar (a JSON response_format, a forced
        // call after the reasoning) picks the tokens, and a forced token after it would not be its
        boolean harmony = reasoning == Reasoning.HARMONY_REPLY || reasoning == Reasoning.HARMONY_OPEN;
        // harmony: the analysis message ends, and the final one begins, as GPT-OSS writes them (or,
        // with a grammar after the analysis, the next one, whose header the grammar writes)
        if (message != null) {
            for (String marker : harmony ? List.of("<|") : java.util.stream.Stream.of(model.thinkTags().close(), alsoEnds)
                    .filter(java.util.Objects::nonNull).toList()) {
                if (message.contains(marker)) {
                    // it would end the reasoning before the budget's own end, with more forced text after it
                    throw ApiException.badValue("reasoning_budget_message", "'reasoning_budget_message' may not contain '" + marker
                            + "', which ends the reasoning");
                }
            }
        }
        int[] forced = model.tokenizeInside((message == null ? "" : message) + (harmony
                ? "<|end|>" + (grammarNext ? OutputContract.HARMONY_NEXT : "<|start|>assistant<|channel|>final<|message|>")
                : "\n" + model.thinkTags().close()));
        return new ReasoningBudget(tokens.intValue(), forced, () -> {
            ReasoningStream stream = reasoning.stream(model.thinkTags(), alsoEnds);
            return new ReasoningBudget.Tracker() {
                @Override
                public void push(String text) {
                    stream.push(text);
                }

                @Override
                public boolean reasoning() {
                    return stream.inReasoning();
                }
            };
        });
    }

    /** The text after a reply's reasoning, for a late grammar's search ({@link LateGrammar.Preamble}). */
    private static LateGrammar.Preamble afterReasoning(ReasoningStream reasoning) {
        return text -> {
            StringBuilder content = new StringBuilder();
            for (ReasoningStream.Piece p : reasoning.push(text)) {
                if (p instanceof ReasoningStream.Content c) {
                    content.append(c.text());
                }
            }
            return reasoning.inContent() ? content.toString() : null;
        };
    }

    /** Checks a prompt against the limits; the most tokens to generate after it. */
    private int limit(int[] tokens, String promptField, Long maxTokens, String maxName) {
        if (tokens.length == 0) {
            throw ApiException.badValue(promptField, "the prompt is empty");
        }
        if (tokens.length > maxPromptTokens) {
            throw new ApiException(400, "invalid_request_error", "prompt_too_long", promptField, "the prompt has " + tokens.length
                    + " tokens; this server accepts at most " + maxPromptTokens);
        }
        int room = model.slotContext() - tokens.length;
        if (room < 1) {
            throw new ApiException(400, "invalid_request_error", "context_length_exceeded", promptField, "the prompt has "
                    + tokens.length + " tokens and fills the model's context of " + model.slotContext() + " tokens");
        }
        int limit;
        if (maxTokens == null) {
            limit = Math.min(room, maxTokensCeiling);
        } else {
            if (maxTokens > maxTokensCeiling) {
                throw ApiException.badValue(maxName, "'" + maxName + "' must be at most " + maxTokensCeiling + ", got " + maxTokens);
            }
            if (maxTokens > room) {
                throw new ApiException(400, "invalid_request_error", "context_length_exceeded", maxName, "the prompt ("
                        + tokens.length + " tokens) plus " + maxName + " (" + maxTokens + ") exceeds the context of "
                        + model.slotContext() + " tokens");
            }
            limit = maxTokens.intValue();
        }
        return limit;
    }

    /** Parses sampling fields as a request's are (for the model's recommended sampling, checked at load). */
    void checkSampling(ObjectNode fields) {
        sampling(fields, null);
    }

    /** The body with the model's recommended sampling for the fields it leaves out (a shallow copy), or the body itself. */
    private ObjectNode withSamplingDefaults(ObjectNode body) {
        ObjectNode d = model.samplingDefaults();
        if (d == null || d.isEmpty()) {
            return body;
        }
        ObjectNode b = body.objectNode();
        b.setAll(body);
        d.fields().forEachRemaining(e -> {
            if (Params.get(body, e.getKey()) == null) {
                b.set(e.getKey(), e.getValue());
            }
        });
        return b;
    }

    private SamplingParams sampling(ObjectNode request, String grammar) {
        ObjectNode body = withSamplingDefaults(request);
        Float temperature = Params.number(body, "temperature", 0, 2);
        Float topP = Params.number(body, "top_p", 0, 1);
        Long topK = Params.integer(body, "top_k", 0, Integer.MAX_VALUE);
        Float minP = Params.number(body, "min_p", 0, 1);
        Long seed = Params.integer(body, "seed", Long.MIN_VALUE, Long.MAX_VALUE);
        Float presence = Params.number(body, "presence_penalty", -2, 2);
        Float frequency = Params.number(body, "frequency_penalty", -2, 2);
        return new SamplingParams(
                temperature == null ? 1.0f : temperature,
                topP == null ? 1.0f : topP,
                topK == null ? 0 : topK.intValue(),
                minP == null ? 0f : minP,
                seed == null || (seed & 0xFFFFFFFFL) == RANDOM_SEED ? null : seed & 0xFFFFFFFFL, // llama.cpp seeds are 32-bit
                presence == null ? 0f : presence,
                frequency == null ? 0f : frequency,
                logitBias(body),
                grammar,
                llamaStages(body));
    }

    /**
     * llama-server's sampling fields (those taken and those refused) and its reasoning budget,
     * which the Responses and Messages APIs pass to the chat route as they are.
     */
    static final List<String> LLAMA_SAMPLING_FIELDS = List.of("repeat_penalty", "repeat_last_n", "typical_p", "top_n_sigma",
            "xtc_probability", "xtc_threshold", "dry_multiplier", "dry_base", "dry_allowed_length", "dry_penalty_last_n",
            "dry_sequence_breakers", "mirostat", "mirostat_tau", "mirostat_eta", "dynatemp_range", "dynatemp_exponent", "min_keep",
            "samplers", "ignore_eos", "grammar", "json_schema", "n_predict", "n_probs", "post_sampling_probs", "adaptive_target",
            "adaptive_decay", "lora", "reasoning_budget_tokens", "thinking_budget_tokens", "reasoning_budget_message");

    /** The most {@code response_fields} an /infill request may name, and the longest one. */
    static final int MAX_RESPONSE_FIELDS = 64;
    static final int MAX_RESPONSE_FIELD = 256;

    /** The most {@code input_extra} chunks an /infill request may carry. */
    static final int MAX_INFILL_CHUNKS = 256;
    /** llama-server's batch size, the window its /infill cuts the prefix and suffix to. */
    private static final int INFILL_WINDOW = 2048;

    /**
     * llama-server's {@code /infill}: {@code input_prefix}, {@code input_suffix}, {@code prompt}
     * (text after the prefix: the start of the line being written) and {@code input_extra} (other
     * files: {@code [{"filename", "text"}]}), laid out and cut as llama-server does. The window is
     * llama-server's batch (2048 tokens) or half the slot's context where that is smaller: the
     * prefix keeps its last three quarters of it, the suffix its first quarter less the prompt and
     * two tokens, the extra context (repository-level: {@code <|repo_name|>myproject}, then
     * {@code <|file_sep|>filename} before each chunk and before the file itself, where the model
     * has those tokens, else a "--- snippet ---" line) its last tokens that fit the rest of the
     * context less twice {@code n_predict}. {@code n_predict} (or {@code max_tokens}; -1: none) is the
     * most tokens to write. The sampling fields are the completion's.
     */
    /**
     * llama-server's {@code response_fields} (llama.vim sends them): the paths of the result's
     * fields to answer with, {@code /} between an object's key and a nested one.
     */
    private static List<String> responseFields(ObjectNode body) {
        JsonNode f = Params.get(body, "response_fields");
        if (f == null) {
            return List.of();
        }
        if (!f.isArray() || f.size() > MAX_RESPONSE_FIELDS) {
            throw ApiException.badRequest("response_fields", "'response_fields' must be an array of at most " + MAX_RESPONSE_FIELDS
                    + " field paths (\"content\", \"timings/prompt_n\", ...)");
        }
        List<String> out = new ArrayList<>();
        for (JsonNode n : f) {
            if (!n.isTextual() || n.asText().isEmpty() || n.asText().length() > MAX_RESPONSE_FIELD) {
                throw ApiException.badRequest("response_fields", "'response_fields' holds field paths of 1 to " + MAX_RESPONSE_FIELD
                        + " characters, got " + abbreviate(n.toString()));
            }
            out.add(n.asText());
        }
        return List.copyOf(out);
    }

    Native infill(ObjectNode body) {
        String modelId = checkModel(body);
        int[] fim = model.fillInTheMiddle();
        if (fim == null) {
            throw ApiException.unsupported(null, "/infill needs a model with fill-in-the-middle tokens (a code model's prefix, suffix and"
                    + " middle tokens); this model has none");
        }
        refuseOpenAiFields(body, List.of("suffix", "echo", "best_of"), "/infill",
                "/infill takes input_prefix, input_suffix, input_extra and prompt");
        String prefix = Objects.requireNonNullElse(Params.string(body, "input_prefix"), "");
        String suffix = Objects.requireNonNullElse(Params.string(body, "input_suffix"), "");
        String typed = Objects.requireNonNullElse(Params.string(body, "prompt"), "");
        ObjectNode copy = body.deepCopy();
        Long nPredict = nPredict(body, copy);
        JsonNode extra = Params.get(body, "input_extra");
        List<int[]> extraTokens = new ArrayList<>();
        int fimRep = model.fimRepository();
        int fimSep = model.fimSeparator();
        if (fimRep >= 0) {
            extraTokens.add(new int[] {fimRep});
            extraTokens.add(model.tokenizePlain("myproject\n"));
        }
        if (extra != null) {
            if (!extra.isArray() || extra.size() > MAX_INFILL_CHUNKS) {
                throw ApiException.badRequest("input_extra", "'input_extra' must be an array of at most " + MAX_INFILL_CHUNKS
                        + " objects {\"filename\", \"text\"}");
            }
            for (int i = 0; i < extra.size(); i++) {
                if (!(extra.get(i) instanceof ObjectNode chunk)) {
                    throw ApiException.badRequest("input_extra", "'input_extra[" + i + "]' must be an object {\"filename\", \"text\"}");
                }
                String text = Objects.requireNonNullElse(Params.string(chunk, "text"), "");
                String filename = Objects.requireNonNullElse(Params.string(chunk, "filename"), "tmp");
                if (fimSep >= 0) {
                    extraTokens.add(new int[] {fimSep});
                    extraTokens.add(model.tokenizePlain(filename + "\n"));
                } else {
                    extraTokens.add(model.tokenizePlain("\n\n--- snippet ---\n\n"));
                }
                extraTokens.add(model.tokenizePlain(text));
            }
        }
        if (fimSep >= 0) {
            extraTokens.add(new int[] {fimSep});
            extraTokens.add(model.tokenizePlain("filename\n"));
        }
        int[] extras = concat(extraTokens);
        int[] pre = model.tokenizePlain(prefix);
        int[] suf = model.tokenizePlain(suffix);
        int[] promptTokens = model.tokenizePlain(typed);
        int window = Math.min(INFILL_WINDOW, model.slotContext() / 2);
        int preTake = Math.min(pre.length, 3 * (window / 4));
        int sufTake = Math.min(suf.length, Math.max(0, window / 4 - (2 + promptTokens.length)));
        int predict = nPredict == null || nPredict < 0 ? 0 : (int) Math.min(nPredict, Integer.MAX_VALUE / 4);
        int extraTake = Math.min(Math.max(0, model.slotContext() - window - 2 * predict), extras.length);
        boolean truncated = preTake < pre.length || sufTake < suf.length || extraTake < extras.length;
        int[] prefixPart = concat(List.of(java.util.Arrays.copyOfRange(pre, pre.length - preTake, pre.length), promptTokens));
        int[] middle = fillInTheMiddle(fim, prefixPart, java.util.Arrays.copyOf(suf, sufTake));
        int[] tokens = concat(List.of(java.util.Arrays.copyOfRange(extras, extras.length - extraTake, extras.length), middle));
        return llamaRoute(body, copy, "input_prefix", tokens, modelId, truncated);
    }

    /**
     * llama-server's {@code n_predict} (or {@code max_tokens}; -1, the default: as many as fit)
     * into {@code copy}'s {@code max_tokens}. Returns it, or null when not given.
     */
    private static Long nPredict(ObjectNode body, ObjectNode copy) {
        Long nPredict = Params.integer(body, "n_predict", -1, Integer.MAX_VALUE);
        copy.remove("n_predict");
        if (nPredict != null) {
            // n_predict over max_tokens, as llama-server reads the two (SillyTavern sends both)
            Params.integer(body, "max_tokens", 1, Integer.MAX_VALUE);
            copy.remove("max_tokens");
        }
        if (nPredict != null && nPredict >= 0) {
            if (nPredict == 0) {
                throw ApiException.badValue("n_predict", "'n_predict' must be at least 1 (or -1: as many as fit)");
            }
            copy.put("max_tokens", nPredict);
        }
        return nPredict;
    }

    /** llama-server's {@code n_indent} and {@code t_max_predict_ms} (-1 or 0: none), which editors send. */
    private static LineLimits lineLimits(ObjectNode body) {
        Long indent = Params.integer(body, "n_indent", 0, Integer.MAX_VALUE);
        Long maxPredict = Params.integer(body, "t_max_predict_ms", -1, Long.MAX_VALUE / 1_000_000L);
        return new LineLimits(indent == null ? 0 : indent.intValue(), maxPredict == null || maxPredict < 0 ? 0 : maxPredict);
    }

    /**
     * A {@code /completion} request (llama-server's own completion route, which SillyTavern,
     * Continue's llama.cpp provider and llama.cpp's examples call).
     *
     * @param parsed        the request
     * @param responseFields {@code response_fields} (empty: the whole result)
     * @param probs         {@code n_probs}: the most likely tokens listed per generated token
     *                      ({@code completion_probabilities}); 0: none
     * @param returnTokens  {@code return_tokens}: the generated token ids in {@code tokens}
     * @param truncated     the prompt was cut to fit the context (/infill's prefix, suffix or extra context)
     */
    record Native(Parsed parsed, List<String> responseFields, int probs, boolean returnTokens, boolean truncated) {}

    /**
     * llama-server's {@code /completion}: one prompt, a string (special tokens parsed and BOS
     * added, as llama-server tokenizes it: a client sends a prompt already in the model's chat
     * format), token ids, or both mixed ({@code [12, 34, " text", 56]}); {@code n_predict} (or
     * {@code max_tokens}, -1: as many as fit), {@code n_probs} (or {@code logprobs}, 0 .. 20),
     * {@code return_tokens}, {@code json_schema} (a JSON schema the output follows, as
     * {@code response_format} does), {@code logit_bias} also as llama-server's pairs
     * ({@code [[id or text, bias or false]]}), the line limits of /infill, and the sampling fields
     * of every route. What it does not do is refused: several prompts, {@code n}, a GBNF
     * {@code grammar}, and the OpenAI route's {@code echo}, {@code suffix}, {@code best_of}.
     */
    Native nativeCompletion(ObjectNode body) {
        String modelId = checkModel(body);
        refuseOpenAiFields(body, List.of("echo", "suffix", "best_of"), "/completion", "/completion does not take it");
        int[] tokens = nativePrompt(Params.get(body, "prompt"));
        ObjectNode copy = body.deepCopy();
        nPredict(body, copy);
        return llamaRoute(body, copy, "prompt", tokens, modelId, false);
    }

    /**
     * What llama-server's routes do not take: {@code /v1/completions}' {@code fields} (in the order
     * checked; {@code instead}: what the route takes), and {@code n} other than 1, since they answer
     * one completion a request.
     */
    private static void refuseOpenAiFields(ObjectNode body, List<String> fields, String route, String instead) {
        for (String f : fields) {
            if (Params.get(body, f) != null) {
                throw ApiException.unsupported(f, "'" + f + "' is a /v1/completions field; " + instead);
            }
        }
        JsonNode n = Params.get(body, "n");
        if (n != null && !(n.isIntegralNumber() && n.asLong() == 1)) {
            throw ApiException.unsupported("n", route + " answers one completion a request; ask /v1/completions for 'n' choices");
        }
    }

    /**
     * The fields llama-server's /completion and /infill share: {@code n_probs} (or {@code logprobs}),
     * {@code return_tokens}, {@code json_schema}, {@code logit_bias} pairs, the line limits and
     * {@code response_fields}, then the sampling fields of every route ({@code copy}, the body with
     * {@code n_predict} read into {@code max_tokens}).
     */
    private Native llamaRoute(ObjectNode body, ObjectNode copy, String promptField, int[] tokens, String modelId, boolean truncated) {
        String probsField = body.has("n_probs") ? "n_probs" : "logprobs";
        Long probs = Params.integer(body, probsField, 0, GenerationRequest.MAX_TOP_LOGPROBS);
        copy.remove("n_probs");
        copy.remove("logprobs");
        Boolean returnTokens = Params.bool(body, "return_tokens");
        copy.remove("return_tokens");
        JsonNode schema = Params.get(body, "json_schema");
        if (schema != null) {
            if (Params.get(body, "response_format") != null) {
                throw ApiException.badRequest("json_schema", "give 'json_schema' or 'response_format', not both");
            }
            copy.remove("json_schema");
            ObjectNode rf = copy.putObject("response_format").put("type", "json_schema");
            rf.putObject("json_schema").put("name", "json_schema").set("schema", schema);
        }
        JsonNode bias = Params.get(body, "logit_bias");
        if (bias != null && bias.isArray()) {
            copy.set("logit_bias", biasPairs(bias));
        }
        int wanted = probs != null && probs > 0 ? probs.intValue() : returnTokens == Boolean.TRUE ? 0 : -1;
        java.util.function.UnaryOperator<String> rename = schema == null ? s -> s
                : s -> s.replace("response_format.json_schema.schema", "json_schema").replace("response_format", "json_schema");
        Parsed parsed = ApiException.renaming(rename,
                () -> build(copy, promptField, List.of(new Prompt(tokens, null)), modelId,
                        OutputContract.of(copy, false, ToolCalls.Format.NONE), wanted, Reasoning.OFF, lineLimits(body)));
        return new Native(parsed, responseFields(body), probs == null ? 0 : probs.intValue(), returnTokens == Boolean.TRUE, truncated);
    }

    /** A prompt's token id at {@code i} ({@code where}: which prompt of several), checked against the vocabulary. */
    private int promptToken(JsonNode t, int i, String where) {
        if (!t.isIntegralNumber() || !t.canConvertToInt() || t.intValue() < 0 || t.intValue() >= model.vocabSize()) {
            throw ApiException.badValue("prompt", "prompt token at index " + i + where + " must be an integer token id in 0.."
                    + (model.vocabSize() - 1));
        }
        return t.intValue();
    }

    /** A /completion prompt: a string, token ids, or both mixed in one array (the first string adds BOS, as llama-server's). */
    private int[] nativePrompt(JsonNode p) {
        if (p == null) {
            throw ApiException.badRequest("prompt", "'prompt' is required");
        }
        if (p.isTextual()) {
            return model.tokenize(p.textValue(), true);
        }
        boolean one = p.isArray() && !p.isEmpty();
        boolean anyId = false;
        if (one) {
            for (JsonNode e : p) {
                one &= e.isIntegralNumber() || e.isTextual();
                anyId |= e.isIntegralNumber();
            }
        }
        if (!one || !anyId) {
            throw ApiException.badRequest("prompt", "'prompt' must be a string, an array of token ids, or one of ids and strings mixed;"
                    + " /completion takes one prompt a request (several: /v1/completions)");
        }
        List<int[]> parts = new ArrayList<>();
        for (int i = 0; i < p.size(); i++) {
            JsonNode e = p.get(i);
            if (e.isTextual()) {
                parts.add(i == 0 ? model.tokenize(e.textValue(), true) : model.tokenizeInside(e.textValue()));
            } else {
                parts.add(new int[] {promptToken(e, i, "")});
            }
        }
        return concat(parts);
    }

    /**
     * llama-server's {@code logit_bias} pairs, {@code [[token id or text, bias or false]]} (false
     * bans; a text biases each of its tokens), as the object the other routes take.
     */
    private ObjectNode biasPairs(JsonNode pairs) {
        ObjectNode out = com.fasterxml.jackson.databind.node.JsonNodeFactory.instance.objectNode();
        for (int i = 0; i < pairs.size(); i++) {
            JsonNode pair = pairs.get(i);
            if (!pair.isArray() || pair.size() != 2 || !(pair.get(0).isIntegralNumber() || pair.get(0).isTextual())
                    || !(pair.get(1).isNumber() || pair.get(1).isBoolean() && !pair.get(1).booleanValue())) {
                throw ApiException.badRequest("logit_bias", "logit_bias[" + i + "] must be a pair [token id or text, bias or false]");
            }
            JsonNode bias = pair.get(1).isBoolean() ? com.fasterxml.jackson.databind.node.IntNode.valueOf(-100) : pair.get(1);
            if (pair.get(0).isTextual()) {
                for (int t : model.tokenizePlain(pair.get(0).textValue())) {
                    out.set(Integer.toString(t), bias);
                }
            } else {
                out.set(pair.get(0).asText(), bias);
            }
        }
        return out;
    }

    private static int[] concat(List<int[]> parts) {
        int n = 0;
        for (int[] p : parts) {
            n += p.length;
        }
        int[] out = new int[n];
        int at = 0;
        for (int[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }

    /**
     * A fill-in-the-middle prompt, as llama-server's /infill makes one (prefix-suffix-middle):
     * BOS where the model adds one, the prefix token, the prompt, the suffix token, the suffix,
     * the middle token; the model writes what goes between the prompt and the suffix.
     */
    private int[] fillInTheMiddle(int[] fim, int[] prefix, int[] suffix) {
        int bos = model.bosToAdd();
        return concat(List.of(bos >= 0 ? new int[] {bos} : new int[0], new int[] {fim[0]}, prefix, new int[] {fim[1]}, suffix,
                new int[] {fim[2]}));
    }

    /** llama-server's request fields that this server does not take, and what to use instead; refused rather than ignored. */
    private static final Map<String, String> REFUSED_LLAMA_FIELDS = new java.util.LinkedHashMap<>();

    static {
        REFUSED_LLAMA_FIELDS.put("grammar", "GBNF grammars are not taken from clients; use 'response_format' with a JSON schema");
        REFUSED_LLAMA_FIELDS.put("json_schema", "use 'response_format': {\"type\": \"json_schema\", ...}");
        REFUSED_LLAMA_FIELDS.put("n_predict", "use 'max_tokens'");
        REFUSED_LLAMA_FIELDS.put("n_probs", "use 'logprobs' and 'top_logprobs'");
        REFUSED_LLAMA_FIELDS.put("post_sampling_probs", "log-probabilities are the model's, before sampling");
        REFUSED_LLAMA_FIELDS.put("adaptive_target", "the adaptive-p sampler is not supported");
        REFUSED_LLAMA_FIELDS.put("adaptive_decay", "the adaptive-p sampler is not supported");
        REFUSED_LLAMA_FIELDS.put("lora", "LoRA adapters are not supported");
    }

    /**
     * llama-server's names for the stages of {@code samplers}, as llama.cpp's common sampler reads
     * them (case aside): each canonical name, its kebab-case and its no-dash spelling
     * ({@code top_k}, {@code top-k}, {@code topk}), and {@code nucleus}, {@code temp}, {@code typ}.
     */
    private static final Map<String, Sampler.Stage> STAGE_NAMES = stageNames();

    /** llama.cpp's one-character names of the stages ({@code "edkypmxt"}); {@code a} is adaptive-p. */
    private static final Map<Character, Sampler.Stage> STAGE_CHARS = Map.of('d', Sampler.Stage.DRY, 'k', Sampler.Stage.TOP_K,
            'y', Sampler.Stage.TYPICAL_P, 'p', Sampler.Stage.TOP_P, 's', Sampler.Stage.TOP_N_SIGMA, 'm', Sampler.Stage.MIN_P,
            't', Sampler.Stage.TEMPERATURE, 'x', Sampler.Stage.XTC, 'i', Sampler.Stage.INFILL, 'e', Sampler.Stage.PENALTIES);

    /**
     * {@code samplers}, as llama-server reads it: an array of stage names, or a string of their
     * one-character names. A name llama.cpp does not know (a stage it dropped, such as
     * {@code tfs_z}, which SillyTavern's presets still list) is skipped, as llama-server skips it;
     * {@code adaptive_p} is its plain draw here (no target), so it changes nothing. A stage named
     * twice is a 400.
     */
    private static List<Sampler.Stage> samplers(JsonNode ss) {
        if (!ss.isTextual() && !ss.isArray()) {
            throw ApiException.badRequest("samplers", "'samplers' must be an array of stage names or a string of their letters, got "
                    + Params.kind(ss));
        }
        if ((ss.isTextual() ? ss.textValue().length() : ss.size()) > MAX_SAMPLERS) {
            throw ApiException.badValue("samplers", "'samplers' may list at most " + MAX_SAMPLERS + " stages");
        }
        List<Sampler.Stage> list = new ArrayList<>();
        if (ss.isTextual()) {
            for (char c : ss.textValue().toCharArray()) {
                Sampler.Stage stage = STAGE_CHARS.get(c);
                if (stage != null) {
                    addStage(list, stage, String.valueOf(c));
                }
            }
            return list;
        }
        for (JsonNode n : ss) {
            if (!n.isTextual()) {
                throw ApiException.badRequest("samplers", "'samplers' names the stages (strings), got " + Params.kind(n));
            }
            Sampler.Stage stage = stageNamed(n.textValue());
            if (stage != null) {
                addStage(list, stage, n.textValue());
            }
        }
        return list;
    }

    /**
     * The names in a {@code samplers} array that name no stage (which a request's reading skips),
     * for the operator's defaults, where a typo is an error.
     */
    static List<String> unknownStages(JsonNode ss) {
        List<String> out = new ArrayList<>();
        if (ss != null && ss.isArray()) {
            for (JsonNode n : ss) {
                if (n.isTextual() && stageNamed(n.textValue()) == null) {
                    out.add(abbreviate(n.textValue()));
                }
            }
        }
        return out;
    }

    /** The stage a name names, in any case; null for a name llama.cpp does not know. */
    private static Sampler.Stage stageNamed(String name) {
        return STAGE_NAMES.get(name.toLowerCase(java.util.Locale.ROOT));
    }

    private static void addStage(List<Sampler.Stage> list, Sampler.Stage stage, String name) {
        if (list.contains(stage)) {
            throw ApiException.badValue("samplers", "'samplers' names " + abbreviate(name) + " twice");
        }
        list.add(stage);
    }

    private static Map<String, Sampler.Stage> stageNames() {
        Map<String, Sampler.Stage> canonical = Map.of("dry", Sampler.Stage.DRY, "top_k", Sampler.Stage.TOP_K, "top_p", Sampler.Stage.TOP_P,
                "top_n_sigma", Sampler.Stage.TOP_N_SIGMA, "typ_p", Sampler.Stage.TYPICAL_P, "min_p", Sampler.Stage.MIN_P,
                "temperature", Sampler.Stage.TEMPERATURE, "xtc", Sampler.Stage.XTC, "infill", Sampler.Stage.INFILL,
                "penalties", Sampler.Stage.PENALTIES);
        Map<String, Sampler.Stage> names = new java.util.HashMap<>();
        canonical.forEach((name, stage) -> {
            names.put(name, stage);
            names.put(name.replace('_', '-'), stage);
            names.put(name.replace("_", ""), stage);
        });
        names.put("nucleus", Sampler.Stage.TOP_P);
        names.put("temp", Sampler.Stage.TEMPERATURE);
        names.put("typ", Sampler.Stage.TYPICAL_P);
        return Map.copyOf(names);
    }

    /** A penalty window of -1 (llama-server's "the whole context") as the longest window, which the slot's context cuts. */
    private static Long wholeContext(Long window) {
        return window != null && window == -1 ? Long.valueOf(Sampler.MAX_PENALTY_WINDOW) : window;
    }

    /** The most entries {@code samplers} may list. */
    static final int MAX_SAMPLERS = 64;

    /**
     * llama.cpp's sampling fields beyond OpenAI's (llama-server's names, ranges and defaults);
     * its fields this server does not take are refused, never ignored.
     */
    private SamplingParams.LlamaStages llamaStages(ObjectNode body) {
        for (Map.Entry<String, String> e : REFUSED_LLAMA_FIELDS.entrySet()) {
            JsonNode v = Params.get(body, e.getKey());
            // an empty grammar is none, as llama-server reads it (SillyTavern sends "" when it has none)
            if (v != null && !(e.getKey().equals("grammar") && v.isTextual() && v.textValue().isEmpty())) {
                throw ApiException.unsupported(e.getKey(), "'" + e.getKey() + "' is not supported: " + e.getValue());
            }
        }
        SamplingParams.LlamaStages d = SamplingParams.LlamaStages.DEFAULT;
        Float repeat = Params.number(body, "repeat_penalty", 0, 1000);
        if (repeat != null && repeat == 0) {
            throw ApiException.badValue("repeat_penalty", "'repeat_penalty' must be above 0 (1 is off), got 0");
        }
        // -1: the whole context, as llama-server reads it (the window is cut to the slot's context anyway)
        Long window = wholeContext(Params.integer(body, "repeat_last_n", -1, Sampler.MAX_PENALTY_WINDOW));
        Float typical = Params.number(body, "typical_p", 0, 1);
        Float sigma = Params.number(body, "top_n_sigma", -1000, 1000);
        Float xtcP = Params.number(body, "xtc_probability", 0, 1);
        Float xtcT = Params.number(body, "xtc_threshold", 0, 1);
        Float dryM = Params.number(body, "dry_multiplier", 0, 1000);
        Float dryB = Params.number(body, "dry_base", 1, 1000);
        Long dryL = Params.integer(body, "dry_allowed_length", 0, Integer.MAX_VALUE);
        Long dryN = wholeContext(Params.integer(body, "dry_penalty_last_n", -1, Sampler.MAX_PENALTY_WINDOW));
        List<String> breakers = d.dryBreakers();
        JsonNode br = Params.get(body, "dry_sequence_breakers");
        if (br != null) {
            if (!br.isArray() || br.isEmpty() || br.size() > Sampler.MAX_DRY_BREAKERS) {
                throw ApiException.badRequest("dry_sequence_breakers", "'dry_sequence_breakers' must be an array of 1 to "
                        + Sampler.MAX_DRY_BREAKERS + " strings");
            }
            List<String> list = new ArrayList<>();
            for (JsonNode b : br) {
                int bytes = b.isTextual() ? b.asText().getBytes(java.nio.charset.StandardCharsets.UTF_8).length : -1;
                if (bytes < 1 || bytes > Sampler.MAX_DRY_BREAKER_BYTES || b.asText().indexOf('\0') >= 0) {
                    throw ApiException.badValue("dry_sequence_breakers", "each of 'dry_sequence_breakers' must be a string of 1 to "
                            + Sampler.MAX_DRY_BREAKER_BYTES + " bytes of UTF-8 without NUL");
                }
                list.add(b.asText());
            }
            breakers = list;
        }
        Long mirostat = Params.integer(body, "mirostat", 0, 2);
        Float tau = Params.number(body, "mirostat_tau", 0, Sampler.MAX_MIROSTAT_TAU);
        Float eta = Params.number(body, "mirostat_eta", 0, 1);
        Float dynRange = Params.number(body, "dynatemp_range", 0, 1000);
        Float dynExp = Params.number(body, "dynatemp_exponent", 0, 1000);
        Long minKeep = Params.integer(body, "min_keep", 0, model.vocabSize());
        List<Sampler.Stage> order = d.order();
        JsonNode ss = Params.get(body, "samplers");
        if (ss != null) {
            order = samplers(ss);
        }
        Boolean ignoreEos = Params.bool(body, "ignore_eos");
        return new SamplingParams.LlamaStages(repeat == null ? d.repeatPenalty() : repeat, window == null ? d.penaltyWindow() : window.intValue(),
                typical == null ? d.typicalP() : typical, sigma == null ? d.topNSigma() : sigma, xtcP == null ? d.xtcProbability() : xtcP,
                xtcT == null ? d.xtcThreshold() : xtcT, dryM == null ? d.dryMultiplier() : dryM, dryB == null ? d.dryBase() : dryB,
                dryL == null ? d.dryAllowedLength() : dryL.intValue(), dryN == null ? d.dryWindow() : dryN.intValue(), breakers,
                mirostat == null ? d.mirostat() : mirostat.intValue(), tau == null ? d.mirostatTau() : tau, eta == null ? d.mirostatEta() : eta,
                dynRange == null ? d.dynatempRange() : dynRange, dynExp == null ? d.dynatempExponent() : dynExp,
                minKeep == null ? d.minKeep() : minKeep.intValue(), order, ignoreEos != null && ignoreEos);
    }

    private Map<Integer, Float> logitBias(ObjectNode body) {
        JsonNode lb = Params.get(body, "logit_bias");
        if (lb == null) {
            return Map.of();
        }
        if (!lb.isObject()) {
            throw ApiException.badRequest("logit_bias", "'logit_bias' must be an object mapping token ids to numbers");
        }
        if (lb.size() > MAX_LOGIT_BIAS) {
            throw ApiException.badValue("logit_bias", "'logit_bias' may bias at most " + MAX_LOGIT_BIAS + " tokens, got " + lb.size());
        }
        Map<Integer, Float> out = new LinkedHashMap<>();
        Iterator<Map.Entry<String, JsonNode>> it = lb.fields();
        while (it.hasNext()) {
            Map.Entry<String, JsonNode> e = it.next();
            int token;
            try {
                token = Integer.parseInt(e.getKey());
            } catch (NumberFormatException ex) {
                throw ApiException.badValue("logit_bias", "logit_bias key '" + abbreviate(e.getKey()) + "' is not a token id");
            }
            if (token < 0 || token >= model.vocabSize()) {
                throw ApiException.badValue("logit_bias", "logit_bias token " + token + " is outside the vocabulary (0.."
                        + (model.vocabSize() - 1) + ")");
            }
            if (!e.getValue().isNumber() || !(e.getValue().doubleValue() >= -100 && e.getValue().doubleValue() <= 100)) {
                throw ApiException.badValue("logit_bias", "logit_bias for token " + token + " must be a number from -100 to 100");
            }
            double v = e.getValue().doubleValue();
            out.put(token, v == -100 ? Float.NEGATIVE_INFINITY : (float) v); // -100 bans, as in OpenAI's API
        }
        if (out.size() == model.vocabSize() && out.values().stream().allMatch(b -> b == Float.NEGATIVE_INFINITY)) {
            // nothing left to sample from: llama.cpp's softmax over all -inf is NaN
            throw ApiException.badValue("logit_bias", "logit_bias bans every token of the vocabulary");
        }
        return out;
    }

    private List<String> stops(ObjectNode body, int most) {
        JsonNode s = Params.get(body, "stop");
        if (s == null) {
            return List.of();
        }
        List<String> out = new ArrayList<>();
        if (s.isTextual()) {
            out.add(s.textValue());
        } else if (s.isArray()) {
            if (s.size() > most) {
                throw ApiException.badValue("stop", "'stop' may hold at most " + most + " strings");
            }
            for (JsonNode e : s) {
                if (!e.isTextual()) {
                    throw ApiException.badRequest("stop", "'stop' must be a string or an array of strings");
                }
                out.add(e.textValue());
            }
        } else {
            throw ApiException.badRequest("stop", "'stop' must be a string or an array of strings, got " + Params.kind(s));
        }
        for (String x : out) {
            if (x.isEmpty()) {
                throw ApiException.badValue("stop", "stop strings must not be empty");
            }
        }
        return List.copyOf(out);
    }

    private PromptModel.Message message(JsonNode m, int i) {
        String where = "messages[" + i + "]";
        if (!(m instanceof ObjectNode o)) {
            throw ApiException.badRequest(where, where + " must be an object");
        }
        String role = Params.string(o, "role");
        if (role == null) {
            throw ApiException.badRequest(where + ".role", where + ".role is required");
        }
        if (role.equals("function")) {
            throw ApiException.unsupported(where + ".role", "'function' messages are deprecated and not supported; use 'tool' messages");
        }
        if (!ROLES.contains(role) && !role.equals("tool")) {
            throw ApiException.badValue(where + ".role", where + ".role must be one of system, developer, user, assistant, tool");
        }
        JsonNode c = Params.get(o, "content");
        String content;
        List<java.util.Map<String, Object>> toolCalls = role.equals("assistant") ? ToolMessages.toolCalls(o, where) : null;
        String toolCallId = null;
        if (role.equals("tool")) {
            toolCallId = Params.string(o, "tool_call_id");
            if (toolCallId == null) {
                throw ApiException.badRequest(where + ".tool_call_id", where + ".tool_call_id is required in a tool message");
            }
        }
        if (c == null && toolCalls != null) {
            content = null;
        } else if (c == null) {
            throw ApiException.badRequest(where + ".content", where + ".content is required");
        } else if (c.isTextual()) {
            content = c.textValue();
        } else if (c.isArray()) {
            StringBuilder sb = new StringBuilder();
            for (JsonNode part : c) {
                // an assistant's earlier refusal comes back as a refusal part (OpenAI's assistant content parts: text, refusal)
                String field = part instanceof ObjectNode po && role.equals("assistant") && "refusal".equals(po.path("type").asText())
                        ? "refusal" : "text";
                if (!(part instanceof ObjectNode po) || !field.equals(po.path("type").asText()) || !po.path(field).isTextual()) {
                    throw ApiException.unsupported(where + ".content", "only text content parts are supported"
                            + (role.equals("assistant") ? " (and an assistant's refusal parts)" : ""));
                }
                joinPart(sb, po.get(field).textValue());
            }
            content = sb.toString();
        } else {
            throw ApiException.badRequest(where + ".content", where + ".content must be a string or an array of text parts");
        }
        // an assistant turn's reasoning as the reply gave it (llama-server passes it to the template too)
        String reasoning = role.equals("assistant") ? Params.string(o, "reasoning_content") : null;
        return new PromptModel.Message(role.equals("developer") ? "system" : role, content, toolCalls, toolCallId, Params.string(o, "name"),
                reasoning);
    }

    /**
     * Appends a text part to a message's text: parts are joined with a newline, as llama-server
     * joins them for a template that takes string content (common_chat_msg::to_json_oaicompat), so
     * that two parts do not run into one word.
     */
    static void joinPart(StringBuilder text, String part) {
        if (!text.isEmpty()) {
            text.append('\n');
        }
        text.append(part);
    }

    String checkModel(ObjectNode body) {
        String requested = Params.string(body, "model");
        if (requested != null && !requested.equals(model.id())) {
            throw new ApiException(404, "invalid_request_error", "model_not_found", "model", "the model '" + abbreviate(requested)
                    + "' does not exist; this server serves '" + model.id() + "'");
        }
        return model.id();
    }

    /** Echoes of client input stay short in error messages. */
    static String abbreviate(String s) {
        return s.length() <= 64 ? s : s.substring(0, 61) + "...";
    }
}
