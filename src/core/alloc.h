/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every allocation goes through these wrappers so that tests can make the Nth allocation fail on
 * purpose (exo_alloc_fail_after) and check that each error path cleans up. They behave like the
 * libc functions they wrap; exo_free and exo_aligned_free accept NULL.
 */
#ifndef EXO_CORE_ALLOC_H
#define EXO_CORE_ALLOC_H

#include <stddef.h>

void *exo_malloc(size_t size);
void *exo_calloc(size_t count, size_t size);
void *exo_realloc(void *ptr, size_t size);
void exo_free(void *ptr);

/* A copy of s (or of its first n bytes, NUL-terminated), owned by the caller. */
char *exo_strdup(const char *s);
char *exo_strndup(const char *s, size_t n);

/* Memory aligned to `align` (a power of two, at least sizeof(void *)); free with
 * exo_aligned_free. Compute buffers use 64 bytes so that SIMD loads never split a cache line. */
void *exo_aligned_alloc(size_t align, size_t size);
void exo_aligned_free(void *ptr);

/* Testing hook: after `n` more successful allocations, every allocation fails until the hook is
 * reset with a negative n. Thread-safe. */
void exo_alloc_fail_after(long n);

/* count * size, or SIZE_MAX when the product overflows (so a following allocation fails). */
static inline size_t exo_mul_size(size_t count, size_t size)
{
    size_t r;
    if (__builtin_mul_overflow(count, size, &r))
        return (size_t)-1;
    return r;
}

#endif
