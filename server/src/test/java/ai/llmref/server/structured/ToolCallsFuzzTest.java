package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.List;

/**
 * Fuzzes the parsing of a reply into content and tool calls, and what a stream releases of it: the
 * model writes the reply, so any text may come. For twenty-six call formats: parsing never throws; a
 * reply without calls is its whole text (nothing lost); each call names a declared function and
 * carries a JSON object of arguments; and the content a {@link ToolStream} releases while the reply
 * streams, in pieces of any size, is always a prefix of the content parsed from the whole reply (a
 * streamed answer never says what the finished one does not).
 *
 * <p>Regression inputs: {@code src/test/resources/ai/llmref/server/structured/ToolCallsFuzzTestInputs/parse/}.
 */
class ToolCallsFuzzTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @FuzzTest(maxDuration = "30s")
    void parse(FuzzedDataProvider data) throws Exception {
        int step = 1 + (data.consumeByte() & 15);
        String text = data.consumeRemainingAsString();
        for (ToolCalls.Format format : List.of(ToolCalls.Format.HERMES, ToolCalls.Format.LLAMA3_JSON, ToolCalls.Format.XML,
                ToolCalls.Format.GLM_XML, ToolCalls.Format.MISTRAL, ToolCalls.Format.MISTRAL_NEMO, ToolCalls.Format.HARMONY,
                ToolCalls.Format.MINIMAX_XML, ToolCalls.Format.KIMI, ToolCalls.Format.DEEPSEEK_V32, ToolCalls.Format.GEMMA,
                ToolCalls.Format.NEMOTRON_V2, ToolCalls.Format.APRIEL, ToolCalls.Format.SEED_XML,
                ToolCalls.Format.COHERE, ToolCalls.Format.MINIMAX_M1, ToolCalls.Format.HUNYUAN,
                ToolCalls.Format.DEEPSEEK_R1, ToolCalls.Format.FUNCTIONARY_V31, ToolCalls.Format.GIGACHAT,
                ToolCalls.Format.APERTUS, ToolCalls.Format.KIMI3, ToolCalls.Format.GRANITE,
                ToolCalls.Format.LFM2, ToolCalls.Format.MINICPM5, ToolCalls.Format.FUNCTIONARY_V32,
                ToolCalls.Format.GIGACHAT3, ToolCalls.Format.COMMAND_R, ToolCalls.Format.SOLAR, ToolCalls.Format.MINIMAX_M3,
                ToolCalls.Format.MUSE, ToolCalls.Format.DEEPSEEK_V31, ToolCalls.Format.FIREFUNCTION)) {
            // the XML formats read values by their schemas: their functions declare strings, numbers, unions, references
            // LFM2's and MiniMax M3's keys are declared properties too
            boolean xml = ToolCalls.xml(format) || format == ToolCalls.Format.LFM2 || format == ToolCalls.Format.MINIMAX_M3;
            List<ToolCalls.Function> functions = xml ? XmlToolCallsTest.FUNCTIONS : ToolCallsParseTest.FUNCTIONS;
            List<String> names = functions.stream().map(ToolCalls.Function::name).toList();
            ToolCalls.Reply reply = ToolCalls.parse(format, text, functions);
            if (reply.calls().isEmpty() && format == ToolCalls.Format.GIGACHAT3 && text.stripTrailing().endsWith("<|message_sep|>")) {
                // the end of its message is left out
                assertThat(reply.content()).as(format + ": a reply without calls is its text").isEqualTo(
                        text.stripTrailing().substring(0, text.stripTrailing().length() - "<|message_sep|>".length()));
            } else if (reply.calls().isEmpty()) {
                assertThat(reply.content()).as(format + ": a reply without calls is its text").isEqualTo(text);
            } else {
                for (ToolCalls.Call c : reply.calls()) {
                    assertThat(names).contains(c.name());
                    JsonNode args = JSON.readTree(c.arguments());
                    assertThat(args.isObject()).as(c.arguments()).isTrue();
                }
                if (reply.content() != null) {
                    assertThat(text).startsWith(reply.content());
                }
            }
            ToolStream stream = new ToolStream(format, false, functions);
            StringBuilder released = new StringBuilder();
            for (int i = 0; i < text.length(); i += step) {
                for (ToolStream.Piece p : stream.push(text.substring(i, Math.min(text.length(), i + step)))) {
                    released.append(((ToolStream.Content) p).text()); // a free reply releases content only
                }
            }
            assertThat(stream.text()).isEqualTo(text);
            String content = reply.content() == null ? "" : reply.content();
            assertThat(content).as(format + ": streamed content is a prefix of the parsed content").startsWith(released.toString());
            // read as a constrained reply (what a grammar would have written): never throws, and
            // where it reads as well-formed calls, they are the calls the parse finds
            ToolStream constrained = new ToolStream(format, true, functions);
            for (int i = 0; i < text.length(); i += step) {
                constrained.push(text.substring(i, Math.min(text.length(), i + step)));
            }
            constrained.finish();
            if (constrained.wellFormed()) {
                ToolCalls.Reply whole = ToolCalls.parse(format, text, functions);
                List<ToolCalls.Call> calls = constrained.calls();
                if (calls.stream().allMatch(c -> names.contains(c.name()))) {
                    assertThat(whole.calls()).as(format + ": calls read as they came").hasSameSizeAs(calls);
                    for (int i = 0; i < calls.size(); i++) {
                        assertThat(calls.get(i).name()).isEqualTo(whole.calls().get(i).name());
                        assertThat(SchemaValidator.EXACT.readTree(calls.get(i).arguments()))
                                .isEqualTo(SchemaValidator.EXACT.readTree(whole.calls().get(i).arguments()));
                    }
                }
            }
        }
    }
}
