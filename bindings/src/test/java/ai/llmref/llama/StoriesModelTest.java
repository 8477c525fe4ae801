package ai.llmref.llama;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * Base of the test classes that share one load of stories260K per class (with the run's GPU
 * layers, {@link TestModels#params()}). Test classes run one after the other, so each class loads
 * the model before its tests and closes it after them.
 */
abstract class StoriesModelTest {
    static LlamaModel model;

    @BeforeAll
    static void loadStoriesModel() {
        model = LlamaModel.load(TestModels.stories(), TestModels.params());
    }

    @AfterAll
    static void closeStoriesModel() {
        model.close();
    }
}
