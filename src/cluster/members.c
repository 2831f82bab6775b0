/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SWIM + Lifeguard membership as a sans-IO state machine (the contract is in members.h, the
 * design and its measured behaviour in docs/internals/membership.md).
 *
 * Layout of this file, top to bottom: the formulas; member storage (a list in probe order plus an
 * id hash); the broadcast queue; packet composition; the protocol handlers (alive, suspect, dead,
 * probe, gossip, push-pull); message dispatch; and the public API in lifecycle order.
 *
 * State that matters for correctness:
 *  - Every member, this node included, has an incarnation. A statement about a member carries the
 *    incarnation it was made at: ALIVE needs a strictly newer incarnation to override anything;
 *    SUSPECT overrides ALIVE at the same incarnation; DEAD and LEFT override both. Only the member
 *    itself raises its incarnation, to refute a suspicion or death, or to publish new metadata.
 *  - At most one probe is in flight. Its deadline for a direct ack is the probe timeout, its
 *    deadline overall is the probe interval (both scaled by the local health multiplier); acks
 *    via relays carry the same sequence number as the direct ping.
 *  - Broadcasts wait in tiers by transmit count; each packet takes the least-sent first, and a
 *    newer statement about a member replaces the queued one.
 */
#include "cluster/members.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cluster/members-int.h"
#include "core/alloc.h"
#include "core/rng.h"

#define MAX_CONFIRM     8   /* suspicion confirmations tracked (k = suspicion_mult - 2) */
#define MAX_RELAYS      128 /* indirect probes this node relays at once */
#define MAX_SEEDS       64
#define REJOIN_FIRST_MS 250 /* the first seed retry while alone; then the wait doubles */
#define MAX_FAILED      64  /* recently failed members worth a reconnection attempt */
#define MAX_TIERS       64  /* transmit counts tracked by the queue (the limit is 16 at 4096) */
#define SEEN_MAX        512
#define REAP_EVERY_US   1000000u
#define MIN_PIGGYBACK   24 /* below this much free space, stop looking for broadcasts to add */
#define MAX_MISSES      16 /* queued broadcasts too big for the space left before giving up */
#define US_PER_MS       1000u

/* ---- formulas ---- */

uint64_t exo_members_suspicion_min_ms(uint32_t mult, size_t n, uint32_t interval_ms)
{
    double scale = n > 1 ? log10((double)n) : 0.0;
    if (scale < 1.0)
        scale = 1.0;
    /* Millisecond-precise scale, as memberlist rounds it, so tables match. */
    uint64_t scale_milli = (uint64_t)(scale * 1000.0);
    return (uint64_t)mult * scale_milli * interval_ms / 1000u;
}

uint64_t exo_members_suspicion_timeout_ms(uint64_t min_ms, uint64_t max_ms, uint32_t k, uint32_t c)
{
    if (k == 0 || max_ms <= min_ms)
        return min_ms;
    double frac = log((double)c + 1.0) / log((double)k + 1.0);
    double raw = (double)max_ms - frac * (double)(max_ms - min_ms);
    uint64_t t = raw <= 0 ? 0 : (uint64_t)floor(raw);
    return t < min_ms ? min_ms : t;
}

uint32_t exo_members_retransmit_limit(uint32_t mult, size_t n)
{
    return mult * (uint32_t)ceil(log10((double)n + 1.0));
}

uint64_t exo_members_push_pull_ms(uint32_t base_ms, size_t n)
{
    if (n <= 32)
        return base_ms;
    double mult = ceil(log2((double)n) - log2(32.0)) + 1.0;
    return (uint64_t)mult * base_ms;
}

/* ---- types ---- */

struct suspicion {
    uint64_t start_us, deadline_us;
    uint64_t min_ms, max_ms;
    uint32_t k, n;
    uint64_t verify_at_us; /* when the last-chance probe goes out (fixed with the deadline) */
    bool verifying;        /* the last-chance probe is out */
    uint32_t verify_seq;   /* its sequence number */
    uint64_t verify_sent_us;
    uint8_t accuser[EXO_MEMBERS_ID_BYTES];
    uint8_t confirmers[MAX_CONFIRM][EXO_MEMBERS_ID_BYTES];
};

struct member;

struct bcast {
    struct bcast *prev, *next;
    struct member *owner; /* the member this statement is about; NULL for application data */
    uint32_t transmits;
    size_t len;
    uint8_t data[]; /* one encoded message: type | length | body */
};

struct member {
    uint8_t id[EXO_MEMBERS_ID_BYTES];
    char name[EXO_MEMBERS_NAME_MAX + 1];
    struct exo_members_addr addr;
    struct exo_members_meta meta; /* blob owned */
    uint64_t incarnation;
    enum exo_member_state state;
    uint64_t state_since_us;
    struct suspicion *susp; /* owned, while suspect */
    size_t susp_pos;        /* index in exo_members.suspects */
    struct bcast *bcast;    /* the queued statement about this member, if any */
    uint32_t srtt_us, rttvar_us;
    uint64_t last_ack_us; /* when it last answered one of our probes */
};

struct relay {
    bool active;
    bool want_nack;
    uint32_t seq;      /* of our ping to the target */
    uint32_t orig_seq; /* of the requester's probe */
    struct exo_members_addr requester;
    uint64_t deadline_us;
};

struct probe {
    bool active;
    bool indirect_sent;
    uint8_t target[EXO_MEMBERS_ID_BYTES];
    uint32_t seq;
    uint64_t sent_us, direct_deadline_us, deadline_us;
    uint32_t expected_nacks, nacks;
};

struct failed {
    uint8_t id[EXO_MEMBERS_ID_BYTES];
    struct exo_members_addr addr;
    uint64_t failed_us;
};

struct tier {
    struct bcast *head, *tail;
};

/* A slot of the id hash. The id is kept in the slot so that a lookup touches one cache line
 * instead of one per probed member (a simulated 1024-node cluster spent 40% of its time there). */
struct slot {
    uint8_t id[EXO_MEMBERS_ID_BYTES];
    struct member *mem; /* NULL: empty */
};

struct exo_members {
    struct exo_members_config cfg;
    struct exo_members_io io;
    struct exo_members_delegate dg;
    struct exo_rng rng;

    struct member *self;
    struct member **list; /* every member, this node included, in probe order */
    size_t n, list_cap;
    struct slot *table; /* open addressing on the id, linear probing, at most half full */
    size_t table_size;
    size_t probe_idx;
    struct member **suspects;
    size_t n_suspects;
    size_t counts[4];

    struct probe probe;
    struct relay relays[MAX_RELAYS];
    uint32_t next_seq;
    uint32_t awareness;
    bool leaving;
    bool has_priority; /* probe priority_target next: someone else suspects it */
    uint8_t priority_target[EXO_MEMBERS_ID_BYTES];
    uint32_t correction_budget; /* corrections left in this gossip interval */

    uint64_t now_us; /* the time given by the caller most recently */
    uint64_t next_probe_us, next_gossip_us, next_push_pull_us, next_reap_us;
    uint64_t next_rejoin_us, next_reconnect_us;
    uint32_t rejoin_wait_ms; /* the next wait between seed retries while alone */
    uint64_t eager_gossip_us, last_gossip_us;
    bool eager_used;     /* an eager round already ran since the last regular one */
    bool resync_pending; /* the next push-pull goes to resync_addr */
    struct exo_members_addr resync_addr;

    struct tier tiers[MAX_TIERS];
    size_t queue_len;

    struct exo_members_addr seeds[MAX_SEEDS];
    size_t n_seeds;
    struct failed failed[MAX_FAILED];
    size_t n_failed;
    uint64_t seen[SEEN_MAX];
    size_t seen_pos;

    struct exo_buf out, scratch, msgbuf, nodes, app;
    struct exo_members_stats stats;
};

/* ---- small helpers ---- */

static uint64_t ms(uint64_t v)
{
    return v * US_PER_MS;
}

static bool id_eq(const uint8_t *a, const uint8_t *b)
{
    return memcmp(a, b, EXO_MEMBERS_ID_BYTES) == 0;
}

static uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static uint64_t umin(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

bool exo_members_addr_equal(const struct exo_members_addr *a, const struct exo_members_addr *b)
{
    size_t n = a->family == EXO_MEMBERS_FAMILY_IPV6 ? 16 : 4;
    return a->family == b->family && a->port == b->port && memcmp(a->ip, b->ip, n) == 0;
}

void exo_members_addr_format(const struct exo_members_addr *a, char *buf, size_t len)
{
    if (a->family == EXO_MEMBERS_FAMILY_IPV4) {
        snprintf(buf, len, "%u.%u.%u.%u:%u", a->ip[0], a->ip[1], a->ip[2], a->ip[3], a->port);
        return;
    }
    if (a->family != EXO_MEMBERS_FAMILY_IPV6) {
        snprintf(buf, len, "(none)");
        return;
    }
    char hex[48];
    size_t o = 0;
    for (int i = 0; i < 16; i += 2)
        o += (size_t)snprintf(hex + o, sizeof(hex) - o, "%s%x", i ? ":" : "",
                              (unsigned)(a->ip[i] << 8 | a->ip[i + 1]));
    snprintf(buf, len, "[%s]:%u", hex, a->port);
}

static uint64_t scaled_us(const struct exo_members *m, uint32_t base_ms)
{
    return ms(base_ms) * (m->awareness + 1);
}

static void awareness_apply(struct exo_members *m, int delta)
{
    int64_t v = (int64_t)m->awareness + delta;
    int64_t hi = (int64_t)m->cfg.awareness_max - 1;
    m->awareness = (uint32_t)(v < 0 ? 0 : (v > hi ? hi : v));
}

static void count_drop(struct exo_members *m, enum exo_members_drop why)
{
    m->stats.dropped[why]++;
}

static bool meta_equal(const struct exo_members_meta *a, const struct exo_members_meta *b)
{
    return a->proto_min == b->proto_min && a->proto_max == b->proto_max &&
           a->gossip_port == b->gossip_port && a->api_port == b->api_port &&
           a->data_port == b->data_port && a->roles == b->roles &&
           a->leader_priority == b->leader_priority && a->blob_len == b->blob_len &&
           (a->blob_len == 0 || memcmp(a->blob, b->blob, a->blob_len) == 0);
}

/* Copy src into dst, owning a copy of the blob. On allocation failure dst is unchanged. */
static int meta_copy(struct exo_members_meta *dst, const struct exo_members_meta *src)
{
    uint8_t *blob = NULL;
    if (src->blob_len) {
        blob = exo_malloc(src->blob_len);
        if (!blob)
            return EXO_ENOMEM;
        memcpy(blob, src->blob, src->blob_len);
    }
    exo_free((void *)dst->blob);
    *dst = *src;
    dst->blob = blob;
    return 0;
}

static void info_of(const struct exo_members *m, const struct member *mem,
                    struct exo_member_info *info)
{
    memcpy(info->id, mem->id, EXO_MEMBERS_ID_BYTES);
    memcpy(info->name, mem->name, sizeof(info->name));
    info->addr = mem->addr;
    info->meta = mem->meta;
    info->incarnation = mem->incarnation;
    info->state = mem->state;
    info->state_since_us = mem->state_since_us;
    info->rtt_us = mem->srtt_us;
    info->rtt_var_us = mem->rttvar_us;
    info->is_self = mem == m->self;
}

static void emit(struct exo_members *m, enum exo_members_event ev, const struct member *mem)
{
    if (!m->dg.event_cb || mem == m->self)
        return;
    struct exo_member_info info;
    info_of(m, mem, &info);
    m->dg.event_cb(m->dg.ctx, ev, &info);
}

/* ---- member storage ---- */

static size_t id_hash(const struct exo_members *m, const uint8_t *id)
{
    uint64_t h = (load64(id) ^ load64(id + 8)) * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 17) & (m->table_size - 1);
}

static struct member *find(const struct exo_members *m, const uint8_t *id)
{
    size_t mask = m->table_size - 1;
    for (size_t i = id_hash(m, id);; i = (i + 1) & mask) {
        const struct slot *sl = &m->table[i];
        if (!sl->mem || id_eq(sl->id, id))
            return sl->mem;
    }
}

static void table_insert(struct slot *table, struct exo_members *m, struct member *mem)
{
    size_t mask = m->table_size - 1;
    size_t i = id_hash(m, mem->id);
    while (table[i].mem)
        i = (i + 1) & mask;
    memcpy(table[i].id, mem->id, EXO_MEMBERS_ID_BYTES);
    table[i].mem = mem;
}

/* Keep the table at most half full, so probe runs stay short. */
static int table_grow(struct exo_members *m)
{
    if (2 * (m->n + 1) <= m->table_size)
        return 0;
    size_t size = m->table_size * 2;
    struct slot *table = exo_calloc(size, sizeof(*table));
    if (!table)
        return EXO_ENOMEM;
    struct slot *old = m->table;
    m->table = table;
    m->table_size = size;
    for (size_t i = 0; i < m->n; i++)
        table_insert(table, m, m->list[i]);
    exo_free(old);
    return 0;
}

static void table_remove(struct exo_members *m, const struct member *mem)
{
    size_t mask = m->table_size - 1;
    size_t i = id_hash(m, mem->id);
    while (m->table[i].mem != mem)
        i = (i + 1) & mask;
    for (size_t j = (i + 1) & mask; m->table[j].mem; j = (j + 1) & mask) {
        size_t home = id_hash(m, m->table[j].id);
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        m->table[i] = m->table[j];
        i = j;
    }
    m->table[i].mem = NULL;
}

static void set_state(struct exo_members *m, struct member *mem, enum exo_member_state state,
                      uint64_t now_us)
{
    m->counts[mem->state]--;
    m->counts[state]++;
    mem->state = state;
    mem->state_since_us = now_us;
}

static void bcast_unlink(struct exo_members *m, struct bcast *b)
{
    struct tier *t = &m->tiers[b->transmits];
    if (b->prev)
        b->prev->next = b->next;
    else
        t->head = b->next;
    if (b->next)
        b->next->prev = b->prev;
    else
        t->tail = b->prev;
    b->prev = b->next = NULL;
}

/* Free a broadcast already taken out of its tier. */
static void bcast_release(struct exo_members *m, struct bcast *b)
{
    if (b->owner)
        b->owner->bcast = NULL;
    m->queue_len--;
    exo_free(b);
}

static void bcast_free(struct exo_members *m, struct bcast *b)
{
    bcast_unlink(m, b);
    bcast_release(m, b);
}

static void clear_suspicion(struct exo_members *m, struct member *mem)
{
    if (!mem->susp)
        return;
    struct member *last = m->suspects[--m->n_suspects];
    m->suspects[mem->susp_pos] = last;
    last->susp_pos = mem->susp_pos;
    exo_free(mem->susp);
    mem->susp = NULL;
}

static struct member *add_member(struct exo_members *m, const struct exo_members_node *node,
                                 uint64_t now_us)
{
    if (m->n >= m->cfg.max_members) {
        count_drop(m, EXO_MEMBERS_DROP_MEMBER_CAP);
        return NULL;
    }
    if (table_grow(m) < 0)
        return NULL;
    if (m->n == m->list_cap) {
        size_t cap = m->list_cap ? m->list_cap * 2 : 16;
        struct member **list = exo_realloc(m->list, cap * sizeof(*list));
        if (!list)
            return NULL;
        m->list = list;
        m->list_cap = cap;
    }
    struct member *mem = exo_calloc(1, sizeof(*mem));
    if (!mem || meta_copy(&mem->meta, &node->meta) < 0) {
        exo_free(mem);
        return NULL;
    }
    memcpy(mem->id, node->id, EXO_MEMBERS_ID_BYTES);
    memcpy(mem->name, node->name, sizeof(mem->name));
    mem->addr = node->addr;
    mem->incarnation = node->incarnation;
    mem->state = node->state;
    mem->state_since_us = now_us;
    m->counts[mem->state]++;
    table_insert(m->table, m, mem);
    /* A random place in the probe order, as memberlist does, so that a newcomer is neither
     * probed by everyone at once nor starved until the next round. */
    m->list[m->n] = mem;
    size_t j = (size_t)exo_rng_below(&m->rng, m->n + 1);
    m->list[m->n] = m->list[j];
    m->list[j] = mem;
    m->n++;
    return mem;
}

static void free_member(struct member *mem)
{
    exo_free(mem->susp);
    exo_free((void *)mem->meta.blob);
    exo_free(mem);
}

/* Take mem out of every index (list, hash, suspects, queue) and free it. */
static void remove_member(struct exo_members *m, struct member *mem)
{
    size_t i = 0;
    while (m->list[i] != mem)
        i++;
    m->list[i] = m->list[--m->n];
    table_remove(m, mem);
    clear_suspicion(m, mem);
    if (mem->bcast)
        bcast_free(m, mem->bcast);
    m->counts[mem->state]--;
    free_member(mem);
}

static size_t alive_others(const struct exo_members *m)
{
    size_t n = m->counts[EXO_MEMBER_STATE_ALIVE] + m->counts[EXO_MEMBER_STATE_SUSPECT];
    return n > 0 && (m->self->state == EXO_MEMBER_STATE_ALIVE) ? n - 1 : n;
}

/* Up to k distinct random members passing the filter, as memberlist's kRandomNodes: random picks
 * with a bounded number of tries, which is uniform enough and costs O(k) in large clusters. */
typedef bool (*member_filter)(const struct exo_members *m, const struct member *mem,
                              const void *arg);

static size_t pick_random(struct exo_members *m, size_t k, member_filter filter, const void *arg,
                          struct member **out)
{
    size_t got = 0;
    for (size_t tries = 0; got < k && tries < 3 * m->n + 3 * k; tries++) {
        struct member *mem = m->list[exo_rng_below(&m->rng, m->n)];
        if (mem == m->self || !filter(m, mem, arg))
            continue;
        bool dup = false;
        for (size_t i = 0; i < got; i++)
            dup |= out[i] == mem;
        if (!dup)
            out[got++] = mem;
    }
    return got;
}

static bool is_alive(const struct exo_members *m, const struct member *mem, const void *arg)
{
    return mem->state == EXO_MEMBER_STATE_ALIVE && mem != arg;
}

/* Gossip goes to live members and, for dead_gossip_ms, to dead ones: a member wrongly declared
 * dead hears it and refutes. */
static bool gossip_target(const struct exo_members *m, const struct member *mem, const void *arg)
{
    const uint64_t *now_us = arg;
    if (mem->state == EXO_MEMBER_STATE_ALIVE || mem->state == EXO_MEMBER_STATE_SUSPECT)
        return true;
    return *now_us - mem->state_since_us < ms(m->cfg.dead_gossip_ms);
}

/* ---- broadcast queue ---- */

static uint32_t transmit_limit(const struct exo_members *m)
{
    uint32_t limit = exo_members_retransmit_limit(m->cfg.retransmit_mult, m->n);
    return limit < 1 ? 1 : (limit >= MAX_TIERS ? MAX_TIERS - 1 : limit);
}

static void tier_push_head(struct exo_members *m, struct bcast *b)
{
    struct tier *t = &m->tiers[b->transmits];
    b->prev = NULL;
    b->next = t->head;
    if (t->head)
        t->head->prev = b;
    else
        t->tail = b;
    t->head = b;
}

/* Queue one encoded message (borrowed bytes, copied). A statement about `owner` replaces the one
 * already queued about it: only the newest matters. */
static int enqueue(struct exo_members *m, struct member *owner, const uint8_t *data, size_t len)
{
    struct bcast *b = exo_malloc(sizeof(*b) + len);
    if (!b) {
        m->stats.broadcasts_dropped++;
        return EXO_ENOMEM;
    }
    if (owner && owner->bcast)
        bcast_free(m, owner->bcast);
    b->owner = owner;
    b->transmits = 0;
    b->len = len;
    memcpy(b->data, data, len);
    if (owner)
        owner->bcast = b;
    tier_push_head(m, b);
    m->queue_len++;
    m->stats.broadcasts_queued++;
    /* Fresh news goes out soon rather than at the next regular round (at most one extra round
     * per interval, so the load at most doubles while news is flowing). */
    if (m->cfg.gossip_eager_ms && !m->eager_used && m->eager_gossip_us == UINT64_MAX) {
        uint64_t at = m->last_gossip_us + ms(m->cfg.gossip_eager_ms);
        m->eager_gossip_us = at > m->now_us ? at : m->now_us;
    }
    /* Over the cap, the most retransmitted (and so most widely known) statement goes first. */
    for (int t = MAX_TIERS - 1; m->queue_len > m->cfg.max_queue && t >= 0; t--) {
        while (m->tiers[t].tail && m->queue_len > m->cfg.max_queue) {
            bcast_free(m, m->tiers[t].tail);
            m->stats.broadcasts_dropped++;
            count_drop(m, EXO_MEMBERS_DROP_QUEUE_FULL);
        }
    }
    return 0;
}

static int enqueue_msg(struct exo_members *m, struct member *owner,
                       const struct exo_members_msg *msg)
{
    exo_buf_reset(&m->msgbuf);
    exo_members_wire_put(&m->msgbuf, &m->scratch, msg);
    if (m->msgbuf.err)
        return m->msgbuf.err;
    return enqueue(m, owner, m->msgbuf.data, m->msgbuf.len);
}

static void node_of(const struct member *mem, struct exo_members_node *node)
{
    node->state = (uint8_t)mem->state;
    node->incarnation = mem->incarnation;
    memcpy(node->id, mem->id, EXO_MEMBERS_ID_BYTES);
    node->addr = mem->addr;
    memcpy(node->name, mem->name, sizeof(node->name));
    node->meta = mem->meta;
}

static void enqueue_alive(struct exo_members *m, struct member *mem)
{
    struct exo_members_msg msg = {.type = EXO_MEMBERS_MSG_ALIVE};
    node_of(mem, &msg.alive);
    msg.alive.state = EXO_MEMBER_STATE_ALIVE;
    enqueue_msg(m, mem, &msg);
}

static void enqueue_accusation(struct exo_members *m, uint8_t type, struct member *mem,
                               uint64_t incarnation, const uint8_t *from)
{
    struct exo_members_msg msg = {.type = type};
    msg.suspect.incarnation = incarnation;
    memcpy(msg.suspect.id, mem->id, EXO_MEMBERS_ID_BYTES);
    memcpy(msg.suspect.from, from, EXO_MEMBERS_ID_BYTES);
    enqueue_msg(m, mem, &msg);
}

/* ---- packets ---- */

static void packet_begin(struct exo_members *m)
{
    exo_buf_reset(&m->out);
    exo_members_wire_begin(&m->out);
}

static void packet_add(struct exo_members *m, const struct exo_members_msg *msg)
{
    exo_members_wire_put(&m->out, &m->scratch, msg);
}

/* Fill what is left of the packet with the least-transmitted broadcasts; returns how many. */
static size_t packet_fill(struct exo_members *m)
{
    struct bcast *taken[EXO_MEMBERS_MAX_MSGS];
    size_t ntaken = 0;
    size_t space = m->out.len < m->cfg.max_packet ? m->cfg.max_packet - m->out.len : 0;
    /* Stop looking after a run of misses: a nearly full packet would otherwise scan the whole
     * queue for a message small enough, and queues hold thousands while a cluster forms. */
    size_t misses = 0;
    for (int t = 0; t < MAX_TIERS && space >= MIN_PIGGYBACK && misses < MAX_MISSES; t++) {
        for (struct bcast *b = m->tiers[t].head; b && ntaken < EXO_MEMBERS_MAX_MSGS - 1;
             b = b->next) {
            if (b->len > space) {
                if (++misses == MAX_MISSES)
                    break;
                continue;
            }
            taken[ntaken++] = b;
            space -= b->len;
            if (space < MIN_PIGGYBACK)
                break;
        }
    }
    uint32_t limit = transmit_limit(m);
    for (size_t i = 0; i < ntaken; i++) {
        struct bcast *b = taken[i];
        exo_buf_put(&m->out, b->data, b->len);
        bcast_unlink(m, b);
        if (++b->transmits >= limit)
            bcast_release(m, b);
        else
            tier_push_head(m, b);
    }
    return ntaken;
}

static void packet_send(struct exo_members *m, const struct exo_members_addr *to)
{
    if (m->out.err || m->out.len > m->cfg.max_packet)
        return;
    m->stats.packets_out++;
    m->stats.bytes_out += m->out.len;
    m->io.send_packet_cb(m->io.ctx, to, m->out.data, m->out.len);
}

static void stream_send(struct exo_members *m, const struct exo_members_addr *to)
{
    if (m->out.err)
        return;
    m->stats.streams_out++;
    m->stats.stream_bytes_out += m->out.len;
    m->io.send_stream_cb(m->io.ctx, to, m->out.data, m->out.len);
}

/* ---- the failed-member list (reconnection after partitions) ---- */

static void failed_forget(struct exo_members *m, const uint8_t *id)
{
    for (size_t i = 0; i < m->n_failed; i++)
        if (id_eq(m->failed[i].id, id)) {
            m->failed[i] = m->failed[--m->n_failed];
            return;
        }
}

static void failed_remember(struct exo_members *m, const struct member *mem, uint64_t now_us)
{
    failed_forget(m, mem->id);
    size_t slot = m->n_failed;
    if (slot == MAX_FAILED) {
        slot = 0; /* full: replace the oldest */
        for (size_t i = 1; i < m->n_failed; i++)
            if (m->failed[i].failed_us < m->failed[slot].failed_us)
                slot = i;
    } else {
        m->n_failed++;
    }
    memcpy(m->failed[slot].id, mem->id, EXO_MEMBERS_ID_BYTES);
    m->failed[slot].addr = mem->addr;
    m->failed[slot].failed_us = now_us;
}

/* ---- protocol: statements about members ---- */

/* Send our alive statement about mem straight to one node, with the usual piggyback. */
static void send_alive(struct exo_members *m, const struct member *mem,
                       const struct exo_members_addr *to)
{
    struct exo_members_msg msg = {.type = EXO_MEMBERS_MSG_ALIVE};
    node_of(mem, &msg.alive);
    msg.alive.state = EXO_MEMBER_STATE_ALIVE;
    packet_begin(m);
    packet_add(m, &msg);
    packet_fill(m);
    packet_send(m, to);
}

/* A node gossiping an accusation older than what we know has not heard the refutation: the
 * queue replaces a statement with a newer one, so it would not be sending it otherwise. Tell it,
 * within a small budget per gossip interval. */
static void correct(struct exo_members *m, const struct member *mem,
                    const struct exo_members_addr *to)
{
    if (!to || !m->cfg.corrections || m->correction_budget == 0 ||
        mem->state != EXO_MEMBER_STATE_ALIVE)
        return;
    m->correction_budget--;
    m->stats.corrections++;
    send_alive(m, mem, to);
}

static void refute(struct exo_members *m, uint64_t accused_incarnation, const uint8_t *accuser)
{
    struct member *self = m->self;
    if (accused_incarnation >= self->incarnation)
        self->incarnation = accused_incarnation + 1;
    else
        self->incarnation++;
    m->stats.refutations++;
    /* Being accused is a hint that our own messages are slow or lost (Lifeguard). */
    awareness_apply(m, 1);
    enqueue_alive(m, self);
    /* The accuser holds the timer most likely to run out first: answer it directly too. */
    const struct member *acc = accuser ? find(m, accuser) : NULL;
    if (m->cfg.corrections && acc && acc != self &&
        (acc->state == EXO_MEMBER_STATE_ALIVE || acc->state == EXO_MEMBER_STATE_SUSPECT))
        send_alive(m, self, &acc->addr);
}

static void alive_node(struct exo_members *m, const struct exo_members_node *node, uint64_t now_us)
{
    if (node->meta.proto_max < EXO_MEMBERS_PROTO || node->meta.proto_min > EXO_MEMBERS_PROTO) {
        count_drop(m, EXO_MEMBERS_DROP_INCOMPATIBLE);
        return;
    }
    struct member *mem = find(m, node->id);
    if (mem == m->self) {
        if (m->leaving || node->incarnation < mem->incarnation)
            return;
        if (node->incarnation == mem->incarnation && meta_equal(&node->meta, &mem->meta) &&
            exo_members_addr_equal(&node->addr, &mem->addr) && strcmp(node->name, mem->name) == 0)
            return;
        /* Someone speaks for us with other data: a stale record or a node sharing our id. */
        refute(m, node->incarnation, NULL);
        return;
    }
    if (!mem) {
        struct exo_members_node fresh = *node;
        fresh.state = EXO_MEMBER_STATE_ALIVE;
        mem = add_member(m, &fresh, now_us);
        if (!mem)
            return;
        failed_forget(m, mem->id);
        m->stats.joins++;
        enqueue_alive(m, mem);
        emit(m, EXO_MEMBERS_EVENT_JOIN, mem);
        return;
    }
    if (node->incarnation <= mem->incarnation)
        return;
    bool changed = !meta_equal(&node->meta, &mem->meta) ||
                   !exo_members_addr_equal(&node->addr, &mem->addr) ||
                   strcmp(node->name, mem->name) != 0;
    if (changed && meta_copy(&mem->meta, &node->meta) < 0)
        return;
    mem->addr = node->addr;
    memcpy(mem->name, node->name, sizeof(mem->name));
    mem->incarnation = node->incarnation;
    enum exo_member_state old = mem->state;
    if (old != EXO_MEMBER_STATE_ALIVE) {
        clear_suspicion(m, mem);
        set_state(m, mem, EXO_MEMBER_STATE_ALIVE, now_us);
    }
    enqueue_alive(m, mem);
    if (old == EXO_MEMBER_STATE_SUSPECT) {
        m->stats.suspicions_refuted++;
        emit(m, EXO_MEMBERS_EVENT_ALIVE, mem);
    } else if (old != EXO_MEMBER_STATE_ALIVE) {
        failed_forget(m, mem->id);
        m->stats.joins++;
        emit(m, EXO_MEMBERS_EVENT_JOIN, mem);
    }
    if (changed && old != EXO_MEMBER_STATE_DEAD && old != EXO_MEMBER_STATE_LEFT)
        emit(m, EXO_MEMBERS_EVENT_UPDATE, mem);
}

/* Set when the suspicion ends, and so when its last-chance probe starts: one (scaled) probe
 * interval earlier. Both are fixed here, so that a change of the health multiplier later cannot
 * move the probe time into the past. */
static void set_deadline(const struct exo_members *m, struct suspicion *s, uint64_t deadline_us)
{
    uint64_t lead = m->cfg.verify_suspects ? scaled_us(m, m->cfg.probe_interval_ms) : 0;
    s->deadline_us = deadline_us;
    s->verify_at_us = deadline_us > s->start_us + lead ? deadline_us - lead : s->start_us;
}

/* Count an independent confirmation and shorten the timeout; false if it adds nothing. */
static bool confirm(const struct exo_members *m, struct suspicion *s, const uint8_t *from)
{
    if (s->n >= s->k || id_eq(from, s->accuser))
        return false;
    for (uint32_t i = 0; i < s->n; i++)
        if (id_eq(from, s->confirmers[i]))
            return false;
    memcpy(s->confirmers[s->n++], from, EXO_MEMBERS_ID_BYTES);
    uint64_t timeout = exo_members_suspicion_timeout_ms(s->min_ms, s->max_ms, s->k, s->n);
    if (!s->verifying)
        set_deadline(m, s, s->start_us + ms(timeout));
    return true;
}

/* `reply_to` is where the statement came from (NULL when it arose here), for corrections. */
static void suspect_node(struct exo_members *m, uint64_t incarnation, const uint8_t *id,
                         const uint8_t *from, const struct exo_members_addr *reply_to,
                         uint64_t now_us)
{
    struct member *mem = find(m, id);
    if (!mem)
        return;
    if (incarnation < mem->incarnation) {
        correct(m, mem, reply_to);
        return;
    }
    if (mem->state == EXO_MEMBER_STATE_SUSPECT) {
        if (mem->susp && confirm(m, mem->susp, from)) {
            m->stats.confirmations++;
            enqueue_accusation(m, EXO_MEMBERS_MSG_SUSPECT, mem, incarnation, from);
        }
        return;
    }
    if (mem->state != EXO_MEMBER_STATE_ALIVE)
        return;
    if (mem == m->self) {
        if (!m->leaving)
            refute(m, incarnation, from);
        return;
    }
    struct suspicion *s = exo_calloc(1, sizeof(*s));
    if (!s)
        return;
    size_t n = m->counts[EXO_MEMBER_STATE_ALIVE] + m->counts[EXO_MEMBER_STATE_SUSPECT];
    uint32_t k = m->cfg.suspicion_mult > 2 ? m->cfg.suspicion_mult - 2 : 0;
    if (k > MAX_CONFIRM)
        k = MAX_CONFIRM;
    if (n < (size_t)k + 2)
        k = 0; /* too few members to expect confirmations */
    s->k = k;
    s->min_ms = exo_members_suspicion_min_ms(m->cfg.suspicion_mult, n, m->cfg.probe_interval_ms);
    s->max_ms = s->min_ms * m->cfg.suspicion_max_mult;
    s->start_us = now_us;
    set_deadline(m, s, now_us + ms(k == 0 ? s->min_ms : s->max_ms));
    memcpy(s->accuser, from, EXO_MEMBERS_ID_BYTES);
    mem->incarnation = incarnation;
    mem->susp = s;
    mem->susp_pos = m->n_suspects;
    m->suspects[m->n_suspects++] = mem;
    set_state(m, mem, EXO_MEMBER_STATE_SUSPECT, now_us);
    m->stats.suspicions++;
    enqueue_accusation(m, EXO_MEMBERS_MSG_SUSPECT, mem, incarnation, from);
    /* Confirm or clear it soon: a few nodes (all of them in a small cluster) probe the suspect
     * at their next probe, so a real failure gathers its confirmations in about one interval and
     * a false one is told to the suspect (buddy system) by several voices. */
    if (m->cfg.confirm_probes && !id_eq(from, m->self->id)) {
        size_t others = alive_others(m);
        double p = others ? 3.0 * (k ? k : 1) / (double)others : 1.0;
        if (exo_rng_uniform(&m->rng) < p) {
            memcpy(m->priority_target, id, EXO_MEMBERS_ID_BYTES);
            m->has_priority = true;
        }
    }
    emit(m, EXO_MEMBERS_EVENT_SUSPECT, mem);
}

static void dead_node(struct exo_members *m, uint64_t incarnation, const uint8_t *id,
                      const uint8_t *from, const struct exo_members_addr *reply_to, uint64_t now_us)
{
    struct member *mem = find(m, id);
    if (!mem)
        return;
    if (incarnation < mem->incarnation) {
        correct(m, mem, reply_to);
        return;
    }
    if (mem->state == EXO_MEMBER_STATE_DEAD || mem->state == EXO_MEMBER_STATE_LEFT)
        return;
    if (mem == m->self && !m->leaving) {
        refute(m, incarnation, from);
        return;
    }
    bool left = id_eq(from, id);
    mem->incarnation = incarnation;
    clear_suspicion(m, mem);
    set_state(m, mem, left ? EXO_MEMBER_STATE_LEFT : EXO_MEMBER_STATE_DEAD, now_us);
    enqueue_accusation(m, EXO_MEMBERS_MSG_DEAD, mem, incarnation, from);
    if (mem == m->self)
        return;
    if (left) {
        m->stats.lefts++;
        emit(m, EXO_MEMBERS_EVENT_LEFT, mem);
    } else {
        m->stats.deaths++;
        failed_remember(m, mem, now_us);
        emit(m, EXO_MEMBERS_EVENT_DEAD, mem);
    }
    if (m->next_reap_us == UINT64_MAX)
        m->next_reap_us = now_us + REAP_EVERY_US;
}

/* ---- protocol: probing ---- */

static void ping_msg(const struct exo_members *m, struct exo_members_msg *msg, uint32_t seq,
                     const uint8_t *target)
{
    memset(msg, 0, sizeof(*msg));
    msg->type = EXO_MEMBERS_MSG_PING;
    msg->ping.seq = seq;
    memcpy(msg->ping.target, target, EXO_MEMBERS_ID_BYTES);
    memcpy(msg->ping.source, m->self->id, EXO_MEMBERS_ID_BYTES);
    msg->ping.source_addr = m->self->addr;
}

static struct member *next_probe_target(struct exo_members *m)
{
    if (m->has_priority) {
        m->has_priority = false;
        struct member *mem = find(m, m->priority_target);
        if (mem && mem->state == EXO_MEMBER_STATE_SUSPECT)
            return mem;
    }
    for (size_t tries = 0; tries < m->n; tries++) {
        if (m->probe_idx >= m->n) {
            /* A new round in a new random order. */
            m->probe_idx = 0;
            for (size_t i = m->n; i > 1; i--) {
                size_t j = (size_t)exo_rng_below(&m->rng, i);
                struct member *t = m->list[i - 1];
                m->list[i - 1] = m->list[j];
                m->list[j] = t;
            }
        }
        struct member *mem = m->list[m->probe_idx++];
        if (mem != m->self &&
            (mem->state == EXO_MEMBER_STATE_ALIVE || mem->state == EXO_MEMBER_STATE_SUSPECT))
            return mem;
    }
    return NULL;
}

/* A ping to target, with the suspicion attached when we suspect it (the buddy system: the suspect
 * hears it directly and can refute at once). */
static void send_ping(struct exo_members *m, const struct member *target, uint32_t seq)
{
    struct exo_members_msg msg;
    ping_msg(m, &msg, seq, target->id);
    packet_begin(m);
    packet_add(m, &msg);
    if (target->state == EXO_MEMBER_STATE_SUSPECT) {
        struct exo_members_msg s = {.type = EXO_MEMBERS_MSG_SUSPECT};
        s.suspect.incarnation = target->incarnation;
        memcpy(s.suspect.id, target->id, EXO_MEMBERS_ID_BYTES);
        memcpy(s.suspect.from, m->self->id, EXO_MEMBERS_ID_BYTES);
        packet_add(m, &s);
    }
    packet_fill(m);
    packet_send(m, &target->addr);
}

/* Ask up to indirect_checks live members to ping target for us; returns how many were asked. */
static uint32_t send_indirect_pings(struct exo_members *m, struct member *target, uint32_t seq,
                                    bool want_nack)
{
    struct member *relays[16];
    size_t k = m->cfg.indirect_checks < 16 ? m->cfg.indirect_checks : 16;
    size_t got = pick_random(m, k, is_alive, target, relays);
    struct exo_members_msg msg = {.type = EXO_MEMBERS_MSG_INDIRECT_PING};
    msg.indirect.seq = seq;
    memcpy(msg.indirect.target, target->id, EXO_MEMBERS_ID_BYTES);
    msg.indirect.target_addr = target->addr;
    msg.indirect.want_nack = want_nack;
    memcpy(msg.indirect.source, m->self->id, EXO_MEMBERS_ID_BYTES);
    msg.indirect.source_addr = m->self->addr;
    for (size_t i = 0; i < got; i++) {
        packet_begin(m);
        packet_add(m, &msg);
        packet_fill(m);
        packet_send(m, &relays[i]->addr);
        m->stats.indirect_probes++;
    }
    return (uint32_t)got;
}

static void start_probe(struct exo_members *m, uint64_t now_us)
{
    struct member *target = next_probe_target(m);
    if (!target)
        return;
    struct probe *p = &m->probe;
    memset(p, 0, sizeof(*p));
    p->active = true;
    memcpy(p->target, target->id, EXO_MEMBERS_ID_BYTES);
    p->seq = m->next_seq++;
    p->sent_us = now_us;
    p->direct_deadline_us = now_us + scaled_us(m, m->cfg.probe_timeout_ms);
    p->deadline_us = now_us + scaled_us(m, m->cfg.probe_interval_ms);
    send_ping(m, target, p->seq);
    m->stats.probes++;
}

static void send_indirect(struct exo_members *m, struct member *target)
{
    struct probe *p = &m->probe;
    p->expected_nacks = send_indirect_pings(m, target, p->seq, true);
    if (m->cfg.tcp_ping) {
        /* The fallback catches a member whose UDP is blocked but which is otherwise fine. */
        struct exo_members_msg ping;
        ping_msg(m, &ping, p->seq, target->id);
        packet_begin(m);
        packet_add(m, &ping);
        stream_send(m, &target->addr);
        m->stats.tcp_pings++;
    }
    p->indirect_sent = true;
}

static void probe_failed(struct exo_members *m, struct member *target, uint64_t now_us)
{
    struct probe *p = &m->probe;
    /* Lifeguard: relays that do not even nack suggest the problem is here, not there. */
    if (p->expected_nacks > 0)
        awareness_apply(m, (int)(p->expected_nacks - p->nacks));
    else
        awareness_apply(m, 1);
    p->active = false;
    m->stats.probe_failures++;
    suspect_node(m, target->incarnation, target->id, m->self->id, NULL, now_us);
}

static void probe_tick(struct exo_members *m, uint64_t now_us)
{
    struct probe *p = &m->probe;
    if (p->active) {
        struct member *target = find(m, p->target);
        if (!target || target->state == EXO_MEMBER_STATE_DEAD ||
            target->state == EXO_MEMBER_STATE_LEFT) {
            p->active = false;
        } else {
            if (!p->indirect_sent && now_us >= p->direct_deadline_us)
                send_indirect(m, target);
            if (now_us >= p->deadline_us)
                probe_failed(m, target, now_us);
        }
    }
    if (!p->active && !m->leaving && now_us >= m->next_probe_us) {
        m->next_probe_us = now_us + scaled_us(m, m->cfg.probe_interval_ms);
        start_probe(m, now_us);
    }
}

static void rtt_sample(struct member *mem, uint64_t rtt_us)
{
    uint32_t r = rtt_us > UINT32_MAX ? UINT32_MAX : (uint32_t)rtt_us;
    if (mem->srtt_us == 0) {
        mem->srtt_us = r ? r : 1;
        mem->rttvar_us = r / 2;
        return;
    }
    uint32_t dev = r > mem->srtt_us ? r - mem->srtt_us : mem->srtt_us - r;
    mem->rttvar_us = (3 * mem->rttvar_us + dev) / 4;
    mem->srtt_us = (uint32_t)((7ull * mem->srtt_us + r) / 8);
    if (mem->srtt_us == 0)
        mem->srtt_us = 1;
}

static void handle_ack(struct exo_members *m, uint32_t seq, bool relayed, uint64_t now_us)
{
    struct probe *p = &m->probe;
    if (p->active && p->seq == seq) {
        struct member *target = find(m, p->target);
        if (target && !relayed)
            rtt_sample(target, now_us - p->sent_us);
        if (target)
            target->last_ack_us = now_us;
        awareness_apply(m, -1);
        p->active = false;
        m->stats.probe_acks++;
        return;
    }
    for (size_t i = 0; i < m->n_suspects; i++) {
        struct member *mem = m->suspects[i];
        if (mem->susp->verifying && mem->susp->verify_seq == seq) {
            mem->last_ack_us = now_us;
            return;
        }
    }
    for (size_t i = 0; i < MAX_RELAYS; i++) {
        struct relay *r = &m->relays[i];
        if (!r->active || r->seq != seq)
            continue;
        struct exo_members_msg ack = {.type = EXO_MEMBERS_MSG_ACK};
        ack.ack.seq = r->orig_seq;
        ack.ack.relayed = true;
        packet_begin(m);
        packet_add(m, &ack);
        packet_fill(m);
        packet_send(m, &r->requester);
        r->active = false;
        return;
    }
}

static void handle_ping(struct exo_members *m, const struct exo_members_addr *from,
                        const struct exo_members_msg *msg, bool reliable)
{
    if (!id_eq(msg->ping.target, m->self->id)) {
        count_drop(m, EXO_MEMBERS_DROP_MISDIRECTED);
        return;
    }
    struct exo_members_msg ack = {.type = EXO_MEMBERS_MSG_ACK};
    ack.ack.seq = msg->ping.seq;
    packet_begin(m);
    packet_add(m, &ack);
    /* A member we hold as dead or departed is probing us: it is back, most likely restarted at a
     * higher incarnation whose news missed us (each broadcast is sent a bounded number of times,
     * to random members). Tell it what we believe: it answers a stale accusation with its newer
     * ALIVE (a correction) and a current one by refuting, either way straight back to us. */
    const struct member *src = find(m, msg->ping.source);
    if (src && src != m->self &&
        (src->state == EXO_MEMBER_STATE_DEAD || src->state == EXO_MEMBER_STATE_LEFT)) {
        struct exo_members_msg dead = {.type = EXO_MEMBERS_MSG_DEAD};
        dead.suspect.incarnation = src->incarnation;
        memcpy(dead.suspect.id, src->id, EXO_MEMBERS_ID_BYTES);
        memcpy(dead.suspect.from, src->state == EXO_MEMBER_STATE_LEFT ? src->id : m->self->id,
               EXO_MEMBERS_ID_BYTES);
        packet_add(m, &dead);
    }
    if (reliable) {
        stream_send(m, &msg->ping.source_addr);
        return;
    }
    packet_fill(m);
    packet_send(m, from);
}

static void handle_indirect(struct exo_members *m, const struct exo_members_addr *from,
                            const struct exo_members_msg *msg, bool reliable, uint64_t now_us)
{
    struct relay *r = NULL;
    for (size_t i = 0; i < MAX_RELAYS && !r; i++)
        if (!m->relays[i].active)
            r = &m->relays[i];
    if (!r) {
        count_drop(m, EXO_MEMBERS_DROP_RELAY_FULL);
        return;
    }
    r->active = true;
    r->want_nack = msg->indirect.want_nack;
    r->seq = m->next_seq++;
    r->orig_seq = msg->indirect.seq;
    r->requester = reliable ? msg->indirect.source_addr : *from;
    r->deadline_us = now_us + ms(m->cfg.probe_timeout_ms);
    struct exo_members_msg ping;
    ping_msg(m, &ping, r->seq, msg->indirect.target);
    packet_begin(m);
    packet_add(m, &ping);
    packet_fill(m);
    packet_send(m, &msg->indirect.target_addr);
    m->stats.indirect_relayed++;
}

static void relay_tick(struct exo_members *m, uint64_t now_us)
{
    for (size_t i = 0; i < MAX_RELAYS; i++) {
        struct relay *r = &m->relays[i];
        if (!r->active || now_us < r->deadline_us)
            continue;
        r->active = false;
        if (!r->want_nack)
            continue;
        struct exo_members_msg nack = {.type = EXO_MEMBERS_MSG_NACK};
        nack.ack.seq = r->orig_seq;
        packet_begin(m);
        packet_add(m, &nack);
        packet_fill(m);
        packet_send(m, &r->requester);
        m->stats.nacks_sent++;
    }
}

/* The last probe interval of a suspicion runs a last-chance probe (direct, with the suspicion
 * attached, and through relays at once). A suspect that answers is alive as far as this node can
 * tell: the timer starts over and the suspect, told again, refutes. One that does not is dead. So
 * a node never declares a death on evidence older than one probe interval, which is what keeps a
 * node that missed every copy of a refutation from declaring a false death. */
static bool verify_step(struct exo_members *m, struct member *mem, uint64_t now_us)
{
    struct suspicion *s = mem->susp;
    if (!s->verifying && now_us >= s->verify_at_us) {
        /* A full interval to answer, even if confirmations brought the deadline closer. */
        uint64_t lead = scaled_us(m, m->cfg.probe_interval_ms);
        s->verifying = true;
        s->verify_seq = m->next_seq++;
        s->verify_sent_us = now_us;
        if (s->deadline_us < now_us + lead)
            s->deadline_us = now_us + lead;
        send_ping(m, mem, s->verify_seq);
        send_indirect_pings(m, mem, s->verify_seq, false);
        m->stats.verifications++;
        return true;
    }
    if (now_us < s->deadline_us)
        return true;
    if (s->verifying && mem->last_ack_us >= s->verify_sent_us) {
        m->stats.verified_alive++;
        s->verifying = false;
        s->start_us = now_us;
        set_deadline(m, s, now_us + ms(s->min_ms));
        return true;
    }
    return false;
}

static void suspicion_tick(struct exo_members *m, uint64_t now_us)
{
    for (size_t i = 0; i < m->n_suspects;) {
        struct member *mem = m->suspects[i];
        bool keep =
            m->cfg.verify_suspects ? verify_step(m, mem, now_us) : now_us < mem->susp->deadline_us;
        if (keep) {
            i++;
            continue;
        }
        /* dead_node takes mem out of the list, so index i now holds another suspect. */
        dead_node(m, mem->incarnation, mem->id, m->self->id, NULL, now_us);
    }
}

/* ---- protocol: dissemination ---- */

static void gossip(struct exo_members *m, uint64_t now_us)
{
    if (m->queue_len == 0)
        return;
    struct member *targets[16];
    size_t k = m->cfg.gossip_nodes < 16 ? m->cfg.gossip_nodes : 16;
    size_t got = pick_random(m, k, gossip_target, &now_us, targets);
    for (size_t i = 0; i < got && m->queue_len > 0; i++) {
        packet_begin(m);
        if (packet_fill(m) == 0)
            break;
        packet_send(m, &targets[i]->addr);
    }
}

static void send_push_pull(struct exo_members *m, const struct exo_members_addr *to, bool join,
                           bool reply)
{
    /* Application state first: the callback may itself send, which reuses the packet buffer. */
    exo_buf_reset(&m->app);
    if (m->dg.local_state_cb)
        m->dg.local_state_cb(m->dg.ctx, join, &m->app);
    if (m->app.err)
        exo_buf_reset(&m->app);
    exo_buf_reset(&m->nodes);
    for (size_t i = 0; i < m->n; i++) {
        struct exo_members_node node;
        node_of(m->list[i], &node);
        exo_members_wire_put_node(&m->nodes, &node);
    }
    struct exo_members_msg msg = {.type = EXO_MEMBERS_MSG_PUSH_PULL};
    msg.push_pull.join = join;
    msg.push_pull.reply = reply;
    memcpy(msg.push_pull.sender, m->self->id, EXO_MEMBERS_ID_BYTES);
    msg.push_pull.sender_addr = m->self->addr;
    msg.push_pull.count = (uint32_t)m->n;
    msg.push_pull.nodes = m->nodes.data;
    msg.push_pull.nodes_len = m->nodes.len;
    msg.push_pull.app_state = m->app.data;
    msg.push_pull.app_state_len = m->app.len;
    packet_begin(m);
    packet_add(m, &msg);
    stream_send(m, to);
}

static void handle_push_pull(struct exo_members *m, const struct exo_members_msg *msg,
                             uint64_t now_us)
{
    m->stats.push_pulls++;
    struct exo_reader r;
    exo_reader_init(&r, msg->push_pull.nodes, msg->push_pull.nodes_len);
    for (uint32_t i = 0; i < msg->push_pull.count; i++) {
        struct exo_members_node node;
        if (exo_members_wire_get_node(&r, &node, NULL) < 0)
            break;
        switch (node.state) {
        case EXO_MEMBER_STATE_ALIVE:
            alive_node(m, &node, now_us);
            break;
        case EXO_MEMBER_STATE_LEFT:
            dead_node(m, node.incarnation, node.id, node.id, NULL, now_us);
            break;
        default:
            /* A remote "dead" only makes us suspect: our own probes get a say first. */
            suspect_node(m, node.incarnation, node.id, m->self->id, NULL, now_us);
            break;
        }
    }
    if (m->dg.merge_state_cb && msg->push_pull.app_state_len)
        m->dg.merge_state_cb(m->dg.ctx, msg->push_pull.join, msg->push_pull.app_state,
                             msg->push_pull.app_state_len);
    /* Nodes that joined at the same time as us were not in the seed's answer, but the seed
     * heard from all of them: one more exchange with it half a second later picks them all
     * up, where gossip alone leaves a few pairs unaware of each other until the next push-pull
     * (each broadcast is sent a bounded number of times). */
    if (m->cfg.join_resync && msg->push_pull.join && msg->push_pull.reply) {
        uint64_t soon = now_us + 2 * ms(m->cfg.gossip_interval_ms) +
                        exo_rng_below(&m->rng, 2 * ms(m->cfg.gossip_interval_ms) + 1);
        m->next_push_pull_us = umin(m->next_push_pull_us, soon);
        m->resync_addr = msg->push_pull.sender_addr;
        m->resync_pending = true;
    }
    /* Merging first means our reply already carries any refutation it provoked. */
    if (!msg->push_pull.reply && !id_eq(msg->push_pull.sender, m->self->id))
        send_push_pull(m, &msg->push_pull.sender_addr, msg->push_pull.join, true);
}

static bool seen_before(struct exo_members *m, const uint8_t *origin, uint64_t msg_id)
{
    uint64_t key = (load64(origin) ^ load64(origin + 8) * 0x9e3779b97f4a7c15ull) ^ msg_id;
    for (size_t i = 0; i < SEEN_MAX; i++)
        if (m->seen[i] == key)
            return true;
    m->seen[m->seen_pos] = key;
    m->seen_pos = (m->seen_pos + 1) % SEEN_MAX;
    return false;
}

static void handle_user(struct exo_members *m, const struct exo_members_msg *msg,
                        const uint8_t *raw, size_t raw_len)
{
    struct member *origin = find(m, msg->user.origin);
    if (!origin) {
        count_drop(m, EXO_MEMBERS_DROP_UNKNOWN_ORIGIN);
        return;
    }
    if (origin == m->self || seen_before(m, msg->user.origin, msg->user.msg_id))
        return;
    /* Epidemic: pass it on as it came, so the whole cluster hears it. */
    enqueue(m, NULL, raw, raw_len);
    if (m->dg.message_cb)
        m->dg.message_cb(m->dg.ctx, msg->user.origin, msg->user.data, msg->user.len, true);
}

/* ---- dispatch ---- */

static int dispatch(struct exo_members *m, const struct exo_members_addr *from, uint8_t type,
                    const uint8_t *body, size_t len, const uint8_t *raw, size_t raw_len,
                    bool reliable, uint64_t now_us)
{
    struct exo_members_msg msg;
    int rc = exo_members_wire_decode(type, body, len, &msg, NULL);
    if (rc == EXO_ENOENT) {
        count_drop(m, EXO_MEMBERS_DROP_UNKNOWN_TYPE);
        return 0;
    }
    if (rc < 0) {
        count_drop(m, EXO_MEMBERS_DROP_MALFORMED);
        return rc;
    }
    switch (type) {
    case EXO_MEMBERS_MSG_PING:
        handle_ping(m, from, &msg, reliable);
        break;
    case EXO_MEMBERS_MSG_INDIRECT_PING:
        handle_indirect(m, from, &msg, reliable, now_us);
        break;
    case EXO_MEMBERS_MSG_ACK:
        handle_ack(m, msg.ack.seq, msg.ack.relayed, now_us);
        break;
    case EXO_MEMBERS_MSG_NACK:
        if (m->probe.active && m->probe.seq == msg.ack.seq) {
            m->probe.nacks++;
            m->stats.nacks_received++;
        }
        break;
    case EXO_MEMBERS_MSG_ALIVE:
        alive_node(m, &msg.alive, now_us);
        break;
    case EXO_MEMBERS_MSG_SUSPECT:
        suspect_node(m, msg.suspect.incarnation, msg.suspect.id, msg.suspect.from,
                     reliable ? NULL : from, now_us);
        break;
    case EXO_MEMBERS_MSG_DEAD:
        dead_node(m, msg.suspect.incarnation, msg.suspect.id, msg.suspect.from,
                  reliable ? NULL : from, now_us);
        break;
    case EXO_MEMBERS_MSG_USER:
        handle_user(m, &msg, raw, raw_len);
        break;
    case EXO_MEMBERS_MSG_APP:
        if (m->dg.message_cb)
            m->dg.message_cb(m->dg.ctx, msg.app.from, msg.app.data, msg.app.len, false);
        break;
    case EXO_MEMBERS_MSG_PUSH_PULL:
        handle_push_pull(m, &msg, now_us);
        break;
    }
    return 0;
}

/* ---- public API ---- */

void exo_members_config_init(struct exo_members_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->meta.proto_min = EXO_MEMBERS_PROTO;
    cfg->meta.proto_max = EXO_MEMBERS_PROTO;
    cfg->probe_interval_ms = 500;
    cfg->probe_timeout_ms = 250;
    cfg->indirect_checks = 3;
    cfg->suspicion_mult = 4;
    cfg->suspicion_max_mult = 6;
    cfg->retransmit_mult = 4;
    cfg->gossip_interval_ms = 200;
    cfg->gossip_nodes = 3;
    cfg->dead_gossip_ms = 30000;
    cfg->push_pull_ms = 30000;
    cfg->awareness_max = 8;
    cfg->rejoin_ms = 5000;
    cfg->reconnect_ms = 10000;
    cfg->reconnect_keep_ms = 3600000;
    cfg->tcp_ping = true;
    cfg->gossip_eager_ms = 20;
    cfg->confirm_probes = true;
    cfg->corrections = true;
    cfg->join_resync = true;
    cfg->verify_suspects = true;
    cfg->max_packet = EXO_MEMBERS_PACKET_MAX;
    cfg->max_members = 4096;
    cfg->max_queue = 8192;
}

static bool config_valid(const struct exo_members_config *c)
{
    return c->probe_interval_ms > 0 && c->probe_timeout_ms > 0 &&
           c->probe_timeout_ms <= c->probe_interval_ms && c->gossip_interval_ms > 0 &&
           c->suspicion_mult > 0 && c->suspicion_max_mult >= 1 && c->retransmit_mult > 0 &&
           c->awareness_max >= 1 && c->awareness_max <= 64 && c->max_packet >= 256 &&
           c->max_packet <= 65000 && c->max_members >= 1 && c->max_members <= 65536 &&
           c->max_queue >= 16 && c->rejoin_ms > 0 && c->reconnect_ms > 0 &&
           c->meta.blob_len <= EXO_MEMBERS_BLOB_MAX && c->meta.proto_min <= EXO_MEMBERS_PROTO &&
           c->meta.proto_max >= EXO_MEMBERS_PROTO &&
           (c->addr.family == EXO_MEMBERS_FAMILY_IPV4 ||
            c->addr.family == EXO_MEMBERS_FAMILY_IPV6) &&
           c->addr.port != 0 && memchr(c->name, '\0', sizeof(c->name)) != NULL;
}

int exo_members_create(const struct exo_members_config *cfg, const struct exo_members_io *io,
                       const struct exo_members_delegate *delegate, uint64_t now_us,
                       struct exo_members **ret_members)
{
    int rc = EXO_EINVAL;
    struct exo_members *m = NULL;
    if (!cfg || !io || !io->send_packet_cb || !io->send_stream_cb || !ret_members ||
        !config_valid(cfg))
        goto out;
    rc = EXO_ENOMEM;
    m = exo_calloc(1, sizeof(*m));
    if (!m)
        goto out;
    m->cfg = *cfg;
    m->cfg.meta.blob = NULL;
    m->cfg.meta.blob_len = 0;
    m->io = *io;
    if (delegate)
        m->dg = *delegate;
    /* The incarnation is mixed in because broadcast ids come from this generator: a restart with
     * the same seed would otherwise reuse ids that peers remember as seen, and they would drop
     * its broadcasts as duplicates. */
    exo_rng_seed(&m->rng, cfg->seed ^ cfg->incarnation * 0x9e3779b97f4a7c15ull);
    exo_buf_init(&m->out, EXO_MEMBERS_STREAM_MAX);
    exo_buf_init(&m->scratch, EXO_MEMBERS_STREAM_MAX);
    exo_buf_init(&m->msgbuf, EXO_MEMBERS_STREAM_MAX);
    exo_buf_init(&m->nodes, EXO_MEMBERS_STREAM_MAX);
    exo_buf_init(&m->app, EXO_MEMBERS_APP_STATE_MAX);
    m->table_size = 16;
    m->table = exo_calloc(m->table_size, sizeof(*m->table));
    m->suspects = exo_calloc(cfg->max_members, sizeof(*m->suspects));
    if (!m->table || !m->suspects)
        goto out;
    struct exo_members_node me = {.state = EXO_MEMBER_STATE_ALIVE,
                                  .incarnation = cfg->incarnation,
                                  .addr = cfg->addr,
                                  .meta = cfg->meta};
    memcpy(me.id, cfg->id, EXO_MEMBERS_ID_BYTES);
    memcpy(me.name, cfg->name, sizeof(me.name));
    m->self = add_member(m, &me, now_us);
    if (!m->self)
        goto out;
    m->next_seq = (uint32_t)exo_rng_next(&m->rng);
    /* Random phases, so that nodes started together do not probe and gossip in lockstep. */
    m->next_probe_us = now_us + exo_rng_below(&m->rng, ms(cfg->probe_interval_ms));
    m->next_gossip_us = now_us + exo_rng_below(&m->rng, ms(cfg->gossip_interval_ms));
    m->next_push_pull_us =
        now_us + ms(cfg->push_pull_ms) + exo_rng_below(&m->rng, ms(cfg->push_pull_ms) + 1);
    m->next_reap_us = UINT64_MAX;
    m->eager_gossip_us = UINT64_MAX;
    m->now_us = now_us;
    m->next_rejoin_us = now_us + ms(cfg->rejoin_ms);
    m->next_reconnect_us = now_us + ms(cfg->reconnect_ms);
    *ret_members = m;
    m = NULL;
    rc = 0;
out:
    exo_members_free(m);
    return rc;
}

void exo_members_free(struct exo_members *m)
{
    if (!m)
        return;
    for (int t = 0; t < MAX_TIERS; t++)
        while (m->tiers[t].head)
            bcast_free(m, m->tiers[t].head);
    for (size_t i = 0; i < m->n; i++)
        free_member(m->list[i]);
    exo_free(m->list);
    exo_free(m->table);
    exo_free(m->suspects);
    exo_buf_free(&m->out);
    exo_buf_free(&m->scratch);
    exo_buf_free(&m->msgbuf);
    exo_buf_free(&m->nodes);
    exo_buf_free(&m->app);
    exo_free(m);
}

int exo_members_join(struct exo_members *m, const struct exo_members_addr *seeds, size_t n,
                     uint64_t now_us)
{
    m->now_us = now_us;
    size_t contacted = 0;
    for (size_t i = 0; i < n; i++) {
        const struct exo_members_addr *a = &seeds[i];
        if ((a->family != EXO_MEMBERS_FAMILY_IPV4 && a->family != EXO_MEMBERS_FAMILY_IPV6) ||
            a->port == 0 || exo_members_addr_equal(a, &m->self->addr))
            continue;
        bool known = false;
        for (size_t j = 0; j < m->n_seeds; j++)
            known |= exo_members_addr_equal(a, &m->seeds[j]);
        if (!known && m->n_seeds < MAX_SEEDS)
            m->seeds[m->n_seeds++] = *a;
        send_push_pull(m, a, true, false);
        contacted++;
    }
    /* Nodes started together may reach a seed before it listens: retry soon, then back off. */
    m->rejoin_wait_ms = REJOIN_FIRST_MS < m->cfg.rejoin_ms ? REJOIN_FIRST_MS : m->cfg.rejoin_ms;
    m->next_rejoin_us = now_us + ms(m->rejoin_wait_ms);
    return contacted || n == 0 ? 0 : EXO_EINVAL;
}

int exo_members_receive(struct exo_members *m, const struct exo_members_addr *from,
                        const uint8_t *data, size_t len, bool reliable, uint64_t now_us)
{
    m->now_us = now_us;
    size_t cap = reliable ? EXO_MEMBERS_STREAM_MAX : m->cfg.max_packet;
    if (reliable) {
        m->stats.streams_in++;
        m->stats.stream_bytes_in += len;
    } else {
        m->stats.packets_in++;
        m->stats.bytes_in += len;
    }
    if (len > cap) {
        count_drop(m, EXO_MEMBERS_DROP_TOO_BIG);
        return EXO_ETOOBIG;
    }
    struct exo_reader r;
    exo_reader_init(&r, data, len);
    int rc = exo_members_wire_open(&r, NULL);
    if (rc < 0) {
        count_drop(m,
                   rc == EXO_EUNSUPPORTED ? EXO_MEMBERS_DROP_VERSION : EXO_MEMBERS_DROP_MALFORMED);
        return rc;
    }
    /* Check the framing of the whole packet before acting on any of it. */
    struct exo_reader walk = r;
    size_t count = 0;
    uint8_t type;
    const uint8_t *body;
    size_t body_len;
    while ((rc = exo_members_wire_next(&walk, &type, &body, &body_len, NULL)) == 1)
        count++;
    if (rc < 0 || count > EXO_MEMBERS_MAX_MSGS) {
        count_drop(m, EXO_MEMBERS_DROP_MALFORMED);
        return rc < 0 ? rc : EXO_ETOOBIG;
    }
    int result = 0;
    for (;;) {
        size_t start = r.off;
        if (exo_members_wire_next(&r, &type, &body, &body_len, NULL) != 1)
            break;
        rc = dispatch(m, from, type, body, body_len, data + start, r.off - start, reliable, now_us);
        if (rc < 0)
            result = rc;
    }
    return result;
}

uint64_t exo_members_next_deadline(const struct exo_members *m)
{
    uint64_t d = umin(m->next_gossip_us, m->eager_gossip_us);
    if (!m->leaving) {
        const struct probe *p = &m->probe;
        if (p->active)
            d = umin(d, p->indirect_sent ? p->deadline_us : p->direct_deadline_us);
        else if (m->n > 1)
            d = umin(d, m->next_probe_us);
    }
    if (m->cfg.push_pull_ms && alive_others(m) > 0)
        d = umin(d, m->next_push_pull_us);
    for (size_t i = 0; i < MAX_RELAYS; i++)
        if (m->relays[i].active)
            d = umin(d, m->relays[i].deadline_us);
    for (size_t i = 0; i < m->n_suspects; i++) {
        const struct suspicion *s = m->suspects[i]->susp;
        d = umin(d, s->verifying ? s->deadline_us : s->verify_at_us);
    }
    d = umin(d, m->next_reap_us);
    if (m->n_seeds && alive_others(m) == 0 && !m->leaving)
        d = umin(d, m->next_rejoin_us);
    if (m->n_failed && !m->leaving)
        d = umin(d, m->next_reconnect_us);
    return d;
}

static void reap(struct exo_members *m, uint64_t now_us)
{
    m->next_reap_us = UINT64_MAX;
    for (size_t i = 0; i < m->n;) {
        struct member *mem = m->list[i];
        bool gone = mem->state == EXO_MEMBER_STATE_DEAD || mem->state == EXO_MEMBER_STATE_LEFT;
        if (!gone || mem == m->self) {
            i++;
            continue;
        }
        if (now_us - mem->state_since_us >= ms(m->cfg.dead_gossip_ms)) {
            remove_member(m, mem); /* the last member moved to i */
            continue;
        }
        m->next_reap_us = now_us + REAP_EVERY_US;
        i++;
    }
}

static void reconnect(struct exo_members *m, uint64_t now_us)
{
    m->next_reconnect_us = now_us + ms(m->cfg.reconnect_ms);
    while (m->n_failed) {
        size_t i = (size_t)exo_rng_below(&m->rng, m->n_failed);
        struct failed *f = &m->failed[i];
        struct member *mem = find(m, f->id);
        bool expired = now_us - f->failed_us > ms(m->cfg.reconnect_keep_ms);
        if (expired || (mem && mem->state != EXO_MEMBER_STATE_DEAD)) {
            *f = m->failed[--m->n_failed];
            continue;
        }
        send_push_pull(m, &f->addr, false, false);
        return;
    }
}

uint64_t exo_members_tick(struct exo_members *m, uint64_t now_us)
{
    m->now_us = now_us;
    relay_tick(m, now_us);
    /* Probes before suspicions: a failed probe can confirm a suspicion and bring its deadline
     * forward to now, which must then be handled in this tick. */
    probe_tick(m, now_us);
    suspicion_tick(m, now_us);
    if (now_us >= m->next_gossip_us) {
        m->next_gossip_us = now_us + ms(m->cfg.gossip_interval_ms);
        m->last_gossip_us = now_us;
        m->eager_used = false;
        m->eager_gossip_us = UINT64_MAX; /* this round carries the news */
        m->correction_budget = m->cfg.gossip_nodes + 1;
        gossip(m, now_us);
    } else if (now_us >= m->eager_gossip_us) {
        m->eager_gossip_us = UINT64_MAX;
        m->last_gossip_us = now_us;
        m->eager_used = true;
        gossip(m, now_us);
    }
    if (m->cfg.push_pull_ms && now_us >= m->next_push_pull_us) {
        m->next_push_pull_us = now_us + ms(exo_members_push_pull_ms(m->cfg.push_pull_ms, m->n));
        struct member *peer;
        if (m->resync_pending && !m->leaving)
            send_push_pull(m, &m->resync_addr, false, false);
        else if (!m->leaving && pick_random(m, 1, is_alive, NULL, &peer) == 1)
            send_push_pull(m, &peer->addr, false, false);
        m->resync_pending = false;
    }
    if (now_us >= m->next_reap_us)
        reap(m, now_us);
    if (m->n_seeds && alive_others(m) == 0 && now_us >= m->next_rejoin_us && !m->leaving) {
        m->rejoin_wait_ms =
            m->rejoin_wait_ms * 2 < m->cfg.rejoin_ms ? m->rejoin_wait_ms * 2 : m->cfg.rejoin_ms;
        m->next_rejoin_us = now_us + ms(m->rejoin_wait_ms);
        for (size_t i = 0; i < m->n_seeds; i++)
            send_push_pull(m, &m->seeds[i], true, false);
    }
    if (m->n_failed && now_us >= m->next_reconnect_us && !m->leaving)
        reconnect(m, now_us);
    return exo_members_next_deadline(m);
}

int exo_members_leave(struct exo_members *m, uint64_t now_us)
{
    m->now_us = now_us;
    if (m->leaving)
        return 0;
    m->leaving = true;
    m->probe.active = false;
    dead_node(m, m->self->incarnation, m->self->id, m->self->id, NULL, now_us);
    /* Do not wait for the next gossip tick: the caller is about to stop. */
    gossip(m, now_us);
    return 0;
}

int exo_members_update_meta(struct exo_members *m, const struct exo_members_meta *meta,
                            uint64_t now_us)
{
    if (meta->blob_len > EXO_MEMBERS_BLOB_MAX || meta->proto_min > EXO_MEMBERS_PROTO ||
        meta->proto_max < EXO_MEMBERS_PROTO)
        return EXO_EINVAL;
    if (m->leaving)
        return EXO_EBUSY;
    m->now_us = now_us;
    int rc = meta_copy(&m->self->meta, meta);
    if (rc < 0)
        return rc;
    m->self->incarnation++;
    m->self->state_since_us = now_us;
    enqueue_alive(m, m->self);
    return 0;
}

int exo_members_broadcast(struct exo_members *m, const void *data, size_t len)
{
    if (len > EXO_MEMBERS_BROADCAST_MAX || len + 64 > m->cfg.max_packet)
        return EXO_ETOOBIG;
    if (m->queue_len >= m->cfg.max_queue)
        return EXO_ENOSPC;
    struct exo_members_msg msg = {.type = EXO_MEMBERS_MSG_USER};
    memcpy(msg.user.origin, m->self->id, EXO_MEMBERS_ID_BYTES);
    msg.user.msg_id = exo_rng_next(&m->rng);
    msg.user.data = data;
    msg.user.len = len;
    seen_before(m, msg.user.origin, msg.user.msg_id);
    return enqueue_msg(m, NULL, &msg);
}

int exo_members_send(struct exo_members *m, const uint8_t id[EXO_MEMBERS_ID_BYTES],
                     const void *data, size_t len, uint64_t now_us)
{
    if (len > EXO_MEMBERS_MESSAGE_MAX)
        return EXO_ETOOBIG;
    m->now_us = now_us;
    struct member *mem = find(m, id);
    if (!mem || mem == m->self || mem->state == EXO_MEMBER_STATE_DEAD ||
        mem->state == EXO_MEMBER_STATE_LEFT)
        return EXO_ENOENT;
    struct exo_members_msg msg = {.type = EXO_MEMBERS_MSG_APP};
    memcpy(msg.app.from, m->self->id, EXO_MEMBERS_ID_BYTES);
    msg.app.data = data;
    msg.app.len = len;
    packet_begin(m);
    packet_add(m, &msg);
    if (m->out.err)
        return m->out.err;
    if (m->out.len <= m->cfg.max_packet) {
        packet_fill(m);
        packet_send(m, &mem->addr);
    } else {
        stream_send(m, &mem->addr);
    }
    return 0;
}

size_t exo_members_count(const struct exo_members *m, unsigned state_mask)
{
    size_t n = 0;
    for (int s = 0; s < 4; s++)
        if (state_mask & (1u << s))
            n += m->counts[s];
    return n;
}

int exo_members_get(const struct exo_members *m, const uint8_t id[EXO_MEMBERS_ID_BYTES],
                    struct exo_member_info *ret_info)
{
    const struct member *mem = find(m, id);
    if (!mem)
        return EXO_ENOENT;
    info_of(m, mem, ret_info);
    return 0;
}

size_t exo_members_list(const struct exo_members *m, struct exo_member_info *out, size_t cap)
{
    for (size_t i = 0; i < m->n && i < cap; i++)
        info_of(m, m->list[i], &out[i]);
    return m->n;
}

void exo_members_get_stats(const struct exo_members *m, struct exo_members_stats *ret_stats)
{
    *ret_stats = m->stats;
    ret_stats->awareness = m->awareness;
    ret_stats->alive = (uint32_t)m->counts[EXO_MEMBER_STATE_ALIVE];
    ret_stats->suspect = (uint32_t)m->counts[EXO_MEMBER_STATE_SUSPECT];
    ret_stats->dead = (uint32_t)m->counts[EXO_MEMBER_STATE_DEAD];
    ret_stats->left = (uint32_t)m->counts[EXO_MEMBER_STATE_LEFT];
    ret_stats->queued = (uint32_t)m->queue_len;
}

const char *exo_members_drop_name(enum exo_members_drop reason)
{
    static const char *const names[EXO_MEMBERS_DROP__COUNT] = {
        [EXO_MEMBERS_DROP_MALFORMED] = "malformed",
        [EXO_MEMBERS_DROP_TOO_BIG] = "too_big",
        [EXO_MEMBERS_DROP_VERSION] = "version",
        [EXO_MEMBERS_DROP_UNKNOWN_TYPE] = "unknown_type",
        [EXO_MEMBERS_DROP_MISDIRECTED] = "misdirected",
        [EXO_MEMBERS_DROP_INCOMPATIBLE] = "incompatible",
        [EXO_MEMBERS_DROP_MEMBER_CAP] = "member_cap",
        [EXO_MEMBERS_DROP_QUEUE_FULL] = "queue_full",
        [EXO_MEMBERS_DROP_RELAY_FULL] = "relay_full",
        [EXO_MEMBERS_DROP_UNKNOWN_ORIGIN] = "unknown_origin",
    };
    return (unsigned)reason < EXO_MEMBERS_DROP__COUNT ? names[reason] : "unknown";
}

const char *exo_members_state_name(enum exo_member_state state)
{
    static const char *const names[] = {"alive", "suspect", "dead", "left"};
    return (unsigned)state < 4 ? names[state] : "unknown";
}

const char *exo_members_event_name(enum exo_members_event event)
{
    static const char *const names[] = {"join", "update", "suspect", "alive", "dead", "left"};
    return (unsigned)event < 6 ? names[event] : "unknown";
}
