package ai.llmref.server.config;

import io.helidon.config.Config;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;

/**
 * Every key that reaches the server must be one of {@link ServerConfig#KEYS}: a misspelled key
 * would otherwise be ignored and the server would run on the default. Checks the command line, the
 * system properties of the server's sections, the {@code LLMREF_} variables and the
 * {@code --config} file, and names each offending key with where it came from and, when one is
 * close, the key that was probably meant.
 */
final class KeyCheck {
    /** The first segments of the keys: server, model, engine, limits, auth, tracing. */
    static final Set<String> SECTIONS = ServerConfig.KEYS.stream().map(k -> k.substring(0, k.indexOf('.')))
            .collect(Collectors.toUnmodifiableSet());

    private KeyCheck() {}

    /**
     * The system properties that are the server's: those whose first segment names a section, in any
     * case ({@code Engine.slots} too, a typo to report); {@code java.version}, {@code user.dir} and
     * the like are the JVM's.
     */
    static Map<String, String> serverProperties(Map<String, String> properties) {
        Map<String, String> out = new TreeMap<>();
        properties.forEach((k, v) -> {
            int dot = k.indexOf('.');
            String first = (dot < 0 ? k : k.substring(0, dot)).toLowerCase(Locale.ROOT);
            if (SECTIONS.contains(first)) {
                out.put(k, v);
            }
        });
        return out;
    }

    /**
     * Throws a {@link ConfigException} with one line per problem, in the order command line, system
     * properties, environment, file; {@code fileTree} is {@code file} alone, null without a file.
     */
    static void check(Path file, Config fileTree, Map<String, String> overrides, Map<String, String> serverProperties,
                      Map<String, String> environment) {
        List<String> problems = new ArrayList<>();
        new TreeMap<>(overrides).keySet().forEach(k -> flat(k, "from the command line", null, problems));
        serverProperties.keySet().forEach(k -> flat(k, "from system property -D" + k, null, problems));
        new TreeMap<>(environment).keySet().forEach(variable -> {
            String key = ServerConfig.environmentKey(variable);
            if (key != null) {
                flat(key, "from environment variable " + variable, variable, problems);
            }
        });
        if (fileTree != null) {
            tree(fileTree, "from file " + file, problems);
        }
        if (!problems.isEmpty()) {
            throw new ConfigException(problems);
        }
    }

    /** A key of a flat source (command line, property, variable); {@code variable} names the variable, if it is one. */
    private static void flat(String key, String source, String variable, List<String> problems) {
        if (ServerConfig.KNOWN.contains(key)) {
            return;
        }
        if (SECTIONS.contains(key)) {
            problems.add(key + " (" + source + ") is a section, not a key: name one of its keys, e.g. " + firstKeyOf(key));
            return;
        }
        problems.add(unknown(key, source, variable));
    }

    /** The file's tree: keys must be known, a key holds a single value, a section holds keys. */
    private static void tree(Config node, String source, List<String> problems) {
        if (!node.exists()) {
            return; // an empty file
        }
        String key = node.key().toString();
        if (ServerConfig.KNOWN.contains(key)) {
            if (node.type() == Config.Type.OBJECT) {
                problems.add(key + " (" + source + ") must be a single value, not a map (" + children(node) + ")");
            } else if (node.type() == Config.Type.LIST) {
                problems.add(key + " (" + source + ") must be a single value, not a list"
                        + ("auth.api-keys".equals(key) ? " (keys are comma-separated)" : ""));
            }
            return;
        }
        boolean section = SECTIONS.contains(key);
        if (key.isEmpty() && node.type() != Config.Type.OBJECT) {
            problems.add("--config (" + source + ") must hold a map of sections (server, model, engine, ...)");
            return;
        }
        if (section && node.type() == Config.Type.VALUE) {
            if (!node.asString().orElse("").isBlank()) {
                problems.add(key + " (" + source + ") must be a section of keys (e.g. " + firstKeyOf(key)
                        + "), not a single value");
            }
            return; // an empty section ("engine:") sets nothing
        }
        if (node.type() == Config.Type.OBJECT) {
            // a section, or a map at an unknown key whose leaves are then each reported
            node.asNodeList().orElse(List.of()).stream()
                    .sorted(java.util.Comparator.comparing(n -> n.key().toString()))
                    .forEach(child -> tree(child, source, problems));
            return;
        }
        if (section) {
            problems.add(key + " (" + source + ") must be a section of keys (e.g. " + firstKeyOf(key) + "), not a list");
            return;
        }
        problems.add(unknown(key, source, null));
    }

    private static String children(Config node) {
        return node.asNodeList().orElse(List.of()).stream().map(n -> n.key().toString()).sorted()
                .collect(Collectors.joining(", "));
    }

    private static String firstKeyOf(String section) {
        return ServerConfig.KEYS.stream().filter(k -> k.startsWith(section + ".")).findFirst().orElseThrow();
    }

    private static String unknown(String key, String source, String variable) {
        String near = closest(key);
        String hint;
        if (near == null) {
            hint = "; docs/server.md lists the keys";
        } else if (variable != null) {
            hint = "; did you mean " + near + " (" + ServerConfig.environmentVariable(near) + ")?";
        } else {
            hint = "; did you mean " + near + "?";
        }
        return key + " (" + source + ") is not a known key" + hint;
    }

    /**
     * The known key {@code key} probably meant: the same key with other separators or case
     * ({@code engine.slot_context}, {@code engine.slotContext}), a key it extends
     * ({@code engine.slots.max}), else the nearest within 2 edits ({@code engine.slot}); null if none.
     */
    static String closest(String key) {
        String squeezed = squeeze(key);
        for (String k : ServerConfig.KEYS) {
            if (squeeze(k).equals(squeezed)) {
                return k;
            }
        }
        for (String k : ServerConfig.KEYS) {
            if (key.startsWith(k + ".")) {
                return k;
            }
        }
        String best = null;
        int bestDistance = 3;
        String lower = key.toLowerCase(Locale.ROOT);
        for (String k : ServerConfig.KEYS) {
            int d = distance(lower, k, bestDistance);
            if (d < bestDistance) {
                best = k;
                bestDistance = d;
            }
        }
        return best;
    }

    private static String squeeze(String key) {
        return key.toLowerCase(Locale.ROOT).replaceAll("[._-]", "");
    }

    /** Levenshtein distance, or {@code limit} when it is at least that. */
    static int distance(String a, String b, int limit) {
        if (Math.abs(a.length() - b.length()) >= limit) {
            return limit;
        }
        int[] previous = new int[b.length() + 1];
        int[] current = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) {
            previous[j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            current[0] = i;
            int rowMin = current[0];
            for (int j = 1; j <= b.length(); j++) {
                int cost = a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1;
                current[j] = Math.min(Math.min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
                rowMin = Math.min(rowMin, current[j]);
            }
            if (rowMin >= limit) {
                return limit;
            }
            int[] t = previous;
            previous = current;
            current = t;
        }
        return Math.min(previous[b.length()], limit);
    }
}
