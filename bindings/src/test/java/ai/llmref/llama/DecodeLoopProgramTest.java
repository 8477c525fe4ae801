package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@code src/test/c/decode_loop.c}, the C program behind {@code scripts/bench-bindings.sh --c-loop}
 * (llama-bench's prompt and generation loops over llama.h, in a process without a JVM), builds
 * against the native build and reports in the Java benchmark's result format: rates for pp and tg,
 * and each prompt token's and generated token's time split into the llama_decode call and the wait, with the
 * thread's page faults and context switches per token; the generation test once on the process's
 * first thread and once on a thread of its own. gcc is required, as for
 * {@link NativeGreedyReferenceTest}.
 */
class DecodeLoopProgramTest {
    private static final Pattern LINE = Pattern.compile(
            "\\{\"impl\": \"c\", \"label\": \"stories\", \"model_filename\": \"[^\"]+\", \"test\": \"(\\w+)\", \"variant\": \"([^\"]+)\", "
            + "\"n_prompt\": (\\d+), \"n_gen\": (\\d+), \"n_threads\": 2, .*\"unit\": \"([^\"]+)\", \"samples_ts\": \\[([^]]*)], .*}");

    private static Path binary;

    @BeforeAll
    static void compile() throws Exception {
        binary = NativeGreedyReferenceTest.compileC("decode_loop");
    }

    @Test
    void reportsRatesAndTheSplitOfAToken() throws Exception {
        NativeGreedyReferenceTest.Output out = NativeGreedyReferenceTest.run(List.of(binary.toString(),
                TestModels.stories().toString(), NativeGreedyReferenceTest.nativeLibDir().toString(),
                Integer.toString(TestModels.gpuLayers()), "2", "64", "32", "3", "stories"));
        assertThat(out.exitCode()).as("decode_loop failed:%n%s", out.stderr()).isZero();
        List<String> lines = out.stdout().lines().toList();
        assertThat(lines).hasSize(19);
        prompt(lines.subList(0, 6));
        // the generation test on the process's first thread, then on a thread of its own
        generation(lines.subList(6, 12), "c-loop");
        generation(lines.subList(12, 18), "c-loop-thread");
        // the whole run's failed pinned-memory allocations, from llama.cpp's debug lines: a count,
        // none without a GPU backend (which alone allocates pinned memory)
        Matcher m = LINE.matcher(lines.get(18));
        assertThat(m.matches()).as(lines.get(18)).isTrue();
        assertThat(List.of(m.group(1), m.group(2), m.group(3), m.group(4), m.group(5)))
                .containsExactly("profile", "c-loop: pinned-memory allocations failed (log lines)", "64", "32", "n");
        double[] pinned = samples(m);
        assertThat(pinned[0]).isNotNegative().isEqualTo(Math.rint(pinned[0]));
        assertThat(pinned).containsOnly(pinned[0]);
        if (TestModels.gpuLayers() == 0) {
            assertThat(pinned[0]).isZero();
        }
        // llama.cpp's other lines go to stderr now (the model's load report among them)
        assertThat(out.stderr()).contains("llama_model_loader");
    }

    /** The prompt's rate, then its split per prompt token into the calls and the wait, and the thread's page faults. */
    private static void prompt(List<String> lines) {
        String[][] expected = {
            {"pp", "c-loop", "t/s"},
            {"profile", "c-loop: prompt llama_decode call", "us/token"},
            {"profile", "c-loop: prompt llama_synchronize wait", "us/token"},
            {"profile", "c-loop: prompt minor page faults (decoding thread)", "n/token"},
            {"profile", "c-loop: prompt CUDA graph replays (log lines)", "n/run"},
            {"profile", "c-loop: prompt other CUDA graph log lines", "n/run"},
        };
        double[][] values = new double[lines.size()][];
        for (int i = 0; i < lines.size(); i++) {
            Matcher m = LINE.matcher(lines.get(i));
            assertThat(m.matches()).as("prompt line %d: %s", i, lines.get(i)).isTrue();
            assertThat(List.of(m.group(1), m.group(2), m.group(3), m.group(4), m.group(5)))
                    .as("prompt line %d", i).containsExactly(expected[i][0], expected[i][1], "64", "0", expected[i][2]);
            values[i] = samples(m);
        }
        assertPositive(values[0], 0);
        assertPositive(values[1], 1);
        for (int r = 0; r < values[0].length; r++) {
            assertThat(values[2][r]).as("wait, repetition %d", r).isFinite().isNotNegative();
            assertThat(values[3][r] * 64).as("a count of faults").isNotNegative().isCloseTo(Math.rint(values[3][r] * 64), within(1e-6));
            // the calls and the wait are parts of the prompt's time (which also makes the tokens)
            assertThat(values[1][r] + values[2][r]).as("repetition %d", r).isLessThanOrEqualTo(1e6 / values[0][r] * 1.0001);
            // counts of log lines per prompt: whole, and none without a CUDA build's graphs
            for (int i = 4; i < 6; i++) {
                assertThat(values[i][r]).as("prompt line %d, repetition %d", i, r).isNotNegative().isEqualTo(Math.rint(values[i][r]));
                if (TestModels.gpuLayers() == 0) {
                    assertThat(values[i][r]).as("no CUDA graphs on the CPU").isZero();
                }
            }
        }
    }

    private static void generation(List<String> lines, String variant) {
        String[][] expected = {
            {"tg", variant, "t/s"},
            {"profile", variant + ": llama_decode call", "us/token"},
            {"profile", variant + ": llama_synchronize wait", "us/token"},
            {"profile", variant + ": minor page faults (decoding thread)", "n/token"},
            {"profile", variant + ": voluntary context switches (decoding thread)", "n/token"},
            {"profile", variant + ": involuntary context switches (decoding thread)", "n/token"},
        };
        double[][] values = new double[lines.size()][];
        for (int i = 0; i < lines.size(); i++) {
            Matcher m = LINE.matcher(lines.get(i));
            assertThat(m.matches()).as("%s line %d: %s", variant, i, lines.get(i)).isTrue();
            assertThat(List.of(m.group(1), m.group(2), m.group(3), m.group(4), m.group(5)))
                    .as("%s line %d", variant, i).containsExactly(expected[i][0], expected[i][1], "0", "32", expected[i][2]);
            values[i] = samples(m);
            if (i < 3) {
                assertPositive(values[i], i);
            } else {
                // counts per token from getrusage(RUSAGE_THREAD): whole events over 32 tokens
                for (double v : values[i]) {
                    assertThat(v).as("%s line %d", variant, i).isFinite().isNotNegative();
                    assertThat(v * 32).as("%s line %d: a count", variant, i).isCloseTo(Math.rint(v * 32), within(1e-6));
                }
            }
        }
        // in each repetition the calls and the waits are parts of the run's time: together at most a
        // token's time at that repetition's rate, and nearly all of it (the bound below leaves room
        // for the process being switched out between two tokens on a busy machine)
        for (int r = 0; r < values[0].length; r++) {
            double perToken = 1e6 / values[0][r];
            double callAndWait = values[1][r] + values[2][r];
            assertThat(callAndWait).as("%s repetition %d", variant, r).isLessThanOrEqualTo(perToken * 1.0001)
                    .isGreaterThan(perToken * 0.1);
        }
    }

    private static double[] samples(Matcher m) {
        double[] v = Arrays.stream(m.group(6).split(", ")).mapToDouble(Double::parseDouble).toArray();
        assertThat(v).as("three repetitions").hasSize(3);
        return v;
    }

    private static void assertPositive(double[] values, int line) {
        for (double v : values) {
            assertThat(v).as("line %d", line).isPositive().isFinite();
        }
    }

    @Test
    void badArgumentsAreRefusedWithTheUsage() throws Exception {
        NativeGreedyReferenceTest.Output few = NativeGreedyReferenceTest.run(List.of(binary.toString(), "model.gguf"));
        assertThat(few.exitCode()).isEqualTo(2);
        assertThat(few.stderr()).contains("usage:");
        NativeGreedyReferenceTest.Output zero = NativeGreedyReferenceTest.run(List.of(binary.toString(),
                TestModels.stories().toString(), NativeGreedyReferenceTest.nativeLibDir().toString(), "0", "2", "0", "0", "3", "x"));
        assertThat(zero.exitCode()).isEqualTo(2);
        assertThat(zero.stderr()).contains("bad numbers");
        NativeGreedyReferenceTest.Output missing = NativeGreedyReferenceTest.run(List.of(binary.toString(),
                "/nonexistent.gguf", NativeGreedyReferenceTest.nativeLibDir().toString(), "0", "2", "8", "8", "1", "x"));
        assertThat(missing.exitCode()).isEqualTo(1);
        assertThat(missing.stderr()).contains("cannot load /nonexistent.gguf");
    }
}
