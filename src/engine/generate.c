/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Single-node generation (see generate.h).
 *
 * Streaming with stop strings: generated text accumulates in `text`; everything before
 * `released` has been handed to the caller. After each token the text is searched for a stop
 * string (only the new tail can contain a new match); without a match, the longest suffix that
 * could still grow into a stop string is held back and the rest released.
 */
#include "engine/generate.h"

#include <stdio.h>
#include <string.h>

#include "backend/cpu/cpu-backend.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "engine/shard.h"

/* Generated text kept for stop-string matching is capped; older text is released and dropped. */
#define MAX_TEXT (1u << 20)

struct exo_session {
    struct exo_model *model;         /* owned */
    struct exo_tokenizer *tokenizer; /* owned */
    struct exo_backend *backend;     /* owned */
    struct exo_shard *shard;         /* owned */
    char device[160];
    float *logits;                   /* owned, n_vocab */
    int32_t *cache;                  /* owned: the tokens in the KV cache, in order */
    int32_t n_cache;
};

void exo_session_close(struct exo_session *s)
{
    if (!s)
        return;
    exo_shard_free(s->shard);
    if (s->backend)
        s->backend->iface->free(s->backend);
    exo_tokenizer_free(s->tokenizer);
    exo_model_close(s->model);
    exo_free(s->logits);
    exo_free(s->cache);
    exo_free(s);
}

int exo_session_open(const char *path, const struct exo_session_params *params,
                     struct exo_session **ret, struct exo_diag *diag)
{
    struct exo_session *s = exo_calloc(1, sizeof(*s));
    if (!s)
        return EXO_ENOMEM;
    int rc = exo_model_open(path, &s->model, diag);
    if (rc < 0)
        goto out;
    rc = exo_tokenizer_from_gguf(s->model->gguf, &s->tokenizer, diag);
    if (rc < 0)
        goto out;

    const struct exo_hparams *hp = &s->model->hp;
    struct exo_backend_params bp = {sizeof(bp), params->n_threads};
    rc = exo_cpu_backend_create(&bp, &s->backend);
    if (rc < 0) {
        exo_diag_set(diag, rc, "cannot start the CPU backend: %s", exo_strerror(rc));
        goto out;
    }
    struct exo_backend_device_info info;
    if (s->backend->iface->device_info(s->backend, &info) == 0)
        snprintf(s->device, sizeof(s->device), "%s", info.description);

    struct exo_shard_spec spec;
    exo_shard_spec_whole(s->model, &spec);
    struct exo_shard_params sp = {
        .n_ctx = params->n_ctx ? params->n_ctx
                               : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096),
        .n_batch = params->n_batch ? params->n_batch : 512,
        .kv_type = params->kv_type == EXO_DTYPE_F32 ? EXO_DTYPE_F32 : EXO_DTYPE_F16,
    };
    if (sp.n_batch > sp.n_ctx)
        sp.n_batch = sp.n_ctx;
    rc = exo_shard_create(s->model, s->backend, &spec, &sp, &s->shard, diag);
    if (rc < 0)
        goto out;
    s->logits = exo_malloc((size_t)hp->n_vocab * sizeof(float));
    s->cache = exo_malloc((size_t)sp.n_ctx * sizeof(int32_t));
    if (!s->logits || !s->cache)
        rc = EXO_ENOMEM;
out:
    if (rc < 0) {
        exo_session_close(s);
        return rc;
    }
    *ret = s;
    return 0;
}

const struct exo_model *exo_session_model(const struct exo_session *s)
{
    return s->model;
}

const struct exo_tokenizer *exo_session_tokenizer(const struct exo_session *s)
{
    return s->tokenizer;
}

uint32_t exo_session_n_ctx(const struct exo_session *s)
{
    return exo_shard_n_ctx(s->shard);
}

const char *exo_session_device(const struct exo_session *s)
{
    return s->device;
}

void exo_session_reset(struct exo_session *s)
{
    s->n_cache = 0;
}

int exo_session_tokenize(const struct exo_session *s, const char *text, bool add_special,
                         int32_t **ret_tokens, size_t *ret_n)
{
    return exo_tokenizer_encode(s->tokenizer, text, strlen(text), add_special, true, ret_tokens,
                                ret_n);
}

int exo_session_eval(struct exo_session *s, const int32_t *tokens, int32_t n, int32_t n_past,
                     float *logits)
{
    uint32_t n_batch = exo_shard_n_batch(s->shard);
    if (n_past < 0 || n_past > s->n_cache)
        return EXO_EINVAL;
    for (int32_t i = 0; i < n; i += (int32_t)n_batch) {
        int32_t chunk = n - i < (int32_t)n_batch ? n - i : (int32_t)n_batch;
        int rc = exo_shard_forward(s->shard, tokens + i, NULL, chunk, n_past + i, NULL,
                                   s->logits, false);
        if (rc < 0) {
            s->n_cache = n_past + i;
            return rc;
        }
        memcpy(s->cache + n_past + i, tokens + i, (size_t)chunk * sizeof(int32_t));
    }
    s->n_cache = n_past + n;
    if (logits)
        memcpy(logits, s->logits, (size_t)s->model->hp.n_vocab * sizeof(float));
    return 0;
}

struct stream {
    struct exo_buf text;
    size_t released;
    const struct exo_generate_params *p;
    size_t max_stop;
    bool canceled;
};

static bool release(struct stream *st, size_t upto)
{
    if (upto > st->released && st->p->on_text &&
        !st->p->on_text(st->p->ud, (const char *)st->text.data + st->released,
                        upto - st->released))
        st->canceled = true;
    if (upto > st->released)
        st->released = upto;
    return !st->canceled;
}

/* After new text arrived: true when a stop string matched (text before it is released). */
static bool check_stop(struct stream *st, size_t old_len)
{
    const char *t = (const char *)st->text.data;
    size_t len = st->text.len;
    size_t from = old_len >= st->max_stop ? old_len - st->max_stop + 1 : 0;
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < st->p->n_stop; i++) {
        const char *stop = st->p->stop[i];
        size_t n = strlen(stop);
        if (n == 0)
            continue;
        for (size_t at = from; at + n <= len && at < best; at++)
            if (memcmp(t + at, stop, n) == 0)
                best = at;
    }
    if (best != SIZE_MAX) {
        release(st, best);
        return true;
    }
    /* Hold back the longest tail that is a proper prefix of some stop string. */
    size_t hold = 0;
    for (size_t i = 0; i < st->p->n_stop; i++) {
        size_t n = strlen(st->p->stop[i]);
        for (size_t k = n - 1 < len ? n - 1 : len; k > hold; k--)
            if (memcmp(t + len - k, st->p->stop[i], k) == 0) {
                hold = k;
                break;
            }
    }
    release(st, len - hold);
    return false;
}

/* Keep the text buffer bounded: drop what has been released, keeping the matching window. */
static void compact(struct stream *st)
{
    if (st->text.len < MAX_TEXT)
        return;
    size_t drop = st->released > st->max_stop ? st->released - st->max_stop : 0;
    memmove(st->text.data, st->text.data + drop, st->text.len - drop);
    st->text.len -= drop;
    st->released -= drop;
}

int exo_session_generate(struct exo_session *s, const int32_t *prompt, size_t n_prompt,
                         const struct exo_generate_params *params,
                         struct exo_generate_result *ret)
{
    const struct exo_hparams *hp = &s->model->hp;
    uint32_t n_ctx = exo_shard_n_ctx(s->shard);
    struct exo_sampler *sampler = NULL;
    struct exo_detok detok;
    struct stream st = {.p = params};
    int rc;

    memset(ret, 0, sizeof(*ret));
    if (n_prompt == 0)
        return EXO_EINVAL;
    if (n_prompt >= n_ctx)
        return EXO_ETOOBIG;
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || (uint32_t)prompt[i] >= hp->n_vocab)
            return EXO_ERANGE;
    ret->n_prompt = (int32_t)n_prompt;

    rc = exo_sampler_create(&params->sampling, (int32_t)hp->n_vocab, &sampler);
    if (rc < 0)
        return rc;
    exo_buf_init(&st.text, 0);
    for (size_t i = 0; i < params->n_stop; i++) {
        size_t n = strlen(params->stop[i]);
        st.max_stop = n > st.max_stop ? n : st.max_stop;
    }
    exo_detok_init(&detok, false);

    /* Reuse the cached prefix; at least the last prompt token is run to get fresh logits. */
    uint64_t t0 = exo_clock_ns();
    int32_t keep = 0;
    while (keep < s->n_cache && (size_t)keep < n_prompt - 1 && s->cache[keep] == prompt[keep])
        keep++;
    ret->n_prompt_evaluated = (int32_t)n_prompt - keep;
    rc = exo_session_eval(s, prompt + keep, (int32_t)n_prompt - keep, keep, NULL);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < n_prompt; i++)
        exo_sampler_accept(sampler, prompt[i]);

    uint64_t t1 = 0;
    ret->finish = EXO_FINISH_LENGTH;
    while (params->max_tokens != 0) {
        int32_t tok = exo_sampler_sample(sampler, s->logits);
        if (ret->n_generated == 0) {
            t1 = exo_clock_ns();
            ret->prompt_ns = t1 - t0;
        }
        ret->n_generated++;
        if (params->on_token)
            params->on_token(params->ud, tok);
        if (exo_tokenizer_is_eog(s->tokenizer, tok)) {
            ret->finish = EXO_FINISH_STOP;
            break;
        }
        exo_sampler_accept(sampler, tok);
        size_t old_len = st.text.len;
        if ((rc = exo_detok_push(s->tokenizer, &detok, tok, &st.text)) < 0)
            goto out;
        if (st.text.err) {
            rc = st.text.err;
            goto out;
        }
        if (check_stop(&st, old_len)) {
            ret->finish = st.canceled ? EXO_FINISH_CANCELED : EXO_FINISH_STOP;
            goto done;
        }
        if (st.canceled) {
            ret->finish = EXO_FINISH_CANCELED;
            goto done;
        }
        compact(&st);
        if ((params->max_tokens >= 0 && ret->n_generated >= params->max_tokens) ||
            (uint32_t)s->n_cache >= n_ctx)
            break;
        rc = exo_session_eval(s, &tok, 1, s->n_cache, NULL);
        if (rc < 0)
            goto out;
    }
    /* Finished without a stop string: whatever was held back is final text after all. */
    exo_detok_flush(&detok, &st.text);
    release(&st, st.text.len);
    if (st.canceled)
        ret->finish = EXO_FINISH_CANCELED;
done:
    if (t1)
        ret->generate_ns = exo_clock_ns() - t1;
    else
        ret->prompt_ns = exo_clock_ns() - t0;
out:
    exo_buf_free(&st.text);
    exo_sampler_free(sampler);
    return rc;
}
