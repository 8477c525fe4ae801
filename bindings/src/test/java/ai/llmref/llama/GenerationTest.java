package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class GenerationTest extends StoriesModelTest {
    @Test
    void greedyStoryIsEnglish() {
        int[] out = Generation.greedy(model, TestModels.small(1), "Once upon a time", 40);
        String text = model.vocabulary().detokenize(out, false, false);
        System.out.println("greedy: " + text);
        assertThat(text).contains(" ");
        assertThat(out).hasSize(40);
    }
}
