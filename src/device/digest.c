/* SPDX-License-Identifier: Apache-2.0 */
/* The telemetry digest codec, its JSON and its Prometheus gauges (see digest.h). */
#include "device/digest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

#define MIB              (1024ull * 1024ull)
#define MAX_T_MS         (1ull << 53)
#define MAX_CPUS         4096
#define MAX_MIB          0xffffffffull
#define MAX_RATE         (1ull << 48)
#define MAX_TOKENS_CENTI 1000000000ull
#define MAX_POWER_DW     1000000ull
#define MAX_CLOCK_MHZ    100000ull
#define TEMP_OFFSET      64
#define HAS_LOST         0x80
#define HAS_RESERVED     0x40
#define HAS_KNOWN                                                                \
    (EXO_GPU_HAS_UTIL | EXO_GPU_HAS_MEM | EXO_GPU_HAS_TEMP | EXO_GPU_HAS_POWER | \
     EXO_GPU_HAS_CLOCK | EXO_GPU_HAS_MEM_CLOCK)

static uint64_t clamp(uint64_t v, uint64_t max)
{
    return v < max ? v : max;
}

static uint32_t mib(uint64_t bytes)
{
    return (uint32_t)clamp(bytes / MIB, MAX_MIB);
}

/* N of "gpuN", or -1. */
static int gpu_index(const char *id)
{
    if (strncmp(id, "gpu", 3) != 0 || id[3] < '0' || id[3] > '9')
        return -1;
    char *end;
    long n = strtol(id + 3, &end, 10);
    return *end == '\0' && n >= 0 && n <= 255 ? (int)n : -1;
}

void exo_digest_from_sample(const struct exo_telemetry_sample *s, uint64_t devices_gen,
                            struct exo_digest *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->seq = s->seq;
    ret->t_ms = clamp(s->t_ms, MAX_T_MS - 1);
    ret->devices_gen = devices_gen;
    ret->cpu_permille = s->cpu_permille <= 1000 ? s->cpu_permille : 1000;
    ret->n_cpus = s->n_cpus <= MAX_CPUS ? s->n_cpus : MAX_CPUS;
    ret->mem_total_mib = mib(s->mem_total);
    ret->mem_avail_mib = mib(s->mem_available <= s->mem_total ? s->mem_available : s->mem_total);
    ret->swap_total_mib = mib(s->swap_total);
    ret->swap_free_mib = mib(s->swap_free <= s->swap_total ? s->swap_free : s->swap_total);
    ret->net_rx_bps = clamp(s->net_rx_bps, MAX_RATE - 1);
    ret->net_tx_bps = clamp(s->net_tx_bps, MAX_RATE - 1);
    double centi = s->tokens_per_s > 0 ? s->tokens_per_s * 100.0 + 0.5 : 0;
    ret->tokens_centi =
        centi < (double)MAX_TOKENS_CENTI ? (uint32_t)centi : (uint32_t)(MAX_TOKENS_CENTI - 1);
    for (uint32_t i = 0; i < s->n_gpus && i < EXO_TELEMETRY_MAX_GPUS; i++) {
        const struct exo_gpu_sample *g = &s->gpus[i];
        int index = gpu_index(g->id);
        if (index < 0 || ret->n_gpus >= EXO_DIGEST_MAX_GPUS)
            continue;
        struct exo_digest_gpu *d = &ret->gpus[ret->n_gpus++];
        d->index = (uint8_t)index;
        d->has = (uint8_t)(g->has & HAS_KNOWN);
        d->lost = g->lost;
        d->util_pct = g->util_pct <= 100 ? g->util_pct : 100;
        d->mem_total_mib = mib(g->mem_total);
        d->mem_used_mib = mib(g->mem_used <= g->mem_total ? g->mem_used : g->mem_total);
        d->temp_c = g->temp_c < -TEMP_OFFSET        ? -TEMP_OFFSET
                    : g->temp_c > 255 - TEMP_OFFSET ? 255 - TEMP_OFFSET
                                                    : g->temp_c;
        d->power_dw = (uint32_t)clamp(((uint64_t)g->power_mw + 50) / 100, MAX_POWER_DW - 1);
        d->clock_mhz = (uint32_t)clamp(g->clock_mhz, MAX_CLOCK_MHZ - 1);
        d->mem_clock_mhz = (uint32_t)clamp(g->mem_clock_mhz, MAX_CLOCK_MHZ - 1);
    }
}

/* ---- encoding ------------------------------------------------------------------------------ */

static bool gpu_valid(const struct exo_digest_gpu *g)
{
    return !(g->has & ~HAS_KNOWN) && g->util_pct <= 100 && g->mem_used_mib <= g->mem_total_mib &&
           g->temp_c >= -TEMP_OFFSET && g->temp_c <= 255 - TEMP_OFFSET &&
           g->power_dw < MAX_POWER_DW && g->clock_mhz < MAX_CLOCK_MHZ &&
           g->mem_clock_mhz < MAX_CLOCK_MHZ;
}

static bool digest_valid(const struct exo_digest *d)
{
    if (d->t_ms >= MAX_T_MS || d->cpu_permille > 1000 || d->n_cpus > MAX_CPUS ||
        d->mem_avail_mib > d->mem_total_mib || d->swap_free_mib > d->swap_total_mib ||
        d->net_rx_bps >= MAX_RATE || d->net_tx_bps >= MAX_RATE ||
        d->tokens_centi >= MAX_TOKENS_CENTI || d->n_gpus > EXO_DIGEST_MAX_GPUS)
        return false;
    for (int i = 0; i < d->n_gpus; i++) {
        if (!gpu_valid(&d->gpus[i]))
            return false;
        for (int k = 0; k < i; k++)
            if (d->gpus[k].index == d->gpus[i].index)
                return false;
    }
    return true;
}

int exo_digest_encode(const struct exo_digest *d, struct exo_buf *out)
{
    if (!digest_valid(d))
        return EXO_EINVAL;
    exo_buf_put_u8(out, EXO_DIGEST_VERSION);
    exo_buf_put_u8(out, 0);
    exo_buf_put_varint(out, d->seq);
    exo_buf_put_varint(out, d->t_ms);
    exo_buf_put_varint(out, d->devices_gen);
    exo_buf_put_varint(out, d->cpu_permille);
    exo_buf_put_varint(out, d->n_cpus);
    exo_buf_put_varint(out, d->mem_total_mib);
    exo_buf_put_varint(out, d->mem_avail_mib);
    exo_buf_put_varint(out, d->swap_total_mib);
    exo_buf_put_varint(out, d->swap_free_mib);
    exo_buf_put_varint(out, d->net_rx_bps);
    exo_buf_put_varint(out, d->net_tx_bps);
    exo_buf_put_varint(out, d->tokens_centi);
    exo_buf_put_u8(out, d->n_gpus);
    for (int i = 0; i < d->n_gpus; i++) {
        const struct exo_digest_gpu *g = &d->gpus[i];
        exo_buf_put_u8(out, g->index);
        exo_buf_put_u8(out, (uint8_t)(g->has | (g->lost ? HAS_LOST : 0)));
        if (g->has & EXO_GPU_HAS_UTIL)
            exo_buf_put_u8(out, g->util_pct);
        if (g->has & EXO_GPU_HAS_MEM) {
            exo_buf_put_varint(out, g->mem_used_mib);
            exo_buf_put_varint(out, g->mem_total_mib);
        }
        if (g->has & EXO_GPU_HAS_TEMP)
            exo_buf_put_u8(out, (uint8_t)(g->temp_c + TEMP_OFFSET));
        if (g->has & EXO_GPU_HAS_POWER)
            exo_buf_put_varint(out, g->power_dw);
        if (g->has & EXO_GPU_HAS_CLOCK)
            exo_buf_put_varint(out, g->clock_mhz);
        if (g->has & EXO_GPU_HAS_MEM_CLOCK)
            exo_buf_put_varint(out, g->mem_clock_mhz);
    }
    return out->err;
}

/* ---- decoding ------------------------------------------------------------------------------ */

/* A varint that must be below max; the field name goes into the diagnosis. */
static uint64_t bounded(struct exo_reader *r, uint64_t max, const char *field, int *rc,
                        struct exo_diag *diag)
{
    size_t at = r->off;
    uint64_t v = exo_reader_varint(r);
    if (*rc == 0 && r->err)
        *rc = exo_diag_set(diag, r->err, "digest: %s at byte %zu: %s", field, at,
                           exo_strerror(r->err));
    else if (*rc == 0 && v >= max)
        *rc = exo_diag_set(diag, EXO_ERANGE, "digest: %s at byte %zu is %llu, limit %llu", field,
                           at, (unsigned long long)v, (unsigned long long)max - 1);
    return *rc == 0 ? v : 0;
}

static uint8_t byte(struct exo_reader *r, const char *field, int *rc, struct exo_diag *diag)
{
    size_t at = r->off;
    uint8_t v = exo_reader_u8(r);
    if (*rc == 0 && r->err)
        *rc = exo_diag_set(diag, r->err, "digest: %s at byte %zu: %s", field, at,
                           exo_strerror(r->err));
    return *rc == 0 ? v : 0;
}

static void decode_gpu(struct exo_reader *r, struct exo_digest_gpu *g, int *rc,
                       struct exo_diag *diag)
{
    g->index = byte(r, "gpu index", rc, diag);
    uint8_t has = byte(r, "gpu fields", rc, diag);
    if (*rc == 0 && (has & HAS_RESERVED))
        *rc =
            exo_diag_set(diag, EXO_EFORMAT, "digest: gpu%u has a reserved field bit set", g->index);
    g->has = has & HAS_KNOWN;
    g->lost = (has & HAS_LOST) != 0;
    if (g->has & EXO_GPU_HAS_UTIL) {
        g->util_pct = byte(r, "gpu utilisation", rc, diag);
        if (*rc == 0 && g->util_pct > 100)
            *rc = exo_diag_set(diag, EXO_ERANGE, "digest: gpu%u utilisation %u%% over 100",
                               g->index, g->util_pct);
    }
    if (g->has & EXO_GPU_HAS_MEM) {
        g->mem_used_mib = (uint32_t)bounded(r, MAX_MIB + 1, "gpu memory used", rc, diag);
        g->mem_total_mib = (uint32_t)bounded(r, MAX_MIB + 1, "gpu memory total", rc, diag);
        if (*rc == 0 && g->mem_used_mib > g->mem_total_mib)
            *rc = exo_diag_set(diag, EXO_ERANGE, "digest: gpu%u uses more memory than it has",
                               g->index);
    }
    if (g->has & EXO_GPU_HAS_TEMP)
        g->temp_c = (int16_t)(byte(r, "gpu temperature", rc, diag) - TEMP_OFFSET);
    if (g->has & EXO_GPU_HAS_POWER)
        g->power_dw = (uint32_t)bounded(r, MAX_POWER_DW, "gpu power", rc, diag);
    if (g->has & EXO_GPU_HAS_CLOCK)
        g->clock_mhz = (uint32_t)bounded(r, MAX_CLOCK_MHZ, "gpu clock", rc, diag);
    if (g->has & EXO_GPU_HAS_MEM_CLOCK)
        g->mem_clock_mhz = (uint32_t)bounded(r, MAX_CLOCK_MHZ, "gpu memory clock", rc, diag);
}

int exo_digest_decode(const void *data, size_t len, struct exo_digest *ret, struct exo_diag *diag)
{
    struct exo_digest d;
    struct exo_reader r;
    int rc = 0;
    if (len > EXO_DIGEST_MAX)
        return exo_diag_set(diag, EXO_ETOOBIG, "digest: %zu bytes, limit %d", len, EXO_DIGEST_MAX);
    memset(&d, 0, sizeof(d));
    exo_reader_init(&r, data, len);
    uint8_t version = byte(&r, "version", &rc, diag);
    if (rc == 0 && version != EXO_DIGEST_VERSION)
        return exo_diag_set(diag, EXO_EUNSUPPORTED, "digest: version %u, expected %d", version,
                            EXO_DIGEST_VERSION);
    uint8_t flags = byte(&r, "flags", &rc, diag);
    if (rc == 0 && flags != 0)
        rc = exo_diag_set(diag, EXO_EFORMAT, "digest: reserved flags 0x%02x set", flags);
    d.seq = bounded(&r, UINT64_MAX, "seq", &rc, diag);
    d.t_ms = bounded(&r, MAX_T_MS, "time", &rc, diag);
    d.devices_gen = bounded(&r, UINT64_MAX, "device generation", &rc, diag);
    d.cpu_permille = (uint16_t)bounded(&r, 1001, "cpu use", &rc, diag);
    d.n_cpus = (uint16_t)bounded(&r, MAX_CPUS + 1, "cpu count", &rc, diag);
    d.mem_total_mib = (uint32_t)bounded(&r, MAX_MIB + 1, "memory total", &rc, diag);
    d.mem_avail_mib =
        (uint32_t)bounded(&r, (uint64_t)d.mem_total_mib + 1, "memory available", &rc, diag);
    d.swap_total_mib = (uint32_t)bounded(&r, MAX_MIB + 1, "swap total", &rc, diag);
    d.swap_free_mib = (uint32_t)bounded(&r, (uint64_t)d.swap_total_mib + 1, "swap free", &rc, diag);
    d.net_rx_bps = bounded(&r, MAX_RATE, "network receive rate", &rc, diag);
    d.net_tx_bps = bounded(&r, MAX_RATE, "network transmit rate", &rc, diag);
    d.tokens_centi = (uint32_t)bounded(&r, MAX_TOKENS_CENTI, "tokens per second", &rc, diag);
    d.n_gpus = byte(&r, "gpu count", &rc, diag);
    if (rc == 0 && d.n_gpus > EXO_DIGEST_MAX_GPUS)
        rc = exo_diag_set(diag, EXO_ERANGE, "digest: %u GPUs, limit %d", d.n_gpus,
                          EXO_DIGEST_MAX_GPUS);
    for (int i = 0; rc == 0 && i < d.n_gpus; i++) {
        decode_gpu(&r, &d.gpus[i], &rc, diag);
        for (int k = 0; rc == 0 && k < i; k++)
            if (d.gpus[k].index == d.gpus[i].index)
                rc =
                    exo_diag_set(diag, EXO_EFORMAT, "digest: gpu%u appears twice", d.gpus[i].index);
    }
    if (rc == 0 && exo_reader_left(&r))
        rc = exo_diag_set(diag, EXO_EFORMAT, "digest: %zu bytes after the last GPU",
                          exo_reader_left(&r));
    if (rc == 0)
        *ret = d;
    return rc;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

/* The digest as the sample it summarises (per-CPU figures aside), so that the API shows digests
 * and samples in one shape, written by one function. */
static void to_sample(const struct exo_digest *d, struct exo_telemetry_sample *s)
{
    memset(s, 0, sizeof(*s));
    s->t_ms = d->t_ms;
    s->seq = d->seq;
    s->cpu_permille = d->cpu_permille;
    s->mem_total = d->mem_total_mib * MIB;
    s->mem_available = d->mem_avail_mib * MIB;
    s->swap_total = d->swap_total_mib * MIB;
    s->swap_free = d->swap_free_mib * MIB;
    s->net_rx_bps = d->net_rx_bps;
    s->net_tx_bps = d->net_tx_bps;
    s->tokens_per_s = d->tokens_centi / 100.0;
    for (int i = 0; i < d->n_gpus && i < EXO_DIGEST_MAX_GPUS; i++) {
        const struct exo_digest_gpu *g = &d->gpus[i];
        struct exo_gpu_sample *o = &s->gpus[s->n_gpus++];
        snprintf(o->id, sizeof(o->id), "gpu%u", g->index);
        o->has = g->has;
        o->lost = g->lost;
        o->util_pct = g->util_pct;
        o->temp_c = g->temp_c;
        o->mem_used = g->mem_used_mib * MIB;
        o->mem_total = g->mem_total_mib * MIB;
        o->power_mw = g->power_dw * 100;
        o->clock_mhz = g->clock_mhz;
        o->mem_clock_mhz = g->mem_clock_mhz;
    }
}

cJSON *exo_digest_to_json(const struct exo_digest *d)
{
    struct exo_telemetry_sample *s = exo_malloc(sizeof(*s));
    if (!s)
        return NULL;
    to_sample(d, s);
    cJSON *o = exo_telemetry_sample_to_json(s);
    exo_free(s);
    if (o && (!cJSON_AddNumberToObject(o, "devices_gen", (double)d->devices_gen) ||
              !cJSON_AddNumberToObject(o, "n_cpus", d->n_cpus))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- Prometheus ---------------------------------------------------------------------------- */

enum gauge_source { NODE, GPU };

struct gauge {
    const char *name, *help;
    enum gauge_source source;
    uint8_t needs; /* GPU gauges: the has-bit the value needs (0: always) */
    double (*value)(const struct exo_digest *d, const struct exo_digest_gpu *g);
};

static double v_cpu(const struct exo_digest *d, const struct exo_digest_gpu *g)
{
    return d->cpu_permille / 1000.0;
}
static double v_cpus(const struct exo_digest *d, const struct exo_digest_gpu *g)
{
    return d->n_cpus;
}
static double v_mem_total(const struct exo_digest *d, const struct exo_digest_gpu *g)
{
    return (double)d->mem_total_mib * MIB;
}
static double v_mem_avail(const struct exo_digest *d, const struct exo_digest_gpu *g)
{
    return (double)d->mem_avail_mib * MIB;
}
static double v_swap_total(const struct exo_digest *d, const struct exo_digest_gpu *g)
{
    return (double)d->swap_total_mib * MIB;
}
static double v_swap_free(const struct exo_digest *d, const struct exo_digest_gpu *g)
{
    return (double)d->swap_free_mib * MIB;
}
static double v_rx(const struct exo_digest *d, const struct exo_digest_gpu *g)
{
    return (double)d->net_rx_bps;
}
static double v_tx(const struct exo_digest *d, const struct exo_digest_gpu *g)
{
    return (double)d->net_tx_bps;
}
static double v_tokens(const struct exo_digest *d, const struct exo_digest_gpu *g)
{
    return d->tokens_centi / 100.0;
}
static double v_lost(const struct exo_digest *d, const struct exo_digest_gpu *g)
{
    return g->lost;
}
static double v_util(const struct exo_digest *d, const struct exo_digest_gpu *g)
{
    return g->util_pct / 100.0;
}
static double v_gmem_used(const struct exo_digest *d, const struct exo_digest_gpu *g)
{
    return (double)g->mem_used_mib * MIB;
}
static double v_gmem_total(const struct exo_digest *d, const struct exo_digest_gpu *g)
{
    return (double)g->mem_total_mib * MIB;
}
static double v_temp(const struct exo_digest *d, const struct exo_digest_gpu *g)
{
    return g->temp_c;
}
static double v_power(const struct exo_digest *d, const struct exo_digest_gpu *g)
{
    return g->power_dw / 10.0;
}
static double v_clock(const struct exo_digest *d, const struct exo_digest_gpu *g)
{
    return g->clock_mhz * 1e6;
}
static double v_mem_clock(const struct exo_digest *d, const struct exo_digest_gpu *g)
{
    return g->mem_clock_mhz * 1e6;
}

static const struct gauge gauges[] = {
    {"exo_node_cpu_usage_ratio", "Share of all CPUs busy, 0 to 1", NODE, 0, v_cpu},
    {"exo_node_cpus", "Logical CPUs", NODE, 0, v_cpus},
    {"exo_node_memory_total_bytes", "System memory", NODE, 0, v_mem_total},
    {"exo_node_memory_available_bytes", "System memory available", NODE, 0, v_mem_avail},
    {"exo_node_swap_total_bytes", "Swap space", NODE, 0, v_swap_total},
    {"exo_node_swap_free_bytes", "Swap space free", NODE, 0, v_swap_free},
    {"exo_node_network_receive_bytes_per_second", "Bytes received per second, loopback excluded",
     NODE, 0, v_rx},
    {"exo_node_network_transmit_bytes_per_second", "Bytes sent per second, loopback excluded", NODE,
     0, v_tx},
    {"exo_node_tokens_per_second", "Tokens the engine processed per second", NODE, 0, v_tokens},
    {"exo_gpu_lost", "1 when the GPU's telemetry source stopped answering", GPU, 0, v_lost},
    {"exo_gpu_utilization_ratio", "GPU busy share, 0 to 1", GPU, EXO_GPU_HAS_UTIL, v_util},
    {"exo_gpu_memory_used_bytes", "GPU memory in use", GPU, EXO_GPU_HAS_MEM, v_gmem_used},
    {"exo_gpu_memory_total_bytes", "GPU memory", GPU, EXO_GPU_HAS_MEM, v_gmem_total},
    {"exo_gpu_temperature_celsius", "GPU temperature", GPU, EXO_GPU_HAS_TEMP, v_temp},
    {"exo_gpu_power_watts", "GPU power draw", GPU, EXO_GPU_HAS_POWER, v_power},
    {"exo_gpu_clock_hertz", "GPU core clock", GPU, EXO_GPU_HAS_CLOCK, v_clock},
    {"exo_gpu_memory_clock_hertz", "GPU memory clock", GPU, EXO_GPU_HAS_MEM_CLOCK, v_mem_clock},
};

int exo_digest_metrics(const char *const *node_ids, const struct exo_digest *const *digests,
                       size_t n, const struct exo_metrics_sink *sink)
{
    char device[16];
    for (size_t f = 0; f < sizeof(gauges) / sizeof(gauges[0]); f++) {
        const struct gauge *ga = &gauges[f];
        int rc = sink->family(sink->ud, ga->name, ga->help);
        if (rc)
            return rc;
        for (size_t i = 0; i < n; i++) {
            const struct exo_digest *d = digests[i];
            struct exo_metric_label labels[2] = {{"node", node_ids[i]}, {"device", device}};
            if (ga->source == NODE) {
                if ((rc = sink->sample(sink->ud, labels, 1, ga->value(d, NULL))))
                    return rc;
                continue;
            }
            for (int g = 0; g < d->n_gpus && g < EXO_DIGEST_MAX_GPUS; g++) {
                const struct exo_digest_gpu *gpu = &d->gpus[g];
                if (ga->needs && !(gpu->has & ga->needs))
                    continue;
                snprintf(device, sizeof(device), "gpu%u", gpu->index);
                if ((rc = sink->sample(sink->ud, labels, 2, ga->value(d, gpu))))
                    return rc;
            }
        }
    }
    return 0;
}
