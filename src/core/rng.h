/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small, fast, seedable generator (xoshiro256**, seeded through splitmix64). The same seed gives
 * the same sequence on every platform, which is what makes `--seed` reproduce a generation and the
 * membership simulation replay a run. Not for keys or nonces: those come from libsodium.
 */
#ifndef EXO_CORE_RNG_H
#define EXO_CORE_RNG_H

#include <stdint.h>

struct exo_rng {
    uint64_t s[4];
};

void exo_rng_seed(struct exo_rng *rng, uint64_t seed);
uint64_t exo_rng_next(struct exo_rng *rng);

/* Uniform in [0, 1) with 53 bits of precision. */
double exo_rng_uniform(struct exo_rng *rng);

/* Uniform in [0, bound), without modulo bias; bound > 0. */
uint64_t exo_rng_below(struct exo_rng *rng, uint64_t bound);

/* Standard normal variate (Box-Muller). */
double exo_rng_normal(struct exo_rng *rng);

#endif
