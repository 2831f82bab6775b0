/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The replicated state: the wire codec (round trips and hostile bytes), the state machine
 * (apply, caps, canonical snapshots), the bounded log, the API's argument checks, and the
 * protocol on the simulated network (cluster/sim.c) with fixed seeds: range repair, a follower
 * that fell behind the log getting a snapshot (in windows of chunks, and with the default 4096
 * entries), a digest mismatch healing itself, hostile messages, and the JSON views. Every loop
 * is bounded in steps and in virtual time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "cluster/members-int.h"
#include "cluster/sim.h"
#include "cluster/state-int.h"
#include "cluster/state.h"
#include "core/alloc.h"

#define SEC  1000000ull
#define MS   1000ull
#define MAXN 8

static void id_of(uint8_t *id, uint8_t v)
{
    memset(id, 0, EXO_MEMBERS_ID_BYTES);
    id[0] = v;
}

static void encode(struct exo_buf *b, const struct exo_state_msg *m)
{
    exo_buf_reset(b);
    exo_state_wire_put(b, m);
    assert_int_equal(b->err, 0);
}

static struct exo_state_msg decoded(const struct exo_buf *b)
{
    struct exo_state_msg m;
    struct exo_diag d;
    if (exo_state_wire_decode(b->data, b->len, &m, &d) < 0)
        fail_msg("decode: %s", d.msg);
    return m;
}

/* ---- codec ---- */

static void test_state_codec_roundtrip(void **state)
{
    struct exo_buf b, entries, records;
    exo_buf_init(&b, 0);
    exo_buf_init(&entries, 0);
    exo_buf_init(&records, 0);
    struct exo_state_msg m = {.type = EXO_STATE_MSG_HEAD};
    m.claim.term = 1ull << 40;
    id_of(m.claim.id, 7);
    m.claim.priority = -3;
    m.head.index = 99;
    memset(m.head.hash, 0xab, EXO_STATE_HASH_BYTES);
    m.head.first = 5;
    memset(m.head.digest, 0xcd, EXO_STATE_HASH_BYTES);
    encode(&b, &m);
    struct exo_state_msg got = decoded(&b);
    assert_int_equal(got.type, EXO_STATE_MSG_HEAD);
    assert_int_equal(got.claim.term, 1ull << 40);
    assert_int_equal(got.claim.priority, -3);
    assert_memory_equal(got.claim.id, m.claim.id, EXO_MEMBERS_ID_BYTES);
    assert_int_equal(got.head.index, 99);
    assert_int_equal(got.head.first, 5);
    assert_memory_equal(got.head.hash, m.head.hash, EXO_STATE_HASH_BYTES);
    assert_memory_equal(got.head.digest, m.head.digest, EXO_STATE_HASH_BYTES);

    m.type = EXO_STATE_MSG_STATUS;
    id_of(m.status.sender, 3);
    m.status.pos.index = 12;
    encode(&b, &m);
    got = decoded(&b);
    assert_int_equal(got.status.pos.index, 12);
    assert_int_equal(got.status.sender[0], 3);

    /* APPEND: three consecutive entries after index 10. */
    for (uint64_t i = 11; i <= 13; i++) {
        struct exo_state_event e = {
            .index = i, .term = 4, .type = (uint8_t)i, .payload = (const uint8_t *)"abc", .len = 3};
        exo_state_wire_put_entry(&entries, &e);
    }
    memset(&m, 0, sizeof(m));
    m.type = EXO_STATE_MSG_APPEND;
    m.claim.term = 4;
    m.append.prev_index = 10;
    m.append.count = 3;
    m.append.entries = entries.data;
    m.append.len = entries.len;
    encode(&b, &m);
    got = decoded(&b);
    assert_int_equal(got.append.count, 3);
    struct exo_reader r;
    exo_reader_init(&r, got.append.entries, got.append.len);
    for (uint64_t i = 11; i <= 13; i++) {
        struct exo_state_event e;
        assert_int_equal(exo_state_wire_get_entry(&r, &e, NULL), 0);
        assert_int_equal(e.index, i);
        assert_int_equal(e.term, 4);
        assert_int_equal(e.len, 3);
    }

    memset(&m, 0, sizeof(m));
    m.type = EXO_STATE_MSG_REPAIR;
    m.repair.index = 77;
    m.repair.snapshot = true;
    encode(&b, &m);
    got = decoded(&b);
    assert_int_equal(got.repair.index, 77);
    assert_true(got.repair.snapshot);

    m.type = EXO_STATE_MSG_SNAP_REQ;
    m.snap_req.index = 5;
    m.snap_req.chunk = 3;
    encode(&b, &m);
    got = decoded(&b);
    assert_int_equal(got.snap_req.chunk, 3);

    static uint8_t big[EXO_STATE_CHUNK + 10];
    m.type = EXO_STATE_MSG_SNAP_CHUNK;
    m.snap_chunk.index = 5;
    m.snap_chunk.total = sizeof(big);
    m.snap_chunk.chunk = 1;
    m.snap_chunk.data = big;
    m.snap_chunk.len = 10; /* the last chunk holds the rest */
    encode(&b, &m);
    got = decoded(&b);
    assert_int_equal(got.snap_chunk.total, sizeof(big));
    assert_int_equal(got.snap_chunk.len, 10);

    struct exo_state_record rec = {.kind = 1,
                                   .key = (const uint8_t *)"gpu0",
                                   .key_len = 4,
                                   .version = 9,
                                   .format = EXO_STATE_FORMAT_JSON,
                                   .value = (const uint8_t *)"{}",
                                   .value_len = 2};
    exo_buf_put_u8(&records, 0);
    exo_state_wire_put_record(&records, &rec);
    exo_buf_put_u8(&records, EXO_STATE_REPORT_DELETED);
    exo_state_wire_put_record(&records, &rec);
    memset(&m, 0, sizeof(m));
    m.type = EXO_STATE_MSG_REPORT;
    m.report.count = 2;
    m.report.records = records.data;
    m.report.len = records.len;
    encode(&b, &m);
    got = decoded(&b);
    assert_int_equal(got.report.count, 2);
    exo_buf_free(&b);
    exo_buf_free(&entries);
    exo_buf_free(&records);
}

/* A valid message of each type, every shorter prefix of which must be refused. */
static void test_state_codec_truncated(void **state)
{
    struct exo_buf b, entries;
    exo_buf_init(&b, 0);
    exo_buf_init(&entries, 0);
    struct exo_state_event e = {.index = 1,
                                .term = 1,
                                .type = EXO_STATE_EVENT_MEMBER_DEL,
                                .payload = (const uint8_t *)"0123456789abcdef",
                                .len = 16};
    exo_state_wire_put_entry(&entries, &e);
    static const uint8_t chunk[7] = {1, 2, 3, 4, 5, 6, 7};
    for (uint8_t type = EXO_STATE_MSG_HEAD; type <= EXO_STATE_MSG_SNAP_CHUNK; type++) {
        struct exo_state_msg m;
        memset(&m, 0, sizeof(m));
        m.type = type;
        m.claim.term = 3;
        m.append.count = 1;
        m.append.entries = entries.data;
        m.append.len = entries.len;
        if (type == EXO_STATE_MSG_SNAP_CHUNK) {
            memset(&m.snap_chunk, 0, sizeof(m.snap_chunk));
            m.snap_chunk.total = sizeof(chunk);
            m.snap_chunk.data = chunk;
            m.snap_chunk.len = sizeof(chunk);
        }
        encode(&b, &m);
        decoded(&b);
        for (size_t n = 0; n < b.len; n++) {
            struct exo_state_msg got;
            if (exo_state_wire_decode(b.data, n, &got, NULL) == 0)
                fail_msg("type %u: a prefix of %zu of %zu bytes decoded", type, n, b.len);
        }
    }
    exo_buf_free(&b);
    exo_buf_free(&entries);
}

static void test_state_codec_hostile(void **state)
{
    struct exo_buf b;
    exo_buf_init(&b, 0);
    static const struct {
        const char *what;
        uint8_t bytes[48];
        size_t len;
        int want;
    } rows[] = {
        {"empty", {0}, 0, EXO_ETRUNCATED},
        {"other channel", {0x01, 1, 1}, 3, EXO_EUNSUPPORTED},
        {"wire version 2", {EXO_STATE_CHANNEL, 2, 1}, 3, EXO_EUNSUPPORTED},
        {"unknown type",
         {EXO_STATE_CHANNEL, 1, 99, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
         21,
         EXO_EFORMAT},
        {"report count 0", {EXO_STATE_CHANNEL, 1, 7, 0}, 4, EXO_EFORMAT},
        {"report count beyond the bytes", {EXO_STATE_CHANNEL, 1, 7, 100, 0, 0}, 6, EXO_EFORMAT},
        {"report count over the cap", {EXO_STATE_CHANNEL, 1, 7, 0x81, 0x10}, 5, EXO_ERANGE},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct exo_state_msg m;
        struct exo_diag d = {{0}};
        int rc = exo_state_wire_decode(rows[i].bytes, rows[i].len, &m, &d);
        if (rc != rows[i].want)
            fail_msg("%s: got %s want %s (%s)", rows[i].what, exo_errname(rc),
                     exo_errname(rows[i].want), d.msg);
        assert_true(d.msg[0] != '\0');
    }

    /* APPEND: a valid header (claim, prev index 0, zero hash), then a count and entries. */
    static const struct {
        const char *what;
        uint8_t tail[8];
        size_t len;
        int want;
    } appends[] = {
        {"count 0", {0}, 1, EXO_EFORMAT},
        {"count over the cap", {0x81, 0x40}, 2, EXO_ERANGE},
        {"count beyond the bytes", {50, 1, 1, 1, 0}, 5, EXO_EFORMAT},
        {"an entry with the wrong index", {1, 2, 1, 1, 0}, 5, EXO_EFORMAT},
        {"an entry with index 0", {1, 0, 1, 1, 0}, 5, EXO_EFORMAT},
        {"a snapshot notice as an entry", {1, 1, 1, 128, 0}, 5, EXO_EFORMAT},
        {"a payload longer than the message", {1, 1, 1, 1, 9}, 5, EXO_ETRUNCATED},
        {"an unterminated varint", {1, 0x80, 0x80, 0x80, 0x80}, 5, EXO_ETRUNCATED},
    };
    for (size_t i = 0; i < sizeof(appends) / sizeof(appends[0]); i++) {
        exo_buf_reset(&b);
        exo_buf_put_u8(&b, EXO_STATE_CHANNEL);
        exo_buf_put_u8(&b, EXO_STATE_WIRE_VERSION);
        exo_buf_put_u8(&b, EXO_STATE_MSG_APPEND);
        exo_buf_put_varint(&b, 1);
        exo_buf_put(&b, (uint8_t[EXO_MEMBERS_ID_BYTES]){0}, EXO_MEMBERS_ID_BYTES);
        exo_buf_put_varint(&b, 0);
        exo_buf_put_varint(&b, i == 4 ? UINT64_MAX : 0); /* prev index; "index 0" wraps */
        exo_buf_put(&b, (uint8_t[EXO_STATE_HASH_BYTES]){0}, EXO_STATE_HASH_BYTES);
        exo_buf_put(&b, appends[i].tail, appends[i].len);
        struct exo_state_msg m;
        struct exo_diag d = {{0}};
        int rc = exo_state_wire_decode(b.data, b.len, &m, &d);
        if (rc != appends[i].want)
            fail_msg("append with %s: got %s want %s (%s)", appends[i].what, exo_errname(rc),
                     exo_errname(appends[i].want), d.msg);
    }

    /* Records: a key too long, an unprintable key, a bad format, a value over the cap. */
    uint8_t key[EXO_STATE_KEY_MAX + 1];
    memset(key, 'k', sizeof(key));
    static uint8_t value[EXO_STATE_VALUE_MAX + 1];
    struct {
        struct exo_state_record rec;
        uint8_t flags;
    } bad[] = {
        {{.kind = 1, .key = key, .key_len = sizeof(key)}, 0},
        {{.kind = 1, .key = (const uint8_t *)"a\nb", .key_len = 3}, 0},
        {{.kind = 1, .format = 2}, 0},
        {{.kind = 1, .value = value, .value_len = sizeof(value)}, 0},
        {{.kind = 1}, 0x80},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct exo_buf recs;
        exo_buf_init(&recs, 0);
        exo_buf_put_u8(&recs, bad[i].flags);
        exo_state_wire_put_record(&recs, &bad[i].rec);
        struct exo_state_msg m = {.type = EXO_STATE_MSG_REPORT};
        m.report.count = 1;
        m.report.records = recs.data;
        m.report.len = recs.len;
        encode(&b, &m);
        struct exo_state_msg got;
        if (exo_state_wire_decode(b.data, b.len, &got, NULL) == 0)
            fail_msg("bad record %zu decoded", i);
        exo_buf_free(&recs);
    }

    /* Snapshot chunks must have exactly the size their place in the total gives them. */
    static const uint8_t three[3] = {1, 2, 3};
    struct exo_state_msg m = {.type = EXO_STATE_MSG_SNAP_CHUNK};
    m.snap_chunk.data = three;
    m.snap_chunk.len = 3;
    const struct {
        uint64_t total;
        uint32_t chunk;
    } chunks[] = {{4, 0}, {2, 0}, {3, 1}, {0, 0}, {EXO_STATE_CHUNK + 3, 0}};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        m.snap_chunk.total = chunks[i].total;
        m.snap_chunk.chunk = chunks[i].chunk;
        encode(&b, &m);
        struct exo_state_msg got;
        if (exo_state_wire_decode(b.data, b.len, &got, NULL) == 0)
            fail_msg("chunk row %zu decoded", i);
    }
    m.snap_chunk.total = EXO_STATE_SNAPSHOT_MAX + 1ull;
    encode(&b, &m);
    struct exo_state_msg got;
    assert_int_equal(exo_state_wire_decode(b.data, b.len, &got, NULL), EXO_ERANGE);
    exo_buf_free(&b);
}

static void test_state_payloads(void **state)
{
    struct exo_buf b;
    exo_buf_init(&b, 0);
    struct exo_state_payload p, got;
    memset(&p, 0, sizeof(p));
    id_of(p.leader.id, 4);
    p.leader.priority = INT32_MIN;
    exo_state_payload_put(&b, EXO_STATE_EVENT_LEADER, &p);
    assert_int_equal(exo_state_payload_decode(EXO_STATE_EVENT_LEADER, b.data, b.len, &got, NULL),
                     0);
    assert_int_equal(got.leader.priority, INT32_MIN);

    memset(&p, 0, sizeof(p));
    p.member.state = EXO_MEMBER_STATE_SUSPECT;
    p.member.incarnation = 42;
    id_of(p.member.id, 9);
    p.member.addr = (struct exo_members_addr){.family = EXO_MEMBERS_FAMILY_IPV4, .port = 1};
    strcpy(p.member.name, "n9");
    p.member.meta.proto_min = p.member.meta.proto_max = EXO_MEMBERS_PROTO;
    p.member.meta.blob = (const uint8_t *)"xyz";
    p.member.meta.blob_len = 3;
    exo_buf_reset(&b);
    exo_state_payload_put(&b, EXO_STATE_EVENT_MEMBER_SET, &p);
    assert_int_equal(
        exo_state_payload_decode(EXO_STATE_EVENT_MEMBER_SET, b.data, b.len, &got, NULL), 0);
    assert_int_equal(got.member.incarnation, 42);
    assert_string_equal(got.member.name, "n9");
    assert_int_equal(got.member.meta.blob_len, 3);
    /* A member state that does not exist. */
    b.data[0] = 9;
    assert_true(exo_state_payload_decode(EXO_STATE_EVENT_MEMBER_SET, b.data, b.len, &got, NULL) <
                0);
    assert_int_equal(exo_state_payload_decode(77, b.data, b.len, &got, NULL), EXO_ENOENT);
    assert_true(exo_state_payload_decode(EXO_STATE_EVENT_MEMBER_DEL, b.data, 5, &got, NULL) < 0);
    exo_buf_free(&b);
}

static void test_state_chain_hash_canonical(void **state)
{
    /* The same entry with a non-minimal varint index hashes the same: hashes are over our own
     * encoding of what was decoded. */
    static const uint8_t minimal[] = {5, 2, 3, 1, 'x'};
    static const uint8_t padded[] = {0x85, 0x00, 2, 3, 1, 'x'};
    uint8_t prev[EXO_STATE_HASH_BYTES] = {1}, h1[EXO_STATE_HASH_BYTES], h2[EXO_STATE_HASH_BYTES];
    struct exo_buf scratch;
    exo_buf_init(&scratch, 0);
    struct exo_reader r;
    struct exo_state_event e;
    exo_reader_init(&r, minimal, sizeof(minimal));
    assert_int_equal(exo_state_wire_get_entry(&r, &e, NULL), 0);
    exo_state_chain_hash(prev, &e, &scratch, h1);
    exo_reader_init(&r, padded, sizeof(padded));
    if (exo_state_wire_get_entry(&r, &e, NULL) == 0) {
        exo_state_chain_hash(prev, &e, &scratch, h2);
        assert_memory_equal(h1, h2, EXO_STATE_HASH_BYTES);
    }
    /* Any field changes the hash, and so does the previous hash. */
    exo_reader_init(&r, minimal, sizeof(minimal));
    exo_state_wire_get_entry(&r, &e, NULL);
    e.term++;
    exo_state_chain_hash(prev, &e, &scratch, h2);
    assert_memory_not_equal(h1, h2, EXO_STATE_HASH_BYTES);
    e.term--;
    prev[0] = 2;
    exo_state_chain_hash(prev, &e, &scratch, h2);
    assert_memory_not_equal(h1, h2, EXO_STATE_HASH_BYTES);
    exo_buf_free(&scratch);
}

/* ---- the state machine ---- */

/* Apply an event built from a payload to t; returns apply's result. */
static int apply(struct exo_state_table *t, uint64_t term, uint8_t type,
                 const struct exo_state_payload *p)
{
    struct exo_buf b;
    exo_buf_init(&b, 0);
    exo_state_payload_put(&b, type, p);
    struct exo_state_event e = {
        .index = 1, .term = term, .type = type, .payload = b.data, .len = b.len};
    int rc = exo_state_table_apply(t, &e);
    exo_buf_free(&b);
    return rc;
}

static int add_member(struct exo_state_table *t, uint8_t id)
{
    struct exo_state_payload p;
    memset(&p, 0, sizeof(p));
    id_of(p.member.id, id);
    p.member.addr = (struct exo_members_addr){.family = EXO_MEMBERS_FAMILY_IPV4, .port = 9};
    snprintf(p.member.name, sizeof(p.member.name), "m%u", id);
    p.member.meta.proto_min = p.member.meta.proto_max = EXO_MEMBERS_PROTO;
    p.member.meta.blob = (const uint8_t *)"blob";
    p.member.meta.blob_len = 4;
    return apply(t, 1, EXO_STATE_EVENT_MEMBER_SET, &p);
}

static int set_record(struct exo_state_table *t, uint16_t kind, uint8_t owner, const char *key,
                      const char *value)
{
    struct exo_state_payload p;
    memset(&p, 0, sizeof(p));
    p.record.kind = kind;
    if (owner)
        id_of(p.record.owner, owner);
    p.record.key = (const uint8_t *)key;
    p.record.key_len = strlen(key);
    p.record.version = 1;
    p.record.value = (const uint8_t *)value;
    p.record.value_len = strlen(value);
    return apply(t, 1, EXO_STATE_EVENT_RECORD_SET, &p);
}

static void test_state_table_apply(void **state)
{
    struct exo_state_table t, u;
    exo_state_table_init(&t);
    exo_state_table_init(&u);
    struct exo_state_payload p;
    memset(&p, 0, sizeof(p));
    id_of(p.leader.id, 3);
    assert_int_equal(apply(&t, 0, EXO_STATE_EVENT_LEADER, &p), EXO_EFORMAT); /* no term 0 */
    assert_int_equal(apply(&t, 2, EXO_STATE_EVENT_LEADER, &p), 0);
    assert_int_equal(t.term, 2);
    /* Members arrive in any order and are kept sorted. */
    assert_int_equal(add_member(&t, 5), 0);
    assert_int_equal(add_member(&t, 2), 0);
    assert_int_equal(add_member(&t, 9), 0);
    assert_int_equal(add_member(&t, 2), 0); /* an update */
    assert_int_equal(t.n_members, 3);
    assert_int_equal(t.members[0].node.id[0], 2);
    assert_int_equal(t.members[2].node.id[0], 9);
    /* Records need an owner that is a member (or none, for leader objects). */
    assert_int_equal(set_record(&t, 1, 4, "", "x"), EXO_ENOSPC);
    assert_int_equal(set_record(&t, 1, 5, "", "{}"), 0);
    assert_int_equal(set_record(&t, 64, 0, "model", "plan"), 0);
    assert_int_equal(set_record(&t, 1, 2, "b", "1"), 0);
    assert_int_equal(set_record(&t, 1, 2, "a", "1"), 0);
    assert_int_equal(t.n_records, 4);
    assert_int_equal(
        exo_state_table_find_record(&t, 1, t.members[0].node.id, (const uint8_t *)"a", 1), 0);
    /* The per-owner cap. */
    char key[16];
    for (int i = 0; i < EXO_STATE_OWNER_RECORDS - 2; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(set_record(&t, 3, 9, key, "v"), 0);
    }
    assert_int_equal(set_record(&t, 3, 9, "over", "v"), 0);
    assert_int_equal(set_record(&t, 3, 9, "over2", "v"), 0);
    assert_int_equal(set_record(&t, 3, 9, "over3", "v"), EXO_ENOSPC);
    assert_int_equal(set_record(&t, 3, 9, "k0", "changed"), 0); /* updates still fit */
    /* A member leaves with its records. */
    memset(&p, 0, sizeof(p));
    id_of(p.id, 9);
    assert_int_equal(apply(&t, 2, EXO_STATE_EVENT_MEMBER_DEL, &p), 0);
    assert_int_equal(t.n_records, 4);
    assert_int_equal(t.n_members, 2);
    assert_int_equal(apply(&t, 2, EXO_STATE_EVENT_MEMBER_DEL, &p), 0); /* already gone */
    /* Deleting a record; bytes go back down with it. */
    size_t before = t.bytes;
    memset(&p, 0, sizeof(p));
    p.record.kind = 64;
    p.record.key = (const uint8_t *)"model";
    p.record.key_len = 5;
    assert_int_equal(apply(&t, 2, EXO_STATE_EVENT_RECORD_DEL, &p), 0);
    assert_int_equal(t.bytes, before - 5 - 4);
    assert_int_equal(apply(&t, 2, EXO_STATE_EVENT_RECORD_DEL, &p), 0);
    assert_int_equal(apply(&t, 2, 200, &p), EXO_ENOENT);
    struct exo_state_event junk = {.index = 1,
                                   .term = 1,
                                   .type = EXO_STATE_EVENT_RECORD_SET,
                                   .payload = (const uint8_t *)"\x01",
                                   .len = 1};
    assert_int_equal(exo_state_table_apply(&t, &junk), EXO_EFORMAT);

    /* The canonical encoding decodes to a table that encodes the same. */
    struct exo_buf a, b;
    exo_buf_init(&a, 0);
    exo_buf_init(&b, 0);
    exo_state_table_encode(&t, &a);
    assert_int_equal(exo_state_table_decode(&u, a.data, a.len, NULL), 0);
    exo_state_table_encode(&u, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    assert_int_equal(u.bytes, t.bytes);
    assert_int_equal(u.members[0].records, t.members[0].records);
    exo_buf_free(&a);
    exo_buf_free(&b);
    exo_state_table_clear(&t);
    exo_state_table_clear(&u);
    assert_int_equal(t.n_members + t.n_records + t.bytes, 0);
}

static void test_state_table_decode_hostile(void **state)
{
    struct exo_state_table t;
    exo_state_table_init(&t);
    assert_int_equal(add_member(&t, 1), 0);
    assert_int_equal(add_member(&t, 2), 0);
    assert_int_equal(set_record(&t, 1, 1, "a", "x"), 0);
    assert_int_equal(set_record(&t, 1, 2, "a", "y"), 0);
    struct exo_buf good;
    exo_buf_init(&good, 0);
    exo_state_table_encode(&t, &good);
    exo_state_table_clear(&t);
    /* Every prefix fails and leaves the table empty. */
    for (size_t n = 0; n < good.len; n++) {
        struct exo_state_table u;
        exo_state_table_init(&u);
        if (exo_state_table_decode(&u, good.data, n, NULL) == 0)
            fail_msg("a prefix of %zu bytes decoded", n);
        assert_int_equal(u.n_members + u.n_records, 0);
    }
    /* A trailing byte. */
    struct exo_buf b;
    exo_buf_init(&b, 0);
    exo_buf_put(&b, good.data, good.len);
    exo_buf_put_u8(&b, 0);
    struct exo_diag d;
    assert_int_equal(exo_state_table_decode(&t, b.data, b.len, &d), EXO_EFORMAT);
    /* Another version. */
    b.data[0] = 2;
    assert_int_equal(exo_state_table_decode(&t, b.data, good.len, &d), EXO_EUNSUPPORTED);

    /* Out of order and duplicate members, a record of a non-member, records out of order,
     * a count larger than the bytes. Build them by hand from the pieces. */
    struct exo_members_node n1, n2;
    memset(&n1, 0, sizeof(n1));
    n1.addr = (struct exo_members_addr){.family = EXO_MEMBERS_FAMILY_IPV4, .port = 9};
    n1.meta.proto_min = n1.meta.proto_max = 1;
    n2 = n1;
    id_of(n1.id, 1);
    id_of(n2.id, 2);
    struct exo_state_record r1 = {.kind = 1, .version = 1}, r2 = {.kind = 1, .version = 1};
    memcpy(r1.owner, n1.id, EXO_MEMBERS_ID_BYTES);
    memcpy(r2.owner, n2.id, EXO_MEMBERS_ID_BYTES);
    const struct {
        const struct exo_members_node *m[2];
        size_t nm;
        const struct exo_state_record *r[2];
        size_t nr;
        uint64_t claim_records;
    } cases[] = {
        {{&n2, &n1}, 2, {NULL}, 0, 0},     {{&n1, &n1}, 2, {NULL}, 0, 0},
        {{&n1}, 1, {&r2}, 1, 1},           {{&n1, &n2}, 2, {&r2, &r1}, 2, 2},
        {{&n1, &n2}, 2, {&r1, &r1}, 2, 2}, {{&n1}, 1, {&r1}, 1, 1000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        exo_buf_reset(&b);
        exo_buf_put_u8(&b, EXO_STATE_TABLE_VERSION);
        exo_buf_put_varint(&b, 1);
        exo_buf_put(&b, n1.id, EXO_MEMBERS_ID_BYTES);
        exo_buf_put_varint(&b, 0);
        exo_buf_put_varint(&b, cases[i].nm);
        for (size_t k = 0; k < cases[i].nm; k++)
            exo_members_wire_put_node(&b, cases[i].m[k]);
        exo_buf_put_varint(&b, cases[i].claim_records);
        for (size_t k = 0; k < cases[i].nr; k++)
            exo_state_wire_put_record(&b, cases[i].r[k]);
        struct exo_state_table u;
        exo_state_table_init(&u);
        if (exo_state_table_decode(&u, b.data, b.len, &d) == 0)
            fail_msg("case %zu decoded", i);
        assert_int_equal(u.n_members + u.n_records, 0);
    }
    exo_buf_free(&b);
    exo_buf_free(&good);
}

/* ---- the bounded log ---- */

static void test_state_log_ring(void **state)
{
    struct exo_state_log log;
    assert_int_equal(exo_state_log_init(&log, 16, 1000), 0);
    uint8_t zero[EXO_STATE_HASH_BYTES] = {0}, h[EXO_STATE_HASH_BYTES];
    assert_int_equal(exo_state_log_last(&log), 0);
    assert_memory_equal(exo_state_log_hash(&log, 0), zero, EXO_STATE_HASH_BYTES);
    assert_null(exo_state_log_hash(&log, 1));
    uint8_t payload[100] = {0};
    for (int i = 1; i <= 40; i++) {
        memset(h, i, sizeof(h));
        struct exo_state_event e = {
            .index = (uint64_t)i, .term = 1, .type = 1, .payload = payload, .len = 10};
        assert_int_equal(exo_state_log_push(&log, &e, h), 0);
    }
    /* 16 entries kept; the one before the oldest is known by its hash. */
    assert_int_equal(exo_state_log_last(&log), 40);
    assert_int_equal(log.base_index, 24);
    assert_int_equal(exo_state_log_hash(&log, 24)[0], 24);
    assert_null(exo_state_log_hash(&log, 23));
    assert_null(exo_state_log_at(&log, 24));
    assert_int_equal(exo_state_log_at(&log, 25)->hash[0], 25);
    assert_int_equal(exo_state_log_at(&log, 40)->hash[0], 40);
    assert_null(exo_state_log_at(&log, 41));
    /* The byte cap evicts too: 100-byte payloads, 1000 bytes. */
    for (int i = 41; i <= 50; i++) {
        memset(h, i, sizeof(h));
        struct exo_state_event e = {
            .index = (uint64_t)i, .term = 1, .type = 1, .payload = payload, .len = 100};
        assert_int_equal(exo_state_log_push(&log, &e, h), 0);
    }
    assert_true(log.bytes <= 1000);
    assert_int_equal(exo_state_log_last(&log), 50);
    /* Reset continues after a snapshot's position. */
    memset(h, 0x77, sizeof(h));
    exo_state_log_reset(&log, 1000, h);
    assert_int_equal(exo_state_log_last(&log), 1000);
    assert_int_equal(exo_state_log_hash(&log, 1000)[0], 0x77);
    assert_int_equal(log.bytes, 0);
    exo_state_log_free(&log);
}

/* ---- scenarios ---- */

struct watch {
    struct exo_sim *sim;
    size_t events[MAXN];
    uint64_t last_index[MAXN];
    bool out_of_order;
};

static void on_state_event(void *ctx, size_t node, const struct exo_state_event *ev,
                           uint64_t now_us)
{
    struct watch *w = ctx;
    assert_true(node < MAXN);
    /* Log events come in index order, one after the other; a snapshot may jump anywhere. */
    if (ev->type != EXO_STATE_EVENT_SNAPSHOT && w->last_index[node] &&
        ev->index != w->last_index[node] + 1)
        w->out_of_order = true;
    w->last_index[node] = ev->index;
    w->events[node]++;
}

static struct exo_sim *make_sim(size_t n, uint64_t seed, size_t log_entries, struct watch *w)
{
    struct exo_sim_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    memset(w, 0, sizeof(*w));
    cfg.nodes = n;
    cfg.seed = seed;
    cfg.latency_us = 200;
    cfg.jitter_us = 100;
    exo_members_config_init(&cfg.members);
    cfg.state = true;
    exo_state_config_init(&cfg.state_cfg);
    if (log_entries)
        cfg.state_cfg.log_entries = log_entries;
    cfg.state_event_cb = on_state_event;
    cfg.ctx = w;
    struct exo_sim *sim = NULL;
    assert_int_equal(exo_sim_create(&cfg, &sim), 0);
    w->sim = sim;
    size_t zero = 0;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(exo_sim_start(sim, i), 0);
    for (size_t i = 1; i < n; i++)
        assert_int_equal(exo_sim_join(sim, i, &zero, 1), 0);
    return sim;
}

static bool run_converged(struct exo_sim *sim, uint64_t limit)
{
    uint64_t end = exo_sim_now(sim) + limit;
    for (int steps = 0; steps < 100000 && exo_sim_now(sim) < end; steps++) {
        if (exo_sim_state_converged(sim))
            return true;
        exo_sim_run_until(sim, exo_sim_now(sim) + 10 * MS);
    }
    return exo_sim_state_converged(sim);
}

static struct exo_state_stats stats_of(struct exo_sim *sim, size_t node)
{
    struct exo_state_stats st;
    exo_state_get_stats(exo_sim_state(sim, node), &st);
    return st;
}

/* The leader and a follower that is not it. */
static void roles(struct exo_sim *sim, size_t *leader, size_t *follower)
{
    *leader = (size_t)exo_sim_expected_leader(sim, 0);
    *follower = *leader == 0 ? 1 : 0;
}

static void set_objects(struct exo_sim *sim, size_t leader, int count, size_t value_len)
{
    static uint8_t value[EXO_STATE_VALUE_MAX];
    for (int i = 0; i < count; i++) {
        char key[16];
        snprintf(key, sizeof(key), "obj%d", i);
        memset(value, 'a' + i % 26, value_len);
        assert_int_equal(exo_state_object_set(exo_sim_state(sim, leader), EXO_STATE_KIND_INSTANCE,
                                              key, strlen(key), EXO_STATE_FORMAT_BINARY, value,
                                              value_len, exo_sim_now(sim)),
                         0);
    }
}

static void discard(void *ctx, const struct exo_members_addr *to, const uint8_t *d, size_t n)
{
}

static void no_wake_needed(void *ctx)
{
}

static void test_state_api_arguments(void **state)
{
    struct watch w;
    struct exo_sim *sim = make_sim(2, 3, 0, &w);
    assert_true(run_converged(sim, 10 * SEC));
    size_t leader, follower;
    roles(sim, &leader, &follower);
    struct exo_state *s = exo_sim_state(sim, follower);
    uint64_t now = exo_sim_now(sim);
    char key[EXO_STATE_KEY_MAX + 1];
    memset(key, 'k', sizeof(key));
    static uint8_t value[EXO_STATE_VALUE_MAX + 1];
    assert_int_equal(exo_state_report_set(s, 1, key, sizeof(key), 0, "v", 1, now), EXO_EINVAL);
    assert_int_equal(exo_state_report_set(s, 1, "a\tb", 3, 0, "v", 1, now), EXO_EINVAL);
    assert_int_equal(exo_state_report_set(s, 1, "", 0, 0, value, sizeof(value), now), EXO_EINVAL);
    assert_int_equal(exo_state_report_set(s, 1, "", 0, 2, "v", 1, now), EXO_EINVAL);
    assert_int_equal(exo_state_report_set(s, 1, "", 0, EXO_STATE_FORMAT_JSON, "{", 1, now),
                     EXO_EINVAL);
    assert_int_equal(exo_state_report_delete(s, 1, "", 0, now), EXO_ENOENT);
    for (int i = 0; i < EXO_STATE_OWNER_RECORDS; i++) {
        char k[8];
        snprintf(k, sizeof(k), "%d", i);
        assert_int_equal(exo_state_report_set(s, 2, k, strlen(k), 0, "v", 1, now), 0);
    }
    assert_int_equal(exo_state_report_set(s, 2, "x", 1, 0, "v", 1, now), EXO_ENOSPC);
    assert_int_equal(exo_state_report_set(s, 2, "0", 1, 0, "w", 1, now), 0); /* an update fits */
    assert_int_equal(exo_state_report_delete(s, 2, "1", 1, now), 0);
    assert_int_equal(exo_state_object_set(s, 64, "m", 1, 0, "v", 1, now), EXO_EPERM);
    assert_int_equal(exo_state_object_delete(s, 64, "m", 1, now), EXO_EPERM);
    struct exo_state *l = exo_sim_state(sim, leader);
    assert_int_equal(exo_state_object_delete(l, 64, "m", 1, now), EXO_ENOENT);
    assert_int_equal(exo_state_object_set(l, 64, "m", 1, 0, "v", 1, now), 0);
    uint64_t index;
    exo_state_position(l, &index, NULL);
    assert_int_equal(exo_state_object_set(l, 64, "m", 1, 0, "v", 1, now), 0);
    uint64_t again;
    exo_state_position(l, &again, NULL);
    assert_int_equal(again, index); /* the same value again writes nothing */
    /* All 255 reports reach every node. */
    assert_true(run_converged(sim, 10 * SEC));
    exo_sim_run_until(sim, exo_sim_now(sim) + 3 * SEC);
    assert_true(run_converged(sim, 10 * SEC));
    assert_int_equal(exo_state_record_count(exo_sim_state(sim, leader)), 256);
    assert_false(w.out_of_order);
    exo_sim_free(sim);

    /* Creation refuses a bad configuration or an id the membership machine is not. */
    struct exo_members_config mc;
    exo_members_config_init(&mc);
    id_of(mc.id, 1);
    mc.addr = (struct exo_members_addr){.family = EXO_MEMBERS_FAMILY_IPV4, .port = 9};
    struct exo_members_io io = {.send_packet_cb = discard, .send_stream_cb = discard};
    struct exo_members *m = NULL;
    assert_int_equal(exo_members_create(&mc, &io, NULL, 0, &m), 0);
    struct exo_state_config sc;
    exo_state_config_init(&sc);
    struct exo_state_hooks hooks = {.wake_cb = no_wake_needed};
    struct exo_state *st = NULL;
    assert_int_equal(exo_state_create(&sc, m, &hooks, 0, &st), EXO_EINVAL); /* id 0 */
    id_of(sc.id, 1);
    sc.log_entries = 4;
    assert_int_equal(exo_state_create(&sc, m, &hooks, 0, &st), EXO_EINVAL);
    exo_state_config_init(&sc);
    id_of(sc.id, 1);
    struct exo_state_hooks no_wake = {0};
    assert_int_equal(exo_state_create(&sc, m, &no_wake, 0, &st), EXO_EINVAL);
    /* Every allocation failure is clean. */
    for (long k = 0; k < 20; k++) {
        exo_alloc_fail_after(k);
        int rc = exo_state_create(&sc, m, &hooks, 0, &st);
        exo_alloc_fail_after(-1);
        if (rc == 0) {
            exo_state_free(st);
            break;
        }
        assert_int_equal(rc, EXO_ENOMEM);
    }
    exo_members_free(m);
}

static void test_state_range_repair(void **state)
{
    struct watch w;
    struct exo_sim *sim = make_sim(3, 5, 0, &w);
    assert_true(run_converged(sim, 10 * SEC));
    size_t leader, follower;
    roles(sim, &leader, &follower);
    /* Cut off for under a second: the membership layer keeps it, but the broadcasts are gone
     * by the time it is back. */
    exo_sim_set_group(sim, follower, 1);
    set_objects(sim, leader, 10, 100);
    exo_sim_run_until(sim, exo_sim_now(sim) + 800 * MS);
    exo_sim_set_group(sim, follower, 0);
    assert_true(run_converged(sim, 10 * SEC));
    struct exo_state_stats f = stats_of(sim, follower), l = stats_of(sim, leader);
    assert_true(f.repairs_requested > 0);
    assert_true(l.entries_served >= 10);
    assert_int_equal(f.snapshots_installed, 0);
    /* Entries too big to broadcast, two to a message: the ranges are split to fit. */
    exo_sim_set_group(sim, follower, 1);
    set_objects(sim, leader, 8, 30000);
    exo_sim_run_until(sim, exo_sim_now(sim) + 800 * MS);
    exo_sim_set_group(sim, follower, 0);
    assert_true(run_converged(sim, 10 * SEC));
    f = stats_of(sim, follower);
    l = stats_of(sim, leader);
    assert_true(l.entries_served >= 18);
    assert_int_equal(f.snapshots_installed, 0);
    assert_int_equal(f.dropped[EXO_STATE_DROP_MALFORMED], 0);
    assert_false(w.out_of_order);
    exo_sim_free(sim);
}

/* A follower away for longer than the log holds gets a snapshot, fetched in windows of chunks
 * when it is large. */
static void test_state_far_behind_gets_snapshot(void **state)
{
    struct watch w;
    struct exo_sim *sim = make_sim(3, 7, 16, &w);
    assert_true(run_converged(sim, 10 * SEC));
    size_t leader, follower;
    roles(sim, &leader, &follower);
    exo_sim_set_group(sim, follower, 1);
    set_objects(sim, leader, 24, 20000); /* 480 KB: ten chunks, three windows */
    exo_sim_run_until(sim, exo_sim_now(sim) + 800 * MS);
    exo_sim_set_group(sim, follower, 0);
    assert_true(run_converged(sim, 20 * SEC));
    struct exo_state_stats f = stats_of(sim, follower), l = stats_of(sim, leader);
    assert_int_equal(f.snapshots_installed, 1);
    assert_true(f.snapshot_chunks_received >= 10);
    assert_true(l.snapshots_served >= 1);
    assert_int_equal(exo_state_record_count(exo_sim_state(sim, follower)), 24);
    assert_true(exo_state_log_first(exo_sim_state(sim, leader)) > 1);
    exo_sim_free(sim);
}

static void test_state_far_behind_default_log(void **state)
{
    struct watch w;
    struct exo_sim *sim = make_sim(3, 9, 0, &w);
    assert_true(run_converged(sim, 10 * SEC));
    size_t leader, follower;
    roles(sim, &leader, &follower);
    exo_sim_set_group(sim, follower, 1);
    set_objects(sim, leader, EXO_STATE_LOG_ENTRIES + 100, 1);
    exo_sim_run_until(sim, exo_sim_now(sim) + 800 * MS);
    exo_sim_set_group(sim, follower, 0);
    assert_true(run_converged(sim, 20 * SEC));
    struct exo_state_stats f = stats_of(sim, follower);
    assert_int_equal(f.snapshots_installed, 1);
    assert_true(f.log_first > EXO_STATE_LOG_ENTRIES); /* the log starts after the snapshot */
    assert_int_equal(exo_state_record_count(exo_sim_state(sim, follower)),
                     EXO_STATE_LOG_ENTRIES + 100);
    exo_sim_free(sim);
}

/* Wrap a state message in a membership APP message and deliver it to `to` from `from`. */
static void inject(struct exo_sim *sim, size_t to, size_t from, const struct exo_buf *state_msg)
{
    struct exo_buf pkt, scratch;
    exo_buf_init(&pkt, 0);
    exo_buf_init(&scratch, 0);
    exo_members_wire_begin(&pkt);
    struct exo_members_msg m = {.type = EXO_MEMBERS_MSG_APP};
    exo_sim_id(sim, from, m.app.from);
    m.app.data = state_msg->data;
    m.app.len = state_msg->len;
    exo_members_wire_put(&pkt, &scratch, &m);
    assert_int_equal(exo_sim_inject(sim, to, from, pkt.data, pkt.len, true), 0);
    exo_buf_free(&pkt);
    exo_buf_free(&scratch);
}

static void test_state_digest_mismatch_heals(void **state)
{
    struct watch w;
    struct exo_sim *sim = make_sim(3, 11, 0, &w);
    assert_true(run_converged(sim, 10 * SEC));
    size_t leader, follower;
    roles(sim, &leader, &follower);
    /* A heartbeat from the leader that agrees on the log but not on the table, as a follower
     * whose apply failed would see: it must fetch a snapshot. */
    struct exo_state_msg m = {.type = EXO_STATE_MSG_HEAD};
    exo_state_following(exo_sim_state(sim, leader), &m.claim);
    exo_state_position(exo_sim_state(sim, leader), &m.head.index, m.head.hash);
    m.head.first = 1;
    memset(m.head.digest, 0x5a, EXO_STATE_HASH_BYTES);
    struct exo_buf b;
    exo_buf_init(&b, 0);
    encode(&b, &m);
    inject(sim, follower, leader, &b);
    exo_sim_run_until(sim, exo_sim_now(sim) + 2 * SEC);
    assert_true(run_converged(sim, 10 * SEC));
    struct exo_state_stats f = stats_of(sim, follower);
    assert_true(f.divergences >= 1);
    assert_int_equal(f.snapshots_installed, 1);
    exo_buf_free(&b);
    exo_sim_free(sim);
}

static void test_state_hostile_messages(void **state)
{
    struct watch w;
    struct exo_sim *sim = make_sim(3, 13, 0, &w);
    assert_true(run_converged(sim, 10 * SEC));
    size_t leader, follower;
    roles(sim, &leader, &follower);
    size_t other = 3 - leader - follower;
    struct exo_buf b;
    exo_buf_init(&b, 0);
    /* Not a state message at all, and another wire version. */
    exo_buf_put_u8(&b, EXO_STATE_CHANNEL);
    exo_buf_put_u8(&b, 1);
    exo_buf_put_u8(&b, EXO_STATE_MSG_APPEND);
    inject(sim, follower, leader, &b);
    b.data[1] = 9;
    inject(sim, follower, leader, &b);
    /* An append from a stale claim, and one that claims to come from the leader but does not. */
    struct exo_state_msg m = {.type = EXO_STATE_MSG_HEAD};
    m.head.index = 1000;
    exo_sim_id(sim, other, m.claim.id);
    encode(&b, &m); /* term 0: older than anything */
    inject(sim, follower, other, &b);
    exo_state_following(exo_sim_state(sim, leader), &m.claim);
    encode(&b, &m);
    inject(sim, follower, other, &b);
    /* Requests that only a leader answers, sent to a follower. */
    memset(&m, 0, sizeof(m));
    m.type = EXO_STATE_MSG_REPAIR;
    exo_state_following(exo_sim_state(sim, leader), &m.claim);
    encode(&b, &m);
    inject(sim, follower, other, &b);
    m.type = EXO_STATE_MSG_SNAP_REQ;
    encode(&b, &m);
    inject(sim, follower, other, &b);
    /* A report about a node that is not a member. */
    struct exo_buf recs;
    exo_buf_init(&recs, 0);
    exo_buf_put_u8(&recs, 0);
    struct exo_state_record rec = {.kind = 1, .version = 5};
    exo_state_wire_put_record(&recs, &rec);
    memset(&m, 0, sizeof(m));
    m.type = EXO_STATE_MSG_REPORT;
    m.report.count = 1;
    m.report.records = recs.data;
    m.report.len = recs.len;
    encode(&b, &m);
    exo_sim_kill(sim, other);
    exo_sim_run_until(sim, exo_sim_now(sim) + 40 * SEC); /* reaped */
    inject(sim, leader, other, &b);
    exo_sim_run_until(sim, exo_sim_now(sim) + SEC);
    struct exo_state_stats f = stats_of(sim, follower), l = stats_of(sim, leader);
    assert_true(f.dropped[EXO_STATE_DROP_MALFORMED] >= 1);
    assert_true(f.dropped[EXO_STATE_DROP_VERSION] >= 1);
    assert_true(f.dropped[EXO_STATE_DROP_STALE] >= 2);
    assert_true(f.dropped[EXO_STATE_DROP_NOT_LEADER] >= 2);
    assert_true(l.dropped[EXO_STATE_DROP_REFUSED] >= 1);
    assert_true(run_converged(sim, 10 * SEC));
    assert_int_equal(exo_state_member_count(exo_sim_state(sim, follower)), 2);
    exo_buf_free(&recs);
    exo_buf_free(&b);
    exo_sim_free(sim);
}

/* ---- JSON and metrics ---- */

static void test_state_json_views(void **state)
{
    struct watch w;
    struct exo_sim *sim = make_sim(3, 15, 0, &w);
    assert_true(run_converged(sim, 10 * SEC));
    size_t leader, follower;
    roles(sim, &leader, &follower);
    struct exo_state *s = exo_sim_state(sim, follower);
    assert_int_equal(exo_state_report_set(s, EXO_STATE_KIND_DEVICES, "", 0, EXO_STATE_FORMAT_JSON,
                                          "{\"gpus\":[1,2]}", 14, exo_sim_now(sim)),
                     0);
    assert_int_equal(exo_state_object_set(exo_sim_state(sim, leader), 999, "bin", 3,
                                          EXO_STATE_FORMAT_BINARY, "\x00\x01\x02", 3,
                                          exo_sim_now(sim)),
                     0);
    assert_true(run_converged(sim, 10 * SEC));
    exo_sim_run_until(sim, exo_sim_now(sim) + 2 * SEC);
    assert_true(run_converged(sim, 10 * SEC));

    cJSON *j = exo_state_json_cluster(s);
    assert_non_null(j);
    char *text = cJSON_PrintUnformatted(j);
    assert_non_null(strstr(text, "\"leader\":{\"id\""));
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "node"), "leader")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "members")), 3);
    cJSON *m0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "members"), 0);
    assert_string_equal(cJSON_GetObjectItem(m0, "state")->valuestring, "alive");
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(m0, "local"), "rtt_us"));
    assert_int_equal(strlen(cJSON_GetObjectItem(j, "digest")->valuestring), 32);
    cJSON *counters = cJSON_GetObjectItem(j, "counters");
    assert_true(cJSON_GetObjectItem(counters, "term")->valuedouble >= 1);
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(counters, "dropped_total"), "stale"));
    cJSON_free(text);
    cJSON_Delete(j);

    /* Records: JSON embedded, binary as base64, unknown kinds by number. */
    j = exo_state_json_records(s, 0);
    assert_int_equal(cJSON_GetArraySize(j), 2);
    text = cJSON_PrintUnformatted(j);
    assert_non_null(strstr(text, "\"kind\":\"devices\""));
    assert_non_null(strstr(text, "\"value\":{\"gpus\":[1,2]}"));
    assert_non_null(strstr(text, "\"kind\":null"));
    assert_non_null(strstr(text, "\"value\":\"AAEC\""));
    assert_non_null(strstr(text, "\"owner\":null"));
    cJSON_free(text);
    cJSON_Delete(j);
    j = exo_state_json_records(s, EXO_STATE_KIND_DEVICES);
    assert_int_equal(cJSON_GetArraySize(j), 1);
    cJSON_Delete(j);

    /* Every event in the log renders, with its index, term and type. */
    size_t types[8] = {0};
    uint64_t last;
    exo_state_position(s, &last, NULL);
    for (uint64_t i = exo_state_log_first(s); i <= last; i++) {
        struct exo_state_event ev;
        assert_int_equal(exo_state_log_get(s, i, &ev), 0);
        j = exo_state_json_event(&ev);
        assert_non_null(j);
        assert_int_equal((uint64_t)cJSON_GetObjectItem(j, "index")->valuedouble, i);
        assert_string_equal(cJSON_GetObjectItem(j, "type")->valuestring,
                            exo_state_event_name(ev.type));
        assert_null(cJSON_GetObjectItem(j, "undecoded"));
        types[ev.type & 7]++;
        cJSON_Delete(j);
    }
    assert_true(types[EXO_STATE_EVENT_LEADER] && types[EXO_STATE_EVENT_MEMBER_SET] &&
                types[EXO_STATE_EVENT_RECORD_SET]);
    assert_int_equal(exo_state_log_get(s, last + 1, &(struct exo_state_event){0}), EXO_ENOENT);
    struct exo_state_event snap = {.index = 7, .term = 2, .type = EXO_STATE_EVENT_SNAPSHOT};
    j = exo_state_json_event(&snap);
    assert_string_equal(cJSON_GetObjectItem(j, "type")->valuestring, "snapshot");
    cJSON_Delete(j);
    struct exo_state_event odd = {.index = 8, .term = 2, .type = 77};
    j = exo_state_json_event(&odd);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "undecoded")));
    cJSON_Delete(j);

    /* Metrics: the samples of one family are adjacent and counters are marked. */
    struct exo_state_metric mt[EXO_STATE_METRICS_MAX];
    size_t n = exo_state_metrics(s, mt, EXO_STATE_METRICS_MAX);
    assert_true(n > 20 && n <= EXO_STATE_METRICS_MAX);
    for (size_t i = 0; i < n; i++) {
        assert_true(strncmp(mt[i].name, "exo_state_", 10) == 0);
        bool total = strstr(mt[i].name, "_total") != NULL;
        assert_int_equal(total, mt[i].counter);
        for (size_t k = i + 2; k < n; k++)
            if (strcmp(mt[i].name, mt[k].name) == 0)
                assert_string_equal(mt[k - 1].name, mt[i].name);
    }
    exo_sim_free(sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_codec_roundtrip),
        cmocka_unit_test(test_state_codec_truncated),
        cmocka_unit_test(test_state_codec_hostile),
        cmocka_unit_test(test_state_payloads),
        cmocka_unit_test(test_state_chain_hash_canonical),
        cmocka_unit_test(test_state_table_apply),
        cmocka_unit_test(test_state_table_decode_hostile),
        cmocka_unit_test(test_state_log_ring),
        cmocka_unit_test(test_state_api_arguments),
        cmocka_unit_test(test_state_range_repair),
        cmocka_unit_test(test_state_far_behind_gets_snapshot),
        cmocka_unit_test(test_state_far_behind_default_log),
        cmocka_unit_test(test_state_digest_mismatch_heals),
        cmocka_unit_test(test_state_hostile_messages),
        cmocka_unit_test(test_state_json_views),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
