/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tensor element types. The numeric ids are ggml's, because GGUF files store them: a tensor's type
 * field is one of these values. Every type a file may name has its block geometry here, so that a
 * file can be validated (sizes checked) even when its types cannot be computed with; which types
 * the engine computes with is exo_dtype_supported().
 *
 * Header-only (static inline) because backend plugins need it too and must not link the daemon.
 */
#ifndef EXO_DTYPE_H
#define EXO_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum exo_dtype {
    EXO_DTYPE_F32 = 0,
    EXO_DTYPE_F16 = 1,
    EXO_DTYPE_Q4_0 = 2,
    EXO_DTYPE_Q4_1 = 3,
    EXO_DTYPE_Q5_0 = 6,
    EXO_DTYPE_Q5_1 = 7,
    EXO_DTYPE_Q8_0 = 8,
    EXO_DTYPE_Q8_1 = 9,
    EXO_DTYPE_Q2_K = 10,
    EXO_DTYPE_Q3_K = 11,
    EXO_DTYPE_Q4_K = 12,
    EXO_DTYPE_Q5_K = 13,
    EXO_DTYPE_Q6_K = 14,
    EXO_DTYPE_Q8_K = 15,
    EXO_DTYPE_IQ2_XXS = 16,
    EXO_DTYPE_IQ2_XS = 17,
    EXO_DTYPE_IQ3_XXS = 18,
    EXO_DTYPE_IQ1_S = 19,
    EXO_DTYPE_IQ4_NL = 20,
    EXO_DTYPE_IQ3_S = 21,
    EXO_DTYPE_IQ2_S = 22,
    EXO_DTYPE_IQ4_XS = 23,
    EXO_DTYPE_I8 = 24,
    EXO_DTYPE_I16 = 25,
    EXO_DTYPE_I32 = 26,
    EXO_DTYPE_I64 = 27,
    EXO_DTYPE_F64 = 28,
    EXO_DTYPE_IQ1_M = 29,
    EXO_DTYPE_BF16 = 30,
    EXO_DTYPE_TQ1_0 = 34,
    EXO_DTYPE_TQ2_0 = 35,
    EXO_DTYPE_MXFP4 = 39,
    EXO_DTYPE_COUNT = 40, /* one past the largest id */
};

struct exo_dtype_info {
    const char *name;     /* as llama.cpp prints it, e.g. "q4_K" */
    uint32_t block_elems; /* elements per block (1 for plain types) */
    uint32_t block_bytes; /* bytes per block */
    bool supported;       /* the engine can compute with it */
};

/* NULL for ids that name no type (including removed ggml types such as 4 and 5). */
static inline const struct exo_dtype_info *exo_dtype_info(uint32_t type)
{
    static const struct exo_dtype_info table[EXO_DTYPE_COUNT] = {
        [EXO_DTYPE_F32] = {"f32", 1, 4, true},
        [EXO_DTYPE_F16] = {"f16", 1, 2, true},
        [EXO_DTYPE_Q4_0] = {"q4_0", 32, 18, true},
        [EXO_DTYPE_Q4_1] = {"q4_1", 32, 20, true},
        [EXO_DTYPE_Q5_0] = {"q5_0", 32, 22, false},
        [EXO_DTYPE_Q5_1] = {"q5_1", 32, 24, false},
        [EXO_DTYPE_Q8_0] = {"q8_0", 32, 34, true},
        [EXO_DTYPE_Q8_1] = {"q8_1", 32, 36, false},
        [EXO_DTYPE_Q2_K] = {"q2_K", 256, 84, false},
        [EXO_DTYPE_Q3_K] = {"q3_K", 256, 110, false},
        [EXO_DTYPE_Q4_K] = {"q4_K", 256, 144, true},
        [EXO_DTYPE_Q5_K] = {"q5_K", 256, 176, true},
        [EXO_DTYPE_Q6_K] = {"q6_K", 256, 210, true},
        [EXO_DTYPE_Q8_K] = {"q8_K", 256, 292, false},
        [EXO_DTYPE_IQ2_XXS] = {"iq2_xxs", 256, 66, false},
        [EXO_DTYPE_IQ2_XS] = {"iq2_xs", 256, 74, false},
        [EXO_DTYPE_IQ3_XXS] = {"iq3_xxs", 256, 98, false},
        [EXO_DTYPE_IQ1_S] = {"iq1_s", 256, 50, false},
        [EXO_DTYPE_IQ4_NL] = {"iq4_nl", 32, 18, false},
        [EXO_DTYPE_IQ3_S] = {"iq3_s", 256, 110, false},
        [EXO_DTYPE_IQ2_S] = {"iq2_s", 256, 82, false},
        [EXO_DTYPE_IQ4_XS] = {"iq4_xs", 256, 136, false},
        [EXO_DTYPE_I8] = {"i8", 1, 1, false},
        [EXO_DTYPE_I16] = {"i16", 1, 2, false},
        [EXO_DTYPE_I32] = {"i32", 1, 4, false},
        [EXO_DTYPE_I64] = {"i64", 1, 8, false},
        [EXO_DTYPE_F64] = {"f64", 1, 8, false},
        [EXO_DTYPE_IQ1_M] = {"iq1_m", 256, 56, false},
        [EXO_DTYPE_BF16] = {"bf16", 1, 2, true},
        [EXO_DTYPE_TQ1_0] = {"tq1_0", 256, 54, false},
        [EXO_DTYPE_TQ2_0] = {"tq2_0", 256, 66, false},
        [EXO_DTYPE_MXFP4] = {"mxfp4", 32, 17, false},
    };
    if (type >= EXO_DTYPE_COUNT || !table[type].name)
        return NULL;
    return &table[type];
}

static inline const char *exo_dtype_name(uint32_t type)
{
    const struct exo_dtype_info *info = exo_dtype_info(type);
    return info ? info->name : "unknown";
}

static inline bool exo_dtype_supported(uint32_t type)
{
    const struct exo_dtype_info *info = exo_dtype_info(type);
    return info && info->supported;
}

/* Bytes taken by one row of n elements; n must be a multiple of the block size. */
static inline size_t exo_dtype_row_bytes(uint32_t type, uint64_t n)
{
    const struct exo_dtype_info *info = exo_dtype_info(type);
    return (size_t)(n / info->block_elems) * info->block_bytes;
}

/* Comma-separated names of the supported types, for error messages. */
#define EXO_DTYPE_SUPPORTED_LIST "f32, f16, bf16, q8_0, q4_0, q4_1, q4_K, q5_K, q6_K"

/* IEEE half and bfloat16 conversions, exact and round-to-nearest-even. */
static inline float exo_fp32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t exo_fp32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float exo_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        /* Zero or subnormal: mant * 2^-24 is exact in float. */
        float v = (float)mant * 0x1.0p-24f;
        return exo_fp32_from_bits(exo_fp32_to_bits(v) | sign);
    }
    if (exp == 31)
        return exo_fp32_from_bits(sign | 0x7f800000u | mant << 13);
    return exo_fp32_from_bits(sign | (exp + 112) << 23 | mant << 13);
}

static inline uint16_t exo_fp32_to_fp16(float f)
{
    uint32_t u = exo_fp32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u)
        return sign | 0x7e00u; /* NaN stays a (quiet) NaN */
    if (abs >= 0x477ff000u)
        return sign | 0x7c00u; /* 65520 and above round to infinity */
    uint32_t e = abs >> 23;
    if (e < 113) {
        /* Result is a half subnormal (or zero): round mant * 2^(e - 150) to units of 2^-24. */
        if (e < 102)
            return sign;
        uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e;
        uint32_t q = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1)))
            q++;
        return sign | (uint16_t)q;
    }
    /* Normal: rebias the exponent and round the 13 dropped bits to nearest even; a carry out of
     * the mantissa correctly bumps the exponent. */
    uint32_t h = (abs >> 13) - (112u << 10);
    uint32_t rem = abs & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++;
    return sign | (uint16_t)h;
}

static inline float exo_bf16_to_fp32(uint16_t h)
{
    return exo_fp32_from_bits((uint32_t)h << 16);
}

static inline uint16_t exo_fp32_to_bf16(float f)
{
    uint32_t u = exo_fp32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 64); /* quiet NaN */
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

#endif
