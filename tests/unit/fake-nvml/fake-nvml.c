/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A stand-in for libnvidia-ml.so.1 and libcuda.so.1 with scripted values, so the NVIDIA probe
 * and the NVML telemetry path run on machines without an NVIDIA GPU. The test points
 * exo_detect_options.nvml_library / cuda_library (and the telemetry source's nvml_library) at
 * this library and writes a script; the path of the script is in $EXO_FAKE_NVML. It is read
 * again at every nvmlInit_v2 / cuInit, so a test can change the GPUs between detections.
 *
 * Script: one "key value" per line; "gpu" starts the next GPU and the keys after it describe
 * that GPU; '#' starts a comment.
 *   init N          nvmlInit_v2's return code (9 is NVML_ERROR_DRIVER_NOT_LOADED)
 *   cuinit N        cuInit's return code
 *   driver TEXT     nvmlSystemGetDriverVersion
 *   cuda_driver N   cuDriverGetVersion (e.g. 12040)
 *   gpu
 *   name TEXT | uuid TEXT | pci TEXT (as NVML prints it: 00000000:65:00.0)
 *   mem_total N | mem_used N (bytes) | util N | temp N | power_mw N
 *   sm_clock N | mem_clock N | max_sm_clock N | max_mem_clock N (MHz)
 *   cc MAJOR.MINOR | sms N | pcie_gen N | pcie_width N
 *   lost 1          the GPU answers NVML_ERROR_GPU_IS_LOST to memory queries
 *
 * Test code, not part of exo: it uses libc directly and trusts its script.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT   __attribute__((visibility("default")))
#define MAX_GPUS 8

struct fake_gpu {
    char name[96], uuid[96], pci[32];
    unsigned long long mem_total, mem_used;
    unsigned util, temp, power_mw, sm_clock, mem_clock, max_sm_clock, max_mem_clock;
    int cc_major, cc_minor, sms;
    unsigned pcie_gen, pcie_width;
    int lost;
};

static struct {
    int init_rc, cuinit_rc, cuda_driver;
    char driver[80];
    int n;
    struct fake_gpu gpu[MAX_GPUS];
} fake;

struct nvml_memory {
    unsigned long long total, free, used;
};

struct nvml_utilization {
    unsigned int gpu, memory;
};

struct nvml_pci_info {
    char bus_id_legacy[16];
    unsigned int domain, bus, device, pci_device_id, pci_subsystem_id;
    char bus_id[32];
};

typedef struct fake_gpu *nvml_device;

static void set(struct fake_gpu *g, const char *key, const char *v)
{
    unsigned long long n = strtoull(v, NULL, 10);
    if (strcmp(key, "name") == 0)
        snprintf(g->name, sizeof(g->name), "%s", v);
    else if (strcmp(key, "uuid") == 0)
        snprintf(g->uuid, sizeof(g->uuid), "%s", v);
    else if (strcmp(key, "pci") == 0)
        snprintf(g->pci, sizeof(g->pci), "%s", v);
    else if (strcmp(key, "mem_total") == 0)
        g->mem_total = n;
    else if (strcmp(key, "mem_used") == 0)
        g->mem_used = n;
    else if (strcmp(key, "util") == 0)
        g->util = (unsigned)n;
    else if (strcmp(key, "temp") == 0)
        g->temp = (unsigned)n;
    else if (strcmp(key, "power_mw") == 0)
        g->power_mw = (unsigned)n;
    else if (strcmp(key, "sm_clock") == 0)
        g->sm_clock = (unsigned)n;
    else if (strcmp(key, "mem_clock") == 0)
        g->mem_clock = (unsigned)n;
    else if (strcmp(key, "max_sm_clock") == 0)
        g->max_sm_clock = (unsigned)n;
    else if (strcmp(key, "max_mem_clock") == 0)
        g->max_mem_clock = (unsigned)n;
    else if (strcmp(key, "cc") == 0)
        sscanf(v, "%d.%d", &g->cc_major, &g->cc_minor);
    else if (strcmp(key, "sms") == 0)
        g->sms = (int)n;
    else if (strcmp(key, "pcie_gen") == 0)
        g->pcie_gen = (unsigned)n;
    else if (strcmp(key, "pcie_width") == 0)
        g->pcie_width = (unsigned)n;
    else if (strcmp(key, "lost") == 0)
        g->lost = (int)n;
}

static void load_script(void)
{
    memset(&fake, 0, sizeof(fake));
    const char *path = getenv("EXO_FAKE_NVML");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) {
        fake.init_rc = 9; /* no script: as if no driver were loaded */
        fake.cuinit_rc = 100;
        return;
    }
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        char *v = strchr(line, ' ');
        if (v)
            *v++ = '\0';
        else
            v = line + strlen(line);
        if (strcmp(line, "gpu") == 0 && fake.n < MAX_GPUS)
            fake.n++;
        else if (strcmp(line, "init") == 0)
            fake.init_rc = atoi(v);
        else if (strcmp(line, "cuinit") == 0)
            fake.cuinit_rc = atoi(v);
        else if (strcmp(line, "driver") == 0)
            snprintf(fake.driver, sizeof(fake.driver), "%s", v);
        else if (strcmp(line, "cuda_driver") == 0)
            fake.cuda_driver = atoi(v);
        else if (fake.n > 0)
            set(&fake.gpu[fake.n - 1], line, v);
    }
    fclose(f);
}

/* ---- NVML ---------------------------------------------------------------------------------- */

EXPORT int nvmlInit_v2(void);
EXPORT int nvmlShutdown(void);
EXPORT const char *nvmlErrorString(int rc);
EXPORT int nvmlSystemGetDriverVersion(char *out, unsigned len);
EXPORT int nvmlDeviceGetCount_v2(unsigned *n);
EXPORT int nvmlDeviceGetHandleByIndex_v2(unsigned i, nvml_device *dev);
EXPORT int nvmlDeviceGetName(nvml_device d, char *out, unsigned len);
EXPORT int nvmlDeviceGetUUID(nvml_device d, char *out, unsigned len);
EXPORT int nvmlDeviceGetMemoryInfo(nvml_device d, struct nvml_memory *m);
EXPORT int nvmlDeviceGetPciInfo_v3(nvml_device d, struct nvml_pci_info *p);
EXPORT int nvmlDeviceGetUtilizationRates(nvml_device d, struct nvml_utilization *u);
EXPORT int nvmlDeviceGetTemperature(nvml_device d, int sensor, unsigned *t);
EXPORT int nvmlDeviceGetPowerUsage(nvml_device d, unsigned *mw);
EXPORT int nvmlDeviceGetClockInfo(nvml_device d, int type, unsigned *mhz);
EXPORT int nvmlDeviceGetMaxClockInfo(nvml_device d, int type, unsigned *mhz);
EXPORT int nvmlDeviceGetCudaComputeCapability(nvml_device d, int *major, int *minor);
EXPORT int nvmlDeviceGetCurrPcieLinkGeneration(nvml_device d, unsigned *gen);
EXPORT int nvmlDeviceGetCurrPcieLinkWidth(nvml_device d, unsigned *width);

int nvmlInit_v2(void)
{
    load_script();
    return fake.init_rc;
}

int nvmlShutdown(void)
{
    return 0;
}

const char *nvmlErrorString(int rc)
{
    return rc == 9 ? "Driver Not Loaded" : "Unknown Error";
}

int nvmlSystemGetDriverVersion(char *out, unsigned len)
{
    snprintf(out, len, "%s", fake.driver);
    return 0;
}

int nvmlDeviceGetCount_v2(unsigned *n)
{
    *n = (unsigned)fake.n;
    return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned i, nvml_device *dev)
{
    if (i >= (unsigned)fake.n)
        return 2;
    *dev = &fake.gpu[i];
    return 0;
}

int nvmlDeviceGetName(nvml_device d, char *out, unsigned len)
{
    snprintf(out, len, "%s", d->name);
    return 0;
}

int nvmlDeviceGetUUID(nvml_device d, char *out, unsigned len)
{
    snprintf(out, len, "%s", d->uuid);
    return 0;
}

int nvmlDeviceGetMemoryInfo(nvml_device d, struct nvml_memory *m)
{
    if (d->lost)
        return 15;
    m->total = d->mem_total;
    m->used = d->mem_used;
    m->free = d->mem_total - d->mem_used;
    return 0;
}

int nvmlDeviceGetPciInfo_v3(nvml_device d, struct nvml_pci_info *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->bus_id, sizeof(p->bus_id), "%s", d->pci);
    return 0;
}

int nvmlDeviceGetUtilizationRates(nvml_device d, struct nvml_utilization *u)
{
    u->gpu = d->util;
    u->memory = 0;
    return 0;
}

int nvmlDeviceGetTemperature(nvml_device d, int sensor, unsigned *t)
{
    *t = d->temp;
    return 0;
}

int nvmlDeviceGetPowerUsage(nvml_device d, unsigned *mw)
{
    if (!d->power_mw)
        return 3; /* NVML_ERROR_NOT_SUPPORTED, as on boards without a power sensor */
    *mw = d->power_mw;
    return 0;
}

int nvmlDeviceGetClockInfo(nvml_device d, int type, unsigned *mhz)
{
    *mhz = type == 2 ? d->mem_clock : d->sm_clock;
    return 0;
}

int nvmlDeviceGetMaxClockInfo(nvml_device d, int type, unsigned *mhz)
{
    *mhz = type == 2 ? d->max_mem_clock : d->max_sm_clock;
    return 0;
}

int nvmlDeviceGetCudaComputeCapability(nvml_device d, int *major, int *minor)
{
    *major = d->cc_major;
    *minor = d->cc_minor;
    return 0;
}

int nvmlDeviceGetCurrPcieLinkGeneration(nvml_device d, unsigned *gen)
{
    *gen = d->pcie_gen;
    return 0;
}

int nvmlDeviceGetCurrPcieLinkWidth(nvml_device d, unsigned *width)
{
    *width = d->pcie_width;
    return 0;
}

/* ---- the CUDA driver API ------------------------------------------------------------------- */

EXPORT int cuInit(unsigned flags);
EXPORT int cuDriverGetVersion(int *v);
EXPORT int cuDeviceGetCount(int *n);
EXPORT int cuDeviceGet(int *dev, int ordinal);
EXPORT int cuDeviceGetName(char *out, int len, int dev);
EXPORT int cuDeviceTotalMem_v2(size_t *bytes, int dev);
EXPORT int cuDeviceGetAttribute(int *v, int attr, int dev);
EXPORT int cuDeviceGetUuid(uint8_t *uuid, int dev);

int cuInit(unsigned flags)
{
    load_script();
    return fake.cuinit_rc;
}

int cuDriverGetVersion(int *v)
{
    *v = fake.cuda_driver;
    return 0;
}

int cuDeviceGetCount(int *n)
{
    *n = fake.n;
    return 0;
}

int cuDeviceGet(int *dev, int ordinal)
{
    if (ordinal < 0 || ordinal >= fake.n)
        return 101; /* CUDA_ERROR_INVALID_DEVICE */
    *dev = ordinal;
    return 0;
}

int cuDeviceGetName(char *out, int len, int dev)
{
    snprintf(out, (size_t)len, "%s", fake.gpu[dev].name);
    return 0;
}

int cuDeviceTotalMem_v2(size_t *bytes, int dev)
{
    *bytes = (size_t)fake.gpu[dev].mem_total;
    return 0;
}

int cuDeviceGetAttribute(int *v, int attr, int dev)
{
    const struct fake_gpu *g = &fake.gpu[dev];
    unsigned domain = 0, bus = 0, slot = 0, fn = 0;
    sscanf(g->pci, "%x:%x:%x.%x", &domain, &bus, &slot, &fn);
    switch (attr) {
    case 13: /* clock rate, kHz */
        *v = (int)g->max_sm_clock * 1000;
        return 0;
    case 16:
        *v = g->sms;
        return 0;
    case 33:
        *v = (int)bus;
        return 0;
    case 34:
        *v = (int)slot;
        return 0;
    case 36:
        *v = (int)g->max_mem_clock * 1000;
        return 0;
    case 50:
        *v = (int)domain;
        return 0;
    case 75:
        *v = g->cc_major;
        return 0;
    case 76:
        *v = g->cc_minor;
        return 0;
    default:
        return 1; /* CUDA_ERROR_INVALID_VALUE */
    }
}

int cuDeviceGetUuid(uint8_t *uuid, int dev)
{
    /* The same 16 bytes NVML shows as GPU-xxxxxxxx-...: hex digits of the UUID text. */
    const char *p = fake.gpu[dev].uuid;
    if (strncmp(p, "GPU-", 4) == 0)
        p += 4;
    int n = 0;
    for (; *p && n < 32; p++) {
        if (*p == '-')
            continue;
        unsigned d;
        if (sscanf((char[2]){*p, 0}, "%x", &d) != 1)
            return 1;
        if (n % 2 == 0)
            uuid[n / 2] = (uint8_t)(d << 4);
        else
            uuid[n / 2] |= (uint8_t)d;
        n++;
    }
    return n == 32 ? 0 : 1;
}
