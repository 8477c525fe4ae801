package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.server.bench.SoakClient;
import com.fasterxml.jackson.databind.JsonNode;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The short soak CI runs (scripts/soak.sh runs the long one against the server process): eight
 * clients for about half a minute against a four-slot server, a mix of streaming and
 * non-streaming chat, completions and Responses API requests, cancellations and slow readers; every response equals its
 * greedy reference, nothing answers 5xx, all slots are free at the end and descriptors stay flat.
 */
class SoakTest {

    @Test
    void shortSoakServesEveryRequestCorrectly() throws Exception {
        try (TestServer t = TestServer.start(Map.of("engine.slots", "4"))) {
            JsonNode r = SoakClient.run(SoakClient.parse("--url", t.base(), "--admin", t.admin(), "--clients", "8",
                    "--warmup", "3", "--duration", System.getProperty("soak.seconds", "20"), "--sample", "5",
                    "--server-pid", Long.toString(ProcessHandle.current().pid()), "--seed", "7"));
            System.out.println("soak: " + r.toPrettyString());
            assertThat(r.at("/references/distinct_texts").asInt()).as("references tell requests apart")
                    .isEqualTo(r.at("/references/count").asInt());
            assertThat(r.at("/requests").asInt()).isGreaterThan(40);
            assertThat(r.at("/responses_requests").asInt()).as("/v1/responses requests").isPositive();
            for (String kind : new String[] {"whole", "stream", "cancel", "slow"}) {
                assertThat(r.at("/by_kind/" + kind).asInt()).as(kind + " requests").isPositive();
            }
            assertThat(r.at("/first_errors").toString()).isEqualTo("[]");
            assertThat(r.at("/client_seen_5xx").asInt()).isZero();
            assertThat(r.at("/metrics_end/server_counted_5xx").asInt()).isZero();
            assertThat(r.at("/mismatches").asInt()).isZero();
            assertThat(r.at("/goals/slots_free_at_end").asBoolean()).isTrue();
            assertThat(r.at("/metrics_end/llmref_slots_busy").asDouble()).isZero();
            assertThat(r.at("/metrics_end/llmref_queue_depth").asDouble()).isZero();
            // the client's connections are closed at the end: what is left open is the server's
            assertThat(r.at("/goals/fd_growth").asLong()).as("descriptors, start to end").isLessThanOrEqualTo(8);
            // slow readers never stall other streams: while they were reading, the other streams'
            // chunks kept coming (a stalled scheduler would show gaps of the slow streams' length)
            assertThat(r.at("/stream_gap_ms_while_slow_readers/n").asInt()).isPositive();
            assertThat(r.at("/stream_gap_ms_while_slow_readers/max").asDouble())
                    .isLessThan(r.at("/slow_stream_s/p50").asDouble() * 1000 / 2);
            assertThat(r.at("/goals/met").asBoolean()).isTrue();
        }
    }
}
