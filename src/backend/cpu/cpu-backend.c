/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The built-in CPU backend.
 *
 * Threads: the thread that calls an op (the engine's compute thread) is thread 0 of a fork-join
 * pool (src/core/threadpool.h). Ops with enough work are shared out by rows or by tiles among the
 * pool's threads; small ones (a norm over one token, a RoPE of one token) run inline on the
 * caller, because waking the pool would cost more than the work. Ops are synchronous, so
 * synchronize() has nothing to wait for.
 *
 * Memory is host memory: map_host returns the pointer it is given, so weights are read in place
 * from the mmap'd model file and never copied.
 *
 * Matrix products quantize the activations once per op into the weight type's partner format
 * (quants.h), then walk the output in chunks handed out through an atomic counter, so a thread
 * slowed by a noisy neighbour does not hold up the others. Within a chunk the kernels' gemm tile
 * is reused across rows so each quantized activation block stays in L1.
 */
#include "backend/cpu/cpu-backend.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "backend/cpu/quants.h"
#include "core/alloc.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/threadpool.h"

/* Below this many multiply-adds an op runs on the calling thread alone. */
#define INLINE_WORK 32768

struct cpu_backend {
    struct exo_backend base;
    struct exo_threadpool *pool;
    int n_threads;
    uint8_t *scratch; /* activation quantization and attention scores; grown on demand */
    size_t scratch_size;
};

static struct cpu_backend *cpu_of(struct exo_backend *be)
{
    return be->context;
}

static int reserve_scratch(struct cpu_backend *cpu, size_t size)
{
    if (size <= cpu->scratch_size)
        return 0;
    size = size + size / 4 + 4096;
    uint8_t *p = exo_aligned_alloc(64, size);
    if (!p)
        return EXO_ENOMEM;
    exo_aligned_free(cpu->scratch);
    cpu->scratch = p;
    cpu->scratch_size = size;
    return 0;
}

/* Run fn on the pool when the op is big enough to share, else on this thread alone. */
static void run(struct cpu_backend *cpu, exo_task_fn fn, void *arg, double work)
{
    if (cpu->n_threads > 1 && work >= INLINE_WORK)
        exo_threadpool_run(cpu->pool, fn, arg);
    else
        fn(arg, 0, 1);
}

/* Rows [first, end) of `rows` that thread ith of nth takes in an even split. */
static void split_rows(int64_t rows, int ith, int nth, int64_t *first, int64_t *end)
{
    int64_t per = (rows + nth - 1) / nth;
    *first = per * ith < rows ? per * ith : rows;
    *end = *first + per < rows ? *first + per : rows;
}

static float *row_f32(const struct exo_tensor *t, int64_t r)
{
    return (float *)((char *)t->data + (size_t)r * t->nb[1]);
}

/* ---- memory ------------------------------------------------------------------------------ */

static int cpu_mem_alloc(struct exo_backend *be, size_t size, void **ret_ptr)
{
    void *p = exo_aligned_alloc(64, size);
    if (!p)
        return EXO_ENOMEM;
    *ret_ptr = p;
    return 0;
}

static void cpu_mem_free(struct exo_backend *be, void *ptr)
{
    exo_aligned_free(ptr);
}

static int cpu_copy_bytes(struct exo_backend *be, void *dst, const void *src, size_t size)
{
    memcpy(dst, src, size);
    return 0;
}

static int cpu_map_host(struct exo_backend *be, const void *host, size_t size, void **ret_ptr)
{
    *ret_ptr = (void *)host;
    return 0;
}

static int cpu_synchronize(struct exo_backend *be)
{
    return 0;
}

/* ---- matrix product ---------------------------------------------------------------------- */

#define MAX_PRODUCTS 4

/* One weight matrix of a (possibly multi-) product, and its share of the chunk numbering. */
struct product {
    const struct exo_cpu_kernels *kw; /* kernels of the weight type */
    struct exo_tensor *dst;
    const struct exo_tensor *w;
    const uint8_t *xq;                /* the activations in kw's vec_dot_type */
    size_t xq_stride;
    int64_t rows, chunk_rows, n_chunks_r;
    int64_t first_chunk, n_chunks;
};

/* The input quantized into one activation format (products of several weight types need
 * several formats; each is made once). */
struct quantized {
    const struct exo_cpu_kernels *kx; /* NULL: f32, used in place */
    uint8_t *data;
    size_t stride;
};

struct mul_mat_job {
    struct cpu_backend *cpu;
    const struct exo_tensor *x;
    int64_t k, cols, chunk_cols, n_chunks;
    struct product p[MAX_PRODUCTS];
    int n_products;
    struct quantized q[MAX_PRODUCTS];
    int n_quantized;
    bool quantize_in_task; /* batches quantize in parallel; one token on the caller */
    _Atomic int64_t next_chunk;
};

static void mul_mat_chunk(const struct mul_mat_job *j, const struct product *p, int64_t chunk)
{
    int64_t r0 = (chunk % p->n_chunks_r) * p->chunk_rows;
    int64_t c0 = (chunk / p->n_chunks_r) * j->chunk_cols;
    int64_t r1 = r0 + p->chunk_rows < p->rows ? r0 + p->chunk_rows : p->rows;
    int64_t c1 = c0 + j->chunk_cols < j->cols ? c0 + j->chunk_cols : j->cols;
    const struct exo_cpu_kernels *kw = p->kw;
    const uint8_t *wdata = p->w->data;
    size_t ldw = p->w->nb[1];
    size_t lds = p->dst->nb[1] / sizeof(float);

    if (!kw->gemm) {
        for (int64_t c = c0; c < c1; c++) {
            float *out = row_f32(p->dst, c);
            const uint8_t *xc = p->xq + (size_t)c * p->xq_stride;
            for (int64_t r = r0; r < r1; r++)
                kw->vec_dot(j->k, &out[r], wdata + (size_t)r * ldw, xc);
        }
        return;
    }
    for (int64_t c = c0; c < c1; c += kw->tile_cols) {
        int nc = (int)(c1 - c < kw->tile_cols ? c1 - c : kw->tile_cols);
        float *out = row_f32(p->dst, c);
        const uint8_t *xc = p->xq + (size_t)c * p->xq_stride;
        for (int64_t r = r0; r < r1; r += kw->tile_rows) {
            int nr = (int)(r1 - r < kw->tile_rows ? r1 - r : kw->tile_rows);
            kw->gemm(j->k, nr, nc, out + r, lds, wdata + (size_t)r * ldw, ldw, xc, p->xq_stride);
        }
    }
}

static void quantize_rows(const struct mul_mat_job *j, int ith, int nth)
{
    for (int i = 0; i < j->n_quantized; i++) {
        const struct quantized *q = &j->q[i];
        if (!q->kx)
            continue;
        for (int64_t c = ith; c < j->cols; c += nth)
            q->kx->from_float(row_f32(j->x, c), q->data + (size_t)c * q->stride, j->k);
    }
}

static void mul_mat_task(void *arg, int ith, int nth)
{
    struct mul_mat_job *j = arg;
    if (j->quantize_in_task) {
        quantize_rows(j, ith, nth);
        if (nth > 1)
            exo_threadpool_barrier(j->cpu->pool);
    }
    int64_t chunk;
    int part = 0;
    while ((chunk = atomic_fetch_add_explicit(&j->next_chunk, 1, memory_order_relaxed)) <
           j->n_chunks) {
        while (chunk >= j->p[part].first_chunk + j->p[part].n_chunks)
            part++;
        mul_mat_chunk(j, &j->p[part], chunk - j->p[part].first_chunk);
    }
}

/* Find or add the quantized form of x that kernels kw take; its data is placed later. */
static struct quantized *quantized_for(struct mul_mat_job *j, const struct exo_cpu_kernels *kw)
{
    const struct exo_cpu_kernels *kx =
        kw->vec_dot_type == EXO_DTYPE_F32 ? NULL : exo_cpu_kernels(kw->vec_dot_type);
    for (int i = 0; i < j->n_quantized; i++)
        if (j->q[i].kx == kx)
            return &j->q[i];
    struct quantized *q = &j->q[j->n_quantized++];
    q->kx = kx;
    q->stride = kx ? exo_dtype_row_bytes(kw->vec_dot_type, (uint64_t)j->k) : j->x->nb[1];
    return q;
}

static int cpu_mul_mat_multi(struct exo_backend *be, int n, struct exo_tensor *const *dst,
                             const struct exo_tensor *const *w, const struct exo_tensor *x)
{
    struct cpu_backend *cpu = cpu_of(be);
    if (n < 1 || n > MAX_PRODUCTS || x->type != EXO_DTYPE_F32)
        return n < 1 || n > MAX_PRODUCTS ? EXO_EINVAL : EXO_EUNSUPPORTED;
    struct mul_mat_job j = {.cpu = cpu, .x = x, .k = x->ne[0], .cols = x->ne[1], .n_products = n};
    struct quantized *which[MAX_PRODUCTS];
    for (int i = 0; i < n; i++) {
        const struct exo_cpu_kernels *kw = exo_cpu_kernels(w[i]->type);
        if (!kw || !kw->vec_dot || dst[i]->type != EXO_DTYPE_F32)
            return EXO_EUNSUPPORTED;
        if (w[i]->ne[0] != j.k || dst[i]->ne[0] != w[i]->ne[1] || dst[i]->ne[1] != j.cols)
            return EXO_EINVAL;
        if (kw->vec_dot_type != EXO_DTYPE_F32 && !exo_cpu_kernels(kw->vec_dot_type))
            return EXO_EUNSUPPORTED;
        j.p[i] = (struct product){.kw = kw, .dst = dst[i], .w = w[i], .rows = w[i]->ne[1]};
        which[i] = quantized_for(&j, kw);
    }

    /* Lay the quantized inputs out one after another in the scratch buffer. */
    size_t need = 0;
    for (int i = 0; i < j.n_quantized; i++)
        if (j.q[i].kx)
            need += (j.q[i].stride * (size_t)j.cols + 63) / 64 * 64;
    int rc = reserve_scratch(cpu, need);
    if (rc < 0)
        return rc;
    size_t off = 0;
    for (int i = 0; i < j.n_quantized; i++) {
        if (!j.q[i].kx) {
            j.q[i].data = x->data;
            continue;
        }
        j.q[i].data = cpu->scratch + off;
        off += (j.q[i].stride * (size_t)j.cols + 63) / 64 * 64;
    }

    /* Chunks: for one token, slices of rows, about four per thread over all the products so a
     * slow thread can be helped; for a batch, blocks of rows x tokens sized to keep both
     * operands in cache. */
    int nth = cpu->n_threads;
    int64_t total_rows = 0;
    int tc = 1;
    for (int i = 0; i < n; i++) {
        total_rows += j.p[i].rows;
        if (j.p[i].kw->gemm && j.p[i].kw->tile_cols > tc)
            tc = j.p[i].kw->tile_cols;
    }
    j.chunk_cols = j.cols == 1 ? 1 : 16 * tc;
    int64_t col_blocks = (j.cols + j.chunk_cols - 1) / j.chunk_cols;
    for (int i = 0; i < n; i++) {
        struct product *p = &j.p[i];
        int tr = p->kw->gemm ? p->kw->tile_rows : 1;
        if (j.cols == 1) {
            int64_t per = (total_rows + 4 * nth - 1) / (4 * nth);
            p->chunk_rows = (per + tr - 1) / tr * tr;
        } else {
            p->chunk_rows = 16 * tr;
        }
        p->n_chunks_r = (p->rows + p->chunk_rows - 1) / p->chunk_rows;
        p->xq = which[i]->data;
        p->xq_stride = which[i]->stride;
        p->first_chunk = j.n_chunks;
        p->n_chunks = p->n_chunks_r * col_blocks;
        j.n_chunks += p->n_chunks;
    }
    atomic_init(&j.next_chunk, 0);
    double work = (double)j.k * (double)total_rows * (double)j.cols;
    j.quantize_in_task = j.cols > 1 && nth > 1 && work >= INLINE_WORK;
    if (!j.quantize_in_task)
        quantize_rows(&j, 0, 1);
    run(cpu, mul_mat_task, &j, work);
    return 0;
}

static int cpu_mul_mat(struct exo_backend *be, struct exo_tensor *dst, const struct exo_tensor *w,
                       const struct exo_tensor *x)
{
    return cpu_mul_mat_multi(be, 1, &dst, &w, x);
}

/* ---- row-wise ops ------------------------------------------------------------------------- */

struct get_rows_job {
    const struct exo_cpu_kernels *k;
    struct exo_tensor *dst;
    const struct exo_tensor *table;
    const int32_t *ids;
    int32_t n;
};

static void get_rows_task(void *arg, int ith, int nth)
{
    struct get_rows_job *j = arg;
    int64_t first, end;
    split_rows(j->n, ith, nth, &first, &end);
    for (int64_t i = first; i < end; i++) {
        const char *src = (const char *)j->table->data + (size_t)j->ids[i] * j->table->nb[1];
        j->k->to_float(src, row_f32(j->dst, i), j->table->ne[0]);
    }
}

static int cpu_get_rows(struct exo_backend *be, struct exo_tensor *dst,
                        const struct exo_tensor *table, const int32_t *ids_host, int32_t n)
{
    const struct exo_cpu_kernels *k = exo_cpu_kernels(table->type);
    if (!k || !k->to_float)
        return EXO_EUNSUPPORTED;
    for (int32_t i = 0; i < n; i++)
        if (ids_host[i] < 0 || ids_host[i] >= table->ne[1])
            return EXO_ERANGE;
    struct get_rows_job j = {k, dst, table, ids_host, n};
    run(cpu_of(be), get_rows_task, &j, (double)n * (double)table->ne[0]);
    return 0;
}

struct norm_job {
    struct exo_tensor *dst;
    const struct exo_tensor *x;
    const float *w;
    float eps;
};

static void rms_norm_task(void *arg, int ith, int nth)
{
    struct norm_job *j = arg;
    int64_t d = j->x->ne[0], first, end;
    split_rows(j->x->ne[1], ith, nth, &first, &end);
    for (int64_t r = first; r < end; r++) {
        const float *x = row_f32(j->x, r);
        float *y = row_f32(j->dst, r);
        /* Sum of squares in double, as the reference implementations do, so long rows do not
         * lose the small terms. */
        double sum = 0.0;
        for (int64_t i = 0; i < d; i++)
            sum += (double)x[i] * (double)x[i];
        float scale = 1.0f / sqrtf((float)(sum / (double)d) + j->eps);
        for (int64_t i = 0; i < d; i++)
            y[i] = x[i] * scale * j->w[i];
    }
}

static int cpu_rms_norm(struct exo_backend *be, struct exo_tensor *dst,
                        const struct exo_tensor *x, const struct exo_tensor *w, float eps)
{
    if (w->type != EXO_DTYPE_F32 || w->ne[0] != x->ne[0])
        return EXO_EINVAL;
    struct norm_job j = {dst, x, w->data, eps};
    run(cpu_of(be), rms_norm_task, &j, (double)x->ne[0] * (double)x->ne[1]);
    return 0;
}

struct rope_job {
    struct exo_tensor *x;
    const int32_t *pos;
    const struct exo_rope_params *p;
    float theta_scale;
};

static void rope_task(void *arg, int ith, int nth)
{
    struct rope_job *j = arg;
    const struct exo_rope_params *p = j->p;
    int64_t first, end;
    float cs[2 * 512]; /* cos, sin per rotated pair; n_rot <= 1024 is checked by the caller */
    split_rows(j->x->ne[1], ith, nth, &first, &end);
    for (int64_t t = first; t < end; t++) {
        /* theta_i = pos * scale * base^(-2i/n_rot), built by repeated multiplication in float
         * exactly as llama.cpp does, so positions rotate bit-identically. */
        float theta = (float)j->pos[t];
        for (int i = 0; i < p->n_rot / 2; i++) {
            float ff = p->freq_factors ? p->freq_factors[i] : 1.0f;
            float th = p->freq_scale * (theta / ff);
            cs[2 * i] = cosf(th);
            cs[2 * i + 1] = sinf(th);
            theta *= j->theta_scale;
        }
        float *row = row_f32(j->x, t);
        for (int h = 0; h < p->n_head; h++) {
            float *v = row + (size_t)h * (size_t)p->head_dim;
            for (int i = 0; i < p->n_rot / 2; i++) {
                int a = p->mode == EXO_ROPE_NEOX ? i : 2 * i;
                int b = p->mode == EXO_ROPE_NEOX ? i + p->n_rot / 2 : 2 * i + 1;
                float c = cs[2 * i], s = cs[2 * i + 1];
                float x0 = v[a], x1 = v[b];
                v[a] = x0 * c - x1 * s;
                v[b] = x0 * s + x1 * c;
            }
        }
    }
}

static int cpu_rope(struct exo_backend *be, struct exo_tensor *x, const int32_t *pos_host,
                    const struct exo_rope_params *p)
{
    if (p->n_rot <= 0 || p->n_rot % 2 || p->n_rot > p->head_dim || p->n_rot > 1024 ||
        x->ne[0] != (int64_t)p->n_head * p->head_dim)
        return EXO_EINVAL;
    struct rope_job j = {x, pos_host, p, powf(p->freq_base, -2.0f / (float)p->n_rot)};
    run(cpu_of(be), rope_task, &j, 8.0 * (double)x->ne[0] * (double)x->ne[1]);
    return 0;
}

struct swiglu_job {
    struct exo_tensor *dst;
    const struct exo_tensor *gate, *up;
};

static void swiglu_task(void *arg, int ith, int nth)
{
    struct swiglu_job *j = arg;
    int64_t first, end, d = j->gate->ne[0];
    split_rows(j->gate->ne[1], ith, nth, &first, &end);
    for (int64_t r = first; r < end; r++) {
        const float *g = row_f32(j->gate, r), *u = row_f32(j->up, r);
        float *y = row_f32(j->dst, r);
        for (int64_t i = 0; i < d; i++)
            y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    }
}

static int cpu_swiglu(struct exo_backend *be, struct exo_tensor *dst,
                      const struct exo_tensor *gate, const struct exo_tensor *up)
{
    if (gate->ne[0] != up->ne[0] || gate->ne[1] != up->ne[1])
        return EXO_EINVAL;
    struct swiglu_job j = {dst, gate, up};
    run(cpu_of(be), swiglu_task, &j, 16.0 * (double)gate->ne[0] * (double)gate->ne[1]);
    return 0;
}

struct add_job {
    struct exo_tensor *dst;
    const struct exo_tensor *a, *b;
};

static void add_task(void *arg, int ith, int nth)
{
    struct add_job *j = arg;
    int64_t first, end, d = j->a->ne[0];
    bool broadcast = j->b->ne[1] == 1;
    split_rows(j->a->ne[1], ith, nth, &first, &end);
    for (int64_t r = first; r < end; r++) {
        const float *a = row_f32(j->a, r), *b = row_f32(j->b, broadcast ? 0 : r);
        float *y = row_f32(j->dst, r);
        for (int64_t i = 0; i < d; i++)
            y[i] = a[i] + b[i];
    }
}

static int cpu_add(struct exo_backend *be, struct exo_tensor *dst, const struct exo_tensor *a,
                   const struct exo_tensor *b)
{
    if (b->ne[0] != a->ne[0] || (b->ne[1] != 1 && b->ne[1] != a->ne[1]))
        return EXO_EINVAL;
    struct add_job j = {dst, a, b};
    run(cpu_of(be), add_task, &j, (double)a->ne[0] * (double)a->ne[1]);
    return 0;
}

/* Softmax of n floats in place. */
static void softmax_row(float *x, int64_t n)
{
    float max = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        max = x[i] > max ? x[i] : max;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += (double)x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++)
        x[i] *= inv;
}

static void softmax_task(void *arg, int ith, int nth)
{
    struct exo_tensor *x = arg;
    int64_t first, end;
    split_rows(x->ne[1], ith, nth, &first, &end);
    for (int64_t r = first; r < end; r++)
        softmax_row(row_f32(x, r), x->ne[0]);
}

static int cpu_softmax(struct exo_backend *be, struct exo_tensor *x)
{
    run(cpu_of(be), softmax_task, x, 8.0 * (double)x->ne[0] * (double)x->ne[1]);
    return 0;
}

/* Convert n floats into a row of type `type` (f32, f16 or bf16). */
static void store_row(enum exo_dtype type, void *dst, const float *src, int64_t n)
{
    if (type == EXO_DTYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    exo_cpu_kernels(type)->from_float(src, dst, n);
}

static bool storable(enum exo_dtype type)
{
    return type == EXO_DTYPE_F32 || type == EXO_DTYPE_F16 || type == EXO_DTYPE_BF16;
}

static int cpu_copy(struct exo_backend *be, struct exo_tensor *dst, const struct exo_tensor *src)
{
    if (src->type != EXO_DTYPE_F32 || !storable(dst->type) || src->ne[0] != dst->ne[0] ||
        src->ne[1] != dst->ne[1])
        return EXO_EUNSUPPORTED;
    for (int64_t r = 0; r < src->ne[1]; r++)
        store_row(dst->type, (char *)dst->data + (size_t)r * dst->nb[1], row_f32(src, r),
                  src->ne[0]);
    return 0;
}

/* ---- attention ---------------------------------------------------------------------------- */

static int cpu_kv_store(struct exo_backend *be, struct exo_tensor *k_cache,
                        struct exo_tensor *v_cache, const struct exo_tensor *k,
                        const struct exo_tensor *v, int32_t n_past)
{
    int64_t n = k->ne[1], width = k->ne[0];
    if (!storable(k_cache->type) || !storable(v_cache->type) || k_cache->ne[0] != width ||
        v_cache->ne[1] != width || v->ne[0] != width || v->ne[1] != n || n_past < 0 ||
        n_past + n > k_cache->ne[1] || n_past + n > v_cache->ne[0])
        return EXO_EINVAL;
    for (int64_t t = 0; t < n; t++)
        store_row(k_cache->type, (char *)k_cache->data + (size_t)(n_past + t) * k_cache->nb[1],
                  row_f32(k, t), width);
    /* The value cache is transposed: token t's value for dimension d goes to row d. */
    size_t esize = exo_dtype_info(v_cache->type)->block_bytes;
    for (int64_t d = 0; d < width; d++) {
        char *row = (char *)v_cache->data + (size_t)d * v_cache->nb[1];
        for (int64_t t = 0; t < n; t++) {
            float val = row_f32(v, t)[d];
            store_row(v_cache->type, row + (size_t)(n_past + t) * esize, &val, 1);
        }
    }
    return 0;
}

struct attention_job {
    struct cpu_backend *cpu;
    struct exo_tensor *dst;
    const struct exo_tensor *q, *k, *v;
    const struct exo_attention_params *p;
    const struct exo_cpu_kernels *kk, *kv; /* dot kernels over cache rows */
    int64_t n_tokens, max_kv;
    _Atomic int64_t next;
};

static void attention_task(void *arg, int ith, int nth)
{
    struct attention_job *j = arg;
    const struct exo_attention_params *p = j->p;
    float *scores = (float *)j->cpu->scratch + (size_t)ith * (size_t)j->max_kv;
    int group = p->n_head / p->n_head_kv;
    int64_t total = j->n_tokens * p->n_head, item;

    while ((item = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < total) {
        int64_t t = item / p->n_head;
        int h = (int)(item % p->n_head), hk = h / group;
        int64_t n_kv = p->n_past + t + 1;
        const float *q = row_f32(j->q, t) + (size_t)h * (size_t)p->head_dim;
        float *out = row_f32(j->dst, t) + (size_t)h * (size_t)p->head_dim;
        const char *kbase = (const char *)j->k->data +
                            (size_t)hk * (size_t)p->head_dim * j->k->nb[0];
        for (int64_t s = 0; s < n_kv; s++) {
            j->kk->vec_dot(p->head_dim, &scores[s], kbase + (size_t)s * j->k->nb[1], q);
            scores[s] *= p->scale;
        }
        softmax_row(scores, n_kv);
        for (int d = 0; d < p->head_dim; d++) {
            const char *vrow = (const char *)j->v->data +
                               (size_t)(hk * p->head_dim + d) * j->v->nb[1];
            j->kv->vec_dot(n_kv, &out[d], vrow, scores);
        }
    }
}

static int cpu_attention(struct exo_backend *be, struct exo_tensor *dst,
                         const struct exo_tensor *q, const struct exo_tensor *k_cache,
                         const struct exo_tensor *v_cache, const struct exo_attention_params *p)
{
    struct cpu_backend *cpu = cpu_of(be);
    if (p->n_head <= 0 || p->n_head_kv <= 0 || p->n_head % p->n_head_kv || p->head_dim <= 0 ||
        q->ne[0] != (int64_t)p->n_head * p->head_dim || dst->ne[0] != q->ne[0] ||
        k_cache->ne[0] != (int64_t)p->n_head_kv * p->head_dim)
        return EXO_EINVAL;
    struct attention_job j = {
        .cpu = cpu, .dst = dst, .q = q, .k = k_cache, .v = v_cache, .p = p,
        .kk = exo_cpu_kernels(k_cache->type), .kv = exo_cpu_kernels(v_cache->type),
        .n_tokens = q->ne[1], .max_kv = p->n_past + q->ne[1],
    };
    if (!j.kk || !j.kv || j.kk->vec_dot_type != EXO_DTYPE_F32 ||
        j.kv->vec_dot_type != EXO_DTYPE_F32 || j.max_kv > k_cache->ne[1] ||
        j.max_kv > v_cache->ne[0])
        return EXO_EINVAL;
    int rc = reserve_scratch(cpu, (size_t)cpu->n_threads * (size_t)j.max_kv * sizeof(float));
    if (rc < 0)
        return rc;
    atomic_init(&j.next, 0);
    run(cpu, attention_task, &j,
        2.0 * (double)j.n_tokens * (double)p->n_head * (double)p->head_dim * (double)j.max_kv);
    return 0;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static void cpu_free(struct exo_backend *be)
{
    if (!be)
        return;
    struct cpu_backend *cpu = cpu_of(be);
    exo_threadpool_free(cpu->pool);
    exo_aligned_free(cpu->scratch);
    exo_free(cpu);
}

static int cpu_device_info(struct exo_backend *be, struct exo_backend_device_info *ret_info)
{
    struct cpu_backend *cpu = cpu_of(be);
    const struct exo_cpu_features *f = exo_cpu_features();
    const char *isa = f->avx512vnni ? "avx512-vnni" : f->avx2 ? "avx2" : f->neon ? "neon" : "scalar";
    memset(ret_info, 0, sizeof(*ret_info));
    snprintf(ret_info->name, sizeof(ret_info->name), "cpu");
    snprintf(ret_info->description, sizeof(ret_info->description), "CPU (%d threads, %s)",
             cpu->n_threads, isa);
    ret_info->flags = EXO_BACKEND_DEVICE_HOST_MEMORY;
    return 0;
}

static const struct exo_backend_i cpu_iface = {
    .abi_version = EXO_BACKEND_ABI_VERSION,
    .struct_size = sizeof(struct exo_backend_i),
    .name = "cpu",
    .free = cpu_free,
    .device_info = cpu_device_info,
    .mem_alloc = cpu_mem_alloc,
    .mem_free = cpu_mem_free,
    .upload = cpu_copy_bytes,
    .download = cpu_copy_bytes,
    .map_host = cpu_map_host,
    .synchronize = cpu_synchronize,
    .get_rows = cpu_get_rows,
    .mul_mat = cpu_mul_mat,
    .mul_mat_multi = cpu_mul_mat_multi,
    .rms_norm = cpu_rms_norm,
    .rope = cpu_rope,
    .kv_store = cpu_kv_store,
    .attention = cpu_attention,
    .swiglu = cpu_swiglu,
    .add = cpu_add,
    .softmax = cpu_softmax,
    .copy = cpu_copy,
};

int exo_cpu_backend_create(const struct exo_backend_params *params, struct exo_backend **ret)
{
    struct cpu_backend *cpu = exo_calloc(1, sizeof(*cpu));
    if (!cpu)
        return EXO_ENOMEM;
    int rc = exo_threadpool_create(params ? params->n_threads : 0, &cpu->pool);
    if (rc < 0) {
        exo_free(cpu);
        return rc;
    }
    cpu->n_threads = exo_threadpool_size(cpu->pool);
    cpu->base.iface = &cpu_iface;
    cpu->base.context = cpu;
    *ret = &cpu->base;
    return 0;
}
