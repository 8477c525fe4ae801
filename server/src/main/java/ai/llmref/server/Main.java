package ai.llmref.server;

import ai.llmref.server.config.ConfigException;
import ai.llmref.server.config.ServerConfig;
import ai.llmref.server.observe.ShutdownSafeLogManager;
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
        if (System.getProperty("java.util.logging.manager") == null) {
            System.setProperty("java.util.logging.manager", ShutdownSafeLogManager.class.getName());
        }
        jsonLogging();
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
            Duration grace = Duration.ofMillis(config.http().shutdownGraceMillis());
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                server.drainAndStop(grace);
                ShutdownSafeLogManager.resetAfterShutdown();
            }, "shutdown"));
        } catch (ConfigException e) {
            System.err.println(e.getMessage());
            System.exit(2);
        }
    }

    /** JSON lines on stderr, unless the operator brings a logging configuration of their own. */
    static void jsonLogging() {
        if (System.getProperty("java.util.logging.config.file") != null) {
            return;
        }
        java.util.logging.Logger root = java.util.logging.Logger.getLogger("");
        for (java.util.logging.Handler h : root.getHandlers()) {
            root.removeHandler(h);
        }
        java.util.logging.ConsoleHandler console = new java.util.logging.ConsoleHandler();
        console.setFormatter(new ai.llmref.server.observe.JsonLogFormatter());
        console.setLevel(java.util.logging.Level.ALL);
        root.addHandler(console);
        root.setLevel(java.util.logging.Level.INFO);
    }

    private static String require(String option, String value) {
        if (value == null) {
            throw new ConfigException(option, "needs a value", null);
        }
        return value;
    }
}
