/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device data model: merging what several APIs report about one piece of hardware, stable
 * ids, JSON for the API, and the differences between two detections (see device.h).
 */
#include "device/device.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/json-int.h"

static const char *const api_names[EXO_DEVICE_API_COUNT] = {
    [EXO_DEVICE_API_CPU] = "cpu",       [EXO_DEVICE_API_CUDA] = "cuda",
    [EXO_DEVICE_API_NVML] = "nvml",     [EXO_DEVICE_API_VULKAN] = "vulkan",
    [EXO_DEVICE_API_OPENCL] = "opencl", [EXO_DEVICE_API_SYSFS] = "sysfs",
};

static const struct {
    uint32_t bit;
    const char *name;
} feature_names[] = {
    {EXO_DEVICE_FEAT_SSE3, "sse3"},
    {EXO_DEVICE_FEAT_SSSE3, "ssse3"},
    {EXO_DEVICE_FEAT_AVX, "avx"},
    {EXO_DEVICE_FEAT_AVX2, "avx2"},
    {EXO_DEVICE_FEAT_FMA, "fma"},
    {EXO_DEVICE_FEAT_F16C, "f16c"},
    {EXO_DEVICE_FEAT_AVX512F, "avx512f"},
    {EXO_DEVICE_FEAT_AVX512BW, "avx512bw"},
    {EXO_DEVICE_FEAT_AVX512VL, "avx512vl"},
    {EXO_DEVICE_FEAT_AVX512VNNI, "avx512vnni"},
    {EXO_DEVICE_FEAT_AVX512BF16, "avx512bf16"},
    {EXO_DEVICE_FEAT_AVXVNNI, "avxvnni"},
    {EXO_DEVICE_FEAT_AMX, "amx"},
    {EXO_DEVICE_FEAT_NEON, "neon"},
    {EXO_DEVICE_FEAT_DOTPROD, "dotprod"},
    {EXO_DEVICE_FEAT_FP16, "fp16"},
};

const char *exo_device_api_name(enum exo_device_api api)
{
    return (unsigned)api < EXO_DEVICE_API_COUNT ? api_names[api] : "?";
}

const char *exo_device_kind_name(enum exo_device_kind kind)
{
    switch (kind) {
    case EXO_DEVICE_KIND_CPU:
        return "cpu";
    case EXO_DEVICE_KIND_GPU:
        return "gpu";
    case EXO_DEVICE_KIND_ACCEL:
        return "accel";
    }
    return "?";
}

const char *exo_device_event_name(enum exo_device_event ev)
{
    switch (ev) {
    case EXO_DEVICE_EVENT_APPEARED:
        return "appeared";
    case EXO_DEVICE_EVENT_DISAPPEARED:
        return "disappeared";
    case EXO_DEVICE_EVENT_CHANGED:
        return "changed";
    }
    return "?";
}

void exo_device_init(struct exo_device *d, enum exo_device_kind kind, enum exo_device_api api,
                     int32_t index)
{
    memset(d, 0, sizeof(*d));
    d->kind = kind;
    exo_device_bind(d, api, index, NULL, NULL);
}

void exo_device_bind(struct exo_device *d, enum exo_device_api api, int32_t index, const char *name,
                     const char *driver)
{
    struct exo_device_binding *b = (struct exo_device_binding *)exo_device_binding(d, api);
    if (!b) {
        if (d->n_bindings >= EXO_DEVICE_API_COUNT)
            return;
        b = &d->bindings[d->n_bindings++];
        memset(b, 0, sizeof(*b));
        b->api = api;
    }
    b->index = index;
    if (name)
        snprintf(b->name, sizeof(b->name), "%s", name);
    if (driver)
        snprintf(b->driver, sizeof(b->driver), "%s", driver);
}

const struct exo_device_binding *exo_device_binding(const struct exo_device *d,
                                                    enum exo_device_api api)
{
    for (uint32_t i = 0; i < d->n_bindings && i < EXO_DEVICE_API_COUNT; i++)
        if (d->bindings[i].api == api)
            return &d->bindings[i];
    return NULL;
}

/* Up to max_digits hex digits at *p, advancing it; -1 when there are none or too many. */
static long hex_field(const char **p, int max_digits)
{
    long v = 0;
    int n = 0;
    while (isxdigit((unsigned char)**p)) {
        if (++n > max_digits)
            return -1;
        int c = tolower((unsigned char)**p);
        v = v * 16 + (c <= '9' ? c - '0' : c - 'a' + 10);
        (*p)++;
    }
    return n ? v : -1;
}

int exo_device_pci_parse(const char *text, char out[EXO_DEVICE_PCI_SIZE])
{
    const char *p = text;
    long f1 = hex_field(&p, 8), domain = 0, bus, dev, fn;
    if (f1 < 0 || *p != ':')
        return EXO_EFORMAT;
    p++;
    long f2 = hex_field(&p, 2);
    if (f2 < 0)
        return EXO_EFORMAT;
    if (*p == ':') {
        /* domain:bus:dev.fn */
        p++;
        domain = f1;
        bus = f2;
        dev = hex_field(&p, 2);
    } else {
        /* bus:dev.fn */
        if (f1 > 0xff)
            return EXO_EFORMAT;
        bus = f1;
        dev = f2;
    }
    if (dev < 0 || dev > 0x1f || *p != '.')
        return EXO_EFORMAT;
    p++;
    fn = hex_field(&p, 1);
    if (fn < 0 || fn > 7 || *p != '\0' || domain > 0xffff)
        return EXO_EFORMAT;
    snprintf(out, EXO_DEVICE_PCI_SIZE, "%04x:%02x:%02x.%x", (unsigned)domain & 0xffff,
             (unsigned)bus & 0xff, (unsigned)dev & 0x1f, (unsigned)fn & 7);
    return 0;
}

int exo_device_uuid_parse(const char *text, uint8_t out[16])
{
    const char *p = text;
    if (strncmp(p, "GPU-", 4) == 0 || strncmp(p, "MIG-", 4) == 0)
        p += 4;
    uint8_t tmp[16];
    int n = 0;
    for (; *p && n < 32; p++) {
        if (*p == '-')
            continue;
        if (!isxdigit((unsigned char)*p))
            return EXO_EFORMAT;
        int c = tolower((unsigned char)*p);
        int v = c <= '9' ? c - '0' : c - 'a' + 10;
        if (n % 2 == 0)
            tmp[n / 2] = (uint8_t)(v << 4);
        else
            tmp[n / 2] |= (uint8_t)v;
        n++;
    }
    if (n != 32 || *p != '\0')
        return EXO_EFORMAT;
    memcpy(out, tmp, 16);
    return 0;
}

void exo_device_uuid_format(const uint8_t uuid[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[uuid[i] >> 4];
        out[o++] = hex[uuid[i] & 15];
    }
    out[o] = '\0';
}

void exo_device_list_init(struct exo_device_list *l)
{
    memset(l, 0, sizeof(*l));
}

static bool same_hardware(const struct exo_device *a, const struct exo_device *b)
{
    if (a->kind == EXO_DEVICE_KIND_CPU || b->kind == EXO_DEVICE_KIND_CPU)
        return a->kind == b->kind;
    /* A PCI function is one device whatever UUIDs its APIs make up, so the address decides
     * when both know it; the UUID otherwise. */
    if (a->pci[0] && b->pci[0])
        return strcmp(a->pci, b->pci) == 0;
    if (a->has_uuid && b->has_uuid)
        return memcmp(a->uuid, b->uuid, 16) == 0;
    return false;
}

#define FILL(field)                  \
    do {                             \
        if (!dst->field)             \
            dst->field = src->field; \
    } while (0)
#define FILL_STR(field)                                         \
    do {                                                        \
        if (!dst->field[0])                                     \
            memcpy(dst->field, src->field, sizeof(dst->field)); \
    } while (0)

static void add_bindings(struct exo_device *dst, const struct exo_device *src)
{
    dst->backends |= src->backends;
    for (uint32_t i = 0; i < src->n_bindings && i < EXO_DEVICE_API_COUNT; i++) {
        const struct exo_device_binding *b = &src->bindings[i];
        if (!exo_device_binding(dst, b->api))
            exo_device_bind(dst, b->api, b->index, b->name, b->driver);
    }
}

static void fold(struct exo_device *dst, const struct exo_device *src)
{
    /* A CPU-kind report from another API (PoCL, lavapipe) describes a software device on the
     * host: its memory is the host's, already counted by the CPU probe, and what it says about
     * clocks, subgroups or fp16 describes the emulation, not the cores. Only its binding is
     * news. */
    if (dst->kind == EXO_DEVICE_KIND_CPU) {
        add_bindings(dst, src);
        return;
    }
    FILL_STR(vendor);
    FILL_STR(name);
    if (!dst->has_uuid && src->has_uuid) {
        memcpy(dst->uuid, src->uuid, 16);
        dst->has_uuid = true;
    }
    FILL_STR(pci);
    FILL(mem_total);
    FILL(mem_free);
    dst->mem_shared = dst->mem_shared || src->mem_shared;
    dst->features |= src->features;
    FILL(compute_units);
    FILL(threads);
    FILL(packages);
    FILL(numa_nodes);
    FILL(cache_l1d);
    FILL(cache_l2);
    FILL(cache_l3);
    FILL(clock_mhz);
    FILL(clock_max_mhz);
    FILL(mem_clock_mhz);
    if (!dst->cc_major) {
        dst->cc_major = src->cc_major;
        dst->cc_minor = src->cc_minor;
    }
    FILL(pcie_gen);
    FILL(pcie_width);
    FILL(subgroup_size);
    FILL_STR(isa);
    FILL_STR(sysfs_card);
    add_bindings(dst, src);
}

#undef FILL
#undef FILL_STR

int exo_device_list_merge(struct exo_device_list *l, const struct exo_device *d)
{
    for (size_t i = 0; i < l->n; i++) {
        if (same_hardware(&l->v[i], d)) {
            fold(&l->v[i], d);
            return (int)i;
        }
    }
    if (l->n >= EXO_DEVICE_MAX) {
        l->dropped++;
        return EXO_ENOSPC;
    }
    l->v[l->n] = *d;
    return (int)l->n++;
}

static int compare_devices(const void *pa, const void *pb)
{
    const struct exo_device *a = pa, *b = pb;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    /* Devices with a PCI address come first, in address order. */
    if (!a->pci[0] != !b->pci[0])
        return a->pci[0] ? -1 : 1;
    int c = strcmp(a->pci, b->pci);
    if (c)
        return c;
    if (a->has_uuid != b->has_uuid)
        return a->has_uuid ? -1 : 1;
    c = memcmp(a->uuid, b->uuid, 16);
    if (c)
        return c;
    return strcmp(a->name, b->name);
}

void exo_device_list_assign_ids(struct exo_device_list *l)
{
    qsort(l->v, l->n, sizeof(l->v[0]), compare_devices);
    unsigned counts[3] = {0, 0, 0};
    for (size_t i = 0; i < l->n; i++) {
        struct exo_device *d = &l->v[i];
        unsigned k = (unsigned)d->kind < 3 ? (unsigned)d->kind : 2;
        snprintf(d->id, sizeof(d->id), "%s%u", exo_device_kind_name(d->kind), counts[k]++);
    }
}

const struct exo_device *exo_device_list_find(const struct exo_device_list *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].id, id) == 0)
            return &l->v[i];
    return NULL;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

/* A number, or null when unknown (zero). */
static bool add_num(cJSON *o, const char *key, double v)
{
    return (v != 0 ? cJSON_AddNumberToObject(o, key, v) : cJSON_AddNullToObject(o, key)) != NULL;
}

static bool add_str_or_null(cJSON *o, const char *key, const char *s)
{
    return (s[0] ? cJSON_AddStringToObject(o, key, s) : cJSON_AddNullToObject(o, key)) != NULL;
}

static bool add_memory(cJSON *o, const struct exo_device *d)
{
    cJSON *m = cJSON_AddObjectToObject(o, "memory");
    return m && add_num(m, "total", (double)d->mem_total) &&
           add_num(m, "free", (double)d->mem_free) &&
           cJSON_AddBoolToObject(m, "shared", d->mem_shared);
}

static bool add_caches(cJSON *o, const struct exo_device *d)
{
    if (!d->cache_l1d && !d->cache_l2 && !d->cache_l3)
        return cJSON_AddNullToObject(o, "caches") != NULL;
    cJSON *c = cJSON_AddObjectToObject(o, "caches");
    return c && add_num(c, "l1d", (double)d->cache_l1d) && add_num(c, "l2", (double)d->cache_l2) &&
           add_num(c, "l3", (double)d->cache_l3);
}

static bool add_lists(cJSON *o, const struct exo_device *d)
{
    cJSON *feats = cJSON_AddArrayToObject(o, "features");
    if (!feats)
        return false;
    for (size_t i = 0; i < sizeof(feature_names) / sizeof(feature_names[0]); i++) {
        if (!(d->features & feature_names[i].bit))
            continue;
        if (!exo_json_append_string(feats, feature_names[i].name))
            return false;
    }
    cJSON *apis = cJSON_AddArrayToObject(o, "apis");
    if (!apis)
        return false;
    for (uint32_t i = 0; i < d->n_bindings && i < EXO_DEVICE_API_COUNT; i++) {
        const struct exo_device_binding *b = &d->bindings[i];
        cJSON *a = exo_json_append_object(apis);
        if (!a || !cJSON_AddStringToObject(a, "api", exo_device_api_name(b->api)) ||
            !(b->index >= 0 ? cJSON_AddNumberToObject(a, "index", b->index)
                            : cJSON_AddNullToObject(a, "index")) ||
            !add_str_or_null(a, "name", b->name) || !add_str_or_null(a, "driver", b->driver))
            return false;
    }
    cJSON *backends = cJSON_AddArrayToObject(o, "backends");
    if (!backends)
        return false;
    for (int api = 0; api < EXO_DEVICE_API_COUNT; api++) {
        if (!(d->backends & (1u << api)))
            continue;
        if (!exo_json_append_string(backends, exo_device_api_name((enum exo_device_api)api)))
            return false;
    }
    return true;
}

static bool add_gpu_fields(cJSON *o, const struct exo_device *d)
{
    char text[40];
    if (d->cc_major) {
        snprintf(text, sizeof(text), "%u.%u", d->cc_major, d->cc_minor);
        if (!cJSON_AddStringToObject(o, "compute_capability", text))
            return false;
    } else if (!cJSON_AddNullToObject(o, "compute_capability")) {
        return false;
    }
    if (d->pcie_gen || d->pcie_width) {
        cJSON *p = cJSON_AddObjectToObject(o, "pcie");
        if (!p || !add_num(p, "gen", d->pcie_gen) || !add_num(p, "width", d->pcie_width))
            return false;
    } else if (!cJSON_AddNullToObject(o, "pcie")) {
        return false;
    }
    return add_num(o, "subgroup_size", d->subgroup_size) &&
           cJSON_AddBoolToObject(o, "fp16", (d->features & EXO_DEVICE_FEAT_FP16) != 0);
}

cJSON *exo_device_to_json(const struct exo_device *d)
{
    char uuid[37];
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    if (d->has_uuid)
        exo_device_uuid_format(d->uuid, uuid);
    else
        uuid[0] = '\0';
    bool ok = cJSON_AddStringToObject(o, "id", d->id) &&
              cJSON_AddStringToObject(o, "kind", exo_device_kind_name(d->kind)) &&
              add_str_or_null(o, "vendor", d->vendor) && add_str_or_null(o, "name", d->name) &&
              add_str_or_null(o, "uuid", uuid) && add_str_or_null(o, "pci", d->pci) &&
              add_memory(o, d) && add_num(o, "compute_units", d->compute_units) &&
              add_num(o, "threads", d->threads) && add_num(o, "packages", d->packages) &&
              add_num(o, "numa_nodes", d->numa_nodes) && add_caches(o, d) &&
              add_num(o, "clock_mhz", d->clock_mhz) &&
              add_num(o, "clock_max_mhz", d->clock_max_mhz) &&
              add_num(o, "mem_clock_mhz", d->mem_clock_mhz) && add_gpu_fields(o, d) &&
              add_str_or_null(o, "isa", d->isa) && add_lists(o, d);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *exo_device_list_to_json(const struct exo_device_list *l)
{
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return NULL;
    for (size_t i = 0; i < l->n; i++) {
        cJSON *d = exo_device_to_json(&l->v[i]);
        if (!d || !cJSON_AddItemToArray(arr, d)) {
            cJSON_Delete(d);
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

/* ---- differences --------------------------------------------------------------------------- */

static bool changed(const struct exo_device *a, const struct exo_device *b)
{
    if (a->mem_total != b->mem_total || a->backends != b->backends ||
        a->n_bindings != b->n_bindings || strcmp(a->name, b->name) != 0)
        return true;
    for (uint32_t i = 0; i < a->n_bindings && i < EXO_DEVICE_API_COUNT; i++)
        if (!exo_device_binding(b, a->bindings[i].api))
            return true;
    return false;
}

int exo_device_list_diff(const struct exo_device_list *before, const struct exo_device_list *after,
                         exo_device_event_cb cb, void *ud)
{
    int n = 0;
    for (size_t i = 0; i < before->n; i++) {
        if (!exo_device_list_find(after, before->v[i].id)) {
            cb(ud, EXO_DEVICE_EVENT_DISAPPEARED, &before->v[i]);
            n++;
        }
    }
    for (size_t i = 0; i < after->n; i++) {
        const struct exo_device *old = exo_device_list_find(before, after->v[i].id);
        if (!old) {
            cb(ud, EXO_DEVICE_EVENT_APPEARED, &after->v[i]);
            n++;
        } else if (changed(old, &after->v[i])) {
            cb(ud, EXO_DEVICE_EVENT_CHANGED, &after->v[i]);
            n++;
        }
    }
    return n;
}
