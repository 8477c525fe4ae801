package ai.llmref.deploy;

import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** The configuration keys the server reads: the key literals of ServerConfig.java. */
final class ServerKeys {
    private static final Pattern KEY = Pattern.compile("\"((?:server|model|engine|limits|auth|tracing)\\.[a-z][a-z0-9-]*)\"");

    private ServerKeys() {}

    static Set<String> all() {
        Set<String> keys = new TreeSet<>();
        Matcher m = KEY.matcher(Repo.read("server/src/main/java/ai/llmref/server/config/ServerConfig.java"));
        while (m.find()) {
            keys.add(m.group(1));
        }
        if (keys.size() < 20) {
            throw new AssertionError("found only " + keys + " in ServerConfig.java: has its key syntax changed?");
        }
        return keys;
    }

    /** The environment variable the server reads a key from: LLMREF_ + key upper-cased, {@code -} as {@code __}, {@code .} as {@code _}. */
    static String envName(String key) {
        return "LLMREF_" + key.toUpperCase(Locale.ROOT).replace("-", "__").replace('.', '_');
    }

    /**
     * The key an environment variable sets, as ServerConfig.fromEnvironment maps it (a copy of its
     * rule: strip LLMREF_, lower-case, {@code __} to {@code -}, {@code _} to {@code .}); null for other names.
     */
    static String keyOfEnv(String name) {
        if (!name.startsWith("LLMREF_") || name.length() <= 7) {
            return null;
        }
        return name.substring(7).toLowerCase(Locale.ROOT).replace("__", "\u0000").replace('_', '.').replace('\u0000', '-');
    }

    /** Flattens a YAML tree (maps only) into dotted leaf keys. */
    static Set<String> leaves(Map<?, ?> tree) {
        Set<String> out = new TreeSet<>();
        flatten("", tree, out);
        return out;
    }

    private static void flatten(String prefix, Map<?, ?> m, Set<String> out) {
        m.forEach((k, v) -> {
            String key = prefix.isEmpty() ? k.toString() : prefix + "." + k;
            if (v instanceof Map<?, ?> child) {
                flatten(key, child, out);
            } else {
                out.add(key);
            }
        });
    }
}
