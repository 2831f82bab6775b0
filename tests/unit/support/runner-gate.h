/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A gate for the runner's step hook (runner.h): it holds the compute thread at a chosen job and
 * token until the test releases it, so that tests can queue, cancel, disconnect or stop at an
 * exact point of a generation. Waits are bounded by a timeout.
 */
#ifndef EXO_TEST_RUNNER_GATE_H
#define EXO_TEST_RUNNER_GATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define GATE_MAX_JOBS 16

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int jobs_started; /* step calls with n_tokens 0 so far */
    int hold_job;     /* ordinal (1-based) of the job to hold; 0: none */
    int32_t hold_token;
    bool held;     /* the compute thread is waiting in the gate */
    bool released; /* let it go (and every later arrival) */
    int32_t max_token_seen[GATE_MAX_JOBS + 1];
};

void gate_init(struct gate *g);
void gate_destroy(struct gate *g);

/* Hold the job-th job to start (1-based) when it has sampled `token` tokens (0: before it runs). */
void gate_hold(struct gate *g, int job, int32_t token);

/* The runner's step hook body: call it from exo_runner_config.on_step (compute thread). */
void gate_step(struct gate *g, int32_t n_tokens);

/* Wait until the compute thread is held; false after the timeout. Safe on the loop thread: the
 * compute thread does not need the loop to get there. */
bool gate_wait_held(struct gate *g);

void gate_release(struct gate *g);

/* How many jobs have started (step calls with n_tokens 0), and the most tokens a job reached. */
int gate_jobs_started(struct gate *g);
int32_t gate_max_token(struct gate *g, int job);

#endif
