/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a node has to compute with: the device data model shared by detection (detect.h),
 * scoring (score.h), placement profiles (profile.h), telemetry (telemetry.h) and the API.
 *
 * One struct exo_device is one piece of hardware, however many APIs can see it. Probes (CPU via
 * hwloc, NVIDIA via CUDA and NVML, OpenCL, Vulkan, AMD/Intel via sysfs) each report what they
 * see and exo_device_list_merge() folds a report into an existing device when both name the same
 * hardware: the same UUID, or the same PCI address. Software devices that run on the host CPU
 * (PoCL's OpenCL CPU device, Mesa's lavapipe Vulkan device) are the CPU seen through another
 * API, so they fold into the CPU device instead of appearing as devices of their own: counting
 * them separately would count the same cores and the same memory two or three times over when
 * placement adds up a node's capacity. They stay visible as bindings of the CPU device.
 *
 * Ids are "cpu0" for the host CPU (all packages together: placement treats the host as one
 * device), then "gpu0", "gpu1", ... ordered by PCI address, then UUID, then name, so the same
 * hardware gets the same ids after a restart. exo_device_list_assign_ids() does this once all
 * probes have run.
 *
 * JSON shape of exo_device_list_to_json(), served as the "devices" member of
 * GET /api/v1/devices (the daemon adds "node" and, per device, "score" from score.h):
 *
 *   [{"id": "gpu0", "kind": "gpu", "vendor": "NVIDIA", "name": "NVIDIA H100 80GB HBM3",
 *     "uuid": "GPU-6f1c...-..." | null, "pci": "0000:65:00.0" | null,
 *     "memory": {"total": 85899345920, "free": 84... | null, "shared": false},
 *     "compute_units": 132, "threads": 0 | null, "packages": null, "numa_nodes": null,
 *     "caches": {"l1d": 49152, "l2": 2097152, "l3": 33554432} | null,
 *     "clock_mhz": 1980 | null, "clock_max_mhz": 1980 | null, "mem_clock_mhz": 2619 | null,
 *     "compute_capability": "9.0" | null, "pcie": {"gen": 5, "width": 16} | null,
 *     "subgroup_size": 32 | null, "fp16": true, "features": ["avx2", "fma", ...],
 *     "isa": "avx512" | null,
 *     "apis": [{"api": "cuda", "index": 0, "name": "...", "driver": "12.4"}, ...],
 *     "backends": ["cpu"]}]
 *
 * Sizes are bytes, clocks MHz. Unknown numbers are null rather than 0. "apis" lists every API
 * that sees the device (with that API's own index and driver string); "backends" lists those
 * exo can compute with today (only "cpu" until the GPU backends land).
 */
#ifndef EXO_DEVICE_DEVICE_H
#define EXO_DEVICE_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/error.h"

#define EXO_DEVICE_MAX         32 /* devices one node reports; more are dropped (and counted) */
#define EXO_DEVICE_ID_SIZE     16
#define EXO_DEVICE_NAME_SIZE   128
#define EXO_DEVICE_VENDOR_SIZE 32
#define EXO_DEVICE_DRIVER_SIZE 64
#define EXO_DEVICE_PCI_SIZE    16 /* "dddd:bb:dd.f" and the NUL */

enum exo_device_kind {
    EXO_DEVICE_KIND_CPU = 0,
    EXO_DEVICE_KIND_GPU,
    EXO_DEVICE_KIND_ACCEL, /* OpenCL accelerators and other devices that are neither */
};

/* The APIs a device can be seen through, in the order their names are printed. */
enum exo_device_api {
    EXO_DEVICE_API_CPU = 0, /* the host CPU itself, through hwloc and /proc */
    EXO_DEVICE_API_CUDA,
    EXO_DEVICE_API_NVML,
    EXO_DEVICE_API_VULKAN,
    EXO_DEVICE_API_OPENCL,
    EXO_DEVICE_API_SYSFS, /* /sys/class/drm: AMD and Intel GPUs */
    EXO_DEVICE_API_COUNT,
};

/* ISA and numeric features (bits of exo_device.features). */
enum exo_device_feature {
    EXO_DEVICE_FEAT_SSE3 = 1u << 0,
    EXO_DEVICE_FEAT_SSSE3 = 1u << 1,
    EXO_DEVICE_FEAT_AVX = 1u << 2,
    EXO_DEVICE_FEAT_AVX2 = 1u << 3,
    EXO_DEVICE_FEAT_FMA = 1u << 4,
    EXO_DEVICE_FEAT_F16C = 1u << 5,
    EXO_DEVICE_FEAT_AVX512F = 1u << 6,
    EXO_DEVICE_FEAT_AVX512BW = 1u << 7,
    EXO_DEVICE_FEAT_AVX512VL = 1u << 8,
    EXO_DEVICE_FEAT_AVX512VNNI = 1u << 9,
    EXO_DEVICE_FEAT_AVX512BF16 = 1u << 10,
    EXO_DEVICE_FEAT_AVXVNNI = 1u << 11,
    EXO_DEVICE_FEAT_AMX = 1u << 12,
    EXO_DEVICE_FEAT_NEON = 1u << 13,
    EXO_DEVICE_FEAT_DOTPROD = 1u << 14,
    EXO_DEVICE_FEAT_FP16 = 1u << 15, /* half-precision arithmetic (GPUs, ARMv8.2 fp16) */
};

/* One API's view of a device. */
struct exo_device_binding {
    enum exo_device_api api;
    int32_t index;                       /* the API's own device index (-1 when it has none) */
    char name[EXO_DEVICE_NAME_SIZE];     /* what the API calls the device */
    char driver[EXO_DEVICE_DRIVER_SIZE]; /* driver or platform version string, may be empty */
};

struct exo_device {
    char id[EXO_DEVICE_ID_SIZE]; /* "cpu0", "gpu0"; empty until exo_device_list_assign_ids */
    enum exo_device_kind kind;
    char vendor[EXO_DEVICE_VENDOR_SIZE];
    char name[EXO_DEVICE_NAME_SIZE];
    uint8_t uuid[16];
    bool has_uuid;
    char pci[EXO_DEVICE_PCI_SIZE]; /* canonical "dddd:bb:dd.f", or empty */

    uint64_t mem_total; /* bytes: VRAM, or for the CPU the system's RAM; 0 unknown */
    uint64_t mem_free;  /* bytes available now (MemAvailable for the CPU); 0 unknown */
    bool mem_shared;    /* the memory is host RAM (the CPU, integrated and software GPUs) */

    uint32_t compute_units;                 /* CPU: physical cores; GPU: SMs or compute units */
    uint32_t threads;                       /* CPU: hardware threads */
    uint32_t packages;                      /* CPU: sockets */
    uint32_t numa_nodes;                    /* CPU */
    uint64_t cache_l1d, cache_l2, cache_l3; /* CPU: bytes of one instance; 0 unknown */

    uint32_t clock_mhz; /* current (or base) core clock */
    uint32_t clock_max_mhz;
    uint32_t mem_clock_mhz;
    uint8_t cc_major, cc_minor; /* CUDA compute capability; 0.0 unknown */
    uint8_t pcie_gen, pcie_width;
    uint32_t subgroup_size; /* Vulkan subgroup / CUDA warp width */
    uint32_t features;      /* enum exo_device_feature bits */
    char isa[16];           /* CPU: the kernel ISA the engine dispatches to here */
    char sysfs_card[16];    /* "card0" when /sys/class/drm knows it (telemetry reads it) */

    struct exo_device_binding bindings[EXO_DEVICE_API_COUNT];
    uint32_t n_bindings;
    uint32_t backends; /* bit (1 << api) for every API exo can compute with on it now */
};

struct exo_device_list {
    struct exo_device v[EXO_DEVICE_MAX];
    size_t n;
    uint32_t dropped; /* reports that did not fit */
};

/* "cpu", "cuda", "nvml", "vulkan", "opencl", "sysfs"; "?" for anything else. Static. */
const char *exo_device_api_name(enum exo_device_api api);
/* "cpu", "gpu", "accel". Static. */
const char *exo_device_kind_name(enum exo_device_kind kind);

/* A device with no values yet (everything unknown), reported through `api` as index `index`. */
void exo_device_init(struct exo_device *d, enum exo_device_kind kind, enum exo_device_api api,
                     int32_t index);

/* Add (or update) the binding for api on d. name and driver are copied; either may be NULL. */
void exo_device_bind(struct exo_device *d, enum exo_device_api api, int32_t index, const char *name,
                     const char *driver);

/* The binding d has for api, or NULL. Borrowed from d. */
const struct exo_device_binding *exo_device_binding(const struct exo_device *d,
                                                    enum exo_device_api api);

/* Canonical PCI address "dddd:bb:dd.f" from the forms drivers print ("0000:65:00.0",
 * "00000000:65:00.0", "65:00.0"). EXO_EFORMAT when text is not one. */
int exo_device_pci_parse(const char *text, char out[EXO_DEVICE_PCI_SIZE]);

/* 16 UUID bytes from the text forms "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (NVML),
 * "xxxxxxxx-xxxx-..." or 32 plain hex digits. EXO_EFORMAT otherwise. */
int exo_device_uuid_parse(const char *text, uint8_t out[16]);
/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (37 bytes with the NUL). */
void exo_device_uuid_format(const uint8_t uuid[16], char out[37]);

/* An empty list. */
void exo_device_list_init(struct exo_device_list *l);

/*
 * Fold `d` (borrowed) into the list: into the device with the same UUID or PCI address, or, for
 * a CPU-kind device, into the CPU device; otherwise append it. Merging fills what the existing
 * device does not know yet and adds d's bindings and backends; nothing already known is
 * overwritten, so the first probe to report a field wins (detect.c runs the most authoritative
 * probes first). Returns the index of the device d went to, or EXO_ENOSPC when the list is full
 * (counted in `dropped`).
 */
int exo_device_list_merge(struct exo_device_list *l, const struct exo_device *d);

/* Order the list (CPU first, then by PCI address, UUID, name) and give every device its id. */
void exo_device_list_assign_ids(struct exo_device_list *l);

/* The device with this id, or NULL. Borrowed from the list. */
const struct exo_device *exo_device_list_find(const struct exo_device_list *l, const char *id);

/* JSON for one device / the array for a list (shapes above). Owned by the caller (cJSON_Delete);
 * NULL when out of memory. */
cJSON *exo_device_to_json(const struct exo_device *d);
cJSON *exo_device_list_to_json(const struct exo_device_list *l);

enum exo_device_event {
    EXO_DEVICE_EVENT_APPEARED = 0,
    EXO_DEVICE_EVENT_DISAPPEARED,
    EXO_DEVICE_EVENT_CHANGED, /* total memory, bindings or backends differ */
};

/* "appeared", "disappeared", "changed". Static. */
const char *exo_device_event_name(enum exo_device_event ev);

/* Called once per difference; `d` is borrowed for the call (from `before` for DISAPPEARED, from
 * `after` otherwise). */
typedef void (*exo_device_event_cb)(void *ud, enum exo_device_event ev, const struct exo_device *d);

/* Compare two detections of the same node by device id and report what appeared, disappeared
 * or changed, for the API's server-sent events. Returns the number of events. */
int exo_device_list_diff(const struct exo_device_list *before, const struct exo_device_list *after,
                         exo_device_event_cb cb, void *ud);

#endif
