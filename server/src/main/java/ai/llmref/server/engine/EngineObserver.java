package ai.llmref.server.engine;

/** Hooks the scheduler calls (on its thread) for metrics; implementations must be quick and never throw. */
public interface EngineObserver {
    /** A slot produced a token {@code gapNanos} after its previous one (not called for the first token). */
    void tokenGenerated(long gapNanos);

    /** A request ended (also when cancelled); {@code done} carries its counts and timings. */
    void finished(GenerationEvent.Done done);

    EngineObserver NONE = new EngineObserver() {
        @Override
        public void tokenGenerated(long gapNanos) {}

        @Override
        public void finished(GenerationEvent.Done done) {}
    };
}
