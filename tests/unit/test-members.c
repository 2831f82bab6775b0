/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Membership: the formulas against tables, the wire codec (round trips and hostile bytes), and
 * the state machine in scenarios on the simulated network (cluster/sim.c) with fixed seeds, so
 * every run replays the same virtual-time history. Every loop is bounded in steps and in virtual
 * time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster/members-int.h"
#include "cluster/members.h"
#include "cluster/sim.h"
#include "cluster/transport.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "net/seal.h"

#define SEC  1000000ull
#define MAXN 16
#define NEV  6
#define LIVE (1u << EXO_MEMBER_STATE_ALIVE | 1u << EXO_MEMBER_STATE_SUSPECT)

/* ---- formulas ---- */

static void test_members_suspicion_min_table(void **state)
{
    static const struct {
        uint32_t mult;
        size_t n;
        uint32_t interval_ms;
        uint64_t want_ms;
    } rows[] = {
        {4, 0, 1000, 4000},  {4, 1, 1000, 4000},   {4, 8, 1000, 4000},     {4, 10, 1000, 4000},
        {4, 64, 1000, 7224}, {4, 100, 1000, 8000}, {4, 1000, 1000, 12000}, {4, 4096, 1000, 14448},
        {4, 8, 500, 2000},   {3, 1000, 500, 4500}, {1, 1, 200, 200},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint64_t got = exo_members_suspicion_min_ms(rows[i].mult, rows[i].n, rows[i].interval_ms);
        if (got != rows[i].want_ms)
            fail_msg("row %zu: n %zu got %llu want %llu", i, rows[i].n, (unsigned long long)got,
                     (unsigned long long)rows[i].want_ms);
    }
}

static void test_members_suspicion_timeout_table(void **state)
{
    /* max - (max - min) * log(c + 1) / log(k + 1), floored to ms, never below min. */
    static const struct {
        uint64_t min, max;
        uint32_t k, c;
        uint64_t want;
    } rows[] = {
        {4000, 24000, 2, 0, 24000}, {4000, 24000, 2, 1, 11381}, {4000, 24000, 2, 2, 4000},
        {4000, 24000, 0, 0, 4000},  {2000, 12000, 3, 1, 7000},  {2000, 12000, 3, 2, 4075},
        {2000, 12000, 3, 3, 2000},  {2000, 12000, 3, 9, 2000},  {5000, 5000, 2, 0, 5000},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint64_t got =
            exo_members_suspicion_timeout_ms(rows[i].min, rows[i].max, rows[i].k, rows[i].c);
        if (got != rows[i].want)
            fail_msg("row %zu: got %llu want %llu", i, (unsigned long long)got,
                     (unsigned long long)rows[i].want);
    }
}

static void test_members_retransmit_table(void **state)
{
    static const struct {
        uint32_t mult;
        size_t n;
        uint32_t want;
    } rows[] = {
        {4, 0, 0},    {4, 1, 4},    {4, 2, 4},     {4, 9, 4},     {4, 10, 8}, {4, 99, 8},
        {4, 100, 12}, {4, 999, 12}, {4, 1000, 16}, {4, 4096, 16}, {3, 8, 3},  {2, 64, 4},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint32_t got = exo_members_retransmit_limit(rows[i].mult, rows[i].n);
        if (got != rows[i].want)
            fail_msg("row %zu: n %zu got %u want %u", i, rows[i].n, got, rows[i].want);
    }
}

static void test_members_push_pull_table(void **state)
{
    static const struct {
        size_t n;
        uint64_t want_ms;
    } rows[] = {{1, 30000},  {32, 30000},   {33, 60000},    {64, 60000},
                {65, 90000}, {256, 120000}, {1024, 180000}, {4096, 240000}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint64_t got = exo_members_push_pull_ms(30000, rows[i].n);
        if (got != rows[i].want_ms)
            fail_msg("n %zu: got %llu want %llu", rows[i].n, (unsigned long long)got,
                     (unsigned long long)rows[i].want_ms);
    }
}

/* ---- codec ---- */

static struct exo_members_addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
    struct exo_members_addr x = {.family = EXO_MEMBERS_FAMILY_IPV4, .port = port};
    x.ip[0] = a;
    x.ip[1] = b;
    x.ip[2] = c;
    x.ip[3] = d;
    return x;
}

static void make_id(uint8_t *id, uint8_t v)
{
    for (int i = 0; i < EXO_MEMBERS_ID_BYTES; i++)
        id[i] = (uint8_t)(v * 17 + i);
}

static void sample_node(struct exo_members_node *n, const uint8_t *blob, size_t blob_len)
{
    memset(n, 0, sizeof(*n));
    n->state = EXO_MEMBER_STATE_SUSPECT;
    n->incarnation = 1234567890123ull;
    make_id(n->id, 3);
    n->addr.family = EXO_MEMBERS_FAMILY_IPV6;
    for (int i = 0; i < 16; i++)
        n->addr.ip[i] = (uint8_t)(0xfe - i);
    n->addr.port = 52416;
    strcpy(n->name, "studio-mac");
    n->meta.proto_min = 1;
    n->meta.proto_max = 3;
    n->meta.gossip_port = 52416;
    n->meta.api_port = 52415;
    n->meta.data_port = 52417;
    n->meta.roles = 0x80000005u;
    n->meta.leader_priority = -42;
    n->meta.blob = blob;
    n->meta.blob_len = blob_len;
}

static void assert_node_equal(const struct exo_members_node *a, const struct exo_members_node *b)
{
    assert_int_equal(a->state, b->state);
    assert_true(a->incarnation == b->incarnation);
    assert_memory_equal(a->id, b->id, EXO_MEMBERS_ID_BYTES);
    assert_true(exo_members_addr_equal(&a->addr, &b->addr));
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->meta.proto_min, b->meta.proto_min);
    assert_int_equal(a->meta.proto_max, b->meta.proto_max);
    assert_int_equal(a->meta.gossip_port, b->meta.gossip_port);
    assert_int_equal(a->meta.api_port, b->meta.api_port);
    assert_int_equal(a->meta.data_port, b->meta.data_port);
    assert_int_equal(a->meta.roles, b->meta.roles);
    assert_int_equal(a->meta.leader_priority, b->meta.leader_priority);
    assert_int_equal(a->meta.blob_len, b->meta.blob_len);
    if (a->meta.blob_len)
        assert_memory_equal(a->meta.blob, b->meta.blob, a->meta.blob_len);
}

/* Encode msgs into one packet, then walk and decode it back. */
static void roundtrip(const struct exo_members_msg *msgs, size_t n, struct exo_members_msg *out)
{
    struct exo_buf pkt, scratch;
    exo_buf_init(&pkt, EXO_MEMBERS_STREAM_MAX);
    exo_buf_init(&scratch, EXO_MEMBERS_STREAM_MAX);
    exo_members_wire_begin(&pkt);
    for (size_t i = 0; i < n; i++)
        exo_members_wire_put(&pkt, &scratch, &msgs[i]);
    assert_int_equal(pkt.err, 0);
    static uint8_t copy[1 << 16];
    assert_true(pkt.len <= sizeof(copy));
    memcpy(copy, pkt.data, pkt.len);
    struct exo_reader r;
    exo_reader_init(&r, copy, pkt.len);
    assert_int_equal(exo_members_wire_open(&r, NULL), 0);
    for (size_t i = 0; i < n; i++) {
        uint8_t type;
        const uint8_t *body;
        size_t len;
        assert_int_equal(exo_members_wire_next(&r, &type, &body, &len, NULL), 1);
        assert_int_equal(type, msgs[i].type);
        struct exo_diag diag = {{0}};
        int rc = exo_members_wire_decode(type, body, len, &out[i], &diag);
        if (rc != 0)
            fail_msg("message %zu: %s", i, diag.msg);
    }
    uint8_t type;
    const uint8_t *body;
    size_t len;
    assert_int_equal(exo_members_wire_next(&r, &type, &body, &len, NULL), 0);
    exo_buf_free(&pkt);
    exo_buf_free(&scratch);
}

static void test_members_codec_roundtrip(void **state)
{
    uint8_t blob[EXO_MEMBERS_BLOB_MAX];
    for (size_t i = 0; i < sizeof(blob); i++)
        blob[i] = (uint8_t)(i * 7);
    struct exo_members_msg in[9], out[9];
    memset(in, 0, sizeof(in));
    in[0].type = EXO_MEMBERS_MSG_PING;
    in[0].ping.seq = 0xfffffffeu;
    make_id(in[0].ping.target, 1);
    make_id(in[0].ping.source, 2);
    in[0].ping.source_addr = v4(10, 0, 0, 2, 52416);
    in[1].type = EXO_MEMBERS_MSG_INDIRECT_PING;
    in[1].indirect.seq = 77;
    make_id(in[1].indirect.target, 4);
    in[1].indirect.target_addr = v4(10, 0, 0, 4, 1);
    in[1].indirect.want_nack = true;
    make_id(in[1].indirect.source, 5);
    in[1].indirect.source_addr = v4(10, 0, 0, 5, 65535);
    in[2].type = EXO_MEMBERS_MSG_ACK;
    in[2].ack.seq = 5;
    in[2].ack.relayed = true;
    in[3].type = EXO_MEMBERS_MSG_NACK;
    in[3].ack.seq = 6;
    in[4].type = EXO_MEMBERS_MSG_ALIVE;
    sample_node(&in[4].alive, blob, sizeof(blob));
    in[4].alive.state = EXO_MEMBER_STATE_ALIVE;
    in[5].type = EXO_MEMBERS_MSG_SUSPECT;
    in[5].suspect.incarnation = 9;
    make_id(in[5].suspect.id, 6);
    make_id(in[5].suspect.from, 7);
    in[6].type = EXO_MEMBERS_MSG_DEAD;
    in[6].suspect.incarnation = UINT64_MAX;
    make_id(in[6].suspect.id, 8);
    make_id(in[6].suspect.from, 8);
    in[7].type = EXO_MEMBERS_MSG_USER;
    make_id(in[7].user.origin, 9);
    in[7].user.msg_id = 0x0102030405060708ull;
    in[7].user.data = (const uint8_t *)"hello";
    in[7].user.len = 5;
    in[8].type = EXO_MEMBERS_MSG_APP;
    make_id(in[8].app.from, 10);
    in[8].app.data = blob;
    in[8].app.len = 100;
    roundtrip(in, 9, out);

    assert_int_equal(out[0].ping.seq, 0xfffffffeu);
    assert_memory_equal(out[0].ping.target, in[0].ping.target, EXO_MEMBERS_ID_BYTES);
    assert_memory_equal(out[0].ping.source, in[0].ping.source, EXO_MEMBERS_ID_BYTES);
    assert_true(exo_members_addr_equal(&out[0].ping.source_addr, &in[0].ping.source_addr));
    assert_int_equal(out[1].indirect.seq, 77);
    assert_true(out[1].indirect.want_nack);
    assert_true(exo_members_addr_equal(&out[1].indirect.target_addr, &in[1].indirect.target_addr));
    assert_true(exo_members_addr_equal(&out[1].indirect.source_addr, &in[1].indirect.source_addr));
    assert_int_equal(out[2].ack.seq, 5);
    assert_true(out[2].ack.relayed);
    assert_int_equal(out[3].ack.seq, 6);
    assert_node_equal(&out[4].alive, &in[4].alive);
    assert_true(out[5].suspect.incarnation == 9);
    assert_memory_equal(out[5].suspect.from, in[5].suspect.from, EXO_MEMBERS_ID_BYTES);
    assert_true(out[6].suspect.incarnation == UINT64_MAX);
    assert_true(out[7].user.msg_id == in[7].user.msg_id);
    assert_int_equal(out[7].user.len, 5);
    assert_memory_equal(out[7].user.data, "hello", 5);
    assert_int_equal(out[8].app.len, 100);
    assert_memory_equal(out[8].app.data, blob, 100);
}

static void test_members_codec_push_pull(void **state)
{
    struct exo_buf nodes;
    exo_buf_init(&nodes, 0);
    struct exo_members_node n[3];
    const uint8_t blob[] = {1, 2, 3};
    for (int i = 0; i < 3; i++) {
        sample_node(&n[i], i == 1 ? blob : NULL, i == 1 ? sizeof(blob) : 0);
        n[i].state = (uint8_t)i;
        make_id(n[i].id, (uint8_t)(20 + i));
        exo_members_wire_put_node(&nodes, &n[i]);
    }
    struct exo_members_msg in = {.type = EXO_MEMBERS_MSG_PUSH_PULL}, out;
    in.push_pull.join = true;
    make_id(in.push_pull.sender, 1);
    in.push_pull.sender_addr = v4(192, 168, 1, 1, 52416);
    in.push_pull.count = 3;
    in.push_pull.nodes = nodes.data;
    in.push_pull.nodes_len = nodes.len;
    in.push_pull.app_state = (const uint8_t *)"app";
    in.push_pull.app_state_len = 3;
    roundtrip(&in, 1, &out);
    assert_true(out.push_pull.join);
    assert_false(out.push_pull.reply);
    assert_int_equal(out.push_pull.count, 3);
    assert_int_equal(out.push_pull.app_state_len, 3);
    struct exo_reader r;
    exo_reader_init(&r, out.push_pull.nodes, out.push_pull.nodes_len);
    for (int i = 0; i < 3; i++) {
        struct exo_members_node got;
        assert_int_equal(exo_members_wire_get_node(&r, &got, NULL), 0);
        assert_node_equal(&got, &n[i]);
    }
    /* A count larger than the records present is refused before anything is merged. */
    struct exo_buf pkt, scratch;
    exo_buf_init(&pkt, 0);
    exo_buf_init(&scratch, 0);
    in.push_pull.count = 4;
    exo_members_wire_put(&pkt, &scratch, &in);
    struct exo_reader pr;
    exo_reader_init(&pr, pkt.data, pkt.len);
    uint8_t type;
    const uint8_t *body;
    size_t len;
    assert_int_equal(exo_members_wire_next(&pr, &type, &body, &len, NULL), 1);
    struct exo_diag diag;
    assert_true(exo_members_wire_decode(type, body, len, &out, &diag) < 0);
    /* A count that could not fit in the bytes is refused without walking them. */
    exo_buf_reset(&pkt);
    in.push_pull.count = 1000000;
    exo_members_wire_put(&pkt, &scratch, &in);
    exo_reader_init(&pr, pkt.data, pkt.len);
    assert_int_equal(exo_members_wire_next(&pr, &type, &body, &len, NULL), 1);
    assert_int_equal(exo_members_wire_decode(type, body, len, &out, &diag), EXO_EFORMAT);
    assert_non_null(strstr(diag.msg, "member records"));
    exo_buf_free(&pkt);
    exo_buf_free(&scratch);
    exo_buf_free(&nodes);
}

/* Decode body as type; expect failure (never a crash or an out-of-bounds read). */
static int decode_bytes(uint8_t type, const uint8_t *body, size_t len)
{
    uint8_t *copy = exo_malloc(len ? len : 1);
    memcpy(copy, body, len);
    struct exo_members_msg msg;
    struct exo_diag diag;
    int rc = exo_members_wire_decode(type, copy, len, &msg, &diag);
    exo_free(copy);
    return rc;
}

static void test_members_codec_hostile(void **state)
{
    /* Every truncation of every valid body fails cleanly. */
    struct exo_members_node node;
    const uint8_t blob[40] = {0};
    sample_node(&node, blob, sizeof(blob));
    node.state = EXO_MEMBER_STATE_ALIVE;
    node.incarnation = 5; /* one varint byte, so the offsets below are fixed */
    struct exo_members_msg alive = {.type = EXO_MEMBERS_MSG_ALIVE};
    alive.alive = node;
    struct exo_buf body;
    exo_buf_init(&body, 0);
    struct exo_buf scratch;
    exo_buf_init(&scratch, 0);
    exo_members_wire_put(&body, &scratch, &alive);
    struct exo_reader r;
    exo_reader_init(&r, body.data, body.len);
    uint8_t type;
    const uint8_t *b;
    size_t blen;
    assert_int_equal(exo_members_wire_next(&r, &type, &b, &blen, NULL), 1);
    assert_int_equal(decode_bytes(EXO_MEMBERS_MSG_ALIVE, b, blen), 0);
    for (size_t cut = 0; cut < blen; cut++)
        assert_true(decode_bytes(EXO_MEMBERS_MSG_ALIVE, b, cut) < 0);

    uint8_t bad[256];
    /* Address family 5. */
    memcpy(bad, b, blen);
    size_t fam_off = 1 + 1 + 16; /* state, incarnation, id */
    assert_int_equal(bad[fam_off], EXO_MEMBERS_FAMILY_IPV6);
    bad[fam_off] = 5;
    assert_int_equal(decode_bytes(EXO_MEMBERS_MSG_ALIVE, bad, blen), EXO_EFORMAT);
    /* Port 0. */
    memcpy(bad, b, blen);
    bad[fam_off + 17] = 0;
    bad[fam_off + 18] = 0;
    assert_int_equal(decode_bytes(EXO_MEMBERS_MSG_ALIVE, bad, blen), EXO_EFORMAT);
    /* A control byte in the name. */
    memcpy(bad, b, blen);
    bad[fam_off + 20] = '\n';
    assert_int_equal(decode_bytes(EXO_MEMBERS_MSG_ALIVE, bad, blen), EXO_EFORMAT);
    /* State out of range. */
    memcpy(bad, b, blen);
    bad[0] = 9;
    assert_int_equal(decode_bytes(EXO_MEMBERS_MSG_ALIVE, bad, blen), EXO_EFORMAT);
    /* An ALIVE message that says "dead". */
    memcpy(bad, b, blen);
    bad[0] = EXO_MEMBER_STATE_DEAD;
    assert_int_equal(decode_bytes(EXO_MEMBERS_MSG_ALIVE, bad, blen), EXO_EFORMAT);
    exo_buf_free(&body);

    /* Inverted protocol range; a blob over the cap; an overlong varint; a huge sequence. */
    node.meta.proto_min = 5;
    node.meta.proto_max = 2;
    exo_buf_init(&body, 0);
    exo_members_wire_put_node(&body, &node);
    exo_reader_init(&r, body.data, body.len);
    struct exo_members_node got;
    assert_int_equal(exo_members_wire_get_node(&r, &got, NULL), EXO_EFORMAT);
    exo_buf_free(&body);
    uint8_t big_blob[EXO_MEMBERS_BLOB_MAX + 1] = {0};
    sample_node(&node, big_blob, sizeof(big_blob));
    exo_buf_init(&body, 0);
    exo_members_wire_put_node(&body, &node);
    exo_reader_init(&r, body.data, body.len);
    assert_int_equal(exo_members_wire_get_node(&r, &got, NULL), EXO_ETOOBIG);
    exo_buf_free(&body);
    const uint8_t overlong[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(decode_bytes(EXO_MEMBERS_MSG_NACK, overlong, sizeof(overlong)), EXO_EFORMAT);
    const uint8_t seq33[] = {0x80, 0x80, 0x80, 0x80, 0x10};
    assert_int_equal(decode_bytes(EXO_MEMBERS_MSG_NACK, seq33, sizeof(seq33)), EXO_ERANGE);
    assert_int_equal(decode_bytes(200, seq33, sizeof(seq33)), EXO_ENOENT);
    exo_buf_free(&scratch);

    /* Framing: a length running past the end; a wrong version. */
    const uint8_t past_end[] = {EXO_MEMBERS_PROTO, 0, EXO_MEMBERS_MSG_NACK, 50, 1};
    exo_reader_init(&r, past_end, sizeof(past_end));
    assert_int_equal(exo_members_wire_open(&r, NULL), 0);
    const uint8_t *bp;
    size_t len;
    assert_true(exo_members_wire_next(&r, &type, &bp, &len, NULL) < 0);
    const uint8_t v9[] = {9, 0};
    exo_reader_init(&r, v9, sizeof(v9));
    assert_int_equal(exo_members_wire_open(&r, NULL), EXO_EUNSUPPORTED);
}

/* ---- the state machine on its own ---- */

struct capture {
    size_t packets, streams;
    uint8_t last[EXO_MEMBERS_STREAM_MAX > 65536 ? 65536 : EXO_MEMBERS_STREAM_MAX];
    size_t last_len;
};

static void cap_packet(void *ctx, const struct exo_members_addr *to, const uint8_t *d, size_t n)
{
    struct capture *c = ctx;
    c->packets++;
    if (n <= sizeof(c->last)) {
        memcpy(c->last, d, n);
        c->last_len = n;
    }
}

static void cap_stream(void *ctx, const struct exo_members_addr *to, const uint8_t *d, size_t n)
{
    struct capture *c = ctx;
    c->streams++;
}

static struct exo_members *lone(struct capture *cap, struct exo_members_config *cfg)
{
    exo_members_config_init(cfg);
    make_id(cfg->id, 1);
    strcpy(cfg->name, "lone");
    cfg->addr = v4(127, 0, 0, 1, 52416);
    struct exo_members_io io = {
        .ctx = cap, .send_packet_cb = cap_packet, .send_stream_cb = cap_stream};
    struct exo_members *m = NULL;
    assert_int_equal(exo_members_create(cfg, &io, NULL, 0, &m), 0);
    return m;
}

static void test_members_config_invalid(void **state)
{
    struct capture cap = {0};
    struct exo_members_io io = {
        .ctx = &cap, .send_packet_cb = cap_packet, .send_stream_cb = cap_stream};
    struct exo_members_config cfg;
    struct exo_members *m = NULL;
    exo_members_config_init(&cfg);
    make_id(cfg.id, 1);
    assert_int_equal(exo_members_create(&cfg, &io, NULL, 0, &m), EXO_EINVAL); /* no address */
    cfg.addr = v4(127, 0, 0, 1, 52416);
    cfg.probe_timeout_ms = cfg.probe_interval_ms + 1;
    assert_int_equal(exo_members_create(&cfg, &io, NULL, 0, &m), EXO_EINVAL);
    exo_members_config_init(&cfg);
    cfg.addr = v4(127, 0, 0, 1, 52416);
    cfg.meta.blob_len = EXO_MEMBERS_BLOB_MAX + 1;
    assert_int_equal(exo_members_create(&cfg, &io, NULL, 0, &m), EXO_EINVAL);
    exo_members_config_init(&cfg);
    cfg.addr = v4(127, 0, 0, 1, 52416);
    memset(cfg.name, 'x', sizeof(cfg.name)); /* not terminated */
    assert_int_equal(exo_members_create(&cfg, &io, NULL, 0, &m), EXO_EINVAL);
    exo_members_config_init(&cfg);
    cfg.addr = v4(127, 0, 0, 1, 52416);
    io.send_stream_cb = NULL;
    assert_int_equal(exo_members_create(&cfg, &io, NULL, 0, &m), EXO_EINVAL);
    assert_null(m);
    exo_members_free(NULL);
}

static void test_members_create_nomem(void **state)
{
    struct capture cap = {0};
    struct exo_members_io io = {
        .ctx = &cap, .send_packet_cb = cap_packet, .send_stream_cb = cap_stream};
    struct exo_members_config cfg;
    exo_members_config_init(&cfg);
    cfg.addr = v4(127, 0, 0, 1, 52416);
    const uint8_t blob[8] = {1};
    cfg.meta.blob = blob;
    cfg.meta.blob_len = sizeof(blob);
    for (long n = 0; n < 20; n++) {
        struct exo_members *m = NULL;
        exo_alloc_fail_after(n);
        int rc = exo_members_create(&cfg, &io, NULL, 0, &m);
        exo_alloc_fail_after(-1);
        if (rc == 0) {
            exo_members_free(m);
            return;
        }
        assert_int_equal(rc, EXO_ENOMEM);
        assert_null(m);
    }
    fail_msg("create never succeeded");
}

static void test_members_receive_hostile(void **state)
{
    struct capture cap = {0};
    struct exo_members_config cfg;
    struct exo_members *m = lone(&cap, &cfg);
    struct exo_members_addr from = v4(127, 0, 0, 2, 52416);
    struct exo_members_stats st;

    assert_true(exo_members_receive(m, &from, (const uint8_t *)"", 0, false, 1) < 0);
    const uint8_t wrong_version[] = {7, 0, 3, 1, 0};
    assert_int_equal(exo_members_receive(m, &from, wrong_version, 5, false, 1), EXO_EUNSUPPORTED);
    const uint8_t past_end[] = {EXO_MEMBERS_PROTO, 0, EXO_MEMBERS_MSG_ACK, 9, 0};
    assert_true(exo_members_receive(m, &from, past_end, 5, false, 1) < 0);
    /* An unknown type is skipped and the rest of the packet still counts. */
    const uint8_t unknown[] = {EXO_MEMBERS_PROTO, 0, 99, 2, 0xaa, 0xbb, EXO_MEMBERS_MSG_NACK, 1, 5};
    assert_int_equal(exo_members_receive(m, &from, unknown, sizeof(unknown), false, 1), 0);
    /* Too many messages in one datagram. */
    uint8_t many[2 + 3 * (EXO_MEMBERS_MAX_MSGS + 1)];
    many[0] = EXO_MEMBERS_PROTO;
    many[1] = 0;
    for (size_t i = 0; i <= EXO_MEMBERS_MAX_MSGS; i++) {
        many[2 + 3 * i] = EXO_MEMBERS_MSG_NACK;
        many[3 + 3 * i] = 1;
        many[4 + 3 * i] = 1;
    }
    cfg.max_packet = sizeof(many);
    assert_true(exo_members_receive(m, &from, many, sizeof(many), true, 1) < 0);
    /* Over the datagram size. */
    static uint8_t huge[EXO_MEMBERS_PACKET_MAX + 1];
    huge[0] = EXO_MEMBERS_PROTO;
    assert_int_equal(exo_members_receive(m, &from, huge, sizeof(huge), false, 1), EXO_ETOOBIG);
    /* A ping for another node id is not answered. */
    struct exo_members_msg ping = {.type = EXO_MEMBERS_MSG_PING};
    make_id(ping.ping.target, 99);
    make_id(ping.ping.source, 2);
    ping.ping.source_addr = from;
    struct exo_buf pkt, scratch;
    exo_buf_init(&pkt, 0);
    exo_buf_init(&scratch, 0);
    exo_members_wire_begin(&pkt);
    exo_members_wire_put(&pkt, &scratch, &ping);
    size_t before = cap.packets;
    assert_int_equal(exo_members_receive(m, &from, pkt.data, pkt.len, false, 1), 0);
    assert_int_equal(cap.packets, before);
    /* And one for us is, with an ack carrying the same sequence number. */
    make_id(ping.ping.target, 1);
    ping.ping.seq = 4242;
    exo_buf_reset(&pkt);
    exo_members_wire_begin(&pkt);
    exo_members_wire_put(&pkt, &scratch, &ping);
    assert_int_equal(exo_members_receive(m, &from, pkt.data, pkt.len, false, 1), 0);
    assert_int_equal(cap.packets, before + 1);
    struct exo_reader r;
    exo_reader_init(&r, cap.last, cap.last_len);
    assert_int_equal(exo_members_wire_open(&r, NULL), 0);
    uint8_t type;
    const uint8_t *body;
    size_t len;
    assert_int_equal(exo_members_wire_next(&r, &type, &body, &len, NULL), 1);
    struct exo_members_msg ack;
    assert_int_equal(exo_members_wire_decode(type, body, len, &ack, NULL), 0);
    assert_int_equal(ack.type, EXO_MEMBERS_MSG_ACK);
    assert_int_equal(ack.ack.seq, 4242);

    exo_members_get_stats(m, &st);
    assert_int_equal(st.dropped[EXO_MEMBERS_DROP_VERSION], 1);
    assert_true(st.dropped[EXO_MEMBERS_DROP_MALFORMED] >= 3);
    assert_int_equal(st.dropped[EXO_MEMBERS_DROP_UNKNOWN_TYPE], 1);
    assert_int_equal(st.dropped[EXO_MEMBERS_DROP_TOO_BIG], 1);
    assert_int_equal(st.dropped[EXO_MEMBERS_DROP_MISDIRECTED], 1);
    assert_string_equal(exo_members_drop_name(EXO_MEMBERS_DROP_MISDIRECTED), "misdirected");
    /* Nothing about the node itself changed. */
    assert_int_equal(exo_members_count(m, LIVE), 1);
    exo_buf_free(&pkt);
    exo_buf_free(&scratch);
    exo_members_free(m);
}

/* Feed the lone machine one packet holding msg. */
static void feed(struct exo_members *m, const struct exo_members_addr *from,
                 const struct exo_members_msg *msg)
{
    struct exo_buf pkt, scratch;
    exo_buf_init(&pkt, 0);
    exo_buf_init(&scratch, 0);
    exo_members_wire_begin(&pkt);
    exo_members_wire_put(&pkt, &scratch, msg);
    assert_int_equal(exo_members_receive(m, from, pkt.data, pkt.len, false, 1), 0);
    exo_buf_free(&pkt);
    exo_buf_free(&scratch);
}

static void test_members_ping_from_dead_is_told(void **state)
{
    /* A member we hold as dead pings us (it restarted and the news of it missed us): the ack
     * carries our DEAD statement, which it answers with its newer ALIVE. */
    struct capture cap = {0};
    struct exo_members_config cfg;
    struct exo_members *m = lone(&cap, &cfg);
    struct exo_members_addr from = v4(127, 0, 0, 2, 52416);
    struct exo_members_msg alive = {.type = EXO_MEMBERS_MSG_ALIVE};
    sample_node(&alive.alive, NULL, 0);
    alive.alive.state = EXO_MEMBER_STATE_ALIVE;
    alive.alive.meta.proto_min = alive.alive.meta.proto_max = EXO_MEMBERS_PROTO;
    feed(m, &from, &alive);
    struct exo_members_msg dead = {.type = EXO_MEMBERS_MSG_DEAD};
    dead.suspect.incarnation = alive.alive.incarnation;
    memcpy(dead.suspect.id, alive.alive.id, EXO_MEMBERS_ID_BYTES);
    make_id(dead.suspect.from, 1);
    feed(m, &from, &dead);
    assert_int_equal(exo_members_count(m, 1u << EXO_MEMBER_STATE_DEAD), 1);
    struct exo_members_msg ping = {.type = EXO_MEMBERS_MSG_PING};
    make_id(ping.ping.target, 1);
    memcpy(ping.ping.source, alive.alive.id, EXO_MEMBERS_ID_BYTES);
    ping.ping.source_addr = from;
    feed(m, &from, &ping);
    struct exo_reader r;
    exo_reader_init(&r, cap.last, cap.last_len);
    assert_int_equal(exo_members_wire_open(&r, NULL), 0);
    bool acked = false, told = false;
    uint8_t type;
    const uint8_t *body;
    size_t len;
    while (exo_members_wire_next(&r, &type, &body, &len, NULL) == 1) {
        struct exo_members_msg msg;
        assert_int_equal(exo_members_wire_decode(type, body, len, &msg, NULL), 0);
        acked |= type == EXO_MEMBERS_MSG_ACK;
        told |= type == EXO_MEMBERS_MSG_DEAD &&
                memcmp(msg.suspect.id, alive.alive.id, EXO_MEMBERS_ID_BYTES) == 0 &&
                msg.suspect.incarnation == alive.alive.incarnation;
    }
    assert_true(acked && told);
    /* Its answer, the newer ALIVE, brings it back. */
    alive.alive.incarnation++;
    feed(m, &from, &alive);
    assert_int_equal(exo_members_count(m, LIVE), 2);
    exo_members_free(m);
}

/* The id of the first broadcast a machine with this seed and incarnation gossips. */
static uint64_t first_broadcast_id(uint64_t seed, uint64_t incarnation)
{
    struct capture cap = {0};
    struct exo_members_config cfg;
    exo_members_config_init(&cfg);
    make_id(cfg.id, 1);
    cfg.addr = v4(127, 0, 0, 1, 52416);
    cfg.seed = seed;
    cfg.incarnation = incarnation;
    struct exo_members_io io = {
        .ctx = &cap, .send_packet_cb = cap_packet, .send_stream_cb = cap_stream};
    struct exo_members *m = NULL;
    assert_int_equal(exo_members_create(&cfg, &io, NULL, 0, &m), 0);
    struct exo_members_addr from = v4(127, 0, 0, 2, 52416);
    struct exo_members_msg alive = {.type = EXO_MEMBERS_MSG_ALIVE};
    sample_node(&alive.alive, NULL, 0);
    alive.alive.state = EXO_MEMBER_STATE_ALIVE;
    alive.alive.meta.proto_min = alive.alive.meta.proto_max = EXO_MEMBERS_PROTO;
    feed(m, &from, &alive);
    assert_int_equal(exo_members_broadcast(m, "x", 1), 0);
    uint64_t id = 0;
    for (uint64_t now = 1; now < 10 * SEC && !id; now = exo_members_tick(m, now)) {
        struct exo_reader r;
        exo_reader_init(&r, cap.last, cap.last_len);
        uint8_t type;
        const uint8_t *body;
        size_t len;
        if (cap.last_len == 0 || exo_members_wire_open(&r, NULL) < 0)
            continue;
        while (exo_members_wire_next(&r, &type, &body, &len, NULL) == 1) {
            struct exo_members_msg msg;
            if (type == EXO_MEMBERS_MSG_USER &&
                exo_members_wire_decode(type, body, len, &msg, NULL) == 0)
                id = msg.user.msg_id;
        }
    }
    exo_members_free(m);
    assert_true(id != 0);
    return id;
}

static void test_members_broadcast_ids_new_after_restart(void **state)
{
    /* A restarted daemon may pass the same seed; the others still remember its last broadcast
     * ids as seen and would drop repeats as duplicates. The incarnation, higher after a restart,
     * keeps them apart. */
    assert_true(first_broadcast_id(7, 1000) == first_broadcast_id(7, 1000));
    assert_true(first_broadcast_id(7, 1000) != first_broadcast_id(7, 1001));
}

static void test_members_single_node(void **state)
{
    /* A node alone: no probes, and while a seed exists it keeps asking it to join, bounded. */
    struct capture cap = {0};
    struct exo_members_config cfg;
    struct exo_members *m = lone(&cap, &cfg);
    uint64_t now = 0;
    for (int i = 0; i < 1000 && now < 30 * SEC; i++)
        now = exo_members_tick(m, now);
    assert_int_equal(cap.packets, 0);
    assert_int_equal(cap.streams, 0);
    struct exo_members_addr seeds[2] = {v4(127, 0, 0, 1, 52416), v4(10, 9, 9, 9, 52416)};
    assert_int_equal(exo_members_join(m, seeds, 2, now), 0); /* ourselves is skipped */
    assert_int_equal(cap.streams, 1);
    uint64_t end = now + 30 * SEC;
    for (int i = 0; i < 10000 && now < end; i++)
        now = exo_members_tick(m, now);
    /* Retried after 0.25, 0.75, 1.75, 3.75 and 7.75 s, then every rejoin interval (5 s). */
    assert_true(cap.streams >= 9 && cap.streams <= 11);
    assert_int_equal(cap.packets, 0);
    exo_members_free(m);
}

/* ---- scenarios on the simulated network ---- */

struct rec {
    struct exo_sim *sim;
    unsigned seen[MAXN][NEV];  /* events observed by each node */
    unsigned about[MAXN][NEV]; /* events about each node */
    unsigned dead_while_running;
    unsigned broadcasts[MAXN], directs[MAXN];
    uint8_t last_data[MAXN][64];
    size_t last_len[MAXN];
    long last_from[MAXN];
    size_t merged[MAXN];
    bool merged_join[MAXN];
    uint8_t last_blob[MAXN][16];
};

static void rec_event(void *ctx, size_t node, enum exo_members_event ev,
                      const struct exo_member_info *info, uint64_t now_us)
{
    struct rec *r = ctx;
    long about = exo_sim_node_of(r->sim, info->id);
    assert_true(about >= 0 && about < MAXN && node < MAXN);
    r->seen[node][ev]++;
    r->about[about][ev]++;
    if (ev == EXO_MEMBERS_EVENT_DEAD && exo_sim_running(r->sim, (size_t)about))
        r->dead_while_running++;
    if (ev == EXO_MEMBERS_EVENT_UPDATE && info->meta.blob_len <= sizeof(r->last_blob[0]))
        memcpy(r->last_blob[node], info->meta.blob, info->meta.blob_len);
}

static void rec_message(void *ctx, size_t node, const uint8_t *from, const uint8_t *data,
                        size_t len, bool broadcast)
{
    struct rec *r = ctx;
    if (broadcast)
        r->broadcasts[node]++;
    else
        r->directs[node]++;
    r->last_len[node] = len;
    memcpy(r->last_data[node], data, len < 64 ? len : 64);
    r->last_from[node] = exo_sim_node_of(r->sim, from);
}

static void base_config(struct exo_sim_config *cfg, size_t n, uint64_t seed, struct rec *r)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->nodes = n;
    cfg->seed = seed;
    cfg->latency_us = 200;
    cfg->jitter_us = 100;
    cfg->event_cb = rec_event;
    cfg->message_cb = rec_message;
    cfg->ctx = r;
    exo_members_config_init(&cfg->members);
}

static struct exo_sim *make_sim(struct exo_sim_config *cfg, struct rec *r)
{
    memset(r, 0, sizeof(*r));
    struct exo_sim *sim = NULL;
    assert_int_equal(exo_sim_create(cfg, &sim), 0);
    r->sim = sim;
    return sim;
}

/* Run in 10 ms steps until pred holds or `limit` of virtual time passes; true if it held. */
static bool run_until(struct exo_sim *sim, bool (*pred)(struct exo_sim *, void *), void *arg,
                      uint64_t limit)
{
    uint64_t end = exo_sim_now(sim) + limit;
    for (int steps = 0; steps < 1000000 && exo_sim_now(sim) < end; steps++) {
        if (pred(sim, arg))
            return true;
        exo_sim_run_until(sim, exo_sim_now(sim) + 10000);
    }
    return pred(sim, arg);
}

static bool converged(struct exo_sim *sim, void *arg)
{
    return exo_sim_converged(sim);
}

static void start_all(struct exo_sim *sim, size_t n)
{
    size_t seed = 0;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(exo_sim_start(sim, i), 0);
    for (size_t i = 1; i < n; i++)
        assert_int_equal(exo_sim_join(sim, i, &seed, 1), 0);
}

static struct exo_sim *formed(size_t n, uint64_t seed, struct rec *r)
{
    struct exo_sim_config cfg;
    base_config(&cfg, n, seed, r);
    struct exo_sim *sim = make_sim(&cfg, r);
    start_all(sim, n);
    assert_true(run_until(sim, converged, NULL, 10 * SEC));
    return sim;
}

static enum exo_member_state state_at(struct exo_sim *sim, size_t observer, size_t subject)
{
    uint8_t id[EXO_MEMBERS_ID_BYTES];
    exo_sim_id(sim, subject, id);
    struct exo_member_info info;
    if (exo_members_get(exo_sim_members(sim, observer), id, &info) < 0)
        return (enum exo_member_state) - 1;
    return info.state;
}

static void test_members_two_and_three_form(void **state)
{
    for (size_t n = 2; n <= 3; n++) {
        struct rec r;
        struct exo_sim_config cfg;
        base_config(&cfg, n, 11 + n, &r);
        struct exo_sim *sim = make_sim(&cfg, &r);
        start_all(sim, n);
        assert_true(run_until(sim, converged, NULL, 2 * SEC));
        /* Formed in a few round trips: well under a second of virtual time. */
        assert_true(exo_sim_now(sim) < SEC);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(exo_members_count(exo_sim_members(sim, i), LIVE), n);
            assert_int_equal(r.seen[i][EXO_MEMBERS_EVENT_JOIN], n - 1);
        }
        /* And it stays formed, with probes answered. */
        exo_sim_run_until(sim, exo_sim_now(sim) + 20 * SEC);
        assert_true(exo_sim_converged(sim));
        assert_int_equal(r.dead_while_running, 0);
        struct exo_members_stats st;
        exo_members_get_stats(exo_sim_members(sim, 0), &st);
        assert_true(st.probes >= 30 && st.probe_acks >= st.probes - 1);
        assert_int_equal(st.suspicions, 0);
        exo_sim_free(sim);
    }
}

struct dead_check {
    size_t victim, n;
};

static bool all_see_dead(struct exo_sim *sim, void *arg)
{
    const struct dead_check *d = arg;
    for (size_t i = 0; i < d->n; i++)
        if (i != d->victim && exo_sim_running(sim, i) &&
            state_at(sim, i, d->victim) != EXO_MEMBER_STATE_DEAD)
            return false;
    return true;
}

static void test_members_kill_detected(void **state)
{
    static const size_t sizes[] = {2, 3, 8};
    for (size_t s = 0; s < 3; s++) {
        size_t n = sizes[s];
        struct rec r;
        struct exo_sim *sim = formed(n, 100 + n, &r);
        exo_sim_run_until(sim, exo_sim_now(sim) + 3 * SEC);
        struct dead_check d = {.victim = n - 1, .n = n};
        exo_sim_kill(sim, d.victim);
        uint64_t t0 = exo_sim_now(sim);
        /* Bound: first probe within a round, the suspicion at most max = 6 * min (12 s at these
         * sizes) with the last-chance probe inside it; 15 s covers the worst case. */
        assert_true(run_until(sim, all_see_dead, &d, 15 * SEC));
        uint64_t took = exo_sim_now(sim) - t0;
        if (n == 8)
            assert_true(took < 6 * SEC); /* with confirmations, close to the 2 s minimum */
        assert_int_equal(r.about[d.victim][EXO_MEMBERS_EVENT_DEAD], n - 1);
        assert_int_equal(r.dead_while_running, 0);
        /* The rest stay a cluster. */
        for (size_t i = 0; i + 1 < n; i++)
            assert_int_equal(exo_members_count(exo_sim_members(sim, i), LIVE), n - 1);
        exo_sim_free(sim);
    }
}

static void test_members_refutes_false_suspicion(void **state)
{
    struct rec r;
    struct exo_sim *sim = formed(5, 21, &r);
    struct exo_member_info before;
    uint8_t id1[EXO_MEMBERS_ID_BYTES], id2[EXO_MEMBERS_ID_BYTES];
    exo_sim_id(sim, 1, id1);
    exo_sim_id(sim, 2, id2);
    assert_int_equal(exo_members_get(exo_sim_members(sim, 0), id1, &before), 0);

    /* Node 2 "tells" node 0 that node 1 is suspect, though node 1 is fine. */
    struct exo_members_msg msg = {.type = EXO_MEMBERS_MSG_SUSPECT};
    msg.suspect.incarnation = before.incarnation;
    memcpy(msg.suspect.id, id1, EXO_MEMBERS_ID_BYTES);
    memcpy(msg.suspect.from, id2, EXO_MEMBERS_ID_BYTES);
    struct exo_buf pkt, scratch;
    exo_buf_init(&pkt, 0);
    exo_buf_init(&scratch, 0);
    exo_members_wire_begin(&pkt);
    exo_members_wire_put(&pkt, &scratch, &msg);
    assert_int_equal(exo_sim_inject(sim, 0, 2, pkt.data, pkt.len, false), 0);
    exo_buf_free(&pkt);
    exo_buf_free(&scratch);
    exo_sim_run_until(sim, exo_sim_now(sim) + 30 * SEC);

    assert_true(r.about[1][EXO_MEMBERS_EVENT_SUSPECT] >= 1);
    assert_true(r.about[1][EXO_MEMBERS_EVENT_ALIVE] >= 1);
    assert_int_equal(r.about[1][EXO_MEMBERS_EVENT_DEAD], 0);
    assert_int_equal(r.dead_while_running, 0);
    struct exo_members_stats st;
    exo_members_get_stats(exo_sim_members(sim, 1), &st);
    assert_true(st.refutations >= 1);
    for (size_t i = 0; i < 5; i++) {
        struct exo_member_info now;
        assert_int_equal(exo_members_get(exo_sim_members(sim, i), id1, &now), 0);
        assert_int_equal(now.state, EXO_MEMBER_STATE_ALIVE);
        assert_true(now.incarnation > before.incarnation);
    }
    assert_true(exo_sim_converged(sim));
    exo_sim_free(sim);
}

struct left_check {
    size_t who, n;
};

static bool all_see_left(struct exo_sim *sim, void *arg)
{
    const struct left_check *l = arg;
    for (size_t i = 0; i < l->n; i++)
        if (i != l->who && state_at(sim, i, l->who) != EXO_MEMBER_STATE_LEFT)
            return false;
    return true;
}

static void test_members_graceful_leave(void **state)
{
    struct rec r;
    struct exo_sim *sim = formed(6, 31, &r);
    struct left_check l = {.who = 4, .n = 6};
    assert_int_equal(exo_sim_leave(sim, l.who), 0);
    assert_int_equal(exo_sim_leave(sim, l.who), 0); /* twice is harmless */
    /* The leaver keeps running for a second, as the daemon does, then stops. */
    exo_sim_run_until(sim, exo_sim_now(sim) + SEC);
    exo_sim_kill(sim, l.who);
    assert_true(run_until(sim, all_see_left, &l, 2 * SEC));
    assert_int_equal(r.about[l.who][EXO_MEMBERS_EVENT_LEFT], 5);
    assert_int_equal(r.about[l.who][EXO_MEMBERS_EVENT_DEAD], 0);
    assert_int_equal(r.about[l.who][EXO_MEMBERS_EVENT_SUSPECT], 0);
    /* After the dead-gossip window the departed member is forgotten. */
    exo_sim_run_until(sim, exo_sim_now(sim) + 40 * SEC);
    assert_int_equal(exo_members_count(exo_sim_members(sim, 0), ~0u), 5);
    assert_true(exo_sim_converged(sim));
    exo_sim_free(sim);
}

static bool sides_split(struct exo_sim *sim, void *arg)
{
    /* {0,1} and {2,3,4} each see only themselves alive. */
    for (size_t i = 0; i < 5; i++)
        if (exo_members_count(exo_sim_members(sim, i), LIVE) != (i < 2 ? 2u : 3u))
            return false;
    return true;
}

static void test_members_partition_heals(void **state)
{
    /* Heal once inside the dead-gossip window and once long after the dead were reaped. The
     * two-node side needs longest: one confirmation at most, so about 6 s of suspicion after
     * a probe round, for each of the three it loses. */
    static const uint64_t apart[] = {25 * SEC, 90 * SEC};
    for (size_t k = 0; k < 2; k++) {
        struct rec r;
        struct exo_sim *sim = formed(5, 41 + k, &r);
        for (size_t i = 0; i < 2; i++)
            exo_sim_set_group(sim, i, 1);
        uint64_t t0 = exo_sim_now(sim);
        assert_true(run_until(sim, sides_split, NULL, 25 * SEC));
        exo_sim_run_until(sim, t0 + apart[k]);
        assert_true(sides_split(sim, NULL));
        for (size_t i = 0; i < 2; i++)
            exo_sim_set_group(sim, i, 0);
        /* Reconnection to failed members runs every 10 s at every node. */
        assert_true(run_until(sim, converged, NULL, 30 * SEC));
        for (size_t i = 0; i < 5; i++)
            assert_int_equal(exo_members_count(exo_sim_members(sim, i), LIVE), 5);
        exo_sim_free(sim);
    }
}

static void test_members_loss_no_false_deaths(void **state)
{
    struct rec r;
    struct exo_sim *sim = formed(8, 51, &r);
    exo_sim_set_loss(sim, 0.10);
    exo_sim_run_until(sim, exo_sim_now(sim) + 120 * SEC);
    assert_int_equal(r.dead_while_running, 0);
    exo_sim_set_loss(sim, 0.0);
    assert_true(run_until(sim, converged, NULL, 10 * SEC));
    /* Loss did cause suspicions, which were all cleared: the mechanism was exercised. */
    struct exo_members_stats st;
    uint64_t suspicions = 0;
    for (size_t i = 0; i < 8; i++) {
        exo_members_get_stats(exo_sim_members(sim, i), &st);
        suspicions += st.suspicions;
    }
    assert_true(suspicions > 0);
    exo_sim_free(sim);
}

static void test_members_other_key_never_joins(void **state)
{
    struct rec r;
    struct exo_sim_config cfg;
    base_config(&cfg, 4, 61, &r);
    cfg.seal = true;
    cfg.replay_entries = 256;
    struct exo_sim *sim = make_sim(&cfg, &r);
    uint8_t other[EXO_SEAL_KEY_BYTES];
    memset(other, 0x42, sizeof(other));
    assert_int_equal(
        exo_seal_set_keys(exo_sim_seal(sim, 3), (const uint8_t(*)[EXO_SEAL_KEY_BYTES]) & other, 1),
        0);
    start_all(sim, 4);
    exo_sim_run_until(sim, 20 * SEC);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(exo_members_count(exo_sim_members(sim, i), ~0u), 3);
    assert_int_equal(exo_members_count(exo_sim_members(sim, 3), ~0u), 1);
    assert_int_equal(r.about[3][EXO_MEMBERS_EVENT_JOIN], 0);
    /* Its join attempts (and rejoin retries) were refused as an unknown key, and counted. */
    struct exo_seal_stats st;
    exo_seal_get_stats(exo_sim_seal(sim, 0), &st);
    assert_true(st.dropped[EXO_SEAL_DROP_UNKNOWN_KEY] >= 3);
    struct exo_sim_stats ss;
    exo_sim_get_stats(sim, &ss);
    assert_true(ss.seal_drops >= 3);
    exo_sim_free(sim);
}

static void test_members_metadata_update(void **state)
{
    struct rec r;
    struct exo_sim *sim = formed(4, 71, &r);
    struct exo_members *m2 = exo_sim_members(sim, 2);
    uint8_t id2[EXO_MEMBERS_ID_BYTES];
    exo_sim_id(sim, 2, id2);
    struct exo_member_info self;
    assert_int_equal(exo_members_get(m2, id2, &self), 0);
    assert_true(self.is_self);
    struct exo_members_meta meta = self.meta;
    meta.api_port = 8080;
    meta.roles = 3;
    meta.leader_priority = 7;
    meta.blob = (const uint8_t *)"gpu:2";
    meta.blob_len = 5;
    assert_int_equal(exo_members_update_meta(m2, &meta, exo_sim_now(sim)), 0);
    meta.blob_len = EXO_MEMBERS_BLOB_MAX + 1;
    assert_int_equal(exo_members_update_meta(m2, &meta, exo_sim_now(sim)), EXO_EINVAL);
    exo_sim_run_until(sim, exo_sim_now(sim) + 3 * SEC);
    assert_int_equal(r.about[2][EXO_MEMBERS_EVENT_UPDATE], 3);
    for (size_t i = 0; i < 4; i++) {
        struct exo_member_info info;
        assert_int_equal(exo_members_get(exo_sim_members(sim, i), id2, &info), 0);
        assert_int_equal(info.meta.api_port, 8080);
        assert_int_equal(info.meta.roles, 3);
        assert_int_equal(info.meta.leader_priority, 7);
        assert_int_equal(info.meta.blob_len, 5);
        assert_memory_equal(info.meta.blob, "gpu:2", 5);
        assert_true(info.incarnation == self.incarnation + 1);
        if (i != 2)
            assert_memory_equal(r.last_blob[i], "gpu:2", 5);
    }
    exo_sim_free(sim);
}

static void test_members_broadcast_and_send(void **state)
{
    struct rec r;
    struct exo_sim *sim = formed(8, 81, &r);
    assert_int_equal(exo_members_broadcast(exo_sim_members(sim, 3), "term 7", 6), 0);
    uint8_t big[EXO_MEMBERS_BROADCAST_MAX + 1] = {0};
    assert_int_equal(exo_members_broadcast(exo_sim_members(sim, 3), big, sizeof(big)), EXO_ETOOBIG);
    exo_sim_run_until(sim, exo_sim_now(sim) + 5 * SEC);
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(r.broadcasts[i], i == 3 ? 0 : 1); /* once each, never to the sender */
        if (i != 3) {
            assert_int_equal(r.last_len[i], 6);
            assert_memory_equal(r.last_data[i], "term 7", 6);
            assert_int_equal(r.last_from[i], 3);
        }
    }
    /* Direct messages: a small one by datagram, a big one by stream. */
    uint8_t id5[EXO_MEMBERS_ID_BYTES], unknown[EXO_MEMBERS_ID_BYTES];
    exo_sim_id(sim, 5, id5);
    make_id(unknown, 200);
    struct exo_members *m0 = exo_sim_members(sim, 0);
    assert_int_equal(exo_members_send(m0, id5, "hi", 2, exo_sim_now(sim)), 0);
    assert_int_equal(exo_members_send(m0, unknown, "hi", 2, exo_sim_now(sim)), EXO_ENOENT);
    static uint8_t large[20000];
    memset(large, 'x', sizeof(large));
    struct exo_members_stats before, after;
    exo_members_get_stats(m0, &before);
    assert_int_equal(exo_members_send(m0, id5, large, sizeof(large), exo_sim_now(sim)), 0);
    exo_members_get_stats(m0, &after);
    assert_int_equal(after.streams_out, before.streams_out + 1);
    exo_sim_run_until(sim, exo_sim_now(sim) + SEC);
    assert_int_equal(r.directs[5], 2);
    assert_int_equal(r.last_len[5], sizeof(large));
    assert_int_equal(r.last_from[5], 0);
    exo_sim_free(sim);
}

/* Push-pull carries application state both ways: each node offers "state-<index>". */
static void offer_state(void *ctx, size_t node, bool join, struct exo_buf *out)
{
    exo_buf_printf(out, "state-%zu", node);
}

static void take_state(void *ctx, size_t node, bool join, const uint8_t *data, size_t len)
{
    struct rec *r = ctx;
    r->merged[node]++;
    r->merged_join[node] = join;
    r->last_len[node] = len;
    memcpy(r->last_data[node], data, len < 64 ? len : 64);
}

static void test_members_push_pull_state(void **state)
{
    struct rec r;
    struct exo_sim_config cfg;
    base_config(&cfg, 2, 121, &r);
    cfg.local_state_cb = offer_state;
    cfg.merge_state_cb = take_state;
    cfg.members.push_pull_ms = 2000;
    struct exo_sim *sim = make_sim(&cfg, &r);
    assert_int_equal(exo_sim_start(sim, 0), 0);
    assert_int_equal(exo_sim_start(sim, 1), 0);
    size_t seed = 0;
    assert_int_equal(exo_sim_join(sim, 1, &seed, 1), 0);
    exo_sim_run_until(sim, 100000);
    /* The join: node 0 got node 1's state and answered with its own. */
    assert_int_equal(r.merged[0], 1);
    assert_int_equal(r.merged[1], 1);
    assert_true(r.merged_join[1]);
    assert_int_equal(r.last_len[1], 7);
    assert_memory_equal(r.last_data[1], "state-0", 7);
    assert_memory_equal(r.last_data[0], "state-1", 7);
    /* Then the resync and periodic exchanges, which are not joins. */
    exo_sim_run_until(sim, 10 * SEC);
    assert_true(r.merged[0] + r.merged[1] >= 2 + 2 * 3);
    assert_false(r.merged_join[0]);
    exo_sim_free(sim);
}

static void test_members_restart_rejoins(void **state)
{
    struct rec r;
    struct exo_sim *sim = formed(4, 91, &r);
    struct dead_check d = {.victim = 2, .n = 4};
    exo_sim_kill(sim, 2);
    assert_true(run_until(sim, all_see_dead, &d, 15 * SEC));
    /* Back with the same id and a higher incarnation, as a restarted daemon is. */
    assert_int_equal(exo_sim_start(sim, 2), 0);
    size_t seed = 0;
    assert_int_equal(exo_sim_join(sim, 2, &seed, 1), 0);
    assert_true(run_until(sim, converged, NULL, 5 * SEC));
    assert_int_equal(r.about[2][EXO_MEMBERS_EVENT_JOIN], 3 + 3);
    exo_sim_free(sim);
}

static void test_members_rtt_measured(void **state)
{
    struct rec r;
    struct exo_sim *sim = formed(4, 101, &r);
    exo_sim_run_until(sim, exo_sim_now(sim) + 10 * SEC);
    struct exo_member_info list[8];
    size_t n = exo_members_list(exo_sim_members(sim, 0), list, 8);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        if (list[i].is_self) {
            assert_int_equal(list[i].rtt_us, 0);
            continue;
        }
        /* Two one-way trips of 200-300 us each. */
        assert_true(list[i].rtt_us >= 400 && list[i].rtt_us <= 600);
    }
    exo_sim_free(sim);
}

static void test_members_member_cap(void **state)
{
    struct rec r;
    struct exo_sim_config cfg;
    base_config(&cfg, 6, 111, &r);
    cfg.members.max_members = 4;
    struct exo_sim *sim = make_sim(&cfg, &r);
    start_all(sim, 6);
    exo_sim_run_until(sim, 5 * SEC);
    struct exo_members_stats st;
    exo_members_get_stats(exo_sim_members(sim, 0), &st);
    assert_true(exo_members_count(exo_sim_members(sim, 0), ~0u) <= 4);
    assert_true(st.dropped[EXO_MEMBERS_DROP_MEMBER_CAP] > 0);
    exo_sim_free(sim);
}

/* ---- the libuv transport on loopback ---- */

static void test_members_parse_hostport(void **state)
{
    static const struct {
        const char *text;
        int rc;
        const char *host;
        uint16_t port;
    } rows[] = {
        {"10.0.0.1:7000", 0, "10.0.0.1", 7000},
        {"10.0.0.1", 0, "10.0.0.1", EXO_MEMBERS_DEFAULT_PORT},
        {"studio.local:52416", 0, "studio.local", 52416},
        {"[fe80::1]:9", 0, "fe80::1", 9},
        {"[::1]", 0, "::1", EXO_MEMBERS_DEFAULT_PORT},
        {"fe80::1", 0, "fe80::1", EXO_MEMBERS_DEFAULT_PORT},
        {"host:0", EXO_EINVAL, NULL, 0},
        {"host:65536", EXO_EINVAL, NULL, 0},
        {"host:", EXO_EINVAL, NULL, 0},
        {"host:12x", EXO_EINVAL, NULL, 0},
        {":80", EXO_EINVAL, NULL, 0},
        {"[::1", EXO_EINVAL, NULL, 0},
        {"[::1]x", EXO_EINVAL, NULL, 0},
        {"", EXO_EINVAL, NULL, 0},
        {"not a host:port:", EXO_EINVAL, NULL, 0},
        {"a:b:c", EXO_EINVAL, NULL, 0},
        {"bad host:80", EXO_EINVAL, NULL, 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char host[64];
        uint16_t port = 0;
        int rc = exo_transport_parse_hostport(rows[i].text, host, sizeof(host), &port);
        if (rc != rows[i].rc)
            fail_msg("'%s': rc %d", rows[i].text, rc);
        if (rc == 0) {
            assert_string_equal(host, rows[i].host);
            assert_int_equal(port, rows[i].port);
        }
    }
}

struct live {
    uv_loop_t loop;
    uv_timer_t poll;
    struct exo_transport *t[3];
    struct exo_seal *seal[3];
    bool (*until)(struct live *);
    unsigned left_events;
};

static void live_event(void *ctx, enum exo_members_event ev, const struct exo_member_info *info)
{
    struct live *l = ctx;
    if (ev == EXO_MEMBERS_EVENT_LEFT)
        l->left_events++;
}

static void live_poll(uv_timer_t *timer)
{
    struct live *l = timer->data;
    if (l->until(l))
        uv_stop(&l->loop);
}

/* Run the loop until the condition holds or `ms` pass (wall clock: these are real sockets). */
static bool live_run(struct live *l, bool (*until)(struct live *), uint64_t ms)
{
    l->until = until;
    uv_timer_start(&l->poll, live_poll, 10, 10);
    uint64_t end = exo_clock_ns() / 1000000 + ms;
    while (!until(l) && exo_clock_ns() / 1000000 < end)
        uv_run(&l->loop, UV_RUN_ONCE);
    uv_timer_stop(&l->poll);
    return until(l);
}

static int live_start(struct live *l, int i, const char *cluster, const uint8_t *key)
{
    struct exo_seal_config sc = {.cluster = cluster};
    assert_int_equal(exo_seal_create(&sc, &l->seal[i]), 0);
    if (key)
        assert_int_equal(
            exo_seal_set_keys(l->seal[i], (const uint8_t(*)[EXO_SEAL_KEY_BYTES])key, 1), 0);
    struct exo_transport_config tc = {
        .bind_v4 = "127.0.0.1", .bind_v6 = "", .ephemeral = true, .seal = l->seal[i]};
    struct exo_members_config mc;
    exo_members_config_init(&mc);
    make_id(mc.id, (uint8_t)(i + 1));
    snprintf(mc.name, sizeof(mc.name), "live-%d", i);
    mc.seed = (uint64_t)i;
    struct exo_members_delegate dg = {.ctx = l, .event_cb = live_event};
    return exo_transport_create(&l->loop, &tc, &mc, &dg, &l->t[i]);
}

static bool both_see_two(struct live *l)
{
    return exo_members_count(exo_transport_members(l->t[0]), LIVE) == 2 &&
           exo_members_count(exo_transport_members(l->t[1]), LIVE) == 2;
}

static bool drops_seen(struct live *l)
{
    struct exo_seal_stats st;
    struct exo_transport_stats ts;
    exo_seal_get_stats(l->seal[0], &st);
    exo_transport_get_stats(l->t[0], &ts);
    return st.dropped[EXO_SEAL_DROP_BAD_MAGIC] >= 1 && ts.frames_too_big >= 1 &&
           st.dropped[EXO_SEAL_DROP_UNKNOWN_KEY] >= 1;
}

static bool left_seen(struct live *l)
{
    return l->left_events >= 1;
}

static bool nothing_left(struct live *l)
{
    return false;
}

static void test_members_transport_loopback(void **state)
{
    struct live *l = exo_calloc(1, sizeof(*l));
    assert_int_equal(uv_loop_init(&l->loop), 0);
    uv_timer_init(&l->loop, &l->poll);
    l->poll.data = l;
    assert_int_equal(live_start(l, 0, "live", NULL), 0);
    assert_int_equal(live_start(l, 1, "live", NULL), 0);
    struct exo_members_addr a0;
    exo_transport_local_addr(l->t[0], &a0);
    assert_int_equal(a0.family, EXO_MEMBERS_FAMILY_IPV4);
    char seed[64];
    snprintf(seed, sizeof(seed), "localhost:%u", a0.port); /* through the resolver */
    const char *seeds[] = {seed, "not a host:port:"};
    assert_int_equal(exo_transport_join(l->t[1], seeds, 2), EXO_EINVAL); /* the second */
    assert_true(live_run(l, both_see_two, 5000));

    /* Hostile bytes: a datagram that is not sealed, a TCP frame claiming 4 GiB, and a node with
     * another key. Each is refused and counted; none disturbs the cluster. */
    uint8_t other_key[EXO_SEAL_KEY_BYTES];
    memset(other_key, 7, sizeof(other_key));
    assert_int_equal(live_start(l, 2, "live", other_key), 0);
    struct exo_members_addr a0_list[1] = {a0};
    assert_int_equal(exo_transport_join_addrs(l->t[2], a0_list, 1), 0);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(a0.port)};
    memcpy(&sin.sin_addr, a0.ip, 4);
    uint8_t garbage[100];
    memset(garbage, 'g', sizeof(garbage)); /* long enough to be judged by its magic */
    assert_int_equal(sendto(fd, garbage, sizeof(garbage), 0, (struct sockaddr *)&sin, sizeof(sin)),
                     (ssize_t)sizeof(garbage));
    close(fd);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    const uint8_t huge_frame[8] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4};
    assert_int_equal(write(fd, huge_frame, sizeof(huge_frame)), 8);
    assert_true(live_run(l, drops_seen, 5000));
    close(fd);
    assert_int_equal(exo_members_count(exo_transport_members(l->t[0]), ~0u), 2);
    assert_int_equal(exo_members_count(exo_transport_members(l->t[2]), ~0u), 1);

    /* RTTs are measured on real sockets too. */
    live_run(l, nothing_left, 1500);
    uint8_t id1[EXO_MEMBERS_ID_BYTES];
    make_id(id1, 2);
    struct exo_member_info info;
    assert_int_equal(exo_members_get(exo_transport_members(l->t[0]), id1, &info), 0);
    assert_true(info.rtt_us > 0);

    /* A graceful leave is heard as such. */
    assert_int_equal(exo_transport_leave(l->t[1]), 0);
    assert_true(live_run(l, left_seen, 3000));
    for (int i = 0; i < 3; i++)
        exo_transport_close(l->t[i]);
    uv_close((uv_handle_t *)&l->poll, NULL);
    uv_run(&l->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&l->loop), 0); /* every handle was closed */
    for (int i = 0; i < 3; i++)
        exo_seal_free(l->seal[i]);
    exo_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members_suspicion_min_table),
        cmocka_unit_test(test_members_suspicion_timeout_table),
        cmocka_unit_test(test_members_retransmit_table),
        cmocka_unit_test(test_members_push_pull_table),
        cmocka_unit_test(test_members_codec_roundtrip),
        cmocka_unit_test(test_members_codec_push_pull),
        cmocka_unit_test(test_members_codec_hostile),
        cmocka_unit_test(test_members_config_invalid),
        cmocka_unit_test(test_members_create_nomem),
        cmocka_unit_test(test_members_receive_hostile),
        cmocka_unit_test(test_members_ping_from_dead_is_told),
        cmocka_unit_test(test_members_broadcast_ids_new_after_restart),
        cmocka_unit_test(test_members_single_node),
        cmocka_unit_test(test_members_two_and_three_form),
        cmocka_unit_test(test_members_kill_detected),
        cmocka_unit_test(test_members_refutes_false_suspicion),
        cmocka_unit_test(test_members_graceful_leave),
        cmocka_unit_test(test_members_partition_heals),
        cmocka_unit_test(test_members_loss_no_false_deaths),
        cmocka_unit_test(test_members_other_key_never_joins),
        cmocka_unit_test(test_members_metadata_update),
        cmocka_unit_test(test_members_broadcast_and_send),
        cmocka_unit_test(test_members_push_pull_state),
        cmocka_unit_test(test_members_restart_rejoins),
        cmocka_unit_test(test_members_rtt_measured),
        cmocka_unit_test(test_members_member_cap),
        cmocka_unit_test(test_members_parse_hostport),
        cmocka_unit_test(test_members_transport_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
