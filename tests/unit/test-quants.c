/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CPU quantized kernels: block layouts against known answers from ggml's reference
 * dequantization, quantizer round trips, the fp16/bf16 helpers, and every SIMD variant this CPU
 * can run (exo_cpu_kernels_isa) against the scalar reference.
 *
 * Tolerances. The scalar reference vec_dot sums exact per-block integer dots in double, so it
 * differs from a plain double dot of the dequantized operands only by the rounding of the
 * dequantized values to float and of the result (a few 2^-24 relative to the magnitude M below;
 * we allow 1e-6 M) plus, for q4_1, the fp16 rounding of each activation block's stored sum s,
 * which the test computes exactly and adds. SIMD kernels accumulate in float along chains of
 * about one term per block (per 8 elements for the float types), so they may differ from the
 * reference by (chain + 16) * 2^-22 * M. M is the sum over elements of |x| times the magnitudes
 * of the weight's parts before they cancel: |d * q| plus |offset| for the formats with an
 * offset (q4_1's m, the K-quants' dmin * min), |w| otherwise. Activation quantizers must match
 * the reference byte for byte, and to_float must match it exactly.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "backend/cpu/quants-int.h"
#include "backend/cpu/quants.h"
#include "core/alloc.h"
#include "core/cpu.h"
#include "core/rng.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static const enum exo_dtype weight_types[] = {
    EXO_DTYPE_F32,  EXO_DTYPE_F16,  EXO_DTYPE_BF16, EXO_DTYPE_Q8_0, EXO_DTYPE_Q4_0,
    EXO_DTYPE_Q4_1, EXO_DTYPE_Q4_K, EXO_DTYPE_Q5_K, EXO_DTYPE_Q6_K,
};
#define N_WEIGHT_TYPES (sizeof(weight_types) / sizeof(weight_types[0]))

static const enum exo_dtype all_types[] = {
    EXO_DTYPE_F32,  EXO_DTYPE_F16,  EXO_DTYPE_BF16, EXO_DTYPE_Q8_0, EXO_DTYPE_Q4_0, EXO_DTYPE_Q4_1,
    EXO_DTYPE_Q4_K, EXO_DTYPE_Q5_K, EXO_DTYPE_Q6_K, EXO_DTYPE_Q8_1, EXO_DTYPE_Q8_K,
};
#define N_ALL_TYPES (sizeof(all_types) / sizeof(all_types[0]))

static const char *isa_names[EXO_CPU_ISA_COUNT] = {"scalar", "avx2", "avx512", "neon"};

static size_t row_bytes(enum exo_dtype t, int64_t n)
{
    return exo_dtype_row_bytes(t, (uint64_t)n);
}

static int64_t block_elems(enum exo_dtype t)
{
    return exo_dtype_info(t)->block_elems;
}

/* The alignment a block (or element) of the type needs; rows are placed at odd multiples of it
 * to catch kernels that assume more. */
static size_t type_align(enum exo_dtype t)
{
    return t == EXO_DTYPE_F32 || t == EXO_DTYPE_Q8_K ? 4 : 2;
}

static void fill_normal(struct exo_rng *rng, float *x, int64_t n, double scale)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(exo_rng_normal(rng) * scale);
}

static void *xmalloc(size_t n)
{
    void *p = exo_malloc(n);
    assert_non_null(p);
    return p;
}

static uint16_t random_finite_half(struct exo_rng *rng)
{
    uint16_t h = (uint16_t)exo_rng_next(rng);
    if ((h & 0x7c00u) == 0x7c00u)
        h &= 0xbfffu;
    return h;
}

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

static uint16_t get16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* ---- known answers ------------------------------------------------------------------------ */

/* One block whose bytes are (37 i + 11) mod 256 with its fp16 fields overwritten; the expected
 * values were computed by the gguf Python package's reference dequantization (gguf-py 0.19). */
struct kat {
    enum exo_dtype type;
    size_t hdr_at[2];
    uint16_t hdr[2];
    int n_hdr;
    int idx[16];
    double want[16];
    int n;
};

static const struct kat kats[] = {
    {EXO_DTYPE_Q4_0,
     {0},
     {0xb9ae},
     1,
     {0, 5, 15, 16, 17, 31},
     {0x1.10ap+1, -0x1.10ap+2, 0x1.6b8p+2, 0x1.10ap+1, 0x1.6b8p-1, -0.0},
     6},
    {EXO_DTYPE_Q4_1,
     {0, 2},
     {0x35ec, 0xbd00},
     2,
     {0, 5, 15, 16, 17, 31},
     {0x1.135p+2, 0x1.b6p+0, 0x1.39cp+1, 0x1.0a6p+1, 0x1.988p+1, 0x1.988p+1},
     6},
    {EXO_DTYPE_Q8_0,
     {0},
     {0xb9ae},
     1,
     {0, 5, 15, 16, 17, 31},
     {-0x1.e2c6p+5, -0x1.3e1p+3, 0x1.6b8p+6, 0x1.026dp+6, 0x1.32b4p+5, 0x1.10ap+5},
     6},
    {EXO_DTYPE_Q4_K,
     {0, 2},
     {0x2c00, 0x2773},
     2,
     {0, 17, 31, 32, 47, 63, 64, 100, 127, 128, 150, 191, 192, 200, 240, 255},
     {0x1.3d417p+4, -0x1.7be9p+0, 0x1.4482ep+3, 0x1.1a7p-1, 0x1.4d38p+0, 0x1.469cp+1, 0x1.a6999p+4,
      0x1.80ae8p+2, 0x1.48ae8p+2, 0x1.a769cp+4, 0x1.5969cp+4, 0x1.7043p+1, 0x1.098ae8p+5,
      0x1.162bap+3, 0x1.fb47p+0, 0x1.8da38p+1},
     16},
    {EXO_DTYPE_Q5_K,
     {0, 2},
     {0x2c00, 0x2773},
     2,
     {0, 17, 31, 32, 47, 63, 64, 100, 127, 128, 150, 191, 192, 200, 240, 255},
     {0x1.96a0b8p+5, -0x1.7be9p+0, 0x1.4482ep+3, 0x1.c34ep+2, 0x1.e69cp+1, 0x1.434ep+2,
      0x1.a6999p+4, 0x1.d8574p+3, -0x1.d46p-4, 0x1.05da7p+6, 0x1.5969cp+4, 0x1.43043p+5,
      0x1.48c574p+6, 0x1.162bap+3, 0x1.6ed1cp+2, 0x1.b6d1cp+2},
     16},
    {EXO_DTYPE_Q6_K,
     {208},
     {0x224c},
     1,
     {0, 17, 31, 32, 47, 63, 64, 100, 127, 128, 150, 191, 192, 200, 240, 255},
     {-0x1.1996ap+4, 0x1.93p+2, -0x1.2e4p+0, 0x1.6ba5p+1, -0x1.4a96p+1, -0x1.c886p+2, -0x1.2b1ap+5,
      0x1.f0782p+4, 0x1.272a8p+4, -0x1.14468p+2, -0x1.0878p+1, -0x1.81afp+3, -0x1.7cf6p+2,
      0x1.ac94cp+3, 0x1.994cp+0, -0x1.79dp-1},
     16},
};

static void test_quants_layout_known_answers(void **state)
{
    for (size_t t = 0; t < sizeof(kats) / sizeof(kats[0]); t++) {
        const struct kat *k = &kats[t];
        const struct exo_dtype_info *info = exo_dtype_info(k->type);
        uint8_t block[256];
        for (uint32_t i = 0; i < info->block_bytes; i++)
            block[i] = (uint8_t)((37 * i + 11) & 0xff);
        for (int h = 0; h < k->n_hdr; h++)
            put16(block + k->hdr_at[h], k->hdr[h]);
        for (int isa = 0; isa < EXO_CPU_ISA_COUNT; isa++) {
            const struct exo_cpu_kernels *kern = exo_cpu_kernels_isa(k->type, isa);
            if (!kern)
                continue;
            float out[256];
            kern->to_float(block, out, info->block_elems);
            for (int i = 0; i < k->n; i++) {
                double want = k->want[i], got = out[k->idx[i]];
                if (!(fabs(got - want) <= 1e-6 * fabs(want) + 1e-12))
                    fail_msg("%s/%s element %d: got %a want %a", info->name, isa_names[isa],
                             k->idx[i], got, want);
            }
        }
    }
}

/* ---- fp16 / bf16 helpers --------------------------------------------------------------------- */

static void test_quants_fp16_roundtrip_exhaustive(void **state)
{
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = exo_fp16_to_fp32((uint16_t)h);
        bool nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu);
        if (nan) {
            assert_true(isnan(f));
            uint16_t back = exo_fp32_to_fp16(f);
            assert_true((back & 0x7c00u) == 0x7c00u && (back & 0x3ffu));
        } else {
            assert_int_equal(exo_fp32_to_fp16(f), h);
        }
    }
}

/* Halfway between two neighbouring halves rounds to the even one; a hair off goes to the near
 * one. Covers subnormals, normals and the top of the range. */
static void test_quants_fp16_rounding(void **state)
{
    for (uint32_t h = 0; h < 0x7bff; h++) {
        double lo = exo_fp16_to_fp32((uint16_t)h), hi = exo_fp16_to_fp32((uint16_t)(h + 1));
        float mid = (float)((lo + hi) / 2);
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        assert_int_equal(exo_fp32_to_fp16(mid), even);
        assert_int_equal(exo_fp32_to_fp16(-mid), even | 0x8000);
        assert_int_equal(exo_fp32_to_fp16(nextafterf(mid, 0.0f)), h);
        assert_int_equal(exo_fp32_to_fp16(nextafterf(mid, INFINITY)), h + 1);
    }
    assert_int_equal(exo_fp32_to_fp16(65504.0f), 0x7bff);
    assert_int_equal(exo_fp32_to_fp16(65519.0f), 0x7bff);
    assert_int_equal(exo_fp32_to_fp16(65520.0f), 0x7c00);
    assert_int_equal(exo_fp32_to_fp16(-1e10f), 0xfc00);
    assert_int_equal(exo_fp32_to_fp16(INFINITY), 0x7c00);
    assert_int_equal(exo_fp32_to_fp16(0x1p-25f), 0);
    assert_int_equal(exo_fp32_to_fp16(0x1.01p-25f), 1);
    assert_int_equal(exo_fp32_to_fp16(0x1p-24f), 1);
    assert_int_equal(exo_fp32_to_fp16(-0.0f), 0x8000);
}

#if defined(__x86_64__)
__attribute__((target("f16c"))) static uint16_t hw_fp16(float f)
{
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
#endif

/* The SIMD quantizers round with the F16C instruction; the scalar ones with exo_fp32_to_fp16.
 * They must agree on every non-NaN float (sampled: all exponents, random mantissas). */
static void test_quants_fp16_matches_f16c(void **state)
{
#if defined(__x86_64__)
    if (!exo_cpu_features()->f16c) {
        print_message("no F16C: skipped\n");
        return;
    }
    struct exo_rng rng;
    exo_rng_seed(&rng, 16);
    for (int i = 0; i < 1 << 22; i++) {
        float f = exo_fp32_from_bits((uint32_t)exo_rng_next(&rng));
        if (isnan(f))
            continue;
        uint16_t want = hw_fp16(f), got = exo_fp32_to_fp16(f);
        if (want != got)
            fail_msg("%a: f16c %#x, exo %#x", (double)f, want, got);
    }
#endif
}

static void test_quants_bf16(void **state)
{
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = exo_bf16_to_fp32((uint16_t)h);
        if (isnan(f))
            assert_true(isnan(exo_bf16_to_fp32(exo_fp32_to_bf16(f))));
        else
            assert_int_equal(exo_fp32_to_bf16(f), h);
    }
    assert_int_equal(exo_fp32_to_bf16(exo_fp32_from_bits(0x3f808000u)), 0x3f80); /* tie: even */
    assert_int_equal(exo_fp32_to_bf16(exo_fp32_from_bits(0x3f818000u)), 0x3f82); /* tie: even */
    assert_int_equal(exo_fp32_to_bf16(exo_fp32_from_bits(0x3f808001u)), 0x3f81);
    assert_int_equal(exo_fp32_to_bf16(exo_fp32_from_bits(0x7f7fffffu)), 0x7f80); /* to inf */
    assert_true(isnan(exo_bf16_to_fp32(exo_fp32_to_bf16(NAN))));
}

/* ---- lookup ---------------------------------------------------------------------------------- */

static void test_quants_lookup(void **state)
{
    static const struct {
        enum exo_dtype type, vec_dot_type;
    } pairs[] = {
        {EXO_DTYPE_F32, EXO_DTYPE_F32},   {EXO_DTYPE_F16, EXO_DTYPE_F32},
        {EXO_DTYPE_BF16, EXO_DTYPE_F32},  {EXO_DTYPE_Q8_0, EXO_DTYPE_Q8_0},
        {EXO_DTYPE_Q4_0, EXO_DTYPE_Q8_0}, {EXO_DTYPE_Q4_1, EXO_DTYPE_Q8_1},
        {EXO_DTYPE_Q4_K, EXO_DTYPE_Q8_K}, {EXO_DTYPE_Q5_K, EXO_DTYPE_Q8_K},
        {EXO_DTYPE_Q6_K, EXO_DTYPE_Q8_K},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        const struct exo_cpu_kernels *k = exo_cpu_kernels(pairs[i].type);
        const struct exo_cpu_kernels *r = exo_cpu_kernels_ref(pairs[i].type);
        assert_non_null(k);
        assert_non_null(r);
        assert_int_equal(k->type, pairs[i].type);
        assert_int_equal(k->vec_dot_type, pairs[i].vec_dot_type);
        assert_int_equal(r->vec_dot_type, pairs[i].vec_dot_type);
        assert_non_null(k->vec_dot);
        assert_non_null(k->to_float);
        assert_non_null(k->from_float);
        assert_string_equal(r->isa, "scalar");
        assert_ptr_equal(r, exo_cpu_kernels_isa(pairs[i].type, EXO_CPU_ISA_SCALAR));
        assert_true(!k->gemm || (k->tile_rows > 0 && k->tile_cols > 0));
        /* The activation format is itself in the table, with a quantizer. */
        const struct exo_cpu_kernels *a = exo_cpu_kernels(pairs[i].vec_dot_type);
        assert_non_null(a);
        assert_non_null(a->from_float);
    }
    assert_null(exo_cpu_kernels(EXO_DTYPE_Q8_1)->vec_dot);
    assert_null(exo_cpu_kernels(EXO_DTYPE_Q8_K)->vec_dot);
    assert_null(exo_cpu_kernels(EXO_DTYPE_Q5_0));
    assert_null(exo_cpu_kernels(EXO_DTYPE_IQ4_NL));
    assert_null(exo_cpu_kernels((enum exo_dtype)4));
    assert_null(exo_cpu_kernels((enum exo_dtype)1000));
    assert_null(exo_cpu_kernels_ref(EXO_DTYPE_Q2_K));
    assert_null(exo_cpu_kernels_isa(EXO_DTYPE_Q4_1, EXO_CPU_ISA_COUNT));
#if defined(__x86_64__)
    assert_null(exo_cpu_kernels_isa(EXO_DTYPE_Q4_1, EXO_CPU_ISA_NEON));
#endif
    int best = EXO_CPU_ISA_SCALAR;
    for (int isa = 0; isa < EXO_CPU_ISA_COUNT; isa++)
        if (exo_cpu_kernels_isa(EXO_DTYPE_Q8_0, isa))
            best = isa;
    assert_ptr_equal(exo_cpu_kernels(EXO_DTYPE_Q8_0), exo_cpu_kernels_isa(EXO_DTYPE_Q8_0, best));
    print_message("dispatch: best level %s; q4_1 %s, q4_K %s\n", isa_names[best],
                  exo_cpu_kernels(EXO_DTYPE_Q4_1)->isa, exo_cpu_kernels(EXO_DTYPE_Q4_K)->isa);
}

/* ---- round trips ---------------------------------------------------------------------------- */

/* RMS error over RMS of N(0, 1) data; measured values are well under these (see the printout). */
static double roundtrip_bound(enum exo_dtype t)
{
    switch (t) {
    case EXO_DTYPE_F32:
        return 0.0;
    case EXO_DTYPE_F16:
        return 0x1p-11;
    case EXO_DTYPE_BF16:
        return 0x1p-8;
    case EXO_DTYPE_Q8_0:
    case EXO_DTYPE_Q8_1:
    case EXO_DTYPE_Q8_K:
        return 0.01;
    case EXO_DTYPE_Q6_K:
        return 0.03;
    case EXO_DTYPE_Q5_K:
        return 0.05;
    case EXO_DTYPE_Q4_K:
        return 0.1;
    default:
        return 0.12; /* q4_0, q4_1 */
    }
}

static void test_quants_roundtrip(void **state)
{
    enum { N = 4096 };
    struct exo_rng rng;
    exo_rng_seed(&rng, 1);
    float *x = xmalloc(N * sizeof(float)), *y = xmalloc(N * sizeof(float));
    void *q = xmalloc(row_bytes(EXO_DTYPE_F32, N));
    static const double scales[] = {1.0, 1e-3, 1e3};
    for (size_t t = 0; t < N_ALL_TYPES; t++) {
        enum exo_dtype type = all_types[t];
        for (int isa = 0; isa < EXO_CPU_ISA_COUNT; isa++) {
            const struct exo_cpu_kernels *k = exo_cpu_kernels_isa(type, isa);
            if (!k)
                continue;
            for (size_t s = 0; s < 3; s++) {
                fill_normal(&rng, x, N, scales[s]);
                k->from_float(x, q, N);
                k->to_float(q, y, N);
                double err = 0, ref = 0;
                for (int i = 0; i < N; i++) {
                    err += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
                    ref += (double)x[i] * x[i];
                }
                double rel = sqrt(err / ref);
                if (s == 0 && isa == EXO_CPU_ISA_SCALAR)
                    print_message("round trip %-5s rms error %.5f (bound %.5f)\n",
                                  exo_dtype_name(type), rel, roundtrip_bound(type));
                if (!(rel <= roundtrip_bound(type)))
                    fail_msg("%s/%s scale %g: rms error %g > %g", exo_dtype_name(type),
                             isa_names[isa], scales[s], rel, roundtrip_bound(type));
            }
        }
    }
    exo_free(x);
    exo_free(y);
    exo_free(q);
}

/* The 8-bit formats: every element within half a step, s and bsums consistent with the quants. */
static void test_quants_activation_fields(void **state)
{
    enum { N = 1024 };
    struct exo_rng rng;
    exo_rng_seed(&rng, 2);
    float x[N];
    fill_normal(&rng, x, N, 3.0);
    struct block_q8_1 q1[N / 32];
    struct block_q8_K qk[N / 256];
    for (int isa = 0; isa < EXO_CPU_ISA_COUNT; isa++) {
        const struct exo_cpu_kernels *k1 = exo_cpu_kernels_isa(EXO_DTYPE_Q8_1, isa);
        const struct exo_cpu_kernels *kk = exo_cpu_kernels_isa(EXO_DTYPE_Q8_K, isa);
        if (!k1)
            continue;
        k1->from_float(x, q1, N);
        for (int b = 0; b < N / 32; b++) {
            int sum = 0;
            double amax = 0;
            for (int i = 0; i < 32; i++) {
                sum += q1[b].qs[i];
                assert_true(q1[b].qs[i] >= -127);
                amax = fmax(amax, fabs(x[32 * b + i]));
            }
            double exact = (float)amax / 127.0f;
            double d = exo_fp16_to_fp32(q1[b].d), s = exo_fp16_to_fp32(q1[b].s);
            assert_true(fabs(d - exact) <= 0x1p-11 * exact);
            assert_true(fabs(s - exact * sum) <= 0x1p-11 * fabs(exact * sum) + 1e-6);
            for (int i = 0; i < 32; i++)
                assert_true(fabs(exact * q1[b].qs[i] - x[32 * b + i]) <= 0.5 * exact * 1.00001);
        }
        kk->from_float(x, qk, N);
        for (int b = 0; b < N / 256; b++)
            for (int j = 0; j < 16; j++) {
                int sum = 0;
                for (int i = 0; i < 16; i++)
                    sum += qk[b].qs[16 * j + i];
                assert_int_equal(qk[b].bsums[j], sum);
            }
    }
}

/* Inputs the activation quantizers must handle exactly like the reference: ties (with
 * amax = 127, d = 1 and x.5 values sit exactly between two quants), zeros, values that make d
 * an fp16 subnormal or overflow it, and Gaussian data. */
static void test_quants_activation_bytes_match_ref(void **state)
{
    enum { N = 512 };
    struct exo_rng rng;
    exo_rng_seed(&rng, 3);
    float x[6][N];
    for (int i = 0; i < N; i++) {
        x[0][i] = i % 32 == 0 ? 127.0f : (float)((i % 64) - 32) + 0.5f;
        x[1][i] = 0.0f;
        x[2][i] = (float)(exo_rng_normal(&rng) * 1e-6);
        x[3][i] = (float)(exo_rng_normal(&rng) * 1e7);
        x[4][i] = (float)exo_rng_normal(&rng);
        x[5][i] = i % 3 ? -1000.0f : 1000.0f;
    }
    static const enum exo_dtype types[] = {EXO_DTYPE_Q8_0, EXO_DTYPE_Q8_1, EXO_DTYPE_Q8_K};
    for (size_t t = 0; t < 3; t++) {
        size_t bytes = row_bytes(types[t], N);
        uint8_t *want = xmalloc(bytes), *got = xmalloc(bytes);
        for (int isa = 1; isa < EXO_CPU_ISA_COUNT; isa++) {
            const struct exo_cpu_kernels *k = exo_cpu_kernels_isa(types[t], isa);
            if (!k)
                continue;
            for (int c = 0; c < 6; c++) {
                exo_cpu_kernels_ref(types[t])->from_float(x[c], want, N);
                k->from_float(x[c], got, N);
                if (memcmp(want, got, bytes) != 0)
                    fail_msg("%s/%s case %d differs from the reference", exo_dtype_name(types[t]),
                             isa_names[isa], c);
            }
        }
        exo_free(want);
        exo_free(got);
    }
}

/* Every type's to_float at every level equals the reference's exactly, on quantized Gaussian
 * data and on random bytes (with finite fp16 fields). */
static void test_quants_to_float_matches_ref(void **state)
{
    enum { N = 1024 };
    struct exo_rng rng;
    exo_rng_seed(&rng, 4);
    float x[N], want[N], got[N];
    uint8_t q[N * 4];
    fill_normal(&rng, x, N, 1.0);
    for (size_t t = 0; t < N_ALL_TYPES; t++) {
        const struct exo_cpu_kernels *ref = exo_cpu_kernels_ref(all_types[t]);
        ref->from_float(x, q, N);
        ref->to_float(q, want, N);
        for (int isa = 1; isa < EXO_CPU_ISA_COUNT; isa++) {
            const struct exo_cpu_kernels *k = exo_cpu_kernels_isa(all_types[t], isa);
            if (!k)
                continue;
            k->to_float(q, got, N);
            assert_memory_equal(want, got, sizeof(want));
        }
    }
}

/* ---- vec_dot and gemm ------------------------------------------------------------------------ */

/* Where a block keeps its fp16 fields, so that random bytes can be given finite scales. */
static int half_fields(enum exo_dtype t, size_t *at)
{
    switch (t) {
    case EXO_DTYPE_Q4_0:
    case EXO_DTYPE_Q8_0:
        at[0] = 0;
        return 1;
    case EXO_DTYPE_Q4_1:
    case EXO_DTYPE_Q4_K:
    case EXO_DTYPE_Q5_K:
        at[0] = 0, at[1] = 2;
        return 2;
    case EXO_DTYPE_Q6_K:
        at[0] = offsetof(struct block_q6_K, d);
        return 1;
    default:
        return 0;
    }
}

/* How weights are made for a vec_dot case. */
enum wkind {
    W_GAUSS,     /* quantized N(0, 1) */
    W_ZERO,      /* all-zero blocks */
    W_RANDOM,    /* random bytes, random finite fp16 fields */
    W_EXTREME,   /* every quant at its largest magnitude, fp16 fields random finite */
    W_NEGATIVE,  /* quantized N(0, 1) with every fp16 scale negated */
    W_SUBNORMAL, /* random bytes with fp16 subnormal scales */
    W_KINDS,
};

static const char *wkind_names[W_KINDS] = {"gauss",   "zero",     "random",
                                           "extreme", "negative", "subnormal"};

static void make_weights(struct exo_rng *rng, enum exo_dtype t, enum wkind kind, uint8_t *w,
                         int64_t n)
{
    const struct exo_cpu_kernels *ref = exo_cpu_kernels_ref(t);
    size_t bytes = row_bytes(t, n), bb = exo_dtype_info(t)->block_bytes;
    int64_t nb = n / block_elems(t);
    size_t at[2];
    int nh = half_fields(t, at);
    if (kind == W_GAUSS || kind == W_ZERO || kind == W_NEGATIVE) {
        float *x = xmalloc((size_t)n * sizeof(float));
        if (kind == W_ZERO)
            memset(x, 0, (size_t)n * sizeof(float));
        else
            fill_normal(rng, x, n, 1.0);
        ref->from_float(x, w, n);
        exo_free(x);
        if (kind == W_NEGATIVE) {
            for (int64_t b = 0; b < nb; b++)
                for (int h = 0; h < nh; h++)
                    put16(w + b * bb + at[h], get16(w + b * bb + at[h]) ^ 0x8000u);
            if (t == EXO_DTYPE_F16 || t == EXO_DTYPE_BF16)
                for (int64_t i = 0; i < n; i++)
                    put16(w + 2 * i, get16(w + 2 * i) | 0x8000u);
        }
        return;
    }
    for (size_t i = 0; i < bytes; i++)
        w[i] = (uint8_t)exo_rng_next(rng);
    if (kind == W_EXTREME) {
        /* Nibbles 15, q8_0 quants alternating -128 / 127, 6-bit scales and mins 63, q6_K
         * quants 63 with scales -128. */
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *blk = w + b * bb;
            switch (t) {
            case EXO_DTYPE_Q8_0:
                for (int i = 0; i < 32; i++)
                    blk[2 + i] = i & 1 ? 0x7f : 0x80;
                break;
            case EXO_DTYPE_Q6_K:
                memset(blk, 0xff, offsetof(struct block_q6_K, scales));
                memset(blk + offsetof(struct block_q6_K, scales), 0x80, 16);
                break;
            default:
                memset(blk, 0xff, bb);
                break;
            }
        }
    }
    if (t == EXO_DTYPE_F32) {
        for (int64_t i = 0; i < n; i++) {
            float f = (float)exo_rng_normal(rng) * (kind == W_EXTREME ? 1e30f : 1.0f);
            memcpy(w + 4 * i, &f, 4);
        }
    } else if (t == EXO_DTYPE_F16) {
        for (int64_t i = 0; i < n; i++)
            put16(w + 2 * i,
                  kind == W_SUBNORMAL ? get16(w + 2 * i) & 0x83ffu : random_finite_half(rng));
    } else if (t == EXO_DTYPE_BF16) {
        /* Exponents 2^-31 to 2^32, so that sums of products stay far from overflow. */
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = get16(w + 2 * i);
            uint16_t e = (uint16_t)(96 + exo_rng_below(rng, 64)) << 7;
            put16(w + 2 * i, kind == W_SUBNORMAL ? h & 0x807fu : (uint16_t)((h & 0x807fu) | e));
        }
    }
    for (int64_t b = 0; b < nb; b++)
        for (int h = 0; h < nh; h++)
            put16(w + b * bb + at[h], kind == W_SUBNORMAL ? (uint16_t)exo_rng_next(rng) & 0x83ffu
                                                          : random_finite_half(rng));
}

/* How activations are made: from_float of N(0, sigma) data, or of +-1000 (every quant +-127). */
static void make_activations(struct exo_rng *rng, enum exo_dtype vt, int mode, uint8_t *x,
                             int64_t n)
{
    float *f = xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        f[i] = mode == 1 ? ((i * 7) % 3 ? 1000.0f : -1000.0f) : (float)exo_rng_normal(rng);
    exo_cpu_kernels_ref(vt)->from_float(f, x, n);
    exo_free(f);
}

/* The magnitude M of the tolerance (see the top of the file), from dequantized activations. */
static double magnitude(enum exo_dtype t, const uint8_t *w, const float *xf, int64_t n)
{
    float *wf = xmalloc((size_t)n * sizeof(float));
    exo_cpu_kernels_ref(t)->to_float(w, wf, n);
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double off = 0;
        int64_t b = i / block_elems(t);
        if (t == EXO_DTYPE_Q4_1) {
            off = fabs(exo_fp16_to_fp32(get16(w + b * 20 + 2)));
        } else if (t == EXO_DTYPE_Q4_K || t == EXO_DTYPE_Q5_K) {
            const uint8_t *blk = w + b * exo_dtype_info(t)->block_bytes;
            uint8_t sc[8], mn[8];
            exo_quants_k4_scales(blk + 4, sc, mn);
            off = fabs(exo_fp16_to_fp32(get16(blk + 2))) * mn[(i % 256) / 32];
        }
        m += fabs(xf[i]) * (fabs((double)wf[i]) + 2 * off);
    }
    exo_free(wf);
    return m;
}

static double simd_tolerance(enum exo_dtype t, int64_t n, double m)
{
    double chain = block_elems(t) > 1 ? (double)(n / block_elems(t)) : (double)n / 8;
    return (chain + 16) * 0x1p-22 * m + 1e-30;
}

/* One vec_dot case for every level: a row and an activation vector placed at awkward offsets in
 * their buffers; every level must agree with the reference. */
static void check_vec_dot(struct exo_rng *rng, enum exo_dtype t, enum wkind kind, int xmode,
                          int64_t n, int shift)
{
    const struct exo_cpu_kernels *ref = exo_cpu_kernels_ref(t);
    enum exo_dtype vt = ref->vec_dot_type;
    size_t woff = type_align(t) * (size_t)(1 + 2 * shift),
           xoff = type_align(vt) * (size_t)(1 + shift);
    uint8_t *wbuf = xmalloc(row_bytes(t, n) + 64), *xbuf = xmalloc(row_bytes(vt, n) + 64);
    uint8_t *w = wbuf + woff, *x = xbuf + xoff;
    float *xf = xmalloc((size_t)(n + 1) * sizeof(float));
    make_weights(rng, t, kind, w, n);
    make_activations(rng, vt, xmode, x, n);
    exo_cpu_kernels_ref(vt)->to_float(x, xf, n);
    double m = magnitude(t, w, xf, n), tol = simd_tolerance(t, n, m);
    float want = -1.0f;
    ref->vec_dot(n, &want, w, x);
    for (int isa = 1; isa < EXO_CPU_ISA_COUNT; isa++) {
        const struct exo_cpu_kernels *k = exo_cpu_kernels_isa(t, isa);
        if (!k)
            continue;
        float got = NAN;
        k->vec_dot(n, &got, w, x);
        if (!(fabs((double)got - want) <= tol))
            fail_msg("%s/%s vec_dot n=%lld %s x%d: got %.9g want %.9g (tol %.3g)",
                     exo_dtype_name(t), isa_names[isa], (long long)n, wkind_names[kind], xmode,
                     (double)got, (double)want, tol);
    }
    exo_free(wbuf);
    exo_free(xbuf);
    exo_free(xf);
}

static const int64_t block32_lengths[] = {0, 32, 64, 96, 128, 160, 224, 288, 576, 1536, 4096};
static const int64_t k_lengths[] = {256, 512, 768, 1536, 4096};
static const int64_t float_lengths[] = {1, 7, 8, 31, 33, 64, 576, 1001};

static void lengths_for(enum exo_dtype t, const int64_t **ret, size_t *ret_n)
{
    if (block_elems(t) == 256) {
        *ret = k_lengths;
        *ret_n = sizeof(k_lengths) / sizeof(k_lengths[0]);
    } else if (block_elems(t) == 32) {
        *ret = block32_lengths;
        *ret_n = sizeof(block32_lengths) / sizeof(block32_lengths[0]);
    } else {
        *ret = float_lengths;
        *ret_n = sizeof(float_lengths) / sizeof(float_lengths[0]);
    }
}

static void test_quants_vec_dot_matches_ref(void **state)
{
    struct exo_rng rng;
    exo_rng_seed(&rng, 5);
    for (size_t t = 0; t < N_WEIGHT_TYPES; t++) {
        const int64_t *lens;
        size_t nlens;
        lengths_for(weight_types[t], &lens, &nlens);
        for (size_t l = 0; l < nlens; l++)
            for (int kind = 0; kind < W_KINDS; kind++)
                for (int xmode = 0; xmode < 2; xmode++)
                    check_vec_dot(&rng, weight_types[t], kind, xmode, lens[l], (int)(l % 5));
    }
}

/* gemm at every tile shape it accepts, with padded strides and unaligned bases, against the
 * reference vec_dot; entries outside the tile must stay untouched. */
static void check_gemm(struct exo_rng *rng, const struct exo_cpu_kernels *k, enum wkind kind,
                       int64_t n, int nr, int nc)
{
    enum exo_dtype t = k->type, vt = k->vec_dot_type;
    const struct exo_cpu_kernels *ref = exo_cpu_kernels_ref(t);
    size_t ldw = row_bytes(t, n) + 3 * type_align(t), ldx = row_bytes(vt, n) + 5 * type_align(vt);
    size_t lds = (size_t)nr + 3;
    uint8_t *wbuf = xmalloc(ldw * (size_t)nr + 64), *xbuf = xmalloc(ldx * (size_t)nc + 64);
    uint8_t *w = wbuf + type_align(t), *x = xbuf + 3 * type_align(vt);
    float *xf = xmalloc((size_t)n * sizeof(float) + 4);
    float s[16 * 20];
    for (int r = 0; r < nr; r++)
        make_weights(rng, t, kind, w + r * ldw, n);
    for (int c = 0; c < nc; c++)
        make_activations(rng, vt, c % 2, x + c * ldx, n);
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
        s[i] = 12345.0f;
    k->gemm(n, nr, nc, s, lds, w, ldw, x, ldx);
    for (int c = 0; c < 16; c++)
        for (size_t r = 0; r < lds; r++) {
            float got = s[c * lds + r];
            if (c >= nc || (int)r >= nr) {
                if (c * lds + r < sizeof(s) / sizeof(s[0]) && got != 12345.0f)
                    fail_msg("%s/%s gemm wrote outside its %dx%d tile", exo_dtype_name(t), k->isa,
                             nr, nc);
                continue;
            }
            float want;
            ref->vec_dot(n, &want, w + r * ldw, x + c * ldx);
            exo_cpu_kernels_ref(vt)->to_float(x + c * ldx, xf, n);
            double tol = simd_tolerance(t, n, magnitude(t, w + r * ldw, xf, n));
            if (!(fabs((double)got - want) <= tol))
                fail_msg("%s/%s gemm %dx%d n=%lld %s (%zu,%d): got %.9g want %.9g (tol %.3g)",
                         exo_dtype_name(t), k->isa, nr, nc, (long long)n, wkind_names[kind], r, c,
                         (double)got, (double)want, tol);
        }
    exo_free(wbuf);
    exo_free(xbuf);
    exo_free(xf);
}

static void test_quants_gemm_matches_ref(void **state)
{
    struct exo_rng rng;
    exo_rng_seed(&rng, 6);
    int tested = 0;
    for (size_t t = 0; t < N_WEIGHT_TYPES; t++)
        for (int isa = 0; isa < EXO_CPU_ISA_COUNT; isa++) {
            const struct exo_cpu_kernels *k = exo_cpu_kernels_isa(weight_types[t], isa);
            const struct exo_cpu_kernels *below =
                isa > 0 ? exo_cpu_kernels_isa(weight_types[t], isa - 1) : NULL;
            if (!k || !k->gemm || (below && below->gemm == k->gemm))
                continue;
            assert_true(k->tile_rows <= 16 && k->tile_cols <= 16);
            int64_t n = block_elems(weight_types[t]) == 256 ? 768 : 160;
            for (int nr = 1; nr <= k->tile_rows; nr++)
                for (int nc = 1; nc <= k->tile_cols; nc++) {
                    check_gemm(&rng, k, W_GAUSS, n, nr, nc);
                    check_gemm(&rng, k, (nr + nc) % 2 ? W_RANDOM : W_EXTREME,
                               n + 3 * block_elems(weight_types[t]), nr, nc);
                }
            check_gemm(&rng, k, W_GAUSS, 576, k->tile_rows, k->tile_cols);
            tested++;
        }
    print_message("gemm: %d type/level variants tested\n", tested);
}

/* The reference vec_dot against a plain double dot of the dequantized operands. */
static void test_quants_ref_matches_dequantized_dot(void **state)
{
    enum { N = 1536 };
    struct exo_rng rng;
    exo_rng_seed(&rng, 7);
    uint8_t *w = xmalloc(row_bytes(EXO_DTYPE_F32, N)), *x = xmalloc(row_bytes(EXO_DTYPE_F32, N));
    float *wf = xmalloc(N * sizeof(float)), *xf = xmalloc(N * sizeof(float));
    for (size_t t = 0; t < N_WEIGHT_TYPES; t++) {
        const struct exo_cpu_kernels *ref = exo_cpu_kernels_ref(weight_types[t]);
        enum exo_dtype vt = ref->vec_dot_type;
        for (int kind = 0; kind < W_KINDS; kind++) {
            if (kind == W_SUBNORMAL && weight_types[t] == EXO_DTYPE_F32)
                continue;
            make_weights(&rng, weight_types[t], kind, w, N);
            make_activations(&rng, vt, kind % 2, x, N);
            ref->to_float(w, wf, N);
            exo_cpu_kernels_ref(vt)->to_float(x, xf, N);
            double want = 0;
            for (int i = 0; i < N; i++)
                want += (double)wf[i] * xf[i];
            double slack = 0;
            if (weight_types[t] == EXO_DTYPE_Q4_1) {
                /* The dot uses s, d * sum(q) rounded to fp16, for the m terms. */
                const struct block_q4_1 *a = (const void *)w;
                const struct block_q8_1 *b = (const void *)x;
                for (int k = 0; k < N / 32; k++) {
                    int sum = 0;
                    for (int i = 0; i < 32; i++)
                        sum += b[k].qs[i];
                    double exact = (double)exo_fp16_to_fp32(b[k].d) * sum;
                    slack +=
                        fabs(exo_fp16_to_fp32(a[k].m)) * fabs(exo_fp16_to_fp32(b[k].s) - exact);
                }
            }
            float got;
            ref->vec_dot(N, &got, w, x);
            double tol = 1e-6 * magnitude(weight_types[t], w, xf, N) + 1.0001 * slack + 1e-30;
            if (!(fabs(got - want) <= tol))
                fail_msg("%s %s: reference %.9g, dequantized dot %.9g (tol %.3g)",
                         exo_dtype_name(weight_types[t]), wkind_names[kind], (double)got, want,
                         tol);
        }
    }
    exo_free(w);
    exo_free(x);
    exo_free(wf);
    exo_free(xf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quants_layout_known_answers),
        cmocka_unit_test(test_quants_fp16_roundtrip_exhaustive),
        cmocka_unit_test(test_quants_fp16_rounding),
        cmocka_unit_test(test_quants_fp16_matches_f16c),
        cmocka_unit_test(test_quants_bf16),
        cmocka_unit_test(test_quants_lookup),
        cmocka_unit_test(test_quants_roundtrip),
        cmocka_unit_test(test_quants_activation_fields),
        cmocka_unit_test(test_quants_activation_bytes_match_ref),
        cmocka_unit_test(test_quants_to_float_matches_ref),
        cmocka_unit_test(test_quants_vec_dot_matches_ref),
        cmocka_unit_test(test_quants_gemm_matches_ref),
        cmocka_unit_test(test_quants_ref_matches_dequantized_dot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
