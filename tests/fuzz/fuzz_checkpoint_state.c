/* fuzz_checkpoint_state.c: libFuzzer target for the training-state reader
 * (checkpoint_load_state, what ./train --resume reads).
 *
 * The input is a train_state.safetensors, written to a private directory under
 * /tmp and loaded into the tiny model of fuzz_common.h (and its AdamW) against
 * the tiny tokenizer's id. An accepted state is used: one forward and backward
 * pass and an AdamW step from it, and its saved config text read as a config. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/checkpoint.h"
#include "formats/config.h"
#include "fuzz_common.h"
#include "training/optim.h"

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    fuzz_setup();
    return 0;
}

static void use_state(GPT* m, AdamW* opt, const TrainProgress* p, const char* config_text) {
    fuzz_check(p->step >= 0 && opt->step >= 0 && (p->batch_rng.inc & 1u), "restored progress is in range");
    static const int inputs[4] = {0, 3, 8, 1}, targets[4] = {3, 8, 1, 2};
    gpt_zero_grad(m);
    gpt_forward(m, inputs, targets, 1, 4);
    gpt_backward(m);
    adamw_update(opt, m->params_memory, m->grads_memory, m->tensors, NUM_PARAM_TENSORS, 1e-3f, 0.9f, 0.99f, 0.1f);
    TrainConfig* cfg = malloc(sizeof *cfg);
    char err[CONFIG_ERR_MAX];
    config_defaults(cfg);
    config_load_text(cfg, config_text, strlen(config_text), "saved config", err, sizeof err);
    free(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static TokenizerId tok;
    static char path[512];
    if (!path[0]) {
        tok = fuzz_tiny_tokenizer_id();
        snprintf(path, sizeof path, "%s/%s", fuzz_tmpdir(), CHECKPOINT_STATE_FILE);
    }
    fuzz_write_file(fuzz_tmpdir(), CHECKPOINT_STATE_FILE, data, size);
    GPTConfig c = fuzz_tiny_config();
    GPT m;
    gpt_build(&m, &c, 1, 7);
    AdamW opt;
    adamw_init(&opt, m.num_params);
    TrainProgress p = {0};
    char* config_text = NULL;
    char err[2048] = "";
    DataId saved_data;
    if (checkpoint_load_state(path, &m, &opt, &p, &tok, &saved_data, &config_text, err, sizeof err) == 0) {
        fuzz_check(config_text != NULL, "an accepted state hands out its config text");
        use_state(&m, &opt, &p, config_text);
    } else {
        fuzz_check_refusal_has_message(err);
    }
    free(config_text);
    adamw_free(&opt);
    gpt_free(&m);
    return 0;
}
