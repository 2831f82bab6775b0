/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the upstream client's response parser (the bytes another node's API sends
 * back when this node forwards a request or pulls its telemetry): any bytes, cut into pieces,
 * must give the head at most once and before any body, body pieces that add up within the
 * input's size, and exactly one end.
 *
 * Input: byte 0 is the piece size (0: everything at once), the rest is the response.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "api/upstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
    int heads, dones;
    size_t body;
    size_t limit;
};

static void on_head(void *ud, int status, const char *content_type)
{
    struct seen *s = ud;
    if (s->heads++ || s->body || status < 100 || status > 999 || !content_type)
        abort();
}

static int on_body(void *ud, const void *data, size_t len)
{
    struct seen *s = ud;
    if (!s->heads || !data || len > s->limit - s->body)
        abort();
    s->body += len;
    return 0;
}

static void on_done(void *ud, int rc)
{
    struct seen *s = ud;
    if (s->dones++ || rc > 0)
        abort();
}

static const struct exo_upstream_handler handler = {on_head, on_body, on_done};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct seen s = {.limit = size - 1};
    if (exo_upstream_parse(data + 1, size - 1, data[0], &handler, &s) == 0 && s.dones != 1)
        abort();
    return 0;
}
