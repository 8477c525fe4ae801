package ai.llmref.server.http;

import io.helidon.common.GenericType;
import io.helidon.common.media.type.MediaType;
import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;
import io.helidon.webserver.http.spi.Sink;
import io.helidon.webserver.http.spi.SinkProvider;
import io.helidon.webserver.http.spi.SinkProviderContext;
import java.util.function.BiConsumer;

/**
 * Sends a streaming response's status line and headers before its first body byte.
 *
 * <p>Helidon's response output stream holds back the headers until the first body bytes are
 * written and pushed ({@code flush()} with nothing written sends nothing), and its public API has
 * one way to push headers alone: the {@link SinkProviderContext#flushHeaders()} callback handed to
 * sink providers (Helidon's own SSE sink uses it the same way: output stream first, then
 * {@code flushHeaders()}). This provider's sink carries no events; obtaining it is the flush.
 * Registered in {@code META-INF/services}.
 */
public final class EarlyHeaders implements SinkProvider<Void> {
    /** The sink type that selects this provider. */
    public interface Flushed extends Sink<Void> {
    }

    private static final GenericType<Flushed> TYPE = GenericType.create(Flushed.class);
    private static final Flushed DONE = new Flushed() {
        @Override
        public Sink<Void> emit(Void event) {
            throw new UnsupportedOperationException("headers only");
        }

        @Override
        public void close() {
        }
    };

    /**
     * Sends {@code res}'s status and headers now. {@code res.outputStream()} must have been
     * obtained first (the headers go out through it, chunked); later writes to it are the body.
     */
    public static void send(ServerResponse res) {
        res.sink(TYPE);
    }

    @Override
    public boolean supports(GenericType<? extends Sink<?>> type, ServerRequest request) {
        return TYPE.equals(type);
    }

    @Override
    @SuppressWarnings("unchecked")
    public <X extends Sink<Void>> X create(SinkProviderContext context) {
        context.flushHeaders();
        return (X) DONE;
    }

    @Override
    @Deprecated
    @SuppressWarnings("removal")
    public <X extends Sink<Void>> X create(ServerResponse response, BiConsumer<Object, MediaType> eventConsumer,
            Runnable closeRunnable) {
        throw new UnsupportedOperationException("needs the SinkProviderContext API (Helidon 4.1.2 or later)");
    }
}
