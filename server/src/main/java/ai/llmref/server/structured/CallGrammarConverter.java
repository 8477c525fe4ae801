package ai.llmref.server.structured;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What a converter of a function's schema into a tool-call notation's rules holds (Gemma's,
 * MiniMax M3's): the schema's root and the rules' prefix, the rules made, and the values left to
 * the JSON grammar (by rule name, with their pointers), which {@link JsonSchemaGrammar#rules}
 * then makes in one converter.
 */
abstract class CallGrammarConverter {
    final JsonNode root;
    final String prefix;
    final Map<String, String> rules = new LinkedHashMap<>();
    /** Values whose rules the JSON grammar makes, by rule name, and their pointers. */
    final Map<String, JsonNode> json = new LinkedHashMap<>();
    final Map<String, String> pointers = new LinkedHashMap<>();
    /** What the names of this converter's rules begin with after the prefix. */
    private final String tag;
    private int next;

    CallGrammarConverter(JsonNode root, String prefix, String tag) {
        this.root = root;
        this.prefix = prefix;
        this.tag = tag;
    }

    /** A new rule's name. */
    String newRule() {
        return prefix + tag + next++;
    }

    /** A value the JSON grammar writes: its rule, the schema's, named here. */
    String jsonRule(JsonNode schema, String ptr) {
        String rule = newRule();
        json.put(rule, schema);
        pointers.put(rule, ptr);
        return rule;
    }

    /** All the rules: this converter's, and those of the values left to the JSON grammar. */
    Map<String, String> allRules() {
        rules.putAll(JsonSchemaGrammar.rules(root, prefix, json, pointers));
        return rules;
    }
}
