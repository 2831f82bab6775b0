/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The simulated network (see sim.h). One binary heap orders two kinds of events by virtual time,
 * then by creation order so runs are reproducible: the delivery of a message, and the wake-up of a
 * node at the deadline its state machine asked for. A node keeps only its latest wake-up valid;
 * older ones still in the heap are recognised by their time and skipped. A wake-up runs whichever
 * of the node's machines (membership, and the replicated state when enabled) is due.
 */
#include "cluster/sim.h"

#include <stdio.h>
#include <string.h>

#include "cluster/leader.h"
#include "core/alloc.h"
#include "core/rng.h"
#include "net/seal.h"

#define SIM_PORT          EXO_MEMBERS_DEFAULT_PORT
#define WALL_EPOCH_MS     1700000000000ull /* the sealing clock: virtual time plus this */
#define STREAM_TIMEOUT_US 10000000ull

enum event_kind { EV_DELIVER, EV_WAKE };

struct message {
    struct exo_members_addr from;
    bool reliable;
    size_t len;
    uint8_t data[];
};

struct event {
    uint64_t at_us;
    uint64_t order;
    enum event_kind kind;
    size_t node;
    struct message *msg; /* owned, for EV_DELIVER */
};

struct node {
    struct exo_sim *sim;
    size_t index;
    uint8_t id[EXO_MEMBERS_ID_BYTES];
    struct exo_members_addr addr;
    struct exo_members *members; /* NULL while not running */
    struct exo_state *state;     /* NULL while not running or without cfg.state */
    struct exo_seal *seal;
    uint64_t wake_us; /* the valid wake-up, UINT64_MAX when none */
    int group;
};

struct exo_sim {
    struct exo_sim_config cfg;
    struct exo_rng rng;
    struct node *nodes;
    struct event *heap;
    size_t heap_len, heap_cap;
    uint64_t order;
    uint64_t now_us;
    uint8_t *buf; /* sealing and opening scratch */
    size_t buf_cap;
    struct exo_sim_stats stats;
};

/* ---- event heap ---- */

static bool ev_less(const struct event *a, const struct event *b)
{
    return a->at_us < b->at_us || (a->at_us == b->at_us && a->order < b->order);
}

static int heap_push(struct exo_sim *sim, struct event ev)
{
    if (sim->heap_len == sim->heap_cap) {
        size_t cap = sim->heap_cap ? sim->heap_cap * 2 : 1024;
        struct event *h = exo_realloc(sim->heap, cap * sizeof(*h));
        if (!h)
            return EXO_ENOMEM;
        sim->heap = h;
        sim->heap_cap = cap;
    }
    ev.order = sim->order++;
    size_t i = sim->heap_len++;
    sim->heap[i] = ev;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ev_less(&sim->heap[i], &sim->heap[parent]))
            break;
        struct event t = sim->heap[i];
        sim->heap[i] = sim->heap[parent];
        sim->heap[parent] = t;
        i = parent;
    }
    return 0;
}

static struct event heap_pop(struct exo_sim *sim)
{
    struct event top = sim->heap[0];
    sim->heap[0] = sim->heap[--sim->heap_len];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < sim->heap_len && ev_less(&sim->heap[l], &sim->heap[m]))
            m = l;
        if (r < sim->heap_len && ev_less(&sim->heap[r], &sim->heap[m]))
            m = r;
        if (m == i)
            break;
        struct event t = sim->heap[i];
        sim->heap[i] = sim->heap[m];
        sim->heap[m] = t;
        i = m;
    }
    return top;
}

/* ---- nodes ---- */

static long index_of_addr(const struct exo_sim *sim, const struct exo_members_addr *a)
{
    if (a->family != EXO_MEMBERS_FAMILY_IPV4 || a->ip[0] != 198 || a->ip[1] < 18 || a->ip[1] > 19 ||
        a->port != SIM_PORT)
        return -1;
    size_t i = (size_t)(a->ip[1] - 18) << 16 | (size_t)a->ip[2] << 8 | a->ip[3];
    return i < sim->cfg.nodes ? (long)i : -1;
}

/* Ask the node's machine for its next deadline and make that the node's valid wake-up. */
static void reschedule(struct node *n)
{
    if (!n->members)
        return;
    uint64_t d = exo_members_next_deadline(n->members);
    if (n->state) {
        uint64_t ds = exo_state_next_deadline(n->state);
        d = ds < d ? ds : d;
    }
    if (d <= n->sim->now_us)
        d = n->sim->now_us + 1; /* due now: run it after the events already queued for now */
    if (d == n->wake_us)
        return;
    n->wake_us = d;
    heap_push(n->sim, (struct event){.at_us = d, .kind = EV_WAKE, .node = n->index});
}

/* A stream is not lossless under loss, only slow: the handshake and the data exchange are each
 * a round trip that is retried, after Linux's initial RTOs (1 s for SYN, 200 ms for data,
 * doubling), until it gets through; past STREAM_TIMEOUT_US the connection is abandoned, as the
 * transport's timeouts would. */
static uint64_t stream_delay(struct exo_sim *sim)
{
    uint64_t delay = 3ull * sim->cfg.latency_us;
    double round_trip_ok = (1.0 - sim->cfg.loss) * (1.0 - sim->cfg.loss);
    static const uint64_t rto_us[2] = {1000000, 200000};
    for (int phase = 0; phase < 2; phase++) {
        uint64_t rto = rto_us[phase];
        while (exo_rng_uniform(&sim->rng) >= round_trip_ok) {
            delay += rto;
            rto *= 2;
            if (delay > STREAM_TIMEOUT_US)
                return UINT64_MAX;
        }
    }
    return delay;
}

/* Seal data (when the sender seals) and queue it for delivery to node dst at at_us. */
static int queue_message(struct exo_sim *sim, const struct node *src, size_t dst,
                         const uint8_t *data, size_t len, bool reliable, uint64_t at_us)
{
    size_t wire = len;
    if (src->seal) {
        int rc = exo_seal_seal(src->seal, data, len, WALL_EPOCH_MS + sim->now_us / 1000, sim->buf,
                               sim->buf_cap, &wire);
        if (rc < 0)
            return rc;
        data = sim->buf;
    }
    struct message *msg = exo_malloc(sizeof(*msg) + wire);
    if (!msg)
        return EXO_ENOMEM;
    msg->from = src->addr;
    msg->reliable = reliable;
    msg->len = wire;
    memcpy(msg->data, data, wire);
    int rc =
        heap_push(sim, (struct event){.at_us = at_us, .kind = EV_DELIVER, .node = dst, .msg = msg});
    if (rc < 0)
        exo_free(msg);
    return rc;
}

static void send_msg(struct node *n, const struct exo_members_addr *to, const uint8_t *data,
                     size_t len, bool reliable)
{
    struct exo_sim *sim = n->sim;
    size_t wire = len + EXO_SEAL_OVERHEAD;
    if (reliable) {
        sim->stats.streams++;
        sim->stats.stream_bytes += wire;
    } else {
        sim->stats.datagrams++;
        sim->stats.datagram_bytes += wire;
    }
    long dst = index_of_addr(sim, to);
    if (dst < 0 || !sim->nodes[dst].members || sim->nodes[dst].group != n->group) {
        sim->stats.blocked++;
        return;
    }
    if (!reliable && sim->cfg.loss > 0 && exo_rng_uniform(&sim->rng) < sim->cfg.loss) {
        sim->stats.lost++;
        return;
    }
    uint64_t delay = reliable ? stream_delay(sim) : sim->cfg.latency_us;
    if (delay == UINT64_MAX) {
        sim->stats.blocked++;
        return;
    }
    if (sim->cfg.jitter_us)
        delay += exo_rng_below(&sim->rng, sim->cfg.jitter_us + 1);
    queue_message(sim, n, (size_t)dst, data, len, reliable, sim->now_us + delay);
}

static void send_packet_cb(void *ctx, const struct exo_members_addr *to, const uint8_t *data,
                           size_t len)
{
    send_msg(ctx, to, data, len, false);
}

static void send_stream_cb(void *ctx, const struct exo_members_addr *to, const uint8_t *data,
                           size_t len)
{
    send_msg(ctx, to, data, len, true);
}

static void event_cb(void *ctx, enum exo_members_event event, const struct exo_member_info *info)
{
    struct node *n = ctx;
    if (n->sim->cfg.event_cb)
        n->sim->cfg.event_cb(n->sim->cfg.ctx, n->index, event, info, n->sim->now_us);
    if (n->state)
        exo_state_member_event(n->state, event, info, n->sim->now_us);
}

static void message_cb(void *ctx, const uint8_t *from, const uint8_t *data, size_t len,
                       bool broadcast)
{
    struct node *n = ctx;
    if (n->state && len && data[0] == EXO_STATE_CHANNEL)
        exo_state_receive(n->state, from, data, len, broadcast, n->sim->now_us);
    else if (n->sim->cfg.message_cb)
        n->sim->cfg.message_cb(n->sim->cfg.ctx, n->index, from, data, len, broadcast);
}

static void local_state_cb(void *ctx, bool join, struct exo_buf *out)
{
    struct node *n = ctx;
    if (n->state)
        exo_state_local_state(n->state, join, out);
    else if (n->sim->cfg.local_state_cb)
        n->sim->cfg.local_state_cb(n->sim->cfg.ctx, n->index, join, out);
}

static void merge_state_cb(void *ctx, bool join, const uint8_t *data, size_t len)
{
    struct node *n = ctx;
    if (n->state)
        exo_state_merge_state(n->state, join, data, len, n->sim->now_us);
    else if (n->sim->cfg.merge_state_cb)
        n->sim->cfg.merge_state_cb(n->sim->cfg.ctx, n->index, join, data, len);
}

static void state_wake_cb(void *ctx)
{
    reschedule(ctx);
}

static void state_event_cb(void *ctx, const struct exo_state_event *event)
{
    struct node *n = ctx;
    if (n->sim->cfg.state_event_cb)
        n->sim->cfg.state_event_cb(n->sim->cfg.ctx, n->index, event, n->sim->now_us);
}

/* Stop node n's machines, the state first: it borrows the membership machine. */
static void stop_node(struct node *n)
{
    exo_state_free(n->state);
    n->state = NULL;
    exo_members_free(n->members);
    n->members = NULL;
    n->wake_us = UINT64_MAX;
}

static void deliver(struct exo_sim *sim, struct node *n, struct message *msg)
{
    if (!n->members || index_of_addr(sim, &msg->from) < 0 ||
        sim->nodes[index_of_addr(sim, &msg->from)].group != n->group) {
        sim->stats.blocked++;
        return;
    }
    const uint8_t *data = msg->data;
    size_t len = msg->len;
    if (n->seal) {
        if (exo_seal_open(n->seal, msg->data, msg->len, WALL_EPOCH_MS + sim->now_us / 1000,
                          sim->buf, sim->buf_cap, &len, NULL) < 0) {
            sim->stats.seal_drops++;
            return;
        }
        data = sim->buf;
    }
    exo_members_receive(n->members, &msg->from, data, len, msg->reliable, sim->now_us);
    reschedule(n);
}

/* ---- public API ---- */

int exo_sim_create(const struct exo_sim_config *cfg, struct exo_sim **ret_sim)
{
    int rc = EXO_EINVAL;
    struct exo_sim *sim = NULL;
    if (!cfg || cfg->nodes == 0 || cfg->nodes > 65536 || cfg->loss < 0 || cfg->loss > 1)
        goto out;
    rc = EXO_ENOMEM;
    sim = exo_calloc(1, sizeof(*sim));
    if (!sim)
        goto out;
    sim->cfg = *cfg;
    if (!sim->cfg.cluster)
        sim->cfg.cluster = "sim";
    /* Leave room for the seal, as the real transport does. */
    if (sim->cfg.members.max_packet > EXO_MEMBERS_PACKET_MAX - EXO_SEAL_OVERHEAD)
        sim->cfg.members.max_packet = EXO_MEMBERS_PACKET_MAX - EXO_SEAL_OVERHEAD;
    exo_rng_seed(&sim->rng, cfg->seed);
    sim->buf_cap = EXO_MEMBERS_STREAM_MAX + EXO_SEAL_OVERHEAD;
    sim->buf = exo_malloc(sim->buf_cap);
    sim->nodes = exo_calloc(cfg->nodes, sizeof(*sim->nodes));
    if (!sim->buf || !sim->nodes)
        goto out;
    for (size_t i = 0; i < cfg->nodes; i++) {
        struct node *n = &sim->nodes[i];
        n->sim = sim;
        n->index = i;
        n->wake_us = UINT64_MAX;
        uint64_t r = exo_rng_next(&sim->rng);
        memcpy(n->id, &r, 8);
        for (int b = 0; b < 8; b++)
            n->id[8 + b] = (uint8_t)((uint64_t)i >> (8 * b));
        n->addr.family = EXO_MEMBERS_FAMILY_IPV4;
        n->addr.ip[0] = 198;
        n->addr.ip[1] = (uint8_t)(18 + (i >> 16));
        n->addr.ip[2] = (uint8_t)(i >> 8);
        n->addr.ip[3] = (uint8_t)i;
        n->addr.port = SIM_PORT;
        if (cfg->seal) {
            struct exo_seal_config sc = {.cluster = sim->cfg.cluster,
                                         .replay_entries = cfg->replay_entries};
            rc = exo_seal_create(&sc, &n->seal);
            if (rc < 0)
                goto out;
        }
    }
    *ret_sim = sim;
    sim = NULL;
    rc = 0;
out:
    exo_sim_free(sim);
    return rc;
}

void exo_sim_free(struct exo_sim *sim)
{
    if (!sim)
        return;
    for (size_t i = 0; sim->nodes && i < sim->cfg.nodes; i++) {
        stop_node(&sim->nodes[i]);
        exo_seal_free(sim->nodes[i].seal);
    }
    for (size_t i = 0; i < sim->heap_len; i++)
        exo_free(sim->heap[i].msg);
    exo_free(sim->heap);
    exo_free(sim->nodes);
    exo_free(sim->buf);
    exo_free(sim);
}

int exo_sim_start(struct exo_sim *sim, size_t node)
{
    if (node >= sim->cfg.nodes || sim->nodes[node].members)
        return EXO_EINVAL;
    struct node *n = &sim->nodes[node];
    struct exo_members_config cfg = sim->cfg.members;
    memcpy(cfg.id, n->id, EXO_MEMBERS_ID_BYTES);
    snprintf(cfg.name, sizeof(cfg.name), "node-%zu", node);
    cfg.addr = n->addr;
    cfg.meta.gossip_port = SIM_PORT;
    cfg.seed = sim->cfg.seed * 1000003u + node;
    /* A restarted node starts above its previous incarnations, as the daemon's does. */
    cfg.incarnation = sim->now_us / 1000;
    struct exo_members_io io = {
        .ctx = n, .send_packet_cb = send_packet_cb, .send_stream_cb = send_stream_cb};
    struct exo_members_delegate dg = {.ctx = n,
                                      .event_cb = event_cb,
                                      .message_cb = message_cb,
                                      .local_state_cb = local_state_cb,
                                      .merge_state_cb = merge_state_cb};
    int rc = exo_members_create(&cfg, &io, &dg, sim->now_us, &n->members);
    if (rc < 0)
        return rc;
    if (sim->cfg.state) {
        struct exo_state_config sc = sim->cfg.state_cfg;
        memcpy(sc.id, n->id, EXO_MEMBERS_ID_BYTES);
        struct exo_state_hooks hooks = {
            .ctx = n, .event_cb = state_event_cb, .wake_cb = state_wake_cb};
        rc = exo_state_create(&sc, n->members, &hooks, sim->now_us, &n->state);
        if (rc < 0) {
            stop_node(n);
            return rc;
        }
    }
    n->wake_us = UINT64_MAX;
    reschedule(n);
    return 0;
}

int exo_sim_join(struct exo_sim *sim, size_t node, const size_t *seeds, size_t n)
{
    if (node >= sim->cfg.nodes || !sim->nodes[node].members)
        return EXO_EINVAL;
    struct exo_members_addr addrs[64];
    size_t k = 0;
    for (size_t i = 0; i < n && k < 64; i++)
        if (seeds[i] < sim->cfg.nodes)
            addrs[k++] = sim->nodes[seeds[i]].addr;
    int rc = exo_members_join(sim->nodes[node].members, addrs, k, sim->now_us);
    reschedule(&sim->nodes[node]);
    return rc;
}

void exo_sim_kill(struct exo_sim *sim, size_t node)
{
    if (node < sim->cfg.nodes)
        stop_node(&sim->nodes[node]);
}

int exo_sim_leave(struct exo_sim *sim, size_t node)
{
    if (node >= sim->cfg.nodes || !sim->nodes[node].members)
        return EXO_EINVAL;
    int rc = exo_members_leave(sim->nodes[node].members, sim->now_us);
    reschedule(&sim->nodes[node]);
    return rc;
}

bool exo_sim_running(const struct exo_sim *sim, size_t node)
{
    return node < sim->cfg.nodes && sim->nodes[node].members;
}

void exo_sim_set_group(struct exo_sim *sim, size_t node, int group)
{
    if (node < sim->cfg.nodes)
        sim->nodes[node].group = group;
}

void exo_sim_set_loss(struct exo_sim *sim, double loss)
{
    sim->cfg.loss = loss < 0 ? 0 : (loss > 1 ? 1 : loss);
}

int exo_sim_inject(struct exo_sim *sim, size_t to, size_t from, const uint8_t *data, size_t len,
                   bool reliable)
{
    if (to >= sim->cfg.nodes || from >= sim->cfg.nodes || len > EXO_MEMBERS_STREAM_MAX)
        return EXO_EINVAL;
    return queue_message(sim, &sim->nodes[from], to, data, len, reliable, sim->now_us);
}

void exo_sim_run_until(struct exo_sim *sim, uint64_t t_us)
{
    while (sim->heap_len && sim->heap[0].at_us <= t_us) {
        struct event ev = heap_pop(sim);
        sim->now_us = ev.at_us;
        struct node *n = &sim->nodes[ev.node];
        if (ev.kind == EV_DELIVER) {
            deliver(sim, n, ev.msg);
            exo_free(ev.msg);
            continue;
        }
        if (!n->members || ev.at_us != n->wake_us)
            continue;
        n->wake_us = UINT64_MAX;
        if (sim->now_us >= exo_members_next_deadline(n->members))
            exo_members_tick(n->members, sim->now_us);
        if (n->state && sim->now_us >= exo_state_next_deadline(n->state))
            exo_state_tick(n->state, sim->now_us);
        reschedule(n);
    }
    if (t_us > sim->now_us)
        sim->now_us = t_us;
}

uint64_t exo_sim_now(const struct exo_sim *sim)
{
    return sim->now_us;
}

struct exo_members *exo_sim_members(struct exo_sim *sim, size_t node)
{
    return node < sim->cfg.nodes ? sim->nodes[node].members : NULL;
}

struct exo_state *exo_sim_state(struct exo_sim *sim, size_t node)
{
    return node < sim->cfg.nodes ? sim->nodes[node].state : NULL;
}

struct exo_seal *exo_sim_seal(struct exo_sim *sim, size_t node)
{
    return node < sim->cfg.nodes ? sim->nodes[node].seal : NULL;
}

void exo_sim_addr(const struct exo_sim *sim, size_t node, struct exo_members_addr *ret_addr)
{
    *ret_addr = sim->nodes[node].addr;
}

void exo_sim_id(const struct exo_sim *sim, size_t node, uint8_t ret_id[EXO_MEMBERS_ID_BYTES])
{
    memcpy(ret_id, sim->nodes[node].id, EXO_MEMBERS_ID_BYTES);
}

long exo_sim_node_of(const struct exo_sim *sim, const uint8_t id[EXO_MEMBERS_ID_BYTES])
{
    uint64_t i = 0;
    for (int b = 7; b >= 0; b--)
        i = i << 8 | id[8 + b];
    if (i >= sim->cfg.nodes || memcmp(sim->nodes[i].id, id, EXO_MEMBERS_ID_BYTES) != 0)
        return -1;
    return (long)i;
}

bool exo_sim_node_converged(const struct exo_sim *sim, size_t node)
{
    const struct node *n = &sim->nodes[node];
    if (!n->members)
        return false;
    size_t expect = 0;
    for (size_t j = 0; j < sim->cfg.nodes; j++) {
        const struct node *o = &sim->nodes[j];
        if (!o->members || o->group != n->group)
            continue;
        expect++;
        struct exo_member_info info;
        if (exo_members_get(n->members, o->id, &info) < 0 ||
            (info.state != EXO_MEMBER_STATE_ALIVE && info.state != EXO_MEMBER_STATE_SUSPECT))
            return false;
    }
    unsigned live = 1u << EXO_MEMBER_STATE_ALIVE | 1u << EXO_MEMBER_STATE_SUSPECT;
    return exo_members_count(n->members, live) == expect;
}

bool exo_sim_converged(const struct exo_sim *sim)
{
    for (size_t i = 0; i < sim->cfg.nodes; i++)
        if (sim->nodes[i].members && !exo_sim_node_converged(sim, i))
            return false;
    return true;
}

void exo_sim_get_stats(const struct exo_sim *sim, struct exo_sim_stats *ret_stats)
{
    *ret_stats = sim->stats;
}

/* A running node's own priority, as its membership machine advertises it. */
static int32_t own_priority(const struct node *n)
{
    struct exo_member_info info;
    return exo_members_get(n->members, n->id, &info) == 0 ? info.meta.leader_priority : 0;
}

long exo_sim_expected_leader(const struct exo_sim *sim, int group)
{
    long best = -1;
    int32_t best_prio = 0;
    for (size_t i = 0; i < sim->cfg.nodes; i++) {
        const struct node *n = &sim->nodes[i];
        if (!n->members || n->group != group)
            continue;
        int32_t prio = own_priority(n);
        if (best < 0 || exo_leader_rank_cmp(prio, n->id, best_prio, sim->nodes[best].id) < 0) {
            best = (long)i;
            best_prio = prio;
        }
    }
    return best;
}

/* Node n agrees with the leader l: same claim followed, same log position, leader, term and
 * digest. */
static bool agrees(struct node *n, struct node *l)
{
    struct exo_leader_claim cn, cl;
    exo_state_following(n->state, &cn);
    exo_state_following(l->state, &cl);
    uint64_t in, il, tn, tl;
    uint8_t hn[EXO_STATE_HASH_BYTES], hl[EXO_STATE_HASH_BYTES];
    uint8_t dn[EXO_STATE_HASH_BYTES], dl[EXO_STATE_HASH_BYTES];
    uint8_t ln[EXO_MEMBERS_ID_BYTES], ll[EXO_MEMBERS_ID_BYTES];
    if (cn.term != cl.term || memcmp(cn.id, cl.id, EXO_MEMBERS_ID_BYTES) != 0)
        return false;
    exo_state_position(n->state, &in, hn);
    exo_state_position(l->state, &il, hl);
    if (in != il || memcmp(hn, hl, sizeof(hn)) != 0)
        return false;
    if (exo_state_leader(n->state, ln, &tn) < 0 || exo_state_leader(l->state, ll, &tl) < 0 ||
        tn != tl || memcmp(ln, ll, sizeof(ln)) != 0)
        return false;
    exo_state_digest(n->state, dn);
    exo_state_digest(l->state, dl);
    return memcmp(dn, dl, sizeof(dn)) == 0;
}

bool exo_sim_state_converged(struct exo_sim *sim)
{
    for (size_t i = 0; i < sim->cfg.nodes; i++) {
        struct node *n = &sim->nodes[i];
        if (!n->members)
            continue;
        if (!n->state)
            return false;
        long e = exo_sim_expected_leader(sim, n->group);
        struct node *l = &sim->nodes[e];
        struct exo_leader_claim c;
        exo_state_following(l->state, &c);
        if (!exo_state_is_leader(l->state) || memcmp(c.id, l->id, EXO_MEMBERS_ID_BYTES) != 0 ||
            !agrees(n, l))
            return false;
    }
    return true;
}
