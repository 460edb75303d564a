/* tests/parity_dump.c: the C half of the PyTorch parity test.
 *
 * Builds a tiny GPT, runs one forward/backward on a fixed batch and then 10
 * training steps exactly as train.c runs them, and writes everything a
 * PyTorch re-implementation needs to check it (tests/pytorch_reference.py):
 * the initial weights, the batches, the logits, the loss, every parameter
 * gradient, and per step the batch, loss, gradient norm (before and after
 * clipping) and learning rate, and at the end the trained weights.
 *
 * Usage: tests/parity_dump OUT [--pos=learned|sinusoidal|none|rope] [--tied=1|0] [--bias=1|0]
 *                              [--embed-scale=S] [--grad-clip=G] [--seed=N] [--freeze=1|0]
 *                              [--embed-dropout=P] [--embed-rank=R]
 * (--freeze=1: the training steps freeze E, as freeze_embeddings does in train.c;
 * --embed-dropout=P: they drop token rows, in training mode keyed by (seed, step)
 * as train.c does; the fixed batch runs in eval mode, without dropout;
 * --embed-rank=R: E = A B, and the fixed batch also writes E and dE, (V, C))
 *
 * File format (native byte order; a 1 written after the magic lets the reader
 * check it): the 8-byte magic "GPTPAR01", int32 1, then records
 *     uint32 name_len, name bytes (no NUL), int32 dtype (0 f32, 1 i32, 2 f64),
 *     int32 ndim, int32 dims[ndim], prod(dims) elements
 * and last a record "end" (i32 scalar: how many records came before it), so
 * a truncated file is detected. Scalars have ndim 0.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "training/optim.h"
#include "util/utils.h"

/* Sizes: the matmul tiles are 4 rows x 32 columns, so B*T = 39 rows leaves a
 * 3-row edge tile, C = 48 and 3C = 144 leave 16-column edges, V = 37 a 5-column
 * edge (logits) and a 1-row edge (lm_head / tied E gradient). T = 13 < block_size
 * leaves positions whose learned wpe rows get no gradient. */
enum { VOCAB = 37, BLOCK = 16, LAYERS = 2, HEADS = 3, EMBD = 48, BATCH = 3, SEQ = 13, STEPS = 10 };

/* The schedule puts all three regimes in 10 steps: step s uses lr_schedule(s-1),
 * so steps 1-3 warm up, 4-8 decay along the cosine, 9-10 sit at min_lr. */
#define LEARNING_RATE 1e-2
#define MIN_LR 1e-3
enum { WARMUP_ITERS = 3, LR_DECAY_ITERS = 8 };
#define BETA1 0.9f
#define BETA2 0.99f
#define WEIGHT_DECAY 0.1f
/* grad_clip sits between the smallest and largest gradient norms of the 10 steps
 * (about 1.7 to 7.3 over the four variants), so on every variant some steps clip
 * and some do not: both branches of grad_clip run. The Python side fails if that
 * stops being true (then retune this). */
#define GRAD_CLIP 3.0

enum { DT_F32 = 0, DT_I32 = 1, DT_F64 = 2 };

typedef struct {
    FILE* f;
    const char* path;
    int records;
} Dump;

static void put(Dump* d, const char* name, int32_t dtype, int32_t ndim, const int32_t* dims, const void* data) {
    uint32_t len = (uint32_t)strlen(name);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)dims[i];
    size_t elem = dtype == DT_F64 ? sizeof(double) : 4;
    xfwrite(&len, sizeof len, 1, d->f, d->path);
    xfwrite(name, 1, len, d->f, d->path);
    xfwrite(&dtype, sizeof dtype, 1, d->f, d->path);
    xfwrite(&ndim, sizeof ndim, 1, d->f, d->path);
    if (ndim) xfwrite(dims, sizeof *dims, (size_t)ndim, d->f, d->path);
    if (count) xfwrite(data, elem, count, d->f, d->path);
    d->records++;
}

static void put_i32(Dump* d, const char* name, int32_t v) { put(d, name, DT_I32, 0, NULL, &v); }
static void put_f32(Dump* d, const char* name, float v) { put(d, name, DT_F32, 0, NULL, &v); }
static void put_f64(Dump* d, const char* name, double v) { put(d, name, DT_F64, 0, NULL, &v); }

/* One parameter tensor (or its gradient, or its final value) under prefix/name,
 * with its full stacked shape; an absent tensor is written with a 0 leading dim. */
static void put_tensor(Dump* d, const char* prefix, const ParamTensorInfo* info, const float* memory) {
    char name[128];
    xsnprintf(name, sizeof name, "%s/%s", prefix, info->name);
    int32_t dims[3] = {info->shape[0], info->shape[1], info->shape[2]};
    int32_t ndim = 1 + (dims[1] != 0) + (dims[2] != 0);
    put(d, name, DT_F32, ndim, dims, memory + info->offset);
}

/* A batch as the data loader makes one: T+1 consecutive tokens of a stream,
 * inputs the first T, targets the same shifted by one. The stream mostly
 * follows a fixed bigram rule, so there is something to learn and the 10 steps
 * move the loss by more than noise would. */
static void random_batch(Rng* rng, int* inputs, int* targets, int B, int T, int V) {
    for (int b = 0; b < B; b++) {
        int prev = (int)rng_below(rng, (uint32_t)V);
        for (int t = 0; t < T; t++) {
            int next = rng_uniform(rng) < 0.75f ? (3 * prev + 1) % V : (int)rng_below(rng, (uint32_t)V);
            inputs[b * T + t] = prev;
            targets[b * T + t] = next;
            prev = next;
        }
    }
}

static void put_batch(Dump* d, const char* prefix, const int* inputs, const int* targets) {
    char name[64];
    int32_t dims[2] = {BATCH, SEQ};
    xsnprintf(name, sizeof name, "%s/inputs", prefix);
    put(d, name, DT_I32, 2, dims, inputs);
    xsnprintf(name, sizeof name, "%s/targets", prefix);
    put(d, name, DT_I32, 2, dims, targets);
}

/* gpt_build's init (matrices N(0, 0.02), LayerNorm weights 1, biases 0) would make
 * a weak test: a kernel that forgets to multiply by an LN weight of 1 or to add a
 * bias of 0 gives the same numbers, and pre-activations that small keep GELU
 * nearly linear and every softmax nearly uniform. So the built model's matrices
 * are scaled up (to N(0, 0.2), the residual projections to half that) and every
 * LN weight and bias gets noise; the dump records the result, so the reference
 * starts from exactly these weights. */
#define MATRIX_GAIN 10.0f
#define LN_WEIGHT_NOISE 0.3f
#define BIAS_NOISE 0.2f

static void spread_parameters(GPT* model, Rng* rng) {
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        const ParamTensorInfo* info = &model->tensors[i];
        float* p = model->params_memory + info->offset;
        /* E's factors (embed_rank) each by sqrt of the gain: E = A B by the gain, as the other matrices */
        float gain = info->spec->present == IF_FACTORED ? sqrtf(MATRIX_GAIN) : MATRIX_GAIN;
        for (size_t j = 0; j < info->size; j++) {
            if (info->init_std > 0) p[j] *= gain;
            else if (info->init_const == 1.0f) p[j] += LN_WEIGHT_NOISE * rng_normal(rng);
            else p[j] += BIAS_NOISE * rng_normal(rng);
        }
    }
}

static void usage(void) {
    fprintf(stderr, "usage: tests/parity_dump OUT [--pos=learned|sinusoidal|none|rope] [--tied=1|0] [--bias=1|0] "
                    "[--embed-scale=S] [--grad-clip=G] [--seed=N] [--freeze=1|0] [--embed-dropout=P] "
                    "[--embed-rank=R]\n");
    exit(EXIT_BAD_INPUT);
}

int main(int argc, char** argv) {
    if (argc < 2 || argv[1][0] == '-') usage();
    const char* out_path = argv[1];
    PosEncoding pos = POS_LEARNED;
    int tied = 1, bias = 1, freeze = 0, rank = 0;
    double embed_scale = 0.0;  /* 0: the default for the positions, see below */
    double clip_arg = GRAD_CLIP, embed_dropout = 0.0;
    unsigned long seed = 1337;
    for (int i = 2; i < argc; i++) {
        const char* a = argv[i];
        char* end = NULL;
        if (!strcmp(a, "--pos=learned")) pos = POS_LEARNED;
        else if (!strcmp(a, "--pos=sinusoidal")) pos = POS_SINUSOIDAL;
        else if (!strcmp(a, "--pos=none")) pos = POS_NONE;
        else if (!strcmp(a, "--pos=rope")) pos = POS_ROPE;
        else if (!strcmp(a, "--freeze=1")) freeze = 1;
        else if (!strcmp(a, "--freeze=0")) freeze = 0;
        else if (!strcmp(a, "--tied=1")) tied = 1;
        else if (!strcmp(a, "--tied=0")) tied = 0;
        else if (!strcmp(a, "--bias=1")) bias = 1;
        else if (!strcmp(a, "--bias=0")) bias = 0;
        else if (!strncmp(a, "--embed-scale=", 14)) {
            embed_scale = strtod(a + 14, &end);
            if (*end || !(embed_scale > 0)) die(EXIT_BAD_INPUT, "bad %s: need a number > 0", a);
        } else if (!strncmp(a, "--embed-dropout=", 16)) {
            embed_dropout = strtod(a + 16, &end);
            if (*end || !(embed_dropout >= 0 && embed_dropout < 1)) die(EXIT_BAD_INPUT, "bad %s: need [0, 1)", a);
        } else if (!strncmp(a, "--embed-rank=", 13)) {
            long r = strtol(a + 13, &end, 10);
            if (*end || end == a + 13 || r < 0 || r >= (VOCAB < EMBD ? VOCAB : EMBD))
                die(EXIT_BAD_INPUT, "bad %s: need 0 <= R < min(%d, %d)", a, VOCAB, EMBD);
            rank = (int)r;
        } else if (!strncmp(a, "--grad-clip=", 12)) {
            clip_arg = strtod(a + 12, &end);
            if (*end || !(clip_arg > 0)) die(EXIT_BAD_INPUT, "bad %s: need a number > 0", a);
        } else if (!strncmp(a, "--seed=", 7)) {
            seed = strtoul(a + 7, &end, 10);
            if (*end || end == a + 7) die(EXIT_BAD_INPUT, "bad %s", a);
        } else {
            fprintf(stderr, "error: unknown argument %s\n", a);
            usage();
        }
    }
    /* sinusoidal: config.c's auto value sqrt(C). learned: auto would be 1, and a
     * scale of 1 hides a kernel that drops it, so another value */
    if (embed_scale == 0.0) embed_scale = pos == POS_SINUSOIDAL ? sqrt((double)EMBD) : 1.7;
    const float max_norm = (float)clip_arg;   /* as train.c passes it: (float)cfg.grad_clip */

    GPTConfig mc = {.vocab_size = VOCAB, .block_size = BLOCK, .n_layer = LAYERS, .n_head = HEADS,
                    .n_embd = EMBD, .pos_encoding = pos, .embed_scale = (float)embed_scale,
                    .tie_weights = tied, .bias = bias, .embed_dropout = (float)embed_dropout, .embed_rank = rank};
    GPT model;
    /* max_batch > B, like T < block_size, leaves the activation buffers larger than
     * the batch: a kernel that strides by the capacity instead of the batch shows */
    gpt_build(&model, &mc, BATCH + 1, (uint64_t)seed);
    Rng rng;
    rng_seed(&rng, (uint64_t)seed, 3);
    spread_parameters(&model, &rng);

    Dump d = {xfopen(out_path, "wb"), out_path, 0};
    const int32_t one = 1;
    xfwrite("GPTPAR01", 1, 8, d.f, out_path);
    xfwrite(&one, sizeof one, 1, d.f, out_path);

    /* ---- the configuration ---- */
    put_i32(&d, "config/vocab_size", VOCAB);
    put_i32(&d, "config/block_size", BLOCK);
    put_i32(&d, "config/n_layer", LAYERS);
    put_i32(&d, "config/n_head", HEADS);
    put_i32(&d, "config/n_embd", EMBD);
    put_i32(&d, "config/pos_encoding", pos);  /* PosEncoding: 0 learned, 1 sinusoidal, 2 none, 3 rope */
    put_i32(&d, "config/freeze_embeddings", freeze);
    put_f32(&d, "config/embed_dropout", model.config.embed_dropout);
    put_i32(&d, "config/embed_rank", rank);
    put_i32(&d, "config/seed", (int32_t)seed);
    put_i32(&d, "config/tie_weights", tied);
    put_i32(&d, "config/bias", bias);
    put_f32(&d, "config/embed_scale", model.config.embed_scale);
    put_i32(&d, "config/batch_size", BATCH);
    put_i32(&d, "config/seq_len", SEQ);
    put_i32(&d, "config/steps", STEPS);
    put_f64(&d, "config/learning_rate", LEARNING_RATE);
    put_f64(&d, "config/min_lr", MIN_LR);
    put_i32(&d, "config/warmup_iters", WARMUP_ITERS);
    put_i32(&d, "config/lr_decay_iters", LR_DECAY_ITERS);
    put_f32(&d, "config/beta1", BETA1);
    put_f32(&d, "config/beta2", BETA2);
    put_f32(&d, "config/weight_decay", WEIGHT_DECAY);
    put_f32(&d, "config/grad_clip", max_norm);
    put_f32(&d, "config/adamw_eps", ADAMW_EPS);

    /* ---- the initial parameters, and which of them the C optimizer decays ---- */
    char name[64];
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        put_tensor(&d, "init", &model.tensors[i], model.params_memory);
        xsnprintf(name, sizeof name, "decay/%s", model.tensors[i].name);
        put_i32(&d, name, model.tensors[i].decay);
    }

    /* ---- one forward/backward on a fixed batch ---- */
    int inputs[BATCH * SEQ], targets[BATCH * SEQ];
    rng_seed(&rng, (uint64_t)seed, 1);
    random_batch(&rng, inputs, targets, BATCH, SEQ, VOCAB);
    put_batch(&d, "fixed", inputs, targets);
    float loss = gpt_forward(&model, inputs, targets, BATCH, SEQ);
    gpt_zero_grad(&model);
    gpt_backward(&model);
    int32_t ldims[3] = {BATCH, SEQ, VOCAB};
    put(&d, "fixed/logits", DT_F32, 3, ldims, model.acts.logits);
    put_f32(&d, "fixed/loss", loss);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) put_tensor(&d, "grad", &model.tensors[i], model.grads_memory);
    if (rank) {  /* E = A B as the forward made it, and dE as the backward left it before folding it into dA, dB */
        int32_t edims[2] = {VOCAB, EMBD};
        put(&d, "fixed/E", DT_F32, 2, edims, model.params.wte);
        put(&d, "fixed/dE", DT_F32, 2, edims, model.grads.wte);
    }
    printf("fixed batch: loss %.7f\n", loss);

    /* ---- STEPS training steps, the body of train.c's loop ---- */
    AdamW opt;
    adamw_init(&opt, model.num_params);
    rng_seed(&rng, (uint64_t)seed, 2);
    TrainedParams trained = trained_params(&model, freeze);
    float* g = model.grads_memory + trained.first;
    int clipped = 0;
    for (int step = 1; step <= STEPS; step++) {
        double lr = lr_schedule(step - 1, LEARNING_RATE, MIN_LR, WARMUP_ITERS, LR_DECAY_ITERS);
        random_batch(&rng, inputs, targets, BATCH, SEQ, VOCAB);
        gpt_train_mode(&model, (uint64_t)seed, step);  /* dropout masks keyed by (seed, step), as train.c */
        loss = gpt_forward(&model, inputs, targets, BATCH, SEQ);
        gpt_eval_mode(&model);
        gpt_zero_grad(&model);
        gpt_backward(&model);
        float norm = grad_global_norm(g, trained.count);
        grad_clip(g, trained.count, norm, max_norm);
        adamw_update(&opt, model.params_memory, model.grads_memory, trained.tensors, trained.num_tensors, (float)lr,
                     BETA1, BETA2, WEIGHT_DECAY);
        /* what grad_clip did, observed rather than re-derived: the norm it left behind
         * (measured after the update too, which reads but never writes the gradients) */
        float norm_after = grad_global_norm(g, trained.count);
        int was_clipped = norm_after != norm;
        clipped += was_clipped;

        char prefix[32];
        xsnprintf(prefix, sizeof prefix, "step/%d", step);
        put_batch(&d, prefix, inputs, targets);
        xsnprintf(name, sizeof name, "%s/loss", prefix);
        put_f32(&d, name, loss);
        xsnprintf(name, sizeof name, "%s/grad_norm", prefix);
        put_f32(&d, name, norm);
        xsnprintf(name, sizeof name, "%s/grad_norm_clipped", prefix);
        put_f32(&d, name, norm_after);
        xsnprintf(name, sizeof name, "%s/lr", prefix);
        put_f64(&d, name, lr);
        xsnprintf(name, sizeof name, "%s/clipped", prefix);
        put_i32(&d, name, was_clipped);
        printf("step %2d: lr %.6f loss %.7f grad norm %.6f%s\n", step, lr, loss, norm, was_clipped ? " (clipped)" : "");
    }
    printf("%d of %d steps clipped at grad_clip %g\n", clipped, STEPS, max_norm);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) put_tensor(&d, "final", &model.tensors[i], model.params_memory);

    put_i32(&d, "end", d.records);
    xfclose_synced(d.f, out_path);
    adamw_free(&opt);
    gpt_free(&model);
    return 0;
}
