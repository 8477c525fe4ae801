package ai.llmref.llama.internal;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.bindings.ffi.llama_h;
import ai.llmref.llama.LlamaBackend;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The log upcall's handling of llama.cpp's lines, called as llama.cpp calls it (a level and a C
 * string): lines are cut at newlines across continuation pieces, errors are kept for the caller,
 * a capture sees every level, and debug lines nobody takes cost nothing (with a reused CUDA graph
 * ggml logs one for every decode).
 */
class LogBridgeTest {
    /** Kept here: java.util.logging holds its loggers weakly, and the level set on one would be lost with it. */
    private static final Logger JUL = Logger.getLogger("llama.cpp");
    private final List<LogRecord> published = new ArrayList<>();
    private final Handler handler = new Handler() {
        @Override
        public void publish(LogRecord r) {
            published.add(r);
        }

        @Override
        public void flush() {}

        @Override
        public void close() {}
    };
    private Level savedLevel;

    @BeforeAll
    static void loadLibraries() {
        LlamaBackend.initialize(); // the log levels are llama.h's constants
    }

    @BeforeEach
    void listen() {
        savedLevel = JUL.getLevel();
        JUL.addHandler(handler);
    }

    @AfterEach
    void restore() {
        JUL.removeHandler(handler);
        JUL.setLevel(savedLevel);
    }

    private static void log(Arena arena, int level, String text) {
        LogBridge.onLog(level, arena.allocateFrom(text), MemorySegment.NULL);
    }

    @Test
    void linesAreCutAtNewlinesKeptAsErrorsAndCapturedAtEveryLevel() {
        JUL.setLevel(Level.INFO);
        try (Arena arena = Arena.ofConfined()) {
            List<String> captured = new ArrayList<>();
            LogBridge.clearLastError();
            LogBridge.capturing(captured::add, () -> {
                log(arena, llama_h.GGML_LOG_LEVEL_INFO(), "load: one ");
                log(arena, llama_h.GGML_LOG_LEVEL_CONT(), "line\nand ");
                log(arena, llama_h.GGML_LOG_LEVEL_CONT(), "another\n");
                log(arena, llama_h.GGML_LOG_LEVEL_DEBUG(), "CUDA Graph id 7 reused\n");
                log(arena, llama_h.GGML_LOG_LEVEL_ERROR(), "decode: failed to find a memory slot\n");
                return null;
            });
            assertThat(captured).containsExactly("load: one line", "and another", "CUDA Graph id 7 reused",
                    "decode: failed to find a memory slot");
            assertThat(published).extracting(LogRecord::getMessage)
                    .containsExactly("load: one line", "and another", "decode: failed to find a memory slot");
            assertThat(LogBridge.takeLastError()).isEqualTo("decode: failed to find a memory slot");
        }
    }

    @Test
    void debugLinesNobodyTakesAreDroppedWithoutGarbageAndTakenWhenTheLevelAllowsThem() {
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        JUL.setLevel(Level.INFO);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment line = arena.allocateFrom("CUDA Graph id 12345 reused\n");
            MemorySegment start = arena.allocateFrom("ggml_backend_cuda_graph_compute: CUDA graph ");
            MemorySegment rest = arena.allocateFrom("warmup complete\n");
            int debug = llama_h.GGML_LOG_LEVEL_DEBUG();
            int cont = llama_h.GGML_LOG_LEVEL_CONT();
            for (int i = 0; i < 20_000; i++) { // warm-up
                LogBridge.onLog(debug, line, MemorySegment.NULL);
            }
            int calls = 200_000;
            long before = threads.getCurrentThreadAllocatedBytes();
            for (int i = 0; i < calls / 2; i++) {
                LogBridge.onLog(debug, line, MemorySegment.NULL);
                LogBridge.onLog(i % 2 == 0 ? debug : cont, i % 2 == 0 ? start : rest, MemorySegment.NULL);
            }
            long allocated = threads.getCurrentThreadAllocatedBytes() - before;
            assertThat(allocated).as("bytes allocated by %d debug lines nobody takes", calls).isLessThan(calls);
            // an INFO line right after a dropped debug piece is whole
            log(arena, llama_h.GGML_LOG_LEVEL_INFO(), "llama_context: n_ctx = 256\n");
            assertThat(published).extracting(LogRecord::getMessage).containsExactly("llama_context: n_ctx = 256");
            // with the logger at FINE (System.Logger's DEBUG) the debug lines are read and published again
            published.clear();
            JUL.setLevel(Level.FINE);
            LogBridge.onLog(debug, line, MemorySegment.NULL);
            LogBridge.onLog(debug, start, MemorySegment.NULL);
            LogBridge.onLog(cont, rest, MemorySegment.NULL);
            assertThat(published).extracting(LogRecord::getMessage)
                    .containsExactly("CUDA Graph id 12345 reused", "ggml_backend_cuda_graph_compute: CUDA graph warmup complete");
            assertThat(published).extracting(LogRecord::getLevel).containsOnly(Level.FINE);
        }
    }
}
