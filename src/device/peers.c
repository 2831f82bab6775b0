/* SPDX-License-Identifier: Apache-2.0 */
/* Every node's latest digest and the device records seen so far (see peers.h). */
#include "device/peers.h"

#include <stdbool.h>
#include <string.h>

#include "core/alloc.h"

struct peer_device {
    char id[EXO_DEVICE_ID_SIZE];
    uint64_t version;
    bool seen;      /* in the current look */
    uint8_t *value; /* owned: the last value, for the disappearance */
    size_t len;
};

struct peer {
    uint8_t id[EXO_PEERS_ID_SIZE];
    bool has_digest;
    uint64_t heard_ms;
    struct exo_digest digest;
    struct peer_device devices[EXO_DEVICE_MAX];
    size_t n_devices;
};

struct exo_peers {
    struct peer **v; /* owned, sorted by id */
    size_t n, cap;
};

int exo_peers_create(struct exo_peers **ret)
{
    *ret = exo_calloc(1, sizeof(**ret));
    return *ret ? 0 : EXO_ENOMEM;
}

static void peer_free(struct peer *e)
{
    for (size_t i = 0; i < e->n_devices; i++)
        exo_free(e->devices[i].value);
    exo_free(e);
}

void exo_peers_free(struct exo_peers *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        peer_free(p->v[i]);
    exo_free(p->v);
    exo_free(p);
}

/* The index of node, or where it would go (with *found false). */
static size_t locate(const struct exo_peers *p, const uint8_t *node, bool *found)
{
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(p->v[mid]->id, node, EXO_PEERS_ID_SIZE);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static struct peer *find(const struct exo_peers *p, const uint8_t *node)
{
    bool found;
    size_t i = locate(p, node, &found);
    return found ? p->v[i] : NULL;
}

static int get_or_add(struct exo_peers *p, const uint8_t *node, struct peer **ret)
{
    bool found;
    size_t i = locate(p, node, &found);
    if (found) {
        *ret = p->v[i];
        return 0;
    }
    if (p->n == EXO_PEERS_MAX)
        return EXO_ENOSPC;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 8;
        struct peer **v = exo_realloc(p->v, cap * sizeof(*v));
        if (!v)
            return EXO_ENOMEM;
        p->v = v;
        p->cap = cap;
    }
    struct peer *e = exo_calloc(1, sizeof(*e));
    if (!e)
        return EXO_ENOMEM;
    memcpy(e->id, node, EXO_PEERS_ID_SIZE);
    memmove(&p->v[i + 1], &p->v[i], (p->n - i) * sizeof(*p->v));
    p->v[i] = e;
    p->n++;
    *ret = e;
    return 0;
}

/* Drop the peers that hold nothing any more. */
static void compact(struct exo_peers *p)
{
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (p->v[i]->has_digest || p->v[i]->n_devices)
            p->v[k++] = p->v[i];
        else
            peer_free(p->v[i]);
    }
    p->n = k;
}

int exo_peers_put_digest(struct exo_peers *p, const uint8_t node[EXO_PEERS_ID_SIZE],
                         const struct exo_digest *d, uint64_t now_ms)
{
    struct peer *e = find(p, node);
    if (e && e->has_digest && d->seq <= e->digest.seq && d->t_ms <= e->digest.t_ms)
        return EXO_EREPLAY;
    if (!e) {
        int rc = get_or_add(p, node, &e);
        if (rc < 0)
            return rc;
    }
    e->digest = *d;
    e->has_digest = true;
    e->heard_ms = now_ms;
    return 0;
}

const struct exo_digest *exo_peers_digest(const struct exo_peers *p,
                                          const uint8_t node[EXO_PEERS_ID_SIZE])
{
    const struct peer *e = find(p, node);
    return e && e->has_digest ? &e->digest : NULL;
}

void exo_peers_expire(struct exo_peers *p, uint64_t cutoff_ms)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i]->has_digest && p->v[i]->heard_ms < cutoff_ms)
            p->v[i]->has_digest = false;
    compact(p);
}

size_t exo_peers_digests(const struct exo_peers *p, const uint8_t **ids,
                         const struct exo_digest **digests, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (!p->v[i]->has_digest)
            continue;
        if (n < cap) {
            ids[n] = p->v[i]->id;
            digests[n] = &p->v[i]->digest;
        }
        n++;
    }
    return n;
}

void exo_peers_devices_begin(struct exo_peers *p)
{
    for (size_t i = 0; i < p->n; i++)
        for (size_t j = 0; j < p->v[i]->n_devices; j++)
            p->v[i]->devices[j].seen = false;
}

/* Keep a copy of value as dev's last one. */
static int set_value(struct peer_device *dev, const void *value, size_t len)
{
    uint8_t *copy = exo_malloc(len ? len : 1);
    if (!copy)
        return EXO_ENOMEM;
    memcpy(copy, value, len);
    exo_free(dev->value);
    dev->value = copy;
    dev->len = len;
    return 0;
}

int exo_peers_device_seen(struct exo_peers *p, const uint8_t node[EXO_PEERS_ID_SIZE],
                          const char *device, uint64_t version, const void *value, size_t len,
                          exo_peers_device_cb cb, void *ud)
{
    size_t id_len = strnlen(device, EXO_DEVICE_ID_SIZE);
    if (id_len == 0 || id_len == EXO_DEVICE_ID_SIZE)
        return EXO_EINVAL;
    struct peer *e;
    int rc = get_or_add(p, node, &e);
    if (rc < 0)
        return rc;
    for (size_t j = 0; j < e->n_devices; j++) {
        struct peer_device *dev = &e->devices[j];
        if (strcmp(dev->id, device) != 0)
            continue;
        dev->seen = true;
        if (dev->version == version)
            return 0;
        if ((rc = set_value(dev, value, len)) < 0)
            return rc;
        dev->version = version;
        cb(ud, EXO_DEVICE_EVENT_CHANGED, node, device, value, len);
        return 0;
    }
    if (e->n_devices == EXO_DEVICE_MAX)
        return EXO_ENOSPC;
    struct peer_device *dev = &e->devices[e->n_devices];
    memset(dev, 0, sizeof(*dev));
    if ((rc = set_value(dev, value, len)) < 0) {
        compact(p); /* the peer may have been added for this record */
        return rc;
    }
    memcpy(dev->id, device, id_len + 1);
    dev->version = version;
    dev->seen = true;
    e->n_devices++;
    cb(ud, EXO_DEVICE_EVENT_APPEARED, node, device, value, len);
    return 0;
}

void exo_peers_devices_end(struct exo_peers *p, exo_peers_device_cb cb, void *ud)
{
    for (size_t i = 0; i < p->n; i++) {
        struct peer *e = p->v[i];
        size_t k = 0;
        for (size_t j = 0; j < e->n_devices; j++) {
            struct peer_device *dev = &e->devices[j];
            if (dev->seen) {
                e->devices[k++] = *dev;
                continue;
            }
            cb(ud, EXO_DEVICE_EVENT_DISAPPEARED, e->id, dev->id, dev->value, dev->len);
            exo_free(dev->value);
        }
        e->n_devices = k;
    }
    compact(p);
}
