/*
 * Independent greedy-decoding reference for NativeGreedyReferenceTest: the same loop as
 * ai.llmref.llama.Generation.greedy, written directly against llama.h, so the Java bindings can be
 * compared token for token with plain C.
 *
 * Usage: greedy_ref MODEL PROMPT N_PREDICT [BACKEND_DIR [N_GPU_LAYERS]]
 *   BACKEND_DIR (else $LLAMA_NATIVE_DIR) holds the ggml backend plugins (libggml-cpu*.so ...).
 *   N_GPU_LAYERS (default 0) as TestModels.params() (the test.gpu-layers property of a GPU run).
 * Prints the generated token ids on one line, space-separated. Exit status 0 on success.
 *
 * The settings mirror TestModels.small(1) over ContextParams.defaults() and
 * TestModels.params(): N_GPU_LAYERS layers offloaded (0: CPU only), mmap, n_ctx 256, n_batch = n_ubatch = 256,
 * one sequence, 2 threads for both phases, flash attention AUTO, F16 K/V cache.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-backend.h"
#include "llama.h"

static void quiet(enum ggml_log_level level, const char *text, void *user_data) {
    (void) level;
    (void) text;
    (void) user_data;
}

static int fail(const char *what) {
    fprintf(stderr, "greedy_ref: %s\n", what);
    return 1;
}

/* Runs the model over the batch and reports why it failed, if it did. */
static int decode(struct llama_context *ctx, struct llama_batch batch) {
    int rc = llama_decode(ctx, batch);
    if (rc != 0) {
        fprintf(stderr, "greedy_ref: llama_decode returned %d for %d tokens\n", rc, batch.n_tokens);
    }
    return rc;
}

static void put(struct llama_batch *batch, llama_token token, llama_pos pos, int output) {
    int i = batch->n_tokens++;
    batch->token[i] = token;
    batch->pos[i] = pos;
    batch->n_seq_id[i] = 1;
    batch->seq_id[i][0] = 0;
    batch->logits[i] = (int8_t) output;
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 6) {
        fprintf(stderr, "usage: %s MODEL PROMPT N_PREDICT [BACKEND_DIR [N_GPU_LAYERS]]\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1];
    const char *prompt = argv[2];
    int n_predict = atoi(argv[3]);
    const char *backend_dir = argc >= 5 ? argv[4] : getenv("LLAMA_NATIVE_DIR");
    int n_gpu_layers = argc >= 6 ? atoi(argv[5]) : 0;
    if (n_predict < 1) {
        return fail("N_PREDICT must be >= 1");
    }
    if (backend_dir == NULL || backend_dir[0] == '\0') {
        return fail("no backend directory: pass BACKEND_DIR or set LLAMA_NATIVE_DIR");
    }

    llama_log_set(quiet, NULL);
    /* ggml is built with GGML_BACKEND_DL: without loaded plugins there is no CPU device. */
    ggml_backend_load_all_from_path(backend_dir);
    llama_backend_init();
    if (ggml_backend_dev_count() == 0) {
        return fail("no ggml backend device after loading plugins");
    }

    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = n_gpu_layers;
    mp.main_gpu = 0;
    mp.split_mode = LLAMA_SPLIT_MODE_LAYER;
    mp.load_mode = LLAMA_LOAD_MODE_MMAP;
    mp.vocab_only = false;
    struct llama_model *model = llama_model_load_from_file(model_path, mp);
    if (model == NULL) {
        return fail("llama_model_load_from_file failed");
    }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);

    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 256;
    cp.n_batch = 256;
    cp.n_ubatch = 256;
    cp.n_seq_max = 1;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_AUTO;
    cp.type_k = GGML_TYPE_F16;
    cp.type_v = GGML_TYPE_F16;
    cp.embeddings = false;
    cp.pooling_type = LLAMA_POOLING_TYPE_UNSPECIFIED;
    cp.kv_unified = false;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (ctx == NULL) {
        llama_model_free(model);
        return fail("llama_init_from_model failed");
    }
    int n_ctx_seq = (int) llama_n_ctx_seq(ctx);

    /* Tokenize as Generation.greedy does: the model's BOS rule, special-token text as plain text. */
    int text_len = (int) strlen(prompt);
    int capacity = text_len + 8;
    llama_token *tokens = malloc(sizeof(llama_token) * (size_t) capacity);
    int n_prompt = llama_tokenize(vocab, prompt, text_len, tokens, capacity, true, false);
    if (n_prompt < 0) {
        capacity = -n_prompt;
        tokens = realloc(tokens, sizeof(llama_token) * (size_t) capacity);
        n_prompt = llama_tokenize(vocab, prompt, text_len, tokens, capacity, true, false);
    }
    if (n_prompt <= 0 || n_prompt > (int) llama_n_batch(ctx)) {
        fprintf(stderr, "greedy_ref: the prompt gives %d tokens (need 1..%u)\n", n_prompt, llama_n_batch(ctx));
        return 1;
    }

    struct llama_sampler *smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(smpl, llama_sampler_init_greedy());

    /* The whole prompt in one batch at positions 0..n-1, logits only for its last token. */
    struct llama_batch batch = llama_batch_init(n_prompt, 0, 1);
    for (int i = 0; i < n_prompt; i++) {
        put(&batch, tokens[i], i, i == n_prompt - 1);
    }
    int rc = decode(ctx, batch);
    llama_pos pos = n_prompt;
    int last = n_prompt - 1;
    int generated = 0;
    while (rc == 0 && generated < n_predict) {
        llama_token token = llama_sampler_sample(smpl, ctx, last);
        if (llama_vocab_is_eog(vocab, token)) {
            break;
        }
        printf(generated == 0 ? "%d" : " %d", token);
        generated++;
        if (generated == n_predict || pos >= n_ctx_seq) {
            break;
        }
        batch.n_tokens = 0;
        put(&batch, token, pos++, 1);
        rc = decode(ctx, batch);
        last = 0;
    }
    printf("\n");
    fflush(stdout);

    llama_batch_free(batch);
    llama_sampler_free(smpl);
    free(tokens);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return rc == 0 ? 0 : 1;
}
