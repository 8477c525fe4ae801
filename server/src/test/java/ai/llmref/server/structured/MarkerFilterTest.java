package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** A chat reply read in its template's envelope, whole and in pieces of any size. */
class MarkerFilterTest {
    static final MarkerFilter.Envelope FUNCTIONARY_V32 = MarkerFilter.Envelope.of(">>>all", ReasoningStream.THINK);

    private static String pieces(MarkerFilter.Envelope envelope, String reply, Random rnd) {
        return SplitStream.filtered(envelope, reply, rnd, 6);
    }

    /**
     * Solar Open: its content section's start is left out wherever it stands, and the end of its
     * message ({@code <|end|>}) where it ends the reply (white space at most after it), not where
     * the reply goes on (its reasoning's end, {@code <|end|><|begin|>assistant}, stays for the reasoning to be read).
     */
    @Test
    void solarOpenRepliesLoseTheirContentSectionsMarkup() throws Exception {
        MarkerFilter.Envelope solar = MarkerFilter.Envelope.of(java.nio.file.Files.readString(
                XmlToolCallsTest.templatesDir().resolve("upstage-Solar-Open-100B.jinja")), ReasoningStream.SOLAR);
        assertThat(solar).isEqualTo(new MarkerFilter.Envelope("", null, List.of("<|content|>"), "<|end|>"));
        Random rnd = new Random(43);
        for (String[] c : new String[][] {{"<|content|>Hello there<|end|>", "Hello there"}, {"<|content|>Hi<|end|>\n", "Hi"},
                {"<|think|>hm<|end|><|begin|>assistant<|content|>Hi<|end|>", "<|think|>hm<|end|><|begin|>assistantHi"},
                {"<|content|>a <|end|> b", "a <|end|> b"}, {"Hi <|en", "Hi <|en"}, {"<|end|>", ""}, {"", ""},
                {"<|tool_calls|><|tool_call:begin|>a1b2c3d4e5<|tool_call:name|>f<|tool_call:args|>{}<|tool_call:end|>",
                        "<|tool_calls|><|tool_call:begin|>a1b2c3d4e5<|tool_call:name|>f<|tool_call:args|>{}<|tool_call:end|>"}}) {
            assertThat(MarkerFilter.strip(solar, c[0])).as(c[0]).isEqualTo(c[1]);
            for (int trial = 0; trial < 20; trial++) {
                assertThat(pieces(solar, c[0], rnd)).as(c[0]).isEqualTo(c[1]);
            }
        }
        // read in its envelope, the reasoning's end is whole: the reply splits into its reasoning and its content
        assertThat(ReasoningStream.split(MarkerFilter.strip(solar, "<|think|>hm<|end|><|begin|>assistant<|content|>Hi<|end|>"), false, null,
                ReasoningStream.SOLAR)).isEqualTo(new ReasoningStream.Split("hm", "Hi"));
    }

    /**
     * muse-glimmer: a reply is messages, each after {@code <|start|>assistant} (the prompt writes the
     * first's) and a recipient; the next message's start and the user's recipient are left out
     * wherever they stand, a bare message start where it begins the reply, a message's end where it
     * ends it; read so, the reasoning (a message to itself) splits off and the text is the content.
     */
    @Test
    void museRepliesAreReadAsMessages() throws Exception {
        MarkerFilter.Envelope muse = MarkerFilter.Envelope.of(java.nio.file.Files.readString(XmlToolCallsTest.templatesDir().resolve("muse-glimmer.jinja")),
                ReasoningStream.MUSE);
        assertThat(muse).isEqualTo(new MarkerFilter.Envelope("", "<|message|>", List.of("<|start|>assistant", " to=user<|message|>"), "<|eom|>"));
        Random rnd = new Random(53);
        String reasoned = " to=self<|message|>hm<|eom|><|start|>assistant to=user<|message|>Hi there";
        for (String[] c : new String[][] {{" to=user<|message|>Hello there", "Hello there"}, {"<|message|>Hello", "Hello"},
                {reasoned, " to=self<|message|>hm<|eom|>Hi there"}, {" to=user<|message|>Hi<|eom|>", "Hi"},
                {" to=user<|message|>Hi<|eom|><|start|>assistant to=f<|message|>x", "Hi<|eom|> to=f<|message|>x"}, {" to", " to"}, {"", ""}}) {
            assertThat(MarkerFilter.strip(muse, c[0])).as(c[0]).isEqualTo(c[1]);
            for (int trial = 0; trial < 20; trial++) {
                assertThat(pieces(muse, c[0], rnd)).as(c[0]).isEqualTo(c[1]);
            }
        }
        assertThat(ReasoningStream.split(MarkerFilter.strip(muse, reasoned), false, null, ReasoningStream.MUSE))
                .isEqualTo(new ReasoningStream.Split("hm", "Hi there"));
    }

    /**
     * llama.cpp's own cases for muse-glimmer (tests/test-chat.cpp at the pinned commit), read as a
     * chat reply is read here: its envelope, then the reasoning, then the calls. A plain answer;
     * a call as the reply's first message; an answer and a call in one reply ("inform then act");
     * call markup quoted in an answer (no message to the function: content); call markup in the
     * reasoning (reasoning, not a call).
     */
    @Test
    void museRepliesReadAsLlamaCppReadsThem() throws Exception {
        MarkerFilter.Envelope muse = MarkerFilter.Envelope.of(java.nio.file.Files.readString(XmlToolCallsTest.templatesDir().resolve("muse-glimmer.jinja")),
                ReasoningStream.MUSE);
        List<ToolCalls.Function> fs = List.of(new ToolCalls.Function("special_function", ToolCallsParseTest.json(
                "{\"type\":\"object\",\"properties\":{\"arg1\":{\"type\":\"integer\"}},\"required\":[\"arg1\"]}")));
        String markup = "<atem:function_calls>\n<atem:invoke name=\"special_function\">\n<atem:parameter name=\"arg1\">1</atem:parameter>\n"
                + "</atem:invoke>\n</atem:function_calls>";
        String[][] cases = {
            {" to=user<|message|>Hello, world!\nWhat's up?", "", "Hello, world!\nWhat's up?", ""},
            {" to=special_function<|message|>" + markup, "", null, "{\"arg1\":1}"},
            {" to=user<|message|>Hello, world!\nWhat's up?<|eom|><|start|>assistant to=special_function<|message|>" + markup, "",
                    "Hello, world!\nWhat's up?", "{\"arg1\":1}"},
            {" to=user<|message|>You invoke it like this:\n" + markup, "", "You invoke it like this:\n" + markup, ""},
            {" to=self<|message|>I could use " + markup + " here<|eom|><|start|>assistant to=user<|message|>Hello!", "I could use " + markup
                    + " here", "Hello!", ""}};
        for (String[] c : cases) {
            ReasoningStream.Split split = ReasoningStream.split(MarkerFilter.strip(muse, c[0]), false, null, ReasoningStream.MUSE);
            assertThat(split.reasoning()).as(c[0]).isEqualTo(c[1]);
            ToolCalls.Reply r = ToolCalls.parse(ToolCalls.Format.MUSE, split.content(), fs);
            assertThat(r.content()).as(c[0]).isEqualTo(c[2]);
            assertThat(r.calls()).extracting(ToolCalls.Call::arguments).containsExactlyElementsOf(c[3].isEmpty() ? List.of() : List.of(c[3]));
        }
    }

    /** MiniMax M3: a reply without reasoning begins with a bare {@code </mm:think>}, left out there and nowhere else. */
    @Test
    void miniMaxM3RepliesLoseTheirLeadingEndOfReasoning() throws Exception {
        MarkerFilter.Envelope m3 = MarkerFilter.Envelope.of(java.nio.file.Files.readString(XmlToolCallsTest.templatesDir().resolve("MiniMax-M3.jinja")),
                ReasoningStream.MINIMAX_M3);
        assertThat(m3).isEqualTo(new MarkerFilter.Envelope("", "</mm:think>", List.of()));
        Random rnd = new Random(47);
        for (String[] c : new String[][] {{"</mm:think>Hello there", "Hello there"}, {"<mm:think>hm</mm:think>Hi", "<mm:think>hm</mm:think>Hi"},
                {"Hi </mm:think> there", "Hi </mm:think> there"}, {"</mm:th", "</mm:th"}, {"</mm:think>", ""}, {"", ""}}) {
            assertThat(MarkerFilter.strip(m3, c[0])).as(c[0]).isEqualTo(c[1]);
            for (int trial = 0; trial < 20; trial++) {
                assertThat(pieces(m3, c[0], rnd)).as(c[0]).isEqualTo(c[1]);
            }
        }
    }

    /**
     * Functionary v3.2: the reply is read after its prompt's {@code >>>}; the recipient of text
     * ({@code >>>all} and a line break) is left out where it begins the reply, and nowhere else; a
     * message to a function keeps its {@code >>>}; a reply that begins with no name (no
     * recipient), or was cut short before its recipient was whole, is the model's text alone.
     */
    @Test
    void functionaryV32RepliesAreReadAfterThePromptsRecipientMark() {
        assertThat(FUNCTIONARY_V32).isEqualTo(new MarkerFilter.Envelope(">>>", ">>>all\n", List.of()));
        assertThat(MarkerFilter.Envelope.of("{{ '<|im_start|>' }}", ReasoningStream.THINK).none()).isTrue();
        Random rnd = new Random(41);
        for (String[] c : new String[][] {{"all\nHello there", "Hello there"}, {"get_weather\n{\"city\": \"Rome\"}", ">>>get_weather\n{\"city\": \"Rome\"}"},
                {"all\nSure.>>>get_time\n{}", "Sure.>>>get_time\n{}"}, {"all\nA>>>all\nB", "A>>>all\nB"}, {"al", "al"}, {"all", "all"},
                {"", ""}, {"alligator", ">>>alligator"}, {" are here", " are here"}, {"\nHi", "\nHi"}}) {
            assertThat(MarkerFilter.strip(FUNCTIONARY_V32, c[0])).as(c[0]).isEqualTo(c[1]);
            for (int trial = 0; trial < 20; trial++) {
                assertThat(pieces(FUNCTIONARY_V32, c[0], rnd)).as(c[0]).isEqualTo(c[1]);
            }
        }
    }
}
