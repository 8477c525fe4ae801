package ai.llmref.server.config;

/** An invalid configuration value: the message names the key and the rule. Start-up stops. */
public final class ConfigException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public ConfigException(String key, String rule, Object value) {
        super("invalid configuration: " + key + " " + rule + (value == null ? "" : ", got '" + value + "'"));
    }
}
