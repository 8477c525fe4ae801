package ai.llmref.server;

import ai.llmref.server.config.ConfigException;
import ai.llmref.server.config.ServerConfig;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;

/**
 * {@code java -jar server.jar [--config FILE] [--model PATH] [--host H] [--port N]}. The options are
 * shortcuts for the configuration keys (model.path, server.host, server.port); see docs/server.md.
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        Path file = null;
        Map<String, String> overrides = new HashMap<>();
        try {
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                String v = i + 1 < args.length ? args[i + 1] : null;
                switch (a) {
                    case "--config" -> file = Path.of(require(a, v));
                    case "--model" -> overrides.put("model.path", require(a, v));
                    case "--host" -> overrides.put("server.host", require(a, v));
                    case "--port" -> overrides.put("server.port", require(a, v));
                    case "-h", "--help" -> {
                        System.out.println("usage: server [--config FILE] [--model PATH] [--host H] [--port N]   (docs/server.md)");
                        return;
                    }
                    default -> throw new ConfigException("command line", "has an unknown option (see --help)", a);
                }
                i++;
            }
            ServerConfig config = ServerConfig.from(ServerConfig.load(file, overrides));
            Server server = Server.start(config);
            Runtime.getRuntime().addShutdownHook(new Thread(() -> server.drainAndStop(Duration.ofSeconds(30)), "shutdown"));
        } catch (ConfigException e) {
            System.err.println(e.getMessage());
            System.exit(2);
        }
    }

    private static String require(String option, String value) {
        if (value == null) {
            throw new ConfigException(option, "needs a value", null);
        }
        return value;
    }
}
