package ai.llmref.server.http;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParseException;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.exc.StreamConstraintsException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;

/** JSON in and out, with the request limits (nesting depth, string and number sizes) enforced while parsing. */
public final class Json {
    private final ObjectMapper mapper;
    private final int maxDepth;

    public Json(int maxDepth) {
        this.maxDepth = maxDepth;
        JsonFactory factory = JsonFactory.builder()
                .streamReadConstraints(StreamReadConstraints.builder()
                        .maxNestingDepth(maxDepth)
                        .maxNumberLength(64)
                        .maxStringLength(64 * 1024 * 1024)
                        .build())
                .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
                .build();
        this.mapper = new ObjectMapper(factory).enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
    }

    /** Parses a request body; anything but one JSON object is a 400 that says what is wrong. */
    public ObjectNode parseObject(byte[] body) {
        JsonNode node;
        try {
            node = mapper.readTree(body);
        } catch (StreamConstraintsException e) {
            throw new ApiException(400, "invalid_request_error", "json_too_deep", null,
                    "the request body is nested deeper than " + maxDepth + " levels or has an oversize value");
        } catch (JsonParseException e) {
            throw ApiException.badRequest(null, "the request body is not valid JSON: " + plain(e.getOriginalMessage()));
        } catch (JsonProcessingException e) {
            // data-binding messages name Jackson's classes and features: say it in our words
            throw ApiException.badRequest(null, "the request body is not valid JSON: it holds more than one value");
        } catch (IOException e) {
            throw ApiException.badRequest(null, "the request body could not be read");
        }
        if (node == null || node.isMissingNode()) {
            throw ApiException.badRequest(null, "the request body is empty; expected a JSON object");
        }
        if (!(node instanceof ObjectNode obj)) {
            throw ApiException.badRequest(null, "the request body must be a JSON object, got " + node.getNodeType().name().toLowerCase());
        }
        return obj;
    }

    /**
     * Jackson's message without its notes on its own parser features, which a client cannot turn
     * on: the note starts at the clause that names a feature ("Non-standard token 'NaN': enable
     * `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow", "... comment? (not recognized as one
     * since Feature 'ALLOW_COMMENTS' not enabled for parser)", "... between tokens (consider
     * enabling `JsonReadFeature.ALLOW_RS_CONTROL_CHAR` to allow use of Record Separators (U+001E))").
     */
    static String plain(String message) {
        if (message == null) {
            return "";
        }
        int f = message.indexOf("Feature");
        if (f < 0) {
            return message;
        }
        int cut = Math.max(message.lastIndexOf(" (", f), Math.max(message.lastIndexOf(": ", f), message.lastIndexOf("; ", f)));
        return message.substring(0, cut < 0 ? f : cut).strip();
    }

    public ObjectNode object() {
        return mapper.createObjectNode();
    }

    public byte[] write(JsonNode node) {
        try {
            return mapper.writeValueAsBytes(node);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
