/* SPDX-License-Identifier: Apache-2.0 */
/* Allocation wrappers with a failure-injection hook for tests (see alloc.h). */
#include "core/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Negative: no injection. Otherwise the number of allocations still allowed to succeed. */
static atomic_long fail_countdown = -1;

static int should_fail(void)
{
    long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    while (n >= 0) {
        if (n == 0)
            return 1;
        if (atomic_compare_exchange_weak(&fail_countdown, &n, n - 1))
            return 0;
    }
    return 0;
}

void exo_alloc_fail_after(long n)
{
    atomic_store(&fail_countdown, n < 0 ? -1 : n);
}

void *exo_malloc(size_t size)
{
    if (should_fail())
        return NULL;
    return malloc(size ? size : 1);
}

void *exo_calloc(size_t count, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *exo_realloc(void *ptr, size_t size)
{
    if (should_fail())
        return NULL;
    return realloc(ptr, size ? size : 1);
}

void exo_free(void *ptr)
{
    free(ptr);
}

char *exo_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *r = exo_malloc(len + 1);
    if (!r)
        return NULL;
    memcpy(r, s, len);
    r[len] = '\0';
    return r;
}

char *exo_strdup(const char *s)
{
    return exo_strndup(s, strlen(s));
}

void *exo_aligned_alloc(size_t align, size_t size)
{
    void *p = NULL;
    if (should_fail())
        return NULL;
    if (posix_memalign(&p, align, size ? size : 1) != 0)
        return NULL;
    return p;
}

void exo_aligned_free(void *ptr)
{
    free(ptr);
}
