package ai.llmref.server.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

/** Typed, range-checked reads of request fields; each failure names the field. Absent or null means "not given". */
final class Params {
    private Params() {}

    static JsonNode get(ObjectNode o, String name) {
        JsonNode n = o.get(name);
        return n == null || n.isNull() ? null : n;
    }

    static String string(ObjectNode o, String name) {
        JsonNode n = get(o, name);
        if (n == null) {
            return null;
        }
        if (!n.isTextual()) {
            throw ApiException.badRequest(name, "'" + name + "' must be a string, got " + kind(n));
        }
        return n.textValue();
    }

    static Boolean bool(ObjectNode o, String name) {
        JsonNode n = get(o, name);
        if (n == null) {
            return null;
        }
        if (!n.isBoolean()) {
            throw ApiException.badRequest(name, "'" + name + "' must be a boolean, got " + kind(n));
        }
        return n.booleanValue();
    }

    static Long integer(ObjectNode o, String name, long min, long max) {
        JsonNode n = get(o, name);
        if (n == null) {
            return null;
        }
        if (!n.isIntegralNumber() && !(n.isNumber() && n.doubleValue() == Math.rint(n.doubleValue()))) {
            throw ApiException.badRequest(name, "'" + name + "' must be an integer, got " + kind(n));
        }
        if (!n.canConvertToLong() || n.longValue() < min || n.longValue() > max) {
            throw ApiException.badValue(name, "'" + name + "' must be between " + min + " and " + max + ", got " + n.asText());
        }
        return n.longValue();
    }

    static Float number(ObjectNode o, String name, double min, double max) {
        JsonNode n = get(o, name);
        if (n == null) {
            return null;
        }
        if (!n.isNumber()) {
            throw ApiException.badRequest(name, "'" + name + "' must be a number, got " + kind(n));
        }
        double v = n.doubleValue();
        if (!(v >= min && v <= max)) {
            throw ApiException.badValue(name, "'" + name + "' must be between " + min + " and " + max + ", got " + n.asText());
        }
        return (float) v;
    }

    /** A string field that must be there: {@code where.field is required} otherwise. */
    static String required(ObjectNode o, String field, String where) {
        String v = string(o, field);
        if (v == null) {
            throw ApiException.badRequest(where + "." + field, where + "." + field + " is required");
        }
        return v;
    }

    /** Element {@code i} of an array that holds objects: {@code where must be an object} otherwise. */
    static ObjectNode object(JsonNode array, int i, String where) {
        if (!(array.get(i) instanceof ObjectNode o)) {
            throw ApiException.badRequest(where, where + " must be an object");
        }
        return o;
    }

    static String kind(JsonNode n) {
        return switch (n.getNodeType()) {
            case ARRAY -> "an array";
            case OBJECT, POJO -> "an object";
            case STRING -> "a string";
            case NUMBER -> "a number";
            case BOOLEAN -> "a boolean";
            default -> n.getNodeType().name().toLowerCase();
        };
    }
}
