/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bounded event log: the most recent entries in a ring, capped in count and in payload
 * bytes. The oldest entries are evicted first; what remains of an evicted entry is its index and
 * hash (the base), which is enough to check that a follower's history continues ours. A follower
 * whose position is older than the base gets a snapshot instead of a range.
 */
#include "cluster/state-int.h"

#include <string.h>

#include "core/alloc.h"

int exo_state_log_init(struct exo_state_log *log, size_t cap, size_t max_bytes)
{
    memset(log, 0, sizeof(*log));
    log->ring = exo_calloc(cap, sizeof(*log->ring));
    if (!log->ring)
        return EXO_ENOMEM;
    log->cap = cap;
    log->max_bytes = max_bytes;
    return 0;
}

static struct exo_state_log_entry *slot(const struct exo_state_log *log, size_t i)
{
    return &log->ring[(log->start + i) % log->cap];
}

/* Drop the oldest entry; it becomes the base. */
static void evict(struct exo_state_log *log)
{
    struct exo_state_log_entry *e = slot(log, 0);
    log->base_index++;
    memcpy(log->base_hash, e->hash, EXO_STATE_HASH_BYTES);
    log->bytes -= e->len;
    exo_free(e->payload);
    memset(e, 0, sizeof(*e));
    log->start = (log->start + 1) % log->cap;
    log->count--;
}

void exo_state_log_reset(struct exo_state_log *log, uint64_t index,
                         const uint8_t hash[EXO_STATE_HASH_BYTES])
{
    while (log->count)
        evict(log);
    log->start = 0;
    log->base_index = index;
    memcpy(log->base_hash, hash, EXO_STATE_HASH_BYTES);
}

void exo_state_log_free(struct exo_state_log *log)
{
    if (!log->ring)
        return;
    while (log->count)
        evict(log);
    exo_free(log->ring);
    log->ring = NULL;
}

uint64_t exo_state_log_last(const struct exo_state_log *log)
{
    return log->base_index + log->count;
}

const struct exo_state_log_entry *exo_state_log_at(const struct exo_state_log *log, uint64_t index)
{
    if (index <= log->base_index || index > exo_state_log_last(log))
        return NULL;
    return slot(log, (size_t)(index - log->base_index - 1));
}

const uint8_t *exo_state_log_hash(const struct exo_state_log *log, uint64_t index)
{
    if (index == log->base_index)
        return log->base_hash;
    const struct exo_state_log_entry *e = exo_state_log_at(log, index);
    return e ? e->hash : NULL;
}

int exo_state_log_push(struct exo_state_log *log, const struct exo_state_event *entry,
                       const uint8_t hash[EXO_STATE_HASH_BYTES])
{
    uint8_t *payload = NULL;
    if (entry->len) {
        payload = exo_malloc(entry->len);
        if (!payload)
            return EXO_ENOMEM;
        memcpy(payload, entry->payload, entry->len);
    }
    while (log->count && (log->count == log->cap || log->bytes + entry->len > log->max_bytes))
        evict(log);
    struct exo_state_log_entry *e = slot(log, log->count);
    e->term = entry->term;
    e->type = entry->type;
    memcpy(e->hash, hash, EXO_STATE_HASH_BYTES);
    e->payload = payload;
    e->len = entry->len;
    log->bytes += entry->len;
    log->count++;
    return 0;
}
