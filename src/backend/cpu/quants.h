/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Quantized block formats and the CPU kernels over them.
 *
 * Block layouts are ggml's, byte for byte, because GGUF files store them (see ggml-common.h in
 * the ggml repository and REFERENCES.md). Weights are dotted with activations quantized once per
 * op into the weight type's partner format (its vec_dot_type): Q4_0 and Q8_0 with Q8_0, Q4_1 with
 * Q8_1, the K-quants with Q8_K, and f32/f16/bf16 weights with f32 activations.
 *
 * Every kernel has a scalar reference (quants.c) that defines what the kernel computes; SIMD
 * variants (arch/x86/quants-avx2.c, arch/x86/quants-avx512.c, arch/arm/quants-neon.c) are chosen
 * at run time from exo_cpu_features() and are tested against the reference.
 */
#ifndef EXO_BACKEND_CPU_QUANTS_H
#define EXO_BACKEND_CPU_QUANTS_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "exo/dtype.h"

#define QK4_0        32
#define QK4_1        32
#define QK8_0        32
#define QK8_1        32
#define QK_K         256
#define K_SCALE_SIZE 12

/* fp16 fields are stored as raw IEEE half bits (uint16_t); see exo_fp16_to_fp32. */

/* w[j] = (q[j] - 8) * d; byte j holds element j (low nibble) and j + 16 (high nibble). */
struct block_q4_0 {
    uint16_t d;
    uint8_t qs[QK4_0 / 2];
};
static_assert(sizeof(struct block_q4_0) == 18, "q4_0 block");

/* w[j] = q[j] * d + m; nibble order as q4_0. */
struct block_q4_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qs[QK4_1 / 2];
};
static_assert(sizeof(struct block_q4_1) == 20, "q4_1 block");

/* w[j] = q[j] * d */
struct block_q8_0 {
    uint16_t d;
    int8_t qs[QK8_0];
};
static_assert(sizeof(struct block_q8_0) == 34, "q8_0 block");

/* Activations for q4_1: w[j] = q[j] * d, and s = d * sum(q) so the q4_1 offset m folds in as
 * m * s. */
struct block_q8_1 {
    uint16_t d;
    uint16_t s;
    int8_t qs[QK8_1];
};
static_assert(sizeof(struct block_q8_1) == 36, "q8_1 block");

/* 256 weights in 8 sub-blocks of 32; each sub-block has a 6-bit scale and a 6-bit min packed
 * into scales[12]; w = d * scale * q - dmin * min. qs: for each 64-weight pair of sub-blocks,
 * 32 bytes whose low nibbles are the first sub-block and high nibbles the second. */
struct block_q4_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(struct block_q4_K) == 144, "q4_K block");

/* As q4_K with a fifth bit per weight in qh. */
struct block_q5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(struct block_q5_K) == 176, "q5_K block");

/* 16 sub-blocks of 16 with 8-bit signed scales; 6-bit quants split into ql (low 4) and qh
 * (high 2); w = d * scale * (q - 32). */
struct block_q6_K {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
};
static_assert(sizeof(struct block_q6_K) == 210, "q6_K block");

/* Activations for the K-quants: float scale, 8-bit quants, and the sum of each 16 quants. */
struct block_q8_K {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
};
static_assert(sizeof(struct block_q8_K) == 292, "q8_K block");

/*
 * The kernels for one weight type. Lengths n are element counts and multiples of the type's
 * block size. Pointers to blocks need no alignment beyond that of the block struct.
 */
struct exo_cpu_kernels {
    enum exo_dtype type;
    enum exo_dtype vec_dot_type; /* the activation format vec_dot/gemm take */
    /* n elements of this type -> f32 (src and dst borrowed). */
    void (*to_float)(const void *src, float *dst, int64_t n);
    /* n floats -> this type (weights for tests and tools, or activations when this type is some
     * weight type's vec_dot_type); src and dst borrowed. */
    void (*from_float)(const float *src, void *dst, int64_t n);
    /* *s = the dot product of n weights w (this type) and n activations x (vec_dot_type); all
     * three borrowed.
     * NULL for the activation-only formats (q8_1, q8_K). Quantized activations are what
     * from_float makes: their 8-bit quants lie in [-127, 127], never -128. */
    void (*vec_dot)(int64_t n, float *s, const void *w, const void *x);
    /* (optional) A tile of dot products: for r < nr and c < nc,
     *   s[c * lds + r] = dot(w + r * ldw bytes, x + c * ldx bytes)
     * with nr <= tile_rows and nc <= tile_cols. Used for prompt processing, where each weight
     * block loaded is reused across several tokens; full-height tiles (nr == tile_rows) with
     * two or more columns take the fast path. A single column (decode) runs one vec_dot per
     * row, which streams a matrix from memory faster than a tile reading its rows in lockstep,
     * so callers need not treat decode specially. Other shapes fall back to one dot per entry.
     * w, x and s are borrowed. */
    void (*gemm)(int64_t n, int nr, int nc, float *s, size_t lds, const void *w, size_t ldw,
                 const void *x, size_t ldx);
    int tile_rows;
    int tile_cols;
    const char *isa; /* "scalar", "avx2", "avx512", "neon": what was selected */
};

/* The fastest kernels this CPU runs for a weight or activation type; NULL if unsupported.
 * The table is static and lives for the whole process. */
const struct exo_cpu_kernels *exo_cpu_kernels(enum exo_dtype type);

/* The scalar reference kernels (what tests compare against); NULL if unsupported. Static. */
const struct exo_cpu_kernels *exo_cpu_kernels_ref(enum exo_dtype type);

/* Instruction-set levels, in the order dispatch prefers them on their architecture. */
enum exo_cpu_isa {
    EXO_CPU_ISA_SCALAR,
    EXO_CPU_ISA_AVX2,   /* AVX2 + FMA + F16C */
    EXO_CPU_ISA_AVX512, /* AVX-512 F, BW, VL, DQ and VNNI */
    EXO_CPU_ISA_NEON,
    EXO_CPU_ISA_COUNT,
};

/* The kernels dispatch would pick if this CPU went no further than `isa`, so that tests and
 * benchmarks can run every variant in one process; exo_cpu_kernels(t) is the table of the best
 * level. NULL when the type is unsupported or the CPU (after any EXO_CPU_ISA cap) cannot run
 * `isa`. A type with no kernels of its own at `isa` gets those of the level below; the `isa`
 * field says which ran. Static. */
const struct exo_cpu_kernels *exo_cpu_kernels_isa(enum exo_dtype type, enum exo_cpu_isa isa);

#endif
