/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The runner: loading, events on the loop, the bounded queue, cancel of queued and running jobs,
 * stop while generating. The test thread runs the loop; the runner's step hook ("gate") can hold
 * the compute thread at a chosen job and token so that queueing and cancelling are ordered
 * against generation exactly. Models: the tiny chat model (tiny-chat.h) written to a temporary
 * file, and the real default model when EXO_MODEL names it.
 *
 * Every wait is bounded: loop runs have a deadline, gate waits a timeout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/error.h"
#include "engine/runner.h"
#include "support/runner-gate.h"
#include "support/tiny-chat.h"

#define WAIT_MS  60000 /* generous: sanitizer builds on a busy machine are slow */
#define MAX_JOBS 8

/* The fixture. ------------------------------------------------------------------------------ */

struct fx;

struct job_log {
    struct fx *fx;
    struct exo_runner_job *job;
    int order; /* 1-based order in which DONE came, 0: not yet */
    int starts, texts;
    bool done;
    bool text_before_start, event_after_done;
    struct exo_runner_event last; /* the DONE event (pointers cleared) */
    struct exo_buf text;
};

struct fx {
    uv_loop_t loop;
    uv_timer_t deadline;
    bool timed_out;
    struct exo_runner *runner;
    struct gate gate;
    int state_calls;
    int dones;
    bool stopped;
    struct job_log jobs[MAX_JOBS];
    char path[512];
};

static void on_state(struct exo_runner *r, void *ud)
{
    struct fx *fx = ud;
    fx->state_calls++;
}

static void on_step(void *ud, int32_t n_tokens)
{
    struct fx *fx = ud;
    gate_step(&fx->gate, n_tokens);
}

static void on_event(struct exo_runner_job *job, const struct exo_runner_event *ev, void *ud)
{
    struct job_log *j = ud;
    if (j->done)
        j->event_after_done = true;
    switch (ev->type) {
    case EXO_RUNNER_EVENT_START:
        j->starts++;
        break;
    case EXO_RUNNER_EVENT_TEXT:
        if (!j->starts)
            j->text_before_start = true;
        j->texts++;
        exo_buf_put(&j->text, ev->text, ev->len);
        break;
    case EXO_RUNNER_EVENT_DONE:
        j->done = true;
        j->order = ++j->fx->dones;
        j->last = *ev;
        j->last.text = NULL;
        j->job = NULL;
        break;
    }
}

static void on_deadline(uv_timer_t *t)
{
    struct fx *fx = t->data;
    fx->timed_out = true;
}

/* Run the loop until cond(fx, arg) holds, failing the test after WAIT_MS. */
static void run_until(struct fx *fx, bool (*cond)(struct fx *fx, void *arg), void *arg)
{
    fx->timed_out = false;
    uv_timer_start(&fx->deadline, on_deadline, WAIT_MS, 0);
    while (!cond(fx, arg) && !fx->timed_out)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->deadline);
    assert_false(fx->timed_out);
}

static bool is_done(struct fx *fx, void *arg)
{
    return ((struct job_log *)arg)->done;
}

static bool is_ready(struct fx *fx, void *arg)
{
    enum exo_runner_state s = exo_runner_info(fx->runner)->state;
    return s == EXO_RUNNER_READY || s == EXO_RUNNER_FAILED;
}

static bool is_stopped(struct fx *fx, void *arg)
{
    return fx->stopped;
}

static void fx_start(struct fx *fx, uint32_t max_queued, uint32_t n_ctx)
{
    memset(fx, 0, sizeof(*fx));
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->deadline);
    fx->deadline.data = fx;
    gate_init(&fx->gate);
    for (int i = 0; i < MAX_JOBS; i++) {
        exo_buf_init(&fx->jobs[i].text, 0);
        fx->jobs[i].fx = fx;
    }
    struct exo_runner_config cfg = {
        .session = {.n_ctx = n_ctx, .n_threads = 1},
        .max_queued = max_queued,
        .on_state = on_state,
        .on_step = on_step,
        .ud = fx,
    };
    assert_int_equal(exo_runner_start(&fx->loop, &cfg, &fx->runner), 0);
}

static void on_stopped(void *ud)
{
    ((struct fx *)ud)->stopped = true;
}

static void fx_stop(struct fx *fx)
{
    gate_release(&fx->gate);
    exo_runner_stop(fx->runner, on_stopped, fx);
    run_until(fx, is_stopped, NULL);
    uv_close((uv_handle_t *)&fx->deadline, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    for (int i = 0; i < MAX_JOBS; i++)
        exo_buf_free(&fx->jobs[i].text);
    gate_destroy(&fx->gate);
    if (fx->path[0])
        unlink(fx->path);
}

static void fx_load_tiny(struct fx *fx)
{
    tiny_chat_model_path("runner", fx->path, sizeof(fx->path));
    tiny_chat_model_save(fx->path);
    assert_int_equal(exo_runner_load(fx->runner, fx->path), 0);
    run_until(fx, is_ready, NULL);
    assert_int_equal(exo_runner_info(fx->runner)->state, EXO_RUNNER_READY);
}

static const struct exo_chat_message hello[] = {{"system", "Be brief."}, {"user", "hello there"}};

static int submit_chat(struct fx *fx, int slot, int32_t max_tokens)
{
    struct exo_runner_job_spec spec = {.messages = hello, .n_messages = 2};
    exo_sampler_params_default(&spec.sampling);
    spec.sampling.temperature = 0;
    spec.max_tokens = max_tokens;
    return exo_runner_submit(fx->runner, &spec, on_event, &fx->jobs[slot], &fx->jobs[slot].job);
}

/* The tests. --------------------------------------------------------------------------------- */

static void test_runner_states(void **state)
{
    struct fx fx;
    fx_start(&fx, 0, 0);
    const struct exo_runner_info *info = exo_runner_info(fx.runner);
    assert_int_equal(info->state, EXO_RUNNER_WAITING);
    assert_string_equal(exo_runner_state_name(info->state), "waiting");
    assert_int_equal(submit_chat(&fx, 0, 4), EXO_EAGAIN);

    exo_runner_progress(fx.runner, "fetching", 0.25);
    assert_string_equal(exo_runner_info(fx.runner)->phase, "fetching");
    assert_true(exo_runner_info(fx.runner)->progress == 0.25);

    fx_load_tiny(&fx);
    info = exo_runner_info(fx.runner);
    assert_string_equal(info->model_name, "tiny test model");
    assert_string_equal(info->arch, "llama");
    assert_string_equal(info->chat_template, "chatml");
    assert_int_equal(info->n_ctx, 256);
    assert_int_equal(info->n_vocab, TINY_CHAT_VOCAB);
    assert_true(fx.state_calls >= 1);
    /* Loading twice, or after a model is ready, is refused. */
    assert_int_equal(exo_runner_load(fx.runner, fx.path), EXO_EINVAL);
    exo_runner_fail(fx.runner, "ignored once ready");
    assert_int_equal(exo_runner_info(fx.runner)->state, EXO_RUNNER_READY);
    fx_stop(&fx);
}

static void test_runner_load_failure(void **state)
{
    struct fx fx;
    fx_start(&fx, 0, 0);
    assert_int_equal(exo_runner_load(fx.runner, "/nonexistent/model.gguf"), 0);
    assert_int_equal(exo_runner_info(fx.runner)->state, EXO_RUNNER_LOADING);
    run_until(&fx, is_ready, NULL);
    const struct exo_runner_info *info = exo_runner_info(fx.runner);
    assert_int_equal(info->state, EXO_RUNNER_FAILED);
    assert_non_null(strstr(info->error, "model.gguf"));
    assert_int_equal(submit_chat(&fx, 0, 4), EXO_EAGAIN);
    fx_stop(&fx);

    /* Failing while waiting (a fetch that went wrong) needs no thread work. */
    fx_start(&fx, 0, 0);
    exo_runner_fail(fx.runner, "no network");
    assert_int_equal(exo_runner_info(fx.runner)->state, EXO_RUNNER_FAILED);
    assert_string_equal(exo_runner_info(fx.runner)->error, "no network");
    assert_int_equal(fx.state_calls, 1);
    assert_int_equal(exo_runner_load(fx.runner, "x.gguf"), EXO_EINVAL);
    fx_stop(&fx);
}

static void test_runner_events_in_order(void **state)
{
    struct fx fx;
    fx_start(&fx, 0, 0);
    fx_load_tiny(&fx);
    assert_int_equal(submit_chat(&fx, 0, 24), 0);
    assert_non_null(fx.jobs[0].job);
    run_until(&fx, is_done, &fx.jobs[0]);
    struct job_log *j = &fx.jobs[0];
    assert_int_equal(j->starts, 1);
    assert_false(j->text_before_start);
    assert_int_equal(j->last.error, 0);
    assert_true(j->last.n_prompt > 10);
    assert_int_equal(j->last.n_ctx, 256);
    assert_true(j->last.result.n_generated >= 1 && j->last.result.n_generated <= 24);
    assert_true(j->last.result.finish == EXO_FINISH_LENGTH ||
                j->last.result.finish == EXO_FINISH_STOP);

    /* The same greedy request again gives the same text (the cached prefix is reused). */
    assert_int_equal(submit_chat(&fx, 1, 24), 0);
    run_until(&fx, is_done, &fx.jobs[1]);
    assert_int_equal(fx.jobs[1].last.error, 0);
    assert_int_equal(fx.jobs[1].text.len, j->text.len);
    if (j->text.len)
        assert_memory_equal(fx.jobs[1].text.data, j->text.data, j->text.len);
    assert_true(fx.jobs[1].last.result.n_prompt_evaluated < fx.jobs[1].last.n_prompt);

    struct exo_runner_stats st;
    exo_runner_stats(fx.runner, &st);
    assert_int_equal(st.jobs_submitted, 2);
    assert_int_equal(st.jobs_done, 2);
    assert_int_equal(st.queued, 0);
    assert_false(st.busy);
    assert_int_equal(st.prompt_tokens, (uint64_t)(j->last.n_prompt + fx.jobs[1].last.n_prompt));
    assert_int_equal(st.generated_tokens,
                     (uint64_t)(j->last.result.n_generated + fx.jobs[1].last.result.n_generated));
    fx_stop(&fx);
}

/* The tiny model's greedy answer must run long enough for the cancel tests to hold it at a
 * token: if a different model made it end at once, these tests would prove nothing. */
static void check_long_answer(struct fx *fx, int slot, int32_t tokens)
{
    assert_int_equal(submit_chat(fx, slot, tokens), 0);
    run_until(fx, is_done, &fx->jobs[slot]);
    assert_int_equal(fx->jobs[slot].last.result.n_generated, tokens);
}

static void test_runner_queue_bound_and_order(void **state)
{
    struct fx fx;
    fx_start(&fx, 2, 0);
    fx_load_tiny(&fx);
    gate_hold(&fx.gate, 1, 0);
    assert_int_equal(submit_chat(&fx, 0, 3), 0);
    assert_true(gate_wait_held(&fx.gate)); /* job 0 is running, held before it starts */
    assert_int_equal(submit_chat(&fx, 1, 3), 0);
    assert_int_equal(submit_chat(&fx, 2, 3), 0);
    assert_int_equal(submit_chat(&fx, 3, 3), EXO_EBUSY); /* two wait already */
    struct exo_runner_stats st;
    exo_runner_stats(fx.runner, &st);
    assert_int_equal(st.queued, 2);
    assert_true(st.busy);
    assert_int_equal(st.jobs_rejected, 1);
    gate_release(&fx.gate);
    for (int i = 0; i < 3; i++)
        run_until(&fx, is_done, &fx.jobs[i]);
    /* First come, first served. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx.jobs[i].last.error, 0);
        assert_int_equal(fx.jobs[i].order, i + 1);
    }
    assert_int_equal(gate_jobs_started(&fx.gate), 3);
    fx_stop(&fx);
}

static void test_runner_cancel_queued(void **state)
{
    struct fx fx;
    fx_start(&fx, 4, 0);
    fx_load_tiny(&fx);
    gate_hold(&fx.gate, 1, 0);
    assert_int_equal(submit_chat(&fx, 0, 2), 0);
    assert_true(gate_wait_held(&fx.gate));
    assert_int_equal(submit_chat(&fx, 1, 2), 0);
    assert_int_equal(submit_chat(&fx, 2, 2), 0);
    exo_runner_cancel(fx.jobs[1].job);
    /* The DONE comes from the loop, never from inside cancel. */
    assert_false(fx.jobs[1].done);
    run_until(&fx, is_done, &fx.jobs[1]);
    assert_int_equal(fx.jobs[1].last.error, EXO_ECANCELED);
    assert_int_equal(fx.jobs[1].starts, 0);
    gate_release(&fx.gate);
    run_until(&fx, is_done, &fx.jobs[2]);
    run_until(&fx, is_done, &fx.jobs[0]);
    assert_int_equal(fx.jobs[0].last.error, 0);
    assert_int_equal(fx.jobs[2].last.error, 0);
    /* The canceled job never reached the compute thread. */
    assert_int_equal(gate_jobs_started(&fx.gate), 2);
    assert_false(fx.jobs[1].event_after_done);
    struct exo_runner_stats st;
    exo_runner_stats(fx.runner, &st);
    assert_int_equal(st.jobs_canceled, 1);
    assert_int_equal(st.jobs_done, 2);
    fx_stop(&fx);
}

static void test_runner_cancel_running(void **state)
{
    struct fx fx;
    fx_start(&fx, 0, 0);
    fx_load_tiny(&fx);
    check_long_answer(&fx, 0, 40);
    /* Hold the second job after its 5th token, cancel, release: it stops within a few tokens
     * (at the next text release; the tiny model's random bytes can hold back up to three
     * tokens of an unfinished UTF-8 character, a real model's text none). */
    gate_hold(&fx.gate, 2, 5);
    assert_int_equal(submit_chat(&fx, 1, 40), 0);
    assert_true(gate_wait_held(&fx.gate));
    exo_runner_cancel(fx.jobs[1].job);
    exo_runner_cancel(fx.jobs[1].job); /* twice is harmless */
    gate_release(&fx.gate);
    run_until(&fx, is_done, &fx.jobs[1]);
    struct job_log *j = &fx.jobs[1];
    assert_int_equal(j->last.error, EXO_ECANCELED);
    assert_int_equal(j->last.result.finish, EXO_FINISH_CANCELED);
    assert_true(j->last.result.n_generated >= 5 && j->last.result.n_generated <= 5 + 3);
    assert_true(gate_max_token(&fx.gate, 2) <= 5 + 3);
    /* The runner goes on with the next job. */
    assert_int_equal(submit_chat(&fx, 2, 4), 0);
    run_until(&fx, is_done, &fx.jobs[2]);
    assert_int_equal(fx.jobs[2].last.error, 0);
    fx_stop(&fx);
}

static void test_runner_stop_while_generating(void **state)
{
    struct fx fx;
    fx_start(&fx, 4, 0);
    fx_load_tiny(&fx);
    check_long_answer(&fx, 0, 30);
    gate_hold(&fx.gate, 2, 3);
    assert_int_equal(submit_chat(&fx, 1, 30), 0);
    assert_int_equal(submit_chat(&fx, 2, 30), 0);
    assert_true(gate_wait_held(&fx.gate));
    exo_runner_stop(fx.runner, on_stopped, &fx);
    assert_int_equal(submit_chat(&fx, 3, 3), EXO_ECLOSED);
    gate_release(&fx.gate);
    run_until(&fx, is_stopped, NULL);
    /* Every job had its DONE before the runner reported stopped. */
    assert_true(fx.jobs[1].done && fx.jobs[2].done);
    assert_int_equal(fx.jobs[1].last.error, EXO_ECANCELED);
    assert_true(fx.jobs[1].last.result.n_generated <= 3 + 3);
    assert_int_equal(fx.jobs[2].last.error, EXO_ECANCELED);
    assert_int_equal(fx.jobs[2].starts, 0);
    /* fx_stop without a second stop. */
    uv_close((uv_handle_t *)&fx.deadline, NULL);
    uv_run(&fx.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx.loop), 0);
    for (int i = 0; i < MAX_JOBS; i++)
        exo_buf_free(&fx.jobs[i].text);
    gate_destroy(&fx.gate);
    unlink(fx.path);
}

static void test_runner_stop_idle_and_waiting(void **state)
{
    struct fx fx;
    /* Never loaded. */
    fx_start(&fx, 0, 0);
    fx_stop(&fx);
    /* Stopped while the model loads: the load finishes or is skipped, then the thread exits. */
    fx_start(&fx, 0, 0);
    tiny_chat_model_path("runner-stop", fx.path, sizeof(fx.path));
    tiny_chat_model_save(fx.path);
    assert_int_equal(exo_runner_load(fx.runner, fx.path), 0);
    fx_stop(&fx);
    /* exo_runner_stop accepts NULL. */
    exo_runner_stop(NULL, NULL, NULL);
}

static void test_runner_bad_prompts(void **state)
{
    struct fx fx;
    fx_start(&fx, 0, 64);
    fx_load_tiny(&fx);
    assert_int_equal(exo_runner_info(fx.runner)->n_ctx, 64);

    /* A prompt longer than the context. */
    char long_prompt[2048];
    memset(long_prompt, 'z', sizeof(long_prompt) - 1);
    long_prompt[sizeof(long_prompt) - 1] = '\0';
    struct exo_runner_job_spec spec = {.prompt = long_prompt, .max_tokens = 4};
    exo_sampler_params_default(&spec.sampling);
    assert_int_equal(exo_runner_submit(fx.runner, &spec, on_event, &fx.jobs[0], NULL), 0);
    run_until(&fx, is_done, &fx.jobs[0]);
    assert_int_equal(fx.jobs[0].last.error, EXO_ETOOBIG);
    assert_true(fx.jobs[0].last.n_prompt >= 64);
    assert_int_equal(fx.jobs[0].last.n_ctx, 64);
    assert_int_equal(fx.jobs[0].starts, 0);

    /* An empty prompt has no tokens (this vocabulary adds no BOS). */
    spec.prompt = "";
    assert_int_equal(exo_runner_submit(fx.runner, &spec, on_event, &fx.jobs[1], NULL), 0);
    run_until(&fx, is_done, &fx.jobs[1]);
    assert_int_equal(fx.jobs[1].last.error, EXO_EINVAL);

    /* Raw prompts with stop strings work too; a generation that fills the context stops with
     * "length". */
    const char *stops[] = {"\xff\xfe never"};
    spec.prompt = "the";
    spec.max_tokens = -1;
    spec.stop = stops;
    spec.n_stop = 1;
    assert_int_equal(exo_runner_submit(fx.runner, &spec, on_event, &fx.jobs[2], NULL), 0);
    run_until(&fx, is_done, &fx.jobs[2]);
    assert_int_equal(fx.jobs[2].last.error, 0);

    /* Misuse. */
    struct exo_runner_job_spec bad = {0};
    assert_int_equal(exo_runner_submit(fx.runner, &bad, on_event, NULL, NULL), EXO_EINVAL);
    bad.prompt = "x";
    bad.messages = hello;
    bad.n_messages = 2;
    assert_int_equal(exo_runner_submit(fx.runner, &bad, on_event, NULL, NULL), EXO_EINVAL);
    bad.messages = NULL;
    bad.n_messages = 0;
    assert_int_equal(exo_runner_submit(fx.runner, &bad, NULL, NULL, NULL), EXO_EINVAL);
    exo_runner_cancel(NULL);
    fx_stop(&fx);
}

static int submit_prompt(struct fx *fx, int slot, const char *prompt, int32_t max_tokens)
{
    struct exo_runner_job_spec spec = {.prompt = prompt, .max_tokens = max_tokens};
    exo_sampler_params_default(&spec.sampling);
    spec.sampling.temperature = 0;
    return exo_runner_submit(fx->runner, &spec, on_event, &fx->jobs[slot], &fx->jobs[slot].job);
}

/* A long prompt is evaluated in slices: the answer is the same as in one piece, and a cancel
 * between slices stops it before the rest of the prompt runs. */
static void test_runner_prompt_slices(void **state)
{
    struct fx fx;
    char prompt[201];
    memset(prompt, 'z', 200); /* 200 byte tokens: no merge applies */
    prompt[200] = '\0';
    fx_start(&fx, 0, 0);
    fx_load_tiny(&fx);

    assert_int_equal(submit_prompt(&fx, 0, prompt, 8), 0);
    run_until(&fx, is_done, &fx.jobs[0]);
    assert_int_equal(fx.jobs[0].last.error, 0);
    assert_int_equal(fx.jobs[0].last.n_prompt, 200);
    assert_int_equal(fx.jobs[0].last.result.n_prompt_evaluated, 200);
    /* Again after another prompt: evaluated afresh (in slices, from the shared "z" prefix). */
    assert_int_equal(submit_prompt(&fx, 1, "hello", 2), 0);
    run_until(&fx, is_done, &fx.jobs[1]);
    assert_int_equal(submit_prompt(&fx, 2, prompt, 8), 0);
    run_until(&fx, is_done, &fx.jobs[2]);
    assert_int_equal(fx.jobs[2].text.len, fx.jobs[0].text.len);
    if (fx.jobs[0].text.len)
        assert_memory_equal(fx.jobs[2].text.data, fx.jobs[0].text.data, fx.jobs[0].text.len);
    /* And once more, all of it cached: only the last token runs. */
    assert_int_equal(submit_prompt(&fx, 3, prompt, 8), 0);
    run_until(&fx, is_done, &fx.jobs[3]);
    assert_int_equal(fx.jobs[3].last.result.n_prompt_evaluated, 1);
    assert_int_equal(fx.jobs[3].text.len, fx.jobs[0].text.len);

    /* Canceled at the first slice boundary of a fresh prompt. */
    assert_int_equal(submit_prompt(&fx, 4, "hello", 1), 0);
    run_until(&fx, is_done, &fx.jobs[4]);
    gate_hold(&fx.gate, 6, -1);
    assert_int_equal(submit_prompt(&fx, 5, prompt, 8), 0);
    assert_true(gate_wait_held(&fx.gate));
    exo_runner_cancel(fx.jobs[5].job);
    gate_release(&fx.gate);
    run_until(&fx, is_done, &fx.jobs[5]);
    assert_int_equal(fx.jobs[5].last.error, EXO_ECANCELED);
    assert_int_equal(fx.jobs[5].starts, 1);
    assert_int_equal(fx.jobs[5].last.result.n_generated, 0);
    assert_true(fx.jobs[5].last.result.n_prompt_evaluated < 200);
    fx_stop(&fx);
}

static void test_runner_alloc_failures(void **state)
{
    struct fx fx;
    fx_start(&fx, 0, 0);
    fx_load_tiny(&fx);
    /* Submitting fails cleanly at each of its allocations. */
    int fails = 0;
    for (long n = 0; n < 8; n++) {
        exo_alloc_fail_after(n);
        int rc = submit_chat(&fx, 0, 2);
        exo_alloc_fail_after(-1);
        if (rc == 0) {
            run_until(&fx, is_done, &fx.jobs[0]);
            break;
        }
        assert_int_equal(rc, EXO_ENOMEM);
        fails++;
    }
    assert_true(fails >= 1);
    fx_stop(&fx);
}

/* The real default model: cancel stops within exactly one token, as its text is whole. */
static void test_runner_real_model(void **state)
{
    const char *model = getenv("EXO_MODEL");
    if (!model || access(model, R_OK) != 0) {
        skip();
        return;
    }
    struct fx fx;
    fx_start(&fx, 0, 0);
    assert_int_equal(exo_runner_load(fx.runner, model), 0);
    run_until(&fx, is_ready, NULL);
    assert_int_equal(exo_runner_info(fx.runner)->state, EXO_RUNNER_READY);
    assert_string_equal(exo_runner_info(fx.runner)->chat_template, "chatml");
    gate_hold(&fx.gate, 1, 4);
    struct exo_chat_message msgs[] = {{"user", "Write a long story about a lighthouse."}};
    struct exo_runner_job_spec spec = {.messages = msgs, .n_messages = 1, .max_tokens = 64};
    exo_sampler_params_default(&spec.sampling);
    spec.sampling.temperature = 0;
    assert_int_equal(exo_runner_submit(fx.runner, &spec, on_event, &fx.jobs[0], &fx.jobs[0].job),
                     0);
    assert_true(gate_wait_held(&fx.gate));
    exo_runner_cancel(fx.jobs[0].job);
    gate_release(&fx.gate);
    run_until(&fx, is_done, &fx.jobs[0]);
    assert_int_equal(fx.jobs[0].last.error, EXO_ECANCELED);
    assert_int_equal(fx.jobs[0].last.result.n_generated, 4);
    assert_int_equal(fx.jobs[0].starts, 1);
    fx_stop(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runner_states),
        cmocka_unit_test(test_runner_load_failure),
        cmocka_unit_test(test_runner_events_in_order),
        cmocka_unit_test(test_runner_queue_bound_and_order),
        cmocka_unit_test(test_runner_cancel_queued),
        cmocka_unit_test(test_runner_cancel_running),
        cmocka_unit_test(test_runner_stop_while_generating),
        cmocka_unit_test(test_runner_stop_idle_and_waiting),
        cmocka_unit_test(test_runner_bad_prompts),
        cmocka_unit_test(test_runner_prompt_slices),
        cmocka_unit_test(test_runner_alloc_failures),
        cmocka_unit_test(test_runner_real_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
