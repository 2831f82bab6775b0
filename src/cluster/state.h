/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The replicated cluster state: a leader-ordered event log and the state machine every node
 * applies it to, on top of the membership layer, as a sans-IO machine like exo_members.
 *
 * The state machine holds the members (as the leader sees them: id, name, address, state,
 * incarnation, metadata), the leader and its term, and a typed key-value table of records that
 * later modules fill: reports that a node makes about itself (its devices, scores, links), and
 * objects that the leader decides (placements, instances). A record is (kind, owner, key) ->
 * (version, format, value); its kind is a number from the registry below, and the log machinery
 * never looks inside the value, so a new kind of record needs no change here.
 *
 * Events are (term, index, type, payload). The leader appends them, applies them and spreads
 * them (piggybacked broadcasts for small ones; followers pull the rest); every node applies the
 * same events in the same order. Each entry's hash chains over the one before it, so two nodes
 * at the same index with the same hash hold the same history. A follower that misses entries
 * asks the leader for the range; one that the bounded log (4096 entries) no longer covers, or
 * whose history is not the leader's (after a partition or a leader change), gets a snapshot of
 * the whole state instead. A node is the authority for its own reports: it compares them with
 * the replicated table and sends the leader whatever differs, so a new leader rebuilds from the
 * members' reports. docs/internals/state.md describes the protocol, what it guarantees and what
 * it does not (it is not Raft: there is no quorum, and each side of a partition has a leader).
 *
 * Driving it: the owner of the membership delegate (cluster/cluster.c on libuv, cluster/sim.c
 * in simulation) forwards application messages whose first byte is EXO_STATE_CHANNEL to
 * exo_state_receive, membership events to exo_state_member_event, and the push-pull hooks to
 * exo_state_local_state / exo_state_merge_state; it calls exo_state_tick at the deadline the
 * machine returns, and reschedules when the wake hook fires. Times are microseconds on the
 * caller's monotonic clock.
 *
 * Threads: an instance belongs to the thread that owns its membership machine (the loop
 * thread). Hooks run inside the calls above; they must not free the instance or re-enter it,
 * but may read it.
 */
#ifndef EXO_CLUSTER_STATE_H
#define EXO_CLUSTER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/leader.h"
#include "cluster/members.h"
#include "core/buf.h"

struct cJSON;

/* First byte of every state message, so that the membership channel can carry other modules'
 * messages too (each picks its own first byte). Push-pull application state is a sequence of
 * sections, each a varint length and a message that starts with its module's channel byte. */
#define EXO_STATE_CHANNEL 0x53

#define EXO_STATE_HASH_BYTES 16
#define EXO_STATE_KEY_MAX    64          /* printable ASCII, may be empty */
#define EXO_STATE_VALUE_MAX  (32u << 10) /* one record's value */
/* Caps of the replicated table. They are part of the protocol (every node must refuse the same
 * event), so they are constants, not configuration. */
#define EXO_STATE_RECORDS_MAX       65536
#define EXO_STATE_OWNER_RECORDS     256         /* records per owner */
#define EXO_STATE_BYTES_MAX         (16u << 20) /* keys, values and member blobs */
#define EXO_STATE_MEMBERS_MAX       4096
#define EXO_STATE_SNAPSHOT_MAX      (32u << 20)
#define EXO_STATE_LOG_ENTRIES       4096
#define EXO_STATE_LOG_BYTES_DEFAULT (16u << 20)

/* The registry of record kinds. Numbers are forever; a name is only for JSON and metrics.
 * Unknown kinds are stored and replicated like known ones. */
enum exo_state_kind {
    EXO_STATE_KIND_DEVICES = 1,    /* per node: the devices the node has (device module) */
    EXO_STATE_KIND_SCORES = 2,     /* per node: measured throughput per device */
    EXO_STATE_KIND_LINKS = 3,      /* per node: measured latency and bandwidth to peers */
    EXO_STATE_KIND_MODELS = 4,     /* per node: the model it serves, keyed by model id */
    EXO_STATE_KIND_PLACEMENT = 64, /* leader: a placement plan, keyed by model */
    EXO_STATE_KIND_INSTANCE = 65,  /* leader: a running model instance, keyed by instance id */
};

enum exo_state_format {
    EXO_STATE_FORMAT_BINARY = 0, /* shown as base64 */
    EXO_STATE_FORMAT_JSON = 1,   /* checked when set, shown as JSON */
};

/* A record as stored. Pointers borrow from the instance until its next call that can apply an
 * event (receive, tick, merge, member_event, and the setters). */
struct exo_state_record {
    uint16_t kind;
    uint8_t owner[EXO_MEMBERS_ID_BYTES]; /* the reporting node; all zero for a leader object */
    const uint8_t *key;
    size_t key_len;
    uint64_t version;
    uint8_t format; /* enum exo_state_format */
    const uint8_t *value;
    size_t value_len;
};

/* A member as the replicated table holds it (the leader's view). meta.blob borrows as above. */
struct exo_state_member {
    uint8_t id[EXO_MEMBERS_ID_BYTES];
    char name[EXO_MEMBERS_NAME_MAX + 1];
    struct exo_members_addr addr;
    enum exo_member_state state;
    uint64_t incarnation;
    struct exo_members_meta meta;
};

enum exo_state_event_type {
    EXO_STATE_EVENT_LEADER = 1, /* payload: leader id, priority; the term is the entry's */
    EXO_STATE_EVENT_MEMBER_SET, /* payload: a member record */
    EXO_STATE_EVENT_MEMBER_DEL, /* payload: a member id; its records go with it */
    EXO_STATE_EVENT_RECORD_SET, /* payload: a record */
    EXO_STATE_EVENT_RECORD_DEL, /* payload: kind, owner, key */
    /* Not in the log: the local state was replaced by a snapshot at `index`. Anyone keeping a
     * copy (an SSE client) starts over from the full state. */
    EXO_STATE_EVENT_SNAPSHOT = 128,
};

/* One log entry (or the snapshot notice). payload borrows from the instance for the call. */
struct exo_state_event {
    uint64_t index;
    uint64_t term;
    uint8_t type; /* enum exo_state_event_type; other values are future types, kept but not
                     applied */
    const uint8_t *payload;
    size_t len;
};

struct exo_state_hooks {
    void *ctx; /* borrowed */
    /* Every event this node applies, in log order, and EXO_STATE_EVENT_SNAPSHOT. */
    void (*event_cb)(void *ctx, const struct exo_state_event *event);
    /* The machine's deadline may have moved or it handed the membership layer something to
     * send: the driver reschedules both. Required. */
    void (*wake_cb)(void *ctx);
};

struct exo_state_config {
    uint8_t id[EXO_MEMBERS_ID_BYTES]; /* this node: the id its membership machine has */
    uint32_t heartbeat_ms;            /* 2000: the leader announces its log head this often */
    uint32_t lease_ms;                /* 3000: a leader heard this recently is not challenged */
    uint32_t claim_delay_ms;          /* 200: be the choice this long before claiming */
    uint32_t gap_wait_ms;             /* 50: wait for reordered broadcasts before a repair */
    uint32_t repair_timeout_ms;       /* 1000: ask again when a repair brought nothing */
    uint32_t reconcile_ms;            /* 1000: re-check members and reports this often */
    size_t log_entries;               /* EXO_STATE_LOG_ENTRIES, at least 16 */
    size_t log_bytes;                 /* EXO_STATE_LOG_BYTES_DEFAULT: payload bytes kept */
};

/* Why messages or events were refused; counted in the stats. */
enum exo_state_drop {
    EXO_STATE_DROP_MALFORMED = 0, /* does not decode */
    EXO_STATE_DROP_VERSION,       /* another wire version */
    EXO_STATE_DROP_STALE,         /* from a claim that is not the one followed */
    EXO_STATE_DROP_NOT_LEADER,    /* a request to a node that does not lead */
    EXO_STATE_DROP_UNKNOWN_EVENT, /* an event type this version does not know (kept, skipped) */
    EXO_STATE_DROP_INVALID_EVENT, /* a known event that does not decode or breaks a cap */
    EXO_STATE_DROP_REFUSED,       /* a report from a non-member, or over a cap */
    EXO_STATE_DROP_OVERFLOW,      /* out-of-order entries beyond what is kept */
    EXO_STATE_DROP_SEND,          /* the membership layer refused to send or broadcast */
    EXO_STATE_DROP__COUNT
};

/* Counters only grow; the gauges at the end are current values. */
struct exo_state_stats {
    uint64_t claims;         /* terms this node started */
    uint64_t leader_changes; /* times the followed claim changed */
    uint64_t events_appended, events_applied;
    uint64_t repairs_requested, repairs_served, entries_served;
    uint64_t snapshots_served, snapshot_chunks_sent, snapshot_chunks_received;
    uint64_t snapshots_installed;
    uint64_t divergences; /* this node found its history off the leader's */
    uint64_t reports_sent, reports_accepted;
    uint64_t heartbeats_sent;
    uint64_t dropped[EXO_STATE_DROP__COUNT];
    uint64_t term;      /* of the followed claim */
    uint64_t log_index; /* last entry */
    uint64_t log_first; /* oldest entry kept */
    uint32_t members, records;
    bool leader;
};

struct exo_state;

/* Defaults as documented in struct exo_state_config; the id is still to fill. */
void exo_state_config_init(struct exo_state_config *cfg);

/* A machine for the node cfg->id, whose membership machine is `members` (borrowed; it must
 * outlive the state and already know cfg->id as itself). cfg and hooks are copied; hooks->ctx is
 * borrowed. *ret_state is owned by the caller. EXO_EINVAL for a bad configuration. */
int exo_state_create(const struct exo_state_config *cfg, struct exo_members *members,
                     const struct exo_state_hooks *hooks, uint64_t now_us,
                     struct exo_state **ret_state);
void exo_state_free(struct exo_state *s);

/* An application message (borrowed) whose first byte is EXO_STATE_CHANNEL, from member `from`
 * (borrowed; the origin of a broadcast). 0, or a negative code when it was refused (counted). */
int exo_state_receive(struct exo_state *s, const uint8_t from[EXO_MEMBERS_ID_BYTES],
                      const uint8_t *data, size_t len, bool broadcast, uint64_t now_us);
/* A membership event (member borrowed), as the delegate's event_cb hears it. */
void exo_state_member_event(struct exo_state *s, enum exo_members_event event,
                            const struct exo_member_info *member, uint64_t now_us);
/* Append this node's section to a push-pull's application state (out borrowed). */
void exo_state_local_state(struct exo_state *s, bool join, struct exo_buf *out);
/* Take this module's sections from a peer's push-pull application state (borrowed). */
void exo_state_merge_state(struct exo_state *s, bool join, const uint8_t *data, size_t len,
                           uint64_t now_us);
/* Run whatever is due at now_us; returns the next deadline (absolute). */
uint64_t exo_state_tick(struct exo_state *s, uint64_t now_us);
uint64_t exo_state_next_deadline(const struct exo_state *s);

/* This node's own reports (any node): set or delete the record (kind, this node, key). key and
 * value are borrowed and copied; a JSON value must parse. The replicated table catches up when
 * the leader has the report. EXO_EINVAL for a bad key or value, EXO_ENOSPC over the per-owner
 * cap. Setting the same value again changes nothing. */
int exo_state_report_set(struct exo_state *s, uint16_t kind, const void *key, size_t key_len,
                         uint8_t format, const void *value, size_t value_len, uint64_t now_us);
int exo_state_report_delete(struct exo_state *s, uint16_t kind, const void *key, size_t key_len,
                            uint64_t now_us);
/* Leader objects (owner all zero), set or deleted at once in the log. EXO_EPERM when this node
 * does not lead, EXO_ENOSPC over a cap, EXO_ENOENT to delete what is not there. */
int exo_state_object_set(struct exo_state *s, uint16_t kind, const void *key, size_t key_len,
                         uint8_t format, const void *value, size_t value_len, uint64_t now_us);
int exo_state_object_delete(struct exo_state *s, uint16_t kind, const void *key, size_t key_len,
                            uint64_t now_us);

/* Reading. */
bool exo_state_is_leader(const struct exo_state *s);
/* The leader and term of the replicated state (as the log says); EXO_ENOENT before any. */
int exo_state_leader(const struct exo_state *s, uint8_t ret_id[EXO_MEMBERS_ID_BYTES],
                     uint64_t *ret_term);
/* The claim this node follows, which can run ahead of the log. */
void exo_state_following(const struct exo_state *s, struct exo_leader_claim *ret_claim);
/* The last entry's index and hash (0 and all zero before any). */
void exo_state_position(const struct exo_state *s, uint64_t *ret_index,
                        uint8_t ret_hash[EXO_STATE_HASH_BYTES]);
/* A hash of the whole state machine (members, leader, term, records) that nodes can compare. */
void exo_state_digest(struct exo_state *s, uint8_t ret_digest[EXO_STATE_HASH_BYTES]);
/* Log entries still kept: index first .. the last; EXO_ENOENT outside. */
uint64_t exo_state_log_first(const struct exo_state *s);
int exo_state_log_get(const struct exo_state *s, uint64_t index, struct exo_state_event *ret_event);

/* Members sorted by id, and records sorted by (kind, owner, key): index 0 .. count - 1. */
size_t exo_state_member_count(const struct exo_state *s);
int exo_state_member_at(const struct exo_state *s, size_t i, struct exo_state_member *ret_member);
int exo_state_member_get(const struct exo_state *s, const uint8_t id[EXO_MEMBERS_ID_BYTES],
                         struct exo_state_member *ret_member);
size_t exo_state_record_count(const struct exo_state *s);
int exo_state_record_at(const struct exo_state *s, size_t i, struct exo_state_record *ret_record);
/* owner NULL means a leader object. EXO_ENOENT when absent. */
int exo_state_record_get(const struct exo_state *s, uint16_t kind, const uint8_t *owner,
                         const void *key, size_t key_len, struct exo_state_record *ret_record);

void exo_state_get_stats(const struct exo_state *s, struct exo_state_stats *ret_stats);
const char *exo_state_drop_name(enum exo_state_drop reason);
/* "devices", ...; NULL for a kind not in the registry. */
const char *exo_state_kind_name(uint16_t kind);
/* "leader", "member", ...; "unknown" for others. */
const char *exo_state_event_name(uint8_t type);

/* JSON for the HTTP routes (state-json.c). Each returns a new cJSON tree owned by the caller
 * (cJSON_Delete), or NULL when out of memory. */
/* /api/v1/cluster: this node, the leader and term, the log position, the state digest, the
 * members (with this node's own view of their state and RTT), and the counters. */
struct cJSON *exo_state_json_cluster(struct exo_state *s);
/* One event for /api/v1/events, to be sent with `id:` = its index and `event:` = its type name. */
struct cJSON *exo_state_json_event(const struct exo_state_event *event);
/* The records of one kind (every kind when kind is 0), as an array. */
struct cJSON *exo_state_json_records(const struct exo_state *s, uint16_t kind);

/* Metrics for /metrics, in the order to write them: samples of one family are adjacent, and a
 * family's name, help and type are repeated on each of its samples. */
struct exo_state_metric {
    const char *name;  /* static */
    const char *help;  /* static */
    bool counter;      /* else a gauge */
    const char *label; /* static label name, or NULL */
    const char *label_value;
    uint64_t value;
};
#define EXO_STATE_METRICS_MAX 40
/* Fill out[0..cap) (borrowed); returns how many metrics there are. */
size_t exo_state_metrics(const struct exo_state *s, struct exo_state_metric *out, size_t cap);

#endif
