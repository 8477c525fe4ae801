package ai.llmref.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.GenericKubernetesResource;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * k8s/policies: only signed images from the project's registry are admitted. These are custom
 * resources without a fabric8 model, so their fields are checked against the shapes the two
 * controllers document.
 */
class AdmissionPolicyTest {
    static final String REGISTRY = "registry.example.com/llmref/";
    /** The namespace label both policies act on (policy-controller's own; Kyverno selects on it too). */
    static final String NAMESPACE_LABEL = "policy.sigstore.dev/include";
    static final String PART_OF = "app.kubernetes.io/part-of";
    static final String PRODUCT = "ai-llm-reference-app";

    @Test
    void sigstorePolicyEnforcesKeylessSignaturesOnTheProjectRegistryAndDeniesTheRest() {
        List<HasMetadata> objects = KubeObjects.parseAll(Repo.read("k8s/policies/sigstore-cluster-image-policy.yaml"), "policy-controller");
        GenericKubernetesResource cip = HelmChartTest.single(KubeObjects.generic(objects, "ClusterImagePolicy"));
        assertThat(cip.getApiVersion()).isEqualTo("policy.sigstore.dev/v1beta1");
        Map<String, Object> spec = spec(cip);
        assertThat(spec.keySet()).isSubsetOf(Set.of("mode", "images", "authorities", "policy", "match"));
        assertThat(spec.get("mode")).isEqualTo("enforce");
        assertThat((List<?>) spec.get("images")).isNotEmpty().allSatisfy(i ->
                assertThat((String) Yaml.at(i, "glob")).startsWith(REGISTRY));
        assertThat((List<?>) spec.get("authorities")).isNotEmpty().allSatisfy(a -> {
            assertThat(Yaml.keys(a)).isSubsetOf(Set.of("name", "keyless", "key", "ctlog", "source", "attestations", "static", "rfc3161timestamp"));
            assertThat(Yaml.at(a, "ctlog.url")).as("signatures must be in the transparency log").isNotNull();
            List<?> identities = (List<?>) Yaml.at(a, "keyless.identities");
            assertThat(identities).isNotEmpty().allSatisfy(id -> {
                assertThat(Yaml.keys(id)).isSubsetOf(Set.of("issuer", "subject", "issuerRegExp", "subjectRegExp"));
                assertThat((String) Yaml.at(id, "issuer")).startsWith("https://");
                String subject = (String) Yaml.at(id, "subjectRegExp");
                assertThat(subject).as("an anchored signer identity, not a wildcard").startsWith("^").endsWith("$").doesNotContain(".*");
            });
        });
        ConfigMap cfg = KubeObjects.single(objects, ConfigMap.class);
        assertThat(cfg.getMetadata().getNamespace()).isEqualTo("cosign-system");
        assertThat(cfg.getData()).containsEntry("no-match-policy", "deny");
        objects.forEach(o -> assertThat(KubeObjects.unknownFields(o)).isEmpty());
    }

    @Test
    void kyvernoPolicyAdmitsOnlyTheRegistryAndVerifiesSignatures() {
        List<HasMetadata> objects = KubeObjects.parseAll(Repo.read("k8s/policies/kyverno-verify-images.yaml"), "kyverno");
        GenericKubernetesResource policy = HelmChartTest.single(KubeObjects.generic(objects, "ClusterPolicy"));
        assertThat(policy.getApiVersion()).isEqualTo("kyverno.io/v1");
        Map<String, Object> spec = spec(policy);
        assertThat(spec.keySet()).isSubsetOf(Set.of("background", "webhookTimeoutSeconds", "rules", "failurePolicy", "admission"));
        List<?> rules = (List<?>) spec.get("rules");
        assertThat(rules).hasSize(2).allSatisfy(r -> {
            assertThat(Yaml.keys(r)).isSubsetOf(Set.of("name", "match", "exclude", "validate", "verifyImages", "preconditions", "imageExtractors"));
            // Pods of any namespace labelled for signature checks, and the product's pods anywhere: no namespace by name.
            List<?> match = (List<?>) Yaml.at(r, "match.any");
            assertThat(match).hasSize(2).allSatisfy(m -> {
                assertThat(Yaml.keys(Yaml.at(m, "resources"))).isSubsetOf(Set.of("kinds", "namespaceSelector", "selector"));
                assertThat(Yaml.strings(Yaml.at(m, "resources.kinds"))).containsExactly("Pod");
            });
            assertThat(Yaml.at(match.get(0), "resources.namespaceSelector.matchLabels")).isEqualTo(Map.of(NAMESPACE_LABEL, "true"));
            assertThat(Yaml.at(match.get(1), "resources.selector.matchLabels")).isEqualTo(Map.of(PART_OF, PRODUCT));
        });
        Object registryRule = rules.get(0);
        assertThat(Yaml.at(registryRule, "validate.failureAction")).isEqualTo("Enforce");
        for (String list : List.of("containers", "=(initContainers)", "=(ephemeralContainers)")) {
            List<?> containers = (List<?>) ((Map<?, ?>) Yaml.at(registryRule, "validate.pattern.spec")).get(list);
            assertThat((String) Yaml.at(containers.get(0), "image")).as(list).isEqualTo(REGISTRY + "*");
        }
        // Image volumes: a volume with an image source must name the registry; other volumes pass.
        List<?> volumes = (List<?>) ((Map<?, ?>) Yaml.at(registryRule, "validate.pattern.spec")).get("=(volumes)");
        assertThat(volumes).singleElement().satisfies(v ->
                assertThat((String) Yaml.at(((Map<?, ?>) v).get("=(image)"), "reference")).isEqualTo(REGISTRY + "*"));
        // The signature rule extracts every image of a pod, image volumes included. Extractors given
        // for a kind replace Kyverno's built-in ones, so the three container lists must be there too.
        List<?> extractors = (List<?>) Yaml.at(rules.get(1), "imageExtractors.Pod");
        assertThat(Yaml.keys(Yaml.at(rules.get(1), "imageExtractors"))).containsExactly("Pod");
        assertThat(extractors).allSatisfy(e -> assertThat(Yaml.keys(e)).isSubsetOf(Set.of("name", "path", "value", "key", "jmesPath")));
        assertThat(extractors).extracting(e -> Yaml.at(e, "path") + " " + Yaml.at(e, "value")).containsExactlyInAnyOrder(
                "/spec/containers/* image", "/spec/initContainers/* image", "/spec/ephemeralContainers/* image",
                "/spec/volumes/*/image reference");
        List<?> verify = (List<?>) Yaml.at(rules.get(1), "verifyImages");
        assertThat(verify).singleElement().satisfies(v -> {
            assertThat(Yaml.keys(v)).isSubsetOf(Set.of("imageReferences", "failureAction", "required", "mutateDigest",
                    "verifyDigest", "attestors", "attestations", "type", "useCache"));
            assertThat(Yaml.at(v, "failureAction")).isEqualTo("Enforce");
            assertThat(Yaml.at(v, "required")).isEqualTo(true);
            assertThat(Yaml.at(v, "verifyDigest")).isEqualTo(true);
            assertThat(Yaml.strings(Yaml.at(v, "imageReferences"))).containsExactly(REGISTRY + "*");
            List<?> entries = (List<?>) Yaml.at(((List<?>) Yaml.at(v, "attestors")).get(0), "entries");
            Object keyless = Yaml.at(entries.get(0), "keyless");
            assertThat(Yaml.keys(keyless)).isSubsetOf(Set.of("issuer", "subject", "issuerRegExp", "subjectRegExp", "rekor", "ctlog", "roots"));
            assertThat((String) Yaml.at(keyless, "subjectRegExp")).startsWith("^").endsWith("$");
            assertThat(Yaml.at(keyless, "rekor.url")).isNotNull();
        });
    }

    @Test
    void policiesNameNoNamespaceAndTheHelmWalkthroughLabelsItsNamespaceForThem() {
        for (String f : List.of("k8s/policies/kyverno-verify-images.yaml", "k8s/policies/sigstore-cluster-image-policy.yaml")) {
            for (HasMetadata o : KubeObjects.parseAll(Repo.read(f), f)) {
                if (o instanceof GenericKubernetesResource r) {
                    assertThat(namespacesNamed(r.getAdditionalProperties())).as(f + ": namespaces named in a match").isEmpty();
                }
            }
        }
        // docs/deployment.md 2.2: the namespace the walkthrough creates is labelled, and it is the namespace it installs into.
        String doc = Repo.read("docs/deployment.md");
        java.util.regex.Matcher label = java.util.regex.Pattern.compile("kubectl label namespace (\\S+)((?:\\\\\\n|[^\\n])*)").matcher(doc);
        assertThat(label.find()).as("the walkthrough labels its namespace").isTrue();
        assertThat(label.group(2)).contains(NAMESPACE_LABEL + "=true");
        assertThat(doc).contains("helm install " + Chart.RELEASE + " ./helm/llmref -n " + label.group(1));
        assertThat(label.group(1)).isEqualTo(Chart.NAMESPACE);
    }

    @Test
    void kyvernoSelectsEveryPodTheChartAndK8sCreate() {
        // The part-of label selects the product's pods in a namespace nobody labelled.
        List<Map<String, String>> podLabels = new java.util.ArrayList<>();
        for (String profile : List.of("default", "gpu", "mig", "cpu", "hardened-production")) {
            List<HasMetadata> objects = Chart.objects(profile);
            podLabels.add(HelmChartTest.deployment(objects).getSpec().getTemplate().getMetadata().getLabels());
            podLabels.add(KubeObjects.single(objects, io.fabric8.kubernetes.api.model.Pod.class).getMetadata().getLabels());
        }
        for (String dir : List.of("k8s/base", "k8s/overlays/gpu", "k8s/overlays/cpu")) {
            podLabels.add(KubeObjects.single(KustomizeTest.build(dir), Deployment.class).getSpec().getTemplate().getMetadata().getLabels());
        }
        assertThat(podLabels).allSatisfy(l -> assertThat(l).containsEntry(PART_OF, PRODUCT));
    }

    @Test
    void kyvernosExtractorsFindEveryImageOfTheRenderedPodsTheModelVolumeIncluded() {
        Map<String, Object> rule = kyvernoRule("verify-signature");
        String model = REGISTRY + "models/llama-3.1-8b-instruct@sha256:" + "1".repeat(64);
        String rendered = Chart.renderWith("default", "model:\n  source: image\n  image:\n    reference: " + model + "\n");
        Map<String, Object> pod = podOf(rendered);
        List<String> found = new java.util.ArrayList<>();
        for (Object e : (List<?>) Yaml.at(rule, "imageExtractors.Pod")) {
            extract(pod, List.of(((String) Yaml.at(e, "path")).substring(1).split("/")), (String) Yaml.at(e, "value"), found);
        }
        assertThat(found).containsExactlyInAnyOrder(
                HelmChartTest.server(HelmChartTest.deployment(KubeObjects.parseAll(rendered, "image volume"))).getImage(), model);
        List<String> globs = Yaml.strings(Yaml.at(((List<?>) Yaml.at(rule, "verifyImages")).get(0), "imageReferences"));
        assertThat(found).allSatisfy(i -> assertThat(globs).anySatisfy(g -> assertThat(i).startsWith(g.replace("*", ""))));
        // Kyverno's own extractors alone would find the server image only.
        List<String> builtIn = new java.util.ArrayList<>();
        for (String list : List.of("containers", "initContainers", "ephemeralContainers")) {
            extract(pod, List.of("spec", list, "*"), "image", builtIn);
        }
        assertThat(builtIn).doesNotContain(model);
    }

    /** Kyverno's extractor walk (pkg/utils/api/image.go): "*" goes through a list, the last step reads {@code value}. */
    private static void extract(Object node, List<String> path, String value, List<String> out) {
        if (node == null) {
            return;
        }
        if (path.isEmpty()) {
            Object v = ((Map<?, ?>) node).get(value);
            if (v instanceof String s && !s.isBlank()) {
                out.add(s);
            }
            return;
        }
        if (path.get(0).equals("*")) {
            if (node instanceof List<?> l) {
                l.forEach(e -> extract(e, path.subList(1, path.size()), value, out));
            } else if (node instanceof Map<?, ?> m) {
                m.values().forEach(e -> extract(e, path.subList(1, path.size()), value, out));
            }
            return;
        }
        extract(((Map<?, ?>) node).get(path.get(0)), path.subList(1, path.size()), value, out);
    }

    /** The Deployment's pod template as the Pod Kyverno is asked about: {spec: ...}. */
    private static Map<String, Object> podOf(String rendered) {
        for (Object doc : Yaml.loadAll(rendered)) {
            if (doc instanceof Map<?, ?> m && "Deployment".equals(m.get("kind"))) {
                return Map.of("spec", Yaml.at(m, "spec.template.spec"));
            }
        }
        throw new AssertionError("no Deployment rendered");
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> kyvernoRule(String name) {
        GenericKubernetesResource policy = HelmChartTest.single(KubeObjects.generic(
                KubeObjects.parseAll(Repo.read("k8s/policies/kyverno-verify-images.yaml"), "kyverno"), "ClusterPolicy"));
        return ((List<Map<String, Object>>) spec(policy).get("rules")).stream().filter(r -> name.equals(r.get("name"))).findFirst().orElseThrow();
    }

    /** Every list under a key "namespaces" anywhere in a tree. */
    private static List<Object> namespacesNamed(Object node) {
        List<Object> out = new java.util.ArrayList<>();
        if (node instanceof Map<?, ?> m) {
            m.forEach((k, v) -> {
                if ("namespaces".equals(k)) {
                    out.add(v);
                } else {
                    out.addAll(namespacesNamed(v));
                }
            });
        } else if (node instanceof List<?> l) {
            l.forEach(e -> out.addAll(namespacesNamed(e)));
        }
        return out;
    }

    @Test
    void theDeployedImagesAreTheOnesThePoliciesCover() {
        Deployment hardened = HelmChartTest.deployment(Chart.objects("hardened-production"));
        assertThat(HelmChartTest.server(hardened).getImage()).startsWith(REGISTRY);
        assertThat(hardened.getSpec().getTemplate().getSpec().getVolumes()).filteredOn(v -> v.getImage() != null)
                .as("the model's image volume").singleElement().satisfies(v -> assertThat(v.getImage().getReference()).startsWith(REGISTRY));
        assertThat(HelmChartTest.server(HelmChartTest.deployment(Chart.objects("default"))).getImage()).startsWith(REGISTRY);
        Deployment k8s = KubeObjects.single(KustomizeTest.build("k8s/overlays/gpu"), Deployment.class);
        assertThat(HelmChartTest.server(k8s).getImage()).startsWith(REGISTRY);
        assertThat((String) Yaml.at(Yaml.map(Repo.read("helm/profiles/hardened-production.yaml")), "tests.image"))
                .as("the helm test pod's image must be admitted too").startsWith(REGISTRY);
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> spec(GenericKubernetesResource r) {
        return (Map<String, Object>) r.getAdditionalProperties().get("spec");
    }
}
