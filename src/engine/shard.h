/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A shard: the unit of execution (DESIGN.md section 5). It is a slice of a model along three
 * axes: a range of layers (a pipeline stage), a range of key/value heads with their query-head
 * groups (tensor parallelism in attention), and a range of FFN columns (tensor parallelism in the
 * MLP). A single-node run is the whole-model shard.
 *
 * The forward pass has two reduction points per layer, after the attention output projection and
 * after the FFN down projection. A tensor-parallel shard computes a partial sum there; the
 * shard's `comm` adds the partial sums of all shards of the layer (an all-reduce) before the
 * residual add. For the whole-model shard there is nothing to reduce and comm is NULL.
 *
 * A first stage embeds token ids; a later stage takes the hidden state the previous stage
 * produced. A last stage produces logits; an earlier one hands its hidden state on.
 *
 * A shard owns its KV cache and activation buffers in the backend's memory and borrows the
 * model (which must outlive it) and the backend.
 */
#ifndef EXO_ENGINE_SHARD_H
#define EXO_ENGINE_SHARD_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/model.h"
#include "exo/backend.h"

struct exo_shard_spec {
    uint32_t layer_begin, layer_end;     /* layers [begin, end) */
    uint32_t kv_head_begin, kv_head_end; /* key/value heads [begin, end) and their query heads */
    uint32_t ff_begin, ff_end;           /* FFN columns [begin, end) */
};

/* The all-reduce at the two reduction points: sum `t` across the shards of a tensor-parallel
 * group, in place. Called on the compute thread. */
struct exo_shard_comm {
    int (*all_reduce)(void *ctx, struct exo_backend *be, struct exo_tensor *t);
    void *ctx;
};

struct exo_shard_params {
    uint32_t n_ctx;          /* KV cache length in tokens */
    uint32_t n_batch;        /* most tokens one forward call takes */
    enum exo_dtype kv_type;  /* EXO_DTYPE_F16 (default) or EXO_DTYPE_F32 */
    const struct exo_shard_comm *comm; /* NULL unless tensor-parallel */
};

struct exo_shard;

void exo_shard_spec_whole(const struct exo_model *m, struct exo_shard_spec *ret);

/* Check spec against the model: ranges in bounds and non-empty, head and FFN slices aligned to
 * the weight types' block sizes (a column slice must cut between blocks). */
int exo_shard_spec_check(const struct exo_model *m, const struct exo_shard_spec *spec,
                         struct exo_diag *diag);

/* Bind the shard's weights to `be` and allocate its cache and buffers. m and be are borrowed;
 * *ret is owned by the caller. */
int exo_shard_create(const struct exo_model *m, struct exo_backend *be,
                     const struct exo_shard_spec *spec, const struct exo_shard_params *params,
                     struct exo_shard **ret, struct exo_diag *diag);
void exo_shard_free(struct exo_shard *s);

bool exo_shard_is_first(const struct exo_shard *s);
bool exo_shard_is_last(const struct exo_shard *s);
uint32_t exo_shard_n_ctx(const struct exo_shard *s);
uint32_t exo_shard_n_batch(const struct exo_shard *s);
/* Bytes this shard allocated in the backend (KV cache and activations, not weights). */
uint64_t exo_shard_buffer_bytes(const struct exo_shard *s);

/*
 * Run n tokens (1 <= n <= n_batch) at positions [n_past, n_past + n).
 *   tokens     first stage: n token ids (host); otherwise NULL
 *   hidden_in  later stages: [n, n_embd] f32 host floats; otherwise NULL
 *   hidden_out earlier stages: receives [n, n_embd]; otherwise NULL
 *   logits     last stage: receives [n_vocab] for the last token, or [n, n_vocab] when
 *              all_logits; otherwise NULL
 * Returns EXO_ERANGE when the positions would run past the cache.
 */
int exo_shard_forward(struct exo_shard *s, const int32_t *tokens, const float *hidden_in,
                      int32_t n, int32_t n_past, float *hidden_out, float *logits,
                      bool all_logits);

#endif
