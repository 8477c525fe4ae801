package ai.llmref.llama;

import static ai.llmref.bindings.ffi.llama_h.llama_get_logits_ith;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * {@link LlamaContext#logitsRow}: after a decode the rows of every output come from one
 * {@code llama_get_logits} (llama.cpp keeps them in batch order), and each is the row
 * {@code llama_get_logits_ith} gives for that position, also for a batch whose sequences llama.cpp
 * computes in another order than the batch's and then puts back in order.
 */
class OutputRowsTest extends StoriesModelTest {
    private static final String[] PROMPTS = {"Once upon a time", "Tom had a big", "The cat sat", "Lily and Ben went to the"};

    /**
     * The sequences' tokens interleaved, the highest sequence id first, with an output every third
     * token and at each prompt's end (sequence {@code lastOnly} at its end only, as backend sampling
     * requires): returns the output positions (and adds their sequences to {@code sequences}).
     */
    private static List<Integer> interleaved(Batch batch, Vocabulary v, List<Integer> sequences, int lastOnly) {
        int n = PROMPTS.length;
        int[][] prompts = new int[n][];
        int longest = 0;
        for (int s = 0; s < n; s++) {
            prompts[s] = v.tokenize(PROMPTS[s], true, false);
            longest = Math.max(longest, prompts[s].length);
        }
        List<Integer> outputs = new ArrayList<>();
        batch.clear();
        for (int i = 0; i < longest; i++) {
            for (int s = n - 1; s >= 0; s--) {
                if (i < prompts[s].length) {
                    boolean output = i % 3 == 2 && s != lastOnly || i == prompts[s].length - 1;
                    if (output) {
                        outputs.add(batch.size());
                        sequences.add(s);
                    }
                    batch.add(prompts[s][i], i, s, output);
                }
            }
        }
        return outputs;
    }

    private static void assertRowsAreLlamaCpps(LlamaContext ctx, List<Integer> outputs, int vocab) {
        List<Integer> order = new ArrayList<>(outputs);
        Collections.shuffle(order, new Random(7)); // the first read is not the first row
        MemorySegment raw = ctx.checkOpen();
        for (int i : order) {
            MemorySegment row = ctx.logitsRow(i, MemorySegment.NULL, "test");
            MemorySegment expected = llama_get_logits_ith(raw, i);
            assertThat(row.address()).as("position %d", i).isEqualTo(expected.address());
            assertThat(row.byteSize()).isEqualTo((long) vocab * Float.BYTES);
            assertThat(ctx.logitsRow(i, row, "test")).as("the same row again is the segment given").isSameAs(row);
            assertThat(row.toArray(ValueLayout.JAVA_FLOAT)).isEqualTo(ctx.logits(i));
        }
    }

    @Test
    void eachRowIsTheOneLlamaCppGivesForItsPosition() {
        Vocabulary v = model.vocabulary();
        try (LlamaContext ctx = model.newContext(TestModels.small(PROMPTS.length)); Batch batch = ctx.newBatch(128)) {
            List<Integer> outputs = interleaved(batch, v, new ArrayList<>(), -1);
            assertThat(outputs).hasSizeGreaterThan(PROMPTS.length);
            ctx.decode(batch);
            assertRowsAreLlamaCpps(ctx, outputs, v.size());
            // a position without an output, and one past the batch, are refused as before
            int without = 0;
            while (outputs.contains(without)) {
                without++;
            }
            int none = without;
            assertThatThrownBy(() -> ctx.logitsRow(none, MemorySegment.NULL, "test")).isInstanceOf(InvalidInputException.class);
            assertThatThrownBy(() -> ctx.logitsRow(batch.size(), MemorySegment.NULL, "test")).isInstanceOf(InvalidInputException.class);

            // the next decode (one token per sequence, fewer outputs) gives its own rows
            MemorySegment before = ctx.logitsRow(outputs.get(0), MemorySegment.NULL, "test");
            int[] next = new int[PROMPTS.length];
            for (int s = 0; s < PROMPTS.length; s++) {
                next[s] = v.tokenize(PROMPTS[s], true, false).length;
            }
            batch.clear();
            for (int s = PROMPTS.length - 1; s >= 0; s--) {
                batch.add(1 + s, next[s], s, s % 2 == 0);
            }
            ctx.decode(batch);
            assertRowsAreLlamaCpps(ctx, List.of(1, 3), v.size());
            assertThatThrownBy(() -> ctx.logitsRow(0, before, "test")).isInstanceOf(InvalidInputException.class);

            // a step of the same shape: llama.cpp's rows stay where they were, and a kept row is
            // handed back as it is (no new segment a step)
            MemorySegment kept = ctx.logitsRow(3, MemorySegment.NULL, "test");
            batch.clear();
            for (int s = PROMPTS.length - 1; s >= 0; s--) {
                batch.add(5 + s, next[s] + 1, s, s % 2 == 0);
            }
            ctx.decode(batch);
            assertRowsAreLlamaCpps(ctx, List.of(1, 3), v.size());
            assertThat(ctx.logitsRow(3, kept, "test")).isSameAs(kept);
        }
    }

    @Test
    void withAChainOnTheDeviceTheHostRowsAreStillLlamaCpps() {
        Vocabulary v = model.vocabulary();
        try (LlamaContext ctx = model.newContext(TestModels.small(PROMPTS.length)); Batch batch = ctx.newBatch(128);
                Sampler greedy = Sampler.greedy(v)) {
            assertThat(ctx.attachSampler(0, greedy)).isTrue();
            List<Integer> sequences = new ArrayList<>();
            List<Integer> outputs = interleaved(batch, v, sequences, 0);
            ctx.decode(batch);
            // sequence 0's rows stay on the device; every other output is read as llama.cpp gives it
            List<Integer> host = new ArrayList<>();
            for (int k = 0; k < outputs.size(); k++) {
                if (sequences.get(k) != 0) {
                    host.add(outputs.get(k));
                } else {
                    int i = outputs.get(k);
                    assertThatThrownBy(() -> ctx.logitsRow(i, MemorySegment.NULL, "test")).isInstanceOf(InvalidInputException.class);
                }
            }
            assertThat(host).hasSizeGreaterThan(2).hasSizeLessThan(outputs.size());
            assertRowsAreLlamaCpps(ctx, host, v.size());
        }
    }
}
