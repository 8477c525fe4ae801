package ai.llmref.server.observe;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.DoubleAdder;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Consumer;

/**
 * A small Prometheus registry: labelled counters and histograms updated lock-free on the request
 * path, and gauges read from callbacks at scrape time. Renders the text exposition format 0.0.4.
 */
public final class Metrics {
    private final Map<String, Family> families = new LinkedHashMap<>();

    /** One sample line of a callback gauge. */
    public record Sample(Map<String, String> labels, double value) {
        public static Sample of(double value) {
            return new Sample(Map.of(), value);
        }
    }

    private sealed interface Family permits Counter, Histogram, Gauge {}

    public synchronized Counter counter(String name, String help, String... labelNames) {
        Counter c = new Counter(name, help, labelNames);
        families.put(name, c);
        return c;
    }

    public synchronized Histogram histogram(String name, String help, double[] buckets, String... labelNames) {
        Histogram h = new Histogram(name, help, buckets, labelNames);
        families.put(name, h);
        return h;
    }

    /** A gauge whose samples {@code read} produces at every scrape. */
    public synchronized void gauge(String name, String help, Consumer<List<Sample>> read) {
        families.put(name, new Gauge(name, help, read));
    }

    /** The Prometheus text format of every metric. */
    public String scrape() {
        StringBuilder sb = new StringBuilder(8192);
        List<Family> all;
        synchronized (this) {
            all = new ArrayList<>(families.values());
        }
        for (Family f : all) {
            switch (f) {
                case Counter c -> c.render(sb);
                case Histogram h -> h.render(sb);
                case Gauge g -> g.render(sb);
            }
        }
        return sb.toString();
    }

    /** Label values joined for a map key. */
    private static String key(String[] values) {
        return String.join("\u0000", values);
    }

    private static void labels(StringBuilder sb, String[] names, String[] values, String extraName, String extraValue) {
        if (names.length == 0 && extraName == null) {
            return;
        }
        sb.append('{');
        for (int i = 0; i < names.length; i++) {
            if (i > 0) {
                sb.append(',');
            }
            sb.append(names[i]).append("=\"").append(escape(values[i])).append('"');
        }
        if (extraName != null) {
            if (names.length > 0) {
                sb.append(',');
            }
            sb.append(extraName).append("=\"").append(extraValue).append('"');
        }
        sb.append('}');
    }

    static String escape(String v) {
        return v.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n");
    }

    private static String number(double v) {
        if (v == Math.rint(v) && !Double.isInfinite(v) && Math.abs(v) < 1e15) {
            return Long.toString((long) v);
        }
        return Double.toString(v);
    }

    private static void header(StringBuilder sb, String name, String help, String type) {
        sb.append("# HELP ").append(name).append(' ').append(help).append('\n');
        sb.append("# TYPE ").append(name).append(' ').append(type).append('\n');
    }

    /** A monotonically increasing count per label set. */
    public static final class Counter implements Family {
        private final String name;
        private final String help;
        private final String[] labelNames;
        private final ConcurrentHashMap<String, String[]> labelValues = new ConcurrentHashMap<>();
        private final ConcurrentHashMap<String, LongAdder> values = new ConcurrentHashMap<>();

        Counter(String name, String help, String[] labelNames) {
            this.name = name;
            this.help = help;
            this.labelNames = labelNames;
            if (labelNames.length == 0) {
                values.put("", new LongAdder());
                labelValues.put("", new String[0]);
            }
        }

        public void inc(long by, String... labels) {
            check(labels.length, labelNames.length, name);
            String k = key(labels);
            values.computeIfAbsent(k, x -> {
                labelValues.put(x, labels.clone());
                return new LongAdder();
            }).add(by);
        }

        public long value(String... labels) {
            LongAdder a = values.get(key(labels));
            return a == null ? 0 : a.sum();
        }

        void render(StringBuilder sb) {
            header(sb, name, help, "counter");
            values.forEach((k, v) -> {
                sb.append(name);
                labels(sb, labelNames, labelValues.get(k), null, null);
                sb.append(' ').append(v.sum()).append('\n');
            });
        }
    }

    /**
     * Cumulative buckets, sum and count per label set. Each observation lands in exactly one bucket
     * (an extra one holds those above every bound), and the {@code +Inf} bucket and {@code _count} are the
     * total of the buckets as one scrape read them: with a separate count read apart from the
     * buckets, a scrape racing an observation showed {@code +Inf} below a finite bucket or unequal
     * to {@code _count}.
     */
    public static final class Histogram implements Family {
        private final String name;
        private final String help;
        private final double[] bounds;
        private final String[] labelNames;
        private final ConcurrentHashMap<String, String[]> labelValues = new ConcurrentHashMap<>();
        private final ConcurrentHashMap<String, Series> series = new ConcurrentHashMap<>();

        /** {@code buckets[bounds.length]}: observations above every bound. */
        private record Series(LongAdder[] buckets, DoubleAdder sum) {}

        Histogram(String name, String help, double[] bounds, String[] labelNames) {
            this.name = name;
            this.help = help;
            this.bounds = bounds.clone();
            Arrays.sort(this.bounds);
            this.labelNames = labelNames;
        }

        public void observe(double value, String... labels) {
            check(labels.length, labelNames.length, name);
            Series s = series.computeIfAbsent(key(labels), x -> {
                labelValues.put(x, labels.clone());
                LongAdder[] b = new LongAdder[bounds.length + 1];
                for (int i = 0; i < b.length; i++) {
                    b[i] = new LongAdder();
                }
                return new Series(b, new DoubleAdder());
            });
            int i = 0;
            while (i < bounds.length && !(value <= bounds[i])) {
                i++;
            }
            s.buckets[i].increment();
            s.sum.add(value);
        }

        public long count(String... labels) {
            Series s = series.get(key(labels));
            long n = 0;
            if (s != null) {
                for (LongAdder b : s.buckets) {
                    n += b.sum();
                }
            }
            return n;
        }

        void render(StringBuilder sb) {
            header(sb, name, help, "histogram");
            series.forEach((k, s) -> {
                String[] lv = labelValues.get(k);
                long cumulative = 0;
                for (int i = 0; i < bounds.length; i++) {
                    cumulative += s.buckets[i].sum();
                    sb.append(name).append("_bucket");
                    labels(sb, labelNames, lv, "le", number(bounds[i]));
                    sb.append(' ').append(cumulative).append('\n');
                }
                cumulative += s.buckets[bounds.length].sum();
                sb.append(name).append("_bucket");
                labels(sb, labelNames, lv, "le", "+Inf");
                sb.append(' ').append(cumulative).append('\n');
                sb.append(name).append("_sum");
                labels(sb, labelNames, lv, null, null);
                sb.append(' ').append(s.sum.sum()).append('\n');
                sb.append(name).append("_count");
                labels(sb, labelNames, lv, null, null);
                sb.append(' ').append(cumulative).append('\n');
            });
        }
    }

    private record Gauge(String name, String help, Consumer<List<Sample>> read) implements Family {
        void render(StringBuilder sb) {
            List<Sample> samples = new ArrayList<>();
            read.accept(samples);
            header(sb, name, help, "gauge");
            for (Sample s : samples) {
                sb.append(name);
                String[] names = s.labels().keySet().toArray(new String[0]);
                String[] values = s.labels().values().toArray(new String[0]);
                labels(sb, names, values, null, null);
                sb.append(' ').append(number(s.value())).append('\n');
            }
        }
    }

    private static void check(int got, int want, String name) {
        if (got != want) {
            throw new IllegalArgumentException(name + " takes " + want + " label values, got " + got);
        }
    }
}
