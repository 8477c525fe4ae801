package ai.llmref.server.observe;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A strict reader of the Prometheus text format 0.0.4, for tests: it throws {@link AssertionError}
 * naming the line on anything a scraper would reject or misread (a family's HELP or TYPE twice,
 * samples of a family apart, invalid names, bad escapes, a series twice) and on histograms that are
 * not what {@code histogram_quantile} needs (buckets cumulative and monotone, {@code +Inf} equal
 * to {@code _count}, {@code _sum} present), counters not named {@code _total} or not finite and
 * non-negative.
 */
public final class PrometheusText {
    private static final Pattern NAME = Pattern.compile("[a-zA-Z_:][a-zA-Z0-9_:]*");
    private static final Pattern LABEL = Pattern.compile("[a-zA-Z_][a-zA-Z0-9_]*");
    private static final Set<String> TYPES = Set.of("counter", "gauge", "histogram", "summary", "untyped");

    /** One sample: its metric name, its labels in order, its value. */
    public record Sample(String name, Map<String, String> labels, double value) {}

    private PrometheusText() {}

    /** Checks {@code page} and returns its samples. */
    public static List<Sample> validate(String page) {
        if (!page.isEmpty() && !page.endsWith("\n")) {
            throw new AssertionError("the page does not end with a line feed");
        }
        Map<String, String> types = new HashMap<>();
        Set<String> helps = new HashSet<>();
        Set<String> closed = new HashSet<>();
        Set<String> series = new HashSet<>();
        List<Sample> samples = new ArrayList<>();
        String current = null;
        for (String line : page.split("\n", -1)) {
            if (line.isEmpty()) {
                continue;
            }
            if (line.startsWith("# HELP ") || line.startsWith("# TYPE ")) {
                String[] p = line.split(" ", 4);
                check(p.length == 4 && NAME.matcher(p[2]).matches(), line, "a HELP or TYPE line with a valid name");
                String family = p[2];
                if (!family.equals(current)) {
                    check(!closed.contains(family), line, "the family's lines together");
                    if (current != null) {
                        closed.add(current);
                    }
                    current = family;
                }
                if (p[1].equals("HELP")) {
                    check(helps.add(family), line, "one HELP per family");
                    check(!p[3].contains("\n") && !p[3].matches(".*\\\\[^\\\\n].*"), line, "HELP escapes only \\\\ and \\n");
                } else {
                    check(!types.containsKey(family), line, "one TYPE per family");
                    check(TYPES.contains(p[3]), line, "a known type");
                    types.put(family, p[3]);
                }
                continue;
            }
            if (line.startsWith("#")) {
                continue;
            }
            Sample s = sample(line);
            String family = family(s.name(), types);
            if (!family.equals(current)) {
                check(!closed.contains(family), line, "the family's samples together");
                if (current != null) {
                    closed.add(current);
                }
                current = family;
            }
            check(series.add(s.name() + s.labels()), line, "each series once");
            if ("counter".equals(types.get(family))) {
                check(s.name().endsWith("_total"), line, "a counter named ..._total");
                check(Double.isFinite(s.value()) && s.value() >= 0, line, "a finite, non-negative counter");
            }
            samples.add(s);
        }
        histograms(samples, types);
        return samples;
    }

    /** The family a sample belongs to: a histogram's _bucket, _sum and _count are its own. */
    private static String family(String name, Map<String, String> types) {
        for (String suffix : List.of("_bucket", "_sum", "_count")) {
            if (name.endsWith(suffix)) {
                String base = name.substring(0, name.length() - suffix.length());
                if ("histogram".equals(types.get(base)) || "summary".equals(types.get(base))) {
                    return base;
                }
            }
        }
        return name;
    }

    private static Sample sample(String line) {
        Matcher m = NAME.matcher(line);
        check(m.lookingAt(), line, "a metric name first");
        String name = m.group();
        int i = m.end();
        Map<String, String> labels = new LinkedHashMap<>();
        if (i < line.length() && line.charAt(i) == '{') {
            i++;
            while (line.charAt(i) != '}') {
                Matcher l = LABEL.matcher(line).region(i, line.length());
                check(l.lookingAt(), line, "a valid label name at " + i);
                String label = l.group();
                i = l.end();
                check(line.startsWith("=\"", i), line, "=\" after label " + label);
                i += 2;
                StringBuilder value = new StringBuilder();
                for (char c; (c = line.charAt(i)) != '"'; i++) {
                    if (c == '\\') {
                        char n = line.charAt(++i);
                        check(n == '\\' || n == '"' || n == 'n', line, "only \\\\, \\\" and \\n escaped in label values");
                        value.append(n == 'n' ? '\n' : n);
                    } else {
                        value.append(c);
                    }
                }
                i++;
                check(labels.put(label, value.toString()) == null, line, "label " + label + " once");
                if (line.charAt(i) == ',') {
                    i++;
                }
            }
            i++;
        }
        check(i < line.length() && line.charAt(i) == ' ', line, "one space before the value");
        String[] rest = line.substring(i + 1).split(" ");
        check(rest.length <= 2, line, "a value and at most a timestamp");
        return new Sample(name, labels, value(rest[0], line));
    }

    private static double value(String text, String line) {
        return switch (text) {
            case "+Inf" -> Double.POSITIVE_INFINITY;
            case "-Inf" -> Double.NEGATIVE_INFINITY;
            case "NaN" -> Double.NaN;
            default -> {
                check(text.matches("[+-]?(\\d+\\.?\\d*|\\.\\d+)([eE][+-]?\\d+)?"), line, "a number");
                yield Double.parseDouble(text);
            }
        };
    }

    private static void histograms(List<Sample> samples, Map<String, String> types) {
        types.forEach((family, type) -> {
            if (!type.equals("histogram")) {
                return;
            }
            Map<Map<String, String>, List<Sample>> buckets = new LinkedHashMap<>();
            Map<Map<String, String>, Double> counts = new HashMap<>();
            Set<Map<String, String>> sums = new HashSet<>();
            for (Sample s : samples) {
                if (s.name().equals(family + "_bucket")) {
                    Map<String, String> key = new LinkedHashMap<>(s.labels());
                    check(key.remove("le") != null, family, "an le label on every bucket");
                    buckets.computeIfAbsent(key, k -> new ArrayList<>()).add(s);
                } else if (s.name().equals(family + "_count")) {
                    counts.put(s.labels(), s.value());
                } else if (s.name().equals(family + "_sum")) {
                    sums.add(s.labels());
                }
            }
            check(buckets.keySet().equals(counts.keySet()) && buckets.keySet().equals(sums),
                    family, "_bucket, _sum and _count for the same label sets");
            buckets.forEach((labels, bs) -> {
                double lastLe = Double.NEGATIVE_INFINITY;
                double last = 0;
                for (Sample b : bs) {
                    double le = value(b.labels().get("le"), family);
                    check(le > lastLe, family + labels, "buckets in increasing le");
                    check(b.value() >= last, family + labels, "cumulative buckets that never decrease (le " + b.labels().get("le") + ": "
                            + b.value() + " after " + last + ")");
                    lastLe = le;
                    last = b.value();
                }
                check(lastLe == Double.POSITIVE_INFINITY, family + labels, "a +Inf bucket last");
                check(last == counts.get(labels), family + labels, "the +Inf bucket (" + last + ") equal to _count (" + counts.get(labels) + ")");
            });
        });
    }

    private static void check(boolean ok, String where, String expected) {
        if (!ok) {
            throw new AssertionError("Prometheus text: expected " + expected + " in: " + where);
        }
    }
}
