package ai.llmref.llama;

import ai.llmref.bindings.ffi.llama_batch;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A reusable batch of tokens for {@link LlamaContext#decode}: fill it with {@link #add}, decode,
 * {@link #clear()}, repeat. Its native memory is allocated once; adding a token writes four values
 * and allocates nothing. Every value is checked as it is added (token id, position, sequence id,
 * capacity), so llama.cpp never sees an invalid batch. Belongs to its context's thread.
 */
public final class Batch implements AutoCloseable {
    private final LlamaContext context;
    private final Arena arena;
    final MemorySegment struct;
    private final MemorySegment tokens;
    private final MemorySegment positions;
    private final MemorySegment seqCounts;
    private final MemorySegment seqIds;
    private final MemorySegment outputFlags;
    private final int capacity;
    private final int maxSeqPerToken;
    private final int vocabSize;
    private final int maxPosition;
    private final int maxSequences;
    /** One KV stream for all sequences: a token may belong to several (else llama.cpp cannot place it). */
    private final boolean sharedTokens;
    final boolean[] outputs;
    int size;
    private boolean closed;

    Batch(LlamaContext context, int capacity, int vocabSize, int maxPosition, int maxSequences, boolean sharedTokens) {
        this.context = context;
        this.sharedTokens = sharedTokens;
        this.capacity = capacity;
        this.vocabSize = vocabSize;
        this.maxPosition = maxPosition;
        this.maxSequences = maxSequences;
        this.maxSeqPerToken = maxSequences;
        this.arena = Arena.ofConfined();
        this.struct = llama_batch.allocate(arena);
        this.tokens = arena.allocate(ValueLayout.JAVA_INT, capacity);
        this.positions = arena.allocate(ValueLayout.JAVA_INT, capacity);
        this.seqCounts = arena.allocate(ValueLayout.JAVA_INT, capacity);
        this.seqIds = arena.allocate(ValueLayout.JAVA_INT, (long) capacity * maxSeqPerToken);
        MemorySegment seqPtrs = arena.allocate(ValueLayout.ADDRESS, capacity);
        for (int i = 0; i < capacity; i++) {
            seqPtrs.setAtIndex(ValueLayout.ADDRESS, i, seqIds.asSlice((long) i * maxSeqPerToken * Integer.BYTES));
        }
        this.outputFlags = arena.allocate(ValueLayout.JAVA_BYTE, capacity);
        this.outputs = new boolean[capacity];
        llama_batch.n_tokens(struct, 0);
        llama_batch.token(struct, tokens);
        llama_batch.embd(struct, MemorySegment.NULL);
        llama_batch.pos(struct, positions);
        llama_batch.n_seq_id(struct, seqCounts);
        llama_batch.seq_id(struct, seqPtrs);
        llama_batch.logits(struct, outputFlags);
    }

    /**
     * Appends one token of one sequence.
     *
     * @param wantOutput compute logits (or embeddings) for this position
     */
    public Batch add(int token, int position, int sequence, boolean wantOutput) {
        checkAdd(token, position);
        if (sequence < 0 || sequence >= maxSequences) {
            throw new InvalidInputException("llama_decode", "sequence id " + sequence + " is outside 0.." + (maxSequences - 1)
                    + " (the context holds " + maxSequences + " sequences)");
        }
        int i = size;
        tokens.setAtIndex(ValueLayout.JAVA_INT, i, token);
        positions.setAtIndex(ValueLayout.JAVA_INT, i, position);
        seqCounts.setAtIndex(ValueLayout.JAVA_INT, i, 1);
        seqIds.setAtIndex(ValueLayout.JAVA_INT, (long) i * maxSeqPerToken, sequence);
        outputFlags.setAtIndex(ValueLayout.JAVA_BYTE, i, wantOutput ? (byte) 1 : 0);
        outputs[i] = wantOutput;
        size = i + 1;
        return this;
    }

    /**
     * Appends one token shared by several sequences (e.g. a common prompt prefix). Each sequence at
     * most once; several need a unified KV cache ({@link ContextParams#withUnifiedKv}): with a KV
     * stream per sequence llama.cpp cannot place a shared token and refuses the whole batch.
     */
    public Batch add(int token, int position, int[] sequences, boolean wantOutput) {
        checkAdd(token, position);
        if (sequences.length == 0 || sequences.length > maxSeqPerToken) {
            throw new InvalidInputException("llama_decode", "a token must belong to 1.." + maxSeqPerToken
                    + " sequences, got " + sequences.length);
        }
        for (int k = 0; k < sequences.length; k++) {
            int s = sequences[k];
            if (s < 0 || s >= maxSequences) {
                throw new InvalidInputException("llama_decode", "sequence id " + s + " is outside 0.." + (maxSequences - 1));
            }
            for (int j = 0; j < k; j++) {
                if (sequences[j] == s) {
                    throw new InvalidInputException("llama_decode", "sequence id " + s + " is given twice for one token");
                }
            }
        }
        if (sequences.length > 1 && !sharedTokens) {
            throw new InvalidInputException("llama_decode", "a token shared by several sequences needs a unified KV cache"
                    + " (ContextParams.withUnifiedKv(true)); this context keeps a KV stream per sequence");
        }
        int i = size;
        tokens.setAtIndex(ValueLayout.JAVA_INT, i, token);
        positions.setAtIndex(ValueLayout.JAVA_INT, i, position);
        seqCounts.setAtIndex(ValueLayout.JAVA_INT, i, sequences.length);
        for (int k = 0; k < sequences.length; k++) {
            seqIds.setAtIndex(ValueLayout.JAVA_INT, (long) i * maxSeqPerToken + k, sequences[k]);
        }
        outputFlags.setAtIndex(ValueLayout.JAVA_BYTE, i, wantOutput ? (byte) 1 : 0);
        outputs[i] = wantOutput;
        size = i + 1;
        return this;
    }

    /** Sequence {@code k} of position {@code i}, in the order they were added. */
    int sequence(int i, int k) {
        return seqIds.getAtIndex(ValueLayout.JAVA_INT, (long) i * maxSeqPerToken + k);
    }

    /** True when one of position {@code i}'s sequences passes {@code test}. */
    boolean anySequence(int i, java.util.function.IntPredicate test) {
        int n = seqCounts.getAtIndex(ValueLayout.JAVA_INT, i);
        for (int k = 0; k < n; k++) {
            if (test.test(seqIds.getAtIndex(ValueLayout.JAVA_INT, (long) i * maxSeqPerToken + k))) {
                return true;
            }
        }
        return false;
    }

    private void checkAdd(int token, int position) {
        if (closed) {
            throw new IllegalStateException("batch is closed");
        }
        context.checkThread();
        if (size >= capacity) {
            throw new InvalidInputException("llama_decode", "batch is full (capacity " + capacity + " tokens)");
        }
        if (token < 0 || token >= vocabSize) {
            throw new InvalidInputException("llama_decode", "token id " + token + " is outside the vocabulary (0.." + (vocabSize - 1) + ")");
        }
        if (position < 0) {
            throw new InvalidInputException("llama_decode", "position " + position + " is negative");
        }
        if (position >= maxPosition) {
            throw new ContextOverflowException("llama_decode", "position " + position + " is beyond the sequence's context ("
                    + maxPosition + " positions)");
        }
    }

    /** Empties the batch for reuse. */
    public void clear() {
        size = 0;
    }

    public int size() {
        return size;
    }

    public int capacity() {
        return capacity;
    }

    public boolean isEmpty() {
        return size == 0;
    }

    LlamaContext context() {
        return context;
    }

    boolean isClosed() {
        return closed;
    }

    @Override
    public void close() {
        if (!closed) {
            context.checkThread();
            closed = true;
            arena.close();
        }
    }
}
