/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for membership messages after unsealing: the bytes go into a live state machine
 * that already knows three members, so the handlers (not just the decoder) run on hostile input.
 *
 * Input: a sequence of records, each
 *     u8 flags   bits 0-1 sender (one of four addresses), bit 2 reliable (a stream message),
 *                bits 3-7 virtual time to advance afterwards, in units of 100 ms
 *     u16 length (LE, cut to what is left)
 *     bytes      one packet or stream message as exo_members_receive takes it
 * After each record the machine's timers run. Everything the machine sends in response must
 * itself decode: an encoder bug shows up as an abort here.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/members-int.h"
#include "cluster/members.h"

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

/* Our own output must always decode. */
static void check_sent(const uint8_t *d, size_t n)
{
    struct exo_reader r;
    exo_reader_init(&r, d, n);
    if (exo_members_wire_open(&r, NULL) < 0)
        abort();
    uint8_t type;
    const uint8_t *body;
    size_t len;
    int rc;
    while ((rc = exo_members_wire_next(&r, &type, &body, &len, NULL)) == 1) {
        struct exo_members_msg msg;
        if (exo_members_wire_decode(type, body, len, &msg, NULL) < 0)
            abort();
    }
    if (rc < 0)
        abort();
}

static void send_packet(void *ctx, const struct exo_members_addr *to, const uint8_t *d, size_t n)
{
    if (n > EXO_MEMBERS_PACKET_MAX)
        abort();
    check_sent(d, n);
}

static void send_stream(void *ctx, const struct exo_members_addr *to, const uint8_t *d, size_t n)
{
    check_sent(d, n);
}

static void on_event(void *ctx, enum exo_members_event ev, const struct exo_member_info *info)
{
    if (info->is_self || (unsigned)ev > EXO_MEMBERS_EVENT_LEFT)
        abort();
}

static void local_state(void *ctx, bool join, struct exo_buf *out)
{
    exo_buf_put(out, "state", 5);
}

/* A packet announcing members 1..3 as alive, to give the handlers someone to talk about. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct exo_members_config cfg;
    exo_members_config_init(&cfg);
    id_of(cfg.id, 0);
    cfg.addr = addr_of(0);
    cfg.name[0] = 'f';
    cfg.max_queue = 64;
    cfg.max_members = 32;
    struct exo_members_io io = {.send_packet_cb = send_packet, .send_stream_cb = send_stream};
    struct exo_members_delegate dg = {.event_cb = on_event, .local_state_cb = local_state};
    struct exo_members *m = NULL;
    if (exo_members_create(&cfg, &io, &dg, 0, &m) < 0)
        return 0;
    seed_members(m);
    struct exo_members_addr seed = addr_of(2);
    exo_members_join(m, &seed, 1, 0);
    uint64_t now = 1000;
    /* At most 64 records, so a single input stays quick. */
    for (int rec = 0; rec < 64 && size >= 3; rec++) {
        uint8_t flags = data[0];
        size_t len = (size_t)data[1] | (size_t)data[2] << 8;
        data += 3;
        size -= 3;
        if (len > size)
            len = size;
        struct exo_members_addr from = addr_of(flags & 3);
        exo_members_receive(m, &from, data, len, flags & 4, now);
        data += len;
        size -= len;
        now += (uint64_t)(flags >> 3) * 100000;
        uint64_t next = exo_members_tick(m, now);
        if (next < now)
            abort();
    }
    struct exo_members_stats st;
    exo_members_get_stats(m, &st);
    if (exo_members_count(m, ~0u) > cfg.max_members || st.queued > cfg.max_queue)
        abort();
    exo_members_free(m);
    return 0;
}
