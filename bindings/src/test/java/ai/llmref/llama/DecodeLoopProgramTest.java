package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;

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
 * and each generated token's time split into the llama_decode call and the wait. gcc is required,
 * as for {@link NativeGreedyReferenceTest}.
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
        assertThat(lines).hasSize(4);
        String[][] expected = {
            {"pp", "c-loop", "64", "0", "t/s"},
            {"tg", "c-loop", "0", "32", "t/s"},
            {"profile", "c-loop: llama_decode call", "0", "32", "us/token"},
            {"profile", "c-loop: llama_synchronize wait", "0", "32", "us/token"},
        };
        double[] callAndWait = new double[2];
        for (int i = 0; i < lines.size(); i++) {
            Matcher m = LINE.matcher(lines.get(i));
            assertThat(m.matches()).as("line %d: %s", i, lines.get(i)).isTrue();
            for (int g = 0; g < 5; g++) {
                assertThat(m.group(g + 1)).as("line %d, field %d", i, g).isEqualTo(expected[i][g]);
            }
            double[] samples = Arrays.stream(m.group(6).split(", ")).mapToDouble(Double::parseDouble).toArray();
            assertThat(samples).as("three repetitions").hasSize(3);
            for (double v : samples) {
                assertThat(v).as("line %d", i).isPositive().isFinite();
            }
            if (i >= 2) {
                callAndWait[i - 2] = Arrays.stream(samples).average().orElseThrow();
            }
        }
        // the call and the wait add up to about a token's time at the tg rate
        Matcher tg = LINE.matcher(lines.get(1));
        assertThat(tg.matches()).isTrue();
        double perToken = 1e6 / Arrays.stream(tg.group(6).split(", ")).mapToDouble(Double::parseDouble).average().orElseThrow();
        assertThat(callAndWait[0] + callAndWait[1]).isLessThanOrEqualTo(perToken * 1.05);
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
