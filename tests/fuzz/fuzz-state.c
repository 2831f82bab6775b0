/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the replicated state: hostile bytes go into a live state machine whose
 * membership machine already knows three other members, so the handlers (repairs, snapshots,
 * reports, appends and elections), not just the decoders, run on them.
 *
 * Input: a sequence of records, each
 *     u8 op      bits 0-1 sender (members 1..3, or 0 for a non-member), bits 2-3 what the bytes
 * are: 0 a state message, 1 push-pull application state, 2 a snapshot for the table decoder, 3 a
 * report to set (kind from the first byte, the rest as the value); bits 4-7 virtual time to advance
 * afterwards, in units of 100 ms u16 length (LE, cut to what is left) bytes After each record the
 * machines' timers run. Everything the state machine sends must itself decode, and the log and
 * table must stay within their caps: a violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/members-int.h"
#include "cluster/members.h"
#include "cluster/state-int.h"
#include "cluster/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct exo_members_addr addr_of(uint8_t i)
{
    struct exo_members_addr a = {.family = EXO_MEMBERS_FAMILY_IPV4, .port = 52416};
    a.ip[0] = 10;
    a.ip[3] = (uint8_t)(i + 1);
    return a;
}

static void id_of(uint8_t *id, uint8_t i)
{
    memset(id, 0, EXO_MEMBERS_ID_BYTES);
    id[0] = (uint8_t)(i + 1);
}

/* A state message we sent must decode, and so must the entries, records and payloads in it. */
static void check_state_msg(const uint8_t *d, size_t n)
{
    struct exo_state_msg msg;
    if (exo_state_wire_decode(d, n, &msg, NULL) < 0)
        abort();
    if (msg.type != EXO_STATE_MSG_APPEND)
        return;
    struct exo_reader r;
    exo_reader_init(&r, msg.append.entries, msg.append.len);
    for (uint32_t i = 0; i < msg.append.count; i++) {
        struct exo_state_event e;
        struct exo_state_payload p;
        if (exo_state_wire_get_entry(&r, &e, NULL) < 0)
            abort();
        int rc = exo_state_payload_decode(e.type, e.payload, e.len, &p, NULL);
        (void)rc; /* a relayed entry may carry a type this version does not know */
    }
}

static void check_sent(const uint8_t *d, size_t n)
{
    struct exo_reader r;
    exo_reader_init(&r, d, n);
    if (exo_members_wire_open(&r, NULL) < 0)
        abort();
    uint8_t type;
    const uint8_t *body;
    size_t len;
    while (exo_members_wire_next(&r, &type, &body, &len, NULL) == 1) {
        struct exo_members_msg msg;
        if (exo_members_wire_decode(type, body, len, &msg, NULL) < 0)
            abort();
        if (type == EXO_MEMBERS_MSG_APP && msg.app.len && msg.app.data[0] == EXO_STATE_CHANNEL)
            check_state_msg(msg.app.data, msg.app.len);
        if (type == EXO_MEMBERS_MSG_USER && msg.user.len && msg.user.data[0] == EXO_STATE_CHANNEL)
            check_state_msg(msg.user.data, msg.user.len);
    }
}

static void send_packet(void *ctx, const struct exo_members_addr *to, const uint8_t *d, size_t n)
{
    check_sent(d, n);
}

static void send_stream(void *ctx, const struct exo_members_addr *to, const uint8_t *d, size_t n)
{
    check_sent(d, n);
}

static void wake(void *ctx)
{
}

/* A packet announcing members 1..3 as alive, so the state has someone to follow and serve. */
static void seed_members(struct exo_members *m)
{
    struct exo_buf pkt, scratch;
    exo_buf_init(&pkt, 0);
    exo_buf_init(&scratch, 0);
    exo_members_wire_begin(&pkt);
    for (uint8_t i = 1; i <= 3; i++) {
        struct exo_members_msg msg = {.type = EXO_MEMBERS_MSG_ALIVE};
        msg.alive.state = EXO_MEMBER_STATE_ALIVE;
        msg.alive.incarnation = 1;
        id_of(msg.alive.id, i);
        msg.alive.addr = addr_of(i);
        msg.alive.name[0] = (char)('a' + i);
        msg.alive.meta.proto_min = EXO_MEMBERS_PROTO;
        msg.alive.meta.proto_max = EXO_MEMBERS_PROTO;
        exo_members_wire_put(&pkt, &scratch, &msg);
    }
    struct exo_members_addr from = addr_of(1);
    exo_members_receive(m, &from, pkt.data, pkt.len, false, 0);
    exo_buf_free(&pkt);
    exo_buf_free(&scratch);
}

/* What a table encodes to decodes again, to a table that encodes to the same bytes: digests
 * computed on two nodes from one snapshot agree. */
static void check_canonical(const struct exo_state_table *t)
{
    struct exo_buf a, b;
    exo_buf_init(&a, 0);
    exo_buf_init(&b, 0);
    exo_state_table_encode(t, &a);
    struct exo_state_table again;
    exo_state_table_init(&again);
    if (a.err || exo_state_table_decode(&again, a.data, a.len, NULL) < 0)
        abort();
    exo_state_table_encode(&again, &b);
    if (b.err || b.len != a.len || memcmp(a.data, b.data, a.len) != 0)
        abort();
    exo_state_table_clear(&again);
    exo_buf_free(&a);
    exo_buf_free(&b);
}

static void check_invariants(struct exo_state *s)
{
    struct exo_state_stats st;
    exo_state_get_stats(s, &st);
    if (st.records > EXO_STATE_RECORDS_MAX || st.members > EXO_STATE_MEMBERS_MAX ||
        st.log_first > st.log_index + 1 || st.log_index - st.log_first + 1 > 64)
        abort();
}

static void run(struct exo_members *m, struct exo_state *s, const uint8_t *data, size_t size)
{
    uint64_t now = 1000;
    for (int rec = 0; rec < 64 && size >= 3; rec++) {
        uint8_t op = data[0];
        size_t len = (size_t)data[1] | (size_t)data[2] << 8;
        data += 3;
        size -= 3;
        if (len > size)
            len = size;
        uint8_t sender[EXO_MEMBERS_ID_BYTES];
        id_of(sender, (op & 3) ? op & 3 : 0x7f); /* 0: someone not a member */
        switch ((op >> 2) & 3) {
        case 0:
            exo_state_receive(s, sender, data, len, false, now);
            break;
        case 1:
            exo_state_merge_state(s, false, data, len, now);
            break;
        case 2: {
            struct exo_state_table t;
            exo_state_table_init(&t);
            if (exo_state_table_decode(&t, data, len, NULL) == 0)
                check_canonical(&t);
            exo_state_table_clear(&t);
            break;
        }
        default:
            if (len)
                exo_state_report_set(s, data[0], "k", 1, EXO_STATE_FORMAT_BINARY, data + 1, len - 1,
                                     now);
            break;
        }
        data += len;
        size -= len;
        now += (uint64_t)(op >> 4) * 100000;
        exo_members_tick(m, now);
        if (exo_state_tick(s, now) < now)
            abort();
        check_invariants(s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct exo_members_config cfg;
    exo_members_config_init(&cfg);
    id_of(cfg.id, 0);
    cfg.addr = addr_of(0);
    cfg.name[0] = 'f';
    cfg.max_queue = 256;
    cfg.max_members = 32;
    struct exo_members_io io = {.send_packet_cb = send_packet, .send_stream_cb = send_stream};
    struct exo_members *m = NULL;
    if (exo_members_create(&cfg, &io, NULL, 0, &m) < 0)
        return 0;
    seed_members(m);
    struct exo_state_config sc;
    exo_state_config_init(&sc);
    memcpy(sc.id, cfg.id, EXO_MEMBERS_ID_BYTES);
    sc.log_entries = 64; /* small, so that eviction and snapshots are reached */
    struct exo_state_hooks hooks = {.wake_cb = wake};
    struct exo_state *s = NULL;
    if (exo_state_create(&sc, m, &hooks, 0, &s) == 0) {
        run(m, s, data, size);
        exo_state_free(s);
    }
    exo_members_free(m);
    return 0;
}
