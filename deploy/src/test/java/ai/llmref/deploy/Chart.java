package ai.llmref.deploy;

import com.marcnuri.helm.Helm;
import com.marcnuri.helm.TemplateCommand;
import io.fabric8.kubernetes.api.model.HasMetadata;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/** Renders helm/llmref with helm-java (Helm itself, in process) for a values profile. */
final class Chart {
    static final String RELEASE = "llm";
    static final String NAMESPACE = "llm";
    /** The oldest Kubernetes the chart supports (Chart.yaml kubeVersion). */
    static final String KUBE_VERSION = "1.30.0";
    private static final Map<String, String> RENDERED = new ConcurrentHashMap<>();

    private Chart() {}

    /** The chart as committed (lint runs on this). */
    static Path dir() {
        return Repo.path("helm/llmref");
    }

    /** Hook annotations are renamed to this in the rendering copy (see {@link #renderable()}). */
    static final String HOOK_ANNOTATION = "ai.llmref/helm-hook";
    private static volatile Path renderable;

    /**
     * A copy of the chart under target/ whose hook annotations are renamed: helm-java's template
     * leaves hooks out of its output, and the helm test pod must be checked like every other pod.
     */
    static synchronized Path renderable() {
        if (renderable == null) {
            Path copy = Repo.target().resolve("chart-copy/llmref");
            try {
                if (Files.exists(copy)) {
                    try (var s = Files.walk(copy)) {
                        s.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
                    }
                }
                try (var s = Files.walk(dir())) {
                    for (Path src : s.sorted().toList()) {
                        Path dst = copy.resolve(dir().relativize(src).toString());
                        if (Files.isDirectory(src)) {
                            Files.createDirectories(dst);
                        } else {
                            Files.writeString(dst, Files.readString(src).replace("helm.sh/hook:", HOOK_ANNOTATION + ":"));
                        }
                    }
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            renderable = copy;
        }
        return renderable;
    }

    /** A profile of helm/profiles/ by name, or "default" for the chart's own values. */
    static Path profile(String name) {
        return Repo.path("helm/profiles/" + name + ".yaml");
    }

    static String render(String profile) {
        return RENDERED.computeIfAbsent(profile, p -> {
            String out = template(p.equals("default") ? null : profile(p)).call();
            writeRendered(p, out);
            return out;
        });
    }

    static List<HasMetadata> objects(String profile) {
        return KubeObjects.parseAll(render(profile), "helm template -f " + profile);
    }

    /** A template command with the release name, namespace and Kubernetes version the tests use. */
    static TemplateCommand template(Path... valuesFiles) {
        TemplateCommand t = new Helm(renderable()).template().withName(RELEASE).withNamespace(NAMESPACE).withKubeVersion(KUBE_VERSION);
        for (Path v : valuesFiles) {
            if (v != null) {
                t = t.withValuesFile(v);
            }
        }
        return t;
    }

    /** Renders with extra values given as YAML text (on top of the profile); throws what Helm throws. */
    static String renderWith(String profile, String valuesYaml) {
        try {
            Path f = Files.createTempFile(Repo.target(), "values-", ".yaml");
            Files.writeString(f, valuesYaml);
            try {
                return template(profile.equals("default") ? null : profile(profile), f).call();
            } finally {
                Files.deleteIfExists(f);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * The NOTES.txt Helm prints after an install with the chart's values plus {@code valuesYaml}
     * (a client-only dry run: {@code helm template} leaves NOTES.txt out).
     */
    static String notes(String valuesYaml) {
        try {
            Path f = Files.createTempFile(Repo.target(), "values-", ".yaml");
            Files.writeString(f, valuesYaml);
            try {
                String out = new Helm(dir()).install().withName(RELEASE).withNamespace(NAMESPACE).withKubeVersion(KUBE_VERSION)
                        .clientOnly().dryRun().withValuesFile(f).call().getOutput();
                int at = out.indexOf("NOTES:");
                if (at < 0) {
                    throw new AssertionError("no NOTES in helm's install output:\n" + out);
                }
                return out.substring(at);
            } finally {
                Files.deleteIfExists(f);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Keeps each profile's rendering under target/rendered/ (yamllint reads them; handy for review). */
    private static void writeRendered(String profile, String yaml) {
        try {
            Path dir = Repo.target().resolve("rendered");
            Files.createDirectories(dir);
            Files.writeString(dir.resolve(profile + ".yaml"), yaml);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
