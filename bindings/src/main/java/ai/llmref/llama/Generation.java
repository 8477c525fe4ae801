package ai.llmref.llama;

import java.util.Arrays;

/** Ready-made loops over the primitives: the reference uses of the API (see docs/bindings.md). */
public final class Generation {
    private Generation() {}

    /**
     * Greedy continuation of {@code prompt} (tokenized with the model's BOS rule), up to
     * {@code maxTokens} new tokens or the end of generation. Creates and frees its own context.
     */
    public static int[] greedy(LlamaModel model, ContextParams params, String prompt, int maxTokens) {
        Vocabulary vocab = model.vocabulary();
        int[] promptTokens = vocab.tokenize(prompt, true, false);
        try (LlamaContext ctx = model.newContext(params);
                Batch batch = ctx.newBatch(Math.min(ctx.batchSize(), Math.max(promptTokens.length, 1)));
                Sampler sampler = Sampler.greedy(vocab)) {
            return continueGreedy(ctx, batch, sampler, promptTokens, 0, maxTokens);
        }
    }

    /** Feeds {@code prompt} to sequence {@code seq} in batch-sized chunks, then decodes greedily. */
    static int[] continueGreedy(LlamaContext ctx, Batch batch, Sampler sampler, int[] prompt, int seq, int maxTokens) {
        Vocabulary vocab = ctx.model().vocabulary();
        int pos = 0;
        for (int start = 0; start < prompt.length; start += batch.capacity()) {
            int end = Math.min(prompt.length, start + batch.capacity());
            batch.clear();
            for (int i = start; i < end; i++) {
                batch.add(prompt[i], pos++, seq, i == prompt.length - 1);
            }
            ctx.decode(batch);
        }
        int[] out = new int[maxTokens];
        int n = 0;
        int last = batch.size() - 1;
        while (n < maxTokens) {
            int token = sampler.sample(ctx, last);
            if (vocab.isEndOfGeneration(token)) {
                break;
            }
            out[n++] = token;
            if (n == maxTokens || pos >= ctx.sequenceContextSize()) {
                break;
            }
            batch.clear();
            batch.add(token, pos++, seq, true);
            ctx.decode(batch);
            last = 0;
        }
        return Arrays.copyOf(out, n);
    }
}
