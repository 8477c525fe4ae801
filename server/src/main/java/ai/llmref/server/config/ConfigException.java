package ai.llmref.server.config;

/** An invalid configuration value or an unknown key: the message names the key and the rule. Start-up stops. */
public final class ConfigException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public ConfigException(String key, String rule, Object value) {
        super("invalid configuration: " + key + " " + rule + (value == null ? "" : ", got '" + value + "'"));
    }

    /** Several problems, each a key and its rule, one line each. */
    public ConfigException(java.util.List<String> problems) {
        super(String.join("\n", problems.stream().map(p -> "invalid configuration: " + p).toList()));
    }
}
