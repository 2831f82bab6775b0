/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Prometheus text writer: exact output for families, labels, escaping and special values;
 * refusal of bad names, duplicate families and negative counters; sticky errors that never leave
 * half a line. When promtool (Debian package prometheus) is installed, it checks the output too.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/prom.h"
#include "core/buf.h"
#include "core/error.h"

static const char *text(struct exo_buf *b)
{
    return b->data ? (const char *)b->data : "";
}

static void test_prom_families_and_samples(void **state)
{
    struct exo_buf out;
    struct exo_prom p;
    exo_buf_init(&out, 0);
    exo_prom_init(&p, &out);
    assert_int_equal(exo_prom_family(&p, "exo_requests_total", EXO_PROM_COUNTER, "Requests."), 0);
    struct exo_prom_label l[2] = {{"code", "2xx"}, {"route", "/v1"}};
    assert_int_equal(exo_prom_sample_u64(&p, l, 2, 42), 0);
    assert_int_equal(exo_prom_sample_u64(&p, NULL, 0, UINT64_MAX), 0);
    assert_int_equal(exo_prom_family(&p, "exo_temp_celsius", EXO_PROM_GAUGE, "Temp."), 0);
    assert_int_equal(exo_prom_sample(&p, NULL, 0, -1.5), 0);
    assert_int_equal(exo_prom_sample(&p, NULL, 0, 0.1), 0);
    assert_int_equal(exo_prom_sample(&p, NULL, 0, NAN), 0);
    assert_int_equal(exo_prom_sample(&p, NULL, 0, INFINITY), 0);
    assert_int_equal(exo_prom_sample(&p, NULL, 0, -INFINITY), 0);
    assert_int_equal(exo_prom_sample(&p, NULL, 0, 1e300), 0);
    assert_int_equal(exo_prom_family(&p, "x:y", EXO_PROM_UNTYPED, ""), 0);
    assert_int_equal(exo_prom_sample(&p, NULL, 0, 3), 0);
    assert_string_equal(text(&out), "# HELP exo_requests_total Requests.\n"
                                    "# TYPE exo_requests_total counter\n"
                                    "exo_requests_total{code=\"2xx\",route=\"/v1\"} 42\n"
                                    "exo_requests_total 18446744073709551615\n"
                                    "# HELP exo_temp_celsius Temp.\n"
                                    "# TYPE exo_temp_celsius gauge\n"
                                    "exo_temp_celsius -1.5\n"
                                    "exo_temp_celsius 0.1\n"
                                    "exo_temp_celsius NaN\n"
                                    "exo_temp_celsius +Inf\n"
                                    "exo_temp_celsius -Inf\n"
                                    "exo_temp_celsius 1e+300\n"
                                    "# HELP x:y \n"
                                    "# TYPE x:y untyped\n"
                                    "x:y 3\n");
    exo_prom_free(&p);
    exo_buf_free(&out);
}

static void test_prom_escaping(void **state)
{
    struct exo_buf out;
    struct exo_prom p;
    exo_buf_init(&out, 0);
    exo_prom_init(&p, &out);
    assert_int_equal(exo_prom_family(&p, "m", EXO_PROM_GAUGE, "back\\slash \"quoted\"\nline"), 0);
    struct exo_prom_label l = {"path", "C:\\dir \"x\"\nnext"};
    assert_int_equal(exo_prom_sample(&p, &l, 1, 1), 0);
    assert_string_equal(text(&out), "# HELP m back\\\\slash \"quoted\"\\nline\n"
                                    "# TYPE m gauge\n"
                                    "m{path=\"C:\\\\dir \\\"x\\\"\\nnext\"} 1\n");
    exo_prom_free(&p);
    exo_buf_free(&out);
}

static void test_prom_refuses_bad_input(void **state)
{
    struct exo_buf out;
    struct exo_prom p;
    const char *bad_names[] = {"", "1abc", "a-b", "a b", "é"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        exo_buf_init(&out, 0);
        exo_prom_init(&p, &out);
        assert_int_equal(exo_prom_family(&p, bad_names[i], EXO_PROM_GAUGE, "h"), EXO_EINVAL);
        assert_int_equal(out.len, 0);
        exo_prom_free(&p);
        exo_buf_free(&out);
    }

    const char *bad_labels[] = {"__reserved", "a:b", "9x", ""};
    for (size_t i = 0; i < sizeof(bad_labels) / sizeof(bad_labels[0]); i++) {
        exo_buf_init(&out, 0);
        exo_prom_init(&p, &out);
        assert_int_equal(exo_prom_family(&p, "m", EXO_PROM_GAUGE, "h"), 0);
        size_t len = out.len;
        struct exo_prom_label l = {bad_labels[i], "v"};
        assert_int_equal(exo_prom_sample(&p, &l, 1, 1), EXO_EINVAL);
        assert_int_equal(out.len, len);
        /* Sticky: later calls fail the same way and write nothing. */
        assert_int_equal(exo_prom_sample(&p, NULL, 0, 1), EXO_EINVAL);
        assert_int_equal(out.len, len);
        exo_prom_free(&p);
        exo_buf_free(&out);
    }

    exo_buf_init(&out, 0);
    exo_prom_init(&p, &out);
    assert_int_equal(exo_prom_sample(&p, NULL, 0, 1), EXO_EINVAL); /* no family open */
    exo_prom_free(&p);
    exo_buf_free(&out);

    exo_buf_init(&out, 0);
    exo_prom_init(&p, &out);
    assert_int_equal(exo_prom_family(&p, "c_total", EXO_PROM_COUNTER, "h"), 0);
    assert_int_equal(exo_prom_sample(&p, NULL, 0, -1), EXO_ERANGE);
    exo_prom_free(&p);
    exo_buf_free(&out);
}

static void test_prom_duplicate_family(void **state)
{
    struct exo_buf out;
    struct exo_prom p;
    exo_buf_init(&out, 0);
    exo_prom_init(&p, &out);
    assert_int_equal(exo_prom_family(&p, "a", EXO_PROM_GAUGE, "h"), 0);
    assert_int_equal(exo_prom_family(&p, "b", EXO_PROM_GAUGE, "h"), 0);
    size_t len = out.len;
    assert_int_equal(exo_prom_family(&p, "a", EXO_PROM_COUNTER, "again"), EXO_EEXIST);
    assert_int_equal(out.len, len);
    exo_prom_free(&p);
    exo_buf_free(&out);
}

/* A full output buffer takes back the partial line and makes the error sticky. */
static void test_prom_output_cap(void **state)
{
    struct exo_buf out;
    struct exo_prom p;
    exo_buf_init(&out, 64);
    exo_prom_init(&p, &out);
    assert_int_equal(exo_prom_family(&p, "m", EXO_PROM_GAUGE, "h"), 0);
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++)
        rc = exo_prom_sample_u64(&p, NULL, 0, 123456789);
    assert_int_equal(rc, EXO_ETOOBIG);
    assert_true(out.len <= 64);
    assert_int_equal(out.data[out.len - 1], '\n');
    assert_int_equal(exo_prom_family(&p, "n", EXO_PROM_GAUGE, "h"), EXO_ETOOBIG);
    exo_prom_free(&p);
    exo_buf_free(&out);
}

/* promtool, when installed, must accept what the writer produces. */
static void test_prom_promtool(void **state)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        print_message("promtool not installed; skipped\n");
        skip();
    }
    struct exo_buf out;
    struct exo_prom p;
    exo_buf_init(&out, 0);
    exo_prom_init(&p, &out);
    exo_prom_family(&p, "exo_http_responses_total", EXO_PROM_COUNTER, "Responses \"by\" class.");
    struct exo_prom_label l = {"code", "a\\b\"c\nd"};
    exo_prom_sample_u64(&p, &l, 1, 7);
    exo_prom_family(&p, "exo_load_ratio", EXO_PROM_GAUGE, "Load.");
    exo_prom_sample(&p, NULL, 0, NAN);
    assert_int_equal(p.err, 0);
    const char *dir = getenv("EXO_TEST_TMP");
    char path[512];
    snprintf(path, sizeof(path), "%s/prom-check.txt", dir ? dir : "/tmp");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fwrite(out.data, 1, out.len, f);
    fclose(f);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
    assert_int_equal(system(cmd), 0);
    remove(path);
    exo_prom_free(&p);
    exo_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prom_families_and_samples),
        cmocka_unit_test(test_prom_escaping),
        cmocka_unit_test(test_prom_refuses_bad_input),
        cmocka_unit_test(test_prom_duplicate_family),
        cmocka_unit_test(test_prom_output_cap),
        cmocka_unit_test(test_prom_promtool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
