package ai.llmref.llama;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * Base of the test classes that share one load of stories260K per class (with the run's GPU
 * layers, {@link TestModels#params()}). Test classes run one after the other, so each class loads
 * the model before its tests and closes it after them.
 */
abstract class StoriesModelTest {
    static LlamaModel model;

    @BeforeAll
    static void loadStoriesModel() {
        model = LlamaModel.load(TestModels.stories(), TestModels.params());
    }

    @AfterAll
    static void closeStoriesModel() {
        model.close();
    }

    /**
     * Logits rows of the model's vocabulary size in {@code arena}, for the draw tests: the real
     * ones of a decode (every position of a story's opening), then one made-up row per scale,
     * Gaussian with that standard deviation (flat to peaked, no ties).
     */
    static List<MemorySegment> logitRows(Arena arena, long seed, double... scales) {
        List<MemorySegment> rows = new ArrayList<>();
        try (LlamaContext ctx = model.newContext(TestModels.small(1)); Batch batch = ctx.newBatch(256)) {
            int[] prompt = model.vocabulary().tokenize("Once upon a time, there was a little", true, false);
            for (int i = 0; i < prompt.length; i++) {
                batch.add(prompt[i], i, 0, true);
            }
            ctx.decode(batch);
            for (int i = 0; i < prompt.length; i++) {
                rows.add(arena.allocateFrom(ValueLayout.JAVA_FLOAT, ctx.logits(i)));
            }
        }
        Random random = new Random(seed);
        int n = model.vocabulary().size();
        for (double scale : scales) {
            float[] a = new float[n];
            for (int i = 0; i < n; i++) {
                a[i] = (float) (random.nextGaussian() * scale);
            }
            rows.add(arena.allocateFrom(ValueLayout.JAVA_FLOAT, a));
        }
        return rows;
    }
}
