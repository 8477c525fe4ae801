package ai.llmref.llama;

import static ai.llmref.bindings.ffi.llama_h.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.charset.StandardCharsets;

/**
 * A model's tokenizer. Thread-safe (llama.cpp's tokenizer API is); every token id passed in is
 * checked against the vocabulary first. Every method throws {@link IllegalStateException} once the
 * model is closed, and a model is not freed while one of them runs on another thread.
 */
public final class Vocabulary {
    /**
     * The longest text {@link #tokenize} takes, in UTF-8 bytes (64 MiB). llama.cpp's tokenizer needs
     * some 50 bytes of memory per byte of text (16 MiB of text: 0.75 GB, on stories260K's
     * SentencePiece vocabulary) and lets an allocation failure escape its C API ({@code
     * std::bad_alloc}, which ends the process); the limit keeps one call to a few GB.
     */
    public static final int MAX_TEXT_BYTES = 1 << 26;
    private static final VarHandle PIECE = MethodHandles.arrayElementVarHandle(byte[][].class);

    private final LlamaModel model;
    private final MemorySegment vocab;
    private final int size;
    /**
     * Token bytes, filled on first use (a vocabulary never changes): streaming asks for one piece
     * per generated token, and this keeps that off the native call and the allocation. Racing
     * writers store equal arrays, so no locking is needed; entries are written with release and
     * read with acquire semantics ({@link #PIECE}), so that a thread that sees an array sees its bytes.
     */
    private final byte[][] pieces;
    private final byte[][] specialPieces;
    /** The special tokens and flags, read once: they never change, and reading them needs no native call afterwards. */
    private final int bos, eos, eot, newline, separator, padding;
    /** Fill-in-the-middle tokens (code models), -1 each where the model has none. */
    private final int fimPrefix, fimSuffix, fimMiddle, fimRepository, fimSeparator;
    private final boolean addsBos, addsEos;
    /** {@link #byteToken}'s table, made on first use. */
    private volatile int[] byteTokens;

    Vocabulary(LlamaModel model, MemorySegment vocab) {
        this.model = model;
        this.vocab = vocab;
        this.size = llama_vocab_n_tokens(vocab);
        this.pieces = new byte[size][];
        this.specialPieces = new byte[size][];
        this.bos = llama_vocab_bos(vocab);
        this.eos = llama_vocab_eos(vocab);
        this.eot = llama_vocab_eot(vocab);
        this.newline = llama_vocab_nl(vocab);
        this.separator = llama_vocab_sep(vocab);
        this.padding = llama_vocab_pad(vocab);
        this.fimPrefix = llama_vocab_fim_pre(vocab);
        this.fimSuffix = llama_vocab_fim_suf(vocab);
        this.fimMiddle = llama_vocab_fim_mid(vocab);
        this.fimRepository = llama_vocab_fim_rep(vocab);
        this.fimSeparator = llama_vocab_fim_sep(vocab);
        this.addsBos = llama_vocab_get_add_bos(vocab);
        this.addsEos = llama_vocab_get_add_eos(vocab);
    }

    /** Number of tokens; valid ids are {@code 0 .. size()-1}. */
    public int size() {
        return size;
    }

    /**
     * Text to token ids.
     *
     * @param addSpecial   add BOS/EOS if the model is configured to
     * @param parseSpecial treat special-token text (e.g. {@code <|im_start|>}) as special tokens
     */
    public int[] tokenize(String text, boolean addSpecial, boolean parseSpecial) {
        model.checkOpen();
        if (text.length() > MAX_TEXT_BYTES) { // every char is at least one UTF-8 byte
            throw tooLong(text.length() + " chars");
        }
        byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
        if (utf8.length > MAX_TEXT_BYTES) {
            throw tooLong(utf8.length + " bytes");
        }
        model.acquire();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment in = arena.allocate(utf8.length + 1L);
            MemorySegment.copy(utf8, 0, in, ValueLayout.JAVA_BYTE, 0, utf8.length);
            int capacity = utf8.length + 8;
            MemorySegment out = arena.allocate(ValueLayout.JAVA_INT, capacity);
            int n = llama_tokenize(vocab, in, utf8.length, out, capacity, addSpecial, parseSpecial);
            if (n == Integer.MIN_VALUE) {
                throw new InvalidInputException("llama_tokenize", "the text yields more tokens than an int32 can count");
            }
            if (n < 0) {
                capacity = -n;
                out = arena.allocate(ValueLayout.JAVA_INT, capacity);
                n = llama_tokenize(vocab, in, utf8.length, out, capacity, addSpecial, parseSpecial);
                if (n < 0) {
                    throw new LlamaException("llama_tokenize", "token count changed between calls (" + n + ")");
                }
            }
            return out.asSlice(0, (long) n * Integer.BYTES).toArray(ValueLayout.JAVA_INT);
        } finally {
            model.release();
        }
    }

    private static InvalidInputException tooLong(String length) {
        return new InvalidInputException("llama_tokenize", "the text is " + length + " long; at most "
                + MAX_TEXT_BYTES + " UTF-8 bytes are tokenized at once");
    }

    /** Token ids back to text. */
    public String detokenize(int[] tokens, boolean removeSpecial, boolean unparseSpecial) {
        model.checkOpen();
        checkTokens(tokens, "llama_detokenize");
        model.acquire();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment in = arena.allocateFrom(ValueLayout.JAVA_INT, tokens);
            int capacity = tokens.length * 8 + 16;
            MemorySegment out = arena.allocate(capacity);
            int n = llama_detokenize(vocab, in, tokens.length, out, capacity, removeSpecial, unparseSpecial);
            if (n < 0) {
                capacity = -n;
                out = arena.allocate(capacity);
                n = llama_detokenize(vocab, in, tokens.length, out, capacity, removeSpecial, unparseSpecial);
                if (n < 0) {
                    throw new LlamaException("llama_detokenize", "text length changed between calls (" + n + ")");
                }
            }
            return new String(out.asSlice(0, n).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
        } finally {
            model.release();
        }
    }

    /** The raw bytes of one token's text (may be part of a multi-byte UTF-8 character). */
    public byte[] tokenBytes(int token, boolean special) {
        return sharedTokenBytes(token, special).clone();
    }

    /** As {@link #tokenBytes} without the defensive copy, for callers in this package that only read it. */
    byte[] sharedTokenBytes(int token, boolean special) {
        model.checkOpen();
        checkToken(token, "llama_token_to_piece");
        byte[][] cache = special ? specialPieces : pieces;
        byte[] cached = (byte[]) PIECE.getAcquire(cache, token);
        if (cached == null) {
            cached = pieceOf(token, special);
            PIECE.setRelease(cache, token, cached);
        }
        return cached;
    }

    private byte[] pieceOf(int token, boolean special) {
        model.acquire();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(64);
            int n = llama_token_to_piece(vocab, token, buf, 64, 0, special);
            if (n < 0) {
                buf = arena.allocate(-n);
                n = llama_token_to_piece(vocab, token, buf, -n, 0, special);
            }
            return buf.asSlice(0, Math.max(n, 0)).toArray(ValueLayout.JAVA_BYTE);
        } finally {
            model.release();
        }
    }

    /**
     * For each byte value, a token whose piece (special tokens rendered) is exactly that one byte, or
     * -1 where the vocabulary has none; found on first use by reading every piece once. Byte-level
     * BPE vocabularies have all 256, SentencePiece ones with byte fallback too. Feeding these tokens
     * one byte at a time gives a grammar exactly the text's bytes, which tokenizing the text would
     * not (a SentencePiece tokenizer puts a space before the text's first word).
     */
    public int byteToken(int b) {
        if (b < 0 || b > 255) {
            throw new IllegalArgumentException("a byte is 0..255, got " + b);
        }
        int[] table = byteTokens;
        if (table == null) {
            table = new int[256];
            java.util.Arrays.fill(table, -1);
            for (int t = size - 1; t >= 0; t--) { // the lowest id wins
                byte[] piece = sharedTokenBytes(t, true);
                if (piece.length == 1) {
                    table[piece[0] & 0xFF] = t;
                }
            }
            byteTokens = table; // racing threads compute equal tables
        }
        return table[b];
    }

    /** One token's text; a partial UTF-8 character becomes U+FFFD (use {@link StreamingDetokenizer} to stream). */
    public String tokenToPiece(int token, boolean special) {
        return new String(tokenBytes(token, special), StandardCharsets.UTF_8);
    }

    /** The token's entry in the vocabulary (its internal spelling, e.g. {@code ▁Once}). */
    public String tokenText(int token) {
        model.checkOpen();
        checkToken(token, "llama_vocab_get_text");
        model.acquire();
        try {
            return ai.llmref.llama.internal.Native.string(llama_vocab_get_text(vocab, token));
        } finally {
            model.release();
        }
    }

    /** End of generation: EOS, EOT or another token the model marks as ending a turn. */
    public boolean isEndOfGeneration(int token) {
        model.checkOpen();
        checkToken(token, "llama_vocab_is_eog");
        model.acquire();
        try {
            return llama_vocab_is_eog(vocab, token);
        } finally {
            model.release();
        }
    }

    public boolean isControl(int token) {
        model.checkOpen();
        checkToken(token, "llama_vocab_is_control");
        model.acquire();
        try {
            return llama_vocab_is_control(vocab, token);
        } finally {
            model.release();
        }
    }

    /** Beginning of sequence, or -1 when the model has none. */
    public int bos() {
        model.checkOpen();
        return bos;
    }

    public int eos() {
        model.checkOpen();
        return eos;
    }

    /**
     * The fill-in-the-middle tokens of a code model ({@code tokenizer.ggml.fim_pre_token_id} and
     * the two after it, or found by their text: {@code <|fim_prefix|>}, {@code <PRE>}, ...):
     * prefix, suffix and middle, in that order; null when the model lacks any of the three.
     */
    public int[] fillInTheMiddle() {
        model.checkOpen();
        return fimPrefix < 0 || fimSuffix < 0 || fimMiddle < 0 ? null : new int[] {fimPrefix, fimSuffix, fimMiddle};
    }

    /** The repository-level fill-in-the-middle token before a repository's name ({@code <|repo_name|>}), or -1. */
    public int fimRepository() {
        model.checkOpen();
        return fimRepository;
    }

    /** The fill-in-the-middle token before each file's name ({@code <|file_sep|>}), or -1. */
    public int fimSeparator() {
        model.checkOpen();
        return fimSeparator;
    }

    /** End of turn, or -1. */
    public int eot() {
        model.checkOpen();
        return eot;
    }

    public int newline() {
        model.checkOpen();
        return newline;
    }

    public int separator() {
        model.checkOpen();
        return separator;
    }

    public int padding() {
        model.checkOpen();
        return padding;
    }

    public boolean addsBos() {
        model.checkOpen();
        return addsBos;
    }

    public boolean addsEos() {
        model.checkOpen();
        return addsEos;
    }

    /** Throws {@link InvalidInputException} unless {@code token} is a valid id. */
    public void checkToken(int token, String nativeFunction) {
        if (token < 0 || token >= size) {
            throw new InvalidInputException(nativeFunction, "token id " + token + " is outside the vocabulary (0.." + (size - 1) + ")");
        }
    }

    void checkTokens(int[] tokens, String nativeFunction) {
        for (int i = 0; i < tokens.length; i++) {
            int t = tokens[i];
            if (t < 0 || t >= size) {
                throw new InvalidInputException(nativeFunction, "token id " + t + " at index " + i
                        + " is outside the vocabulary (0.." + (size - 1) + ")");
            }
        }
    }

    /** The model this vocabulary belongs to (its {@link LlamaModel#acquire} holds the vocabulary open too). */
    LlamaModel model() {
        return model;
    }

    /**
     * The native vocabulary, for this package's samplers. Not held open: a caller that hands it to
     * llama.cpp while another thread may close the model brackets the call with the model's
     * {@link LlamaModel#acquire()} and {@link LlamaModel#release()}.
     */
    MemorySegment handle() {
        model.checkOpen();
        return vocab;
    }
}
