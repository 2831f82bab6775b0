/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Model metadata and weight table (see model.h). Every hyperparameter comes from the GGUF
 * metadata under "<arch>.<key>" with llama.cpp's defaults where a key is optional, and every
 * tensor is checked for presence, shape and type before anything runs, so that a file that opens
 * here cannot make the forward pass read out of bounds.
 */
#include "engine/model.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"

static const struct exo_arch_info arch_table[] = {
    {"llama", EXO_ROPE_NORMAL, false},
    {"qwen2", EXO_ROPE_NEOX, true},
};

/* Upper bounds that no real model reaches; they keep hostile metadata from sizing buffers. */
#define MAX_VOCAB (1u << 22)
#define MAX_EMBD (1u << 16)
#define MAX_LAYERS 1024u
#define MAX_HEADS 1024u
#define MAX_FF (1u << 18)
#define MAX_CTX (1u << 24)

struct loader {
    struct exo_model *m;
    struct exo_diag *diag;
    const char *file;
    const char *arch;
};

static int get_u32(struct loader *l, const char *key, bool required, uint32_t dflt, uint32_t max,
                   uint32_t *ret)
{
    char full[128];
    snprintf(full, sizeof(full), "%s.%s", l->arch, key);
    int rc = exo_gguf_get_u32(l->m->gguf, full, ret);
    if (rc == EXO_ENOENT && !required) {
        *ret = dflt;
        return 0;
    }
    if (rc == EXO_ENOENT)
        return exo_diag_set(l->diag, EXO_EFORMAT, "%s: required metadata %s is missing", l->file,
                            full);
    if (rc < 0 || *ret == 0 || *ret > max)
        return exo_diag_set(l->diag, EXO_EFORMAT,
                            "%s: metadata %s must be an integer from 1 to %u", l->file, full, max);
    return 0;
}

static int get_f32(struct loader *l, const char *key, float dflt, float *ret)
{
    char full[128];
    snprintf(full, sizeof(full), "%s.%s", l->arch, key);
    int rc = exo_gguf_get_f32(l->m->gguf, full, ret);
    if (rc == EXO_ENOENT) {
        *ret = dflt;
        return 0;
    }
    if (rc < 0 || !(*ret > 0.0f) || *ret > 1e30f)
        return exo_diag_set(l->diag, EXO_EFORMAT, "%s: metadata %s must be a positive number",
                            l->file, full);
    return 0;
}

static int read_hparams(struct loader *l)
{
    struct exo_hparams *hp = &l->m->hp;
    int rc;
    if ((rc = get_u32(l, "embedding_length", true, 0, MAX_EMBD, &hp->n_embd)) < 0 ||
        (rc = get_u32(l, "block_count", true, 0, MAX_LAYERS, &hp->n_layer)) < 0 ||
        (rc = get_u32(l, "feed_forward_length", true, 0, MAX_FF, &hp->n_ff)) < 0 ||
        (rc = get_u32(l, "attention.head_count", true, 0, MAX_HEADS, &hp->n_head)) < 0 ||
        (rc = get_u32(l, "attention.head_count_kv", false, hp->n_head, MAX_HEADS,
                      &hp->n_head_kv)) < 0 ||
        (rc = get_u32(l, "context_length", false, 4096, MAX_CTX, &hp->n_ctx_train)) < 0)
        return rc;
    if (hp->n_embd % hp->n_head)
        return exo_diag_set(l->diag, EXO_EFORMAT,
                            "%s: embedding length %u is not a multiple of the head count %u",
                            l->file, hp->n_embd, hp->n_head);
    if ((rc = get_u32(l, "attention.key_length", false, hp->n_embd / hp->n_head, MAX_EMBD,
                      &hp->head_dim)) < 0 ||
        (rc = get_u32(l, "rope.dimension_count", false, hp->head_dim, hp->head_dim,
                      &hp->n_rot)) < 0)
        return rc;
    if (hp->n_head % hp->n_head_kv)
        return exo_diag_set(l->diag, EXO_EFORMAT,
                            "%s: head count %u is not a multiple of the key/value head count %u",
                            l->file, hp->n_head, hp->n_head_kv);
    if (hp->n_rot % 2 || hp->n_rot > 1024)
        return exo_diag_set(l->diag, EXO_EFORMAT, "%s: RoPE dimension count %u must be even and at most 1024",
                            l->file, hp->n_rot);
    if ((rc = get_f32(l, "rope.freq_base", 10000.0f, &hp->rope_base)) < 0 ||
        (rc = get_f32(l, "attention.layer_norm_rms_epsilon", 1e-5f, &hp->norm_eps)) < 0)
        return rc;

    /* RoPE scaling: "linear" divides positions by the factor; llama 3.1's scaling arrives as
     * the rope_freqs tensor instead. Other schemes would silently produce garbage, so refuse. */
    char key[128];
    struct exo_gguf_str type;
    hp->rope_freq_scale = 1.0f;
    snprintf(key, sizeof(key), "%s.rope.scaling.type", l->arch);
    if (exo_gguf_get_str(l->m->gguf, key, &type) == 0 &&
        !(type.len == 4 && memcmp(type.ptr, "none", 4) == 0)) {
        if (!(type.len == 6 && memcmp(type.ptr, "linear", 6) == 0))
            return exo_diag_set(l->diag, EXO_EUNSUPPORTED,
                                "%s: RoPE scaling '%.*s' is not supported (supported: none, linear)",
                                l->file, (int)(type.len > 32 ? 32 : type.len), type.ptr);
        float factor;
        if ((rc = get_f32(l, "rope.scaling.factor", 1.0f, &factor)) < 0)
            return rc;
        hp->rope_freq_scale = 1.0f / factor;
    }
    return 0;
}

/* Find `name` and check its type class and shape (ne[0], ne[1]; 1-D when rows == 0). */
static int bind(struct loader *l, const char *name, bool required, bool f32_only, uint64_t cols,
                uint64_t rows, const struct exo_gguf_tensor **ret)
{
    const struct exo_gguf_tensor *t = exo_gguf_find_tensor(l->m->gguf, name);
    *ret = t;
    if (!t) {
        if (!required)
            return 0;
        return exo_diag_set(l->diag, EXO_EFORMAT, "%s: tensor %s is missing", l->file, name);
    }
    uint64_t want_rows = rows ? rows : 1;
    if (t->ne[0] != cols || t->ne[1] != want_rows || t->ne[2] != 1 || t->ne[3] != 1)
        return exo_diag_set(l->diag, EXO_EFORMAT,
                            "%s: tensor %s has shape [%llu, %llu, %llu, %llu], expected [%llu, "
                            "%llu]",
                            l->file, name, (unsigned long long)t->ne[0],
                            (unsigned long long)t->ne[1], (unsigned long long)t->ne[2],
                            (unsigned long long)t->ne[3], (unsigned long long)cols,
                            (unsigned long long)want_rows);
    if (f32_only && t->type != EXO_DTYPE_F32)
        return exo_diag_set(l->diag, EXO_EUNSUPPORTED, "%s: tensor %s has type %s, expected f32",
                            l->file, name, exo_dtype_name(t->type));
    if (!exo_dtype_supported(t->type))
        return exo_diag_set(l->diag, EXO_EUNSUPPORTED,
                            "%s: tensor %s has type %s, which exo cannot compute with yet "
                            "(supported: %s)",
                            l->file, name, exo_dtype_name(t->type), EXO_DTYPE_SUPPORTED_LIST);
    return 0;
}

static int bind_layer(struct loader *l, uint32_t i, struct exo_layer *ly)
{
    const struct exo_hparams *hp = &l->m->hp;
    uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim;
    uint64_t kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
    bool bias = l->m->arch->qkv_bias;
    char name[64];
    int rc;
#define BIND(field, suffix, required, f32_only, cols, rows)                                        \
    do {                                                                                           \
        snprintf(name, sizeof(name), "blk.%u.%s", i, suffix);                                     \
        if ((rc = bind(l, name, required, f32_only, cols, rows, &ly->field)) < 0)                 \
            return rc;                                                                             \
    } while (0)
    BIND(attn_norm, "attn_norm.weight", true, true, hp->n_embd, 0);
    BIND(wq, "attn_q.weight", true, false, hp->n_embd, q_dim);
    BIND(wk, "attn_k.weight", true, false, hp->n_embd, kv_dim);
    BIND(wv, "attn_v.weight", true, false, hp->n_embd, kv_dim);
    BIND(bq, "attn_q.bias", bias, true, q_dim, 0);
    BIND(bk, "attn_k.bias", bias, true, kv_dim, 0);
    BIND(bv, "attn_v.bias", bias, true, kv_dim, 0);
    BIND(wo, "attn_output.weight", true, false, q_dim, hp->n_embd);
    BIND(ffn_norm, "ffn_norm.weight", true, true, hp->n_embd, 0);
    BIND(w_gate, "ffn_gate.weight", true, false, hp->n_embd, hp->n_ff);
    BIND(w_up, "ffn_up.weight", true, false, hp->n_embd, hp->n_ff);
    BIND(w_down, "ffn_down.weight", true, false, hp->n_ff, hp->n_embd);
#undef BIND
    return 0;
}

static int find_arch(struct loader *l)
{
    struct exo_gguf_str arch;
    if (exo_gguf_get_str(l->m->gguf, "general.architecture", &arch) < 0)
        return exo_diag_set(l->diag, EXO_EFORMAT,
                            "%s: metadata general.architecture is missing: not a model file?",
                            l->file);
    for (size_t i = 0; i < sizeof(arch_table) / sizeof(arch_table[0]); i++) {
        if (arch.len == strlen(arch_table[i].name) &&
            memcmp(arch.ptr, arch_table[i].name, arch.len) == 0) {
            l->m->arch = &arch_table[i];
            l->arch = arch_table[i].name;
            return 0;
        }
    }
    return exo_diag_set(l->diag, EXO_EUNSUPPORTED,
                        "%s: architecture '%.*s' is not supported (supported: %s)", l->file,
                        (int)(arch.len > 40 ? 40 : arch.len), arch.ptr, EXO_ARCH_SUPPORTED_LIST);
}

static void set_name(struct exo_model *m)
{
    struct exo_gguf_str name;
    if (exo_gguf_get_str(m->gguf, "general.name", &name) == 0 && name.len > 0) {
        size_t n = name.len < sizeof(m->name) - 1 ? (size_t)name.len : sizeof(m->name) - 1;
        memcpy(m->name, name.ptr, n);
        m->name[n] = '\0';
        return;
    }
    const char *path = exo_gguf_path(m->gguf);
    const char *base = strrchr(path, '/');
    snprintf(m->name, sizeof(m->name), "%s", base ? base + 1 : path);
}

int exo_model_from_gguf(struct exo_gguf *g, struct exo_model **ret, struct exo_diag *diag)
{
    struct exo_model *m = exo_calloc(1, sizeof(*m));
    if (!m) {
        exo_gguf_close(g);
        return EXO_ENOMEM;
    }
    m->gguf = g;
    struct loader l = {.m = m, .diag = diag, .file = exo_gguf_path(g)};
    struct exo_hparams *hp = &m->hp;
    int rc = find_arch(&l);
    if (rc < 0 || (rc = read_hparams(&l)) < 0)
        goto out;

    /* The vocabulary size is the embedding's row count; metadata may omit it. */
    m->tok_embd = exo_gguf_find_tensor(g, "token_embd.weight");
    if (!m->tok_embd || m->tok_embd->ne[1] > MAX_VOCAB) {
        rc = exo_diag_set(diag, EXO_EFORMAT,
                          "%s: tensor token_embd.weight is missing or has more than %u rows",
                          l.file, MAX_VOCAB);
        goto out;
    }
    hp->n_vocab = (uint32_t)m->tok_embd->ne[1];
    if ((rc = bind(&l, "token_embd.weight", true, false, hp->n_embd, hp->n_vocab,
                   &m->tok_embd)) < 0 ||
        (rc = bind(&l, "output_norm.weight", true, true, hp->n_embd, 0, &m->output_norm)) < 0 ||
        (rc = bind(&l, "output.weight", false, false, hp->n_embd, hp->n_vocab, &m->output)) < 0 ||
        (rc = bind(&l, "rope_freqs.weight", false, true, hp->n_rot / 2, 0, &m->rope_freqs)) < 0)
        goto out;
    hp->tied_output = m->output == NULL;
    if (hp->tied_output)
        m->output = m->tok_embd;

    m->layers = exo_calloc(hp->n_layer, sizeof(*m->layers));
    if (!m->layers) {
        rc = EXO_ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < hp->n_layer; i++)
        if ((rc = bind_layer(&l, i, &m->layers[i])) < 0)
            goto out;
    for (size_t i = 0; i < exo_gguf_tensor_count(g); i++)
        m->weight_bytes += exo_gguf_tensor_at(g, i)->size;
    set_name(m);
out:
    if (rc < 0) {
        exo_model_close(m);
        return rc;
    }
    *ret = m;
    return 0;
}

int exo_model_open(const char *path, struct exo_model **ret, struct exo_diag *diag)
{
    struct exo_gguf *g;
    int rc = exo_gguf_open(path, &g, diag);
    if (rc < 0)
        return rc;
    return exo_model_from_gguf(g, ret, diag);
}

void exo_model_close(struct exo_model *m)
{
    if (!m)
        return;
    exo_free(m->layers);
    exo_gguf_close(m->gguf);
    exo_free(m);
}

struct exo_tensor exo_model_tensor(const struct exo_gguf_tensor *t)
{
    struct exo_tensor r = {(enum exo_dtype)t->type,
                           {(int64_t)t->ne[0], (int64_t)t->ne[1], (int64_t)t->ne[2],
                            (int64_t)t->ne[3]},
                           {0, 0, 0, 0},
                           (void *)t->data};
    exo_tensor_set_contiguous(&r);
    return r;
}

uint64_t exo_model_kv_bytes_per_token(const struct exo_model *m, enum exo_dtype kv_type)
{
    const struct exo_hparams *hp = &m->hp;
    return 2ull * hp->n_layer * hp->n_head_kv * hp->head_dim *
           exo_dtype_info(kv_type)->block_bytes;
}
