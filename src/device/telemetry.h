/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Telemetry: what this node is doing, once a second. A sample holds CPU use (total and per CPU),
 * memory, swap, network bytes per second, per-GPU use, memory, temperature, power and clocks
 * where the source gives them, and the engine's own tokens per second. Samples go into a ring
 * of ten minutes (600 at 1 Hz); the daemon gossips a compact digest of the latest one
 * (digest.h) and serves the ring as JSON for GET /api/v1/telemetry?since=T.
 *
 * Threads: the sampler lives on the daemon's libuv loop. Its uv_timer fires every interval on
 * the loop thread and hands the collection to libuv's thread pool (uv_queue_work), because
 * some sources are slow (an NVML call can take milliseconds, a sysfs power read on some amdgpu
 * boards too); the completion callback runs on the loop thread again, pushes the sample into
 * the ring and calls on_sample. At most one collection is in flight: a tick that finds the
 * previous one still running is skipped and counted. The ring and everything in struct
 * exo_telemetry belong to the loop thread; the collector (struct exo_telemetry_source) belongs
 * to whichever thread runs the job, one at a time. The only state shared with other threads is
 * the token counter, an atomic the engine's compute threads bump.
 */
#ifndef EXO_DEVICE_TELEMETRY_H
#define EXO_DEVICE_TELEMETRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "core/error.h"
#include "device/device.h"
#include "device/procfs.h"

#define EXO_TELEMETRY_RING     600 /* ten minutes at 1 Hz */
#define EXO_TELEMETRY_MAX_GPUS 16

/* ---- the tokens/s counter ------------------------------------------------------------------ */

/* Tokens the engine has produced (prompt and generated). Any thread may add; the sampler turns
 * the count into a rate. Initialise with {0}. */
struct exo_token_counter {
    _Atomic uint64_t total;
};

static inline void exo_token_counter_add(struct exo_token_counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->total, n, memory_order_relaxed);
}

static inline uint64_t exo_token_counter_read(struct exo_token_counter *c)
{
    return atomic_load_explicit(&c->total, memory_order_relaxed);
}

/* ---- samples ------------------------------------------------------------------------------- */

/* Which fields of a GPU sample its source gave. */
enum exo_gpu_field {
    EXO_GPU_HAS_UTIL = 1u << 0,
    EXO_GPU_HAS_MEM = 1u << 1,
    EXO_GPU_HAS_TEMP = 1u << 2,
    EXO_GPU_HAS_POWER = 1u << 3,
    EXO_GPU_HAS_CLOCK = 1u << 4,
    EXO_GPU_HAS_MEM_CLOCK = 1u << 5,
};

struct exo_gpu_sample {
    char id[EXO_DEVICE_ID_SIZE]; /* "gpu0" */
    uint32_t has;                /* enum exo_gpu_field bits */
    bool lost;                   /* its source stopped answering (driver error, card gone) */
    uint8_t util_pct;            /* 0..100 */
    int16_t temp_c;
    uint32_t power_mw;
    uint32_t clock_mhz, mem_clock_mhz;
    uint64_t mem_used, mem_total; /* bytes */
};

struct exo_telemetry_sample {
    uint64_t t_ms;         /* wall clock, milliseconds since the epoch */
    uint64_t seq;          /* 0, 1, 2, ... for one sampler */
    uint16_t cpu_permille; /* all CPUs: 0..1000 */
    uint16_t n_cpus;       /* entries of cpu_pm (one past the highest CPU number) */
    uint16_t cpu_pm[EXO_PROCFS_MAX_CPUS];
    uint64_t mem_total, mem_available, swap_total, swap_free; /* bytes */
    uint64_t net_rx_bps, net_tx_bps; /* bytes per second over every interface but loopback */
    double tokens_per_s;
    uint32_t n_gpus;
    struct exo_gpu_sample gpus[EXO_TELEMETRY_MAX_GPUS];
};

/* ---- the ring ------------------------------------------------------------------------------ */

struct exo_telemetry_ring {
    struct exo_telemetry_sample *v; /* owned, cap entries */
    size_t cap, head, n;            /* head: where the next sample goes */
};

int exo_telemetry_ring_init(struct exo_telemetry_ring *r, size_t cap);
void exo_telemetry_ring_free(struct exo_telemetry_ring *r);
/* Copy s in, dropping the oldest sample when full. */
void exo_telemetry_ring_push(struct exo_telemetry_ring *r, const struct exo_telemetry_sample *s);
/* The i-th oldest sample (0 <= i < n); borrowed from the ring until the next push. */
const struct exo_telemetry_sample *exo_telemetry_ring_at(const struct exo_telemetry_ring *r,
                                                         size_t i);
/* The newest sample, or NULL when empty; borrowed as above. */
const struct exo_telemetry_sample *exo_telemetry_ring_latest(const struct exo_telemetry_ring *r);

/*
 * JSON for GET /api/v1/telemetry?since=T: the samples newer than since_ms (wall clock), oldest
 * first, at most max of the newest of them (0: no limit). Owned by the caller; NULL when out of
 * memory. Shape:
 *   {"samples": [{"t": 1733240000000, "seq": 12, "cpu": 0.415, "cpus": [0.4, 0.43],
 *                 "mem": {"total": ..., "available": ...}, "swap": {"total": ..., "free": ...},
 *                 "net": {"rx_bps": ..., "tx_bps": ...}, "tokens_per_s": 0.0,
 *                 "gpus": [{"id": "gpu0", "lost": false, "util": 0.97, "mem_used": ...,
 *                           "mem_total": ..., "temp_c": 61, "power_w": 251.3,
 *                           "clock_mhz": 1980, "mem_clock_mhz": 2619}]}]}
 * Shares (cpu, util) are fractions of one; a GPU's fields its source does not give are left out.
 */
cJSON *exo_telemetry_ring_to_json(const struct exo_telemetry_ring *r, uint64_t since_ms,
                                  size_t max);
cJSON *exo_telemetry_sample_to_json(const struct exo_telemetry_sample *s);

/* ---- collection (any one thread at a time) ------------------------------------------------ */

struct exo_telemetry_source_config {
    const char *root;                      /* NULL or "/": this machine (tests pass fixtures) */
    const struct exo_device_list *devices; /* copied: which GPUs to sample, and through what */
    const char *nvml_library;              /* NULL: "libnvidia-ml.so.1"; "": never use NVML */
    struct exo_token_counter *tokens;      /* borrowed, may be NULL; must outlive the source */
};

struct exo_telemetry_source;

/* A collector. *ret owned by the caller. NVML is loaded only when a device is bound to it;
 * failing to load it logs one line and leaves those GPUs unsampled (marked lost). */
int exo_telemetry_source_open(const struct exo_telemetry_source_config *cfg,
                              struct exo_telemetry_source **ret);
void exo_telemetry_source_close(struct exo_telemetry_source *src);

/* Read every source now into *ret. Rates (CPU shares, network, tokens) are over the time since
 * the previous call, so the first call reports them as 0. now_ms: the wall clock to stamp;
 * mono_ns: a monotonic time for the rates (exo_clock_ns()). Fails only when /proc/stat and
 * /proc/meminfo are both unreadable (EXO_EIO / EXO_ENOENT). */
int exo_telemetry_source_collect(struct exo_telemetry_source *src, uint64_t now_ms,
                                 uint64_t mono_ns, struct exo_telemetry_sample *ret);

/* ---- the sampler (loop thread) ------------------------------------------------------------ */

struct exo_telemetry;

/* After each sample is in the ring; `s` is borrowed for the call. */
typedef void (*exo_telemetry_sample_cb)(void *ud, const struct exo_telemetry_sample *s);
/* A GPU's source stopped answering (lost = true) or answers again (lost = false): the daemon
 * sends this as a device state change event. `id` borrowed for the call. */
typedef void (*exo_telemetry_device_cb)(void *ud, const char *id, bool lost);
/* Everything is released after exo_telemetry_stop (what the source borrows, such as the token
 * counter, may go now). */
typedef void (*exo_telemetry_stopped_cb)(void *ud);

struct exo_telemetry_config {
    struct exo_telemetry_source_config source;
    uint32_t interval_ms;                /* 0: 1000 */
    size_t ring_size;                    /* 0: EXO_TELEMETRY_RING */
    exo_telemetry_sample_cb on_sample;   /* may be NULL */
    exo_telemetry_device_cb on_device;   /* may be NULL */
    exo_telemetry_stopped_cb on_stopped; /* may be NULL */
    void *ud;
};

/* Start sampling on loop (the calling thread must be the loop's). *ret is owned by the caller
 * until exo_telemetry_stop. */
int exo_telemetry_start(uv_loop_t *loop, const struct exo_telemetry_config *cfg,
                        struct exo_telemetry **ret);

/* Stop sampling and release everything; the memory goes once the loop has closed the timer and
 * any collection in flight has come back, so the loop must run on (uv_run) until then; then
 * on_stopped is called from the loop. No other callback is called after this returns. Accepts
 * NULL. */
void exo_telemetry_stop(struct exo_telemetry *t);

/* The ring (borrowed; loop thread only). */
const struct exo_telemetry_ring *exo_telemetry_ring(const struct exo_telemetry *t);

/* Ticks skipped because the previous collection had not finished. */
uint64_t exo_telemetry_skipped(const struct exo_telemetry *t);

#endif
