/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CPU micro-benchmarks with the engine's own kernels, and their cache (see score.h).
 *
 * Threads: exo_score_measure() runs on the calling thread plus a thread pool of n_threads (a
 * plain pool for the bandwidth test, then the CPU backend's own pool), all joined before it
 * returns.
 *
 * The budget is shared out as the measurement goes: a slice for bandwidth and the small-op
 * cost, then what is left in equal slices per weight type. Each test repeats its operation
 * until its slice is used (at least MIN_RUNS times, so a slow machine overruns rather than
 * measures nothing) and keeps the mean run, not the median: a decode step is a sum of hundreds
 * of ops, and on a shared machine the occasional op that waits for a descheduled pool thread is
 * part of that sum.
 */
#include "device/score.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "backend/cpu/cpu-backend.h"
#include "backend/cpu/quants.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/cpu.h"
#include "core/rng.h"
#include "core/threadpool.h"
#include "device/json-int.h"
#include "device/procfs.h"
#include "service/statedir.h"

#define MIN_RUNS       3
#define STREAM_MIN     (64ull << 20)
#define STREAM_MAX     (1ull << 30)
#define MATVEC_COLS    4096 /* a multiple of every block size (256 for the K-quants) */
#define NARROW_COLS    256  /* the same bytes in rows this short: what each row costs */
#define SEQ_COLS       1024 /* the small mat-vecs: about the size of a small model's matrices */
#define SEQ_ROWS       256
#define SEQ_OPS        32 /* small mat-vecs per timed run, each on the next matrix */
#define MATMUL_COLS    2048
#define MATMUL_ROWS    512
#define SMALL_OP_WIDTH 2048
#define PATTERN_ROWS   8

static const enum exo_dtype default_types[] = {
    EXO_DTYPE_F32,  EXO_DTYPE_F16,  EXO_DTYPE_BF16, EXO_DTYPE_Q8_0, EXO_DTYPE_Q4_0,
    EXO_DTYPE_Q4_1, EXO_DTYPE_Q4_K, EXO_DTYPE_Q5_K, EXO_DTYPE_Q6_K,
};

/* ---- timing -------------------------------------------------------------------------------- */

static bool canceled(const atomic_bool *cancel)
{
    return cancel && atomic_load_explicit(cancel, memory_order_relaxed);
}

/* Mean seconds of repeated runs of fn(arg) over about slice_ns; fewer runs (at least one) once
 * *cancel is set. */
static double time_mean(void (*fn)(void *), void *arg, uint64_t slice_ns, const atomic_bool *cancel)
{
    uint64_t start = exo_clock_ns(), now = start;
    long n = 0;
    while ((n < MIN_RUNS || now - start < slice_ns) && (n == 0 || !canceled(cancel))) {
        fn(arg);
        n++;
        now = exo_clock_ns();
    }
    return (double)(now - start) / 1e9 / (double)n;
}

/* ---- the machine's load ------------------------------------------------------------------- */

/* CPU seconds the whole host has been busy (Linux /proc/stat), and this process alone; the
 * host's figure is negative where it cannot be read. */
static double host_busy_s(void)
{
    struct exo_buf b;
    exo_buf_init(&b, 0);
    struct exo_proc_stat *st = exo_malloc(sizeof(*st));
    double s = -1;
    long hz = sysconf(_SC_CLK_TCK);
    if (st && hz > 0 && exo_procfs_read(NULL, "/proc/stat", EXO_PROCFS_CAP_TEXT, &b, NULL) == 0 &&
        exo_procfs_parse_stat((const char *)b.data, b.len, st) == 0)
        s = (double)(exo_cpu_times_total(&st->total) - exo_cpu_times_idle(&st->total)) / (double)hz;
    exo_free(st);
    exo_buf_free(&b);
    return s;
}

static double self_busy_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- memory bandwidth ---------------------------------------------------------------------- */

struct bw_job {
    struct exo_threadpool *pool;
    const uint64_t *words;
    size_t n_words;
    _Atomic uint64_t sink; /* keeps the sums alive so the reads are not optimised away */
};

static void bw_task(void *arg, int ith, int nth)
{
    struct bw_job *j = arg;
    size_t per = (j->n_words + (size_t)nth - 1) / (size_t)nth;
    size_t first = per * (size_t)ith, end = first + per;
    if (end > j->n_words)
        end = j->n_words;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = first;
    for (; i + 4 <= end; i += 4) {
        a += j->words[i];
        b ^= j->words[i + 1];
        c += j->words[i + 2];
        d ^= j->words[i + 3];
    }
    for (; i < end; i++)
        a += j->words[i];
    atomic_fetch_xor_explicit(&j->sink, a ^ b ^ c ^ d, memory_order_relaxed);
}

static void bw_run(void *arg)
{
    struct bw_job *j = arg;
    exo_threadpool_run(j->pool, bw_task, j);
}

/* ---- backend ops --------------------------------------------------------------------------- */

struct op_job {
    struct exo_backend *be;
    struct exo_tensor dst, w, x;
    int rc;
    /* Sequences of small mat-vecs: w is moved along a buffer of seq_bytes, wrapping. */
    const uint8_t *seq_base;
    size_t seq_bytes, seq_off;
};

static void mul_mat_run(void *arg)
{
    struct op_job *j = arg;
    int rc = j->be->iface->mul_mat(j->be, &j->dst, &j->w, &j->x);
    if (rc < 0)
        j->rc = rc;
}

/* SEQ_OPS mat-vecs, each on the next matrix of the buffer, as a decode step walks from one
 * weight matrix to the next: every one streams from memory and pays its own fork and join. */
static void mul_mat_seq_run(void *arg)
{
    struct op_job *j = arg;
    size_t size = j->w.nb[1] * (size_t)j->w.ne[1];
    for (int i = 0; i < SEQ_OPS; i++) {
        if (j->seq_off + size > j->seq_bytes)
            j->seq_off = 0;
        j->w.data = (void *)(j->seq_base + j->seq_off);
        j->seq_off += size;
        mul_mat_run(j);
    }
}

static void rms_norm_run(void *arg)
{
    struct op_job *j = arg;
    int rc = j->be->iface->rms_norm(j->be, &j->dst, &j->x, &j->w, 1e-5f);
    if (rc < 0)
        j->rc = rc;
}

static void random_floats(struct exo_rng *rng, float *v, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)exo_rng_normal(rng) * scale;
}

/* Fill `bytes` of buf with valid blocks of type k->type: PATTERN_ROWS rows of random weights
 * (MATVEC_COLS wide) quantized once and repeated. */
static void fill_weights(const struct exo_cpu_kernels *k, uint8_t *buf, size_t bytes,
                         float *scratch, struct exo_rng *rng)
{
    size_t row = exo_dtype_row_bytes(k->type, MATVEC_COLS);
    size_t pattern = 0;
    for (int r = 0; r < PATTERN_ROWS && pattern + row <= bytes; r++) {
        random_floats(rng, scratch, MATVEC_COLS, 0.05f);
        k->from_float(scratch, buf + pattern, MATVEC_COLS);
        pattern += row;
    }
    for (size_t off = pattern; pattern && off < bytes; off += pattern)
        memcpy(buf + off, buf, bytes - off < pattern ? bytes - off : pattern);
}

/* The size of the streaming buffer: well past the last-level cache, within memory. */
static uint64_t stream_size(const struct exo_device *cpu, const struct exo_score_params *p)
{
    uint64_t s = p->stream_bytes;
    if (!s) {
        s = 2 * (cpu->cache_l3 + cpu->cache_l2 * (cpu->compute_units ? cpu->compute_units : 1));
        if (s < STREAM_MIN)
            s = STREAM_MIN;
        if (s > STREAM_MAX)
            s = STREAM_MAX;
        if (cpu->mem_free && s > cpu->mem_free / 8)
            s = cpu->mem_free / 8 > (16ull << 20) ? cpu->mem_free / 8 : (16ull << 20);
    }
    /* The mat-mat test views the buffer as an f32 matrix: never smaller than that. Then whole
     * rows of the widest type (f32), which are whole words too. */
    if (s < (uint64_t)MATMUL_ROWS * MATMUL_COLS * sizeof(float))
        s = (uint64_t)MATMUL_ROWS * MATMUL_COLS * sizeof(float);
    uint64_t row = MATVEC_COLS * sizeof(float);
    return s / row * row;
}

struct measure {
    struct exo_backend *be;
    uint8_t *buf; /* stream_bytes, 64-byte aligned */
    size_t bytes;
    float *x;   /* activations: EXO_SCORE_BATCH * MATVEC_COLS floats */
    float *dst; /* outputs: dst_floats */
    size_t dst_floats;
    float *scratch;
    struct exo_rng rng;
    const atomic_bool *cancel; /* borrowed, may be NULL */
};

/* Mat-vec GB/s, the fixed cost per mat-vec and mat-mat GFLOP/s for one type, in about
 * slice_ns. EXO_EUNSUPPORTED when the CPU kernels lack the type, EXO_ECANCELED when asked. */
static int measure_type(struct measure *m, enum exo_dtype t, uint64_t slice_ns,
                        struct exo_score_type *ret)
{
    const struct exo_cpu_kernels *k = exo_cpu_kernels(t);
    memset(ret, 0, sizeof(*ret));
    ret->type = t;
    if (!k || !k->vec_dot || !k->from_float)
        return EXO_EUNSUPPORTED;
    uint64_t start = exo_clock_ns();
    fill_weights(k, m->buf, m->bytes, m->scratch, &m->rng);
    uint64_t fill_ns = exo_clock_ns() - start;
    uint64_t left = slice_ns > 2 * fill_ns ? slice_ns - fill_ns : slice_ns / 2;

    /* The whole buffer as one matrix larger than the caches, twice: in long rows and in short
     * ones. The same bytes in more rows take longer by what each row costs, which gives both
     * the streaming rate and the cost per row. */
    struct op_job j = {.be = m->be};
    double bytes[2], rows[2], t_s[2];
    for (int pass = 0; pass < 2; pass++) {
        int64_t cols = pass ? NARROW_COLS : MATVEC_COLS;
        size_t row = exo_dtype_row_bytes(t, cols);
        size_t n_rows = m->bytes / row < m->dst_floats ? m->bytes / row : m->dst_floats;
        j.w = exo_tensor_2d(t, cols, (int64_t)n_rows, m->buf);
        j.x = exo_tensor_2d(EXO_DTYPE_F32, cols, 1, m->x);
        j.dst = exo_tensor_2d(EXO_DTYPE_F32, (int64_t)n_rows, 1, m->dst);
        t_s[pass] = time_mean(mul_mat_run, &j, left * 2 / 10, m->cancel);
        if (j.rc < 0 || canceled(m->cancel))
            return j.rc < 0 ? j.rc : EXO_ECANCELED;
        bytes[pass] = (double)n_rows * (double)row;
        rows[pass] = (double)n_rows;
    }
    /* t = bytes / rate + rows * per_row, for both passes. Noise can make the short rows look
     * cheaper than the long ones (then rows cost nothing measurable) or far dearer (the rows
     * of the long pass are then held to half its time, so its rate stays finite). */
    double row_s =
        (t_s[1] * bytes[0] - t_s[0] * bytes[1]) / (rows[1] * bytes[0] - rows[0] * bytes[1]);
    if (!(row_s > 0))
        row_s = 0;
    if (rows[0] * row_s > t_s[0] / 2)
        row_s = t_s[0] / 2 / rows[0];
    double bps = bytes[0] / (t_s[0] - rows[0] * row_s);
    ret->matvec_gbps = bps / 1e9;
    ret->row_ns = row_s * 1e9;

    /* A walk over small matrices (the same blocks seen SEQ_COLS wide): what each op costs
     * beyond its bytes and rows. */
    j.seq_base = m->buf;
    j.seq_bytes = m->bytes;
    j.w = exo_tensor_2d(t, SEQ_COLS, SEQ_ROWS, m->buf);
    j.x = exo_tensor_2d(EXO_DTYPE_F32, SEQ_COLS, 1, m->x);
    j.dst = exo_tensor_2d(EXO_DTYPE_F32, SEQ_ROWS, 1, m->dst);
    double s = time_mean(mul_mat_seq_run, &j, left * 3 / 10, m->cancel) / SEQ_OPS;
    if (j.rc < 0 || canceled(m->cancel))
        return j.rc < 0 ? j.rc : EXO_ECANCELED;
    double fixed = s - (double)exo_dtype_row_bytes(t, SEQ_COLS) * SEQ_ROWS / bps - SEQ_ROWS * row_s;
    ret->op_us = fixed > 0 ? fixed * 1e6 : 0;

    /* The same blocks as a cache-resident matrix times a batch of tokens. */
    j.w = exo_tensor_2d(t, MATMUL_COLS, MATMUL_ROWS, m->buf);
    j.x = exo_tensor_2d(EXO_DTYPE_F32, MATMUL_COLS, EXO_SCORE_BATCH, m->x);
    j.dst = exo_tensor_2d(EXO_DTYPE_F32, MATMUL_ROWS, EXO_SCORE_BATCH, m->dst);
    s = time_mean(mul_mat_run, &j, left * 3 / 10, m->cancel);
    if (j.rc < 0 || canceled(m->cancel))
        return j.rc < 0 ? j.rc : EXO_ECANCELED;
    ret->matmul_gflops = 2.0 * MATMUL_ROWS * MATMUL_COLS * EXO_SCORE_BATCH / s / 1e9;
    return 0;
}

int exo_score_measure(const struct exo_device *cpu, const struct exo_score_params *params,
                      struct exo_score *ret)
{
    struct exo_score_params defaults = {0};
    const struct exo_score_params *p = params ? params : &defaults;
    const enum exo_dtype *types = p->types ? p->types : default_types;
    size_t n_types = p->types ? p->n_types : sizeof(default_types) / sizeof(default_types[0]);
    double budget = p->budget_s > 0 ? p->budget_s : 2.0;
    uint64_t start = exo_clock_ns(), budget_ns = (uint64_t)(budget * 1e9);
    struct measure m = {0};
    struct exo_threadpool *pool = NULL;
    int rc;
    if (n_types > EXO_SCORE_MAX_TYPES)
        n_types = EXO_SCORE_MAX_TYPES;

    memset(ret, 0, sizeof(*ret));
    exo_score_fingerprint(cpu, p->n_threads, ret->fingerprint, sizeof(ret->fingerprint));
    snprintf(ret->version, sizeof(ret->version), "%s", EXO_VERSION);
    ret->measured_ms = exo_clock_wall_ms();
    exo_rng_seed(&m.rng, 0x5c0e);
    m.cancel = p->cancel;
    double host0 = host_busy_s(), self0 = self_busy_s();

    m.bytes = stream_size(cpu, p);
    m.buf = exo_aligned_alloc(64, m.bytes);
    m.x = exo_aligned_alloc(64, (size_t)EXO_SCORE_BATCH * MATVEC_COLS * sizeof(float));
    /* One output per short row of the mat-vec test for the narrowest type; the batch test
     * needs EXO_SCORE_BATCH * MATMUL_ROWS. */
    size_t narrowest = NARROW_COLS * sizeof(float);
    for (size_t i = 0; i < n_types; i++) {
        size_t row = exo_dtype_info(types[i]) ? exo_dtype_row_bytes(types[i], NARROW_COLS) : 0;
        if (row && row < narrowest)
            narrowest = row;
    }
    m.dst_floats = m.bytes / narrowest;
    if (m.dst_floats < (size_t)EXO_SCORE_BATCH * MATMUL_ROWS)
        m.dst_floats = (size_t)EXO_SCORE_BATCH * MATMUL_ROWS;
    m.dst = exo_aligned_alloc(64, m.dst_floats * sizeof(float));
    m.scratch = exo_malloc(MATVEC_COLS * sizeof(float));
    if (!m.buf || !m.x || !m.dst || !m.scratch) {
        rc = EXO_ENOMEM;
        goto out;
    }
    /* Touch every page first, so the tests time memory, not page faults. */
    memset(m.buf, 1, m.bytes);
    random_floats(&m.rng, m.x, (size_t)EXO_SCORE_BATCH * MATVEC_COLS, 1.0f);

    rc = exo_threadpool_create(p->n_threads, &pool);
    if (rc < 0)
        goto out;
    ret->n_threads = exo_threadpool_size(pool);
    struct bw_job bw = {
        .pool = pool, .words = (const uint64_t *)m.buf, .n_words = m.bytes / sizeof(uint64_t)};
    atomic_init(&bw.sink, 0);
    double s = time_mean(bw_run, &bw, budget_ns / 12, m.cancel);
    ret->mem_bw_gbps = (double)m.bytes / s / 1e9;
    exo_threadpool_free(pool);
    pool = NULL;
    if (canceled(m.cancel)) {
        rc = EXO_ECANCELED;
        goto out;
    }

    struct exo_backend_params bp = {.struct_size = sizeof(bp), .n_threads = ret->n_threads};
    rc = exo_cpu_backend_create(&bp, &m.be);
    if (rc < 0)
        goto out;

    /* One small op on a token's activations (inline on the calling thread, as the engine runs
     * norms, RoPE and residual adds for a single token). */
    struct op_job j = {.be = m.be};
    j.w = exo_tensor_2d(EXO_DTYPE_F32, SMALL_OP_WIDTH, 1, m.x + SMALL_OP_WIDTH);
    j.x = exo_tensor_2d(EXO_DTYPE_F32, SMALL_OP_WIDTH, 1, m.x);
    j.dst = exo_tensor_2d(EXO_DTYPE_F32, SMALL_OP_WIDTH, 1, m.dst);
    ret->small_op_us = time_mean(rms_norm_run, &j, budget_ns / 50, m.cancel) * 1e6;
    if (j.rc < 0) {
        rc = j.rc;
        goto out;
    }

    /* What is left of the budget goes to the types in equal slices; once it is spent, each
     * remaining type still gets its minimum runs. */
    for (size_t i = 0; i < n_types; i++) {
        uint64_t used = exo_clock_ns() - start;
        uint64_t left = used < budget_ns ? budget_ns - used : 0;
        struct exo_score_type st;
        rc = measure_type(&m, types[i], left / (n_types - i), &st);
        if (rc == EXO_EUNSUPPORTED)
            continue;
        if (rc < 0)
            goto out;
        ret->types[ret->n_types++] = st;
    }
    rc = 0;
    ret->seconds = (double)(exo_clock_ns() - start) / 1e9;
    double host1 = host0 >= 0 ? host_busy_s() : -1;
    ret->others_cores = host1 >= 0 && ret->seconds > 0
                            ? ((host1 - host0) - (self_busy_s() - self0)) / ret->seconds
                            : -1;
    if (host1 >= 0 && ret->others_cores < 0)
        ret->others_cores = 0; /* the two clocks tick differently: nobody else, within that */
out:
    exo_threadpool_free(pool);
    if (m.be)
        m.be->iface->free(m.be);
    exo_aligned_free(m.buf);
    exo_aligned_free(m.x);
    exo_aligned_free(m.dst);
    exo_free(m.scratch);
    return rc;
}

void exo_score_fingerprint(const struct exo_device *cpu, int32_t n_threads, char *out, size_t size)
{
    const struct exo_cpu_kernels *k = exo_cpu_kernels(EXO_DTYPE_Q4_0);
    int threads = n_threads > 0 ? n_threads : exo_cpu_physical_cores();
    /* Memory in whole GiB: the kernel's MemTotal moves by a few KiB between versions. */
    snprintf(out, size,
             "cpu=%s;cores=%u;threads=%u;mem_gib=%llu;features=%08x;isa=%s;pool=%d;exo=%s",
             cpu->name, cpu->compute_units, cpu->threads,
             (unsigned long long)((cpu->mem_total + (512ull << 20)) >> 30), cpu->features,
             k ? k->isa : "scalar", threads, EXO_VERSION);
}

const struct exo_score_type *exo_score_find(const struct exo_score *s, enum exo_dtype t)
{
    for (uint32_t i = 0; i < s->n_types && i < EXO_SCORE_MAX_TYPES; i++)
        if (s->types[i].type == t)
            return &s->types[i];
    return NULL;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

cJSON *exo_score_to_json(const struct exo_score *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *types = NULL;
    if (!o || !cJSON_AddStringToObject(o, "fingerprint", s->fingerprint) ||
        !cJSON_AddStringToObject(o, "version", s->version) ||
        !cJSON_AddNumberToObject(o, "measured_ms", (double)s->measured_ms) ||
        !cJSON_AddNumberToObject(o, "seconds", s->seconds) ||
        !cJSON_AddNumberToObject(o, "threads", s->n_threads) ||
        !cJSON_AddNumberToObject(o, "mem_bw_gbps", s->mem_bw_gbps) ||
        !cJSON_AddNumberToObject(o, "small_op_us", s->small_op_us) ||
        !(types = cJSON_AddArrayToObject(o, "types")))
        goto fail;
    for (uint32_t i = 0; i < s->n_types && i < EXO_SCORE_MAX_TYPES; i++) {
        const struct exo_score_type *t = &s->types[i];
        cJSON *e = exo_json_append_object(types);
        if (!e || !cJSON_AddStringToObject(e, "type", exo_dtype_name(t->type)) ||
            !cJSON_AddNumberToObject(e, "matvec_gbps", t->matvec_gbps) ||
            !cJSON_AddNumberToObject(e, "op_us", t->op_us) ||
            !cJSON_AddNumberToObject(e, "matmul_gflops", t->matmul_gflops) ||
            !cJSON_AddNumberToObject(e, "row_ns", t->row_ns))
            goto fail;
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* A number member within [min, max]. */
static int json_number(const cJSON *o, const char *key, double min, double max, double *ret,
                       struct exo_diag *diag)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < min ||
        v->valuedouble > max)
        return exo_diag_set(diag, EXO_EFORMAT, "score: \"%s\" must be a number from %g to %g", key,
                            min, max);
    *ret = v->valuedouble;
    return 0;
}

static int json_string(const cJSON *o, const char *key, char *out, size_t size,
                       struct exo_diag *diag)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= size)
        return exo_diag_set(diag, EXO_EFORMAT, "score: \"%s\" must be a string of under %zu bytes",
                            key, size);
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

static int dtype_by_name(const char *name, enum exo_dtype *ret)
{
    for (uint32_t t = 0; t < EXO_DTYPE_COUNT; t++) {
        const struct exo_dtype_info *info = exo_dtype_info(t);
        if (info && strcmp(info->name, name) == 0) {
            *ret = (enum exo_dtype)t;
            return 0;
        }
    }
    return EXO_ENOENT;
}

int exo_score_from_json(const char *text, size_t len, struct exo_score *ret, struct exo_diag *diag)
{
    struct exo_score s;
    double v = 0;
    int rc;
    memset(&s, 0, sizeof(s));
    if (len > EXO_SCORE_CACHE_MAX)
        return exo_diag_set(diag, EXO_ETOOBIG, "score: %zu bytes is more than a score", len);
    cJSON *o = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(o)) {
        rc = exo_diag_set(diag, EXO_EFORMAT, "score: not a JSON object");
        goto out;
    }
    if ((rc = json_string(o, "fingerprint", s.fingerprint, sizeof(s.fingerprint), diag)) < 0 ||
        (rc = json_string(o, "version", s.version, sizeof(s.version), diag)) < 0 ||
        (rc = json_number(o, "measured_ms", 0, 1e15, &v, diag)) < 0)
        goto out;
    s.measured_ms = (uint64_t)v;
    if ((rc = json_number(o, "seconds", 0, 3600, &s.seconds, diag)) < 0 ||
        (rc = json_number(o, "threads", 1, 4096, &v, diag)) < 0)
        goto out;
    s.n_threads = (int32_t)v;
    if ((rc = json_number(o, "mem_bw_gbps", 1e-6, 1e5, &s.mem_bw_gbps, diag)) < 0 ||
        (rc = json_number(o, "small_op_us", 0, 1e6, &s.small_op_us, diag)) < 0)
        goto out;
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(o, "types");
    if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) > EXO_SCORE_MAX_TYPES) {
        rc = exo_diag_set(diag, EXO_EFORMAT, "score: \"types\" must be an array of at most %d",
                          EXO_SCORE_MAX_TYPES);
        goto out;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, types)
    {
        struct exo_score_type *t = &s.types[s.n_types];
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "type");
        if (!cJSON_IsString(name) || dtype_by_name(name->valuestring, &t->type) < 0 ||
            exo_score_find(&s, t->type)) {
            rc = exo_diag_set(diag, EXO_EFORMAT, "score: types[%u] needs a known, unique \"type\"",
                              s.n_types);
            goto out;
        }
        if ((rc = json_number(e, "matvec_gbps", 1e-6, 1e5, &t->matvec_gbps, diag)) < 0 ||
            (rc = json_number(e, "op_us", 0, 1e6, &t->op_us, diag)) < 0 ||
            (rc = json_number(e, "matmul_gflops", 1e-6, 1e7, &t->matmul_gflops, diag)) < 0 ||
            (rc = json_number(e, "row_ns", 0, 1e6, &t->row_ns, diag)) < 0)
            goto out;
        s.n_types++;
    }
    *ret = s;
    rc = 0;
out:
    cJSON_Delete(o);
    return rc;
}

/* ---- the cache ----------------------------------------------------------------------------- */

static int load_cached(struct exo_statedir *sd, const char *fingerprint, struct exo_score *ret,
                       struct exo_diag *diag)
{
    struct exo_buf b;
    exo_buf_init(&b, 0);
    int rc = exo_statedir_read(sd, EXO_SCORE_CACHE_FILE, EXO_SCORE_CACHE_MAX, &b, diag);
    if (rc == 0)
        rc = exo_score_from_json((const char *)b.data, b.len, ret, diag);
    if (rc == 0 && strcmp(ret->fingerprint, fingerprint) != 0)
        rc = exo_diag_set(diag, EXO_ENOENT, "the cached score is for other hardware or version");
    exo_buf_free(&b);
    return rc;
}

static int save(struct exo_statedir *sd, const struct exo_score *s, struct exo_diag *diag)
{
    cJSON *o = exo_score_to_json(s);
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    int rc =
        text ? exo_statedir_write(sd, EXO_SCORE_CACHE_FILE, text, strlen(text), diag) : EXO_ENOMEM;
    cJSON_free(text);
    cJSON_Delete(o);
    return rc;
}

int exo_score_get(struct exo_statedir *sd, const struct exo_device *cpu,
                  const struct exo_score_params *params, bool rescore, struct exo_score *ret,
                  bool *ret_cached, struct exo_diag *diag)
{
    char fingerprint[EXO_SCORE_FINGERPRINT];
    exo_score_fingerprint(cpu, params ? params->n_threads : 0, fingerprint, sizeof(fingerprint));
    if (ret_cached)
        *ret_cached = false;
    if (sd && !rescore && load_cached(sd, fingerprint, ret, diag) == 0) {
        if (ret_cached)
            *ret_cached = true;
        return 0;
    }
    int rc = exo_score_measure(cpu, params, ret);
    if (rc < 0)
        return rc;
    double busy =
        params && params->busy_cores != 0 ? params->busy_cores : 0.25 * (double)ret->n_threads;
    if (busy >= 0 && ret->others_cores > busy) {
        exo_diag_set(diag, EXO_EBUSY,
                     "other processes used %.1f cores while the CPU was measured: the score "
                     "serves for now and is not cached (it is measured again at the next start)",
                     ret->others_cores);
        return 0;
    }
    if (sd)
        save(sd, ret, diag);
    return 0;
}
