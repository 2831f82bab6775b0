/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bounded /proc and /sys readers and their parsers, on recorded files
 * (tests/data/device/host) and on hostile text: truncated lines, numbers past 64 bits, indices
 * past the cap, missing headers, binary junk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "device/device.h"
#include "device/procfs.h"

static void fixture(char *out, size_t size, const char *name)
{
    const char *data = getenv("EXO_TEST_DATA");
    snprintf(out, size, "%s/device/%s", data ? data : "tests/data", name);
}

static int parse_stat_text(const char *text, struct exo_proc_stat *st)
{
    return exo_procfs_parse_stat(text, strlen(text), st);
}

static void test_device_procfs_stat(void **state)
{
    char root[512];
    struct exo_buf b;
    struct exo_proc_stat *st = exo_malloc(sizeof(*st));
    fixture(root, sizeof(root), "host");
    exo_buf_init(&b, 0);
    assert_int_equal(exo_procfs_read(root, "/proc/stat", EXO_PROCFS_CAP_TEXT, &b, NULL), 0);
    assert_int_equal(exo_procfs_parse_stat((const char *)b.data, b.len, st), 0);
    assert_int_equal(st->n_cpus, 4);
    assert_int_equal(st->total.user, 1000);
    assert_int_equal(st->total.system, 500);
    assert_int_equal(st->total.softirq, 100);
    assert_int_equal(exo_cpu_times_total(&st->total), 10000);
    assert_int_equal(exo_cpu_times_idle(&st->total), 8400);
    assert_true(st->online[3]);
    assert_int_equal(st->cpu[2].idle, 2000);

    /* Busy share between readings: 300 of 1000 new jiffies busy. */
    struct exo_cpu_times a = {.user = 100, .idle = 900}, c = {.user = 400, .idle = 1600};
    assert_int_equal(exo_cpu_times_busy_permille(&a, &c), 300);
    /* Counters that went backwards (a CPU offlined and back) read as idle, not as garbage. */
    assert_int_equal(exo_cpu_times_busy_permille(&c, &a), 0);
    assert_int_equal(exo_cpu_times_busy_permille(&a, &a), 0);
    exo_buf_free(&b);
    exo_free(st);
}

static void test_device_procfs_stat_hostile(void **state)
{
    struct exo_proc_stat *st = exo_malloc(sizeof(*st));
    /* No "cpu " line at all, or one with too few fields. */
    assert_int_equal(parse_stat_text("intr 1 2 3\n", st), EXO_EFORMAT);
    assert_int_equal(parse_stat_text("cpu 1 2 3\ncpu0 1 2 3 4\n", st), EXO_EFORMAT);
    assert_int_equal(parse_stat_text("", st), EXO_EFORMAT);
    /* A 4-field line from old kernels is enough; later fields default to 0. */
    assert_int_equal(parse_stat_text("cpu 1 2 3 4", st), 0);
    assert_int_equal(st->total.idle, 4);
    assert_int_equal(st->total.steal, 0);

    char root[512];
    struct exo_buf b;
    fixture(root, sizeof(root), "hostile");
    exo_buf_init(&b, 0);
    assert_int_equal(exo_procfs_read(root, "/proc/stat", EXO_PROCFS_CAP_TEXT, &b, NULL), 0);
    /* "cpu 12 34" is short, cpu99999 is past the cap, cpu1's number overflows, cpu2 lacks a
     * field: only cpu0 survives, and without a total the file is refused. */
    assert_int_equal(exo_procfs_parse_stat((const char *)b.data, b.len, st), EXO_EFORMAT);
    assert_true(st->online[0]);
    assert_false(st->online[1]);
    assert_false(st->online[2]);
    assert_int_equal(st->n_cpus, 1);

    /* Values near 2^64 would wrap the sums; they are refused. */
    assert_int_equal(parse_stat_text("cpu 18446744073709551615 0 0 0\n", st), EXO_EFORMAT);
    assert_int_equal(parse_stat_text("cpu 1 1 1 1\ncpu3 1 1 1 1\ncpu3 9 9 9 9\n", st), 0);
    assert_int_equal(st->cpu[3].user, 1); /* the first of a duplicated line counts */
    assert_int_equal(st->n_cpus, 4);
    assert_false(st->online[0]);
    exo_buf_free(&b);
    exo_free(st);
}

static void test_device_procfs_meminfo(void **state)
{
    struct exo_meminfo mi;
    const char *text = "MemTotal:       32768000 kB\nMemAvailable:   16384000 kB\n"
                       "SwapTotal: 100 kB\nSwapFree: 200 kB\n";
    assert_int_equal(exo_procfs_parse_meminfo(text, strlen(text), &mi), 0);
    assert_int_equal(mi.mem_total, 32768000ull * 1024);
    assert_int_equal(mi.mem_available, 16384000ull * 1024);
    assert_int_equal(mi.swap_total, 100 * 1024);
    assert_int_equal(mi.swap_free, 100 * 1024); /* never more free than there is */

    /* Kernels before 3.14 lack MemAvailable. */
    text = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 200 kB\n";
    assert_int_equal(exo_procfs_parse_meminfo(text, strlen(text), &mi), 0);
    assert_int_equal(mi.mem_available, 310 * 1024);
    text = "MemTotal: 1000 kB\nMemAvailable: 5000 kB\n";
    assert_int_equal(exo_procfs_parse_meminfo(text, strlen(text), &mi), 0);
    assert_int_equal(mi.mem_available, 1000 * 1024);

    text = "MemFree: 100 kB\n";
    assert_int_equal(exo_procfs_parse_meminfo(text, strlen(text), &mi), EXO_EFORMAT);
    text = "MemTotal: 18014398509481984 kB\n"; /* 2^54 kB: the bytes overflow */
    assert_int_equal(exo_procfs_parse_meminfo(text, strlen(text), &mi), EXO_ERANGE);

    char root[512];
    struct exo_buf b;
    fixture(root, sizeof(root), "hostile");
    exo_buf_init(&b, 0);
    assert_int_equal(exo_procfs_read(root, "/proc/meminfo", EXO_PROCFS_CAP_TEXT, &b, NULL), 0);
    assert_int_equal(exo_procfs_parse_meminfo((const char *)b.data, b.len, &mi), EXO_ERANGE);
    exo_buf_free(&b);
}

static void test_device_procfs_netdev(void **state)
{
    char root[512];
    struct exo_buf b;
    struct exo_netdev nd;
    fixture(root, sizeof(root), "host");
    exo_buf_init(&b, 0);
    assert_int_equal(exo_procfs_read(root, "/proc/net/dev", EXO_PROCFS_CAP_TEXT, &b, NULL), 0);
    assert_int_equal(exo_procfs_parse_netdev((const char *)b.data, b.len, &nd), 0);
    /* eth0 + wlan0; loopback left out. */
    assert_int_equal(nd.rx_bytes, 1500000);
    assert_int_equal(nd.tx_bytes, 250000);
    assert_int_equal(nd.n_ifaces, 2);
    exo_buf_reset(&b);

    fixture(root, sizeof(root), "hostile");
    assert_int_equal(exo_procfs_read(root, "/proc/net/dev", EXO_PROCFS_CAP_TEXT, &b, NULL), 0);
    assert_int_equal(exo_procfs_parse_netdev((const char *)b.data, b.len, &nd), EXO_EFORMAT);
    /* Short interface lines are skipped. */
    const char *text = "h|\nh|\neth0: 1 2 3\neth1: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
    assert_int_equal(exo_procfs_parse_netdev(text, strlen(text), &nd), 0);
    assert_int_equal(nd.n_ifaces, 1);
    assert_int_equal(nd.tx_bytes, 9);
    exo_buf_free(&b);
}

static void test_device_procfs_cpuinfo(void **state)
{
    char root[512];
    struct exo_buf b;
    struct exo_cpuinfo ci;
    fixture(root, sizeof(root), "host");
    exo_buf_init(&b, 0);
    assert_int_equal(exo_procfs_read(root, "/proc/cpuinfo", EXO_PROCFS_CAP_TEXT, &b, NULL), 0);
    assert_int_equal(exo_procfs_parse_cpuinfo((const char *)b.data, b.len, &ci), 0);
    assert_string_equal(ci.model, "Intel(R) Xeon(R) Gold 6430");
    assert_string_equal(ci.vendor, "GenuineIntel");
    assert_int_equal(ci.n_processors, 4);
    assert_int_equal(ci.mhz, 2100);
    uint32_t want = EXO_DEVICE_FEAT_SSE3 | EXO_DEVICE_FEAT_SSSE3 | EXO_DEVICE_FEAT_AVX |
                    EXO_DEVICE_FEAT_AVX2 | EXO_DEVICE_FEAT_FMA | EXO_DEVICE_FEAT_F16C |
                    EXO_DEVICE_FEAT_AVX512F | EXO_DEVICE_FEAT_AVX512BW | EXO_DEVICE_FEAT_AVX512VL |
                    EXO_DEVICE_FEAT_AVX512VNNI | EXO_DEVICE_FEAT_AVX512BF16 |
                    EXO_DEVICE_FEAT_AVXVNNI | EXO_DEVICE_FEAT_AMX;
    assert_int_equal(ci.features, want);
    exo_buf_reset(&b);

    /* A 3000-byte model name is cut, junk bytes in flags are just not flags, an absurd MHz
     * is ignored. */
    fixture(root, sizeof(root), "hostile");
    assert_int_equal(exo_procfs_read(root, "/proc/cpuinfo", EXO_PROCFS_CAP_TEXT, &b, NULL), 0);
    assert_int_equal(exo_procfs_parse_cpuinfo((const char *)b.data, b.len, &ci), 0);
    assert_int_equal(strlen(ci.model), sizeof(ci.model) - 1);
    assert_int_equal(ci.features, EXO_DEVICE_FEAT_AVX2 | EXO_DEVICE_FEAT_FMA);
    assert_int_equal(ci.mhz, 0);

    const char *arm = "processor : 0\nFeatures : fp asimd evtstrm aes asimddp fphp\n"
                      "CPU part : 0xd0c\n";
    assert_int_equal(exo_procfs_parse_cpuinfo(arm, strlen(arm), &ci), 0);
    assert_int_equal(ci.features,
                     EXO_DEVICE_FEAT_NEON | EXO_DEVICE_FEAT_DOTPROD | EXO_DEVICE_FEAT_FP16);
    exo_buf_free(&b);
}

static void test_device_procfs_read_caps(void **state)
{
    char dir[512], path[600];
    const char *tmp = getenv("EXO_TEST_TMP");
    snprintf(dir, sizeof(dir), "%s/procfs-%ld", tmp ? tmp : "/tmp", (long)getpid());
    snprintf(path, sizeof(path), "mkdir -p '%s'", dir);
    assert_int_equal(system(path), 0);
    snprintf(path, sizeof(path), "%s/big", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 1000; i++)
        fprintf(f, "line %04d 1234567890\n", i); /* 21 bytes a line */
    fclose(f);

    struct exo_buf b;
    bool truncated = false;
    exo_buf_init(&b, 0);
    /* 100 bytes hold four whole lines; the fifth, cut, is dropped. */
    assert_int_equal(exo_procfs_read(dir, "/big", 100, &b, &truncated), 0);
    assert_true(truncated);
    assert_int_equal(b.len, 84);
    assert_int_equal(b.data[b.len - 1], '\n');
    assert_int_equal(b.data[b.len], '\0');
    exo_buf_reset(&b);
    assert_int_equal(exo_procfs_read(dir, "/big", 21000, &b, &truncated), 0);
    assert_false(truncated);
    assert_int_equal(b.len, 21000);
    exo_buf_reset(&b);
    assert_int_equal(exo_procfs_read(dir, "/absent", 100, &b, NULL), EXO_ENOENT);
    assert_int_equal(exo_procfs_read(dir, "/big/under-a-file", 100, &b, NULL), EXO_ENOENT);

    /* One number per file. */
    uint64_t v;
    const char *cases[][2] = {
        {"42\n", "0"},
        {"0x1002\n", "0"},
        {"  7  \n", "0"},
        {"18446744073709551616\n", "range"},
        {"0x1ffffffffffffffff\n", "range"},
        {"-5000\n", "format"},
        {"12 34\n", "format"},
        {"\n", "format"},
        {"0x\n", "format"},
    };
    const uint64_t values[] = {42, 0x1002, 7};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(path, sizeof(path), "%s/value", dir);
        f = fopen(path, "w");
        fputs(cases[i][0], f);
        fclose(f);
        int rc = exo_procfs_read_u64(dir, "/value", &v);
        if (strcmp(cases[i][1], "0") == 0) {
            assert_int_equal(rc, 0);
            assert_int_equal(v, values[i]);
        } else {
            assert_int_equal(rc, strcmp(cases[i][1], "range") == 0 ? EXO_ERANGE : EXO_EFORMAT);
        }
    }
    char line[8];
    assert_int_equal(exo_procfs_read_line(dir, "/big", line, sizeof(line)), 0);
    assert_string_equal(line, "line 00");
    exo_buf_free(&b);
    snprintf(path, sizeof(path), "rm -rf '%s'", dir);
    assert_int_equal(system(path), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_procfs_stat),
        cmocka_unit_test(test_device_procfs_stat_hostile),
        cmocka_unit_test(test_device_procfs_meminfo),
        cmocka_unit_test(test_device_procfs_netdev),
        cmocka_unit_test(test_device_procfs_cpuinfo),
        cmocka_unit_test(test_device_procfs_read_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
