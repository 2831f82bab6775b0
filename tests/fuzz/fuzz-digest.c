/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the telemetry digest decoder (src/device/digest.h), which reads what other
 * nodes gossip: any bytes are decoded; whatever decodes is encoded again and must decode to the
 * same digest, and its JSON and Prometheus gauges are produced so the sanitizers see every
 * field used.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "device/digest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int family(void *ud, const char *name, const char *help)
{
    return name[0] && help[0] ? 0 : 1;
}

static int sample(void *ud, const struct exo_metric_label *labels, size_t n, double value)
{
    *(double *)ud += value + (double)n;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct exo_digest d, again;
    struct exo_diag diag = {{0}};
    if (exo_digest_decode(data, size, &d, &diag) < 0)
        return 0;
    struct exo_buf b;
    exo_buf_init(&b, EXO_DIGEST_MAX);
    /* Varints may come overlong, so the bytes need not match; the encoding is minimal, so it
     * is never longer, and it must mean the same. */
    if (exo_digest_encode(&d, &b) < 0 || b.len > size ||
        exo_digest_decode(b.data, b.len, &again, &diag) < 0 || memcmp(&d, &again, sizeof(d)) != 0)
        abort();
    exo_buf_free(&b);
    cJSON *j = exo_digest_to_json(&d);
    cJSON_Delete(j);
    double sum = 0;
    const char *id = "node";
    const struct exo_digest *ds = &d;
    struct exo_metrics_sink sink = {family, sample, &sum};
    if (exo_digest_metrics(&id, &ds, 1, &sink) != 0)
        abort();
    return 0;
}
