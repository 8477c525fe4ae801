package ai.llmref.server.observe;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.time.Instant;
import java.util.logging.Formatter;
import java.util.logging.LogRecord;

/**
 * java.util.logging as JSON lines: {@code {"ts","level","logger","msg"[,"error"]}}. Access-log
 * records (already JSON) are written as they are. Installed by {@code Main} unless the operator
 * passes their own {@code java.util.logging.config.file}.
 */
public final class JsonLogFormatter extends Formatter {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Override
    public String format(LogRecord r) {
        String msg = formatMessage(r);
        if ("ai.llmref.access".equals(r.getLoggerName())) {
            return msg + System.lineSeparator();
        }
        ObjectNode o = JSON.createObjectNode();
        o.put("ts", Instant.ofEpochMilli(r.getMillis()).toString());
        o.put("level", r.getLevel().getName());
        o.put("logger", r.getLoggerName());
        o.put("msg", msg);
        if (r.getThrown() != null) {
            StringWriter sw = new StringWriter();
            r.getThrown().printStackTrace(new PrintWriter(sw));
            o.put("error", sw.toString());
        }
        return o + System.lineSeparator();
    }
}
