/* sample.c: text from a trained model.
 *   checkpoint (model.safetensors + tokenizer.bin) -> prompt ids -> generate -> decode
 * Usage: ./sample OUT_DIR [--prompt=TEXT] [--max_new_tokens=N] [--temperature=T]
 *                 [--top_k=K] [--seed=S] [--num_samples=N]
 * OUT_DIR is a run's out_dir (its best model) or out_dir/last (its newest). The
 * defaults are nanoGPT's sample.py's. The same seed prints the same text. The text
 * is printed as it is drawn, so a sample stopped early shows what it had. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/checkpoint.h"
#include "gpt/sampler.h"
#include "util/utils.h"

typedef struct {
    const char* dir;
    const char* prompt;
    int prompt_given;  /* 0: the default, a newline */
    long max_new_tokens, top_k, seed, num_samples;
    double temperature;
} SampleArgs;

static void usage(FILE* f) {
    fprintf(f, "usage: ./sample OUT_DIR [--prompt=TEXT] [--max_new_tokens=N] [--temperature=T] [--top_k=K]\n"
               "                [--seed=S] [--num_samples=N]\n"
               "Prints text from the model in OUT_DIR (a run's out_dir: its best model; out_dir/last: its newest).\n"
               "  --prompt          text to continue (default: a newline)\n"
               "  --max_new_tokens  tokens to generate per sample (default 500)\n"
               "  --temperature     divides the logits; 0 = always the most likely token (default 0.8)\n"
               "  --top_k           draw only among the k most likely tokens; 0 = all (default 200)\n"
               "  --seed            the same seed gives the same text (default 1337)\n"
               "  --num_samples     samples to print, separated by a line of dashes (default 1)\n");
}

/* ---- printing as the tokens come ---- */

/* Tokens wait while their text ends in U+FFFD: SentencePiece decodes each byte
 * piece of a character on its own as U+FFFD, and a character has at most 4 bytes. */
enum { MAX_PENDING_TOKENS = 4 };

typedef struct {
    const Tokenizer* tok;
    const uint16_t* ids;  /* the sample so far */
    size_t printed;       /* ids[0..printed) are on stdout */
} SampleStream;

/* Print the text of ids[printed..n) and flush it, so that a sample stopped early
 * shows what was drawn; unless `last`, a character still incomplete waits. */
static void stream_print(SampleStream* st, size_t n, int last) {
    if (n == st->printed) return;
    char err[512];
    size_t len;
    char* text = tokenizer_decode(st->tok, st->ids + st->printed, n - st->printed, &len, err, sizeof err);
    if (!text) die(EXIT_BAD_INPUT, "%s", err);
    int incomplete = len >= 3 && memcmp(text + len - 3, "\xEF\xBF\xBD", 3) == 0;
    if (last || !incomplete || n - st->printed >= MAX_PENDING_TOKENS) {
        if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0)
            die(EXIT_IO_FAILURE, "cannot write the sample to stdout: %s", strerror(errno));
        st->printed = n;
    }
    free(text);
}

static void on_token(void* ctx, size_t n) { stream_print(ctx, n, 0); }

static long parse_long(const char* arg, const char* value, long lo, long hi) {
    char* end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (!*value || *end || errno || v < lo || v > hi)
        die(EXIT_BAD_INPUT, "%s: expected an integer in [%ld, %ld], got '%s'", arg, lo, hi, value);
    return v;
}

static SampleArgs parse_args(int argc, char** argv) {
    SampleArgs a = {.dir = argv[1], .prompt = "\n", .max_new_tokens = 500, .top_k = 200, .seed = 1337,
                    .num_samples = 1, .temperature = 0.8};
    for (int i = 2; i < argc; i++) {
        const char* arg = argv[i];
        const char* eq = strchr(arg, '=');
        if (strncmp(arg, "--", 2) != 0 || !eq) die(EXIT_BAD_INPUT, "argument '%s': expected --key=value", arg);
        const char* v = eq + 1;
        size_t n = (size_t)(eq - arg);
#define IS(name) (n == strlen(name) && strncmp(arg, name, n) == 0)
        if (IS("--prompt")) { a.prompt = v; a.prompt_given = 1; }
        else if (IS("--max_new_tokens")) a.max_new_tokens = parse_long(arg, v, 0, 10000000);
        else if (IS("--top_k")) a.top_k = parse_long(arg, v, 0, 65536);
        else if (IS("--seed")) a.seed = parse_long(arg, v, 0, 2147483647L);
        else if (IS("--num_samples")) a.num_samples = parse_long(arg, v, 1, 100000);
        else if (IS("--temperature")) {
            char* end;
            errno = 0;
            a.temperature = strtod(v, &end);
            if (!*v || *end || errno || !isfinite(a.temperature) || a.temperature < 0 || a.temperature > 100)
                die(EXIT_BAD_INPUT, "%s: expected a number in [0, 100], got '%s'", arg, v);
        } else die(EXIT_BAD_INPUT, "unknown option '%.*s' (./sample --help lists them)", (int)n, arg);
#undef IS
    }
    return a;
}

int main(int argc, char** argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_BAD_INPUT : 0;
    }
    SampleArgs args = parse_args(argc, argv);
    char err[4096 + 512];
    GPT model;
    Tokenizer* tok;
    long step;
    if (checkpoint_load_model(args.dir, &model, 0, &tok, &step, err, sizeof err) != 0) die(EXIT_BAD_INPUT, "%s", err);
    fprintf(stderr, "%s: step %ld, %zu parameters, %s tokenizer (%d tokens)\n", args.dir, step, model.num_params,
            tokenizer_describe(tok), model.config.vocab_size);

    /* prompt -> ids */
    size_t plen = strlen(args.prompt);
    uint16_t* prompt = xmalloc((plen + 1) * sizeof(uint16_t), "prompt");
    long n_prompt = tokenizer_encode(tok, (const unsigned char*)args.prompt, plen, prompt, plen + 1, err, sizeof err);
    if (n_prompt < 0 && !args.prompt_given) {
        /* a text without newlines gives a vocabulary without one: start where
         * ./train's samples start then, from token 0 */
        char piece[64];
        if (tokenizer_piece(tok, 0, piece, sizeof piece) < 0) snprintf(piece, sizeof piece, "?");
        fprintf(stderr, "note: the vocabulary has no newline, the default prompt: starting from token 0 ('%s'); "
                "--prompt=TEXT starts elsewhere\n", piece);
        prompt[0] = 0;
        n_prompt = 1;
    }
    if (n_prompt < 0) die(EXIT_BAD_INPUT, "--prompt: %s", err);
    if (n_prompt == 0) die(EXIT_BAD_INPUT, "--prompt: the prompt is empty; give at least one character");

    SamplerSettings settings = {.temperature = (float)args.temperature, .top_k = (int)args.top_k};
    size_t cap = (size_t)n_prompt + (size_t)args.max_new_tokens;
    uint16_t* ids = xmalloc(cap * sizeof(uint16_t), "sample ids");
    Rng rng;
    rng_seed(&rng, (uint64_t)args.seed, 0);
    for (long s = 0; s < args.num_samples; s++) {
        double t0 = now_seconds();
        SampleStream st = {.tok = tok, .ids = ids, .printed = 0};
        memcpy(ids, prompt, (size_t)n_prompt * sizeof(uint16_t));
        stream_print(&st, (size_t)n_prompt, 0);
        size_t n = generate_each(&model, prompt, (size_t)n_prompt, (size_t)args.max_new_tokens, &settings, &rng, ids,
                                 on_token, &st);
        stream_print(&st, n, 1);
        double dt = now_seconds() - t0;
        printf("\n---------------\n");
        fprintf(stderr, "%ld tokens in %.2f s (%.0f tokens/s)\n", args.max_new_tokens, dt,
                dt > 0 ? args.max_new_tokens / dt : 0.0);
    }
    if (fflush(stdout) != 0) die(EXIT_IO_FAILURE, "cannot write the sample to stdout");
    free(ids);
    free(prompt);
    tokenizer_free(tok);
    gpt_free(&model);
    return 0;
}
