/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The forward pass of a shard (see shard.h), written once against the backend interface.
 *
 * Per layer, for a batch x [n, n_embd] (this shard's slices in brackets):
 *
 *   xn  = rms_norm(x) * attn_norm
 *   q   = xn Wq[heads]^T (+ bq),  k = xn Wk[kv heads]^T (+ bk),  v = xn Wv[kv heads]^T (+ bv)
 *   q, k rotated by RoPE at positions n_past .. n_past + n - 1
 *   k, v stored in the KV cache; att = causal softmax(q k^T * scale) v over the cache
 *   o   = att Wo[:, heads]^T                      <- reduction point 1 (partial over heads)
 *   x  += o
 *   xn  = rms_norm(x) * ffn_norm
 *   h   = silu(xn Wgate[cols]^T) * (xn Wup[cols]^T)
 *   o   = h Wdown[:, cols]^T                      <- reduction point 2 (partial over columns)
 *   x  += o
 *
 * and after the last layer logits = rms_norm(x) * output_norm Wout^T, for the last token only
 * unless every position's logits are asked for (tests).
 *
 * Weights are bound once at creation: mapped in place where the backend computes on host
 * memory, otherwise uploaded (only the shard's slice of each matrix).
 */
#include "engine/shard.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

/* Rows of logits computed per step when every position's logits are wanted. */
#define LOGIT_CHUNK 16

struct shard_layer {
    struct exo_tensor attn_norm, ffn_norm;  /* [n_embd] */
    struct exo_tensor wq, wk, wv;           /* row slices [local q/kv dim, n_embd] */
    struct exo_tensor bq, bk, bv;           /* [local q/kv dim] as one broadcast row; unused
                                               without biases */
    struct exo_tensor wo;                   /* column slice [n_embd, local q dim] */
    struct exo_tensor w_gate, w_up;         /* row slices [local ff, n_embd] */
    struct exo_tensor w_down;               /* column slice [n_embd, local ff] */
    struct exo_tensor k_cache;              /* [n_ctx, local kv dim] */
    struct exo_tensor v_cache;              /* [local kv dim, n_ctx] (transposed) */
};

struct exo_shard {
    const struct exo_model *m; /* borrowed */
    struct exo_backend *be;    /* borrowed */
    struct exo_shard_spec spec;
    struct exo_shard_params params;
    bool has_bias;

    struct shard_layer *layers; /* owned; spec.layer_end - spec.layer_begin entries */
    struct exo_tensor tok_embd, output_norm, output;

    /* Activations, n_batch rows each (in backend memory). */
    struct exo_tensor x, xn;   /* [n_batch, n_embd] */
    struct exo_tensor q, att;  /* [n_batch, local q dim] */
    struct exo_tensor k, v;    /* [n_batch, local kv dim] */
    struct exo_tensor g, u;    /* [n_batch, local ff] */
    struct exo_tensor o;       /* [n_batch, n_embd] */
    struct exo_tensor logits;  /* [LOGIT_CHUNK, n_vocab] (last stage only) */
    int32_t *pos;              /* owned host array, n_batch entries */

    struct exo_rope_params rope_q, rope_k;
    struct exo_attention_params attn;

    void **allocs;             /* backend allocations to release, owned */
    size_t n_allocs;
    uint64_t buffer_bytes;
};

void exo_shard_spec_whole(const struct exo_model *m, struct exo_shard_spec *ret)
{
    *ret = (struct exo_shard_spec){0, m->hp.n_layer, 0, m->hp.n_head_kv, 0, m->hp.n_ff};
}

static bool range_ok(uint32_t begin, uint32_t end, uint32_t max)
{
    return begin < end && end <= max;
}

/* A column slice [first, first + count) of t cuts between whole blocks. */
static bool slice_aligned(const struct exo_gguf_tensor *t, uint64_t first, uint64_t count)
{
    uint32_t block = exo_dtype_info(t->type)->block_elems;
    return first % block == 0 && count % block == 0;
}

int exo_shard_spec_check(const struct exo_model *m, const struct exo_shard_spec *spec,
                         struct exo_diag *diag)
{
    const struct exo_hparams *hp = &m->hp;
    const char *file = exo_gguf_path(m->gguf);
    if (!range_ok(spec->layer_begin, spec->layer_end, hp->n_layer) ||
        !range_ok(spec->kv_head_begin, spec->kv_head_end, hp->n_head_kv) ||
        !range_ok(spec->ff_begin, spec->ff_end, hp->n_ff))
        return exo_diag_set(diag, EXO_EINVAL,
                            "%s: shard layers [%u, %u) kv heads [%u, %u) ffn [%u, %u) is out of "
                            "the model's range (%u layers, %u kv heads, ffn %u)",
                            file, spec->layer_begin, spec->layer_end, spec->kv_head_begin,
                            spec->kv_head_end, spec->ff_begin, spec->ff_end, hp->n_layer,
                            hp->n_head_kv, hp->n_ff);
    uint64_t group = hp->n_head / hp->n_head_kv;
    uint64_t q0 = spec->kv_head_begin * group * hp->head_dim;
    uint64_t nq = (spec->kv_head_end - spec->kv_head_begin) * group * hp->head_dim;
    for (uint32_t l = spec->layer_begin; l < spec->layer_end; l++) {
        const struct exo_layer *ly = &m->layers[l];
        if (!slice_aligned(ly->wo, q0, nq) ||
            !slice_aligned(ly->w_down, spec->ff_begin, spec->ff_end - spec->ff_begin))
            return exo_diag_set(diag, EXO_EINVAL,
                                "%s: layer %u: the shard's head or FFN slice does not fall on "
                                "%s/%s block boundaries",
                                file, l, exo_dtype_name(ly->wo->type),
                                exo_dtype_name(ly->w_down->type));
    }
    return 0;
}

static int remember(struct exo_shard *s, void *ptr)
{
    void **a = exo_realloc(s->allocs, (s->n_allocs + 1) * sizeof(*a));
    if (!a) {
        s->be->iface->mem_free(s->be, ptr);
        return EXO_ENOMEM;
    }
    s->allocs = a;
    s->allocs[s->n_allocs++] = ptr;
    return 0;
}

/* A backend buffer holding a contiguous [rows, cols] tensor of `type`, counted as shard memory. */
static int alloc_tensor(struct exo_shard *s, enum exo_dtype type, int64_t cols, int64_t rows,
                        struct exo_tensor *ret)
{
    size_t bytes = exo_dtype_row_bytes(type, (uint64_t)cols) * (size_t)rows;
    void *p;
    int rc = s->be->iface->mem_alloc(s->be, bytes, &p);
    if (rc < 0 || (rc = remember(s, p)) < 0)
        return rc;
    *ret = exo_tensor_2d(type, cols, rows, p);
    s->buffer_bytes += bytes;
    return 0;
}

/*
 * Bind rows [row0, row0 + nrows) and columns [col0, col0 + ncols) of a 2-D (or 1-D, as one row)
 * model tensor. Mapped in place when the backend allows it; otherwise the slice is gathered into
 * a contiguous host copy and uploaded.
 */
static int bind_slice(struct exo_shard *s, const struct exo_gguf_tensor *t, int64_t row0,
                      int64_t nrows, int64_t col0, int64_t ncols, struct exo_tensor *ret)
{
    struct exo_backend *be = s->be;
    struct exo_tensor whole = exo_model_tensor(t);
    if (be->iface->map_host) {
        void *p;
        int rc = be->iface->map_host(be, t->data, t->size, &p);
        if (rc < 0)
            return rc;
        whole.data = p;
        struct exo_tensor rows = exo_tensor_rows(&whole, row0, nrows);
        *ret = exo_tensor_cols(&rows, col0, ncols);
        return 0;
    }
    size_t row_bytes = exo_dtype_row_bytes(whole.type, (uint64_t)ncols);
    size_t col_off = exo_dtype_row_bytes(whole.type, (uint64_t)col0);
    size_t bytes = row_bytes * (size_t)nrows;
    uint8_t *host = exo_malloc(bytes);
    if (!host)
        return EXO_ENOMEM;
    for (int64_t r = 0; r < nrows; r++)
        memcpy(host + (size_t)r * row_bytes,
               (const uint8_t *)t->data + (size_t)(row0 + r) * whole.nb[1] + col_off, row_bytes);
    void *p;
    int rc = be->iface->mem_alloc(be, bytes, &p);
    if (rc == 0 && (rc = remember(s, p)) == 0)
        rc = be->iface->upload(be, p, host, bytes);
    exo_free(host);
    if (rc < 0)
        return rc;
    *ret = exo_tensor_2d(whole.type, ncols, nrows, p);
    return 0;
}

/* A 1-D tensor (norm weight or bias), or its slice [first, first + count), as one row. */
static int bind_vector(struct exo_shard *s, const struct exo_gguf_tensor *t, int64_t first,
                       int64_t count, struct exo_tensor *ret)
{
    return bind_slice(s, t, 0, 1, first, count, ret);
}

static int bind_layer(struct exo_shard *s, uint32_t l, struct shard_layer *sl)
{
    const struct exo_hparams *hp = &s->m->hp;
    const struct exo_layer *ly = &s->m->layers[l];
    const struct exo_shard_spec *sp = &s->spec;
    int64_t group = hp->n_head / hp->n_head_kv;
    int64_t q0 = sp->kv_head_begin * group * hp->head_dim;
    int64_t nq = (sp->kv_head_end - sp->kv_head_begin) * group * hp->head_dim;
    int64_t k0 = (int64_t)sp->kv_head_begin * hp->head_dim;
    int64_t nk = (int64_t)(sp->kv_head_end - sp->kv_head_begin) * hp->head_dim;
    int64_t f0 = sp->ff_begin, nf = sp->ff_end - sp->ff_begin;
    int64_t d = hp->n_embd;
    int rc;
    if ((rc = bind_vector(s, ly->attn_norm, 0, d, &sl->attn_norm)) < 0 ||
        (rc = bind_vector(s, ly->ffn_norm, 0, d, &sl->ffn_norm)) < 0 ||
        (rc = bind_slice(s, ly->wq, q0, nq, 0, d, &sl->wq)) < 0 ||
        (rc = bind_slice(s, ly->wk, k0, nk, 0, d, &sl->wk)) < 0 ||
        (rc = bind_slice(s, ly->wv, k0, nk, 0, d, &sl->wv)) < 0 ||
        (rc = bind_slice(s, ly->wo, 0, d, q0, nq, &sl->wo)) < 0 ||
        (rc = bind_slice(s, ly->w_gate, f0, nf, 0, d, &sl->w_gate)) < 0 ||
        (rc = bind_slice(s, ly->w_up, f0, nf, 0, d, &sl->w_up)) < 0 ||
        (rc = bind_slice(s, ly->w_down, 0, d, f0, nf, &sl->w_down)) < 0)
        return rc;
    if (s->has_bias &&
        ((rc = bind_vector(s, ly->bq, q0, nq, &sl->bq)) < 0 ||
         (rc = bind_vector(s, ly->bk, k0, nk, &sl->bk)) < 0 ||
         (rc = bind_vector(s, ly->bv, k0, nk, &sl->bv)) < 0))
        return rc;
    if ((rc = alloc_tensor(s, s->params.kv_type, nk, s->params.n_ctx, &sl->k_cache)) < 0 ||
        (rc = alloc_tensor(s, s->params.kv_type, s->params.n_ctx, nk, &sl->v_cache)) < 0)
        return rc;
    return 0;
}

static int alloc_activations(struct exo_shard *s)
{
    const struct exo_hparams *hp = &s->m->hp;
    int64_t nb = s->params.n_batch;
    int64_t nq = (int64_t)s->rope_q.n_head * hp->head_dim;
    int64_t nk = (int64_t)s->rope_k.n_head * hp->head_dim;
    int64_t nf = s->spec.ff_end - s->spec.ff_begin;
    int rc;
    if ((rc = alloc_tensor(s, EXO_DTYPE_F32, hp->n_embd, nb, &s->x)) < 0 ||
        (rc = alloc_tensor(s, EXO_DTYPE_F32, hp->n_embd, nb, &s->xn)) < 0 ||
        (rc = alloc_tensor(s, EXO_DTYPE_F32, hp->n_embd, nb, &s->o)) < 0 ||
        (rc = alloc_tensor(s, EXO_DTYPE_F32, nq, nb, &s->q)) < 0 ||
        (rc = alloc_tensor(s, EXO_DTYPE_F32, nq, nb, &s->att)) < 0 ||
        (rc = alloc_tensor(s, EXO_DTYPE_F32, nk, nb, &s->k)) < 0 ||
        (rc = alloc_tensor(s, EXO_DTYPE_F32, nk, nb, &s->v)) < 0 ||
        (rc = alloc_tensor(s, EXO_DTYPE_F32, nf, nb, &s->g)) < 0 ||
        (rc = alloc_tensor(s, EXO_DTYPE_F32, nf, nb, &s->u)) < 0)
        return rc;
    if (exo_shard_is_last(s) &&
        (rc = alloc_tensor(s, EXO_DTYPE_F32, hp->n_vocab, LOGIT_CHUNK, &s->logits)) < 0)
        return rc;
    s->pos = exo_calloc((size_t)nb, sizeof(int32_t));
    return s->pos ? 0 : EXO_ENOMEM;
}

int exo_shard_create(const struct exo_model *m, struct exo_backend *be,
                     const struct exo_shard_spec *spec, const struct exo_shard_params *params,
                     struct exo_shard **ret, struct exo_diag *diag)
{
    const struct exo_hparams *hp = &m->hp;
    int rc = exo_shard_spec_check(m, spec, diag);
    if (rc < 0)
        return rc;
    if (params->n_ctx == 0 || params->n_batch == 0 || params->n_batch > params->n_ctx ||
        (params->kv_type != EXO_DTYPE_F16 && params->kv_type != EXO_DTYPE_F32))
        return exo_diag_set(diag, EXO_EINVAL,
                            "shard parameters: context %u, batch %u and KV type %s are not "
                            "usable (the batch must fit the context; KV type f16 or f32)",
                            params->n_ctx, params->n_batch, exo_dtype_name(params->kv_type));

    struct exo_shard *s = exo_calloc(1, sizeof(*s));
    if (!s)
        return EXO_ENOMEM;
    s->m = m;
    s->be = be;
    s->spec = *spec;
    s->params = *params;
    s->has_bias = m->arch->qkv_bias;

    uint32_t group = hp->n_head / hp->n_head_kv;
    uint32_t n_kv_local = spec->kv_head_end - spec->kv_head_begin;
    s->rope_q = (struct exo_rope_params){
        .n_head = (int32_t)(n_kv_local * group),
        .head_dim = (int32_t)hp->head_dim,
        .n_rot = (int32_t)hp->n_rot,
        .mode = m->arch->rope,
        .freq_base = hp->rope_base,
        .freq_scale = hp->rope_freq_scale,
        .freq_factors = m->rope_freqs ? m->rope_freqs->data : NULL,
    };
    s->rope_k = s->rope_q;
    s->rope_k.n_head = (int32_t)n_kv_local;
    s->attn = (struct exo_attention_params){
        .n_head = s->rope_q.n_head,
        .n_head_kv = (int32_t)n_kv_local,
        .head_dim = (int32_t)hp->head_dim,
        .scale = 1.0f / sqrtf((float)hp->head_dim),
    };

    uint32_t n_layers = spec->layer_end - spec->layer_begin;
    s->layers = exo_calloc(n_layers, sizeof(*s->layers));
    if (!s->layers) {
        rc = EXO_ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < n_layers; i++)
        if ((rc = bind_layer(s, spec->layer_begin + i, &s->layers[i])) < 0)
            goto out;
    if (exo_shard_is_first(s) &&
        (rc = bind_slice(s, m->tok_embd, 0, hp->n_vocab, 0, hp->n_embd, &s->tok_embd)) < 0)
        goto out;
    if (exo_shard_is_last(s) &&
        ((rc = bind_vector(s, m->output_norm, 0, hp->n_embd, &s->output_norm)) < 0 ||
         (rc = bind_slice(s, m->output, 0, hp->n_vocab, 0, hp->n_embd, &s->output)) < 0))
        goto out;
    rc = alloc_activations(s);
out:
    if (rc < 0) {
        if (rc == EXO_ENOMEM)
            exo_diag_set(diag, rc, "out of memory binding the shard to backend %s",
                         be->iface->name);
        else if (diag && !diag->msg[0])
            exo_diag_set(diag, rc, "binding the shard to backend %s failed: %s",
                         be->iface->name, exo_strerror(rc));
        exo_shard_free(s);
        return rc;
    }
    *ret = s;
    return 0;
}

void exo_shard_free(struct exo_shard *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_allocs; i++)
        s->be->iface->mem_free(s->be, s->allocs[i]);
    exo_free(s->allocs);
    exo_free(s->layers);
    exo_free(s->pos);
    exo_free(s);
}

bool exo_shard_is_first(const struct exo_shard *s)
{
    return s->spec.layer_begin == 0;
}

bool exo_shard_is_last(const struct exo_shard *s)
{
    return s->spec.layer_end == s->m->hp.n_layer;
}

uint32_t exo_shard_n_ctx(const struct exo_shard *s)
{
    return s->params.n_ctx;
}

uint32_t exo_shard_n_batch(const struct exo_shard *s)
{
    return s->params.n_batch;
}

uint64_t exo_shard_buffer_bytes(const struct exo_shard *s)
{
    return s->buffer_bytes;
}

/* Products sharing one input, in one backend call when the backend can. */
static int mul_mats(struct exo_shard *s, int n, struct exo_tensor *const *dst,
                    const struct exo_tensor *const *w, const struct exo_tensor *x)
{
    const struct exo_backend_i *f = s->be->iface;
    if (f->struct_size >= offsetof(struct exo_backend_i, mul_mat_multi) + sizeof(void *) &&
        f->mul_mat_multi)
        return f->mul_mat_multi(s->be, n, dst, w, x);
    for (int i = 0; i < n; i++) {
        int rc = f->mul_mat(s->be, dst[i], w[i], x);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Sum a partial result across a tensor-parallel group (no-op for a whole shard). */
static int reduce(struct exo_shard *s, struct exo_tensor *t)
{
    const struct exo_shard_comm *comm = s->params.comm;
    return comm ? comm->all_reduce(comm->ctx, s->be, t) : 0;
}

static int forward_layer(struct exo_shard *s, struct shard_layer *sl, int32_t n, int32_t n_past)
{
    const struct exo_backend_i *f = s->be->iface;
    struct exo_backend *be = s->be;
    struct exo_tensor x = exo_tensor_rows(&s->x, 0, n), xn = exo_tensor_rows(&s->xn, 0, n);
    struct exo_tensor q = exo_tensor_rows(&s->q, 0, n), k = exo_tensor_rows(&s->k, 0, n);
    struct exo_tensor v = exo_tensor_rows(&s->v, 0, n), att = exo_tensor_rows(&s->att, 0, n);
    struct exo_tensor o = exo_tensor_rows(&s->o, 0, n), g = exo_tensor_rows(&s->g, 0, n);
    struct exo_tensor u = exo_tensor_rows(&s->u, 0, n);
    struct exo_attention_params ap = s->attn;
    ap.n_past = n_past;
    float eps = s->m->hp.norm_eps;
    int rc;

    struct exo_tensor *qkv[3] = {&q, &k, &v}, *gu[2] = {&g, &u};
    const struct exo_tensor *wqkv[3] = {&sl->wq, &sl->wk, &sl->wv};
    const struct exo_tensor *wgu[2] = {&sl->w_gate, &sl->w_up};

    if ((rc = f->rms_norm(be, &xn, &x, &sl->attn_norm, eps)) < 0 ||
        (rc = mul_mats(s, 3, qkv, wqkv, &xn)) < 0)
        return rc;
    if (s->has_bias && ((rc = f->add(be, &q, &q, &sl->bq)) < 0 ||
                        (rc = f->add(be, &k, &k, &sl->bk)) < 0 ||
                        (rc = f->add(be, &v, &v, &sl->bv)) < 0))
        return rc;
    if ((rc = f->rope(be, &q, s->pos, &s->rope_q)) < 0 ||
        (rc = f->rope(be, &k, s->pos, &s->rope_k)) < 0 ||
        (rc = f->kv_store(be, &sl->k_cache, &sl->v_cache, &k, &v, n_past)) < 0 ||
        (rc = f->attention(be, &att, &q, &sl->k_cache, &sl->v_cache, &ap)) < 0 ||
        (rc = f->mul_mat(be, &o, &sl->wo, &att)) < 0 || (rc = reduce(s, &o)) < 0 ||
        (rc = f->add(be, &x, &x, &o)) < 0)
        return rc;

    if ((rc = f->rms_norm(be, &xn, &x, &sl->ffn_norm, eps)) < 0 ||
        (rc = mul_mats(s, 2, gu, wgu, &xn)) < 0 || (rc = f->swiglu(be, &g, &g, &u)) < 0 || (rc = f->mul_mat(be, &o, &sl->w_down, &g)) < 0 ||
        (rc = reduce(s, &o)) < 0 || (rc = f->add(be, &x, &x, &o)) < 0)
        return rc;
    return 0;
}

/* Logits for rows [first, first + count) of x (count <= LOGIT_CHUNK) into host memory. */
static int output_rows(struct exo_shard *s, int32_t first, int32_t count, float *logits)
{
    const struct exo_backend_i *f = s->be->iface;
    struct exo_tensor x = exo_tensor_rows(&s->x, first, count);
    struct exo_tensor xn = exo_tensor_rows(&s->xn, 0, count);
    struct exo_tensor out = exo_tensor_rows(&s->logits, 0, count);
    int rc;
    if ((rc = f->rms_norm(s->be, &xn, &x, &s->output_norm, s->m->hp.norm_eps)) < 0 ||
        (rc = f->mul_mat(s->be, &out, &s->output, &xn)) < 0)
        return rc;
    return f->download(s->be, logits, out.data, out.nb[1] * (size_t)count);
}

int exo_shard_forward(struct exo_shard *s, const int32_t *tokens, const float *hidden_in,
                      int32_t n, int32_t n_past, float *hidden_out, float *logits,
                      bool all_logits)
{
    const struct exo_backend_i *f = s->be->iface;
    const struct exo_hparams *hp = &s->m->hp;
    bool first = exo_shard_is_first(s), last = exo_shard_is_last(s);
    int rc;

    if (n < 1 || (uint32_t)n > s->params.n_batch || n_past < 0 ||
        (uint64_t)n_past + (uint64_t)n > s->params.n_ctx)
        return EXO_ERANGE;
    if ((first ? !tokens : !hidden_in) || (last ? !logits : !hidden_out))
        return EXO_EINVAL;
    for (int32_t i = 0; i < n; i++)
        s->pos[i] = n_past + i;

    struct exo_tensor x = exo_tensor_rows(&s->x, 0, n);
    if (first)
        rc = f->get_rows(s->be, &x, &s->tok_embd, tokens, n);
    else
        rc = f->upload(s->be, x.data, hidden_in, x.nb[1] * (size_t)n);
    if (rc < 0)
        return rc;

    for (uint32_t l = 0; l < s->spec.layer_end - s->spec.layer_begin; l++)
        if ((rc = forward_layer(s, &s->layers[l], n, n_past)) < 0)
            return rc;

    if (!last)
        rc = f->download(s->be, hidden_out, x.data, x.nb[1] * (size_t)n);
    else if (!all_logits)
        rc = output_rows(s, n - 1, 1, logits);
    else
        for (int32_t r = 0; r < n && rc == 0; r += LOGIT_CHUNK)
            rc = output_rows(s, r, n - r < LOGIT_CHUNK ? n - r : LOGIT_CHUNK,
                             logits + (size_t)r * hp->n_vocab);
    if (rc < 0)
        return rc;
    return f->synchronize(s->be);
}
