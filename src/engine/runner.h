/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The compute side of serving: a runner owns one compute thread, the session (model, tokenizer,
 * KV cache) that only that thread touches, and a bounded first-come-first-served queue of
 * generation jobs. The daemon's loop thread loads a model, submits jobs and cancels them; the
 * runner answers with events (start, text, done) delivered on the loop through one uv_async_t,
 * so job callbacks run on the loop like every other piece of daemon state.
 *
 * Every function here is called from the loop thread given to exo_runner_start. Every job gets
 * exactly one DONE event, always from the loop (never from inside an exo_runner_* call), and its
 * handle is valid until that event's callback returns.
 */
#ifndef EXO_ENGINE_RUNNER_H
#define EXO_ENGINE_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "engine/chat.h"
#include "engine/generate.h"

struct exo_runner;
struct exo_runner_job;

enum exo_runner_state {
    EXO_RUNNER_WAITING = 0, /* no model asked for yet (the daemon may be fetching one) */
    EXO_RUNNER_LOADING,     /* the compute thread is opening the model */
    EXO_RUNNER_READY,       /* jobs are accepted */
    EXO_RUNNER_FAILED,      /* no model: `error` says why */
};

/* "waiting", "loading", "ready", "failed" (static). */
const char *exo_runner_state_name(enum exo_runner_state state);

/* What the runner is doing and, once ready, what it serves. A loop-side snapshot: it changes only
 * when the loop processes the runner's events (or exo_runner_progress/fail is called). */
struct exo_runner_info {
    enum exo_runner_state state;
    char model_path[1024]; /* as given to exo_runner_load; "" while waiting */
    char phase[64];        /* waiting/loading: what is happening ("fetching the model") */
    double progress;       /* waiting/loading: 0..1, or a negative number when unknown */
    uint64_t state_ns;     /* exo_clock_ns() when the state (or phase) last changed */
    char error[512];       /* failed: why */
    /* Set when ready. */
    char model_name[96]; /* general.name, or the file's base name */
    char arch[32];
    char chat_template[16];
    uint32_t n_ctx, n_vocab, n_layer;
    uint64_t weight_bytes;
    char device[160];
    uint64_t load_ns; /* how long opening the model took */
};

struct exo_runner_stats {
    uint32_t queued; /* jobs waiting now (not counting the running one) */
    uint32_t max_queued;
    bool busy; /* a job is running */
    uint64_t jobs_submitted, jobs_done, jobs_canceled, jobs_failed, jobs_rejected;
    uint64_t prompt_tokens;    /* prompt tokens of finished jobs */
    uint64_t generated_tokens; /* tokens sampled, including the running job's so far */
    double tokens_per_s;       /* decode speed of the running job, or else of the last one */
};

/* Called on the loop when exo_runner_info changes state (waiting -> loading -> ready/failed). */
typedef void (*exo_runner_state_cb)(struct exo_runner *r, void *ud);

/* (For tests) called on the compute thread before a job runs (n_tokens 0), between the slices
 * of a long prompt (n_tokens -1) and after each token it samples (n_tokens 1, 2, ...). It may
 * block, which holds the compute thread at a known point so that tests can order queueing and
 * cancelling against generation. */
typedef void (*exo_runner_step_cb)(void *ud, int32_t n_tokens);

/* Zero fields take the defaults in brackets. */
struct exo_runner_config {
    struct exo_session_params session; /* context, threads, ... as exo_session_open takes */
    uint32_t max_queued;               /* jobs waiting behind the running one [16] */
    exo_runner_state_cb on_state;      /* (optional) */
    exo_runner_step_cb on_step;        /* (optional, tests) */
    void *ud;                          /* borrowed, for both callbacks */
};

/* A generation to run. Everything is copied by exo_runner_submit. */
struct exo_runner_job_spec {
    /* Exactly one of: a conversation, formatted with the model's chat template (with the
     * assistant's turn opened), or raw prompt text (tokenized with the model's BOS rule). */
    const struct exo_chat_message *messages;
    size_t n_messages;
    const char *prompt;
    struct exo_sampler_params sampling;
    int32_t max_tokens;      /* < 0: until the context is full */
    const char *const *stop; /* stop strings; the matched text is not emitted */
    size_t n_stop;
};

enum exo_runner_event_type {
    EXO_RUNNER_EVENT_START, /* the prompt is tokenized, fits the context, and runs now */
    EXO_RUNNER_EVENT_TEXT,  /* generated text: one token's worth, or several merged when the
                             * loop fell behind */
    EXO_RUNNER_EVENT_DONE,  /* the last event of every job */
};

struct exo_runner_event {
    enum exo_runner_event_type type;
    const char *text; /* TEXT: valid UTF-8, borrowed for the callback */
    size_t len;
    int32_t n_tokens; /* TEXT: tokens sampled so far */
    int32_t n_prompt; /* START, DONE: prompt tokens (0 when the job never got that far) */
    uint32_t n_ctx;   /* START, DONE: the context size */
    /* DONE: 0; EXO_ECANCELED (canceled, queued or running); EXO_ETOOBIG (the prompt does not
     * fit: n_prompt >= n_ctx); EXO_EINVAL (the prompt is empty or the template refuses the
     * conversation); EXO_ECLOSED (the runner stopped, or never had a model); or another code
     * the engine returned. */
    int error;
    struct exo_generate_result result; /* DONE: counts and timings (also after a cancel) */
    uint64_t queued_ns;                /* DONE: time between submit and start */
};

/* job is borrowed; after the DONE event's callback returns it is freed. ud is the submitter's. */
typedef void (*exo_runner_event_cb)(struct exo_runner_job *job, const struct exo_runner_event *ev,
                                    void *ud);

typedef void (*exo_runner_done_cb)(void *ud);

/* Start the compute thread with loop (borrowed; must outlive the runner) and cfg (copied). The
 * runner starts in WAITING; *ret is owned by the caller and released by exo_runner_stop.
 * Returns 0, EXO_EINVAL or EXO_ENOMEM, or the thread error. */
int exo_runner_start(uv_loop_t *loop, const struct exo_runner_config *cfg, struct exo_runner **ret);

/* Load the model at path (copied) on the compute thread: WAITING -> LOADING -> READY or FAILED.
 * 0, EXO_EINVAL (not waiting) or EXO_ENOMEM. */
int exo_runner_load(struct exo_runner *r, const char *path);

/* While waiting: say what is being prepared (phase copied; progress 0..1 or negative). */
void exo_runner_progress(struct exo_runner *r, const char *phase, double progress);

/* While waiting: give up, e.g. because the model could not be fetched (reason copied). */
void exo_runner_fail(struct exo_runner *r, const char *reason);

/* The loop-side snapshot; borrowed from r, valid until the loop next runs the runner's events. */
const struct exo_runner_info *exo_runner_info(const struct exo_runner *r);

/* Queue a job; cb(job, event, ud) receives its events on the loop. *ret_job (may be NULL) is
 * borrowed until the DONE event. Returns 0; EXO_EAGAIN when no model is ready; EXO_EBUSY when
 * max_queued jobs are already waiting (counted as rejected); EXO_ECLOSED when stopping;
 * EXO_EINVAL; EXO_ENOMEM. No event comes for a job that was not queued. */
int exo_runner_submit(struct exo_runner *r, const struct exo_runner_job_spec *spec,
                      exo_runner_event_cb cb, void *ud, struct exo_runner_job **ret_job);

/* Cancel a job (borrowed; NULL is ignored): a queued one is dropped without running, a running
 * one stops at its next token (while its prompt is evaluated: after the current slice of 32
 * prompt tokens). Its DONE event (EXO_ECANCELED, unless it had already finished) still comes,
 * from the loop. */
void exo_runner_cancel(struct exo_runner_job *job);

/* Counters for /metrics (they take the runner's lock briefly). */
void exo_runner_stats(struct exo_runner *r, struct exo_runner_stats *ret);

/* Cancel every job, let the compute thread finish its current token (or prompt slice) and close
 * the session, join it, then call done(ud) from the loop and free the runner. Every job's DONE
 * event is delivered before done. Consumes r; accepts NULL. */
void exo_runner_stop(struct exo_runner *r, exo_runner_done_cb done, void *ud);

#endif
