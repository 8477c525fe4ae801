package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The in-place greedy paths pick what llama.cpp's own chain picks. */
class SamplerTest extends StoriesModelTest {
    @Test
    void greedyWithLogitBiasEqualsLlamaCppsChainAndLeavesTheLogitsAsTheyWere() {
        Vocabulary v = model.vocabulary();
        String[] prompts = {"Once upon a time", "Tom had a big", "The cat", "Lily and Ben went to the"};
        try (LlamaContext ctx = model.newContext(TestModels.small(1)); Batch batch = ctx.newBatch(64)) {
            for (String text : prompts) {
                int[] prompt = v.tokenize(text, true, false);
                ctx.clearMemory();
                batch.clear();
                ModelAndContextTest.fill(batch, prompt, 0);
                ctx.decode(batch);
                int last = prompt.length - 1;
                float[] before = ctx.logits(last);
                int top = argmax(before, -1);
                int second = argmax(before, top);
                int low = argmin(before);
                // Ban the best token, push the worst one just above the runner-up, tweak a third.
                Sampler.Builder fast = Sampler.builder(v);
                Sampler.Builder chain = Sampler.builder(v).penalties(64, 1.1f, 0f, 0f); // no history: a no-op stage
                float lift = before[second] - before[low] + 0.5f;
                for (Sampler.Builder b : new Sampler.Builder[] {fast, chain}) {
                    b.logitBias(top, Float.NEGATIVE_INFINITY).logitBias(low, lift).logitBias(second, -0.25f);
                }
                try (Sampler f = fast.build(); Sampler c = chain.build()) {
                    int picked = f.sample(ctx, last);
                    assertThat(picked).as(text).isEqualTo(low);
                    assertThat(picked).as(text + ": same pick as llama.cpp's chain").isEqualTo(c.sample(ctx, last));
                    assertThat(f.sample(ctx, last)).as("sampling again gives the same token").isEqualTo(picked);
                }
                assertThat(ctx.logits(last)).as("logits restored").containsExactly(before);
                try (Sampler plain = Sampler.greedy(v)) {
                    assertThat(plain.sample(ctx, last)).isEqualTo(top);
                }
            }
        }
    }

    private static int argmax(float[] a, int skip) {
        int best = -1;
        for (int i = 0; i < a.length; i++) {
            if (i != skip && (best < 0 || a[i] > a[best])) {
                best = i;
            }
        }
        return best;
    }

    private static int argmin(float[] a) {
        int worst = 0;
        for (int i = 1; i < a.length; i++) {
            if (a[i] < a[worst]) {
                worst = i;
            }
        }
        return worst;
    }
}
