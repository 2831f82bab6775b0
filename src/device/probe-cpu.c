/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CPU probe: topology from hwloc (packages, physical cores, hardware threads, NUMA nodes,
 * cache sizes), memory from /proc/meminfo, model and ISA flags from /proc/cpuinfo, and the
 * kernel ISA the engine dispatches to on this machine.
 *
 * hwloc reads this machine, or an XML topology when the options name one (tests); with a
 * fixture root and no XML the counts come from /proc/cpuinfo alone. The topology honours the
 * process's cgroup and affinity limits, which is what the thread pool can really use.
 */
#include <hwloc.h>
#include <stdio.h>
#include <string.h>

#include "backend/cpu/quants.h"
#include "core/buf.h"
#include "core/cpu.h"
#include "core/log.h"
#include "device/detect-int.h"
#include "device/procfs.h"

struct topo_counts {
    unsigned packages, cores, threads, numa;
    uint64_t l1d, l2, l3;
    char model[EXO_DEVICE_NAME_SIZE];
    char vendor[EXO_DEVICE_VENDOR_SIZE];
};

static uint64_t cache_size(hwloc_topology_t topo, hwloc_obj_type_t type)
{
    int n = hwloc_get_nbobjs_by_type(topo, type);
    for (int i = 0; i < n; i++) {
        hwloc_obj_t obj = hwloc_get_obj_by_type(topo, type, (unsigned)i);
        if (obj && obj->attr && obj->attr->cache.type != HWLOC_OBJ_CACHE_INSTRUCTION)
            return obj->attr->cache.size;
    }
    return 0;
}

static unsigned count(hwloc_topology_t topo, hwloc_obj_type_t type)
{
    int n = hwloc_get_nbobjs_by_type(topo, type);
    return n > 0 ? (unsigned)n : 0;
}

/* hwloc's view; false when it could not load a topology. */
static bool read_topology(const char *xml, struct topo_counts *t)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) < 0)
        return false;
    bool ok = (!xml || hwloc_topology_set_xml(topo, xml) == 0) && hwloc_topology_load(topo) == 0;
    if (ok) {
        t->packages = count(topo, HWLOC_OBJ_PACKAGE);
        t->cores = count(topo, HWLOC_OBJ_CORE);
        t->threads = count(topo, HWLOC_OBJ_PU);
        t->numa = count(topo, HWLOC_OBJ_NUMANODE);
        t->l1d = cache_size(topo, HWLOC_OBJ_L1CACHE);
        t->l2 = cache_size(topo, HWLOC_OBJ_L2CACHE);
        t->l3 = cache_size(topo, HWLOC_OBJ_L3CACHE);
        hwloc_obj_t pkg = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PACKAGE, 0);
        const char *model = pkg ? hwloc_obj_get_info_by_name(pkg, "CPUModel") : NULL;
        const char *vendor = pkg ? hwloc_obj_get_info_by_name(pkg, "CPUVendor") : NULL;
        if (model)
            snprintf(t->model, sizeof(t->model), "%s", model);
        if (vendor)
            snprintf(t->vendor, sizeof(t->vendor), "%s", vendor);
    }
    hwloc_topology_destroy(topo);
    return ok;
}

/* "GenuineIntel" -> "Intel" and so on; anything else is kept as given. */
static void vendor_name(const char *raw, char *out, size_t size)
{
    static const char *const map[][2] = {
        {"GenuineIntel", "Intel"},
        {"AuthenticAMD", "AMD"},
        {"HygonGenuine", "Hygon"},
        {"CentaurHauls", "Centaur"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(raw, map[i][0]) == 0) {
            snprintf(out, size, "%s", map[i][1]);
            return;
        }
    }
    snprintf(out, size, "%s", raw);
}

int exo_probe_cpu(const struct exo_detect_options *o, struct exo_device_list *l)
{
    bool host = exo_probe_root_is_host(o->root);
    struct exo_device d;
    struct topo_counts t = {0};
    struct exo_cpuinfo ci = {0};
    struct exo_meminfo mi = {0};
    struct exo_buf b;
    exo_buf_init(&b, 0);

    exo_device_init(&d, EXO_DEVICE_KIND_CPU, EXO_DEVICE_API_CPU, 0);
    d.backends = 1u << EXO_DEVICE_API_CPU;
    d.mem_shared = true;

    int rc = exo_procfs_read(o->root, "/proc/cpuinfo", EXO_PROCFS_CAP_TEXT, &b, NULL);
    if (rc == EXO_ENOMEM)
        goto out;
    if (rc == 0)
        exo_procfs_parse_cpuinfo((const char *)b.data, b.len, &ci);
    exo_buf_reset(&b);
    rc = exo_procfs_read(o->root, "/proc/meminfo", EXO_PROCFS_CAP_TEXT, &b, NULL);
    if (rc == EXO_ENOMEM)
        goto out;
    if (rc == 0 && exo_procfs_parse_meminfo((const char *)b.data, b.len, &mi) < 0)
        exo_log(EXO_LOG_INFO, "device", "/proc/meminfo could not be parsed; memory unknown");

    bool have_topo = (host || o->hwloc_xml) && read_topology(o->hwloc_xml, &t);
    if (!have_topo && (host || o->hwloc_xml))
        exo_log(EXO_LOG_INFO, "device", "hwloc could not read the CPU topology; using cpuinfo");
    if (have_topo && t.threads) {
        d.packages = t.packages ? t.packages : 1;
        d.compute_units = t.cores ? t.cores : t.threads;
        d.threads = t.threads;
        d.numa_nodes = t.numa ? t.numa : 1;
        d.cache_l1d = t.l1d;
        d.cache_l2 = t.l2;
        d.cache_l3 = t.l3;
    } else if (host) {
        d.packages = 1;
        d.compute_units = (uint32_t)exo_cpu_physical_cores();
        d.threads = (uint32_t)exo_cpu_logical_cpus();
        d.numa_nodes = 1;
    } else {
        d.packages = 1;
        d.threads = ci.n_processors ? ci.n_processors : 1;
        d.compute_units = d.threads;
        d.numa_nodes = 1;
    }

    const char *model = ci.model[0] ? ci.model : t.model[0] ? t.model : "CPU";
    snprintf(d.name, sizeof(d.name), "%s", model);
    vendor_name(ci.vendor[0] ? ci.vendor : t.vendor, d.vendor, sizeof(d.vendor));
    d.clock_mhz = ci.mhz;
    d.features = ci.features;
    d.mem_total = mi.mem_total;
    d.mem_free = mi.mem_available;
    if (host) {
        /* What the kernels run here (an EXO_CPU_ISA cap included), not merely what the
         * hardware has: that is in features. */
        const struct exo_cpu_kernels *k = exo_cpu_kernels(EXO_DTYPE_Q4_0);
        snprintf(d.isa, sizeof(d.isa), "%s", k ? k->isa : "scalar");
    }
    char driver[EXO_DEVICE_DRIVER_SIZE] = "";
    if (have_topo) {
        unsigned v = hwloc_get_api_version();
        snprintf(driver, sizeof(driver), "hwloc %u.%u", v >> 16, (v >> 8) & 0xff);
    }
    exo_device_bind(&d, EXO_DEVICE_API_CPU, 0, d.name, driver);
    rc = exo_device_list_merge(l, &d) < 0 ? EXO_ENOSPC : 0;
out:
    exo_buf_free(&b);
    return rc;
}
