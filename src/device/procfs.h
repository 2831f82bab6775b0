/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bounded reads of /proc and /sys files and parsers for the few formats detection and telemetry
 * need: /proc/stat (CPU times), /proc/meminfo, /proc/net/dev and /proc/cpuinfo.
 *
 * Every path is taken relative to a root directory ("/" in production, a fixture tree under
 * tests/data/device/ in tests), so the same code runs against recorded machines. These files are
 * read as outside input: reads stop at a hard cap, a partial last line is ignored, numbers are
 * range-checked, and a line that does not parse is skipped rather than trusted. Nothing here
 * logs; the parsers return EXO_EFORMAT when a file lacks what it must have.
 */
#ifndef EXO_DEVICE_PROCFS_H
#define EXO_DEVICE_PROCFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

#define EXO_PROCFS_MAX_CPUS 256 /* per-CPU figures beyond this many are not kept */

/* Caps on what is read of each file; a file that is longer is read up to the cap and parsed as
 * far as its last whole line. */
#define EXO_PROCFS_CAP_SMALL (4u << 10)   /* one sysfs value */
#define EXO_PROCFS_CAP_TEXT  (256u << 10) /* /proc/stat, cpuinfo, meminfo, net/dev */

/*
 * Append at most cap bytes of root/path (path absolute, e.g. "/proc/stat"; root NULL or "/"
 * means the real root) to out, NUL-terminated after the data. *ret_truncated (may be NULL) says
 * whether the file went on past the cap. EXO_ENOENT when the file is absent, EXO_EIO on other
 * failures, EXO_ETOOBIG never (truncation is reported, not refused).
 */
int exo_procfs_read(const char *root, const char *path, size_t cap, struct exo_buf *out,
                    bool *ret_truncated);

/* A file holding one unsigned decimal number (sysfs style, trailing newline allowed), or one
 * hexadecimal number when it starts with 0x. EXO_EFORMAT on anything else, EXO_ERANGE when it
 * does not fit 64 bits. */
int exo_procfs_read_u64(const char *root, const char *path, uint64_t *ret);

/* A file holding one line of text: copied into out (NUL-terminated, trailing whitespace
 * removed, truncated to size). */
int exo_procfs_read_line(const char *root, const char *path, char *out, size_t size);

/* Jiffies a CPU spent in each state since boot (guest time is already inside user/nice). */
struct exo_cpu_times {
    uint64_t user, nice, system, idle, iowait, irq, softirq, steal;
};

/* Total jiffies and the idle share (idle + iowait). */
uint64_t exo_cpu_times_total(const struct exo_cpu_times *t);
uint64_t exo_cpu_times_idle(const struct exo_cpu_times *t);

/* Busy share between two readings in permille (0..1000), 0 when no time passed or the counters
 * went backwards (a CPU went offline and came back). */
uint32_t exo_cpu_times_busy_permille(const struct exo_cpu_times *before,
                                     const struct exo_cpu_times *after);

struct exo_proc_stat {
    struct exo_cpu_times total;                    /* the "cpu" line */
    struct exo_cpu_times cpu[EXO_PROCFS_MAX_CPUS]; /* "cpuN" lines, indexed by N */
    bool online[EXO_PROCFS_MAX_CPUS];              /* a "cpuN" line was present */
    uint32_t n_cpus;                               /* one past the highest N seen (capped) */
};

/* Parse /proc/stat text (len bytes, need not be NUL-terminated). EXO_EFORMAT without a valid
 * "cpu" line. */
int exo_procfs_parse_stat(const char *text, size_t len, struct exo_proc_stat *ret);

struct exo_meminfo {
    uint64_t mem_total, mem_available, swap_total, swap_free; /* bytes */
};

/* Parse /proc/meminfo. MemAvailable falls back to MemFree + Buffers + Cached on kernels older
 * than 3.14. EXO_EFORMAT without MemTotal; EXO_ERANGE when a value overflows. */
int exo_procfs_parse_meminfo(const char *text, size_t len, struct exo_meminfo *ret);

struct exo_netdev {
    uint64_t rx_bytes, tx_bytes; /* summed over every interface but loopback */
    uint32_t n_ifaces;
};

/* Parse /proc/net/dev. EXO_EFORMAT when the two header lines are missing. */
int exo_procfs_parse_netdev(const char *text, size_t len, struct exo_netdev *ret);

struct exo_cpuinfo {
    char model[128];   /* "model name" (x86) or "Hardware"/"CPU part" fallback; may be empty */
    char vendor[32];   /* "vendor_id" */
    uint32_t features; /* enum exo_device_feature bits from "flags" / "Features" */
    uint32_t mhz;      /* "cpu MHz" of the first processor, 0 unknown */
    uint32_t n_processors;
};

/* Parse /proc/cpuinfo. Never fails on content: what is missing stays empty. */
int exo_procfs_parse_cpuinfo(const char *text, size_t len, struct exo_cpuinfo *ret);

#endif
