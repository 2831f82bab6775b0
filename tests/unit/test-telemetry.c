/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Telemetry: the ring, collection from a recorded machine whose counters the test advances, the
 * 1 Hz sampler on a real libuv loop (run fast), the device-lost callback, the token counter
 * across threads, and the gossip digest: round trip, every truncation and hostile field, JSON
 * and Prometheus gauges.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "core/alloc.h"
#include "device/detect.h"
#include "device/digest.h"
#include "device/telemetry.h"

#define NO_LIBRARIES                                                                       \
    (1u << EXO_DEVICE_API_CUDA | 1u << EXO_DEVICE_API_NVML | 1u << EXO_DEVICE_API_VULKAN | \
     1u << EXO_DEVICE_API_OPENCL)

static char root[512];

/* A private copy of tests/data/device/host that the tests may change. */
static int setup(void **state)
{
    const char *data = getenv("EXO_TEST_DATA"), *tmp = getenv("EXO_TEST_TMP");
    char cmd[2048];
    snprintf(root, sizeof(root), "%s/telemetry-%ld", tmp ? tmp : "/tmp", (long)getpid());
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s/device/host' '%s'", root,
             data ? data : "tests/data", root);
    return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *rel, const char *text)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s%s", root, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Rename a path of the copy (both relative to its root). */
static void move(const char *from, const char *to)
{
    char a[1024], b[1024];
    snprintf(a, sizeof(a), "%s%s", root, from);
    snprintf(b, sizeof(b), "%s%s", root, to);
    assert_int_equal(rename(a, b), 0);
}

static struct exo_device_list *detect_fixture(void)
{
    struct exo_device_list *l = exo_malloc(sizeof(*l));
    struct exo_detect_options o = {.root = root, .skip = NO_LIBRARIES};
    assert_int_equal(exo_device_detect(&o, l), 0);
    return l;
}

static void test_telemetry_ring(void **state)
{
    struct exo_telemetry_ring r;
    struct exo_telemetry_sample s = {0};
    assert_int_equal(exo_telemetry_ring_init(&r, 0), EXO_EINVAL);
    assert_int_equal(exo_telemetry_ring_init(&r, 3), 0);
    assert_null(exo_telemetry_ring_latest(&r));
    for (uint64_t i = 0; i < 5; i++) {
        s.seq = i;
        s.t_ms = 1000 * (i + 1);
        exo_telemetry_ring_push(&r, &s);
    }
    assert_int_equal(r.n, 3);
    assert_int_equal(exo_telemetry_ring_at(&r, 0)->seq, 2);
    assert_int_equal(exo_telemetry_ring_at(&r, 2)->seq, 4);
    assert_null(exo_telemetry_ring_at(&r, 3));
    assert_int_equal(exo_telemetry_ring_latest(&r)->seq, 4);

    /* since=T keeps the samples after T; max keeps the newest. */
    cJSON *j = exo_telemetry_ring_to_json(&r, 3000, 0);
    cJSON *arr = cJSON_GetObjectItem(j, "samples");
    assert_int_equal(cJSON_GetArraySize(arr), 2);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "seq")->valuedouble, 3);
    cJSON_Delete(j);
    j = exo_telemetry_ring_to_json(&r, 0, 1);
    arr = cJSON_GetObjectItem(j, "samples");
    assert_int_equal(cJSON_GetArraySize(arr), 1);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "seq")->valuedouble, 4);
    cJSON_Delete(j);
    j = exo_telemetry_ring_to_json(&r, 99999, 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "samples")), 0);
    cJSON_Delete(j);
    exo_telemetry_ring_free(&r);
    exo_telemetry_ring_free(NULL);
}

static void test_telemetry_collect_rates(void **state)
{
    struct exo_device_list *l = detect_fixture();
    struct exo_token_counter tokens = {0};
    struct exo_telemetry_source_config c = {
        .root = root, .devices = l, .nvml_library = "", .tokens = &tokens};
    struct exo_telemetry_source *src = NULL;
    struct exo_telemetry_sample *s = exo_malloc(sizeof(*s));
    assert_int_equal(exo_telemetry_source_open(&c, &src), 0);

    assert_int_equal(exo_telemetry_source_collect(src, 5000, 1000000000ull, s), 0);
    assert_int_equal(s->seq, 0);
    assert_int_equal(s->t_ms, 5000);
    assert_int_equal(s->n_cpus, 4);
    assert_int_equal(s->cpu_permille, 0); /* no previous reading yet */
    assert_int_equal(s->mem_total, 32768000ull * 1024);
    assert_int_equal(s->mem_available, 16384000ull * 1024);
    assert_int_equal(s->swap_total, 4096000ull * 1024);
    assert_int_equal(s->swap_free, 3072000ull * 1024);
    assert_int_equal(s->net_rx_bps, 0);
    assert_int_equal(s->n_gpus, 2);
    assert_string_equal(s->gpus[0].id, "gpu0");
    assert_string_equal(s->gpus[1].id, "gpu1");
    assert_int_equal(s->gpus[1].util_pct, 37); /* the AMD card, through sysfs */
    assert_int_equal(s->gpus[1].power_mw, 251300);

    /* Half a second later: 1000 more jiffies of which 250 busy in total, cpu1 fully busy;
     * 1000 bytes received on eth0, 500 sent on wlan0; 60 tokens. */
    write_file("/proc/stat", "cpu  1250 0 500 8750 400 0 100 0 0 0\n"
                             "cpu0 250 0 125 2250 100 0 25 0 0 0\n"
                             "cpu1 500 0 125 2000 100 0 25 0 0 0\n"
                             "cpu2 250 0 125 2250 100 0 25 0 0 0\n"
                             "cpu3 250 0 125 2250 100 0 25 0 0 0\n");
    write_file("/proc/net/dev", "Inter-|   Receive\n face |bytes\n"
                                "    lo: 9000000 1 0 0 0 0 0 0 9000000 1 0 0 0 0 0 0\n"
                                "  eth0: 1001000 1 0 0 0 0 0 0 200000 1 0 0 0 0 0 0\n"
                                " wlan0: 500000 1 0 0 0 0 0 0 50500 1 0 0 0 0 0 0\n");
    exo_token_counter_add(&tokens, 60);
    assert_int_equal(exo_telemetry_source_collect(src, 5500, 1500000000ull, s), 0);
    assert_int_equal(s->seq, 1);
    assert_int_equal(s->cpu_permille, 250);
    assert_int_equal(s->cpu_pm[0], 0);
    assert_int_equal(s->cpu_pm[1], 1000);
    assert_int_equal(s->net_rx_bps, 2000);
    assert_int_equal(s->net_tx_bps, 1000);
    assert_true(s->tokens_per_s > 119.99 && s->tokens_per_s < 120.01);

    cJSON *j = exo_telemetry_sample_to_json(s);
    assert_true(cJSON_GetObjectItem(j, "cpu")->valuedouble == 0.25);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "cpus")), 4);
    cJSON *amd = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "gpus"), 1);
    assert_true(cJSON_GetObjectItem(amd, "util")->valuedouble == 0.37);
    assert_true(cJSON_GetObjectItem(amd, "power_w")->valuedouble == 251.3);
    /* The Intel iGPU gives no utilisation: the field is absent, not 0. */
    cJSON *intel = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "gpus"), 0);
    assert_null(cJSON_GetObjectItem(intel, "util"));
    assert_int_equal(cJSON_GetObjectItem(intel, "clock_mhz")->valuedouble, 1450);
    cJSON_Delete(j);

    /* /proc gone: only the GPUs are left, and that is an error for the sample. */
    move("/proc", "/proc.away");
    assert_int_equal(exo_telemetry_source_collect(src, 6000, 2000000000ull, s), EXO_ENOENT);
    move("/proc.away", "/proc");
    exo_telemetry_source_close(src);
    exo_telemetry_source_close(NULL);
    exo_free(s);
    exo_free(l);
}

struct sampler_run {
    struct exo_telemetry *t;
    uv_timer_t guard;
    int samples, lost_events;
    char lost_id[EXO_DEVICE_ID_SIZE];
    bool lost_state;
    bool stopped;
};

static void stop_all(struct sampler_run *r)
{
    if (r->stopped)
        return;
    r->stopped = true;
    exo_telemetry_stop(r->t);
    uv_close((uv_handle_t *)&r->guard, NULL);
}

static void on_sample(void *ud, const struct exo_telemetry_sample *s)
{
    struct sampler_run *r = ud;
    assert_int_equal(s->seq, (uint64_t)r->samples);
    r->samples++;
    if (r->samples == 2) {
        /* The AMD card is unplugged: the next sample finds it lost. */
        move("/sys/class/drm/card0", "/card0.away");
    }
    if (r->samples == 4)
        stop_all(r);
}

static void on_device(void *ud, const char *id, bool lost)
{
    struct sampler_run *r = ud;
    r->lost_events++;
    snprintf(r->lost_id, sizeof(r->lost_id), "%s", id);
    r->lost_state = lost;
}

static void on_guard(uv_timer_t *t)
{
    struct sampler_run *r = t->data;
    fail_msg("the sampler produced %d samples in 10 s", r->samples);
}

static void test_telemetry_sampler_on_loop(void **state)
{
    struct exo_device_list *l = detect_fixture();
    uv_loop_t loop;
    struct sampler_run r = {0};
    assert_int_equal(uv_loop_init(&loop), 0);
    struct exo_telemetry_config c = {
        .source = {.root = root, .devices = l, .nvml_library = ""},
        .interval_ms = 10,
        .ring_size = 3,
        .on_sample = on_sample,
        .on_device = on_device,
        .ud = &r,
    };
    assert_int_equal(exo_telemetry_start(&loop, &c, &r.t), 0);
    uv_timer_init(&loop, &r.guard);
    r.guard.data = &r;
    uv_timer_start(&r.guard, on_guard, 10000, 0);
    /* Runs until the sampler and the guard are closed. */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(r.samples, 4);
    assert_int_equal(r.lost_events, 1);
    assert_string_equal(r.lost_id, "gpu1");
    assert_true(r.lost_state);
    assert_int_equal(uv_loop_close(&loop), 0);
    move("/card0.away", "/sys/class/drm/card0");
    exo_free(l);
}

static void on_stopped(void *ud)
{
    ++*(int *)ud;
}

static void test_telemetry_stop_at_once(void **state)
{
    /* Stopped before the first collection ran, and while one may be in flight: the loop still
     * winds down, nothing leaks, and on_stopped comes once, from the loop. */
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    for (int i = 0; i < 3; i++) {
        struct exo_telemetry *t = NULL;
        int stopped = 0;
        struct exo_telemetry_config c = {
            .source = {.root = root, .nvml_library = ""}, .on_stopped = on_stopped, .ud = &stopped};
        assert_int_equal(exo_telemetry_start(&loop, &c, &t), 0);
        if (i > 0)
            uv_run(&loop, UV_RUN_NOWAIT);
        assert_int_equal(exo_telemetry_skipped(t), 0);
        assert_non_null(exo_telemetry_ring(t));
        exo_telemetry_stop(t);
        assert_int_equal(stopped, 0);
        assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(stopped, 1);
    }
    exo_telemetry_stop(NULL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void *add_tokens(void *arg)
{
    for (int i = 0; i < 10000; i++)
        exo_token_counter_add(arg, 3);
    return NULL;
}

static void test_telemetry_token_counter_threads(void **state)
{
    struct exo_token_counter c = {0};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, add_tokens, &c), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(exo_token_counter_read(&c), 120000);
}

/* ---- the digest ---------------------------------------------------------------------------- */

static struct exo_telemetry_sample *full_sample(void)
{
    struct exo_telemetry_sample *s = exo_calloc(1, sizeof(*s));
    s->seq = 123456;
    s->t_ms = 1733240000123ull;
    s->cpu_permille = 415;
    s->n_cpus = 64;
    s->mem_total = 256ull << 30;
    s->mem_available = 100ull << 30;
    s->swap_total = 8ull << 30;
    s->swap_free = 8ull << 30;
    s->net_rx_bps = 1250000000;
    s->net_tx_bps = 3;
    s->tokens_per_s = 212.347;
    s->n_gpus = EXO_TELEMETRY_MAX_GPUS;
    for (int i = 0; i < EXO_TELEMETRY_MAX_GPUS; i++) {
        struct exo_gpu_sample *g = &s->gpus[i];
        snprintf(g->id, sizeof(g->id), "gpu%d", i);
        g->has = EXO_GPU_HAS_UTIL | EXO_GPU_HAS_MEM | EXO_GPU_HAS_TEMP | EXO_GPU_HAS_POWER |
                 EXO_GPU_HAS_CLOCK | EXO_GPU_HAS_MEM_CLOCK;
        g->util_pct = (uint8_t)(i * 6);
        g->mem_total = 80ull << 30;
        g->mem_used = (uint64_t)i << 30;
        g->temp_c = (int16_t)(30 + i);
        g->power_mw = 700000;
        g->clock_mhz = 1980;
        g->mem_clock_mhz = 2619;
        g->lost = i == 5;
    }
    return s;
}

static void test_telemetry_digest_round_trip(void **state)
{
    struct exo_telemetry_sample *s = full_sample();
    struct exo_digest d, back;
    struct exo_buf b;
    struct exo_diag diag = {{0}};
    exo_digest_from_sample(s, 7, &d);
    assert_int_equal(d.tokens_centi, 21235);
    assert_int_equal(d.mem_total_mib, 256 * 1024);
    assert_int_equal(d.gpus[3].power_dw, 7000);
    exo_buf_init(&b, EXO_DIGEST_MAX);
    assert_int_equal(exo_digest_encode(&d, &b), 0);
    /* A node with sixteen busy GPUs still fits a gossip piggyback. */
    assert_true(b.len <= 330);
    print_message("digest with 16 GPUs: %zu bytes\n", b.len);
    assert_int_equal(exo_digest_decode(b.data, b.len, &back, &diag), 0);
    assert_memory_equal(&d, &back, sizeof(d));
    assert_true(back.gpus[5].lost);

    /* Every truncation is refused, none crashes. */
    for (size_t n = 0; n < b.len; n++) {
        int rc = exo_digest_decode(b.data, n, &back, &diag);
        assert_true(rc == EXO_ETRUNCATED || rc == EXO_EFORMAT);
    }

    /* A quiet node: no GPUs, no swap, nothing moving. */
    struct exo_telemetry_sample quiet = {0};
    quiet.mem_total = 1ull << 30;
    exo_digest_from_sample(&quiet, 0, &d);
    exo_buf_reset(&b);
    assert_int_equal(exo_digest_encode(&d, &b), 0);
    print_message("digest with no GPUs: %zu bytes\n", b.len);
    assert_true(b.len < 32);
    assert_int_equal(exo_digest_decode(b.data, b.len, &back, &diag), 0);
    assert_memory_equal(&d, &back, sizeof(d));
    exo_buf_free(&b);
    exo_free(s);
}

static void test_telemetry_digest_clamps(void **state)
{
    struct exo_telemetry_sample *s = full_sample();
    struct exo_digest d;
    s->cpu_permille = 5000;
    s->mem_available = s->mem_total + 1;
    s->tokens_per_s = 1e12;
    s->net_rx_bps = UINT64_MAX;
    snprintf(s->gpus[2].id, sizeof(s->gpus[2].id), "accel0"); /* not a gpuN: left out */
    s->gpus[3].temp_c = -300;
    s->gpus[4].util_pct = 250;
    s->gpus[6].mem_used = s->gpus[6].mem_total * 2;
    s->gpus[7].power_mw = UINT32_MAX;
    exo_digest_from_sample(s, 1, &d);
    assert_int_equal(d.cpu_permille, 1000);
    assert_int_equal(d.mem_avail_mib, d.mem_total_mib);
    assert_int_equal(d.n_gpus, EXO_TELEMETRY_MAX_GPUS - 1);
    assert_int_equal(d.gpus[2].index, 3);
    assert_int_equal(d.gpus[2].temp_c, -64);
    assert_int_equal(d.gpus[3].util_pct, 100);
    assert_int_equal(d.gpus[5].mem_used_mib, d.gpus[5].mem_total_mib);
    assert_int_equal(d.gpus[6].power_dw, 999999); /* no wrap-around near 2^32 mW */
    struct exo_buf b;
    exo_buf_init(&b, EXO_DIGEST_MAX);
    assert_int_equal(exo_digest_encode(&d, &b), 0);
    /* A digest built by hand that breaks a bound is not sent. */
    d.gpus[0].util_pct = 101;
    assert_int_equal(exo_digest_encode(&d, &b), EXO_EINVAL);
    d.gpus[0].util_pct = 1;
    d.gpus[1].index = d.gpus[0].index;
    assert_int_equal(exo_digest_encode(&d, &b), EXO_EINVAL);
    exo_buf_free(&b);
    exo_free(s);
}

/* Decode bytes given as a hex string. */
static int decode_hex(const char *hex, struct exo_diag *diag)
{
    uint8_t bytes[EXO_DIGEST_MAX + 8];
    size_t n = 0;
    for (; hex[0] && hex[1] && n < sizeof(bytes); hex += 2) {
        unsigned v;
        sscanf(hex, "%2x", &v);
        bytes[n++] = (uint8_t)v;
    }
    struct exo_digest d;
    return exo_digest_decode(bytes, n, &d, diag);
}

static void test_telemetry_digest_hostile(void **state)
{
    struct exo_diag diag = {{0}};
    /* version flags seq t gen cpu ncpu mem avail swap free rx tx tok ngpus */
    assert_int_equal(decode_hex("0100"
                                "01"
                                "02"
                                "00"
                                "0a"
                                "02"
                                "10"
                                "08"
                                "00"
                                "00"
                                "00"
                                "00"
                                "00"
                                "00",
                                &diag),
                     0);
    assert_int_equal(decode_hex("0200"
                                "01"
                                "02"
                                "00"
                                "0a"
                                "02"
                                "10"
                                "08"
                                "00"
                                "00"
                                "00"
                                "00"
                                "00"
                                "00",
                                &diag),
                     EXO_EUNSUPPORTED);
    assert_int_equal(decode_hex("0101"
                                "01"
                                "02"
                                "00"
                                "0a"
                                "02"
                                "10"
                                "08"
                                "00"
                                "00"
                                "00"
                                "00"
                                "00"
                                "00",
                                &diag),
                     EXO_EFORMAT);
    /* cpu 1001 permille (e9 07) */
    assert_int_equal(decode_hex("0100"
                                "01"
                                "02"
                                "00"
                                "e907"
                                "02"
                                "10"
                                "08"
                                "00"
                                "00"
                                "00"
                                "00"
                                "00"
                                "00",
                                &diag),
                     EXO_ERANGE);
    assert_non_null(strstr(diag.msg, "cpu use"));
    /* more memory available than there is */
    assert_int_equal(decode_hex("0100"
                                "01"
                                "02"
                                "00"
                                "0a"
                                "02"
                                "10"
                                "11"
                                "00"
                                "00"
                                "00"
                                "00"
                                "00"
                                "00",
                                &diag),
                     EXO_ERANGE);
    /* 17 GPUs */
    assert_int_equal(decode_hex("0100"
                                "01"
                                "02"
                                "00"
                                "0a"
                                "02"
                                "10"
                                "08"
                                "00"
                                "00"
                                "00"
                                "00"
                                "00"
                                "11",
                                &diag),
                     EXO_ERANGE);
    /* one GPU with utilisation 37 %, then the same index again */
    const char *head = "0100"
                       "01"
                       "02"
                       "00"
                       "0a"
                       "02"
                       "10"
                       "08"
                       "00"
                       "00"
                       "00"
                       "00"
                       "00";
    char hex[256];
    snprintf(hex, sizeof(hex),
             "%s01"
             "0001"
             "25",
             head);
    assert_int_equal(decode_hex(hex, &diag), 0);
    snprintf(hex, sizeof(hex),
             "%s02"
             "0001"
             "25"
             "0001"
             "25",
             head);
    assert_int_equal(decode_hex(hex, &diag), EXO_EFORMAT);
    snprintf(hex, sizeof(hex),
             "%s01"
             "0001"
             "65",
             head); /* 101 % */
    assert_int_equal(decode_hex(hex, &diag), EXO_ERANGE);
    snprintf(hex, sizeof(hex),
             "%s01"
             "0041",
             head); /* reserved field bit */
    assert_int_equal(decode_hex(hex, &diag), EXO_EFORMAT);
    snprintf(hex, sizeof(hex),
             "%s01"
             "0002"
             "0504",
             head); /* 5 MiB used of 4 */
    assert_int_equal(decode_hex(hex, &diag), EXO_ERANGE);
    snprintf(hex, sizeof(hex),
             "%s01"
             "0001"
             "25"
             "00",
             head); /* a byte after the last GPU */
    assert_int_equal(decode_hex(hex, &diag), EXO_EFORMAT);
    /* an eleven-byte varint for seq */
    assert_int_equal(decode_hex("0100"
                                "ffffffffffffffffffff01",
                                &diag),
                     EXO_EFORMAT);
    uint8_t big[EXO_DIGEST_MAX + 1] = {1};
    struct exo_digest d;
    assert_int_equal(exo_digest_decode(big, sizeof(big), &d, &diag), EXO_ETOOBIG);
    assert_int_equal(exo_digest_decode(NULL, 0, &d, &diag), EXO_ETRUNCATED);
}

struct metrics_text {
    char names[32][64];
    int n_families, n_samples;
    double last_value;
    char last_node[32], last_device[32];
};

static int family(void *ud, const char *name, const char *help)
{
    struct metrics_text *m = ud;
    for (int i = 0; i < m->n_families; i++)
        assert_string_not_equal(m->names[i], name);
    assert_true(m->n_families < 32 && help[0]);
    snprintf(m->names[m->n_families++], sizeof(m->names[0]), "%s", name);
    return 0;
}

static int sample(void *ud, const struct exo_metric_label *labels, size_t n, double value)
{
    struct metrics_text *m = ud;
    assert_string_equal(labels[0].name, "node");
    snprintf(m->last_node, sizeof(m->last_node), "%s", labels[0].value);
    m->last_device[0] = '\0';
    if (n > 1) {
        assert_string_equal(labels[1].name, "device");
        snprintf(m->last_device, sizeof(m->last_device), "%s", labels[1].value);
    }
    m->last_value = value;
    m->n_samples++;
    return 0;
}

static void test_telemetry_digest_json_and_metrics(void **state)
{
    struct exo_telemetry_sample *s = full_sample();
    struct exo_digest a, b;
    exo_digest_from_sample(s, 2, &a);
    struct exo_telemetry_sample quiet = {0};
    exo_digest_from_sample(&quiet, 0, &b);

    cJSON *j = exo_digest_to_json(&a);
    assert_true(cJSON_GetObjectItem(j, "cpu")->valuedouble == 0.415);
    assert_true(cJSON_GetObjectItem(j, "tokens_per_s")->valuedouble == 212.35);
    cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "gpus"), 2);
    assert_string_equal(cJSON_GetObjectItem(g, "id")->valuestring, "gpu2");
    assert_true(cJSON_GetObjectItem(g, "power_w")->valuedouble == 700.0);
    cJSON_Delete(j);

    struct metrics_text m = {0};
    struct exo_metrics_sink sink = {family, sample, &m};
    const char *ids[] = {"node-a", "node-b"};
    const struct exo_digest *ds[] = {&a, &b};
    assert_int_equal(exo_digest_metrics(ids, ds, 2, &sink), 0);
    assert_int_equal(m.n_families, 17);
    /* 9 node gauges for 2 nodes, 8 GPU gauges for node-a's 16 GPUs. */
    assert_int_equal(m.n_samples, 9 * 2 + 8 * 16);
    assert_string_equal(m.names[16], "exo_gpu_memory_clock_hertz");
    assert_string_equal(m.last_node, "node-a");
    assert_string_equal(m.last_device, "gpu15");
    assert_true(m.last_value == 2619e6);
    exo_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_telemetry_ring),
        cmocka_unit_test(test_telemetry_collect_rates),
        cmocka_unit_test(test_telemetry_sampler_on_loop),
        cmocka_unit_test(test_telemetry_stop_at_once),
        cmocka_unit_test(test_telemetry_token_counter_threads),
        cmocka_unit_test(test_telemetry_digest_round_trip),
        cmocka_unit_test(test_telemetry_digest_clamps),
        cmocka_unit_test(test_telemetry_digest_hostile),
        cmocka_unit_test(test_telemetry_digest_json_and_metrics),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
