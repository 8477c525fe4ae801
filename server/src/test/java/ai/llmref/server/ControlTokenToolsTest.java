package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import ai.llmref.llama.Vocabulary;
import ai.llmref.server.structured.GrammarVerdict;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;

/**
 * A tool-call format whose markers are control tokens, tested on stories260K with unused byte
 * tokens made those tokens: a server with the format's template, and the patched vocabulary for
 * grammar verdicts in llama.cpp's engine.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class ControlTokenToolsTest {
    TestServer server;
    private LlamaModel llama;
    Vocabulary vocab;

    /** stories260K with the format's markers as control tokens. */
    abstract Path patchedModel() throws Exception;

    private static final Map<String, Path> PATCHED = new java.util.HashMap<>();

    /**
     * A copy of stories260K whose tokens {@code markers} (id to text) are control tokens, in a
     * temporary folder: made once a run for each {@code name}.
     */
    static synchronized Path patched(String name, Map<Integer, String> markers) throws Exception {
        Path model = PATCHED.get(name);
        if (model == null) {
            Path dir = java.nio.file.Files.createTempDirectory("llmref-" + name);
            dir.toFile().deleteOnExit();
            model = GgufPatch.withControlTokens(TestServer.model(), markers, dir.resolve("stories260K-" + name + "-markers.gguf"));
            model.toFile().deleteOnExit();
            PATCHED.put(name, model);
        }
        return model;
    }

    /** The chat template (a file of the pinned tree's). */
    abstract String templateFile();

    /** The most tokens a request may generate (limits.max-tokens). */
    int maxTokens() {
        return 400;
    }

    @BeforeAll
    void start() throws Exception {
        server = TestServer.start(Map.of("model.path", patchedModel().toString(), "model.chat-template",
                ToolCallsTest.template(templateFile()), "engine.slot-context", "4096", "limits.max-tokens", String.valueOf(maxTokens())));
        llama = LlamaModel.load(patchedModel(), ModelParams.defaults().withGpuLayers(0));
        vocab = llama.vocabulary();
    }

    @AfterAll
    void stop() {
        server.close();
        llama.close();
    }

    JsonNode post(ObjectNode body) throws Exception {
        HttpResponse<String> r = server.post("/v1/chat/completions", body.toString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        return ToolCallsTest.MAPPER.readTree(r.body());
    }

    GrammarVerdict verdict(String grammar, String text) {
        return GrammarVerdict.of(vocab, grammar, text);
    }
}
