/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine on the real default model against llama.cpp, an independent implementation
 * (tests/data/oracle/smollm2.json, made by tests/oracle/make-oracle.py with llama-cpp-python:
 * see its docstring). Runs when EXO_MODEL names the model (make test sets it).
 *
 * Two checks per generation case:
 *  - teacher forcing: llama.cpp's prompt and its 64 greedy tokens go through our forward pass
 *    in one batch; at every step whose llama.cpp margin (best minus runner-up logit) is at least
 *    FIRM_MARGIN our greedy choice must be llama.cpp's, and at the near-ties below it llama.cpp's
 *    choice must be among our two best. Two correct implementations differ by ~0.15 RMS in their
 *    logits (8-bit activations round differently; llama.cpp differs as much from float64), so a
 *    near-tie may legitimately break either way.
 *  - free-running greedy generation: for the cases marked robust (every margin >= 1.0) our
 *    generated ids must equal llama.cpp's token for token, up to the first end-of-generation
 *    token, where we must stop too.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "backend/cpu/cpu-backend.h"
#include "engine/generate.h"
#include "engine/shard.h"

#define FIRM_MARGIN 0.5f
/* Free-running cases checked (at least 3 are required); more only lengthen the sanitizer run. */
#define MAX_FREE_RUNNING 4

static cJSON *load_oracle(void)
{
    char path[1024];
    const char *data = getenv("EXO_TEST_DATA");
    snprintf(path, sizeof(path), "%s/oracle/smollm2.json", data ? data : "tests/data");
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
    text[size] = '\0';
    fclose(f);
    cJSON *json = cJSON_Parse(text);
    free(text);
    assert_non_null(json);
    return json;
}

static int32_t *int_array(const cJSON *arr, int *ret_n)
{
    int n = cJSON_GetArraySize(arr);
    int32_t *v = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++)
        v[i] = (int32_t)cJSON_GetArrayItem(arr, i)->valuedouble;
    *ret_n = n;
    return v;
}

static const char *model_path(void)
{
    const char *p = getenv("EXO_MODEL");
    return p && *p ? p : NULL;
}

static void test_oracle_teacher_forced(void **state)
{
    const char *path = model_path();
    if (!path) {
        skip();
        return;
    }
    cJSON *oracle = load_oracle();
    struct exo_model *m = NULL;
    struct exo_backend *be = NULL;
    struct exo_diag diag = {{0}};
    if (exo_model_open(path, &m, &diag) != 0)
        fail_msg("%s", diag.msg);
    struct exo_backend_params bp = {sizeof(bp), 0};
    assert_int_equal(exo_cpu_backend_create(&bp, &be), 0);
    int nv = (int)m->hp.n_vocab;
    int firm = 0, near = 0;
    double worst_firm_margin = INFINITY;

    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItem(oracle, "generate"))
    {
        int n_prompt, n_gen, n_margins;
        int32_t *prompt = int_array(cJSON_GetObjectItem(g, "prompt_ids"), &n_prompt);
        int32_t *ids = int_array(cJSON_GetObjectItem(g, "ids"), &n_gen);
        const cJSON *margins = cJSON_GetObjectItem(g, "margins");
        n_margins = cJSON_GetArraySize(margins);
        assert_int_equal(n_margins, n_gen);
        int n = n_prompt + n_gen - 1; /* the last generated id is never fed back */
        int32_t *seq = malloc(sizeof(int32_t) * (size_t)n);
        memcpy(seq, prompt, sizeof(int32_t) * (size_t)n_prompt);
        memcpy(seq + n_prompt, ids, sizeof(int32_t) * (size_t)(n_gen - 1));

        struct exo_shard_spec spec;
        struct exo_shard_params sp = {.n_ctx = 256, .n_batch = (uint32_t)n,
                                      .kv_type = EXO_DTYPE_F16};
        struct exo_shard *s = NULL;
        exo_shard_spec_whole(m, &spec);
        assert_int_equal(exo_shard_create(m, be, &spec, &sp, &s, NULL), 0);
        float *logits = malloc(sizeof(float) * (size_t)n * (size_t)nv);
        assert_int_equal(exo_shard_forward(s, seq, NULL, n, 0, NULL, logits, true), 0);

        for (int i = 0; i < n_gen; i++) {
            const float *row = logits + (size_t)(n_prompt - 1 + i) * (size_t)nv;
            int best = 0, second = -1;
            for (int t = 1; t < nv; t++) {
                if (row[t] > row[best]) {
                    second = best;
                    best = t;
                } else if (second < 0 || row[t] > row[second]) {
                    second = t;
                }
            }
            float their_margin = (float)cJSON_GetArrayItem(margins, i)->valuedouble;
            const char *name = cJSON_GetObjectItem(g, "name")->valuestring;
            if (their_margin >= FIRM_MARGIN) {
                firm++;
                worst_firm_margin = fmin(worst_firm_margin, their_margin);
                if (best != ids[i])
                    fail_msg("%s step %d: llama.cpp chose %d with margin %.3f, we chose %d "
                             "(logits %.3f vs %.3f)",
                             name, i, ids[i], their_margin, best, row[best], row[ids[i]]);
            } else {
                near++;
                if (best != ids[i] && second != ids[i])
                    fail_msg("%s step %d: near-tie (margin %.3f) but llama.cpp's %d is not in "
                             "our top two (%d, %d)",
                             name, i, their_margin, ids[i], best, second);
            }
        }
        free(logits);
        exo_shard_free(s);
        free(seq);
        free(prompt);
        free(ids);
    }
    print_message("teacher forcing: %d firm steps agree, %d near-ties within our top two\n", firm,
                  near);
    assert_true(firm >= 3 * 64);
    be->iface->free(be);
    exo_model_close(m);
    cJSON_Delete(oracle);
}

struct collected {
    int32_t ids[256];
    int n;
};

static void collect(void *ud, int32_t tok)
{
    struct collected *c = ud;
    if (c->n < 256)
        c->ids[c->n++] = tok;
}

static void test_oracle_greedy_generation(void **state)
{
    const char *path = model_path();
    if (!path) {
        skip();
        return;
    }
    cJSON *oracle = load_oracle();
    struct exo_session *s = NULL;
    struct exo_session_params sp = {.n_ctx = 2048};
    struct exo_diag diag = {{0}};
    if (exo_session_open(path, &sp, &s, &diag) != 0)
        fail_msg("%s", diag.msg);
    int robust = 0;
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItem(oracle, "generate"))
    {
        if (!cJSON_IsTrue(cJSON_GetObjectItem(g, "robust")) || robust == MAX_FREE_RUNNING)
            continue;
        int n_prompt, n_gen;
        int32_t *prompt = int_array(cJSON_GetObjectItem(g, "prompt_ids"), &n_prompt);
        int32_t *ids = int_array(cJSON_GetObjectItem(g, "ids"), &n_gen);
        const cJSON *eog = cJSON_GetObjectItem(g, "eog_at");
        int expect = cJSON_IsNumber(eog) ? (int)eog->valuedouble + 1 : n_gen;

        /* Our tokenizer must produce llama.cpp's prompt ids from the same text. */
        int32_t *ours = NULL;
        size_t n_ours = 0;
        const char *text = cJSON_GetObjectItem(g, "prompt")->valuestring;
        bool add_special = cJSON_IsTrue(cJSON_GetObjectItem(g, "add_special"));
        bool parse_special = cJSON_IsTrue(cJSON_GetObjectItem(g, "parse_special"));
        assert_int_equal(exo_tokenizer_encode(exo_session_tokenizer(s), text, strlen(text),
                                              add_special, parse_special, &ours, &n_ours),
                         0);
        assert_int_equal(n_ours, (size_t)n_prompt);
        assert_memory_equal(ours, prompt, sizeof(int32_t) * (size_t)n_prompt);
        free(ours);

        struct collected got = {.n = 0};
        struct exo_generate_params gp = {.max_tokens = n_gen, .on_token = collect, .ud = &got};
        struct exo_generate_result r;
        exo_sampler_params_default(&gp.sampling);
        gp.sampling.temperature = 0.0f;
        exo_session_reset(s);
        assert_int_equal(exo_session_generate(s, prompt, (size_t)n_prompt, &gp, &r), 0);
        const char *name = cJSON_GetObjectItem(g, "name")->valuestring;
        for (int i = 0; i < expect; i++)
            if (i >= got.n || got.ids[i] != ids[i])
                fail_msg("%s: token %d is %d, llama.cpp generated %d", name, i,
                         i < got.n ? got.ids[i] : -1, ids[i]);
        assert_int_equal(got.n, expect);
        print_message("%s: %d tokens identical to llama.cpp\n", name, expect);
        robust++;
        free(prompt);
        free(ids);
    }
    assert_true(robust >= 3);
    exo_session_close(s);
    cJSON_Delete(oracle);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oracle_teacher_forced),
        cmocka_unit_test(test_oracle_greedy_generation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
