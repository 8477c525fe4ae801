package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.llama.Sampler;
import ai.llmref.llama.Vocabulary;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;

/**
 * Generates text with a grammar in llama.cpp's grammar engine, without the model, as the fuzz
 * targets that check what a grammar lets a model write do ({@link SchemaGrammarFuzzTest},
 * {@link ToolGrammarFuzzTest}): at each step, where the grammar allows the end, the text so far is
 * given to a check and the walk may end there; otherwise the first token the grammar allows in a
 * random order is accepted. From a step drawn per walk on, it ends where it can and tries the
 * closing tokens first, so that most walks finish. The order comes from a generator seeded by the
 * input, so an input always makes the same walk: 16 tokens drawn from the vocabulary, then the
 * single ASCII characters, then the whole vocabulary. Tokens that would make the text ill-formed
 * UTF-8 are passed over: llama.cpp's grammar engine decodes bytes leniently (overlong forms,
 * surrogates), which no grammar can prevent, and a model writes UTF-8.
 *
 * <p>No step (loading the grammar, or checking candidate tokens and accepting one) may take longer
 * than {@link #STEP_LIMIT_MILLIS}: the server samples every request's grammar on its one scheduler
 * thread. A walk runs on a thread of its own, watched, so that a step stuck in native code is
 * reported at the limit (and left running: {@link #leftRunning}).
 */
final class GrammarWalk {
    /**
     * Longest a step of a walk may take. On this project's 2-core test machine, in two minutes of
     * fuzzing (Jazzer's instrumentation on), 98% of 551,000 steps took under 1 ms and the slowest
     * 0.66 s; the schemas of the slowest steps, walked again outside the fuzzer, took 26 ms at most,
     * so those were pauses of the collector or of the shared machine. Two seconds stays clear of
     * such pauses and still reports in seconds a grammar that would hold the scheduler for minutes.
     */
    static final long STEP_LIMIT_MILLIS = 2_000;
    /** Tokens drawn from the whole vocabulary at each step before the search narrows to single characters. */
    static final int GUESSES = 16;

    private final Vocabulary vocabulary;
    private final Tokens tokens;
    private final int maxTokens;
    /**
     * Set when a walk ran past {@link #STEP_LIMIT_MILLIS} and was left running in llama.cpp (native
     * code cannot be interrupted): the model it reads must then not be freed, as freeing waits for it.
     */
    private volatile boolean leftRunning;

    /**
     * @param maxTokens most tokens a walk generates
     * @param closing   the pieces whose tokens a closing walk tries first
     */
    GrammarWalk(Vocabulary vocabulary, int maxTokens, Set<String> closing) {
        this.vocabulary = vocabulary;
        this.tokens = new Tokens(vocabulary, closing);
        this.maxTokens = maxTokens;
    }

    boolean leftRunning() {
        return leftRunning;
    }

    /** What a walk is doing: its step (-1: loading the grammar), when the step began, and the text so far. */
    private record Step(int index, long startNanos, String text) {}

    /**
     * Walks {@code grammar} (root {@code root}) with the order {@code seed} gives, handing {@code atEnd}
     * the text wherever the grammar allows the end; {@code what} names the input in a failure.
     */
    void watched(String grammar, long seed, Consumer<String> atEnd, String what) {
        AtomicReference<Step> current = new AtomicReference<>(new Step(-1, System.nanoTime(), ""));
        CompletableFuture<Void> done = new CompletableFuture<>();
        Thread.ofPlatform().daemon().name("grammar-walk").start(() -> {
            try {
                walk(grammar, seed, atEnd, what, current);
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
                    leftRunning = true;
                    throw new AssertionError("a grammar step took more than " + STEP_LIMIT_MILLIS + " ms ("
                            + (s.index() < 0 ? "loading the grammar" : "token " + s.index() + " after " + quote(s.text()))
                            + "); " + what + "\ngrammar:\n" + grammar);
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

    private void walk(String grammar, long seed, Consumer<String> atEnd, String what, AtomicReference<Step> current) {
        SplittableRandom random = new SplittableRandom(seed);
        int closeFrom = random.nextInt(maxTokens / 2);
        ByteArrayOutputStream text = new ByteArrayOutputStream();
        byte[] unfinished = {}; // an unfinished UTF-8 sequence at the end of the text
        try (Sampler s = Sampler.builder(vocabulary).grammar(grammar, "root").build()) {
            for (int i = 0; i < maxTokens; i++) {
                current.set(new Step(i, System.nanoTime(), text.toString(StandardCharsets.UTF_8)));
                boolean end = unfinished.length == 0 && s.grammarAllows(tokens.end);
                if (end) {
                    atEnd.accept(text.toString(StandardCharsets.UTF_8));
                    if (i >= closeFrom || random.nextInt(4) == 0) {
                        return;
                    }
                }
                int t = pick(s, random, i >= closeFrom, unfinished);
                if (t < 0) {
                    assertThat(end).as("the grammar allows no token and not the end after %s; %s%ngrammar:%n%s",
                            quote(text.toString(StandardCharsets.UTF_8)), what, grammar).isTrue();
                    return;
                }
                s.accept(t);
                text.writeBytes(tokens.bytes[t]);
                unfinished = utf8Tail(unfinished, tokens.bytes[t]);
            }
            current.set(new Step(maxTokens, System.nanoTime(), text.toString(StandardCharsets.UTF_8)));
            if (unfinished.length == 0 && s.grammarAllows(tokens.end)) {
                atEnd.accept(text.toString(StandardCharsets.UTF_8));
            }
        }
    }

    /**
     * A token the grammar allows, or -1 when it allows none: when {@code closing}, mostly a closing
     * token; else one of {@link #GUESSES} tokens drawn from the vocabulary; else the first allowed
     * single ASCII character, in a random order (where the grammar allows a few characters only, as
     * around keys, they are among these); else the first allowed token of the whole vocabulary in a
     * random order.
     */
    private int pick(Sampler s, SplittableRandom random, boolean closing, byte[] unfinished) {
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

    private int firstAllowed(Sampler s, int[] candidates, SplittableRandom random, byte[] unfinished) {
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

    private boolean allows(Sampler s, int token, byte[] unfinished) {
        return utf8Tail(unfinished, tokens.bytes[token]) != null && s.grammarAllows(token);
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

    static String quote(String text) {
        return JsonSchemaGrammar.dump(SchemaCorpus.MAPPER.getNodeFactory().textNode(text));
    }

    /**
     * The vocabulary as the grammar engine reads it: each token's bytes (with special tokens'
     * text, as llama.cpp's grammar matches them), the end-of-generation token, the closing tokens,
     * and every token that is neither an end nor empty.
     */
    private static final class Tokens {
        final byte[][] bytes;
        final int end;
        final int[] closing;
        final int[] ordinary;
        final int[] ascii;

        Tokens(Vocabulary v, Set<String> closingPieces) {
            bytes = new byte[v.size()][];
            List<Integer> close = new ArrayList<>();
            List<Integer> other = new ArrayList<>();
            List<Integer> ascii = new ArrayList<>();
            for (int t = 0; t < v.size(); t++) {
                bytes[t] = v.tokenBytes(t, true);
                String piece = new String(bytes[t], StandardCharsets.UTF_8);
                if (closingPieces.contains(piece)) {
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
