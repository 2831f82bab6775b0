/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the replicated state, shared by state.c (the protocol), state-table.c (the state
 * machine and its snapshot encoding), state-log.c (the bounded log), state-codec.c (the wire
 * format) and state-json.c, and by the tests.
 *
 * Wire format. Integers are LEB128 varints unless noted; an id is 16 raw bytes, a hash 16 raw
 * bytes; a "bytes" field is a varint length then the bytes. A message is
 *
 *     0  1  channel, EXO_STATE_CHANNEL
 *     1  1  wire version, EXO_STATE_WIRE_VERSION
 *     2  1  type (enum exo_state_msg_type)
 *     3  .  body; bodies may grow at the end in later versions (decoders ignore the rest)
 *
 *     claim       term | leader id | leader priority (zigzag)
 *     position    last index | last hash | first index kept | state digest
 *     entry       index | term | u8 type | payload (bytes, <= EXO_STATE_PAYLOAD_MAX)
 *     record      kind (<= 65535) | owner id | key (bytes, <= 64, printable) | version |
 *                 u8 format (0 or 1) | value (bytes, <= EXO_STATE_VALUE_MAX)
 *
 *     HEAD        claim | position                     the leader's heartbeat
 *     STATUS      claim | sender id | position         push-pull: the claim the sender follows
 *     APPEND      claim | prev index | prev hash | count (1..EXO_STATE_APPEND_MAX) | entries,
 *                 with consecutive indices from prev index + 1
 *     REPAIR      claim | last index | last hash | u8 flags (1: send a snapshot)
 *     SNAP_REQ    claim | snapshot index | snapshot hash | first chunk wanted
 *     SNAP_CHUNK  claim | snapshot index | snapshot hash | total bytes (<= EXO_STATE_SNAPSHOT_MAX)
 * | chunk number | data (bytes, EXO_STATE_CHUNK, the last one shorter) REPORT      count
 * (1..EXO_STATE_REPORT_MAX) | records, each u8 flags (1: deleted) | record (a deleted record's
 * value is empty)
 *
 * Event payloads (entry.payload):
 *
 *     LEADER      leader id | priority (zigzag)     the term is the entry's
 *     MEMBER_SET  u8 state | incarnation | id | addr | name | meta   (members-int.h's node)
 *     MEMBER_DEL  id
 *     RECORD_SET  record
 *     RECORD_DEL  kind | owner id | key
 *
 * A snapshot (the chunks put together) is the canonical encoding of the state machine, which
 * is also what the digest hashes:
 *
 *     u8 version (1) | term | leader id | leader priority | member count | members (nodes, by id)
 *     | record count | records (by kind, owner, key)
 *
 * Entry hashes chain: hash(i) = BLAKE2b-128(hash(i - 1) | the entry's canonical encoding), with
 * hash(0) all zero. Two logs with the same hash at the same index hold the same entries.
 *
 * Ownership: unless a comment says otherwise, pointers given to the functions below are
 * borrowed for the call, and pointers they return or fill in borrow from their argument (the
 * decoded bytes, the table, the log) until it changes.
 */
#ifndef EXO_CLUSTER_STATE_INT_H
#define EXO_CLUSTER_STATE_INT_H

#include "cluster/leader.h"
#include "cluster/members-int.h"
#include "cluster/state.h"
#include "core/buf.h"
#include "core/error.h"

#define EXO_STATE_WIRE_VERSION  1
#define EXO_STATE_TABLE_VERSION 1
#define EXO_STATE_PAYLOAD_MAX   (EXO_STATE_VALUE_MAX + 256)
#define EXO_STATE_APPEND_MAX    4096
#define EXO_STATE_REPORT_MAX    EXO_STATE_OWNER_RECORDS
#define EXO_STATE_CHUNK         (48u << 10)

enum exo_state_msg_type {
    EXO_STATE_MSG_HEAD = 1,
    EXO_STATE_MSG_STATUS,
    EXO_STATE_MSG_APPEND,
    EXO_STATE_MSG_REPAIR,
    EXO_STATE_MSG_SNAP_REQ,
    EXO_STATE_MSG_SNAP_CHUNK,
    EXO_STATE_MSG_REPORT,
};

#define EXO_STATE_REPAIR_SNAPSHOT 1
#define EXO_STATE_REPORT_DELETED  1

struct exo_state_pos {
    uint64_t index;
    uint8_t hash[EXO_STATE_HASH_BYTES];
    uint64_t first;
    uint8_t digest[EXO_STATE_HASH_BYTES];
};

struct exo_state_msg {
    uint8_t type;
    struct exo_leader_claim claim; /* every type but REPORT */
    union {
        struct exo_state_pos head; /* HEAD */
        struct {
            uint8_t sender[EXO_MEMBERS_ID_BYTES];
            struct exo_state_pos pos;
        } status;
        struct {
            uint64_t prev_index;
            uint8_t prev_hash[EXO_STATE_HASH_BYTES];
            uint32_t count;
            const uint8_t *entries; /* borrowed: `count` encoded entries */
            size_t len;
        } append;
        struct {
            uint64_t index;
            uint8_t hash[EXO_STATE_HASH_BYTES];
            bool snapshot;
        } repair;
        struct {
            uint64_t index;
            uint8_t hash[EXO_STATE_HASH_BYTES];
            uint32_t chunk;
        } snap_req;
        struct {
            uint64_t index;
            uint8_t hash[EXO_STATE_HASH_BYTES];
            uint64_t total;
            uint32_t chunk;
            const uint8_t *data; /* borrowed */
            size_t len;
        } snap_chunk;
        struct {
            uint32_t count;
            const uint8_t *records; /* borrowed: `count` flagged records */
            size_t len;
        } report;
    };
};

/* A decoded event payload; pointers borrow from the payload bytes. */
struct exo_state_payload {
    union {
        struct {
            uint8_t id[EXO_MEMBERS_ID_BYTES];
            int32_t priority;
        } leader;
        struct exo_members_node member;   /* MEMBER_SET */
        uint8_t id[EXO_MEMBERS_ID_BYTES]; /* MEMBER_DEL */
        struct exo_state_record record;   /* RECORD_SET, RECORD_DEL (no version or value) */
    };
};

/* ---- codec (state-codec.c) ---- */

/* Signed varints (leader priorities) as members-codec.c writes them. */
static inline uint64_t exo_state_zigzag(int32_t v)
{
    return ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
}

static inline int32_t exo_state_unzigzag(uint64_t v)
{
    return (int32_t)((uint32_t)(v >> 1) ^ (uint32_t) - (int64_t)(v & 1));
}

/* Append a whole message: header and body. APPEND's entries and REPORT's records are copied
 * from msg as already encoded. Errors stick in out->err. */
void exo_state_wire_put(struct exo_buf *out, const struct exo_state_msg *msg);
/* Decode a message (borrowed bytes; pointers in *ret_msg borrow from them). APPEND entries and
 * REPORT records are checked for framing here, so walking them afterwards cannot fail.
 * EXO_EUNSUPPORTED for another channel or version, EXO_EFORMAT / EXO_ETRUNCATED /
 * EXO_ETOOBIG for bad bytes, with diag naming the field and offset. */
int exo_state_wire_decode(const uint8_t *data, size_t len, struct exo_state_msg *ret_msg,
                          struct exo_diag *diag);

void exo_state_wire_put_entry(struct exo_buf *out, const struct exo_state_event *entry);
/* Read one entry; payload borrows from the reader's bytes. */
int exo_state_wire_get_entry(struct exo_reader *r, struct exo_state_event *ret_entry,
                             struct exo_diag *diag);

void exo_state_wire_put_record(struct exo_buf *out, const struct exo_state_record *rec);
int exo_state_wire_get_record(struct exo_reader *r, struct exo_state_record *ret_rec,
                              struct exo_diag *diag);

/* Encode / decode an event payload of a known type. Decoding returns EXO_ENOENT for an unknown
 * type and EXO_EFORMAT (or another reader error) for a bad payload. */
void exo_state_payload_put(struct exo_buf *out, uint8_t type, const struct exo_state_payload *p);
int exo_state_payload_decode(uint8_t type, const uint8_t *data, size_t len,
                             struct exo_state_payload *ret_payload, struct exo_diag *diag);

/* A key is at most EXO_STATE_KEY_MAX printable ASCII bytes (it is shown in JSON). */
bool exo_state_key_valid(const uint8_t *key, size_t len);

/* hash(i) from hash(i - 1) (borrowed) and the entry (borrowed). */
void exo_state_chain_hash(const uint8_t prev[EXO_STATE_HASH_BYTES],
                          const struct exo_state_event *entry, struct exo_buf *scratch,
                          uint8_t ret_hash[EXO_STATE_HASH_BYTES]);

/* ---- the state machine (state-table.c) ---- */

struct exo_state_table_member {
    struct exo_members_node node; /* meta.blob owned */
    uint32_t records;             /* records it owns, against EXO_STATE_OWNER_RECORDS */
};

struct exo_state_table_record {
    uint16_t kind;
    uint8_t owner[EXO_MEMBERS_ID_BYTES];
    uint8_t key_len;
    uint8_t key[EXO_STATE_KEY_MAX];
    uint64_t version;
    uint8_t format;
    uint8_t *value; /* owned */
    size_t value_len;
};

struct exo_state_table {
    uint64_t term;
    bool has_leader;
    uint8_t leader[EXO_MEMBERS_ID_BYTES];
    int32_t leader_priority;
    struct exo_state_table_member *members; /* sorted by id */
    size_t n_members, members_cap;
    struct exo_state_table_record *records; /* sorted by kind, owner, key */
    size_t n_records, records_cap;
    size_t bytes; /* keys, values and blobs, against EXO_STATE_BYTES_MAX */
};

void exo_state_table_init(struct exo_state_table *t);
/* Release everything; the table is empty (and usable) afterwards. */
void exo_state_table_clear(struct exo_state_table *t);

/* Apply one event (borrowed). 0 when applied; EXO_ENOENT for an unknown type; EXO_EFORMAT for
 * a payload that does not decode; EXO_ENOSPC when it breaks a cap or names an unknown owner
 * (these three leave the table unchanged, and every node decides them alike); EXO_ENOMEM when
 * the table could not grow, which leaves the table changed only in what had been applied and
 * is the one outcome that differs between nodes: the caller must resynchronise. */
int exo_state_table_apply(struct exo_state_table *t, const struct exo_state_event *ev);
/* Would setting rec (borrowed) fit the caps? 0 or EXO_ENOSPC. */
int exo_state_table_fits(const struct exo_state_table *t, const struct exo_state_record *rec);

/* The canonical encoding (snapshot body, digest input). Errors stick in out->err. */
void exo_state_table_encode(const struct exo_state_table *t, struct exo_buf *out);
/* Decode a canonical encoding (borrowed) into *t, which must be empty; on failure *t is left
 * empty. Orders, duplicates and caps are checked. */
int exo_state_table_decode(struct exo_state_table *t, const uint8_t *data, size_t len,
                           struct exo_diag *diag);

long exo_state_table_find_member(const struct exo_state_table *t,
                                 const uint8_t id[EXO_MEMBERS_ID_BYTES]);
/* owner NULL means all zero. */
long exo_state_table_find_record(const struct exo_state_table *t, uint16_t kind,
                                 const uint8_t *owner, const uint8_t *key, size_t key_len);
void exo_state_table_record_view(const struct exo_state_table_record *r,
                                 struct exo_state_record *ret);

/* ---- accessors for state-json.c (state.c) ---- */

/* The membership machine and this node's id, both borrowed from the instance. */
struct exo_members *exo_state_members_of(const struct exo_state *s);
const uint8_t *exo_state_self_id(const struct exo_state *s);

/* ---- the bounded log (state-log.c) ---- */

struct exo_state_log_entry {
    uint64_t term;
    uint8_t type;
    uint8_t hash[EXO_STATE_HASH_BYTES];
    uint8_t *payload; /* owned */
    size_t len;
};

/* Entries base_index + 1 .. base_index + count, oldest first, in a ring. The entry at
 * base_index is known only by its hash (base_hash): that is where a snapshot left the log, or
 * the last entry evicted. */
struct exo_state_log {
    struct exo_state_log_entry *ring;
    size_t cap, start, count;
    size_t bytes, max_bytes;
    uint64_t base_index;
    uint8_t base_hash[EXO_STATE_HASH_BYTES];
};

int exo_state_log_init(struct exo_state_log *log, size_t cap, size_t max_bytes);
void exo_state_log_free(struct exo_state_log *log);
/* Forget every entry; the log continues after (index, hash). */
void exo_state_log_reset(struct exo_state_log *log, uint64_t index,
                         const uint8_t hash[EXO_STATE_HASH_BYTES]);
uint64_t exo_state_log_last(const struct exo_state_log *log);
/* The hash at index, for base_index .. last; NULL outside. Borrowed. */
const uint8_t *exo_state_log_hash(const struct exo_state_log *log, uint64_t index);
/* The entry at index (base_index + 1 .. last), or NULL. Borrowed. */
const struct exo_state_log_entry *exo_state_log_at(const struct exo_state_log *log, uint64_t index);
/* Append entry (payload copied) at last + 1 with its hash, evicting the oldest entries beyond
 * the caps. EXO_ENOMEM leaves the log as it was. */
int exo_state_log_push(struct exo_state_log *log, const struct exo_state_event *entry,
                       const uint8_t hash[EXO_STATE_HASH_BYTES]);

#endif
