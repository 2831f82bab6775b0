/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the kernel files of the CPU backend share among themselves, not with the rest of exo.
 *
 * Dispatch builds one table per instruction-set level: the scalar table first, then each level
 * starts as a copy of the level below and its arch file overwrites the entries it speeds up
 * (exo_quants_<isa>_install). A level therefore never lacks a kernel, and a type that gains
 * nothing from wider vectors simply keeps the narrower code.
 *
 * Below that: the packed K-quant scales in scalar form, which the reference and the AVX2
 * vec_dot share, and the x86 kernels that the AVX2 and AVX-512 files both compile, each with its
 * own flags (see the comment at the start of that section).
 */
#ifndef EXO_BACKEND_CPU_QUANTS_INT_H
#define EXO_BACKEND_CPU_QUANTS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/quants.h"

/* Each fills in, in tab[EXO_DTYPE_COUNT] (borrowed), the kernels its ISA provides. The caller
 * has checked that the CPU runs that ISA. */
void exo_quants_avx2_install(struct exo_cpu_kernels *tab);
void exo_quants_avx512_install(struct exo_cpu_kernels *tab);

/*
 * The 12 bytes of K-quant scales hold eight 6-bit scales and eight 6-bit mins (ggml's
 * get_scale_min_k4 packing):
 *   bytes 0-3   scale j (j < 4) in bits 0-5, bits 4-5 of scale j+4 in bits 6-7
 *   bytes 4-7   min j (j < 4) in bits 0-5, bits 4-5 of min j+4 in bits 6-7
 *   bytes 8-11  bits 0-3 of scale j+4 in bits 0-3, bits 0-3 of min j+4 in bits 4-7
 * Unpacks them into sc[8] and mn[8].
 */
static inline void exo_quants_k4_scales(const uint8_t *packed, uint8_t *sc, uint8_t *mn)
{
    for (int j = 0; j < 4; j++) {
        sc[j] = packed[j] & 63;
        mn[j] = packed[j + 4] & 63;
        sc[j + 4] = (uint8_t)((packed[j + 8] & 0xf) | (packed[j] >> 6) << 4);
        mn[j + 4] = (uint8_t)((packed[j + 8] >> 4) | (packed[j + 4] >> 6) << 4);
    }
}

/*
 * x86 building blocks for the 32-weight integer formats (q4_0, q4_1, q8_0 weights), shared by
 * the AVX2 and AVX-512 files. Each file compiles them with its own flags, so the same source
 * becomes vpmaddubsw-based code in one and VNNI (vpdpbusd on 256-bit registers) in the other.
 * Blocks are taken four at a time (a group), whose fp16 header pairs multiplied with the
 * activations' ([d * dx, m * s] per block) give every scale of the group in one multiply.
 *
 * vec_dot keeps each block in element order and folds the four int32 block dots with three
 * hadds into [b0 b1 b2 b3 | b0 b1 b2 b3], converted and scaled once per group.
 *
 * The gemm tiles use an interleaved layout instead, built once per weight group (shared by the
 * tile's columns) and once per activation group (shared by its rows): register k holds
 * elements 8k..8k+7 of each of the four blocks, block m in int32 lanes 2m and 2m+1. Four
 * chained dots then leave every block's sum in its own two lanes, and a (row, column) pair costs
 * four dots and one scaled accumulation, with no fold.
 */
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

#define EXO_INLINE inline __attribute__((always_inline))
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define EXO_X86_VNNI 1
#else
#define EXO_X86_VNNI 0
#endif

/* How far ahead of a tile's weight rows to prefetch. A tile reads its rows in lockstep, several
 * interleaved streams that the hardware prefetchers follow poorly: a 4 x 1 tile over a 47 MB
 * q4_1 matrix streamed at 5.7 GB/s without this and about 10 GB/s with it, where single rows,
 * as vec_dot reads them, reach 15 (which is why a single column goes through vec_dot). */
#define X86_PREFETCH_BYTES 4096

/* A weight format together with its activation partner. */
enum qfmt { QFMT_Q4_0, QFMT_Q4_1, QFMT_Q8_0 };

static EXO_INLINE size_t qfmt_wbytes(enum qfmt f)
{
    return f == QFMT_Q4_0   ? sizeof(struct block_q4_0)
           : f == QFMT_Q4_1 ? sizeof(struct block_q4_1)
                            : sizeof(struct block_q8_0);
}

static EXO_INLINE size_t qfmt_xbytes(enum qfmt f)
{
    return f == QFMT_Q4_1 ? sizeof(struct block_q8_1) : sizeof(struct block_q8_0);
}

/* Offset of the quants in a weight or activation block (after one or two fp16 fields). */
static EXO_INLINE size_t qfmt_qs(enum qfmt f)
{
    return f == QFMT_Q4_1 ? 4 : 2;
}

/* Unaligned loads and stores through void pointers: the casts to vector pointer types that the
 * intrinsics want would otherwise trip -Wcast-align on every call. */
static EXO_INLINE __m128i x86_ld64(const void *p)
{
    return _mm_loadl_epi64((const __m128i *)p);
}

static EXO_INLINE __m128i x86_ld128(const void *p)
{
    return _mm_loadu_si128((const __m128i *)p);
}

static EXO_INLINE __m256i x86_ld256(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

static EXO_INLINE void x86_st128(void *p, __m128i v)
{
    _mm_storeu_si128((__m128i *)p, v);
}

static EXO_INLINE void x86_st256(void *p, __m256i v)
{
    _mm256_storeu_si256((__m256i *)p, v);
}

static EXO_INLINE float x86_h2f(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static EXO_INLINE float x86_hsum(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* 16 bytes of packed nibbles -> 32 bytes in element order: the 16 bytes go to both halves and
 * the upper half is shifted right by 4 before masking. */
static EXO_INLINE __m256i x86_nibbles(const uint8_t *qs)
{
    __m256i v = _mm256_broadcastsi128_si256(x86_ld128(qs));
    v = _mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

/* acc + the sums of each four products of unsigned u and signed s bytes. Without VNNI the
 * int16 pair sums cannot saturate for u <= 128. */
static EXO_INLINE __m256i x86_dot_us(__m256i acc, __m256i u, __m256i s)
{
#if EXO_X86_VNNI
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
    return _mm256_add_epi32(acc, p);
#endif
}

/* The first two fp16 fields of the first nv (<= 4) of four blocks `stride` bytes apart, as
 * floats [a0 b0 ... a3 b3], zero past nv: (d, m), (d, s), or for single-scale blocks d and two
 * quant bytes that callers ignore. Whole groups with AVX-512 pick them out of one or two
 * 64-byte loads, all inside the group. */
static EXO_INLINE __m256 x86_headers(const uint8_t *p, size_t stride, int nv)
{
    __m128i h;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    if (nv == 4) {
        __m512i lo = _mm512_loadu_si512(p);
        if (stride % 4 == 0) {
            int s = (int)stride / 4;
            __m512i idx = _mm512_setr_epi32(0, s, 2 * s, 3 * s, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
            h = _mm512_castsi512_si128(
                3 * stride + 4 <= 64
                    ? _mm512_permutexvar_epi32(idx, lo)
                    : _mm512_permutex2var_epi32(lo, idx, _mm512_loadu_si512(p + 64)));
        } else {
            int s = (int)stride / 2;
            __m128i i8 = _mm_setr_epi16(0, 1, (short)s, (short)(s + 1), (short)(2 * s),
                                        (short)(2 * s + 1), (short)(3 * s), (short)(3 * s + 1));
            __m512i idx = _mm512_castsi128_si512(i8);
            h = _mm512_castsi512_si128(
                3 * stride + 4 <= 64
                    ? _mm512_permutexvar_epi16(idx, lo)
                    : _mm512_permutex2var_epi16(lo, idx, _mm512_loadu_si512(p + 64)));
        }
        return _mm256_cvtph_ps(h);
    }
#endif
    int32_t v[4] = {0, 0, 0, 0};
    for (int j = 0; j < 4; j++)
        if (j < nv)
            memcpy(&v[j], p + (size_t)j * stride, 4);
    h = _mm_setr_epi32(v[0], v[1], v[2], v[3]);
    return _mm256_cvtph_ps(h);
}

/* Header lanes spread for the two layouts: each block's scale once per 128-bit half (element
 * order after the fold), or over its two lanes (interleaved). */
static EXO_INLINE __m256 x86_scales_folded(__m256 h)
{
    return _mm256_permutevar8x32_ps(h, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6));
}

static EXO_INLINE __m256 x86_scales_paired(__m256 h)
{
    return _mm256_permutevar8x32_ps(h, _mm256_setr_epi32(0, 0, 2, 2, 4, 4, 6, 6));
}

/* ---- vec_dot ----------------------------------------------------------------------------------
 */

/* The exact integer dot of one weight and one activation block as 8 int32 partial sums. q8_0
 * uses the sign trick (|w| times x with w's signs), exact because activations are never -128;
 * q4_0's quants are q - 8, the 8 taken off as 8 times the activation sums. */
static EXO_INLINE __m256i x86_blk_dot(enum qfmt f, const uint8_t *w, const uint8_t *x)
{
    const __m256i zero = _mm256_setzero_si256();
    __m256i y = x86_ld256((x + qfmt_qs(f)));
    if (f == QFMT_Q8_0) {
        __m256i v = x86_ld256((w + qfmt_qs(f)));
        return x86_dot_us(zero, _mm256_abs_epi8(v), _mm256_sign_epi8(y, v));
    }
    __m256i u = x86_nibbles(w + qfmt_qs(f));
    if (f == QFMT_Q4_1)
        return x86_dot_us(zero, u, y);
#if EXO_X86_VNNI
    return _mm256_sub_epi32(x86_dot_us(zero, u, y), x86_dot_us(zero, _mm256_set1_epi8(8), y));
#else
    __m256i p =
        _mm256_sub_epi16(_mm256_maddubs_epi16(u, y), _mm256_maddubs_epi16(_mm256_set1_epi8(8), y));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
#endif
}

/* One group of nv (<= 4) blocks of a vec_dot, added to acc (and q4_1's m * s terms, in the odd
 * lanes, to *accm). */
static EXO_INLINE __m256 x86_vec_group(enum qfmt f, int nv, const uint8_t *w, const uint8_t *x,
                                       __m256 acc, __m256 *accm)
{
    const size_t wb = qfmt_wbytes(f), xb = qfmt_xbytes(f);
    __m256 prod = _mm256_mul_ps(x86_headers(w, wb, nv), x86_headers(x, xb, nv));
    __m256i d[4];
    for (int j = 0; j < 4; j++)
        d[j] = j < nv ? x86_blk_dot(f, w + (size_t)j * wb, x + (size_t)j * xb)
                      : _mm256_setzero_si256();
    __m256i t = _mm256_hadd_epi32(_mm256_hadd_epi32(d[0], d[1]), _mm256_hadd_epi32(d[2], d[3]));
    if (f == QFMT_Q4_1)
        *accm = _mm256_add_ps(*accm, prod);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), x86_scales_folded(prod), acc);
}

static EXO_INLINE void x86_vec_dot(enum qfmt f, int64_t n, float *s, const void *vw, const void *vx)
{
    const uint8_t *w = vw, *x = vx;
    const size_t wb = qfmt_wbytes(f), xb = qfmt_xbytes(f);
    int64_t nb = n / 32, k = 0;
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (; k + 4 <= nb; k += 4)
        acc = x86_vec_group(f, 4, w + (size_t)k * wb, x + (size_t)k * xb, acc, &accm);
    /* The last 1-3 blocks, each count its own instantiation so that nothing is decided per
     * block (576-wide rows, 18 blocks, end in two). */
    const uint8_t *wk = w + (size_t)k * wb, *xk = x + (size_t)k * xb;
    switch (nb - k) {
    case 3:
        acc = x86_vec_group(f, 3, wk, xk, acc, &accm);
        break;
    case 2:
        acc = x86_vec_group(f, 2, wk, xk, acc, &accm);
        break;
    case 1:
        acc = x86_vec_group(f, 1, wk, xk, acc, &accm);
        break;
    default:
        break;
    }
    /* Only the odd lanes of accm hold q4_1's m * s terms. */
    if (f == QFMT_Q4_1)
        acc = _mm256_add_ps(acc, _mm256_blend_ps(_mm256_setzero_ps(), accm, 0xaa));
    *s = x86_hsum(acc);
}

/* ---- gemm tiles -------------------------------------------------------------------------------
 */

/* 16 bytes at a and at b side by side; zeros for a block past the group's nv. */
static EXO_INLINE __m256i x86_load2x128(const uint8_t *a, bool va, const uint8_t *b, bool vb)
{
    __m128i lo = va ? x86_ld128(a) : _mm_setzero_si128();
    __m128i hi = vb ? x86_ld128(b) : _mm_setzero_si128();
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

/* 32 quant bytes of four blocks `stride` apart -> the interleaved layout (a 4 x 4 transpose of
 * 8-byte pieces). */
static EXO_INLINE void x86_interleave32(const uint8_t *p, size_t stride, int nv, __m256i *out)
{
    for (int half = 0; half < 2; half++) {
        const uint8_t *q = p + 16 * half;
        __m256i ac = x86_load2x128(q, true, q + 2 * stride, nv > 2);
        __m256i bd = x86_load2x128(q + stride, nv > 1, q + 3 * stride, nv > 3);
        out[2 * half] = _mm256_unpacklo_epi64(ac, bd);
        out[2 * half + 1] = _mm256_unpackhi_epi64(ac, bd);
    }
}

/* A weight group for the tiles: u[k] what multiplies the activations as unsigned bytes (for
 * q8_0 w + 128 with VNNI, |w| without, the signs then kept in w[k]), scale each block's d over
 * its two lanes, mins q4_1's m in the odd lanes. */
struct x86_wgrp {
    __m256i u[4], w[4];
    __m256 scale, mins;
};

static EXO_INLINE void x86_wgrp(enum qfmt f, const uint8_t *p, int nv, struct x86_wgrp *g)
{
    const size_t wb = qfmt_wbytes(f), qs = qfmt_qs(f);
    __m256 h = x86_headers(p, wb, nv);
    g->scale = x86_scales_paired(h);
    g->mins = _mm256_blend_ps(_mm256_setzero_ps(), h, 0xaa);
    if (f == QFMT_Q8_0) {
        x86_interleave32(p + qs, wb, nv, g->w);
        for (int k = 0; k < 4; k++)
            g->u[k] = EXO_X86_VNNI ? _mm256_xor_si256(g->w[k], _mm256_set1_epi8((char)0x80))
                                   : _mm256_abs_epi8(g->w[k]);
        return;
    }
    /* Bytes 0-7 of each block's nibbles hold elements 0-7 (low) and 16-23 (high), bytes 8-15
     * elements 8-15 and 24-31. */
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i ac = x86_load2x128(p + qs, true, p + 2 * wb + qs, nv > 2);
    __m256i bd = x86_load2x128(p + wb + qs, nv > 1, p + 3 * wb + qs, nv > 3);
    __m256i l = _mm256_unpacklo_epi64(ac, bd), h8 = _mm256_unpackhi_epi64(ac, bd);
    g->u[0] = _mm256_and_si256(l, low4);
    g->u[1] = _mm256_and_si256(h8, low4);
    g->u[2] = _mm256_and_si256(_mm256_srli_epi16(l, 4), low4);
    g->u[3] = _mm256_and_si256(_mm256_srli_epi16(h8, 4), low4);
}

/* An activation group for the tiles: interleaved quants, the headers [dx s ...] and the scales
 * over their lane pairs, and the offset correction: with VNNI the int32 lanes to start from
 * (minus 8 or 128 times the activation sums, for q4_0 or q8_0), without it q4_0's 8 times the
 * sums as int16 pairs. */
struct x86_xgrp {
    __m256i y[4], corr;
    __m256 h, scale;
};

static EXO_INLINE void x86_xgrp(enum qfmt f, const uint8_t *p, int nv, struct x86_xgrp *g)
{
    const size_t xb = qfmt_xbytes(f);
    g->h = x86_headers(p, xb, nv);
    g->scale = x86_scales_paired(g->h);
    x86_interleave32(p + qfmt_qs(f), xb, nv, g->y);
    g->corr = _mm256_setzero_si256();
#if EXO_X86_VNNI
    if (f != QFMT_Q4_1) {
        __m256i off = _mm256_set1_epi8(f == QFMT_Q4_0 ? 8 : (char)0x80), sum = g->corr;
        for (int k = 0; k < 4; k++)
            sum = _mm256_dpbusd_epi32(sum, off, g->y[k]);
        g->corr = _mm256_sub_epi32(g->corr, sum);
    }
#else
    if (f == QFMT_Q4_0)
        for (int k = 0; k < 4; k++)
            g->corr = _mm256_add_epi16(g->corr, _mm256_maddubs_epi16(_mm256_set1_epi8(8), g->y[k]));
#endif
}

/* The group's four block dots, block m's in lanes 2m and 2m+1. Without VNNI the 4-bit
 * formats add four vpmaddubsw results in int16 (at most 4 * 2 * 15 * 128 in magnitude). */
static EXO_INLINE __m256i x86_grp_dot(enum qfmt f, const struct x86_wgrp *w,
                                      const struct x86_xgrp *x)
{
#if EXO_X86_VNNI
    __m256i t = x->corr;
    for (int k = 0; k < 4; k++)
        t = _mm256_dpbusd_epi32(t, w->u[k], x->y[k]);
    return t;
#else
    if (f == QFMT_Q8_0) {
        __m256i t = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++)
            t = x86_dot_us(t, w->u[k], _mm256_sign_epi8(x->y[k], w->w[k]));
        return t;
    }
    __m256i p = _mm256_maddubs_epi16(w->u[0], x->y[0]);
    for (int k = 1; k < 4; k++)
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(w->u[k], x->y[k]));
    if (f == QFMT_Q4_0)
        p = _mm256_sub_epi16(p, x->corr);
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
#endif
}

/* One group of nv blocks for a tile of R rows by C columns (R, C <= 4). q4_1's m * s terms
 * enter the odd lanes through one more FMA (m there, zeros in the even lanes, times [dx s]). */
static EXO_INLINE void x86_tile_group(enum qfmt f, int R, int C, int nv, __m256 acc[4][4],
                                      const uint8_t *w, size_t ldw, const uint8_t *x, size_t ldx)
{
    struct x86_wgrp wg[4];
    for (int r = 0; r < R; r++) {
        /* Computed as an integer: the address may lie past the end of the matrix, which a
         * prefetch may touch but a pointer may not point to. */
        uintptr_t ahead = (uintptr_t)(w + (size_t)r * ldw) + X86_PREFETCH_BYTES;
        for (size_t o = 0; o < 4 * qfmt_wbytes(f); o += 64)
            _mm_prefetch((const char *)(ahead + o), _MM_HINT_T0);
        x86_wgrp(f, w + (size_t)r * ldw, nv, &wg[r]);
    }
    for (int c = 0; c < C; c++) {
        struct x86_xgrp xg;
        x86_xgrp(f, x + (size_t)c * ldx, nv, &xg);
        for (int r = 0; r < R; r++) {
            __m256 t = _mm256_cvtepi32_ps(x86_grp_dot(f, &wg[r], &xg));
            acc[r][c] = _mm256_fmadd_ps(t, _mm256_mul_ps(wg[r].scale, xg.scale), acc[r][c]);
            if (f == QFMT_Q4_1)
                acc[r][c] = _mm256_fmadd_ps(wg[r].mins, xg.h, acc[r][c]);
        }
    }
}

static EXO_INLINE void x86_tile(enum qfmt f, int R, int C, int64_t nb, float *s, size_t lds,
                                const uint8_t *w, size_t ldw, const uint8_t *x, size_t ldx)
{
    const size_t wb = qfmt_wbytes(f), xb = qfmt_xbytes(f);
    __m256 acc[4][4];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            acc[r][c] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 4 <= nb; k += 4)
        x86_tile_group(f, R, C, 4, acc, w + (size_t)k * wb, ldw, x + (size_t)k * xb, ldx);
    /* As in x86_vec_dot, a constant count for the last 1-3 blocks. */
    const uint8_t *wk = w + (size_t)k * wb, *xk = x + (size_t)k * xb;
    switch (nb - k) {
    case 3:
        x86_tile_group(f, R, C, 3, acc, wk, ldw, xk, ldx);
        break;
    case 2:
        x86_tile_group(f, R, C, 2, acc, wk, ldw, xk, ldx);
        break;
    case 1:
        x86_tile_group(f, R, C, 1, acc, wk, ldw, xk, ldx);
        break;
    default:
        break;
    }
    for (int c = 0; c < C; c++)
        for (int r = 0; r < R; r++)
            s[(size_t)c * lds + (size_t)r] = x86_hsum(acc[r][c]);
}

/* gemm over x86_tile: whole R-row tiles with 2 to C columns, instantiated for each; anything
 * else entry by entry through vec_dot. A single column (decode) therefore goes row by row,
 * which measured faster on matrices streamed from memory than a tile reading R rows in lockstep
 * (the decode sweep of bench-kernels: 7.7 against 9.6 ms). */
static EXO_INLINE void x86_gemm(enum qfmt f, int R, int C, int64_t n, int nr, int nc, float *s,
                                size_t lds, const void *vw, size_t ldw, const void *vx, size_t ldx)
{
    const uint8_t *w = vw, *x = vx;
    int64_t nb = n / 32;
    if (nr == R && nc > 1) {
        switch (nc) {
        case 4:
            if (C >= 4) {
                x86_tile(f, R, 4, nb, s, lds, w, ldw, x, ldx);
                return;
            }
            break;
        case 3:
            if (C >= 3) {
                x86_tile(f, R, 3, nb, s, lds, w, ldw, x, ldx);
                return;
            }
            break;
        case 2:
            if (C >= 2) {
                x86_tile(f, R, 2, nb, s, lds, w, ldw, x, ldx);
                return;
            }
            break;
        default:
            break;
        }
    }
    for (int r = 0; r < nr; r++)
        for (int c = 0; c < nc; c++)
            x86_vec_dot(f, n, s + (size_t)c * lds + (size_t)r, w + (size_t)r * ldw,
                        x + (size_t)c * ldx);
}

/* ---- K-quant gemm tiles -------------------------------------------------------------------
 * Per super-block each weight row is unpacked once into eight 32-quant chunks with the int16
 * multipliers of their sub-blocks, then dotted with every column: vpmaddubsw, then vpmaddwd
 * against the multipliers, which applies the sub-block scales and widens in one step. The mins
 * (q4_K, q5_K) and q6_K's -32 come from the activation's bsums. */
enum kfmt { KFMT_Q4_K, KFMT_Q5_K, KFMT_Q6_K };

static EXO_INLINE size_t kfmt_bytes(enum kfmt f)
{
    return f == KFMT_Q4_K   ? sizeof(struct block_q4_K)
           : f == KFMT_Q5_K ? sizeof(struct block_q5_K)
                            : sizeof(struct block_q6_K);
}

/* K-quant vec_dot, one super-block at a time. Each super-block's integer sum is exact in int32
 * (the largest, q6_K's, stays below 2^28); the mins (q4_K, q5_K) and q6_K's -32 offset come
 * from the activation's bsums. */

/* sum_j mn[j] * (bsums[2j] + bsums[2j + 1]) */
static EXO_INLINE int x86_k4_mins(const uint8_t *mn, const int16_t *bsums)
{
    __m128i lo = x86_ld128(bsums);
    __m128i hi = x86_ld128((bsums + 8));
    __m128i pairs = _mm_hadd_epi16(lo, hi);
    __m128i m16 = _mm_cvtepu8_epi16(x86_ld64(mn));
    __m128i v = _mm_madd_epi16(pairs, m16);
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(v);
}

/* q4_K (qh NULL) and q5_K: sum_j sc[j] * dot(q of sub-block j, x of sub-block j). */
static EXO_INLINE __m256i x86_k4_sumi(const uint8_t *qs, const uint8_t *qh, const uint8_t *sc,
                                      const int8_t *y)
{
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i hbits = qh ? x86_ld256(qh) : _mm256_setzero_si256();
    __m256i sumi = _mm256_setzero_si256();
    for (int p = 0; p < 4; p++) {
        __m256i q = x86_ld256((qs + 32 * p));
        __m256i q0 = _mm256_and_si256(q, low4);
        __m256i q1 = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
        if (qh) {
            /* Bit 2p of qh[l] is the fifth bit of weight 64p + l, bit 2p + 1 that of 64p+32+l. */
            const __m256i one = _mm256_set1_epi8(1);
            __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(hbits, 2 * p), one);
            __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(hbits, 2 * p + 1), one);
            q0 = _mm256_or_si256(q0, _mm256_slli_epi16(h0, 4));
            q1 = _mm256_or_si256(q1, _mm256_slli_epi16(h1, 4));
        }
        __m256i y0 = x86_ld256((y + 64 * p));
        __m256i y1 = x86_ld256((y + 64 * p + 32));
        __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(q0, y0), _mm256_set1_epi16(sc[2 * p]));
        __m256i p1 =
            _mm256_madd_epi16(_mm256_maddubs_epi16(q1, y1), _mm256_set1_epi16(sc[2 * p + 1]));
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
    }
    return sumi;
}

static EXO_INLINE void x86_k4_vec_dot(bool five, int64_t n, float *s, const void *w, const void *x)
{
    const struct block_q8_K *b = x;
    __m256 acc = _mm256_setzero_ps();
    float accm = 0.0f;
    for (int64_t k = 0; k < n / QK_K; k++) {
        const uint8_t *hdr, *packed, *qs, *qh = NULL;
        if (five) {
            const struct block_q5_K *a = (const struct block_q5_K *)w + k;
            hdr = (const uint8_t *)a, packed = a->scales, qs = a->qs, qh = a->qh;
        } else {
            const struct block_q4_K *a = (const struct block_q4_K *)w + k;
            hdr = (const uint8_t *)a, packed = a->scales, qs = a->qs;
        }
        uint8_t sc[8], mn[8];
        exo_quants_k4_scales(packed, sc, mn);
        __m256i sumi = x86_k4_sumi(qs, qh, sc, b[k].qs);
        float dx = b[k].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(x86_h2f(hdr) * dx), _mm256_cvtepi32_ps(sumi), acc);
        accm += x86_h2f(hdr + 2) * dx * (float)x86_k4_mins(mn, b[k].bsums);
    }
    *s = x86_hsum(acc) - accm;
}

static EXO_INLINE void x86_q6_K_vec_dot(int64_t n, float *s, const void *w, const void *x)
{
    const struct block_q6_K *a = w;
    const struct block_q8_K *b = x;
    const __m256i low4 = _mm256_set1_epi8(0x0f), bits45 = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t k = 0; k < n / QK_K; k++) {
        __m128i sc8 = x86_ld128(a[k].scales);
        /* The -32 offset: 32 * sum_j sc[j] * bsums[j], subtracted from the int32 lanes. */
        __m256i offs = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), x86_ld256(b[k].bsums));
        __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offs, 5));
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = a[k].ql + 64 * h, *qh = a[k].qh + 32 * h;
            __m256i l0 = x86_ld256(ql);
            __m256i l1 = x86_ld256((ql + 32));
            __m256i hb = x86_ld256(qh);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, low4),
                                   _mm256_and_si256(_mm256_slli_epi16(hb, 4), bits45));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, low4),
                                   _mm256_and_si256(_mm256_slli_epi16(hb, 2), bits45));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                                   _mm256_and_si256(hb, bits45));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                   _mm256_and_si256(_mm256_srli_epi16(hb, 2), bits45));
            for (int j = 0; j < 4; j++) {
                /* 32 weights = sub-blocks t and t + 1, whose scales fill the two int16 halves. */
                __m128i pick =
                    _mm_add_epi8(_mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                                 _mm_set1_epi8((char)(8 * h + 2 * j)));
                __m256i scv = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, pick));
                __m256i y = x86_ld256((b[k].qs + 128 * h + 32 * j));
                __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q[j], y), scv);
                sumi = _mm256_add_epi32(sumi, p);
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(a[k].d) * b[k].d), _mm256_cvtepi32_ps(sumi),
                              acc);
    }
    *s = x86_hsum(acc);
}

static EXO_INLINE void x86_k_vec_dot(enum kfmt f, int64_t n, float *s, const void *w, const void *x)
{
    if (f == KFMT_Q6_K)
        x86_q6_K_vec_dot(n, s, w, x);
    else
        x86_k4_vec_dot(f == KFMT_Q5_K, n, s, w, x);
}

/* The scales (bytes 0-7) and mins (bytes 8-15) of exo_quants_k4_scales, unpacked four at a time
 * in 32-bit words. */
static EXO_INLINE __m128i x86_k4_scales(const uint8_t *packed)
{
    uint32_t a[3];
    memcpy(a, packed, 12);
    uint32_t sc_lo = a[0] & 0x3f3f3f3fu, mn_lo = a[1] & 0x3f3f3f3fu;
    uint32_t sc_hi = (a[2] & 0x0f0f0f0fu) | ((a[0] >> 6) & 0x03030303u) << 4;
    uint32_t mn_hi = ((a[2] >> 4) & 0x0f0f0f0fu) | ((a[1] >> 6) & 0x03030303u) << 4;
    return _mm_setr_epi32((int)sc_lo, (int)sc_hi, (int)mn_lo, (int)mn_hi);
}

/* One weight super-block ready for the tile: u[j] the unsigned quants of elements 32j..32j+31,
 * sc[j] their int16 multipliers, ofs the int16 weights of the activation's 16 bsums in the
 * offset term, so that dot = dx * (d * sum(sc * u * y) - dofs * sum(ofs * bsums)). */
struct x86_krow {
    __m256i u[8], sc[8], ofs;
    float d, dofs;
};

static EXO_INLINE void x86_krow(enum kfmt f, const uint8_t *blk, struct x86_krow *k)
{
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    if (f == KFMT_Q6_K) {
        const struct block_q6_K *b = (const void *)blk;
        const __m256i bits45 = _mm256_set1_epi8(0x30);
        for (int h = 0; h < 2; h++) {
            __m256i l0 = x86_ld256(b->ql + 64 * h), l1 = x86_ld256(b->ql + 64 * h + 32);
            __m256i hb = x86_ld256(b->qh + 32 * h);
            k->u[4 * h] = _mm256_or_si256(_mm256_and_si256(l0, low4),
                                          _mm256_and_si256(_mm256_slli_epi16(hb, 4), bits45));
            k->u[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, low4),
                                              _mm256_and_si256(_mm256_slli_epi16(hb, 2), bits45));
            k->u[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                                              _mm256_and_si256(hb, bits45));
            k->u[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                              _mm256_and_si256(_mm256_srli_epi16(hb, 2), bits45));
        }
        /* Chunk j spans sub-blocks 2j and 2j + 1, one per half of its int16 lanes. */
        __m128i sc8 = x86_ld128(b->scales);
        const __m128i pair = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        for (int j = 0; j < 8; j++)
            k->sc[j] = _mm256_cvtepi8_epi16(
                _mm_shuffle_epi8(sc8, _mm_add_epi8(pair, _mm_set1_epi8((char)(2 * j)))));
        k->ofs = _mm256_slli_epi16(_mm256_cvtepi8_epi16(sc8), 5);
        k->d = k->dofs = x86_h2f((const uint8_t *)&b->d);
        return;
    }
    const uint8_t *qs =
        blk + (f == KFMT_Q4_K ? offsetof(struct block_q4_K, qs) : offsetof(struct block_q5_K, qs));
    __m256i hb =
        f == KFMT_Q5_K ? x86_ld256(blk + offsetof(struct block_q5_K, qh)) : _mm256_setzero_si256();
    for (int p = 0; p < 4; p++) {
        __m256i q = x86_ld256(qs + 32 * p);
        k->u[2 * p] = _mm256_and_si256(q, low4);
        k->u[2 * p + 1] = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
        if (f == KFMT_Q5_K) {
            /* Bit 2p of qh[l] is the fifth bit of weight 64p + l, bit 2p + 1 that of
             * 64p + 32 + l. */
            const __m256i one = _mm256_set1_epi8(1);
            __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * p), one);
            __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * p + 1), one);
            k->u[2 * p] = _mm256_or_si256(k->u[2 * p], _mm256_slli_epi16(h0, 4));
            k->u[2 * p + 1] = _mm256_or_si256(k->u[2 * p + 1], _mm256_slli_epi16(h1, 4));
        }
    }
    /* Scale j broadcast to every int16 lane; the mins once per bsum (two bsums a sub-block). */
    __m256i v = _mm256_broadcastsi128_si256(x86_k4_scales(blk + 4));
    for (int j = 0; j < 8; j++)
        k->sc[j] = _mm256_shuffle_epi8(v, _mm256_set1_epi16((short)(0xff00 | j)));
    k->ofs = _mm256_shuffle_epi8(v, _mm256_setr_epi8(8, -1, 8, -1, 9, -1, 9, -1, 10, -1, 10, -1, 11,
                                                     -1, 11, -1, 12, -1, 12, -1, 13, -1, 13, -1, 14,
                                                     -1, 14, -1, 15, -1, 15, -1));
    k->d = x86_h2f(blk);
    k->dofs = x86_h2f(blk + 2);
}

/* A tile of R <= 4 rows by C <= 8 columns of K-quant weights against q8_K activations. */
static EXO_INLINE void x86_ktile(enum kfmt f, int R, int C, int64_t nb, float *s, size_t lds,
                                 const uint8_t *w, size_t ldw, const uint8_t *x, size_t ldx)
{
    __m256 acc[4][8];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            acc[r][c] = _mm256_setzero_ps();
    for (int64_t k = 0; k < nb; k++) {
        struct x86_krow kr[4];
        for (int r = 0; r < R; r++)
            x86_krow(f, w + (size_t)r * ldw + (size_t)k * kfmt_bytes(f), &kr[r]);
        for (int c = 0; c < C; c++) {
            const struct block_q8_K *y =
                (const void *)(x + (size_t)c * ldx + (size_t)k * sizeof(struct block_q8_K));
            __m256i bs = x86_ld256(y->bsums);
            __m256 dx = _mm256_set1_ps(y->d);
            for (int r = 0; r < R; r++) {
                __m256i sumi = _mm256_setzero_si256();
                for (int j = 0; j < 8; j++) {
                    __m256i p = _mm256_maddubs_epi16(kr[r].u[j], x86_ld256(y->qs + 32 * j));
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, kr[r].sc[j]));
                }
                __m256 ofs = _mm256_cvtepi32_ps(_mm256_madd_epi16(kr[r].ofs, bs));
                __m256 t = _mm256_fmsub_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(kr[r].d),
                                           _mm256_mul_ps(ofs, _mm256_set1_ps(kr[r].dofs)));
                acc[r][c] = _mm256_fmadd_ps(t, dx, acc[r][c]);
            }
        }
    }
    for (int c = 0; c < C; c++)
        for (int r = 0; r < R; r++)
            s[(size_t)c * lds + (size_t)r] = x86_hsum(acc[r][c]);
}

/* gemm over x86_ktile: whole R-row tiles with 2 to C columns; a single column (decode) row by
 * row through vec_dot, which streams a matrix from memory faster than a tile reading R rows in
 * lockstep; fewer rows entry by entry. */
static EXO_INLINE void x86_kgemm(enum kfmt f, int R, int C, int64_t n, int nr, int nc, float *s,
                                 size_t lds, const void *vw, size_t ldw, const void *vx, size_t ldx)
{
    const uint8_t *w = vw, *x = vx;
    int64_t nb = n / QK_K;
    if (nc == 1) {
        for (int r = 0; r < nr; r++)
            x86_k_vec_dot(f, n, s + r, w + (size_t)r * ldw, x);
        return;
    }
    if (nr == R && nc <= C) {
        switch (nc) {
        case 1:
            x86_ktile(f, R, 1, nb, s, lds, w, ldw, x, ldx);
            return;
        case 2:
            x86_ktile(f, R, 2, nb, s, lds, w, ldw, x, ldx);
            return;
        case 3:
            x86_ktile(f, R, 3, nb, s, lds, w, ldw, x, ldx);
            return;
        case 4:
            x86_ktile(f, R, 4, nb, s, lds, w, ldw, x, ldx);
            return;
        case 5:
            x86_ktile(f, R, 5, nb, s, lds, w, ldw, x, ldx);
            return;
        case 6:
            x86_ktile(f, R, 6, nb, s, lds, w, ldw, x, ldx);
            return;
        case 7:
            x86_ktile(f, R, 7, nb, s, lds, w, ldw, x, ldx);
            return;
        default:
            x86_ktile(f, R, 8, nb, s, lds, w, ldw, x, ldx);
            return;
        }
    }
    for (int r = 0; r < nr; r++)
        for (int c = 0; c < nc; c++)
            x86_k_vec_dot(f, n, s + (size_t)c * lds + (size_t)r, w + (size_t)r * ldw,
                          x + (size_t)c * ldx);
}

#endif /* __AVX2__ && __FMA__ && __F16C__ */

#endif
