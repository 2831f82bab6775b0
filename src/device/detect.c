/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Detection: run every probe in order of authority and fold their reports into one list (see
 * detect.h). The helpers the probes share for dlopen live here too.
 */
#include "device/detect.h"

#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "device/detect-int.h"

bool exo_probe_root_is_host(const char *root)
{
    return !root || !root[0] || strcmp(root, "/") == 0;
}

void *exo_probe_dlopen(const char *name, char *why, size_t why_len)
{
    void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *err = dlerror();
        snprintf(why, why_len, "%s", err ? err : "cannot be loaded");
    }
    return lib;
}

const char *exo_probe_dlsyms(void *lib, const char *const *names, void **const *fns, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        *fns[i] = dlsym(lib, names[i]);
        if (!*fns[i])
            return names[i];
    }
    return NULL;
}

void exo_probe_copy(char *dst, size_t size, const char *src, size_t src_size)
{
    if (!size)
        return;
    size_t n = strnlen(src, src_size);
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void exo_probe_join(char *dst, size_t size, const char *a, const char *sep, const char *b)
{
    if (!a[0] || !b[0]) {
        exo_probe_copy(dst, size, a[0] ? a : b, SIZE_MAX);
        return;
    }
    exo_probe_copy(dst, size, a, SIZE_MAX);
    size_t n = strlen(dst);
    exo_probe_copy(dst + n, size - n, sep, SIZE_MAX);
    n = strlen(dst);
    exo_probe_copy(dst + n, size - n, b, SIZE_MAX);
}

const char *exo_probe_vendor_name(uint32_t pci_vendor)
{
    switch (pci_vendor) {
    case 0x10de:
        return "NVIDIA";
    case 0x1002:
    case 0x1022:
        return "AMD";
    case 0x8086:
        return "Intel";
    case 0x13b5:
        return "ARM";
    case 0x5143:
        return "Qualcomm";
    case 0x106b:
        return "Apple";
    case 0x1af4:
        return "Virtio";
    case 0x10005: /* VK_VENDOR_ID_MESA: Mesa's software devices */
        return "Mesa";
    default:
        return "";
    }
}

int exo_device_detect(const struct exo_detect_options *opts, struct exo_device_list *ret)
{
    static const struct {
        uint32_t apis; /* skipped when every one of these is in o->skip */
        int (*probe)(const struct exo_detect_options *, struct exo_device_list *);
    } probes[] = {
        {1u << EXO_DEVICE_API_NVML | 1u << EXO_DEVICE_API_CUDA, exo_probe_nvidia},
        {1u << EXO_DEVICE_API_VULKAN, exo_probe_vulkan},
        {1u << EXO_DEVICE_API_OPENCL, exo_probe_opencl},
        {1u << EXO_DEVICE_API_SYSFS, exo_probe_sysfs},
    };
    struct exo_detect_options defaults = {0};
    const struct exo_detect_options *o = opts ? opts : &defaults;
    /* LLVM, which PoCL and lavapipe load, gives the thread that first initialises it an
     * alternate signal stack of its own. The thread's owner (libuv's pool in the daemon, a
     * sanitizer runtime) expects to find its own stack there when the thread exits. */
    stack_t altstack;
    bool restore_altstack = sigaltstack(NULL, &altstack) == 0;
    exo_device_list_init(ret);
    /* The CPU is always probed: it is what every node can compute with. */
    int rc = exo_probe_cpu(o, ret);
    for (size_t i = 0; rc != EXO_ENOMEM && i < sizeof(probes) / sizeof(probes[0]); i++) {
        if ((o->skip & probes[i].apis) == probes[i].apis)
            continue;
        rc = probes[i].probe(o, ret);
    }
    if (restore_altstack)
        sigaltstack(&altstack, NULL);
    if (rc == EXO_ENOMEM)
        return rc;
    if (ret->dropped)
        exo_log(EXO_LOG_WARN, "device", "%u devices beyond the first %d were left out",
                ret->dropped, EXO_DEVICE_MAX);
    exo_device_list_assign_ids(ret);
    return 0;
}
