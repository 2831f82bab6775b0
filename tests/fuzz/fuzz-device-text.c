/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the text formats the device module reads from files: /proc/stat,
 * /proc/meminfo, /proc/net/dev, /proc/cpuinfo and the score cache (JSON). The first byte picks
 * the parser; the rest is the file. What parses is checked for the invariants callers rely on.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "device/procfs.h"
#include "device/score.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 5) {
    case 0: {
        struct exo_proc_stat *st = exo_malloc(sizeof(*st));
        if (st && exo_procfs_parse_stat(text, len, st) == 0) {
            if (st->n_cpus > EXO_PROCFS_MAX_CPUS)
                abort();
            /* Sums over the fields must not wrap (each field is capped). */
            if (exo_cpu_times_total(&st->total) < st->total.user)
                abort();
            (void)exo_cpu_times_busy_permille(&st->total, &st->cpu[0]);
        }
        exo_free(st);
        break;
    }
    case 1: {
        struct exo_meminfo mi;
        if (exo_procfs_parse_meminfo(text, len, &mi) == 0 &&
            (mi.mem_available > mi.mem_total || mi.swap_free > mi.swap_total))
            abort();
        break;
    }
    case 2: {
        struct exo_netdev nd;
        exo_procfs_parse_netdev(text, len, &nd);
        break;
    }
    case 3: {
        struct exo_cpuinfo ci;
        exo_procfs_parse_cpuinfo(text, len, &ci);
        if (ci.model[sizeof(ci.model) - 1] || ci.vendor[sizeof(ci.vendor) - 1])
            abort();
        break;
    }
    default: {
        struct exo_score s;
        struct exo_diag diag = {{0}};
        if (exo_score_from_json(text, len, &s, &diag) == 0 && s.n_types > EXO_SCORE_MAX_TYPES)
            abort();
        break;
    }
    }
    return 0;
}
