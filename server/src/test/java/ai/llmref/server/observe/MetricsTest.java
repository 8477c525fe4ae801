package ai.llmref.server.observe;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/** The registry's text format, read strictly (unit tier: no native library). */
class MetricsTest {

    @Test
    void histogramsStayCumulativeWithPlusInfEqualToCountWhileObservedConcurrently() throws Exception {
        Metrics m = new Metrics();
        Metrics.Histogram h = m.histogram("t_seconds", "test", new double[] {0.1, 1}, "route");
        AtomicBoolean stop = new AtomicBoolean();
        List<Thread> writers = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
            int n = t;
            // values in every bucket, the overflow included
            writers.add(Thread.ofPlatform().start(() -> {
                for (long i = 0; !stop.get(); i++) {
                    h.observe((i + n) % 3 == 0 ? 0.05 : (i + n) % 3 == 1 ? 0.5 : 5, "/a");
                }
            }));
        }
        try {
            long end = System.nanoTime() + 2_000_000_000L;
            int scrapes = 0;
            while (System.nanoTime() < end) {
                PrometheusText.validate(m.scrape());
                scrapes++;
            }
            assertThat(scrapes).isPositive();
        } finally {
            stop.set(true);
            for (Thread t : writers) {
                t.join();
            }
        }
        List<PrometheusText.Sample> samples = PrometheusText.validate(m.scrape());
        double count = samples.stream().filter(s -> s.name().equals("t_seconds_count")).findFirst().orElseThrow().value();
        assertThat(count).isEqualTo(h.count("/a")).isPositive();
    }

    @Test
    void labelValuesAreEscaped() {
        Metrics m = new Metrics();
        Metrics.Counter c = m.counter("t_total", "test", "route");
        c.inc(2, "a\"b\\c\nd");
        List<PrometheusText.Sample> samples = PrometheusText.validate(m.scrape());
        assertThat(samples).singleElement().satisfies(s -> {
            assertThat(s.labels()).containsEntry("route", "a\"b\\c\nd");
            assertThat(s.value()).isEqualTo(2);
        });
    }

    @Test
    void theCheckerRejectsWhatAScraperWould() {
        assertThatThrownBy(() -> PrometheusText.validate("# TYPE a_total counter\n# TYPE a_total counter\na_total 1\n"))
                .hasMessageContaining("one TYPE per family");
        assertThatThrownBy(() -> PrometheusText.validate("# TYPE h histogram\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n"))
                .hasMessageContaining("never decrease");
        assertThatThrownBy(() -> PrometheusText.validate("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n"))
                .hasMessageContaining("equal to _count");
        assertThatThrownBy(() -> PrometheusText.validate("a{l=\"x\\t\"} 1\n")).hasMessageContaining("escaped");
        assertThatThrownBy(() -> PrometheusText.validate("a 1\nb 1\na 2\n")).hasMessageContaining("together");
    }
}
