/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine's forward pass against a double-precision reference on tiny random models that use
 * every supported weight type; batched against incremental evaluation; tensor-parallel and
 * pipeline splits against the whole model; and clear errors for models it cannot run.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/cpu/cpu-backend.h"
#include "core/rng.h"
#include "engine/model.h"
#include "engine/shard.h"
#include "support/tiny-model.h"

#define N_TOKENS 12

struct fixture {
    uint8_t *gguf;
    size_t size;
    struct exo_model *model;
    struct exo_backend *be;
    int32_t tokens[N_TOKENS];
};

static void fixture_open(struct fixture *f, const struct tiny_config *cfg, int threads)
{
    struct exo_gguf *g = NULL;
    struct exo_diag diag = {{0}};
    tiny_model_build(cfg, &f->gguf, &f->size);
    assert_int_equal(exo_gguf_open_memory(f->gguf, f->size, "tiny.gguf", &g, &diag), 0);
    if (exo_model_from_gguf(g, &f->model, &diag) != 0)
        fail_msg("model: %s", diag.msg);
    struct exo_backend_params bp = {sizeof(bp), threads};
    assert_int_equal(exo_cpu_backend_create(&bp, &f->be), 0);
    struct exo_rng rng;
    exo_rng_seed(&rng, 99);
    for (int i = 0; i < N_TOKENS; i++)
        f->tokens[i] = (int32_t)exo_rng_below(&rng, cfg->n_vocab);
}

static void fixture_close(struct fixture *f)
{
    f->be->iface->free(f->be);
    exo_model_close(f->model);
    free(f->gguf);
}

static struct exo_shard *whole_shard(struct fixture *f, enum exo_dtype kv, uint32_t n_batch)
{
    struct exo_shard_spec spec;
    struct exo_shard_params p = {.n_ctx = 64, .n_batch = n_batch, .kv_type = kv};
    struct exo_shard *s = NULL;
    struct exo_diag diag = {{0}};
    exo_shard_spec_whole(f->model, &spec);
    if (exo_shard_create(f->model, f->be, &spec, &p, &s, &diag) != 0)
        fail_msg("shard: %s", diag.msg);
    return s;
}

/* Largest over rows of |engine - reference| / max |reference| within the row. */
static double row_error(const float *got, const double *want, int rows, int n)
{
    double worst = 0.0;
    for (int r = 0; r < rows; r++) {
        double scale = 1e-9, diff = 0.0;
        for (int i = 0; i < n; i++) {
            scale = fmax(scale, fabs(want[(size_t)r * n + i]));
            diff = fmax(diff, fabs(got[(size_t)r * n + i] - want[(size_t)r * n + i]));
        }
        worst = fmax(worst, diff / scale);
    }
    return worst;
}

static void check_against_reference(const char *arch, enum exo_dtype kv, double tolerance)
{
    struct tiny_config cfg;
    struct fixture f;
    tiny_config_default(&cfg, arch);
    fixture_open(&f, &cfg, 2);
    struct exo_shard *s = whole_shard(&f, kv, N_TOKENS);
    float *logits = malloc(sizeof(float) * N_TOKENS * cfg.n_vocab);
    assert_int_equal(exo_shard_forward(s, f.tokens, NULL, N_TOKENS, 0, NULL, logits, true), 0);
    double *want;
    tiny_model_reference(f.gguf, f.size, f.tokens, N_TOKENS, &want);
    double err = row_error(logits, want, N_TOKENS, (int)cfg.n_vocab);
    print_message("%s, kv %s: worst relative logit error %.5f (tolerance %.3f)\n", arch,
                  exo_dtype_name(kv), err, tolerance);
    assert_true(err < tolerance);
    free(want);
    free(logits);
    exo_shard_free(s);
    fixture_close(&f);
}

/* Activations are quantized to 8 bits per op, as llama.cpp does, so logits carry about a
 * percent of relative error against exact arithmetic. */
static void test_shard_llama_matches_reference(void **state)
{
    check_against_reference("llama", EXO_DTYPE_F32, 0.03);
}

static void test_shard_qwen2_matches_reference(void **state)
{
    check_against_reference("qwen2", EXO_DTYPE_F32, 0.03);
}

static void test_shard_f16_cache_matches_reference(void **state)
{
    check_against_reference("llama", EXO_DTYPE_F16, 0.03);
}

/* Prompt in one batch, in uneven chunks, and one token at a time: the same logits. */
static void test_shard_batched_equals_incremental(void **state)
{
    struct tiny_config cfg;
    struct fixture f;
    tiny_config_default(&cfg, "llama");
    fixture_open(&f, &cfg, 2);
    size_t nv = cfg.n_vocab;
    float *batched = malloc(sizeof(float) * N_TOKENS * nv);
    float *step = malloc(sizeof(float) * N_TOKENS * nv);
    float *chunked = malloc(sizeof(float) * N_TOKENS * nv);

    struct exo_shard *s = whole_shard(&f, EXO_DTYPE_F16, N_TOKENS);
    assert_int_equal(exo_shard_forward(s, f.tokens, NULL, N_TOKENS, 0, NULL, batched, true), 0);
    for (int t = 0; t < N_TOKENS; t++)
        assert_int_equal(exo_shard_forward(s, &f.tokens[t], NULL, 1, t, NULL, step + t * nv, false),
                         0);
    assert_int_equal(exo_shard_forward(s, f.tokens, NULL, 5, 0, NULL, chunked, true), 0);
    assert_int_equal(
        exo_shard_forward(s, f.tokens + 5, NULL, N_TOKENS - 5, 5, NULL, chunked + 5 * nv, true),
        0);
    double e1 = 0.0, e2 = 0.0;
    for (size_t i = 0; i < N_TOKENS * nv; i++) {
        e1 = fmax(e1, fabs(batched[i] - step[i]));
        e2 = fmax(e2, fabs(batched[i] - chunked[i]));
    }
    print_message("batched vs one-by-one: %.2e, vs chunked: %.2e\n", e1, e2);
    assert_true(e1 < 1e-3 && e2 < 1e-3);

    /* Positions past the cache and ids outside the vocabulary are refused. */
    assert_int_equal(exo_shard_forward(s, f.tokens, NULL, 2, 63, NULL, step, false), EXO_ERANGE);
    assert_int_equal(exo_shard_forward(s, f.tokens, NULL, N_TOKENS + 1, 0, NULL, step, false),
                     EXO_ERANGE);
    int32_t bad = (int32_t)cfg.n_vocab;
    assert_int_equal(exo_shard_forward(s, &bad, NULL, 1, 0, NULL, step, false), EXO_ERANGE);
    free(batched);
    free(step);
    free(chunked);
    exo_shard_free(s);
    fixture_close(&f);
}

/* Two tensor-parallel shards on two threads, summing their partials at the reduction points. */
struct tp_group {
    pthread_barrier_t barrier;
    float *partial[2];
};

struct tp_member {
    struct tp_group *group;
    int index;
    struct exo_model *model;
    struct exo_shard_spec spec;
    const int32_t *tokens;
    float *logits;
    int rc;
};

static int tp_all_reduce(void *ctx, struct exo_backend *be, struct exo_tensor *t)
{
    struct tp_member *m = ctx;
    size_t n = (size_t)t->ne[0] * (size_t)t->ne[1];
    m->group->partial[m->index] = t->data;
    pthread_barrier_wait(&m->group->barrier);
    float *mine = t->data, *other = m->group->partial[1 - m->index];
    /* Both add in the same order so the two copies stay bit-identical. */
    float *sum = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        sum[i] = m->index == 0 ? mine[i] + other[i] : other[i] + mine[i];
    pthread_barrier_wait(&m->group->barrier);
    memcpy(mine, sum, n * sizeof(float));
    free(sum);
    return 0;
}

static void *tp_main(void *arg)
{
    struct tp_member *m = arg;
    struct exo_backend *be;
    struct exo_backend_params bp = {sizeof(bp), 1};
    struct exo_shard_comm comm = {tp_all_reduce, m};
    struct exo_shard_params p = {.n_ctx = 64, .n_batch = N_TOKENS, .kv_type = EXO_DTYPE_F32,
                                 .comm = &comm};
    struct exo_shard *s = NULL;
    m->rc = exo_cpu_backend_create(&bp, &be);
    if (m->rc == 0)
        m->rc = exo_shard_create(m->model, be, &m->spec, &p, &s, NULL);
    if (m->rc == 0)
        m->rc = exo_shard_forward(s, m->tokens, NULL, N_TOKENS, 0, NULL, m->logits, true);
    exo_shard_free(s);
    be->iface->free(be);
    return NULL;
}

static void test_shard_tensor_parallel_matches_whole(void **state)
{
    /* A head slice is 128 columns of the output projection, so those must be in a 32-element
     * block type; the 256-column FFN slices suit the K-quants. */
    static const uint32_t types[][7] = {
        {EXO_DTYPE_Q4_0, EXO_DTYPE_Q4_1, EXO_DTYPE_Q8_0, EXO_DTYPE_F16, EXO_DTYPE_Q4_K,
         EXO_DTYPE_Q5_K, EXO_DTYPE_Q6_K},
        {EXO_DTYPE_BF16, EXO_DTYPE_F32, EXO_DTYPE_Q4_K, EXO_DTYPE_Q4_1, EXO_DTYPE_Q8_0,
         EXO_DTYPE_Q4_1, EXO_DTYPE_Q4_K},
    };
    struct tiny_config cfg;
    struct fixture f;
    tiny_config_default(&cfg, "llama");
    cfg.types = types;
    fixture_open(&f, &cfg, 1);
    size_t nv = cfg.n_vocab;
    float *whole = malloc(sizeof(float) * N_TOKENS * nv);
    struct exo_shard *s = whole_shard(&f, EXO_DTYPE_F32, N_TOKENS);
    assert_int_equal(exo_shard_forward(s, f.tokens, NULL, N_TOKENS, 0, NULL, whole, true), 0);
    exo_shard_free(s);

    struct tp_group group;
    pthread_barrier_init(&group.barrier, NULL, 2);
    struct tp_member members[2];
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        /* Uneven FFN split (256-column Q4_K/Q5_K blocks allow only multiples of 256). */
        members[i] = (struct tp_member){
            .group = &group, .index = i, .model = f.model, .tokens = f.tokens,
            .spec = {0, cfg.n_layer, (uint32_t)i, (uint32_t)i + 1, i == 0 ? 0 : 256,
                     i == 0 ? 256 : cfg.n_ff},
            .logits = malloc(sizeof(float) * N_TOKENS * nv),
        };
        pthread_create(&threads[i], NULL, tp_main, &members[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&group.barrier);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(members[i].rc, 0);
        double err = 0.0;
        for (size_t j = 0; j < N_TOKENS * nv; j++)
            err = fmax(err, fabs(members[i].logits[j] - whole[j]));
        print_message("tensor-parallel shard %d vs whole model: %.2e\n", i, err);
        assert_true(err < 2e-3);
        free(members[i].logits);
    }
    free(whole);
    fixture_close(&f);
}

/* Two pipeline stages: layers [0, 1) hand their hidden state to layers [1, 2). */
static void test_shard_pipeline_matches_whole(void **state)
{
    struct tiny_config cfg;
    struct fixture f;
    tiny_config_default(&cfg, "qwen2");
    fixture_open(&f, &cfg, 2);
    size_t nv = cfg.n_vocab;
    float *whole = malloc(sizeof(float) * N_TOKENS * nv);
    float *staged = malloc(sizeof(float) * N_TOKENS * nv);
    float *hidden = malloc(sizeof(float) * N_TOKENS * cfg.n_embd);
    struct exo_shard *s = whole_shard(&f, EXO_DTYPE_F16, N_TOKENS);
    assert_int_equal(exo_shard_forward(s, f.tokens, NULL, N_TOKENS, 0, NULL, whole, true), 0);
    exo_shard_free(s);

    struct exo_shard_params p = {.n_ctx = 64, .n_batch = N_TOKENS, .kv_type = EXO_DTYPE_F16};
    struct exo_shard_spec a = {0, 1, 0, cfg.n_head_kv, 0, cfg.n_ff};
    struct exo_shard_spec b = {1, 2, 0, cfg.n_head_kv, 0, cfg.n_ff};
    struct exo_shard *sa = NULL, *sb = NULL;
    assert_int_equal(exo_shard_create(f.model, f.be, &a, &p, &sa, NULL), 0);
    assert_int_equal(exo_shard_create(f.model, f.be, &b, &p, &sb, NULL), 0);
    assert_true(exo_shard_is_first(sa) && !exo_shard_is_last(sa));
    assert_true(!exo_shard_is_first(sb) && exo_shard_is_last(sb));
    /* Each stage insists on its own inputs. */
    assert_int_equal(exo_shard_forward(sa, f.tokens, NULL, 1, 0, NULL, staged, false), EXO_EINVAL);
    assert_int_equal(exo_shard_forward(sa, f.tokens, NULL, N_TOKENS, 0, hidden, NULL, false), 0);
    assert_int_equal(exo_shard_forward(sb, NULL, hidden, N_TOKENS, 0, NULL, staged, true), 0);
    double err = 0.0;
    for (size_t j = 0; j < N_TOKENS * nv; j++)
        err = fmax(err, fabs(staged[j] - whole[j]));
    print_message("pipeline stages vs whole model: %.2e\n", err);
    assert_true(err < 1e-5);
    exo_shard_free(sa);
    exo_shard_free(sb);
    free(whole);
    free(staged);
    free(hidden);
    fixture_close(&f);
}

static void expect_model_error(struct gguf_writer *w, int code, const char *needle)
{
    uint8_t *data;
    size_t size;
    struct exo_gguf *g = NULL;
    struct exo_model *m = NULL;
    struct exo_diag diag = {{0}};
    gguf_writer_finish(w, &data, &size);
    gguf_writer_free(w);
    assert_int_equal(exo_gguf_open_memory(data, size, "odd.gguf", &g, NULL), 0);
    int rc = exo_model_from_gguf(g, &m, &diag);
    if (rc != code || !strstr(diag.msg, needle))
        fail_msg("expected %s with '%s', got %s: %s", exo_errname(code), needle, exo_errname(rc),
                 diag.msg);
    free(data);
}

/* A one-layer llama of width 32 whose attn_q.weight has the given type and row count; the
 * loader checks tensors in order and stops at attn_q, so nothing after it is needed. */
static struct gguf_writer *hand_model(uint32_t q_type, uint64_t q_rows)
{
    static uint8_t zeros[64 * 1024];
    struct gguf_writer *w = gguf_writer_new(3, 32);
    gguf_writer_str(w, "general.architecture", "llama");
    gguf_writer_u32(w, "llama.embedding_length", 32);
    gguf_writer_u32(w, "llama.block_count", 1);
    gguf_writer_u32(w, "llama.feed_forward_length", 32);
    gguf_writer_u32(w, "llama.attention.head_count", 1);
    uint64_t embd[2] = {32, 8}, vec[1] = {32}, q[2] = {32, q_rows};
    gguf_writer_tensor(w, "token_embd.weight", EXO_DTYPE_F32, 2, embd, zeros);
    gguf_writer_tensor(w, "output_norm.weight", EXO_DTYPE_F32, 1, vec, zeros);
    gguf_writer_tensor(w, "blk.0.attn_norm.weight", EXO_DTYPE_F32, 1, vec, zeros);
    gguf_writer_tensor(w, "blk.0.attn_q.weight", q_type, 2, q, zeros);
    return w;
}

static void test_model_rejects_what_it_cannot_run(void **state)
{
    struct gguf_writer *w = gguf_writer_new(3, 32);
    gguf_writer_str(w, "general.architecture", "mamba");
    expect_model_error(w, EXO_EUNSUPPORTED,
                       "architecture 'mamba' is not supported (supported: llama, qwen2)");

    w = gguf_writer_new(3, 32);
    expect_model_error(w, EXO_EFORMAT, "general.architecture is missing");

    w = gguf_writer_new(3, 32);
    gguf_writer_str(w, "general.architecture", "llama");
    expect_model_error(w, EXO_EFORMAT, "llama.embedding_length is missing");

    w = gguf_writer_new(3, 32);
    gguf_writer_str(w, "general.architecture", "llama");
    gguf_writer_u32(w, "llama.embedding_length", 256);
    gguf_writer_u32(w, "llama.block_count", 1);
    gguf_writer_u32(w, "llama.feed_forward_length", 512);
    gguf_writer_u32(w, "llama.attention.head_count", 4);
    gguf_writer_u32(w, "llama.attention.head_count_kv", 3);
    expect_model_error(w, EXO_EFORMAT, "not a multiple of the key/value head count");

    /* A type the engine cannot compute with is named, with the list of those it can. */
    expect_model_error(hand_model(EXO_DTYPE_Q5_0, 32), EXO_EUNSUPPORTED,
                       "tensor blk.0.attn_q.weight has type q5_0, which exo cannot compute with "
                       "yet (supported: f32, f16");
    /* A tensor of the wrong shape is named with both shapes. */
    expect_model_error(hand_model(EXO_DTYPE_F32, 16), EXO_EFORMAT,
                       "tensor blk.0.attn_q.weight has shape [32, 16, 1, 1], expected [32, 32]");
    expect_model_error(hand_model(EXO_DTYPE_F32, 32), EXO_EFORMAT,
                       "tensor blk.0.attn_k.weight is missing");

    /* A well-formed model reports its hyperparameters. */
    struct tiny_config cfg;
    uint8_t *data;
    size_t size;
    struct exo_gguf *g = NULL;
    struct exo_model *m = NULL;
    tiny_config_default(&cfg, "llama");
    cfg.tied_output = true;
    tiny_model_build(&cfg, &data, &size);
    assert_int_equal(exo_gguf_open_memory(data, size, "ok.gguf", &g, NULL), 0);
    assert_int_equal(exo_model_from_gguf(g, &m, NULL), 0);
    assert_int_equal(m->hp.n_layer, 2);
    assert_int_equal(m->hp.n_vocab, cfg.n_vocab);
    assert_int_equal(m->hp.head_dim, 64);
    assert_int_equal(m->hp.n_head_kv, 2);
    assert_true(m->hp.tied_output);
    assert_ptr_equal(m->output, m->tok_embd);
    assert_string_equal(m->name, "tiny test model");
    exo_model_close(m);
    free(data);
}

static void test_shard_rejects_misaligned_slices(void **state)
{
    struct tiny_config cfg;
    struct fixture f;
    tiny_config_default(&cfg, "llama");
    fixture_open(&f, &cfg, 1);
    struct exo_diag diag = {{0}};
    /* FFN down is Q6_K in layer 0: a 128-column slice cuts a 256-element block. */
    struct exo_shard_spec spec = {0, 2, 0, 2, 0, 128};
    assert_int_equal(exo_shard_spec_check(f.model, &spec, &diag), EXO_EINVAL);
    assert_non_null(strstr(diag.msg, "block boundaries"));
    spec = (struct exo_shard_spec){0, 3, 0, 2, 0, 512};
    assert_int_equal(exo_shard_spec_check(f.model, &spec, &diag), EXO_EINVAL);
    assert_non_null(strstr(diag.msg, "out of the model's range"));
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard_llama_matches_reference),
        cmocka_unit_test(test_shard_qwen2_matches_reference),
        cmocka_unit_test(test_shard_f16_cache_matches_reference),
        cmocka_unit_test(test_shard_batched_equals_incremental),
        cmocka_unit_test(test_shard_tensor_parallel_matches_whole),
        cmocka_unit_test(test_shard_pipeline_matches_whole),
        cmocka_unit_test(test_model_rejects_what_it_cannot_run),
        cmocka_unit_test(test_shard_rejects_misaligned_slices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
