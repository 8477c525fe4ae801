package ai.llmref.llama;

import ai.llmref.bindings.ffi.llama_sampler_i;
import java.lang.System.Logger;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * What this project's own llama.cpp sampler stages ({@link DeviceBias}, {@link DeviceGreedy}) share:
 * their interface of upcalls, made once and never freed (llama.cpp may hold stages until exit), and
 * how an upcall records a failure, since nothing may be thrown into native code.
 */
final class OwnStages {
    private static final Logger LOG = System.getLogger(OwnStages.class.getName());

    private OwnStages() {}

    /**
     * A stage's interface: its name, its host {@code apply}, a {@code backend_init} that accepts every
     * device, its {@code backend_apply} and, when not null, its {@code backend_reset}; every other
     * function NULL (accept, reset, clone, free, backend_accept, ...).
     */
    static MemorySegment iface(MemorySegment name, llama_sampler_i.apply.Function apply,
                               llama_sampler_i.backend_apply.Function backendApply, llama_sampler_i.backend_reset.Function backendReset) {
        Arena global = Arena.global();
        MemorySegment i = llama_sampler_i.allocate(global);
        i.fill((byte) 0);
        llama_sampler_i.name(i, llama_sampler_i.name.allocate(smpl -> name, global));
        llama_sampler_i.apply(i, llama_sampler_i.apply.allocate(apply, global));
        llama_sampler_i.backend_init(i, llama_sampler_i.backend_init.allocate((smpl, buft, maxOutputs) -> true, global));
        llama_sampler_i.backend_apply(i, llama_sampler_i.backend_apply.allocate(backendApply, global));
        if (backendReset != null) {
            llama_sampler_i.backend_reset(i, llama_sampler_i.backend_reset.allocate(backendReset, global));
        }
        return i;
    }

    /**
     * Records an upcall's failure: sets the stage state's {@code int} failure word at
     * {@code failedOffset} (when the state was reached) and logs it; never throws.
     */
    static void fail(MemorySegment state, long failedOffset, String stage, String where, Throwable t) {
        try {
            if (state != null) {
                state.set(ValueLayout.JAVA_INT, failedOffset, 1);
            }
            LOG.log(Level.ERROR, "the " + stage + " stage's " + where + " failed", t);
        } catch (Throwable ignored) {
            // nothing may escape an upcall
        }
    }
}
