package ai.llmref.llama;

/** For the benchmark programs in test sources: package-private switches they compare. */
public final class BenchAccess {
    private BenchAccess() {}

    /** A draw through llama.cpp's chain over a candidates array instead of {@link SoftmaxDraw} or {@link TruncatedDraw}. */
    public static Sampler.Builder llamaChainDraws(Sampler.Builder builder) {
        return builder.javaDraws(false);
    }

    /** The sampler's pick from a logits row (any row of the vocabulary's size, not only a context's). */
    public static int sampleRow(Sampler sampler, java.lang.foreign.MemorySegment row) {
        return sampler.sampleRow(row);
    }
}
