package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.server.observe.Tracing;
import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

/** With tracing enabled, spans really leave the process over OTLP/HTTP (to a local receiver). */
class OtlpExportTest {

    @Test
    void spansArePostedToTheCollector() throws Exception {
        List<String> received = new CopyOnWriteArrayList<>();
        HttpServer collector = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        collector.createContext("/", ex -> {
            byte[] body = ex.getRequestBody().readAllBytes();
            received.add(ex.getRequestMethod() + " " + ex.getRequestURI().getPath() + " "
                    + ex.getRequestHeaders().getFirst("Content-Type") + " " + body.length);
            ex.sendResponseHeaders(200, -1);
            ex.close();
        });
        collector.start();
        try {
            String endpoint = "http://127.0.0.1:" + collector.getAddress().getPort();
            try (TestServer t = TestServer.start(Map.of(), Tracing.otlp(endpoint, "otlp-test", 1.0))) {
                assertThat(t.post("/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":3}").statusCode()).isEqualTo(200);
            } // close flushes the batch processor
            assertThat(received).isNotEmpty().allSatisfy(r ->
                    assertThat(r).startsWith("POST /v1/traces application/x-protobuf").doesNotEndWith(" 0"));
        } finally {
            collector.stop(0);
        }
    }
}
