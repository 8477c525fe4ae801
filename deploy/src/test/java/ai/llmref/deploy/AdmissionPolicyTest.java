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
            assertThat(Yaml.keys(r)).isSubsetOf(Set.of("name", "match", "exclude", "validate", "verifyImages", "preconditions"));
            List<?> match = (List<?>) Yaml.at(r, "match.any");
            assertThat(Yaml.strings(Yaml.at(match.get(0), "resources.kinds"))).containsExactly("Pod");
            assertThat(Yaml.strings(Yaml.at(match.get(0), "resources.namespaces"))).containsExactly("llmref");
        });
        Object registryRule = rules.get(0);
        assertThat(Yaml.at(registryRule, "validate.failureAction")).isEqualTo("Enforce");
        List<?> containers = (List<?>) Yaml.at(registryRule, "validate.pattern.spec.containers");
        assertThat((String) Yaml.at(containers.get(0), "image")).isEqualTo(REGISTRY + "*");
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
    void theDeployedImagesAreTheOnesThePoliciesCover() {
        assertThat(HelmChartTest.server(HelmChartTest.deployment(Chart.objects("hardened-production"))).getImage()).startsWith(REGISTRY);
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
