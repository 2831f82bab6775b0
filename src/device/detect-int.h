/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the probe files (probe-*.c) share with detect.c. Each probe reports what it finds with
 * exo_device_list_merge() and returns 0, or a negative code when it could not run at all (it
 * has logged why, once, at info level). A probe never fails the detection as a whole.
 */
#ifndef EXO_DEVICE_DETECT_INT_H
#define EXO_DEVICE_DETECT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device/detect.h"
#include "device/device.h"

int exo_probe_cpu(const struct exo_detect_options *o, struct exo_device_list *l);
int exo_probe_nvidia(const struct exo_detect_options *o, struct exo_device_list *l);
int exo_probe_vulkan(const struct exo_detect_options *o, struct exo_device_list *l);
int exo_probe_opencl(const struct exo_detect_options *o, struct exo_device_list *l);
int exo_probe_sysfs(const struct exo_detect_options *o, struct exo_device_list *l);

/* dlopen `name` (RTLD_NOW | RTLD_LOCAL); NULL with the reason in why when it cannot be loaded. */
void *exo_probe_dlopen(const char *name, char *why, size_t why_len);

/* Resolve `n` symbols named in names[] into the function pointers at fns[] (each a pointer to a
 * function pointer). Returns the name of the first one missing, or NULL when all were found. */
const char *exo_probe_dlsyms(void *lib, const char *const *names, void **const *fns, size_t n);

/* "NVIDIA", "AMD", "Intel", ... for a PCI (or Khronos) vendor id; "" when unknown. Static. */
const char *exo_probe_vendor_name(uint32_t pci_vendor);

/* Copy the text at src (at most src_size bytes; it need not be NUL-terminated) into dst of size
 * bytes, truncated to fit and always NUL-terminated. */
void exo_probe_copy(char *dst, size_t size, const char *src, size_t src_size);

/* a, sep and b into dst (size bytes), truncated to fit; just the non-empty one when a or b is
 * empty. */
void exo_probe_join(char *dst, size_t size, const char *a, const char *sep, const char *b);

/* True when root names this machine's own file system ("/" or NULL). */
bool exo_probe_root_is_host(const char *root);

#endif
