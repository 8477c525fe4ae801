package ai.llmref.llama.internal;

import ai.llmref.bindings.ffi.ggml_log_callback;
import ai.llmref.bindings.ffi.llama_h;
import java.lang.System.Logger;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.function.Consumer;

/**
 * Routes llama.cpp and ggml log output to the {@code System.Logger} named {@code llama.cpp}, one
 * record per line, with llama.cpp's level. A thread can also capture the lines logged on it (model
 * loading does, to learn where the layers went), and the last error line of each thread is kept so
 * that a failed call can say why. A debug line that nobody takes (the logger's level above DEBUG,
 * no capture on the thread) is dropped before it is read: with a reused CUDA graph ggml logs one
 * ({@code CUDA Graph id ... reused}) for every decode, and reading it made a few hundred bytes of
 * garbage a token (GPU run 4: 272 bytes a token in the greedy generation loop).
 */
public final class LogBridge {
    private static final Logger LOG = System.getLogger("llama.cpp");
    private static final ThreadLocal<StringBuilder> PENDING = ThreadLocal.withInitial(StringBuilder::new);
    private static final ThreadLocal<int[]> PENDING_LEVEL = ThreadLocal.withInitial(() -> new int[] {2});
    private static final int MAX_ERRORS = 6;
    private static final ThreadLocal<java.util.List<String>> ERRORS = new ThreadLocal<>();
    private static final ThreadLocal<Consumer<String>> CAPTURE = new ThreadLocal<>();
    private static MemorySegment stub;

    private LogBridge() {}

    public static synchronized void install() {
        if (stub == null) {
            // A global arena: the callback must outlive every native call that can log.
            stub = ggml_log_callback.allocate(LogBridge::onLog, Arena.global());
        }
        llama_h.llama_log_set(stub, MemorySegment.NULL);
        llama_h.ggml_log_set(stub, MemorySegment.NULL);
    }

    /** Runs {@code action} with every complete log line of this thread also given to {@code sink}. */
    public static <T> T capturing(Consumer<String> sink, java.util.function.Supplier<T> action) {
        Consumer<String> previous = CAPTURE.get();
        CAPTURE.set(sink);
        try {
            return action.get();
        } finally {
            CAPTURE.set(previous);
        }
    }

    /**
     * The error lines llama.cpp logged on this thread since {@link #clearLastError()} (the first
     * few, joined), and forgets them; a placeholder when there were none.
     */
    public static String takeLastError() {
        java.util.List<String> e = ERRORS.get();
        ERRORS.remove();
        return e == null || e.isEmpty() ? "no error was logged" : String.join(" / ", e);
    }

    /** Forgets this thread's error lines (before a call whose failure we want to explain). */
    public static void clearLastError() {
        ERRORS.remove();
    }

    // An upcall: it must never throw back into native code.
    static void onLog(int level, MemorySegment text, MemorySegment userData) {
        try {
            int[] pendingLevel = PENDING_LEVEL.get();
            if (level != llama_h.GGML_LOG_LEVEL_CONT()) {
                pendingLevel[0] = level;
            }
            StringBuilder pending = PENDING.get();
            if (pending.isEmpty() && toJava(pendingLevel[0]) == Level.DEBUG && CAPTURE.get() == null
                    && !LOG.isLoggable(Level.DEBUG)) {
                return; // a debug line (or its continuation) nobody takes: not even read
            }
            String piece = Native.string(text);
            if (piece == null) {
                return;
            }
            pending.append(piece);
            int nl;
            while ((nl = pending.indexOf("\n")) >= 0) {
                String line = pending.substring(0, nl);
                pending.delete(0, nl + 1);
                emit(pendingLevel[0], line);
            }
        } catch (Throwable t) {
            // Nothing may escape an upcall; losing a log line is the lesser evil.
        }
    }

    private static void emit(int level, String line) {
        if (line.isBlank()) {
            return;
        }
        Level jl = toJava(level);
        if (jl == Level.ERROR) {
            java.util.List<String> errors = ERRORS.get();
            if (errors == null) {
                errors = new java.util.ArrayList<>();
                ERRORS.set(errors);
            }
            if (errors.size() < MAX_ERRORS) {
                errors.add(line.strip());
            }
        }
        Consumer<String> capture = CAPTURE.get();
        if (capture != null) {
            capture.accept(line);
        }
        if (LOG.isLoggable(jl)) {
            LOG.log(jl, line);
        }
    }

    static Level toJava(int level) {
        if (level == llama_h.GGML_LOG_LEVEL_ERROR()) {
            return Level.ERROR;
        } else if (level == llama_h.GGML_LOG_LEVEL_WARN()) {
            return Level.WARNING;
        } else if (level == llama_h.GGML_LOG_LEVEL_INFO()) {
            return Level.INFO;
        }
        return Level.DEBUG;
    }
}
