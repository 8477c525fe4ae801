package ai.llmref.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The operator scripts (benchmarks, the GPU proof, packing, soak, fuzzing) run on machines CI never
 * sees, such as the GPU machine, so what can be checked here is: every script parses, each answers
 * --help, and a bad argument is refused with one clear line before any work starts.
 */
class ScriptsTest {
    private static final List<String> WITH_HELP = List.of("bench-bindings.sh", "bench-server.sh", "gpu-verify.sh", "gpu-pack.sh",
            "soak.sh");

    private static Repo.Result bash(String... args) {
        return Repo.run(Duration.ofSeconds(30), Repo.root(), Map.of(), Stream.concat(Stream.of("bash"), Stream.of(args)).toList());
    }

    @Test
    void everyScriptParses() {
        List<Path> scripts = Repo.files(Repo.path("scripts"), ".sh");
        assertThat(scripts).hasSizeGreaterThan(10);
        for (Path s : scripts) {
            Repo.Result r = bash("-n", s.toString());
            assertThat(r.exitCode()).as(s + ": " + r.output()).isZero();
        }
    }

    @Test
    void operatorScriptsAnswerHelp() {
        for (String s : WITH_HELP) {
            Repo.Result r = bash("scripts/" + s, "--help");
            assertThat(r.exitCode()).as(s + ": " + r.output()).isZero();
            // the usage block is the script's header comment, with the script's own command line in it
            assertThat(r.output()).as(s).contains("scripts/" + s).doesNotContain("#!/");
        }
    }

    static Stream<Arguments> badArguments() {
        return Stream.of(
                Arguments.of("bench-server.sh", List.of("--variant", "nolabel"), "--variant must be LABEL:JVM-FLAGS"),
                Arguments.of("bench-server.sh", List.of("--variant", "Upper:-Dx=1"), "--variant must be LABEL:JVM-FLAGS"),
                Arguments.of("bench-server.sh", List.of("--variant"), "--variant must be LABEL:JVM-FLAGS"),
                Arguments.of("bench-server.sh", List.of("--threads-batch", "0"), "--threads-batch must be a positive integer"),
                Arguments.of("bench-server.sh", List.of("--threads", "x"), "--threads must be a positive integer"),
                Arguments.of("bench-server.sh", List.of("--sampling", "hot"), "--sampling must be greedy, temperature, top-p or llama-defaults"),
                Arguments.of("bench-bindings.sh", List.of("--threads", "0"), "--threads must be a positive integer"),
                Arguments.of("bench-bindings.sh", List.of("--reps", "0"), "--reps must be a positive integer"),
                Arguments.of("bench-bindings.sh", List.of("--pairs", "--c-loop"), "--pairs runs llama-bench and the API alone only"),
                Arguments.of("bench-bindings.sh", List.of("--pairs", "--alone-also", "jit"), "--pairs runs llama-bench and the API alone only"),
                Arguments.of("gpu-verify.sh", List.of("--variant", "bad"), "--variant must be LABEL:JVM-FLAGS"),
                Arguments.of("gpu-verify.sh", List.of("--benchmarks", "speed"), "unknown benchmark 'speed' (server, variant, bindings, profile, cores)"),
                Arguments.of("gpu-verify.sh", List.of("--budget", "ten"), "--budget must be a non-negative integer"),
                Arguments.of("gpu-verify.sh", List.of("--phases", "deploy"), "unknown phase 'deploy'"),
                Arguments.of("gpu-verify.sh", List.of("--budget"), "--budget needs a value"),
                Arguments.of("bench-server.sh", List.of("--threads"), "--threads needs a value"),
                Arguments.of("soak.sh", List.of("--duration"), "--duration needs a value"));
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("badArguments")
    void badArgumentsAreRefusedUpFront(String script, List<String> args, String message) {
        Repo.Result r = bash(Stream.concat(Stream.of("scripts/" + script), args.stream()).toArray(String[]::new));
        assertThat(r.exitCode()).as(r.output()).isNotZero();
        assertThat(r.output().strip()).as("one line, the script's error").contains(message).doesNotContain("\n");
    }
}
