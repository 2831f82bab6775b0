/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OpenCL probe: every platform the ICD loader (libOpenCL.so.1, opened with dlopen) lists,
 * and every device of each: global memory, compute units, clock, fp16 support and driver
 * version, plus the UUID (cl_khr_device_uuid) and PCI address (cl_khr_pci_bus_info) when the
 * driver offers them, for matching with the other APIs. A CPU device (PoCL) is the host CPU
 * through OpenCL and folds into cpu0.
 *
 * Only the Khronos headers are used; nothing is linked, every entry point comes from dlsym.
 */
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <CL/cl_ext.h>

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "device/detect-int.h"

#define MAX_PLATFORMS 16
#define MAX_DEVICES   32
#define MAX_INFO_TEXT (64u << 10)

struct cl_api {
    __typeof__(clGetPlatformIDs) *platform_ids;
    __typeof__(clGetPlatformInfo) *platform_info;
    __typeof__(clGetDeviceIDs) *device_ids;
    __typeof__(clGetDeviceInfo) *device_info;
};

/* A string property of a platform (when p is not NULL) or of a device, whole (drivers answer
 * CL_INVALID_VALUE rather than truncate); owned by the caller, NULL when there is none. */
static char *info_alloc(const struct cl_api *f, cl_platform_id p, cl_device_id d, cl_uint what)
{
    size_t need = 0;
    cl_int err =
        p ? f->platform_info(p, what, 0, NULL, &need) : f->device_info(d, what, 0, NULL, &need);
    if (err != CL_SUCCESS || need == 0 || need > MAX_INFO_TEXT)
        return NULL;
    char *text = exo_malloc(need + 1);
    if (!text)
        return NULL;
    err =
        p ? f->platform_info(p, what, need, text, NULL) : f->device_info(d, what, need, text, NULL);
    if (err != CL_SUCCESS) {
        exo_free(text);
        return NULL;
    }
    text[need] = '\0';
    return text;
}

/* The same, cut to fit out ("" when there is none). */
static void info_string(const struct cl_api *f, cl_platform_id p, cl_device_id d, cl_uint what,
                        char *out, size_t size)
{
    char *text = info_alloc(f, p, d, what);
    out[0] = '\0';
    if (text)
        exo_probe_copy(out, size, text, strlen(text));
    exo_free(text);
}

static uint64_t device_u64(const struct cl_api *f, cl_device_id dev, cl_device_info what,
                           size_t width)
{
    union {
        cl_ulong u64;
        cl_uint u32;
        cl_bool b;
    } v;
    memset(&v, 0, sizeof(v));
    if (f->device_info(dev, what, width, &v, NULL) != CL_SUCCESS)
        return 0;
    return width == sizeof(cl_ulong) ? v.u64 : v.u32;
}

/* Whether the space-separated list has the word name. */
static bool has_word(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && (p = strstr(p, name)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

static void describe(const struct cl_api *f, cl_device_id dev, int32_t index, const char *platform,
                     struct exo_device *d)
{
    cl_device_type type = 0;
    f->device_info(dev, CL_DEVICE_TYPE, sizeof(type), &type, NULL);
    enum exo_device_kind kind = (type & CL_DEVICE_TYPE_CPU)   ? EXO_DEVICE_KIND_CPU
                                : (type & CL_DEVICE_TYPE_GPU) ? EXO_DEVICE_KIND_GPU
                                                              : EXO_DEVICE_KIND_ACCEL;
    exo_device_init(d, kind, EXO_DEVICE_API_OPENCL, index);
    info_string(f, NULL, dev, CL_DEVICE_NAME, d->name, sizeof(d->name));
    uint32_t vendor_id = (uint32_t)device_u64(f, dev, CL_DEVICE_VENDOR_ID, sizeof(cl_uint));
    const char *vendor = exo_probe_vendor_name(vendor_id);
    if (vendor[0])
        snprintf(d->vendor, sizeof(d->vendor), "%s", vendor);
    else
        info_string(f, NULL, dev, CL_DEVICE_VENDOR, d->vendor, sizeof(d->vendor));
    d->compute_units = (uint32_t)device_u64(f, dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof(cl_uint));
    d->clock_max_mhz = (uint32_t)device_u64(f, dev, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof(cl_uint));
    if (kind != EXO_DEVICE_KIND_CPU) {
        d->mem_total = device_u64(f, dev, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof(cl_ulong));
        d->mem_shared = device_u64(f, dev, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof(cl_bool)) != 0;
    }
    char *ext = info_alloc(f, NULL, dev, CL_DEVICE_EXTENSIONS);
    if (ext) {
        if (has_word(ext, "cl_khr_fp16"))
            d->features |= EXO_DEVICE_FEAT_FP16;
        if (has_word(ext, "cl_khr_device_uuid") && kind != EXO_DEVICE_KIND_CPU &&
            f->device_info(dev, CL_DEVICE_UUID_KHR, 16, d->uuid, NULL) == CL_SUCCESS)
            d->has_uuid = true;
        cl_device_pci_bus_info_khr pci;
        if (has_word(ext, "cl_khr_pci_bus_info") &&
            f->device_info(dev, CL_DEVICE_PCI_BUS_INFO_KHR, sizeof(pci), &pci, NULL) ==
                CL_SUCCESS &&
            pci.pci_domain <= 0xffff && pci.pci_bus <= 0xff && pci.pci_device <= 0x1f &&
            pci.pci_function <= 7)
            snprintf(d->pci, sizeof(d->pci), "%04x:%02x:%02x.%x", pci.pci_domain, pci.pci_bus,
                     pci.pci_device, pci.pci_function);
        exo_free(ext);
    }
    /* "3.1+debian, OpenCL 3.0 PoCL 3.1+debian Linux, ...": the driver's version, then the
     * platform's, which names the implementation. */
    char version[EXO_DEVICE_DRIVER_SIZE], driver[EXO_DEVICE_DRIVER_SIZE];
    info_string(f, NULL, dev, CL_DRIVER_VERSION, version, sizeof(version));
    exo_probe_join(driver, sizeof(driver), version, ", ", platform);
    exo_device_bind(d, EXO_DEVICE_API_OPENCL, index, d->name, driver);
}

int exo_probe_opencl(const struct exo_detect_options *o, struct exo_device_list *l)
{
    static const char *const names[] = {"clGetPlatformIDs", "clGetPlatformInfo", "clGetDeviceIDs",
                                        "clGetDeviceInfo"};
    struct cl_api f = {0};
    void **const fns[] = {(void **)&f.platform_ids, (void **)&f.platform_info,
                          (void **)&f.device_ids, (void **)&f.device_info};
    char why[256] = "";
    const char *lib_name = o->opencl_library ? o->opencl_library : "libOpenCL.so.1";
    void *lib = exo_probe_dlopen(lib_name, why, sizeof(why));
    if (!lib) {
        exo_log(EXO_LOG_INFO, "device", "OpenCL loader not available, skipping it: %s", why);
        return EXO_ENODEV;
    }
    int rc = EXO_ENODEV;
    const char *missing = exo_probe_dlsyms(lib, names, fns, sizeof(fns) / sizeof(fns[0]));
    if (missing) {
        exo_log(EXO_LOG_INFO, "device", "%s lacks %s, skipping OpenCL", lib_name, missing);
        goto out;
    }
    cl_platform_id platforms[MAX_PLATFORMS];
    cl_uint n_platforms = 0;
    cl_int err = f.platform_ids(MAX_PLATFORMS, platforms, &n_platforms);
    if (err != CL_SUCCESS || n_platforms == 0) {
        /* The ICD loader answers CL_PLATFORM_NOT_FOUND_KHR when no driver is installed. */
        exo_log(EXO_LOG_INFO, "device", "no OpenCL platform (error %d), skipping OpenCL", (int)err);
        goto out;
    }
    int32_t index = 0;
    for (cl_uint p = 0; p < n_platforms && p < MAX_PLATFORMS; p++) {
        char pname[EXO_DEVICE_DRIVER_SIZE];
        info_string(&f, platforms[p], NULL, CL_PLATFORM_VERSION, pname, sizeof(pname));
        cl_device_id devs[MAX_DEVICES];
        cl_uint n = 0;
        if (f.device_ids(platforms[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, devs, &n) != CL_SUCCESS)
            continue;
        for (cl_uint i = 0; i < n && i < MAX_DEVICES; i++) {
            struct exo_device d;
            /* The binding index counts devices across platforms, in the loader's order. */
            describe(&f, devs[i], index++, pname, &d);
            exo_device_list_merge(l, &d);
        }
    }
    rc = 0;
out:
    /* The loader stays mapped: the ICDs it loaded (PoCL, with LLVM inside) do not survive being
     * unloaded, and detecting again later finds it already loaded. */
    (void)lib;
    return rc;
}
