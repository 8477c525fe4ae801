package ai.llmref.server.http;

import ai.llmref.server.engine.FinishReason;
import ai.llmref.server.engine.GenerationEvent;
import ai.llmref.server.engine.TokenLogprob;
import ai.llmref.server.structured.ToolCalls;
import java.util.List;

/**
 * A streamed answer made of typed events (the Responses API's, Anthropic's Messages API's): what
 * the handler's stream loop calls, in this order: {@link #start}; for a reasoning model's reasoning
 * {@link #openReasoning}, {@link #reasoning}..., {@link #closeReasoning} (then the text part is the
 * second output item or content block, and the calls' indices count it); for the text part
 * {@link #openText}, {@link #text}..., {@link #closeText}; for each tool call {@link #callStart},
 * {@link #callArguments}..., {@link #callEnd} (or {@link #call}, the three at once); then
 * {@link #finish}, or {@link #failed} at any point after {@link #start}.
 */
interface TypedStream {
    /** The envelope's first events, sent at once (with the headers). */
    void start();

    /** The reasoning part opens (output item or content block 0), before its first piece. */
    void openReasoning();

    /** A piece of the reasoning. */
    void reasoning(String piece);

    /** The reasoning part ends: its whole text. */
    void closeReasoning(String text);

    /** The text part opens, before its first piece. */
    void openText();

    /** A piece of text, with its tokens' log-probabilities when the request asked for them. */
    void text(String piece, List<TokenLogprob> logprobs);

    /** The text part ends: its whole text and tokens ({@code reason}: how the reply ended, or STOP where a call follows). */
    void closeText(String text, List<TokenLogprob> tokens, FinishReason reason);

    /** A tool call begins, the output item or content block {@code index}. */
    void callStart(int index, String id, String name);

    /** More of call {@code index}'s arguments (JSON text; the pieces joined are the whole). */
    void callArguments(int index, String delta);

    /** Call {@code index} ends: the whole call (incomplete where the reply was cut short). */
    void callEnd(int index, ToolCalls.Call call);

    /** One tool call whole, the output item or content block {@code index}. */
    default void call(int index, ToolCalls.Call call) {
        callStart(index, call.id(), call.name());
        callArguments(index, call.arguments());
        callEnd(index, call);
    }

    /** The end, with the whole reply; the last event may stay buffered (it leaves with the body's end). */
    void finish(OpenAiService.Reply reply, List<TokenLogprob> tokens, GenerationEvent.Done done);

    /** A failure after the 200: an error event in the stream's own shape. */
    void failed(ApiException e);

    /** Writes one event ({@code event: <type>} and its {@code data:} line) to the response's buffer, flushed when asked. */
    static void write(java.io.OutputStream out, String type, byte[] data, boolean flush) {
        try {
            out.write(("event: " + type + "\ndata: ").getBytes(java.nio.charset.StandardCharsets.US_ASCII));
            out.write(data);
            out.write("\n\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
            if (flush) {
                out.flush();
            }
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
