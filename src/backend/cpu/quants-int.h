/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the kernel files of the CPU backend share among themselves, not with the rest of exo.
 *
 * Dispatch builds one table per instruction-set level: the scalar table first, then each level
 * starts as a copy of the level below and its arch file overwrites the entries it speeds up
 * (exo_quants_<isa>_install). A level therefore never lacks a kernel, and a type that gains
 * nothing from wider vectors simply keeps the narrower code.
 *
 * The helpers below decode the parts of the block formats that every variant needs in scalar
 * form (the packed K-quant scales); keeping one copy here means the SIMD files cannot drift from
 * the reference.
 */
#ifndef EXO_BACKEND_CPU_QUANTS_INT_H
#define EXO_BACKEND_CPU_QUANTS_INT_H

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

/* The two fp16 fields at the start of a block header (d and m, d and s, or d and dmin). */
static inline uint32_t exo_quants_hdr32(const void *block)
{
    uint32_t v;
    memcpy(&v, block, 4);
    return v;
}

#endif
