/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NVIDIA probe: NVML for each GPU's facts (it needs no CUDA context and answers for GPUs
 * that CUDA_VISIBLE_DEVICES hides), then the CUDA driver API (libcuda.so.1) for what only it
 * tells: the multiprocessor count, and which GPUs CUDA can drive. Both are matched by PCI
 * address. Either library may be missing; each absence is one info line.
 *
 * The CUDA declarations below follow NVIDIA's driver API reference: CUresult is an int, a
 * CUdevice an int ordinal, CUuuid 16 bytes, and the attribute numbers are the documented
 * values of CUdevice_attribute.
 */
#include <assert.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "device/detect-int.h"
#include "device/nvml.h"

#define CUDA_SUCCESS           0
#define ATTR_CLOCK_RATE        13 /* kHz */
#define ATTR_MULTIPROCESSORS   16
#define ATTR_PCI_BUS           33
#define ATTR_PCI_DEVICE        34
#define ATTR_MEMORY_CLOCK_RATE 36 /* kHz */
#define ATTR_PCI_DOMAIN        50
#define ATTR_CC_MAJOR          75
#define ATTR_CC_MINOR          76
#define MAX_CUDA_DEVICES       64

struct cuda_api {
    int (*init)(unsigned int);
    int (*driver_version)(int *);
    int (*count)(int *);
    int (*get)(int *, int);
    int (*name)(char *, int, int);
    int (*total_mem)(size_t *, int);
    int (*attribute)(int *, int, int);
    int (*uuid)(uint8_t *, int);
};

static void probe_nvml(const struct exo_detect_options *o, struct exo_device_list *l)
{
    struct exo_nvml *n = NULL;
    char why[256] = "";
    if (exo_nvml_open(o->nvml_library, &n, why, sizeof(why)) < 0) {
        exo_log(EXO_LOG_INFO, "device", "NVML not available, skipping it: %s", why);
        return;
    }
    for (unsigned i = 0; i < exo_nvml_count(n); i++) {
        struct exo_device d;
        if (exo_nvml_describe(n, i, &d) == 0)
            exo_device_list_merge(l, &d);
    }
    exo_nvml_close(n);
}

static int attr(const struct cuda_api *f, int dev, int which)
{
    int v = 0;
    return f->attribute(&v, which, dev) == CUDA_SUCCESS && v > 0 ? v : 0;
}

static void describe_cuda(const struct cuda_api *f, int ordinal, const char *driver,
                          struct exo_device *d)
{
    int dev = 0;
    char name[EXO_DEVICE_NAME_SIZE] = "";
    exo_device_init(d, EXO_DEVICE_KIND_GPU, EXO_DEVICE_API_CUDA, ordinal);
    d->backends = 0; /* the CUDA backend is a plugin of its own issue: not here yet */
    if (f->get(&dev, ordinal) != CUDA_SUCCESS)
        return;
    snprintf(d->vendor, sizeof(d->vendor), "NVIDIA");
    if (f->name(name, (int)sizeof(name), dev) == CUDA_SUCCESS) {
        name[sizeof(name) - 1] = '\0';
        snprintf(d->name, sizeof(d->name), "%s", name);
    }
    size_t total = 0;
    if (f->total_mem(&total, dev) == CUDA_SUCCESS)
        d->mem_total = total;
    if (f->uuid && f->uuid(d->uuid, dev) == CUDA_SUCCESS)
        d->has_uuid = true;
    d->compute_units = (uint32_t)attr(f, dev, ATTR_MULTIPROCESSORS);
    d->clock_max_mhz = (uint32_t)attr(f, dev, ATTR_CLOCK_RATE) / 1000;
    d->mem_clock_mhz = (uint32_t)attr(f, dev, ATTR_MEMORY_CLOCK_RATE) / 1000;
    int major = attr(f, dev, ATTR_CC_MAJOR), minor = 0;
    f->attribute(&minor, ATTR_CC_MINOR, dev);
    if (major > 0 && major < 256 && minor >= 0 && minor < 256) {
        d->cc_major = (uint8_t)major;
        d->cc_minor = (uint8_t)minor;
    }
    int domain = 0, bus = 0, slot = 0;
    if (f->attribute(&domain, ATTR_PCI_DOMAIN, dev) == CUDA_SUCCESS &&
        f->attribute(&bus, ATTR_PCI_BUS, dev) == CUDA_SUCCESS &&
        f->attribute(&slot, ATTR_PCI_DEVICE, dev) == CUDA_SUCCESS && domain >= 0 &&
        domain <= 0xffff && bus >= 0 && bus <= 0xff && slot >= 0 && slot <= 0x1f)
        snprintf(d->pci, sizeof(d->pci), "%04x:%02x:%02x.0", domain, bus, slot);
    d->subgroup_size = 32;
    d->features |= EXO_DEVICE_FEAT_FP16;
    exo_device_bind(d, EXO_DEVICE_API_CUDA, ordinal, d->name, driver);
}

static void probe_cuda(const struct exo_detect_options *o, struct exo_device_list *l)
{
    static const char *const names[] = {
        "cuInit",          "cuDriverGetVersion",  "cuDeviceGetCount",     "cuDeviceGet",
        "cuDeviceGetName", "cuDeviceTotalMem_v2", "cuDeviceGetAttribute",
    };
    struct cuda_api f = {0};
    void **const fns[] = {
        (void **)&f.init, (void **)&f.driver_version, (void **)&f.count,     (void **)&f.get,
        (void **)&f.name, (void **)&f.total_mem,      (void **)&f.attribute,
    };
    static_assert(sizeof(names) / sizeof(names[0]) == sizeof(fns) / sizeof(fns[0]),
                  "one name per CUDA function");
    char why[256] = "";
    const char *lib_name = o->cuda_library ? o->cuda_library : "libcuda.so.1";
    void *lib = exo_probe_dlopen(lib_name, why, sizeof(why));
    bool initialised = false;
    if (!lib) {
        exo_log(EXO_LOG_INFO, "device", "CUDA driver not available, skipping it: %s", why);
        return;
    }
    const char *missing = exo_probe_dlsyms(lib, names, fns, sizeof(fns) / sizeof(fns[0]));
    *(void **)&f.uuid = dlsym(lib, "cuDeviceGetUuid");
    int n = 0, version = 0, rc;
    if (missing) {
        exo_log(EXO_LOG_INFO, "device", "%s lacks %s, skipping CUDA", lib_name, missing);
        goto out;
    }
    if ((rc = f.init(0)) != CUDA_SUCCESS) {
        exo_log(EXO_LOG_INFO, "device", "cuInit failed (CUresult %d), skipping CUDA", rc);
        goto out;
    }
    initialised = true;
    if (f.count(&n) != CUDA_SUCCESS || n < 0)
        n = 0;
    char driver[32] = "";
    if (f.driver_version(&version) == CUDA_SUCCESS && version > 0)
        snprintf(driver, sizeof(driver), "CUDA %d.%d", version / 1000, version % 1000 / 10);
    for (int i = 0; i < n && i < MAX_CUDA_DEVICES; i++) {
        struct exo_device d;
        describe_cuda(&f, i, driver, &d);
        exo_device_list_merge(l, &d);
    }
out:
    /* An initialised driver keeps threads and exit handlers inside the library; unloading it
     * under them crashes at exit on some driver versions, and the CUDA backend will want it
     * loaded anyway. So only a library that never initialised is closed. */
    if (!initialised)
        dlclose(lib);
}

int exo_probe_nvidia(const struct exo_detect_options *o, struct exo_device_list *l)
{
    if (!(o->skip & (1u << EXO_DEVICE_API_NVML)))
        probe_nvml(o, l);
    if (!(o->skip & (1u << EXO_DEVICE_API_CUDA)))
        probe_cuda(o, l);
    return 0;
}
