/* explain.c: one training step of a tiny GPT, told from E's side (explain.h).
 * Everything printed comes out of the kernels and the model as training runs
 * them; the prose between the blocks says what each one is. */
#include "embed/explain.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model.h"
#include "tokenizer/tokenizer.h"
#include "training/optim.h"
#include "util/utils.h"

/* the example: the first T+1 characters of TEXT, one step of a one-block model */
#define TEXT "to be or not to be"
enum { T = 4, C = 4 };
#define LR 0.01f
#define BETA1 0.9f
#define BETA2 0.99f
#define WEIGHT_DECAY 0.1f

static void block(FILE* f, int digits, const char* name, const float* x, int rows, int cols) {
    fprintf(f, "%s (%d x %d) =\n", name, rows, cols);
    for (int r = 0; r < rows; r++) {
        fputs(" ", f);
        for (int c = 0; c < cols; c++) fprintf(f, " %*.*g", digits + 7, digits, x[(size_t)r * cols + c]);
        fputc('\n', f);
    }
}

void explain_embeddings(FILE* f, int digits) {
    char err[512];
    TokenizerSpec spec = {.kind = TOKENIZER_CHAR};
    Tokenizer* tok = tokenizer_train(&spec, (const unsigned char*)TEXT, strlen(TEXT), err, sizeof err);
    if (!tok) die(EXIT_IO_FAILURE, "explain: %s", err);
    int V = tokenizer_vocab_size(tok);
    uint16_t ids16[T + 1];
    if (tokenizer_encode(tok, (const unsigned char*)TEXT, T + 1, ids16, T + 1, err, sizeof err) != T + 1)
        die(EXIT_IO_FAILURE, "explain: %s", err);
    int inputs[T], targets[T];
    for (int t = 0; t < T; t++) { inputs[t] = ids16[t]; targets[t] = ids16[t + 1]; }

    GPTConfig mc = {.vocab_size = V, .block_size = T, .n_layer = 1, .n_head = 1, .n_embd = C,
                    .pos_encoding = POS_LEARNED, .embed_scale = 1.0f, .tie_weights = 1, .bias = 1};
    GPT m;
    gpt_build(&m, &mc, 1, 1337);
    const float* E = m.params.wte;

    fprintf(f, "A worked example: one training step of a tiny GPT (1 block, 1 head, n_embd %d, block_size %d,\n"
               "tied weights), told from the token embedding E's side. Every number below is computed by\n"
               "this project's kernels and model, as ./train runs them.\n\n", C, T);
    fprintf(f, "== 1. Text to ids\nThe character vocabulary of \"%s\" has %d tokens:", TEXT, V);
    for (int v = 0; v < V; v++) {
        char piece[16];
        if (tokenizer_piece(tok, v, piece, sizeof piece) < 0) snprintf(piece, sizeof piece, "?");
        fprintf(f, " %d '%s'", v, strcmp(piece, " ") ? piece : "\\x20");
    }
    fprintf(f, ".\nThe first %d characters give the inputs and, one position later, the targets:\n", T + 1);
    float in_f[T], tg_f[T];
    for (int t = 0; t < T; t++) { in_f[t] = (float)inputs[t]; tg_f[t] = (float)targets[t]; }
    block(f, digits, "inputs", in_f, 1, T);
    block(f, digits, "targets", tg_f, 1, T);

    fprintf(f, "\n== 2. Ids to vectors: the lookup e_t = E[i_t] is a product with a one-hot row\n"
               "E holds one row of n_embd numbers per token, N(0, 0.02) at the start:\n");
    block(f, digits, "E", E, V, C);
    float* one_hot = xcalloc((size_t)V, sizeof(float), "one-hot");
    float* Et = xmalloc(sizeof(float) * (size_t)V * C, "E transposed");
    float* product = xmalloc(sizeof(float) * C, "product");
    float* scratch = xmalloc(sizeof(float) * (matmul_scratch_floats(V, C) + 1), "scratch");
    for (int v = 0; v < V; v++)
        for (int c = 0; c < C; c++) Et[(size_t)c * V + v] = E[(size_t)v * C + c];
    one_hot[inputs[0]] = 1.0f;
    matmul_forward(product, one_hot, Et, NULL, scratch, 1, V, C);  /* (1 x V) (V x C) */
    fprintf(f, "The first input, id %d, as a one-hot row, times E (the matrix product kernel):\n", inputs[0]);
    block(f, digits, "one_hot", one_hot, 1, V);
    block(f, digits, "one_hot_times_E", product, 1, C);
    fprintf(f, "is row %d of E: the lookup is that product without the %d multiplications by zero.\n",
            inputs[0], V - 1);

    float loss = gpt_forward(&m, inputs, targets, 1, T);
    fprintf(f, "\n== 3. Positions added: x_t = E[i_t] + PE_t\nPE, the learned positions (wpe), one row per "
               "position:\n");
    block(f, digits, "PE", m.params.wpe, T, C);
    block(f, digits, "x", m.acts.encoded, T, C);

    fprintf(f, "\n== 4. The block and the tied logits z = h E^T\nThe block (attention and MLP) and the final "
               "layer norm turn x into h:\n");
    block(f, digits, "h", m.acts.lnf, T, C);
    fprintf(f, "The output layer is E itself (tie_weights): each logit z_t,v is the dot product of h_t with row v "
               "of E.\n");
    block(f, digits, "z", m.acts.logits, T, V);

    fprintf(f, "\n== 5. The loss\nsoftmax(z_t) is the predicted distribution of the next token; the loss of "
               "position t is -log of\nthe probability it gives the target, and the step's loss is their mean:\n");
    block(f, digits, "losses", m.acts.losses, 1, T);
    block(f, digits, "loss", &loss, 1, 1);

    gpt_zero_grad(&m);
    gpt_backward(&m);
    fprintf(f, "\n== 6. Back to E: dE = (dense output term) + (sparse lookup scatter)\n"
               "The gradient of the loss at the logits is (softmax(z_t) - onehot(target_t)) / %d:\n", T);
    block(f, digits, "dz", m.dacts.logits, T, V);
    float* dense = xcalloc((size_t)V * C, sizeof(float), "dense term");
    float* sparse = xcalloc((size_t)V * C, sizeof(float), "sparse term");
    float* bscratch = xmalloc(sizeof(float) * (matmul_backward_scratch_floats(C, V) + 1), "scratch");
    matmul_backward(NULL, dense, NULL, m.dacts.logits, m.acts.lnf, E, bscratch, T, C, V, GRADS_SET);
    fprintf(f, "z = h E^T gives E the DENSE term dz^T h: every row, seen in the batch or not, gets one (row v\n"
               "is pulled towards the h_t that should predict v, pushed from those that should not):\n");
    block(f, digits, "dE_output", dense, V, C);
    fprintf(f, "The gradient reaching the embedding sum, dx (what the block sends back down):\n");
    block(f, digits, "dx", m.dacts.encoded, T, C);
    encoder_backward(sparse, NULL, m.dacts.encoded, inputs, 1.0f, 0.0f, 0, 1, T, C);
    fprintf(f, "The lookup gives the SPARSE term: dx_t is added to row i_t, and only the rows of tokens in the\n"
               "batch (ids");
    for (int t = 0; t < T; t++) fprintf(f, " %d", inputs[t]);
    fprintf(f, ") receive anything; the other rows stay zero:\n");
    block(f, digits, "dE_lookup", sparse, V, C);
    fprintf(f, "Their sum is E's gradient, as the backward pass leaves it:\n");
    block(f, digits, "dE", m.grads.wte, V, C);

    AdamW opt;
    adamw_init(&opt, m.num_params);
    adamw_update(&opt, m.params_memory, m.grads_memory, m.tensors, NUM_PARAM_TENSORS, LR, BETA1, BETA2,
                 WEIGHT_DECAY);
    fprintf(f, "\n== 7. One AdamW step (lr %g, betas %g %g, eps %g, weight decay %g)\nOn the first step Adam "
               "moves every entry with a nonzero gradient by about lr against the sign of its\ngradient "
               "(m / sqrt(v) = g / |g|), after decaying E by lr * weight_decay:\n",
            (double)LR, (double)BETA1, (double)BETA2, (double)ADAMW_EPS, (double)WEIGHT_DECAY);
    block(f, digits, "E_after", E, V, C);

    adamw_free(&opt);
    free(one_hot); free(Et); free(product); free(scratch);
    free(dense); free(sparse); free(bscratch);
    gpt_free(&m);
    tokenizer_free(tok);
}
