package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * A reply fed to a {@link ToolStream} (or to a {@link MarkerFilter}, {@link #filtered}) in random pieces (1 to {@code maxPiece} characters), the
 * call grammar taking over where the format's opening shows (as the engine's late grammar does).
 */
public final class SplitStream {
    private SplitStream() {}

    /** The stream after the whole reply and its end, and every piece it released. */
    public record Fed(ToolStream stream, List<ToolStream.Piece> pieces) {}

    public static Fed feed(ToolCalls.Format format, boolean forced, List<ToolCalls.Function> functions, String reply, Random rnd,
            int maxPiece) {
        ToolStream s = new ToolStream(format, forced, functions);
        List<ToolStream.Piece> pieces = new ArrayList<>();
        List<String> openings = ToolCalls.openings(format, functions);
        for (int i = 0; i < reply.length(); ) {
            int n = Math.min(reply.length() - i, 1 + rnd.nextInt(maxPiece));
            pieces.addAll(s.push(reply.substring(i, i + n)));
            if (!s.callsStarted() && openings != null && openings.stream().anyMatch(s.text()::contains)) {
                pieces.addAll(s.constrain());
            }
            i += n;
        }
        pieces.addAll(s.finish());
        return new Fed(s, pieces);
    }

    /**
     * Feeds the reply {@code trials} times: each time well-formed, with the content and the calls'
     * arguments the whole reply's parse gives.
     */
    public static void assertReadsAsWhole(ToolCalls.Format format, List<ToolCalls.Function> functions, String reply, Random rnd, int trials) {
        ToolCalls.Reply whole = ToolCalls.parse(format, reply, functions);
        for (int trial = 0; trial < trials; trial++) {
            ToolStream s = feed(format, false, functions, reply, rnd, 5).stream();
            assertThat(s.wellFormed()).as(reply).isTrue();
            assertThat(s.content()).isEqualTo(whole.content());
            assertThat(s.calls()).extracting(ToolCalls.Call::arguments)
                    .containsExactlyElementsOf(whole.calls().stream().map(ToolCalls.Call::arguments).toList());
        }
    }

    /** A reply pushed through a chat reply's envelope in random pieces (1 to {@code maxPiece} characters), then an empty one and its end: what it released. */
    public static String filtered(MarkerFilter.Envelope envelope, String reply, Random rnd, int maxPiece) {
        MarkerFilter f = new MarkerFilter(envelope);
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < reply.length();) {
            int n = 1 + rnd.nextInt(maxPiece);
            out.append(f.push(reply.substring(i, Math.min(reply.length(), i + n))));
            i += n;
        }
        return out.append(f.push("")).append(f.finish()).toString();
    }
}
