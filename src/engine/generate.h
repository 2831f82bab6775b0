/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Generation on one node: a session holds a model, its tokenizer, a whole-model shard on a
 * backend and the tokens currently in the KV cache. exo_session_generate() evaluates a prompt
 * (reusing the longest prefix already in the cache, so a chat turn only pays for its new
 * tokens), then samples tokens one by one and streams their text until an end-of-generation
 * token, a stop string, the token limit, the context limit or a cancel from the callback.
 *
 * Threads: a session is used by one thread at a time (a compute thread in the daemon, the main
 * thread in the CLI); its backend may use more threads internally.
 */
#ifndef EXO_ENGINE_GENERATE_H
#define EXO_ENGINE_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"
#include "exo/backend.h"

struct exo_session_params {
    uint32_t n_ctx;          /* 0: min(model's training context, 4096) */
    uint32_t n_batch;        /* 0: 512 */
    int32_t n_threads;       /* <= 0: physical cores */
    enum exo_dtype kv_type;  /* EXO_DTYPE_F16 unless set to EXO_DTYPE_F32 */
};

enum exo_finish {
    EXO_FINISH_STOP = 0, /* end-of-generation token or stop string */
    EXO_FINISH_LENGTH,   /* max_tokens reached or the context is full */
    EXO_FINISH_CANCELED, /* the text callback asked to stop */
};

/* Text as it becomes final (never a partial UTF-8 character, never part of a stop string).
 * Return false to cancel. `text` is borrowed for the call. */
typedef bool (*exo_text_cb)(void *ud, const char *text, size_t len);

/* Each token as it is sampled (for callers that count or log ids); may be NULL. */
typedef void (*exo_token_cb)(void *ud, int32_t token);

struct exo_generate_params {
    struct exo_sampler_params sampling;
    int32_t max_tokens;        /* < 0: until the context is full */
    const char *const *stop;   /* stop strings, borrowed; the matched text is not emitted */
    size_t n_stop;
    exo_text_cb on_text;
    exo_token_cb on_token;
    void *ud;
};

struct exo_generate_result {
    enum exo_finish finish;
    int32_t n_prompt;          /* prompt tokens */
    int32_t n_prompt_evaluated; /* prompt tokens actually run (the rest came from the cache) */
    int32_t n_generated;       /* tokens sampled */
    uint64_t prompt_ns;        /* evaluating the prompt (until the first token is sampled) */
    uint64_t generate_ns;      /* sampling and decoding after the first token */
};

struct exo_session;

/* Open the model at path, build its tokenizer and a CPU shard. *ret owned by the caller. */
int exo_session_open(const char *path, const struct exo_session_params *params,
                     struct exo_session **ret, struct exo_diag *diag);
void exo_session_close(struct exo_session *s);

const struct exo_model *exo_session_model(const struct exo_session *s);
const struct exo_tokenizer *exo_session_tokenizer(const struct exo_session *s);
uint32_t exo_session_n_ctx(const struct exo_session *s);
/* A description of the compute device ("CPU (2 threads, avx512-vnni)"). */
const char *exo_session_device(const struct exo_session *s);

/* Forget the cached tokens (the next prompt is evaluated in full). */
void exo_session_reset(struct exo_session *s);

/* Tokens for text with the model's special-token rules; *ret_tokens owned by the caller. */
int exo_session_tokenize(const struct exo_session *s, const char *text, bool add_special,
                         int32_t **ret_tokens, size_t *ret_n);

/* Generate after `prompt` (n_prompt >= 1 tokens, borrowed). EXO_ETOOBIG when the prompt does
 * not fit the context. */
int exo_session_generate(struct exo_session *s, const int32_t *prompt, size_t n_prompt,
                         const struct exo_generate_params *params,
                         struct exo_generate_result *ret);

/* Run tokens [n_past, n_past + n) through the model without sampling (benchmarks): the cache is
 * left holding them. logits (n_vocab floats) receives the last token's logits when not NULL. */
int exo_session_eval(struct exo_session *s, const int32_t *tokens, int32_t n, int32_t n_past,
                     float *logits);

#endif
