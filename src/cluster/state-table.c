/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The replicated state machine: members, leader and term, and the record table; how an event
 * changes them; and their canonical encoding, which is both the snapshot and what the digest
 * hashes (layouts in state-int.h).
 *
 * Determinism is the whole point: every node applies the same events to the same table and
 * must end with the same bytes. So apply depends on nothing but the table and the event, refuses
 * by the same constant caps everywhere, and iterates in sorted order. Members are sorted by id
 * and records by (kind, owner, key), in arrays kept sorted by insertion: tables are small
 * (thousands of rows) and change at human rates, and sorted arrays make the encoding canonical
 * for free.
 */
#include "cluster/state-int.h"

#include <string.h>

#include "core/alloc.h"

static const uint8_t zero_id[EXO_MEMBERS_ID_BYTES];

void exo_state_table_init(struct exo_state_table *t)
{
    memset(t, 0, sizeof(*t));
}

static void member_release(struct exo_state_table_member *m)
{
    exo_free((void *)m->node.meta.blob);
}

void exo_state_table_clear(struct exo_state_table *t)
{
    for (size_t i = 0; i < t->n_members; i++)
        member_release(&t->members[i]);
    for (size_t i = 0; i < t->n_records; i++)
        exo_free(t->records[i].value);
    exo_free(t->members);
    exo_free(t->records);
    exo_state_table_init(t);
}

/* ---- lookups ---- */

/* The first member whose id is not below id. */
static size_t member_bound(const struct exo_state_table *t, const uint8_t *id)
{
    size_t lo = 0, hi = t->n_members;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(t->members[mid].node.id, id, EXO_MEMBERS_ID_BYTES) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

long exo_state_table_find_member(const struct exo_state_table *t,
                                 const uint8_t id[EXO_MEMBERS_ID_BYTES])
{
    size_t i = member_bound(t, id);
    if (i < t->n_members && memcmp(t->members[i].node.id, id, EXO_MEMBERS_ID_BYTES) == 0)
        return (long)i;
    return -1;
}

static int record_cmp(const struct exo_state_table_record *r, uint16_t kind, const uint8_t *owner,
                      const uint8_t *key, size_t key_len)
{
    if (r->kind != kind)
        return r->kind < kind ? -1 : 1;
    int c = memcmp(r->owner, owner, EXO_MEMBERS_ID_BYTES);
    if (c)
        return c;
    size_t n = r->key_len < key_len ? r->key_len : key_len;
    c = n ? memcmp(r->key, key, n) : 0;
    if (c)
        return c;
    return (r->key_len > key_len) - (r->key_len < key_len);
}

static size_t record_bound(const struct exo_state_table *t, uint16_t kind, const uint8_t *owner,
                           const uint8_t *key, size_t key_len)
{
    size_t lo = 0, hi = t->n_records;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (record_cmp(&t->records[mid], kind, owner, key, key_len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

long exo_state_table_find_record(const struct exo_state_table *t, uint16_t kind,
                                 const uint8_t *owner, const uint8_t *key, size_t key_len)
{
    if (!owner)
        owner = zero_id;
    size_t i = record_bound(t, kind, owner, key, key_len);
    if (i < t->n_records && record_cmp(&t->records[i], kind, owner, key, key_len) == 0)
        return (long)i;
    return -1;
}

void exo_state_table_record_view(const struct exo_state_table_record *r,
                                 struct exo_state_record *ret)
{
    ret->kind = r->kind;
    memcpy(ret->owner, r->owner, EXO_MEMBERS_ID_BYTES);
    ret->key = r->key;
    ret->key_len = r->key_len;
    ret->version = r->version;
    ret->format = r->format;
    ret->value = r->value;
    ret->value_len = r->value_len;
}

/* The member owning a record, or NULL for a leader object (all-zero owner). */
static struct exo_state_table_member *owner_of(const struct exo_state_table *t,
                                               const uint8_t *owner)
{
    long at = exo_state_table_find_member(t, owner);
    return at >= 0 ? &t->members[at] : NULL;
}

/* ---- apply ---- */

static int grow(void **array, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *p = exo_realloc(*array, exo_mul_size(n, size));
    if (!p)
        return EXO_ENOMEM;
    *array = p;
    *cap = n;
    return 0;
}

static int member_set(struct exo_state_table *t, const struct exo_members_node *node)
{
    long at = exo_state_table_find_member(t, node->id);
    size_t old_blob = at >= 0 ? t->members[at].node.meta.blob_len : 0;
    if (at < 0 && t->n_members >= EXO_STATE_MEMBERS_MAX)
        return EXO_ENOSPC;
    if (t->bytes - old_blob + node->meta.blob_len > EXO_STATE_BYTES_MAX)
        return EXO_ENOSPC;
    uint8_t *blob = NULL;
    if (node->meta.blob_len) {
        blob = exo_malloc(node->meta.blob_len);
        if (!blob)
            return EXO_ENOMEM;
        memcpy(blob, node->meta.blob, node->meta.blob_len);
    }
    if (at < 0) {
        if (grow((void **)&t->members, &t->members_cap, t->n_members + 1, sizeof(*t->members)) <
            0) {
            exo_free(blob);
            return EXO_ENOMEM;
        }
        size_t i = member_bound(t, node->id);
        memmove(&t->members[i + 1], &t->members[i], (t->n_members - i) * sizeof(*t->members));
        memset(&t->members[i], 0, sizeof(t->members[i]));
        t->n_members++;
        at = (long)i;
    } else {
        member_release(&t->members[at]);
    }
    struct exo_state_table_member *m = &t->members[at];
    m->node = *node;
    m->node.meta.blob = blob;
    t->bytes = t->bytes - old_blob + node->meta.blob_len;
    return 0;
}

static void record_remove(struct exo_state_table *t, size_t i)
{
    struct exo_state_table_record *r = &t->records[i];
    struct exo_state_table_member *owner = owner_of(t, r->owner);
    if (owner)
        owner->records--;
    t->bytes -= r->key_len + r->value_len;
    exo_free(r->value);
    memmove(r, r + 1, (t->n_records - i - 1) * sizeof(*r));
    t->n_records--;
}

static int member_del(struct exo_state_table *t, const uint8_t *id)
{
    long at = exo_state_table_find_member(t, id);
    if (at < 0)
        return 0;
    /* A member's reports leave with it. */
    size_t w = 0;
    for (size_t i = 0; i < t->n_records; i++) {
        struct exo_state_table_record *r = &t->records[i];
        if (memcmp(r->owner, id, EXO_MEMBERS_ID_BYTES) == 0) {
            t->bytes -= r->key_len + r->value_len;
            exo_free(r->value);
            continue;
        }
        t->records[w++] = *r;
    }
    t->n_records = w;
    struct exo_state_table_member *m = &t->members[at];
    t->bytes -= m->node.meta.blob_len;
    member_release(m);
    memmove(m, m + 1, (t->n_members - (size_t)at - 1) * sizeof(*m));
    t->n_members--;
    return 0;
}

int exo_state_table_fits(const struct exo_state_table *t, const struct exo_state_record *rec)
{
    bool object = memcmp(rec->owner, zero_id, EXO_MEMBERS_ID_BYTES) == 0;
    const struct exo_state_table_member *owner = object ? NULL : owner_of(t, rec->owner);
    if (!object && !owner)
        return EXO_ENOSPC;
    long at = exo_state_table_find_record(t, rec->kind, rec->owner, rec->key, rec->key_len);
    size_t old = at >= 0 ? t->records[at].key_len + t->records[at].value_len : 0;
    if (t->bytes - old + rec->key_len + rec->value_len > EXO_STATE_BYTES_MAX)
        return EXO_ENOSPC;
    if (at < 0 && (t->n_records >= EXO_STATE_RECORDS_MAX ||
                   (owner && owner->records >= EXO_STATE_OWNER_RECORDS)))
        return EXO_ENOSPC;
    return 0;
}

static int record_set(struct exo_state_table *t, const struct exo_state_record *rec)
{
    int rc = exo_state_table_fits(t, rec);
    if (rc < 0)
        return rc;
    uint8_t *value = NULL;
    if (rec->value_len) {
        value = exo_malloc(rec->value_len);
        if (!value)
            return EXO_ENOMEM;
        memcpy(value, rec->value, rec->value_len);
    }
    long at = exo_state_table_find_record(t, rec->kind, rec->owner, rec->key, rec->key_len);
    if (at < 0) {
        if (grow((void **)&t->records, &t->records_cap, t->n_records + 1, sizeof(*t->records)) <
            0) {
            exo_free(value);
            return EXO_ENOMEM;
        }
        size_t i = record_bound(t, rec->kind, rec->owner, rec->key, rec->key_len);
        memmove(&t->records[i + 1], &t->records[i], (t->n_records - i) * sizeof(*t->records));
        t->n_records++;
        struct exo_state_table_record *r = &t->records[i];
        memset(r, 0, sizeof(*r));
        r->kind = rec->kind;
        memcpy(r->owner, rec->owner, EXO_MEMBERS_ID_BYTES);
        r->key_len = (uint8_t)rec->key_len;
        if (rec->key_len)
            memcpy(r->key, rec->key, rec->key_len);
        t->bytes += rec->key_len;
        struct exo_state_table_member *owner = owner_of(t, rec->owner);
        if (owner)
            owner->records++;
        at = (long)i;
    } else {
        t->bytes -= t->records[at].value_len;
        exo_free(t->records[at].value);
    }
    struct exo_state_table_record *r = &t->records[at];
    r->version = rec->version;
    r->format = rec->format;
    r->value = value;
    r->value_len = rec->value_len;
    t->bytes += rec->value_len;
    return 0;
}

int exo_state_table_apply(struct exo_state_table *t, const struct exo_state_event *ev)
{
    struct exo_state_payload p;
    int rc = exo_state_payload_decode(ev->type, ev->payload, ev->len, &p, NULL);
    if (rc < 0)
        return rc == EXO_ENOENT ? EXO_ENOENT : EXO_EFORMAT;
    switch (ev->type) {
    case EXO_STATE_EVENT_LEADER:
        if (ev->term == 0)
            return EXO_EFORMAT;
        t->term = ev->term;
        memcpy(t->leader, p.leader.id, EXO_MEMBERS_ID_BYTES);
        t->leader_priority = p.leader.priority;
        return 0;
    case EXO_STATE_EVENT_MEMBER_SET:
        return member_set(t, &p.member);
    case EXO_STATE_EVENT_MEMBER_DEL:
        return member_del(t, p.id);
    case EXO_STATE_EVENT_RECORD_SET:
        return record_set(t, &p.record);
    default: { /* EXO_STATE_EVENT_RECORD_DEL: the decoder knows no other type */
        long at = exo_state_table_find_record(t, p.record.kind, p.record.owner, p.record.key,
                                              p.record.key_len);
        if (at >= 0)
            record_remove(t, (size_t)at);
        return 0;
    }
    }
}

/* ---- canonical encoding ---- */

void exo_state_table_encode(const struct exo_state_table *t, struct exo_buf *out)
{
    exo_buf_put_u8(out, EXO_STATE_TABLE_VERSION);
    exo_buf_put_varint(out, t->term);
    exo_buf_put(out, t->leader, EXO_MEMBERS_ID_BYTES);
    exo_buf_put_varint(out, exo_state_zigzag(t->leader_priority));
    exo_buf_put_varint(out, t->n_members);
    for (size_t i = 0; i < t->n_members; i++)
        exo_members_wire_put_node(out, &t->members[i].node);
    exo_buf_put_varint(out, t->n_records);
    for (size_t i = 0; i < t->n_records; i++) {
        struct exo_state_record view;
        exo_state_table_record_view(&t->records[i], &view);
        exo_state_wire_put_record(out, &view);
    }
}

/* The smallest encodings, to refuse counts that cannot fit before walking them. */
#define MIN_NODE_BYTES   38
#define MIN_RECORD_BYTES 20

static int decode_into(struct exo_state_table *t, struct exo_reader *r, struct exo_diag *diag)
{
    uint8_t version = exo_reader_u8(r);
    if (!r->err && version != EXO_STATE_TABLE_VERSION)
        return exo_diag_set(diag, EXO_EUNSUPPORTED, "state: snapshot version %u", version);
    t->term = exo_reader_varint(r);
    const uint8_t *leader = exo_reader_take(r, EXO_MEMBERS_ID_BYTES);
    uint64_t prio = exo_reader_varint(r);
    uint64_t n = exo_reader_varint(r);
    if (r->err)
        return exo_diag_set(diag, r->err, "state: snapshot header: %s", exo_strerror(r->err));
    memcpy(t->leader, leader, EXO_MEMBERS_ID_BYTES);
    if (prio > UINT32_MAX)
        return exo_diag_set(diag, EXO_ERANGE, "state: snapshot leader priority");
    t->leader_priority = exo_state_unzigzag(prio);
    if (n > EXO_STATE_MEMBERS_MAX || exo_reader_left(r) / MIN_NODE_BYTES < n)
        return exo_diag_set(diag, EXO_EFORMAT, "state: %llu members in %zu bytes",
                            (unsigned long long)n, exo_reader_left(r));
    for (uint64_t i = 0; i < n; i++) {
        struct exo_members_node node;
        int rc = exo_members_wire_get_node(r, &node, diag);
        if (rc < 0)
            return rc;
        if (t->n_members &&
            memcmp(t->members[t->n_members - 1].node.id, node.id, EXO_MEMBERS_ID_BYTES) >= 0)
            return exo_diag_set(diag, EXO_EFORMAT, "state: snapshot member %llu out of order",
                                (unsigned long long)i);
        rc = member_set(t, &node);
        if (rc < 0)
            return exo_diag_set(diag, rc, "state: snapshot member %llu: %s", (unsigned long long)i,
                                exo_strerror(rc));
    }
    n = exo_reader_varint(r);
    if (r->err)
        return exo_diag_set(diag, r->err, "state: snapshot record count");
    if (n > EXO_STATE_RECORDS_MAX || exo_reader_left(r) / MIN_RECORD_BYTES < n)
        return exo_diag_set(diag, EXO_EFORMAT, "state: %llu records in %zu bytes",
                            (unsigned long long)n, exo_reader_left(r));
    for (uint64_t i = 0; i < n; i++) {
        struct exo_state_record rec;
        int rc = exo_state_wire_get_record(r, &rec, diag);
        if (rc < 0)
            return rc;
        if (t->n_records && record_cmp(&t->records[t->n_records - 1], rec.kind, rec.owner, rec.key,
                                       rec.key_len) >= 0)
            return exo_diag_set(diag, EXO_EFORMAT, "state: snapshot record %llu out of order",
                                (unsigned long long)i);
        rc = record_set(t, &rec);
        if (rc < 0)
            return exo_diag_set(diag, rc, "state: snapshot record %llu: %s", (unsigned long long)i,
                                exo_strerror(rc));
    }
    if (exo_reader_left(r))
        return exo_diag_set(diag, EXO_EFORMAT, "state: %zu bytes after the snapshot",
                            exo_reader_left(r));
    return 0;
}

int exo_state_table_decode(struct exo_state_table *t, const uint8_t *data, size_t len,
                           struct exo_diag *diag)
{
    struct exo_reader r;
    exo_reader_init(&r, data, len);
    int rc = decode_into(t, &r, diag);
    if (rc < 0)
        exo_state_table_clear(t);
    return rc;
}
