package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;

import ai.llmref.llama.LlamaModel;
import ai.llmref.llama.ModelParams;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/**
 * Long tokenizer calls made on virtual threads (the HTTP handlers') run on the tokenizer's
 * platform threads, so that a native call of tens of milliseconds holds no carrier; the tokens are
 * the same as in place, and short calls stay in place.
 */
class ServedModelTest {

    @Test
    void longTokenizerCallsLeaveVirtualThreadsWithTheSameResults() throws Exception {
        try (LlamaModel model = LlamaModel.load(TestServer.model(), ModelParams.defaults().withGpuLayers(0).withVocabOnly(true))) {
            ServedModel m = new ServedModel("stories260K", model, null, null);
            String small = "Once upon a time, there was a little girl named Lily. ";
            String big = small.repeat(ServedModel.INLINE_CHARS / small.length() + 10);
            int[] bigHere = m.tokenizeRaw(big, true); // a platform thread: in place
            int[] smallHere = m.tokenizeRaw(small, true);
            int[] manyTokens = Arrays.copyOf(bigHere, Math.min(bigHere.length, ServedModel.INLINE_TOKENS + 100));
            assertThat(manyTokens.length).isGreaterThan(ServedModel.INLINE_TOKENS);
            String manyHere = m.detokenize(manyTokens);
            assertThat(m.offloadedCalls()).isZero();

            List<Future<int[]>> bigs = new ArrayList<>();
            Future<int[]> smallThere;
            Future<int[]> chat;
            Future<String> text;
            try (ExecutorService virtual = Executors.newVirtualThreadPerTaskExecutor()) {
                for (int i = 0; i < 8; i++) {
                    bigs.add(virtual.submit(() -> m.tokenizeRaw(big, true)));
                }
                smallThere = virtual.submit(() -> m.tokenizeRaw(small, true));
                chat = virtual.submit(() -> m.tokenize(big, true));
                text = virtual.submit(() -> m.detokenize(manyTokens));
            }
            for (Future<int[]> f : bigs) {
                assertThat(f.get()).isEqualTo(bigHere);
            }
            assertThat(smallThere.get()).isEqualTo(smallHere);
            assertThat(chat.get()).isEqualTo(m.tokenize(big, true));
            assertThat(text.get()).isEqualTo(manyHere);
            // the 8 long tokenizations, the chat one and the long detokenization; not the short one
            assertThat(m.offloadedCalls()).isEqualTo(10);
            assertThat(Thread.getAllStackTraces().keySet()).anySatisfy(t -> assertThat(t.getName()).startsWith("llmref-tokenizer-"));
        }
    }
}
