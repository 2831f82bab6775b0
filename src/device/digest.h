/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The telemetry digest: a compact, versioned summary of a node's latest telemetry sample that
 * gossip carries to every other node once a second (full history is pulled over HTTP instead).
 * It arrives from other nodes, so the decoder treats it as hostile input: every field is
 * bounds-checked, counts are capped, and anything malformed is refused with a reason.
 *
 * Wire format (version 1). Integers marked "var" are LEB128 varints (core/buf.h); the whole
 * digest is at most EXO_DIGEST_MAX bytes (about 40 bytes plus 4 to 20 per GPU in practice).
 *
 *   size  field             meaning and bounds
 *   1     version           EXO_DIGEST_VERSION; other versions are refused
 *   1     flags             reserved, must be 0
 *   var   seq               sample sequence number of the sending sampler
 *   var   t_ms              wall clock of the sample, ms since the epoch (< 2^53)
 *   var   devices_gen       bumped by the sender whenever its device list changes, so peers
 *                           know to fetch GET /api/v1/devices again
 *   var   cpu_permille      all CPUs busy, 0..1000
 *   var   n_cpus            logical CPUs, 0..4096
 *   var   mem_total_mib     (< 2^32)
 *   var   mem_avail_mib     <= mem_total_mib
 *   var   swap_total_mib    (< 2^32)
 *   var   swap_free_mib     <= swap_total_mib
 *   var   net_rx_bps        bytes per second (< 2^48)
 *   var   net_tx_bps        bytes per second (< 2^48)
 *   var   tokens_centi      engine tokens per second * 100 (< 10^9)
 *   1     n_gpus            0..EXO_DIGEST_MAX_GPUS, then per GPU:
 *     1     index           N of the sender's device "gpuN"; unique within the digest
 *     1     has             bits 0-5 as enum exo_gpu_field; bit 7 lost; bit 6 reserved (0)
 *     1     util_pct        if has UTIL: 0..100
 *     var   mem_used_mib    if has MEM: <= mem_total_mib
 *     var   mem_total_mib   if has MEM: (< 2^32)
 *     1     temp            if has TEMP: degrees Celsius + 64 (so -64..191)
 *     var   power_dw        if has POWER: deciwatts (< 10^6)
 *     var   clock_mhz       if has CLOCK: (< 10^5)
 *     var   mem_clock_mhz   if has MEM_CLOCK: (< 10^5)
 *   Nothing may follow the last GPU.
 */
#ifndef EXO_DEVICE_DIGEST_H
#define EXO_DEVICE_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/error.h"
#include "device/telemetry.h"

#define EXO_DIGEST_VERSION  1
#define EXO_DIGEST_MAX      512 /* bytes */
#define EXO_DIGEST_MAX_GPUS EXO_TELEMETRY_MAX_GPUS

struct exo_digest_gpu {
    uint8_t index; /* the sender's "gpuN" */
    uint8_t has;   /* enum exo_gpu_field bits */
    bool lost;
    uint8_t util_pct;
    int16_t temp_c;
    uint32_t mem_used_mib, mem_total_mib;
    uint32_t power_dw; /* deciwatts */
    uint32_t clock_mhz, mem_clock_mhz;
};

struct exo_digest {
    uint64_t seq, t_ms, devices_gen;
    uint16_t cpu_permille, n_cpus;
    uint32_t mem_total_mib, mem_avail_mib, swap_total_mib, swap_free_mib;
    uint64_t net_rx_bps, net_tx_bps;
    uint32_t tokens_centi;
    uint8_t n_gpus;
    struct exo_digest_gpu gpus[EXO_DIGEST_MAX_GPUS];
};

/* Summarise a sample (borrowed); devices_gen as the caller keeps it. Values beyond the wire
 * bounds are clamped; GPUs whose id is not "gpuN" are left out. */
void exo_digest_from_sample(const struct exo_telemetry_sample *s, uint64_t devices_gen,
                            struct exo_digest *ret);

/* Append the wire form of d to out. EXO_EINVAL when d breaks a bound (a digest made by
 * exo_digest_from_sample never does); out's own error (EXO_ETOOBIG, EXO_ENOMEM) otherwise. */
int exo_digest_encode(const struct exo_digest *d, struct exo_buf *out);

/* Decode len bytes from a peer. EXO_ETOOBIG over EXO_DIGEST_MAX, EXO_EUNSUPPORTED for another
 * version, EXO_ETRUNCATED / EXO_EFORMAT / EXO_ERANGE with a sentence in diag otherwise. */
int exo_digest_decode(const void *data, size_t len, struct exo_digest *ret, struct exo_diag *diag);

/* JSON of a digest for the API, in the shape of exo_telemetry_sample_to_json() (memory in bytes
 * at MiB resolution, "cpus" empty) plus "devices_gen" and "n_cpus". Owned by the caller; NULL
 * when out of memory. */
cJSON *exo_digest_to_json(const struct exo_digest *d);

/* ---- Prometheus ---------------------------------------------------------------------------- */

/* One label of a sample; strings borrowed for the call. */
struct exo_metric_label {
    const char *name;
    const char *value;
};

/* Where exo_digest_metrics writes: a family (always a gauge) is announced once, then its
 * samples follow, which is the grouping the Prometheus text format needs. The HTTP layer's
 * writer (exo_prom_family / exo_prom_sample) fits these two functions; a nonzero return stops
 * the walk and is returned. */
struct exo_metrics_sink {
    int (*family)(void *ud, const char *name, const char *help);
    int (*sample)(void *ud, const struct exo_metric_label *labels, size_t n_labels, double value);
    void *ud;
};

/* The gauges of n nodes' digests (labels node="<id>", and device="gpuN" for GPU gauges):
 * exo_node_cpu_usage_ratio, exo_node_cpus, exo_node_memory_total_bytes,
 * exo_node_memory_available_bytes, exo_node_swap_total_bytes, exo_node_swap_free_bytes,
 * exo_node_network_receive_bytes_per_second, exo_node_network_transmit_bytes_per_second,
 * exo_node_tokens_per_second, exo_gpu_lost, exo_gpu_utilization_ratio,
 * exo_gpu_memory_used_bytes, exo_gpu_memory_total_bytes, exo_gpu_temperature_celsius,
 * exo_gpu_power_watts, exo_gpu_clock_hertz, exo_gpu_memory_clock_hertz.
 * node_ids and digests are borrowed arrays of n. */
int exo_digest_metrics(const char *const *node_ids, const struct exo_digest *const *digests,
                       size_t n, const struct exo_metrics_sink *sink);

#endif
