/* SPDX-License-Identifier: Apache-2.0 */
/* The compute-thread gate for runner tests (see runner-gate.h). */
#include "support/runner-gate.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define GATE_TIMEOUT_S 60 /* sanitizer builds on a busy machine are slow */

static void deadline(struct timespec *ts)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += GATE_TIMEOUT_S;
}

void gate_init(struct gate *g)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
}

void gate_destroy(struct gate *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

void gate_hold(struct gate *g, int job, int32_t token)
{
    pthread_mutex_lock(&g->mu);
    g->hold_job = job;
    g->hold_token = token;
    g->released = false;
    pthread_mutex_unlock(&g->mu);
}

void gate_step(struct gate *g, int32_t n_tokens)
{
    struct timespec ts;
    deadline(&ts);
    pthread_mutex_lock(&g->mu);
    if (n_tokens == 0)
        g->jobs_started++;
    int job = g->jobs_started;
    if (job <= GATE_MAX_JOBS && n_tokens > g->max_token_seen[job])
        g->max_token_seen[job] = n_tokens;
    if (job == g->hold_job && n_tokens == g->hold_token) {
        g->held = true;
        pthread_cond_broadcast(&g->cv);
        while (!g->released)
            if (pthread_cond_timedwait(&g->cv, &g->mu, &ts) == ETIMEDOUT)
                break;
        g->held = false;
    }
    pthread_mutex_unlock(&g->mu);
}

bool gate_wait_held(struct gate *g)
{
    struct timespec ts;
    deadline(&ts);
    pthread_mutex_lock(&g->mu);
    while (!g->held)
        if (pthread_cond_timedwait(&g->cv, &g->mu, &ts) == ETIMEDOUT)
            break;
    bool held = g->held;
    pthread_mutex_unlock(&g->mu);
    return held;
}

void gate_release(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->released = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

int gate_jobs_started(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    int n = g->jobs_started;
    pthread_mutex_unlock(&g->mu);
    return n;
}

int32_t gate_max_token(struct gate *g, int job)
{
    pthread_mutex_lock(&g->mu);
    int32_t n = job >= 0 && job <= GATE_MAX_JOBS ? g->max_token_seen[job] : 0;
    pthread_mutex_unlock(&g->mu);
    return n;
}
