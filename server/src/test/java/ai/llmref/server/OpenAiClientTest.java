package ai.llmref.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.openai.client.OpenAIClient;
import com.openai.core.http.StreamResponse;
import com.openai.errors.BadRequestException;
import com.openai.errors.NotFoundException;
import com.openai.models.ResponseFormatJsonObject;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionCreateParams;
import com.openai.models.embeddings.CreateEmbeddingResponse;
import com.openai.models.embeddings.EmbeddingCreateParams;
import com.openai.models.models.Model;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The official OpenAI Java client drives every route and sees errors as its typed exceptions. */
class OpenAiClientTest {
    static TestServer server;
    static OpenAIClient client;

    @BeforeAll
    static void start() throws Exception {
        server = TestServer.start();
        client = server.openAiClient();
    }

    @AfterAll
    static void stop() {
        client.close();
        server.close();
    }

    static ChatCompletionCreateParams.Builder chat() {
        return ChatCompletionCreateParams.builder().model("stories260K").addUserMessage("Tell me about a dog.")
                .maxCompletionTokens(24).temperature(0.0);
    }

    @Test
    void chatCompletion() {
        ChatCompletion c = client.chat().completions().create(chat().build());
        assertThat(c.choices()).hasSize(1);
        assertThat(c.choices().getFirst().message().content()).hasValueSatisfying(t -> assertThat(t).isNotBlank());
        assertThat(c.choices().getFirst().finishReason()).isIn(ChatCompletion.Choice.FinishReason.STOP, ChatCompletion.Choice.FinishReason.LENGTH);
        assertThat(c.usage()).hasValueSatisfying(u -> assertThat(u.completionTokens()).isBetween(1L, 24L));
        assertThat(c.model()).isEqualTo("stories260K");
    }

    @Test
    void chatStreamingAssemblesTheSameText() {
        String whole = client.chat().completions().create(chat().build()).choices().getFirst().message().content().orElseThrow();
        StringBuilder streamed = new StringBuilder();
        try (StreamResponse<ChatCompletionChunk> s = client.chat().completions().createStreaming(chat().build())) {
            s.stream().forEach(chunk -> chunk.choices().forEach(ch -> ch.delta().content().ifPresent(streamed::append)));
        }
        assertThat(streamed.toString()).isEqualTo(whole);
    }

    @Test
    void jsonObjectResponseFormatYieldsJson() throws Exception {
        ChatCompletion c = client.chat().completions().create(chat().maxCompletionTokens(60)
                .responseFormat(ResponseFormatJsonObject.builder().build()).build());
        String text = c.choices().getFirst().message().content().orElseThrow();
        if (c.choices().getFirst().finishReason() == ChatCompletion.Choice.FinishReason.STOP) {
            assertThat(new com.fasterxml.jackson.databind.ObjectMapper().readTree(text).isObject()).as(text).isTrue();
        } else {
            assertThat(text).startsWith("{"); // cut by max tokens: still a JSON object prefix
        }
    }

    @Test
    void completionsPlainAndStreaming() {
        CompletionCreateParams p = CompletionCreateParams.builder().model("stories260K").prompt("Once upon a time")
                .maxTokens(30).temperature(0.0).build();
        Completion c = client.completions().create(p);
        String text = c.choices().getFirst().text();
        assertThat(text).isNotBlank();
        StringBuilder streamed = new StringBuilder();
        try (StreamResponse<Completion> s = client.completions().createStreaming(p)) {
            s.stream().forEach(chunk -> chunk.choices().forEach(ch -> streamed.append(ch.text())));
        }
        assertThat(streamed.toString()).isEqualTo(text);
    }

    @Test
    void aStreamThatWaitsGetsKeepAlivesTheClientSkips() {
        String whole = client.chat().completions().create(chat().build()).choices().getFirst().message().content().orElseThrow();
        StringBuilder streamed = new StringBuilder();
        server.server.engine().stallFor(2500); // the request waits: two keep-alive comments before its first token
        try (StreamResponse<ChatCompletionChunk> s = client.chat().completions().createStreaming(chat().build())) {
            s.stream().forEach(chunk -> chunk.choices().forEach(ch -> ch.delta().content().ifPresent(streamed::append)));
        }
        assertThat(streamed.toString()).isEqualTo(whole);
    }

    @Test
    void severalChoices() {
        ChatCompletion c = client.chat().completions().create(chat().n(3).temperature(1.2).seed(3L).build());
        assertThat(c.choices()).extracting(ChatCompletion.Choice::index).containsExactly(0L, 1L, 2L);
        assertThat(c.choices()).allSatisfy(ch -> assertThat(ch.message().content()).isPresent());
    }

    @Test
    void logprobsAreTypedForChatAndCompletions() {
        ChatCompletion c = client.chat().completions().create(chat().maxCompletionTokens(12).logprobs(true).topLogprobs(2).build());
        ChatCompletion.Choice choice = c.choices().getFirst();
        var content = choice.logprobs().orElseThrow().content().orElseThrow();
        assertThat(String.join("", content.stream().map(t -> t.token()).toList()))
                .isEqualTo(choice.message().content().orElseThrow());
        assertThat(content).hasSize((int) c.usage().orElseThrow().completionTokens()).allSatisfy(t -> {
            assertThat(t.logprob()).isLessThanOrEqualTo(0.0);
            assertThat(t.topLogprobs()).hasSize(2);
            assertThat(t.topLogprobs().getFirst().token()).as("greedy: the pick is the most likely").isEqualTo(t.token());
            assertThat(t.bytes()).isPresent();
        });
        Completion legacy = client.completions().create(CompletionCreateParams.builder().model("stories260K").prompt("Once upon a time")
                .maxTokens(8).temperature(0.0).logprobs(3).build());
        var lp = legacy.choices().getFirst().logprobs().orElseThrow();
        assertThat(lp.tokens().orElseThrow()).hasSize(8);
        assertThat(String.join("", lp.tokens().orElseThrow())).isEqualTo(legacy.choices().getFirst().text());
        assertThat(lp.tokenLogprobs().orElseThrow()).hasSize(8).allSatisfy(v -> assertThat(v).isLessThanOrEqualTo(0.0));
        assertThat(lp.topLogprobs().orElseThrow()).hasSize(8);
        assertThat(lp.textOffset().orElseThrow()).hasSize(8).first().isEqualTo(0L);
        assertThatThrownBy(() -> client.chat().completions().create(chat().topLogprobs(21).logprobs(true).build()))
                .isInstanceOf(BadRequestException.class).hasMessageContaining("top_logprobs");
    }

    @Test
    void modelsList() {
        List<Model> models = client.models().list().data();
        assertThat(models).extracting(Model::id).containsExactly("stories260K");
        assertThat(client.models().retrieve("stories260K").id()).isEqualTo("stories260K");
        assertThatThrownBy(() -> client.models().retrieve("nope")).isInstanceOf(NotFoundException.class);
    }

    @Test
    void embeddingsForOneAndMany() throws Exception {
        CreateEmbeddingResponse one = client.embeddings().create(EmbeddingCreateParams.builder().model("stories260K")
                .input("The cat sat on the mat").build());
        assertThat(one.data()).hasSize(1);
        List<Float> v = one.data().getFirst().embedding();
        assertThat(v).hasSize(64);
        double norm = v.stream().mapToDouble(f -> f * f).sum();
        assertThat(norm).isCloseTo(1.0, org.assertj.core.data.Offset.offset(1e-3));
        CreateEmbeddingResponse many = client.embeddings().create(EmbeddingCreateParams.builder().model("stories260K")
                .inputOfArrayOfStrings(List.of("a dog", "a cat", "a dog")).build());
        assertThat(many.data()).hasSize(3);
        assertThat(many.data().get(0).embedding()).isEqualTo(many.data().get(2).embedding());
        assertThat(many.data().get(0).embedding()).isNotEqualTo(many.data().get(1).embedding());
        CreateEmbeddingResponse b64 = client.embeddings().create(EmbeddingCreateParams.builder().model("stories260K")
                .input("The cat sat on the mat").encodingFormat(EmbeddingCreateParams.EncodingFormat.BASE64).build());
        assertThat(b64.data().getFirst().embedding()).isEqualTo(v);
        // pre-tokenized input (OpenAI's arrays of token ids): the same vector as the text's tokens (the
        // client has no tokenizer route: the server's /tokenize gives them)
        List<Long> ids = new com.fasterxml.jackson.databind.ObjectMapper().readTree(server.post("/tokenize",
                "{\"content\":\"The cat sat on the mat\",\"add_special\":true}").body()).get("tokens").valueStream()
                .map(com.fasterxml.jackson.databind.JsonNode::asLong).toList();
        CreateEmbeddingResponse tokens = client.embeddings().create(EmbeddingCreateParams.builder().model("stories260K")
                .inputOfArrayOfTokens(ids).build());
        assertThat(tokens.data().getFirst().embedding()).isEqualTo(v);
        CreateEmbeddingResponse arrays = client.embeddings().create(EmbeddingCreateParams.builder().model("stories260K")
                .inputOfArrayOfTokenArrays(List.of(ids, ids.subList(0, 2))).build());
        assertThat(arrays.data()).hasSize(2);
        assertThat(arrays.data().getFirst().embedding()).isEqualTo(v);
        assertThat(arrays.usage().promptTokens()).isEqualTo(ids.size() + 2);
        assertThatThrownBy(() -> client.embeddings().create(EmbeddingCreateParams.builder().model("stories260K")
                .inputOfArrayOfTokens(List.of(1L, 1_000_000L)).build()))
                .isInstanceOf(BadRequestException.class).hasMessageContaining("input[1] must be a token id");
    }

    @Test
    void errorsAreTypedExceptions() {
        assertThatThrownBy(() -> client.chat().completions().create(chat().model("gpt-unknown").build()))
                .isInstanceOf(NotFoundException.class);
        assertThatThrownBy(() -> client.chat().completions().create(chat().n(17).build()))
                .isInstanceOf(BadRequestException.class).hasMessageContaining("'n' (17) must be at most 16 choices (limits.max-choices)");
        assertThatThrownBy(() -> client.chat().completions().create(chat().maxCompletionTokens(100_000).build()))
                .isInstanceOf(BadRequestException.class);
    }
}
