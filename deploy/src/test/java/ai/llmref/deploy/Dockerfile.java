package ai.llmref.deploy;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A Dockerfile read as code: instructions (continuations joined, comments kept apart), global ARG
 * defaults, and stages. Enough of the syntax for the checks in this module; no engine involved.
 */
final class Dockerfile {
    record Instruction(String keyword, String args, int line) {}

    record Stage(String image, String name, List<Instruction> instructions) {
        List<Instruction> all(String keyword) {
            return instructions.stream().filter(i -> i.keyword().equals(keyword)).toList();
        }
    }

    final List<String> comments = new ArrayList<>();
    final Map<String, String> globalArgs = new LinkedHashMap<>();
    final List<Stage> stages = new ArrayList<>();

    static Dockerfile parse(String text) {
        Dockerfile d = new Dockerfile();
        List<Instruction> current = null;
        StringBuilder pending = new StringBuilder();
        int start = 0;
        String[] lines = text.split("\n", -1);
        for (int n = 0; n < lines.length; n++) {
            String line = lines[n];
            String trimmed = line.strip();
            if (pending.isEmpty() && (trimmed.isEmpty() || trimmed.startsWith("#"))) {
                if (trimmed.startsWith("#")) {
                    d.comments.add(trimmed);
                }
                continue;
            }
            if (!pending.isEmpty() && trimmed.startsWith("#")) {
                continue; // a comment inside a continued instruction
            }
            if (pending.isEmpty()) {
                start = n + 1;
            }
            if (trimmed.endsWith("\\")) {
                pending.append(trimmed, 0, trimmed.length() - 1).append(' ');
                continue;
            }
            pending.append(trimmed);
            String full = pending.toString().strip();
            pending.setLength(0);
            int sp = full.indexOf(' ');
            String keyword = (sp < 0 ? full : full.substring(0, sp)).toUpperCase(Locale.ROOT);
            String args = sp < 0 ? "" : full.substring(sp + 1).strip();
            Instruction ins = new Instruction(keyword, args, start);
            if (keyword.equals("FROM")) {
                String[] parts = args.split("\\s+");
                String name = parts.length >= 3 && parts[1].equalsIgnoreCase("AS") ? parts[2] : null;
                current = new ArrayList<>();
                d.stages.add(new Stage(parts[0], name, current));
            } else if (current == null) {
                if (keyword.equals("ARG")) {
                    int eq = args.indexOf('=');
                    d.globalArgs.put(eq < 0 ? args : args.substring(0, eq), eq < 0 ? null : unquote(args.substring(eq + 1)));
                }
            } else {
                current.add(ins);
            }
        }
        return d;
    }

    /** The image a stage starts from, with ${ARG} replaced by the global default. */
    String resolvedImage(Stage s) {
        return substitute(s.image());
    }

    String substitute(String text) {
        Matcher m = Pattern.compile("\\$\\{([A-Za-z_][A-Za-z0-9_]*)}|\\$([A-Za-z_][A-Za-z0-9_]*)").matcher(text);
        StringBuilder sb = new StringBuilder();
        while (m.find()) {
            String name = m.group(1) != null ? m.group(1) : m.group(2);
            String v = globalArgs.get(name);
            m.appendReplacement(sb, Matcher.quoteReplacement(v == null ? m.group() : v));
        }
        m.appendTail(sb);
        return sb.toString();
    }

    Stage stage(String name) {
        return stages.stream().filter(s -> name.equals(s.name())).findFirst()
                .orElseThrow(() -> new AssertionError("no stage " + name));
    }

    Stage last() {
        return stages.get(stages.size() - 1);
    }

    /** An exec-form (JSON array) argument list, or null for the shell form. */
    static List<String> execForm(String args) {
        String a = args.strip();
        if (!a.startsWith("[") || !a.endsWith("]")) {
            return null;
        }
        List<String> out = new ArrayList<>();
        Matcher m = Pattern.compile("\"((?:[^\"\\\\]|\\\\.)*)\"\\s*(,|])").matcher(a.substring(1));
        int pos = 0;
        String body = a.substring(1);
        while (m.find()) {
            if (!body.substring(pos, m.start()).isBlank()) {
                return null;
            }
            out.add(m.group(1).replace("\\\"", "\"").replace("\\\\", "\\"));
            pos = m.end();
        }
        return body.substring(pos).isBlank() ? out : null;
    }

    /** KEY=VALUE pairs of ENV or LABEL instructions (quoted values allowed). */
    static Map<String, String> pairs(String args) {
        Map<String, String> out = new LinkedHashMap<>();
        Matcher m = Pattern.compile("([A-Za-z0-9_.\\-]+)=(\"(?:[^\"\\\\]|\\\\.)*\"|\\S+)").matcher(args);
        while (m.find()) {
            out.put(m.group(1), unquote(m.group(2)));
        }
        return out;
    }

    static String unquote(String v) {
        String s = v.strip();
        if (s.length() >= 2 && s.startsWith("\"") && s.endsWith("\"")) {
            return s.substring(1, s.length() - 1).replace("\\\"", "\"");
        }
        return s;
    }

    /** The final stage's environment (ENV instructions, in order). */
    Map<String, String> finalEnv() {
        Map<String, String> env = new LinkedHashMap<>();
        last().all("ENV").forEach(i -> env.putAll(pairs(i.args())));
        return env;
    }
}
