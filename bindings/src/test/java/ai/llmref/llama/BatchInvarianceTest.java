package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** N sequences decoded together (one llama_decode per step) give the same greedy tokens as one at a time. */
class BatchInvarianceTest extends StoriesModelTest {
    static final String[] PROMPTS = {
        "Once upon a time", "The little dog", "Lily wanted to play", "One day, Tom and his mom",
        "The sun was", "A big red ball", "She was very happy because", "In the park there was"
    };
    static final int N = 48;
    @Test
    void sequencesDecodedTogetherMatchSequencesDecodedAlone() {
        List<int[]> alone = new ArrayList<>();
        for (String p : PROMPTS) {
            alone.add(Generation.greedy(model, TestModels.small(1), p, N));
        }
        List<int[]> together = together(PROMPTS.length);
        for (int i = 0; i < PROMPTS.length; i++) {
            assertThat(together.get(i)).as("sequence %d (%s)", i, PROMPTS[i]).containsExactly(alone.get(i));
            assertThat(alone.get(i)).isNotEmpty();
        }
    }

    /** Continuous batching by hand: all prompts in one batch, then one token per live sequence per decode. */
    private List<int[]> together(int n) {
        Vocabulary vocab = model.vocabulary();
        try (LlamaContext ctx = model.newContext(TestModels.small(n)); Batch batch = ctx.newBatch(ctx.batchSize())) {
            List<Sampler> samplers = new ArrayList<>();
            int[][] out = new int[n][N];
            int[] count = new int[n];
            int[] pos = new int[n];
            int[] outputIndex = new int[n];
            boolean[] live = new boolean[n];
            for (int s = 0; s < n; s++) {
                samplers.add(Sampler.greedy(vocab));
                int[] prompt = vocab.tokenize(PROMPTS[s], true, false);
                for (int i = 0; i < prompt.length; i++) {
                    batch.add(prompt[i], pos[s]++, s, i == prompt.length - 1);
                }
                outputIndex[s] = batch.size() - 1;
                live[s] = true;
            }
            ctx.decode(batch);
            while (true) {
                int[] next = new int[n];
                for (int s = 0; s < n; s++) {
                    if (!live[s]) {
                        continue;
                    }
                    int t = samplers.get(s).sample(ctx, outputIndex[s]);
                    if (vocab.isEndOfGeneration(t)) {
                        live[s] = false;
                        continue;
                    }
                    out[s][count[s]++] = t;
                    next[s] = t;
                    if (count[s] == N || pos[s] >= ctx.sequenceContextSize()) {
                        live[s] = false;
                    }
                }
                batch.clear();
                for (int s = 0; s < n; s++) {
                    if (live[s]) {
                        outputIndex[s] = batch.size();
                        batch.add(next[s], pos[s]++, s, true);
                    }
                }
                if (batch.isEmpty()) {
                    break;
                }
                ctx.decode(batch);
            }
            samplers.forEach(Sampler::close);
            List<int[]> result = new ArrayList<>();
            for (int s = 0; s < n; s++) {
                result.add(Arrays.copyOf(out[s], count[s]));
            }
            return result;
        }
    }
}
