package ai.llmref.deploy;

import io.fabric8.kubernetes.api.model.GenericKubernetesResource;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.KubernetesResource;
import io.fabric8.kubernetes.client.utils.KubernetesSerialization;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Kubernetes objects parsed with the fabric8 model: every built-in kind becomes its typed class
 * (Deployment, NetworkPolicy ...), custom resources become {@link GenericKubernetesResource}.
 */
final class KubeObjects {
    private static final KubernetesSerialization SERIALIZATION = new KubernetesSerialization();
    private static final Pattern DOC_SEPARATOR = Pattern.compile("(?m)^---[ \\t]*$");

    private KubeObjects() {}

    /** Parses a multi-document YAML stream; documents holding only comments are skipped. */
    static List<HasMetadata> parseAll(String yaml, String origin) {
        List<HasMetadata> out = new ArrayList<>();
        int i = 0;
        for (String doc : DOC_SEPARATOR.split(yaml)) {
            i++;
            if (doc.lines().allMatch(l -> l.isBlank() || l.stripLeading().startsWith("#"))) {
                continue;
            }
            Object parsed;
            try {
                parsed = SERIALIZATION.unmarshal(doc);
            } catch (RuntimeException e) {
                throw new AssertionError(origin + " document " + i + " does not parse as a Kubernetes object: " + e, e);
            }
            if (!(parsed instanceof HasMetadata h)) {
                throw new AssertionError(origin + " document " + i + " is not a Kubernetes object: " + parsed);
            }
            out.add(h);
        }
        return out;
    }

    static String describe(HasMetadata o) {
        return o.getKind() + "/" + (o.getMetadata() == null ? "?" : o.getMetadata().getName());
    }

    @SuppressWarnings("unchecked")
    static <T extends HasMetadata> List<T> ofKind(List<HasMetadata> objects, Class<T> type) {
        List<T> out = new ArrayList<>();
        for (HasMetadata o : objects) {
            if (type.isInstance(o)) {
                out.add((T) o);
            }
        }
        return out;
    }

    static <T extends HasMetadata> T single(List<HasMetadata> objects, Class<T> type) {
        List<T> all = ofKind(objects, type);
        if (all.size() != 1) {
            throw new AssertionError("expected one " + type.getSimpleName() + ", found " + all.size());
        }
        return all.get(0);
    }

    static List<GenericKubernetesResource> generic(List<HasMetadata> objects, String kind) {
        List<GenericKubernetesResource> out = new ArrayList<>();
        for (HasMetadata o : objects) {
            if (o instanceof GenericKubernetesResource g && kind.equals(g.getKind())) {
                out.add(g);
            }
        }
        return out;
    }

    /**
     * Every field the model did not recognise, anywhere in the object: fabric8 keeps those in the
     * additionalProperties map of the class where they appeared (a misspelt or misplaced key lands
     * there instead of failing). Custom resources are skipped: they have no typed model.
     */
    static List<String> unknownFields(HasMetadata root) {
        List<String> out = new ArrayList<>();
        if (!(root instanceof GenericKubernetesResource)) {
            walk(root, describe(root), out, Collections.newSetFromMap(new IdentityHashMap<>()));
        }
        return out;
    }

    private static void walk(Object o, String path, List<String> out, Set<Object> seen) {
        if (o == null || o instanceof CharSequence || o instanceof Number || o instanceof Boolean || o instanceof Enum<?>) {
            return;
        }
        if (!seen.add(o)) {
            return;
        }
        if (o instanceof Map<?, ?> m) {
            m.forEach((k, v) -> walk(v, path + "." + k, out, seen));
            return;
        }
        if (o instanceof Collection<?> c) {
            int i = 0;
            for (Object e : c) {
                walk(e, path + "[" + i++ + "]", out, seen);
            }
            return;
        }
        if (!(o instanceof KubernetesResource) && !o.getClass().getName().startsWith("io.fabric8.kubernetes.api.model")) {
            return;
        }
        for (Class<?> c = o.getClass(); c != null && c != Object.class; c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
                if (Modifier.isStatic(f.getModifiers())) {
                    continue;
                }
                Object value;
                try {
                    f.setAccessible(true);
                    value = f.get(o);
                } catch (ReflectiveOperationException | RuntimeException e) {
                    throw new AssertionError("cannot read " + c.getName() + "." + f.getName(), e);
                }
                if (f.getName().equals("additionalProperties")) {
                    if (value instanceof Map<?, ?> extra && !extra.isEmpty()) {
                        out.add(path + ": unknown field(s) " + extra.keySet());
                    }
                } else {
                    walk(value, path + "." + f.getName(), out, seen);
                }
            }
        }
    }
}
