/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scalar reference kernels for every block format, and run-time dispatch over the SIMD
 * variants (see quants.h for the formats and quants-int.h for how the levels are layered).
 *
 * The reference kernels define what each kernel computes, so they are written for clarity and
 * exactness rather than speed: integer sums within a block are exact, and vec_dot accumulates
 * across blocks in double so that its only rounding is that of the formats themselves. The SIMD
 * variants accumulate in float and are held to the reference within a tolerance the unit tests
 * document.
 *
 * Activation quantizers (q8_0, q8_1, q8_K from_float) are specified operation by operation
 * (d = amax / 127, q = round-half-even(x * (1 / d)) clamped to [-127, 127]) so that the SIMD
 * versions produce the same bytes. Weight quantizers (q4_0, q4_1, the K-quants) exist for tests
 * and tools; they aim for small error, not for speed or for llama.cpp's exact choices.
 */
#include "backend/cpu/quants.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "backend/cpu/quants-int.h"
#include "core/cpu.h"

/* Round half to even (the SIMD conversions' default mode) after clamping to [lo, hi]; a NaN
 * becomes lo because fmaxf prefers the number. */
static int round_clamp(float v, float lo, float hi)
{
    return (int)nearbyintf(fminf(fmaxf(v, lo), hi));
}

static float fp16(uint16_t h)
{
    return exo_fp16_to_fp32(h);
}

static float absmax(const float *x, int n)
{
    float amax = 0.0f;
    for (int i = 0; i < n; i++)
        amax = fmaxf(amax, fabsf(x[i]));
    return amax;
}

/* The element of largest magnitude, with its sign (the first one on ties). */
static float signed_max(const float *x, int n)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    return max;
}

/* ---- f32, f16, bf16 ------------------------------------------------------------------------ */

static void f32_to_float(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void f32_from_float(const float *src, void *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void f32_vec_dot(int64_t n, float *s, const void *w, const void *x)
{
    const float *a = w, *b = x;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)a[i] * b[i];
    *s = (float)sum;
}

static void f16_to_float(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = exo_fp16_to_fp32(h[i]);
}

static void f16_from_float(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++)
        h[i] = exo_fp32_to_fp16(src[i]);
}

static void f16_vec_dot(int64_t n, float *s, const void *w, const void *x)
{
    const uint16_t *a = w;
    const float *b = x;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)exo_fp16_to_fp32(a[i]) * b[i];
    *s = (float)sum;
}

static void bf16_to_float(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = exo_bf16_to_fp32(h[i]);
}

static void bf16_from_float(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++)
        h[i] = exo_fp32_to_bf16(src[i]);
}

static void bf16_vec_dot(int64_t n, float *s, const void *w, const void *x)
{
    const uint16_t *a = w;
    const float *b = x;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)exo_bf16_to_fp32(a[i]) * b[i];
    *s = (float)sum;
}

/* ---- 8-bit activation formats -------------------------------------------------------------- */

/* The shared core of the three 8-bit quantizers: q = round(x / d) with d = amax / 127. Returns
 * d and the sum of the quants. */
static float quantize_8bit(const float *x, int8_t *q, int n, int *ret_sum)
{
    float d = absmax(x, n) / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int i = 0; i < n; i++) {
        q[i] = (int8_t)round_clamp(x[i] * id, -127.0f, 127.0f);
        sum += q[i];
    }
    *ret_sum = sum;
    return d;
}

static void q8_0_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q8_0 *y = dst;
    for (int64_t b = 0; b < n / QK8_0; b++) {
        int sum;
        y[b].d = exo_fp32_to_fp16(quantize_8bit(src + b * QK8_0, y[b].qs, QK8_0, &sum));
    }
}

static void q8_0_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q8_0 *x = src;
    for (int64_t b = 0; b < n / QK8_0; b++) {
        float d = fp16(x[b].d);
        for (int i = 0; i < QK8_0; i++)
            dst[b * QK8_0 + i] = d * x[b].qs[i];
    }
}

static void q8_1_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q8_1 *y = dst;
    for (int64_t b = 0; b < n / QK8_1; b++) {
        int sum;
        float d = quantize_8bit(src + b * QK8_1, y[b].qs, QK8_1, &sum);
        y[b].d = exo_fp32_to_fp16(d);
        y[b].s = exo_fp32_to_fp16(d * (float)sum);
    }
}

static void q8_1_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q8_1 *x = src;
    for (int64_t b = 0; b < n / QK8_1; b++) {
        float d = fp16(x[b].d);
        for (int i = 0; i < QK8_1; i++)
            dst[b * QK8_1 + i] = d * x[b].qs[i];
    }
}

static void q8_K_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q8_K *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int sum;
        y[b].d = quantize_8bit(src + b * QK_K, y[b].qs, QK_K, &sum);
        for (int j = 0; j < QK_K / 16; j++) {
            int bs = 0;
            for (int i = 0; i < 16; i++)
                bs += y[b].qs[j * 16 + i];
            y[b].bsums[j] = (int16_t)bs;
        }
    }
}

static void q8_K_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q8_K *x = src;
    for (int64_t b = 0; b < n / QK_K; b++)
        for (int i = 0; i < QK_K; i++)
            dst[b * QK_K + i] = x[b].d * x[b].qs[i];
}

static void q8_0_vec_dot(int64_t n, float *s, const void *w, const void *x)
{
    const struct block_q8_0 *a = w, *b = x;
    double sum = 0.0;
    for (int64_t k = 0; k < n / QK8_0; k++) {
        int sumi = 0;
        for (int i = 0; i < QK8_0; i++)
            sumi += a[k].qs[i] * b[k].qs[i];
        sum += (double)fp16(a[k].d) * fp16(b[k].d) * sumi;
    }
    *s = (float)sum;
}

/* ---- q4_0, q4_1 ---------------------------------------------------------------------------- */

/* Element i (< 32) of a block's nibbles: low nibbles are 0-15, high nibbles 16-31. */
static int nibble(const uint8_t *qs, int i)
{
    return i < 16 ? qs[i] & 0xf : qs[i - 16] >> 4;
}

static void pack_nibbles(const uint8_t *q, uint8_t *qs)
{
    for (int i = 0; i < 16; i++)
        qs[i] = (uint8_t)(q[i] | q[i + 16] << 4);
}

static void q4_0_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q4_0 *y = dst;
    for (int64_t b = 0; b < n / QK4_0; b++) {
        const float *x = src + b * QK4_0;
        /* The largest magnitude maps to -8, the one level without a positive twin. */
        y[b].d = exo_fp32_to_fp16(signed_max(x, QK4_0) / -8.0f);
        float d = fp16(y[b].d);
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t q[QK4_0];
        for (int i = 0; i < QK4_0; i++)
            q[i] = (uint8_t)(round_clamp(x[i] * id, -8.0f, 7.0f) + 8);
        pack_nibbles(q, y[b].qs);
    }
}

static void q4_0_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q4_0 *x = src;
    for (int64_t b = 0; b < n / QK4_0; b++) {
        float d = fp16(x[b].d);
        for (int i = 0; i < QK4_0; i++)
            dst[b * QK4_0 + i] = (float)(nibble(x[b].qs, i) - 8) * d;
    }
}

static void q4_0_vec_dot(int64_t n, float *s, const void *w, const void *x)
{
    const struct block_q4_0 *a = w;
    const struct block_q8_0 *b = x;
    double sum = 0.0;
    for (int64_t k = 0; k < n / QK4_0; k++) {
        int sumi = 0;
        for (int i = 0; i < QK4_0; i++)
            sumi += (nibble(a[k].qs, i) - 8) * b[k].qs[i];
        sum += (double)fp16(a[k].d) * fp16(b[k].d) * sumi;
    }
    *s = (float)sum;
}

static void q4_1_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q4_1 *y = dst;
    for (int64_t b = 0; b < n / QK4_1; b++) {
        const float *x = src + b * QK4_1;
        float lo = x[0], hi = x[0];
        for (int i = 1; i < QK4_1; i++) {
            lo = fminf(lo, x[i]);
            hi = fmaxf(hi, x[i]);
        }
        /* Quantize against the stored (fp16-rounded) step and offset, not the exact ones. */
        y[b].d = exo_fp32_to_fp16((hi - lo) / 15.0f);
        y[b].m = exo_fp32_to_fp16(lo);
        float d = fp16(y[b].d), m = fp16(y[b].m);
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t q[QK4_1];
        for (int i = 0; i < QK4_1; i++)
            q[i] = (uint8_t)round_clamp((x[i] - m) * id, 0.0f, 15.0f);
        pack_nibbles(q, y[b].qs);
    }
}

static void q4_1_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q4_1 *x = src;
    for (int64_t b = 0; b < n / QK4_1; b++) {
        float d = fp16(x[b].d), m = fp16(x[b].m);
        for (int i = 0; i < QK4_1; i++)
            dst[b * QK4_1 + i] = (float)nibble(x[b].qs, i) * d + m;
    }
}

/* sum(w * x) = d_w * d_x * sum(q_w * q_x) + m_w * s_x, with s_x = d_x * sum(q_x) stored. */
static void q4_1_vec_dot(int64_t n, float *s, const void *w, const void *x)
{
    const struct block_q4_1 *a = w;
    const struct block_q8_1 *b = x;
    double sum = 0.0;
    for (int64_t k = 0; k < n / QK4_1; k++) {
        int sumi = 0;
        for (int i = 0; i < QK4_1; i++)
            sumi += nibble(a[k].qs, i) * b[k].qs[i];
        sum += (double)fp16(a[k].d) * fp16(b[k].d) * sumi + (double)fp16(a[k].m) * fp16(b[k].s);
    }
    *s = (float)sum;
}

/* ---- K-quant weight quantizers --------------------------------------------------------------- */

/* Least-squares fit of x ~ a * q + c over a sub-block, with c <= 0 because the formats store the
 * offset as a subtracted, non-negative min. Returns the squared error. */
static float refit_affine(const float *x, const uint8_t *q, int n, float *ret_a, float *ret_c)
{
    double sq = 0, sqq = 0, sx = 0, sqx = 0;
    for (int i = 0; i < n; i++) {
        sq += q[i];
        sqq += (double)q[i] * q[i];
        sx += x[i];
        sqx += (double)q[i] * x[i];
    }
    double det = n * sqq - sq * sq;
    double a = det > 0 ? (n * sqx - sq * sx) / det : 0;
    double c = (sx - a * sq) / n;
    if (c > 0) {
        c = 0;
        a = sqq > 0 ? sqx / sqq : 0;
    }
    if (a < 0)
        a = 0;
    float err = 0;
    for (int i = 0; i < n; i++) {
        float e = (float)(a * q[i] + c) - x[i];
        err += e * e;
    }
    *ret_a = (float)a;
    *ret_c = (float)c;
    return err;
}

/* Scale and min for x ~ scale * q - min, q in [0, qmax]: the min/max step, then a short search
 * over slightly different steps, each refitted by least squares; the best fit wins. */
static void fit_scale_min(const float *x, int n, int qmax, float *ret_scale, float *ret_min)
{
    float lo = 0.0f, hi = x[0];
    for (int i = 0; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    *ret_scale = 0.0f;
    *ret_min = -lo;
    if (!(hi > lo))
        return;
    float best = FLT_MAX;
    for (int step = -6; step <= 6; step++) {
        float iscale = ((float)qmax + 0.1f * (float)step) / (hi - lo);
        uint8_t q[32];
        for (int i = 0; i < n; i++)
            q[i] = (uint8_t)round_clamp((x[i] - lo) * iscale, 0.0f, (float)qmax);
        float a, c;
        float err = refit_affine(x, q, n, &a, &c);
        if (err < best) {
            best = err;
            *ret_scale = a;
            *ret_min = -c;
        }
    }
}

/* The shared part of q4_K and q5_K: fit 8 sub-blocks of 32, quantize their scales and mins to
 * 6 bits under fp16 super-scales, pack them, and return the integer quants in q[256]. */
static void quantize_k4_scales(const float *x, int qmax, uint16_t *ret_d, uint16_t *ret_dmin,
                               uint8_t *packed, uint8_t *q)
{
    float scale[8], min[8], max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; j++) {
        fit_scale_min(x + 32 * j, 32, qmax, &scale[j], &min[j]);
        max_scale = fmaxf(max_scale, scale[j]);
        max_min = fmaxf(max_min, min[j]);
    }
    *ret_d = exo_fp32_to_fp16(max_scale / 63.0f);
    *ret_dmin = exo_fp32_to_fp16(max_min / 63.0f);
    float d = fp16(*ret_d), dmin = fp16(*ret_dmin);
    float id = d > 0 ? 1.0f / d : 0.0f, idmin = dmin > 0 ? 1.0f / dmin : 0.0f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)round_clamp(scale[j] * id, 0.0f, 63.0f);
        lm[j] = (uint8_t)round_clamp(min[j] * idmin, 0.0f, 63.0f);
        float step = d * ls[j], off = dmin * lm[j];
        float istep = step > 0 ? 1.0f / step : 0.0f;
        for (int i = 0; i < 32; i++)
            q[32 * j + i] = (uint8_t)round_clamp((x[32 * j + i] + off) * istep, 0.0f, (float)qmax);
    }
    for (int j = 0; j < 4; j++) {
        packed[j] = (uint8_t)(ls[j] | (ls[j + 4] >> 4) << 6);
        packed[j + 4] = (uint8_t)(lm[j] | (lm[j + 4] >> 4) << 6);
        packed[j + 8] = (uint8_t)((ls[j + 4] & 0xf) | (lm[j + 4] & 0xf) << 4);
    }
}

/* qs for a 256-weight super-block of 4-bit values: per 64 weights, 32 bytes whose low nibbles are
 * the first 32 and high nibbles the next 32. */
static void pack_k4_nibbles(const uint8_t *q, uint8_t *qs)
{
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++)
            qs[32 * p + l] = (uint8_t)((q[64 * p + l] & 0xf) | (q[64 * p + 32 + l] & 0xf) << 4);
}

static void q4_K_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q4_K *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t q[QK_K];
        quantize_k4_scales(src + b * QK_K, 15, &y[b].d, &y[b].dmin, y[b].scales, q);
        pack_k4_nibbles(q, y[b].qs);
    }
}

static void q5_K_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q5_K *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t q[QK_K];
        quantize_k4_scales(src + b * QK_K, 31, &y[b].d, &y[b].dmin, y[b].scales, q);
        pack_k4_nibbles(q, y[b].qs);
        /* The fifth bit of weight 64p + l is bit 2p of qh[l], of weight 64p + 32 + l bit 2p+1. */
        memset(y[b].qh, 0, sizeof(y[b].qh));
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++)
                y[b].qh[l] |= (uint8_t)((q[64 * p + l] >> 4) << (2 * p) | (q[64 * p + 32 + l] >> 4)
                                                                              << (2 * p + 1));
    }
}

/* The quant of weight i (< 256) of a q4_K/q5_K super-block, without the fifth bit. */
static int k4_nibble(const uint8_t *qs, int i)
{
    int p = i / 64, l = i % 32;
    return (i % 64) < 32 ? qs[32 * p + l] & 0xf : qs[32 * p + l] >> 4;
}

static int q5_K_quant(const struct block_q5_K *x, int i)
{
    int high = (x->qh[i % 32] >> (i / 32)) & 1;
    return k4_nibble(x->qs, i) | high << 4;
}

static void q4_K_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q4_K *x = src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t sc[8], mn[8];
        exo_quants_k4_scales(x[b].scales, sc, mn);
        float d = fp16(x[b].d), dmin = fp16(x[b].dmin);
        for (int i = 0; i < QK_K; i++)
            dst[b * QK_K + i] = d * sc[i / 32] * (float)k4_nibble(x[b].qs, i) - dmin * mn[i / 32];
    }
}

static void q5_K_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q5_K *x = src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t sc[8], mn[8];
        exo_quants_k4_scales(x[b].scales, sc, mn);
        float d = fp16(x[b].d), dmin = fp16(x[b].dmin);
        for (int i = 0; i < QK_K; i++)
            dst[b * QK_K + i] = d * sc[i / 32] * (float)q5_K_quant(&x[b], i) - dmin * mn[i / 32];
    }
}

/* dot = d_x * (d * sum_j sc_j * sum(q * q_x) - dmin * sum_j mn_j * sum(q_x)), the sums of q_x
 * per sub-block coming from the activation's bsums. */
static double k4_dot(float d, float dmin, const uint8_t *packed, const int *q,
                     const struct block_q8_K *b)
{
    uint8_t sc[8], mn[8];
    exo_quants_k4_scales(packed, sc, mn);
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; j++) {
        int dot = 0;
        for (int i = 0; i < 32; i++)
            dot += q[32 * j + i] * b->qs[32 * j + i];
        sumi += sc[j] * dot;
        summ += mn[j] * (b->bsums[2 * j] + b->bsums[2 * j + 1]);
    }
    return (double)b->d * ((double)d * sumi - (double)dmin * summ);
}

static void q4_K_vec_dot(int64_t n, float *s, const void *w, const void *x)
{
    const struct block_q4_K *a = w;
    const struct block_q8_K *b = x;
    double sum = 0.0;
    for (int64_t k = 0; k < n / QK_K; k++) {
        int q[QK_K];
        for (int i = 0; i < QK_K; i++)
            q[i] = k4_nibble(a[k].qs, i);
        sum += k4_dot(fp16(a[k].d), fp16(a[k].dmin), a[k].scales, q, &b[k]);
    }
    *s = (float)sum;
}

static void q5_K_vec_dot(int64_t n, float *s, const void *w, const void *x)
{
    const struct block_q5_K *a = w;
    const struct block_q8_K *b = x;
    double sum = 0.0;
    for (int64_t k = 0; k < n / QK_K; k++) {
        int q[QK_K];
        for (int i = 0; i < QK_K; i++)
            q[i] = q5_K_quant(&a[k], i);
        sum += k4_dot(fp16(a[k].d), fp16(a[k].dmin), a[k].scales, q, &b[k]);
    }
    *s = (float)sum;
}

/* ---- q6_K ---------------------------------------------------------------------------------- */

/* Weight i (< 256) of a q6_K super-block as an unsigned 6-bit value (subtract 32 for the quant).
 * Per 128 weights: ql holds 64 bytes (low nibbles: weights 0-63, high nibbles: 64-127) and qh
 * 32 bytes (bit pairs 0-1, 2-3, 4-5, 6-7 for weights l, l+32, l+64, l+96). */
static int q6_K_quant(const struct block_q6_K *x, int i)
{
    int h = i / 128, r = i % 128, l = r % 32, quarter = r / 32;
    int low = x->ql[64 * h + l + 32 * (quarter & 1)];
    low = quarter < 2 ? low & 0xf : low >> 4;
    int high = (x->qh[32 * h + l] >> (2 * quarter)) & 3;
    return low | high << 4;
}

/* The symmetric fit of a 16-weight sub-block: x ~ a * q, q in [-32, 31], searching a few steps
 * around the one that maps the largest magnitude to -32. */
static float fit_symmetric(const float *x)
{
    float max = signed_max(x, 16);
    if (max == 0.0f)
        return 0.0f;
    float best = FLT_MAX, best_a = 0.0f;
    for (int step = -4; step <= 4; step++) {
        float iscale = -(32.0f + 0.1f * (float)step) / max;
        double sqq = 0, sqx = 0;
        int q[16];
        for (int i = 0; i < 16; i++) {
            q[i] = round_clamp(x[i] * iscale, -32.0f, 31.0f);
            sqq += (double)q[i] * q[i];
            sqx += (double)q[i] * x[i];
        }
        float a = sqq > 0 ? (float)(sqx / sqq) : 0.0f;
        float err = 0;
        for (int i = 0; i < 16; i++)
            err += (a * q[i] - x[i]) * (a * q[i] - x[i]);
        if (err < best) {
            best = err;
            best_a = a;
        }
    }
    return best_a;
}

static void q6_K_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q6_K *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *x = src + b * QK_K;
        float scale[16], amax = 0.0f;
        for (int j = 0; j < 16; j++) {
            scale[j] = fit_symmetric(x + 16 * j);
            amax = fmaxf(amax, fabsf(scale[j]));
        }
        y[b].d = exo_fp32_to_fp16(amax / 127.0f);
        float d = fp16(y[b].d), id = d > 0 ? 1.0f / d : 0.0f;
        uint8_t q[QK_K];
        for (int j = 0; j < 16; j++) {
            y[b].scales[j] = (int8_t)round_clamp(scale[j] * id, -127.0f, 127.0f);
            float step = d * y[b].scales[j], istep = step != 0 ? 1.0f / step : 0.0f;
            for (int i = 0; i < 16; i++)
                q[16 * j + i] = (uint8_t)(round_clamp(x[16 * j + i] * istep, -32.0f, 31.0f) + 32);
        }
        memset(y[b].ql, 0, sizeof(y[b].ql));
        memset(y[b].qh, 0, sizeof(y[b].qh));
        for (int i = 0; i < QK_K; i++) {
            int h = i / 128, r = i % 128, l = r % 32, quarter = r / 32;
            y[b].ql[64 * h + l + 32 * (quarter & 1)] |=
                (uint8_t)((q[i] & 0xf) << (4 * (quarter / 2)));
            y[b].qh[32 * h + l] |= (uint8_t)((q[i] >> 4) << (2 * quarter));
        }
    }
}

static void q6_K_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q6_K *x = src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        float d = fp16(x[b].d);
        for (int i = 0; i < QK_K; i++)
            dst[b * QK_K + i] = d * x[b].scales[i / 16] * (float)(q6_K_quant(&x[b], i) - 32);
    }
}

static void q6_K_vec_dot(int64_t n, float *s, const void *w, const void *x)
{
    const struct block_q6_K *a = w;
    const struct block_q8_K *b = x;
    double sum = 0.0;
    for (int64_t k = 0; k < n / QK_K; k++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            int dot = 0;
            for (int i = 0; i < 16; i++)
                dot += (q6_K_quant(&a[k], 16 * j + i) - 32) * b[k].qs[16 * j + i];
            sumi += a[k].scales[j] * dot;
        }
        sum += (double)fp16(a[k].d) * b[k].d * sumi;
    }
    *s = (float)sum;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

#define KERNELS(t, vt, name)              \
    [EXO_DTYPE_##t] = {EXO_DTYPE_##t,     \
                       EXO_DTYPE_##vt,    \
                       name##_to_float,   \
                       name##_from_float, \
                       name##_vec_dot,    \
                       NULL,              \
                       0,                 \
                       0,                 \
                       "scalar"}
#define ACTIVATION(t, name)                                                                       \
    [EXO_DTYPE_##                                                                                 \
        t] = {EXO_DTYPE_##t, EXO_DTYPE_##t, name##_to_float, name##_from_float, NULL, NULL, 0, 0, \
              "scalar"}

static const struct exo_cpu_kernels reference[EXO_DTYPE_COUNT] = {
    KERNELS(F32, F32, f32),    KERNELS(F16, F32, f16),    KERNELS(BF16, F32, bf16),
    KERNELS(Q8_0, Q8_0, q8_0), KERNELS(Q4_0, Q8_0, q4_0), KERNELS(Q4_1, Q8_1, q4_1),
    KERNELS(Q4_K, Q8_K, q4_K), KERNELS(Q5_K, Q8_K, q5_K), KERNELS(Q6_K, Q8_K, q6_K),
    ACTIVATION(Q8_1, q8_1),    ACTIVATION(Q8_K, q8_K),
};

static struct exo_cpu_kernels levels[EXO_CPU_ISA_COUNT][EXO_DTYPE_COUNT];
static bool level_ok[EXO_CPU_ISA_COUNT];
static enum exo_cpu_isa best_level;
static pthread_once_t levels_once = PTHREAD_ONCE_INIT;

static void add_level(enum exo_cpu_isa isa, enum exo_cpu_isa below,
                      void (*install)(struct exo_cpu_kernels *))
{
    memcpy(levels[isa], levels[below], sizeof(levels[isa]));
    install(levels[isa]);
    level_ok[isa] = true;
    best_level = isa;
}

static void build_levels(void)
{
    memcpy(levels[EXO_CPU_ISA_SCALAR], reference, sizeof(reference));
    level_ok[EXO_CPU_ISA_SCALAR] = true;
    best_level = EXO_CPU_ISA_SCALAR;
#if defined(__x86_64__) || defined(__i386__)
    const struct exo_cpu_features *f = exo_cpu_features();
    if (f->avx2 && f->fma && f->f16c)
        add_level(EXO_CPU_ISA_AVX2, EXO_CPU_ISA_SCALAR, exo_quants_avx2_install);
    /* The AVX-512 file is also built with DQ, which every CPU with VNNI has. */
    if (level_ok[EXO_CPU_ISA_AVX2] && f->avx512f && f->avx512bw && f->avx512vl && f->avx512vnni)
        add_level(EXO_CPU_ISA_AVX512, EXO_CPU_ISA_AVX2, exo_quants_avx512_install);
#endif
}

const struct exo_cpu_kernels *exo_cpu_kernels_isa(enum exo_dtype type, enum exo_cpu_isa isa)
{
    pthread_once(&levels_once, build_levels);
    if (isa == EXO_CPU_ISA_SCALAR)
        return exo_cpu_kernels_ref(type);
    if ((unsigned)type >= EXO_DTYPE_COUNT || (unsigned)isa >= EXO_CPU_ISA_COUNT || !level_ok[isa])
        return NULL;
    const struct exo_cpu_kernels *k = &levels[isa][type];
    return k->to_float ? k : NULL;
}

const struct exo_cpu_kernels *exo_cpu_kernels(enum exo_dtype type)
{
    pthread_once(&levels_once, build_levels);
    return exo_cpu_kernels_isa(type, best_level);
}

const struct exo_cpu_kernels *exo_cpu_kernels_ref(enum exo_dtype type)
{
    if ((unsigned)type >= EXO_DTYPE_COUNT || !reference[type].to_float)
        return NULL;
    return &reference[type];
}
