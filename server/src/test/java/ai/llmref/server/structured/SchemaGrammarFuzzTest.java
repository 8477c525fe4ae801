package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import ai.llmref.llama.Sampler;
import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;

/**
 * Fuzzes the JSON schema to grammar converter against llama.cpp's grammar engine: every schema is
 * either refused with a {@link SchemaException} that names a place in the schema, or converted to a
 * grammar that llama.cpp loads with the real model's vocabulary. A grammar llama.cpp refuses (as a
 * left recursion was, found this way) would reach the client as the engine's message about rule
 * indexes instead of one about the schema it sent.
 *
 * <p>Without {@code JAZZER_FUZZ=1} the method runs once per committed input in
 * {@code src/test/resources/ai/llmref/server/structured/SchemaGrammarFuzzTestInputs/convert/}
 * (regression mode, part of every test run); the seeds there are schemas of the corpus.
 */
class SchemaGrammarFuzzTest {
    private static LlamaModel model;

    private static synchronized LlamaModel model() {
        if (model == null) {
            model = LlamaModel.load(Path.of(System.getProperty("test.model")), ModelParams.defaults().withGpuLayers(0));
        }
        return model;
    }

    @AfterAll
    static synchronized void closeModel() {
        if (model != null) {
            model.close();
            model = null;
        }
    }

    @FuzzTest(maxDuration = "30s")
    void convert(FuzzedDataProvider data) {
        JsonNode schema;
        try {
            schema = SchemaCorpus.MAPPER.readTree(data.consumeRemainingAsString());
        } catch (JsonProcessingException e) {
            return; // not JSON: the request parser's concern, fuzzed elsewhere
        }
        if (schema == null || !(schema.isObject() || schema.isBoolean())) {
            return;
        }
        String grammar;
        try {
            grammar = JsonSchemaGrammar.convert(schema);
        } catch (SchemaException e) {
            assertThat(e.getMessage()).as("a refusal names its place in the schema").contains("(at #");
            return;
        }
        // llama.cpp must take every grammar the converter gives (GrammarException otherwise)
        try (Sampler s = Sampler.builder(model().vocabulary()).grammar(grammar, "root").build()) {
            assertThat(s).isNotNull();
        }
    }
}
