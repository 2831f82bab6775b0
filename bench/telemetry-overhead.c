/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What telemetry costs: CPU time per sample (reading /proc, sysfs and NVML on this machine),
 * per digest encode and decode, per full-history JSON, and the 1 Hz sampler as a share of one
 * core. The sampler runs on a real libuv loop at a fast interval so that the cost per sample
 * stands out of the noise; the baseline is the same loop, in the same run, with an idle timer
 * at the same interval (the daemon with telemetry off still wakes its loop). Figures are CPU
 * time (getrusage / CLOCK_THREAD_CPUTIME_ID), not wall time, so other load on the machine
 * matters less. bench/telemetry-overhead-daemon measures the same in running daemons, gossip of
 * the digests included.
 *
 *   telemetry-overhead [-n SAMPLES] [-i INTERVAL_MS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "device/detect.h"
#include "device/digest.h"
#include "device/telemetry.h"

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* User + system time of the whole process (the libuv pool threads included). */
static double process_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

struct loop_run {
    uv_timer_t timer, stop;
    struct exo_telemetry *t;
    long ticks, target;
};

static void on_idle_tick(uv_timer_t *h)
{
    struct loop_run *r = h->data;
    if (++r->ticks >= r->target) {
        uv_close((uv_handle_t *)&r->timer, NULL);
    }
}

static void on_sample(void *ud, const struct exo_telemetry_sample *s)
{
    struct loop_run *r = ud;
    if (++r->ticks >= r->target)
        exo_telemetry_stop(r->t);
}

/* Process CPU seconds of running a loop for `target` ticks of interval_ms, with the sampler
 * (devices not NULL) or an idle timer. */
static double run_loop(const struct exo_device_list *devices, long target, uint32_t interval_ms,
                       double *ret_wall)
{
    uv_loop_t loop;
    struct loop_run r = {.target = target};
    uv_loop_init(&loop);
    double c0 = process_cpu_s();
    uint64_t w0 = exo_clock_ns();
    if (devices) {
        struct exo_telemetry_config c = {
            .source = {.devices = devices},
            .interval_ms = interval_ms,
            .on_sample = on_sample,
            .ud = &r,
        };
        if (exo_telemetry_start(&loop, &c, &r.t) < 0) {
            fprintf(stderr, "telemetry-overhead: cannot start the sampler\n");
            exit(1);
        }
    } else {
        uv_timer_init(&loop, &r.timer);
        r.timer.data = &r;
        uv_timer_start(&r.timer, on_idle_tick, 0, interval_ms);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    *ret_wall = (double)(exo_clock_ns() - w0) / 1e9;
    double cpu = process_cpu_s() - c0;
    uv_loop_close(&loop);
    return cpu;
}

int main(int argc, char **argv)
{
    long n = 2000;
    uint32_t interval_ms = 5;
    int c;
    while ((c = getopt(argc, argv, "n:i:")) != -1) {
        if (c == 'n')
            n = strtol(optarg, NULL, 10);
        else if (c == 'i')
            interval_ms = (uint32_t)strtoul(optarg, NULL, 10);
        else {
            fprintf(stderr, "usage: telemetry-overhead [-n SAMPLES] [-i INTERVAL_MS]\n");
            return 2;
        }
    }
    if (n < 10 || n > 1000000 || interval_ms < 1 || interval_ms > 1000) {
        fprintf(stderr, "telemetry-overhead: bad option value\n");
        return 2;
    }
    struct exo_device_list *devices = exo_malloc(sizeof(*devices));
    struct exo_telemetry_sample *s = exo_malloc(sizeof(*s));
    if (!devices || !s || exo_device_detect(NULL, devices) < 0)
        return 1;

    /* 1. Collection alone, on this thread. */
    struct exo_telemetry_source *src = NULL;
    struct exo_telemetry_source_config sc = {.devices = devices};
    if (exo_telemetry_source_open(&sc, &src) < 0)
        return 1;
    double t0 = thread_cpu_s();
    for (long i = 0; i < n; i++)
        exo_telemetry_source_collect(src, exo_clock_wall_ms(), exo_clock_ns(), s);
    double collect_us = (thread_cpu_s() - t0) / (double)n * 1e6;
    exo_telemetry_source_close(src);
    printf("devices: %zu (%u GPUs sampled), logical CPUs in a sample: %u\n", devices->n, s->n_gpus,
           s->n_cpus);
    printf("collect one sample:      %8.2f us CPU\n", collect_us);

    /* 2. The digest: summarise, encode, decode. */
    struct exo_digest d, back;
    struct exo_buf b;
    struct exo_diag diag = {{0}};
    exo_buf_init(&b, EXO_DIGEST_MAX);
    t0 = thread_cpu_s();
    for (long i = 0; i < n * 10; i++) {
        exo_buf_reset(&b);
        exo_digest_from_sample(s, 1, &d);
        exo_digest_encode(&d, &b);
    }
    double encode_us = (thread_cpu_s() - t0) / (double)(n * 10) * 1e6;
    t0 = thread_cpu_s();
    for (long i = 0; i < n * 10; i++)
        exo_digest_decode(b.data, b.len, &back, &diag);
    double decode_us = (thread_cpu_s() - t0) / (double)(n * 10) * 1e6;
    printf("digest: %zu bytes; encode %.3f us, decode %.3f us CPU\n", b.len, encode_us, decode_us);
    exo_buf_free(&b);

    /* 3. Ten minutes of history as JSON (GET /api/v1/telemetry without since). */
    struct exo_telemetry_ring ring;
    exo_telemetry_ring_init(&ring, EXO_TELEMETRY_RING);
    for (int i = 0; i < EXO_TELEMETRY_RING; i++)
        exo_telemetry_ring_push(&ring, s);
    t0 = thread_cpu_s();
    cJSON *j = exo_telemetry_ring_to_json(&ring, 0, 0);
    char *text = cJSON_PrintUnformatted(j);
    double json_ms = (thread_cpu_s() - t0) * 1e3;
    printf("full history as JSON:    %8.2f ms CPU, %zu bytes (%d samples)\n", json_ms,
           text ? strlen(text) : 0, EXO_TELEMETRY_RING);
    cJSON_free(text);
    cJSON_Delete(j);
    exo_telemetry_ring_free(&ring);

    /* 4. The sampler on a loop against an idle loop ticking at the same interval. */
    double wall_idle, wall_on;
    long ticks = n / 4 > 50 ? n / 4 : 50;
    double idle = run_loop(NULL, ticks, interval_ms, &wall_idle);
    double on = run_loop(devices, ticks, interval_ms, &wall_on);
    double per_sample_us = (on - idle) / (double)ticks * 1e6;
    double share = per_sample_us / 1e6 * 100.0; /* one sample per second */
    printf("loop, %ld ticks at %u ms: idle timer %.4f s CPU (%.2f s wall), sampler %.4f s CPU "
           "(%.2f s wall)\n",
           ticks, interval_ms, idle, wall_idle, on, wall_on);
    printf("sampler cost per sample: %8.2f us CPU over the idle loop\n", per_sample_us);
    printf("at 1 Hz: %.4f %% of one core for sampling, +%.5f %% to gossip one digest a second "
           "(target 0.5 %%)\n",
           share, (encode_us + decode_us) / 1e6 * 100.0);
    exo_free(s);
    exo_free(devices);
    return 0;
}
