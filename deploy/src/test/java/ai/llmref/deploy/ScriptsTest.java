package ai.llmref.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
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
 * --help, and a bad argument is refused with one clear line before any work starts. scripts/run.sh
 * (the README's run command) is checked for the model it hands the server.
 */
class ScriptsTest {
    private static final List<String> WITH_HELP = List.of("bench-bindings.sh", "bench-server.sh", "gpu-verify.sh", "gpu-pack.sh",
            "soak.sh", "bench-structured.sh", "bench-echo.sh");

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

    @Test
    void prereqsSaysWhatToInstallWhereItCannotInstall(@org.junit.jupiter.api.io.TempDir Path bin) throws IOException {
        // a machine without yamllint where the user is not root and has no sudo: the script names the
        // package and how to install it, and never reaches apt-get (which would fail on "sudo: command not found")
        for (String tool : List.of("bash", "cmake", "ninja", "gcc", "g++", "git", "node", "npm", "openssl", "objdump", "flock", "mvn")) {
            String found = Repo.run(Duration.ofSeconds(10), Repo.root(), Map.of(), List.of("bash", "-c", "command -v " + tool)).output().strip();
            Files.createSymbolicLink(bin.resolve(tool), Path.of(found));
        }
        Path id = Files.writeString(bin.resolve("id"), "#!/bin/sh\necho 1000\n");
        Path aptGet = Files.writeString(bin.resolve("apt-get"), "#!/bin/sh\necho APT-GET-RAN; exit 3\n");
        id.toFile().setExecutable(true);
        aptGet.toFile().setExecutable(true);
        Map<String, String> env = Map.of("PATH", bin.toString());
        Repo.Result r = Repo.run(Duration.ofSeconds(30), Repo.root(), env, List.of(bin.resolve("bash").toString(), "scripts/prereqs.sh"));
        assertThat(r.exitCode()).as(r.output()).isEqualTo(1);
        assertThat(r.output()).contains("prereqs: missing yamllint; run this as root, or install them: apt-get install yamllint")
                .doesNotContain("APT-GET-RAN");
        Files.delete(aptGet);
        r = Repo.run(Duration.ofSeconds(30), Repo.root(), env, List.of(bin.resolve("bash").toString(), "scripts/prereqs.sh"));
        assertThat(r.exitCode()).as(r.output()).isEqualTo(1);
        assertThat(r.output()).contains("missing yamllint (Debian package names), and this machine has no apt-get");
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
                Arguments.of("soak.sh", List.of("--duration"), "--duration needs a value"),
                Arguments.of("bench-structured.sh", List.of("--rounds", "0"), "--rounds must be a positive integer"),
                Arguments.of("bench-structured.sh", List.of("--max-tokens", "x"), "--max-tokens must be a positive integer"),
                Arguments.of("bench-structured.sh", List.of("--requests"), "--requests needs a value"),
                Arguments.of("bench-structured.sh", List.of("--fast"), "unknown argument: --fast"),
                Arguments.of("bench-echo.sh", List.of("--tokens", "0"), "--tokens must be a positive integer"),
                Arguments.of("bench-echo.sh", List.of("--threads", "-1"), "--threads must be a non-negative integer"),
                Arguments.of("bench-echo.sh", List.of("--model"), "--model needs a value"));
    }

    /**
     * scripts/run.sh's default model goes on the command line, which outranks every other source of
     * model.path (docs/server.md): it must be left out when the environment or a --config file names
     * the model, or that model is silently replaced by the default. The model named here has a file
     * name too long for a model id, so the server's own validation says which path it took, and an
     * invalid engine.batch-size stops it right after, whichever model it took. Needs the server jar
     * (the reactor builds it before this module, as ImageLayoutTest needs it).
     */
    static Stream<Arguments> modelSources() throws IOException {
        String name = "m".repeat(130);
        String path = "/nonexistent/" + name + ".gguf";
        Path config = Files.createDirectories(Repo.target()).resolve("run-sh-model.yaml");
        Files.writeString(config, "model:\n  path: " + path + "\n");
        return Stream.of(
                Arguments.of("LLMREF_MODEL_PATH", Map.of("LLMREF_MODEL_PATH", path), List.of(), name),
                Arguments.of("--config", Map.of(), List.of("--config", config.toString()), name),
                Arguments.of("MODEL", Map.of("MODEL", path), List.of(), name));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("modelSources")
    void runShKeepsTheModelTheEnvironmentOrConfigNames(String source, Map<String, String> env, List<String> args, String id) {
        Map<String, String> all = new HashMap<>(env);
        all.put("LLMREF_ENGINE_BATCH__SIZE", "0");
        // Whatever this test's own environment holds, only the source under test names a model.
        List<String> unset = Stream.of("LLMREF_MODEL_PATH", "MODEL").filter(k -> !env.containsKey(k))
                .flatMap(k -> Stream.of("-u", k)).toList();
        Repo.Result r = Repo.run(Duration.ofMinutes(2), Repo.root(), all, Stream.of(Stream.of("env"), unset.stream(),
                Stream.of("bash", "scripts/run.sh"), args.stream()).flatMap(x -> x).toList());
        assertThat(r.exitCode()).as(r.output()).isEqualTo(2);
        assertThat(r.output()).as("the model named by " + source)
                .contains("invalid configuration: model.id must be 1 to 128 characters, got '" + id + "'");
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("badArguments")
    void badArgumentsAreRefusedUpFront(String script, List<String> args, String message) {
        Repo.Result r = bash(Stream.concat(Stream.of("scripts/" + script), args.stream()).toArray(String[]::new));
        assertThat(r.exitCode()).as(r.output()).isNotZero();
        assertThat(r.output().strip()).as("one line, the script's error").contains(message).doesNotContain("\n");
    }
}
