package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * ByteDance Seed-OSS's reasoning, {@code <seed:think>} … {@code </seed:think>}, through the server:
 * its template, and stories260K with two unused byte tokens made those control tokens. Before,
 * the server knew only {@code <think>}: the tags showed as nothing and the reasoning was content.
 */
class SeedReasoningTest extends ControlTokenToolsTest {
    static final int THINK = 19;
    static final int THINK_END = 20;

    @Override
    Path patchedModel() throws Exception {
        return patched("seed", Map.of(THINK, "<seed:think>", THINK_END, "</seed:think>"));
    }

    @Override
    String templateFile() {
        return "ByteDance-Seed-OSS.jinja";
    }

    private ObjectNode thinking(int maxTokens) {
        ObjectNode b = ToolCallsTest.MAPPER.createObjectNode().put("max_tokens", maxTokens).put("temperature", 0);
        b.putArray("messages").addObject().put("role", "user").put("content", "Hello");
        b.putObject("logit_bias").put(String.valueOf(THINK), 100); // the reply opens its block (and goes on writing the tag)
        return b;
    }

    /**
     * A reply that opens {@code <seed:think>} is reasoning (the tag shown as text in a chat reply,
     * as llama-server preserves it); a budget closes it with {@code </seed:think>} in the model's
     * place, and what follows is the content; with {@code reasoning_format: "none"} the reply is
     * the raw text.
     */
    @Test
    void aSeedThinkBlockIsTheReasoning() throws Exception {
        assertThat(vocab.tokenBytes(THINK, false)).as("a control token, shown as nothing by default").isEmpty();
        assertThat(new String(vocab.tokenBytes(THINK, true), StandardCharsets.UTF_8)).isEqualTo("<seed:think>");
        JsonNode raw = post(thinking(5).put("reasoning_format", "none")).get("choices").get(0).get("message");
        assertThat(raw.get("content").asText()).isEqualTo("<seed:think>".repeat(5));
        JsonNode open = post(thinking(5));
        JsonNode msg = open.get("choices").get(0).get("message");
        assertThat(msg.get("reasoning_content").asText()).as(open.toString()).isEqualTo("<seed:think>".repeat(4));
        assertThat(msg.get("content").asText()).isEmpty();
        JsonNode budget = post(thinking(12).put("reasoning_budget_tokens", 2));
        JsonNode bm = budget.get("choices").get(0).get("message");
        assertThat(bm.get("reasoning_content").asText()).as(budget.toString()).isEqualTo("<seed:think>");
        assertThat(bm.get("content").asText()).as("after the forced </seed:think>").startsWith("<seed:think>");
        assertThat(budget.at("/usage/completion_tokens_details/reasoning_tokens").asInt()).isGreaterThan(2).isLessThan(12);
    }
}
