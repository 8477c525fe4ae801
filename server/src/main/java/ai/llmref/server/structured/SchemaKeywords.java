package ai.llmref.server.structured;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * The JSON Schema subset this server enforces, shared by the grammar converter and the validator:
 * which keywords are supported, which are annotations (ignored, they do not constrain a
 * document), and how a schema's type is determined. Every other keyword is refused: a keyword
 * that is silently ignored would let the model produce documents the client's schema rejects.
 */
final class SchemaKeywords {
    private SchemaKeywords() {}

    /** Keywords that only annotate; they never change which documents are valid. */
    static final Set<String> ANNOTATIONS = Set.of("title", "description", "examples", "$comment", "default", "deprecated",
            "readOnly", "writeOnly", "$defs", "definitions", "$schema", "$id", "$anchor");

    /** Keywords whose constraint the grammar enforces and the validator checks. */
    static final Set<String> SUPPORTED = Set.of("type", "properties", "required", "additionalProperties", "items",
            "prefixItems", "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "minLength",
            "maxLength", "format", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum");

    static final Set<String> TYPES = Set.of("object", "array", "string", "integer", "number", "boolean", "null");

    /** String formats the grammar can express exactly. */
    static final Set<String> FORMATS = Set.of("date", "time", "date-time", "uuid");

    static final Set<String> OBJECT_WORDS = Set.of("properties", "required", "additionalProperties");
    static final Set<String> ARRAY_WORDS = Set.of("items", "prefixItems", "minItems", "maxItems");
    static final Set<String> STRING_WORDS = Set.of("minLength", "maxLength", "format", "pattern");
    static final Set<String> NUMBER_WORDS = Set.of("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum");
    /** Keywords whose value is data (not a schema): its numbers constrain documents. */
    private static final Set<String> VALUE_WORDS = Set.of("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
            "minLength", "maxLength", "minItems", "maxItems", "const", "enum");

    /**
     * A {@code const} or {@code enum}'s values against the schema's {@code type} beside them (if
     * any): each must have it, and the type must be a known one (the output check reads it too, so
     * a grammar that wrote such a value would have its output refused).
     *
     * @throws SchemaException naming the keyword
     */
    static void checkLiteralTypes(JsonNode schema, Iterable<JsonNode> values, String pointer) {
        if (!schema.has("type")) {
            return;
        }
        List<String> types = types(schema, pointer);
        for (JsonNode v : values) {
            if (!SchemaValidator.hasType(v, types)) {
                throw new SchemaException(pointer, schema.has("const") ? "const" : "enum", "the value " + abbreviate(v.toString())
                        + " does not have the schema's type " + types);
            }
        }
    }

    /**
     * Throws on the first keyword that is neither supported nor an annotation, and on a constraint
     * holding a number beyond a double's range (the request parser reads it as Infinity, which
     * has no exact value to enforce).
     */
    static void check(JsonNode schema, String pointer) {
        Iterator<String> names = schema.fieldNames();
        while (names.hasNext()) {
            String k = names.next();
            if (!SUPPORTED.contains(k) && !ANNOTATIONS.contains(k)) {
                throw new SchemaException(pointer + "/" + escape(k), k, "JSON Schema keyword '" + k + "' cannot be enforced by this server");
            }
            if (VALUE_WORDS.contains(k) && !finite(schema.get(k))) {
                throw new SchemaException(pointer + "/" + escape(k), k, "'" + k + "' holds a number beyond the range of a double "
                        + "(about 1.8e308), which cannot be enforced");
            }
        }
    }

    /** Whether every number in a value (a constant, an enum, a bound) is within a double's range. */
    private static boolean finite(JsonNode v) {
        if (v.isContainerNode()) {
            for (JsonNode e : v) {
                if (!finite(e)) {
                    return false;
                }
            }
            return true;
        }
        return SchemaValidator.finite(v);
    }

    /** Supported keywords present besides annotations and the ones allowed. */
    static List<String> others(JsonNode schema, Set<String> allowed) {
        List<String> out = new ArrayList<>();
        Iterator<String> names = schema.fieldNames();
        while (names.hasNext()) {
            String k = names.next();
            if (!ANNOTATIONS.contains(k) && !allowed.contains(k)) {
                out.add(k);
            }
        }
        return out;
    }

    /**
     * The types a schema admits: its {@code type} (a string or an array of strings), else the type its
     * type-specific keywords imply, else empty (any value).
     */
    static List<String> types(JsonNode schema, String pointer) {
        JsonNode t = schema.get("type");
        Set<String> out = new LinkedHashSet<>();
        if (t != null) {
            if (t.isTextual()) {
                out.add(t.textValue());
            } else if (t.isArray() && !t.isEmpty()) {
                for (JsonNode e : t) {
                    if (!e.isTextual()) {
                        throw new SchemaException(pointer + "/type", "type", "'type' must be a string or an array of strings");
                    }
                    out.add(e.textValue());
                }
            } else {
                throw new SchemaException(pointer + "/type", "type", "'type' must be a string or a non-empty array of strings");
            }
            for (String s : out) {
                if (!TYPES.contains(s)) {
                    throw new SchemaException(pointer + "/type", "type", "unknown type '" + s + "'");
                }
            }
            return List.copyOf(out);
        }
        if (hasAny(schema, OBJECT_WORDS)) {
            out.add("object");
        }
        if (hasAny(schema, ARRAY_WORDS)) {
            out.add("array");
        }
        if (hasAny(schema, STRING_WORDS)) {
            out.add("string");
        }
        if (hasAny(schema, NUMBER_WORDS)) {
            throw new SchemaException(pointer, "type", "a schema with numeric bounds needs 'type' integer or number");
        }
        if (out.size() > 1) {
            throw new SchemaException(pointer, "type", "a schema mixing keywords of several types needs a 'type'");
        }
        return List.copyOf(out);
    }

    static boolean hasAny(JsonNode schema, Set<String> words) {
        for (String w : words) {
            if (schema.has(w)) {
                return true;
            }
        }
        return false;
    }

    /** A reference-token of a JSON pointer. */
    static String escape(String token) {
        return token.replace("~", "~0").replace("/", "~1");
    }

    /** Resolves a local reference ("#", "#/$defs/x", ...) in the root schema; anything else is refused. */
    static JsonNode resolve(JsonNode root, String ref, String pointer) {
        if (!ref.startsWith("#")) {
            throw new SchemaException(pointer + "/$ref", "$ref", "only references within the schema ('#/...') are supported, got '"
                    + abbreviate(ref) + "'");
        }
        String frag = ref.substring(1);
        if (!frag.isEmpty() && !frag.startsWith("/")) {
            throw new SchemaException(pointer + "/$ref", "$ref", "anchor references are not supported, got '" + abbreviate(ref) + "'");
        }
        JsonNode at = root;
        if (!frag.isEmpty()) {
            for (String raw : frag.substring(1).split("/", -1)) {
                String tok;
                try {
                    tok = java.net.URLDecoder.decode(raw.replace("+", "%2B"), java.nio.charset.StandardCharsets.UTF_8)
                            .replace("~1", "/").replace("~0", "~");
                } catch (IllegalArgumentException e) {
                    throw new SchemaException(pointer + "/$ref", "$ref", "the reference '" + abbreviate(ref)
                            + "' is not a valid URI fragment: a '%' must start an escape of two hex digits (write '%25' for '%')");
                }
                at = at.isArray() && tok.matches("\\d{1,9}") ? at.get(Integer.parseInt(tok)) : at.get(tok);
                if (at == null) {
                    throw new SchemaException(pointer + "/$ref", "$ref", "the reference '" + abbreviate(ref) + "' does not resolve");
                }
            }
        }
        if (!at.isObject() && !at.isBoolean()) {
            throw new SchemaException(pointer + "/$ref", "$ref", "the reference '" + abbreviate(ref) + "' is not a schema");
        }
        return at;
    }

    static String abbreviate(String s) {
        return s.length() <= 64 ? s : s.substring(0, 61) + "...";
    }
}
