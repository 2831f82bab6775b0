/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device data model: PCI and UUID forms, folding one GPU seen through several APIs into one
 * device, CPU-kind software devices folding into the CPU, stable ids, the JSON shape, and the
 * differences between two detections.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "device/device.h"

static void test_device_pci_forms(void **state)
{
    char pci[EXO_DEVICE_PCI_SIZE];
    assert_int_equal(exo_device_pci_parse("0000:65:00.0", pci), 0);
    assert_string_equal(pci, "0000:65:00.0");
    /* NVML's eight-digit domain, upper case, and the short bus:dev.fn form. */
    assert_int_equal(exo_device_pci_parse("00000000:0A:1F.7", pci), 0);
    assert_string_equal(pci, "0000:0a:1f.7");
    assert_int_equal(exo_device_pci_parse("65:00.1", pci), 0);
    assert_string_equal(pci, "0000:65:00.1");
    const char *bad[] = {"",
                         "65",
                         "0000:65:00",
                         "0000:65:20.0",
                         "0000:65:00.8",
                         "1:0000:65:00.0",
                         "0000:165:00.0",
                         "x000:65:00.0",
                         "0000:65:00.0 ",
                         "000000000:65:00.0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(exo_device_pci_parse(bad[i], pci), EXO_EFORMAT);
}

static void test_device_uuid_forms(void **state)
{
    uint8_t a[16], b[16];
    char text[37];
    assert_int_equal(exo_device_uuid_parse("GPU-6f1c2b3a-4d5e-6f70-8192-a3b4c5d6e7f8", a), 0);
    assert_int_equal(exo_device_uuid_parse("6F1C2B3A4D5E6F708192A3B4C5D6E7F8", b), 0);
    assert_memory_equal(a, b, 16);
    exo_device_uuid_format(a, text);
    assert_string_equal(text, "6f1c2b3a-4d5e-6f70-8192-a3b4c5d6e7f8");
    assert_int_equal(exo_device_uuid_parse("GPU-6f1c", a), EXO_EFORMAT);
    assert_int_equal(exo_device_uuid_parse("6f1c2b3a-4d5e-6f70-8192-a3b4c5d6e7f8aa", a),
                     EXO_EFORMAT);
    assert_int_equal(exo_device_uuid_parse("zz1c2b3a-4d5e-6f70-8192-a3b4c5d6e7f8", a), EXO_EFORMAT);
}

static struct exo_device gpu(enum exo_device_api api, int index, const char *name, const char *pci,
                             const char *uuid)
{
    struct exo_device d;
    exo_device_init(&d, EXO_DEVICE_KIND_GPU, api, index);
    snprintf(d.name, sizeof(d.name), "%s", name);
    exo_device_bind(&d, api, index, name, NULL);
    if (pci)
        assert_int_equal(exo_device_pci_parse(pci, d.pci), 0);
    if (uuid) {
        assert_int_equal(exo_device_uuid_parse(uuid, d.uuid), 0);
        d.has_uuid = true;
    }
    return d;
}

static struct exo_device cpu(enum exo_device_api api, const char *name)
{
    struct exo_device d;
    exo_device_init(&d, EXO_DEVICE_KIND_CPU, api, 0);
    snprintf(d.name, sizeof(d.name), "%s", name);
    exo_device_bind(&d, api, 0, name, NULL);
    return d;
}

static void test_device_merge_one_gpu_through_every_api(void **state)
{
    static const char *uuid = "GPU-6f1c2b3a-4d5e-6f70-8192-a3b4c5d6e7f8";
    struct exo_device_list l;
    exo_device_list_init(&l);
    struct exo_device host = cpu(EXO_DEVICE_API_CPU, "Xeon");
    host.mem_total = 64ull << 30;
    host.backends = 1u << EXO_DEVICE_API_CPU;
    assert_int_equal(exo_device_list_merge(&l, &host), 0);

    /* NVML knows everything but the SM count; CUDA adds it; Vulkan and OpenCL match by PCI
     * address (NVIDIA's Vulkan UUID equals CUDA's), sysfs by PCI address with no UUID. */
    struct exo_device nvml = gpu(EXO_DEVICE_API_NVML, 0, "NVIDIA H100", "00000000:65:00.0", uuid);
    nvml.mem_total = 80ull << 30;
    nvml.mem_free = 79ull << 30;
    assert_int_equal(exo_device_list_merge(&l, &nvml), 1);
    struct exo_device cuda = gpu(EXO_DEVICE_API_CUDA, 0, "NVIDIA H100 (cuda)", "65:00.0", uuid);
    cuda.compute_units = 132;
    cuda.mem_total = 1; /* a disagreeing later report does not overwrite */
    assert_int_equal(exo_device_list_merge(&l, &cuda), 1);
    struct exo_device vk = gpu(EXO_DEVICE_API_VULKAN, 3, "NVIDIA H100 (vk)", NULL, uuid);
    vk.subgroup_size = 32;
    assert_int_equal(exo_device_list_merge(&l, &vk), 1);
    struct exo_device cl = gpu(EXO_DEVICE_API_OPENCL, 1, "H100 (cl)", "0000:65:00.0", NULL);
    cl.features = EXO_DEVICE_FEAT_FP16;
    assert_int_equal(exo_device_list_merge(&l, &cl), 1);
    struct exo_device sys =
        gpu(EXO_DEVICE_API_SYSFS, -1, "NVIDIA GPU 10de:2330", "0000:65:00.0", NULL);
    snprintf(sys.sysfs_card, sizeof(sys.sysfs_card), "card1");
    assert_int_equal(exo_device_list_merge(&l, &sys), 1);

    /* A second GPU with another address stays apart, even with the same name. */
    struct exo_device other = gpu(EXO_DEVICE_API_NVML, 1, "NVIDIA H100", "0000:b3:00.0",
                                  "GPU-00000000-0000-0000-0000-000000000001");
    assert_int_equal(exo_device_list_merge(&l, &other), 2);

    assert_int_equal(l.n, 3);
    const struct exo_device *g = &l.v[1];
    assert_string_equal(g->name, "NVIDIA H100");
    assert_int_equal(g->mem_total, 80ull << 30);
    assert_int_equal(g->mem_free, 79ull << 30);
    assert_int_equal(g->compute_units, 132);
    assert_int_equal(g->subgroup_size, 32);
    assert_true(g->features & EXO_DEVICE_FEAT_FP16);
    assert_string_equal(g->sysfs_card, "card1");
    assert_int_equal(g->n_bindings, 5);
    const enum exo_device_api apis[] = {EXO_DEVICE_API_NVML, EXO_DEVICE_API_CUDA,
                                        EXO_DEVICE_API_VULKAN, EXO_DEVICE_API_OPENCL,
                                        EXO_DEVICE_API_SYSFS};
    for (size_t i = 0; i < 5; i++)
        assert_non_null(exo_device_binding(g, apis[i]));
    assert_int_equal(exo_device_binding(g, EXO_DEVICE_API_VULKAN)->index, 3);
    assert_null(exo_device_binding(g, EXO_DEVICE_API_CPU));
}

static void test_device_merge_software_devices_into_cpu(void **state)
{
    struct exo_device_list l;
    exo_device_list_init(&l);
    struct exo_device host = cpu(EXO_DEVICE_API_CPU, "AMD EPYC");
    host.mem_total = 24ull << 30;
    host.features = EXO_DEVICE_FEAT_AVX2;
    exo_device_list_merge(&l, &host);
    /* PoCL and lavapipe are the same cores and memory: they become bindings of cpu0, and what
     * they claim about memory, clocks, subgroups or fp16 does not change the CPU's facts. */
    struct exo_device pocl = cpu(EXO_DEVICE_API_OPENCL, "pthread-AMD EPYC");
    pocl.mem_total = 20ull << 30;
    pocl.features = EXO_DEVICE_FEAT_FP16;
    exo_device_bind(&pocl, EXO_DEVICE_API_OPENCL, 0, pocl.name, "OpenCL 3.0 PoCL 3.1");
    assert_int_equal(exo_device_list_merge(&l, &pocl), 0);
    pocl.clock_max_mhz = 2596;
    struct exo_device lvp = cpu(EXO_DEVICE_API_VULKAN, "llvmpipe (LLVM 15.0.6, 256 bits)");
    lvp.subgroup_size = 8;
    assert_int_equal(exo_device_list_merge(&l, &lvp), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0].name, "AMD EPYC");
    assert_int_equal(l.v[0].mem_total, 24ull << 30);
    assert_int_equal(l.v[0].features, EXO_DEVICE_FEAT_AVX2);
    assert_int_equal(l.v[0].clock_max_mhz, 0);
    assert_int_equal(l.v[0].subgroup_size, 0);
    assert_int_equal(l.v[0].n_bindings, 3);
    assert_string_equal(exo_device_binding(&l.v[0], EXO_DEVICE_API_OPENCL)->driver,
                        "OpenCL 3.0 PoCL 3.1");
    assert_string_equal(exo_device_binding(&l.v[0], EXO_DEVICE_API_VULKAN)->name,
                        "llvmpipe (LLVM 15.0.6, 256 bits)");
}

static void test_device_merge_by_uuid_without_pci(void **state)
{
    struct exo_device_list l;
    exo_device_list_init(&l);
    struct exo_device a =
        gpu(EXO_DEVICE_API_VULKAN, 0, "Radeon", NULL, "00112233-4455-6677-8899-aabbccddeeff");
    struct exo_device b =
        gpu(EXO_DEVICE_API_OPENCL, 0, "gfx1030", NULL, "00112233-4455-6677-8899-aabbccddeeff");
    struct exo_device c = gpu(EXO_DEVICE_API_OPENCL, 1, "gfx1030", NULL, NULL);
    assert_int_equal(exo_device_list_merge(&l, &a), 0);
    assert_int_equal(exo_device_list_merge(&l, &b), 0);
    /* Nothing to match on: a device of its own. */
    assert_int_equal(exo_device_list_merge(&l, &c), 1);
    /* Same PCI address wins over different UUIDs (a PCI function is one device). */
    struct exo_device d =
        gpu(EXO_DEVICE_API_CUDA, 0, "x", "0000:01:00.0", "ffffffff-4455-6677-8899-aabbccddeeff");
    struct exo_device e =
        gpu(EXO_DEVICE_API_SYSFS, 0, "y", "0000:01:00.0", "00000000-4455-6677-8899-aabbccddeeff");
    assert_int_equal(exo_device_list_merge(&l, &d), 2);
    assert_int_equal(exo_device_list_merge(&l, &e), 2);
    assert_int_equal(l.n, 3);
}

static void test_device_list_full(void **state)
{
    struct exo_device_list l;
    exo_device_list_init(&l);
    for (int i = 0; i < EXO_DEVICE_MAX + 3; i++) {
        char pci[32];
        snprintf(pci, sizeof(pci), "0000:%02x:00.0", i);
        struct exo_device d = gpu(EXO_DEVICE_API_SYSFS, i, "g", pci, NULL);
        int rc = exo_device_list_merge(&l, &d);
        assert_int_equal(rc, i < EXO_DEVICE_MAX ? i : EXO_ENOSPC);
    }
    assert_int_equal(l.n, EXO_DEVICE_MAX);
    assert_int_equal(l.dropped, 3);
}

static void test_device_ids_stable_order(void **state)
{
    struct exo_device_list a, b;
    exo_device_list_init(&a);
    exo_device_list_init(&b);
    struct exo_device g1 = gpu(EXO_DEVICE_API_VULKAN, 0, "B", "0000:b3:00.0", NULL);
    struct exo_device g0 = gpu(EXO_DEVICE_API_VULKAN, 1, "A", "0000:65:00.0", NULL);
    struct exo_device nopci = gpu(EXO_DEVICE_API_OPENCL, 0, "Z", NULL, NULL);
    struct exo_device acc = gpu(EXO_DEVICE_API_OPENCL, 1, "FPGA", NULL, NULL);
    acc.kind = EXO_DEVICE_KIND_ACCEL;
    struct exo_device host = cpu(EXO_DEVICE_API_CPU, "cpu");
    /* The same hardware reported in another order gets the same ids. */
    exo_device_list_merge(&a, &g1);
    exo_device_list_merge(&a, &acc);
    exo_device_list_merge(&a, &nopci);
    exo_device_list_merge(&a, &g0);
    exo_device_list_merge(&a, &host);
    exo_device_list_merge(&b, &host);
    exo_device_list_merge(&b, &g0);
    exo_device_list_merge(&b, &nopci);
    exo_device_list_merge(&b, &g1);
    exo_device_list_merge(&b, &acc);
    exo_device_list_assign_ids(&a);
    exo_device_list_assign_ids(&b);
    const char *ids[] = {"cpu0", "gpu0", "gpu1", "gpu2", "accel0"};
    const char *names[] = {"cpu", "A", "B", "Z", "FPGA"};
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(a.v[i].id, ids[i]);
        assert_string_equal(a.v[i].name, names[i]);
        assert_string_equal(b.v[i].id, ids[i]);
        assert_string_equal(b.v[i].name, names[i]);
    }
    assert_ptr_equal(exo_device_list_find(&a, "gpu1"), &a.v[2]);
    assert_null(exo_device_list_find(&a, "gpu9"));
}

static void test_device_json_shape(void **state)
{
    struct exo_device_list l;
    exo_device_list_init(&l);
    struct exo_device host = cpu(EXO_DEVICE_API_CPU, "Xeon");
    host.mem_total = 1000;
    host.compute_units = 4;
    host.features = EXO_DEVICE_FEAT_AVX2 | EXO_DEVICE_FEAT_FMA;
    host.backends = 1u << EXO_DEVICE_API_CPU;
    snprintf(host.isa, sizeof(host.isa), "avx2");
    exo_device_list_merge(&l, &host);
    struct exo_device g = gpu(EXO_DEVICE_API_NVML, 0, "H100", "0000:65:00.0",
                              "GPU-6f1c2b3a-4d5e-6f70-8192-a3b4c5d6e7f8");
    g.cc_major = 9;
    g.pcie_gen = 5;
    g.pcie_width = 16;
    exo_device_bind(&g, EXO_DEVICE_API_NVML, 0, "H100", "550.54.15");
    exo_device_list_merge(&l, &g);
    exo_device_list_assign_ids(&l);

    cJSON *arr = exo_device_list_to_json(&l);
    assert_non_null(arr);
    assert_int_equal(cJSON_GetArraySize(arr), 2);
    cJSON *c = cJSON_GetArrayItem(arr, 0);
    assert_string_equal(cJSON_GetObjectItem(c, "id")->valuestring, "cpu0");
    assert_string_equal(cJSON_GetObjectItem(c, "kind")->valuestring, "cpu");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(c, "uuid")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(c, "pci")));
    cJSON *mem = cJSON_GetObjectItem(c, "memory");
    assert_int_equal(cJSON_GetObjectItem(mem, "total")->valuedouble, 1000);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(mem, "free")));
    cJSON *feats = cJSON_GetObjectItem(c, "features");
    assert_int_equal(cJSON_GetArraySize(feats), 2);
    assert_string_equal(cJSON_GetArrayItem(feats, 0)->valuestring, "avx2");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "backends"), 0)->valuestring,
                        "cpu");
    assert_string_equal(cJSON_GetObjectItem(c, "isa")->valuestring, "avx2");

    cJSON *j = cJSON_GetArrayItem(arr, 1);
    assert_string_equal(cJSON_GetObjectItem(j, "uuid")->valuestring,
                        "6f1c2b3a-4d5e-6f70-8192-a3b4c5d6e7f8");
    assert_string_equal(cJSON_GetObjectItem(j, "pci")->valuestring, "0000:65:00.0");
    assert_string_equal(cJSON_GetObjectItem(j, "compute_capability")->valuestring, "9.0");
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "pcie"), "width")->valuedouble, 16);
    cJSON *api = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "apis"), 0);
    assert_string_equal(cJSON_GetObjectItem(api, "api")->valuestring, "nvml");
    assert_string_equal(cJSON_GetObjectItem(api, "driver")->valuestring, "550.54.15");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "backends")), 0);
    cJSON_Delete(arr);
}

struct events {
    int n;
    enum exo_device_event ev[8];
    char id[8][EXO_DEVICE_ID_SIZE];
};

static void on_event(void *ud, enum exo_device_event ev, const struct exo_device *d)
{
    struct events *e = ud;
    assert_true(e->n < 8);
    e->ev[e->n] = ev;
    snprintf(e->id[e->n], sizeof(e->id[0]), "%s", d->id);
    e->n++;
}

static void test_device_diff_events(void **state)
{
    struct exo_device_list before, after;
    exo_device_list_init(&before);
    struct exo_device host = cpu(EXO_DEVICE_API_CPU, "cpu");
    struct exo_device g0 = gpu(EXO_DEVICE_API_SYSFS, 0, "A", "0000:03:00.0", NULL);
    struct exo_device g1 = gpu(EXO_DEVICE_API_SYSFS, 1, "B", "0000:04:00.0", NULL);
    g0.mem_total = 16ull << 30;
    exo_device_list_merge(&before, &host);
    exo_device_list_merge(&before, &g0);
    exo_device_list_merge(&before, &g1);
    exo_device_list_assign_ids(&before);
    after = before;

    struct events e = {0};
    assert_int_equal(exo_device_list_diff(&before, &after, on_event, &e), 0);

    /* gpu1 goes away; gpu0 gains a Vulkan binding (its driver came up). */
    after.n = 2;
    exo_device_bind(&after.v[1], EXO_DEVICE_API_VULKAN, 0, "A", NULL);
    assert_int_equal(exo_device_list_diff(&before, &after, on_event, &e), 2);
    assert_int_equal(e.ev[0], EXO_DEVICE_EVENT_DISAPPEARED);
    assert_string_equal(e.id[0], "gpu1");
    assert_int_equal(e.ev[1], EXO_DEVICE_EVENT_CHANGED);
    assert_string_equal(e.id[1], "gpu0");
    assert_string_equal(exo_device_event_name(e.ev[1]), "changed");

    /* And back: gpu1 appears. */
    e.n = 0;
    assert_int_equal(exo_device_list_diff(&after, &before, on_event, &e), 2);
    assert_int_equal(e.ev[1], EXO_DEVICE_EVENT_APPEARED);
    assert_string_equal(e.id[1], "gpu1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_pci_forms),
        cmocka_unit_test(test_device_uuid_forms),
        cmocka_unit_test(test_device_merge_one_gpu_through_every_api),
        cmocka_unit_test(test_device_merge_software_devices_into_cpu),
        cmocka_unit_test(test_device_merge_by_uuid_without_pci),
        cmocka_unit_test(test_device_list_full),
        cmocka_unit_test(test_device_ids_stable_order),
        cmocka_unit_test(test_device_json_shape),
        cmocka_unit_test(test_device_diff_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
