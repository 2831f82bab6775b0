/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sampling chain (see sampler.h). Candidates are (token, logit) pairs; each stage narrows or
 * reweights them. Top-k uses a partial selection so the common case (k = 40 of 49,152) never
 * sorts the whole vocabulary; only when top-k is off and top-p is on is the full list sorted.
 */
#include "engine/sampler.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/rng.h"

struct candidate {
    int32_t id;
    float logit;
};

struct exo_sampler {
    struct exo_sampler_params p;
    int32_t n_vocab;
    struct exo_rng rng;
    struct candidate *cand; /* n_vocab */
    float *work;            /* n_vocab: penalised logits */
    int32_t *history;       /* ring of the last penalty_last_n accepted tokens */
    int32_t n_history, history_pos;
    int32_t *counts;        /* n_vocab occurrence counts, rebuilt per sample */
};

void exo_sampler_params_default(struct exo_sampler_params *ret)
{
    *ret = (struct exo_sampler_params){
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .penalty_last_n = 64,
        .presence_penalty = 0.0f,
        .frequency_penalty = 0.0f,
        .seed = 0,
    };
}

int exo_sampler_create(const struct exo_sampler_params *params, int32_t n_vocab,
                       struct exo_sampler **ret)
{
    if (n_vocab <= 0 || params->penalty_last_n < 0 || params->penalty_last_n > (1 << 20) ||
        !(params->repeat_penalty > 0.0f) || isnan(params->temperature) ||
        isnan(params->top_p) || isnan(params->min_p))
        return EXO_EINVAL;
    struct exo_sampler *s = exo_calloc(1, sizeof(*s));
    if (!s)
        return EXO_ENOMEM;
    s->p = *params;
    s->n_vocab = n_vocab;
    s->cand = exo_malloc(exo_mul_size((size_t)n_vocab, sizeof(*s->cand)));
    s->work = exo_malloc(exo_mul_size((size_t)n_vocab, sizeof(*s->work)));
    s->counts = exo_calloc((size_t)n_vocab, sizeof(*s->counts));
    s->history = exo_calloc((size_t)params->penalty_last_n + 1, sizeof(*s->history));
    if (!s->cand || !s->work || !s->counts || !s->history) {
        exo_sampler_free(s);
        return EXO_ENOMEM;
    }
    exo_rng_seed(&s->rng, params->seed);
    *ret = s;
    return 0;
}

void exo_sampler_free(struct exo_sampler *s)
{
    if (!s)
        return;
    exo_free(s->cand);
    exo_free(s->work);
    exo_free(s->counts);
    exo_free(s->history);
    exo_free(s);
}

void exo_sampler_reset(struct exo_sampler *s, uint64_t seed)
{
    s->n_history = 0;
    s->history_pos = 0;
    exo_rng_seed(&s->rng, seed);
}

void exo_sampler_accept(struct exo_sampler *s, int32_t token)
{
    int32_t cap = s->p.penalty_last_n;
    if (cap == 0 || token < 0 || token >= s->n_vocab)
        return;
    s->history[s->history_pos] = token;
    s->history_pos = (s->history_pos + 1) % cap;
    if (s->n_history < cap)
        s->n_history++;
}

static bool penalties_on(const struct exo_sampler_params *p)
{
    return p->penalty_last_n > 0 &&
           (p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f ||
            p->frequency_penalty != 0.0f);
}

/* Apply the penalties to s->work (a copy of the logits) over the recorded history. */
static void apply_penalties(struct exo_sampler *s)
{
    for (int32_t i = 0; i < s->n_history; i++)
        s->counts[s->history[i]]++;
    for (int32_t i = 0; i < s->n_history; i++) {
        int32_t t = s->history[i];
        int32_t c = s->counts[t];
        if (c == 0)
            continue; /* already penalised through an earlier occurrence */
        float *l = &s->work[t];
        *l = *l > 0.0f ? *l / s->p.repeat_penalty : *l * s->p.repeat_penalty;
        *l -= (float)c * s->p.frequency_penalty + s->p.presence_penalty;
        s->counts[t] = 0;
    }
}

static int by_logit_desc(const void *a, const void *b)
{
    const struct candidate *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id; /* ties: lower id first, deterministically */
}

static bool before(const struct candidate *x, const struct candidate *y)
{
    return x->logit > y->logit || (x->logit == y->logit && x->id < y->id);
}

/* Move the k best candidates to the front (unordered), by quickselect. */
static void select_top(struct candidate *c, int32_t n, int32_t k)
{
    int32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        struct candidate pivot = c[lo + (hi - lo) / 2];
        int32_t i = lo, j = hi;
        while (i <= j) {
            while (before(&c[i], &pivot))
                i++;
            while (before(&pivot, &c[j]))
                j--;
            if (i <= j) {
                struct candidate t = c[i];
                c[i++] = c[j];
                c[j--] = t;
            }
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            return;
    }
}

int32_t exo_sampler_sample(struct exo_sampler *s, const float *logits)
{
    const struct exo_sampler_params *p = &s->p;
    const float *l = logits;
    if (penalties_on(p)) {
        memcpy(s->work, logits, (size_t)s->n_vocab * sizeof(float));
        apply_penalties(s);
        l = s->work;
    }
    if (p->temperature <= 0.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < s->n_vocab; i++)
            if (l[i] > l[best])
                best = i;
        return best;
    }

    int32_t n = s->n_vocab;
    for (int32_t i = 0; i < n; i++)
        s->cand[i] = (struct candidate){i, l[i]};
    if (p->top_k > 0 && p->top_k < n) {
        select_top(s->cand, n, p->top_k);
        n = p->top_k;
    }
    qsort(s->cand, (size_t)n, sizeof(*s->cand), by_logit_desc);

    /* Probabilities at temperature 1 for the truncations, as llama.cpp's chain computes them. */
    float max = s->cand[0].logit;
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++)
        sum += exp((double)(s->cand[i].logit - max));
    if (p->top_p < 1.0f) {
        double cum = 0.0;
        for (int32_t i = 0; i < n; i++) {
            cum += exp((double)(s->cand[i].logit - max)) / sum;
            if (cum >= (double)p->top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0.0f) {
        /* Keep tokens whose probability is at least min_p times the best one's. */
        float floor_logit = max + logf(p->min_p);
        int32_t keep = 1;
        while (keep < n && s->cand[keep].logit >= floor_logit)
            keep++;
        n = keep;
    }

    double total = 0.0;
    for (int32_t i = 0; i < n; i++) {
        double w = exp((double)((s->cand[i].logit - max) / p->temperature));
        s->work[i] = (float)w;
        total += w;
    }
    double r = exo_rng_uniform(&s->rng) * total;
    for (int32_t i = 0; i < n; i++) {
        r -= (double)s->work[i];
        if (r < 0.0)
            return s->cand[i].id;
    }
    return s->cand[n - 1].id;
}
