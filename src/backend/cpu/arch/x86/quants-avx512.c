/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AVX-512 (F, BW, VL, DQ, VNNI) kernels for the formats the default models spend their time in:
 * q4_0, q4_1 and q8_0 weights, and the 8-bit activation quantizers. Other types keep the AVX2
 * kernels (see quants-int.h for how levels layer).
 *
 * vpdpbusd multiplies unsigned by signed bytes and adds each group of four into an int32 lane.
 * 4-bit quants are unsigned, so q4_1 maps onto it directly; q4_0's (q - 8) and q8_0's signed
 * weights are made unsigned by an offset (q8_0: w + 128 = w ^ 0x80) whose contribution, the
 * offset times the activation sum, is taken off by starting the accumulation from its negation.
 * This is exact for every input byte.
 *
 * Blocks are handled four at a time (a "group"): a group's weight quants and fp16 headers are
 * gathered from one or two wide loads with permutes, because the block sizes (18, 20, 34 bytes)
 * leave them at awkward offsets. A 512-bit register holds two blocks, lanes 0-7 the first;
 * the product of the weight and activation headers, [d*dx, m*s] per block, gives every scale
 * of the group from one multiply. A partial last group is run from zero-padded copies, whose
 * zero scales contribute nothing.
 */
#include <immintrin.h>

#include "backend/cpu/quants-int.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

enum fmt { FMT_Q4_0, FMT_Q4_1, FMT_Q8_0 };

/* Bytes of a weight (w) and an activation (x) block; at most 34 and 36, so a padded group
 * fits in GROUP_MAX bytes. */
static ALWAYS_INLINE size_t w_bytes(enum fmt f)
{
    return f == FMT_Q4_0   ? sizeof(struct block_q4_0)
           : f == FMT_Q4_1 ? sizeof(struct block_q4_1)
                           : sizeof(struct block_q8_0);
}

static ALWAYS_INLINE size_t x_bytes(enum fmt f)
{
    return f == FMT_Q4_1 ? sizeof(struct block_q8_1) : sizeof(struct block_q8_0);
}

#define GROUP_MAX (4 * 36)

/* Two 32-byte loads side by side. */
static ALWAYS_INLINE __m512i load_2x256(const uint8_t *a, const uint8_t *b)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

/* The four fp16 (d, m) pairs of a group of 34-byte blocks (q8_0 layout), the m slots zero:
 * halves 0, 17, 34 and 51 of the group. */
static ALWAYS_INLINE __m256 q8_0_headers(const uint8_t *p)
{
    static const uint16_t sel[32] = {0, 0, 17, 0, 34, 0, 51};
    const __m512i idx = _mm512_loadu_si512(sel);
    __m512i lo = _mm512_loadu_si512(p), hi = _mm512_loadu_si512(p + 64);
    __m512i h = _mm512_maskz_permutex2var_epi16(0x55, lo, idx, hi);
    return _mm256_cvtph_ps(_mm512_castsi512_si128(h));
}

/* A group of weights ready for vpdpbusd: q[i] holds blocks 2i and 2i+1 as unsigned bytes,
 * h the headers [d0 m0 d1 m1 d2 m2 d3 m3] (m zero for q4_0 and q8_0). */
struct wgrp {
    __m512i q[2];
    __m256 h;
};

/* 64 bytes of packed nibbles of four blocks -> two registers of two blocks each, every block in
 * element order (its low nibbles, then its high nibbles). */
static ALWAYS_INLINE void unpack_group(__m512i qs, __m512i *q)
{
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    __m512i lo = _mm512_and_si512(qs, low4);
    __m512i hi = _mm512_and_si512(_mm512_srli_epi16(qs, 4), low4);
    q[0] = _mm512_permutex2var_epi64(lo, _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), hi);
    q[1] = _mm512_permutex2var_epi64(lo, _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15), hi);
}

static ALWAYS_INLINE struct wgrp load_w(enum fmt f, const uint8_t *p)
{
    struct wgrp g;
    if (f == FMT_Q8_0) {
        const __m512i offset = _mm512_set1_epi8((char)0x80);
        g.q[0] = _mm512_xor_si512(load_2x256(p + 2, p + 36), offset);
        g.q[1] = _mm512_xor_si512(load_2x256(p + 70, p + 104), offset);
        g.h = q8_0_headers(p);
    } else if (f == FMT_Q4_1) {
        /* 20-byte blocks: headers are dwords 0, 5, 10, 15; quants dwords 1-4, 6-9, ... */
        const __m512i qidx =
            _mm512_setr_epi32(1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14, 16, 17, 18, 19);
        const __m512i hidx = _mm512_setr_epi32(0, 5, 10, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
        __m512i lo = _mm512_loadu_si512(p);
        __m512i hi = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p + 64)));
        unpack_group(_mm512_permutex2var_epi32(lo, qidx, hi), g.q);
        g.h = _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutexvar_epi32(hidx, lo)));
    } else {
        /* 18-byte blocks: headers are halves 0, 9, 18, 27; quants halves 1-8, 10-17, ... The
         * group is 72 bytes, so the second load is masked to its last 8. */
        static const uint16_t qsel[32] = {1,  2,  3,  4,  5,  6,  7,  8,  10, 11, 12,
                                          13, 14, 15, 16, 17, 19, 20, 21, 22, 23, 24,
                                          25, 26, 28, 29, 30, 31, 32, 33, 34, 35};
        static const uint16_t hsel[32] = {0, 0, 9, 0, 18, 0, 27};
        const __m512i qidx = _mm512_loadu_si512(qsel), hidx = _mm512_loadu_si512(hsel);
        __m512i lo = _mm512_loadu_si512(p);
        __m512i hi = _mm512_maskz_loadu_epi8(0xff, p + 64);
        unpack_group(_mm512_permutex2var_epi16(lo, qidx, hi), g.q);
        g.h =
            _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_maskz_permutexvar_epi16(0x55, hidx, lo)));
    }
    return g;
}

/* A group of activations: quants as the weights pair them, headers [dx0 s0 dx1 s1 ...] (s zero
 * for q8_0), and the int32 lanes the dot product starts from: minus the weight offset (8 for
 * q4_0, 128 for q8_0) times the sum of each four activations. */
struct xgrp {
    __m512i q[2];
    __m512i start[2];
    __m256 h;
};

static ALWAYS_INLINE struct xgrp load_x(enum fmt f, const uint8_t *p)
{
    struct xgrp g;
    if (f == FMT_Q4_1) {
        const __m512i hidx = _mm512_setr_epi32(0, 9, 18, 27, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
        g.q[0] = load_2x256(p + 4, p + 40);
        g.q[1] = load_2x256(p + 76, p + 112);
        __m512i lo = _mm512_loadu_si512(p), hi = _mm512_loadu_si512(p + 64);
        g.h = _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutex2var_epi32(lo, hidx, hi)));
        g.start[0] = g.start[1] = _mm512_setzero_si512();
    } else {
        const __m512i offset = _mm512_set1_epi8(f == FMT_Q4_0 ? 8 : (char)0x80);
        g.q[0] = load_2x256(p + 2, p + 36);
        g.q[1] = load_2x256(p + 70, p + 104);
        g.h = q8_0_headers(p);
        for (int i = 0; i < 2; i++)
            g.start[i] =
                _mm512_sub_epi32(_mm512_setzero_si512(),
                                 _mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, g.q[i]));
    }
    return g;
}

/* Lane selectors: the scale of block 0/1 (pair 0) or 2/3 (pair 1) spread over its 8 lanes, and
 * the four odd header lanes (m or s) in lanes 0-3. */
static ALWAYS_INLINE __m512 spread(__m256 h, int pair)
{
    const __m512i idx0 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
    const __m512i idx1 = _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6);
    return _mm512_permutexvar_ps(pair ? idx1 : idx0, _mm512_castps256_ps512(h));
}

static ALWAYS_INLINE __m512 odd_lanes(__m256 h)
{
    const __m512i idx = _mm512_setr_epi32(1, 3, 5, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_maskz_permutexvar_ps(0x000f, idx, _mm512_castps256_ps512(h));
}

/* Sums of four vectors, one per lane of the result. */
static ALWAYS_INLINE __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d)
{
    __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    __m256 b8 = _mm256_add_ps(_mm512_castps512_ps256(b), _mm512_extractf32x8_ps(b, 1));
    __m256 c8 = _mm256_add_ps(_mm512_castps512_ps256(c), _mm512_extractf32x8_ps(c, 1));
    __m256 d8 = _mm256_add_ps(_mm512_castps512_ps256(d), _mm512_extractf32x8_ps(d, 1));
    __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a8, b8), _mm256_hadd_ps(c8, d8));
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

/*
 * One group for a tile of R weight rows by C activation columns: each weight group is loaded
 * once and used for all C columns. acc[r][c] collects dot(row r, column c) spread over lanes.
 */
static ALWAYS_INLINE void tile_group(enum fmt f, int R, int C, __m512 acc[4][4],
                                     const uint8_t *const *wp, const uint8_t *const *xp)
{
    struct wgrp wg[4];
    __m512 ws[4][2], wm[4];
    for (int r = 0; r < R; r++) {
        wg[r] = load_w(f, wp[r]);
        ws[r][0] = spread(wg[r].h, 0);
        ws[r][1] = spread(wg[r].h, 1);
        if (f == FMT_Q4_1)
            wm[r] = odd_lanes(wg[r].h);
    }
    for (int c = 0; c < C; c++) {
        struct xgrp xg = load_x(f, xp[c]);
        for (int i = 0; i < 2; i++) {
            __m512 xs = spread(xg.h, i);
            for (int r = 0; r < R; r++) {
                __m512i dot = _mm512_dpbusd_epi32(xg.start[i], wg[r].q[i], xg.q[i]);
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(ws[r][i], xs),
                                            acc[r][c]);
            }
        }
        if (f == FMT_Q4_1) {
            /* The offset terms m * s of the group's four blocks, in lanes 0-3. */
            __m512 xm = _mm512_zextps256_ps512(
                _mm256_permutevar8x32_ps(xg.h, _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7)));
            for (int r = 0; r < R; r++)
                acc[r][c] = _mm512_fmadd_ps(wm[r], xm, acc[r][c]);
        }
    }
}

static ALWAYS_INLINE void tile(enum fmt f, int R, int C, int64_t nb, float *s, size_t lds,
                               const uint8_t *w, size_t ldw, const uint8_t *x, size_t ldx)
{
    __m512 acc[4][4];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            acc[r][c] = _mm512_setzero_ps();
    const uint8_t *wp[4], *xp[4];
    int64_t k = 0;
    for (; k + 4 <= nb; k += 4) {
        for (int r = 0; r < R; r++)
            wp[r] = w + r * ldw + k * w_bytes(f);
        for (int c = 0; c < C; c++)
            xp[c] = x + c * ldx + k * x_bytes(f);
        tile_group(f, R, C, acc, wp, xp);
    }
    if (k < nb) {
        uint8_t wpad[4][GROUP_MAX], xpad[4][GROUP_MAX];
        size_t wlen = (size_t)(nb - k) * w_bytes(f), xlen = (size_t)(nb - k) * x_bytes(f);
        for (int r = 0; r < R; r++) {
            memset(wpad[r], 0, sizeof(wpad[r]));
            memcpy(wpad[r], w + r * ldw + k * w_bytes(f), wlen);
            wp[r] = wpad[r];
        }
        for (int c = 0; c < C; c++) {
            memset(xpad[c], 0, sizeof(xpad[c]));
            memcpy(xpad[c], x + c * ldx + k * x_bytes(f), xlen);
            xp[c] = xpad[c];
        }
        tile_group(f, R, C, acc, wp, xp);
    }
    for (int c = 0; c < C; c++) {
        float out[4];
        __m512 z = _mm512_setzero_ps();
        _mm_storeu_ps(out, reduce4(acc[0][c], R > 1 ? acc[1][c] : z, R > 2 ? acc[2][c] : z,
                                   R > 3 ? acc[3][c] : z));
        for (int r = 0; r < R; r++)
            s[c * lds + r] = out[r];
    }
}

/*
 * vec_dot: one row by one column, with the group's scales taken from a single header product
 * (d * dx in even lanes, m * s in odd ones, summed in a vector and picked out at the end).
 */
static ALWAYS_INLINE void vec_dot(enum fmt f, int64_t n, float *s, const void *vw, const void *vx)
{
    const uint8_t *w = vw, *x = vx;
    int64_t nb = n / 32, k = 0;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    for (; k + 4 <= nb; k += 4) {
        struct wgrp wg = load_w(f, w + k * w_bytes(f));
        struct xgrp xg = load_x(f, x + k * x_bytes(f));
        __m256 prod = _mm256_mul_ps(wg.h, xg.h);
        __m512i d0 = _mm512_dpbusd_epi32(xg.start[0], wg.q[0], xg.q[0]);
        __m512i d1 = _mm512_dpbusd_epi32(xg.start[1], wg.q[1], xg.q[1]);
        acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d0), spread(prod, 0), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1), spread(prod, 1), acc1);
        if (f == FMT_Q4_1)
            accm = _mm256_add_ps(accm, prod);
    }
    float tail = 0.0f;
    if (k < nb)
        tile(f, 1, 1, nb - k, &tail, 1, w + k * w_bytes(f), 0, x + k * x_bytes(f), 0);
    accm = _mm256_blend_ps(_mm256_setzero_ps(), accm, 0xaa);
    *s = _mm512_reduce_add_ps(
             _mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_zextps256_ps512(accm))) +
         tail;
}

/* Tile sizes chosen by measurement with bench-kernels. */
#define TILE_R 4
#define TILE_C 4

/* Instantiates full-height tiles for every column count; short row groups go one row at a
 * time. */
static ALWAYS_INLINE void gemm(enum fmt f, int64_t n, int nr, int nc, float *s, size_t lds,
                               const void *vw, size_t ldw, const void *vx, size_t ldx)
{
    const uint8_t *w = vw, *x = vx;
    int64_t nb = n / 32;
    if (nr == TILE_R) {
        switch (nc) {
        case 4:
            tile(f, TILE_R, 4, nb, s, lds, w, ldw, x, ldx);
            return;
        case 3:
            tile(f, TILE_R, 3, nb, s, lds, w, ldw, x, ldx);
            return;
        case 2:
            tile(f, TILE_R, 2, nb, s, lds, w, ldw, x, ldx);
            return;
        case 1:
            tile(f, TILE_R, 1, nb, s, lds, w, ldw, x, ldx);
            return;
        default:
            break;
        }
    }
    for (int r = 0; r < nr; r++)
        for (int c = 0; c < nc; c++)
            vec_dot(f, n, s + c * lds + r, w + r * ldw, x + c * ldx);
}

#define FORMAT_KERNELS(name, f)                                                             \
    static void name##_vec_dot(int64_t n, float *s, const void *w, const void *x)           \
    {                                                                                       \
        vec_dot(f, n, s, w, x);                                                             \
    }                                                                                       \
    static void name##_gemm(int64_t n, int nr, int nc, float *s, size_t lds, const void *w, \
                            size_t ldw, const void *x, size_t ldx)                          \
    {                                                                                       \
        gemm(f, n, nr, nc, s, lds, w, ldw, x, ldx);                                         \
    }

FORMAT_KERNELS(q4_0, FMT_Q4_0)
FORMAT_KERNELS(q4_1, FMT_Q4_1)
FORMAT_KERNELS(q8_0, FMT_Q8_0)

/* ---- 8-bit activation quantizers -------------------------------------------------------------
 * Operation for operation the scalar reference (d = amax / 127, q = round-half-even(x / d)
 * clamped to [-127, 127]), so the bytes are identical. */

static ALWAYS_INLINE __m512i quantize16(__m512 v, __m512 id)
{
    v = _mm512_max_ps(_mm512_mul_ps(v, id), _mm512_set1_ps(-127.0f));
    return _mm512_cvtps_epi32(_mm512_min_ps(v, _mm512_set1_ps(127.0f)));
}

static ALWAYS_INLINE float inverse(float d)
{
    return d != 0.0f ? 1.0f / d : 0.0f;
}

/* Quantizes 32 floats into q; returns d and, in *ret_sum, the sum of the quants. */
static ALWAYS_INLINE float quantize32(const float *x, int8_t *q, int *ret_sum)
{
    __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    float d = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1))) / 127.0f;
    __m512 id = _mm512_set1_ps(inverse(d));
    __m512i q0 = quantize16(v0, id), q1 = quantize16(v1, id);
    _mm_storeu_si128((__m128i *)q, _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128((__m128i *)(q + 16), _mm512_cvtsepi32_epi8(q1));
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
            _mm_storeu_si128((__m128i *)(y[b].qs + 16 * j), _mm512_cvtsepi32_epi8(q));
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
    tab[EXO_DTYPE_Q8_0].from_float = q8_0_from_float;
    tab[EXO_DTYPE_Q8_1].from_float = q8_1_from_float;
    tab[EXO_DTYPE_Q8_1].isa = "avx512";
    tab[EXO_DTYPE_Q8_K].from_float = q8_K_from_float;
    tab[EXO_DTYPE_Q8_K].isa = "avx512";
}
