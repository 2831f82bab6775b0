/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Threads: the owner thread calls exo_threadpool_run; n - 1 workers wait for jobs.
 *
 * A job is published by storing fn/arg and bumping `generation` (release). Workers notice the new
 * generation (acquire), run their share, and bump `done`; the owner runs share 0 and spins until
 * `done` reaches n - 1. A worker that saw no new job for SPIN_ROUNDS polls goes to sleep on `cond`
 * after announcing itself in `sleepers`; the owner broadcasts only when someone sleeps, so back to
 * back jobs never touch the mutex.
 */
#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "core/alloc.h"
#include "core/cpu.h"
#include "core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ volatile("yield")
#else
#define cpu_relax() ((void)0)
#endif

enum {
    SPIN_ROUNDS = 1 << 16, /* polls before a worker sleeps between jobs */
    YIELD_AFTER = 1 << 14, /* polls before a waiting thread starts yielding its core */
};

/* Wait politely: spin briefly (the common case is a wait of microseconds), then yield the core
 * so that on an oversubscribed machine the thread we wait for gets to run. */
static void wait_step(unsigned *spins)
{
    if (++*spins < YIELD_AFTER)
        cpu_relax();
    else
        sched_yield();
}

struct exo_threadpool {
    int n_threads;
    pthread_t *workers;

    exo_task_fn fn;
    void *arg;
    _Atomic unsigned generation;
    _Atomic int done;
    _Atomic bool stop;

    /* Barrier: threads count in; the last flips the phase. */
    _Atomic int barrier_count;
    _Atomic unsigned barrier_phase;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    _Atomic int sleepers;
};

struct worker_arg {
    struct exo_threadpool *pool;
    int ith;
};

static void *worker_main(void *p)
{
    struct worker_arg wa = *(struct worker_arg *)p;
    struct exo_threadpool *pool = wa.pool;
    unsigned seen = 0;
    exo_free(p);

    for (;;) {
        unsigned gen, spins = 0;
        while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
               !atomic_load_explicit(&pool->stop, memory_order_relaxed)) {
            if (spins < SPIN_ROUNDS) {
                wait_step(&spins);
                continue;
            }
            pthread_mutex_lock(&pool->lock);
            atomic_fetch_add(&pool->sleepers, 1);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->cond, &pool->lock);
            atomic_fetch_sub(&pool->sleepers, 1);
            pthread_mutex_unlock(&pool->lock);
            spins = 0;
        }
        if (atomic_load(&pool->stop))
            return NULL;
        seen = gen;
        pool->fn(pool->arg, wa.ith, pool->n_threads);
        atomic_fetch_add_explicit(&pool->done, 1, memory_order_acq_rel);
    }
}

int exo_threadpool_create(int n_threads, struct exo_threadpool **ret_pool)
{
    if (n_threads <= 0)
        n_threads = exo_cpu_physical_cores();
    if (n_threads > 512)
        return EXO_ERANGE;
    struct exo_threadpool *pool = exo_calloc(1, sizeof(*pool));
    if (!pool)
        return EXO_ENOMEM;
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->cond, NULL);
    pool->workers = exo_calloc((size_t)n_threads, sizeof(pthread_t));
    if (!pool->workers)
        goto fail;
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *wa = exo_malloc(sizeof(*wa));
        if (wa) {
            wa->pool = pool;
            wa->ith = i;
        }
        if (!wa || pthread_create(&pool->workers[i], NULL, worker_main, wa) != 0) {
            exo_free(wa);
            pool->n_threads = i; /* only workers 1..i-1 were started; free joins those */
            exo_threadpool_free(pool);
            return EXO_ENOMEM;
        }
    }
    *ret_pool = pool;
    return 0;
fail:
    exo_free(pool->workers);
    exo_free(pool);
    return EXO_ENOMEM;
}

void exo_threadpool_free(struct exo_threadpool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->stop, true);
    pthread_cond_broadcast(&pool->cond);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 1; i < pool->n_threads; i++)
        pthread_join(pool->workers[i], NULL);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->cond);
    exo_free(pool->workers);
    exo_free(pool);
}

int exo_threadpool_size(const struct exo_threadpool *pool)
{
    return pool->n_threads;
}

void exo_threadpool_run(struct exo_threadpool *pool, exo_task_fn fn, void *arg)
{
    int n = pool->n_threads;
    if (n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    /* seq_cst on both sides: a worker announces itself in sleepers and then rereads generation,
     * we bump generation and then read sleepers, so one of us always sees the other. */
    atomic_fetch_add(&pool->generation, 1);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->cond);
        pthread_mutex_unlock(&pool->lock);
    }
    fn(arg, 0, n);
    unsigned spins = 0;
    while (atomic_load_explicit(&pool->done, memory_order_acquire) < n - 1)
        wait_step(&spins);
}

void exo_threadpool_barrier(struct exo_threadpool *pool)
{
    int n = pool->n_threads;
    if (n == 1)
        return;
    unsigned phase = atomic_load_explicit(&pool->barrier_phase, memory_order_acquire);
    if (atomic_fetch_add_explicit(&pool->barrier_count, 1, memory_order_acq_rel) == n - 1) {
        atomic_store_explicit(&pool->barrier_count, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&pool->barrier_phase, 1, memory_order_release);
        return;
    }
    unsigned spins = 0;
    while (atomic_load_explicit(&pool->barrier_phase, memory_order_acquire) == phase)
        wait_step(&spins);
}
