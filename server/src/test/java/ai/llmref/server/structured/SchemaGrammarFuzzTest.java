package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import ai.llmref.llama.Sampler;
import ai.llmref.llama.Vocabulary;
import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Fuzzes the JSON schema to grammar converter against llama.cpp's grammar engine: every schema is
 * either refused with a {@link SchemaException} that names a place in the schema, or converted to a
 * grammar that llama.cpp loads with the real model's vocabulary. A grammar llama.cpp refuses (as a
 * left recursion was, found this way) would reach the client as the engine's message about rule
 * indexes instead of one about the schema it sent.
 *
 * <p>A converted grammar is then sampled with, without the model: a walk of up to
 * {@link #MAX_TOKENS} tokens picks each next token among those the grammar allows, in an order
 * drawn from a generator seeded by the input (pseudo-random logits), so an input always makes the
 * same walk. Two more oracles watch the walk:
 * <ul>
 * <li>No step (loading the grammar, or checking candidate tokens and accepting one) takes longer
 * than {@link #STEP_LIMIT_MILLIS}: the server samples every request's grammar on its one scheduler thread,
 * and an ambiguous grammar ({@code (.{0,2000}){0,2000}} as a {@code pattern}) held it for more
 * than ten minutes in one step while it loaded in milliseconds.</li>
 * <li>Wherever the grammar allows the end of generation, the text so far is one JSON document that
 * {@link SchemaValidator} finds valid under the schema (a {@code oneOf} read as {@code anyOf}, as
 * the converter documents), and where it allows neither the end nor any token the walk has found a
 * dead end (the server would fail the request halfway).</li>
 * </ul>
 *
 * <p>Without {@code JAZZER_FUZZ=1} the method runs once per committed input in
 * {@code src/test/resources/ai/llmref/server/structured/SchemaGrammarFuzzTestInputs/convert/}
 * (regression mode, part of every test run); the seeds there are schemas of the corpus.
 */
class SchemaGrammarFuzzTest {
    /**
     * Most tokens a walk generates. With the closing from a step below half of it ({@link #walk}),
     * nearly every walk ends a document: of 40 walks for each of the corpus's 61 schemas, 2437 of the
     * 2440 did (with 64 tokens, 2040, and none for the order, invoice, log-entry and calendar-tool
     * schemas).
     */
    static final int MAX_TOKENS = 128;
    /** Tokens drawn from the whole vocabulary at each step before the search narrows to single characters. */
    static final int GUESSES = 16;
    /**
     * Longest a step of a walk may take. On this project's 2-core test machine, in two minutes of
     * fuzzing (Jazzer's instrumentation on), 98% of 551,000 steps took under 1 ms and the slowest
     * 0.66 s; the schemas of the slowest steps, walked again outside the fuzzer, took 26 ms at most,
     * so those were pauses of the collector or of the shared machine. Two seconds stays clear of
     * such pauses and still reports in seconds a grammar that would hold the scheduler for minutes.
     */
    static final long STEP_LIMIT_MILLIS = 2_000;
    private static LlamaModel model;
    private static Tokens tokens;
    /**
     * Set when a walk ran past {@link #STEP_LIMIT_MILLIS} and was left running in llama.cpp (native
     * code cannot be interrupted): the model it reads is then not freed, as freeing waits for it.
     */
    private static volatile boolean walkLeftRunning;

    private static synchronized LlamaModel model() {
        if (model == null) {
            model = LlamaModel.load(Path.of(System.getProperty("test.model")), ModelParams.defaults().withGpuLayers(0));
            tokens = new Tokens(model.vocabulary());
        }
        return model;
    }

    @AfterAll
    static synchronized void closeModel() {
        if (model != null && !walkLeftRunning) {
            model.close();
            model = null;
        }
    }

    @FuzzTest(maxDuration = "30s")
    void convert(FuzzedDataProvider data) {
        String input = data.consumeRemainingAsString();
        JsonNode schema;
        try {
            schema = SchemaCorpus.MAPPER.readTree(input);
        } catch (JsonProcessingException e) {
            return; // not JSON: the request parser's concern, fuzzed elsewhere
        }
        if (schema == null || !(schema.isObject() || schema.isBoolean())) {
            return;
        }
        String grammar;
        try {
            grammar = JsonSchemaGrammar.convert(schema);
        } catch (SchemaException e) {
            assertThat(e.getMessage()).as("a refusal names its place in the schema").contains("(at #");
            return;
        }
        // llama.cpp must take every grammar the converter gives (GrammarException otherwise), and sample with it
        walkWatched(schema, grammar, input.hashCode());
    }

    /**
     * The schema the walk's documents are checked under reads oneOf as anyOf at schema places only
     * (not in a property name or a const), and its references still reach the same schemas.
     */
    @Test
    void oneOfIsReadAsAnyOfWhereItIsAKeyword() throws Exception {
        JsonNode schema = SchemaCorpus.MAPPER.readTree("""
                {"type":"object","properties":{"oneOf":{"oneOf":[{"oneOf":[{"type":"integer"},{"type":"number"}]},{"const":{"oneOf":1}}]},
                 "b":{"$ref":"#/properties/oneOf/oneOf/0/oneOf/1"},"c":{"$ref":"#/$defs/a~1%25"}},"required":["oneOf"],
                 "$defs":{"a/%":{"type":"null"}}}""");
        JsonNode enforced = oneOfAsAnyOf(schema);
        assertThat(enforced).isEqualTo(SchemaCorpus.MAPPER.readTree("""
                {"type":"object","properties":{"oneOf":{"anyOf":[{"anyOf":[{"type":"integer"},{"type":"number"}]},{"const":{"oneOf":1}}]},
                 "b":{"$ref":"#/properties/oneOf/anyOf/0/anyOf/1"},"c":{"$ref":"#/$defs/a~1%25"}},"required":["oneOf"],
                 "$defs":{"a/%":{"type":"null"}}}"""));
        JsonNode doc = SchemaCorpus.MAPPER.readTree("{\"oneOf\":3,\"b\":2.5,\"c\":null}");
        assertThat(SchemaValidator.validate(schema, doc)).isNotEmpty(); // 3 is an integer and a number
        assertThat(SchemaValidator.validate(enforced, doc)).isEmpty();
        assertThat(SchemaValidator.validate(enforced, SchemaCorpus.MAPPER.readTree("{\"oneOf\":3,\"c\":1}"))).isNotEmpty();
    }

    /** The walk's UTF-8 check, which decides the tokens it may pick: it must pass a model's UTF-8 and nothing else. */
    @Test
    void utf8TailKeepsWellFormedTextOnly() {
        assertThat(utf8Tail(new byte[0], "a\u00e9\u4e2d\uD83D\uDE00".getBytes(StandardCharsets.UTF_8))).isEmpty();
        assertThat(utf8Tail(new byte[0], bytes(0x61, 0xE4, 0xB8))).containsExactly(bytes(0xE4, 0xB8));
        assertThat(utf8Tail(bytes(0xE4, 0xB8), bytes(0xAD, 0x62))).isEmpty();
        assertThat(utf8Tail(bytes(0xF0), bytes(0x9F))).containsExactly(bytes(0xF0, 0x9F));
        for (byte[] bad : List.of(bytes(0xC0, 0xA2), bytes(0xC1), bytes(0xE0, 0x9F), bytes(0xED, 0xA0), bytes(0xF0, 0x8F), bytes(0xF4, 0x90),
                bytes(0xF5), bytes(0xFF), bytes(0x80), bytes(0xE4, 0x62))) {
            assertThat(utf8Tail(new byte[0], bad)).as(Arrays.toString(bad)).isNull();
        }
        assertThat(utf8Tail(bytes(0xE4), bytes(0x22))).isNull();
    }

    private static byte[] bytes(int... values) {
        byte[] b = new byte[values.length];
        for (int i = 0; i < values.length; i++) {
            b[i] = (byte) values[i];
        }
        return b;
    }

    /** What a walk is doing: its step (-1: loading the grammar), when the step began, and the text so far. */
    private record Step(int index, long startNanos, String text) {}

    /**
     * {@link #walk} on a thread of its own, failed when a step runs past {@link #STEP_LIMIT_MILLIS}:
     * a step stuck in llama.cpp for minutes is reported at the limit, and left running.
     */
    private static void walkWatched(JsonNode schema, String grammar, long seed) {
        LlamaModel m = model();
        AtomicReference<Step> current = new AtomicReference<>(new Step(-1, System.nanoTime(), ""));
        CompletableFuture<Void> done = new CompletableFuture<>();
        Thread.ofPlatform().daemon().name("grammar-walk").start(() -> {
            try {
                walk(m, schema, grammar, seed, current);
                done.complete(null);
            } catch (Throwable e) {
                done.completeExceptionally(e);
            }
        });
        while (true) {
            Step s = current.get();
            long left = s.startNanos() + TimeUnit.MILLISECONDS.toNanos(STEP_LIMIT_MILLIS) - System.nanoTime();
            try {
                done.get(Math.max(left, 0), TimeUnit.NANOSECONDS);
                return;
            } catch (TimeoutException e) {
                if (current.get() == s) {
                    walkLeftRunning = true;
                    throw new AssertionError("a grammar step took more than " + STEP_LIMIT_MILLIS + " ms ("
                            + (s.index() < 0 ? "loading the grammar" : "token " + s.index() + " after " + quote(s.text()))
                            + "); schema: " + schema + "\ngrammar:\n" + grammar);
                }
            } catch (ExecutionException e) {
                if (e.getCause() instanceof RuntimeException r) {
                    throw r;
                }
                if (e.getCause() instanceof Error r) {
                    throw r;
                }
                throw new IllegalStateException(e.getCause());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
        }
    }

    /**
     * Generates with the grammar: at each step, when the grammar allows the end, the text is checked
     * ({@link #checkDocument}) and the walk may end there; otherwise the first token the grammar
     * allows in a random order is accepted. From a step drawn per walk on, it ends where it can and
     * tries the tokens that close a string, array or object first, so most walks finish a document.
     */
    private static void walk(LlamaModel m, JsonNode schema, String grammar, long seed, AtomicReference<Step> current) {
        JsonNode enforced = oneOfAsAnyOf(schema);
        SplittableRandom random = new SplittableRandom(seed);
        int closeFrom = random.nextInt(MAX_TOKENS / 2);
        ByteArrayOutputStream text = new ByteArrayOutputStream();
        byte[] unfinished = {}; // an unfinished UTF-8 sequence at the end of the text
        try (Sampler s = Sampler.builder(m.vocabulary()).grammar(grammar, "root").build()) {
            for (int i = 0; i < MAX_TOKENS; i++) {
                current.set(new Step(i, System.nanoTime(), text.toString(StandardCharsets.UTF_8)));
                boolean end = unfinished.length == 0 && s.grammarAllows(tokens.end);
                if (end) {
                    checkDocument(schema, enforced, grammar, text.toString(StandardCharsets.UTF_8));
                    if (i >= closeFrom || random.nextInt(4) == 0) {
                        return;
                    }
                }
                int t = pick(s, random, i >= closeFrom, unfinished);
                if (t < 0) {
                    assertThat(end).as("the grammar allows no token and not the end after %s; schema: %s%ngrammar:%n%s",
                            quote(text.toString(StandardCharsets.UTF_8)), schema, grammar).isTrue();
                    return;
                }
                s.accept(t);
                text.writeBytes(tokens.bytes[t]);
                unfinished = utf8Tail(unfinished, tokens.bytes[t]);
            }
            current.set(new Step(MAX_TOKENS, System.nanoTime(), text.toString(StandardCharsets.UTF_8)));
            if (unfinished.length == 0 && s.grammarAllows(tokens.end)) {
                checkDocument(schema, enforced, grammar, text.toString(StandardCharsets.UTF_8));
            }
        }
    }

    /**
     * A token the grammar allows, or -1 when it allows none: when {@code closing}, mostly a token
     * that closes a string, array or object; else one of {@link #GUESSES} tokens drawn from the
     * vocabulary; else the first allowed single ASCII character, in a random order (where the
     * grammar allows a few characters only, as around keys, they are among these); else the first
     * allowed token of the whole vocabulary in a random order. A token that would make the text
     * ill-formed UTF-8 is passed over: llama.cpp's grammar engine decodes bytes leniently (overlong
     * forms, surrogates), which no grammar can prevent, and a model writes UTF-8.
     */
    private static int pick(Sampler s, SplittableRandom random, boolean closing, byte[] unfinished) {
        if (closing && random.nextInt(4) != 0) {
            for (int t : tokens.closing) {
                if (allows(s, t, unfinished)) {
                    return t;
                }
            }
        }
        for (int i = 0; i < GUESSES; i++) {
            int t = tokens.ordinary[random.nextInt(tokens.ordinary.length)];
            if (allows(s, t, unfinished)) {
                return t;
            }
        }
        int t = firstAllowed(s, tokens.ascii, random, unfinished);
        return t >= 0 ? t : firstAllowed(s, tokens.ordinary, random, unfinished);
    }

    private static int firstAllowed(Sampler s, int[] candidates, SplittableRandom random, byte[] unfinished) {
        int[] order = candidates.clone();
        for (int i = 0; i < order.length; i++) {
            int j = i + random.nextInt(order.length - i);
            int t = order[j];
            order[j] = order[i];
            if (allows(s, t, unfinished)) {
                return t;
            }
        }
        return -1;
    }

    private static boolean allows(Sampler s, int token, byte[] unfinished) {
        return utf8Tail(unfinished, tokens.bytes[token]) != null && s.grammarAllows(token);
    }

    /**
     * Text at a point where the grammar allows the end: exactly one JSON document, valid under the
     * schema as the grammar enforces it ({@code enforced}, from {@link #oneOfAsAnyOf}).
     */
    private static void checkDocument(JsonNode schema, JsonNode enforced, String grammar, String text) {
        try (JsonParser p = SchemaCorpus.MAPPER.createParser(text)) {
            p.nextToken();
            p.skipChildren();
            assertThat(p.nextToken()).as("text after the document: %s", quote(text)).isNull();
        } catch (IOException e) {
            throw new AssertionError("the grammar ends with text that is not one JSON document: " + quote(text) + " (" + e.getMessage()
                    + "); schema: " + schema + "\ngrammar:\n" + grammar, e);
        }
        List<String> errors;
        try {
            errors = SchemaValidator.validate(enforced, SchemaValidator.read(text));
        } catch (JsonProcessingException e) {
            throw new AssertionError(e);
        }
        assertThat(errors).as("the grammar ends with a document the schema rejects: %s; schema: %s%ngrammar:%n%s", quote(text), schema,
                grammar).isEmpty();
    }

    /** Where a node of a schema is: a schema, an object or array of schemas, or data (const, enum, required, ...). */
    private enum Place { SCHEMA, SCHEMAS, DATA }

    /** The keywords of the converter's subset whose values are schemas, or objects or arrays of schemas. */
    private static final Set<String> SCHEMA_VALUED = Set.of("additionalProperties", "items");
    private static final Set<String> SCHEMAS_VALUED = Set.of("properties", "$defs", "definitions", "anyOf", "oneOf", "allOf", "prefixItems");

    /**
     * The schema with each {@code oneOf} read as {@code anyOf}, which is how the converter enforces
     * it (docs/server.md): a document that matches more than one alternative is the server's output
     * check's to catch (a 500), not a finding. Each {@code $ref} is rewritten to the same place.
     */
    static JsonNode oneOfAsAnyOf(JsonNode schema) {
        Map<JsonNode, String> places = new IdentityHashMap<>();
        place(schema, Place.SCHEMA, "", places);
        return copy(schema, schema, Place.SCHEMA, places);
    }

    private static Place child(Place parent, String key) {
        return switch (parent) {
            case SCHEMA -> SCHEMAS_VALUED.contains(key) ? Place.SCHEMAS : SCHEMA_VALUED.contains(key) ? Place.SCHEMA : Place.DATA;
            case SCHEMAS -> Place.SCHEMA;
            case DATA -> Place.DATA;
        };
    }

    private static String renamed(Place at, String key) {
        return at == Place.SCHEMA && key.equals("oneOf") ? "anyOf" : key;
    }

    /** Records the pointer (in the rewritten schema) of every object and array under {@code n}. */
    private static void place(JsonNode n, Place at, String pointer, Map<JsonNode, String> places) {
        if (!n.isContainerNode()) {
            return;
        }
        places.put(n, pointer);
        if (n.isArray()) {
            for (int i = 0; i < n.size(); i++) {
                place(n.get(i), at == Place.DATA ? Place.DATA : Place.SCHEMA, pointer + "/" + i, places);
            }
            return;
        }
        for (Map.Entry<String, JsonNode> e : n.properties()) {
            String segment = renamed(at, e.getKey()).replace("~", "~0").replace("/", "~1").replace("%", "%25");
            place(e.getValue(), child(at, e.getKey()), pointer + "/" + segment, places);
        }
    }

    private static JsonNode copy(JsonNode n, JsonNode root, Place at, Map<JsonNode, String> places) {
        if (n.isArray()) {
            ArrayNode out = SchemaCorpus.MAPPER.createArrayNode();
            n.forEach(e -> out.add(copy(e, root, at == Place.DATA ? Place.DATA : Place.SCHEMA, places)));
            return out;
        }
        if (!n.isObject()) {
            return n;
        }
        ObjectNode out = SchemaCorpus.MAPPER.createObjectNode();
        for (Map.Entry<String, JsonNode> e : n.properties()) {
            JsonNode v = e.getValue();
            if (at == Place.SCHEMA && e.getKey().equals("$ref") && v.isTextual()) {
                String target;
                try {
                    target = places.get(SchemaKeywords.resolve(root, v.textValue(), ""));
                } catch (SchemaException unresolved) {
                    target = null; // the converter refused it already
                }
                out.put("$ref", target == null ? v.textValue() : "#" + target); // a boolean schema is where it was
            } else {
                out.set(renamed(at, e.getKey()), copy(v, root, child(at, e.getKey()), places));
            }
        }
        return out;
    }

    /**
     * The unfinished UTF-8 sequence at the end of {@code unfinished} followed by {@code piece}
     * (empty when the text ends a character), or null when they are not well-formed UTF-8
     * (Unicode's table 3-7: no overlong form, no surrogate, nothing above U+10FFFF).
     */
    static byte[] utf8Tail(byte[] unfinished, byte[] piece) {
        byte[] b = Arrays.copyOf(unfinished, unfinished.length + piece.length);
        System.arraycopy(piece, 0, b, unfinished.length, piece.length);
        int i = 0;
        while (i < b.length) {
            int lead = b[i] & 0xFF;
            int more;
            int lo = 0x80;
            int hi = 0xBF;
            if (lead < 0x80) {
                more = 0;
            } else if (lead >= 0xC2 && lead <= 0xDF) {
                more = 1;
            } else if (lead >= 0xE0 && lead <= 0xEF) {
                more = 2;
                lo = lead == 0xE0 ? 0xA0 : 0x80;
                hi = lead == 0xED ? 0x9F : 0xBF;
            } else if (lead >= 0xF0 && lead <= 0xF4) {
                more = 3;
                lo = lead == 0xF0 ? 0x90 : 0x80;
                hi = lead == 0xF4 ? 0x8F : 0xBF;
            } else {
                return null;
            }
            for (int k = 1; k <= more; k++) {
                if (i + k == b.length) {
                    return Arrays.copyOfRange(b, i, b.length);
                }
                int c = b[i + k] & 0xFF;
                if (k == 1 ? c < lo || c > hi : c < 0x80 || c > 0xBF) {
                    return null;
                }
            }
            i += more + 1;
        }
        return new byte[0];
    }

    private static String quote(String text) {
        return JsonSchemaGrammar.dump(SchemaCorpus.MAPPER.getNodeFactory().textNode(text));
    }

    /**
     * The vocabulary as the grammar engine reads it: each token's bytes (with special tokens'
     * text, as llama.cpp's grammar matches them), the end-of-generation token, the tokens that are
     * exactly a {@code "}, {@code ]} or {@code }}, and every token that is neither an end nor empty.
     */
    private static final class Tokens {
        final byte[][] bytes;
        final int end;
        final int[] closing;
        final int[] ordinary;
        final int[] ascii;

        Tokens(Vocabulary v) {
            bytes = new byte[v.size()][];
            List<Integer> close = new ArrayList<>();
            List<Integer> other = new ArrayList<>();
            List<Integer> ascii = new ArrayList<>();
            for (int t = 0; t < v.size(); t++) {
                bytes[t] = v.tokenBytes(t, true);
                String piece = new String(bytes[t], StandardCharsets.UTF_8);
                if (piece.equals("\"") || piece.equals("]") || piece.equals("}")) {
                    close.add(t);
                }
                if (bytes[t].length == 1 && (bytes[t][0] >= 0x20 && bytes[t][0] < 0x7F || bytes[t][0] == '\t' || bytes[t][0] == '\n')) {
                    ascii.add(t);
                }
                if (!v.isEndOfGeneration(t) && bytes[t].length > 0) {
                    other.add(t);
                }
            }
            end = v.eos();
            closing = close.stream().mapToInt(Integer::intValue).toArray();
            ordinary = other.stream().mapToInt(Integer::intValue).toArray();
            this.ascii = ascii.stream().mapToInt(Integer::intValue).toArray();
        }
    }
}
