/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's HTTP API (see api.h): the server, the health, readiness and metrics routes, and
 * the OpenAI-compatible routes on top.
 *
 * Threads: everything runs on the loop thread; /healthz never waits for anything, so it answers
 * as fast as the loop turns, whatever the compute thread is doing.
 */
#include "api/api.h"

#include <stdio.h>
#include <string.h>

#include "api/json.h"
#include "api/openai.h"
#include "api/prom.h"
#include "api/static.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/error.h"
#include "engine/runner.h"

struct provider {
    exo_api_metrics_cb cb;
    void *ud;
};

struct exo_api {
    uv_loop_t *loop;             /* borrowed */
    struct exo_http_server *srv; /* owned */
    struct exo_runner *runner;   /* borrowed */
    struct exo_openai *openai;   /* owned */
    struct provider *providers;
    size_t n_providers;
    bool stopping;
    exo_api_done_cb done;
    void *done_ud;
};

static void h_healthz(struct exo_http_request *req, void *ud)
{
    exo_http_respond_json_str(req, 200, "{\"status\":\"ok\"}");
}

static void put_str_field(struct exo_buf *b, const char *name, const char *value)
{
    exo_buf_printf(b, ",\"%s\":", name);
    exo_json_put_string(b, value, strlen(value));
}

static void h_readyz(struct exo_http_request *req, void *ud)
{
    struct exo_api *api = ud;
    const struct exo_runner_info *info = exo_runner_info(api->runner);
    bool ready = info->state == EXO_RUNNER_READY;
    struct exo_buf b;
    exo_buf_init(&b, 0);
    exo_buf_printf(&b, "{\"status\":\"%s\"", exo_runner_state_name(info->state));
    if (info->model_path[0])
        put_str_field(&b, "model_path", info->model_path);
    if (ready) {
        put_str_field(&b, "model", info->model_name);
        put_str_field(&b, "arch", info->arch);
        put_str_field(&b, "chat_template", info->chat_template);
        put_str_field(&b, "device", info->device);
        exo_buf_printf(&b, ",\"context_length\":%u,\"weight_bytes\":%llu,\"load_seconds\":%.3f",
                       info->n_ctx, (unsigned long long)info->weight_bytes,
                       (double)info->load_ns / 1e9);
    } else {
        if (info->phase[0])
            put_str_field(&b, "phase", info->phase);
        if (info->progress >= 0)
            exo_buf_printf(&b, ",\"progress\":%.3f", info->progress);
        else
            exo_buf_printf(&b, ",\"progress\":null");
        if (info->state == EXO_RUNNER_FAILED)
            put_str_field(&b, "error", info->error);
    }
    exo_buf_printf(&b, ",\"seconds_in_state\":%.1f}",
                   (double)(exo_clock_ns() - info->state_ns) / 1e9);
    if (b.err) {
        exo_http_respond_error(req, 500, "out of memory");
    } else {
        if (!ready)
            exo_http_add_header(req, "Retry-After", "5");
        exo_http_respond(req, ready ? 200 : 503, "application/json", b.data, b.len);
    }
    exo_buf_free(&b);
}

static void runner_metrics(struct exo_api *api, struct exo_prom *p)
{
    struct exo_runner_stats st;
    exo_runner_stats(api->runner, &st);
    const struct exo_runner_info *info = exo_runner_info(api->runner);

    exo_prom_family(p, "exo_model_ready", EXO_PROM_GAUGE,
                    "1 when the model is loaded and serving, else 0.");
    exo_prom_sample(p, NULL, 0, info->state == EXO_RUNNER_READY);
    exo_prom_family(p, "exo_runner_queue_depth", EXO_PROM_GAUGE,
                    "Generation jobs waiting behind the running one.");
    exo_prom_sample_u64(p, NULL, 0, st.queued);
    exo_prom_family(p, "exo_runner_queue_capacity", EXO_PROM_GAUGE,
                    "Jobs that may wait before requests are refused with 429.");
    exo_prom_sample_u64(p, NULL, 0, st.max_queued);
    exo_prom_family(p, "exo_runner_busy", EXO_PROM_GAUGE, "1 while a job is running.");
    exo_prom_sample(p, NULL, 0, st.busy);
    exo_prom_family(p, "exo_runner_jobs_total", EXO_PROM_COUNTER,
                    "Generation jobs finished, by result.");
    static const char *const results[] = {"done", "canceled", "failed"};
    const uint64_t counts[] = {st.jobs_done, st.jobs_canceled, st.jobs_failed};
    for (size_t i = 0; i < 3; i++) {
        struct exo_prom_label l = {"result", results[i]};
        exo_prom_sample_u64(p, &l, 1, counts[i]);
    }
    exo_prom_family(p, "exo_runner_jobs_rejected_total", EXO_PROM_COUNTER,
                    "Generation jobs refused because the queue was full (429).");
    exo_prom_sample_u64(p, NULL, 0, st.jobs_rejected);
    exo_prom_family(p, "exo_runner_prompt_tokens_total", EXO_PROM_COUNTER,
                    "Prompt tokens of finished jobs.");
    exo_prom_sample_u64(p, NULL, 0, st.prompt_tokens);
    exo_prom_family(p, "exo_runner_generated_tokens_total", EXO_PROM_COUNTER,
                    "Tokens generated, counting the running job's so far.");
    exo_prom_sample_u64(p, NULL, 0, st.generated_tokens);
    exo_prom_family(p, "exo_runner_tokens_per_second", EXO_PROM_GAUGE,
                    "Decode speed of the running job, or of the last one.");
    exo_prom_sample(p, NULL, 0, st.tokens_per_s);
    exo_prom_family(p, "exo_api_requests_in_flight", EXO_PROM_GAUGE,
                    "OpenAI-compatible requests queued or generating.");
    exo_prom_sample_u64(p, NULL, 0, exo_openai_in_flight(api->openai));
}

static void h_metrics(struct exo_http_request *req, void *ud)
{
    struct exo_api *api = ud;
    struct exo_buf out;
    struct exo_prom prom;
    struct exo_http_stats hs;
    exo_buf_init(&out, 0);
    exo_prom_init(&prom, &out);
    exo_http_server_stats(api->srv, &hs);
    exo_http_stats_prom(&hs, &prom);
    runner_metrics(api, &prom);
    for (size_t i = 0; i < api->n_providers && !prom.err; i++)
        api->providers[i].cb(&prom, api->providers[i].ud);
    if (prom.err)
        exo_http_respond_error(req, 500, exo_strerror(prom.err));
    else
        exo_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    exo_prom_free(&prom);
    exo_buf_free(&out);
}

int exo_api_start(uv_loop_t *loop, const struct exo_api_config *cfg, struct exo_runner *runner,
                  struct exo_api **ret)
{
    if (!loop || !cfg || !runner || !ret)
        return EXO_EINVAL;
    struct exo_api *api = exo_calloc(1, sizeof(*api));
    if (!api)
        return EXO_ENOMEM;
    api->loop = loop;
    api->runner = runner;
    int rc = exo_http_server_start(loop, &cfg->http, &api->srv);
    if (rc < 0) {
        exo_free(api);
        return rc;
    }
    struct exo_http_server *srv = api->srv;
    if ((rc = exo_http_route(srv, EXO_HTTP_GET, "/healthz", EXO_HTTP_ROUTE_PUBLIC, h_healthz,
                             api)) < 0 ||
        (rc = exo_http_route(srv, EXO_HTTP_GET, "/readyz", 0, h_readyz, api)) < 0 ||
        (rc = exo_http_route(srv, EXO_HTTP_GET, "/metrics", 0, h_metrics, api)) < 0 ||
        (rc = exo_static_register(srv, &exo_static_web)) < 0 ||
        (rc = exo_openai_register(srv, runner, &api->openai)) < 0) {
        /* Nothing was served yet: the routes die with the server. */
        exo_http_server_stop(srv, NULL, NULL);
        exo_free(api);
        return rc;
    }
    *ret = api;
    return 0;
}

struct exo_http_server *exo_api_server(struct exo_api *api)
{
    return api->srv;
}

void exo_api_set_peers(struct exo_api *api, const struct exo_openai_peers *peers)
{
    exo_openai_set_peers(api->openai, api->loop, peers);
}

int exo_api_add_metrics(struct exo_api *api, exo_api_metrics_cb cb, void *ud)
{
    if (!api || !cb)
        return EXO_EINVAL;
    struct provider *grown =
        exo_realloc(api->providers, (api->n_providers + 1) * sizeof(*api->providers));
    if (!grown)
        return EXO_ENOMEM;
    api->providers = grown;
    api->providers[api->n_providers++] = (struct provider){cb, ud};
    return 0;
}

static void on_server_stopped(void *ud)
{
    struct exo_api *api = ud;
    exo_api_done_cb done = api->done;
    void *done_ud = api->done_ud;
    exo_openai_free(api->openai);
    exo_free(api->providers);
    exo_free(api);
    if (done)
        done(done_ud);
}

/* Every generation request has ended its response: now the connections can go. */
static void on_drained(void *ud)
{
    struct exo_api *api = ud;
    exo_http_server_stop(api->srv, on_server_stopped, api);
}

void exo_api_stop(struct exo_api *api, exo_api_done_cb done, void *ud)
{
    if (!api || api->stopping)
        return;
    api->stopping = true;
    api->done = done;
    api->done_ud = ud;
    exo_openai_stop(api->openai, on_drained, api);
}
