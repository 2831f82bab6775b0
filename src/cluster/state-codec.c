/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Encoding and decoding of state messages, log entries, event payloads and records (the layouts
 * are in state-int.h). The decoders read bytes from the network: every count and length is
 * capped before it is used, every enum is checked, a count is refused when its records cannot
 * fit in the bytes left, and nothing is asserted. They keep no state; state.c decides what a
 * message means.
 */
#include "cluster/state-int.h"

#include <sodium.h>
#include <string.h>

/* ---- encoding ---- */

static void put_claim(struct exo_buf *b, const struct exo_leader_claim *c)
{
    exo_buf_put_varint(b, c->term);
    exo_buf_put(b, c->id, EXO_MEMBERS_ID_BYTES);
    exo_buf_put_varint(b, exo_state_zigzag(c->priority));
}

static void put_pos(struct exo_buf *b, const struct exo_state_pos *p)
{
    exo_buf_put_varint(b, p->index);
    exo_buf_put(b, p->hash, EXO_STATE_HASH_BYTES);
    exo_buf_put_varint(b, p->first);
    exo_buf_put(b, p->digest, EXO_STATE_HASH_BYTES);
}

static void put_index_hash(struct exo_buf *b, uint64_t index, const uint8_t *hash)
{
    exo_buf_put_varint(b, index);
    exo_buf_put(b, hash, EXO_STATE_HASH_BYTES);
}

void exo_state_wire_put(struct exo_buf *out, const struct exo_state_msg *msg)
{
    exo_buf_put_u8(out, EXO_STATE_CHANNEL);
    exo_buf_put_u8(out, EXO_STATE_WIRE_VERSION);
    exo_buf_put_u8(out, msg->type);
    if (msg->type != EXO_STATE_MSG_REPORT)
        put_claim(out, &msg->claim);
    switch (msg->type) {
    case EXO_STATE_MSG_HEAD:
        put_pos(out, &msg->head);
        break;
    case EXO_STATE_MSG_STATUS:
        exo_buf_put(out, msg->status.sender, EXO_MEMBERS_ID_BYTES);
        put_pos(out, &msg->status.pos);
        break;
    case EXO_STATE_MSG_APPEND:
        put_index_hash(out, msg->append.prev_index, msg->append.prev_hash);
        exo_buf_put_varint(out, msg->append.count);
        exo_buf_put(out, msg->append.entries, msg->append.len);
        break;
    case EXO_STATE_MSG_REPAIR:
        put_index_hash(out, msg->repair.index, msg->repair.hash);
        exo_buf_put_u8(out, msg->repair.snapshot ? EXO_STATE_REPAIR_SNAPSHOT : 0);
        break;
    case EXO_STATE_MSG_SNAP_REQ:
        put_index_hash(out, msg->snap_req.index, msg->snap_req.hash);
        exo_buf_put_varint(out, msg->snap_req.chunk);
        break;
    case EXO_STATE_MSG_SNAP_CHUNK:
        put_index_hash(out, msg->snap_chunk.index, msg->snap_chunk.hash);
        exo_buf_put_varint(out, msg->snap_chunk.total);
        exo_buf_put_varint(out, msg->snap_chunk.chunk);
        exo_buf_put_bytes(out, msg->snap_chunk.data, msg->snap_chunk.len);
        break;
    case EXO_STATE_MSG_REPORT:
        exo_buf_put_varint(out, msg->report.count);
        exo_buf_put(out, msg->report.records, msg->report.len);
        break;
    default:
        if (!out->err)
            out->err = EXO_EINVAL;
        break;
    }
}

void exo_state_wire_put_entry(struct exo_buf *out, const struct exo_state_event *e)
{
    exo_buf_put_varint(out, e->index);
    exo_buf_put_varint(out, e->term);
    exo_buf_put_u8(out, e->type);
    exo_buf_put_bytes(out, e->payload, e->len);
}

static void put_record_key(struct exo_buf *out, const struct exo_state_record *r)
{
    exo_buf_put_varint(out, r->kind);
    exo_buf_put(out, r->owner, EXO_MEMBERS_ID_BYTES);
    exo_buf_put_bytes(out, r->key, r->key_len);
}

void exo_state_wire_put_record(struct exo_buf *out, const struct exo_state_record *r)
{
    put_record_key(out, r);
    exo_buf_put_varint(out, r->version);
    exo_buf_put_u8(out, r->format);
    exo_buf_put_bytes(out, r->value, r->value_len);
}

void exo_state_payload_put(struct exo_buf *out, uint8_t type, const struct exo_state_payload *p)
{
    switch (type) {
    case EXO_STATE_EVENT_LEADER:
        exo_buf_put(out, p->leader.id, EXO_MEMBERS_ID_BYTES);
        exo_buf_put_varint(out, exo_state_zigzag(p->leader.priority));
        break;
    case EXO_STATE_EVENT_MEMBER_SET:
        exo_members_wire_put_node(out, &p->member);
        break;
    case EXO_STATE_EVENT_MEMBER_DEL:
        exo_buf_put(out, p->id, EXO_MEMBERS_ID_BYTES);
        break;
    case EXO_STATE_EVENT_RECORD_SET:
        exo_state_wire_put_record(out, &p->record);
        break;
    case EXO_STATE_EVENT_RECORD_DEL:
        put_record_key(out, &p->record);
        break;
    default:
        if (!out->err)
            out->err = EXO_EINVAL;
        break;
    }
}

void exo_state_chain_hash(const uint8_t prev[EXO_STATE_HASH_BYTES],
                          const struct exo_state_event *entry, struct exo_buf *scratch,
                          uint8_t ret_hash[EXO_STATE_HASH_BYTES])
{
    /* Hash our own encoding of the decoded fields, never the bytes as received, so that a
     * sender's non-minimal varints cannot give one entry two hashes. */
    exo_buf_reset(scratch);
    exo_state_wire_put_entry(scratch, entry);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, EXO_STATE_HASH_BYTES);
    crypto_generichash_update(&st, prev, EXO_STATE_HASH_BYTES);
    if (scratch->len)
        crypto_generichash_update(&st, scratch->data, scratch->len);
    crypto_generichash_final(&st, ret_hash, EXO_STATE_HASH_BYTES);
}

/* ---- decoding ---- */

static int fail(const struct exo_reader *r, struct exo_diag *diag, const char *what)
{
    int code = r->err ? r->err : EXO_EFORMAT;
    return exo_diag_set(diag, code, "state: %s at byte %zu: %s", what, r->off, exo_strerror(code));
}

static void get_raw(struct exo_reader *r, uint8_t *dst, size_t n)
{
    const uint8_t *p = exo_reader_take(r, n);
    if (p)
        memcpy(dst, p, n);
    else
        memset(dst, 0, n);
}

static uint64_t get_capped(struct exo_reader *r, uint64_t max)
{
    uint64_t v = exo_reader_varint(r);
    if (!r->err && v > max) {
        r->err = EXO_ERANGE;
        return 0;
    }
    return v;
}

static int get_claim(struct exo_reader *r, struct exo_leader_claim *c, struct exo_diag *diag)
{
    c->term = exo_reader_varint(r);
    get_raw(r, c->id, EXO_MEMBERS_ID_BYTES);
    c->priority = exo_state_unzigzag(get_capped(r, UINT32_MAX));
    return r->err ? fail(r, diag, "claim") : 0;
}

static void get_pos(struct exo_reader *r, struct exo_state_pos *p)
{
    p->index = exo_reader_varint(r);
    get_raw(r, p->hash, EXO_STATE_HASH_BYTES);
    p->first = exo_reader_varint(r);
    get_raw(r, p->digest, EXO_STATE_HASH_BYTES);
}

bool exo_state_key_valid(const uint8_t *key, size_t len)
{
    if (len > EXO_STATE_KEY_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (key[i] < 0x20 || key[i] > 0x7e)
            return false;
    return true;
}

static int get_record_key(struct exo_reader *r, struct exo_state_record *rec, struct exo_diag *diag)
{
    memset(rec, 0, sizeof(*rec));
    rec->kind = (uint16_t)get_capped(r, UINT16_MAX);
    get_raw(r, rec->owner, EXO_MEMBERS_ID_BYTES);
    rec->key = exo_reader_bytes(r, EXO_STATE_KEY_MAX, &rec->key_len);
    if (r->err)
        return fail(r, diag, "record key");
    if (!exo_state_key_valid(rec->key, rec->key_len))
        return exo_diag_set(diag, EXO_EFORMAT, "state: unprintable record key before byte %zu",
                            r->off);
    return 0;
}

int exo_state_wire_get_record(struct exo_reader *r, struct exo_state_record *rec,
                              struct exo_diag *diag)
{
    int rc = get_record_key(r, rec, diag);
    if (rc < 0)
        return rc;
    rec->version = exo_reader_varint(r);
    rec->format = exo_reader_u8(r);
    rec->value = exo_reader_bytes(r, EXO_STATE_VALUE_MAX, &rec->value_len);
    if (r->err)
        return fail(r, diag, "record");
    if (rec->format > EXO_STATE_FORMAT_JSON)
        return exo_diag_set(diag, EXO_EFORMAT, "state: record format %u", rec->format);
    return 0;
}

int exo_state_wire_get_entry(struct exo_reader *r, struct exo_state_event *e, struct exo_diag *diag)
{
    e->index = exo_reader_varint(r);
    e->term = exo_reader_varint(r);
    e->type = exo_reader_u8(r);
    e->payload = exo_reader_bytes(r, EXO_STATE_PAYLOAD_MAX, &e->len);
    if (r->err)
        return fail(r, diag, "log entry");
    if (e->type == EXO_STATE_EVENT_SNAPSHOT)
        return exo_diag_set(diag, EXO_EFORMAT, "state: a snapshot notice in the log");
    return 0;
}

/* Walk APPEND's entries once: framing, caps and consecutive indices. */
static int check_entries(const struct exo_state_msg *msg, struct exo_diag *diag)
{
    struct exo_reader r;
    exo_reader_init(&r, msg->append.entries, msg->append.len);
    for (uint32_t i = 0; i < msg->append.count; i++) {
        struct exo_state_event e;
        int rc = exo_state_wire_get_entry(&r, &e, diag);
        if (rc < 0)
            return rc;
        if (e.index != msg->append.prev_index + 1 + i || e.index == 0)
            return exo_diag_set(diag, EXO_EFORMAT, "state: entry %u has index %llu after %llu", i,
                                (unsigned long long)e.index,
                                (unsigned long long)msg->append.prev_index);
    }
    return 0;
}

static int check_report(const struct exo_state_msg *msg, struct exo_diag *diag)
{
    struct exo_reader r;
    exo_reader_init(&r, msg->report.records, msg->report.len);
    for (uint32_t i = 0; i < msg->report.count; i++) {
        uint8_t flags = exo_reader_u8(&r);
        if (r.err)
            return fail(&r, diag, "report flags");
        if (flags & ~EXO_STATE_REPORT_DELETED)
            return exo_diag_set(diag, EXO_EFORMAT, "state: report flags %#x", flags);
        struct exo_state_record rec;
        int rc = exo_state_wire_get_record(&r, &rec, diag);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The smallest encodings, to refuse counts that cannot fit before walking them. */
#define MIN_ENTRY_BYTES  4  /* index, term, type, empty payload */
#define MIN_RECORD_BYTES 21 /* flags, kind, owner, empty key, version, format, empty value */

static int decode_body(struct exo_reader *r, struct exo_state_msg *msg, struct exo_diag *diag)
{
    switch (msg->type) {
    case EXO_STATE_MSG_HEAD:
        get_pos(r, &msg->head);
        break;
    case EXO_STATE_MSG_STATUS:
        get_raw(r, msg->status.sender, EXO_MEMBERS_ID_BYTES);
        get_pos(r, &msg->status.pos);
        break;
    case EXO_STATE_MSG_APPEND:
        msg->append.prev_index = exo_reader_varint(r);
        get_raw(r, msg->append.prev_hash, EXO_STATE_HASH_BYTES);
        msg->append.count = (uint32_t)get_capped(r, EXO_STATE_APPEND_MAX);
        if (r->err)
            break;
        if (msg->append.count == 0 || exo_reader_left(r) / MIN_ENTRY_BYTES < msg->append.count)
            return exo_diag_set(diag, EXO_EFORMAT, "state: %u entries in %zu bytes",
                                msg->append.count, exo_reader_left(r));
        msg->append.entries = r->data + r->off;
        msg->append.len = exo_reader_left(r);
        return check_entries(msg, diag);
    case EXO_STATE_MSG_REPAIR:
        msg->repair.index = exo_reader_varint(r);
        get_raw(r, msg->repair.hash, EXO_STATE_HASH_BYTES);
        msg->repair.snapshot = exo_reader_u8(r) & EXO_STATE_REPAIR_SNAPSHOT;
        break;
    case EXO_STATE_MSG_SNAP_REQ:
        msg->snap_req.index = exo_reader_varint(r);
        get_raw(r, msg->snap_req.hash, EXO_STATE_HASH_BYTES);
        msg->snap_req.chunk = (uint32_t)get_capped(r, EXO_STATE_SNAPSHOT_MAX / EXO_STATE_CHUNK);
        break;
    case EXO_STATE_MSG_SNAP_CHUNK: {
        msg->snap_chunk.index = exo_reader_varint(r);
        get_raw(r, msg->snap_chunk.hash, EXO_STATE_HASH_BYTES);
        msg->snap_chunk.total = get_capped(r, EXO_STATE_SNAPSHOT_MAX);
        msg->snap_chunk.chunk = (uint32_t)get_capped(r, EXO_STATE_SNAPSHOT_MAX / EXO_STATE_CHUNK);
        msg->snap_chunk.data = exo_reader_bytes(r, EXO_STATE_CHUNK, &msg->snap_chunk.len);
        if (r->err)
            break;
        /* Every chunk but the last is full; the last holds the rest. */
        uint64_t off = (uint64_t)msg->snap_chunk.chunk * EXO_STATE_CHUNK;
        uint64_t total = msg->snap_chunk.total;
        uint64_t want = off < total ? total - off : 0;
        if (want > EXO_STATE_CHUNK)
            want = EXO_STATE_CHUNK;
        if (total == 0 || want == 0 || msg->snap_chunk.len != want)
            return exo_diag_set(
                diag, EXO_EFORMAT, "state: snapshot chunk %u of %zu bytes for a total of %llu",
                msg->snap_chunk.chunk, msg->snap_chunk.len, (unsigned long long)total);
        break;
    }
    case EXO_STATE_MSG_REPORT:
        msg->report.count = (uint32_t)get_capped(r, EXO_STATE_REPORT_MAX);
        if (r->err)
            break;
        if (msg->report.count == 0 || exo_reader_left(r) / MIN_RECORD_BYTES < msg->report.count)
            return exo_diag_set(diag, EXO_EFORMAT, "state: %u report records in %zu bytes",
                                msg->report.count, exo_reader_left(r));
        msg->report.records = r->data + r->off;
        msg->report.len = exo_reader_left(r);
        return check_report(msg, diag);
    default:
        return exo_diag_set(diag, EXO_EFORMAT, "state: message type %u", msg->type);
    }
    return r->err ? fail(r, diag, "message body") : 0;
}

int exo_state_wire_decode(const uint8_t *data, size_t len, struct exo_state_msg *msg,
                          struct exo_diag *diag)
{
    memset(msg, 0, sizeof(*msg));
    struct exo_reader r;
    exo_reader_init(&r, data, len);
    uint8_t channel = exo_reader_u8(&r);
    uint8_t version = exo_reader_u8(&r);
    msg->type = exo_reader_u8(&r);
    if (r.err)
        return fail(&r, diag, "message header");
    if (channel != EXO_STATE_CHANNEL)
        return exo_diag_set(diag, EXO_EUNSUPPORTED, "state: channel %#x", channel);
    if (version != EXO_STATE_WIRE_VERSION)
        return exo_diag_set(diag, EXO_EUNSUPPORTED, "state: wire version %u", version);
    if (msg->type != EXO_STATE_MSG_REPORT) {
        int rc = get_claim(&r, &msg->claim, diag);
        if (rc < 0)
            return rc;
    }
    return decode_body(&r, msg, diag);
}

int exo_state_payload_decode(uint8_t type, const uint8_t *data, size_t len,
                             struct exo_state_payload *p, struct exo_diag *diag)
{
    memset(p, 0, sizeof(*p));
    struct exo_reader r;
    exo_reader_init(&r, data, len);
    switch (type) {
    case EXO_STATE_EVENT_LEADER:
        get_raw(&r, p->leader.id, EXO_MEMBERS_ID_BYTES);
        p->leader.priority = exo_state_unzigzag(get_capped(&r, UINT32_MAX));
        break;
    case EXO_STATE_EVENT_MEMBER_SET:
        return exo_members_wire_get_node(&r, &p->member, diag);
    case EXO_STATE_EVENT_MEMBER_DEL:
        get_raw(&r, p->id, EXO_MEMBERS_ID_BYTES);
        break;
    case EXO_STATE_EVENT_RECORD_SET:
        return exo_state_wire_get_record(&r, &p->record, diag);
    case EXO_STATE_EVENT_RECORD_DEL:
        return get_record_key(&r, &p->record, diag);
    default:
        return exo_diag_set(diag, EXO_ENOENT, "state: event type %u", type);
    }
    return r.err ? fail(&r, diag, "event payload") : 0;
}
