package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * Fuzzes the split of a reasoning model's reply into reasoning and content: the model writes the
 * reply, so any text may come, in pieces of any size. Streamed, the pieces joined are what the
 * whole reply's split gives; both texts are the reply's own (the reasoning a part of it before the
 * content, the content its end); and no piece is empty.
 *
 * <p>Regression inputs: {@code src/test/resources/ai/llmref/server/structured/ReasoningStreamFuzzTestInputs/split/}.
 */
class ReasoningStreamFuzzTest {

    @FuzzTest(maxDuration = "30s")
    void split(FuzzedDataProvider data) {
        boolean open = data.consumeBoolean();
        String also = data.consumeBoolean() ? "<tool_call>" : null; // a call ends the reasoning too (tools in the XML format)
        int step = 1 + (data.consumeByte() & 15);
        boolean harmony = data.consumeBoolean(); // GPT-OSS's messages instead of tags
        ReasoningStream.Tags tags = data.consumeBoolean() ? ReasoningStream.CHANNEL : ReasoningStream.THINK; // Gemma 4's channel or <think>
        String text = data.consumeRemainingAsString();
        ReasoningStream.Split whole = harmony ? ReasoningStream.splitHarmony(text, open) : ReasoningStream.split(text, open, also, tags);
        ReasoningStream stream = new ReasoningStream(open, also, harmony, tags);
        StringBuilder reasoning = new StringBuilder();
        StringBuilder content = new StringBuilder();
        int at = 0;
        while (at <= text.length()) {
            int end = Math.min(text.length(), at + step);
            if (end < text.length() && Character.isHighSurrogate(text.charAt(end - 1))) {
                end++; // the detokenizer sends whole characters
            }
            var pieces = end > at ? stream.push(text.substring(at, end)) : stream.finish();
            for (ReasoningStream.Piece p : pieces) {
                assertThat(p.text()).isNotEmpty();
                (p instanceof ReasoningStream.Reasoning ? reasoning : content).append(p.text());
            }
            if (end == at) {
                break;
            }
            at = end;
        }
        assertThat(new ReasoningStream.Split(reasoning.toString(), content.toString())).as(text).isEqualTo(whole);
        if (harmony) { // messages of both kinds may alternate: the two texts are parts of the reply, the markers left out
            assertThat(whole.reasoning().length() + whole.content().length()).isLessThanOrEqualTo(text.length());
            if (!open && !text.stripLeading().startsWith("<|channel|>")) {
                // (one that opens with a recipient is a call, content from its "to=" on: finding of 2026-11-28)
                assertThat(whole.content()).as("a reply that does not open with a message is all content")
                        .isEqualTo(text.stripLeading().startsWith("to=") ? text.stripLeading() : text);
            }
            return;
        }
        // the two texts are the reply's own: the reasoning a part of it, the content its end (with
        // Gemma 4's channel, less a tail of empty blocks and lone closes, which are left out)
        boolean channel = tags == ReasoningStream.CHANNEL;
        assertThat(text).contains(whole.reasoning());
        if (channel) {
            assertThat(text).contains(whole.content());
        } else {
            assertThat(text).endsWith(whole.content());
        }
        if (!whole.content().isEmpty() && !whole.reasoning().isEmpty()) {
            assertThat(text.indexOf(whole.reasoning())).isLessThan(text.length() - whole.content().length());
        }
        if (!open && !text.stripLeading().startsWith(tags.open())) {
            assertThat(channel ? text.substring(0, whole.content().length()) : text).as("a reply that does not open with its tag is all"
                    + " content").isEqualTo(whole.content());
        }
    }
}
