package ai.llmref.server.structured;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * A reply fed to a {@link ToolStream} in random pieces (1 to {@code maxPiece} characters), the
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
}
