package ai.llmref.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * yamllint (strict: warnings fail) on the plain YAML of helm/, k8s/ and observability/, and, with
 * rules for generated text, on the chart's rendering of every profile.
 */
class YamlLintTest {
    static Path yamllint() {
        Path p = Repo.which("yamllint");
        if (p == null) {
            throw new AssertionError("yamllint is not installed: run scripts/prereqs.sh (Debian package yamllint)");
        }
        return p;
    }

    @Test
    void plainYamlIsClean() {
        List<String> cmd = new ArrayList<>(List.of(yamllint().toString(), "-s", "-f", "parsable",
                "-c", "deploy/src/test/resources/yamllint.yaml",
                "k8s", "observability", "helm/profiles", "helm/llmref/Chart.yaml", "helm/llmref/values.yaml", "helm/llmref/files"));
        Repo.Result r = Repo.run(Duration.ofSeconds(60), Repo.root(), Map.of(), cmd);
        assertThat(r.output()).as("yamllint").isEmpty();
        assertThat(r.exitCode()).isZero();
        assertThat(Repo.files(Repo.path("k8s"), ".yaml")).hasSizeGreaterThan(10);
    }

    @Test
    void renderedChartIsClean() {
        List<String> cmd = new ArrayList<>(List.of(yamllint().toString(), "-s", "-f", "parsable",
                "-c", "deploy/src/test/resources/yamllint-rendered.yaml"));
        for (String profile : List.of("default", "gpu", "mig", "cpu", "hardened-production")) {
            Chart.render(profile);
            cmd.add(Repo.target().resolve("rendered/" + profile + ".yaml").toString());
        }
        Repo.Result r = Repo.run(Duration.ofSeconds(60), Repo.root(), Map.of(), cmd);
        assertThat(r.output()).as("yamllint").isEmpty();
        assertThat(r.exitCode()).isZero();
    }
}
