/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A fork-join pool for compute kernels. exo_threadpool_run(fn) runs fn(arg, ith, nth) once on
 * every thread of the pool, the calling thread being ith 0, and returns when all have finished.
 * Kernels split their rows by ith/nth. Inside fn, exo_threadpool_barrier() waits for all nth.
 *
 * Workers spin briefly between jobs (a decode step issues hundreds of small jobs back to back,
 * and waking a sleeping thread costs more than the job) and then sleep on a condition variable.
 * A pool is driven by one thread at a time; it is not for the event loop.
 */
#ifndef EXO_CORE_THREADPOOL_H
#define EXO_CORE_THREADPOOL_H

struct exo_threadpool;

typedef void (*exo_task_fn)(void *arg, int ith, int nth);

/* A pool of n_threads threads counting the caller (n_threads - 1 workers are started);
 * n_threads <= 0 means the number of physical cores. */
int exo_threadpool_create(int n_threads, struct exo_threadpool **ret_pool);
void exo_threadpool_free(struct exo_threadpool *pool);
int exo_threadpool_size(const struct exo_threadpool *pool);

void exo_threadpool_run(struct exo_threadpool *pool, exo_task_fn fn, void *arg);

/* Called by every thread of a running job; returns when all of them have called it. */
void exo_threadpool_barrier(struct exo_threadpool *pool);

#endif
