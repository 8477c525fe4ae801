package ai.llmref.server.structured;

import java.util.ArrayList;
import java.util.List;

/**
 * GBNF for the decimal integers of a closed range, written without leading zeros (as JSON writes
 * them): the range is split by digit count, and each same-length range by its first differing
 * digit, into alternatives of digit classes.
 */
final class IntegerRanges {
    private IntegerRanges() {}

    /** Alternatives matching exactly the integers lo..hi (lo <= hi), "-0" excluded. */
    static String gbnf(long lo, long hi) {
        if (lo > hi) {
            throw new IllegalArgumentException(lo + " > " + hi);
        }
        List<String> alts = new ArrayList<>();
        if (lo < 0) {
            long negHi = -lo;
            long negLo = hi < 0 ? -hi : 1;
            alts.add("\"-\" (" + String.join(" | ", nonNegative(negLo, negHi)) + ")");
        }
        if (hi >= 0) {
            alts.addAll(nonNegative(Math.max(lo, 0), hi));
        }
        return String.join(" | ", alts);
    }

    private static List<String> nonNegative(long lo, long hi) {
        List<String> alts = new ArrayList<>();
        String los = Long.toString(lo);
        String his = Long.toString(hi);
        for (int d = los.length(); d <= his.length(); d++) {
            long first = d == 1 ? 0 : pow10(d - 1);
            long last = pow10(d) - 1;
            long a = Math.max(lo, first);
            long b = Math.min(hi, last);
            if (a <= b) {
                alts.addAll(sameLength(Long.toString(a), Long.toString(b)));
            }
        }
        return alts;
    }

    /** Alternatives for the digit strings lo..hi of equal length. */
    private static List<String> sameLength(String lo, String hi) {
        List<String> out = new ArrayList<>();
        int n = lo.length();
        if (n == 0) {
            out.add("\"\"");
            return out;
        }
        if (lo.equals(hi)) {
            out.add("\"" + lo + "\"");
            return out;
        }
        char l = lo.charAt(0);
        char h = hi.charAt(0);
        String lrest = lo.substring(1);
        String hrest = hi.substring(1);
        if (l == h) {
            for (String s : sameLength(lrest, hrest)) {
                out.add("\"" + l + "\" (" + s + ")");
            }
            return out;
        }
        boolean loFull = lrest.chars().allMatch(c -> c == '0');
        boolean hiFull = hrest.chars().allMatch(c -> c == '9');
        char midFrom = loFull ? l : (char) (l + 1);
        char midTo = hiFull ? h : (char) (h - 1);
        if (!loFull) {
            out.add("\"" + l + "\" (" + String.join(" | ", sameLength(lrest, "9".repeat(n - 1))) + ")");
        }
        if (midFrom <= midTo) {
            String cls = midFrom == midTo ? "[" + midFrom + "]" : "[" + midFrom + "-" + midTo + "]";
            out.add(n == 1 ? cls : cls + " [0-9]{" + (n - 1) + "}");
        }
        if (!hiFull) {
            out.add("\"" + h + "\" (" + String.join(" | ", sameLength("0".repeat(n - 1), hrest)) + ")");
        }
        return out;
    }

    private static long pow10(int d) {
        long p = 1;
        for (int i = 0; i < d; i++) {
            p *= 10;
        }
        return p;
    }
}
