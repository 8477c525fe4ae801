package ai.llmref.server.structured;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;

/**
 * Converts a JSON schema (the subset of {@link SchemaKeywords}) into a GBNF grammar whose every
 * document is valid under the schema; a schema it cannot enforce exactly is a
 * {@link SchemaException}, never a looser grammar.
 *
 * <p>The documents follow the layout of llama.cpp's converter, so the two accept the same
 * documents for the same schema (JsonSchemaGrammarReferenceTest checks it): whitespace after
 * {@code {}, {@code [}, {@code :} and {@code ,} and before {@code }} and {@code ]} (the
 * {@code space} rule), none before a comma; object properties in the order the schema declares
 * them, required ones first; without {@code additionalProperties} an object with
 * {@code properties} has no other keys (a valid subset), {@code true} or a schema admits further
 * keys after the declared ones; integers of at most 16 digits. A string escape never encodes a
 * UTF-16 surrogate (so lengths in code points are what the grammar counts, and no lone
 * surrogate is produced).
 */
public final class JsonSchemaGrammar {
    private static final ObjectMapper MAPPER = new ObjectMapper();
    /** Largest magnitude of an integer the grammar writes: 16 digits, as llama.cpp. */
    static final long MAX_INT = 9_999_999_999_999_999L;
    /** Most digits after the point of a number the grammar writes (the decimal-part rule), as llama.cpp. */
    private static final int FRACTION_DIGITS = 16;
    private static final int MAX_RULES = 5_000;
    /**
     * Largest repetition count llama.cpp's grammar parser keeps (its MAX_REPETITION_THRESHOLD): it
     * refuses a larger minimum and silently makes a larger maximum unbounded.
     */
    static final int MAX_REPEAT = 2_000;
    /**
     * Most rule copies a grammar's bounded repetitions may expand into. llama.cpp's grammar parser
     * writes {@code x{m,n}} out as some n rules, each some 200 bytes, on the scheduler thread that
     * every request shares: 2400 properties of maxLength 2000 (a 135 KB body) took 3.6 s and 1 GB
     * there, per choice. 50000 is some 10 MB and a few tens of milliseconds.
     */
    public static final int MAX_EXPANSION = 50_000;

    private static final Map<String, String> PRIMITIVES = Map.ofEntries(
            Map.entry("space", "| \" \" | \"\\n\"{1,2} [ \\t]{0,20}"),
            Map.entry("boolean", "(\"true\" | \"false\")"),
            Map.entry("null", "\"null\""),
            Map.entry("decimal-part", "[0-9]{1,16}"),
            Map.entry("integral-part", "[0] | [1-9] [0-9]{0,15}"),
            Map.entry("number", "(\"-\"? integral-part) (\".\" decimal-part)? ([eE] [-+]? integral-part)?"),
            Map.entry("zero-decimal-part", "[0]{1,16}"),
            Map.entry("nonzero-decimal-part", nonzeroDigits(16)),
            Map.entry("integer", "(\"-\"? integral-part)"),
            Map.entry("value", "object | array | string | number | boolean | null"),
            Map.entry("object", "\"{\" space ( string \":\" space value (\",\" space string \":\" space value)* )? space \"}\""),
            Map.entry("array", "\"[\" space ( value (\",\" space value)* )? space \"]\""),
            Map.entry("char", "[^\"\\\\\\x7F\\x00-\\x1F] | [\\\\] ([\"\\\\bfnrt] | \"u\" ([0-9a-cA-CeEfF] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2}))"),
            Map.entry("string", "\"\\\"\" char* \"\\\"\""),
            Map.entry("uuid", "\"\\\"\" [0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{12} \"\\\"\""),
            Map.entry("date", "[0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [1-2] [0-9] | \"3\" [0-1] )"),
            Map.entry("time", "([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{3} )? ( \"Z\" | ( \"+\" | \"-\" ) ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )"),
            Map.entry("date-time", "date \"T\" time"),
            Map.entry("date-string", "\"\\\"\" date \"\\\"\""),
            Map.entry("time-string", "\"\\\"\" time \"\\\"\""),
            Map.entry("date-time-string", "\"\\\"\" date-time \"\\\"\""));

    private static final Map<String, List<String>> DEPENDS = Map.ofEntries(
            Map.entry("number", List.of("integral-part", "decimal-part")),
            Map.entry("integer", List.of("integral-part")),
            Map.entry("value", List.of("object", "array", "string", "number", "boolean", "null")),
            Map.entry("object", List.of("string", "value")),
            Map.entry("array", List.of("value")),
            Map.entry("string", List.of("char")),
            Map.entry("date-time", List.of("date", "time")),
            Map.entry("date-string", List.of("date")),
            Map.entry("time-string", List.of("time")),
            Map.entry("date-time-string", List.of("date-time")));

    private final JsonNode root;
    private final Map<String, String> rules = new LinkedHashMap<>();
    private final Map<String, String> refRules = new HashMap<>();
    private final Set<String> reserved = new HashSet<>();
    /**
     * For each reference, the references its rule may start with (reached through other references
     * and anyOf/oneOf/allOf, before any text of its own), and where it was first met: a cycle there
     * is a left recursion, which llama.cpp's grammar engine refuses.
     */
    private final Map<String, Set<String>> leftRefs = new LinkedHashMap<>();
    private final Map<String, String> refPointers = new HashMap<>();
    /** The references met so far at the start of the reference being visited; null inside an object or array. */
    private Set<String> leftEdge = new HashSet<>();
    /**
     * Most alternatives of anyOf/oneOf nested in one another (their widths multiplied). llama.cpp's
     * grammar sampler checks every candidate token against every alternative still alive, on the
     * scheduler thread: 1500 object alternatives cost 0.4 s a token with a 512-token vocabulary.
     */
    public static final int MAX_ALTERNATIVES = 128;
    /** The product of the widths of the anyOf/oneOf around the schema being visited. */
    private long alternatives = 1;
    /** The largest such product reached so far inside the reference being visited. */
    private long peakAlternatives = 1;
    /** For each reference visited, the factor its own anyOf/oneOf multiply the product by. */
    private final Map<String, Long> refAlternatives = new HashMap<>();
    /** Indexes of {@link #bracketPaths}'s figures and {@link #inside}'s: past a '{', past a '['. */
    private static final int OBJECT = 0;
    private static final int ARRAY = 1;
    /** Above any product that is refused: sums of alternatives stop growing there. */
    private static final long PATHS_CAP = (long) MAX_ALTERNATIVES * MAX_ALTERNATIVES;
    /** The schema of the value being visited, where the alternatives that begin with a bracket are counted; null between values. */
    private JsonNode value;
    /** {@link #bracketPaths} of the schemas met. */
    private final Map<JsonNode, long[]> paths = new IdentityHashMap<>();
    /**
     * For the reference being visited, past an opening bracket its schema begins with ({@link #OBJECT},
     * {@link #ARRAY}): the most alternatives alive at once for each alternative of the value that begins
     * with that bracket. Used where more alternatives begin with the bracket, the reference multiplies it.
     */
    private long[] inside = {1, 1};
    /** That figure for each reference visited. */
    private final Map<String, long[]> refInside = new HashMap<>();
    /** Uses of a reference inside its own schema (a recursion), checked once the reference's figure is known. */
    private final List<RecursiveUse> recursiveUses = new ArrayList<>();

    private record RecursiveUse(String ref, long[] paths, String ptr) {}

    /** Begins the names of rules not named after the schema (references, long keys): a tool's own, so that two tools' same-named definitions stay apart. */
    private String refPrefix = "";

    private JsonSchemaGrammar(JsonNode root) {
        this.root = root;
    }

    /**
     * The GBNF grammar (start rule {@code root}) of the documents valid under the schema.
     *
     * @throws SchemaException when the schema uses a feature the grammar cannot enforce, or is malformed
     */
    public static String convert(JsonNode schema) {
        JsonSchemaGrammar c = new JsonSchemaGrammar(schema);
        c.rules.put("space", PRIMITIVES.get("space"));
        String top = c.visit(schema, "", "");
        c.refuseLeftRecursion();
        if (!top.equals("root")) {
            c.rules.put("root", top);
        }
        StringBuilder sb = new StringBuilder();
        sb.append("root ::= ").append(c.rules.get("root")).append('\n');
        c.rules.forEach((k, v) -> {
            if (!k.equals("root")) {
                sb.append(k).append(" ::= ").append(v).append('\n');
            }
        });
        String grammar = sb.toString();
        checkExpansion(grammar);
        return grammar;
    }

    /**
     * Refuses a grammar whose bounded repetitions ({@code {m}}, {@code {m,}}, {@code {m,n}}: what
     * minLength/maxLength and minItems/maxItems become) add up to more than {@link #MAX_EXPANSION}
     * copies, which llama.cpp would expand on the scheduler thread (time and memory in proportion).
     */
    public static void checkExpansion(String gbnf) {
        long total = 0;
        int i = 0;
        int n = gbnf.length();
        while (i < n) {
            char c = gbnf.charAt(i);
            if (c == '"' || c == '[') {
                char close = c == '"' ? '"' : ']';
                i++;
                while (i < n && gbnf.charAt(i) != close) {
                    i += gbnf.charAt(i) == '\\' ? 2 : 1;
                }
                i++;
            } else if (c == '{') {
                int end = gbnf.indexOf('}', i);
                String[] bounds = gbnf.substring(i + 1, end).split(",", -1);
                String last = bounds[bounds.length - 1].trim();
                // x{m,} is m copies and a star; x{m} and x{m,n} are about n rules
                total += last.isEmpty() ? Long.parseLong(bounds[0].trim()) + 1 : Long.parseLong(last);
                if (total > MAX_EXPANSION) {
                    throw new SchemaException("", null, "the schema is too large: its length and item bounds (minLength, maxLength, "
                            + "minItems, maxItems) and pattern repetitions add up to more than " + MAX_EXPANSION + " repetitions in all");
                }
                i = end + 1;
            } else {
                i++;
            }
        }
    }

    /**
     * The rules of a schema for embedding in a larger grammar: the rule named {@code name} matches
     * the schema's documents; the others are its sub-rules (prefixed with {@code name}) and the
     * shared primitives ({@code space}, {@code string}, ...), which are the same in every schema.
     */
    public static Map<String, String> rules(JsonNode schema, String name) {
        JsonSchemaGrammar c = new JsonSchemaGrammar(schema);
        c.refPrefix = name + "-";
        c.rules.put("space", PRIMITIVES.get("space"));
        String top = c.visit(schema, name, "");
        c.refuseLeftRecursion();
        if (!top.equals(name)) {
            c.rules.put(name, top);
        }
        return c.rules;
    }

    /**
     * The rules of some subschemas of one schema, each under its own name (keys of {@code named},
     * with their JSON pointers in {@code pointers}): their references resolve against
     * {@code root}, and one converter makes them all, so a definition they share is one rule (named
     * within {@code scope}).
     */
    static Map<String, String> rules(JsonNode root, String scope, Map<String, JsonNode> named, Map<String, String> pointers) {
        JsonSchemaGrammar c = new JsonSchemaGrammar(root);
        c.refPrefix = scope + "-";
        c.rules.put("space", PRIMITIVES.get("space"));
        named.forEach((name, sub) -> {
            c.reserved.add(name);
            String top = c.visit(sub, name, pointers.get(name));
            if (!top.equals(name)) {
                c.rules.put(name, top);
            }
        });
        c.refuseLeftRecursion();
        return c.rules;
    }

    // --- visiting ------------------------------------------------------------------------------

    /** Adds the rule(s) for a schema and returns the name of the rule that matches it. */
    private String visit(JsonNode schema, String name, String ptr) {
        if (value != null) {
            return visitSchema(schema, name, ptr);
        }
        value = schema; // a value begins: past its first bracket, the alternatives are counted over this schema
        try {
            return visitSchema(schema, name, ptr);
        } finally {
            value = null;
        }
    }

    private String visitSchema(JsonNode schema, String name, String ptr) {
        String ruleName = name.isEmpty() ? "root" : name;
        if (schema.isBoolean()) {
            if (!schema.booleanValue()) {
                throw new SchemaException(ptr, null, "the schema 'false' admits no value");
            }
            return rule(ruleName, primitive("value"));
        }
        if (!schema.isObject()) {
            throw new SchemaException(ptr, null, "a schema must be an object or a boolean");
        }
        SchemaKeywords.check(schema, ptr);
        if (schema.has("$id") && !ptr.isEmpty()) {
            throw new SchemaException(ptr + "/$id", "$id", "'$id' is supported only at the root of the schema");
        }
        if (schema.has("$ref")) {
            only(schema, ptr, "$ref", Set.of("$ref"));
            JsonNode ref = schema.get("$ref");
            if (!ref.isTextual()) {
                throw new SchemaException(ptr + "/$ref", "$ref", "'$ref' must be a string");
            }
            return rule(ruleName, ref(ref.textValue(), ptr));
        }
        if (schema.has("const") || schema.has("enum")) {
            return rule(ruleName, literals(schema, ruleName, ptr));
        }
        for (String comb : List.of("anyOf", "oneOf")) {
            if (schema.has(comb)) {
                only(schema, ptr, comb, Set.of(comb));
                JsonNode alts = nonEmptyArray(schema, comb, ptr);
                long outer = alternatives;
                alternatives = checkAlternatives(outer * alts.size(), ptr + "/" + comb, comb);
                List<String> names = new ArrayList<>();
                try {
                    for (int i = 0; i < alts.size(); i++) {
                        names.add(visit(alts.get(i), sub(name, comb + "-" + i), ptr + "/" + comb + "/" + i));
                    }
                } finally {
                    alternatives = outer;
                }
                return rule(ruleName, String.join(" | ", names));
            }
        }
        if (schema.has("allOf")) {
            only(schema, ptr, "allOf", Set.of("allOf"));
            JsonNode all = nonEmptyArray(schema, "allOf", ptr);
            if (all.size() != 1) {
                throw new SchemaException(ptr + "/allOf", "allOf", "'allOf' with more than one schema cannot be enforced");
            }
            return rule(ruleName, visit(all.get(0), sub(name, "allOf-0"), ptr + "/allOf/0"));
        }
        List<String> types = SchemaKeywords.types(schema, ptr);
        if (types.isEmpty()) {
            return rule(ruleName, primitive("value"));
        }
        if (types.size() == 1) {
            return typed(schema, types.get(0), ruleName, name, ptr);
        }
        List<String> alts = new ArrayList<>();
        for (String t : types) {
            alts.add(typed(schema, t, sub(name, t), sub(name, t), ptr));
        }
        return rule(ruleName, String.join(" | ", alts));
    }

    private String typed(JsonNode schema, String type, String ruleName, String name, String ptr) {
        return switch (type) {
            case "object" -> rule(ruleName, afterText(OBJECT, () -> object(schema, name, ptr)));
            case "array" -> rule(ruleName, afterText(ARRAY, () -> array(schema, name, ptr)));
            case "string" -> rule(ruleName, string(schema, ptr));
            case "integer" -> rule(ruleName, integer(schema, ptr));
            case "number" -> rule(ruleName, number(schema, ptr));
            case "boolean" -> rule(ruleName, primitive("boolean"));
            case "null" -> rule(ruleName, primitive("null"));
            default -> throw new SchemaException(ptr + "/type", "type", "unknown type '" + type + "'");
        };
    }

    private String ref(String ref, String ptr) {
        if (leftEdge != null) {
            leftEdge.add(ref);
        }
        String known = refRules.get(ref);
        if (known != null) {
            Long factor = refAlternatives.get(ref); // null: a recursive use, inside an object or array
            if (factor != null) {
                checkAlternatives(alternatives * factor, ptr + "/$ref", "$ref");
            }
            long[] in = refInside.get(ref);
            if (in == null) {
                recursiveUses.add(new RecursiveUse(ref, bracketPaths(value), ptr + "/$ref"));
            } else {
                checkInside(in, bracketPaths(value), ptr + "/$ref");
                merge(in);
            }
            return known;
        }
        JsonNode target = SchemaKeywords.resolve(root, ref, ptr);
        String name = uniqueName(refPrefix + "ref" + sanitize(ref.substring(1)));
        refRules.put(ref, name);
        refPointers.put(ref, ptr + "/$ref");
        rules.put(name, "\"\""); // placeholder: a recursive reference finds the name while the target is visited
        Set<String> outer = leftEdge;
        leftEdge = new LinkedHashSet<>();
        leftRefs.put(ref, leftEdge);
        long outerPeak = peakAlternatives;
        long entry = alternatives;
        peakAlternatives = entry;
        long[] outerInside = inside;
        inside = new long[] {1, 1};
        try {
            String body = visit(target, name + "-body", ref.substring(1));
            rules.put(name, body);
            refAlternatives.put(ref, peakAlternatives / entry);
            refInside.put(ref, inside);
            for (java.util.Iterator<RecursiveUse> it = recursiveUses.iterator(); it.hasNext(); ) {
                RecursiveUse use = it.next();
                if (use.ref().equals(ref)) {
                    checkInside(inside, use.paths(), use.ptr());
                    it.remove();
                }
            }
        } finally {
            leftEdge = outer;
            peakAlternatives = Math.max(outerPeak, peakAlternatives);
            long[] own = inside;
            inside = outerInside;
            merge(own);
        }
        return name;
    }

    /** Takes a reference's figure for past its brackets into that of the reference being visited (it begins with it). */
    private void merge(long[] in) {
        inside[OBJECT] = Math.max(inside[OBJECT], in[OBJECT]);
        inside[ARRAY] = Math.max(inside[ARRAY], in[ARRAY]);
    }

    /** Refuses a reference used where {@code paths} alternatives begin with its bracket, if they make too many alternatives past it. */
    private static void checkInside(long[] in, long[] paths, String ptr) {
        for (int b : new int[] {OBJECT, ARRAY}) {
            if (in[b] * paths[b] > MAX_ALTERNATIVES) {
                throw new SchemaException(ptr, "$ref", "'$ref' makes more than " + MAX_ALTERNATIVES + " alternatives that the grammar "
                        + "would follow at once: " + paths[b] + " alternatives here begin with its " + (b == OBJECT ? "object" : "array")
                        + ", which holds " + in[b] + " at once");
            }
        }
    }

    /**
     * How many ways through the schema, before any text, begin with '{' ([{@link #OBJECT}]) and with
     * '[' ([{@link #ARRAY}]): its alternatives (through anyOf, oneOf, allOf and references) that are or
     * may be objects or arrays. Past that bracket all of them are alive at once.
     */
    private long[] bracketPaths(JsonNode s) {
        long[] known = paths.get(s);
        if (known != null) {
            return known;
        }
        paths.put(s, new long[] {1, 1}); // met again before any text: a left recursion, refused on its own
        long[] out = {0, 0};
        if (s.isBoolean()) {
            out = s.booleanValue() ? new long[] {1, 1} : out;
        } else if (s.has("$ref")) {
            out = new long[] {1, 1}; // a reference that does not resolve is refused where it is visited
            if (s.get("$ref").isTextual()) {
                try {
                    out = bracketPaths(SchemaKeywords.resolve(root, s.get("$ref").textValue(), ""));
                } catch (SchemaException e) {
                    // keeps {1, 1}
                }
            }
        } else if (s.has("const") || s.has("enum")) {
            List<JsonNode> values = new ArrayList<>();
            values.add(s.path("const"));
            s.path("enum").forEach(values::add);
            for (JsonNode v : values) { // the literals share their brackets (a prefix tree)
                out[OBJECT] |= v.isObject() ? 1 : 0;
                out[ARRAY] |= v.isArray() ? 1 : 0;
            }
        } else if (s.has("anyOf") || s.has("oneOf") || s.has("allOf")) {
            for (String comb : List.of("anyOf", "oneOf", "allOf")) {
                for (JsonNode alt : s.path(comb)) {
                    long[] a = bracketPaths(alt);
                    out[OBJECT] = Math.min(out[OBJECT] + a[OBJECT], PATHS_CAP);
                    out[ARRAY] = Math.min(out[ARRAY] + a[ARRAY], PATHS_CAP);
                }
            }
        } else if (s.isObject()) {
            try {
                List<String> types = SchemaKeywords.types(s, "");
                out = types.isEmpty() ? new long[] {1, 1} : new long[] {types.contains("object") ? 1 : 0, types.contains("array") ? 1 : 0};
            } catch (SchemaException e) {
                out = new long[] {1, 1}; // refused where it is visited
            }
        }
        paths.put(s, out);
        return out;
    }

    private long checkAlternatives(long product, String ptr, String keyword) {
        if (product > MAX_ALTERNATIVES) {
            throw new SchemaException(ptr, keyword, "'" + keyword + "' makes more than " + MAX_ALTERNATIVES + " alternatives "
                    + "(the widths of nested anyOf/oneOf multiplied, inside an object or array by those around it that begin "
                    + "with its bracket) that the grammar would follow at once");
        }
        peakAlternatives = Math.max(peakAlternatives, product);
        return product;
    }

    /**
     * Visits what an object or array contains: its references come after its opening bracket. Past
     * the bracket the alternatives alive are those of the value that begin with it, each with what it
     * holds: nested Optional[Model] fields (anyOf [model, null], pydantic's shape) count 1 a level,
     * where multiplying by 2 would refuse a schema eight levels deep; but 45 object alternatives that
     * all hold a 100-wide anyOf under the same key are 4500 alive at once: 90 ms a token on the
     * scheduler thread with the 512-token vocabulary (a scan of the vocabulary grows with it), when
     * only their own widths were counted.
     */
    private String afterText(int bracket, Supplier<String> visit) {
        Set<String> outer = leftEdge;
        leftEdge = null;
        long outerAlternatives = alternatives;
        long outerPeak = peakAlternatives;
        JsonNode outerValue = value;
        long[] outerInside = inside;
        long ways = Math.max(1, bracketPaths(value)[bracket]);
        alternatives = ways;
        peakAlternatives = ways;
        value = null;
        inside = new long[] {1, 1}; // the values inside have brackets of their own
        try {
            return visit.get();
        } finally {
            long held = peakAlternatives / ways;
            leftEdge = outer;
            alternatives = outerAlternatives;
            peakAlternatives = outerPeak;
            value = outerValue;
            inside = outerInside;
            inside[bracket] = Math.max(inside[bracket], held);
        }
    }

    /**
     * A reference that reaches itself again before any text (through anyOf, oneOf, allOf or other
     * references, e.g. {@code {"anyOf":[{"$ref":"#"},{"type":"string"}]}}) would be a left-recursive
     * grammar rule, which llama.cpp refuses with an error that names no part of the schema.
     */
    private void refuseLeftRecursion() {
        Map<String, Integer> state = new HashMap<>(); // 1: on the path, 2: done
        for (String start : leftRefs.keySet()) {
            List<String> cycle = leftCycle(start, state, new ArrayList<>());
            if (cycle != null) {
                String first = cycle.get(0);
                throw new SchemaException(refPointers.get(first), "$ref", "'$ref' '" + first
                        + "' comes back to itself before any text (" + String.join(" -> ", cycle)
                        + "), a left recursion no grammar can enforce; put the recursion inside an object or array");
            }
        }
    }

    private List<String> leftCycle(String ref, Map<String, Integer> state, List<String> path) {
        Integer st = state.get(ref);
        if (st != null && st == 2) {
            return null;
        }
        if (st != null) {
            List<String> cycle = new ArrayList<>(path.subList(path.indexOf(ref), path.size()));
            cycle.add(ref);
            return cycle;
        }
        state.put(ref, 1);
        path.add(ref);
        for (String next : leftRefs.getOrDefault(ref, Set.of())) {
            List<String> cycle = leftCycle(next, state, path);
            if (cycle != null) {
                return cycle;
            }
        }
        path.remove(path.size() - 1);
        state.put(ref, 2);
        return null;
    }

    private String literals(JsonNode schema, String name, String ptr) {
        only(schema, ptr, schema.has("const") ? "const" : "enum", Set.of("const", "enum", "type"));
        List<JsonNode> values = new ArrayList<>();
        if (schema.has("const")) {
            values.add(schema.get("const"));
        }
        if (schema.has("enum")) {
            JsonNode e = nonEmptyArray(schema, "enum", ptr);
            for (JsonNode v : e) {
                if (!schema.has("const") || SchemaValidator.jsonEquals(v, schema.get("const"))) {
                    values.add(v);
                }
            }
            if (schema.has("const") && values.size() < 2) {
                throw new SchemaException(ptr + "/enum", "enum", "'const' is not among the 'enum' values");
            }
            if (schema.has("const")) {
                values = List.of(schema.get("const"));
            }
        }
        SchemaKeywords.checkLiteralTypes(schema, values, ptr);
        Trie texts = new Trie();
        for (JsonNode v : values) {
            texts.add(dump(v));
        }
        return "(" + prefixTree(texts, name) + ")";
    }

    /** Groups nested in one rule of a {@link #prefixTree}; deeper ones get rules of their own (llama.cpp parses groups recursively). */
    private static final int MAX_GROUP_DEPTH = 16;

    /**
     * The alternatives of a set of literal texts with their common prefixes written once
     * ({@code "\"a" ("b\"" | "c\"")}). llama.cpp's grammar sampler checks every candidate token
     * against every alternative still alive, on the scheduler thread: 20000 enum values that share
     * a prefix cost 0.65 s a token with a 512-token vocabulary, all requests waiting. Here the
     * alternatives alive at a time are those of one tree node, which start with different characters.
     */
    private String prefixTree(Trie texts, String name) {
        // a node at MAX_GROUP_DEPTH becomes a rule, written after its parent's (no recursion over deep trees)
        Map<Trie, String> pending = new LinkedHashMap<>();
        String body = prefixNode(texts, 0, name, pending);
        writePending(pending, node -> prefixNode(node, 0, name, pending));
        return body;
    }

    /** Writes the rules of the trie nodes left for rules of their own (each may leave more). */
    private void writePending(Map<Trie, String> pending, java.util.function.Function<Trie, String> body) {
        while (!pending.isEmpty()) {
            Map.Entry<Trie, String> e = pending.entrySet().iterator().next();
            pending.remove(e.getKey());
            rules.put(e.getValue(), body.apply(e.getKey()));
        }
    }

    private String prefixNode(Trie node, int depth, String name, Map<Trie, String> pending) {
        List<String> alts = new ArrayList<>();
        for (Map.Entry<Integer, Trie> e : node.next.entrySet()) {
            StringBuilder run = new StringBuilder().appendCodePoint(e.getKey());
            Trie at = e.getValue();
            while (!at.end && at.next.size() == 1) {
                Map.Entry<Integer, Trie> only = at.next.entrySet().iterator().next();
                run.appendCodePoint(only.getKey());
                at = only.getValue();
            }
            String alt = literal(run.toString());
            if (!at.next.isEmpty()) {
                String rest;
                if (depth + 1 < MAX_GROUP_DEPTH) {
                    rest = "( " + prefixNode(at, depth + 1, name, pending) + " )";
                } else {
                    rest = uniqueName(sub(name, "lit"));
                    if (rules.size() + pending.size() >= MAX_RULES) {
                        throw new SchemaException("", null, "the schema is too large (more than " + MAX_RULES + " grammar rules)");
                    }
                    pending.put(at, rest);
                }
                alt += " " + rest + (at.end ? "?" : "");
            }
            alts.add(alt);
        }
        return String.join(" | ", alts);
    }

    private String object(JsonNode schema, String name, String ptr) {
        JsonNode props = schema.get("properties");
        JsonNode additional = schema.get("additionalProperties");
        if (props != null && !props.isObject()) {
            throw new SchemaException(ptr + "/properties", "properties", "'properties' must be an object");
        }
        Set<String> required = new HashSet<>();
        JsonNode req = schema.get("required");
        if (req != null) {
            if (!req.isArray()) {
                throw new SchemaException(ptr + "/required", "required", "'required' must be an array of strings");
            }
            for (JsonNode r : req) {
                if (!r.isTextual()) {
                    throw new SchemaException(ptr + "/required", "required", "'required' must be an array of strings");
                }
                if (props == null || !props.has(r.textValue())) {
                    throw new SchemaException(ptr + "/required", "required", "required property '"
                            + SchemaKeywords.abbreviate(r.textValue()) + "' is not declared in 'properties'");
                }
                required.add(r.textValue());
            }
        }
        if (additional != null && !additional.isBoolean() && !additional.isObject()) {
            throw new SchemaException(ptr + "/additionalProperties", "additionalProperties",
                    "'additionalProperties' must be a boolean or a schema");
        }
        if ((props == null || props.isEmpty()) && (additional == null || additional.isBoolean() && additional.booleanValue())) {
            return primitive("object");
        }
        List<String> requiredKv = new ArrayList<>();
        List<String> optionalKv = new ArrayList<>();
        List<String> declared = new ArrayList<>();
        if (props != null) {
            for (Map.Entry<String, JsonNode> p : props.properties()) {
                String key = p.getKey();
                String pname = sub(name, key);
                String valueRule = visit(p.getValue(), pname, ptr + "/properties/" + SchemaKeywords.escape(key));
                String kv = rule(pname + "-kv", literal(dump(MAPPER.getNodeFactory().textNode(key))) + " space \":\" space " + valueRule);
                (required.contains(key) ? requiredKv : optionalKv).add(kv);
                declared.add(key);
            }
        }
        boolean extra = additional != null && !(additional.isBoolean() && !additional.booleanValue());
        if (extra) {
            String valueRule = additional.isBoolean() ? primitive("value")
                    : visit(additional, sub(name, "additional-value"), ptr + "/additionalProperties");
            String keyRule = declared.isEmpty() ? primitive("string") : rule(sub(name, "additional-k"), notStrings(declared));
            optionalKv.add(rule(sub(name, "additional-kv"), keyRule + " \":\" space " + valueRule) + "*");
        }
        if (requiredKv.isEmpty() && optionalKv.isEmpty()) {
            return "\"{\" space \"}\"";
        }
        StringBuilder sb = new StringBuilder("\"{\" space ");
        sb.append(String.join(" \",\" space ", requiredKv));
        if (!optionalKv.isEmpty()) {
            // Each optional property that may come next is an alternative alive (until their keys part):
            // 1600 of them cost 80 ms a token on the scheduler thread with the 512-token vocabulary
            if (alternatives * optionalKv.size() > MAX_ALTERNATIVES) {
                throw new SchemaException(ptr + "/properties", "properties", "an object with " + optionalKv.size()
                        + " optional properties" + (extra ? " (additionalProperties counting as one)" : "")
                        + (alternatives > 1 ? ", in " + alternatives + " alternatives alive around it," : "")
                        + " makes more than " + MAX_ALTERNATIVES + " alternatives that the grammar would follow at once; "
                        + "make some of them required");
            }
            peakAlternatives = Math.max(peakAlternatives, alternatives * optionalKv.size());
            // Optional properties keep their order: any subset, each alternative starts at one of them.
            List<String> rests = optionalRests(optionalKv, name);
            List<String> alts = new ArrayList<>();
            for (int i = 0; i < optionalKv.size(); i++) {
                String kv = optionalKv.get(i);
                String base = kv.endsWith("*") ? kv.substring(0, kv.length() - 1) : kv;
                alts.add(base + (kv.endsWith("*") ? " ( \",\" space " + base + " )*" : "")
                        + (rests.get(i + 1) == null ? "" : " " + rests.get(i + 1)));
            }
            // a rule of its own: inside the optional group, llama.cpp would count every rule first named in the
            // alternatives against its repetition limit (2000), and a root object with ~1000 optional properties would not load
            String opt = rule(sub(name, "optional"), String.join(" | ", alts));
            sb.append(requiredKv.isEmpty() ? " " + opt + "?" : " ( \",\" space " + opt + " )?");
        }
        sb.append(" space \"}\"");
        return sb.toString();
    }

    /**
     * For each optional kv j, a rule matching any ordered subset of kvs j.. (each after a comma),
     * written as llama.cpp does: rest-j ::= ( "," kv_j )? rest-(j+1), so the grammar grows
     * linearly with the number of optional properties ("x*" marks the repeatable
     * additional-properties kv). Index 0 is unused (an alternative starts at a kv itself); the
     * entry past the last is null.
     */
    private List<String> optionalRests(List<String> kvs, String name) {
        String[] rests = new String[kvs.size() + 1];
        for (int j = kvs.size() - 1; j >= 1; j--) {
            String kv = kvs.get(j);
            boolean repeat = kv.endsWith("*");
            String base = repeat ? kv.substring(0, kv.length() - 1) : kv;
            String body = "( \",\" space " + base + " )" + (repeat ? "*" : "?") + (rests[j + 1] == null ? "" : " " + rests[j + 1]);
            rests[j] = rule(sub(name, "rest-" + j), body);
        }
        return java.util.Arrays.asList(rests);
    }

    private String array(JsonNode schema, String name, String ptr) {
        int min = count(schema, "minItems", ptr, 0);
        int max = count(schema, "maxItems", ptr, Integer.MAX_VALUE);
        if (min > max) {
            throw new SchemaException(ptr + "/minItems", "minItems", "'minItems' exceeds 'maxItems'");
        }
        JsonNode prefix = schema.get("prefixItems");
        JsonNode items = schema.get("items");
        if (prefix != null) {
            if (!prefix.isArray()) {
                throw new SchemaException(ptr + "/prefixItems", "prefixItems", "'prefixItems' must be an array of schemas");
            }
            if (items != null && !(items.isBoolean() && !items.booleanValue())) {
                throw new SchemaException(ptr + "/items", "items", "'items' beside 'prefixItems' is supported only as false");
            }
            if (prefix.size() < min || schema.has("maxItems") && prefix.size() > max) {
                throw new SchemaException(ptr + "/prefixItems", "prefixItems", "'prefixItems' together with minItems/maxItems "
                        + "that do not admit exactly its length cannot be enforced");
            }
            StringBuilder sb = new StringBuilder("\"[\" space ");
            for (int i = 0; i < prefix.size(); i++) {
                sb.append(i > 0 ? " \",\" space " : "").append(visit(prefix.get(i), sub(name, "tuple-" + i), ptr + "/prefixItems/" + i));
            }
            return sb.append(" space \"]\"").toString();
        }
        if (items != null && items.isArray()) {
            throw new SchemaException(ptr + "/items", "items", "'items' as an array (draft 4 tuples) is not supported; use 'prefixItems'");
        }
        if (items != null && items.isBoolean() && !items.booleanValue()) {
            if (min > 0) {
                throw new SchemaException(ptr + "/items", "items", "'items': false with 'minItems' admits no array");
            }
            return "\"[\" space \"]\"";
        }
        if ((items == null || items.isBoolean() || items.isObject() && items.isEmpty()) && min == 0 && max == Integer.MAX_VALUE) {
            return primitive("array");
        }
        String item = items == null || items.isBoolean() ? primitive("value") : visit(items, sub(name, "item"), ptr + "/items");
        if (max == 0) {
            return "\"[\" space space \"]\"";
        }
        repeatable(schema, "minItems", min, ptr);
        repeatable(schema, "maxItems", max, ptr);
        String more = "(\",\" space " + item + ")" + repeat(Math.max(min - 1, 0), max == Integer.MAX_VALUE ? -1 : max - 1);
        String body = item + (more.endsWith("{0,0}") ? "" : " " + more);
        // an optional list is a rule of its own: inside an optional group, llama.cpp counts the rules the repetition
        // generates against its repetition limit (a group of maxItems 2000 would not load)
        return "\"[\" space " + (min == 0 ? rule(sub(name, "items"), body) + "?" : body) + " space \"]\"";
    }

    private String string(JsonNode schema, String ptr) {
        JsonNode format = schema.get("format");
        int min = count(schema, "minLength", ptr, 0);
        int max = count(schema, "maxLength", ptr, Integer.MAX_VALUE);
        if (min > max) {
            throw new SchemaException(ptr + "/minLength", "minLength", "'minLength' exceeds 'maxLength'");
        }
        JsonNode pattern = schema.get("pattern");
        if (pattern != null) {
            return pattern(schema, pattern, format, min, max, ptr);
        }
        if (format != null) {
            if (!format.isTextual() || !SchemaKeywords.FORMATS.contains(format.textValue())) {
                throw new SchemaException(ptr + "/format", "format", "string format " + SchemaKeywords.abbreviate(format.toString())
                        + " cannot be enforced; supported formats: date, time, date-time, uuid");
            }
            if (schema.has("minLength") || schema.has("maxLength")) {
                throw new SchemaException(ptr + "/format", "format", "'format' together with minLength/maxLength cannot be enforced");
            }
            String f = format.textValue();
            return primitive(f.equals("uuid") ? "uuid" : f + "-string");
        }
        if (min == 0 && max == Integer.MAX_VALUE) {
            return primitive("string");
        }
        repeatable(schema, "minLength", min, ptr);
        repeatable(schema, "maxLength", max, ptr);
        return "\"\\\"\" " + primitive("char") + repeat(min, max == Integer.MAX_VALUE ? -1 : max) + " \"\\\"\"";
    }

    /**
     * A string with a {@code pattern} (see {@link RegexGrammar} for the subset). Beside a format or
     * length bounds, the pattern must admit only strings that meet them: the grammar enforces the
     * pattern, and with it the rest (zod writes its uuid and date patterns beside their formats).
     */
    private String pattern(JsonNode schema, JsonNode pattern, JsonNode format, int min, int max, String ptr) {
        String at = ptr + "/pattern";
        if (!pattern.isTextual()) {
            throw new SchemaException(at, "pattern", "'pattern' must be a string");
        }
        List<RegexGrammar.Branch> branches = RegexGrammar.parse(pattern.textValue(), at);
        long alts = alternatives * RegexGrammar.alternatives(branches);
        if (alts > MAX_ALTERNATIVES) {
            throw new SchemaException(at, "pattern", "'pattern' makes more than " + MAX_ALTERNATIVES + " alternatives (the widths "
                    + "of its nested '|' multiplied, and of the anyOf/oneOf around it) that the grammar would follow at once");
        }
        long ways = RegexGrammar.ambiguity(branches, at);
        long alive = alternatives * ways;
        if (alive > MAX_ALTERNATIVES) {
            throw new SchemaException(at, "pattern", "'pattern' can be matching the text in " + ways + " ways at once, "
                    + "in " + alternatives + " alternatives alive around it (anyOf/oneOf): more than " + MAX_ALTERNATIVES + " that the "
                    + "grammar would follow at once (an unanchored pattern also follows the text before its match)");
        }
        peakAlternatives = Math.max(peakAlternatives, Math.max(alts, alive));
        if (format != null) {
            if (!format.isTextual() || !RegexGrammar.FORMATS.containsKey(format.textValue())) {
                throw new SchemaException(ptr + "/format", "format", "string format " + SchemaKeywords.abbreviate(format.toString())
                        + " cannot be enforced; supported formats: date, time, date-time, uuid");
            }
            RegexGrammar.within(branches, RegexGrammar.parse(RegexGrammar.FORMATS.get(format.textValue()), at), "'format' "
                    + format.textValue(), at);
        }
        if (schema.has("minLength") || schema.has("maxLength")) {
            RegexGrammar.within(branches, RegexGrammar.lengths(min, max == Integer.MAX_VALUE ? -1 : max), "minLength/maxLength", at);
        }
        return RegexGrammar.gbnf(branches, "pattern", this::rule, primitive("char"));
    }

    private String integer(JsonNode schema, String ptr) {
        long lo = -MAX_INT;
        long hi = MAX_INT;
        boolean bounded = false;
        for (String k : SchemaKeywords.NUMBER_WORDS) {
            JsonNode b = schema.get(k);
            if (b == null) {
                continue;
            }
            if (!b.isNumber()) {
                throw new SchemaException(ptr + "/" + k, k, "'" + k + "' must be a number");
            }
            bounded = true;
            BigDecimal v = b.decimalValue();
            switch (k) {
                case "minimum" -> lo = Math.max(lo, clamp(v.setScale(0, RoundingMode.CEILING)));
                case "exclusiveMinimum" -> lo = Math.max(lo, clamp(v.setScale(0, RoundingMode.FLOOR).add(BigDecimal.ONE)));
                case "maximum" -> hi = Math.min(hi, clamp(v.setScale(0, RoundingMode.FLOOR)));
                default -> hi = Math.min(hi, clamp(v.setScale(0, RoundingMode.CEILING).subtract(BigDecimal.ONE)));
            }
        }
        if (!bounded) {
            return primitive("integer");
        }
        if (lo > hi) {
            throw new SchemaException(ptr, "minimum", "the integer bounds admit no value of at most 16 digits");
        }
        return "(" + IntegerRanges.gbnf(lo, hi) + ")";
    }

    /**
     * A number with bounds: the JSON numbers x (without an exponent, at most 16 digits before the
     * point and 16 after, as the unbounded number rule) with lo <= x <= hi (strict where
     * exclusive), compared exactly. "-0" and "-0.0" are 0, as the validator compares them. The
     * non-negative numbers and the negative ones (and "-0") are written apart, each by the range
     * of its magnitude: see {@link #magnitude}. A bound with more than 16 digits after the point
     * is the nearest 16-digit value inside it, inclusive: the numbers of the grammar that meet one
     * meet the other (so no bound is refused for its digits).
     */
    private String number(JsonNode schema, String ptr) {
        // every number of the grammar lies strictly between -limit and limit: a bound at or beyond them is
        // them, strict (clamp), and without a bound on a side that side is them
        BigDecimal limit = BigDecimal.valueOf(MAX_INT + 1);
        BigDecimal lo = limit.negate();
        BigDecimal hi = limit;
        boolean loStrict = true;
        boolean hiStrict = true;
        String first = null;
        for (String k : List.of("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")) {
            JsonNode b = schema.get(k);
            if (b == null) {
                continue;
            }
            if (!b.isNumber()) {
                throw new SchemaException(ptr + "/" + k, k, "'" + k + "' must be a number");
            }
            first = first == null ? k : first;
            boolean lower = k.endsWith("inimum");
            BigDecimal c = b.decimalValue();
            boolean strict = k.startsWith("exclusive");
            if (c.stripTrailingZeros().scale() > FRACTION_DIGITS) {
                // the nearest value of 16 digits after the point inside the bound: the grammar's numbers meet both alike
                c = c.setScale(FRACTION_DIGITS, lower ? RoundingMode.CEILING : RoundingMode.FLOOR);
                strict = false;
            }
            if (c.abs().compareTo(limit) >= 0) {
                c = c.signum() > 0 ? limit : limit.negate();
                strict = true;
            }
            if (lower) {
                if (c.compareTo(lo) > 0 || c.compareTo(lo) == 0 && strict) {
                    lo = c;
                    loStrict = strict;
                }
            } else if (c.compareTo(hi) < 0 || c.compareTo(hi) == 0 && strict) {
                hi = c;
                hiStrict = strict;
            }
        }
        if (first == null) {
            return primitive("number");
        }
        List<String> alts = new ArrayList<>();
        // x = m >= 0: m > lo or m >= lo, and at least 0; m < hi or m <= hi
        List<String> positive = hi.signum() < 0 ? List.of()
                : magnitude(lo.max(BigDecimal.ZERO), lo.signum() >= 0 && loStrict, hi, hiStrict);
        // x = -m, m >= 0: m >= -hi (or >), and at least 0; m <= -lo (or <)
        List<String> negative = lo.signum() > 0 ? List.of()
                : magnitude(hi.negate().max(BigDecimal.ZERO), hi.signum() <= 0 && hiStrict, lo.negate(), loStrict);
        if (!negative.isEmpty()) {
            alts.add("\"-\" (" + String.join(" | ", negative) + ")");
        }
        alts.addAll(positive);
        if (alts.isEmpty()) {
            throw new SchemaException(ptr + "/" + first, first, "the bounds on a 'number' admit no value (of at most 16 digits "
                    + "before the point and 16 after it)");
        }
        return "(" + String.join(" | ", alts) + ")";
    }

    /**
     * Alternatives for the digits (integral part, optional fraction) of the magnitudes m with
     * lo < m (lo <= m where not loStrict) and m < hi (m <= hi where not hiStrict), 0 <= lo,
     * hi at most MAX_INT + 1 (then strict), both of at most 16 digits after the point. With
     * integral parts l of lo and h of hi: l + 1 to h - 1 (from l where lo is l, not strict) with
     * any fraction; l with the fractions above lo's, h with those below hi's (l = h: with those
     * between). Their integral parts differ, so no text matches two of them.
     */
    private List<String> magnitude(BigDecimal lo, boolean loStrict, BigDecimal hi, boolean hiStrict) {
        List<String> alts = new ArrayList<>();
        if (lo.compareTo(hi) > 0) {
            return alts;
        }
        long l = lo.setScale(0, RoundingMode.FLOOR).longValueExact();
        long h = hi.setScale(0, RoundingMode.FLOOR).longValueExact();
        String lf = fractionDigits(lo, l);
        String hf = fractionDigits(hi, h);
        if (l == h) {
            withFraction(alts, l, lf, loStrict, hf, hiStrict);
            return alts;
        }
        boolean whole = lf.isEmpty() && !loStrict;
        if (!whole) {
            withFraction(alts, l, lf, loStrict, null, false);
        }
        long from = whole ? l : l + 1;
        if (from <= h - 1) {
            alts.add("(" + IntegerRanges.gbnf(from, h - 1) + ") (\".\" " + primitive("decimal-part") + ")?");
        }
        withFraction(alts, h, null, false, hf, hiStrict);
        return alts;
    }

    /** The digits after the point of m (integral part i) without trailing zeros; "" for none. */
    private static String fractionDigits(BigDecimal m, long i) {
        BigDecimal f = m.subtract(BigDecimal.valueOf(i)).stripTrailingZeros();
        return f.signum() == 0 ? "" : f.toPlainString().substring(2);
    }

    /**
     * Adds the alternative for the integral part i and the fractions between lo and hi (given as
     * for {@link IntegerRanges#fractions}), if any meets them; the non-zero fraction and the
     * zeros are the shared rules.
     */
    private void withFraction(List<String> alts, long i, String lo, boolean loStrict, String hi, boolean hiStrict) {
        if (lo != null && lo.isEmpty() && !loStrict) {
            lo = null;
        }
        boolean zero = IntegerRanges.admitsZero(lo, loStrict, hi, hiStrict);
        String digits;
        if (hi == null && "".equals(lo)) {
            digits = primitive("nonzero-decimal-part");
        } else if (lo == null && "".equals(hi)) {
            digits = hiStrict ? null : primitive("zero-decimal-part");
        } else {
            List<String> fractions = IntegerRanges.fractions(lo, loStrict, hi, hiStrict, FRACTION_DIGITS);
            digits = fractions.isEmpty() ? null : "(" + String.join(" | ", fractions) + ")";
        }
        if (digits == null) {
            if (zero) {
                alts.add("\"" + i + "\"");
            }
        } else {
            alts.add(zero ? "\"" + i + "\" (\".\" " + digits + ")?" : "\"" + i + ".\" " + digits);
        }
    }

    // --- helpers -------------------------------------------------------------------------------

    /** GBNF for the digit strings of 1 to n digits that are not all zeros (the first non-zero digit decides: no ambiguity). */
    private static String nonzeroDigits(int n) {
        return n == 1 ? "[1-9]" : "([1-9] [0-9]{0," + (n - 1) + "} | \"0\" " + nonzeroDigits(n - 1) + ")";
    }

    private static long clamp(BigDecimal v) {
        if (v.compareTo(BigDecimal.valueOf(MAX_INT + 1)) > 0) {
            return MAX_INT + 1;
        }
        if (v.compareTo(BigDecimal.valueOf(-MAX_INT - 1)) < 0) {
            return -MAX_INT - 1;
        }
        return v.longValueExact();
    }

    /** Refuses keywords (other than annotations and the allowed) beside a keyword that decides the whole schema. */
    private static void only(JsonNode schema, String ptr, String keyword, Set<String> allowed) {
        List<String> others = SchemaKeywords.others(schema, allowed);
        if (!others.isEmpty()) {
            throw new SchemaException(ptr + "/" + others.get(0), others.get(0), "'" + others.get(0) + "' beside '" + keyword
                    + "' cannot be enforced; move it into the referenced or alternative schemas");
        }
    }

    private static JsonNode nonEmptyArray(JsonNode schema, String k, String ptr) {
        JsonNode a = schema.get(k);
        if (!a.isArray() || a.isEmpty()) {
            throw new SchemaException(ptr + "/" + k, k, "'" + k + "' must be a non-empty array");
        }
        return a;
    }

    private static int count(JsonNode schema, String k, String ptr, int dflt) {
        JsonNode n = schema.get(k);
        if (n == null) {
            return dflt;
        }
        if (!n.isIntegralNumber() && !(n.isNumber() && n.decimalValue().stripTrailingZeros().scale() <= 0) || n.asLong() < 0) {
            throw new SchemaException(ptr + "/" + k, k, "'" + k + "' must be a non-negative integer");
        }
        return (int) Math.min(n.asLong(), Integer.MAX_VALUE);
    }

    /**
     * A pair of count keywords ({@code minLength}/{@code maxLength}, {@code minItems}/{@code maxItems})
     * as a repetition's bounds, checked as this converter checks them: non-negative integers, the
     * least not above the most, neither above {@link #MAX_REPEAT}. Returns {min, max}, max -1 where absent.
     */
    static int[] bounds(JsonNode schema, String minKey, String maxKey, String ptr) {
        int min = count(schema, minKey, ptr, 0);
        int max = count(schema, maxKey, ptr, Integer.MAX_VALUE);
        if (min > max) {
            throw new SchemaException(ptr + "/" + minKey, minKey, "'" + minKey + "' exceeds '" + maxKey + "'");
        }
        repeatable(schema, minKey, min, ptr);
        repeatable(schema, maxKey, max, ptr);
        return new int[] {min, max == Integer.MAX_VALUE ? -1 : max};
    }

    /** Refuses a count keyword whose repetition llama.cpp's grammar engine would refuse or leave unbounded. */
    private static void repeatable(JsonNode schema, String k, int value, String ptr) {
        if (schema.has(k) && value > MAX_REPEAT) {
            throw new SchemaException(ptr + "/" + k, k, "'" + k + "' above " + MAX_REPEAT + " cannot be enforced (llama.cpp's grammar "
                    + "engine limits a repetition to " + MAX_REPEAT + ")");
        }
    }

    /** GBNF repetition suffix for min..max occurrences (max -1: unbounded). */
    static String repeat(int min, int max) {
        if (max < 0) {
            return min == 0 ? "*" : min == 1 ? "+" : "{" + min + ",}";
        }
        if (min == 0 && max == 1) {
            return "?";
        }
        return min == max ? "{" + min + "}" : "{" + min + "," + max + "}";
    }

    private String primitive(String name) {
        if (!rules.containsKey(name)) {
            rules.put(name, PRIMITIVES.get(name));
            for (String dep : DEPENDS.getOrDefault(name, List.of())) {
                primitive(dep);
            }
        }
        return name;
    }

    /** Adds a rule under a free name (a same-named rule with the same body is shared). */
    private String rule(String name, String body) {
        if (body.equals(name)) {
            return name;
        }
        String n = sanitize(name);
        if (PRIMITIVES.containsKey(n) && !n.equals("root")) {
            n = n + "-";
        }
        if (rules.containsKey(n) && !rules.get(n).equals(body)) {
            int i = 0;
            while (rules.containsKey(n + i) && !rules.get(n + i).equals(body)) {
                i++;
            }
            n = n + i;
        }
        if (rules.size() >= MAX_RULES) {
            throw new SchemaException("", null, "the schema is too large (more than " + MAX_RULES + " grammar rules)");
        }
        rules.put(n, body);
        return n;
    }

    private String uniqueName(String base) {
        String n = base;
        int i = 0;
        while (rules.containsKey(n) || reserved.contains(n)) {
            n = base + i++;
        }
        reserved.add(n);
        return n;
    }

    private static String sub(String name, String part) {
        return name.isEmpty() ? sanitize(part) : name + "-" + sanitize(part);
    }

    static String sanitize(String s) {
        String out = s.replaceAll("[^a-zA-Z0-9-]+", "-");
        return out.isEmpty() ? "x" : out;
    }

    /** A GBNF alternative that matches any JSON string except the given ones (the keys already declared). */
    private String notStrings(List<String> keys) {
        // A trie of the keys' characters: at each node, a different character or an end where no key ends.
        Trie t = new Trie();
        for (String k : keys) {
            if (k.chars().anyMatch(c -> c == '"' || c == '\\' || c < 0x20 || c == 0x7F)) {
                throw new SchemaException("/properties", "additionalProperties", "'additionalProperties' beside a property name "
                        + "that needs JSON escapes cannot be enforced");
            }
            t.add(k);
        }
        String ch = primitive("char");
        // a node at MAX_GROUP_DEPTH becomes a rule of its own: a key of thousands of characters made a recursion
        // as deep (a StackOverflowError here, a 500) and as many nested groups for llama.cpp's recursive parser
        Map<Trie, String> pending = new LinkedHashMap<>();
        String body = "[\"] ( " + exclude(t, 0, ch, pending) + " )";
        writePending(pending, node -> exclude(node, 0, ch, pending));
        return body;
    }

    /** Strings (with the closing quote) that leave this node's keys: a different char, or end where no key ends. */
    private String exclude(Trie node, int depth, String ch, Map<Trie, String> pending) {
        List<String> alts = new ArrayList<>();
        StringBuilder others = new StringBuilder("[^\"\\\\\\x7F\\x00-\\x1F");
        for (Map.Entry<Integer, Trie> e : node.next.entrySet()) {
            String rest;
            if (depth + 1 < MAX_GROUP_DEPTH) {
                rest = "( " + exclude(e.getValue(), depth + 1, ch, pending) + " )";
            } else {
                rest = uniqueName(refPrefix + "additional-k-rest");
                if (rules.size() + pending.size() >= MAX_RULES) {
                    throw new SchemaException("", null, "the schema is too large (more than " + MAX_RULES + " grammar rules)");
                }
                pending.put(e.getValue(), rest);
            }
            alts.add(literal(new String(Character.toChars(e.getKey()))) + " " + rest);
            others.append(classChar(e.getKey()));
        }
        others.append(']');
        // any other unescaped char, or any escape (escaped chars never begin a declared key here), then anything
        // an escape other than \\u never writes a character of a declared key (keys needing escapes are refused)
        alts.add("( " + others + " | [\\\\] [\"\\\\bfnrt] ) " + ch + "* [\"]");
        if (!node.end) {
            alts.add("[\"]");
        }
        return String.join(" | ", alts);
    }

    private static final class Trie {
        final Map<Integer, Trie> next = new LinkedHashMap<>();
        boolean end;

        void add(String s) {
            Trie at = this;
            for (int cp : s.codePoints().toArray()) {
                at = at.next.computeIfAbsent(cp, x -> new Trie());
            }
            at.end = true;
        }
    }

    /** A GBNF string literal of raw text. */
    static String literal(String s) {
        StringBuilder sb = new StringBuilder("\"");
        s.codePoints().forEach(cp -> {
            switch (cp) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (cp < 0x20 || cp == 0x7F) {
                        sb.append(String.format("\\x%02X", cp));
                    } else {
                        sb.appendCodePoint(cp);
                    }
                }
            }
        });
        return sb.append('"').toString();
    }

    private static String classChar(int cp) {
        return switch (cp) {
            // llama.cpp's grammar parser knows no "\^" escape ("unknown escape"): a property name with a '^' beside
            // additionalProperties made a grammar that did not load
            case '^' -> "\\x5E";
            case '-', ']', '[', '\\', '"' -> "\\" + (char) cp;
            default -> new String(Character.toChars(cp));
        };
    }

    /** Compact JSON text of a value, as the grammar writes constants. */
    static String dump(JsonNode v) {
        try {
            return MAPPER.writeValueAsString(v);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
