package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Streaming a reply with tools. A free reply: however the text arrives in pieces, what
 * {@link ToolStream} releases plus the rest sent at the end is exactly the content
 * {@link ToolCalls#parse} finds, and nothing of a call is released early. A constrained reply: the
 * calls come as they are written, and their pieces joined are the calls {@link ToolCalls#parse}
 * finds in the whole text, however the text was split.
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

    /** Constrained Hermes replies, as a grammar lets a model space and escape them. */
    static final List<String> HERMES_CALLS = List.of(
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>",
            "I will look.\n\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n"
                    + "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris \\\"Nord\\\" \\u00e9t\\u00e9 \\ud83d\\ude00 \\n\\t\\/ \\\\\"}}"
                    + "\n</tool_call>",
            "<tool_call>{ \"name\" : \"get_time\" ,\n  \"arguments\" :\n  {\"a\" : [1, -0, 2.50, 1e3, -1.5E-7, 123456789012345678901234567890,"
                    + " true, false, null, {\"b\": {}}, []], \"c\": \"\\u0001\\u001f\\u007f\"}}\n</tool_call>  ");

    private static String contentOf(List<ToolStream.Piece> pieces) {
        StringBuilder sb = new StringBuilder();
        for (ToolStream.Piece p : pieces) {
            if (p instanceof ToolStream.Content c) {
                sb.append(c.text());
            }
        }
        return sb.toString();
    }

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
                        List<ToolStream.Piece> out = s.push(reply.substring(i, i + n));
                        assertThat(out).allMatch(p -> p instanceof ToolStream.Content);
                        sent.append(contentOf(out));
                        i += n;
                    }
                    assertThat(s.finish()).isEmpty();
                    assertThat(s.callsStarted()).isFalse();
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
    void hermesContentStreamsBeforeTheTag() {
        ToolStream s = new ToolStream(ToolCalls.Format.HERMES, false);
        assertThat(contentOf(s.push("Let me "))).isEqualTo("Let me");
        assertThat(contentOf(s.push("look. <tool"))).isEqualTo(" look.");
        assertThat(s.push("_call>{")).isEmpty();
        assertThat(s.push("\"name\"")).isEmpty();
    }

    /** What a constrained reply gave, piece by piece. */
    private record Streamed(String content, List<ToolCalls.Call> calls, List<String> argumentPieces) {}

    private static Streamed stream(ToolStream s, String reply, Random rnd, boolean constrainAtTag) {
        StringBuilder content = new StringBuilder();
        List<StringBuilder> args = new ArrayList<>();
        List<ToolCalls.Call> ended = new ArrayList<>();
        List<String> pieces = new ArrayList<>();
        int tag = reply.indexOf("<tool_call>");
        boolean constrained = !constrainAtTag;
        for (int i = 0; i < reply.length(); ) {
            int n = Math.min(reply.length() - i, 1 + rnd.nextInt(5));
            List<ToolStream.Piece> out = new ArrayList<>(s.push(reply.substring(i, i + n)));
            i += n;
            if (!constrained && tag >= 0 && i >= tag + "<tool_call>".length()) {
                constrained = true; // as the engine tells it: right after the text that completed the tag
                out.addAll(s.constrain());
            }
            collect(out, content, args, ended, pieces);
        }
        collect(s.finish(), content, args, ended, pieces);
        for (int i = 0; i < ended.size(); i++) {
            assertThat(ended.get(i).arguments()).as("a call's end carries its joined arguments").isEqualTo(args.get(i).toString());
        }
        return new Streamed(content.toString(), ended, pieces);
    }

    private static void collect(List<ToolStream.Piece> out, StringBuilder content, List<StringBuilder> args, List<ToolCalls.Call> ended,
            List<String> pieces) {
        for (ToolStream.Piece p : out) {
            switch (p) {
                case ToolStream.Content c -> {
                    assertThat(args).as("content comes before the calls").isEmpty();
                    content.append(c.text());
                }
                case ToolStream.CallStart c -> {
                    assertThat(c.index()).isEqualTo(args.size());
                    assertThat(c.id()).startsWith("call_");
                    args.add(new StringBuilder());
                }
                case ToolStream.CallArguments a -> {
                    assertThat(a.index()).isEqualTo(args.size() - 1);
                    args.get(a.index()).append(a.delta());
                    pieces.add(a.delta());
                }
                case ToolStream.CallEnd e -> {
                    assertThat(e.index()).isEqualTo(ended.size());
                    ended.add(e.call());
                }
            }
        }
    }

    @Test
    void constrainedCallsStreamAndJoinToWhatParseFinds() throws Exception {
        Random rnd = new Random(7);
        for (String reply : HERMES_CALLS) {
            ToolCalls.Reply parsed = ToolCalls.parse(ToolCalls.Format.HERMES, reply, ToolCallsParseTest.FUNCTIONS);
            assertThat(parsed.calls()).as(reply).isNotEmpty();
            boolean forced = reply.startsWith("<tool_call>");
            for (int trial = 0; trial < 40; trial++) {
                ToolStream s = new ToolStream(ToolCalls.Format.HERMES, forced);
                Streamed out = stream(s, reply, rnd, !forced);
                assertThat(s.callsStarted()).isTrue();
                assertThat(s.wellFormed()).as(reply).isTrue();
                assertThat(s.content()).isEqualTo(parsed.content());
                assertThat(out.content()).isEqualTo(parsed.content() == null ? "" : parsed.content());
                assertThat(out.calls()).hasSameSizeAs(parsed.calls()).isEqualTo(s.calls());
                for (int i = 0; i < out.calls().size(); i++) {
                    ToolCalls.Call c = out.calls().get(i);
                    assertThat(c.complete()).isTrue();
                    assertThat(c.name()).isEqualTo(parsed.calls().get(i).name());
                    // the compact form Jackson writes of the same value (no key repeats here)
                    assertThat(c.arguments()).isEqualTo(parsed.calls().get(i).arguments());
                }
            }
        }
        // arguments arrive in many pieces: the string's characters as they come
        ToolStream s = new ToolStream(ToolCalls.Format.HERMES, true);
        Streamed one = stream(s, HERMES_CALLS.get(1).substring(HERMES_CALLS.get(1).indexOf("<tool_call>")), new Random(1), false);
        assertThat(one.argumentPieces().size()).isGreaterThan(10);
    }

    @Test
    void aLlama3CallStreamsFromTheReplysStart() {
        String reply = " <|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}} ";
        Random rnd = new Random(3);
        for (boolean forced : List.of(true, false)) {
            for (int trial = 0; trial < 20; trial++) {
                ToolStream s = new ToolStream(ToolCalls.Format.LLAMA3_JSON, forced);
                List<ToolStream.Piece> out = new ArrayList<>();
                for (int i = 0; i < reply.length(); ) {
                    int n = Math.min(reply.length() - i, 1 + rnd.nextInt(5));
                    out.addAll(s.push(reply.substring(i, i + n)));
                    i += n;
                    if (!forced && i >= 24 && !s.callsStarted()) {
                        out.addAll(s.constrain());
                    }
                }
                out.addAll(s.finish());
                assertThat(s.wellFormed()).isTrue();
                assertThat(s.content()).isNull();
                assertThat(contentOf(out)).isEmpty();
                assertThat(s.calls()).singleElement().satisfies(c -> {
                    assertThat(c.name()).isEqualTo("get_weather");
                    assertThat(c.arguments()).isEqualTo("{\"city\":\"Oslo\"}");
                });
            }
        }
    }

    /** Cut anywhere (max_tokens), a constrained reply ends with its last call incomplete, its arguments the part written. */
    @Test
    void aReplyCutShortEndsWithItsLastCallIncomplete() throws Exception {
        String reply = HERMES_CALLS.get(1);
        int second = reply.lastIndexOf("<tool_call>");
        for (int cut = 0; cut <= reply.length(); cut++) {
            ToolStream s = new ToolStream(ToolCalls.Format.HERMES, false);
            String text = reply.substring(0, cut);
            List<ToolStream.Piece> out = new ArrayList<>(s.push(text));
            out.addAll(s.constrain());
            out.addAll(s.finish());
            List<ToolCalls.Call> calls = s.calls();
            String head = "<tool_call>\n{\"name\": \"get_time\", \"arguments\":"; // the call begins at the colon
            int firstArgs = reply.indexOf(head) + head.length();
            if (cut < firstArgs) {
                assertThat(s.callsStarted()).as("cut at %d", cut).isFalse();
                continue;
            }
            assertThat(s.content()).isEqualTo("I will look.");
            boolean secondStarted = cut >= reply.indexOf("\"arguments\": ", second) + "\"arguments\":".length();
            assertThat(calls).as("cut at %d", cut).hasSize(secondStarted ? 2 : 1);
            ToolCalls.Call last = calls.getLast();
            boolean whole = cut >= reply.indexOf("}}", second) + 2 || !secondStarted && cut >= reply.indexOf("{}}") + 3;
            assertThat(last.complete()).as("cut at %d", cut).isEqualTo(whole);
            if (!last.complete()) {
                assertThat(last.arguments()).as("the part written, compact").isEqualTo(
                        CompactJson.of(text.substring(text.lastIndexOf("\"arguments\":") + "\"arguments\":".length())));
            }
            int firstClosed = reply.indexOf("</tool_call>") + "</tool_call>".length();
            boolean between = cut >= firstClosed && cut <= second;
            assertThat(s.wellFormed()).as("cut at %d", cut).isEqualTo(between || cut >= reply.lastIndexOf("</tool_call>") + "</tool_call>".length());
        }
    }

    /** The compact form is Jackson's, whatever the spacing and escapes of the text it reads. */
    @Test
    void compactJsonWritesWhatJacksonWrites() throws Exception {
        Random rnd = new Random(11);
        for (int trial = 0; trial < 2000; trial++) {
            StringBuilder in = new StringBuilder();
            writeRandom(rnd, in, 0, true);
            String text = in.toString();
            JsonNode tree = SchemaValidator.EXACT.readTree(text);
            String expected = JsonSchemaGrammar.dump(tree);
            assertThat(CompactJson.of(text)).as(text).isEqualTo(expected);
            // fed in pieces: the same, and nothing given before it is certain
            CompactJson c = new CompactJson();
            StringBuilder out = new StringBuilder();
            int i = 0;
            while (i < text.length() && c.feed(text.charAt(i), out)) {
                assertThat(expected).startsWith(out.toString());
                i++;
            }
            assertThat(text.substring(i)).as("after the value").isBlank();
            assertThat(c.done()).isTrue();
            assertThat(out.toString()).isEqualTo(expected);
        }
    }

    /** A random JSON object with keys unique, spaced and escaped at random. */
    private static void writeRandom(Random rnd, StringBuilder out, int depth, boolean object) {
        space(rnd, out);
        int kind = object ? 0 : rnd.nextInt(depth > 3 ? 6 : 8);
        switch (kind) {
            case 0 -> {
                out.append('{');
                int n = rnd.nextInt(4);
                for (int i = 0; i < n; i++) {
                    if (i > 0) {
                        out.append(',');
                    }
                    space(rnd, out);
                    string(rnd, out, "k" + i + randomText(rnd));
                    space(rnd, out);
                    out.append(':');
                    writeRandom(rnd, out, depth + 1, false);
                }
                space(rnd, out);
                out.append('}');
            }
            case 1 -> string(rnd, out, randomText(rnd));
            case 2 -> out.append(List.of("0", "-0", "7", "-12", "3.25", "2.50", "1e3", "1E+3", "-1.5e-7", "0.000", "123456789012345678901234567890",
                    "9.999999999999999999e400", "1e-400").get(rnd.nextInt(13)));
            case 3 -> out.append(List.of("true", "false", "null").get(rnd.nextInt(3)));
            case 4, 5 -> string(rnd, out, randomText(rnd));
            default -> {
                out.append('[');
                int n = rnd.nextInt(4);
                for (int i = 0; i < n; i++) {
                    if (i > 0) {
                        out.append(',');
                    }
                    writeRandom(rnd, out, depth + 1, false);
                }
                space(rnd, out);
                out.append(']');
            }
        }
        space(rnd, out);
    }

    private static String randomText(Random rnd) {
        StringBuilder sb = new StringBuilder();
        int n = rnd.nextInt(6);
        for (int i = 0; i < n; i++) {
            sb.append(switch (rnd.nextInt(8)) {
                case 0 -> (char) rnd.nextInt(0x20);
                case 1 -> "\"\\/";
                case 2 -> "\u00e9\u4e2d";
                case 3 -> "\ud83d\ude00";
                case 4 -> "\u007f\u2028";
                default -> (char) ('a' + rnd.nextInt(26));
            });
        }
        return sb.toString();
    }

    /** A JSON string of {@code s}, each character written plainly or as an escape at random. */
    private static void string(Random rnd, StringBuilder out, String s) {
        out.append('"');
        for (char ch : s.toCharArray()) {
            boolean must = ch < 0x20 || ch == '"' || ch == '\\';
            if (must || rnd.nextInt(4) == 0) {
                String shortForm = switch (ch) {
                    case '"' -> "\\\"";
                    case '\\' -> "\\\\";
                    case '/' -> "\\/";
                    case '\n' -> "\\n";
                    case '\t' -> "\\t";
                    default -> null;
                };
                out.append(shortForm != null && rnd.nextBoolean() ? shortForm : String.format("\\u%04x", (int) ch));
            } else {
                out.append(ch);
            }
        }
        out.append('"');
    }

    private static void space(Random rnd, StringBuilder out) {
        if (rnd.nextInt(3) == 0) {
            out.append(List.of(" ", "\n", "  ", "\t", "\r\n").get(rnd.nextInt(5)));
        }
    }
}
