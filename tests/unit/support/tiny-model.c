/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tiny random models and the double-precision reference forward pass (see tiny-model.h). The
 * reference shares nothing with the engine but the GGUF reader and the scalar dequantizers: it is
 * the textbook transformer, one token at a time, every sum in double.
 */
#include "support/tiny-model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/quants.h"
#include "core/rng.h"
#include "engine/gguf.h"

static const uint32_t default_types[][7] = {
    /* q, k, v, o, gate, up, down */
    {EXO_DTYPE_Q4_0, EXO_DTYPE_Q4_1, EXO_DTYPE_Q8_0, EXO_DTYPE_F16, EXO_DTYPE_Q4_K, EXO_DTYPE_Q5_K,
     EXO_DTYPE_Q6_K},
    {EXO_DTYPE_BF16, EXO_DTYPE_F32, EXO_DTYPE_Q4_K, EXO_DTYPE_Q6_K, EXO_DTYPE_Q8_0, EXO_DTYPE_Q4_1,
     EXO_DTYPE_Q4_0},
};

void tiny_config_default(struct tiny_config *cfg, const char *arch)
{
    *cfg = (struct tiny_config){
        .arch = arch,
        .n_vocab = 320,
        .n_embd = 256,
        .n_layer = 2,
        .n_head = 4,
        .n_head_kv = 2,
        .n_ff = 512,
        .rope_base = 10000.0f,
        .norm_eps = 1e-5f,
        .tied_output = false,
        .seed = 1234,
        .types = default_types,
        .n_types = 2,
        .embd_type = EXO_DTYPE_Q8_0,
        .output_type = EXO_DTYPE_Q6_K,
    };
}

/* A random matrix [rows, cols] quantized to `type`, added to the writer. */
static void add_matrix(struct gguf_writer *w, struct exo_rng *rng, const char *name,
                       uint32_t type, uint32_t cols, uint32_t rows, double scale)
{
    float *f = malloc((size_t)rows * cols * sizeof(float));
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        f[i] = (float)(exo_rng_normal(rng) * scale);
    size_t row_bytes = exo_dtype_row_bytes(type, cols);
    uint8_t *q = malloc(row_bytes * rows);
    const struct exo_cpu_kernels *k = exo_cpu_kernels_ref(type);
    if (!k) {
        fprintf(stderr, "tiny-model: no kernels for %s\n", exo_dtype_name(type));
        abort();
    }
    for (uint32_t r = 0; r < rows; r++)
        k->from_float(f + (size_t)r * cols, q + r * row_bytes, cols);
    uint64_t ne[2] = {cols, rows};
    gguf_writer_tensor(w, name, type, rows > 1 ? 2 : 1, ne, q);
    free(q);
    free(f);
}

static void add_vector(struct gguf_writer *w, struct exo_rng *rng, const char *name, uint32_t n,
                       double mean, double scale)
{
    float *f = malloc(n * sizeof(float));
    for (uint32_t i = 0; i < n; i++)
        f[i] = (float)(mean + exo_rng_normal(rng) * scale);
    uint64_t ne[1] = {n};
    gguf_writer_tensor(w, name, EXO_DTYPE_F32, 1, ne, f);
    free(f);
}

struct gguf_writer *tiny_model_writer(const struct tiny_config *cfg)
{
    struct gguf_writer *w = gguf_writer_new(3, 32);
    struct exo_rng rng;
    char key[128];
    exo_rng_seed(&rng, cfg->seed);
    uint32_t hd = cfg->n_embd / cfg->n_head;
    bool bias = strcmp(cfg->arch, "qwen2") == 0;

    gguf_writer_str(w, "general.architecture", cfg->arch);
    gguf_writer_str(w, "general.name", "tiny test model");
#define ARCH_KEY(k) (snprintf(key, sizeof(key), "%s.%s", cfg->arch, k), key)
    gguf_writer_u32(w, ARCH_KEY("context_length"), 256);
    gguf_writer_u32(w, ARCH_KEY("embedding_length"), cfg->n_embd);
    gguf_writer_u32(w, ARCH_KEY("block_count"), cfg->n_layer);
    gguf_writer_u32(w, ARCH_KEY("feed_forward_length"), cfg->n_ff);
    gguf_writer_u32(w, ARCH_KEY("attention.head_count"), cfg->n_head);
    gguf_writer_u32(w, ARCH_KEY("attention.head_count_kv"), cfg->n_head_kv);
    gguf_writer_f32(w, ARCH_KEY("rope.freq_base"), cfg->rope_base);
    gguf_writer_f32(w, ARCH_KEY("attention.layer_norm_rms_epsilon"), cfg->norm_eps);
#undef ARCH_KEY

    add_matrix(w, &rng, "token_embd.weight", cfg->embd_type, cfg->n_embd, cfg->n_vocab, 1.0);
    add_vector(w, &rng, "output_norm.weight", cfg->n_embd, 1.0, 0.1);
    if (!cfg->tied_output)
        add_matrix(w, &rng, "output.weight", cfg->output_type, cfg->n_embd, cfg->n_vocab,
                   1.0 / sqrt(cfg->n_embd));
    /* Scales keep activations O(1) through the layers so every type's error stays visible. */
    double s_in = 1.0 / sqrt(cfg->n_embd), s_ff = 1.0 / sqrt(cfg->n_ff);
    for (uint32_t l = 0; l < cfg->n_layer; l++) {
        const uint32_t *t = cfg->types[l % cfg->n_types];
        char name[64];
#define NAME(s) (snprintf(name, sizeof(name), "blk.%u.%s", l, s), name)
        add_vector(w, &rng, NAME("attn_norm.weight"), cfg->n_embd, 1.0, 0.1);
        add_matrix(w, &rng, NAME("attn_q.weight"), t[0], cfg->n_embd, cfg->n_head * hd, s_in);
        add_matrix(w, &rng, NAME("attn_k.weight"), t[1], cfg->n_embd, cfg->n_head_kv * hd, s_in);
        add_matrix(w, &rng, NAME("attn_v.weight"), t[2], cfg->n_embd, cfg->n_head_kv * hd, s_in);
        if (bias) {
            add_vector(w, &rng, NAME("attn_q.bias"), cfg->n_head * hd, 0.0, 0.1);
            add_vector(w, &rng, NAME("attn_k.bias"), cfg->n_head_kv * hd, 0.0, 0.1);
            add_vector(w, &rng, NAME("attn_v.bias"), cfg->n_head_kv * hd, 0.0, 0.1);
        }
        add_matrix(w, &rng, NAME("attn_output.weight"), t[3], cfg->n_head * hd, cfg->n_embd,
                   s_in);
        add_vector(w, &rng, NAME("ffn_norm.weight"), cfg->n_embd, 1.0, 0.1);
        add_matrix(w, &rng, NAME("ffn_gate.weight"), t[4], cfg->n_embd, cfg->n_ff, s_in);
        add_matrix(w, &rng, NAME("ffn_up.weight"), t[5], cfg->n_embd, cfg->n_ff, s_in);
        add_matrix(w, &rng, NAME("ffn_down.weight"), t[6], cfg->n_ff, cfg->n_embd, s_ff);
#undef NAME
    }
    return w;
}

void tiny_model_build(const struct tiny_config *cfg, uint8_t **ret_data, size_t *ret_size)
{
    struct gguf_writer *w = tiny_model_writer(cfg);
    gguf_writer_finish(w, ret_data, ret_size);
    gguf_writer_free(w);
}

/* ---- reference forward pass ----------------------------------------------------------------- */

struct ref_matrix {
    double *w; /* rows * cols */
    uint32_t rows, cols;
};

static struct ref_matrix load(const struct exo_gguf *g, const char *name)
{
    const struct exo_gguf_tensor *t = exo_gguf_find_tensor(g, name);
    struct ref_matrix m = {NULL, 0, 0};
    if (!t)
        return m;
    m.cols = (uint32_t)t->ne[0];
    m.rows = (uint32_t)t->ne[1];
    float *f = malloc((size_t)m.rows * m.cols * sizeof(float));
    exo_cpu_kernels_ref(t->type)->to_float(t->data, f, (int64_t)m.rows * m.cols);
    m.w = malloc((size_t)m.rows * m.cols * sizeof(double));
    for (size_t i = 0; i < (size_t)m.rows * m.cols; i++)
        m.w[i] = f[i];
    free(f);
    return m;
}

static void matvec(const struct ref_matrix *m, const double *x, double *y)
{
    for (uint32_t r = 0; r < m->rows; r++) {
        double s = 0.0;
        for (uint32_t c = 0; c < m->cols; c++)
            s += m->w[(size_t)r * m->cols + c] * x[c];
        y[r] = s;
    }
}

static void rmsnorm(const double *x, const struct ref_matrix *w, double eps, uint32_t n,
                    double *y)
{
    double ss = 0.0;
    for (uint32_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    double scale = 1.0 / sqrt(ss / n + eps);
    for (uint32_t i = 0; i < n; i++)
        y[i] = x[i] * scale * w->w[i];
}

static void rope(double *v, uint32_t hd, int pos, double base, bool neox)
{
    for (uint32_t i = 0; i < hd / 2; i++) {
        double theta = pos * pow(base, -2.0 * i / hd);
        uint32_t a = neox ? i : 2 * i, b = neox ? i + hd / 2 : 2 * i + 1;
        double x0 = v[a], x1 = v[b];
        v[a] = x0 * cos(theta) - x1 * sin(theta);
        v[b] = x0 * sin(theta) + x1 * cos(theta);
    }
}

static uint32_t get_u32(const struct exo_gguf *g, const char *arch, const char *k)
{
    char key[128];
    uint32_t v = 0;
    snprintf(key, sizeof(key), "%s.%s", arch, k);
    exo_gguf_get_u32(g, key, &v);
    return v;
}

static float get_f32(const struct exo_gguf *g, const char *arch, const char *k)
{
    char key[128];
    float v = 0;
    snprintf(key, sizeof(key), "%s.%s", arch, k);
    exo_gguf_get_f32(g, key, &v);
    return v;
}

void tiny_model_reference(const uint8_t *gguf, size_t size, const int32_t *tokens, int n_tokens,
                          double **ret)
{
    struct exo_gguf *g = NULL;
    if (exo_gguf_open_memory(gguf, size, "reference", &g, NULL) != 0)
        abort();
    struct exo_gguf_str a;
    exo_gguf_get_str(g, "general.architecture", &a);
    char arch[16];
    snprintf(arch, sizeof(arch), "%.*s", (int)a.len, a.ptr);
    bool neox = strcmp(arch, "qwen2") == 0;
    uint32_t d = get_u32(g, arch, "embedding_length"), L = get_u32(g, arch, "block_count");
    uint32_t nh = get_u32(g, arch, "attention.head_count");
    uint32_t nkv = get_u32(g, arch, "attention.head_count_kv");
    uint32_t nff = get_u32(g, arch, "feed_forward_length"), hd = d / nh;
    double base = get_f32(g, arch, "rope.freq_base");
    double eps = get_f32(g, arch, "attention.layer_norm_rms_epsilon");

    struct ref_matrix embd = load(g, "token_embd.weight");
    struct ref_matrix out = load(g, "output.weight");
    if (!out.w)
        out = load(g, "token_embd.weight");
    struct ref_matrix out_norm = load(g, "output_norm.weight");
    uint32_t nv = embd.rows;
    double *logits = calloc((size_t)n_tokens * nv, sizeof(double));
    double *kc = calloc((size_t)L * n_tokens * nkv * hd, sizeof(double));
    double *vc = calloc((size_t)L * n_tokens * nkv * hd, sizeof(double));
    double *x = calloc(d, sizeof(double)), *xn = calloc(d, sizeof(double));
    double *q = calloc(nh * hd, sizeof(double)), *k = calloc(nkv * hd, sizeof(double));
    double *v = calloc(nkv * hd, sizeof(double)), *att = calloc(nh * hd, sizeof(double));
    double *o = calloc(d, sizeof(double)), *gt = calloc(nff, sizeof(double));
    double *up = calloc(nff, sizeof(double)), *sc = calloc(n_tokens, sizeof(double));

    for (int t = 0; t < n_tokens; t++) {
        memcpy(x, embd.w + (size_t)tokens[t] * d, d * sizeof(double));
        for (uint32_t l = 0; l < L; l++) {
            char name[64];
#define M(s) (snprintf(name, sizeof(name), "blk.%u.%s", l, s), load(g, name))
            struct ref_matrix an = M("attn_norm.weight"), wq = M("attn_q.weight");
            struct ref_matrix wk = M("attn_k.weight"), wv = M("attn_v.weight");
            struct ref_matrix bq = M("attn_q.bias"), bk = M("attn_k.bias"), bv = M("attn_v.bias");
            struct ref_matrix wo = M("attn_output.weight"), fn = M("ffn_norm.weight");
            struct ref_matrix wg = M("ffn_gate.weight"), wu = M("ffn_up.weight");
            struct ref_matrix wd = M("ffn_down.weight");
#undef M
            rmsnorm(x, &an, eps, d, xn);
            matvec(&wq, xn, q);
            matvec(&wk, xn, k);
            matvec(&wv, xn, v);
            for (uint32_t i = 0; bq.w && i < nh * hd; i++)
                q[i] += bq.w[i];
            for (uint32_t i = 0; bk.w && i < nkv * hd; i++) {
                k[i] += bk.w[i];
                v[i] += bv.w[i];
            }
            for (uint32_t h = 0; h < nh; h++)
                rope(q + h * hd, hd, t, base, neox);
            for (uint32_t h = 0; h < nkv; h++)
                rope(k + h * hd, hd, t, base, neox);
            double *kl = kc + (size_t)l * n_tokens * nkv * hd;
            double *vl = vc + (size_t)l * n_tokens * nkv * hd;
            memcpy(kl + (size_t)t * nkv * hd, k, nkv * hd * sizeof(double));
            memcpy(vl + (size_t)t * nkv * hd, v, nkv * hd * sizeof(double));
            for (uint32_t h = 0; h < nh; h++) {
                uint32_t hk = h / (nh / nkv);
                double max = -INFINITY, sum = 0.0;
                for (int s = 0; s <= t; s++) {
                    double dot = 0.0;
                    for (uint32_t i = 0; i < hd; i++)
                        dot += q[h * hd + i] * kl[((size_t)s * nkv + hk) * hd + i];
                    sc[s] = dot / sqrt((double)hd);
                    max = sc[s] > max ? sc[s] : max;
                }
                for (int s = 0; s <= t; s++) {
                    sc[s] = exp(sc[s] - max);
                    sum += sc[s];
                }
                for (uint32_t i = 0; i < hd; i++) {
                    double acc = 0.0;
                    for (int s = 0; s <= t; s++)
                        acc += sc[s] / sum * vl[((size_t)s * nkv + hk) * hd + i];
                    att[h * hd + i] = acc;
                }
            }
            matvec(&wo, att, o);
            for (uint32_t i = 0; i < d; i++)
                x[i] += o[i];
            rmsnorm(x, &fn, eps, d, xn);
            matvec(&wg, xn, gt);
            matvec(&wu, xn, up);
            for (uint32_t i = 0; i < nff; i++)
                gt[i] = gt[i] / (1.0 + exp(-gt[i])) * up[i];
            matvec(&wd, gt, o);
            for (uint32_t i = 0; i < d; i++)
                x[i] += o[i];
            struct ref_matrix *all[] = {&an, &wq, &wk, &wv, &bq, &bk, &bv, &wo, &fn, &wg, &wu, &wd};
            for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
                free(all[i]->w);
        }
        rmsnorm(x, &out_norm, eps, d, xn);
        matvec(&out, xn, logits + (size_t)t * nv);
    }
    if (out.w != embd.w)
        free(out.w);
    free(embd.w);
    free(out_norm.w);
    free(kc);
    free(vc);
    free(x);
    free(xn);
    free(q);
    free(k);
    free(v);
    free(att);
    free(o);
    free(gt);
    free(up);
    free(sc);
    exo_gguf_close(g);
    *ret = logits;
}
