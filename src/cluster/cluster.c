/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cluster node on the loop (see cluster.h): the transport, the state machine, a timer for
 * the state, and the delegate that connects them.
 *
 * Threads: only the loop thread runs this file. Lifetimes: the node owns the transport, the state
 * machine and its timer. exo_cluster_close frees the state machine at once (the transport stops
 * delivering as soon as it is closing), closes the transport, and frees the node when the timer's
 * close callback runs.
 */
#include "cluster/cluster.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"

struct exo_cluster {
    struct exo_cluster_hooks hooks;
    struct exo_transport *transport;
    struct exo_state *state; /* NULL until created, and after close */
    uv_timer_t timer;
    bool closing;
};

uint64_t exo_cluster_now_us(void)
{
    return exo_clock_ns() / 1000;
}

static void on_timer(uv_timer_t *timer);

/* Arm the state's timer at its deadline and the transport's at the membership machine's. */
static void reschedule(struct exo_cluster *c)
{
    if (c->closing || !c->state)
        return;
    uint64_t deadline = exo_state_next_deadline(c->state);
    uint64_t now = exo_cluster_now_us();
    uint64_t wait_ms = deadline > now ? (deadline - now + 999) / 1000 : 0;
    uv_timer_start(&c->timer, on_timer, wait_ms, 0);
    exo_transport_kick(c->transport);
}

static void on_timer(uv_timer_t *timer)
{
    struct exo_cluster *c = timer->data;
    exo_state_tick(c->state, exo_cluster_now_us());
    reschedule(c);
}

static void wake_cb(void *ctx)
{
    reschedule(ctx);
}

static void hex_id(const uint8_t *id, char *out)
{
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
}

/* Say what changed at the top: a new leader, or the state replaced by a snapshot. */
static void state_event_cb(void *ctx, const struct exo_state_event *ev)
{
    struct exo_cluster *c = ctx;
    uint8_t leader[EXO_MEMBERS_ID_BYTES];
    uint64_t term;
    char id[17];
    if (ev->type == EXO_STATE_EVENT_LEADER && exo_state_leader(c->state, leader, &term) == 0) {
        hex_id(leader, id);
        exo_log(EXO_LOG_INFO, "state", "leader %s%s, term %llu (log index %llu)", id,
                exo_state_is_leader(c->state) ? " (this node)" : "", (unsigned long long)term,
                (unsigned long long)ev->index);
    } else if (ev->type == EXO_STATE_EVENT_SNAPSHOT) {
        exo_log(EXO_LOG_INFO, "state", "state replaced by the leader's snapshot at index %llu",
                (unsigned long long)ev->index);
    }
    if (c->hooks.event_cb)
        c->hooks.event_cb(c->hooks.ctx, ev);
}

/* ---- the membership delegate ---- */

static void member_cb(void *ctx, enum exo_members_event event, const struct exo_member_info *info)
{
    struct exo_cluster *c = ctx;
    if (c->state)
        exo_state_member_event(c->state, event, info, exo_cluster_now_us());
    if (c->hooks.member_cb)
        c->hooks.member_cb(c->hooks.ctx, event, info);
}

static void message_cb(void *ctx, const uint8_t *from, const uint8_t *data, size_t len,
                       bool broadcast)
{
    struct exo_cluster *c = ctx;
    if (len && data[0] == EXO_STATE_CHANNEL) {
        if (c->state)
            exo_state_receive(c->state, from, data, len, broadcast, exo_cluster_now_us());
    } else if (c->hooks.message_cb) {
        c->hooks.message_cb(c->hooks.ctx, from, data, len, broadcast);
    }
}

static void local_state_cb(void *ctx, bool join, struct exo_buf *out)
{
    struct exo_cluster *c = ctx;
    if (c->state)
        exo_state_local_state(c->state, join, out);
}

static void merge_state_cb(void *ctx, bool join, const uint8_t *data, size_t len)
{
    struct exo_cluster *c = ctx;
    if (c->state)
        exo_state_merge_state(c->state, join, data, len, exo_cluster_now_us());
}

/* ---- public API ---- */

static void timer_closed(uv_handle_t *h)
{
    exo_free(h->data);
}

int exo_cluster_create(uv_loop_t *loop, const struct exo_cluster_config *cfg,
                       struct exo_cluster **ret_cluster)
{
    if (!loop || !cfg || !ret_cluster)
        return EXO_EINVAL;
    struct exo_cluster *c = exo_calloc(1, sizeof(*c));
    if (!c)
        return EXO_ENOMEM;
    c->hooks = cfg->hooks;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    struct exo_members_delegate dg = {.ctx = c,
                                      .event_cb = member_cb,
                                      .message_cb = message_cb,
                                      .local_state_cb = local_state_cb,
                                      .merge_state_cb = merge_state_cb};
    int rc = exo_transport_create(loop, &cfg->transport, &cfg->members, &dg, &c->transport);
    if (rc < 0)
        goto out;
    struct exo_state_config sc = cfg->state;
    memcpy(sc.id, cfg->members.id, EXO_MEMBERS_ID_BYTES);
    struct exo_state_hooks hooks = {.ctx = c, .event_cb = state_event_cb, .wake_cb = wake_cb};
    rc = exo_state_create(&sc, exo_transport_members(c->transport), &hooks, exo_cluster_now_us(),
                          &c->state);
    if (rc < 0) {
        exo_log(EXO_LOG_ERROR, "state", "cannot start the replicated state: %s", exo_strerror(rc));
        goto out;
    }
    reschedule(c);
    *ret_cluster = c;
    return 0;
out:
    exo_cluster_close(c);
    return rc;
}

struct exo_transport *exo_cluster_transport(struct exo_cluster *c)
{
    return c->transport;
}

struct exo_members *exo_cluster_members(struct exo_cluster *c)
{
    return exo_transport_members(c->transport);
}

struct exo_state *exo_cluster_state(struct exo_cluster *c)
{
    return c->state;
}

int exo_cluster_leave(struct exo_cluster *c)
{
    return exo_transport_leave(c->transport);
}

void exo_cluster_close(struct exo_cluster *c)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    exo_state_free(c->state);
    c->state = NULL;
    exo_transport_close(c->transport);
    uv_close((uv_handle_t *)&c->timer, timer_closed);
}
