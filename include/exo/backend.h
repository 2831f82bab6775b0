/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The compute backend ABI. A backend is `{ iface; context; }`: a table of functions and the state
 * they share. The CPU backend is built into exo; CUDA, OpenCL and Vulkan backends are shared
 * modules found at start-up in $libdir/exo/ that export exo_backend_plugin_v1(), loaded only when
 * the ABI version they were built against equals EXO_BACKEND_ABI_VERSION.
 *
 * Rules every backend keeps:
 * - Tensors passed to an op live in that backend's memory (allocated by it, or mapped from host
 *   memory where the backend allows it). Activations are f32 unless an op says otherwise.
 * - Ops may run asynchronously; synchronize() waits for all of them. Host arrays given to an op
 *   (token ids, positions) are read before the op returns.
 * - Every op computes what the scalar CPU reference computes, within the tolerance of its types;
 *   tests/unit/test-backend-conformance.c holds every backend to that.
 * - The table only grows at the end; a backend fills struct_size so the caller can tell which
 *   methods exist. Methods marked (optional) may be NULL.
 */
#ifndef EXO_BACKEND_H
#define EXO_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "exo/dtype.h"

#define EXO_BACKEND_ABI_VERSION 1

/*
 * A tensor: up to 4 dimensions, ne[0] innermost. nb[] are byte strides; for block-quantized
 * types nb[0] is the block size in bytes and ne[0] must be a multiple of the block's elements.
 * A row (fixed i1, i2, i3) is always contiguous. A matrix "W [rows, cols]" in the comments below
 * means ne[0] = cols, ne[1] = rows.
 */
struct exo_tensor {
    enum exo_dtype type;
    int64_t ne[4];
    size_t nb[4];
    void *data; /* in the owning backend's address space; borrowed */
};

/* Fill the strides of a contiguous tensor from type and ne[] (unused dimensions set to 1). */
static inline void exo_tensor_set_contiguous(struct exo_tensor *t)
{
    const struct exo_dtype_info *info = exo_dtype_info(t->type);
    for (int i = 0; i < 4; i++)
        if (t->ne[i] <= 0)
            t->ne[i] = 1;
    t->nb[0] = info->block_bytes;
    t->nb[1] = (size_t)(t->ne[0] / info->block_elems) * info->block_bytes;
    t->nb[2] = t->nb[1] * (size_t)t->ne[1];
    t->nb[3] = t->nb[2] * (size_t)t->ne[2];
}

/* A 2-D f32/f16 tensor of `rows` rows of `cols` elements at data, contiguous. */
static inline struct exo_tensor exo_tensor_2d(enum exo_dtype type, int64_t cols, int64_t rows,
                                              void *data)
{
    struct exo_tensor t = {type, {cols, rows, 1, 1}, {0, 0, 0, 0}, data};
    exo_tensor_set_contiguous(&t);
    return t;
}

/* Rows [first, first + count) of a 2-D tensor, sharing its memory. */
static inline struct exo_tensor exo_tensor_rows(const struct exo_tensor *t, int64_t first,
                                                int64_t count)
{
    struct exo_tensor v = *t;
    v.ne[1] = count;
    v.data = (char *)t->data + (size_t)first * t->nb[1];
    return v;
}

/* Columns [first, first + count) of a 2-D tensor (a strided view); both must be multiples of
 * the type's block size. This is how a tensor-parallel shard takes its slice of an output
 * projection. */
static inline struct exo_tensor exo_tensor_cols(const struct exo_tensor *t, int64_t first,
                                                int64_t count)
{
    const struct exo_dtype_info *info = exo_dtype_info(t->type);
    struct exo_tensor v = *t;
    v.ne[0] = count;
    v.data = (char *)t->data + (size_t)(first / info->block_elems) * info->block_bytes;
    return v;
}

enum exo_rope_mode {
    EXO_ROPE_NORMAL = 0, /* rotate adjacent pairs (x[2i], x[2i+1]): llama */
    EXO_ROPE_NEOX = 2,   /* rotate (x[i], x[i + n_rot/2]): qwen2 and others */
};

struct exo_rope_params {
    int32_t n_head;      /* heads in the tensor (its row holds n_head * head_dim values) */
    int32_t head_dim;
    int32_t n_rot;       /* leading dimensions of each head that rotate (<= head_dim, even) */
    enum exo_rope_mode mode;
    float freq_base;     /* theta = pos * freq_scale * base^(-2i/n_rot) / freq_factors[i] */
    float freq_scale;    /* 1 / linear scaling factor */
    const float *freq_factors; /* (optional) n_rot/2 host floats, e.g. llama 3.1 rope_freqs */
};

struct exo_attention_params {
    int32_t n_head;    /* query heads in q and dst */
    int32_t n_head_kv; /* key/value heads in the caches; n_head is a multiple of it (GQA) */
    int32_t head_dim;
    int32_t n_past;    /* tokens already in the cache before this batch */
    float scale;       /* usually 1 / sqrt(head_dim) */
};

enum exo_backend_device_flags {
    EXO_BACKEND_DEVICE_HOST_MEMORY = 1 << 0, /* computes on host memory: map_host is cheap */
};

struct exo_backend_device_info {
    char name[96];         /* "cpu", "cuda0", ... */
    char description[160]; /* "AMD EPYC (2 threads, avx512 vnni)", "NVIDIA H200" */
    uint64_t memory_total; /* bytes usable for weights and caches; 0 if unknown */
    uint64_t memory_free;
    uint32_t flags;        /* enum exo_backend_device_flags */
};

struct exo_backend;

struct exo_backend_i {
    uint32_t abi_version; /* EXO_BACKEND_ABI_VERSION */
    uint32_t struct_size; /* sizeof(struct exo_backend_i) as the backend was built */
    const char *name;     /* "cpu", "cuda", "opencl", "vulkan" */

    void (*free)(struct exo_backend *be);
    int (*device_info)(struct exo_backend *be, struct exo_backend_device_info *ret_info);

    /* Memory. Pointers returned are in the backend's address space and owned by the caller
     * until passed to mem_free. */
    int (*mem_alloc)(struct exo_backend *be, size_t size, void **ret_ptr);
    void (*mem_free)(struct exo_backend *be, void *ptr);
    int (*upload)(struct exo_backend *be, void *dst, const void *src_host, size_t size);
    int (*download)(struct exo_backend *be, void *dst_host, const void *src, size_t size);
    /* (optional) Use host memory (e.g. the mmap'd model file) in place; borrowed, must outlive
     * every op that reads it. Backends without it get a copy through mem_alloc + upload. */
    int (*map_host)(struct exo_backend *be, const void *host, size_t size, void **ret_ptr);
    int (*synchronize)(struct exo_backend *be);

    /* dst [n, cols] f32 = rows ids[0..n) of table [vocab, cols] (any supported type). */
    int (*get_rows)(struct exo_backend *be, struct exo_tensor *dst, const struct exo_tensor *table,
                    const int32_t *ids_host, int32_t n);
    /* dst [n, rows] f32 = x [n, cols] f32 times the transpose of w [rows, cols]: every row of dst
     * is w applied to a row of x. w may be any supported type and may be a strided column view. */
    int (*mul_mat)(struct exo_backend *be, struct exo_tensor *dst, const struct exo_tensor *w,
                   const struct exo_tensor *x);
    /* dst [n, d] = x / rms(x) * w, per row; w [d] f32. dst may equal x. */
    int (*rms_norm)(struct exo_backend *be, struct exo_tensor *dst, const struct exo_tensor *x,
                    const struct exo_tensor *w, float eps);
    /* Rotate x [n, n_head * head_dim] in place; token i sits at position pos_host[i]. */
    int (*rope)(struct exo_backend *be, struct exo_tensor *x, const int32_t *pos_host,
                const struct exo_rope_params *p);
    /* Store a batch's keys and values k, v [n, n_head_kv * head_dim] f32 at positions
     * [n_past, n_past + n) of a layer's caches: k_cache [n_ctx, n_head_kv * head_dim] and the
     * transposed v_cache [n_head_kv * head_dim, n_ctx] (row = one dimension of one head over all
     * positions, so attention's weighted sum of values is a dot product along a row), both f16
     * or f32. */
    int (*kv_store)(struct exo_backend *be, struct exo_tensor *k_cache, struct exo_tensor *v_cache,
                    const struct exo_tensor *k, const struct exo_tensor *v, int32_t n_past);
    /* Causal attention of q [n, n_head * head_dim] over a layer's caches (layout as kv_store):
     * query i sees positions [0, n_past + i]. dst like q. The batch's keys and values are
     * already stored. */
    int (*attention)(struct exo_backend *be, struct exo_tensor *dst, const struct exo_tensor *q,
                     const struct exo_tensor *k_cache, const struct exo_tensor *v_cache,
                     const struct exo_attention_params *p);
    /* dst = silu(gate) * up, elementwise; dst may equal gate. */
    int (*swiglu)(struct exo_backend *be, struct exo_tensor *dst, const struct exo_tensor *gate,
                  const struct exo_tensor *up);
    /* dst = a + b; b has a's shape or is one row broadcast over a's rows. dst may equal a. */
    int (*add)(struct exo_backend *be, struct exo_tensor *dst, const struct exo_tensor *a,
               const struct exo_tensor *b);
    /* Softmax of every row of x in place. */
    int (*softmax)(struct exo_backend *be, struct exo_tensor *x);
    /* dst = src with type conversion (f32 -> f32/f16/bf16); same shape. */
    int (*copy)(struct exo_backend *be, struct exo_tensor *dst, const struct exo_tensor *src);
    /* (optional) n <= 4 products sharing one input, dst[i] = x times the transpose of w[i]: the
     * same as n mul_mat calls, in one pass that prepares x once (Q/K/V, FFN gate/up). */
    int (*mul_mat_multi)(struct exo_backend *be, int n, struct exo_tensor *const *dst,
                         const struct exo_tensor *const *w, const struct exo_tensor *x);
};

struct exo_backend {
    const struct exo_backend_i *iface;
    void *context;
};

struct exo_backend_params {
    uint32_t struct_size; /* sizeof(struct exo_backend_params) as the caller was built */
    int32_t n_threads;    /* host threads for backends that use them; <= 0 means a default */
};

/* What a plugin module exports as `exo_backend_plugin_v1`. */
struct exo_backend_plugin {
    uint32_t abi_version; /* EXO_BACKEND_ABI_VERSION */
    const char *name;
    /* Devices this backend can drive now; 0 with a reason in why (e.g. "no driver") is normal. */
    int (*device_count)(char *why, size_t why_len);
    int (*init)(int32_t device, const struct exo_backend_params *params,
                struct exo_backend **ret_backend);
};

typedef const struct exo_backend_plugin *(*exo_backend_plugin_fn)(void);

#endif
