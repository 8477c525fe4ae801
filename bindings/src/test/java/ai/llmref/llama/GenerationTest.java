package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class GenerationTest {
    static LlamaModel model;

    @BeforeAll
    static void load() {
        model = LlamaModel.load(TestModels.stories(), TestModels.params());
    }

    @AfterAll
    static void close() {
        model.close();
    }

    @Test
    void greedyStoryIsEnglish() {
        int[] out = Generation.greedy(model, TestModels.small(1), "Once upon a time", 40);
        String text = model.vocabulary().detokenize(out, false, false);
        System.out.println("greedy: " + text);
        assertThat(text).contains(" ");
        assertThat(out).hasSize(40);
    }
}
