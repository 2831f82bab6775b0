/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Detection on this machine, with every probe live: the CPU is always found with real figures;
 * PoCL (pocl-opencl-icd) and lavapipe (mesa-vulkan-drivers), when installed, appear as the CPU
 * seen through OpenCL and Vulkan. A machine without them skips those checks with a message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/cpu.h"
#include "device/detect.h"

static bool installed(const char *path)
{
    return access(path, R_OK) == 0;
}

static void test_device_detect_finds_this_cpu(void **state)
{
    struct exo_device_list *l = exo_malloc(sizeof(*l));
    assert_int_equal(exo_device_detect(NULL, l), 0);
    assert_true(l->n >= 1);
    const struct exo_device *cpu = exo_device_list_find(l, "cpu0");
    assert_ptr_equal(cpu, &l->v[0]);
    assert_int_equal(cpu->kind, EXO_DEVICE_KIND_CPU);
    assert_true(cpu->name[0]);
    assert_true(cpu->compute_units >= 1);
    assert_true(cpu->threads >= cpu->compute_units);
    assert_true(cpu->packages >= 1);
    assert_true(cpu->mem_total > (64ull << 20));
    assert_true(cpu->mem_free <= cpu->mem_total);
    assert_true(cpu->isa[0]);
    assert_true(cpu->backends & (1u << EXO_DEVICE_API_CPU));
    /* hwloc sees what the process may use, like the thread pool's default. */
    assert_true((int)cpu->compute_units >= 1 && (int)cpu->compute_units <= exo_cpu_logical_cpus());
#if defined(__x86_64__)
    if (exo_cpu_features()->avx2)
        assert_true(cpu->features & EXO_DEVICE_FEAT_AVX2);
#endif
    exo_free(l);
}

static void test_device_detect_pocl_and_lavapipe(void **state)
{
    bool pocl = installed("/etc/OpenCL/vendors/pocl.icd");
    bool lvp = installed("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json") ||
               installed("/usr/share/vulkan/icd.d/lvp_icd.aarch64.json");
    if (!pocl && !lvp) {
        print_message("skipped: neither pocl-opencl-icd nor mesa-vulkan-drivers is installed\n");
        skip();
    }
    struct exo_device_list *l = exo_malloc(sizeof(*l));
    assert_non_null(l);
    /* Twice: the second detection reuses the Vulkan instance and must find the same. */
    for (int round = 0; round < 2; round++) {
        assert_int_equal(exo_device_detect(NULL, l), 0);
        const struct exo_device *cpu = exo_device_list_find(l, "cpu0");
        assert_non_null(cpu);
        if (pocl) {
            const struct exo_device_binding *b = exo_device_binding(cpu, EXO_DEVICE_API_OPENCL);
            assert_non_null(b);
            assert_true(b->name[0]);
            assert_non_null(strstr(b->driver, "PoCL"));
        } else {
            print_message("skipped: pocl-opencl-icd is not installed\n");
        }
        if (lvp) {
            const struct exo_device_binding *b = exo_device_binding(cpu, EXO_DEVICE_API_VULKAN);
            assert_non_null(b);
            assert_non_null(strstr(b->name, "llvmpipe"));
        } else {
            print_message("skipped: mesa-vulkan-drivers is not installed\n");
        }
        /* Software devices never count as memory of their own. */
        for (size_t i = 1; i < l->n; i++)
            assert_int_not_equal(l->v[i].kind, EXO_DEVICE_KIND_CPU);
    }
    cJSON *j = exo_device_list_to_json(l);
    char *text = cJSON_PrintUnformatted(j);
    if (pocl)
        assert_non_null(strstr(text, "\"api\":\"opencl\""));
    if (lvp)
        assert_non_null(strstr(text, "\"api\":\"vulkan\""));
    cJSON_free(text);
    cJSON_Delete(j);
    exo_free(l);
}

static void test_device_detect_missing_loaders(void **state)
{
    /* Loaders that are not there: their probes are skipped, the CPU is still found. */
    struct exo_detect_options o = {
        .opencl_library = "/nonexistent/libOpenCL.so.1",
        .cuda_library = "/nonexistent/libcuda.so.1",
        .nvml_library = "/nonexistent/libnvidia-ml.so.1",
        .skip = 1u << EXO_DEVICE_API_VULKAN, /* its instance is shared by the whole process */
    };
    struct exo_device_list *l = exo_malloc(sizeof(*l));
    assert_int_equal(exo_device_detect(&o, l), 0);
    assert_non_null(exo_device_list_find(l, "cpu0"));
    assert_null(exo_device_binding(&l->v[0], EXO_DEVICE_API_OPENCL));
    assert_null(exo_device_binding(&l->v[0], EXO_DEVICE_API_VULKAN));
    exo_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_detect_finds_this_cpu),
        cmocka_unit_test(test_device_detect_pocl_and_lavapipe),
        cmocka_unit_test(test_device_detect_missing_loaders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
