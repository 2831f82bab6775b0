/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AMD and Intel GPUs through the kernel's DRM sysfs (/sys/class/drm/cardN/...), where neither
 * NVML nor a vendor library is needed: the PCI identity of each card, amdgpu's VRAM figures and
 * busy percentage, i915's GPU frequency, and the card's hwmon sensors (temperature, power or
 * energy, clocks). Detection reads the fixed facts (probe-sysfs.c); telemetry samples the
 * changing ones with exo_sysfs_gpu_sample(). Every file is read through procfs.h's bounded
 * reader under a root directory, so tests run against recorded card trees.
 *
 * Files used (values as the kernel documents them):
 *   device/vendor, device/device          "0x1002": PCI ids
 *   device/uevent                         DRIVER=amdgpu, PCI_SLOT_NAME=0000:03:00.0
 *   device/product_name                   (amdgpu, some boards) marketing name
 *   device/mem_info_vram_total, _used     (amdgpu) bytes
 *   device/gpu_busy_percent               (amdgpu) 0..100
 *   device/current_link_speed, _width     "16.0 GT/s PCIe", "16"
 *   gt_cur_freq_mhz, gt_max_freq_mhz      (i915, in the card directory) MHz
 *   device/hwmon/hwmonN/temp1_input       millidegrees Celsius
 *   device/hwmon/hwmonN/power1_average    microwatts (amdgpu); power1_input on newer kernels
 *   device/hwmon/hwmonN/energy1_input     microjoules (i915 discrete): power from two readings
 *   device/hwmon/hwmonN/freq1_input       Hz, core clock (amdgpu sclk); freq2_input memory
 */
#ifndef EXO_DEVICE_SYSFS_H
#define EXO_DEVICE_SYSFS_H

#include <stdint.h>

#include "device/device.h"
#include "device/telemetry.h"

#define EXO_SYSFS_MAX_CARDS 64

/* One card's sampling state. */
struct exo_sysfs_gpu {
    char card[16];      /* "card0" */
    char hwmon[32];     /* "hwmon3", or "" when the card has none */
    uint64_t energy_uj; /* the previous energy1_input reading, for power from energy */
    uint64_t energy_ns; /* when it was read (monotonic); 0 before the first */
};

/* The names of the DRM cards under root (at most max, "cardN" only: connectors and render
 * nodes are skipped), in numeric order. Returns how many, or EXO_ENOENT without a drm class. */
int exo_sysfs_list_cards(const char *root, char (*names)[16], int max);

/* Describe card `card` as a device bound to sysfs. EXO_ENOENT when it is not a PCI device. */
int exo_sysfs_describe(const char *root, const char *card, struct exo_device *ret);

/* Prepare to sample `card` (finds its hwmon directory). */
void exo_sysfs_gpu_init(const char *root, const char *card, struct exo_sysfs_gpu *ret);

/* Sample what the card's files give now into *ret (id left as is). mono_ns: a monotonic time,
 * for power computed from energy. A card whose directory has gone sets lost. */
void exo_sysfs_gpu_sample(const char *root, struct exo_sysfs_gpu *g, uint64_t mono_ns,
                          struct exo_gpu_sample *ret);

#endif
