package ai.llmref.llama;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * llama.cpp's own tokenizer vectors ({@code models/ggml-vocab-*.gguf} with {@code .inp}/{@code .out})
 * from the pinned tree, checked through {@link Vocabulary#tokenize} exactly as the tree's
 * {@code tests/test-tokenizer-0.cpp} checks them: cases split on {@code "\n__ggml_vocab_test__\n"},
 * one stripped {@code .out} line of space-separated ids per case, {@code add_special=false},
 * {@code parse_special=false}, token for token. Like the C++ test, every vocab is tokenized on
 * several threads at once and every thread's result must match. The C++ test asserts nothing about
 * detokenizing, so neither does this one; detokenized texts only appear in failure messages.
 */
class TokenizerConformanceTest {
    private static final String SEPARATOR = "\n__ggml_vocab_test__\n";
    private static final int MIN_VOCABS = 10;
    private static final int THREADS = 4;

    /** One vocab's vectors, in file order. */
    record Case(int index, String input, int[] expected) {}

    @TestFactory
    Stream<DynamicTest> everyVocabWithVectorsTokenizesExactly() {
        List<Path> vocabs = vocabsWithVectors();
        assertThat(vocabs).as("ggml-vocab-*.gguf with .inp and .out in %s", modelsDir()).hasSizeGreaterThanOrEqualTo(MIN_VOCABS);
        return vocabs.stream().map(v -> DynamicTest.dynamicTest(v.getFileName().toString(), v.toUri(), () -> check(v)));
    }

    /**
     * Fill-in-the-middle tokens of the code vocabularies (StarCoder's, DeepSeek Coder's), found by
     * llama.cpp by their text: prefix, suffix, middle, the ids its tokenizer gives those texts; a
     * vocabulary without them (stories260K, Llama 3's) has none.
     */
    @org.junit.jupiter.api.Test
    void fillInTheMiddleTokensAreFound() {
        Map<String, String[]> vocabs = Map.of("ggml-vocab-starcoder.gguf", new String[] {"<fim_prefix>", "<fim_suffix>", "<fim_middle>"},
                "ggml-vocab-deepseek-coder.gguf", new String[] {"<\uFF5Cfim\u2581begin\uFF5C>", "<\uFF5Cfim\u2581hole\uFF5C>",
                        "<\uFF5Cfim\u2581end\uFF5C>"});
        for (Map.Entry<String, String[]> e : vocabs.entrySet()) {
            try (LlamaModel code = LlamaModel.load(modelsDir().resolve(e.getKey()), ModelParams.defaults().withGpuLayers(0).withVocabOnly(true))) {
                Vocabulary v = code.vocabulary();
                int[] fim = v.fillInTheMiddle();
                assertThat(fim).as(e.getKey()).isNotNull();
                int[] byText = new int[3];
                for (int i = 0; i < 3; i++) {
                    int[] t = v.tokenize(e.getValue()[i], false, true);
                    assertThat(t).as(e.getValue()[i]).hasSize(1);
                    byText[i] = t[0];
                }
                assertThat(fim).as(e.getKey()).containsExactly(byText);
            }
        }
        try (LlamaModel llama3 = LlamaModel.load(modelsDir().resolve("ggml-vocab-llama-bpe.gguf"),
                ModelParams.defaults().withGpuLayers(0).withVocabOnly(true))) {
            assertThat(llama3.vocabulary().fillInTheMiddle()).isNull();
        }
        try (LlamaModel stories = LlamaModel.load(TestModels.stories(), ModelParams.defaults().withVocabOnly(true))) {
            assertThat(stories.vocabulary().fillInTheMiddle()).isNull();
        }
    }

    private static Path modelsDir() {
        Path models = TestModels.llamaCppSource().resolve("models");
        if (!Files.isDirectory(models)) {
            throw new IllegalStateException("the pinned llama.cpp tree has no models/ directory at " + models
                    + ": the tokenizer vectors are missing");
        }
        return models;
    }

    static List<Path> vocabsWithVectors() {
        try (Stream<Path> files = Files.list(modelsDir())) {
            return files.filter(p -> p.getFileName().toString().matches("ggml-vocab-.*\\.gguf"))
                    .filter(p -> Files.isRegularFile(sibling(p, ".inp")) && Files.isRegularFile(sibling(p, ".out")))
                    .sorted()
                    .toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static Path sibling(Path vocab, String suffix) {
        return vocab.resolveSibling(vocab.getFileName() + suffix);
    }

    private static void check(Path vocabFile) throws Exception {
        List<Case> cases = readCases(vocabFile);
        try (LlamaModel model = LlamaModel.load(vocabFile, ModelParams.defaults().withGpuLayers(0).withVocabOnly(true))) {
            Vocabulary vocab = model.vocabulary();
            List<int[][]> perThread = tokenizeConcurrently(vocab, cases);
            List<String> mismatches = new ArrayList<>();
            for (Case c : cases) {
                List<Integer> wrongThreads = new ArrayList<>();
                int[] firstWrong = null;
                for (int t = 0; t < perThread.size(); t++) {
                    int[] got = perThread.get(t)[c.index()];
                    if (!Arrays.equals(got, c.expected())) {
                        wrongThreads.add(t);
                        firstWrong = firstWrong == null ? got : firstWrong;
                    }
                }
                if (firstWrong != null) {
                    mismatches.add("case " + c.index() + ": input " + quoted(c.input())
                            + "\n    expected " + Arrays.toString(c.expected()) + " " + quoted(detokenized(vocab, c.expected()))
                            + "\n    got      " + Arrays.toString(firstWrong) + " " + quoted(detokenized(vocab, firstWrong))
                            + " (threads " + wrongThreads + " of " + perThread.size() + ")");
                }
            }
            if (!mismatches.isEmpty()) {
                fail(vocabFile.getFileName() + ": " + mismatches.size() + " of " + cases.size() + " cases differ from "
                        + sibling(vocabFile, ".out").getFileName() + ":\n  " + String.join("\n  ", mismatches));
            }
            System.out.println(vocabFile.getFileName() + ": " + cases.size() + " cases match on " + perThread.size() + " threads");
        }
    }

    /** Every case tokenized by each of {@link #THREADS} threads running at the same time. */
    private static List<int[][]> tokenizeConcurrently(Vocabulary vocab, List<Case> cases) throws InterruptedException {
        List<Future<int[][]>> futures = new ArrayList<>();
        try (ExecutorService pool = Executors.newFixedThreadPool(THREADS)) {
            for (int t = 0; t < THREADS; t++) {
                futures.add(pool.submit(() -> {
                    int[][] out = new int[cases.size()][];
                    for (Case c : cases) {
                        out[c.index()] = vocab.tokenize(c.input(), false, false);
                    }
                    return out;
                }));
            }
        }
        List<int[][]> results = new ArrayList<>();
        for (Future<int[][]> f : futures) {
            try {
                results.add(f.get());
            } catch (ExecutionException e) {
                throw new AssertionError("tokenizing failed: " + e.getCause(), e.getCause());
            }
        }
        return results;
    }

    /** The vectors as test-tokenizer-0.cpp's read_tests reads them. */
    static List<Case> readCases(Path vocabFile) throws IOException {
        Path inp = sibling(vocabFile, ".inp");
        Path out = sibling(vocabFile, ".out");
        List<String> inputs = splitInputs(strictUtf8(Files.readAllBytes(inp), inp));
        List<String> lines = getlines(Files.readString(out, StandardCharsets.US_ASCII));
        assertThat(inputs).as("%s: no cases (test-tokenizer-0 fails with 'no tests found')", inp.getFileName()).isNotEmpty();
        assertThat(lines).as("%s lines vs %s cases (test-tokenizer-0 rejects a count mismatch)", out.getFileName(), inp.getFileName())
                .hasSameSizeAs(inputs);
        List<Case> cases = new ArrayList<>();
        for (int i = 0; i < inputs.size(); i++) {
            cases.add(new Case(i, inputs.get(i), parseIds(lines.get(i), out, i)));
        }
        return cases;
    }

    /** A separator-terminated last case yields no empty case after it; an unterminated one still counts. */
    static List<String> splitInputs(String raw) {
        List<String> parts = new ArrayList<>();
        int pos = 0;
        while (pos < raw.length()) {
            int next = raw.indexOf(SEPARATOR, pos);
            if (next < 0) {
                parts.add(raw.substring(pos));
                break;
            }
            parts.add(raw.substring(pos, next));
            pos = next + SEPARATOR.length();
        }
        return parts;
    }

    /** {@code std::getline} lines: no empty line after a final newline. */
    static List<String> getlines(String text) {
        List<String> lines = new ArrayList<>(Arrays.asList(text.split("\n", -1)));
        if (lines.getLast().isEmpty()) {
            lines.removeLast();
        }
        return lines;
    }

    /** {@code string_strip}, then ids separated by single spaces; a blank line means no tokens. */
    static int[] parseIds(String line, Path file, int index) {
        String stripped = stripCSpace(line);
        if (stripped.isEmpty()) {
            return new int[0];
        }
        try {
            return Arrays.stream(stripped.split(" ", -1)).mapToInt(Integer::parseInt).toArray();
        } catch (NumberFormatException e) {
            throw new IllegalStateException(file.getFileName() + " line " + (index + 1) + " is not a list of token ids: " + quoted(line), e);
        }
    }

    /** Strips what C's {@code isspace} matches (Java's strip() also takes other characters). */
    private static String stripCSpace(String s) {
        int start = 0;
        int end = s.length();
        while (start < end && " \t\n\u000B\f\r".indexOf(s.charAt(start)) >= 0) {
            start++;
        }
        while (end > start && " \t\n\u000B\f\r".indexOf(s.charAt(end - 1)) >= 0) {
            end--;
        }
        return s.substring(start, end);
    }

    /** The inputs go to llama.cpp as UTF-8 from a Java String, so they must be valid UTF-8 to arrive unchanged. */
    private static String strictUtf8(byte[] bytes, Path file) {
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new IllegalStateException(file + " is not valid UTF-8; its cases cannot pass through a Java String unchanged", e);
        }
    }

    /** As the C++ test's diagnostics render tokens: specials included ({@code common_detokenize(..., true)}). */
    private static String detokenized(Vocabulary vocab, int[] tokens) {
        try {
            return vocab.detokenize(tokens, false, true);
        } catch (InvalidInputException e) {
            return "<not detokenizable: " + e.getMessage() + ">";
        }
    }

    private static String quoted(String s) {
        StringBuilder b = new StringBuilder("\"");
        s.codePoints().forEach(cp -> {
            switch (cp) {
                case '\n' -> b.append("\\n");
                case '\t' -> b.append("\\t");
                case '\r' -> b.append("\\r");
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                default -> {
                    if (Character.isISOControl(cp)) {
                        b.append(String.format("\\u%04x", cp));
                    } else {
                        b.appendCodePoint(cp);
                    }
                }
            }
        });
        return b.append('"').toString();
    }
}
