/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's HTTP API: the server and every route on it. It serves the OpenAI-compatible
 * routes (openai.h) from a runner, plus
 *   GET /healthz   public, always 200: the loop is alive (load balancers, systemd checks)
 *   GET /readyz    200 when the model is ready; 503 with the loading progress or the failure
 *   GET /metrics   Prometheus text: HTTP, runner and API families, then every provider added
 *                  with exo_api_add_metrics (the cluster and device sampler add theirs)
 *   GET /          the dashboard, and its files under /assets/ (static.h)
 * Other subsystems add routes of their own on exo_api_server(); their handlers' data must
 * outlive the API (stop the API first).
 *
 * Every function runs on the loop thread that owns the server and the runner.
 */
#ifndef EXO_API_API_H
#define EXO_API_API_H

#include <uv.h>

#include "api/http.h"

struct exo_api;
struct exo_openai_peers;
struct exo_prom;
struct exo_runner;

struct exo_api_config {
    struct exo_http_config http; /* listen address, port, token and caps; strings copied */
};

/* Write metric families for /metrics into prom (borrowed). Families must not repeat another
 * provider's names (the writer refuses duplicates). Returns 0 or the writer's error. */
typedef int (*exo_api_metrics_cb)(struct exo_prom *prom, void *ud);

typedef void (*exo_api_done_cb)(void *ud);

/* Start the server with loop and runner (both borrowed; they must outlive the API) and route
 * everything. *ret is owned by the caller and released by exo_api_stop. Returns 0, or the
 * server's error (EXO_EBUSY when the port is taken, EXO_EINVAL for a bad address), or
 * EXO_ENOMEM; nothing is left to stop on failure (a half-made server finishes stopping on the
 * loop by itself). */
int exo_api_start(uv_loop_t *loop, const struct exo_api_config *cfg, struct exo_runner *runner,
                  struct exo_api **ret);

/* The server, to add routes or open socket-less connections (tests). Borrowed from api. */
struct exo_http_server *exo_api_server(struct exo_api *api);

/* Add a metrics provider: cb(prom, ud) runs on every /metrics request, after the built-in
 * families and the providers added before. ud is borrowed. 0 or EXO_ENOMEM. */
int exo_api_add_metrics(struct exo_api *api, exo_api_metrics_cb cb, void *ud);

/* Serve requests for models that only other nodes serve by forwarding them there, and list
 * those models in /v1/models (see exo_openai_set_peers). peers is copied, its ud borrowed. */
void exo_api_set_peers(struct exo_api *api, const struct exo_openai_peers *peers);

/* Stop: new generation requests get 503 while the jobs in flight are canceled and their
 * responses ended; then the server closes every connection; then done(ud) is called from the
 * loop and api is freed. Consumes api; accepts NULL. */
void exo_api_stop(struct exo_api *api, exo_api_done_cb done, void *ud);

#endif
