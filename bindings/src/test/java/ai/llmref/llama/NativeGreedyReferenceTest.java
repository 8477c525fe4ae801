package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link Generation#greedy} against {@code src/test/c/greedy_ref.c}, the same greedy loop written
 * in plain C over llama.h and the same native build: the token ids must be identical. The C
 * program hard-codes the settings of {@link TestModels#small(int) TestModels.small(1)}; a test here
 * pins those settings so the two cannot drift apart. gcc and the native build are required: their
 * absence fails the test.
 */
class NativeGreedyReferenceTest {
    private static final int N_PREDICT = 64;
    private static final long TIMEOUT_SECONDS = 120;

    private static Path binary;
    private static Path libDir;
    private static LlamaModel model;

    @BeforeAll
    static void compileReferenceAndLoadModel() throws Exception {
        binary = compileC("greedy_ref");
        libDir = nativeLibDir();
        model = LlamaModel.load(TestModels.stories(), TestModels.params());
    }

    /** The native build's library folder (libllama.so and the ggml backends). */
    static Path nativeLibDir() {
        Path dir = existingDir(TestModels.nativeBuild(), "native.lib.dir");
        assertThat(dir.resolve("libllama.so")).as("libllama.so of the native build").exists();
        return dir;
    }

    /**
     * {@code src/test/c/NAME.c} compiled against the native build's llama.h and libraries into
     * {@code target/NAME}, with the C compiler {@code $CC} names (the GPU machine's is
     * /opt/gcc/bin/gcc), else gcc.
     */
    static Path compileC(String name) throws Exception {
        Path include = existingDir(TestModels.nativeBuild(), "native.include.dir");
        Path lib = nativeLibDir();
        assertThat(include.resolve("llama.h")).as("llama.h of the native build").isRegularFile();
        Path module = Path.of(System.getProperty("bindings.dir", "")).toAbsolutePath();
        Path source = module.resolve("src/test/c/" + name + ".c");
        assertThat(source).isRegularFile();
        Path out = module.resolve("target/" + name);
        Files.createDirectories(out.getParent());
        Files.deleteIfExists(out);
        String cc = System.getenv().getOrDefault("CC", "gcc");
        Output gcc = run(List.of(cc, "-O2", "-std=c11", "-Wall", "-Wextra", "-I" + include, source.toString(),
                "-L" + lib, "-lllama", "-lggml", "-lggml-base", "-Wl,-rpath," + lib, "-o", out.toString()));
        assertThat(gcc.exitCode()).as("%s failed:\n%s%s", cc, gcc.stdout(), gcc.stderr()).isZero();
        return out;
    }

    @AfterAll
    static void close() {
        if (model != null) {
            model.close();
        }
    }

    /** What greedy_ref.c hard-codes; if TestModels.small(1) changes, the C program must change too. */
    @Test
    void javaContextHasTheSettingsOfTheCReference() {
        ContextParams p = TestModels.small(1);
        assertThat(p).isEqualTo(new ContextParams(256, 256, 256, 1, 2, 2, ContextParams.FlashAttention.AUTO,
                ContextParams.KvCacheType.F16, ContextParams.KvCacheType.F16, false, ContextParams.Pooling.UNSPECIFIED, false));
        ModelParams m = TestModels.params();
        assertThat(m).isEqualTo(new ModelParams(TestModels.gpuLayers(), 0, ModelParams.SplitMode.LAYER, ModelParams.LoadMode.MMAP, false, null, null));
    }

    // ASCII only: the prompt reaches the C program as a command-line argument, whose encoding
    // depends on the platform's locale.
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {
        "Once upon a time",
        "Lily and Ben went to the park",
        "The cat",
        "One day, a little",
        "Tom",
        "The sun was warm and the sky was blue. Sara took her red ball and ran outside to play with her dog.",
    })
    void javaGreedyEqualsNativeGreedy(String prompt) throws Exception {
        assertThat(StandardCharsets.US_ASCII.newEncoder().canEncode(prompt)).as("prompt is ASCII").isTrue();
        int[] reference = nativeGreedy(prompt);
        assertThat(reference).as("greedy_ref output for %s", prompt).isNotEmpty();

        int[] java = Generation.greedy(model, TestModels.small(1), prompt, N_PREDICT);

        Vocabulary vocab = model.vocabulary();
        System.out.println("greedy " + Arrays.toString(vocab.tokenize(prompt, true, false)) + " \"" + prompt + "\" -> "
                + java.length + " tokens: " + vocab.detokenize(java, false, false).replace("\n", "\\n"));
        assertThat(java).as("Java greedy vs C greedy for %s%n C:    %s%n Java: %s", prompt,
                        vocab.detokenize(reference, false, false), vocab.detokenize(java, false, false))
                .containsExactly(reference);
    }

    private static int[] nativeGreedy(String prompt) throws Exception {
        Output out = run(List.of(binary.toString(), TestModels.stories().toString(), prompt, Integer.toString(N_PREDICT),
                libDir.toString(), Integer.toString(TestModels.gpuLayers())));
        assertThat(out.exitCode()).as("greedy_ref failed for %s:%n%s", prompt, out.stderr()).isZero();
        String line = out.stdout().strip();
        return line.isEmpty() ? new int[0] : Arrays.stream(line.split(" ")).mapToInt(Integer::parseInt).toArray();
    }

    private static Path existingDir(Properties build, String key) {
        String value = build.getProperty(key);
        assertThat(value).as("%s in the native build info", key).isNotBlank();
        Path dir = Path.of(value);
        assertThat(dir).as(key).isDirectory();
        return dir;
    }

    record Output(int exitCode, String stdout, String stderr) {}

    /** Runs a program to completion, both streams drained, killed after {@link #TIMEOUT_SECONDS}. */
    static Output run(List<String> command) throws Exception {
        Process process;
        try {
            process = new ProcessBuilder(new ArrayList<>(command)).start();
        } catch (IOException e) {
            throw new AssertionError("cannot run " + command.getFirst() + " (this test needs it): " + e.getMessage(), e);
        }
        process.getOutputStream().close();
        CompletableFuture<String> stderr = CompletableFuture.supplyAsync(() -> drain(process.getErrorStream()));
        String stdout = drain(process.getInputStream());
        if (!process.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            throw new AssertionError(command.getFirst() + " did not finish within " + TIMEOUT_SECONDS + " s");
        }
        return new Output(process.exitValue(), stdout, stderr.get(TIMEOUT_SECONDS, TimeUnit.SECONDS));
    }

    private static String drain(InputStream in) {
        try (in) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
