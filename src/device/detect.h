/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Detection: what devices this machine has, through every API that can see them (see device.h
 * for the data model and the merge rules, docs/internals/devices.md for the design).
 *
 * Probes run in order of authority, each optional at run time: the CPU (hwloc, /proc), NVIDIA
 * (NVML and the CUDA driver), Vulkan, OpenCL, then AMD and Intel GPUs through sysfs. Every GPU
 * API is reached with dlopen, so a machine without a driver still runs exo: a missing library
 * or a driver that fails to initialise logs one line at info level and its probe is skipped.
 *
 * Threads: detection blocks (driver initialisation can take a second: PoCL and lavapipe
 * compile nothing here but load LLVM), so the daemon runs it off the loop thread (uv_queue_work)
 * and hands the list back. It may run again later to notice devices that come and go.
 */
#ifndef EXO_DEVICE_DETECT_H
#define EXO_DEVICE_DETECT_H

#include <stdint.h>

#include "core/error.h"
#include "device/device.h"

struct exo_detect_options {
    const char *root;      /* where /proc and /sys are read; NULL or "/" for this machine */
    const char *hwloc_xml; /* (optional) an hwloc XML topology to use instead of this machine's */
    uint32_t skip;         /* bits (1u << enum exo_device_api) of probes not to run */
    /* Libraries to dlopen; NULL means the driver's usual soname. */
    const char *cuda_library;   /* "libcuda.so.1" */
    const char *nvml_library;   /* "libnvidia-ml.so.1" */
    const char *opencl_library; /* "libOpenCL.so.1" (the ICD loader) */
    const char *vulkan_library; /* "libvulkan.so.1" (the loader) */
};

/*
 * Detect this machine's devices into *ret (overwritten; owned by the caller). opts may be NULL
 * for the defaults. The CPU device is always there (when hwloc and /proc are unreadable it is
 * filled from what the process can see); any other probe failing only leaves its devices out.
 * Returns 0, or EXO_ENOMEM.
 */
int exo_device_detect(const struct exo_detect_options *opts, struct exo_device_list *ret);

#endif
