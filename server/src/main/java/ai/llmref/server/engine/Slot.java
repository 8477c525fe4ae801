package ai.llmref.server.engine;

import ai.llmref.llama.Sampler;
import ai.llmref.llama.StreamingDetokenizer;
import java.util.Arrays;

/** One sequence of the context and the request it is serving. Scheduler thread only. */
final class Slot {
    final int sequence;
    /** Tokens whose KV entries this sequence holds, positions 0..cachedLength-1 (for prefix reuse). */
    int[] cached = new int[0];
    int cachedLength;

    RequestHandle handle;
    int[] prompt;
    int prefillNext;
    int reusedPrefix;
    int position;
    int generated;
    /** {@link #generated} as the last Text event counted it. */
    int countedTokens;
    int lastToken;
    /** A generated token whose text is not yet made (emit during decode), or -1. */
    int pendingToken = -1;
    int outputIndex = -1;
    Sampler sampler;
    /**
     * A greedy chain attached to this slot's sequence for backend sampling, kept across requests, or
     * null; while the slot serves a request, set exactly when that request samples on the device.
     */
    Sampler deviceSampler;
    /** The logit bias {@link #deviceSampler} applies. */
    java.util.Map<Integer, Float> deviceBias = java.util.Map.of();
    StreamingDetokenizer detokenizer;
    StopMatcher stops;
    /** The request's grammar that applies from a point of the output on, while that point is not yet found; else null. */
    LateGrammar late;
    /**
     * While {@link #late} is looked for: its opening pattern's text so far (the output from its
     * start), or the end of the output that could begin its literal.
     */
    StringBuilder lateText;
    /** While {@link #late} is looked for: its preamble, until the output has left it; else null. */
    LateGrammar.Preamble latePreamble;
    /** The request's reasoning budget while it may still be spent (its tracker), else null. */
    ReasoningBudget budget;
    ReasoningBudget.Tracker budgetTracker;
    /** The request's line limits, followed over its output; null: none. */
    LineLimits.Tracker lines;
    /** Tokens written in the model's place (a spent reasoning budget's), from {@link #forcedNext} on; else null. */
    int[] forced;
    int forcedNext;
    /** A required late grammar's chain, made when the request starts, until it takes over; else null. */
    Sampler lateChain;
    /** The generated tokens (the first {@code generated}; grown as needed), for a chain built part-way through the output. */
    int[] output = new int[64];
    /** The request's token log-probabilities, or null when it did not ask for them. */
    LogprobTrack logprobs;
    /** The prompt's, while it is decoded, for a request that asked for them; else null. */
    java.util.List<TokenLogprob> promptLogprobs;
    /** Where this step's prompt chunk starts: its first batch index and prompt index (prompt log-probabilities). */
    int chunkBatchIndex;
    int chunkPromptIndex;
    int chunkLength;
    long startedNanos;
    long prefillDoneNanos;
    long firstTokenNanos;
    long lastTokenNanos;

    Slot(int sequence) {
        this.sequence = sequence;
    }

    boolean busy() {
        return handle != null;
    }

    boolean prefilling() {
        return busy() && prefillNext < prompt.length;
    }

    /** Length of the common prefix of this slot's cached tokens and {@code tokens}. */
    int commonPrefix(int[] tokens) {
        int n = Math.min(cachedLength, tokens.length);
        int i = 0;
        while (i < n && cached[i] == tokens[i]) {
            i++;
        }
        return i;
    }

    void remember(int token, int pos) {
        if (pos >= cached.length) {
            cached = Arrays.copyOf(cached, Math.max(16, Math.max(pos + 1, cached.length * 2)));
        }
        cached[pos] = token;
        cachedLength = pos + 1;
    }

    /** Detaches and frees the device chain (the next decode copies this sequence's logits out again). */
    void dropDeviceSampler() {
        if (deviceSampler != null) {
            deviceSampler.close(); // detaches first
            deviceSampler = null;
            deviceBias = java.util.Map.of();
        }
    }

    void release() {
        if (sampler != null) {
            sampler.close();
        }
        if (lateChain != null) {
            lateChain.close();
        }
        handle = null;
        prompt = null;
        sampler = null;
        detokenizer = null;
        stops = null;
        late = null;
        lateText = null;
        latePreamble = null;
        lateChain = null;
        budget = null;
        budgetTracker = null;
        lines = null;
        forced = null;
        logprobs = null;
        promptLogprobs = null;
        chunkLength = 0;
        outputIndex = -1;
        pendingToken = -1;
    }
}
