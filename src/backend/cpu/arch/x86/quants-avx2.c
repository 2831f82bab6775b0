/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AVX2 + FMA + F16C kernels (built with exactly those flags; chosen at run time).
 *
 * The 8-bit integer dot products use vpmaddubsw, which multiplies unsigned by signed bytes and
 * adds pairs into saturating int16: 4-, 5- and 6-bit weights are unsigned already, q8_0 weights
 * go through the sign trick (|w| times x with w's sign), exact because activations never hold
 * -128. vpmaddwd against ones (or against a sub-block scale) widens to int32, which is converted
 * to float once per block or group and scaled by the block scales.
 *
 * q4_0, q4_1 and q8_0 use the x86 code shared with the AVX-512 file (quants-int.h); this file
 * adds the float types, the activation quantizers, dequantization and the K-quants.
 */
#include <immintrin.h>
#include <stdbool.h>

#include "backend/cpu/quants-int.h"

static EXO_INLINE int hsum_epi32(__m256i v)
{
    __m128i x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    x = _mm_add_epi32(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(1, 0, 3, 2)));
    x = _mm_add_epi32(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(x);
}

/* ---- f32, f16, bf16 ------------------------------------------------------------------------ */

/* Four independent accumulators hide the FMA latency; the caller's load turns n elements of its
 * type into 8 floats at a time. */
#define FLOAT_DOT(name, load8, scalar)                                                             \
    static void name(int64_t n, float *s, const void *w, const void *x)                            \
    {                                                                                              \
        const float *b = x;                                                                        \
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),            \
                         _mm256_setzero_ps()};                                                     \
        int64_t i = 0;                                                                             \
        for (; i + 32 <= n; i += 32)                                                               \
            for (int j = 0; j < 4; j++)                                                            \
                acc[j] =                                                                           \
                    _mm256_fmadd_ps(load8(w, i + 8 * j), _mm256_loadu_ps(b + i + 8 * j), acc[j]);  \
        for (; i + 8 <= n; i += 8)                                                                 \
            acc[0] = _mm256_fmadd_ps(load8(w, i), _mm256_loadu_ps(b + i), acc[0]);                 \
        float sum =                                                                                \
            x86_hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]))); \
        for (; i < n; i++)                                                                         \
            sum += scalar(w, i) * b[i];                                                            \
        *s = sum;                                                                                  \
    }

static EXO_INLINE __m256 f32_load8(const void *p, int64_t i)
{
    return _mm256_loadu_ps((const float *)p + i);
}

static EXO_INLINE float f32_at(const void *p, int64_t i)
{
    return ((const float *)p)[i];
}

static EXO_INLINE __m256 f16_load8(const void *p, int64_t i)
{
    return _mm256_cvtph_ps(x86_ld128(((const uint16_t *)p + i)));
}

static EXO_INLINE float f16_at(const void *p, int64_t i)
{
    return _cvtsh_ss(((const uint16_t *)p)[i]);
}

static EXO_INLINE __m256 bf16_load8(const void *p, int64_t i)
{
    __m128i h = x86_ld128(((const uint16_t *)p + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static EXO_INLINE float bf16_at(const void *p, int64_t i)
{
    return exo_bf16_to_fp32(((const uint16_t *)p)[i]);
}

FLOAT_DOT(f32_vec_dot, f32_load8, f32_at)
FLOAT_DOT(f16_vec_dot, f16_load8, f16_at)
FLOAT_DOT(bf16_vec_dot, bf16_load8, bf16_at)

static void f16_to_float(const void *src, float *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, f16_load8(src, i));
    for (; i < n; i++)
        dst[i] = f16_at(src, i);
}

static void bf16_to_float(const void *src, float *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, bf16_load8(src, i));
    for (; i < n; i++)
        dst[i] = bf16_at(src, i);
}

/* ---- 8-bit activation quantizers -------------------------------------------------------------
 * Operation for operation the scalar reference: d = amax / 127, q = round-half-even(x * (1 / d))
 * clamped to [-127, 127], so that the bytes are identical. */

/* Quantizes 32 floats; returns d and stores the quants in element order. ret_sum8 gets the
 * int32 quants summed per lane (8 partial sums), for the formats that keep sums. */
static EXO_INLINE float quantize32(const float *x, int8_t *q, __m256i *ret_sum8)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int j = 0; j < 4; j++) {
        v[j] = _mm256_loadu_ps(x + 8 * j);
        amax = _mm256_max_ps(_mm256_andnot_ps(sign, v[j]), amax);
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float d = _mm_cvtss_f32(m4) / 127.0f;
    __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
    __m256i i32[4];
    for (int j = 0; j < 4; j++) {
        __m256 t = _mm256_max_ps(_mm256_mul_ps(v[j], id), _mm256_set1_ps(-127.0f));
        i32[j] = _mm256_cvtps_epi32(_mm256_min_ps(t, _mm256_set1_ps(127.0f)));
    }
    *ret_sum8 =
        _mm256_add_epi32(_mm256_add_epi32(i32[0], i32[1]), _mm256_add_epi32(i32[2], i32[3]));
    /* The packs interleave 128-bit halves; the permute puts the dwords back in order. */
    __m256i p =
        _mm256_packs_epi16(_mm256_packs_epi32(i32[0], i32[1]), _mm256_packs_epi32(i32[2], i32[3]));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    x86_st256(q, p);
    return d;
}

static void q8_0_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q8_0 *y = dst;
    for (int64_t b = 0; b < n / QK8_0; b++) {
        __m256i sum8;
        y[b].d = _cvtss_sh(quantize32(src + b * QK8_0, y[b].qs, &sum8), _MM_FROUND_TO_NEAREST_INT);
    }
}

static void q8_1_from_float(const float *src, void *dst, int64_t n)
{
    struct block_q8_1 *y = dst;
    for (int64_t b = 0; b < n / QK8_1; b++) {
        __m256i sum8;
        float d = quantize32(src + b * QK8_1, y[b].qs, &sum8);
        y[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        y[b].s = _cvtss_sh(d * (float)hsum_epi32(sum8), _MM_FROUND_TO_NEAREST_INT);
    }
}

static void q8_K_from_float(const float *src, void *dst, int64_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    struct block_q8_K *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *x = src + b * QK_K;
        __m256 amax = _mm256_setzero_ps();
        for (int i = 0; i < QK_K; i += 8)
            amax = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), amax);
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float d = _mm_cvtss_f32(m4) / 127.0f;
        __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
        y[b].d = d;
        for (int j = 0; j < QK_K / 32; j++) {
            __m256i i32[4];
            for (int k = 0; k < 4; k++) {
                __m256 t = _mm256_mul_ps(_mm256_loadu_ps(x + 32 * j + 8 * k), id);
                t = _mm256_min_ps(_mm256_max_ps(t, _mm256_set1_ps(-127.0f)),
                                  _mm256_set1_ps(127.0f));
                i32[k] = _mm256_cvtps_epi32(t);
            }
            y[b].bsums[2 * j] = (int16_t)hsum_epi32(_mm256_add_epi32(i32[0], i32[1]));
            y[b].bsums[2 * j + 1] = (int16_t)hsum_epi32(_mm256_add_epi32(i32[2], i32[3]));
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i32[0], i32[1]),
                                           _mm256_packs_epi32(i32[2], i32[3]));
            p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            x86_st256((y[b].qs + 32 * j), p);
        }
    }
}

/* ---- q4_0, q4_1, q8_0 weights (the shared x86 code in quants-int.h) ----------------------- */

/* Tile size chosen by measurement with bench-kernels (4 x 4 beat 4 x 2, 2 x 4, 3 x 3, 2 x 2 and
 * others for q4_1 and q8_0 on Zen 4 even though it spills some of the 16 vector registers:
 * the spilled values come back as memory operands). */
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

static void q8_0_to_float(const void *src, float *dst, int64_t n)
{
    const struct block_q8_0 *x = src;
    for (int64_t b = 0; b < n / QK8_0; b++) {
        __m256 d = _mm256_set1_ps(_cvtsh_ss(x[b].d));
        for (int j = 0; j < 4; j++) {
            __m128i q = x86_ld64((x[b].qs + 8 * j));
            _mm256_storeu_ps(dst + 32 * b + 8 * j,
                             _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))));
        }
    }
}

/* q4_0 and q4_1 dequantize alike: (q - 8) * d for q4_0, q * d + m for q4_1. */
static EXO_INLINE void q4_to_float(enum qfmt f, const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / 32; b++, p += qfmt_wbytes(f)) {
        __m256 d = _mm256_set1_ps(x86_h2f(p));
        __m256 m = _mm256_set1_ps(f == QFMT_Q4_1 ? x86_h2f(p + 2) : 0.0f);
        __m256i q = x86_nibbles(p + qfmt_qs(f));
        if (f == QFMT_Q4_0)
            q = _mm256_sub_epi8(q, _mm256_set1_epi8(8));
        for (int j = 0; j < 4; j++) {
            __m128i q8 = j < 2 ? _mm256_castsi256_si128(q) : _mm256_extracti128_si256(q, 1);
            if (j & 1)
                q8 = _mm_srli_si128(q8, 8);
            __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
            /* q4_0 multiplies only, so that zeros keep the sign the reference gives them. */
            v = f == QFMT_Q4_0 ? _mm256_mul_ps(v, d) : _mm256_fmadd_ps(v, d, m);
            _mm256_storeu_ps(dst + 32 * b + 8 * j, v);
        }
    }
}

static void q4_0_to_float(const void *src, float *dst, int64_t n)
{
    q4_to_float(QFMT_Q4_0, src, dst, n);
}

static void q4_1_to_float(const void *src, float *dst, int64_t n)
{
    q4_to_float(QFMT_Q4_1, src, dst, n);
}

/* ---- K-quants (the shared x86 code in quants-int.h) ---------------------------------------- */

static void q4_K_vec_dot(int64_t n, float *s, const void *w, const void *x)
{
    x86_k_vec_dot(KFMT_Q4_K, n, s, w, x);
}

static void q5_K_vec_dot(int64_t n, float *s, const void *w, const void *x)
{
    x86_k_vec_dot(KFMT_Q5_K, n, s, w, x);
}

static void q6_K_vec_dot(int64_t n, float *s, const void *w, const void *x)
{
    x86_k_vec_dot(KFMT_Q6_K, n, s, w, x);
}

/* 2 x 8 measured best for the K-quant tiles here (about 80 GFLOP/s for q4_K and q6_K, against
 * 55-65 through vec_dot); 4 x 4 and 2 x 4 lower. */
#define KTILE_R 2
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

/* ---- table --------------------------------------------------------------------------------- */

void exo_quants_avx2_install(struct exo_cpu_kernels *tab)
{
    tab[EXO_DTYPE_F16].to_float = f16_to_float;
    tab[EXO_DTYPE_BF16].to_float = bf16_to_float;
    tab[EXO_DTYPE_Q8_0].from_float = q8_0_from_float;
    tab[EXO_DTYPE_Q8_0].to_float = q8_0_to_float;
    tab[EXO_DTYPE_Q8_1].from_float = q8_1_from_float;
    tab[EXO_DTYPE_Q8_K].from_float = q8_K_from_float;
    tab[EXO_DTYPE_Q4_0].to_float = q4_0_to_float;
    tab[EXO_DTYPE_Q4_1].to_float = q4_1_to_float;

    static const struct {
        enum exo_dtype type;
        void (*vec_dot)(int64_t, float *, const void *, const void *);
        void (*gemm)(int64_t, int, int, float *, size_t, const void *, size_t, const void *,
                     size_t);
        int tile_rows, tile_cols;
    } dots[] = {
        {EXO_DTYPE_F32, f32_vec_dot, NULL, 0, 0},
        {EXO_DTYPE_F16, f16_vec_dot, NULL, 0, 0},
        {EXO_DTYPE_BF16, bf16_vec_dot, NULL, 0, 0},
        {EXO_DTYPE_Q8_0, q8_0_vec_dot, q8_0_gemm, TILE_R, TILE_C},
        {EXO_DTYPE_Q4_0, q4_0_vec_dot, q4_0_gemm, TILE_R, TILE_C},
        {EXO_DTYPE_Q4_1, q4_1_vec_dot, q4_1_gemm, TILE_R, TILE_C},
        {EXO_DTYPE_Q4_K, q4_K_vec_dot, q4_K_gemm, KTILE_R, KTILE_C},
        {EXO_DTYPE_Q5_K, q5_K_vec_dot, q5_K_gemm, KTILE_R, KTILE_C},
        {EXO_DTYPE_Q6_K, q6_K_vec_dot, q6_K_gemm, KTILE_R, KTILE_C},
    };
    for (size_t i = 0; i < sizeof(dots) / sizeof(dots[0]); i++) {
        struct exo_cpu_kernels *k = &tab[dots[i].type];
        k->vec_dot = dots[i].vec_dot;
        k->gemm = dots[i].gemm;
        k->tile_rows = dots[i].tile_rows;
        k->tile_cols = dots[i].tile_cols;
        k->isa = "avx2";
    }
    tab[EXO_DTYPE_Q8_1].isa = "avx2";
    tab[EXO_DTYPE_Q8_K].isa = "avx2";
}
