package ai.llmref.server.structured;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * src/test/cpp/schema_grammar_ref.cpp built against the pinned llama.cpp tree of the native
 * build: llama.cpp's own JSON-schema converter, and llama.cpp's grammar engine deciding whether a
 * grammar accepts a document. g++ and the native build are required; their absence fails the test.
 */
final class GrammarReference {
    private static final long TIMEOUT_SECONDS = 120;
    private final Path binary;
    private final Path work;
    private int files;

    private GrammarReference(Path binary, Path work) {
        this.binary = binary;
        this.work = work;
    }

    static GrammarReference build() throws Exception {
        Properties build = new Properties();
        try (InputStream in = new FileInputStream(System.getProperty("native.build.info"))) {
            build.load(in);
        }
        Path src = dir(build, "llama.cpp.dir");
        Path lib = dir(build, "native.lib.dir");
        Path module = Path.of(System.getProperty("user.dir"));
        Path source = module.resolve("src/test/cpp/schema_grammar_ref.cpp");
        assertThat(source).isRegularFile();
        Path out = module.resolve("target/schema-grammar-ref");
        Files.createDirectories(out);
        Path binary = out.resolve("schema_grammar_ref");
        Files.deleteIfExists(binary);
        List<String> cmd = new ArrayList<>(List.of("g++", "-O1", "-std=c++17", "-I" + src.resolve("common"), "-I" + src.resolve("src"),
                "-I" + src.resolve("include"), "-I" + src.resolve("ggml/include"), "-I" + src.resolve("vendor"), source.toString()));
        for (String f : List.of("json-schema-to-grammar.cpp", "json-schema.cpp", "json.cpp", "trie.cpp", "unicode.cpp")) {
            cmd.add(src.resolve("common").resolve(f).toString());
        }
        cmd.addAll(List.of("-L" + lib, "-lllama", "-lggml", "-lggml-base", "-Wl,-rpath," + lib, "-o", binary.toString()));
        Output gpp = run(cmd);
        assertThat(gpp.exitCode()).as("g++ failed:\n%s%s", gpp.stdout(), gpp.stderr()).isZero();
        return new GrammarReference(binary, Files.createTempDirectory(out, "work"));
    }

    /** llama.cpp's GBNF for the schema, or null when its converter refuses the schema. */
    String llamaGrammar(JsonNode schema) throws Exception {
        Path f = write(schema.toString());
        Output o = run(List.of(binary.toString(), "gbnf", f.toString()));
        return o.exitCode() == 0 ? o.stdout() : null;
    }

    /** Whether the grammar accepts each document, by llama.cpp's grammar engine. */
    boolean[] accepts(String grammar, List<String> documents) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(binary.toString(), "match", write(grammar).toString()));
        for (String d : documents) {
            cmd.add(write(d).toString());
        }
        Output o = run(cmd);
        assertThat(o.exitCode()).as("the grammar does not load in llama.cpp: %s%n%s", o.stderr(), grammar).isZero();
        String[] lines = o.stdout().strip().split("\n");
        assertThat(lines).hasSize(documents.size());
        boolean[] out = new boolean[lines.length];
        for (int i = 0; i < lines.length; i++) {
            out[i] = lines[i].equals("1");
        }
        return out;
    }

    private Path write(String text) throws IOException {
        Path f = work.resolve("f" + files++);
        Files.writeString(f, text, StandardCharsets.UTF_8);
        return f;
    }

    private static Path dir(Properties build, String key) {
        String v = build.getProperty(key);
        assertThat(v).as("%s in the native build info", key).isNotBlank();
        Path p = Path.of(v);
        assertThat(p).as(key).isDirectory();
        return p;
    }

    record Output(int exitCode, String stdout, String stderr) {}

    private static Output run(List<String> command) throws Exception {
        Process p = new ProcessBuilder(command).start();
        // a thread each: on the common pool of a small machine one read can wait for the other while the
        // program blocks on a full pipe (a grammar that does not load is echoed on stderr)
        CompletableFuture<String> out = CompletableFuture.supplyAsync(() -> read(p.getInputStream()), r -> Thread.ofPlatform().daemon().start(r));
        CompletableFuture<String> err = CompletableFuture.supplyAsync(() -> read(p.getErrorStream()), r -> Thread.ofPlatform().daemon().start(r));
        if (!p.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IllegalStateException("timed out: " + command.getFirst());
        }
        return new Output(p.exitValue(), out.get(), err.get());
    }

    private static String read(InputStream in) {
        try (in) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
