package ai.llmref.deploy;

import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Metric names: the ones a PromQL expression uses, and the ones a /metrics page offers. */
final class MetricNames {
    private static final Set<String> PROMQL_WORDS = Set.of("and", "or", "unless", "by", "without", "on", "ignoring",
            "group_left", "group_right", "bool", "offset", "inf", "nan");
    private static final Pattern IDENT = Pattern.compile("(?<![A-Za-z0-9_:.$])([A-Za-z_:][A-Za-z0-9_:]*)(\\s*\\()?");

    private MetricNames() {}

    /**
     * The metric names an expression selects: identifiers that are not functions (followed by
     * "("), keywords, label names (inside {} or grouping clauses), durations or Grafana variables.
     */
    static Set<String> inPromQl(String expr) {
        String e = expr.replaceAll("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'", "\"\"") // strings
                .replaceAll("\\{[^}]*}", " ")                                                     // label matchers
                .replaceAll("\\[[^]]*]", " ")                                                     // ranges
                .replaceAll("(?i)\\b(by|without|on|ignoring|group_left|group_right)\\s*\\([^)]*\\)", " ")
                .replaceAll("\\$\\{?[A-Za-z_][A-Za-z0-9_]*}?", " ");                             // Grafana variables
        Set<String> out = new TreeSet<>();
        Matcher m = IDENT.matcher(e);
        while (m.find()) {
            String id = m.group(1);
            if (m.group(2) != null || PROMQL_WORDS.contains(id.toLowerCase())) {
                continue;
            }
            out.add(id);
        }
        return out;
    }

    /** What a Prometheus text page offers: sample names, plus _bucket/_sum/_count of declared histograms. */
    static Set<String> inExposition(String page) {
        Set<String> out = new TreeSet<>();
        for (String line : page.split("\n")) {
            if (line.startsWith("# TYPE ")) {
                String[] p = line.split("\\s+");
                out.add(p[2]);
                if (p.length > 3 && (p[3].equals("histogram") || p[3].equals("summary"))) {
                    out.add(p[2] + "_sum");
                    out.add(p[2] + "_count");
                    if (p[3].equals("histogram")) {
                        out.add(p[2] + "_bucket");
                    }
                }
            } else if (!line.isBlank() && !line.startsWith("#")) {
                out.add(line.split("[{\\s]", 2)[0]);
            }
        }
        return out;
    }

    /** llmref_* names mentioned anywhere in a text (collector configs, docs). */
    static Set<String> mentioned(String text) {
        Set<String> out = new TreeSet<>();
        Matcher m = Pattern.compile("\\bllmref_[a-z0-9_]*[a-z0-9]").matcher(text);
        while (m.find()) {
            out.add(m.group());
        }
        return out;
    }
}
