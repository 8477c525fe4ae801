package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Gemma 4 through the server: its template, and stories260K with twelve unused byte tokens made
 * Gemma 4's control tokens ({@code <|turn>}, {@code <turn|>}, {@code <|channel>}, {@code <channel|>},
 * {@code <|think|>}, the tool markers and {@code <|"|>}); llama.cpp's vocabulary rules for them
 * apply as for Gemma 4 ({@code <turn|>} and {@code <|tool_response>} end a generation). The
 * reasoning is the thought channel, {@code <|channel>thought} … {@code <channel|>}; before, its
 * markers showed as nothing and the word "thought" and the reasoning were the reply's content.
 */
class GemmaTest extends ControlTokenToolsTest {
    static final int TURN = 19;
    static final int TURN_END = 20;
    static final int CHANNEL = 21;
    static final int CHANNEL_END = 22;
    static final int THINK = 23;
    static final int CALL = 24;
    static final int CALL_END = 25;
    static final int RESPONSE = 26;
    static final int RESPONSE_END = 27;
    static final int QUOTE = 28;
    static final int TOOL = 29;
    static final int TOOL_END = 30;
    private static Path model;

    /** stories260K with Gemma 4's markers as control tokens (made once, in a temporary folder). */
    static synchronized Path model() throws Exception {
        if (model == null) {
            model = patch("gemma", Map.ofEntries(Map.entry(TURN, "<|turn>"), Map.entry(TURN_END, "<turn|>"), Map.entry(CHANNEL, "<|channel>"),
                    Map.entry(CHANNEL_END, "<channel|>"), Map.entry(THINK, "<|think|>"), Map.entry(CALL, "<|tool_call>"),
                    Map.entry(CALL_END, "<tool_call|>"), Map.entry(RESPONSE, "<|tool_response>"), Map.entry(RESPONSE_END, "<tool_response|>"),
                    Map.entry(QUOTE, "<|\"|>"), Map.entry(TOOL, "<|tool>"), Map.entry(TOOL_END, "<tool|>")));
        }
        return model;
    }

    @Override
    Path patchedModel() throws Exception {
        return model();
    }

    @Override
    String templateFile() {
        return "google-gemma-4-31B-it.jinja";
    }

    @Test
    void theMarkersAreControlTokensAsInGemmasVocabulary() {
        for (int t : new int[] {TURN, TURN_END, CHANNEL, CHANNEL_END, CALL, CALL_END, QUOTE}) {
            assertThat(vocab.tokenBytes(t, false)).as("shown as nothing").isEmpty();
        }
        assertThat(new String(vocab.tokenBytes(CHANNEL, true), StandardCharsets.UTF_8)).isEqualTo("<|channel>");
        assertThat(vocab.isEndOfGeneration(TURN_END)).isTrue();
        assertThat(vocab.isEndOfGeneration(RESPONSE)).as("a call's end waits for the response").isTrue();
        assertThat(vocab.isEndOfGeneration(CHANNEL_END)).isFalse();
        assertThat(vocab.tokenize("<|turn>model\n<|channel>thought\n<channel|>", false, true)).startsWith(TURN).contains(CHANNEL, CHANNEL_END);
    }

    /**
     * A JSON answer with thinking on (the template's default here, as llama-server passes
     * {@code enable_thinking}): the server opens the thought channel in the prompt, as Gemma 4
     * writes it, and the grammar applies after its {@code <channel|>}; a budget writes that end in
     * the model's place (the tiny model never writes it). The reasoning and the JSON come apart,
     * neither showing a marker, streamed and whole alike. Before, the channel's markers showed as
     * nothing and its text was the content.
     */
    @Test
    void aJsonAnswerComesAfterTheThoughtChannel() throws Exception {
        ObjectNode b = ReasoningTest.askJson(40);
        // Gemma's end of generation (llama.cpp leaves stories260K's </s> out of the end tokens of a
        // vocabulary with Gemma 4's): pushed, it may not end the reply before the grammar applied
        b.putObject("logit_bias").put(String.valueOf(TURN_END), 100);
        JsonNode cut = ReasoningTest.post(server, b);
        JsonNode choice = cut.get("choices").get(0);
        assertThat(choice.get("finish_reason").asText()).as(cut.toString()).isEqualTo("length");
        assertThat(choice.get("message").get("reasoning_content").asText()).isNotBlank().doesNotContain("channel").doesNotContain("<|");
        assertThat(choice.get("message").get("content").asText()).isEmpty();
        assertThat(cut.at("/usage/completion_tokens_details/reasoning_tokens").asInt()).isEqualTo(40);

        b.put("max_tokens", 200).put("reasoning_budget_tokens", 8).put("reasoning_budget_message", "Answer now.");
        JsonNode answered = ReasoningTest.post(server, b);
        JsonNode msg = answered.get("choices").get(0).get("message");
        assertThat(answered.get("choices").get(0).get("finish_reason").asText()).as(answered.toString()).isEqualTo("stop");
        assertThat(msg.get("reasoning_content").asText()).endsWith("Answer now.").doesNotContain("<");
        assertThat(ToolCallsTest.MAPPER.readTree(msg.get("content").asText()).get("why").isTextual()).as(msg.toString()).isTrue();
        assertThat(answered.at("/usage/completion_tokens_details/reasoning_tokens").asInt()).isGreaterThanOrEqualTo(8)
                .isLessThan(answered.at("/usage/completion_tokens").asInt());
        ReasoningTest.Streamed s = ReasoningTest.stream(server, b);
        assertThat(s.reasoning()).isEqualTo(msg.get("reasoning_content").asText());
        assertThat(s.content()).isEqualTo(msg.get("content").asText());

        // asked not to think, the template closes an empty channel: the document from the start
        ObjectNode off = b.deepCopy();
        off.putObject("chat_template_kwargs").put("enable_thinking", false);
        JsonNode plain = ReasoningTest.post(server, off);
        JsonNode pm = plain.get("choices").get(0).get("message");
        assertThat(pm.get("content").asText()).as(plain.toString()).startsWith("{");
        assertThat(pm.has("reasoning_content")).isFalse();
        assertThat(plain.at("/usage/prompt_tokens").asInt()).as("the template's closed channel, not the server's open one")
                .isNotEqualTo(answered.at("/usage/prompt_tokens").asInt());

        // a budget message that would close the channel itself (forced text after it would not be the grammar's)
        HttpResponse<String> bad = server.post("/v1/chat/completions", b.deepCopy().put("reasoning_budget_message", "Done<channel|>").toString());
        assertThat(bad.statusCode()).as(bad.body()).isEqualTo(400);
        assertThat(bad.body()).contains("reasoning_budget_message").contains("<channel|>");
    }

    /**
     * The channel's markers show as text in a chat reply (preserved, as llama-server preserves them
     * for Gemma 4): a reply pushed to {@code <|channel>} at every step (a logit bias) shows the
     * markers, and since it never opens the thought channel ({@code <|channel>thought}) it is all
     * content, as with {@code reasoning_format: "none"}; a reply that does not open the channel
     * is all content.
     */
    @Test
    void theChannelsMarkersShowInChatReplies() throws Exception {
        ObjectNode b = ToolCallsTest.MAPPER.createObjectNode().put("max_tokens", 12).put("temperature", 0);
        b.putArray("messages").addObject().put("role", "user").put("content", "Hello");
        b.putObject("logit_bias").put(String.valueOf(CHANNEL), 100);
        JsonNode raw = ReasoningTest.post(server, b.deepCopy().put("reasoning_format", "none"));
        String text = raw.get("choices").get(0).get("message").get("content").asText();
        assertThat(text).as(raw.toString()).startsWith("<|channel><|channel>");
        JsonNode split = ReasoningTest.post(server, b);
        JsonNode msg = split.get("choices").get(0).get("message");
        assertThat(msg.get("content").asText()).as(split.toString()).isEqualTo(text);
        b.remove("logit_bias");
        JsonNode story = ReasoningTest.post(server, b).get("choices").get(0).get("message");
        assertThat(story.get("content").asText()).as("a reply that does not open the channel is all content").isNotBlank();
        assertThat(story.has("reasoning_content")).isFalse();
    }
}
