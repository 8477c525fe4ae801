package ai.llmref.server.structured;

import java.util.List;

/**
 * A reply's text as it comes, with markers left out wherever they stand (Kimi K3's response
 * element, {@link ReasoningStream#envelope}): what {@link #push} and {@link #finish} release,
 * joined, is the whole text without them. A tail that may begin a marker waits for the next piece;
 * at the end it is text.
 */
public final class MarkerFilter {
    private final List<String> markers;
    private final StringBuilder held = new StringBuilder();

    public MarkerFilter(List<String> markers) {
        this.markers = List.copyOf(markers);
    }

    /** Adds text; returns what may be sent now, the markers left out. */
    public String push(String text) {
        held.append(text);
        StringBuilder out = new StringBuilder();
        int at = 0;
        while (true) {
            int first = -1;
            String found = null;
            for (String m : markers) {
                int i = held.indexOf(m, at);
                if (i >= 0 && (first < 0 || i < first)) {
                    first = i;
                    found = m;
                }
            }
            if (found == null) {
                break;
            }
            out.append(held, at, first);
            at = first + found.length();
        }
        CharSequence rest = held.subSequence(at, held.length());
        int keep = 0;
        for (String m : markers) {
            keep = Math.max(keep, ReasoningStream.partial(rest, m));
        }
        out.append(rest, 0, rest.length() - keep);
        held.delete(0, held.length() - keep);
        return out.toString();
    }

    /** The reply ended: the tail held (no marker's whole) is text. */
    public String finish() {
        String tail = held.toString();
        held.setLength(0);
        return tail;
    }

    /** A whole text without the markers. */
    public static String strip(List<String> markers, String text) {
        MarkerFilter f = new MarkerFilter(markers);
        return f.push(text) + f.finish();
    }
}
