package ai.llmref.server.http;

import ai.llmref.llama.Vocabulary;

/**
 * What request parsing needs from a served model, for the request fuzz targets: stories260K's id
 * and real tokenizer, a fixed slot size and four slots; the chat template is the subclass's.
 */
abstract class VocabularyPrompts implements PromptModel {
    final Vocabulary v;
    private final int slotContext;

    VocabularyPrompts(Vocabulary v, int slotContext) {
        this.v = v;
        this.slotContext = slotContext;
    }

    @Override
    public String id() {
        return "stories260K";
    }

    @Override
    public int[] tokenize(String text, boolean chat) {
        return v.tokenize(text, true, chat);
    }

    /** As the server tokenizes a reasoning budget's closing text. */
    @Override
    public int[] tokenizeInside(String text) {
        return v.tokenize(text, false, true);
    }

    @Override
    public int[] tokenizePlain(String text) {
        return v.tokenize(text, false, false);
    }

    @Override
    public String detokenize(int[] tokens) {
        return v.detokenize(tokens, false, false);
    }

    @Override
    public int bosToAdd() {
        return v.addsBos() ? v.bos() : -1;
    }

    @Override
    public int vocabSize() {
        return v.size();
    }

    @Override
    public int slotContext() {
        return slotContext;
    }

    @Override
    public int slots() {
        return 4;
    }
}
