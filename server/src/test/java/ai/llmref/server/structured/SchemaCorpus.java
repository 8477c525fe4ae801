package ai.llmref.server.structured;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.networknt.schema.InputFormat;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SchemaRegistryConfig;
import com.networknt.schema.SpecificationVersion;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * The schema corpus of src/test/resources/schemas: real-world shaped schemas, each with documents
 * that are valid under it (written in the layout a grammar produces: properties in schema order),
 * invalid documents, and valid documents in another property order. Also the independent
 * reference validator (networknt json-schema-validator, draft 2020-12, formats asserted).
 */
public final class SchemaCorpus {
    public static final ObjectMapper MAPPER = new ObjectMapper();
    private static final SchemaRegistry REGISTRY = SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_2020_12,
            b -> b.schemaRegistryConfig(SchemaRegistryConfig.builder().formatAssertionsEnabled(true).build()));

    /** One corpus file. */
    public record Entry(String name, JsonNode schema, List<JsonNode> valid, List<JsonNode> invalid, List<JsonNode> unordered) {
        @Override
        public String toString() {
            return name;
        }
    }

    private SchemaCorpus() {}

    public static List<Entry> all() {
        try {
            Path dir = Path.of(SchemaCorpus.class.getClassLoader().getResource("schemas").toURI());
            List<Entry> out = new ArrayList<>();
            try (Stream<Path> files = Files.list(dir)) {
                for (Path f : files.filter(p -> p.toString().endsWith(".json")).sorted().toList()) {
                    JsonNode n = MAPPER.readTree(f.toFile());
                    out.add(new Entry(f.getFileName().toString().replace(".json", ""), n.get("schema"), list(n.get("valid")),
                            list(n.get("invalid")), list(n.get("unordered"))));
                }
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    private static List<JsonNode> list(JsonNode a) {
        List<JsonNode> out = new ArrayList<>();
        if (a != null) {
            a.forEach(out::add);
        }
        return out;
    }

    /** The reference validator's verdict: the errors it reports (empty: valid). */
    public static List<String> referenceErrors(JsonNode schema, String document) {
        return REGISTRY.getSchema(schema.toString(), InputFormat.JSON).validate(document, InputFormat.JSON).stream()
                .map(e -> e.toString()).toList();
    }
}
