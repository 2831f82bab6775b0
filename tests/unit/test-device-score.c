/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Scores and profiles: a (short) real measurement, the JSON cache format and its hostile
 * variants, the state-directory cache and its fingerprint, the model profile of a tiny model,
 * the prediction arithmetic, and link smoothing, and cancelling a measurement. No test asserts on
 * how fast anything ran, beyond a cancelled measurement ending far within its budget.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "device/detect.h"
#include "device/profile.h"
#include "device/score.h"
#include "engine/model.h"
#include "service/statedir.h"
#include "support/tiny-model.h"

static const enum exo_dtype quick_types[] = {EXO_DTYPE_Q4_0, EXO_DTYPE_F32};

static struct exo_score_params quick(void)
{
    struct exo_score_params p = {
        .n_threads = 1,
        .budget_s = 0.2,
        .stream_bytes = 4u << 20,
        .types = quick_types,
        .n_types = 2,
        .busy_cores = -1, /* the tests run beside each other: cache whatever they measure */
    };
    return p;
}

static struct exo_device this_cpu(void)
{
    struct exo_device_list *l = exo_malloc(sizeof(*l));
    struct exo_detect_options o = {.skip = 1u << EXO_DEVICE_API_CUDA | 1u << EXO_DEVICE_API_NVML |
                                           1u << EXO_DEVICE_API_VULKAN |
                                           1u << EXO_DEVICE_API_OPENCL |
                                           1u << EXO_DEVICE_API_SYSFS};
    assert_int_equal(exo_device_detect(&o, l), 0);
    struct exo_device d = l->v[0];
    exo_free(l);
    return d;
}

static void test_device_score_measures(void **state)
{
    struct exo_device cpu = this_cpu();
    struct exo_score_params p = quick();
    struct exo_score s;
    assert_int_equal(exo_score_measure(&cpu, &p, &s), 0);
    assert_int_equal(s.n_threads, 1);
    assert_int_equal(s.n_types, 2);
    assert_true(s.mem_bw_gbps > 0 && isfinite(s.mem_bw_gbps));
    assert_true(s.small_op_us > 0 && isfinite(s.small_op_us));
    for (uint32_t i = 0; i < s.n_types; i++) {
        assert_int_equal(s.types[i].type, quick_types[i]);
        assert_true(s.types[i].matvec_gbps > 0 && isfinite(s.types[i].matvec_gbps));
        assert_true(s.types[i].matmul_gflops > 0 && isfinite(s.types[i].matmul_gflops));
        assert_true(s.types[i].op_us >= 0 && isfinite(s.types[i].op_us));
        assert_true(s.types[i].row_ns >= 0 && isfinite(s.types[i].row_ns));
    }
    assert_non_null(exo_score_find(&s, EXO_DTYPE_F32));
    assert_null(exo_score_find(&s, EXO_DTYPE_Q6_K));
    assert_non_null(strstr(s.fingerprint, "pool=1;"));
    assert_non_null(strstr(s.fingerprint, cpu.name));
    assert_string_equal(s.version, EXO_VERSION);

    /* A type without kernels is left out, not an error. */
    enum exo_dtype odd[] = {EXO_DTYPE_Q5_0, EXO_DTYPE_Q8_0};
    p.types = odd;
    assert_int_equal(exo_score_measure(&cpu, &p, &s), 0);
    assert_int_equal(s.n_types, 1);
    assert_int_equal(s.types[0].type, EXO_DTYPE_Q8_0);

    /* A buffer too small for the tests' views is grown to fit (ASan would see an overrun). */
    p.stream_bytes = 4096;
    p.types = quick_types;
    assert_int_equal(exo_score_measure(&cpu, &p, &s), 0);
    assert_int_equal(s.n_types, 2);
}

static void *cancel_later(void *arg)
{
    usleep(100 * 1000);
    atomic_store((atomic_bool *)arg, true);
    return NULL;
}

static void test_device_score_cancel(void **state)
{
    struct exo_device cpu = this_cpu();
    struct exo_score_params p = quick();
    struct exo_score s;
    atomic_bool cancel = true;
    p.cancel = &cancel;
    assert_int_equal(exo_score_measure(&cpu, &p, &s), EXO_ECANCELED);

    /* Asked while it measures with a long budget, it stops within one timed run. */
    atomic_store(&cancel, false);
    p.budget_s = 30.0;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_later, &cancel), 0);
    uint64_t t0 = exo_clock_ns();
    assert_int_equal(exo_score_measure(&cpu, &p, &s), EXO_ECANCELED);
    double took = (double)(exo_clock_ns() - t0) / 1e9;
    pthread_join(th, NULL);
    assert_true(took < 5.0);
}

static struct exo_score sample_score(void)
{
    struct exo_score s;
    memset(&s, 0, sizeof(s));
    snprintf(s.fingerprint, sizeof(s.fingerprint), "cpu=test;pool=2");
    snprintf(s.version, sizeof(s.version), "0.1.0");
    s.measured_ms = 1733240000000ull;
    s.seconds = 1.9;
    s.n_threads = 2;
    s.mem_bw_gbps = 21.5;
    s.small_op_us = 0.5;
    s.n_types = 2;
    s.types[0] = (struct exo_score_type){EXO_DTYPE_Q4_0, 19.75, 6.5, 310.25, 1.5};
    s.types[1] = (struct exo_score_type){EXO_DTYPE_Q6_K, 18.5, 7.25, 150.5, 2.25};
    return s;
}

static int parse(const char *text, struct exo_score *s, struct exo_diag *diag)
{
    return exo_score_from_json(text, strlen(text), s, diag);
}

static void test_device_score_json_round_trip(void **state)
{
    struct exo_score a = sample_score(), b;
    struct exo_diag diag = {{0}};
    cJSON *j = exo_score_to_json(&a);
    char *text = cJSON_PrintUnformatted(j);
    assert_int_equal(parse(text, &b, &diag), 0);
    assert_string_equal(b.fingerprint, a.fingerprint);
    assert_string_equal(b.version, a.version);
    assert_int_equal(b.measured_ms, a.measured_ms);
    assert_int_equal(b.n_threads, 2);
    assert_true(b.mem_bw_gbps == a.mem_bw_gbps && b.small_op_us == a.small_op_us);
    assert_int_equal(b.n_types, 2);
    assert_memory_equal(b.types, a.types, sizeof(a.types[0]) * 2);
    cJSON_free(text);
    cJSON_Delete(j);
}

static void test_device_score_json_hostile(void **state)
{
    struct exo_score s;
    struct exo_diag diag = {{0}};
#define BASE                                                                                  \
    "{\"fingerprint\":\"f\",\"version\":\"v\",\"measured_ms\":1,\"seconds\":1,\"threads\":1," \
    "\"mem_bw_gbps\":1,\"small_op_us\":1,\"types\":[%s]}"
    const char *bad_types[] = {
        "{\"type\":\"q4_0\",\"matvec_gbps\":1,\"op_us\":1}",                         /* missing */
        "{\"type\":\"q9_9\",\"matvec_gbps\":1,\"op_us\":1,\"matmul_gflops\":1}",     /* unknown */
        "{\"type\":4,\"matvec_gbps\":1,\"op_us\":1,\"matmul_gflops\":1}",            /* not text */
        "{\"type\":\"q4_0\",\"matvec_gbps\":-1,\"op_us\":1,\"matmul_gflops\":1}",    /* negative */
        "{\"type\":\"q4_0\",\"matvec_gbps\":1e300,\"op_us\":1,\"matmul_gflops\":1}", /* absurd */
        "{\"type\":\"q4_0\",\"matvec_gbps\":\"1\",\"op_us\":1,\"matmul_gflops\":1}",
        "{\"type\":\"q4_0\",\"matvec_gbps\":1,\"op_us\":1,\"matmul_gflops\":1,\"row_ns\":1},"
        "{\"type\":\"q4_0\",\"matvec_gbps\":1,\"op_us\":1,\"matmul_gflops\":1,\"row_ns\":1}",
        /* twice */
        "{\"type\":\"q4_0\",\"matvec_gbps\":1,\"op_us\":1,\"matmul_gflops\":1,\"row_ns\":-1}",
        "1",
    };
    char text[4096];
    for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
        snprintf(text, sizeof(text), BASE, bad_types[i]);
        assert_int_equal(parse(text, &s, &diag), EXO_EFORMAT);
        assert_true(diag.msg[0]);
    }
    snprintf(text, sizeof(text), BASE, "");
    assert_int_equal(parse(text, &s, &diag), 0);
    assert_int_equal(s.n_types, 0);

    /* More types than a score holds. */
    char many[1024] = ""; /* small enough that text holds it whole */
    for (int i = 0; i < EXO_SCORE_MAX_TYPES + 1; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s{}", i ? "," : "");
    snprintf(text, sizeof(text), BASE, many);
    assert_int_equal(parse(text, &s, &diag), EXO_EFORMAT);

    const char *bad[] = {
        "",
        "[]",
        "{",
        "null",
        "{\"fingerprint\":1}",
        "{\"fingerprint\":\"f\",\"version\":\"v\",\"measured_ms\":-5,\"seconds\":1,"
        "\"threads\":1,\"mem_bw_gbps\":1,\"small_op_us\":1,\"types\":[]}",
        "{\"fingerprint\":\"f\",\"version\":\"v\",\"measured_ms\":1,\"seconds\":1,"
        "\"threads\":0,\"mem_bw_gbps\":1,\"small_op_us\":1,\"types\":[]}",
        "{\"fingerprint\":\"f\",\"version\":\"v\",\"measured_ms\":1,\"seconds\":1,"
        "\"threads\":1,\"mem_bw_gbps\":1,\"small_op_us\":1,\"types\":{}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(bad[i], &s, &diag), EXO_EFORMAT);

    /* A fingerprint longer than the field. */
    char *huge = exo_malloc(EXO_SCORE_CACHE_MAX + 2);
    const char *head = "{\"fingerprint\":\"", *tail = "\",\"version\":\"v\"}";
    memcpy(huge, head, strlen(head));
    memset(huge + strlen(head), 'a', EXO_SCORE_FINGERPRINT + 10);
    memcpy(huge + strlen(head) + EXO_SCORE_FINGERPRINT + 10, tail, strlen(tail) + 1);
    assert_int_equal(parse(huge, &s, &diag), EXO_EFORMAT);
    /* A file bigger than any score is not even parsed. */
    memset(huge, ' ', EXO_SCORE_CACHE_MAX + 1);
    assert_int_equal(exo_score_from_json(huge, EXO_SCORE_CACHE_MAX + 1, &s, &diag), EXO_ETOOBIG);
    exo_free(huge);
}

/* A fresh state directory under $EXO_TEST_TMP (or /tmp) named for the test and this process;
 * its path goes to dir (PATH_SIZE bytes). */
#define PATH_SIZE 512
static struct exo_statedir *scratch_statedir(const char *name, char *dir)
{
    const char *tmp = getenv("EXO_TEST_TMP");
    snprintf(dir, PATH_SIZE, "%s/%s-%ld", tmp ? tmp : "/tmp", name, (long)getpid());
    struct exo_statedir *sd = NULL;
    struct exo_diag diag = {{0}};
    assert_int_equal(exo_statedir_open(dir, &sd, &diag), 0);
    return sd;
}

static void remove_statedir(struct exo_statedir *sd, const char *dir)
{
    char cmd[PATH_SIZE + 16];
    exo_statedir_close(sd);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_device_score_cache(void **state)
{
    char dir[PATH_SIZE];
    struct exo_statedir *sd = scratch_statedir("score-cache", dir);
    struct exo_diag diag = {{0}};
    struct exo_device cpu = this_cpu();
    struct exo_score_params p = quick();
    struct exo_score a, b;
    bool cached = true;

    assert_int_equal(exo_score_get(sd, &cpu, &p, false, &a, &cached, &diag), 0);
    assert_false(cached);
    assert_int_equal(exo_score_get(sd, &cpu, &p, false, &b, &cached, &diag), 0);
    assert_true(cached);
    /* cJSON prints 15 significant digits when they read back within an epsilon, so a cached
     * figure may differ from the measured one in its last bit. */
    assert_string_equal(a.fingerprint, b.fingerprint);
    assert_int_equal(a.measured_ms, b.measured_ms);
    assert_int_equal(a.n_types, b.n_types);
    assert_true(fabs(a.mem_bw_gbps - b.mem_bw_gbps) <= 1e-12 * a.mem_bw_gbps);
    for (uint32_t i = 0; i < a.n_types; i++) {
        assert_int_equal(a.types[i].type, b.types[i].type);
        assert_true(fabs(a.types[i].matvec_gbps - b.types[i].matvec_gbps) <=
                    1e-12 * a.types[i].matvec_gbps);
    }

    /* --rescore measures again and replaces the cache. */
    assert_int_equal(exo_score_get(sd, &cpu, &p, true, &b, &cached, &diag), 0);
    assert_false(cached);
    assert_int_equal(exo_score_get(sd, &cpu, &p, false, &a, &cached, &diag), 0);
    assert_true(cached);
    assert_int_equal(a.measured_ms, b.measured_ms);

    /* Other hardware (here: more memory) or another thread count: measured again. */
    cpu.mem_total += 8ull << 30;
    assert_int_equal(exo_score_get(sd, &cpu, &p, false, &a, &cached, &diag), 0);
    assert_false(cached);
    p.n_threads = 2;
    assert_int_equal(exo_score_get(sd, &cpu, &p, false, &a, &cached, &diag), 0);
    assert_false(cached);
    assert_int_equal(a.n_threads, 2);

    /* A damaged cache file costs a measurement, not a failure. */
    assert_int_equal(exo_statedir_write(sd, EXO_SCORE_CACHE_FILE, "{\"fing", 6, &diag), 0);
    assert_int_equal(exo_score_get(sd, &cpu, &p, false, &a, &cached, &diag), 0);
    assert_false(cached);
    assert_int_equal(exo_score_get(sd, &cpu, &p, false, &a, &cached, &diag), 0);
    assert_true(cached);

    /* No state directory: always measured. */
    assert_int_equal(exo_score_get(NULL, &cpu, &p, false, &a, &cached, &diag), 0);
    assert_false(cached);
    remove_statedir(sd, dir);
}

/* A score measured while another process keeps a core busy is returned but not cached. */
static void test_device_score_busy(void **state)
{
    char dir[PATH_SIZE], path[PATH_SIZE + 64];
    struct exo_statedir *sd = scratch_statedir("score-busy", dir);
    struct exo_diag diag = {{0}};
    struct exo_device cpu = this_cpu();
    struct exo_score_params p = quick();
    p.busy_cores = 0.5;
    p.budget_s = 0.5;
    struct exo_score s;
    bool cached = true;

    pid_t spinner = fork();
    assert_true(spinner >= 0);
    if (spinner == 0) {
        uint64_t end = exo_clock_ns() + 30ull * 1000000000ull; /* bounded if the test dies */
        while (exo_clock_ns() < end)
            ;
        _exit(0);
    }
    diag.msg[0] = '\0';
    int rc = exo_score_get(sd, &cpu, &p, false, &s, &cached, &diag);
    kill(spinner, SIGKILL);
    waitpid(spinner, NULL, 0);
    assert_int_equal(rc, 0);
    assert_false(cached);
    if (s.others_cores < 0) { /* no /proc/stat: nothing to judge by, so it was cached */
        assert_int_equal(exo_score_get(sd, &cpu, &p, false, &s, &cached, &diag), 0);
        assert_true(cached);
    } else {
        assert_true(s.others_cores > 0.5);
        assert_non_null(strstr(diag.msg, "not cached"));
        assert_int_equal(access(exo_statedir_path(sd), F_OK), 0);
        snprintf(path, sizeof(path), "%s/%s", exo_statedir_path(sd), EXO_SCORE_CACHE_FILE);
        assert_int_not_equal(access(path, F_OK), 0);
    }
    remove_statedir(sd, dir);
}

static void test_device_score_model_profile(void **state)
{
    struct tiny_config cfg;
    uint8_t *data;
    size_t size;
    tiny_config_default(&cfg, "llama");
    tiny_model_build(&cfg, &data, &size);
    struct exo_gguf *g = NULL;
    struct exo_model *m = NULL;
    struct exo_model_profile p;
    assert_int_equal(exo_gguf_open_memory(data, size, "tiny", &g, NULL), 0);
    assert_int_equal(exo_model_from_gguf(g, &m, NULL), 0);
    assert_int_equal(exo_model_profile_from_model(m, &p), 0);
    assert_int_equal(p.n_layer, m->hp.n_layer);
    uint64_t bytes = p.layer_other_bytes + p.output_bytes + p.embd_bytes;
    uint32_t mats = 0;
    for (int t = 0; t < EXO_DTYPE_COUNT; t++) {
        bytes += p.layer_bytes[t];
        mats += p.layer_mats_by_type[t];
        if (p.layer_bytes[t])
            assert_true(p.layer_elems[t] > 0);
    }
    assert_int_equal(mats, 7 * p.n_layer);
    uint64_t per_layer = p.layer_other_bytes;
    for (int t = 0; t < EXO_DTYPE_COUNT; t++)
        per_layer += p.layer_bytes[t];
    assert_int_equal(exo_model_profile_layer_bytes(&p), per_layer / p.n_layer);
    /* Everything but the output norm is accounted for. */
    assert_int_equal(bytes + m->output_norm->size, m->weight_bytes);
    assert_int_equal(p.kv_bytes_per_token, exo_model_kv_bytes_per_token(m, EXO_DTYPE_F16));
    assert_int_equal(p.output_elems, (uint64_t)m->hp.n_vocab * m->hp.n_embd);
    exo_model_close(m);
    free(data);
}

static void test_device_score_prediction(void **state)
{
    struct exo_model_profile m;
    memset(&m, 0, sizeof(m));
    m.n_layer = 2;
    m.n_head = 4;
    m.head_dim = 16;
    m.layer_bytes[EXO_DTYPE_Q4_0] = 2000000000;
    m.layer_elems[EXO_DTYPE_Q4_0] = 3000000000;
    m.layer_mats_by_type[EXO_DTYPE_Q4_0] = 14;
    m.layer_rows[EXO_DTYPE_Q4_0] = 600000;
    m.layer_other_bytes = 4000;
    m.output_type = EXO_DTYPE_F32;
    m.output_bytes = 1000000000;
    m.output_elems = 250000000;
    m.output_rows = 50000;
    m.kv_bytes_per_token = 1000;
    m.weight_bytes = 3000004000;

    struct exo_device_profile d;
    memset(&d, 0, sizeof(d));
    d.mem_usable = 4000000000;
    d.mem_bw_gbps = 10;
    d.small_op_us = 1;
    d.n_types = 2;
    d.types[0] = (struct exo_score_type){EXO_DTYPE_Q4_0, 20, 5, 100, 3};
    d.types[1] = (struct exo_score_type){EXO_DTYPE_F32, 10, 2, 50, 0.5};

    struct exo_prediction p;
    assert_int_equal(exo_device_profile_predict(&d, &m, 1000, 100, &p), 0);
    /* Per layer: half the Q4_0 bytes at 20 GB/s, 7 mat-vecs at 5 us, 300000 rows at 3 ns,
     * 9 small ops at 1 us, and 100 cached tokens of 500 bytes (plus 2000 bytes of norms) at
     * 10 GB/s. */
    double layer = 1e9 / 20e9 + 7 * 5e-6 + 300000 * 3e-9 + 9 * 1e-6 + (500.0 * 100 + 2000) / 10e9;
    assert_true(fabs(p.layer_decode_s - layer) < 1e-12);
    double out = 1e9 / 10e9 + 50000 * 0.5e-9 + 2e-6 + 2 * 1e-6;
    assert_true(fabs(p.output_decode_s - out) < 1e-12);
    assert_true(fabs(p.decode_tps - 1.0 / (2 * layer + out)) < 1e-9);
    /* Prompt: 2 FLOPs per weight at 100 GFLOP/s, attention 4 * 4 heads * 16 * 100 FLOPs at the
     * f32 rate, the small ops. */
    double layer_pp = 2.0 * 1.5e9 / 100e9 + 4.0 * 4 * 16 * 100 / 50e9 + 9e-6;
    assert_true(fabs(p.layer_prefill_s - layer_pp) < 1e-12);
    assert_true(fabs(p.prefill_tps - 1.0 / (2 * layer_pp)) < 1e-9);
    assert_int_equal(p.mem_needed, 3000004000ull + 1000 * 1000);
    assert_true(p.fits);
    d.mem_usable = 3000000000;
    assert_int_equal(exo_device_profile_predict(&d, &m, 1000, 100, &p), 0);
    assert_false(p.fits);

    /* A type the device has no figures for. */
    m.layer_bytes[EXO_DTYPE_Q6_K] = 10;
    assert_int_equal(exo_device_profile_predict(&d, &m, 1000, 100, &p), EXO_EUNSUPPORTED);
    m.n_layer = 0;
    assert_int_equal(exo_device_profile_predict(&d, &m, 1000, 100, &p), EXO_EINVAL);
}

static void test_device_score_profile_memory(void **state)
{
    struct exo_device d;
    memset(&d, 0, sizeof(d));
    d.mem_total = 24ull << 30;
    d.mem_free = 20ull << 30;
    /* 10 % of 24 GiB kept back. */
    assert_int_equal(exo_device_usable_memory(&d), (20ull << 30) - (24ull << 30) / 10);
    d.mem_total = 1ull << 30;
    d.mem_free = 1ull << 30;
    assert_int_equal(exo_device_usable_memory(&d), 512ull << 20); /* at least 512 MiB kept */
    d.mem_total = 1ull << 40;
    d.mem_free = 1ull << 40;
    assert_int_equal(exo_device_usable_memory(&d), (1ull << 40) - (4ull << 30)); /* at most 4 */
    d.mem_free = 100;
    assert_int_equal(exo_device_usable_memory(&d), 0);

    struct exo_score s = sample_score();
    struct exo_device_profile p;
    snprintf(d.id, sizeof(d.id), "cpu0");
    d.mem_free = 1ull << 40;
    exo_device_profile_init(&p, &d, &s);
    assert_string_equal(p.device_id, "cpu0");
    assert_int_equal(p.n_types, 2);
    assert_true(p.mem_bw_gbps == 21.5);
    assert_true(p.types[1].matvec_gbps == 18.5);
}

static void test_device_score_links(void **state)
{
    struct exo_link l = {0};
    assert_true(exo_link_transfer_s(&l, 1000000, 100) == 0.01);
    exo_link_observe_rtt(&l, 10);
    assert_true(l.srtt_ms == 10 && l.rttvar_ms == 5);
    exo_link_observe_rtt(&l, 18);
    /* RFC 6298: rttvar = 3/4 * 5 + 1/4 * |10 - 18|, srtt = 7/8 * 10 + 1/8 * 18. */
    assert_true(fabs(l.rttvar_ms - 5.75) < 1e-12);
    assert_true(fabs(l.srtt_ms - 11) < 1e-12);
    exo_link_observe_rtt(&l, -1);
    exo_link_observe_rtt(&l, NAN);
    assert_int_equal(l.rtt_samples, 2);

    exo_link_observe_transfer(&l, 1000, 1000); /* too small to say anything */
    assert_int_equal(l.bw_samples, 0);
    exo_link_observe_transfer(&l, 100000000, 1000000000); /* 100 MB/s */
    assert_true(fabs(l.bandwidth_mbps - 100) < 1e-9);
    exo_link_observe_transfer(&l, 180000000, 1000000000);
    assert_true(fabs(l.bandwidth_mbps - 110) < 1e-9);
    /* Half a round trip plus 11 MB at 110 MB/s. */
    assert_true(fabs(exo_link_transfer_s(&l, 11000000, 1) - (0.0055 + 0.1)) < 1e-12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_score_measures),
        cmocka_unit_test(test_device_score_cancel),
        cmocka_unit_test(test_device_score_json_round_trip),
        cmocka_unit_test(test_device_score_json_hostile),
        cmocka_unit_test(test_device_score_cache),
        cmocka_unit_test(test_device_score_busy),
        cmocka_unit_test(test_device_score_model_profile),
        cmocka_unit_test(test_device_score_prediction),
        cmocka_unit_test(test_device_score_profile_memory),
        cmocka_unit_test(test_device_score_links),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
