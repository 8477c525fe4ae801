package ai.llmref.llama;

import static ai.llmref.bindings.ffi.llama_h.llama_sampler_clone;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_free;
import static ai.llmref.bindings.ffi.llama_h.llama_sampler_init_dry;

import ai.llmref.llama.internal.Native;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.ref.Cleaner;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * A DRY ("don't repeat yourself") stage made once and copied into chains ({@link
 * Sampler.Builder#dry(DryStage)}). Making one is slow: llama.cpp goes over the whole vocabulary
 * for each sequence breaker ({@code get_overlapping_token_sequences}: about 35 ms for llama-server's
 * four breakers on a 128k vocabulary, 300 ms for sixteen long ones), so it should not happen on
 * the thread that decodes; a copy ({@code llama_sampler_clone}) takes the processed breakers as
 * they are. Make it on a platform thread (a long native call pins a virtual thread). Thread-safe;
 * a stage dropped without {@link #close} is freed once unreachable.
 */
public final class DryStage implements AutoCloseable {
    private static final Cleaner CLEANER = Cleaner.create();

    private final Owned owned;
    private final Cleaner.Cleanable cleanable;

    private DryStage(MemorySegment stage) {
        this.owned = new Owned(stage);
        this.cleanable = CLEANER.register(this, owned);
    }

    /**
     * A DRY stage: a token that would extend a sequence repeated from the last {@code lastN}
     * tokens beyond {@code allowedLength} has {@code multiplier * base^(length - allowedLength)}
     * taken from its logit; a repetition does not run across a {@code breakers} text.
     *
     * @param multiplier above 0
     * @param base at least 1 (llama.cpp turns the stage off below 1, silently)
     * @param lastN 1 .. {@link Sampler#MAX_PENALTY_WINDOW}
     * @param breakers at most {@link Sampler#MAX_DRY_BREAKERS}, each 1 .. {@link Sampler#MAX_DRY_BREAKER_BYTES} UTF-8 bytes, without NUL
     */
    public static DryStage create(Vocabulary vocabulary, float multiplier, float base, int allowedLength, int lastN, List<String> breakers) {
        check(multiplier, base, allowedLength, lastN, breakers);
        if (!(multiplier > 0) || lastN == 0) {
            throw new InvalidInputException("llama_sampler_init_dry", "a DRY stage needs a multiplier above 0 and a window of at least 1 token");
        }
        LlamaModel model = vocabulary.model();
        model.acquire();
        try {
            return new DryStage(init(vocabulary.handle(), multiplier, base, allowedLength, lastN, breakers));
        } finally {
            model.release();
        }
    }

    /**
     * llama.cpp's DRY stage over a vocabulary the caller holds open (checked settings); the
     * breakers' C strings live only for the call: llama.cpp copies them.
     */
    static MemorySegment init(MemorySegment vocab, float multiplier, float base, int allowedLength, int lastN, List<String> breakers) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment array = arena.allocate(ValueLayout.ADDRESS, Math.max(1, breakers.size()));
            for (int i = 0; i < breakers.size(); i++) {
                array.setAtIndex(ValueLayout.ADDRESS, i, Native.cString(arena, breakers.get(i), "llama_sampler_init_dry", "a sequence breaker"));
            }
            return llama_sampler_init_dry(vocab, multiplier, base, allowedLength, lastN, breakers.isEmpty() ? MemorySegment.NULL : array,
                    breakers.size());
        }
    }

    /** The checks of {@link #create} (and of {@link Sampler.Builder#dry(float, float, int, int, List)}), before llama.cpp. */
    static void check(float multiplier, float base, int allowedLength, int lastN, List<String> breakers) {
        String fn = "llama_sampler_init_dry";
        if (!(multiplier >= 0) || !Float.isFinite(multiplier)) {
            throw new InvalidInputException(fn, "dry_multiplier must be finite and >= 0, got " + multiplier);
        }
        if (!(base >= 1) || !Float.isFinite(base)) {
            throw new InvalidInputException(fn, "dry_base must be finite and >= 1, got " + base);
        }
        if (allowedLength < 0) {
            throw new InvalidInputException(fn, "dry_allowed_length must be >= 0, got " + allowedLength);
        }
        if (lastN < 0 || lastN > Sampler.MAX_PENALTY_WINDOW) {
            throw new InvalidInputException(fn, "dry_penalty_last_n must be 0.." + Sampler.MAX_PENALTY_WINDOW + " tokens, got " + lastN);
        }
        if (breakers.size() > Sampler.MAX_DRY_BREAKERS) {
            throw new InvalidInputException(fn, "at most " + Sampler.MAX_DRY_BREAKERS + " sequence breakers, got " + breakers.size());
        }
        for (String b : breakers) {
            int bytes = b.getBytes(StandardCharsets.UTF_8).length;
            if (b.isEmpty() || bytes > Sampler.MAX_DRY_BREAKER_BYTES || b.indexOf('\0') >= 0) {
                throw new InvalidInputException(fn, "a sequence breaker must be 1.." + Sampler.MAX_DRY_BREAKER_BYTES
                        + " bytes of UTF-8 without NUL, got " + bytes + " bytes");
            }
        }
    }

    /** A copy for a chain, which owns it from then on. */
    MemorySegment copy() {
        synchronized (owned) {
            if (owned.stage == null) {
                throw new IllegalStateException("the DRY stage is closed");
            }
            return llama_sampler_clone(owned.stage);
        }
    }

    @Override
    public void close() {
        cleanable.clean();
    }

    /** The prototype's native stage, freed by {@link #close} or by the cleaner. */
    private static final class Owned implements Runnable {
        MemorySegment stage;

        Owned(MemorySegment stage) {
            this.stage = stage;
        }

        @Override
        public synchronized void run() {
            if (stage != null) {
                llama_sampler_free(stage);
                stage = null;
            }
        }
    }
}
