/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bounded /proc and /sys reads and the parsers of their text formats (see procfs.h). The parsers
 * walk the text line by line with explicit lengths; no line is trusted to be terminated, no
 * number to fit, no field to be present.
 */
#include "device/procfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "device/device.h"

/* ---- bounded reads ------------------------------------------------------------------------- */

static int open_under(const char *root, const char *path)
{
    char full[4096];
    if (!root || !root[0] || strcmp(root, "/") == 0)
        root = "";
    int n = snprintf(full, sizeof(full), "%s%s", root, path);
    if (n < 0 || (size_t)n >= sizeof(full)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open(full, O_RDONLY | O_CLOEXEC | O_NOCTTY);
}

int exo_procfs_read(const char *root, const char *path, size_t cap, struct exo_buf *out,
                    bool *ret_truncated)
{
    int fd = open_under(root, path);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? EXO_ENOENT : EXO_EIO;
    size_t start = out->len, got = 0;
    bool truncated = false;
    int rc = exo_buf_reserve(out, cap + 1);
    if (rc < 0)
        goto out;
    /* /proc files are produced as they are read, a page or so per read(): loop until EOF or
     * one byte past the cap, which tells a file that is exactly cap bytes from a longer one. */
    while (got <= cap) {
        ssize_t n = read(fd, out->data + start + got, cap + 1 - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = EXO_EIO;
            goto out;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got > cap) {
        /* Keep whole lines only: a number cut in half would read as a smaller one. */
        truncated = true;
        got = cap;
        while (got > 0 && out->data[start + got - 1] != '\n')
            got--;
    }
    out->len = start + got;
    out->data[out->len] = '\0';
out:
    close(fd);
    if (rc == 0 && ret_truncated)
        *ret_truncated = truncated;
    return rc;
}

/* ---- lines and numbers --------------------------------------------------------------------- */

struct line_iter {
    const char *p, *end;
};

/* The next line (without its newline) in *line, *line_len; false at the end. */
static bool next_line(struct line_iter *it, const char **line, size_t *line_len)
{
    if (it->p >= it->end)
        return false;
    const char *nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
    const char *stop = nl ? nl : it->end;
    *line = it->p;
    *line_len = (size_t)(stop - it->p);
    it->p = nl ? nl + 1 : it->end;
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Skip blanks in [*p, end). */
static void skip_blanks(const char **p, const char *end)
{
    while (*p < end && is_space(**p))
        (*p)++;
}

/* A decimal number at *p (after blanks); 0 and *p advanced on success, EXO_EFORMAT when there
 * are no digits, EXO_ERANGE on overflow. */
static int parse_u64(const char **p, const char *end, uint64_t *ret)
{
    skip_blanks(p, end);
    const char *s = *p;
    uint64_t v = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return EXO_ERANGE;
        v = v * 10 + d;
        s++;
    }
    if (s == *p)
        return EXO_EFORMAT;
    *p = s;
    *ret = v;
    return 0;
}

static bool starts_with(const char *line, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(line, prefix, n) == 0;
}

int exo_procfs_read_u64(const char *root, const char *path, uint64_t *ret)
{
    struct exo_buf b;
    exo_buf_init(&b, 0);
    int rc = exo_procfs_read(root, path, EXO_PROCFS_CAP_SMALL, &b, NULL);
    if (rc < 0)
        goto out;
    const char *p = (const char *)b.data, *end = p + b.len;
    uint64_t v = 0;
    skip_blanks(&p, end);
    if (end - p > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        const char *s = p + 2;
        for (; s < end; s++) {
            char c = *s;
            unsigned d;
            if (c >= '0' && c <= '9')
                d = (unsigned)(c - '0');
            else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
                d = (unsigned)((c | 0x20) - 'a' + 10);
            else
                break;
            if (v >> 60) {
                rc = EXO_ERANGE;
                goto out;
            }
            v = v << 4 | d;
        }
        if (s == p + 2) {
            rc = EXO_EFORMAT;
            goto out;
        }
        p = s;
    } else if ((rc = parse_u64(&p, end, &v)) < 0) {
        goto out;
    }
    while (p < end && (is_space(*p) || *p == '\n'))
        p++;
    if (p != end) {
        rc = EXO_EFORMAT;
        goto out;
    }
    *ret = v;
out:
    exo_buf_free(&b);
    return rc;
}

int exo_procfs_read_line(const char *root, const char *path, char *out, size_t size)
{
    struct exo_buf b;
    exo_buf_init(&b, 0);
    int rc = exo_procfs_read(root, path, EXO_PROCFS_CAP_SMALL, &b, NULL);
    if (rc == 0) {
        size_t n = 0;
        while (n < b.len && b.data[n] != '\n' && b.data[n] != '\0')
            n++;
        while (n > 0 && is_space((char)b.data[n - 1]))
            n--;
        if (n >= size)
            n = size ? size - 1 : 0;
        if (size) {
            memcpy(out, b.data, n);
            out[n] = '\0';
        }
    }
    exo_buf_free(&b);
    return rc;
}

/* ---- /proc/stat ---------------------------------------------------------------------------- */

uint64_t exo_cpu_times_total(const struct exo_cpu_times *t)
{
    return t->user + t->nice + t->system + t->idle + t->iowait + t->irq + t->softirq + t->steal;
}

uint64_t exo_cpu_times_idle(const struct exo_cpu_times *t)
{
    return t->idle + t->iowait;
}

uint32_t exo_cpu_times_busy_permille(const struct exo_cpu_times *before,
                                     const struct exo_cpu_times *after)
{
    uint64_t t0 = exo_cpu_times_total(before), t1 = exo_cpu_times_total(after);
    uint64_t i0 = exo_cpu_times_idle(before), i1 = exo_cpu_times_idle(after);
    if (t1 <= t0 || i1 < i0)
        return 0;
    uint64_t dt = t1 - t0, di = i1 - i0;
    if (di >= dt)
        return 0;
    return (uint32_t)((dt - di) * 1000 / dt);
}

/* The numbers after "cpu" or "cpuN": at least user, nice, system and idle (kernels before 2.6
 * stopped there); the rest default to 0. Totals are summed by callers, so a single field near
 * 2^64 is refused to keep those sums from wrapping. */
static int parse_times(const char *p, const char *end, struct exo_cpu_times *t)
{
    uint64_t *fields[] = {&t->user,   &t->nice, &t->system,  &t->idle,
                          &t->iowait, &t->irq,  &t->softirq, &t->steal};
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        int rc = parse_u64(&p, end, fields[i]);
        if (rc == EXO_EFORMAT && i >= 4)
            break;
        if (rc < 0)
            return rc;
        if (*fields[i] > (UINT64_MAX >> 4))
            return EXO_ERANGE;
    }
    return 0;
}

int exo_procfs_parse_stat(const char *text, size_t len, struct exo_proc_stat *ret)
{
    struct line_iter it = {text, text + len};
    const char *line;
    size_t n;
    bool have_total = false;
    memset(ret, 0, sizeof(*ret));
    while (next_line(&it, &line, &n)) {
        if (!starts_with(line, n, "cpu"))
            continue;
        const char *p = line + 3, *end = line + n;
        if (p < end && is_space(*p)) {
            if (!have_total && parse_times(p, end, &ret->total) == 0)
                have_total = true;
            continue;
        }
        uint64_t idx;
        if (parse_u64(&p, end, &idx) < 0 || p == end || !is_space(*p) || idx >= EXO_PROCFS_MAX_CPUS)
            continue;
        struct exo_cpu_times t;
        if (parse_times(p, end, &t) < 0 || ret->online[idx])
            continue;
        ret->cpu[idx] = t;
        ret->online[idx] = true;
        if (idx + 1 > ret->n_cpus)
            ret->n_cpus = (uint32_t)idx + 1;
    }
    return have_total ? 0 : EXO_EFORMAT;
}

/* ---- /proc/meminfo ------------------------------------------------------------------------- */

int exo_procfs_parse_meminfo(const char *text, size_t len, struct exo_meminfo *ret)
{
    static const char *const keys[] = {
        "MemTotal:", "MemAvailable:", "SwapTotal:", "SwapFree:", "MemFree:", "Buffers:", "Cached:"};
    enum { TOTAL, AVAIL, SWAP_TOTAL, SWAP_FREE, FREE, BUFFERS, CACHED, N_KEYS };
    uint64_t v[N_KEYS] = {0};
    bool seen[N_KEYS] = {false};
    struct line_iter it = {text, text + len};
    const char *line;
    size_t n;
    while (next_line(&it, &line, &n)) {
        for (int k = 0; k < N_KEYS; k++) {
            if (seen[k] || !starts_with(line, n, keys[k]))
                continue;
            const char *p = line + strlen(keys[k]), *end = line + n;
            uint64_t kb;
            int rc = parse_u64(&p, end, &kb);
            if (rc == EXO_ERANGE || (rc == 0 && kb > UINT64_MAX / 1024))
                return EXO_ERANGE;
            if (rc == 0) {
                v[k] = kb * 1024;
                seen[k] = true;
            }
            break;
        }
    }
    if (!seen[TOTAL])
        return EXO_EFORMAT;
    memset(ret, 0, sizeof(*ret));
    ret->mem_total = v[TOTAL];
    if (seen[AVAIL]) {
        ret->mem_available = v[AVAIL];
    } else {
        uint64_t sum = v[FREE];
        sum = sum + v[BUFFERS] < sum ? UINT64_MAX : sum + v[BUFFERS];
        sum = sum + v[CACHED] < sum ? UINT64_MAX : sum + v[CACHED];
        ret->mem_available = sum;
    }
    if (ret->mem_available > ret->mem_total)
        ret->mem_available = ret->mem_total;
    ret->swap_total = v[SWAP_TOTAL];
    ret->swap_free = v[SWAP_FREE] < v[SWAP_TOTAL] ? v[SWAP_FREE] : v[SWAP_TOTAL];
    return 0;
}

/* ---- /proc/net/dev ------------------------------------------------------------------------- */

int exo_procfs_parse_netdev(const char *text, size_t len, struct exo_netdev *ret)
{
    struct line_iter it = {text, text + len};
    const char *line;
    size_t n;
    memset(ret, 0, sizeof(*ret));
    /* "Inter-|   Receive ..." and " face |bytes    packets ...". */
    if (!next_line(&it, &line, &n) || !memchr(line, '|', n) || !next_line(&it, &line, &n) ||
        !memchr(line, '|', n))
        return EXO_EFORMAT;
    while (next_line(&it, &line, &n)) {
        const char *end = line + n, *colon = memchr(line, ':', n);
        if (!colon)
            continue;
        const char *name = line;
        skip_blanks(&name, colon);
        if (colon - name == 2 && memcmp(name, "lo", 2) == 0)
            continue;
        /* bytes packets errs drop fifo frame compressed multicast, then the same for tx. */
        uint64_t f[9];
        const char *p = colon + 1;
        bool ok = true;
        for (int i = 0; i < 9 && ok; i++)
            ok = parse_u64(&p, end, &f[i]) == 0;
        if (!ok)
            continue;
        ret->rx_bytes += f[0];
        ret->tx_bytes += f[8];
        ret->n_ifaces++;
    }
    return 0;
}

/* ---- /proc/cpuinfo ------------------------------------------------------------------------- */

static const struct {
    const char *flag;
    uint32_t bit;
} cpu_flags[] = {
    {"pni", EXO_DEVICE_FEAT_SSE3},
    {"ssse3", EXO_DEVICE_FEAT_SSSE3},
    {"avx", EXO_DEVICE_FEAT_AVX},
    {"avx2", EXO_DEVICE_FEAT_AVX2},
    {"fma", EXO_DEVICE_FEAT_FMA},
    {"f16c", EXO_DEVICE_FEAT_F16C},
    {"avx512f", EXO_DEVICE_FEAT_AVX512F},
    {"avx512bw", EXO_DEVICE_FEAT_AVX512BW},
    {"avx512vl", EXO_DEVICE_FEAT_AVX512VL},
    {"avx512_vnni", EXO_DEVICE_FEAT_AVX512VNNI},
    {"avx512_bf16", EXO_DEVICE_FEAT_AVX512BF16},
    {"avx_vnni", EXO_DEVICE_FEAT_AVXVNNI},
    {"amx_int8", EXO_DEVICE_FEAT_AMX},
    /* arm64 "Features" */
    {"asimd", EXO_DEVICE_FEAT_NEON},
    {"asimddp", EXO_DEVICE_FEAT_DOTPROD},
    {"fphp", EXO_DEVICE_FEAT_FP16},
};

static uint32_t parse_flags(const char *p, const char *end)
{
    uint32_t bits = 0;
    while (p < end) {
        skip_blanks(&p, end);
        const char *w = p;
        while (p < end && !is_space(*p))
            p++;
        size_t wn = (size_t)(p - w);
        for (size_t i = 0; i < sizeof(cpu_flags) / sizeof(cpu_flags[0]); i++)
            if (strlen(cpu_flags[i].flag) == wn && memcmp(cpu_flags[i].flag, w, wn) == 0)
                bits |= cpu_flags[i].bit;
    }
    return bits;
}

/* The value after "key<blanks>:" on a line, or NULL when the line is not that key. */
static const char *key_value(const char *line, size_t n, const char *key)
{
    size_t kn = strlen(key);
    if (n < kn || memcmp(line, key, kn) != 0)
        return NULL;
    const char *p = line + kn, *end = line + n;
    skip_blanks(&p, end);
    if (p >= end || *p != ':')
        return NULL;
    p++;
    skip_blanks(&p, end);
    return p;
}

static void copy_value(char *dst, size_t size, const char *p, const char *end)
{
    size_t n = (size_t)(end - p);
    while (n > 0 && is_space(p[n - 1]))
        n--;
    if (n >= size)
        n = size - 1;
    memcpy(dst, p, n);
    dst[n] = '\0';
}

int exo_procfs_parse_cpuinfo(const char *text, size_t len, struct exo_cpuinfo *ret)
{
    struct line_iter it = {text, text + len};
    const char *line, *v;
    size_t n;
    bool have_flags = false;
    memset(ret, 0, sizeof(*ret));
    while (next_line(&it, &line, &n)) {
        const char *end = line + n;
        if (key_value(line, n, "processor")) {
            ret->n_processors++;
        } else if (!ret->model[0] && ((v = key_value(line, n, "model name")) ||
                                      (v = key_value(line, n, "Hardware")))) {
            copy_value(ret->model, sizeof(ret->model), v, end);
        } else if (!ret->vendor[0] && (v = key_value(line, n, "vendor_id"))) {
            copy_value(ret->vendor, sizeof(ret->vendor), v, end);
        } else if (!ret->mhz && (v = key_value(line, n, "cpu MHz"))) {
            uint64_t mhz;
            if (parse_u64(&v, end, &mhz) == 0 && mhz < 100000)
                ret->mhz = (uint32_t)mhz;
        } else if (!have_flags &&
                   ((v = key_value(line, n, "flags")) || (v = key_value(line, n, "Features")))) {
            ret->features = parse_flags(v, end);
            have_flags = true;
        }
    }
    return 0;
}
