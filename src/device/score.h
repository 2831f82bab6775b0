/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Scores: how fast a device really is, measured with the engine's own kernels and cached.
 *
 * For the CPU (the only device with a backend today; GPU backends add their own measurement
 * when their issue lands) exo_score_measure() runs, within a time budget of about two seconds:
 *   - memory read bandwidth: every pool thread streams its slice of a buffer larger than the
 *     caches;
 *   - mat-vec throughput per weight type: a one-token product through the CPU backend's
 *     mul_mat (activation quantization, the thread pool, the dispatched SIMD kernels: exactly
 *     what a decode step runs) over a matrix larger than the caches, as weight bytes per second;
 *   - the fixed cost of a mat-vec beyond its bytes, per type: a walk over many small matrices,
 *     each streamed from memory with its own fork and join, as a decode step walks from one
 *     weight matrix to the next; and the cost of one small elementwise op. A decode step of a
 *     small model runs hundreds of each, and on a busy machine a pool thread that has to be
 *     scheduled again costs more than the bytes;
 *   - mat-mat throughput per weight type for prompt processing: a batch of tokens through
 *     mul_mat, as GFLOP/s.
 * Each figure is the mean of repeated runs: a decode step is a sum of ops, so the slow ones
 * count with their real frequency.
 *
 * Results are cached as JSON in the state directory (EXO_SCORE_CACHE_FILE) under a hardware
 * fingerprint: CPU model, physical cores, hardware threads, memory size, ISA features, the
 * kernel ISA, the thread count and the exo version. A cached score whose fingerprint differs
 * is measured again; `exo devices --rescore` forces a measurement.
 *
 * Threads: measuring takes the CPU for the budget and must not run on the loop thread; the
 * daemon runs it on a compute thread at start, before the engine loads a model.
 */
#ifndef EXO_DEVICE_SCORE_H
#define EXO_DEVICE_SCORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "device/device.h"
#include "exo/dtype.h"

struct exo_statedir;

#define EXO_SCORE_MAX_TYPES   12
#define EXO_SCORE_CACHE_FILE  "device-score.json"
#define EXO_SCORE_CACHE_MAX   (64u << 10) /* bytes of cache file we are willing to read */
#define EXO_SCORE_FINGERPRINT 512
#define EXO_SCORE_BATCH       128 /* tokens in the mat-mat measurement */

struct exo_score_type {
    enum exo_dtype type;
    double matvec_gbps;   /* weight bytes per second, one token, matrix larger than the caches */
    double op_us;         /* what each mat-vec costs beyond its bytes and rows (quantizing
                           * the token, fork and join) */
    double matmul_gflops; /* 2 * rows * cols * tokens per second, EXO_SCORE_BATCH tokens */
    double row_ns;        /* what each output row of a mat-vec costs beyond its bytes (the
                           * dot product's final reduction and store), which weighs on the
                           * short rows of small models */
};

struct exo_score {
    char fingerprint[EXO_SCORE_FINGERPRINT]; /* what it was measured on */
    char version[32];                        /* exo version that measured it */
    uint64_t measured_ms;                    /* wall clock of the measurement */
    double seconds;                          /* how long measuring took */
    int32_t n_threads;                       /* compute threads used */
    double mem_bw_gbps;                      /* streaming read, all threads */
    double small_op_us;                      /* one elementwise op over one token */
    double others_cores; /* CPU other processes used while measuring, in cores (-1: unknown;
                          * not cached: a cached score was measured on a quiet machine) */
    uint32_t n_types;
    struct exo_score_type types[EXO_SCORE_MAX_TYPES];
};

struct exo_score_params {
    int32_t n_threads;           /* <= 0: the physical cores, as the engine defaults to */
    double budget_s;             /* 0: 2.0 */
    uint64_t stream_bytes;       /* matrix and buffer size for the streaming tests (at least
                                  * 4 MiB); 0: picked from the cache sizes (at least 64 MiB, at
                                  * most 1 GiB) */
    const enum exo_dtype *types; /* (optional) weight types to measure; NULL: every type the
                                  * CPU kernels compute with */
    size_t n_types;
    const atomic_bool *cancel; /* (optional) set by another thread to stop a measurement within
                                * one timed run: it then fails with EXO_ECANCELED */
    double busy_cores;         /* exo_score_get caches no score measured while other processes
                                * used more than this many cores; 0: a quarter of n_threads;
                                * < 0: cache whatever was measured */
};

/* Measure the CPU described by cpu (borrowed; cpu0 of a detection) into *ret. EXO_ENOMEM when
 * the buffers cannot be had, EXO_ECANCELED when params->cancel was set. */
int exo_score_measure(const struct exo_device *cpu, const struct exo_score_params *params,
                      struct exo_score *ret);

/* The fingerprint a score measured now on this CPU with n_threads (<= 0: physical cores) would
 * carry. */
void exo_score_fingerprint(const struct exo_device *cpu, int32_t n_threads, char *out, size_t size);

/* The figures for weight type t, or NULL. Borrowed from s. */
const struct exo_score_type *exo_score_find(const struct exo_score *s, enum exo_dtype t);

/*
 * JSON (owned by the caller), the cache file's content and the "score" of a device in the API:
 *   {"fingerprint": "...", "version": "0.1.0", "measured_ms": ..., "seconds": 1.9,
 *    "threads": 2, "mem_bw_gbps": 21.3, "small_op_us": 0.4,
 *    "types": [{"type": "q4_0", "matvec_gbps": 19.8, "op_us": 6.1, "matmul_gflops": 310.5,
 *               "row_ns": 4.2},
 *              ...]}
 */
cJSON *exo_score_to_json(const struct exo_score *s);

/* Parse what exo_score_to_json wrote (len bytes, e.g. a cache file: treated as outside input,
 * every field checked). EXO_EFORMAT with a sentence in diag when it is not a valid score. */
int exo_score_from_json(const char *text, size_t len, struct exo_score *ret, struct exo_diag *diag);

/*
 * The score for this CPU: the cached one when sd (may be NULL: no cache) holds one with the
 * same fingerprint and rescore is false, else a fresh measurement, saved to sd. *ret_cached
 * (may be NULL) says which. A cache that cannot be read or written costs only the caching (the
 * reason is in diag, for the caller to log). So does a measurement taken while other processes
 * kept the CPU busy (params->busy_cores): it serves now, and the next call measures again.
 */
int exo_score_get(struct exo_statedir *sd, const struct exo_device *cpu,
                  const struct exo_score_params *params, bool rescore, struct exo_score *ret,
                  bool *ret_cached, struct exo_diag *diag);

#endif
