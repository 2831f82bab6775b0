/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Links: what this node measures of its paths to the others, reported to the cluster as its
 * `links` record so that every node (placement, the dashboard's graph) sees the whole mesh. Today
 * that is the smoothed round-trip time of the gossip probes; the data plane will add bandwidth.
 *
 * The record is rewritten only when the set of peers changes or a round trip moves by more than
 * a quarter (and 0.2 ms): every write is a replicated log event, and jitter is not news.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "cli/daemon-int.h"
#include "cluster/members.h"
#include "cluster/state.h"
#include "core/alloc.h"

#define LINKS_INTERVAL_MS 5000
#define LINKS_MAX         512 /* peers in one record: well inside EXO_STATE_VALUE_MAX */
#define RTT_MOVE_MIN_US   200

struct link {
    uint8_t id[EXO_MEMBERS_ID_BYTES];
    uint32_t rtt_us;
};

struct daemon_links {
    uv_timer_t timer;
    struct link last[LINKS_MAX]; /* as last reported, in members-list order */
    size_t n_last;
    bool reported;
};

static bool moved(uint32_t before, uint32_t now)
{
    uint32_t diff = before > now ? before - now : now - before;
    return diff > RTT_MOVE_MIN_US && diff > before / 4;
}

/* The alive peers with a measured round trip, into out (LINKS_MAX); their count. */
static size_t measure(struct exo_members *m, struct link *out)
{
    size_t cap = exo_members_count(m, ~0u);
    struct exo_member_info *all = exo_calloc(cap ? cap : 1, sizeof(*all));
    if (!all)
        return 0;
    size_t n_all = exo_members_list(m, all, cap), n = 0;
    for (size_t i = 0; i < n_all && n < LINKS_MAX; i++) {
        if (all[i].is_self || all[i].state != EXO_MEMBER_STATE_ALIVE || !all[i].rtt_us)
            continue;
        memcpy(out[n].id, all[i].id, EXO_MEMBERS_ID_BYTES);
        out[n++].rtt_us = all[i].rtt_us;
    }
    exo_free(all);
    return n;
}

static bool changed(const struct daemon_links *l, const struct link *now, size_t n)
{
    if (!l->reported || n != l->n_last)
        return true;
    for (size_t i = 0; i < n; i++) {
        const struct link *before = NULL;
        for (size_t k = 0; k < l->n_last && !before; k++)
            if (memcmp(l->last[k].id, now[i].id, EXO_MEMBERS_ID_BYTES) == 0)
                before = &l->last[k];
        if (!before || moved(before->rtt_us, now[i].rtt_us))
            return true;
    }
    return false;
}

static void on_timer(uv_timer_t *t)
{
    struct daemon *d = t->data;
    struct daemon_links *l = d->links;
    struct exo_members *m = cluster_members(d);
    struct exo_state *s = cluster_state(d);
    if (!m || !s)
        return;
    struct link now[LINKS_MAX];
    size_t n = measure(m, now);
    if (!changed(l, now, n))
        return;
    cJSON *v = cJSON_CreateObject();
    cJSON *rtt = v ? cJSON_AddObjectToObject(v, "rtt_ms") : NULL;
    for (size_t i = 0; rtt && i < n; i++) {
        char hex[2 * EXO_MEMBERS_ID_BYTES + 1];
        sodium_bin2hex(hex, sizeof(hex), now[i].id, EXO_MEMBERS_ID_BYTES);
        /* Microsecond resolution is noise; 10 us keeps the record short. */
        cJSON_AddNumberToObject(rtt, hex, (double)(now[i].rtt_us / 10) / 100.0);
    }
    if (!rtt) {
        cJSON_Delete(v);
        v = NULL;
    }
    if (cluster_report(d, EXO_STATE_KIND_LINKS, "", v) < 0)
        return;
    memcpy(l->last, now, n * sizeof(now[0]));
    l->n_last = n;
    l->reported = true;
}

int links_start(struct daemon *d)
{
    struct daemon_links *l = exo_calloc(1, sizeof(*l));
    if (!l)
        return EXO_ENOMEM;
    d->links = l;
    uv_timer_init(&d->loop, &l->timer);
    l->timer.data = d;
    uv_timer_start(&l->timer, on_timer, LINKS_INTERVAL_MS / 5, LINKS_INTERVAL_MS);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    struct daemon *d = h->data;
    exo_free(d->links);
    d->links = NULL;
    stop_next(d);
}

void links_stop(struct daemon *d)
{
    uv_close((uv_handle_t *)&d->links->timer, on_closed);
}
