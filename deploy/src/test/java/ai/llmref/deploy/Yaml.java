package ai.llmref.deploy;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.snakeyaml.engine.v2.api.Load;
import org.snakeyaml.engine.v2.api.LoadSettings;

/** Plain YAML (no Kubernetes model): maps, lists and scalars. */
final class Yaml {
    private Yaml() {}

    static Object load(String text) {
        return new Load(LoadSettings.builder().setLabel("yaml").build()).loadFromString(text);
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> map(String text) {
        Object o = load(text);
        if (!(o instanceof Map)) {
            throw new AssertionError("expected a YAML mapping, got " + o);
        }
        return (Map<String, Object>) o;
    }

    static List<Object> loadAll(String text) {
        List<Object> out = new ArrayList<>();
        new Load(LoadSettings.builder().build()).loadAllFromString(text).forEach(out::add);
        return out;
    }

    /** The keys of a YAML mapping, as strings. */
    static java.util.Set<String> keys(Object map) {
        java.util.Set<String> out = new java.util.TreeSet<>();
        ((Map<?, ?>) map).keySet().forEach(k -> out.add(String.valueOf(k)));
        return out;
    }

    /** A YAML sequence of scalars, as strings. */
    static List<String> strings(Object list) {
        List<String> out = new ArrayList<>();
        ((List<?>) list).forEach(e -> out.add(String.valueOf(e)));
        return out;
    }

    /** Follows a dotted path of map keys; null when any step is missing. */
    static Object at(Object root, String path) {
        Object o = root;
        for (String k : path.split("\\.")) {
            if (!(o instanceof Map<?, ?> m)) {
                return null;
            }
            o = m.get(k);
        }
        return o;
    }
}
