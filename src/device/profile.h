/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Profiles for placement: what a model needs (struct exo_model_profile), what a device offers
 * (struct exo_device_profile: usable memory and measured speeds), a prediction of the tokens
 * per second a device reaches on a model (or on a layer range of it), and link figures between
 * nodes (struct exo_link).
 *
 * The prediction is a roofline with fixed costs, fitted to how the engine runs a decode step:
 * per layer, every weight matrix is streamed once at the device's measured mat-vec rate for its
 * type, each matrix product pays the measured fixed cost of a mat-vec of its type and each of
 * its output rows the measured cost of a row, the small ops
 * (norms, RoPE, cache store, attention, SwiGLU, residual adds) pay the measured small-op cost, and
 * attention reads the KV cache for the current context at the measured memory bandwidth. The
 * output projection is one more matrix. Prompt processing is compute-bound instead: FLOPs per
 * token at the measured mat-mat rate for each type. bench/score-accuracy checks the decode
 * prediction against the engine's measured speed.
 *
 * Everything here is plain arithmetic on numbers: no I/O, no logging, any thread.
 */
#ifndef EXO_DEVICE_PROFILE_H
#define EXO_DEVICE_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "device/device.h"
#include "device/score.h"
#include "exo/dtype.h"

struct exo_model;

/* Small ops a layer runs per token besides its matrix products: two RMS norms, two RoPEs, the
 * KV store, attention, SwiGLU and two residual adds (engine/shard.c). */
#define EXO_PROFILE_SMALL_OPS_PER_LAYER 9

struct exo_model_profile {
    char name[96];
    uint32_t n_layer, n_embd, n_ff, n_vocab, n_head, n_head_kv, head_dim;
    uint64_t weight_bytes;                        /* every tensor of the file */
    uint64_t layer_bytes[EXO_DTYPE_COUNT];        /* matrices of all layers together, by type */
    uint64_t layer_elems[EXO_DTYPE_COUNT];        /* their weights (multiply-adds per token) */
    uint32_t layer_mats_by_type[EXO_DTYPE_COUNT]; /* how many matrices (products per token) */
    uint64_t layer_rows[EXO_DTYPE_COUNT];         /* their output rows (dot products per token) */
    uint64_t layer_other_bytes;                   /* norms and biases of all layers */
    enum exo_dtype output_type;                   /* the output projection, read once per token */
    uint64_t output_bytes, output_elems, output_rows;
    uint64_t embd_bytes; /* the token embedding when it is not also the output (memory only) */
    uint64_t kv_bytes_per_token; /* f16 cache, all layers */
};

/* The profile of an opened model (borrowed). */
int exo_model_profile_from_model(const struct exo_model *m, struct exo_model_profile *ret);

/* Per layer, on average (placement assigns layer ranges). */
uint64_t exo_model_profile_layer_bytes(const struct exo_model_profile *m);

struct exo_device_profile {
    char device_id[EXO_DEVICE_ID_SIZE];
    uint64_t mem_usable; /* bytes for weights, KV cache and scratch */
    double mem_bw_gbps;
    double small_op_us;
    uint32_t n_types;
    struct exo_score_type types[EXO_SCORE_MAX_TYPES];
};

/* Usable memory: what is free now minus a margin for everything else on the machine (10 % of
 * the total, at least 512 MiB and at most 4 GiB). */
uint64_t exo_device_usable_memory(const struct exo_device *d);

/* A device's profile from its description and score (both borrowed). */
void exo_device_profile_init(struct exo_device_profile *ret, const struct exo_device *d,
                             const struct exo_score *s);

struct exo_prediction {
    double decode_tps;      /* generating one token at a time, n_past tokens in the cache */
    double prefill_tps;     /* evaluating a prompt in batches (context starting empty) */
    double layer_decode_s;  /* one layer's share of a decode step */
    double output_decode_s; /* the output projection and final norm's share */
    double layer_prefill_s; /* one layer's share of one prompt token */
    double output_prefill_s;
    uint64_t mem_needed; /* weights plus a KV cache of n_ctx tokens */
    bool fits;           /* mem_needed <= the device's usable memory */
};

/*
 * Predict a device running the whole model with n_ctx tokens of context, decoding with n_past
 * tokens already in the cache (a run of N generated tokens averages n_past = N / 2). A shard of
 * layers [a, b) costs (b - a) * layer_*_s, plus output_*_s on the last stage.
 * EXO_EUNSUPPORTED when the model has a weight type the device has no score for.
 */
int exo_device_profile_predict(const struct exo_device_profile *d,
                               const struct exo_model_profile *m, uint32_t n_ctx, uint32_t n_past,
                               struct exo_prediction *ret);

/* ---- links between nodes ------------------------------------------------------------------ */

/* Round-trip time smoothed as TCP does (RFC 6298: srtt gains 1/8 of each error, rttvar 1/4),
 * from gossip probe round trips; bandwidth smoothed the same way from data-plane transfers.
 * Owned by the loop thread. Initialise with {0}. */
struct exo_link {
    double srtt_ms, rttvar_ms;
    double bandwidth_mbps; /* megabytes per second; 0 until a transfer is observed */
    uint32_t rtt_samples, bw_samples;
};

void exo_link_observe_rtt(struct exo_link *l, double rtt_ms);
/* A transfer of bytes that took ns; transfers under 64 KiB say more about latency than
 * bandwidth and are ignored. */
void exo_link_observe_transfer(struct exo_link *l, uint64_t bytes, uint64_t ns);

/* Predicted seconds to move `bytes` one way: half a round trip plus the transfer at the
 * observed bandwidth (or at fallback_mbps when none is known yet). */
double exo_link_transfer_s(const struct exo_link *l, uint64_t bytes, double fallback_mbps);

#endif
