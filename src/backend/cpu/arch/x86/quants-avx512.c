/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AVX-512 (F, BW, VL, DQ, VNNI) kernels, built with those flags and chosen at run time on CPUs
 * that have them all. Other types keep the AVX2 kernels (see quants-int.h for how levels layer).
 *
 * q4_0, q4_1 and q8_0 weights use the x86 code shared with the AVX2 file (quants-int.h), which
 * these flags turn into VNNI code: vpdpbusd (unsigned by signed bytes, each four products summed
 * into an int32 lane) on 256-bit registers, and group headers picked out of 64-byte loads with
 * one permute. On Zen 4, which executes 512-bit operations as two 256-bit halves, this measured
 * faster than tiles with two blocks per 512-bit register. The activation quantizers use 512-bit
 * registers, where the saturating down-conversion (vpmovsdb) needs no repacking.
 */
#include <immintrin.h>

#include "backend/cpu/quants-int.h"

/* Tile size chosen by measurement with bench-kernels: 4 x 4 beat 4 x 3, 3 x 4, 2 x 4 and 4 x 2
 * for q4_1 and q8_0 on Zen 4, and beat a 512-bit tile of two blocks per register. */
#define TILE_R 4
#define TILE_C 4

#define FORMAT_KERNELS(name, f)                                                             \
    static void name##_vec_dot(int64_t n, float *s, const void *w, const void *x)           \
    {                                                                                       \
        x86_vec_dot(f, n, s, w, x);                                                         \
    }                                                                                       \
    static void name##_gemm(int64_t n, int nr, int nc, float *s, size_t lds, const void *w, \
                            size_t ldw, const void *x, size_t ldx)                          \
    {                                                                                       \
        x86_gemm(f, TILE_R, TILE_C, n, nr, nc, s, lds, w, ldw, x, ldx);                     \
    }

FORMAT_KERNELS(q4_0, QFMT_Q4_0)
FORMAT_KERNELS(q4_1, QFMT_Q4_1)
FORMAT_KERNELS(q8_0, QFMT_Q8_0)

/* K-quant tiles: the shared code again, here with 32 vector registers; 4 x 8 and 2 x 8 measured
 * alike (about 95 GFLOP/s for q4_K against 80 for the AVX2 build), 4 x 4 lower. */
#define KTILE_R 4
#define KTILE_C 8

#define K_GEMM(name, f)                                                                     \
    static void name##_gemm(int64_t n, int nr, int nc, float *s, size_t lds, const void *w, \
                            size_t ldw, const void *x, size_t ldx)                          \
    {                                                                                       \
        x86_kgemm(f, KTILE_R, KTILE_C, n, nr, nc, s, lds, w, ldw, x, ldx);                  \
    }

K_GEMM(q4_K, KFMT_Q4_K)
K_GEMM(q5_K, KFMT_Q5_K)
K_GEMM(q6_K, KFMT_Q6_K)

/* ---- 8-bit activation quantizers -------------------------------------------------------------
 * Operation for operation the scalar reference (d = amax / 127, q = round-half-even(x / d)
 * clamped to [-127, 127]), so the bytes are identical. */

static EXO_INLINE __m512i quantize16(__m512 v, __m512 id)
{
    v = _mm512_max_ps(_mm512_mul_ps(v, id), _mm512_set1_ps(-127.0f));
    return _mm512_cvtps_epi32(_mm512_min_ps(v, _mm512_set1_ps(127.0f)));
}

static EXO_INLINE float inverse(float d)
{
    return d != 0.0f ? 1.0f / d : 0.0f;
}

/* Quantizes 32 floats into q; returns d and, in *ret_sum, the sum of the quants. */
static EXO_INLINE float quantize32(const float *x, int8_t *q, int *ret_sum)
{
    __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    float d = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1))) / 127.0f;
    __m512 id = _mm512_set1_ps(inverse(d));
    __m512i q0 = quantize16(v0, id), q1 = quantize16(v1, id);
    x86_st128(q, _mm512_cvtsepi32_epi8(q0));
    x86_st128((q + 16), _mm512_cvtsepi32_epi8(q1));
    *ret_sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    return d;
}

static void q8_0_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q8_0 *y = dst;
    for (int64_t b = 0; b < n / QK8_0; b++) {
        int sum;
        y[b].d = _cvtss_sh(quantize32(src + b * QK8_0, y[b].qs, &sum), _MM_FROUND_TO_NEAREST_INT);
    }
}

static void q8_1_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q8_1 *y = dst;
    for (int64_t b = 0; b < n / QK8_1; b++) {
        int sum;
        float d = quantize32(src + b * QK8_1, y[b].qs, &sum);
        y[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        y[b].s = _cvtss_sh(d * (float)sum, _MM_FROUND_TO_NEAREST_INT);
    }
}

static void q8_K_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q8_K *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *x = src + b * QK_K;
        __m512 amax = _mm512_setzero_ps();
        for (int i = 0; i < QK_K; i += 16)
            amax = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i)), amax);
        float d = _mm512_reduce_max_ps(amax) / 127.0f;
        __m512 id = _mm512_set1_ps(inverse(d));
        y[b].d = d;
        for (int j = 0; j < QK_K / 16; j++) {
            __m512i q = quantize16(_mm512_loadu_ps(x + 16 * j), id);
            x86_st128((y[b].qs + 16 * j), _mm512_cvtsepi32_epi8(q));
            y[b].bsums[j] = (int16_t)_mm512_reduce_add_epi32(q);
        }
    }
}

void exo_quants_avx512_install(struct exo_cpu_kernels *tab)
{
    static const struct {
        enum exo_dtype type;
        void (*vec_dot)(int64_t, float *, const void *, const void *);
        void (*gemm)(int64_t, int, int, float *, size_t, const void *, size_t, const void *,
                     size_t);
    } dots[] = {
        {EXO_DTYPE_Q8_0, q8_0_vec_dot, q8_0_gemm},
        {EXO_DTYPE_Q4_0, q4_0_vec_dot, q4_0_gemm},
        {EXO_DTYPE_Q4_1, q4_1_vec_dot, q4_1_gemm},
    };
    for (size_t i = 0; i < sizeof(dots) / sizeof(dots[0]); i++) {
        struct exo_cpu_kernels *k = &tab[dots[i].type];
        k->vec_dot = dots[i].vec_dot;
        k->gemm = dots[i].gemm;
        k->tile_rows = TILE_R;
        k->tile_cols = TILE_C;
        k->isa = "avx512";
    }
    static const struct {
        enum exo_dtype type;
        void (*gemm)(int64_t, int, int, float *, size_t, const void *, size_t, const void *,
                     size_t);
    } kgemms[] = {
        {EXO_DTYPE_Q4_K, q4_K_gemm},
        {EXO_DTYPE_Q5_K, q5_K_gemm},
        {EXO_DTYPE_Q6_K, q6_K_gemm},
    };
    for (size_t i = 0; i < sizeof(kgemms) / sizeof(kgemms[0]); i++) {
        struct exo_cpu_kernels *k = &tab[kgemms[i].type];
        k->gemm = kgemms[i].gemm;
        k->tile_rows = KTILE_R;
        k->tile_cols = KTILE_C;
    }
    tab[EXO_DTYPE_Q8_0].from_float = q8_0_from_float;
    tab[EXO_DTYPE_Q8_1].from_float = q8_1_from_float;
    tab[EXO_DTYPE_Q8_1].isa = "avx512";
    tab[EXO_DTYPE_Q8_K].from_float = q8_K_from_float;
    tab[EXO_DTYPE_Q8_K].isa = "avx512";
}
