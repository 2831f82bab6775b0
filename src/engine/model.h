/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A model: hyperparameters and the table of its weight tensors, read from a GGUF file and checked
 * against each other. Opening a model reads only metadata; weights stay in the mapping until a
 * shard (shard.h) binds the ones it needs to a backend.
 *
 * Supported architectures live in one table in model.c (name, RoPE style, which optional tensors
 * exist); adding the next llama-like architecture is one row there.
 */
#ifndef EXO_ENGINE_MODEL_H
#define EXO_ENGINE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "engine/gguf.h"
#include "exo/backend.h"

struct exo_arch_info {
    const char *name;        /* general.architecture */
    enum exo_rope_mode rope; /* rotation style the converter's Q/K layout expects */
    bool qkv_bias;           /* attention Q/K/V projections carry biases */
};

/* Names of the supported architectures, for error messages. */
#define EXO_ARCH_SUPPORTED_LIST "llama, qwen2"

struct exo_hparams {
    uint32_t n_vocab;
    uint32_t n_ctx_train; /* context length the model was trained for */
    uint32_t n_embd;      /* hidden size */
    uint32_t n_layer;
    uint32_t n_head;      /* query heads */
    uint32_t n_head_kv;   /* key/value heads (n_head is a multiple: grouped-query attention) */
    uint32_t head_dim;
    uint32_t n_ff;        /* FFN inner size */
    uint32_t n_rot;       /* dimensions of each head that RoPE rotates */
    float rope_base;
    float rope_freq_scale; /* 1 / linear scaling factor */
    float norm_eps;
    bool tied_output;      /* the output projection reuses token_embd */
};

/* One transformer block's weights, as stored (whole, unsharded). Shapes use the engine's
 * [rows, cols] convention: a matrix W [out, in] has ne[0] = in, ne[1] = out. */
struct exo_layer {
    const struct exo_gguf_tensor *attn_norm; /* [n_embd] f32 */
    const struct exo_gguf_tensor *wq;        /* [n_head * head_dim, n_embd] */
    const struct exo_gguf_tensor *wk;        /* [n_head_kv * head_dim, n_embd] */
    const struct exo_gguf_tensor *wv;        /* [n_head_kv * head_dim, n_embd] */
    const struct exo_gguf_tensor *bq, *bk, *bv; /* (qwen2) biases, f32, one per output row */
    const struct exo_gguf_tensor *wo;        /* [n_embd, n_head * head_dim] */
    const struct exo_gguf_tensor *ffn_norm;  /* [n_embd] f32 */
    const struct exo_gguf_tensor *w_gate;    /* [n_ff, n_embd] */
    const struct exo_gguf_tensor *w_up;      /* [n_ff, n_embd] */
    const struct exo_gguf_tensor *w_down;    /* [n_embd, n_ff] */
};

struct exo_model {
    struct exo_gguf *gguf; /* owned */
    const struct exo_arch_info *arch;
    struct exo_hparams hp;
    const struct exo_gguf_tensor *tok_embd;    /* [n_vocab, n_embd] */
    const struct exo_gguf_tensor *output_norm; /* [n_embd] f32 */
    const struct exo_gguf_tensor *output;      /* [n_vocab, n_embd]; token_embd when tied */
    const struct exo_gguf_tensor *rope_freqs;  /* (optional) [n_rot / 2] f32 */
    struct exo_layer *layers;                  /* owned, n_layer entries */
    uint64_t weight_bytes;                     /* sum of all tensor sizes */
    char name[96];                             /* general.name, or the file's base name */
};

/* Open the GGUF at path and check it is a model we can run. *ret owned by the caller. */
int exo_model_open(const char *path, struct exo_model **ret, struct exo_diag *diag);

/* Take ownership of an already opened GGUF (consumed, also on failure). */
int exo_model_from_gguf(struct exo_gguf *g, struct exo_model **ret, struct exo_diag *diag);

void exo_model_close(struct exo_model *m);

/* A backend tensor header for a GGUF tensor (data still points into the mapping). */
struct exo_tensor exo_model_tensor(const struct exo_gguf_tensor *t);

/* Bytes of KV cache one token takes for the whole model at the given cache type. */
uint64_t exo_model_kv_bytes_per_token(const struct exo_model *m, enum exo_dtype kv_type);

#endif
