/* SPDX-License-Identifier: Apache-2.0 */
/* Model and device profiles, the speed prediction and link smoothing (see profile.h). */
#include "device/profile.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/model.h"

#define MIB (1024ull * 1024ull)
#define GIB (1024ull * MIB)

static void add_matrix(struct exo_model_profile *p, const struct exo_gguf_tensor *t)
{
    if (!t || t->type >= EXO_DTYPE_COUNT)
        return;
    p->layer_bytes[t->type] += t->size;
    p->layer_elems[t->type] += t->ne[0] * t->ne[1];
    p->layer_mats_by_type[t->type]++;
    p->layer_rows[t->type] += t->ne[1];
}

static void add_other(struct exo_model_profile *p, const struct exo_gguf_tensor *t)
{
    if (t)
        p->layer_other_bytes += t->size;
}

int exo_model_profile_from_model(const struct exo_model *m, struct exo_model_profile *ret)
{
    const struct exo_hparams *hp = &m->hp;
    memset(ret, 0, sizeof(*ret));
    if (!m->output || m->output->type >= EXO_DTYPE_COUNT || hp->n_layer == 0)
        return EXO_EINVAL;
    snprintf(ret->name, sizeof(ret->name), "%s", m->name);
    ret->n_layer = hp->n_layer;
    ret->n_embd = hp->n_embd;
    ret->n_ff = hp->n_ff;
    ret->n_vocab = hp->n_vocab;
    ret->n_head = hp->n_head;
    ret->n_head_kv = hp->n_head_kv;
    ret->head_dim = hp->head_dim;
    ret->weight_bytes = m->weight_bytes;
    for (uint32_t i = 0; i < hp->n_layer; i++) {
        const struct exo_layer *l = &m->layers[i];
        add_matrix(ret, l->wq);
        add_matrix(ret, l->wk);
        add_matrix(ret, l->wv);
        add_matrix(ret, l->wo);
        add_matrix(ret, l->w_gate);
        add_matrix(ret, l->w_up);
        add_matrix(ret, l->w_down);
        add_other(ret, l->attn_norm);
        add_other(ret, l->ffn_norm);
        add_other(ret, l->bq);
        add_other(ret, l->bk);
        add_other(ret, l->bv);
    }
    ret->output_type = (enum exo_dtype)m->output->type;
    ret->output_bytes = m->output->size;
    ret->output_elems = m->output->ne[0] * m->output->ne[1];
    ret->output_rows = m->output->ne[1];
    ret->embd_bytes = m->output == m->tok_embd ? 0 : m->tok_embd->size;
    ret->kv_bytes_per_token = exo_model_kv_bytes_per_token(m, EXO_DTYPE_F16);
    return 0;
}

uint64_t exo_model_profile_layer_bytes(const struct exo_model_profile *m)
{
    uint64_t sum = m->layer_other_bytes;
    for (int t = 0; t < EXO_DTYPE_COUNT; t++)
        sum += m->layer_bytes[t];
    return m->n_layer ? sum / m->n_layer : 0;
}

uint64_t exo_device_usable_memory(const struct exo_device *d)
{
    uint64_t margin = d->mem_total / 10;
    if (margin < 512 * MIB)
        margin = 512 * MIB;
    if (margin > 4 * GIB)
        margin = 4 * GIB;
    return d->mem_free > margin ? d->mem_free - margin : 0;
}

void exo_device_profile_init(struct exo_device_profile *ret, const struct exo_device *d,
                             const struct exo_score *s)
{
    memset(ret, 0, sizeof(*ret));
    memcpy(ret->device_id, d->id, sizeof(ret->device_id));
    ret->mem_usable = exo_device_usable_memory(d);
    ret->mem_bw_gbps = s->mem_bw_gbps;
    ret->small_op_us = s->small_op_us;
    ret->n_types = s->n_types < EXO_SCORE_MAX_TYPES ? s->n_types : EXO_SCORE_MAX_TYPES;
    memcpy(ret->types, s->types, ret->n_types * sizeof(ret->types[0]));
}

static const struct exo_score_type *find_type(const struct exo_device_profile *d, enum exo_dtype t)
{
    for (uint32_t i = 0; i < d->n_types && i < EXO_SCORE_MAX_TYPES; i++)
        if (d->types[i].type == t && d->types[i].matvec_gbps > 0 && d->types[i].matmul_gflops > 0)
            return &d->types[i];
    return NULL;
}

/* Seconds to stream `bytes` of type t once in n_mats products of `rows` output rows in all
 * (decode) and to multiply `elems` weights by one token in a batch (prefill).
 *
 * Every matrix pays the fixed cost, even where the backend runs Q/K/V (and gate/up) in one
 * call: on this machine, over ten paired rounds of bench/score-accuracy, charging it per call
 * predicted a median +32 % too fast and charging it per matrix +3.5 %. What it stands for is
 * mostly waiting on pool threads for each matrix's share of the work, not the call itself. */
static int matrix_cost(const struct exo_device_profile *d, enum exo_dtype t, uint64_t bytes,
                       uint64_t elems, uint64_t rows, uint64_t n_mats, double *decode_s,
                       double *prefill_s)
{
    if (!bytes)
        return 0;
    const struct exo_score_type *st = find_type(d, t);
    if (!st)
        return EXO_EUNSUPPORTED;
    *decode_s += (double)bytes / (st->matvec_gbps * 1e9) + (double)rows * st->row_ns * 1e-9 +
                 (double)n_mats * st->op_us * 1e-6;
    *prefill_s += 2.0 * (double)elems / (st->matmul_gflops * 1e9);
    return 0;
}

int exo_device_profile_predict(const struct exo_device_profile *d,
                               const struct exo_model_profile *m, uint32_t n_ctx, uint32_t n_past,
                               struct exo_prediction *ret)
{
    memset(ret, 0, sizeof(*ret));
    if (m->n_layer == 0 || !(d->mem_bw_gbps > 0))
        return EXO_EINVAL;
    double bw = d->mem_bw_gbps * 1e9;
    double small = d->small_op_us * 1e-6;
    double layers_decode = 0, layers_prefill = 0;
    for (int t = 0; t < EXO_DTYPE_COUNT; t++) {
        int rc = matrix_cost(d, (enum exo_dtype)t, m->layer_bytes[t], m->layer_elems[t],
                             m->layer_rows[t], m->layer_mats_by_type[t], &layers_decode,
                             &layers_prefill);
        if (rc < 0)
            return rc;
    }
    double out_decode = 0, out_prefill = 0;
    int rc = matrix_cost(d, m->output_type, m->output_bytes, m->output_elems, m->output_rows, 1,
                         &out_decode, &out_prefill);
    if (rc < 0)
        return rc;

    double n_layer = m->n_layer;
    /* Attention per layer and token: the cache holds n_past tokens of keys and values, read
     * once for decode; for a prompt, 4 FLOPs per head dimension and cached position at the
     * f32 mat-mat rate (the engine's attention runs f32 dot products over the f16 cache). */
    double kv_layer_bytes = (double)m->kv_bytes_per_token / n_layer * (double)n_past;
    const struct exo_score_type *f32 = find_type(d, EXO_DTYPE_F32);
    double attn_flops = 4.0 * m->n_head * m->head_dim * (double)n_past;
    double attn_prefill = f32 ? attn_flops / (f32->matmul_gflops * 1e9) : kv_layer_bytes / bw;

    ret->layer_decode_s = layers_decode / n_layer + EXO_PROFILE_SMALL_OPS_PER_LAYER * small +
                          (kv_layer_bytes + (double)m->layer_other_bytes / n_layer) / bw;
    ret->output_decode_s = out_decode + 2 * small;
    ret->layer_prefill_s =
        layers_prefill / n_layer + attn_prefill + EXO_PROFILE_SMALL_OPS_PER_LAYER * small;
    ret->output_prefill_s = out_prefill + 2 * small;
    ret->decode_tps = 1.0 / (n_layer * ret->layer_decode_s + ret->output_decode_s);
    /* Only the last token of a prompt needs logits, so the output projection is paid once per
     * batch; per token it vanishes next to the layers. */
    ret->prefill_tps = 1.0 / (n_layer * ret->layer_prefill_s);
    ret->mem_needed = m->weight_bytes + m->kv_bytes_per_token * n_ctx;
    ret->fits = ret->mem_needed <= d->mem_usable;
    return 0;
}

/* ---- links --------------------------------------------------------------------------------- */

void exo_link_observe_rtt(struct exo_link *l, double rtt_ms)
{
    if (!(rtt_ms >= 0) || !isfinite(rtt_ms))
        return;
    if (l->rtt_samples++ == 0) {
        l->srtt_ms = rtt_ms;
        l->rttvar_ms = rtt_ms / 2;
        return;
    }
    l->rttvar_ms = 0.75 * l->rttvar_ms + 0.25 * fabs(l->srtt_ms - rtt_ms);
    l->srtt_ms = 0.875 * l->srtt_ms + 0.125 * rtt_ms;
}

void exo_link_observe_transfer(struct exo_link *l, uint64_t bytes, uint64_t ns)
{
    if (bytes < (64u << 10) || ns == 0)
        return;
    double mbps = (double)bytes / 1e6 / ((double)ns / 1e9);
    l->bandwidth_mbps = l->bw_samples++ == 0 ? mbps : 0.875 * l->bandwidth_mbps + 0.125 * mbps;
}

double exo_link_transfer_s(const struct exo_link *l, uint64_t bytes, double fallback_mbps)
{
    double mbps = l->bw_samples ? l->bandwidth_mbps : fallback_mbps;
    double transfer = mbps > 0 ? (double)bytes / 1e6 / mbps : 0;
    return l->srtt_ms / 2000.0 + transfer;
}
