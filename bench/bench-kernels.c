/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Single-threaded throughput of the CPU quantized kernels at SmolLM2-135M's shapes, for every
 * ISA level this CPU runs (EXO_CPU_ISA=avx2|scalar caps them), next to baselines measured in the
 * same run:
 *   - memory read bandwidth: summing a 256 MiB buffer, so that a mat-vec over a matrix larger
 *     than the caches can be read as a fraction of what memory delivers;
 *   - mat-vec (decode): rows x vec_dot over one activation vector, quantized once per op as the
 *     backend does; GB/s of weights streamed and GFLOP/s (2 flops per weight);
 *   - a whole decode token: the model's 210 Q4_1 matrices and the Q8_0 output matrix, about
 *     96 MB, more than the last-level cache, so each token streams its weights from memory;
 *   - mat-mat (prompt processing, 512 columns): gemm tiles against one vec_dot per entry;
 *   - the activation quantizers.
 * Each figure is the best of several repetitions timed in thread CPU time rather than wall time:
 * the machine is shared, and a repetition during which another process took the core would
 * otherwise count the other process's time. Weights are random bytes with finite scales: the
 * kernels' speed does not depend on the values.
 *
 * Usage: bench-kernels [--quick] [--type NAME]...   (--quick skips the scalar streaming runs)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/quants.h"
#include "core/alloc.h"
#include "core/rng.h"

static const char *isa_names[EXO_CPU_ISA_COUNT] = {"scalar", "avx2", "avx512", "neon"};

static const enum exo_dtype weight_types[] = {
    EXO_DTYPE_F32,  EXO_DTYPE_F16,  EXO_DTYPE_BF16, EXO_DTYPE_Q8_0, EXO_DTYPE_Q4_0,
    EXO_DTYPE_Q4_1, EXO_DTYPE_Q4_K, EXO_DTYPE_Q5_K, EXO_DTYPE_Q6_K,
};

struct shape {
    const char *name;
    int64_t rows, cols;
};

/* SmolLM2-135M: hidden 576, 3 KV heads of 64, FFN 1536, vocab 49152 (tied output). The last
 * shape is the stream test: larger than the caches for every type. */
static const struct shape shapes[] = {
    {"attn q/o", 576, 576},  {"attn k/v", 192, 576}, {"ffn gate/up", 1536, 576},
    {"ffn down", 576, 1536}, {"output", 49152, 576}, {"stream", 49152, 1536},
};

static bool quick;
static double mem_gbs;

/* CPU time this thread has run, in ns (see the top of the file for why not exo_clock_ns). */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Minimum run time per figure, and the repetition cap. */
#define MIN_NS   250000000ull
#define MAX_REPS 200

static void die(const char *what)
{
    fprintf(stderr, "bench-kernels: %s\n", what);
    exit(1);
}

/* Type geometry; exo_dtype_info is NULL only for ids that name no type. */
static const struct exo_dtype_info *info_of(enum exo_dtype t)
{
    const struct exo_dtype_info *info = exo_dtype_info(t);
    if (!info)
        die("unknown type");
    return info;
}

static size_t row_bytes(enum exo_dtype t, int64_t n)
{
    const struct exo_dtype_info *info = info_of(t);
    return (size_t)(n / info->block_elems) * info->block_bytes;
}

static void *alloc(size_t n)
{
    void *p = exo_aligned_alloc(64, n);
    if (!p)
        die("out of memory");
    return p;
}

/* Random bytes, then every fp16 field made a small finite number so no kernel meets NaN. */
static void fill_weights(struct exo_rng *rng, enum exo_dtype t, uint8_t *w, size_t bytes)
{
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
        uint64_t v = exo_rng_next(rng);
        memcpy(w + i, &v, 8);
    }
    size_t bb = info_of(t)->block_bytes;
    for (size_t b = 0; b + bb <= bytes; b += bb) {
        uint8_t *blk = w + b;
        uint16_t small = 0x2000 | (uint16_t)(exo_rng_next(rng) & 0x3ff);
        switch (t) {
        case EXO_DTYPE_F32: {
            float f = (float)(exo_rng_uniform(rng) - 0.5);
            memcpy(blk, &f, 4);
            break;
        }
        case EXO_DTYPE_F16:
            memcpy(blk, &small, 2);
            break;
        case EXO_DTYPE_BF16: {
            uint16_t h = exo_fp32_to_bf16((float)(exo_rng_uniform(rng) - 0.5));
            memcpy(blk, &h, 2);
            break;
        }
        case EXO_DTYPE_Q6_K:
            memcpy(blk + offsetof(struct block_q6_K, d), &small, 2);
            break;
        case EXO_DTYPE_Q4_1:
        case EXO_DTYPE_Q4_K:
        case EXO_DTYPE_Q5_K:
            memcpy(blk + 2, &small, 2);
            memcpy(blk, &small, 2);
            break;
        default:
            memcpy(blk, &small, 2);
            break;
        }
    }
}

static void fill_floats(struct exo_rng *rng, float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)exo_rng_normal(rng);
}

/* Sums a 256 MiB buffer in eight independent chains of 16-byte vectors (plain SSE2, so any x86
 * CPU runs it, and wide enough that the loads, not the adds, are the limit); returns GB/s, best
 * of three. */
typedef uint64_t u64x2 __attribute__((vector_size(16)));

static double measure_memory(void)
{
    size_t n = (256u << 20) / sizeof(u64x2);
    u64x2 *buf = alloc(n * sizeof(u64x2));
    memset(buf, 1, n * sizeof(u64x2));
    double best = 0;
    volatile uint64_t sink = 0;
    for (int rep = 0; rep < 3; rep++) {
        uint64_t t0 = cpu_ns();
        u64x2 s[8] = {{0, 0}};
        for (size_t i = 0; i < n; i += 8)
            for (int j = 0; j < 8; j++)
                s[j] += buf[i + j];
        uint64_t t1 = cpu_ns();
        for (int j = 0; j < 8; j++)
            sink += s[j][0] + s[j][1];
        double gbs = (double)(n * sizeof(u64x2)) / (double)(t1 - t0);
        if (gbs > best)
            best = gbs;
    }
    (void)sink;
    exo_aligned_free(buf);
    return best;
}

/* The activation vector of a mat-vec, quantized once (as the backend does per op), then one
 * vec_dot per row. (gemm with a single column does the same, see quants-int.h.) */
struct matvec {
    const struct exo_cpu_kernels *k, *act;
    const uint8_t *w;
    size_t row_bytes;
    int64_t rows, cols;
    const float *x;
    uint8_t *xq;
    float *y;
};

static void run_matvec(const struct matvec *m)
{
    m->act->from_float(m->x, m->xq, m->cols);
    for (int64_t r = 0; r < m->rows; r++)
        m->k->vec_dot(m->cols, &m->y[r], m->w + r * m->row_bytes, m->xq);
}

/* Best time of repeated calls, in ns. */
static double best_ns(void (*fn)(const void *), const void *arg, int min_reps)
{
    double best = 1e300;
    uint64_t start = cpu_ns();
    for (int rep = 0; rep < MAX_REPS; rep++) {
        uint64_t t0 = cpu_ns();
        fn(arg);
        uint64_t t1 = cpu_ns();
        if ((double)(t1 - t0) < best)
            best = (double)(t1 - t0);
        if (rep + 1 >= min_reps && t1 - start >= MIN_NS)
            break;
    }
    return best;
}

static void matvec_cb(const void *arg)
{
    run_matvec(arg);
}

/* Same kernel as the level below: not worth a line of its own. */
static bool same_as_below(enum exo_dtype t, int isa)
{
    if (isa == 0)
        return false;
    const struct exo_cpu_kernels *k = exo_cpu_kernels_isa(t, isa);
    const struct exo_cpu_kernels *below = exo_cpu_kernels_isa(t, isa - 1);
    return below && k->vec_dot == below->vec_dot && k->gemm == below->gemm;
}

static void bench_matvec(struct exo_rng *rng, enum exo_dtype t)
{
    const struct exo_cpu_kernels *ref = exo_cpu_kernels_ref(t);
    int64_t be = info_of(t)->block_elems;
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const struct shape *sh = &shapes[s];
        if (sh->cols % be)
            continue;
        struct matvec m = {.rows = sh->rows, .cols = sh->cols};
        m.row_bytes = row_bytes(t, sh->cols);
        size_t wbytes = m.row_bytes * (size_t)sh->rows;
        uint8_t *w = alloc(wbytes);
        float *x = alloc((size_t)sh->cols * sizeof(float));
        m.xq = alloc(row_bytes(ref->vec_dot_type, sh->cols));
        m.y = alloc((size_t)sh->rows * sizeof(float));
        fill_weights(rng, t, w, wbytes);
        fill_floats(rng, x, sh->cols);
        m.w = w;
        m.x = x;
        double base_ns = 0;
        for (int isa = 0; isa < EXO_CPU_ISA_COUNT; isa++) {
            m.k = exo_cpu_kernels_isa(t, isa);
            if (!m.k || same_as_below(t, isa))
                continue;
            bool big = wbytes > (32u << 20);
            if (quick && isa == 0 && big)
                continue;
            m.act = exo_cpu_kernels_isa(m.k->vec_dot_type, isa);
            double ns = best_ns(matvec_cb, &m, big ? 3 : 10);
            if (isa == 0)
                base_ns = ns;
            double gbs = (double)wbytes / ns;
            printf("  %-5s %-12s %5lldx%-5lld %-7s %9.1f us %7.2f GB/s %7.2f GFLOP/s",
                   exo_dtype_name(t), sh->name, (long long)sh->rows, (long long)sh->cols,
                   isa_names[isa], ns / 1e3, gbs, 2.0 * (double)sh->rows * (double)sh->cols / ns);
            if (big)
                printf("  %3.0f%% of mem", 100.0 * gbs / mem_gbs);
            if (base_ns > 0 && isa > 0)
                printf("  x%.1f vs scalar", base_ns / ns);
            printf("\n");
        }
        exo_aligned_free(w);
        exo_aligned_free(x);
        exo_aligned_free(m.xq);
        exo_aligned_free(m.y);
    }
}

/* ---- a decode token ---------------------------------------------------------------------------
 */

struct token {
    struct matvec layer[30][7];
    struct matvec output;
};

static void token_cb(const void *arg)
{
    const struct token *tk = arg;
    for (int l = 0; l < 30; l++)
        for (int j = 0; j < 7; j++)
            run_matvec(&tk->layer[l][j]);
    run_matvec(&tk->output);
}

static void bench_token(struct exo_rng *rng)
{
    static const struct shape layer_shapes[7] = {
        {"q", 576, 576},     {"k", 192, 576},   {"v", 192, 576},     {"o", 576, 576},
        {"gate", 1536, 576}, {"up", 1536, 576}, {"down", 576, 1536},
    };
    struct token *tk = exo_calloc(1, sizeof(*tk));
    if (!tk)
        die("out of memory");
    float *x = alloc(1536 * sizeof(float));
    uint8_t *xq = alloc(1536 * sizeof(float));
    float *y = alloc(49152 * sizeof(float));
    fill_floats(rng, x, 1536);
    size_t total = 0;
    for (int l = 0; l <= 30; l++)
        for (int j = 0; j < (l < 30 ? 7 : 1); j++) {
            struct matvec *m = l < 30 ? &tk->layer[l][j] : &tk->output;
            const struct shape sh = l < 30 ? layer_shapes[j] : (struct shape){"out", 49152, 576};
            enum exo_dtype t = l < 30 ? EXO_DTYPE_Q4_1 : EXO_DTYPE_Q8_0;
            m->rows = sh.rows;
            m->cols = sh.cols;
            m->row_bytes = row_bytes(t, sh.cols);
            size_t bytes = m->row_bytes * (size_t)sh.rows;
            uint8_t *w = alloc(bytes);
            fill_weights(rng, t, w, bytes);
            m->w = w;
            m->x = x;
            m->xq = xq;
            m->y = y;
            total += bytes;
        }
    printf("\ndecode token (1 thread): 210 q4_1 mat-vecs + the q8_0 output mat-vec, %.1f MB of "
           "weights\n",
           (double)total / 1e6);
    for (int isa = 0; isa < EXO_CPU_ISA_COUNT; isa++) {
        const struct exo_cpu_kernels *k41 = exo_cpu_kernels_isa(EXO_DTYPE_Q4_1, isa);
        if (!k41 || (quick && isa == 0))
            continue;
        for (int l = 0; l <= 30; l++)
            for (int j = 0; j < (l < 30 ? 7 : 1); j++) {
                struct matvec *m = l < 30 ? &tk->layer[l][j] : &tk->output;
                m->k = l < 30 ? k41 : exo_cpu_kernels_isa(EXO_DTYPE_Q8_0, isa);
                m->act = exo_cpu_kernels_isa(m->k->vec_dot_type, isa);
            }
        double ns = best_ns(token_cb, tk, 5);
        double gbs = (double)total / ns;
        printf("  %-7s %8.2f ms/token  %6.1f tokens/s  %6.2f GB/s  %3.0f%% of mem\n",
               isa_names[isa], ns / 1e6, 1e9 / ns, gbs, 100.0 * gbs / mem_gbs);
    }
    for (int l = 0; l <= 30; l++)
        for (int j = 0; j < (l < 30 ? 7 : 1); j++)
            exo_aligned_free((void *)(l < 30 ? tk->layer[l][j].w : tk->output.w));
    exo_free(tk);
    exo_aligned_free(x);
    exo_aligned_free(xq);
    exo_aligned_free(y);
}

/* ---- mat-mat -----------------------------------------------------------------------------------
 */

struct matmat {
    const struct exo_cpu_kernels *k, *act;
    const uint8_t *w;
    size_t ldw, ldx;
    int64_t rows, cols, ntok;
    const float *x;
    uint8_t *xq;
    float *y; /* [ntok][rows] */
    bool use_gemm;
};

/* Columns in chunks that stay in L2 while every weight row tile passes over them. */
#define COL_CHUNK 64

static void matmat_cb(const void *arg)
{
    const struct matmat *m = arg;
    for (int64_t c = 0; c < m->ntok; c++)
        m->act->from_float(m->x + c * m->cols, m->xq + c * m->ldx, m->cols);
    if (!m->use_gemm) {
        for (int64_t c0 = 0; c0 < m->ntok; c0 += COL_CHUNK)
            for (int64_t r = 0; r < m->rows; r++)
                for (int64_t c = c0; c < c0 + COL_CHUNK && c < m->ntok; c++)
                    m->k->vec_dot(m->cols, &m->y[c * m->rows + r], m->w + r * m->ldw,
                                  m->xq + c * m->ldx);
        return;
    }
    int tr = m->k->tile_rows, tc = m->k->tile_cols;
    for (int64_t c0 = 0; c0 < m->ntok; c0 += COL_CHUNK) {
        int64_t c1 = c0 + COL_CHUNK < m->ntok ? c0 + COL_CHUNK : m->ntok;
        for (int64_t r = 0; r < m->rows; r += tr) {
            int nr = m->rows - r < tr ? (int)(m->rows - r) : tr;
            for (int64_t c = c0; c < c1; c += tc) {
                int nc = c1 - c < tc ? (int)(c1 - c) : tc;
                m->k->gemm(m->cols, nr, nc, &m->y[c * m->rows + r], (size_t)m->rows,
                           m->w + r * m->ldw, m->ldw, m->xq + c * m->ldx, m->ldx);
            }
        }
    }
}

static void bench_matmat(struct exo_rng *rng, enum exo_dtype t)
{
    static const struct shape mm_shapes[] = {{"ffn gate/up", 1536, 576}, {"ffn down", 576, 1536}};
    int64_t be = info_of(t)->block_elems;
    for (size_t s = 0; s < 2; s++) {
        const struct shape *sh = &mm_shapes[s];
        if (sh->cols % be)
            continue;
        struct matmat m = {.rows = sh->rows, .cols = sh->cols, .ntok = 512};
        enum exo_dtype vt = exo_cpu_kernels_ref(t)->vec_dot_type;
        m.ldw = row_bytes(t, sh->cols);
        m.ldx = row_bytes(vt, sh->cols);
        uint8_t *w = alloc(m.ldw * (size_t)sh->rows);
        float *x = alloc((size_t)(sh->cols * m.ntok) * sizeof(float));
        m.xq = alloc(m.ldx * (size_t)m.ntok);
        m.y = alloc((size_t)(sh->rows * m.ntok) * sizeof(float));
        fill_weights(rng, t, w, m.ldw * (size_t)sh->rows);
        fill_floats(rng, x, sh->cols * m.ntok);
        m.w = w;
        m.x = x;
        double flops = 2.0 * (double)sh->rows * (double)sh->cols * (double)m.ntok;
        for (int isa = 1; isa < EXO_CPU_ISA_COUNT; isa++) {
            m.k = exo_cpu_kernels_isa(t, isa);
            if (!m.k || same_as_below(t, isa))
                continue;
            m.act = exo_cpu_kernels_isa(vt, isa);
            m.use_gemm = false;
            double ns_dot = best_ns(matmat_cb, &m, 2);
            printf("  %-5s %-12s %5lldx%-5lld x512 %-7s vec_dot %7.2f GFLOP/s", exo_dtype_name(t),
                   sh->name, (long long)sh->rows, (long long)sh->cols, isa_names[isa],
                   flops / ns_dot);
            if (m.k->gemm) {
                m.use_gemm = true;
                double ns_gemm = best_ns(matmat_cb, &m, 2);
                printf("   gemm %dx%d %7.2f GFLOP/s  x%.2f", m.k->tile_rows, m.k->tile_cols,
                       flops / ns_gemm, ns_dot / ns_gemm);
            }
            printf("\n");
        }
        exo_aligned_free(w);
        exo_aligned_free(x);
        exo_aligned_free(m.xq);
        exo_aligned_free(m.y);
    }
}

/* ---- activation quantizers ------------------------------------------------------------------ */

struct quant {
    const struct exo_cpu_kernels *k;
    const float *x;
    void *q;
    int64_t n;
};

static void quant_cb(const void *arg)
{
    const struct quant *q = arg;
    q->k->from_float(q->x, q->q, q->n);
}

static void bench_quantizers(struct exo_rng *rng)
{
    static const enum exo_dtype types[] = {EXO_DTYPE_Q8_0, EXO_DTYPE_Q8_1, EXO_DTYPE_Q8_K};
    struct quant q = {.n = 1536 * 64};
    float *x = alloc((size_t)q.n * sizeof(float));
    q.q = alloc((size_t)q.n * sizeof(float));
    fill_floats(rng, x, q.n);
    q.x = x;
    printf("\nactivation quantizers (from_float of %lld floats)\n", (long long)q.n);
    for (size_t t = 0; t < 3; t++) {
        double base = 0;
        for (int isa = 0; isa < EXO_CPU_ISA_COUNT; isa++) {
            q.k = exo_cpu_kernels_isa(types[t], isa);
            if (!q.k ||
                (isa > 0 && q.k->from_float == exo_cpu_kernels_isa(types[t], isa - 1)->from_float))
                continue;
            double ns = best_ns(quant_cb, &q, 10);
            if (isa == 0)
                base = ns;
            printf("  %-5s %-7s %7.2f GB/s of floats  %6.2f ns per 32  x%.1f vs scalar\n",
                   exo_dtype_name(types[t]), isa_names[isa], (double)q.n * sizeof(float) / ns,
                   ns / (double)q.n * 32, base / ns);
        }
    }
    exo_aligned_free(x);
    exo_aligned_free(q.q);
}

static bool wanted(enum exo_dtype t, int argc, char **argv)
{
    bool any = false;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--type") == 0 && i + 1 < argc) {
            any = true;
            if (strcmp(argv[i + 1], exo_dtype_name(t)) == 0)
                return true;
        }
    return !any;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
    struct exo_rng rng;
    exo_rng_seed(&rng, 42);
    mem_gbs = measure_memory();
    printf("memory read bandwidth (sum of a 256 MiB buffer, 1 thread): %.2f GB/s\n", mem_gbs);
    printf("best level: q4_1 %s, q8_0 %s, q4_K %s\n", exo_cpu_kernels(EXO_DTYPE_Q4_1)->isa,
           exo_cpu_kernels(EXO_DTYPE_Q8_0)->isa, exo_cpu_kernels(EXO_DTYPE_Q4_K)->isa);
    printf("\nmat-vec (activation quantized once, one vec_dot per row)\n");
    for (size_t t = 0; t < sizeof(weight_types) / sizeof(weight_types[0]); t++)
        if (wanted(weight_types[t], argc, argv))
            bench_matvec(&rng, weight_types[t]);
    if (wanted(EXO_DTYPE_Q4_1, argc, argv))
        bench_token(&rng);
    printf("\nmat-mat, 512 columns (prompt processing)\n");
    for (size_t t = 0; t < sizeof(weight_types) / sizeof(weight_types[0]); t++)
        if (wanted(weight_types[t], argc, argv))
            bench_matmat(&rng, weight_types[t]);
    bench_quantizers(&rng);
    return 0;
}
