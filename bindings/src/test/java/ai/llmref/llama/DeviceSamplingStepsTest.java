package ai.llmref.llama;

import static ai.llmref.llama.TestModels.argmax;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import org.junit.jupiter.api.Test;

/**
 * Backend sampling ({@link LlamaContext#attachSampler}) when the attachments change between a
 * decode and its sample: what a step samples is decided by what the last decode did (llama.cpp
 * picked the token on the device, or copied the logits out), not by what is attached when {@link
 * Sampler#sample} is called. Each device pick is compared with the first maximum of the logits of a
 * second context of the same parameters fed the same batches with no chain attached.
 */
class DeviceSamplingStepsTest extends StoriesModelTest {
    private static final String PROMPT = "Once upon a time";

    /** Two contexts of the same parameters fed the same batches: {@code ctx} may sample on the device, {@code ref} keeps every logit. */
    private static final class Pair implements AutoCloseable {
        final LlamaContext ctx;
        final LlamaContext ref;
        final Batch batch;
        final Batch refBatch;

        Pair(ContextParams params) {
            ctx = model.newContext(params);
            ref = model.newContext(params);
            batch = ctx.newBatch(64);
            refBatch = ref.newBatch(64);
        }

        /** Decodes {@code tokens} at positions {@code from..} in each of {@code sequences}, the last an output; returns its index. */
        int decode(int[] tokens, int from, int... sequences) {
            for (Batch b : new Batch[] {batch, refBatch}) {
                b.clear();
                for (int i = 0; i < tokens.length; i++) {
                    b.add(tokens[i], from + i, sequences, i == tokens.length - 1);
                }
            }
            ctx.decode(batch);
            ref.decode(refBatch);
            return tokens.length - 1;
        }

        @Override
        public void close() {
            batch.close();
            refBatch.close();
            ctx.close();
            ref.close();
        }
    }

    /** The first maximum of {@code logits} with {@code banned} left out (a -infinity logit bias on it). */
    private static int argmaxWithout(float[] logits, int banned) {
        float[] l = logits.clone();
        l[banned] = Float.NEGATIVE_INFINITY;
        return argmax(l);
    }

    /** The most likely token after {@code prompt} (one sequence, nothing attached). */
    private static int topAfter(int[] prompt) {
        try (Pair p = new Pair(TestModels.small(1))) {
            return argmax(p.ref.logits(p.decode(prompt, 0, 0)));
        }
    }

    @Test
    void aRefusedAttachLeavesTheSequencesChainAttached() {
        Vocabulary v = model.vocabulary();
        int[] prompt = v.tokenize(PROMPT, true, false);
        try (Pair p = new Pair(TestModels.small(2)); Sampler a = Sampler.greedy(v); Sampler other = Sampler.greedy(v);
                Sampler drawn = Sampler.builder(v).temperature(0.8f).seed(3).build()) {
            LlamaContext ctx = p.ctx;
            assertThat(ctx.attachSampler(0, a)).isTrue();
            assertThat(ctx.attachSampler(1, other)).isTrue();
            Sampler closed = Sampler.greedy(v);
            closed.close();
            assertThatThrownBy(() -> ctx.attachSampler(0, closed)).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("closed");
            assertThatThrownBy(() -> ctx.attachSampler(0, other)).as("attached to sequence 1").isInstanceOf(IllegalStateException.class);
            assertThatThrownBy(() -> ctx.attachSampler(0, drawn)).as("not offloadable").isInstanceOf(InvalidInputException.class);
            assertThat(ctx.attachedSampler(0)).as("the refused attaches left sequence 0's chain").isSameAs(a);
            assertThat(a.attachedTo()).isSameAs(ctx);
            assertThat(ctx.attachedSampler(1)).isSameAs(other);

            // and llama.cpp still samples sequence 0 with it
            int last = p.decode(prompt, 0, 0);
            assertThatThrownBy(() -> ctx.logits(last)).as("sampled on the device").isInstanceOf(InvalidInputException.class)
                    .hasMessageContaining("on the device");
            assertThat(a.sample(ctx, last)).isEqualTo(argmax(p.ref.logits(last)));
        }
    }

    @Test
    void aChainAttachedAfterADecodeSamplesThatDecodesLogitsOnTheHost() {
        Vocabulary v = model.vocabulary();
        int[] prompt = v.tokenize(PROMPT, true, false);
        int top = topAfter(prompt); // the biased chains below ban it
        try (Pair p = new Pair(TestModels.small(2)); Sampler a = Sampler.builder(v).logitBias(top, Float.NEGATIVE_INFINITY).build();
                Sampler b = Sampler.builder(v).logitBias(top, Float.NEGATIVE_INFINITY).build();
                SamplingPool pool = new SamplingPool(1)) {
            LlamaContext ctx = p.ctx;
            int last = p.decode(prompt, 0, 0); // nothing attached: the logits are copied out
            float[] expected = p.ref.logits(last);
            int pick = argmaxWithout(expected, top);
            assertThat(ctx.attachSampler(0, a)).isTrue();
            assertThat(ctx.logits(last)).as("the decode before the attach copied the logits").containsExactly(expected, within(0f));
            assertThat(a.sample(ctx, last)).as("the attach takes effect from the next decode").isEqualTo(pick);

            // the same through the sampling pool (Sampler.hostRow)
            ctx.detachSampler(0);
            assertThat(ctx.attachSampler(0, b)).isTrue();
            int[] tokens = new int[1];
            RuntimeException[] errors = new RuntimeException[1];
            pool.sample(ctx, new Sampler[] {b}, new int[] {last}, 1, tokens, errors);
            assertThat(errors[0]).isNull();
            assertThat(tokens[0]).isEqualTo(pick);

            // the next decode samples on the device
            p.decode(new int[] {pick}, prompt.length, 0);
            assertThatThrownBy(() -> ctx.logits(0)).isInstanceOf(InvalidInputException.class).hasMessageContaining("on the device");
            assertThat(b.sample(ctx, 0)).isEqualTo(argmaxWithout(p.ref.logits(0), top));
        }
    }

    @Test
    void aChainDetachedAfterADecodeStillReadsTheTokenItPickedOnTheDevice() {
        Vocabulary v = model.vocabulary();
        int[] prompt = v.tokenize(PROMPT, true, false);
        int top = topAfter(prompt); // the biased chains below ban it
        try (Pair p = new Pair(TestModels.small(2)); Sampler a = Sampler.builder(v).logitBias(top, Float.NEGATIVE_INFINITY).build();
                Sampler b = Sampler.builder(v).logitBias(top, Float.NEGATIVE_INFINITY).build();
                Sampler other = Sampler.greedy(v); Sampler host = Sampler.greedy(v);
                SamplingPool pool = new SamplingPool(1)) {
            LlamaContext ctx = p.ctx;
            assertThat(ctx.attachSampler(0, a)).isTrue();
            assertThat(ctx.attachSampler(1, other)).isTrue();
            int last = p.decode(prompt, 0, 0);
            int pick = argmaxWithout(p.ref.logits(last), top);
            ctx.detachSampler(0);
            assertThat(a.attachedTo()).isNull();
            assertThat(a.sample(ctx, last)).as("the biased pick made on the device at the decode").isEqualTo(pick);
            assertThat(a.sample(ctx, last)).as("read again").isEqualTo(pick);
            assertThatThrownBy(() -> other.sample(ctx, last)).as("another sequence's chain")
                    .isInstanceOf(InvalidInputException.class).hasMessageContaining("sequence 0");
            assertThatThrownBy(() -> host.sample(ctx, last)).as("a chain that samples on the host: no logits came back")
                    .isInstanceOf(InvalidInputException.class).hasMessageContaining("on the device")
                    .hasMessageNotContaining("detach the sampler to read");
            assertThatThrownBy(() -> ctx.logits(last)).isInstanceOf(InvalidInputException.class);

            // the same through the sampling pool (Sampler.hostRow), the next step with a new chain detached after its decode
            assertThat(ctx.attachSampler(0, b)).isTrue();
            p.decode(new int[] {pick}, prompt.length, 0);
            int next = argmaxWithout(p.ref.logits(0), top);
            ctx.detachSampler(0);
            int[] tokens = new int[2];
            RuntimeException[] errors = new RuntimeException[2];
            pool.sample(ctx, new Sampler[] {b, host}, new int[] {0, 0}, 2, tokens, errors);
            assertThat(errors[0]).isNull();
            assertThat(tokens[0]).isEqualTo(next);
            assertThat(errors[1]).isInstanceOf(InvalidInputException.class);
        }
    }

    @Test
    void aTokenOfSeveralSequencesIsSampledOnTheDeviceForItsFirstSequence() {
        Vocabulary v = model.vocabulary();
        int[] prompt = v.tokenize(PROMPT, true, false);
        try (Pair p = new Pair(TestModels.small(2).withUnifiedKv(true)); Sampler a = Sampler.greedy(v); Sampler host = Sampler.greedy(v)) {
            LlamaContext ctx = p.ctx;
            assertThat(ctx.attachSampler(0, a)).isTrue();

            // first sequence 1, which has no chain: llama.cpp samples nothing on the device and copies the logits
            int last = p.decode(prompt, 0, 1, 0);
            float[] expected = p.ref.logits(last);
            assertThat(ctx.logits(last)).containsExactly(expected, within(0f));
            assertThat(host.sample(ctx, last)).isEqualTo(argmax(expected));
            assertThat(a.sample(ctx, last)).as("no device pick: the chain samples the host's logits").isEqualTo(argmax(expected));

            // first sequence 0: the row is picked on the device by sequence 0's chain, and copied out for sequence 1
            ctx.clearMemory();
            p.ref.clearMemory();
            p.decode(prompt, 0, 0, 1);
            float[] expected2 = p.ref.logits(last);
            assertThat(a.sample(ctx, last)).isEqualTo(argmax(expected2));
            assertThat(ctx.logits(last)).as("copied out for sequence 1, which has no chain").containsExactly(expected2, within(0f));
            assertThat(host.sample(ctx, last)).isEqualTo(argmax(expected2));
        }
    }
}
