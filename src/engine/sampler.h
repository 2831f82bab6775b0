/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Token sampling from logits. The chain runs in llama.cpp's default order: repetition, presence
 * and frequency penalties over the recent history; top-k; top-p; min-p; temperature; a draw from
 * a seeded generator. A temperature of zero (or below) means greedy: the highest logit after the
 * penalties. The same seed and the same logits give the same tokens on every run.
 */
#ifndef EXO_ENGINE_SAMPLER_H
#define EXO_ENGINE_SAMPLER_H

#include <stdint.h>

struct exo_sampler_params {
    float temperature;       /* <= 0: greedy */
    int32_t top_k;           /* <= 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float repeat_penalty;    /* 1: off; logits of recent tokens divided (positive) or multiplied */
    int32_t penalty_last_n;  /* history length the penalties look at */
    float presence_penalty;  /* 0: off; subtracted once from each recent token's logit */
    float frequency_penalty; /* 0: off; subtracted per occurrence */
    uint64_t seed;
};

/* llama.cpp's defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, penalties off,
 * last 64 tokens, seed 0 (callers pick a random seed when the user gave none). */
void exo_sampler_params_default(struct exo_sampler_params *ret);

struct exo_sampler;

/* A sampler for a vocabulary of n_vocab tokens. *ret owned by the caller. */
int exo_sampler_create(const struct exo_sampler_params *params, int32_t n_vocab,
                       struct exo_sampler **ret);
void exo_sampler_free(struct exo_sampler *s);

/* Forget the history (a new conversation) and reseed. */
void exo_sampler_reset(struct exo_sampler *s, uint64_t seed);

/* Record a token of the context (prompt or generated) for the penalties. */
void exo_sampler_accept(struct exo_sampler *s, int32_t token);

/* Pick the next token from logits [n_vocab] (borrowed; left unchanged). */
int32_t exo_sampler_sample(struct exo_sampler *s, const float *logits);

#endif
