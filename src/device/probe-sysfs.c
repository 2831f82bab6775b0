/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sysfs probe and sampler for AMD and Intel GPUs (see sysfs.h for the files it reads). NVIDIA
 * cards are listed here too: they get a sysfs binding by PCI address, but their figures come
 * from NVML.
 */
#include "device/sysfs.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "device/detect-int.h"
#include "device/procfs.h"

#define PCI_VENDOR_INTEL 0x8086

/* A path under the card's directory: "/sys/class/drm/<card>/<rel>". */
static void card_path(char *out, size_t size, const char *card, const char *rel)
{
    snprintf(out, size, "/sys/class/drm/%s/%s", card, rel);
}

static int card_u64(const char *root, const char *card, const char *rel, uint64_t *ret)
{
    char path[256];
    card_path(path, sizeof(path), card, rel);
    return exo_procfs_read_u64(root, path, ret);
}

static int hwmon_u64(const char *root, const struct exo_sysfs_gpu *g, const char *file,
                     uint64_t *ret)
{
    if (!g->hwmon[0])
        return EXO_ENOENT;
    char rel[96];
    snprintf(rel, sizeof(rel), "device/hwmon/%s/%s", g->hwmon, file);
    return card_u64(root, g->card, rel, ret);
}

/* Whether name is "card" followed by digits only; *ret_n the number. */
static bool is_card(const char *name, long *ret_n)
{
    if (strncmp(name, "card", 4) != 0 || !name[4] || strlen(name) > 10)
        return false;
    char *end;
    long n = strtol(name + 4, &end, 10);
    if (*end || n < 0)
        return false;
    *ret_n = n;
    return true;
}

static int compare_cards(const void *a, const void *b)
{
    long x = 0, y = 0;
    is_card(a, &x);
    is_card(b, &y);
    return x < y ? -1 : x > y;
}

int exo_sysfs_list_cards(const char *root, char (*names)[16], int max)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/sys/class/drm", exo_probe_root_is_host(root) ? "" : root);
    DIR *d = opendir(dir);
    if (!d)
        return EXO_ENOENT;
    int n = 0;
    struct dirent *e;
    /* A directory with absurdly many entries is not read to its end. */
    for (int seen = 0; n < max && seen < 4096 && (e = readdir(d)); seen++) {
        long num;
        if (is_card(e->d_name, &num))
            exo_probe_copy(names[n++], sizeof(names[0]), e->d_name, sizeof(e->d_name));
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof(names[0]), compare_cards);
    return n;
}

/* The first "hwmonN" under the card's device/hwmon, or "". */
static void find_hwmon(const char *root, const char *card, char *out, size_t size)
{
    char dir[4096];
    out[0] = '\0';
    snprintf(dir, sizeof(dir), "%s/sys/class/drm/%s/device/hwmon",
             exo_probe_root_is_host(root) ? "" : root, card);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    for (int seen = 0; seen < 256 && (e = readdir(d)); seen++) {
        if (strncmp(e->d_name, "hwmon", 5) == 0 && e->d_name[5]) {
            exo_probe_copy(out, size, e->d_name, sizeof(e->d_name));
            break;
        }
    }
    closedir(d);
}

/* DRIVER= and PCI_SLOT_NAME= from device/uevent. */
static void read_uevent(const char *root, const char *card, char *driver, size_t driver_size,
                        char *slot, size_t slot_size)
{
    char path[256];
    struct exo_buf b;
    driver[0] = slot[0] = '\0';
    card_path(path, sizeof(path), card, "device/uevent");
    exo_buf_init(&b, 0);
    if (exo_procfs_read(root, path, EXO_PROCFS_CAP_SMALL, &b, NULL) == 0) {
        char *save = NULL;
        for (char *line = strtok_r((char *)b.data, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
            if (strncmp(line, "DRIVER=", 7) == 0)
                snprintf(driver, driver_size, "%s", line + 7);
            else if (strncmp(line, "PCI_SLOT_NAME=", 14) == 0)
                snprintf(slot, slot_size, "%s", line + 14);
        }
    }
    exo_buf_free(&b);
}

/* PCIe generation from a link speed such as "16.0 GT/s PCIe"; 0 when unknown. */
static uint8_t pcie_gen(const char *speed)
{
    static const struct {
        const char *prefix;
        uint8_t gen;
    } gens[] = {{"2.5 ", 1}, {"5.0 ", 2}, {"8.0 ", 3}, {"16.0 ", 4}, {"32.0 ", 5}, {"64.0 ", 6}};
    for (size_t i = 0; i < sizeof(gens) / sizeof(gens[0]); i++)
        if (strncmp(speed, gens[i].prefix, strlen(gens[i].prefix)) == 0)
            return gens[i].gen;
    return 0;
}

int exo_sysfs_describe(const char *root, const char *card, struct exo_device *ret)
{
    uint64_t vendor = 0, device = 0, v;
    if (card_u64(root, card, "device/vendor", &vendor) < 0 || vendor > 0xffff)
        return EXO_ENOENT;
    if (card_u64(root, card, "device/device", &device) < 0 || device > 0xffff)
        device = 0;
    char driver[64], slot[64], path[256], text[EXO_DEVICE_NAME_SIZE];
    read_uevent(root, card, driver, sizeof(driver), slot, sizeof(slot));

    exo_device_init(ret, EXO_DEVICE_KIND_GPU, EXO_DEVICE_API_SYSFS, -1);
    snprintf(ret->sysfs_card, sizeof(ret->sysfs_card), "%s", card);
    const char *vname = exo_probe_vendor_name((uint32_t)vendor);
    snprintf(ret->vendor, sizeof(ret->vendor), "%s", vname[0] ? vname : "unknown");
    if (exo_device_pci_parse(slot, ret->pci) < 0)
        ret->pci[0] = '\0';
    card_path(path, sizeof(path), card, "device/product_name");
    if (exo_procfs_read_line(root, path, text, sizeof(text)) == 0 && text[0])
        snprintf(ret->name, sizeof(ret->name), "%s", text);
    else
        snprintf(ret->name, sizeof(ret->name), "%s GPU %04x:%04x", vname[0] ? vname : "PCI",
                 (unsigned)vendor, (unsigned)device);

    if (card_u64(root, card, "device/mem_info_vram_total", &v) == 0) {
        ret->mem_total = v;
        uint64_t used;
        if (card_u64(root, card, "device/mem_info_vram_used", &used) == 0 && used <= v)
            ret->mem_free = v - used;
    } else if (vendor == PCI_VENDOR_INTEL && strncmp(ret->pci, "0000:00:", 8) == 0) {
        /* Intel's integrated GPUs sit on the root bus and use system RAM. */
        ret->mem_shared = true;
    }
    card_path(path, sizeof(path), card, "device/current_link_speed");
    if (exo_procfs_read_line(root, path, text, sizeof(text)) == 0)
        ret->pcie_gen = pcie_gen(text);
    if (card_u64(root, card, "device/current_link_width", &v) == 0 && v <= 32)
        ret->pcie_width = (uint8_t)v;
    if (card_u64(root, card, "gt_max_freq_mhz", &v) == 0 && v < 100000)
        ret->clock_max_mhz = (uint32_t)v;
    struct exo_sysfs_gpu g;
    exo_sysfs_gpu_init(root, card, &g);
    if (hwmon_u64(root, &g, "freq1_input", &v) == 0 && v / 1000000 < 100000)
        ret->clock_mhz = (uint32_t)(v / 1000000);
    exo_device_bind(ret, EXO_DEVICE_API_SYSFS, -1, ret->name, driver);
    return 0;
}

void exo_sysfs_gpu_init(const char *root, const char *card, struct exo_sysfs_gpu *ret)
{
    memset(ret, 0, sizeof(*ret));
    snprintf(ret->card, sizeof(ret->card), "%s", card);
    find_hwmon(root, card, ret->hwmon, sizeof(ret->hwmon));
}

void exo_sysfs_gpu_sample(const char *root, struct exo_sysfs_gpu *g, uint64_t mono_ns,
                          struct exo_gpu_sample *ret)
{
    uint64_t v, used;
    ret->has = 0;
    ret->lost = card_u64(root, g->card, "device/vendor", &v) < 0;
    if (ret->lost)
        return;
    if (card_u64(root, g->card, "device/gpu_busy_percent", &v) == 0 && v <= 100) {
        ret->util_pct = (uint8_t)v;
        ret->has |= EXO_GPU_HAS_UTIL;
    }
    if (card_u64(root, g->card, "device/mem_info_vram_total", &v) == 0 &&
        card_u64(root, g->card, "device/mem_info_vram_used", &used) == 0 && used <= v) {
        ret->mem_total = v;
        ret->mem_used = used;
        ret->has |= EXO_GPU_HAS_MEM;
    }
    /* Sensors outside these bounds are broken readings, not hot or hungry cards. */
    if (hwmon_u64(root, g, "temp1_input", &v) == 0 && v < 250000) {
        ret->temp_c = (int16_t)(v / 1000);
        ret->has |= EXO_GPU_HAS_TEMP;
    }
    if ((hwmon_u64(root, g, "power1_average", &v) == 0 ||
         hwmon_u64(root, g, "power1_input", &v) == 0) &&
        v < 10000000000ull) {
        ret->power_mw = (uint32_t)(v / 1000);
        ret->has |= EXO_GPU_HAS_POWER;
    } else if (hwmon_u64(root, g, "energy1_input", &v) == 0) {
        if (g->energy_ns && mono_ns > g->energy_ns && v >= g->energy_uj) {
            /* microjoules per nanosecond * 1e6 = milliwatts */
            double mw = (double)(v - g->energy_uj) * 1e6 / (double)(mono_ns - g->energy_ns);
            if (mw < 1e7) {
                ret->power_mw = (uint32_t)mw;
                ret->has |= EXO_GPU_HAS_POWER;
            }
        }
        g->energy_uj = v;
        g->energy_ns = mono_ns;
    }
    if ((hwmon_u64(root, g, "freq1_input", &v) == 0 && (v /= 1000000) < 100000) ||
        (card_u64(root, g->card, "gt_cur_freq_mhz", &v) == 0 && v < 100000)) {
        ret->clock_mhz = (uint32_t)v;
        ret->has |= EXO_GPU_HAS_CLOCK;
    }
    if (hwmon_u64(root, g, "freq2_input", &v) == 0 && v / 1000000 < 100000) {
        ret->mem_clock_mhz = (uint32_t)(v / 1000000);
        ret->has |= EXO_GPU_HAS_MEM_CLOCK;
    }
}

int exo_probe_sysfs(const struct exo_detect_options *o, struct exo_device_list *l)
{
    char cards[EXO_SYSFS_MAX_CARDS][16];
    int n = exo_sysfs_list_cards(o->root, cards, EXO_SYSFS_MAX_CARDS);
    if (n < 0) {
        exo_log(EXO_LOG_INFO, "device", "no /sys/class/drm, skipping sysfs GPUs");
        return n;
    }
    for (int i = 0; i < n; i++) {
        struct exo_device d;
        if (exo_sysfs_describe(o->root, cards[i], &d) == 0)
            exo_device_list_merge(l, &d);
    }
    return 0;
}
