/* SPDX-License-Identifier: Apache-2.0 */
/*
 * NVML through dlopen (see nvml.h). The declarations below follow NVIDIA's NVML API reference
 * (docs.nvidia.com/deploy/nvml-api): return codes, the handle type, and the two structs we read.
 * Functions newer drivers added (the _v2/_v3 names) are the ones resolved, as libnvidia-ml
 * exports both and the plain names are the old ABI.
 */
#include "device/nvml.h"

#include <assert.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "device/detect-int.h"

#define NVML_SUCCESS            0
#define NVML_ERROR_GPU_IS_LOST  15
#define NVML_TEMPERATURE_GPU    0
#define NVML_CLOCK_SM           1
#define NVML_CLOCK_MEM          2
#define NVML_TEXT_LEN           96 /* name and UUID buffers, as NVML sizes them */
#define NVML_DRIVER_VERSION_LEN 80
#define MAX_GPUS                64

typedef int nvml_return;
typedef struct nvml_device_st *nvml_device;

struct nvml_memory {
    unsigned long long total, free, used;
};

struct nvml_utilization {
    unsigned int gpu, memory; /* percent */
};

/* nvmlPciInfo_t as nvmlDeviceGetPciInfo_v3 fills it. */
struct nvml_pci_info {
    char bus_id_legacy[16];
    unsigned int domain, bus, device, pci_device_id, pci_subsystem_id;
    char bus_id[32];
};

struct nvml_api {
    nvml_return (*init)(void);
    nvml_return (*shutdown)(void);
    nvml_return (*count)(unsigned int *);
    nvml_return (*handle)(unsigned int, nvml_device *);
    nvml_return (*name)(nvml_device, char *, unsigned int);
    nvml_return (*uuid)(nvml_device, char *, unsigned int);
    nvml_return (*memory)(nvml_device, struct nvml_memory *);
    nvml_return (*pci)(nvml_device, struct nvml_pci_info *);
    const char *(*error_string)(nvml_return);
    /* Optional: older drivers or boards without the sensor lack some of these. */
    nvml_return (*driver_version)(char *, unsigned int);
    nvml_return (*utilization)(nvml_device, struct nvml_utilization *);
    nvml_return (*temperature)(nvml_device, int, unsigned int *);
    nvml_return (*power)(nvml_device, unsigned int *);
    nvml_return (*clock)(nvml_device, int, unsigned int *);
    nvml_return (*max_clock)(nvml_device, int, unsigned int *);
    nvml_return (*cuda_cc)(nvml_device, int *, int *);
    nvml_return (*pcie_gen)(nvml_device, unsigned int *);
    nvml_return (*pcie_width)(nvml_device, unsigned int *);
};

struct exo_nvml {
    void *lib;
    struct nvml_api f;
    bool initialised;
    unsigned n;
    nvml_device dev[MAX_GPUS];
    char driver[NVML_DRIVER_VERSION_LEN];
};

static const char *const required_names[] = {
    "nvmlInit_v2",
    "nvmlShutdown",
    "nvmlDeviceGetCount_v2",
    "nvmlDeviceGetHandleByIndex_v2",
    "nvmlDeviceGetName",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetPciInfo_v3",
    "nvmlErrorString",
};

static const char *const optional_names[] = {
    "nvmlSystemGetDriverVersion",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetClockInfo",
    "nvmlDeviceGetMaxClockInfo",
    "nvmlDeviceGetCudaComputeCapability",
    "nvmlDeviceGetCurrPcieLinkGeneration",
    "nvmlDeviceGetCurrPcieLinkWidth",
};

void exo_nvml_close(struct exo_nvml *n)
{
    if (!n)
        return;
    if (n->initialised)
        n->f.shutdown();
    if (n->lib)
        dlclose(n->lib);
    exo_free(n);
}

int exo_nvml_open(const char *library, struct exo_nvml **ret, char *why, size_t why_len)
{
    struct exo_nvml *n = exo_calloc(1, sizeof(*n));
    if (!n)
        return EXO_ENOMEM;
    int rc = EXO_ENODEV;
    const char *name = library ? library : "libnvidia-ml.so.1";
    n->lib = exo_probe_dlopen(name, why, why_len);
    if (!n->lib)
        goto out;
    struct nvml_api *f = &n->f;
    void **const required[] = {
        (void **)&f->init,   (void **)&f->shutdown, (void **)&f->count,
        (void **)&f->handle, (void **)&f->name,     (void **)&f->uuid,
        (void **)&f->memory, (void **)&f->pci,      (void **)&f->error_string,
    };
    void **const optional[] = {
        (void **)&f->driver_version, (void **)&f->utilization, (void **)&f->temperature,
        (void **)&f->power,          (void **)&f->clock,       (void **)&f->max_clock,
        (void **)&f->cuda_cc,        (void **)&f->pcie_gen,    (void **)&f->pcie_width,
    };
    static_assert(sizeof(required) / sizeof(required[0]) ==
                      sizeof(required_names) / sizeof(required_names[0]),
                  "one name per NVML function");
    static_assert(sizeof(optional) / sizeof(optional[0]) ==
                      sizeof(optional_names) / sizeof(optional_names[0]),
                  "one name per optional NVML function");
    const char *missing =
        exo_probe_dlsyms(n->lib, required_names, required, sizeof(required) / sizeof(required[0]));
    if (missing) {
        snprintf(why, why_len, "%s lacks %s (driver too old?)", name, missing);
        goto out;
    }
    for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++)
        *optional[i] = dlsym(n->lib, optional_names[i]);

    nvml_return r = f->init();
    if (r != NVML_SUCCESS) {
        const char *text = f->error_string(r);
        snprintf(why, why_len, "nvmlInit failed: %s", text ? text : "unknown error");
        goto out;
    }
    n->initialised = true;
    unsigned count = 0;
    if ((r = f->count(&count)) != NVML_SUCCESS) {
        const char *text = f->error_string(r);
        snprintf(why, why_len, "nvmlDeviceGetCount failed: %s", text ? text : "unknown error");
        goto out;
    }
    for (unsigned i = 0; i < count && n->n < MAX_GPUS; i++)
        if (f->handle(i, &n->dev[n->n]) == NVML_SUCCESS)
            n->n++;
    if (f->driver_version && f->driver_version(n->driver, sizeof(n->driver)) != NVML_SUCCESS)
        n->driver[0] = '\0';
    n->driver[sizeof(n->driver) - 1] = '\0';
    *ret = n;
    n = NULL;
    rc = 0;
out:
    exo_nvml_close(n);
    return rc;
}

unsigned exo_nvml_count(const struct exo_nvml *n)
{
    return n->n;
}

/* The canonical PCI address of GPU i, or an empty string. */
static void pci_address(struct exo_nvml *n, unsigned i, char out[EXO_DEVICE_PCI_SIZE])
{
    struct nvml_pci_info pci;
    memset(&pci, 0, sizeof(pci));
    out[0] = '\0';
    if (n->f.pci(n->dev[i], &pci) != NVML_SUCCESS)
        return;
    pci.bus_id[sizeof(pci.bus_id) - 1] = '\0';
    if (exo_device_pci_parse(pci.bus_id, out) < 0)
        out[0] = '\0';
}

int exo_nvml_describe(struct exo_nvml *n, unsigned index, struct exo_device *ret)
{
    if (index >= n->n)
        return EXO_EINVAL;
    nvml_device dev = n->dev[index];
    struct nvml_api *f = &n->f;
    char text[NVML_TEXT_LEN];
    exo_device_init(ret, EXO_DEVICE_KIND_GPU, EXO_DEVICE_API_NVML, (int32_t)index);
    snprintf(ret->vendor, sizeof(ret->vendor), "NVIDIA");
    memset(text, 0, sizeof(text));
    if (f->name(dev, text, sizeof(text)) == NVML_SUCCESS) {
        text[sizeof(text) - 1] = '\0';
        snprintf(ret->name, sizeof(ret->name), "%s", text);
    }
    memset(text, 0, sizeof(text));
    if (f->uuid(dev, text, sizeof(text)) == NVML_SUCCESS) {
        text[sizeof(text) - 1] = '\0';
        ret->has_uuid = exo_device_uuid_parse(text, ret->uuid) == 0;
    }
    pci_address(n, index, ret->pci);
    struct nvml_memory mem;
    if (f->memory(dev, &mem) == NVML_SUCCESS) {
        ret->mem_total = mem.total;
        ret->mem_free = mem.free <= mem.total ? mem.free : mem.total;
    }
    unsigned v;
    if (f->clock && f->clock(dev, NVML_CLOCK_SM, &v) == NVML_SUCCESS)
        ret->clock_mhz = v;
    if (f->max_clock && f->max_clock(dev, NVML_CLOCK_SM, &v) == NVML_SUCCESS)
        ret->clock_max_mhz = v;
    if (f->max_clock && f->max_clock(dev, NVML_CLOCK_MEM, &v) == NVML_SUCCESS)
        ret->mem_clock_mhz = v;
    int major, minor;
    if (f->cuda_cc && f->cuda_cc(dev, &major, &minor) == NVML_SUCCESS && major > 0 && major < 256 &&
        minor >= 0 && minor < 256) {
        ret->cc_major = (uint8_t)major;
        ret->cc_minor = (uint8_t)minor;
    }
    if (f->pcie_gen && f->pcie_gen(dev, &v) == NVML_SUCCESS && v < 256)
        ret->pcie_gen = (uint8_t)v;
    if (f->pcie_width && f->pcie_width(dev, &v) == NVML_SUCCESS && v < 256)
        ret->pcie_width = (uint8_t)v;
    ret->subgroup_size = 32;
    ret->features |= EXO_DEVICE_FEAT_FP16;
    exo_device_bind(ret, EXO_DEVICE_API_NVML, (int32_t)index, ret->name, n->driver);
    return 0;
}

int exo_nvml_find(struct exo_nvml *n, const char *pci, unsigned *ret_index)
{
    char addr[EXO_DEVICE_PCI_SIZE];
    for (unsigned i = 0; i < n->n; i++) {
        pci_address(n, i, addr);
        if (addr[0] && strcmp(addr, pci) == 0) {
            *ret_index = i;
            return 0;
        }
    }
    return EXO_ENOENT;
}

void exo_nvml_sample(struct exo_nvml *n, unsigned index, struct exo_gpu_sample *ret)
{
    ret->has = 0;
    ret->lost = false;
    if (index >= n->n) {
        ret->lost = true;
        return;
    }
    nvml_device dev = n->dev[index];
    struct nvml_api *f = &n->f;
    struct nvml_memory mem;
    nvml_return r = f->memory(dev, &mem);
    if (r == NVML_SUCCESS) {
        ret->mem_total = mem.total;
        ret->mem_used = mem.used <= mem.total ? mem.used : mem.total;
        ret->has |= EXO_GPU_HAS_MEM;
    } else if (r == NVML_ERROR_GPU_IS_LOST) {
        ret->lost = true;
        return;
    }
    struct nvml_utilization u;
    if (f->utilization && f->utilization(dev, &u) == NVML_SUCCESS) {
        ret->util_pct = (uint8_t)(u.gpu <= 100 ? u.gpu : 100);
        ret->has |= EXO_GPU_HAS_UTIL;
    }
    unsigned v;
    if (f->temperature && f->temperature(dev, NVML_TEMPERATURE_GPU, &v) == NVML_SUCCESS &&
        v < 1000) {
        ret->temp_c = (int16_t)v;
        ret->has |= EXO_GPU_HAS_TEMP;
    }
    if (f->power && f->power(dev, &v) == NVML_SUCCESS) {
        ret->power_mw = v;
        ret->has |= EXO_GPU_HAS_POWER;
    }
    if (f->clock && f->clock(dev, NVML_CLOCK_SM, &v) == NVML_SUCCESS) {
        ret->clock_mhz = v;
        ret->has |= EXO_GPU_HAS_CLOCK;
    }
    if (f->clock && f->clock(dev, NVML_CLOCK_MEM, &v) == NVML_SUCCESS) {
        ret->mem_clock_mhz = v;
        ret->has |= EXO_GPU_HAS_MEM_CLOCK;
    }
}
