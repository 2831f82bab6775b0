/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's devices component: what this node computes with, how fast, and what every node
 * is doing now. docs/api.md has the JSON shapes, docs/internals/devices.md the design.
 *
 *   - Detection runs at start and every REDETECT_MS, scoring (cached in the state directory)
 *     once after the first detection. Each device is a replicated record of kind `devices`
 *     (key: its id), the CPU's score one of kind `scores` (key "cpu0"), so every node's API
 *     can list every node's devices; a record changes only when detection finds a device that
 *     appeared, went or changed (exo_device_list_diff), or when telemetry finds a GPU lost.
 *   - The sampler (device/telemetry.h) takes a sample a second; each one is gossiped as a
 *     digest on DIGEST_CHANNEL and streamed as a `telemetry` event. Peers' digests are kept in
 *     a table (device/peers.h) for /api/v1/nodes, /metrics and their own `telemetry` events.
 *   - Once a second the component looks at the replicated device records and streams a
 *     `device` event for each one that appeared, went or changed, whichever node it is on.
 *   - GET /api/v1/telemetry?node=OTHER is passed on to that node's API (api/forward.h) and its
 *     answer streamed back; it must begin within FETCH_TIMEOUT_MS.
 *   - The engine's tokens: the runner counts them on the loop (exo_runner_stats); each sample
 *     adds what it counted since the last one to the sampler's token counter, so the rate in a
 *     sample is that of the second before it.
 * EXO_TELEMETRY=off leaves the sampler and the digests out (bench/telemetry-overhead-daemon
 * compares the two in one run).
 *
 * Threads: everything here runs on the loop thread, except detection and scoring, which run
 * on libuv's pool (uv_queue_work) on data that only their job holds until the
 * completion callback runs on the loop again. Routes, the message handler and the metrics
 * writer get the daemon, not the component, so they answer 503 once it has stopped.
 */
#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/api.h"
#include "api/forward.h"
#include "api/http.h"
#include "api/prom.h"
#include "cli/daemon-int.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "device/detect.h"
#include "device/digest.h"
#include "device/peers.h"
#include "device/score.h"
#include "device/telemetry.h"
#include "engine/runner.h"

#define DIGEST_CHANNEL   0x54  /* 'T': first byte of a gossiped telemetry digest */
#define TICK_MS          1000  /* looks at the device records, expires digests */
#define REDETECT_MS      60000 /* devices that come and go */
#define DIGEST_EXPIRE_MS 10000 /* a node silent this long has no current telemetry */
#define FETCH_TIMEOUT_MS 1500  /* a node that answers at all answers this at once */

/* Detection, or scoring (once, after the first detection), on a pool thread. */
struct probe {
    uv_work_t work;
    struct daemon_devices *dd;
    struct exo_statedir *statedir; /* borrowed; NULL: detect */
    struct exo_device cpu;         /* to score */
    int32_t n_threads;
    atomic_bool cancel;          /* a stop ends the measurement early */
    struct exo_device_list list; /* detected */
    struct exo_score score;
    bool scored, cached;
    int rc;
    struct exo_diag diag;
};

struct daemon_devices {
    struct daemon *d;
    struct exo_device_list *list; /* this node's; NULL until the first detection */
    struct exo_score score;
    bool have_score;
    char lost[EXO_DEVICE_MAX][EXO_DEVICE_ID_SIZE]; /* GPUs whose telemetry stopped answering */
    size_t n_lost;
    uint64_t devices_gen;
    bool telemetry_on;
    struct exo_telemetry *telemetry;
    struct exo_token_counter tokens; /* the sampler reads it on the pool: lives until stopped */
    uint64_t tokens_fed;             /* runner tokens already added */
    struct exo_peers *peers;
    struct probe *probe; /* in flight */
    uv_timer_t tick;
    uint64_t next_detect_ms;
    bool stopping, tick_closed;
    struct {
        uint64_t sent, send_failed, kept, stale, malformed;
    } digests;
};

static void finish_stop(struct daemon_devices *dd);

/* ---- this node's records -------------------------------------------------------------------- */

static bool is_lost(const struct daemon_devices *dd, const char *id)
{
    for (size_t i = 0; i < dd->n_lost; i++)
        if (strcmp(dd->lost[i], id) == 0)
            return true;
    return false;
}

/* A device as this node reports it: device.h's shape plus "lost". Owned by the caller. */
static cJSON *device_json(const struct daemon_devices *dd, const struct exo_device *dev)
{
    cJSON *j = exo_device_to_json(dev);
    if (j && !cJSON_AddBoolToObject(j, "lost", is_lost(dd, dev->id))) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static void report_device(struct daemon_devices *dd, const struct exo_device *dev)
{
    cJSON *j = device_json(dd, dev);
    if (j)
        cluster_report(dd->d, EXO_STATE_KIND_DEVICES, dev->id, j);
}

static void on_list_diff(void *ud, enum exo_device_event ev, const struct exo_device *dev)
{
    struct daemon_devices *dd = ud;
    exo_log(EXO_LOG_INFO, "devices", "%s %s (%s)", dev->id, exo_device_event_name(ev), dev->name);
    if (ev == EXO_DEVICE_EVENT_DISAPPEARED)
        cluster_report_delete(dd->d, EXO_STATE_KIND_DEVICES, dev->id);
    else
        report_device(dd, dev);
}

/* A GPU's telemetry stopped answering, or answers again: its record says so. */
static void on_gpu_lost(void *ud, const char *id, bool lost)
{
    struct daemon_devices *dd = ud;
    bool was = is_lost(dd, id);
    if (lost == was)
        return;
    if (lost && dd->n_lost < EXO_DEVICE_MAX) {
        snprintf(dd->lost[dd->n_lost++], EXO_DEVICE_ID_SIZE, "%s", id);
    } else if (!lost) {
        for (size_t i = 0; i < dd->n_lost; i++)
            if (strcmp(dd->lost[i], id) == 0)
                memmove(dd->lost[i], dd->lost[--dd->n_lost], EXO_DEVICE_ID_SIZE);
    }
    const struct exo_device *dev = dd->list ? exo_device_list_find(dd->list, id) : NULL;
    if (dev) {
        dd->devices_gen++;
        report_device(dd, dev);
    }
}

/* ---- telemetry ------------------------------------------------------------------------------ */

static void publish_telemetry(struct daemon *d, const char *node, cJSON *sample)
{
    cJSON *j = cJSON_CreateObject();
    char *text = NULL;
    if (j && sample && cJSON_AddStringToObject(j, "node", node) &&
        cJSON_AddItemToObject(j, "sample", sample)) {
        sample = NULL;
        text = cJSON_PrintUnformatted(j);
    }
    if (text)
        cluster_sse_publish(d, "telemetry", NULL, text);
    cJSON_free(text);
    cJSON_Delete(sample);
    cJSON_Delete(j);
}

/* Add the tokens the runner counted since the last sample (see the top of the file). */
static void feed_tokens(struct daemon_devices *dd)
{
    struct exo_runner_stats st;
    if (!dd->d->runner)
        return;
    exo_runner_stats(dd->d->runner, &st);
    uint64_t total = st.prompt_tokens + st.generated_tokens;
    if (total > dd->tokens_fed)
        exo_token_counter_add(&dd->tokens, total - dd->tokens_fed);
    dd->tokens_fed = total;
}

static void on_sample(void *ud, const struct exo_telemetry_sample *s)
{
    struct daemon_devices *dd = ud;
    struct exo_digest dg;
    uint8_t wire[1 + EXO_DIGEST_MAX];
    struct exo_buf b;
    feed_tokens(dd);
    exo_digest_from_sample(s, dd->devices_gen, &dg);
    exo_buf_init(&b, EXO_DIGEST_MAX);
    if (exo_digest_encode(&dg, &b) == 0) {
        wire[0] = DIGEST_CHANNEL;
        memcpy(wire + 1, b.data, b.len);
        if (cluster_broadcast(dd->d, wire, 1 + b.len) == 0)
            dd->digests.sent++;
        else
            dd->digests.send_failed++;
    }
    exo_buf_free(&b);
    publish_telemetry(dd->d, dd->d->node_hex, exo_telemetry_sample_to_json(s));
}

static void on_digest(void *ud, const uint8_t from[EXO_NODE_ID_SIZE], const uint8_t *data,
                      size_t len, bool broadcast)
{
    struct daemon *d = ud;
    struct daemon_devices *dd = d->devices;
    struct exo_digest dg;
    struct exo_diag diag = {{0}};
    if (!dd || dd->stopping || memcmp(from, d->node_id, EXO_NODE_ID_SIZE) == 0)
        return;
    if (exo_digest_decode(data + 1, len - 1, &dg, &diag) < 0) {
        dd->digests.malformed++;
        return;
    }
    if (exo_peers_put_digest(dd->peers, from, &dg, exo_clock_wall_ms()) < 0) {
        dd->digests.stale++;
        return;
    }
    dd->digests.kept++;
    char hex[2 * EXO_NODE_ID_SIZE + 1];
    exo_node_id_hex(from, hex);
    publish_telemetry(d, hex, exo_digest_to_json(&dg));
}

static void on_telemetry_stopped(void *ud)
{
    struct daemon_devices *dd = ud;
    dd->telemetry = NULL;
    finish_stop(dd);
}

static void start_telemetry(struct daemon_devices *dd)
{
    struct exo_telemetry_config cfg = {
        .source = {.devices = dd->list, .tokens = &dd->tokens},
        .on_sample = on_sample,
        .on_device = on_gpu_lost,
        .on_stopped = on_telemetry_stopped,
        .ud = dd,
    };
    int rc = exo_telemetry_start(&dd->d->loop, &cfg, &dd->telemetry);
    if (rc < 0) {
        dd->telemetry = NULL;
        exo_log(EXO_LOG_WARN, "devices", "no telemetry: %s", exo_strerror(rc));
    }
}

/* The latest sample of a node as JSON (d->telemetry_of). */
static cJSON *telemetry_of(struct daemon *d, const uint8_t id[EXO_NODE_ID_SIZE])
{
    struct daemon_devices *dd = d->devices;
    if (!dd)
        return NULL;
    if (memcmp(id, d->node_id, EXO_NODE_ID_SIZE) == 0) {
        const struct exo_telemetry_sample *s =
            dd->telemetry ? exo_telemetry_ring_latest(exo_telemetry_ring(dd->telemetry)) : NULL;
        return s ? exo_telemetry_sample_to_json(s) : NULL;
    }
    const struct exo_digest *dg = exo_peers_digest(dd->peers, id);
    return dg ? exo_digest_to_json(dg) : NULL;
}

/* ---- device events from the replicated records ---------------------------------------------- */

static void on_record_diff(void *ud, enum exo_device_event ev,
                           const uint8_t node[EXO_PEERS_ID_SIZE], const char *device,
                           const void *value, size_t len)
{
    struct daemon *d = ud;
    char hex[2 * EXO_NODE_ID_SIZE + 1];
    exo_node_id_hex(node, hex);
    cJSON *j = cJSON_CreateObject();
    cJSON *dev = cJSON_ParseWithLength(value, len);
    char *text = NULL;
    if (j && dev && cJSON_AddStringToObject(j, "node", hex) &&
        cJSON_AddStringToObject(j, "event", exo_device_event_name(ev)) &&
        cJSON_AddItemToObject(j, "device", dev)) {
        dev = NULL;
        text = cJSON_PrintUnformatted(j);
    }
    if (text)
        cluster_sse_publish(d, "device", NULL, text);
    exo_log(EXO_LOG_DEBUG, "devices", "node %.8s: %s %s", hex, device, exo_device_event_name(ev));
    cJSON_free(text);
    cJSON_Delete(dev);
    cJSON_Delete(j);
}

static void watch_records(struct daemon_devices *dd)
{
    struct exo_state *s = cluster_state(dd->d);
    if (!s)
        return;
    exo_peers_devices_begin(dd->peers);
    for (size_t i = 0; i < exo_state_record_count(s); i++) {
        struct exo_state_record r;
        char key[EXO_DEVICE_ID_SIZE];
        if (exo_state_record_at(s, i, &r) < 0 || r.kind != EXO_STATE_KIND_DEVICES ||
            r.format != EXO_STATE_FORMAT_JSON || r.key_len == 0 || r.key_len >= sizeof(key))
            continue;
        memcpy(key, r.key, r.key_len);
        key[r.key_len] = '\0';
        exo_peers_device_seen(dd->peers, r.owner, key, r.version, r.value, r.value_len,
                              on_record_diff, dd->d);
    }
    exo_peers_devices_end(dd->peers, on_record_diff, dd->d);
}

/* ---- detection and scoring ------------------------------------------------------------------ */

static void probe_job(uv_work_t *w)
{
    struct probe *p = w->data;
    struct exo_score_params params = {.n_threads = p->n_threads, .cancel = &p->cancel};
    if (!p->statedir)
        p->rc = exo_device_detect(NULL, &p->list);
    else
        p->scored = exo_score_get(p->statedir, &p->cpu, &params, false, &p->score, &p->cached,
                                  &p->diag) == 0;
}

static void log_detection(const struct exo_device_list *l)
{
    char text[512];
    size_t n = 0;
    for (size_t i = 0; i < l->n && n < sizeof(text); i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%s %s", i ? ", " : "", l->v[i].id,
                              l->v[i].name);
    exo_log(EXO_LOG_INFO, "devices", "%zu device%s: %s", l->n, l->n == 1 ? "" : "s", text);
}

static void install_score(struct daemon_devices *dd, struct probe *p)
{
    if (p->diag.msg[0])
        exo_log(EXO_LOG_WARN, "devices", "score cache: %s", p->diag.msg);
    if (!p->scored) {
        exo_log(EXO_LOG_WARN, "devices", "the CPU could not be scored");
        return;
    }
    dd->score = p->score;
    dd->have_score = true;
    exo_log(EXO_LOG_INFO, "devices", "cpu0 score (%s): memory %.1f GB/s, %u weight types",
            p->cached ? "cached" : "measured now", p->score.mem_bw_gbps, p->score.n_types);
    cJSON *j = exo_score_to_json(&dd->score);
    if (j)
        cluster_report(dd->d, EXO_STATE_KIND_SCORES, "cpu0", j);
}

static void start_probe(struct daemon_devices *dd, const struct exo_device *cpu);

static void install_list(struct daemon_devices *dd, struct probe *p)
{
    exo_device_list_assign_ids(&p->list);
    if (dd->list) {
        if (exo_device_list_diff(dd->list, &p->list, on_list_diff, dd) > 0) {
            *dd->list = p->list;
            dd->devices_gen++;
        }
        return;
    }
    dd->list = exo_malloc(sizeof(*dd->list));
    if (!dd->list)
        return;
    *dd->list = p->list;
    log_detection(dd->list);
    for (size_t i = 0; i < dd->list->n; i++)
        report_device(dd, &dd->list->v[i]);
    if (dd->telemetry_on)
        start_telemetry(dd);
    const struct exo_device *cpu = exo_device_list_find(dd->list, "cpu0");
    if (cpu)
        start_probe(dd, cpu);
}

static void probe_done(uv_work_t *w, int status)
{
    struct probe *p = w->data;
    struct daemon_devices *dd = p->dd;
    dd->probe = NULL;
    if (dd->stopping) {
        exo_free(p);
        finish_stop(dd);
        return;
    }
    if (status < 0 || p->rc < 0)
        exo_log(EXO_LOG_WARN, "devices", "detection failed: %s",
                exo_strerror(status < 0 ? EXO_ECANCELED : p->rc));
    else if (p->statedir)
        install_score(dd, p);
    else
        install_list(dd, p);
    exo_free(p);
}

/* Detect (cpu NULL), or score cpu (borrowed; copied). */
static void start_probe(struct daemon_devices *dd, const struct exo_device *cpu)
{
    struct probe *p = exo_calloc(1, sizeof(*p));
    if (!p)
        return;
    p->dd = dd;
    p->work.data = p;
    if (cpu) {
        p->cpu = *cpu;
        p->statedir = dd->d->statedir;
        p->n_threads = (int32_t)dd->d->opt.threads;
    }
    if (uv_queue_work(&dd->d->loop, &p->work, probe_job, probe_done) != 0) {
        exo_free(p);
        return;
    }
    dd->probe = p;
}

static void on_tick(uv_timer_t *t)
{
    struct daemon_devices *dd = t->data;
    uint64_t now = exo_clock_wall_ms();
    watch_records(dd);
    exo_peers_expire(dd->peers, now > DIGEST_EXPIRE_MS ? now - DIGEST_EXPIRE_MS : 0);
    if (!dd->probe && now >= dd->next_detect_ms) {
        dd->next_detect_ms = now + REDETECT_MS;
        start_probe(dd, NULL);
    }
}

/* ---- GET /api/v1/devices -------------------------------------------------------------------- */

/* One node's entry: this node's from what it detected, another's from the replicated records. */
static cJSON *node_devices_json(struct daemon_devices *dd, const struct exo_state *s,
                                const uint8_t *id, const char *name)
{
    char hex[2 * EXO_NODE_ID_SIZE + 1];
    cJSON *j = cJSON_CreateObject(), *devs = cJSON_CreateArray(), *score = NULL;
    exo_node_id_hex(id, hex);
    if (!j || !devs || !cJSON_AddStringToObject(j, "node", hex) ||
        !cJSON_AddStringToObject(j, "name", name))
        goto fail;
    if (memcmp(id, dd->d->node_id, EXO_NODE_ID_SIZE) == 0) {
        for (size_t i = 0; dd->list && i < dd->list->n; i++)
            cJSON_AddItemToArray(devs, device_json(dd, &dd->list->v[i]));
        score = dd->have_score ? exo_score_to_json(&dd->score) : NULL;
    } else if (s) {
        for (size_t i = 0; i < exo_state_record_count(s); i++) {
            struct exo_state_record r;
            if (exo_state_record_at(s, i, &r) == 0 && r.kind == EXO_STATE_KIND_DEVICES &&
                r.format == EXO_STATE_FORMAT_JSON && memcmp(r.owner, id, EXO_NODE_ID_SIZE) == 0)
                cJSON_AddItemToArray(devs,
                                     cJSON_ParseWithLength((const char *)r.value, r.value_len));
        }
        score = cluster_record_json(s, EXO_STATE_KIND_SCORES, id, "cpu0");
    }
    cJSON_AddItemToObject(j, "devices", devs);
    cJSON_AddItemToObject(j, "score", score ? score : cJSON_CreateNull());
    return j;
fail:
    cJSON_Delete(devs);
    cJSON_Delete(j);
    return NULL;
}

/* The node id of ?node= into id; false (answered 400) when it is not one. *ret_given false when
 * there is no parameter. */
static bool node_param(struct exo_http_request *req, uint8_t id[EXO_NODE_ID_SIZE], bool *ret_given)
{
    char text[2 * EXO_NODE_ID_SIZE + 8];
    int rc = exo_http_request_query_param(req, "node", text, sizeof(text));
    *ret_given = rc != EXO_ENOENT;
    if (!*ret_given)
        return true;
    if (rc < 0 || strlen(text) != 2 * EXO_NODE_ID_SIZE ||
        exo_node_id_parse(text, strlen(text), id) < 0) {
        exo_http_respond_error(req, 400, "node must be a node id (32 hex digits)");
        return false;
    }
    return true;
}

static void route_devices(struct exo_http_request *req, void *ud)
{
    struct daemon *d = ud;
    struct daemon_devices *dd = d->devices;
    struct exo_state *s = cluster_state(d);
    uint8_t want[EXO_NODE_ID_SIZE];
    bool filter;
    if (!dd || !s) {
        exo_http_respond_error(req, 503, "the daemon is stopping");
        return;
    }
    if (!node_param(req, want, &filter))
        return;
    cJSON *j = cJSON_CreateObject();
    cJSON *arr = j ? cJSON_AddArrayToObject(j, "nodes") : NULL;
    if (!arr) {
        cJSON_Delete(j);
        exo_http_respond_error(req, 500, "out of memory");
        return;
    }
    /* This node first when the replicated table does not have it yet (no leader so far). */
    struct exo_state_member m;
    struct exo_member_info self;
    bool want_self = !filter || memcmp(want, d->node_id, EXO_NODE_ID_SIZE) == 0;
    if (want_self && exo_state_member_get(s, d->node_id, &m) < 0) {
        bool named =
            cluster_members(d) && exo_members_get(cluster_members(d), d->node_id, &self) == 0;
        cJSON_AddItemToArray(arr, node_devices_json(dd, s, d->node_id, named ? self.name : ""));
    }
    for (size_t i = 0; i < exo_state_member_count(s); i++)
        if (exo_state_member_at(s, i, &m) == 0 &&
            (!filter || memcmp(want, m.id, EXO_NODE_ID_SIZE) == 0))
            cJSON_AddItemToArray(arr, node_devices_json(dd, s, m.id, m.name));
    if (filter && cJSON_GetArraySize(arr) == 0)
        exo_http_respond_error(req, 404, "no such node in the cluster");
    else
        exo_http_respond_json(req, 200, j);
    cJSON_Delete(j);
}

/* ---- GET /api/v1/telemetry ------------------------------------------------------------------ */

/* Answer req with another node's history: the request goes on to that node's API. */
static void pass_to_node(struct daemon_devices *dd, struct exo_http_request *req,
                         const uint8_t id[EXO_NODE_ID_SIZE])
{
    struct exo_members *members = cluster_members(dd->d);
    struct exo_member_info info;
    char hex[2 * EXO_NODE_ID_SIZE + 1], msg[160];
    exo_node_id_hex(id, hex);
    if (!members || exo_members_get(members, id, &info) < 0) {
        snprintf(msg, sizeof(msg), "no node %s in the cluster", hex);
        exo_http_respond_error(req, 404, msg);
        return;
    }
    if (info.state == EXO_MEMBER_STATE_DEAD || info.state == EXO_MEMBER_STATE_LEFT) {
        snprintf(msg, sizeof(msg), "node %s is %s", hex, exo_members_state_name(info.state));
        exo_http_respond_error(req, 502, msg);
        return;
    }
    char host[INET6_ADDRSTRLEN], label[128];
    if (!info.meta.api_port || !cluster_addr_host(&info.addr, host, sizeof(host))) {
        snprintf(msg, sizeof(msg), "node %s has no known API address", hex);
        exo_http_respond_error(req, 502, msg);
        return;
    }
    snprintf(label, sizeof(label), "node %.32s at %s port %u", hex, host, info.meta.api_port);
    int rc = exo_forward(&dd->d->loop, req, host, info.meta.api_port, label, FETCH_TIMEOUT_MS);
    if (rc < 0) {
        snprintf(msg, sizeof(msg), "cannot reach %s: %s", label, exo_strerror(rc));
        exo_http_respond_error(req, 502, msg);
    }
}

static void route_telemetry(struct exo_http_request *req, void *ud)
{
    struct daemon *d = ud;
    struct daemon_devices *dd = d->devices;
    uint8_t id[EXO_NODE_ID_SIZE];
    char since_text[24];
    unsigned long long since = 0;
    bool given;
    if (!dd) {
        exo_http_respond_error(req, 503, "the daemon is stopping");
        return;
    }
    if (!node_param(req, id, &given))
        return;
    int rc = exo_http_request_query_param(req, "since", since_text, sizeof(since_text));
    if (rc != EXO_ENOENT) {
        char *end = NULL;
        since = rc == 0 ? strtoull(since_text, &end, 10) : 0;
        if (rc < 0 || !since_text[0] || *end || since_text[0] == '-') {
            exo_http_respond_error(req, 400, "since must be a time in ms since the epoch");
            return;
        }
    }
    if (!given || memcmp(id, d->node_id, EXO_NODE_ID_SIZE) == 0) {
        if (!dd->telemetry) {
            exo_http_respond_error(req, 503,
                                   dd->telemetry_on ? "telemetry is starting"
                                                    : "telemetry is off on this node");
            return;
        }
        cJSON *j = exo_telemetry_ring_to_json(exo_telemetry_ring(dd->telemetry), since, 0);
        if (j && cJSON_AddStringToObject(j, "node", d->node_hex))
            exo_http_respond_json(req, 200, j);
        else
            exo_http_respond_error(req, 500, "out of memory");
        cJSON_Delete(j);
        return;
    }
    if (exo_forward_is_forwarded(req)) {
        /* Another node thought this one knew; one hop is all a request gets. */
        exo_http_respond_error(req, 404, "no such node here");
        return;
    }
    pass_to_node(dd, req, id);
}

/* ---- metrics -------------------------------------------------------------------------------- */

static int sink_family(void *ud, const char *name, const char *help)
{
    return exo_prom_family(ud, name, EXO_PROM_GAUGE, help);
}

static int sink_sample(void *ud, const struct exo_metric_label *labels, size_t n, double value)
{
    struct exo_prom_label l[2];
    if (n > 2)
        return EXO_EINVAL;
    for (size_t i = 0; i < n; i++)
        l[i] = (struct exo_prom_label){labels[i].name, labels[i].value};
    return exo_prom_sample(ud, l, n, value);
}

static int write_metrics(struct exo_prom *p, void *ud)
{
    struct daemon *d = ud;
    struct daemon_devices *dd = d->devices;
    if (!dd)
        return 0;
    /* This node's latest sample and every peer's digest, in one family per gauge. */
    size_t n = exo_peers_digests(dd->peers, NULL, NULL, 0) + 1;
    const uint8_t **ids = exo_calloc(n, sizeof(*ids));
    const struct exo_digest **digests = exo_calloc(n, sizeof(*digests));
    char(*hex)[2 * EXO_NODE_ID_SIZE + 1] = exo_calloc(n, sizeof(*hex));
    const char **names = exo_calloc(n, sizeof(*names));
    struct exo_digest self;
    int rc = EXO_ENOMEM;
    if (!ids || !digests || !hex || !names)
        goto out;
    size_t k = exo_peers_digests(dd->peers, ids, digests, n - 1);
    const struct exo_telemetry_sample *s =
        dd->telemetry ? exo_telemetry_ring_latest(exo_telemetry_ring(dd->telemetry)) : NULL;
    if (s) {
        exo_digest_from_sample(s, dd->devices_gen, &self);
        ids[k] = d->node_id;
        digests[k++] = &self;
    }
    for (size_t i = 0; i < k; i++) {
        exo_node_id_hex(ids[i], hex[i]);
        names[i] = hex[i];
    }
    struct exo_metrics_sink sink = {sink_family, sink_sample, p};
    rc = exo_digest_metrics(names, digests, k, &sink);
    if (rc == 0) {
        exo_prom_family(p, "exo_telemetry_digests_total", EXO_PROM_COUNTER,
                        "Telemetry digests gossiped by this node and heard from others");
        const struct {
            const char *what;
            uint64_t n;
        } c[] = {{"sent", dd->digests.sent},
                 {"send_failed", dd->digests.send_failed},
                 {"kept", dd->digests.kept},
                 {"stale", dd->digests.stale},
                 {"malformed", dd->digests.malformed}};
        for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
            struct exo_prom_label l = {"result", c[i].what};
            exo_prom_sample_u64(p, &l, 1, c[i].n);
        }
        exo_prom_family(p, "exo_telemetry_samples_skipped_total", EXO_PROM_COUNTER,
                        "Sampler ticks skipped because the previous collection was still running");
        exo_prom_sample_u64(p, NULL, 0, dd->telemetry ? exo_telemetry_skipped(dd->telemetry) : 0);
        rc = p->err;
    }
out:
    exo_free(ids);
    exo_free(digests);
    exo_free(hex);
    exo_free(names);
    return rc;
}

/* ---- start and stop ------------------------------------------------------------------------- */

int devices_start(struct daemon *d)
{
    struct daemon_devices *dd = exo_calloc(1, sizeof(*dd));
    int rc = dd ? exo_peers_create(&dd->peers) : EXO_ENOMEM;
    if (rc < 0) {
        exo_free(dd);
        exo_log(EXO_LOG_ERROR, "devices", "out of memory");
        return rc;
    }
    dd->d = d;
    const char *env = getenv("EXO_TELEMETRY");
    dd->telemetry_on = !env || (strcmp(env, "off") != 0 && strcmp(env, "0") != 0);
    struct exo_http_server *srv = exo_api_server(d->api);
    if ((rc = exo_http_route(srv, EXO_HTTP_GET | EXO_HTTP_HEAD, "/api/v1/devices", 0, route_devices,
                             d)) < 0 ||
        (rc = exo_http_route(srv, EXO_HTTP_GET | EXO_HTTP_HEAD, "/api/v1/telemetry", 0,
                             route_telemetry, d)) < 0 ||
        (rc = exo_api_add_metrics(d->api, write_metrics, d)) < 0 ||
        (dd->telemetry_on && (rc = cluster_on_message(d, DIGEST_CHANNEL, on_digest, d)) < 0)) {
        exo_log(EXO_LOG_ERROR, "devices", "cannot add the device routes: %s", exo_strerror(rc));
        exo_peers_free(dd->peers);
        exo_free(dd);
        return rc;
    }
    if (!dd->telemetry_on)
        exo_log(EXO_LOG_INFO, "devices", "EXO_TELEMETRY=%s: no telemetry from this node", env);
    d->devices = dd;
    d->telemetry_of = telemetry_of;
    uv_timer_init(&d->loop, &dd->tick);
    dd->tick.data = dd;
    dd->next_detect_ms = exo_clock_wall_ms() + REDETECT_MS;
    start_probe(dd, NULL);
    uv_timer_start(&dd->tick, on_tick, TICK_MS, TICK_MS);
    return 0;
}

/* The last of the timer, the sampler and the probe is gone: free the component. */
static void finish_stop(struct daemon_devices *dd)
{
    if (!dd->stopping || !dd->tick_closed || dd->telemetry || dd->probe)
        return;
    struct daemon *d = dd->d;
    exo_peers_free(dd->peers);
    exo_free(dd->list);
    exo_free(dd);
    stop_next(d);
}

static void on_tick_closed(uv_handle_t *h)
{
    struct daemon_devices *dd = h->data;
    dd->tick_closed = true;
    finish_stop(dd);
}

void devices_stop(struct daemon *d)
{
    struct daemon_devices *dd = d->devices;
    d->devices = NULL;
    d->telemetry_of = NULL;
    dd->stopping = true;
    /* A probe not started yet is dropped; a score measurement ends within one timed run;
     * detection (tens of milliseconds) finishes. */
    if (dd->probe) {
        atomic_store(&dd->probe->cancel, true);
        uv_cancel((uv_req_t *)&dd->probe->work);
    }
    exo_telemetry_stop(dd->telemetry);
    uv_close((uv_handle_t *)&dd->tick, on_tick_closed);
}
