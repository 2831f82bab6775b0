/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the CPU we run on can do, read at run time (never from the build host): the ISA extensions
 * the kernels dispatch on and the number of physical cores the thread pool defaults to.
 */
#ifndef EXO_CORE_CPU_H
#define EXO_CORE_CPU_H

#include <stdbool.h>

struct exo_cpu_features {
    bool sse3, ssse3, f16c, fma, avx, avx2;
    bool avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16, avxvnni;
    bool neon, neon_dotprod;
};

/* Detected once and cached; safe from any thread. EXO_CPU_ISA=scalar|avx2|avx512 in the
 * environment caps what is reported, so tests and benchmarks can compare code paths. */
const struct exo_cpu_features *exo_cpu_features(void);

/* Physical cores this process may run on (hyperthread siblings counted once), at least 1. */
int exo_cpu_physical_cores(void);

/* Logical CPUs this process may run on, at least 1. */
int exo_cpu_logical_cpus(void);

#endif
