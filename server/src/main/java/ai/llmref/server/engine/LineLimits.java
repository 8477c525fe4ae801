package ai.llmref.server.engine;

/**
 * llama-server's limits on a code completion's lines ({@code /infill}): the output ends before a
 * line, after the first, whose indentation is less than {@code indent} white space characters
 * ({@code n_indent}; the line's text from its first other character is cut, as llama-server cuts
 * it), and once {@code maxPredictMillis} have passed since the first token, at the next piece
 * that holds a line break ({@code t_max_predict_ms}). Both end it as the token limit does
 * ({@link FinishReason#LENGTH}). 0: no such limit.
 */
public record LineLimits(int indent, long maxPredictMillis) {
    public LineLimits {
        if (indent < 0 || maxPredictMillis < 0) {
            throw new IllegalArgumentException("line limits must not be negative");
        }
    }

    /** Whether either limit is set. */
    public boolean any() {
        return indent > 0 || maxPredictMillis > 0;
    }

    /** One output's place in its lines. Not thread-safe: the scheduler thread's. */
    static final class Tracker {
        private final LineLimits limits;
        private boolean sawNewline;
        private boolean lineStart;
        private int lineIndent;
        /** A limit was reached: the output ends after the text {@link #cut} returned. */
        boolean reached;

        Tracker(LineLimits limits) {
            this.limits = limits;
        }

        /**
         * The part of the next text the output keeps: all of it, or the text before the first
         * character of a line indented less than the limit ({@link #reached} then). {@code sinceFirstToken}:
         * nanoseconds since the output's first token.
         */
        String cut(String text, long sinceFirstToken) {
            boolean newline = false;
            for (int i = 0; i < text.length(); i++) {
                char c = text.charAt(i);
                if (c == '\n') {
                    sawNewline = true;
                    newline = true;
                    lineStart = true;
                    lineIndent = 0;
                } else if (lineStart) {
                    if (c == ' ' || c == '\t') {
                        lineIndent++;
                    } else {
                        lineStart = false;
                        if (limits.indent > 0 && sawNewline && lineIndent < limits.indent) {
                            reached = true;
                            return text.substring(0, i);
                        }
                    }
                }
            }
            if (newline && limits.maxPredictMillis > 0 && sinceFirstToken > limits.maxPredictMillis * 1_000_000L) {
                reached = true;
            }
            return text;
        }
    }
}
