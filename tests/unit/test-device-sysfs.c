/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Detection against recorded machines: tests/data/device/host (a two-socket Xeon described by an
 * hwloc XML topology, an AMD discrete card and an Intel integrated GPU in /sys/class/drm) and
 * tests/data/device/hostile (garbage in every file). The library probes are skipped here; they
 * have tests of their own.
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
#include "device/sysfs.h"

#define NO_LIBRARIES                                                                       \
    (1u << EXO_DEVICE_API_CUDA | 1u << EXO_DEVICE_API_NVML | 1u << EXO_DEVICE_API_VULKAN | \
     1u << EXO_DEVICE_API_OPENCL)

static void fixture(char *out, size_t size, const char *name)
{
    const char *data = getenv("EXO_TEST_DATA");
    snprintf(out, size, "%s/device/%s", data ? data : "tests/data", name);
}

static void test_device_sysfs_host_fixture(void **state)
{
    char root[512], xml[512];
    fixture(root, sizeof(root), "host");
    fixture(xml, sizeof(xml), "two-socket.xml");
    struct exo_detect_options o = {.root = root, .hwloc_xml = xml, .skip = NO_LIBRARIES};
    struct exo_device_list *l = exo_malloc(sizeof(*l));
    assert_int_equal(exo_device_detect(&o, l), 0);
    assert_int_equal(l->n, 3);

    const struct exo_device *cpu = exo_device_list_find(l, "cpu0");
    assert_non_null(cpu);
    assert_string_equal(cpu->name, "Intel(R) Xeon(R) Gold 6430");
    assert_string_equal(cpu->vendor, "Intel");
    assert_int_equal(cpu->packages, 2);
    assert_int_equal(cpu->compute_units, 8);
    assert_int_equal(cpu->threads, 16);
    assert_int_equal(cpu->numa_nodes, 2);
    assert_int_equal(cpu->cache_l1d, 48000);
    assert_int_equal(cpu->cache_l2, 2000000);
    assert_int_equal(cpu->cache_l3, 60000000);
    assert_int_equal(cpu->mem_total, 32768000ull * 1024);
    assert_int_equal(cpu->mem_free, 16384000ull * 1024);
    assert_int_equal(cpu->clock_mhz, 2100);
    assert_true(cpu->features & EXO_DEVICE_FEAT_AMX);
    assert_true(cpu->mem_shared);
    assert_int_equal(cpu->backends, 1u << EXO_DEVICE_API_CPU);
    assert_string_equal(cpu->isa, ""); /* a recorded machine says nothing about our kernels */

    /* The integrated GPU sits on bus 0, so it sorts first. */
    const struct exo_device *igpu = exo_device_list_find(l, "gpu0");
    assert_non_null(igpu);
    assert_string_equal(igpu->vendor, "Intel");
    assert_string_equal(igpu->name, "Intel GPU 8086:46a6");
    assert_string_equal(igpu->pci, "0000:00:02.0");
    assert_true(igpu->mem_shared);
    assert_int_equal(igpu->mem_total, 0);
    assert_int_equal(igpu->clock_max_mhz, 1450);
    assert_string_equal(igpu->sysfs_card, "card1");
    assert_string_equal(exo_device_binding(igpu, EXO_DEVICE_API_SYSFS)->driver, "i915");

    const struct exo_device *amd = exo_device_list_find(l, "gpu1");
    assert_non_null(amd);
    assert_string_equal(amd->vendor, "AMD");
    assert_string_equal(amd->name, "AMD Radeon RX 6800 XT");
    assert_string_equal(amd->pci, "0000:03:00.0");
    assert_false(amd->mem_shared);
    assert_int_equal(amd->mem_total, 17163091968ull);
    assert_int_equal(amd->mem_free, 17163091968ull - 2147483648ull);
    assert_int_equal(amd->pcie_gen, 4);
    assert_int_equal(amd->pcie_width, 16);
    assert_int_equal(amd->clock_mhz, 2250);
    assert_int_equal(amd->backends, 0);
    assert_string_equal(exo_device_binding(amd, EXO_DEVICE_API_SYSFS)->driver, "amdgpu");
    exo_free(l);
}

static void test_device_sysfs_lists_cards_only(void **state)
{
    char root[512], names[8][16];
    fixture(root, sizeof(root), "host");
    /* card0-DP-1 (a connector), renderD128 and version are not cards. */
    assert_int_equal(exo_sysfs_list_cards(root, names, 8), 2);
    assert_string_equal(names[0], "card0");
    assert_string_equal(names[1], "card1");
    assert_int_equal(exo_sysfs_list_cards(root, names, 1), 1);
    fixture(root, sizeof(root), "no-such-root");
    assert_int_equal(exo_sysfs_list_cards(root, names, 8), EXO_ENOENT);
}

static void test_device_sysfs_sample_amd(void **state)
{
    char root[512];
    fixture(root, sizeof(root), "host");
    struct exo_sysfs_gpu g;
    struct exo_gpu_sample s;
    exo_sysfs_gpu_init(root, "card0", &g);
    assert_string_equal(g.hwmon, "hwmon3");
    exo_sysfs_gpu_sample(root, &g, 1000, &s);
    assert_false(s.lost);
    assert_int_equal(s.has, EXO_GPU_HAS_UTIL | EXO_GPU_HAS_MEM | EXO_GPU_HAS_TEMP |
                                EXO_GPU_HAS_POWER | EXO_GPU_HAS_CLOCK | EXO_GPU_HAS_MEM_CLOCK);
    assert_int_equal(s.util_pct, 37);
    assert_int_equal(s.mem_used, 2147483648ull);
    assert_int_equal(s.mem_total, 17163091968ull);
    assert_int_equal(s.temp_c, 61);
    assert_int_equal(s.power_mw, 251300);
    assert_int_equal(s.clock_mhz, 2250);
    assert_int_equal(s.mem_clock_mhz, 1000);
}

static void test_device_sysfs_power_from_energy(void **state)
{
    char src[512], dir[512], cmd[2048], path[800];
    fixture(src, sizeof(src), "host");
    const char *tmp = getenv("EXO_TEST_TMP");
    snprintf(dir, sizeof(dir), "%s/sysfs-energy-%ld", tmp ? tmp : "/tmp", (long)getpid());
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s' '%s'", dir, src, dir);
    assert_int_equal(system(cmd), 0);

    struct exo_sysfs_gpu g;
    struct exo_gpu_sample s;
    exo_sysfs_gpu_init(dir, "card1", &g);
    /* The first reading only sets the baseline. */
    exo_sysfs_gpu_sample(dir, &g, 1000000000ull, &s);
    assert_int_equal(s.has, EXO_GPU_HAS_CLOCK);
    assert_int_equal(s.clock_mhz, 1450);
    /* 2 J more over 0.5 s: 4 W. */
    snprintf(path, sizeof(path), "%s/sys/class/drm/card1/device/hwmon/hwmon5/energy1_input", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "7000000\n");
    fclose(f);
    exo_sysfs_gpu_sample(dir, &g, 1500000000ull, &s);
    assert_int_equal(s.has, EXO_GPU_HAS_CLOCK | EXO_GPU_HAS_POWER);
    assert_int_equal(s.power_mw, 4000);
    /* A counter that went backwards (wrapped or reset) gives no figure, then a new baseline. */
    f = fopen(path, "w");
    fprintf(f, "100\n");
    fclose(f);
    exo_sysfs_gpu_sample(dir, &g, 2000000000ull, &s);
    assert_false(s.has & EXO_GPU_HAS_POWER);

    /* The card disappears (unplugged, driver unbound): lost. */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s/sys/class/drm/card1'", dir);
    assert_int_equal(system(cmd), 0);
    exo_sysfs_gpu_sample(dir, &g, 2500000000ull, &s);
    assert_true(s.lost);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_device_sysfs_hostile_fixture(void **state)
{
    char root[512];
    fixture(root, sizeof(root), "hostile");
    struct exo_detect_options o = {.root = root, .skip = NO_LIBRARIES};
    struct exo_device_list *l = exo_malloc(sizeof(*l));
    assert_int_equal(exo_device_detect(&o, l), 0);
    /* The CPU from what cpuinfo gives (no topology for a recorded root without XML; meminfo
     * overflows, so memory is unknown); card0's vendor is garbage, card2 has no device, the
     * last name is too long to be a card: only card1 is a GPU. */
    assert_int_equal(l->n, 2);
    const struct exo_device *cpu = exo_device_list_find(l, "cpu0");
    assert_int_equal(cpu->threads, 1);
    assert_int_equal(cpu->mem_total, 0);
    assert_int_equal(strlen(cpu->name), 127);
    const struct exo_device *g = exo_device_list_find(l, "gpu0");
    assert_non_null(g);
    assert_string_equal(g->sysfs_card, "card1");
    assert_string_equal(g->name, "AMD GPU 1002:0000");
    assert_string_equal(g->pci, "");
    assert_int_equal(g->mem_total, 0);
    assert_int_equal(g->pcie_gen, 0);
    assert_int_equal(g->pcie_width, 0);
    assert_int_equal(g->clock_mhz, 0);
    /* uevent's first line is longer than the read cap: the reader keeps whole lines only, so
     * nothing of it (nor of the PCI_SLOT_NAME after it) is trusted. */
    assert_string_equal(exo_device_binding(g, EXO_DEVICE_API_SYSFS)->driver, "");

    struct exo_sysfs_gpu sg;
    struct exo_gpu_sample s;
    exo_sysfs_gpu_init(root, "card1", &sg);
    exo_sysfs_gpu_sample(root, &sg, 1, &s);
    assert_false(s.lost);
    assert_int_equal(s.has, 0);
    exo_sysfs_gpu_init(root, "card2", &sg);
    exo_sysfs_gpu_sample(root, &sg, 1, &s);
    assert_true(s.lost);
    exo_free(l);
}

static void test_device_sysfs_missing_root(void **state)
{
    char root[512];
    fixture(root, sizeof(root), "no-such-root");
    struct exo_detect_options o = {.root = root, .skip = NO_LIBRARIES};
    struct exo_device_list *l = exo_malloc(sizeof(*l));
    /* Nothing readable at all: still a CPU device, never a failure. */
    assert_int_equal(exo_device_detect(&o, l), 0);
    assert_int_equal(l->n, 1);
    assert_string_equal(l->v[0].id, "cpu0");
    assert_string_equal(l->v[0].name, "CPU");
    exo_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_sysfs_host_fixture),
        cmocka_unit_test(test_device_sysfs_lists_cards_only),
        cmocka_unit_test(test_device_sysfs_sample_amd),
        cmocka_unit_test(test_device_sysfs_power_from_energy),
        cmocka_unit_test(test_device_sysfs_hostile_fixture),
        cmocka_unit_test(test_device_sysfs_missing_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
