/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The telemetry collector, ring and 1 Hz sampler (see telemetry.h for the threads: the timer
 * and the ring on the loop thread, each collection on libuv's thread pool, one at a time).
 */
#include "device/telemetry.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "device/json-int.h"
#include "device/nvml.h"
#include "device/procfs.h"
#include "device/sysfs.h"

/* ---- the ring ------------------------------------------------------------------------------ */

int exo_telemetry_ring_init(struct exo_telemetry_ring *r, size_t cap)
{
    memset(r, 0, sizeof(*r));
    if (cap == 0)
        return EXO_EINVAL;
    r->v = exo_calloc(cap, sizeof(r->v[0]));
    if (!r->v)
        return EXO_ENOMEM;
    r->cap = cap;
    return 0;
}

void exo_telemetry_ring_free(struct exo_telemetry_ring *r)
{
    if (!r)
        return;
    exo_free(r->v);
    memset(r, 0, sizeof(*r));
}

void exo_telemetry_ring_push(struct exo_telemetry_ring *r, const struct exo_telemetry_sample *s)
{
    r->v[r->head] = *s;
    r->head = (r->head + 1) % r->cap;
    if (r->n < r->cap)
        r->n++;
}

const struct exo_telemetry_sample *exo_telemetry_ring_at(const struct exo_telemetry_ring *r,
                                                         size_t i)
{
    if (i >= r->n)
        return NULL;
    return &r->v[(r->head + r->cap - r->n + i) % r->cap];
}

const struct exo_telemetry_sample *exo_telemetry_ring_latest(const struct exo_telemetry_ring *r)
{
    return r->n ? exo_telemetry_ring_at(r, r->n - 1) : NULL;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static bool add_pair(cJSON *o, const char *key, const char *a, double va, const char *b, double vb)
{
    cJSON *p = cJSON_AddObjectToObject(o, key);
    return p && cJSON_AddNumberToObject(p, a, va) && cJSON_AddNumberToObject(p, b, vb);
}

static bool add_gpu(cJSON *arr, const struct exo_gpu_sample *g)
{
    cJSON *o = exo_json_append_object(arr);
    return o && cJSON_AddStringToObject(o, "id", g->id) &&
           cJSON_AddBoolToObject(o, "lost", g->lost) &&
           (!(g->has & EXO_GPU_HAS_UTIL) ||
            cJSON_AddNumberToObject(o, "util", g->util_pct / 100.0)) &&
           (!(g->has & EXO_GPU_HAS_MEM) ||
            (cJSON_AddNumberToObject(o, "mem_used", (double)g->mem_used) &&
             cJSON_AddNumberToObject(o, "mem_total", (double)g->mem_total))) &&
           (!(g->has & EXO_GPU_HAS_TEMP) || cJSON_AddNumberToObject(o, "temp_c", g->temp_c)) &&
           (!(g->has & EXO_GPU_HAS_POWER) ||
            cJSON_AddNumberToObject(o, "power_w", g->power_mw / 1000.0)) &&
           (!(g->has & EXO_GPU_HAS_CLOCK) ||
            cJSON_AddNumberToObject(o, "clock_mhz", g->clock_mhz)) &&
           (!(g->has & EXO_GPU_HAS_MEM_CLOCK) ||
            cJSON_AddNumberToObject(o, "mem_clock_mhz", g->mem_clock_mhz));
}

cJSON *exo_telemetry_sample_to_json(const struct exo_telemetry_sample *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *cpus = NULL, *gpus = NULL;
    bool ok = o && cJSON_AddNumberToObject(o, "t", (double)s->t_ms) &&
              cJSON_AddNumberToObject(o, "seq", (double)s->seq) &&
              cJSON_AddNumberToObject(o, "cpu", s->cpu_permille / 1000.0) &&
              (cpus = cJSON_AddArrayToObject(o, "cpus"));
    for (uint32_t i = 0; ok && i < s->n_cpus && i < EXO_PROCFS_MAX_CPUS; i++) {
        cJSON *v = cJSON_CreateNumber(s->cpu_pm[i] / 1000.0);
        ok = v && cJSON_AddItemToArray(cpus, v);
        if (!ok)
            cJSON_Delete(v);
    }
    ok = ok &&
         add_pair(o, "mem", "total", (double)s->mem_total, "available", (double)s->mem_available) &&
         add_pair(o, "swap", "total", (double)s->swap_total, "free", (double)s->swap_free) &&
         add_pair(o, "net", "rx_bps", (double)s->net_rx_bps, "tx_bps", (double)s->net_tx_bps) &&
         cJSON_AddNumberToObject(o, "tokens_per_s", s->tokens_per_s) &&
         (gpus = cJSON_AddArrayToObject(o, "gpus"));
    for (uint32_t i = 0; ok && i < s->n_gpus && i < EXO_TELEMETRY_MAX_GPUS; i++)
        ok = add_gpu(gpus, &s->gpus[i]);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *exo_telemetry_ring_to_json(const struct exo_telemetry_ring *r, uint64_t since_ms, size_t max)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = o ? cJSON_AddArrayToObject(o, "samples") : NULL;
    if (!arr) {
        cJSON_Delete(o);
        return NULL;
    }
    /* The first sample newer than since_ms; then at most max of the newest. */
    size_t first = 0;
    while (first < r->n && exo_telemetry_ring_at(r, first)->t_ms <= since_ms)
        first++;
    if (max && r->n - first > max)
        first = r->n - max;
    for (size_t i = first; i < r->n; i++) {
        cJSON *s = exo_telemetry_sample_to_json(exo_telemetry_ring_at(r, i));
        if (!s || !cJSON_AddItemToArray(arr, s)) {
            cJSON_Delete(s);
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

/* ---- collection ---------------------------------------------------------------------------- */

enum gpu_via { VIA_NONE, VIA_NVML, VIA_SYSFS };

struct gpu_source {
    char id[EXO_DEVICE_ID_SIZE];
    enum gpu_via via;
    unsigned nvml_index;
    struct exo_sysfs_gpu sysfs;
};

struct exo_telemetry_source {
    char *root; /* owned, NULL for this machine */
    struct exo_token_counter *tokens;
    struct exo_nvml *nvml;
    uint32_t n_gpus;
    struct gpu_source gpus[EXO_TELEMETRY_MAX_GPUS];
    struct exo_buf buf;           /* file contents, reused */
    struct exo_proc_stat stat[2]; /* the previous and the current reading */
    int cur;                      /* index of the previous reading in stat[] */
    bool have_prev;
    uint64_t prev_ns, prev_rx, prev_tx, prev_tokens;
    uint64_t seq;
};

void exo_telemetry_source_close(struct exo_telemetry_source *src)
{
    if (!src)
        return;
    exo_nvml_close(src->nvml);
    exo_buf_free(&src->buf);
    exo_free(src->root);
    exo_free(src);
}

/* Decide how each GPU of the list is sampled: NVML for NVIDIA GPUs it knows, sysfs for cards
 * /sys/class/drm knows, nothing for the others (Vulkan- or OpenCL-only devices). */
static void plan_gpus(struct exo_telemetry_source *src, const struct exo_telemetry_source_config *c)
{
    bool nvml_tried = false;
    for (size_t i = 0; c->devices && i < c->devices->n; i++) {
        const struct exo_device *d = &c->devices->v[i];
        if (d->kind == EXO_DEVICE_KIND_CPU || src->n_gpus >= EXO_TELEMETRY_MAX_GPUS)
            continue;
        struct gpu_source *g = &src->gpus[src->n_gpus++];
        memcpy(g->id, d->id, sizeof(g->id));
        bool nvidia = exo_device_binding(d, EXO_DEVICE_API_NVML) != NULL;
        if (nvidia && !nvml_tried && !(c->nvml_library && !c->nvml_library[0])) {
            char why[256] = "";
            nvml_tried = true;
            if (exo_nvml_open(c->nvml_library, &src->nvml, why, sizeof(why)) < 0)
                exo_log(EXO_LOG_INFO, "telemetry", "NVML not available, NVIDIA GPUs unsampled: %s",
                        why);
        }
        if (nvidia && src->nvml && d->pci[0] &&
            exo_nvml_find(src->nvml, d->pci, &g->nvml_index) == 0) {
            g->via = VIA_NVML;
        } else if (d->sysfs_card[0]) {
            g->via = VIA_SYSFS;
            exo_sysfs_gpu_init(src->root, d->sysfs_card, &g->sysfs);
        }
    }
}

int exo_telemetry_source_open(const struct exo_telemetry_source_config *cfg,
                              struct exo_telemetry_source **ret)
{
    struct exo_telemetry_source *src = exo_calloc(1, sizeof(*src));
    if (!src)
        return EXO_ENOMEM;
    if (cfg->root && strcmp(cfg->root, "/") != 0 && !(src->root = exo_strdup(cfg->root))) {
        exo_free(src);
        return EXO_ENOMEM;
    }
    exo_buf_init(&src->buf, 0);
    src->tokens = cfg->tokens;
    plan_gpus(src, cfg);
    *ret = src;
    return 0;
}

/* Read a whole /proc file into src->buf; 0 or a negative code. */
static int read_proc(struct exo_telemetry_source *src, const char *path)
{
    exo_buf_reset(&src->buf);
    return exo_procfs_read(src->root, path, EXO_PROCFS_CAP_TEXT, &src->buf, NULL);
}

static uint64_t rate(uint64_t now, uint64_t before, double seconds)
{
    return now >= before && seconds > 0 ? (uint64_t)((double)(now - before) / seconds) : 0;
}

static void sample_gpus(struct exo_telemetry_source *src, uint64_t mono_ns,
                        struct exo_telemetry_sample *ret)
{
    for (uint32_t i = 0; i < src->n_gpus; i++) {
        struct gpu_source *g = &src->gpus[i];
        struct exo_gpu_sample *out = &ret->gpus[ret->n_gpus++];
        memset(out, 0, sizeof(*out));
        memcpy(out->id, g->id, sizeof(out->id));
        if (g->via == VIA_NVML)
            exo_nvml_sample(src->nvml, g->nvml_index, out);
        else if (g->via == VIA_SYSFS)
            exo_sysfs_gpu_sample(src->root, &g->sysfs, mono_ns, out);
    }
}

int exo_telemetry_source_collect(struct exo_telemetry_source *src, uint64_t now_ms,
                                 uint64_t mono_ns, struct exo_telemetry_sample *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->t_ms = now_ms;
    ret->seq = src->seq++;
    double dt =
        src->have_prev && mono_ns > src->prev_ns ? (double)(mono_ns - src->prev_ns) / 1e9 : 0;

    int stat_rc = read_proc(src, "/proc/stat");
    struct exo_proc_stat *prev = &src->stat[src->cur], *cur = &src->stat[!src->cur];
    if (stat_rc == 0)
        stat_rc = exo_procfs_parse_stat((const char *)src->buf.data, src->buf.len, cur);
    if (stat_rc == 0) {
        ret->n_cpus = (uint16_t)cur->n_cpus;
        if (src->have_prev) {
            ret->cpu_permille = (uint16_t)exo_cpu_times_busy_permille(&prev->total, &cur->total);
            for (uint32_t i = 0; i < cur->n_cpus; i++)
                if (cur->online[i] && prev->online[i])
                    ret->cpu_pm[i] =
                        (uint16_t)exo_cpu_times_busy_permille(&prev->cpu[i], &cur->cpu[i]);
        }
        src->cur = !src->cur;
    }

    struct exo_meminfo mi;
    int mem_rc = read_proc(src, "/proc/meminfo");
    if (mem_rc == 0)
        mem_rc = exo_procfs_parse_meminfo((const char *)src->buf.data, src->buf.len, &mi);
    if (mem_rc == 0) {
        ret->mem_total = mi.mem_total;
        ret->mem_available = mi.mem_available;
        ret->swap_total = mi.swap_total;
        ret->swap_free = mi.swap_free;
    }

    struct exo_netdev nd = {0};
    if (read_proc(src, "/proc/net/dev") == 0 &&
        exo_procfs_parse_netdev((const char *)src->buf.data, src->buf.len, &nd) == 0) {
        ret->net_rx_bps = rate(nd.rx_bytes, src->prev_rx, dt);
        ret->net_tx_bps = rate(nd.tx_bytes, src->prev_tx, dt);
    }
    src->prev_rx = nd.rx_bytes;
    src->prev_tx = nd.tx_bytes;

    uint64_t tokens = src->tokens ? exo_token_counter_read(src->tokens) : 0;
    ret->tokens_per_s =
        tokens >= src->prev_tokens && dt > 0 ? (double)(tokens - src->prev_tokens) / dt : 0;
    src->prev_tokens = tokens;

    sample_gpus(src, mono_ns, ret);
    src->prev_ns = mono_ns;
    src->have_prev = true;
    return stat_rc < 0 && mem_rc < 0 ? stat_rc : 0;
}

/* ---- the sampler --------------------------------------------------------------------------- */

struct exo_telemetry {
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_work_t work;
    bool in_flight; /* a collection is queued or running */
    bool stopping;
    bool timer_closed;
    struct exo_telemetry_source *src;
    struct exo_telemetry_sample pending; /* written by the job, read after it */
    int pending_rc;
    struct exo_telemetry_ring ring;
    bool lost[EXO_TELEMETRY_MAX_GPUS]; /* as last reported through on_device */
    uint64_t skipped;
    uint32_t interval_ms;
    exo_telemetry_sample_cb on_sample;
    exo_telemetry_device_cb on_device;
    exo_telemetry_stopped_cb on_stopped; /* set once started: a failed start calls nothing */
    void *ud;
};

static void release(struct exo_telemetry *t)
{
    exo_telemetry_stopped_cb on_stopped = t->on_stopped;
    void *ud = t->ud;
    exo_telemetry_source_close(t->src);
    exo_telemetry_ring_free(&t->ring);
    exo_free(t);
    if (on_stopped)
        on_stopped(ud);
}

/* Runs on a libuv pool thread. */
static void collect_job(uv_work_t *w)
{
    struct exo_telemetry *t = w->data;
    t->pending_rc =
        exo_telemetry_source_collect(t->src, exo_clock_wall_ms(), exo_clock_ns(), &t->pending);
}

static void report_lost(struct exo_telemetry *t, const struct exo_telemetry_sample *s)
{
    for (uint32_t i = 0; i < s->n_gpus && i < EXO_TELEMETRY_MAX_GPUS; i++) {
        if (s->gpus[i].lost == t->lost[i] || t->stopping)
            continue;
        t->lost[i] = s->gpus[i].lost;
        exo_log(EXO_LOG_WARN, "telemetry", "%s %s", s->gpus[i].id,
                t->lost[i] ? "stopped answering" : "answers again");
        if (t->on_device)
            t->on_device(t->ud, s->gpus[i].id, t->lost[i]);
    }
}

/* Back on the loop thread. */
static void collect_done(uv_work_t *w, int status)
{
    struct exo_telemetry *t = w->data;
    t->in_flight = false;
    if (t->stopping) {
        if (t->timer_closed)
            release(t);
        return;
    }
    if (status < 0 || t->pending_rc < 0)
        return;
    exo_telemetry_ring_push(&t->ring, &t->pending);
    report_lost(t, &t->pending);
    /* on_device may have stopped the sampler; nothing is called after a stop. */
    if (t->on_sample && !t->stopping)
        t->on_sample(t->ud, exo_telemetry_ring_latest(&t->ring));
}

static void on_tick(uv_timer_t *timer)
{
    struct exo_telemetry *t = timer->data;
    if (t->in_flight) {
        t->skipped++;
        return;
    }
    t->work.data = t;
    if (uv_queue_work(t->loop, &t->work, collect_job, collect_done) == 0)
        t->in_flight = true;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct exo_telemetry *t = h->data;
    t->timer_closed = true;
    if (!t->in_flight)
        release(t);
}

int exo_telemetry_start(uv_loop_t *loop, const struct exo_telemetry_config *cfg,
                        struct exo_telemetry **ret)
{
    struct exo_telemetry *t = exo_calloc(1, sizeof(*t));
    if (!t)
        return EXO_ENOMEM;
    int rc =
        exo_telemetry_ring_init(&t->ring, cfg->ring_size ? cfg->ring_size : EXO_TELEMETRY_RING);
    if (rc == 0)
        rc = exo_telemetry_source_open(&cfg->source, &t->src);
    if (rc < 0) {
        release(t);
        return rc;
    }
    t->loop = loop;
    t->interval_ms = cfg->interval_ms ? cfg->interval_ms : 1000;
    t->on_sample = cfg->on_sample;
    t->on_device = cfg->on_device;
    t->on_stopped = cfg->on_stopped;
    t->ud = cfg->ud;
    uv_timer_init(loop, &t->timer);
    t->timer.data = t;
    /* The first sample comes at once (it only primes the rates), then one per interval. */
    uv_timer_start(&t->timer, on_tick, 0, t->interval_ms);
    *ret = t;
    return 0;
}

void exo_telemetry_stop(struct exo_telemetry *t)
{
    if (!t || t->stopping)
        return;
    t->stopping = true;
    uv_timer_stop(&t->timer);
    /* A job not yet started is cancelled (its completion then runs with UV_ECANCELED); one
     * already running finishes first. Either way collect_done sees `stopping`. */
    if (t->in_flight)
        uv_cancel((uv_req_t *)&t->work);
    uv_close((uv_handle_t *)&t->timer, on_timer_closed);
}

const struct exo_telemetry_ring *exo_telemetry_ring(const struct exo_telemetry *t)
{
    return &t->ring;
}

uint64_t exo_telemetry_skipped(const struct exo_telemetry *t)
{
    return t->skipped;
}
