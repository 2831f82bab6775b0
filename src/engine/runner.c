/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The runner (see runner.h): one compute thread, a job queue, and events back to the loop.
 *
 * Threads. Two kinds of thread meet here:
 *   - the loop thread (libuv) calls every exo_runner_* function and receives every event;
 *   - the compute thread, started by exo_runner_start, opens the session, runs jobs one at a
 *     time and closes the session when the runner stops. The CPU backend's thread pool belongs
 *     to the session, so its workers hang off this thread and only ever run its kernels.
 * They share one mutex-protected block (`mu`): the queue of waiting jobs, the running job, the
 * list of events for the loop, the load request, and the info the compute thread publishes.
 * The compute thread sleeps on `cv` when it has nothing to do; it wakes the loop with
 * uv_async_send, the only libuv call made off the loop thread (DESIGN.md section 2). libuv
 * coalesces wakeups, so the loop drains every event queued so far on each wakeup, in order.
 *
 * Order. Jobs start in submission order (first come, first served: one stream of requests
 * cannot overtake another). A job's events arrive in order START, TEXT..., DONE; events of
 * different jobs never interleave because one job runs at a time. When the loop falls behind,
 * consecutive TEXT events of a job are merged into one, so the event list holds at most a few
 * entries however fast tokens come.
 *
 * Cancel. Each job has an atomic flag. A job still in the queue is unlinked by the loop and its
 * DONE posted at once (it never runs). A running job sees the flag at its next token (the
 * session's text callback returns false and generation stops) or, while its prompt is being
 * evaluated, after the current slice of PROMPT_SLICE tokens.
 *
 * Lifetimes. A job is allocated by submit and freed by the loop right after its DONE callback;
 * the compute thread never touches a job after posting its DONE (the DONE event lives inside the
 * job, so posting it cannot fail for want of memory). The runner itself is freed when the loop
 * has joined the compute thread and closed the async handle.
 */
#include "engine/runner.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/error.h"
#include "engine/gguf.h"

#define DEFAULT_MAX_QUEUED 16u
#define PROMPT_SLICE       32 /* prompt tokens evaluated between two looks at a job's cancel */

struct event {
    struct event *next;
    struct exo_runner_job *job;
    struct exo_runner_event ev;
    struct exo_buf text; /* TEXT: the bytes ev.text points at once delivered */
};

enum job_phase { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct exo_runner_job {
    struct exo_runner *runner;
    struct exo_runner_job *next; /* queue link, under mu */
    enum job_phase phase;        /* under mu */
    atomic_bool cancel;
    exo_runner_event_cb cb;
    void *ud;
    uint64_t submitted_ns;

    /* The spec, copied: every string lives in `strings`. */
    struct exo_chat_message *messages;
    size_t n_messages;
    const char *prompt;
    const char **stop;
    size_t n_stop;
    struct exo_sampler_params sampling;
    int32_t max_tokens;
    char *strings;

    struct event done; /* posted once, by whichever thread finishes the job */
    int32_t n_tokens;  /* compute thread */
    bool text_failed;  /* compute thread: a TEXT event could not be allocated */
};

struct exo_runner {
    uv_loop_t *loop;
    uv_async_t async;
    pthread_t thread;
    struct exo_runner_config cfg;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Under mu. */
    struct exo_runner_job *q_head, *q_tail;
    uint32_t n_queued;
    struct exo_runner_job *running;
    struct event *ev_head, *ev_tail;
    char *load_path;               /* a load the compute thread has not taken yet */
    struct exo_runner_info shared; /* published by the compute thread */
    bool shared_changed;
    bool stopping;
    bool exited;

    /* Loop thread only. */
    struct exo_runner_info info;
    struct exo_runner_stats stats; /* queued and busy are read under mu instead */
    uint64_t run_first_ns;         /* first TEXT of the running job, for its tokens/s */
    int32_t run_tokens;            /* tokens of the running job seen so far */
    bool stop_called;
    bool joined;
    exo_runner_done_cb stop_done;
    void *stop_ud;

    /* Compute thread only. */
    struct exo_session *session;
    enum exo_chat_template tmpl;
    char *default_system; /* the template's injected system prompt, or NULL */
    int32_t *cached;      /* n_ctx entries: a prefix of the last prompt, known to be in the
                           * session's KV cache */
    size_t n_cached;
};

const char *exo_runner_state_name(enum exo_runner_state state)
{
    switch (state) {
    case EXO_RUNNER_WAITING:
        return "waiting";
    case EXO_RUNNER_LOADING:
        return "loading";
    case EXO_RUNNER_READY:
        return "ready";
    case EXO_RUNNER_FAILED:
        return "failed";
    }
    return "unknown";
}

static void job_free(struct exo_runner_job *job)
{
    if (!job)
        return;
    exo_buf_free(&job->done.text);
    exo_free(job->messages);
    exo_free(job->stop);
    exo_free(job->strings);
    exo_free(job);
}

/* Append an event and wake the loop. Called with mu held. */
static void post_locked(struct exo_runner *r, struct event *e)
{
    e->next = NULL;
    if (r->ev_tail)
        r->ev_tail->next = e;
    else
        r->ev_head = e;
    r->ev_tail = e;
    uv_async_send(&r->async);
}

/* The job is over: post its DONE event. Called with mu held; the caller never touches the job
 * afterwards (the loop frees it). */
static void finish_locked(struct exo_runner *r, struct exo_runner_job *job, int error)
{
    job->phase = JOB_DONE;
    job->done.job = job;
    job->done.ev.type = EXO_RUNNER_EVENT_DONE;
    job->done.ev.error = error;
    post_locked(r, &job->done);
}

/* The compute thread. ------------------------------------------------------------------------ */

static void publish(struct exo_runner *r, const struct exo_runner_info *info)
{
    pthread_mutex_lock(&r->mu);
    r->shared = *info;
    r->shared.state_ns = exo_clock_ns();
    r->shared_changed = true;
    uv_async_send(&r->async);
    pthread_mutex_unlock(&r->mu);
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static void load(struct exo_runner *r, char *path)
{
    struct exo_runner_info info = {.state = EXO_RUNNER_LOADING, .progress = -1.0};
    struct exo_diag diag = {{0}};
    snprintf(info.model_path, sizeof(info.model_path), "%s", path);
    snprintf(info.phase, sizeof(info.phase), "opening the model");
    publish(r, &info);

    uint64_t t0 = exo_clock_ns();
    int rc = exo_session_open(path, &r->cfg.session, &r->session, &diag);
    if (rc < 0) {
        info.state = EXO_RUNNER_FAILED;
        snprintf(info.error, sizeof(info.error), "%s", diag.msg[0] ? diag.msg : exo_strerror(rc));
        publish(r, &info);
        exo_free(path);
        return;
    }
    const struct exo_model *m = exo_session_model(r->session);
    struct exo_gguf_str jinja = {NULL, 0};
    exo_gguf_get_str(m->gguf, "tokenizer.chat_template", &jinja);
    r->tmpl = exo_chat_detect(jinja.ptr, (size_t)jinja.len, NULL);
    if (exo_chat_default_system(jinja.ptr, (size_t)jinja.len, &r->default_system) < 0)
        r->default_system = NULL;

    r->cached = exo_malloc(exo_session_n_ctx(r->session) * sizeof(*r->cached));
    r->n_cached = 0;
    if (!r->cached) {
        exo_session_close(r->session);
        r->session = NULL;
        info.state = EXO_RUNNER_FAILED;
        snprintf(info.error, sizeof(info.error), "%s", exo_strerror(EXO_ENOMEM));
        publish(r, &info);
        exo_free(path);
        return;
    }
    info.state = EXO_RUNNER_READY;
    info.phase[0] = '\0';
    info.progress = 1.0;
    snprintf(info.model_name, sizeof(info.model_name), "%s",
             m->name[0] ? m->name : base_name(path));
    snprintf(info.arch, sizeof(info.arch), "%s", m->arch->name);
    snprintf(info.chat_template, sizeof(info.chat_template), "%s", exo_chat_template_name(r->tmpl));
    info.n_ctx = exo_session_n_ctx(r->session);
    info.n_vocab = m->hp.n_vocab;
    info.n_layer = m->hp.n_layer;
    info.weight_bytes = m->weight_bytes;
    snprintf(info.device, sizeof(info.device), "%s", exo_session_device(r->session));
    info.load_ns = exo_clock_ns() - t0;
    publish(r, &info);
    exo_free(path);
}

struct gen_ctx {
    struct exo_runner *r;
    struct exo_runner_job *job;
};

static void on_token(void *ud, int32_t token)
{
    struct gen_ctx *g = ud;
    g->job->n_tokens++;
    if (g->r->cfg.on_step)
        g->r->cfg.on_step(g->r->cfg.ud, g->job->n_tokens);
}

/* Hand text to the loop, merged into the last event when that is still this job's TEXT. */
static bool on_text(void *ud, const char *text, size_t len)
{
    struct gen_ctx *g = ud;
    struct exo_runner *r = g->r;
    struct exo_runner_job *job = g->job;
    if (atomic_load(&job->cancel))
        return false;
    pthread_mutex_lock(&r->mu);
    struct event *e = r->ev_tail;
    if (!e || e->job != job || e->ev.type != EXO_RUNNER_EVENT_TEXT) {
        e = exo_calloc(1, sizeof(*e));
        if (e) {
            e->job = job;
            e->ev.type = EXO_RUNNER_EVENT_TEXT;
            exo_buf_init(&e->text, 0);
        }
    }
    bool ok = e != NULL;
    if (ok) {
        exo_buf_put(&e->text, text, len);
        e->ev.n_tokens = job->n_tokens;
        ok = e->text.err == 0;
        if (e != r->ev_tail)
            post_locked(r, e);
    }
    pthread_mutex_unlock(&r->mu);
    if (!ok)
        job->text_failed = true;
    return ok && !atomic_load(&job->cancel);
}

static void post_start(struct exo_runner *r, struct exo_runner_job *job, int32_t n_prompt)
{
    struct event *e = exo_calloc(1, sizeof(*e));
    if (!e)
        return; /* START only lets the consumer begin early; DONE still comes */
    e->job = job;
    e->ev.type = EXO_RUNNER_EVENT_START;
    e->ev.n_prompt = n_prompt;
    e->ev.n_ctx = exo_session_n_ctx(r->session);
    exo_buf_init(&e->text, 0);
    pthread_mutex_lock(&r->mu);
    post_locked(r, e);
    pthread_mutex_unlock(&r->mu);
}

/* Record that the session's cache holds tokens[0, n). */
static void remember(struct exo_runner *r, const int32_t *tokens, size_t n)
{
    memcpy(r->cached, tokens, n * sizeof(*tokens));
    r->n_cached = n;
}

/*
 * Evaluate all but the last PROMPT_SLICE-or-fewer tokens of the prompt in slices, looking at the
 * job's cancel flag between them, so that a long prompt is abandoned (a disconnect, a shutdown)
 * within one slice rather than after all of it. exo_session_generate reuses the longest prefix
 * in its cache, so a call with max_tokens 0 on tokens[0, end) evaluates only the new slice, and
 * the real call that follows only what is left. Slices start after the prefix shared with the
 * last prompt, which is cached already; were that record ever wrong, only the slicing would
 * suffer: the session computes its reuse from its own cache. Timings add up into acc.
 */
static int eval_prompt_slices(struct exo_runner *r, struct exo_runner_job *job,
                              const int32_t *tokens, size_t n, struct exo_generate_result *acc)
{
    size_t done = 0;
    while (done < r->n_cached && done < n && r->cached[done] == tokens[done])
        done++;
    struct exo_generate_params gp = {.sampling = job->sampling, .max_tokens = 0};
    while (done + PROMPT_SLICE < n - 1) {
        if (r->cfg.on_step)
            r->cfg.on_step(r->cfg.ud, -1);
        if (atomic_load(&job->cancel))
            return EXO_ECANCELED;
        struct exo_generate_result part;
        done += PROMPT_SLICE;
        int rc = exo_session_generate(r->session, tokens, done, &gp, &part);
        if (rc < 0)
            return rc;
        remember(r, tokens, done);
        acc->n_prompt_evaluated += part.n_prompt_evaluated;
        acc->prompt_ns += part.prompt_ns;
    }
    return 0;
}

/* Run one job on the session; returns the DONE error and fills job->done.ev. */
static int run_job(struct exo_runner *r, struct exo_runner_job *job)
{
    struct exo_runner_event *done = &job->done.ev;
    struct exo_buf text;
    int32_t *tokens = NULL;
    size_t n = 0;
    int rc = 0;

    exo_buf_init(&text, 0);
    done->n_ctx = exo_session_n_ctx(r->session);
    if (r->cfg.on_step)
        r->cfg.on_step(r->cfg.ud, 0);
    if (atomic_load(&job->cancel)) {
        rc = EXO_ECANCELED;
        goto out;
    }
    /* A chat template writes BOS itself where the model wants one; raw prompts get the
     * tokenizer's own rule. */
    bool chat = job->messages != NULL;
    if (chat) {
        rc = exo_chat_format(r->tmpl, r->default_system, job->messages, job->n_messages, true,
                             &text);
        if (rc == 0 && text.err)
            rc = text.err;
        if (rc < 0)
            goto out;
    } else {
        exo_buf_put(&text, job->prompt, strlen(job->prompt));
    }
    exo_buf_put(&text, "", 1);
    if (text.err) {
        rc = text.err;
        goto out;
    }
    rc = exo_session_tokenize(r->session, (const char *)text.data, !chat, &tokens, &n);
    if (rc < 0)
        goto out;
    done->n_prompt = (int32_t)(n > INT32_MAX ? INT32_MAX : n);
    if (n == 0) {
        rc = EXO_EINVAL;
        goto out;
    }
    if (n >= done->n_ctx) {
        rc = EXO_ETOOBIG;
        goto out;
    }
    post_start(r, job, (int32_t)n);

    struct exo_generate_result sliced = {0};
    rc = eval_prompt_slices(r, job, tokens, n, &sliced);
    if (rc < 0)
        goto out;
    struct gen_ctx g = {r, job};
    struct exo_generate_params gp = {
        .sampling = job->sampling,
        .max_tokens = job->max_tokens,
        .stop = job->stop,
        .n_stop = job->n_stop,
        .on_text = on_text,
        .on_token = on_token,
        .ud = &g,
    };
    rc = exo_session_generate(r->session, tokens, n, &gp, &done->result);
    done->result.n_prompt_evaluated += sliced.n_prompt_evaluated;
    done->result.prompt_ns += sliced.prompt_ns;
    if (rc == 0)
        remember(r, tokens, n);
    else
        r->n_cached = 0;
    if (rc == 0 && job->text_failed)
        rc = EXO_ENOMEM;
    else if (rc == 0 && done->result.finish == EXO_FINISH_CANCELED)
        rc = EXO_ECANCELED;
out:
    exo_buf_free(&text);
    exo_free(tokens);
    return rc;
}

static void *compute_main(void *arg)
{
    struct exo_runner *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->stopping && !r->load_path && !r->q_head)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->stopping)
            break;
        if (r->load_path) {
            char *path = r->load_path;
            r->load_path = NULL;
            pthread_mutex_unlock(&r->mu);
            load(r, path);
            pthread_mutex_lock(&r->mu);
            continue;
        }
        struct exo_runner_job *job = r->q_head;
        r->q_head = job->next;
        if (!r->q_head)
            r->q_tail = NULL;
        r->n_queued--;
        job->next = NULL;
        job->phase = JOB_RUNNING;
        job->done.ev.queued_ns = exo_clock_ns() - job->submitted_ns;
        r->running = job;
        pthread_mutex_unlock(&r->mu);

        int rc = run_job(r, job);

        pthread_mutex_lock(&r->mu);
        r->running = NULL;
        finish_locked(r, job, rc);
    }
    pthread_mutex_unlock(&r->mu);

    exo_session_close(r->session);
    r->session = NULL;
    exo_free(r->default_system);
    r->default_system = NULL;
    exo_free(r->cached);
    r->cached = NULL;

    pthread_mutex_lock(&r->mu);
    r->exited = true;
    uv_async_send(&r->async);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* The loop thread. --------------------------------------------------------------------------- */

static void on_async_closed(uv_handle_t *h)
{
    struct exo_runner *r = h->data;
    exo_runner_done_cb done = r->stop_done;
    void *ud = r->stop_ud;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    exo_free(r->load_path);
    exo_free(r);
    if (done)
        done(ud);
}

static void deliver(struct exo_runner *r, struct event *e)
{
    struct exo_runner_job *job = e->job;
    struct exo_runner_event *ev = &e->ev;
    struct exo_runner_stats *st = &r->stats;
    switch (ev->type) {
    case EXO_RUNNER_EVENT_START:
        r->run_first_ns = 0;
        r->run_tokens = 0;
        break;
    case EXO_RUNNER_EVENT_TEXT: {
        uint64_t now = exo_clock_ns();
        r->run_tokens = ev->n_tokens;
        if (!r->run_first_ns)
            r->run_first_ns = now;
        else if (ev->n_tokens > 1 && now > r->run_first_ns)
            st->tokens_per_s = (ev->n_tokens - 1) / ((double)(now - r->run_first_ns) / 1e9);
        ev->text = e->text.data ? (const char *)e->text.data : "";
        ev->len = e->text.len;
        break;
    }
    case EXO_RUNNER_EVENT_DONE:
        r->run_tokens = 0;
        st->generated_tokens += (uint64_t)ev->result.n_generated;
        st->prompt_tokens += (uint64_t)(ev->n_prompt > 0 ? ev->n_prompt : 0);
        if (ev->result.n_generated > 1 && ev->result.generate_ns)
            st->tokens_per_s =
                (ev->result.n_generated - 1) / ((double)ev->result.generate_ns / 1e9);
        if (ev->error == 0)
            st->jobs_done++;
        else if (ev->error == EXO_ECANCELED)
            st->jobs_canceled++;
        else
            st->jobs_failed++;
        break;
    }
    job->cb(job, ev, job->ud);
    if (ev->type == EXO_RUNNER_EVENT_DONE) {
        job_free(job);
    } else {
        exo_buf_free(&e->text);
        exo_free(e);
    }
}

static void on_async(uv_async_t *a)
{
    struct exo_runner *r = a->data;
    pthread_mutex_lock(&r->mu);
    struct event *list = r->ev_head;
    r->ev_head = r->ev_tail = NULL;
    bool changed = r->shared_changed;
    r->shared_changed = false;
    if (changed)
        r->info = r->shared;
    bool exited = r->exited;
    pthread_mutex_unlock(&r->mu);

    if (changed && r->cfg.on_state)
        r->cfg.on_state(r, r->cfg.ud);
    while (list) {
        struct event *e = list;
        list = e->next;
        deliver(r, e);
    }
    if (exited && r->stop_called && !r->joined) {
        r->joined = true;
        pthread_join(r->thread, NULL);
        uv_close((uv_handle_t *)&r->async, on_async_closed);
    }
}

int exo_runner_start(uv_loop_t *loop, const struct exo_runner_config *cfg, struct exo_runner **ret)
{
    if (!loop || !cfg || !ret)
        return EXO_EINVAL;
    struct exo_runner *r = exo_calloc(1, sizeof(*r));
    if (!r)
        return EXO_ENOMEM;
    r->loop = loop;
    r->cfg = *cfg;
    if (!r->cfg.max_queued)
        r->cfg.max_queued = DEFAULT_MAX_QUEUED;
    r->stats.max_queued = r->cfg.max_queued;
    r->info.state = EXO_RUNNER_WAITING;
    r->info.progress = -1.0;
    r->info.state_ns = exo_clock_ns();
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    int rc = uv_async_init(loop, &r->async, on_async);
    if (rc < 0) {
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        exo_free(r);
        return exo_error_from_errno(rc);
    }
    r->async.data = r;
    rc = pthread_create(&r->thread, NULL, compute_main, r);
    if (rc != 0) {
        /* The async handle exists, so the runner can only go through the loop. */
        r->stop_called = r->joined = true;
        uv_close((uv_handle_t *)&r->async, on_async_closed);
        return exo_error_from_errno(-rc);
    }
    *ret = r;
    return 0;
}

int exo_runner_load(struct exo_runner *r, const char *path)
{
    if (!r || !path || !path[0] || r->info.state != EXO_RUNNER_WAITING || r->stop_called)
        return EXO_EINVAL;
    char *copy = exo_strdup(path);
    if (!copy)
        return EXO_ENOMEM;
    pthread_mutex_lock(&r->mu);
    r->load_path = copy;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    /* Show LOADING at once rather than after the compute thread's first report. */
    r->info.state = EXO_RUNNER_LOADING;
    snprintf(r->info.model_path, sizeof(r->info.model_path), "%s", path);
    snprintf(r->info.phase, sizeof(r->info.phase), "opening the model");
    r->info.progress = -1.0;
    r->info.state_ns = exo_clock_ns();
    return 0;
}

void exo_runner_progress(struct exo_runner *r, const char *phase, double progress)
{
    if (!r || r->info.state != EXO_RUNNER_WAITING)
        return;
    if (strncmp(r->info.phase, phase ? phase : "", sizeof(r->info.phase)) != 0)
        r->info.state_ns = exo_clock_ns();
    snprintf(r->info.phase, sizeof(r->info.phase), "%s", phase ? phase : "");
    r->info.progress = progress > 1.0 ? 1.0 : progress;
}

void exo_runner_fail(struct exo_runner *r, const char *reason)
{
    if (!r || r->info.state != EXO_RUNNER_WAITING)
        return;
    r->info.state = EXO_RUNNER_FAILED;
    r->info.state_ns = exo_clock_ns();
    snprintf(r->info.error, sizeof(r->info.error), "%s", reason ? reason : "failed");
    if (r->cfg.on_state)
        r->cfg.on_state(r, r->cfg.ud);
}

const struct exo_runner_info *exo_runner_info(const struct exo_runner *r)
{
    return &r->info;
}

/* Copy spec into job: one block for every string, arrays for the pointers. */
static int copy_spec(struct exo_runner_job *job, const struct exo_runner_job_spec *spec)
{
    size_t total = 0;
    for (size_t i = 0; i < spec->n_messages; i++)
        total += strlen(spec->messages[i].role) + strlen(spec->messages[i].content) + 2;
    if (spec->prompt)
        total += strlen(spec->prompt) + 1;
    for (size_t i = 0; i < spec->n_stop; i++)
        total += strlen(spec->stop[i]) + 1;
    job->strings = exo_malloc(total ? total : 1);
    if (spec->n_messages)
        job->messages = exo_calloc(spec->n_messages, sizeof(*job->messages));
    if (spec->n_stop)
        job->stop = exo_calloc(spec->n_stop, sizeof(*job->stop));
    if (!job->strings || (spec->n_messages && !job->messages) || (spec->n_stop && !job->stop))
        return EXO_ENOMEM;
    char *p = job->strings;
#define COPY(dst, src)                 \
    do {                               \
        size_t len_ = strlen(src) + 1; \
        memcpy(p, src, len_);          \
        (dst) = p;                     \
        p += len_;                     \
    } while (0)
    for (size_t i = 0; i < spec->n_messages; i++) {
        COPY(job->messages[i].role, spec->messages[i].role);
        COPY(job->messages[i].content, spec->messages[i].content);
    }
    if (spec->prompt)
        COPY(job->prompt, spec->prompt);
    for (size_t i = 0; i < spec->n_stop; i++)
        COPY(job->stop[i], spec->stop[i]);
#undef COPY
    job->n_messages = spec->n_messages;
    job->n_stop = spec->n_stop;
    job->sampling = spec->sampling;
    job->max_tokens = spec->max_tokens;
    return 0;
}

static bool spec_valid(const struct exo_runner_job_spec *spec)
{
    if ((spec->n_messages > 0) == (spec->prompt != NULL) || (spec->n_messages && !spec->messages) ||
        (spec->n_stop && !spec->stop))
        return false;
    for (size_t i = 0; i < spec->n_messages; i++)
        if (!spec->messages[i].role || !spec->messages[i].content)
            return false;
    for (size_t i = 0; i < spec->n_stop; i++)
        if (!spec->stop[i])
            return false;
    return true;
}

int exo_runner_submit(struct exo_runner *r, const struct exo_runner_job_spec *spec,
                      exo_runner_event_cb cb, void *ud, struct exo_runner_job **ret_job)
{
    if (!r || !spec || !cb || !spec_valid(spec))
        return EXO_EINVAL;
    if (r->stop_called)
        return EXO_ECLOSED;
    if (r->info.state != EXO_RUNNER_READY)
        return EXO_EAGAIN;
    struct exo_runner_job *job = exo_calloc(1, sizeof(*job));
    if (!job)
        return EXO_ENOMEM;
    exo_buf_init(&job->done.text, 0);
    int rc = copy_spec(job, spec);
    if (rc < 0) {
        job_free(job);
        return rc;
    }
    job->runner = r;
    job->cb = cb;
    job->ud = ud;
    job->submitted_ns = exo_clock_ns();
    atomic_init(&job->cancel, false);

    pthread_mutex_lock(&r->mu);
    if (r->n_queued >= r->cfg.max_queued) {
        pthread_mutex_unlock(&r->mu);
        job_free(job);
        r->stats.jobs_rejected++;
        return EXO_EBUSY;
    }
    job->phase = JOB_QUEUED;
    if (r->q_tail)
        r->q_tail->next = job;
    else
        r->q_head = job;
    r->q_tail = job;
    r->n_queued++;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    r->stats.jobs_submitted++;
    if (ret_job)
        *ret_job = job;
    return 0;
}

/* Unlink a queued job and post its DONE. Called with mu held. */
static void drop_queued_locked(struct exo_runner *r, struct exo_runner_job *job)
{
    struct exo_runner_job **pp = &r->q_head, *prev = NULL;
    while (*pp && *pp != job) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = job->next;
    if (r->q_tail == job)
        r->q_tail = prev;
    job->next = NULL;
    r->n_queued--;
    job->done.ev.queued_ns = exo_clock_ns() - job->submitted_ns;
    finish_locked(r, job, EXO_ECANCELED);
}

void exo_runner_cancel(struct exo_runner_job *job)
{
    if (!job)
        return;
    struct exo_runner *r = job->runner;
    atomic_store(&job->cancel, true);
    pthread_mutex_lock(&r->mu);
    if (job->phase == JOB_QUEUED)
        drop_queued_locked(r, job);
    pthread_mutex_unlock(&r->mu);
}

void exo_runner_stats(struct exo_runner *r, struct exo_runner_stats *ret)
{
    pthread_mutex_lock(&r->mu);
    *ret = r->stats;
    ret->queued = r->n_queued;
    ret->busy = r->running != NULL;
    pthread_mutex_unlock(&r->mu);
    /* The running job's tokens count as they come, so a long generation shows in the totals. */
    ret->generated_tokens += (uint64_t)(r->run_tokens > 0 ? r->run_tokens : 0);
}

void exo_runner_stop(struct exo_runner *r, exo_runner_done_cb done, void *ud)
{
    if (!r || r->stop_called)
        return;
    r->stop_called = true;
    r->stop_done = done;
    r->stop_ud = ud;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    while (r->q_head)
        drop_queued_locked(r, r->q_head);
    if (r->running)
        atomic_store(&r->running->cancel, true);
    pthread_cond_signal(&r->cv);
    /* Wake the loop even when nothing is queued, so that an already exited thread is joined. */
    uv_async_send(&r->async);
    pthread_mutex_unlock(&r->mu);
}
