package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Inputs that ended the whole process inside llama.cpp (a {@code GGML_ASSERT}, a C++ exception
 * through its C API, a read of freed memory, memory exhaustion) before the Java API refused them.
 * Each runs in a child JVM, so that a regression fails the test with the child's exit status and
 * output instead of killing the test JVM; the child prints {@code OK} after its own checks.
 */
class NativeAbortTest {
    @TempDir Path tmp;

    @Test
    void aTokenListWithARepeatedTokenIsRefused() throws Exception {
        // before: GGML_ASSERT(id_to_token.size() == token_to_id.size()) in llama-vocab.cpp, exit 134
        Result r = child(List.of(), "repeatedToken", repeatedToken(tmp).toString());
        assertThat(r.exit).as(r.out).isZero();
        assertThat(r.out).contains("repeats an earlier token's text").contains("OK");
    }

    @Test
    void layerCountsLlamaCppAssertsOnAreRefused() throws Exception {
        // before: GGML_ASSERT(hparams.n_layer_all > 0 && hparams.n_layer_all <= LLAMA_MAX_LAYERS) in llama-model.cpp
        Path none = withU32(tmp.resolve("layers0.gguf"), "llama.block_count", 0);
        Path many = withU32(tmp.resolve("layers600.gguf"), "llama.block_count", 600);
        Result r = child(List.of(), "layerCounts", none.toString(), many.toString());
        assertThat(r.exit).as(r.out).isZero();
        assertThat(r.out).contains("llama.block_count 0 is outside 1..512").contains("llama.block_count 600 is outside 1..512")
                .contains("vocab-only load of layers0: 512 tokens").contains("OK");
    }

    @Test
    void closingAModelWaitsForATokenizationOnAnotherThread() throws Exception {
        // before: the model was freed under the tokenizer: "terminate called after throwing an
        // instance of 'std::out_of_range'" (or a crash), exit 134
        Result r = child(List.of(), "closeWhileTokenizing");
        assertThat(r.exit).as(r.out).isZero();
        assertThat(r.out).contains("close returned after the tokenization").contains("OK");
    }

    @Test
    void closingAModelWaitsForAContextBeingMadeOnAnotherThread() throws Exception {
        // before: close() saw no open context and freed the model while llama_init_from_model read it (SIGSEGV)
        Result r = child(List.of(), "closeWhileMakingContext");
        assertThat(r.exit).as(r.out).isZero();
        assertThat(r.out).contains("close waited for the context").contains("close refused: ").contains("open context")
                .contains("OK");
    }

    @Test
    void aTextTooLongToTokenizeIsRefusedNotAnOutOfMemoryAbort() throws Exception {
        // before: with 6 GB of address space, 160 MiB of text made llama_tokenize throw std::bad_alloc
        // through the C API: "terminate called after throwing an instance of 'std::bad_alloc'", exit 134
        Result r = child(List.of("-Xmx1g", "-XX:ReservedCodeCacheSize=64m", "-XX:CompressedClassSpaceSize=64m",
                "-XX:MaxMetaspaceSize=128m"), 6_000_000, "hugeText");
        assertThat(r.exit).as(r.out).isZero();
        assertThat(r.out).contains("at most " + Vocabulary.MAX_TEXT_BYTES + " UTF-8 bytes").contains("OK");
    }

    @Test
    void aSequenceStateClaimingHugeCellCountsAllocatesNothing() throws Exception {
        // before: llama.cpp reserved a micro-batch of the claimed cells (about 21 bytes each, zeroed)
        // before reading one: 50 million claimed cells took 1 GB more; 2^32-1 would take some 90 GB
        Result r = child(List.of(), "hugeCellCount");
        assertThat(r.exit).as(r.out).isZero();
        assertThat(r.out).contains("claims 50000000 cells").contains("OK");
    }

    // --- the child JVM ---------------------------------------------------------------------------

    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "repeatedToken" -> {
                expectRefused(() -> LlamaModel.load(Path.of(args[1]), TestModels.params()), InvalidModelFileException.class);
                expectRefused(() -> LlamaModel.load(Path.of(args[1]), TestModels.params().withVocabOnly(true)), InvalidModelFileException.class);
            }
            case "layerCounts" -> {
                expectRefused(() -> LlamaModel.load(Path.of(args[1]), TestModels.params()), InvalidModelFileException.class);
                expectRefused(() -> LlamaModel.load(Path.of(args[2]), TestModels.params()), InvalidModelFileException.class);
                // llama.cpp does not read the layer count for the vocabulary alone: no reason to refuse
                try (LlamaModel vocab = LlamaModel.load(Path.of(args[1]), TestModels.params().withVocabOnly(true))) {
                    System.out.println("vocab-only load of layers0: " + vocab.vocabulary().size() + " tokens");
                }
            }
            case "closeWhileTokenizing" -> closeWhileTokenizing();
            case "closeWhileMakingContext" -> closeWhileMakingContext();
            case "hugeText" -> {
                try (LlamaModel m = LlamaModel.load(TestModels.stories(), TestModels.params())) {
                    String text = "Once upon a time there was a little girl. ".repeat(4_000_000); // 168 MB
                    expectRefused(() -> m.vocabulary().tokenize(text, true, false), InvalidInputException.class);
                }
            }
            case "hugeCellCount" -> hugeCellCount();
            default -> throw new IllegalArgumentException(args[0]);
        }
        System.out.println("OK");
    }

    private static void closeWhileTokenizing() throws Exception {
        LlamaModel m = LlamaModel.load(TestModels.stories(), TestModels.params());
        Vocabulary v = m.vocabulary();
        String text = "Once upon a time there was a little girl who liked to play. ".repeat(70_000); // 4 MB: seconds
        int expected = v.tokenize(text, true, false).length;
        CountDownLatch started = new CountDownLatch(1);
        AtomicReference<Object> result = new AtomicReference<>();
        long[] finished = new long[1];
        Thread worker = new Thread(() -> {
            started.countDown();
            try {
                result.set(v.tokenize(text, true, false).length);
            } catch (Throwable t) {
                result.set(t);
            }
            finished[0] = System.nanoTime();
        });
        worker.start();
        started.await();
        Thread.sleep(300);
        m.close();
        long closed = System.nanoTime();
        worker.join();
        check(result.get().equals(expected), "the tokenization gave " + result.get() + ", expected " + expected + " tokens");
        check(finished[0] <= closed, "close returned before the tokenization finished");
        System.out.println("close returned after the tokenization");
        expectRefused(() -> v.tokenize("x", true, false), IllegalStateException.class);
        expectRefused(v::bos, IllegalStateException.class);
    }

    /**
     * A log handler holds the thread making the context inside {@code llama_init_from_model} (it logs
     * a warning there: the context is longer than stories260K's training context) while another
     * thread closes the model.
     */
    private static void closeWhileMakingContext() throws Exception {
        LlamaModel m = LlamaModel.load(TestModels.stories(), TestModels.params());
        CountDownLatch inside = new CountDownLatch(1);
        CountDownLatch proceed = new CountDownLatch(1);
        Thread[] maker = new Thread[1];
        Logger llama = Logger.getLogger("llama.cpp");
        llama.setLevel(java.util.logging.Level.WARNING);
        llama.addHandler(new Handler() {
            @Override
            public void publish(LogRecord record) {
                if (Thread.currentThread() == maker[0] && record.getMessage().contains("n_ctx_train")) {
                    inside.countDown();
                    try {
                        proceed.await(30, TimeUnit.SECONDS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
            }

            @Override
            public void flush() {}

            @Override
            public void close() {}
        });
        AtomicReference<Object> made = new AtomicReference<>();
        maker[0] = new Thread(() -> {
            try (LlamaContext ctx = m.newContext(TestModels.small(1)); Batch b = ctx.newBatch(8)) {
                proceed.await(30, TimeUnit.SECONDS);
                int[] prompt = m.vocabulary().tokenize("Once upon a time", true, false);
                for (int i = 0; i < prompt.length; i++) {
                    b.add(prompt[i], i, 0, i == prompt.length - 1);
                }
                ctx.decode(b);
                made.set(TestModels.argmax(ctx.logits(prompt.length - 1)));
            } catch (Throwable t) {
                made.set(t);
            }
        });
        maker[0].start();
        check(inside.await(60, TimeUnit.SECONDS), "llama_init_from_model logged no n_ctx_train warning");
        AtomicReference<Object> closing = new AtomicReference<>();
        Thread closer = new Thread(() -> {
            try {
                m.close();
                closing.set("closed");
            } catch (Throwable t) {
                closing.set(t);
            }
        });
        closer.start();
        closer.join(500);
        boolean waited = closer.isAlive();
        proceed.countDown();
        closer.join();
        maker[0].join();
        check(waited, "close returned (" + closing.get() + ") while the context was being made");
        System.out.println("close waited for the context");
        check(closing.get() instanceof IllegalStateException, "close: " + closing.get());
        System.out.println("close refused: " + ((Throwable) closing.get()).getMessage());
        check(made.get() instanceof Integer, "the context: " + made.get());
        m.close();
    }

    private static void hugeCellCount() throws Exception {
        try (LlamaModel m = LlamaModel.load(TestModels.stories(), TestModels.params());
             LlamaContext ctx = m.newContext(TestModels.small(1)); Batch b = ctx.newBatch(8)) {
            for (int i = 0; i < 4; i++) {
                b.add(100 + i, i, 0, i == 3);
            }
            ctx.decode(b);
            byte[] state = ctx.saveSequence(0);
            // magic, sequence id, KV stream count (1), then the stream's cell count
            ByteBuffer.wrap(state).order(ByteOrder.LITTLE_ENDIAN).putInt(12, 50_000_000);
            long before = peakResidentKb();
            Throwable refused = null;
            try {
                ctx.restoreSequence(0, state);
            } catch (Throwable t) {
                refused = t;
            }
            long grown = peakResidentKb() - before;
            check(grown < 200_000, "restoring the state grew the peak resident set by " + grown + " kB (" + refused + ")");
            check(refused instanceof InvalidInputException, "expected InvalidInputException, got " + refused);
            System.out.println("refused: " + refused.getMessage());
            check(ctx.maxPosition(0) == 3, "the refused state changed the sequence: " + ctx.maxPosition(0));
        }
    }

    private static long peakResidentKb() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmHWM:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        throw new IllegalStateException("no VmHWM in /proc/self/status");
    }

    private interface Call {
        void run() throws Exception;
    }

    private static void expectRefused(Call call, Class<? extends Throwable> type) {
        try {
            call.run();
        } catch (Throwable t) {
            check(type.isInstance(t), "expected " + type.getSimpleName() + ", got " + t);
            System.out.println("refused: " + t.getMessage());
            return;
        }
        check(false, "expected " + type.getSimpleName() + ", got nothing");
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            System.out.println("FAILED: " + what);
            System.exit(3);
        }
    }

    // --- files and child processes ---------------------------------------------------------------

    /** stories260K with token 303's text made a copy of token 302's (both two bytes long). */
    static Path repeatedToken(Path dir) throws IOException {
        byte[] f = Files.readAllBytes(TestModels.stories());
        ByteBuffer b = ByteBuffer.wrap(f).order(ByteOrder.LITTLE_ENDIAN);
        Map<Integer, long[]> tokens = tokenTexts(b, 302, 303);
        long[] a = tokens.get(302);
        long[] c = tokens.get(303);
        if (a[1] != c[1]) {
            throw new IllegalStateException("tokens 302 and 303 of " + TestModels.stories() + " differ in length");
        }
        System.arraycopy(f, (int) a[0], f, (int) c[0], (int) a[1]);
        return Files.write(dir.resolve("repeated-token.gguf"), f);
    }

    /** stories260K with the u32 value {@code key} set to {@code value}. */
    static Path withU32(Path target, String key, int value) throws IOException {
        byte[] f = Files.readAllBytes(TestModels.stories());
        ByteBuffer b = ByteBuffer.wrap(f).order(ByteOrder.LITTLE_ENDIAN);
        b.position(16);
        long kvs = b.getLong();
        for (long k = 0; k < kvs; k++) {
            String name = string(b);
            int type = b.getInt();
            if (name.equals(key)) {
                if (type != 4) {
                    throw new IllegalStateException(key + " is not a u32");
                }
                b.putInt(b.position(), value);
                return Files.write(target, f);
            }
            skip(b, type);
        }
        throw new IllegalStateException(key + " not found");
    }

    /** Offset and length of the text of each wanted token of {@code tokenizer.ggml.tokens}. */
    private static Map<Integer, long[]> tokenTexts(ByteBuffer b, int... wanted) {
        b.position(16);
        long kvs = b.getLong();
        for (long k = 0; k < kvs; k++) {
            String name = string(b);
            int type = b.getInt();
            if (name.equals("tokenizer.ggml.tokens")) {
                b.getInt();
                long n = b.getLong();
                Map<Integer, long[]> out = new HashMap<>();
                for (int i = 0; i < n; i++) {
                    long len = b.getLong();
                    for (int w : wanted) {
                        if (w == i) {
                            out.put(i, new long[] {b.position(), len});
                        }
                    }
                    b.position((int) (b.position() + len));
                }
                return out;
            }
            skip(b, type);
        }
        throw new IllegalStateException("no token list");
    }

    private static String string(ByteBuffer b) {
        byte[] s = new byte[Math.toIntExact(b.getLong())];
        b.get(s);
        return new String(s, StandardCharsets.UTF_8);
    }

    private static void skip(ByteBuffer b, int type) {
        int[] sizes = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
        switch (type) {
            case 8 -> string(b);
            case 9 -> {
                int element = b.getInt();
                long n = b.getLong();
                for (long i = 0; i < n; i++) {
                    skip(b, element);
                }
            }
            default -> b.position(b.position() + sizes[type]);
        }
    }

    private record Result(int exit, String out) {}

    private Result child(List<String> jvmArgs, String... args) throws Exception {
        return child(jvmArgs, 0, args);
    }

    /** Runs {@link #main} in a child JVM; {@code addressSpaceKb > 0} limits its virtual memory ({@code ulimit -v}). */
    private Result child(List<String> jvmArgs, long addressSpaceKb, String... args) throws Exception {
        List<String> cmd = new ArrayList<>();
        if (addressSpaceKb > 0) {
            cmd.addAll(List.of("bash", "-c", "ulimit -v " + addressSpaceKb + " && exec \"$0\" \"$@\""));
        }
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("--enable-native-access=ALL-UNNAMED");
        cmd.add("-Djava.util.logging.config.file=" + System.getProperty("java.util.logging.config.file", ""));
        cmd.add("-Dtest.model=" + TestModels.stories());
        cmd.add("-Dtest.gpu-layers=" + TestModels.gpuLayers());
        for (String p : new String[] {"llama.native.dir", "llama.native.variant"}) {
            if (System.getProperty(p) != null) {
                cmd.add("-D" + p + "=" + System.getProperty(p));
            }
        }
        cmd.addAll(jvmArgs);
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(NativeAbortTest.class.getName());
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(5, TimeUnit.MINUTES)).isTrue();
        return new Result(p.exitValue(), out);
    }
}
