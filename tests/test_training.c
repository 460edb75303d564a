/* test_training.c: the optimizer, the schedule, clipping, the token files and
 * batches, and the determinism promise: the same seed gives bit-identical losses
 * and parameters on 1 or 2 (or more) OpenMP threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <omp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/dataloader.h"
#include "model.h"
#include "training/log.h"
#include "training/optim.h"
#include "test_util.h"

static void test_lr_schedule_warms_up_then_follows_a_cosine(void** state) {
    double lr = 1e-3, min_lr = 1e-4;
    int warmup = 100, decay = 2000;
    assert_true(fabs(lr_schedule(0, lr, min_lr, warmup, decay) - lr * 1 / 101) < 1e-15);
    assert_true(fabs(lr_schedule(99, lr, min_lr, warmup, decay) - lr * 100 / 101) < 1e-15);
    assert_true(fabs(lr_schedule(100, lr, min_lr, warmup, decay) - lr) < 1e-15);      /* peak */
    assert_true(fabs(lr_schedule(1050, lr, min_lr, warmup, decay) - 0.5 * (lr + min_lr)) < 1e-12);  /* halfway */
    assert_true(fabs(lr_schedule(2000, lr, min_lr, warmup, decay) - min_lr) < 1e-15);
    assert_true(fabs(lr_schedule(5000, lr, min_lr, warmup, decay) - min_lr) < 1e-15);
    for (int it = 101; it < 2000; it++)  /* monotone decay */
        assert_true(lr_schedule(it, lr, min_lr, warmup, decay) <= lr_schedule(it - 1, lr, min_lr, warmup, decay));
}

static void test_clipping_scales_to_the_max_norm(void** state) {
    float g[4] = {3, 4, 0, 0};  /* norm 5 */
    float norm = grad_global_norm(g, 4);
    assert_true(norm == 5.0f);
    grad_clip(g, 4, norm, 1.0f);
    assert_true(fabsf(grad_global_norm(g, 4) - 1.0f) < 1e-5f);
    float h[2] = {0.3f, 0.4f};
    grad_clip(h, 2, grad_global_norm(h, 2), 1.0f);  /* below the max: untouched */
    assert_true(h[0] == 0.3f && h[1] == 0.4f);
    grad_clip(g, 4, 100.0f, 0.0f);                  /* 0 turns clipping off */
}

/* Past 16M parameters the norm's chunks grow (a fixed number of partial sums on
 * the stack): still the sum of squares, and the same bits on any thread count. */
static void test_gradient_norm_of_a_large_model_is_exact_and_thread_independent(void** state) {
    size_t n = ((size_t)1 << 24) + 1000;
    float* g = xmalloc(n * sizeof(float), "test gradient");
    double want = 0.0;
    for (size_t i = 0; i < n; i++) {
        g[i] = (float)((int)(i % 7) - 3) * 1e-3f;
        want += (double)g[i] * g[i];
    }
    want = sqrt(want);
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    float one = grad_global_norm(g, n);
    assert_true(fabs(one - want) <= 1e-6 * want);
    for (int t = 2; t <= 3; t++) {
        omp_set_num_threads(t);
        float norm = grad_global_norm(g, n);
        assert_memory_equal(&norm, &one, sizeof(float));
    }
    omp_set_num_threads(threads);
    free(g);
}

static void test_adamw_first_step_is_lr_times_sign_plus_decay(void** state) {
    /* with m = v = 0, step 1 gives m_hat = g, v_hat = g^2: p -= lr*wd*p + lr*g/(|g|+eps) */
    ParamTensorInfo tensors[2] = {{.name = "matrix", .offset = 0, .size = 2, .decay = 1},
                                  {.name = "bias", .offset = 2, .size = 2, .decay = 0}};
    float p[4] = {1.0f, -2.0f, 0.5f, 0.5f}, g[4] = {0.3f, -0.001f, 2.0f, -4.0f};
    AdamW opt;
    adamw_init(&opt, 4);
    float lr = 0.1f, wd = 0.5f;
    adamw_update(&opt, p, g, tensors, 2, lr, 0.9f, 0.99f, wd);
    float expect[4] = {1.0f * (1 - lr * wd) - lr, -2.0f * (1 - lr * wd) + lr, 0.5f - lr, 0.5f + lr};
    for (int i = 0; i < 4; i++) assert_true(fabsf(p[i] - expect[i]) < 1e-5f);
    assert_int_equal(opt.step, 1);
    adamw_free(&opt);
}

static void test_token_file_round_trip_in_llmc_format(void** state) {
    char path[] = "/tmp/emergent_tokens_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    uint16_t ids[5] = {0, 64, 3, 3, 17};
    uint64_t sum = tokens_write(path, ids, 5, 65);
    size_t len;
    unsigned char* raw = read_file(path, &len);
    int32_t header[7];
    memcpy(header, raw, sizeof header);
    assert_int_equal(len, 1024 + 5 * 2);  /* 256 int32 header, then uint16 ids */
    assert_int_equal(header[0], 20240520);
    assert_int_equal(header[1], 1);
    assert_int_equal(header[2], 5);
    assert_int_equal(header[3], 65);
    /* the checksum: fnv1a64 of the file with slots 5 and 6 read as 0 */
    assert_int_equal(header[4], TOKENS_CHECKSUM_FNV1A64);
    assert_true(((uint64_t)(uint32_t)header[6] << 32 | (uint32_t)header[5]) == sum);
    memset(raw + 5 * 4, 0, 8);
    assert_true(fnv1a64(raw, len) == sum);
    size_t n;
    uint16_t* back = tokens_read(path, 65, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(back, ids, sizeof ids);
    free(raw);
    free(back);
    unlink(path);
}

/* tokens_parse: tokens_read's checks on a buffer, refusing with a message instead
 * of exiting (the fuzz target tests/fuzz/fuzz_tokens.c drives it). */
static void test_token_file_checks_refuse_with_a_message(void** state) {
    unsigned char buf[1024 + 8] = {0};
    int32_t header[4] = {20240520, 1, 4, 65};
    uint16_t ids[4] = {1, 2, 64, 0};
    memcpy(buf, header, sizeof header);
    memcpy(buf + 1024, ids, sizeof ids);
    char err[512];
    size_t n;
    uint16_t* got = tokens_parse(buf, sizeof buf, "t.bin", 65, &n, err, sizeof err);
    assert_non_null(got);
    assert_int_equal(n, 4);
    assert_memory_equal(got, ids, sizeof ids);
    free(got);
    assert_null(tokens_parse(buf, sizeof buf - 1, "t.bin", 65, &n, err, sizeof err));
    assert_non_null(strstr(err, "t.bin: header says 4 tokens (1032 bytes) but the file has 1031 bytes"));
    assert_null(tokens_parse(buf, 100, "t.bin", 65, &n, err, sizeof err));
    assert_non_null(strstr(err, "t.bin: 100 bytes, too short for the 1024-byte token file header"));
    assert_null(tokens_parse(buf, sizeof buf, "t.bin", 64, &n, err, sizeof err));
    assert_non_null(strstr(err, "made for vocab_size 65, the tokenizer has 64"));
    buf[12] = 0;  /* no vocab_size recorded (llm.c's files): the ids are checked */
    assert_null(tokens_parse(buf, sizeof buf, "t.bin", 64, &n, err, sizeof err));
    assert_non_null(strstr(err, "t.bin: token 2 has id 64, outside the vocabulary [0, 64)"));
    buf[0] ^= 1;
    assert_null(tokens_parse(buf, sizeof buf, "t.bin", 65, &n, err, sizeof err));
    assert_non_null(strstr(err, "bad magic"));
    buf[0] ^= 1;
    buf[16] = 7;  /* slot 4: a checksum kind this build does not know */
    assert_null(tokens_parse(buf, sizeof buf, "t.bin", 65, &n, err, sizeof err));
    assert_non_null(strstr(err, "t.bin: header slot 4 names checksum kind 7"));
}

/* A token file of the data cache rewritten with other valid ids (an edit, a tool, a
 * bad disk) is refused by its checksum, naming the file; so is one changed byte of
 * its header. */
static void test_a_token_file_with_other_valid_ids_fails_its_checksum(void** state) {
    char path[] = "/tmp/emergent_tokens_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    uint16_t ids[6] = {1, 2, 3, 4, 5, 6};
    tokens_write(path, ids, 6, 65);
    size_t len, n;
    unsigned char* raw = read_file(path, &len);
    char err[512];
    uint16_t* got = tokens_parse(raw, len, "t.bin", 65, &n, err, sizeof err);
    assert_non_null(got);
    free(got);
    raw[1024 + 2] = 9;  /* id 1 becomes 9, still in the vocabulary */
    assert_null(tokens_parse(raw, len, "t.bin", 65, &n, err, sizeof err));
    printf("  refused: %s\n", err);
    assert_non_null(strstr(err, "t.bin: checksum mismatch (file changed or corrupted?): its bytes hash to "));
    raw[1024 + 2] = 2;
    raw[100] = 1;  /* a header slot llm.c and this project leave 0 */
    assert_null(tokens_parse(raw, len, "t.bin", 65, &n, err, sizeof err));
    assert_non_null(strstr(err, "checksum mismatch"));
    free(raw);
    unlink(path);
}

static void test_batches_are_windows_shifted_by_one(void** state) {
    uint16_t tokens[50];
    for (int i = 0; i < 50; i++) tokens[i] = (uint16_t)i;
    DataLoader dl = {.path = "memory", .tokens = tokens, .n = 50};
    Rng rng;
    rng_seed(&rng, 3, 1);
    int B = 64, T = 8, inputs[512], targets[512];
    int seen_last = 0;
    for (int rep = 0; rep < 20; rep++) {
        dataloader_next_batch(&dl, &rng, inputs, targets, B, T);
        for (int b = 0; b < B; b++) {
            int start = inputs[b * T];
            assert_true(start >= 0 && start + T + 1 <= 50);  /* the window fits */
            for (int t = 0; t < T; t++) {
                assert_int_equal(inputs[b * T + t], start + t);
                assert_int_equal(targets[b * T + t], start + t + 1);
            }
            seen_last |= start + T + 1 == 50;  /* the last token can be a target */
        }
    }
    assert_true(seen_last);
}

/* ---- determinism --------------------------------------------------------- */

/* The small GPT of train_steps; rank: its embed_rank. Sizes chosen so no
 * parallel loop divides evenly among 2 or 3 threads. */
static GPTConfig steps_config(int rank) {
    return (GPTConfig){.vocab_size = 37, .block_size = 19, .n_layer = 2, .n_head = 3, .n_embd = 48,
                       .pos_encoding = POS_LEARNED, .embed_scale = 1.0f, .tie_weights = 1, .bias = 1,
                       .embed_rank = rank};
}

/* 20 steps of a small GPT with `threads` OpenMP threads: the losses and the
 * final parameters, as train.c computes them (freeze: with freeze_embeddings). */
static float* train_steps(int threads, int freeze, int rank, float losses[20], size_t* num_params) {
    omp_set_num_threads(threads);
    GPTConfig c = steps_config(rank);
    enum { B = 5, T = 19, STEPS = 20 };
    GPT m;
    gpt_build(&m, &c, B, 1337);
    AdamW opt;
    adamw_init(&opt, m.num_params);
    TrainedParams trained = trained_params(&m, freeze);
    float* g = m.grads_memory + trained.first;
    uint16_t tokens[4000];
    Rng data_rng, batch_rng;
    rng_seed(&data_rng, 5, 0);
    for (int i = 0; i < 4000; i++) tokens[i] = (uint16_t)(rng_below(&data_rng, 37) * (i % 3 != 0));  /* learnable */
    DataLoader dl = {.path = "memory", .tokens = tokens, .n = 4000};
    rng_seed(&batch_rng, 1337, 1);
    int inputs[B * T], targets[B * T];
    for (int step = 0; step < STEPS; step++) {
        dataloader_next_batch(&dl, &batch_rng, inputs, targets, B, T);
        losses[step] = gpt_forward(&m, inputs, targets, B, T);
        gpt_zero_grad(&m);
        gpt_backward(&m);
        float norm = grad_global_norm(g, trained.count);
        grad_clip(g, trained.count, norm, 1.0f);
        float lr = (float)lr_schedule(step, 1e-2, 1e-3, 5, 15);
        adamw_update(&opt, m.params_memory, m.grads_memory, trained.tensors, trained.num_tensors, lr, 0.9f, 0.99f, 0.1f);
    }
    float* params = copy_tensor(m.params_memory, m.num_params);
    *num_params = m.num_params;
    adamw_free(&opt);
    gpt_free(&m);
    return params;
}

static void test_training_is_bit_identical_on_1_2_and_3_threads(void** state) {
    float losses1[20], losses_n[20];
    size_t n1, n;
    float* p1 = train_steps(1, 0, 0, losses1, &n1);
    assert_true(losses1[19] < losses1[0] - 0.3f);  /* it really trained */
    for (int threads = 2; threads <= 3; threads++) {
        float* pn = train_steps(threads, 0, 0, losses_n, &n);
        assert_int_equal(n, n1);
        assert_memory_equal(losses1, losses_n, sizeof losses1);
        assert_memory_equal(p1, pn, n * sizeof(float));
        free(pn);
    }
    printf("  20 steps: loss %.4f -> %.4f, identical bits on 1, 2 and 3 threads\n", losses1[0], losses1[19]);
    free(p1);
}

/* freeze_embeddings: after 20 steps E holds its initial bits, every other
 * tensor has moved, the loss still falls (the layers after E learn), and the
 * bits are the same on 1 and 2 threads. */
static void test_frozen_embeddings_stay_put(void** state) {
    float losses[20], losses2[20], free_losses[20];
    size_t n, n2, nf;
    float* frozen = train_steps(1, 1, 0, losses, &n);
    float* frozen2 = train_steps(2, 1, 0, losses2, &n2);
    float* trained = train_steps(1, 0, 0, free_losses, &nf);
    GPTConfig c = steps_config(0);
    GPT m;
    gpt_build(&m, &c, 1, 1337);  /* train_steps' initial model */
    const ParamTensorInfo* e = &m.tensors[0];
    assert_string_equal(e->name, "wte");
    assert_memory_equal(frozen, m.params_memory, e->size * sizeof(float));
    assert_memory_not_equal(trained, m.params_memory, e->size * sizeof(float));
    for (int t = 1; t < NUM_PARAM_TENSORS; t++) {
        const ParamTensorInfo* info = &m.tensors[t];
        if (info->size) assert_memory_not_equal(frozen + info->offset, m.params_memory + info->offset,
                                                info->size * sizeof(float));
    }
    assert_true(losses[19] < losses[0] - 0.1f);
    assert_memory_equal(losses, losses2, sizeof losses);
    assert_memory_equal(frozen, frozen2, n * sizeof(float));
    printf("  20 steps with E frozen: loss %.4f -> %.4f (E trained: -> %.4f); E unchanged, same bits on 1 and 2 "
           "threads\n", losses[0], losses[19], free_losses[19]);
    gpt_free(&m);
    free(frozen);
    free(frozen2);
    free(trained);
}

/* E = A B (embed_rank 8): 20 steps give the same bits on 1, 2 and 3 threads; with
 * freeze_embeddings both factors keep their initial bits while every other tensor
 * moves and the loss still falls. */
static void test_factored_embedding_trains_alike_on_any_thread_count_and_freezes(void** state) {
    enum { RANK = 8 };
    float losses1[20], losses_n[20], frozen_losses[20];
    size_t n1, n, nf;
    float* p1 = train_steps(1, 0, RANK, losses1, &n1);
    assert_true(losses1[19] < losses1[0] - 0.3f);
    for (int threads = 2; threads <= 3; threads++) {
        float* pn = train_steps(threads, 0, RANK, losses_n, &n);
        assert_int_equal(n, n1);
        assert_memory_equal(losses1, losses_n, sizeof losses1);
        assert_memory_equal(p1, pn, n * sizeof(float));
        free(pn);
    }
    float* frozen = train_steps(2, 1, RANK, frozen_losses, &nf);
    GPTConfig c = steps_config(RANK);
    GPT m;
    gpt_build(&m, &c, 1, 1337);
    for (int t = 0; t < NUM_PARAM_TENSORS; t++) {
        const ParamTensorInfo* info = &m.tensors[t];
        if (!info->size) continue;
        int factor = !strcmp(info->name, "wte_a") || !strcmp(info->name, "wte_b");
        int same = !memcmp(frozen + info->offset, m.params_memory + info->offset, info->size * sizeof(float));
        assert_int_equal(same, factor);
    }
    assert_true(frozen_losses[19] < frozen_losses[0] - 0.1f);
    printf("  embed_rank %d, 20 steps: loss %.4f -> %.4f, identical bits on 1, 2 and 3 threads; A and B frozen: "
           "-> %.4f, both unchanged\n", RANK, losses1[0], losses1[19], frozen_losses[19]);
    gpt_free(&m);
    free(p1);
    free(frozen);
}

/* A CSV row that does not fit (the file size limit, as a full disk) leaves the
 * file as it was: csv_append exits 1, and the file still ends with a whole row. */
static void test_a_failed_csv_append_leaves_whole_rows(void** state) {
    char path[64] = "/tmp/emergent_test_csv_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    enum { LIMIT = 300 };
    const char* row = "123,4.5678,9\n";  /* 13 bytes: a row ends at byte 300 of none */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {  /* the child appends until the limit stops it */
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit limit = {LIMIT, LIMIT};
        if (setrlimit(RLIMIT_FSIZE, &limit) != 0) _exit(99);
        CsvFile csv;
        csv_open(&csv, path, "step,a,b", 0);
        for (int i = 0; i < 100; i++) csv_append(&csv, row, strlen(row));
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), EXIT_IO_FAILURE);
    size_t len;
    unsigned char* text = read_file(path, &len);
    assert_int_equal(len, 9 + 13 * ((LIMIT - 9) / 13));  /* the header and every row that fit whole */
    assert_int_equal(text[len - 1], '\n');
    free(text);
    unlink(path);
}

/* A stop that abandons step 20's evaluation writes its row without one; the
 * resumed run finds it and fills in just the evaluation columns: every other
 * column keeps its text. */
static void test_a_row_without_its_evaluation_is_found_and_completed(void** state) {
    (void)state;
    char path[64] = "/tmp/emergent_test_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    TrainLog log;
    train_log_open(&log, path, 0);
    LogRow evaluated = {.step = 10, .lr = 1e-3, .loss = 2.5f, .norm = 0.75f, .seconds = 0.002, .tokens = 256,
                        .evaluated = 1, .val_loss = 2.25f, .train_loss_eval = 2.125f, .val_bpb = 3.5,
                        .val_ece = 0.0625, .elapsed_s = 1.5};
    LogRow abandoned = evaluated;
    abandoned.step = 20;
    abandoned.evaluated = 0;
    abandoned.elapsed_s = 2.5;
    train_log_row(&log, &evaluated);
    train_log_row(&log, &abandoned);
    assert_false(train_log_eval_missing(path, 10));  /* not the last row */
    assert_false(train_log_eval_missing(path, 21));
    assert_true(train_log_eval_missing(path, 20));

    LogRow redone = {.step = 20, .evaluated = 1, .val_loss = 2.0f, .train_loss_eval = 1.875f, .val_bpb = 3.25,
                     .val_ece = 0.03125, .elapsed_s = 99.0};
    train_log_complete_eval(&log, &redone);
    LogRow row2 = {.step = 21, .lr = 1e-3, .loss = 1.5f, .norm = 0.5f, .seconds = 0.001, .tokens = 256,
                   .elapsed_s = 3.0};
    train_log_row(&log, &row2);  /* the log goes on after the rewrite */
    train_log_close(&log);
    size_t len;
    char* text = (char*)read_file(path, &len);
    assert_string_equal(text, LOG_HEADER "\n"
                        "10,0.001,2.5,2.25,0.75,2.000,128000.0,3.5,2.125,0.0625,1.500\n"
                        "20,0.001,2.5,2,0.75,2.000,128000.0,3.25,1.875,0.03125,2.500\n"
                        "21,0.001,1.5,,0.5,1.000,256000.0,,,,3.000\n");
    free(text);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        /* first: it forks, best before OpenMP has started its threads */
        cmocka_unit_test(test_a_failed_csv_append_leaves_whole_rows),
        cmocka_unit_test(test_lr_schedule_warms_up_then_follows_a_cosine),
        cmocka_unit_test(test_clipping_scales_to_the_max_norm),
        cmocka_unit_test(test_gradient_norm_of_a_large_model_is_exact_and_thread_independent),
        cmocka_unit_test(test_adamw_first_step_is_lr_times_sign_plus_decay),
        cmocka_unit_test(test_token_file_round_trip_in_llmc_format),
        cmocka_unit_test(test_token_file_checks_refuse_with_a_message),
        cmocka_unit_test(test_a_token_file_with_other_valid_ids_fails_its_checksum),
        cmocka_unit_test(test_batches_are_windows_shifted_by_one),
        cmocka_unit_test(test_training_is_bit_identical_on_1_2_and_3_threads),
        cmocka_unit_test(test_frozen_embeddings_stay_put),
        cmocka_unit_test(test_factored_embedding_trains_alike_on_any_thread_count_and_freezes),
        cmocka_unit_test(test_a_row_without_its_evaluation_is_found_and_completed),
    };
    return cmocka_run_group_tests_name("training", tests, NULL, NULL);
}
