package ai.llmref.server.structured;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * GBNF for the decimal integers of a closed range, written without leading zeros (as JSON writes
 * them): the range is split by digit count, and each same-length range by its first differing
 * digit, into alternatives of digit classes. Also the digits after a decimal point whose fraction
 * lies between two bounds: the same construction aligned on the left, where a shorter string is
 * one padded with zeros.
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

    /**
     * The digit strings s of 1 to n digits whose fraction 0.s lies above lo (at or above where not
     * loStrict) and below hi (at or below where not hiStrict), as alternatives; empty when none does.
     * A bound is given by its digits after the point without trailing zeros ("" for 0), null for
     * none, at most n digits. Each alternative starts with other digits, so a text follows one of
     * them: the grammar engine keeps one stack per digit read, and a second where the string may end.
     */
    static List<String> fractions(String lo, boolean loStrict, String hi, boolean hiStrict, int n) {
        List<String> out = new ArrayList<>();
        if (n == 0) {
            return out;
        }
        Fraction from = new Fraction(lo, loStrict, hi, hiStrict);
        String[] rests = new String[10];
        for (int d = 0; d <= 9; d++) {
            Fraction next = from.after(d);
            rests[d] = next == null ? null : next.rest(n - 1);
        }
        int d = 0;
        while (d <= 9) {
            // the run of digits that the same digits may follow
            int e = d;
            while (e < 9 && Objects.equals(rests[e + 1], rests[d])) {
                e++;
            }
            if (rests[d] != null) {
                String cls = d == e ? "[" + d + "]" : "[" + d + "-" + e + "]";
                out.add(rests[d].isEmpty() ? cls : cls + " " + rests[d]);
            }
            d = e + 1;
        }
        return out;
    }

    /** Whether the empty digit string (the fraction 0) meets the bounds, given as for {@link #fractions}. */
    static boolean admitsZero(String lo, boolean loStrict, String hi, boolean hiStrict) {
        return new Fraction(lo, loStrict, hi, hiStrict).admitsZero();
    }

    /** Bounds on the digits still to come, as for {@link #fractions}; a lower bound "" not strict is none (null). */
    private record Fraction(String lo, boolean loStrict, String hi, boolean hiStrict) {
        Fraction {
            if (lo != null && lo.isEmpty() && !loStrict) {
                lo = null;
            }
        }

        boolean admitsZero() {
            return lo == null && (hi == null || !hi.isEmpty() || !hiStrict);
        }

        /** The bounds on the digits after digit d, or null where no string starting with d meets them. */
        Fraction after(int d) {
            String nextLo = null;
            if (lo != null) {
                // "" (strict: above 0) is "0" followed by ""
                int l = lo.isEmpty() ? 0 : lo.charAt(0) - '0';
                if (d < l) {
                    return null;
                }
                nextLo = d > l ? null : lo.isEmpty() ? "" : lo.substring(1);
            }
            String nextHi = null;
            if (hi != null) {
                int h = hi.isEmpty() ? 0 : hi.charAt(0) - '0';
                if (d > h) {
                    return null;
                }
                nextHi = d < h ? null : hi.isEmpty() ? "" : hi.substring(1);
                if (hiStrict && "".equals(nextHi)) {
                    // below the fraction read so far: no digits left can make it
                    return null;
                }
            }
            return new Fraction(nextLo, nextLo != null && loStrict, nextHi, nextHi != null && hiStrict);
        }

        /** GBNF for the digits that may follow (at most n): "" for none, null where nothing meets the bounds. */
        String rest(int n) {
            if (n > 0 && lo == null && hi == null) {
                return "[0-9]{0," + n + "}";
            }
            if (n > 0 && lo == null && hi.isEmpty() && !hiStrict) {
                return "[0]{0," + n + "}";
            }
            List<String> alts = fractions(lo, loStrict, hi, hiStrict, n);
            if (alts.isEmpty()) {
                return admitsZero() ? "" : null;
            }
            return "(" + String.join(" | ", alts) + ")" + (admitsZero() ? "?" : "");
        }
    }

    private static long pow10(int d) {
        long p = 1;
        for (int i = 0; i < d; i++) {
            p *= 10;
        }
        return p;
    }
}
