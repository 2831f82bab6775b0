/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NVIDIA paths without an NVIDIA GPU: the probe and the telemetry source are pointed at a
 * fake libnvidia-ml / libcuda (tests/unit/fake-nvml) that answers from a script. Covers the
 * facts each API gives, NVML + CUDA + sysfs folding into one device by PCI address, a driver
 * that fails to initialise, a missing library, and sampling including a GPU that falls off the
 * bus.
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
#include "device/detect.h"
#include "device/telemetry.h"

#define ONLY_NVIDIA_AND_SYSFS (1u << EXO_DEVICE_API_VULKAN | 1u << EXO_DEVICE_API_OPENCL)

#define DRIVERS "driver 550.54.15\ncuda_driver 12040\n"
#define GPUS                                          \
    "gpu\n"                                           \
    "name NVIDIA H100 80GB HBM3\n"                    \
    "uuid GPU-6f1c2b3a-4d5e-6f70-8192-a3b4c5d6e7f8\n" \
    "pci 00000000:65:00.0\n"                          \
    "mem_total 85899345920\n"                         \
    "mem_used 1073741824\n"                           \
    "util 37\n"                                       \
    "temp 61\n"                                       \
    "power_mw 251300\n"                               \
    "sm_clock 1755\n"                                 \
    "mem_clock 2619\n"                                \
    "max_sm_clock 1980\n"                             \
    "max_mem_clock 2619\n"                            \
    "cc 9.0\n"                                        \
    "sms 132\n"                                       \
    "pcie_gen 5\n"                                    \
    "pcie_width 16\n"                                 \
    "gpu\n"                                           \
    "name NVIDIA L4\n"                                \
    "uuid GPU-00000000-1111-2222-3333-444444444444\n" \
    "pci 00000000:b3:00.0\n"                          \
    "mem_total 24159191040\n"                         \
    "mem_used 0\n"                                    \
    "cc 8.9\n"                                        \
    "sms 58\n"

static const char *const two_gpus = "init 0\ncuinit 0\n" DRIVERS GPUS;

static char script[512];

static void write_script(const char *text)
{
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    const char *tmp = getenv("EXO_TEST_TMP");
    snprintf(script, sizeof(script), "%s/fake-nvml-%ld.txt", tmp ? tmp : "/tmp", (long)getpid());
    setenv("EXO_FAKE_NVML", script, 1);
    return 0;
}

static int teardown(void **state)
{
    unlink(script);
    return 0;
}

static void fixture(char *out, size_t size, const char *name)
{
    const char *data = getenv("EXO_TEST_DATA");
    snprintf(out, size, "%s/device/%s", data ? data : "tests/data", name);
}

static struct exo_detect_options options(const char *root)
{
    struct exo_detect_options o = {
        .root = root,
        .skip = ONLY_NVIDIA_AND_SYSFS,
        .nvml_library = EXO_FAKE_NVML_LIB,
        .cuda_library = EXO_FAKE_NVML_LIB,
    };
    return o;
}

static void test_device_nvml_detect_merges_apis(void **state)
{
    char root[512];
    fixture(root, sizeof(root), "nvidia");
    write_script(two_gpus);
    struct exo_detect_options o = options(root);
    struct exo_device_list *l = exo_malloc(sizeof(*l));
    assert_int_equal(exo_device_detect(&o, l), 0);
    assert_int_equal(l->n, 3);

    /* NVML, CUDA and the sysfs card at 0000:65:00.0 are one H100. */
    const struct exo_device *h = exo_device_list_find(l, "gpu0");
    assert_non_null(h);
    assert_string_equal(h->name, "NVIDIA H100 80GB HBM3");
    assert_string_equal(h->vendor, "NVIDIA");
    assert_string_equal(h->pci, "0000:65:00.0");
    assert_true(h->has_uuid);
    assert_int_equal(h->uuid[0], 0x6f);
    assert_int_equal(h->uuid[15], 0xf8);
    assert_int_equal(h->mem_total, 85899345920ull);
    assert_int_equal(h->mem_free, 85899345920ull - 1073741824ull);
    assert_int_equal(h->compute_units, 132); /* only CUDA knows the SM count */
    assert_int_equal(h->cc_major, 9);
    assert_int_equal(h->cc_minor, 0);
    assert_int_equal(h->clock_mhz, 1755);
    assert_int_equal(h->clock_max_mhz, 1980);
    assert_int_equal(h->mem_clock_mhz, 2619);
    assert_int_equal(h->pcie_gen, 5);
    assert_int_equal(h->pcie_width, 16);
    assert_int_equal(h->subgroup_size, 32);
    assert_true(h->features & EXO_DEVICE_FEAT_FP16);
    assert_string_equal(h->sysfs_card, "card0");
    assert_int_equal(h->n_bindings, 3);
    assert_string_equal(exo_device_binding(h, EXO_DEVICE_API_NVML)->driver, "550.54.15");
    assert_string_equal(exo_device_binding(h, EXO_DEVICE_API_CUDA)->driver, "CUDA 12.4");
    assert_string_equal(exo_device_binding(h, EXO_DEVICE_API_SYSFS)->driver, "nvidia");
    assert_int_equal(h->backends, 0); /* no CUDA backend yet */

    const struct exo_device *l4 = exo_device_list_find(l, "gpu1");
    assert_non_null(l4);
    assert_string_equal(l4->name, "NVIDIA L4");
    assert_string_equal(l4->pci, "0000:b3:00.0");
    assert_int_equal(l4->cc_minor, 9);
    assert_int_equal(l4->compute_units, 58);
    assert_int_equal(l4->n_bindings, 2);

    cJSON *j = exo_device_to_json(h);
    assert_string_equal(cJSON_GetObjectItem(j, "uuid")->valuestring,
                        "6f1c2b3a-4d5e-6f70-8192-a3b4c5d6e7f8");
    assert_string_equal(cJSON_GetObjectItem(j, "compute_capability")->valuestring, "9.0");
    cJSON_Delete(j);
    exo_free(l);
}

static void test_device_nvml_driver_not_loaded(void **state)
{
    char root[512];
    fixture(root, sizeof(root), "nvidia");
    /* NVML says the driver is not loaded; the CUDA driver answers. Detection goes on with
     * what CUDA and sysfs know. */
    write_script("init 9\ncuinit 0\n" DRIVERS GPUS);
    struct exo_detect_options o = options(root);
    struct exo_device_list *l = exo_malloc(sizeof(*l));
    assert_int_equal(exo_device_detect(&o, l), 0);
    assert_int_equal(l->n, 3);
    const struct exo_device *h = exo_device_list_find(l, "gpu0");
    assert_null(exo_device_binding(h, EXO_DEVICE_API_NVML));
    assert_non_null(exo_device_binding(h, EXO_DEVICE_API_CUDA));
    assert_non_null(exo_device_binding(h, EXO_DEVICE_API_SYSFS));
    assert_int_equal(h->mem_total, 85899345920ull);
    assert_int_equal(h->mem_free, 0);

    /* Neither answers: only the sysfs card is left. */
    write_script("init 9\ncuinit 100\n" DRIVERS GPUS);
    assert_int_equal(exo_device_detect(&o, l), 0);
    assert_int_equal(l->n, 2);
    assert_string_equal(l->v[1].name, "NVIDIA GPU 10de:2330");
    exo_free(l);
}

static void test_device_nvml_library_missing(void **state)
{
    char root[512];
    fixture(root, sizeof(root), "no-such-root");
    struct exo_detect_options o = options(root);
    o.nvml_library = "/nonexistent/libnvidia-ml.so.1";
    o.cuda_library = "/nonexistent/libcuda.so.1";
    struct exo_device_list *l = exo_malloc(sizeof(*l));
    assert_int_equal(exo_device_detect(&o, l), 0);
    assert_int_equal(l->n, 1);
    /* A library without the NVML symbols (here: libc) is refused the same way. */
    o.nvml_library = "libc.so.6";
    o.cuda_library = "libc.so.6";
    assert_int_equal(exo_device_detect(&o, l), 0);
    assert_int_equal(l->n, 1);
    exo_free(l);
}

static void test_device_nvml_telemetry(void **state)
{
    char root[512];
    fixture(root, sizeof(root), "nvidia");
    write_script(two_gpus);
    struct exo_detect_options o = options(root);
    struct exo_device_list *l = exo_malloc(sizeof(*l));
    struct exo_telemetry_sample *s = exo_malloc(sizeof(*s));
    assert_int_equal(exo_device_detect(&o, l), 0);

    struct exo_telemetry_source_config c = {
        .root = root, .devices = l, .nvml_library = EXO_FAKE_NVML_LIB};
    struct exo_telemetry_source *src = NULL;
    assert_int_equal(exo_telemetry_source_open(&c, &src), 0);
    /* The recorded root has no /proc: only the GPUs report. */
    assert_int_equal(exo_telemetry_source_collect(src, 1000, 1000000000ull, s), EXO_ENOENT);
    assert_int_equal(s->n_gpus, 2);
    const struct exo_gpu_sample *g = &s->gpus[0];
    assert_string_equal(g->id, "gpu0");
    assert_false(g->lost);
    assert_int_equal(g->has, EXO_GPU_HAS_UTIL | EXO_GPU_HAS_MEM | EXO_GPU_HAS_TEMP |
                                 EXO_GPU_HAS_POWER | EXO_GPU_HAS_CLOCK | EXO_GPU_HAS_MEM_CLOCK);
    assert_int_equal(g->util_pct, 37);
    assert_int_equal(g->mem_used, 1073741824ull);
    assert_int_equal(g->temp_c, 61);
    assert_int_equal(g->power_mw, 251300);
    assert_int_equal(g->clock_mhz, 1755);
    /* The L4 of the script has no power sensor: no power figure, the rest still there. */
    assert_false(s->gpus[1].has & EXO_GPU_HAS_POWER);
    assert_true(s->gpus[1].has & EXO_GPU_HAS_MEM);
    exo_telemetry_source_close(src);

    /* A GPU that has fallen off the bus answers NVML_ERROR_GPU_IS_LOST. The script is read at
     * nvmlInit, so the source opened after the change sees it. */
    char text[4096];
    snprintf(text, sizeof(text), "%slost 1\n", two_gpus);
    write_script(text);
    assert_int_equal(exo_telemetry_source_open(&c, &src), 0);
    exo_telemetry_source_collect(src, 2000, 2000000000ull, s);
    assert_false(s->gpus[0].lost);
    assert_true(s->gpus[1].lost);
    exo_telemetry_source_close(src);

    /* NVML switched off ("" library): the GPUs are listed but not sampled. */
    c.nvml_library = "";
    assert_int_equal(exo_telemetry_source_open(&c, &src), 0);
    exo_telemetry_source_collect(src, 3000, 3000000000ull, s);
    assert_int_equal(s->n_gpus, 2);
    assert_int_equal(s->gpus[0].has, 0);
    exo_telemetry_source_close(src);
    exo_free(s);
    exo_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_nvml_detect_merges_apis),
        cmocka_unit_test(test_device_nvml_driver_not_loaded),
        cmocka_unit_test(test_device_nvml_library_missing),
        cmocka_unit_test(test_device_nvml_telemetry),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
