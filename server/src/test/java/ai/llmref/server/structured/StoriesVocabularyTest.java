package ai.llmref.server.structured;

import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import ai.llmref.llama.Vocabulary;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;

/** Grammar tests in llama.cpp's grammar engine with stories260K's vocabulary, loaded once a class. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class StoriesVocabularyTest {
    private LlamaModel model;
    Vocabulary vocab;

    @BeforeAll
    void load() {
        model = LlamaModel.load(Path.of(System.getProperty("test.model")), ModelParams.defaults().withGpuLayers(0));
        vocab = model.vocabulary();
    }

    @AfterAll
    void close() {
        model.close();
    }

    GrammarVerdict verdict(String grammar, String text) {
        return GrammarVerdict.of(vocab, grammar, text);
    }
}
