package ai.llmref.server.observe;

import java.util.logging.LogManager;

/**
 * java.util.logging resets (and so silences) every handler from its own shutdown hook, which runs
 * alongside ours: the drain after SIGTERM would log nothing. This manager ignores that reset; the
 * server's shutdown hook calls {@link #resetAfterShutdown()} when it has finished.
 */
public final class ShutdownSafeLogManager extends LogManager {
    private volatile boolean released;

    @Override
    public void reset() {
        if (released || !shuttingDown()) {
            super.reset();
        }
    }

    /** Flushes and closes the handlers once the server has stopped. */
    public static void resetAfterShutdown() {
        if (LogManager.getLogManager() instanceof ShutdownSafeLogManager m) {
            m.released = true;
            m.reset();
        }
    }

    private static boolean shuttingDown() {
        try {
            Thread hook = new Thread(() -> { });
            Runtime.getRuntime().addShutdownHook(hook);
            Runtime.getRuntime().removeShutdownHook(hook);
            return false;
        } catch (IllegalStateException e) {
            return true; // hooks can no longer be added: the JVM is shutting down
        }
    }
}
