/* SPDX-License-Identifier: Apache-2.0 */
/*
 * NVIDIA's management library (NVML), reached through dlopen so that exo needs neither the
 * driver nor its headers to build or run. Detection reads each GPU's fixed facts through it;
 * telemetry samples use, memory, temperature, power and clocks. The few NVML types used are
 * declared in nvml.c from NVIDIA's published API reference.
 *
 * Threads: NVML itself is thread-safe; one struct exo_nvml is used by one thread at a time.
 */
#ifndef EXO_DEVICE_NVML_H
#define EXO_DEVICE_NVML_H

#include <stddef.h>

#include "device/device.h"
#include "device/telemetry.h"

struct exo_nvml;

/* Load `library` (NULL: "libnvidia-ml.so.1") and initialise NVML. *ret owned by the caller.
 * EXO_ENODEV with the reason in why when the library is missing or the driver is not loaded. */
int exo_nvml_open(const char *library, struct exo_nvml **ret, char *why, size_t why_len);
void exo_nvml_close(struct exo_nvml *n);

unsigned exo_nvml_count(const struct exo_nvml *n);

/* The fixed facts of GPU `index` (name, UUID, PCI address, memory, clocks, compute capability,
 * PCIe link) as a device bound to NVML. */
int exo_nvml_describe(struct exo_nvml *n, unsigned index, struct exo_device *ret);

/* The index of the GPU at PCI address pci (canonical form), or EXO_ENOENT. */
int exo_nvml_find(struct exo_nvml *n, const char *pci, unsigned *ret_index);

/* Sample GPU `index` into *ret (id left as is): every field NVML answers sets its has-bit; a
 * GPU that has fallen off the bus or lost its driver sets lost. */
void exo_nvml_sample(struct exo_nvml *n, unsigned index, struct exo_gpu_sample *ret);

#endif
