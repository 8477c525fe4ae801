package ai.llmref.server.structured;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.BinaryOperator;

/**
 * The JSON Schema keyword {@code pattern} (ECMA-262 syntax) as GBNF, for the subset whose language
 * a grammar can express exactly; any other construct is a {@link SchemaException} naming it.
 *
 * <p>Supported: literal characters; the escapes {@code \d \D \w \W \s \S \t \n \r \f \v \xHH
 * &#92;uXXXX} and escaped ASCII punctuation; character classes with ranges, negation and those
 * escapes (and {@code \b}, a backspace, inside a class); {@code .} (any character but ECMA's
 * line terminators); groups {@code (...)}, {@code (?:...)} and named groups {@code (?<n>...)};
 * alternation; the quantifiers {@code ? * + {n} {n,} {n,m}} and their lazy forms (the same
 * language); {@code ^} at the start and {@code $} at the end of the pattern or of one of its
 * top-level alternatives. Without {@code ^} (or {@code $}) a match may be preceded (followed) by
 * any text, as JSON Schema's patterns are not anchored. Characters are code points (as with
 * ECMA's {@code u} flag); a class never yields a UTF-16 surrogate.
 *
 * <p>Refused: lookarounds, backreferences, {@code \b}/{@code \B} word boundaries, anchors
 * elsewhere, {@code \p{...}}, inline flags and other {@code (?...)} forms, {@code \c}, {@code \0},
 * {@code &#92;u{...}}, an empty class {@code []}, a repetition bound above llama.cpp's 2000, and
 * anything else this parser does not know.
 */
final class RegexGrammar {
    /** Most nested groups (the parser and llama.cpp's grammar parser recurse over them). */
    static final int MAX_DEPTH = 16;
    private static final int MAX_CP = 0x10FFFF;
    /** Every code point but the surrogates. */
    static final int[] ANY = {0, 0xD7FF, 0xE000, MAX_CP};
    static final int[] DIGIT = {'0', '9'};
    static final int[] WORD = norm(new int[] {'0', '9', 'A', 'Z', '_', '_', 'a', 'z'});
    /** ECMA's WhiteSpace and LineTerminator. */
    static final int[] SPACE = norm(new int[] {'\t', '\r', ' ', ' ', 0xA0, 0xA0, 0x1680, 0x1680, 0x2000, 0x200A, 0x2028, 0x2029,
            0x202F, 0x202F, 0x205F, 0x205F, 0x3000, 0x3000, 0xFEFF, 0xFEFF});
    static final int[] DOT = minus(ANY, norm(new int[] {'\n', '\n', '\r', '\r', 0x2028, 0x2029}));

    sealed interface Node permits Chars, Seq, Alt, Repeat {}

    /** A set of code points as sorted, disjoint, non-adjacent inclusive ranges (lo, hi pairs). */
    record Chars(int[] ranges) implements Node {}

    record Seq(List<Node> items) implements Node {}

    record Alt(List<Node> alternatives) implements Node {}

    /** {@code max} -1: unbounded. */
    record Repeat(Node body, int min, int max) implements Node {}

    /** A top-level alternative and whether it is anchored at the start and at the end. */
    record Branch(Node node, boolean start, boolean end) {}

    private final String src;
    private final String ptr;
    private int pos;

    private RegexGrammar(String src, String ptr) {
        this.src = src;
        this.ptr = ptr;
    }

    // --- parsing -------------------------------------------------------------------------------

    /** The pattern's top-level alternatives; {@code ptr} is the JSON pointer of the {@code pattern} keyword. */
    static List<Branch> parse(String pattern, String ptr) {
        RegexGrammar p = new RegexGrammar(pattern, ptr);
        List<Branch> out = new ArrayList<>();
        while (true) {
            boolean start = p.eat('^');
            List<Node> items = new ArrayList<>();
            boolean end = p.sequence(items, 0, true);
            out.add(new Branch(seq(items), start, end));
            if (!p.eat('|')) {
                break;
            }
        }
        if (p.pos < pattern.length()) {
            throw p.refuse("an unmatched ')' at offset " + p.pos + " is not a valid pattern");
        }
        return out;
    }

    private SchemaException refuse(String why) {
        return new SchemaException(ptr, "pattern", "'pattern' " + SchemaKeywords.abbreviate(jsonQuote(src)) + ": " + why);
    }

    private static String jsonQuote(String s) {
        return JsonSchemaGrammar.dump(com.fasterxml.jackson.databind.node.TextNode.valueOf(s));
    }

    private boolean eat(char c) {
        if (pos < src.length() && src.charAt(pos) == c) {
            pos++;
            return true;
        }
        return false;
    }

    private boolean at(String s) {
        return src.startsWith(s, pos);
    }

    /** Parses items up to '|', ')' or the end; returns whether it ended with an anchor '$' (top level only). */
    private boolean sequence(List<Node> items, int depth, boolean top) {
        while (pos < src.length()) {
            char c = src.charAt(pos);
            if (c == '|' || c == ')') {
                return false;
            }
            if (c == '$') {
                if (top && (pos + 1 == src.length() || src.charAt(pos + 1) == '|')) {
                    pos++;
                    return true;
                }
                throw refuse("an anchor '$' at offset " + pos + " cannot be enforced (supported: '^' at the start and '$' at the end "
                        + "of the pattern or of a top-level alternative)");
            }
            if (c == '^') {
                throw refuse("an anchor '^' at offset " + pos + " cannot be enforced (supported: '^' at the start and '$' at the end "
                        + "of the pattern or of a top-level alternative)");
            }
            int atomStart = pos;
            Node atom = atom(depth);
            items.add(quantified(atom, atomStart));
        }
        return false;
    }

    private Node quantified(Node atom, int atomStart) {
        int start = pos;
        int min;
        int max;
        if (eat('?')) {
            min = 0;
            max = 1;
        } else if (eat('*')) {
            min = 0;
            max = -1;
        } else if (eat('+')) {
            min = 1;
            max = -1;
        } else if (at("{") && pos + 1 < src.length() && Character.isDigit(src.charAt(pos + 1))) {
            pos++;
            min = number();
            max = min;
            if (eat(',')) {
                max = pos < src.length() && Character.isDigit(src.charAt(pos)) ? number() : -1;
            }
            if (!eat('}')) {
                throw refuse("a malformed quantifier at offset " + start);
            }
            if (max >= 0 && min > max) {
                throw refuse("the quantifier at offset " + start + " has its minimum above its maximum");
            }
            if (min > JsonSchemaGrammar.MAX_REPEAT || max > JsonSchemaGrammar.MAX_REPEAT) {
                throw refuse("a repetition above " + JsonSchemaGrammar.MAX_REPEAT + " (" + src.substring(start, pos) + ") cannot be "
                        + "enforced (llama.cpp's grammar engine limits a repetition to " + JsonSchemaGrammar.MAX_REPEAT + ")");
            }
        } else {
            return atom;
        }
        if (max < 0 && nullable(atom)) {
            // llama.cpp writes x* as x' ::= x x' | (empty): with an x that can be empty, x' recurses without reading a
            // character (a left recursion in the sense of llama.cpp's check). A quick check found such a grammar loads
            // and matches; refused anyway rather than leave the shared grammar engine such a loop
            throw refuse("an unbounded repetition (" + src.substring(atomStart, pos) + ") of something that can match the empty string "
                    + "cannot be enforced; repeat a non-empty form (e.g. (a+)* as a*)");
        }
        eat('?'); // lazy: the same language
        if (pos < src.length() && "?*+{".indexOf(src.charAt(pos)) >= 0) {
            throw refuse("a quantifier after a quantifier at offset " + pos + " is not a valid pattern");
        }
        return new Repeat(atom, min, max);
    }

    /** Whether the node matches the empty string. */
    static boolean nullable(Node n) {
        return switch (n) {
            case Chars c -> false;
            case Seq s -> s.items().stream().allMatch(RegexGrammar::nullable);
            case Alt a -> a.alternatives().stream().anyMatch(RegexGrammar::nullable);
            case Repeat r -> r.min() == 0 || nullable(r.body());
        };
    }

    private int number() {
        int s = pos;
        while (pos < src.length() && Character.isDigit(src.charAt(pos))) {
            pos++;
        }
        String digits = src.substring(s, pos);
        return digits.length() > 6 ? Integer.MAX_VALUE : Integer.parseInt(digits);
    }

    private Node atom(int depth) {
        char c = src.charAt(pos);
        switch (c) {
            case '(' -> {
                int open = pos;
                pos++;
                if (at("?=")) {
                    throw refuse("lookahead (?= ...) cannot be enforced");
                } else if (at("?!")) {
                    throw refuse("lookahead (?! ...) cannot be enforced");
                } else if (at("?<=")) {
                    throw refuse("lookbehind (?<= ...) cannot be enforced");
                } else if (at("?<!")) {
                    throw refuse("lookbehind (?<! ...) cannot be enforced");
                } else if (at("?:")) {
                    pos += 2;
                } else if (at("?<")) {
                    int close = src.indexOf('>', pos);
                    if (close < 0 || !src.substring(pos + 2, close).matches("[A-Za-z_$][A-Za-z0-9_$]*")) {
                        throw refuse("a malformed group name at offset " + open);
                    }
                    pos = close + 1;
                } else if (at("?")) {
                    throw refuse("the group syntax (? at offset " + open + " (inline flags or modifiers) cannot be enforced");
                }
                if (depth + 1 > MAX_DEPTH) {
                    throw refuse("groups nested more than " + MAX_DEPTH + " deep cannot be enforced");
                }
                List<Node> alts = new ArrayList<>();
                do {
                    List<Node> items = new ArrayList<>();
                    sequence(items, depth + 1, false);
                    alts.add(seq(items));
                } while (eat('|'));
                if (!eat(')')) {
                    throw refuse("the group at offset " + open + " is not closed");
                }
                return alts.size() == 1 ? alts.get(0) : new Alt(alts);
            }
            case '[' -> {
                return new Chars(charClass());
            }
            case '.' -> {
                pos++;
                return new Chars(DOT);
            }
            case '\\' -> {
                return new Chars(escape(false));
            }
            case '*', '+', '?' -> throw refuse("the quantifier '" + c + "' at offset " + pos + " has nothing to repeat");
            case '{', '}', ']' -> throw refuse("an unescaped '" + c + "' at offset " + pos + " (escape it as \\" + c + ")");
            default -> {
                int cp = src.codePointAt(pos);
                pos += Character.charCount(cp);
                return single(cp);
            }
        }
    }

    /** Parses a class from its '['; the set it matches. */
    private int[] charClass() {
        int open = pos;
        pos++;
        boolean negated = eat('^');
        int[] set = {};
        while (true) {
            if (pos >= src.length()) {
                throw refuse("the class at offset " + open + " is not closed");
            }
            if (eat(']')) {
                break;
            }
            int s = pos;
            int[] lo = classAtom();
            if (at("-") && pos + 1 < src.length() && src.charAt(pos + 1) != ']') {
                pos++;
                int[] hi = classAtom();
                if (!isSingle(lo) || !isSingle(hi)) {
                    throw refuse("a range with a class escape (" + src.substring(s, pos) + ") is not a valid pattern");
                }
                if (lo[0] > hi[0]) {
                    throw refuse("the range " + src.substring(s, pos) + " is out of order");
                }
                lo = new int[] {lo[0], hi[0]};
            }
            set = union(set, lo);
        }
        int[] out = minus(negated ? minus(ANY, set) : set, minus(new int[] {0, MAX_CP}, ANY));
        if (out.length == 0) {
            throw refuse("the class at offset " + open + " matches no character");
        }
        return out;
    }

    private int[] classAtom() {
        if (at("\\")) {
            return escape(true);
        }
        int cp = src.codePointAt(pos);
        pos += Character.charCount(cp);
        return new int[] {cp, cp};
    }

    /** Parses an escape from its backslash. */
    private int[] escape(boolean inClass) {
        int s = pos;
        pos++;
        if (pos >= src.length()) {
            throw refuse("the pattern ends with a lone backslash");
        }
        char c = src.charAt(pos++);
        return switch (c) {
            case 'd' -> DIGIT;
            case 'D' -> minus(ANY, DIGIT);
            case 'w' -> WORD;
            case 'W' -> minus(ANY, WORD);
            case 's' -> SPACE;
            case 'S' -> minus(ANY, SPACE);
            case 't' -> point('\t');
            case 'n' -> point('\n');
            case 'r' -> point('\r');
            case 'f' -> point('\f');
            case 'v' -> point(0x0B);
            case 'b' -> {
                if (inClass) {
                    yield point(0x08);
                }
                throw refuse("a word boundary \\b cannot be enforced");
            }
            case 'B' -> throw refuse("a word boundary \\B cannot be enforced");
            case 'p', 'P' -> throw refuse("a unicode property escape \\" + c + "{...} cannot be enforced");
            case 'k' -> throw refuse("a named backreference \\k<...> cannot be enforced");
            case 'x' -> point(hex(2, s));
            case 'u' -> {
                if (at("{")) {
                    throw refuse("the escape \\u{...} cannot be enforced (write \\uXXXX)");
                }
                int u = hex(4, s);
                if (Character.isHighSurrogate((char) u) && at("\\u")) {
                    int save = pos;
                    pos += 2;
                    int low = hex(4, s);
                    if (Character.isLowSurrogate((char) low)) {
                        yield point(Character.toCodePoint((char) u, (char) low));
                    }
                    pos = save;
                }
                if (u >= 0xD800 && u <= 0xDFFF) {
                    throw refuse("the lone surrogate " + src.substring(s, pos) + " cannot be enforced");
                }
                yield point(u);
            }
            default -> {
                if (c >= '1' && c <= '9') {
                    throw refuse("a backreference \\" + c + " cannot be enforced");
                }
                if (c < 0x80 && c > 0x20 && !Character.isLetterOrDigit(c)) {
                    yield point(c);
                }
                throw refuse("the escape \\" + c + " at offset " + s + " cannot be enforced");
            }
        };
    }

    private int hex(int digits, int start) {
        if (pos + digits > src.length() || !src.substring(pos, pos + digits).matches("[0-9a-fA-F]+")) {
            throw refuse("a malformed escape at offset " + start);
        }
        int v = Integer.parseInt(src.substring(pos, pos + digits), 16);
        pos += digits;
        return v;
    }

    private static int[] point(int cp) {
        return new int[] {cp, cp};
    }

    private static Node single(int cp) {
        return new Chars(point(cp));
    }

    private static boolean isSingle(int[] set) {
        return set.length == 2 && set[0] == set[1];
    }

    private static Node seq(List<Node> items) {
        return items.size() == 1 ? items.get(0) : new Seq(List.copyOf(items));
    }

    // --- sets of code points -------------------------------------------------------------------

    static int[] norm(int[] pairs) {
        int n = pairs.length / 2;
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Integer.compare(pairs[2 * a], pairs[2 * b]));
        List<int[]> out = new ArrayList<>();
        for (int i : order) {
            int lo = pairs[2 * i];
            int hi = pairs[2 * i + 1];
            if (!out.isEmpty() && lo <= out.getLast()[1] + 1) {
                out.getLast()[1] = Math.max(out.getLast()[1], hi);
            } else {
                out.add(new int[] {lo, hi});
            }
        }
        int[] r = new int[out.size() * 2];
        for (int i = 0; i < out.size(); i++) {
            r[2 * i] = out.get(i)[0];
            r[2 * i + 1] = out.get(i)[1];
        }
        return r;
    }

    static int[] union(int[] a, int[] b) {
        int[] all = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return norm(all);
    }

    /** The code points of {@code a} not in {@code b}. */
    static int[] minus(int[] a, int[] b) {
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < a.length; i += 2) {
            int lo = a[i];
            int hi = a[i + 1];
            for (int j = 0; j < b.length && lo <= hi; j += 2) {
                if (b[j + 1] < lo || b[j] > hi) {
                    continue;
                }
                if (b[j] > lo) {
                    out.add(lo);
                    out.add(b[j] - 1);
                }
                lo = b[j + 1] + 1;
            }
            if (lo <= hi) {
                out.add(lo);
                out.add(hi);
            }
        }
        return norm(out.stream().mapToInt(Integer::intValue).toArray());
    }

    static boolean contains(int[] set, int cp) {
        for (int i = 0; i < set.length; i += 2) {
            if (cp >= set[i] && cp <= set[i + 1]) {
                return true;
            }
        }
        return false;
    }

    // --- GBNF ----------------------------------------------------------------------------------

    /** Characters JSON writes escaped: the quote, the backslash, controls (and DEL, which the string rules escape too). */
    private static final int[] ESCAPED = norm(new int[] {0, 0x1F, '"', '"', '\\', '\\', 0x7F, 0x7F});

    /**
     * GBNF for the JSON string (quotes included) whose decoded value the pattern matches.
     * {@code rule} adds an auxiliary rule (a proposed name and its body) and returns its name;
     * {@code ch} is the rule of one JSON string character.
     */
    static String gbnf(List<Branch> branches, String name, BinaryOperator<String> rule, String ch) {
        List<String> alts = new ArrayList<>();
        Emitter e = new Emitter(name, rule);
        for (Branch b : branches) {
            String body = e.emit(b.node());
            alts.add((b.start() ? "" : ch + "* ") + body + (b.end() ? "" : " " + ch + "*"));
        }
        return "\"\\\"\" " + (alts.size() == 1 ? alts.get(0) : "( " + String.join(" | ", alts) + " )") + " \"\\\"\"";
    }

    /** The most alternatives alive at once: the widths of nested alternations multiplied. */
    static long alternatives(List<Branch> branches) {
        long peak = 1;
        for (Branch b : branches) {
            peak = Math.max(peak, alternatives(b.node()));
        }
        return branches.size() * peak;
    }

    private static long alternatives(Node n) {
        return switch (n) {
            case Chars c -> 1;
            case Seq s -> s.items().stream().mapToLong(RegexGrammar::alternatives).max().orElse(1);
            case Alt a -> a.alternatives().size() * a.alternatives().stream().mapToLong(RegexGrammar::alternatives).max().orElse(1);
            case Repeat r -> alternatives(r.body());
        };
    }

    private record Emitter(String name, BinaryOperator<String> rule) {
        String emit(Node n) {
            return switch (n) {
                case Chars c -> chars(c.ranges());
                case Seq s -> sequence(s.items());
                case Alt a -> "( " + String.join(" | ", a.alternatives().stream().map(this::emit).toList()) + " )";
                case Repeat r -> {
                    String body = emit(r.body());
                    if (body.equals("\"\"") || r.max() == 0) {
                        yield "\"\""; // nothing repeated is nothing (llama.cpp refuses a quantifier after an empty literal)
                    }
                    // a body with groups or repetitions of its own is a rule: llama.cpp multiplies the rules a
                    // repeated group generates by the repetition and refuses more than 2000
                    boolean atomic = r.body() instanceof Chars c && !body.startsWith("(")
                            || r.body() instanceof Seq s && !s.items().isEmpty() && s.items().stream().allMatch(i -> i instanceof Chars c && isSingle(c.ranges()));
                    String ref = atomic ? body : rule.apply(name + "-re", body);
                    yield ref + JsonSchemaGrammar.repeat(r.min(), r.max());
                }
            };
        }

        private String sequence(List<Node> items) {
            List<String> parts = new ArrayList<>();
            StringBuilder text = new StringBuilder();
            for (Node i : items) {
                if (i instanceof Chars c && isSingle(c.ranges()) && !needsHex(c.ranges()[0])) {
                    text.append(json(c.ranges()[0]));
                    continue;
                }
                if (!text.isEmpty()) {
                    parts.add(JsonSchemaGrammar.literal(text.toString()));
                    text.setLength(0);
                }
                parts.add(emit(i));
            }
            if (!text.isEmpty()) {
                parts.add(JsonSchemaGrammar.literal(text.toString()));
            }
            return parts.isEmpty() ? "\"\"" : parts.size() == 1 ? parts.get(0) : "( " + String.join(" ", parts) + " )";
        }
    }

    /** GBNF for one character of the set, as JSON writes it inside a string. */
    static String chars(int[] set) {
        if (isSingle(set)) {
            return escaped(set[0]);
        }
        List<String> alts = new ArrayList<>();
        int[] plain = minus(set, ESCAPED);
        if (plain.length > 0) {
            StringBuilder sb = new StringBuilder("[");
            for (int i = 0; i < plain.length; i += 2) {
                sb.append(classChar(plain[i]));
                if (plain[i + 1] != plain[i]) {
                    sb.append('-').append(classChar(plain[i + 1]));
                }
            }
            alts.add(sb.append(']').toString());
        }
        int[] esc = minus(set, plain);
        for (int i = 0; i < esc.length; i += 2) {
            for (int cp = esc[i]; cp <= esc[i + 1]; cp++) {
                alts.add(escaped(cp));
            }
        }
        return alts.size() == 1 ? alts.get(0) : "( " + String.join(" | ", alts) + " )";
    }

    /** Whether JSON writes the code point as a hex escape (a control without a short escape, or DEL). */
    private static boolean needsHex(int cp) {
        return (cp < 0x20 || cp == 0x7F) && "\b\f\n\r\t".indexOf(cp) < 0;
    }

    /** GBNF for one code point as JSON writes it; a hex escape with its digits in either case. */
    private static String escaped(int cp) {
        if (!needsHex(cp)) {
            return JsonSchemaGrammar.literal(json(cp));
        }
        String hex = String.format("%04x", cp);
        char last = hex.charAt(3);
        return Character.isLetter(last) ? "( " + JsonSchemaGrammar.literal("\\u" + hex.substring(0, 3)) + " [" + last
                + Character.toUpperCase(last) + "] )" : JsonSchemaGrammar.literal("\\u" + hex);
    }

    /** A code point as JSON writes it in a string. */
    static String json(int cp) {
        return switch (cp) {
            case '"' -> "\\\"";
            case '\\' -> "\\\\";
            case '\b' -> "\\b";
            case '\f' -> "\\f";
            case '\n' -> "\\n";
            case '\r' -> "\\r";
            case '\t' -> "\\t";
            default -> cp < 0x20 || cp == 0x7F ? String.format("\\u%04x", cp) : new String(Character.toChars(cp));
        };
    }

    /** A code point inside a GBNF class: letters and digits as they are, anything else as a hex escape. */
    private static String classChar(int cp) {
        if (cp < 0x80 && Character.isLetterOrDigit(cp)) {
            return String.valueOf((char) cp);
        }
        return cp <= 0xFF ? String.format("\\x%02X", cp) : cp <= 0xFFFF ? String.format("\\u%04X", cp) : String.format("\\U%08X", cp);
    }

    // --- inclusion in another pattern (format, lengths) ----------------------------------------

    /** Most NFA states or explored state pairs of an inclusion check. */
    static final int MAX_STATES = 20_000;

    /** A nondeterministic automaton over code points: per state, its character edges and its empty edges. */
    private static final class Nfa {
        final List<List<int[]>> sets = new ArrayList<>();
        final List<List<Integer>> targets = new ArrayList<>();
        final List<List<Integer>> empty = new ArrayList<>();
        final Set<Integer> accept = new HashSet<>();

        int state() {
            if (sets.size() >= MAX_STATES) {
                throw new TooLarge();
            }
            sets.add(new ArrayList<>());
            targets.add(new ArrayList<>());
            empty.add(new ArrayList<>());
            return sets.size() - 1;
        }

        void edge(int from, int[] set, int to) {
            sets.get(from).add(set);
            targets.get(from).add(to);
        }

        int build(Node n, int from) {
            switch (n) {
                case Chars c -> {
                    int s = state();
                    edge(from, c.ranges(), s);
                    return s;
                }
                case Seq s -> {
                    int at = from;
                    for (Node i : s.items()) {
                        at = build(i, at);
                    }
                    return at;
                }
                case Alt a -> {
                    int end = state();
                    for (Node i : a.alternatives()) {
                        int start = state();
                        empty.get(from).add(start);
                        empty.get(build(i, start)).add(end);
                    }
                    return end;
                }
                case Repeat r -> {
                    int at = from;
                    for (int i = 0; i < r.min(); i++) {
                        int next = state();
                        empty.get(at).add(next);
                        at = build(r.body(), next);
                    }
                    int end = state();
                    empty.get(at).add(end);
                    if (r.max() < 0) {
                        int loop = state();
                        empty.get(at).add(loop);
                        empty.get(build(r.body(), loop)).add(loop);
                        empty.get(loop).add(end);
                    } else {
                        for (int i = r.min(); i < r.max(); i++) {
                            int next = state();
                            empty.get(at).add(next);
                            at = build(r.body(), next);
                            empty.get(at).add(end);
                        }
                    }
                    return end;
                }
            }
        }

        static Nfa of(List<Branch> branches) {
            Nfa a = new Nfa();
            int start = a.state();
            for (Branch b : branches) {
                int at = a.state();
                a.empty.get(start).add(at);
                if (!b.start()) {
                    a.edge(at, ANY, at);
                }
                int s = a.state();
                a.empty.get(at).add(s);
                int end = a.state();
                a.empty.get(a.build(b.node(), s)).add(end);
                if (!b.end()) {
                    a.edge(end, ANY, end);
                }
                a.accept.add(end);
            }
            return a;
        }

        TreeSet<Integer> closure(Set<Integer> states) {
            TreeSet<Integer> out = new TreeSet<>(states);
            ArrayDeque<Integer> todo = new ArrayDeque<>(states);
            while (!todo.isEmpty()) {
                for (int t : empty.get(todo.pop())) {
                    if (out.add(t)) {
                        todo.push(t);
                    }
                }
            }
            return out;
        }

        Set<Integer> step(Set<Integer> states, int cp) {
            Set<Integer> out = new HashSet<>();
            for (int s : states) {
                for (int i = 0; i < sets.get(s).size(); i++) {
                    if (contains(sets.get(s).get(i), cp)) {
                        out.add(targets.get(s).get(i));
                    }
                }
            }
            return closure(out);
        }

        /**
         * The code points where the edges out of these states start or stop applying: each stretch
         * between two of them leads everywhere the same, so one character of each stands for all.
         */
        TreeSet<Integer> bounds(Set<Integer> states) {
            TreeSet<Integer> out = new TreeSet<>();
            for (int s : states) {
                for (int[] set : sets.get(s)) {
                    for (int i = 0; i < set.length; i += 2) {
                        out.add(set[i]);
                        out.add(set[i + 1] + 1);
                    }
                }
            }
            return out;
        }

        boolean accepts(Set<Integer> states) {
            return states.stream().anyMatch(accept::contains);
        }
    }

    /** A code point a string can hold: in range, and not a surrogate. */
    private static boolean isCodePoint(int cp) {
        return cp <= MAX_CP && (cp < 0xD800 || cp > 0xDFFF);
    }

    private static final class TooLarge extends RuntimeException {
        private static final long serialVersionUID = 1L;

        TooLarge() {
            super(null, null, false, false);
        }
    }

    /**
     * Whether every string the pattern matches is matched by {@code outer} too: an example of one
     * that is not ({@code null} when there is none), or throws TooLarge past {@link #MAX_STATES}.
     */
    static String outside(List<Branch> pattern, List<Branch> outer) {
        Nfa p = Nfa.of(pattern);
        Nfa o = Nfa.of(outer);
        record Pair(Set<Integer> p, Set<Integer> o, String text) {}
        ArrayDeque<Pair> todo = new ArrayDeque<>();
        Set<List<Set<Integer>>> seen = new HashSet<>();
        Pair first = new Pair(p.closure(Set.of(0)), o.closure(Set.of(0)), "");
        todo.add(first);
        seen.add(List.of(first.p(), first.o()));
        while (!todo.isEmpty()) {
            Pair at = todo.poll();
            if (p.accepts(at.p()) && !o.accepts(at.o())) {
                return at.text();
            }
            TreeSet<Integer> bounds = p.bounds(at.p());
            bounds.addAll(o.bounds(at.o()));
            for (int cp : bounds) {
                if (!isCodePoint(cp)) {
                    continue;
                }
                Set<Integer> np = p.step(at.p(), cp);
                if (np.isEmpty()) {
                    continue;
                }
                Set<Integer> no = o.step(at.o(), cp);
                if (seen.add(List.of(np, no))) {
                    if (seen.size() > MAX_STATES) {
                        throw new TooLarge();
                    }
                    todo.add(new Pair(np, no, at.text() + new String(Character.toChars(cp))));
                }
            }
        }
        return null;
    }

    /**
     * Most places in the pattern that may be matching the next character at once. llama.cpp's
     * grammar engine keeps a stack for each way the text so far can be matched, and on every step
     * checks each candidate token against each stack, on the scheduler thread that serves every
     * request: nested or overlapping variable repetitions ({@code (a+)+}, {@code (.{0,2000}){0,2000}})
     * keep thousands alive, and the latter held that thread in one {@code llama_sampler_apply} for
     * more than ten minutes. The alternatives cap bounds the same cost for {@code anyOf}.
     */
    static final int MAX_ALIVE = 64;
    /** Most sets of live places {@link #ambiguity} explores before it gives up and refuses. */
    static final int MAX_LIVE_SETS = 5_000;

    /**
     * Refuses a pattern that can keep more than {@link #MAX_ALIVE} places alive at once, found by
     * following every set of places the pattern's automaton can reach (a pattern whose sets are too
     * many to follow is refused too); else returns the most places alive at once, which multiply the
     * alternatives around the pattern: 128 anyOf alternatives of {@code a{1,60}}, each within the
     * limit, kept 7800 places alive after fifty a's, and accepting a token took 115 ms. A pattern with
     * no more places than the limit passes, with at most that many, when its sets are too many to
     * follow, such as {@code (a|b)*a(a|b){12}}, whose sets are thousands but never hold more than 27 places.
     */
    static long ambiguity(List<Branch> branches, String ptr) {
        Nfa a;
        try {
            a = Nfa.of(branches);
        } catch (TooLarge e) {
            throw new SchemaException(ptr, "pattern", "'pattern' is too large to enforce (its repetitions expand to more than "
                    + MAX_STATES + " places)");
        }
        long places = a.sets.stream().filter(edges -> !edges.isEmpty()).count();
        Set<Set<Integer>> seen = new HashSet<>();
        ArrayDeque<Set<Integer>> todo = new ArrayDeque<>();
        Set<Integer> first = a.closure(Set.of(0));
        seen.add(first);
        todo.add(first);
        long peak = 0;
        while (!todo.isEmpty()) {
            Set<Integer> at = todo.poll();
            long alive = at.stream().filter(st -> !a.sets.get(st).isEmpty()).count();
            peak = Math.max(peak, alive);
            if (alive > MAX_ALIVE) {
                throw new SchemaException(ptr, "pattern", "'pattern' cannot be enforced: it can be matching the same text in more than "
                        + MAX_ALIVE + " ways at once (nested or overlapping repetitions, such as (a+)+ or (.{0,9}){0,9}), and the "
                        + "grammar engine follows every one of them at each token");
            }
            for (int cp : a.bounds(at)) {
                if (!isCodePoint(cp)) {
                    continue;
                }
                Set<Integer> next = a.step(at, cp);
                if (!next.isEmpty() && seen.add(next)) {
                    if (seen.size() > MAX_LIVE_SETS) {
                        if (places <= MAX_ALIVE) {
                            return places; // never more alive than there are places
                        }
                        throw new SchemaException(ptr, "pattern", "'pattern' is too complex to check that the grammar engine can follow "
                                + "it (more than " + MAX_LIVE_SETS + " states)");
                    }
                    todo.add(next);
                }
            }
        }
        return Math.max(peak, 1);
    }

    /** The patterns of the formats as the grammar writes them (JsonSchemaGrammar's primitives). */
    static final Map<String, String> FORMATS = Map.of(
            "date", "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
            "time", "^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{3})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$",
            "date-time", "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{3})?"
                    + "(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$",
            "uuid", "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$");

    /**
     * Refuses a pattern beside a constraint (a format, string lengths) unless every string it
     * matches meets the constraint too: the grammar then enforces both by enforcing the pattern.
     */
    static void within(List<Branch> pattern, List<Branch> outer, String what, String ptr) {
        String example;
        try {
            example = outside(pattern, outer);
        } catch (TooLarge e) {
            throw new SchemaException(ptr, "pattern", "'pattern' together with " + what + " cannot be enforced: the pattern is too "
                    + "large to check that every string it matches meets " + what);
        }
        if (example != null) {
            throw new SchemaException(ptr, "pattern", "'pattern' together with " + what + " cannot be enforced: the pattern matches "
                    + "strings that do not meet " + what + ", such as " + SchemaKeywords.abbreviate(jsonQuote(example)));
        }
    }

    /** The pattern of strings of min..max code points (max -1: unbounded). */
    static List<Branch> lengths(int min, int max) {
        return List.of(new Branch(new Repeat(new Chars(ANY), min, max), true, true));
    }
}
