/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The replication protocol (the contract is in state.h, the design and its guarantees in
 * docs/internals/state.md, the wire format in state-int.h).
 *
 * Layout of this file, top to bottom: small helpers; applying entries; the leader's side
 * (appending, spreading entries, heartbeats, serving repairs and snapshots, reconciling the
 * members table, accepting reports); the follower's side (taking entries in order, detecting
 * gaps and divergence, asking for repairs, receiving snapshots); this node's own reports; the
 * election; message dispatch; and the public API in lifecycle order.
 *
 * State that matters for correctness:
 *  - The log and the table move together: every entry pushed onto the log is applied at once,
 *    so the table is always the state after the log's last entry. A snapshot replaces both.
 *  - `synced` says that this node's log is known to lie on the followed leader's chain (a
 *    chained entry from that leader extended it, or a heartbeat's hash matched, or a snapshot
 *    from it was installed). It is cleared when the followed claim changes or a mismatch shows.
 *  - `broken` says that the table may not be what the log says (an allocation failed while
 *    applying, or the leader's digest differs at the same position): only a snapshot clears it.
 *  - Level, not edge: the leader re-derives the members table from its membership view, and
 *    every node re-derives what its own reports should be, every reconcile interval and on every
 *    change. Lost messages, lost leaders and lost histories are therefore repaired by the next
 *    comparison rather than by remembering what was sent.
 */
#include "cluster/state.h"

#include <cjson/cJSON.h>
#include <sodium.h>
#include <string.h>

#include "cluster/state-int.h"
#include "core/alloc.h"

#define PENDING_MAX      256        /* out-of-order entries kept while a gap is open */
#define PENDING_BYTES    (1u << 20) /* and their payload bytes */
#define BROADCAST_BUDGET EXO_MEMBERS_BROADCAST_MAX
#define MESSAGE_BUDGET   (EXO_MEMBERS_MESSAGE_MAX - 1024)
#define HEADER_BYTES     64           /* an APPEND's header, at most */
#define REPAIR_BYTES     (256u << 10) /* entries sent for one repair request */
#define SNAP_WINDOW      4            /* snapshot chunks sent per request */
#define SNAP_REUSE_US    1000000ull   /* a snapshot this young is served again as it is */
#define SNAP_KEEP_US     30000000ull  /* an unused snapshot is dropped after this */
#define US_PER_MS        1000ull

struct pending {
    struct exo_state_event e; /* payload owned */
    uint8_t prev[EXO_STATE_HASH_BYTES];
    uint8_t hash[EXO_STATE_HASH_BYTES];
};

/* One of this node's own reports, the authoritative copy. */
struct mine {
    uint16_t kind;
    uint8_t key_len;
    uint8_t key[EXO_STATE_KEY_MAX];
    uint8_t format;
    uint64_t version;
    uint8_t *value; /* owned */
    size_t value_len;
    uint64_t sent_version; /* last version sent to the leader, 0 when none */
    uint64_t sent_us;
};

struct snapshot_rx {
    bool active;
    uint64_t index;
    uint8_t hash[EXO_STATE_HASH_BYTES];
    uint64_t total;
    uint32_t chunks, received, window_end;
    uint8_t *data; /* [total] */
    uint8_t *have; /* [chunks] */
    uint64_t deadline_us;
};

struct snapshot_cache {
    bool valid;
    struct exo_buf data;
    uint64_t index;
    uint8_t hash[EXO_STATE_HASH_BYTES];
    uint64_t made_us, used_us;
};

struct exo_state {
    struct exo_state_config cfg;
    struct exo_members *members;
    struct exo_state_hooks hooks;
    uint64_t now_us;

    struct exo_leader election;
    struct exo_state_table table;
    struct exo_state_log log;
    bool digest_valid;
    uint8_t digest[EXO_STATE_HASH_BYTES];

    /* Follower. */
    bool synced;
    bool broken;
    bool head_known; /* the index of the followed leader's last entry, as last heard */
    uint64_t head_index;
    struct pending *pending;
    size_t n_pending, pending_bytes;
    uint64_t repair_due_us;
    struct snapshot_rx rx;

    /* Leader. */
    uint64_t unsent; /* first entry not yet spread */
    uint64_t heartbeat_due_us, members_due_us;
    struct snapshot_cache snap;

    /* This node's reports. */
    struct mine *mine;
    size_t n_mine, mine_cap;
    uint64_t version;     /* the last version given to a report */
    uint64_t del_sent_us; /* last time deletions were sent */
    uint64_t report_due_us;

    /* Election. */
    uint64_t eval_due_us, claim_wake_us;
    struct exo_member_info *view; /* the membership view, refreshed before each use */
    size_t n_view, view_cap;

    struct exo_buf out, scratch, entries, payload;
    struct exo_state_stats stats;
};

/* ---- small helpers ---- */

static uint64_t umin(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint64_t ms(uint32_t v)
{
    return (uint64_t)v * US_PER_MS;
}

static bool id_eq(const uint8_t *a, const uint8_t *b)
{
    return memcmp(a, b, EXO_MEMBERS_ID_BYTES) == 0;
}

static bool hash_eq(const uint8_t *a, const uint8_t *b)
{
    return memcmp(a, b, EXO_STATE_HASH_BYTES) == 0;
}

static bool claim_eq(const struct exo_leader_claim *a, const struct exo_leader_claim *b)
{
    return a->term == b->term && id_eq(a->id, b->id);
}

static uint64_t last_index(const struct exo_state *s)
{
    return exo_state_log_last(&s->log);
}

static const uint8_t *last_hash(const struct exo_state *s)
{
    return exo_state_log_hash(&s->log, last_index(s));
}

static bool leading(const struct exo_state *s)
{
    return exo_leader_is_self(&s->election);
}

static void drop(struct exo_state *s, enum exo_state_drop why)
{
    s->stats.dropped[why]++;
}

static void send_to(struct exo_state *s, const uint8_t *to, const struct exo_buf *msg)
{
    if (msg->err || exo_members_send(s->members, to, msg->data, msg->len, s->now_us) < 0)
        drop(s, EXO_STATE_DROP_SEND);
}

static bool broadcast(struct exo_state *s, const struct exo_buf *msg)
{
    if (msg->err || exo_members_broadcast(s->members, msg->data, msg->len) < 0) {
        drop(s, EXO_STATE_DROP_SEND);
        return false;
    }
    return true;
}

static void refresh_view(struct exo_state *s)
{
    size_t n = exo_members_count(s->members, ~0u);
    if (n > s->view_cap) {
        struct exo_member_info *v = exo_realloc(s->view, exo_mul_size(n, sizeof(*v)));
        if (!v)
            return; /* keep the old view: better stale than none */
        s->view = v;
        s->view_cap = n;
    }
    s->n_view = exo_members_list(s->members, s->view, s->view_cap);
    if (s->n_view > s->view_cap)
        s->n_view = s->view_cap;
}

static const struct exo_member_info *view_find(const struct exo_state *s, const uint8_t *id)
{
    for (size_t i = 0; i < s->n_view; i++)
        if (id_eq(s->view[i].id, id))
            return &s->view[i];
    return NULL;
}

/* ---- applying entries ---- */

/* Push an entry (borrowed) onto the log and apply it. The only failure is EXO_ENOMEM from the
 * log, which leaves both unchanged; a refusal by the table is counted and the entry stays in
 * the log, since every node refuses it alike. */
static int apply_entry(struct exo_state *s, const struct exo_state_event *e,
                       const uint8_t hash[EXO_STATE_HASH_BYTES])
{
    int rc = exo_state_log_push(&s->log, e, hash);
    if (rc < 0)
        return rc;
    rc = exo_state_table_apply(&s->table, e);
    if (rc == EXO_ENOENT)
        drop(s, EXO_STATE_DROP_UNKNOWN_EVENT);
    else if (rc == EXO_ENOMEM)
        s->broken = true;
    else if (rc < 0)
        drop(s, EXO_STATE_DROP_INVALID_EVENT);
    s->digest_valid = false;
    s->stats.events_applied++;
    /* Any change may make this node's reports differ from the table. */
    if (e->type != EXO_STATE_EVENT_LEADER)
        s->report_due_us = umin(s->report_due_us, s->now_us);
    if (s->hooks.event_cb)
        s->hooks.event_cb(s->hooks.ctx, e);
    return 0;
}

/* ---- the leader's side ---- */

static void put_claim_msg(struct exo_state *s, struct exo_state_msg *msg, uint8_t type)
{
    memset(msg, 0, sizeof(*msg));
    msg->type = type;
    msg->claim = s->election.follow;
}

static void position(struct exo_state *s, struct exo_state_pos *pos)
{
    pos->index = last_index(s);
    memcpy(pos->hash, last_hash(s), EXO_STATE_HASH_BYTES);
    pos->first = s->log.base_index + 1;
    exo_state_digest(s, pos->digest);
}

/* The heartbeat: to everyone by broadcast (to NULL), or to one node in answer to a repair. */
static void send_head(struct exo_state *s, const uint8_t *to)
{
    struct exo_state_msg msg;
    put_claim_msg(s, &msg, EXO_STATE_MSG_HEAD);
    position(s, &msg.head);
    exo_buf_reset(&s->out);
    exo_state_wire_put(&s->out, &msg);
    if (to)
        send_to(s, to, &s->out);
    else if (broadcast(s, &s->out))
        s->stats.heartbeats_sent++;
}

/* Append one event with the payload in s->payload. */
static int leader_append(struct exo_state *s, uint8_t type)
{
    if (s->payload.err)
        return s->payload.err;
    struct exo_state_event e = {.index = last_index(s) + 1,
                                .term = s->election.follow.term,
                                .type = type,
                                .payload = s->payload.data,
                                .len = s->payload.len};
    uint8_t hash[EXO_STATE_HASH_BYTES];
    exo_state_chain_hash(last_hash(s), &e, &s->scratch, hash);
    int rc = apply_entry(s, &e, hash);
    if (rc == 0)
        s->stats.events_appended++;
    return rc;
}

static int append_payload(struct exo_state *s, uint8_t type, const struct exo_state_payload *p)
{
    exo_buf_reset(&s->payload);
    exo_state_payload_put(&s->payload, type, p);
    return leader_append(s, type);
}

/* Encode entries from `from` into s->entries while they fit in budget (at least one, unless the
 * first alone is over budget); returns how many. */
static uint32_t batch_entries(struct exo_state *s, uint64_t from, size_t budget)
{
    exo_buf_reset(&s->entries);
    uint32_t n = 0;
    for (uint64_t i = from; i <= last_index(s) && n < EXO_STATE_APPEND_MAX; i++, n++) {
        const struct exo_state_log_entry *le = exo_state_log_at(&s->log, i);
        struct exo_state_event e = {
            .index = i, .term = le->term, .type = le->type, .payload = le->payload, .len = le->len};
        size_t before = s->entries.len;
        exo_state_wire_put_entry(&s->entries, &e);
        if (s->entries.err || s->entries.len + HEADER_BYTES > budget) {
            s->entries.len = before;
            s->entries.err = 0;
            break;
        }
    }
    return n;
}

static void put_append(struct exo_state *s, uint64_t prev, uint32_t count)
{
    struct exo_state_msg msg;
    put_claim_msg(s, &msg, EXO_STATE_MSG_APPEND);
    msg.append.prev_index = prev;
    memcpy(msg.append.prev_hash, exo_state_log_hash(&s->log, prev), EXO_STATE_HASH_BYTES);
    msg.append.count = count;
    msg.append.entries = s->entries.data;
    msg.append.len = s->entries.len;
    exo_buf_reset(&s->out);
    exo_state_wire_put(&s->out, &msg);
}

/* Spread what was appended since the last flush: small entries ride piggybacked broadcasts,
 * a heartbeat announces the big ones, which followers then pull. */
static void flush(struct exo_state *s)
{
    uint64_t last = last_index(s);
    if (!leading(s)) {
        s->unsent = last + 1;
        return;
    }
    bool announce = false;
    if (s->unsent <= s->log.base_index)
        s->unsent = s->log.base_index + 1; /* evicted before it went out: followers pull */
    while (s->unsent <= last) {
        uint32_t n = batch_entries(s, s->unsent, BROADCAST_BUDGET);
        if (n == 0) {
            announce = true;
            s->unsent++;
            continue;
        }
        put_append(s, s->unsent - 1, n);
        if (!broadcast(s, &s->out)) {
            announce = true;
            s->unsent = last + 1;
            break;
        }
        s->unsent += n;
    }
    if (announce)
        send_head(s, NULL);
}

static void send_range(struct exo_state *s, const uint8_t *to, uint64_t after)
{
    size_t sent = 0;
    uint64_t next = after + 1;
    while (next <= last_index(s) && sent < REPAIR_BYTES) {
        uint32_t n = batch_entries(s, next, MESSAGE_BUDGET);
        if (n == 0)
            break; /* cannot happen: an entry is far below the budget */
        put_append(s, next - 1, n);
        send_to(s, to, &s->out);
        sent += s->out.len;
        s->stats.entries_served += n;
        next += n;
    }
}

static void snap_drop(struct snapshot_cache *c)
{
    c->valid = false;
    exo_buf_reset(&c->data);
}

/* Send chunks first .. first + SNAP_WINDOW of the cached snapshot, making one when there is
 * none or it is stale. A snapshot is reused for a second, so that followers fetching in windows
 * see the same one, and so that a burst of requests costs one encoding. */
static void serve_snapshot(struct exo_state *s, const uint8_t *to, uint32_t first, bool fresh)
{
    struct snapshot_cache *c = &s->snap;
    if (fresh && c->valid && c->index != last_index(s) && s->now_us - c->made_us > SNAP_REUSE_US)
        snap_drop(c);
    if (!c->valid) {
        exo_buf_reset(&c->data);
        exo_state_table_encode(&s->table, &c->data);
        if (c->data.err) {
            drop(s, EXO_STATE_DROP_SEND);
            exo_buf_reset(&c->data);
            return;
        }
        c->valid = true;
        c->index = last_index(s);
        memcpy(c->hash, last_hash(s), EXO_STATE_HASH_BYTES);
        c->made_us = s->now_us;
    }
    c->used_us = s->now_us;
    uint32_t chunks = (uint32_t)((c->data.len + EXO_STATE_CHUNK - 1) / EXO_STATE_CHUNK);
    if (first == 0)
        s->stats.snapshots_served++;
    for (uint32_t k = first; k < chunks && k < first + SNAP_WINDOW; k++) {
        struct exo_state_msg msg;
        put_claim_msg(s, &msg, EXO_STATE_MSG_SNAP_CHUNK);
        msg.snap_chunk.index = c->index;
        memcpy(msg.snap_chunk.hash, c->hash, EXO_STATE_HASH_BYTES);
        msg.snap_chunk.total = c->data.len;
        msg.snap_chunk.chunk = k;
        msg.snap_chunk.data = c->data.data + (size_t)k * EXO_STATE_CHUNK;
        msg.snap_chunk.len = umin(EXO_STATE_CHUNK, c->data.len - (size_t)k * EXO_STATE_CHUNK);
        exo_buf_reset(&s->out);
        exo_state_wire_put(&s->out, &msg);
        send_to(s, to, &s->out);
        s->stats.snapshot_chunks_sent++;
    }
}

static bool meta_equal(const struct exo_members_meta *a, const struct exo_members_meta *b)
{
    return a->proto_min == b->proto_min && a->proto_max == b->proto_max &&
           a->gossip_port == b->gossip_port && a->api_port == b->api_port &&
           a->data_port == b->data_port && a->roles == b->roles &&
           a->leader_priority == b->leader_priority && a->blob_len == b->blob_len &&
           (a->blob_len == 0 || memcmp(a->blob, b->blob, a->blob_len) == 0);
}

static bool node_matches(const struct exo_members_node *n, const struct exo_member_info *v)
{
    return n->state == (uint8_t)v->state && n->incarnation == v->incarnation &&
           exo_members_addr_equal(&n->addr, &v->addr) && strcmp(n->name, v->name) == 0 &&
           meta_equal(&n->meta, &v->meta);
}

/* Make the members table what this leader's membership view says. */
static void reconcile_members(struct exo_state *s)
{
    s->members_due_us = s->now_us + ms(s->cfg.reconcile_ms);
    refresh_view(s);
    struct exo_state_payload p;
    /* From the end, so that removing a row leaves the rows still to visit where they were. */
    for (size_t i = s->table.n_members; i-- > 0;) {
        struct exo_member_info info;
        if (exo_members_get(s->members, s->table.members[i].node.id, &info) == 0)
            continue;
        memcpy(p.id, s->table.members[i].node.id, EXO_MEMBERS_ID_BYTES);
        append_payload(s, EXO_STATE_EVENT_MEMBER_DEL, &p);
    }
    for (size_t i = 0; i < s->n_view; i++) {
        const struct exo_member_info *v = &s->view[i];
        long at = exo_state_table_find_member(&s->table, v->id);
        if (at >= 0 && node_matches(&s->table.members[at].node, v))
            continue;
        memset(&p, 0, sizeof(p));
        p.member.state = (uint8_t)v->state;
        p.member.incarnation = v->incarnation;
        memcpy(p.member.id, v->id, EXO_MEMBERS_ID_BYTES);
        p.member.addr = v->addr;
        memcpy(p.member.name, v->name, sizeof(p.member.name));
        p.member.meta = v->meta;
        append_payload(s, EXO_STATE_EVENT_MEMBER_SET, &p);
    }
}

/* A report from member `from`: set what is newer than the table, delete what it deleted. */
static void accept_report(struct exo_state *s, const uint8_t *from, const struct exo_state_msg *msg)
{
    if (!leading(s)) {
        drop(s, EXO_STATE_DROP_NOT_LEADER);
        return;
    }
    if (exo_state_table_find_member(&s->table, from) < 0) {
        drop(s, EXO_STATE_DROP_REFUSED);
        return;
    }
    struct exo_reader r;
    exo_reader_init(&r, msg->report.records, msg->report.len);
    for (uint32_t i = 0; i < msg->report.count; i++) {
        bool deleted = exo_reader_u8(&r) & EXO_STATE_REPORT_DELETED;
        struct exo_state_payload p;
        exo_state_wire_get_record(&r, &p.record, NULL);     /* checked by the decoder */
        memcpy(p.record.owner, from, EXO_MEMBERS_ID_BYTES); /* a node reports on itself only */
        const struct exo_state_record *rec = &p.record;
        long at = exo_state_table_find_record(&s->table, rec->kind, from, rec->key, rec->key_len);
        if (deleted) {
            if (at >= 0 && append_payload(s, EXO_STATE_EVENT_RECORD_DEL, &p) == 0)
                s->stats.reports_accepted++;
            continue;
        }
        if (at >= 0 && s->table.records[at].version >= rec->version)
            continue;
        if (exo_state_table_fits(&s->table, rec) < 0) {
            drop(s, EXO_STATE_DROP_REFUSED);
            continue;
        }
        if (append_payload(s, EXO_STATE_EVENT_RECORD_SET, &p) == 0)
            s->stats.reports_accepted++;
    }
}

/* ---- the follower's side ---- */

static void pending_remove(struct exo_state *s, size_t i)
{
    s->pending_bytes -= s->pending[i].e.len;
    exo_free((void *)s->pending[i].e.payload);
    s->pending[i] = s->pending[--s->n_pending];
}

static void pending_clear(struct exo_state *s)
{
    while (s->n_pending)
        pending_remove(s, s->n_pending - 1);
}

static void rx_clear(struct snapshot_rx *rx)
{
    exo_free(rx->data);
    exo_free(rx->have);
    memset(rx, 0, sizeof(*rx));
}

/* This node's log is off the leader's chain: drop what cannot apply and ask for a repair,
 * which the leader will answer with a snapshot. */
static void diverged(struct exo_state *s)
{
    if (s->synced || s->n_pending)
        s->stats.divergences++;
    s->synced = false;
    pending_clear(s);
    s->repair_due_us = umin(s->repair_due_us, s->now_us);
}

static void pending_add(struct exo_state *s, const struct exo_state_event *e, const uint8_t *prev,
                        const uint8_t *hash)
{
    for (size_t i = 0; i < s->n_pending; i++)
        if (s->pending[i].e.index == e->index)
            return;
    if (s->n_pending == PENDING_MAX || s->pending_bytes + e->len > PENDING_BYTES) {
        drop(s, EXO_STATE_DROP_OVERFLOW);
        return;
    }
    if (!s->pending) {
        s->pending = exo_calloc(PENDING_MAX, sizeof(*s->pending));
        if (!s->pending)
            return;
    }
    uint8_t *payload = exo_malloc(e->len ? e->len : 1);
    if (!payload)
        return;
    if (e->len)
        memcpy(payload, e->payload, e->len);
    struct pending *p = &s->pending[s->n_pending++];
    p->e = *e;
    p->e.payload = payload;
    memcpy(p->prev, prev, EXO_STATE_HASH_BYTES);
    memcpy(p->hash, hash, EXO_STATE_HASH_BYTES);
    s->pending_bytes += e->len;
}

/* One entry from the followed leader, whose chain gives it prev and hash. Returns false when
 * it showed that this node's log is not on the leader's chain. */
static bool offer(struct exo_state *s, const struct exo_state_event *e, const uint8_t *prev,
                  const uint8_t *hash)
{
    uint64_t last = last_index(s);
    if (e->index <= s->log.base_index)
        return true; /* older than anything this node can check */
    if (e->index <= last) {
        if (!hash_eq(exo_state_log_hash(&s->log, e->index), hash)) {
            diverged(s);
            return false;
        }
        s->synced = true;
        return true;
    }
    if (e->index > last + 1) {
        pending_add(s, e, prev, hash);
        s->repair_due_us = umin(s->repair_due_us, s->now_us + ms(s->cfg.gap_wait_ms));
        return true;
    }
    if (!hash_eq(prev, last_hash(s))) {
        diverged(s);
        return false;
    }
    if (apply_entry(s, e, hash) < 0) {
        s->repair_due_us = umin(s->repair_due_us, s->now_us);
        return true;
    }
    s->synced = true;
    return true;
}

/* Apply the kept out-of-order entries that the log now reaches. */
static void pending_drain(struct exo_state *s)
{
    for (bool progress = true; progress && s->n_pending;) {
        progress = false;
        uint64_t last = last_index(s);
        for (size_t i = 0; i < s->n_pending; i++) {
            struct pending *p = &s->pending[i];
            if (p->e.index <= last) {
                pending_remove(s, i);
                progress = true;
                break;
            }
            if (p->e.index == last + 1) {
                struct pending copy = *p;
                s->pending[i] = s->pending[--s->n_pending];
                s->pending_bytes -= copy.e.len;
                bool ok = offer(s, &copy.e, copy.prev, copy.hash);
                exo_free((void *)copy.e.payload);
                progress = ok;
                break;
            }
        }
    }
}

static void note_head(struct exo_state *s, uint64_t index)
{
    if (s->head_known && index < s->head_index)
        return;
    s->head_known = true;
    s->head_index = index;
}

/* The followed leader says where its log ends: see whether this node is on it, behind it, or
 * off it, and whether its table matches at the same position. */
static void check_position(struct exo_state *s, const struct exo_state_pos *pos)
{
    note_head(s, pos->index);
    uint64_t last = last_index(s);
    if (pos->index > last) {
        s->repair_due_us = umin(s->repair_due_us, s->now_us + ms(s->cfg.gap_wait_ms));
        return;
    }
    const uint8_t *h = exo_state_log_hash(&s->log, pos->index);
    if (!h) {
        if (!s->synced)
            s->repair_due_us = umin(s->repair_due_us, s->now_us);
        return;
    }
    if (!hash_eq(h, pos->hash)) {
        diverged(s);
        return;
    }
    s->synced = true;
    if (pos->index == last && !s->broken) {
        uint8_t digest[EXO_STATE_HASH_BYTES];
        exo_state_digest(s, digest);
        if (!hash_eq(digest, pos->digest)) {
            s->broken = true;
            s->stats.divergences++;
        }
    }
    if (s->broken)
        s->repair_due_us = umin(s->repair_due_us, s->now_us);
}

/* Stop asking for repairs once this node holds what the leader announced; a node that just
 * caught up may be the one that should lead, so the election looks again at once. */
static void settle(struct exo_state *s)
{
    if (s->repair_due_us == UINT64_MAX)
        return;
    if (leading(s) || (s->synced && !s->broken && !s->rx.active && s->n_pending == 0 &&
                       (!s->head_known || last_index(s) >= s->head_index))) {
        s->repair_due_us = UINT64_MAX;
        s->eval_due_us = s->now_us;
    }
}

static void request_repair(struct exo_state *s)
{
    s->repair_due_us = UINT64_MAX;
    if (leading(s) || s->election.follow.term == 0)
        return;
    struct exo_state_msg msg;
    put_claim_msg(s, &msg, EXO_STATE_MSG_REPAIR);
    msg.repair.index = last_index(s);
    memcpy(msg.repair.hash, last_hash(s), EXO_STATE_HASH_BYTES);
    msg.repair.snapshot = s->broken;
    exo_buf_reset(&s->out);
    exo_state_wire_put(&s->out, &msg);
    send_to(s, s->election.follow.id, &s->out);
    s->stats.repairs_requested++;
    s->repair_due_us = s->now_us + ms(s->cfg.repair_timeout_ms);
}

static uint32_t rx_first_missing(const struct snapshot_rx *rx)
{
    uint32_t k = 0;
    while (k < rx->chunks && rx->have[k])
        k++;
    return k;
}

static void rx_request(struct exo_state *s, uint32_t chunk)
{
    struct exo_state_msg msg;
    put_claim_msg(s, &msg, EXO_STATE_MSG_SNAP_REQ);
    msg.snap_req.index = s->rx.index;
    memcpy(msg.snap_req.hash, s->rx.hash, EXO_STATE_HASH_BYTES);
    msg.snap_req.chunk = chunk;
    exo_buf_reset(&s->out);
    exo_state_wire_put(&s->out, &msg);
    send_to(s, s->election.follow.id, &s->out);
    s->rx.window_end = chunk + SNAP_WINDOW;
    s->rx.deadline_us = s->now_us + ms(s->cfg.repair_timeout_ms);
}

static void install_snapshot(struct exo_state *s)
{
    struct snapshot_rx *rx = &s->rx;
    struct exo_state_table t;
    exo_state_table_init(&t);
    if (exo_state_table_decode(&t, rx->data, rx->total, NULL) < 0) {
        drop(s, EXO_STATE_DROP_MALFORMED);
        rx_clear(rx);
        s->repair_due_us = umin(s->repair_due_us, s->now_us + ms(s->cfg.repair_timeout_ms));
        return;
    }
    exo_state_table_clear(&s->table);
    s->table = t;
    exo_state_log_reset(&s->log, rx->index, rx->hash);
    note_head(s, rx->index); /* the leader's log reached this far */
    pending_clear(s);
    s->broken = false;
    s->synced = true;
    s->digest_valid = false;
    s->stats.snapshots_installed++;
    s->report_due_us = umin(s->report_due_us, s->now_us);
    struct exo_state_event notice = {
        .index = rx->index, .term = t.term, .type = EXO_STATE_EVENT_SNAPSHOT};
    rx_clear(rx);
    if (s->head_known && s->head_index > last_index(s))
        s->repair_due_us = umin(s->repair_due_us, s->now_us);
    if (s->hooks.event_cb)
        s->hooks.event_cb(s->hooks.ctx, &notice);
}

static void take_chunk(struct exo_state *s, const struct exo_state_msg *msg)
{
    struct snapshot_rx *rx = &s->rx;
    uint64_t index = msg->snap_chunk.index, total = msg->snap_chunk.total;
    uint32_t chunk = msg->snap_chunk.chunk;
    if (!rx->active || rx->index != index || !hash_eq(rx->hash, msg->snap_chunk.hash) ||
        rx->total != total) {
        rx_clear(rx);
        rx->chunks = (uint32_t)((total + EXO_STATE_CHUNK - 1) / EXO_STATE_CHUNK);
        rx->data = exo_malloc(total);
        rx->have = exo_calloc(rx->chunks, 1);
        if (!rx->data || !rx->have) {
            rx_clear(rx);
            return;
        }
        rx->active = true;
        rx->index = index;
        memcpy(rx->hash, msg->snap_chunk.hash, EXO_STATE_HASH_BYTES);
        rx->total = total;
        rx->window_end = SNAP_WINDOW;
    }
    s->stats.snapshot_chunks_received++;
    if (!rx->have[chunk]) {
        /* The decoder checked that the chunk lies inside the total and has its full size. */
        memcpy(rx->data + (size_t)chunk * EXO_STATE_CHUNK, msg->snap_chunk.data,
               msg->snap_chunk.len);
        rx->have[chunk] = 1;
        rx->received++;
    }
    rx->deadline_us = s->now_us + ms(s->cfg.repair_timeout_ms);
    if (rx->received == rx->chunks) {
        install_snapshot(s);
        return;
    }
    uint32_t miss = rx_first_missing(rx);
    if (miss >= rx->window_end)
        rx_request(s, miss);
}

/* ---- this node's own reports ---- */

static long mine_find(const struct exo_state *s, uint16_t kind, const uint8_t *key, size_t len)
{
    for (size_t i = 0; i < s->n_mine; i++)
        if (s->mine[i].kind == kind && s->mine[i].key_len == len &&
            (len == 0 || memcmp(s->mine[i].key, key, len) == 0))
            return (long)i;
    return -1;
}

static void mine_view(const struct exo_state *s, const struct mine *m, struct exo_state_record *r)
{
    memset(r, 0, sizeof(*r));
    r->kind = m->kind;
    memcpy(r->owner, s->cfg.id, EXO_MEMBERS_ID_BYTES);
    r->key = m->key;
    r->key_len = m->key_len;
    r->version = m->version;
    r->format = m->format;
    r->value = m->value;
    r->value_len = m->value_len;
}

static bool record_matches(const struct exo_state_table_record *t, const struct mine *m)
{
    return t->version == m->version && t->format == m->format && t->value_len == m->value_len &&
           (m->value_len == 0 || memcmp(t->value, m->value, m->value_len) == 0);
}

/* What to do about one difference between this node's reports and the table: set `m`, or delete
 * the table's record `t` (exactly one is given). */
typedef void (*report_fix_fn)(struct exo_state *s, struct mine *m,
                              const struct exo_state_table_record *t, void *arg);

/* Call fix for every difference; returns how many there were. A report that the table holds
 * at the same or a higher version with other content (this node restarted and numbers its
 * versions from 1 again) is renumbered above it first. */
static size_t report_diff(struct exo_state *s, report_fix_fn fix, void *arg)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_mine; i++) {
        struct mine *m = &s->mine[i];
        long at = exo_state_table_find_record(&s->table, m->kind, s->cfg.id, m->key, m->key_len);
        const struct exo_state_table_record *t = at >= 0 ? &s->table.records[at] : NULL;
        if (t && record_matches(t, m))
            continue;
        if (t && t->version >= m->version) {
            s->version = t->version > s->version ? t->version : s->version;
            m->version = ++s->version;
        }
        n++;
        fix(s, m, NULL, arg);
    }
    for (size_t i = 0; i < s->table.n_records; i++) {
        const struct exo_state_table_record *t = &s->table.records[i];
        if (!id_eq(t->owner, s->cfg.id) || mine_find(s, t->kind, t->key, t->key_len) >= 0)
            continue;
        n++;
        fix(s, NULL, t, arg);
    }
    return n;
}

/* The leader applies its own reports directly, but after the walk, which reads the table that
 * applying changes. A deletion keeps a copy of its key, which lives in the table. */
#define LEADER_FIXES 32

struct leader_fix {
    struct exo_state_payload p;
    uint8_t key[EXO_STATE_KEY_MAX];
    bool deleted;
};

struct fix_list {
    struct leader_fix items[LEADER_FIXES];
    size_t n;
};

static void leader_fix(struct exo_state *s, struct mine *m, const struct exo_state_table_record *t,
                       void *arg)
{
    struct fix_list *l = arg;
    if (l->n == LEADER_FIXES)
        return;
    struct leader_fix *f = &l->items[l->n++];
    f->deleted = m == NULL;
    if (m) {
        mine_view(s, m, &f->p.record);
        return;
    }
    exo_state_table_record_view(t, &f->p.record);
    memcpy(f->key, t->key, t->key_len);
    f->p.record.key = f->key;
}

/* A follower batches what differs into REPORT messages to the leader, each record at most once
 * per reconcile interval unless its version changed. */
struct report_batch {
    uint32_t count;
    bool deletes;
};

static void report_send(struct exo_state *s, struct report_batch *b)
{
    if (b->count == 0)
        return;
    struct exo_state_msg msg = {.type = EXO_STATE_MSG_REPORT};
    msg.report.count = b->count;
    msg.report.records = s->entries.data;
    msg.report.len = s->entries.len;
    exo_buf_reset(&s->out);
    exo_state_wire_put(&s->out, &msg);
    send_to(s, s->election.follow.id, &s->out);
    s->stats.reports_sent++;
    exo_buf_reset(&s->entries);
    b->count = 0;
}

static void follower_fix(struct exo_state *s, struct mine *m,
                         const struct exo_state_table_record *t, void *arg)
{
    struct report_batch *b = arg;
    uint64_t again = ms(s->cfg.reconcile_ms);
    struct exo_state_record rec;
    if (m) {
        if (m->sent_version == m->version && s->now_us - m->sent_us < again)
            return;
        m->sent_version = m->version;
        m->sent_us = s->now_us;
        mine_view(s, m, &rec);
    } else {
        if (s->now_us - s->del_sent_us < again)
            return;
        b->deletes = true;
        exo_state_table_record_view(t, &rec);
        rec.value_len = 0;
    }
    size_t need = rec.key_len + rec.value_len + 64;
    if (b->count == EXO_STATE_REPORT_MAX || s->entries.len + need > MESSAGE_BUDGET)
        report_send(s, b);
    exo_buf_put_u8(&s->entries, m ? 0 : EXO_STATE_REPORT_DELETED);
    exo_state_wire_put_record(&s->entries, &rec);
    b->count++;
}

static void check_reports(struct exo_state *s)
{
    s->report_due_us = UINT64_MAX;
    size_t differ = 0;
    if (leading(s)) {
        struct fix_list l;
        l.n = 0;
        differ = report_diff(s, leader_fix, &l);
        size_t refused = 0;
        for (size_t i = 0; i < l.n; i++) {
            struct leader_fix *f = &l.items[i];
            if (!f->deleted && exo_state_table_fits(&s->table, &f->p.record) < 0) {
                drop(s, EXO_STATE_DROP_REFUSED); /* e.g. before the table lists this node */
                refused++;
                continue;
            }
            append_payload(s, f->deleted ? EXO_STATE_EVENT_RECORD_DEL : EXO_STATE_EVENT_RECORD_SET,
                           &f->p);
        }
        if (differ > l.n) {
            s->report_due_us = s->now_us; /* more than one pass holds: the next tick goes on */
            return;
        }
        differ = refused;
    } else if (s->election.follow.term > 0) {
        struct report_batch b = {0};
        exo_buf_reset(&s->entries);
        differ = report_diff(s, follower_fix, &b);
        report_send(s, &b);
        if (b.deletes)
            s->del_sent_us = s->now_us;
    }
    if (differ)
        s->report_due_us = s->now_us + ms(s->cfg.reconcile_ms);
}

/* ---- election ---- */

/* The followed claim changed: whatever was known about the old leader's log no longer holds. */
static void follow_changed(struct exo_state *s)
{
    s->synced = false;
    s->head_known = false;
    pending_clear(s);
    rx_clear(&s->rx);
    snap_drop(&s->snap);
    /* A new leader hears every report again, whatever was sent to the old one. */
    for (size_t i = 0; i < s->n_mine; i++)
        s->mine[i].sent_version = 0;
    s->del_sent_us = 0;
    s->report_due_us = s->now_us;
    s->repair_due_us = leading(s) ? UINT64_MAX : s->now_us;
    s->eval_due_us = s->now_us;
}

/* Note a claim from a message sent by `from` (borrowed); true when it is the claim this node
 * follows (possibly just adopted). */
static bool observe(struct exo_state *s, const struct exo_leader_claim *claim, const uint8_t *from)
{
    bool from_leader = id_eq(from, claim->id);
    if (exo_leader_observe(&s->election, claim, from_leader, s->now_us))
        follow_changed(s);
    return claim_eq(claim, &s->election.follow);
}

static void become_leader(struct exo_state *s)
{
    uint64_t first = last_index(s) + 1;
    struct exo_leader_claim claim;
    exo_leader_claim(&s->election, s->now_us, &claim);
    s->stats.claims++;
    follow_changed(s);
    s->unsent = first;
    struct exo_state_payload p;
    memcpy(p.leader.id, claim.id, EXO_MEMBERS_ID_BYTES);
    p.leader.priority = claim.priority;
    append_payload(s, EXO_STATE_EVENT_LEADER, &p);
    s->members_due_us = s->now_us;
    s->heartbeat_due_us = s->now_us + ms(s->cfg.heartbeat_ms);
    s->broken = false;
}

static bool in_sync(const struct exo_state *s)
{
    return s->synced && !s->broken && s->head_known && last_index(s) >= s->head_index;
}

static void evaluate(struct exo_state *s)
{
    s->eval_due_us = s->now_us + ms(s->cfg.reconcile_ms);
    refresh_view(s);
    long choice = exo_leader_choose(s->view, s->n_view);
    const struct exo_member_info *self = view_find(s, s->cfg.id);
    if (self)
        s->election.self_priority = self->meta.leader_priority;
    const struct exo_member_info *lm = view_find(s, s->election.follow.id);
    struct exo_leader_input in = {
        .self_is_choice = choice >= 0 && s->view[choice].is_self,
        .leader_alive =
            lm && (lm->state == EXO_MEMBER_STATE_ALIVE || lm->state == EXO_MEMBER_STATE_SUSPECT),
        .leader_left = lm && lm->state == EXO_MEMBER_STATE_LEFT,
        .in_sync = in_sync(s),
    };
    uint64_t wake;
    if (exo_leader_should_claim(&s->election, &in, s->now_us, ms(s->cfg.lease_ms),
                                ms(s->cfg.claim_delay_ms), &wake))
        become_leader(s);
    s->claim_wake_us = wake;
}

/* ---- dispatch ---- */

static void handle(struct exo_state *s, const uint8_t *from, const struct exo_state_msg *msg)
{
    if (msg->type == EXO_STATE_MSG_STATUS)
        from = msg->status.sender; /* push-pull state names its sender */
    if (!from) {
        drop(s, EXO_STATE_DROP_MALFORMED); /* only push-pull state comes without a sender */
        return;
    }
    bool followed = msg->type == EXO_STATE_MSG_REPORT || observe(s, &msg->claim, from);
    bool from_leader = id_eq(from, msg->claim.id);
    switch (msg->type) {
    case EXO_STATE_MSG_HEAD:
        if (!followed || !from_leader || leading(s)) {
            drop(s, EXO_STATE_DROP_STALE);
            break;
        }
        check_position(s, &msg->head);
        break;
    case EXO_STATE_MSG_STATUS:
        if (!followed || leading(s))
            break;
        if (id_eq(msg->status.sender, msg->claim.id))
            check_position(s, &msg->status.pos);
        else if (msg->status.pos.index > last_index(s))
            s->repair_due_us = umin(s->repair_due_us, s->now_us + ms(s->cfg.gap_wait_ms));
        break;
    case EXO_STATE_MSG_APPEND: {
        if (!followed || !from_leader || leading(s)) {
            drop(s, EXO_STATE_DROP_STALE);
            break;
        }
        struct exo_reader r;
        exo_reader_init(&r, msg->append.entries, msg->append.len);
        uint8_t prev[EXO_STATE_HASH_BYTES], hash[EXO_STATE_HASH_BYTES];
        memcpy(prev, msg->append.prev_hash, EXO_STATE_HASH_BYTES);
        for (uint32_t i = 0; i < msg->append.count; i++) {
            struct exo_state_event e;
            exo_state_wire_get_entry(&r, &e, NULL); /* checked by the decoder */
            exo_state_chain_hash(prev, &e, &s->scratch, hash);
            if (!offer(s, &e, prev, hash))
                break;
            note_head(s, e.index);
            memcpy(prev, hash, EXO_STATE_HASH_BYTES);
        }
        pending_drain(s);
        break;
    }
    case EXO_STATE_MSG_REPAIR: {
        if (!leading(s)) {
            drop(s, EXO_STATE_DROP_NOT_LEADER);
            break;
        }
        s->stats.repairs_served++;
        const uint8_t *h = exo_state_log_hash(&s->log, msg->repair.index);
        if (msg->repair.snapshot || !h || !hash_eq(h, msg->repair.hash))
            serve_snapshot(s, from, 0, true);
        else if (msg->repair.index == last_index(s))
            send_head(s, from);
        else
            send_range(s, from, msg->repair.index);
        break;
    }
    case EXO_STATE_MSG_SNAP_REQ: {
        if (!leading(s)) {
            drop(s, EXO_STATE_DROP_NOT_LEADER);
            break;
        }
        const struct snapshot_cache *c = &s->snap;
        bool same =
            c->valid && c->index == msg->snap_req.index && hash_eq(c->hash, msg->snap_req.hash);
        serve_snapshot(s, from, same ? msg->snap_req.chunk : 0, !same);
        break;
    }
    case EXO_STATE_MSG_SNAP_CHUNK:
        if (!followed || !from_leader || leading(s)) {
            drop(s, EXO_STATE_DROP_STALE);
            break;
        }
        take_chunk(s, msg);
        break;
    case EXO_STATE_MSG_REPORT:
        accept_report(s, from, msg);
        break;
    }
    settle(s);
}

static int receive(struct exo_state *s, const uint8_t *from, const uint8_t *data, size_t len)
{
    struct exo_state_msg msg;
    int rc = exo_state_wire_decode(data, len, &msg, NULL);
    if (rc < 0) {
        drop(s, rc == EXO_EUNSUPPORTED ? EXO_STATE_DROP_VERSION : EXO_STATE_DROP_MALFORMED);
        return rc;
    }
    handle(s, from, &msg);
    return 0;
}

/* The end of every entry point but tick: spread what the leader appended, tell the driver. */
static void done(struct exo_state *s)
{
    flush(s);
    s->hooks.wake_cb(s->hooks.ctx);
}

/* ---- public API ---- */

void exo_state_config_init(struct exo_state_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->heartbeat_ms = 2000;
    cfg->lease_ms = 3000;
    cfg->claim_delay_ms = 200;
    cfg->gap_wait_ms = 50;
    cfg->repair_timeout_ms = 1000;
    cfg->reconcile_ms = 1000;
    cfg->log_entries = EXO_STATE_LOG_ENTRIES;
    cfg->log_bytes = EXO_STATE_LOG_BYTES_DEFAULT;
}

static bool config_valid(const struct exo_state_config *c)
{
    return c->heartbeat_ms && c->lease_ms && c->repair_timeout_ms && c->reconcile_ms &&
           c->log_entries >= 16 && c->log_bytes >= EXO_STATE_PAYLOAD_MAX;
}

int exo_state_create(const struct exo_state_config *cfg, struct exo_members *members,
                     const struct exo_state_hooks *hooks, uint64_t now_us,
                     struct exo_state **ret_state)
{
    struct exo_member_info self;
    if (!cfg || !members || !hooks || !hooks->wake_cb || !ret_state || !config_valid(cfg) ||
        exo_members_get(members, cfg->id, &self) < 0 || !self.is_self)
        return EXO_EINVAL;
    if (sodium_init() < 0)
        return EXO_EINTERNAL;
    struct exo_state *s = exo_calloc(1, sizeof(*s));
    if (!s)
        return EXO_ENOMEM;
    s->cfg = *cfg;
    s->members = members;
    s->hooks = *hooks;
    s->now_us = now_us;
    exo_leader_init(&s->election, cfg->id, self.meta.leader_priority);
    exo_state_table_init(&s->table);
    exo_buf_init(&s->out, EXO_MEMBERS_MESSAGE_MAX);
    exo_buf_init(&s->scratch, 0);
    exo_buf_init(&s->entries, 0); /* batches stop at their budget, below a message's size */
    exo_buf_init(&s->payload, EXO_STATE_PAYLOAD_MAX);
    exo_buf_init(&s->snap.data, EXO_STATE_SNAPSHOT_MAX);
    int rc = exo_state_log_init(&s->log, cfg->log_entries, cfg->log_bytes);
    if (rc < 0) {
        exo_state_free(s);
        return rc;
    }
    s->unsent = 1;
    s->repair_due_us = UINT64_MAX;
    s->report_due_us = UINT64_MAX;
    s->heartbeat_due_us = UINT64_MAX;
    s->members_due_us = UINT64_MAX;
    s->claim_wake_us = UINT64_MAX;
    s->eval_due_us = now_us;
    *ret_state = s;
    return 0;
}

void exo_state_free(struct exo_state *s)
{
    if (!s)
        return;
    pending_clear(s);
    exo_free(s->pending);
    rx_clear(&s->rx);
    for (size_t i = 0; i < s->n_mine; i++)
        exo_free(s->mine[i].value);
    exo_free(s->mine);
    exo_free(s->view);
    exo_state_table_clear(&s->table);
    exo_state_log_free(&s->log);
    exo_buf_free(&s->out);
    exo_buf_free(&s->scratch);
    exo_buf_free(&s->entries);
    exo_buf_free(&s->payload);
    exo_buf_free(&s->snap.data);
    exo_free(s);
}

int exo_state_receive(struct exo_state *s, const uint8_t from[EXO_MEMBERS_ID_BYTES],
                      const uint8_t *data, size_t len, bool broadcast, uint64_t now_us)
{
    (void)broadcast; /* every message means the same however it came */
    s->now_us = now_us;
    int rc = receive(s, from, data, len);
    done(s);
    return rc;
}

void exo_state_member_event(struct exo_state *s, enum exo_members_event event,
                            const struct exo_member_info *member, uint64_t now_us)
{
    (void)event;
    (void)member; /* the next evaluation reads the whole view */
    s->now_us = now_us;
    s->eval_due_us = now_us;
    if (leading(s))
        s->members_due_us = now_us;
    done(s);
}

void exo_state_local_state(struct exo_state *s, bool join, struct exo_buf *out)
{
    (void)join;
    struct exo_state_msg msg;
    put_claim_msg(s, &msg, EXO_STATE_MSG_STATUS);
    memcpy(msg.status.sender, s->cfg.id, EXO_MEMBERS_ID_BYTES);
    position(s, &msg.status.pos);
    exo_buf_reset(&s->out);
    exo_state_wire_put(&s->out, &msg);
    if (!s->out.err)
        exo_buf_put_bytes(out, s->out.data, s->out.len);
}

void exo_state_merge_state(struct exo_state *s, bool join, const uint8_t *data, size_t len,
                           uint64_t now_us)
{
    (void)join;
    s->now_us = now_us;
    struct exo_reader r;
    exo_reader_init(&r, data, len);
    while (exo_reader_left(&r)) {
        size_t n = 0;
        const uint8_t *section = exo_reader_bytes(&r, EXO_MEMBERS_APP_STATE_MAX, &n);
        if (!section) {
            drop(s, EXO_STATE_DROP_MALFORMED);
            break;
        }
        if (n && section[0] == EXO_STATE_CHANNEL)
            receive(s, NULL, section, n);
    }
    done(s);
}

uint64_t exo_state_next_deadline(const struct exo_state *s)
{
    uint64_t d = umin(umin(s->eval_due_us, s->claim_wake_us), s->report_due_us);
    if (leading(s))
        d = umin(d, umin(s->members_due_us, s->heartbeat_due_us));
    else
        d = umin(d, s->rx.active ? s->rx.deadline_us : s->repair_due_us);
    if (s->snap.valid)
        d = umin(d, s->snap.used_us + SNAP_KEEP_US);
    return d;
}

uint64_t exo_state_tick(struct exo_state *s, uint64_t now_us)
{
    s->now_us = now_us;
    if (now_us >= s->eval_due_us || now_us >= s->claim_wake_us)
        evaluate(s);
    if (leading(s)) {
        if (now_us >= s->members_due_us)
            reconcile_members(s);
        if (now_us >= s->heartbeat_due_us) {
            flush(s);
            send_head(s, NULL);
            s->heartbeat_due_us = now_us + ms(s->cfg.heartbeat_ms);
        }
    }
    if (now_us >= s->report_due_us)
        check_reports(s);
    if (!leading(s)) {
        if (s->rx.active && now_us >= s->rx.deadline_us)
            rx_request(s, rx_first_missing(&s->rx));
        else if (!s->rx.active && now_us >= s->repair_due_us)
            request_repair(s);
    }
    if (s->snap.valid && now_us - s->snap.used_us >= SNAP_KEEP_US)
        snap_drop(&s->snap);
    flush(s);
    return exo_state_next_deadline(s);
}

/* Validate a key and value given by a caller. */
static int check_record_args(const void *key, size_t key_len, uint8_t format, const void *value,
                             size_t value_len)
{
    if ((key_len && !key) || !exo_state_key_valid(key, key_len) || (value_len && !value) ||
        value_len > EXO_STATE_VALUE_MAX || format > EXO_STATE_FORMAT_JSON)
        return EXO_EINVAL;
    if (format == EXO_STATE_FORMAT_JSON) {
        cJSON *j = cJSON_ParseWithLength(value, value_len);
        if (!j)
            return EXO_EINVAL;
        cJSON_Delete(j);
    }
    return 0;
}

int exo_state_report_set(struct exo_state *s, uint16_t kind, const void *key, size_t key_len,
                         uint8_t format, const void *value, size_t value_len, uint64_t now_us)
{
    int rc = check_record_args(key, key_len, format, value, value_len);
    if (rc < 0)
        return rc;
    s->now_us = now_us;
    long at = mine_find(s, kind, key, key_len);
    struct mine *m = at >= 0 ? &s->mine[at] : NULL;
    if (m && m->format == format && m->value_len == value_len &&
        (value_len == 0 || memcmp(m->value, value, value_len) == 0))
        return 0;
    if (!m && s->n_mine >= EXO_STATE_OWNER_RECORDS)
        return EXO_ENOSPC;
    uint8_t *copy = exo_malloc(value_len ? value_len : 1);
    if (!copy)
        return EXO_ENOMEM;
    if (value_len)
        memcpy(copy, value, value_len);
    if (!m) {
        if (s->n_mine == s->mine_cap) {
            size_t cap = s->mine_cap ? s->mine_cap * 2 : 8;
            struct mine *p = exo_realloc(s->mine, cap * sizeof(*p));
            if (!p) {
                exo_free(copy);
                return EXO_ENOMEM;
            }
            s->mine = p;
            s->mine_cap = cap;
        }
        m = &s->mine[s->n_mine++];
        memset(m, 0, sizeof(*m));
        m->kind = kind;
        m->key_len = (uint8_t)key_len;
        if (key_len)
            memcpy(m->key, key, key_len);
    }
    exo_free(m->value);
    m->value = copy;
    m->value_len = value_len;
    m->format = format;
    m->version = ++s->version;
    s->report_due_us = now_us;
    done(s);
    return 0;
}

int exo_state_report_delete(struct exo_state *s, uint16_t kind, const void *key, size_t key_len,
                            uint64_t now_us)
{
    long at = mine_find(s, kind, key, key_len);
    if (at < 0)
        return EXO_ENOENT;
    s->now_us = now_us;
    exo_free(s->mine[at].value);
    s->mine[at] = s->mine[--s->n_mine];
    s->report_due_us = now_us;
    done(s);
    return 0;
}

int exo_state_object_set(struct exo_state *s, uint16_t kind, const void *key, size_t key_len,
                         uint8_t format, const void *value, size_t value_len, uint64_t now_us)
{
    int rc = check_record_args(key, key_len, format, value, value_len);
    if (rc < 0)
        return rc;
    if (!leading(s))
        return EXO_EPERM;
    s->now_us = now_us;
    struct exo_state_payload p;
    memset(&p, 0, sizeof(p));
    struct exo_state_record *rec = &p.record;
    rec->kind = kind;
    rec->key = key;
    rec->key_len = key_len;
    rec->version = last_index(s) + 1;
    rec->format = format;
    rec->value = value;
    rec->value_len = value_len;
    long at = exo_state_table_find_record(&s->table, kind, NULL, key, key_len);
    if (at >= 0) {
        const struct exo_state_table_record *t = &s->table.records[at];
        if (t->format == format && t->value_len == value_len &&
            (value_len == 0 || memcmp(t->value, value, value_len) == 0))
            return 0;
    }
    if ((rc = exo_state_table_fits(&s->table, rec)) < 0)
        return rc;
    rc = append_payload(s, EXO_STATE_EVENT_RECORD_SET, &p);
    done(s);
    return rc;
}

int exo_state_object_delete(struct exo_state *s, uint16_t kind, const void *key, size_t key_len,
                            uint64_t now_us)
{
    if (!leading(s))
        return EXO_EPERM;
    if (exo_state_table_find_record(&s->table, kind, NULL, key, key_len) < 0)
        return EXO_ENOENT;
    s->now_us = now_us;
    struct exo_state_payload p;
    memset(&p, 0, sizeof(p));
    p.record.kind = kind;
    p.record.key = key;
    p.record.key_len = key_len;
    int rc = append_payload(s, EXO_STATE_EVENT_RECORD_DEL, &p);
    done(s);
    return rc;
}

struct exo_members *exo_state_members_of(const struct exo_state *s)
{
    return s->members;
}

const uint8_t *exo_state_self_id(const struct exo_state *s)
{
    return s->cfg.id;
}

bool exo_state_is_leader(const struct exo_state *s)
{
    return leading(s);
}

int exo_state_leader(const struct exo_state *s, uint8_t ret_id[EXO_MEMBERS_ID_BYTES],
                     uint64_t *ret_term)
{
    if (s->table.term == 0)
        return EXO_ENOENT;
    if (ret_id)
        memcpy(ret_id, s->table.leader, EXO_MEMBERS_ID_BYTES);
    if (ret_term)
        *ret_term = s->table.term;
    return 0;
}

void exo_state_following(const struct exo_state *s, struct exo_leader_claim *ret_claim)
{
    *ret_claim = s->election.follow;
}

void exo_state_position(const struct exo_state *s, uint64_t *ret_index,
                        uint8_t ret_hash[EXO_STATE_HASH_BYTES])
{
    if (ret_index)
        *ret_index = last_index(s);
    if (ret_hash)
        memcpy(ret_hash, last_hash(s), EXO_STATE_HASH_BYTES);
}

void exo_state_digest(struct exo_state *s, uint8_t ret_digest[EXO_STATE_HASH_BYTES])
{
    if (!s->digest_valid) {
        exo_buf_reset(&s->scratch);
        exo_state_table_encode(&s->table, &s->scratch);
        crypto_generichash(s->digest, EXO_STATE_HASH_BYTES, s->scratch.data, s->scratch.len, NULL,
                           0);
        /* Out of memory while encoding: a digest of what fitted, tried again next time. */
        s->digest_valid = !s->scratch.err;
    }
    memcpy(ret_digest, s->digest, EXO_STATE_HASH_BYTES);
}

uint64_t exo_state_log_first(const struct exo_state *s)
{
    return s->log.base_index + 1;
}

int exo_state_log_get(const struct exo_state *s, uint64_t index, struct exo_state_event *ret)
{
    const struct exo_state_log_entry *e = exo_state_log_at(&s->log, index);
    if (!e)
        return EXO_ENOENT;
    ret->index = index;
    ret->term = e->term;
    ret->type = e->type;
    ret->payload = e->payload;
    ret->len = e->len;
    return 0;
}

size_t exo_state_member_count(const struct exo_state *s)
{
    return s->table.n_members;
}

static void member_view(const struct exo_state_table_member *m, struct exo_state_member *ret)
{
    memcpy(ret->id, m->node.id, EXO_MEMBERS_ID_BYTES);
    memcpy(ret->name, m->node.name, sizeof(ret->name));
    ret->addr = m->node.addr;
    ret->state = (enum exo_member_state)m->node.state;
    ret->incarnation = m->node.incarnation;
    ret->meta = m->node.meta;
}

int exo_state_member_at(const struct exo_state *s, size_t i, struct exo_state_member *ret)
{
    if (i >= s->table.n_members)
        return EXO_ENOENT;
    member_view(&s->table.members[i], ret);
    return 0;
}

int exo_state_member_get(const struct exo_state *s, const uint8_t id[EXO_MEMBERS_ID_BYTES],
                         struct exo_state_member *ret)
{
    long at = exo_state_table_find_member(&s->table, id);
    if (at < 0)
        return EXO_ENOENT;
    member_view(&s->table.members[at], ret);
    return 0;
}

size_t exo_state_record_count(const struct exo_state *s)
{
    return s->table.n_records;
}

int exo_state_record_at(const struct exo_state *s, size_t i, struct exo_state_record *ret)
{
    if (i >= s->table.n_records)
        return EXO_ENOENT;
    exo_state_table_record_view(&s->table.records[i], ret);
    return 0;
}

int exo_state_record_get(const struct exo_state *s, uint16_t kind, const uint8_t *owner,
                         const void *key, size_t key_len, struct exo_state_record *ret)
{
    long at = exo_state_table_find_record(&s->table, kind, owner, key, key_len);
    if (at < 0)
        return EXO_ENOENT;
    exo_state_table_record_view(&s->table.records[at], ret);
    return 0;
}

void exo_state_get_stats(const struct exo_state *s, struct exo_state_stats *ret)
{
    *ret = s->stats;
    ret->leader_changes = s->election.changes;
    ret->term = s->election.follow.term;
    ret->log_index = last_index(s);
    ret->log_first = s->log.base_index + 1;
    ret->members = (uint32_t)s->table.n_members;
    ret->records = (uint32_t)s->table.n_records;
    ret->leader = leading(s);
}

const char *exo_state_drop_name(enum exo_state_drop reason)
{
    static const char *const names[EXO_STATE_DROP__COUNT] = {
        [EXO_STATE_DROP_MALFORMED] = "malformed",
        [EXO_STATE_DROP_VERSION] = "version",
        [EXO_STATE_DROP_STALE] = "stale",
        [EXO_STATE_DROP_NOT_LEADER] = "not_leader",
        [EXO_STATE_DROP_UNKNOWN_EVENT] = "unknown_event",
        [EXO_STATE_DROP_INVALID_EVENT] = "invalid_event",
        [EXO_STATE_DROP_REFUSED] = "refused",
        [EXO_STATE_DROP_OVERFLOW] = "overflow",
        [EXO_STATE_DROP_SEND] = "send",
    };
    return (unsigned)reason < EXO_STATE_DROP__COUNT ? names[reason] : "unknown";
}

const char *exo_state_kind_name(uint16_t kind)
{
    switch (kind) {
    case EXO_STATE_KIND_DEVICES:
        return "devices";
    case EXO_STATE_KIND_SCORES:
        return "scores";
    case EXO_STATE_KIND_LINKS:
        return "links";
    case EXO_STATE_KIND_MODELS:
        return "models";
    case EXO_STATE_KIND_PLACEMENT:
        return "placement";
    case EXO_STATE_KIND_INSTANCE:
        return "instance";
    default:
        return NULL;
    }
}

const char *exo_state_event_name(uint8_t type)
{
    switch (type) {
    case EXO_STATE_EVENT_LEADER:
        return "leader";
    case EXO_STATE_EVENT_MEMBER_SET:
        return "member";
    case EXO_STATE_EVENT_MEMBER_DEL:
        return "member_removed";
    case EXO_STATE_EVENT_RECORD_SET:
        return "record";
    case EXO_STATE_EVENT_RECORD_DEL:
        return "record_removed";
    case EXO_STATE_EVENT_SNAPSHOT:
        return "snapshot";
    default:
        return "unknown";
    }
}
