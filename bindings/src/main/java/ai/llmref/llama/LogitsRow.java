package ai.llmref.llama;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Objects;

/**
 * One position's logits from a context's last decode, as {@link SamplingPool#forEachRow} hands
 * them to a task: {@link #size()} floats where llama.cpp keeps them, read-only, and valid during
 * that call only (used after it, every method throws {@link IllegalStateException} instead of
 * reading memory the next decode reuses). Any thread may read a row.
 */
public final class LogitsRow {
    private final MemorySegment row;

    LogitsRow(MemorySegment row) {
        this.row = row;
    }

    /** The number of logits: the vocabulary's size. */
    public int size() {
        return (int) (row.byteSize() / Float.BYTES);
    }

    /** The logit of {@code token}. */
    public float logit(int token) {
        Objects.checkIndex(token, size());
        return row.getAtIndex(ValueLayout.JAVA_FLOAT, token);
    }

    /** A copy of every logit. */
    public float[] toArray() {
        return row.toArray(ValueLayout.JAVA_FLOAT);
    }

    /**
     * {@code log(sum(exp(logit)))}, the log-softmax's normaliser: a token's log-probability is its
     * logit less this. Vectorized, about a fifth of the time of a loop of {@code Math.exp}
     * (docs/bindings.md, "Log-probabilities").
     *
     * @return NaN when a logit is NaN or {@code +infinity}, {@code -infinity} when every logit is
     *     {@code -infinity}
     */
    public double logSumExp() {
        return Logits.logSumExp(row);
    }

    /**
     * The {@code count} highest logits, highest first (equal ones: lower token id first): their
     * tokens into {@code ids}, their logits into {@code values}; returns how many (fewer only on a
     * shorter row). Reads only the blocks of the row that can hold them.
     *
     * @throws IllegalArgumentException when {@code count} is negative or the arrays are shorter
     */
    public int top(int count, int[] ids, float[] values) {
        return Logits.top(row, count, ids, values);
    }
}
