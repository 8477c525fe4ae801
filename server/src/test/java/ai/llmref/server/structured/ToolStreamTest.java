package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Streaming a reply with tools: however the text arrives in pieces, what {@link ToolStream}
 * releases plus the rest sent at the end is exactly the content {@link ToolCalls#parse} finds,
 * and nothing of a call is released early.
 */
class ToolStreamTest {
    static final List<String> REPLIES = List.of(
            "Let me check.\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>",
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>",
            "  \n<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>",
            "Just text with a < sign and <tool and <tool_ca but no call.  ",
            "Broken <tool_call>{\"name\": \"nope\"}</tool_call>",
            "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}",
            "<|python_tag|>{\"name\": \"get_time\", \"parameters\": {}}",
            "  It is sunny today.\n",
            "");

    @Test
    void releasedContentIsAPrefixAndTheWholeMatchesParse() {
        Random rnd = new Random(42);
        for (ToolCalls.Format format : List.of(ToolCalls.Format.HERMES, ToolCalls.Format.LLAMA3_JSON)) {
            for (String reply : REPLIES) {
                for (int trial = 0; trial < 30; trial++) {
                    ToolStream s = new ToolStream(format, false);
                    StringBuilder sent = new StringBuilder();
                    for (int i = 0; i < reply.length(); ) {
                        int n = Math.min(reply.length() - i, 1 + rnd.nextInt(4));
                        sent.append(s.push(reply.substring(i, i + n)));
                        i += n;
                    }
                    ToolCalls.Reply r = ToolCalls.parse(format, s.text(), ToolCallsParseTest.FUNCTIONS);
                    String content = r.content() == null ? "" : r.content();
                    assertThat(content).as("%s %s", format, reply).startsWith(sent.toString());
                    assertThat(s.released()).isEqualTo(sent.length());
                    if (!r.calls().isEmpty()) {
                        assertThat(sent.toString()).doesNotContain("<tool_call>").doesNotContain("{\"name\"");
                    }
                }
            }
        }
    }

    @Test
    void aForcedCallIsHeldWhole() {
        ToolStream s = new ToolStream(ToolCalls.Format.HERMES, true);
        assertThat(s.push("<tool_call>\n{\"name\": \"get_time\", ")).isEmpty();
        assertThat(s.push("\"arguments\": {}}\n</tool_call>")).isEmpty();
        assertThat(s.released()).isZero();
    }

    @Test
    void hermesContentStreamsBeforeTheTag() {
        ToolStream s = new ToolStream(ToolCalls.Format.HERMES, false);
        assertThat(s.push("Let me ")).isEqualTo("Let me");
        assertThat(s.push("look. <tool")).isEqualTo(" look.");
        assertThat(s.push("_call>{")).isEmpty();
        assertThat(s.push("\"name\"")).isEmpty();
    }
}
