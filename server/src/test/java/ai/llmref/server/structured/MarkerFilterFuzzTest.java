package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import java.util.List;

/**
 * Fuzzes the reading of a chat reply in its template's envelope ({@link MarkerFilter}): the model
 * writes the reply, so any text may come, in pieces of any size. Streamed, the pieces joined are
 * what the whole reply gives; the envelope only leaves markup out (and puts back the prefix its
 * prompt opened); and the text then splits into reasoning and content as it does whole.
 *
 * <p>Regression inputs: {@code src/test/resources/ai/llmref/server/structured/MarkerFilterFuzzTestInputs/envelope/}.
 */
class MarkerFilterFuzzTest {
    /** The envelopes of the pinned templates that have one, with their reasoning tags. */
    private static final List<MarkerFilter.Envelope> ENVELOPES = List.of(
            MarkerFilter.Envelope.of(">>>all", ReasoningStream.THINK), // Functionary v3.2
            MarkerFilter.Envelope.of("", ReasoningStream.KIMI3),
            MarkerFilter.Envelope.of("", ReasoningStream.SOLAR),
            MarkerFilter.Envelope.of("", ReasoningStream.MINIMAX_M3),
            MarkerFilter.Envelope.of("", ReasoningStream.MUSE));
    private static final List<ReasoningStream.Tags> TAGS = List.of(ReasoningStream.THINK, ReasoningStream.KIMI3, ReasoningStream.SOLAR,
            ReasoningStream.MINIMAX_M3, ReasoningStream.MUSE);

    @FuzzTest(maxDuration = "30s")
    void envelope(FuzzedDataProvider data) {
        int which = data.consumeInt(0, ENVELOPES.size() - 1);
        int step = 1 + (data.consumeByte() & 15);
        MarkerFilter.Envelope envelope = ENVELOPES.get(which);
        ReasoningStream.Tags tags = TAGS.get(which);
        String text = data.consumeRemainingAsString();
        String whole = MarkerFilter.strip(envelope, text);
        MarkerFilter f = new MarkerFilter(envelope);
        ReasoningStream stream = new ReasoningStream(false, null, false, tags);
        StringBuilder out = new StringBuilder();
        StringBuilder reasoning = new StringBuilder();
        StringBuilder content = new StringBuilder();
        for (int at = 0; at < text.length();) {
            int end = Math.min(text.length(), at + step);
            if (end < text.length() && Character.isHighSurrogate(text.charAt(end - 1))) {
                end++; // the detokenizer sends whole characters
            }
            String piece = f.push(text.substring(at, end));
            out.append(piece);
            stream.push(piece).forEach(p -> (p instanceof ReasoningStream.Reasoning ? reasoning : content).append(p.text()));
            at = end;
        }
        String tail = f.finish();
        out.append(tail);
        stream.push(tail).forEach(p -> (p instanceof ReasoningStream.Reasoning ? reasoning : content).append(p.text()));
        stream.finish().forEach(p -> (p instanceof ReasoningStream.Reasoning ? reasoning : content).append(p.text()));
        assertThat(out.toString()).as(text).isEqualTo(whole);
        assertThat(whole.length()).as("markup is only left out").isLessThanOrEqualTo(text.length() + envelope.prefix().length());
        assertThat(new ReasoningStream.Split(reasoning.toString(), content.toString())).as(text)
                .isEqualTo(ReasoningStream.split(whole, false, null, tags));
    }
}
