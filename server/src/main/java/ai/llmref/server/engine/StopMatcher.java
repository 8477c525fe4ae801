package ai.llmref.server.engine;

import java.util.List;

/**
 * Finds stop strings in streamed text. Text that might be the beginning of a stop string is held
 * back until it is clear, so a stop string never reaches the client, not even in part.
 */
final class StopMatcher {
    private final List<String> stops;
    private final StringBuilder pending = new StringBuilder();
    private boolean stopped;
    private String matched;

    StopMatcher(List<String> stops) {
        this.stops = stops;
    }

    /** Adds text; returns what can be sent now. After a stop string, {@link #stopped()} is true. */
    String push(String text) {
        if (stopped) {
            return "";
        }
        pending.append(text);
        if (stops.isEmpty()) {
            String all = pending.toString();
            pending.setLength(0);
            return all;
        }
        int first = -1;
        for (String s : stops) {
            int at = pending.indexOf(s);
            if (at >= 0 && (first < 0 || at < first)) {
                first = at;
                matched = s;
            }
        }
        if (first >= 0) {
            stopped = true;
            String out = pending.substring(0, first);
            pending.setLength(0);
            return out;
        }
        int hold = 0;
        String text2 = pending.toString();
        for (String s : stops) {
            for (int k = Math.min(s.length() - 1, text2.length()); k > hold; k--) {
                if (text2.regionMatches(text2.length() - k, s, 0, k)) {
                    hold = k;
                    break;
                }
            }
        }
        String out = pending.substring(0, pending.length() - hold);
        pending.delete(0, pending.length() - hold);
        return out;
    }

    /** At the end of generation: whatever was held back and turned out not to be a stop string. */
    String flush() {
        String out = stopped ? "" : pending.toString();
        pending.setLength(0);
        return out;
    }

    boolean stopped() {
        return stopped;
    }

    /** The stop string that ended the text (the earliest in it), or null. */
    String matched() {
        return matched;
    }
}
