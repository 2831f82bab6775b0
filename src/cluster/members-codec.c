/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Encoding and decoding of membership messages (the layout is in members-int.h). The decoder
 * reads bytes that arrived from the network: every length is capped, every enum and address is
 * checked, and nothing is asserted. It keeps no state; members.c decides what a message means.
 */
#include "cluster/members-int.h"

#include <string.h>

#define FLAG_WANT_NACK 1
#define FLAG_RELAYED   1
#define FLAG_JOIN      1
#define FLAG_REPLY     2

static uint32_t zigzag(int32_t v)
{
    return ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
}

static int32_t unzigzag(uint64_t v)
{
    return (int32_t)((uint32_t)(v >> 1) ^ (uint32_t) - (int64_t)(v & 1));
}

/* ---- encoding ---- */

static void put_addr(struct exo_buf *b, const struct exo_members_addr *a)
{
    exo_buf_put_u8(b, a->family);
    exo_buf_put(b, a->ip, a->family == EXO_MEMBERS_FAMILY_IPV6 ? 16 : 4);
    exo_buf_put_u16(b, a->port);
}

static void put_meta(struct exo_buf *b, const struct exo_members_meta *m)
{
    exo_buf_put_u8(b, m->proto_min);
    exo_buf_put_u8(b, m->proto_max);
    exo_buf_put_u16(b, m->gossip_port);
    exo_buf_put_u16(b, m->api_port);
    exo_buf_put_u16(b, m->data_port);
    exo_buf_put_varint(b, m->roles);
    exo_buf_put_varint(b, zigzag(m->leader_priority));
    exo_buf_put_bytes(b, m->blob, m->blob_len);
}

void exo_members_wire_put_node(struct exo_buf *out, const struct exo_members_node *n)
{
    exo_buf_put_u8(out, n->state);
    exo_buf_put_varint(out, n->incarnation);
    exo_buf_put(out, n->id, EXO_MEMBERS_ID_BYTES);
    put_addr(out, &n->addr);
    exo_buf_put_str(out, n->name);
    put_meta(out, &n->meta);
}

void exo_members_wire_begin(struct exo_buf *out)
{
    exo_buf_put_u8(out, EXO_MEMBERS_PROTO);
    exo_buf_put_u8(out, 0);
}

static void put_body(struct exo_buf *b, const struct exo_members_msg *msg)
{
    switch (msg->type) {
    case EXO_MEMBERS_MSG_PING:
        exo_buf_put_varint(b, msg->ping.seq);
        exo_buf_put(b, msg->ping.target, EXO_MEMBERS_ID_BYTES);
        exo_buf_put(b, msg->ping.source, EXO_MEMBERS_ID_BYTES);
        put_addr(b, &msg->ping.source_addr);
        break;
    case EXO_MEMBERS_MSG_INDIRECT_PING:
        exo_buf_put_varint(b, msg->indirect.seq);
        exo_buf_put(b, msg->indirect.target, EXO_MEMBERS_ID_BYTES);
        put_addr(b, &msg->indirect.target_addr);
        exo_buf_put_u8(b, msg->indirect.want_nack ? FLAG_WANT_NACK : 0);
        exo_buf_put(b, msg->indirect.source, EXO_MEMBERS_ID_BYTES);
        put_addr(b, &msg->indirect.source_addr);
        break;
    case EXO_MEMBERS_MSG_ACK:
        exo_buf_put_varint(b, msg->ack.seq);
        exo_buf_put_u8(b, msg->ack.relayed ? FLAG_RELAYED : 0);
        break;
    case EXO_MEMBERS_MSG_NACK:
        exo_buf_put_varint(b, msg->ack.seq);
        break;
    case EXO_MEMBERS_MSG_ALIVE:
        exo_members_wire_put_node(b, &msg->alive);
        break;
    case EXO_MEMBERS_MSG_SUSPECT:
    case EXO_MEMBERS_MSG_DEAD:
        exo_buf_put_varint(b, msg->suspect.incarnation);
        exo_buf_put(b, msg->suspect.id, EXO_MEMBERS_ID_BYTES);
        exo_buf_put(b, msg->suspect.from, EXO_MEMBERS_ID_BYTES);
        break;
    case EXO_MEMBERS_MSG_USER:
        exo_buf_put(b, msg->user.origin, EXO_MEMBERS_ID_BYTES);
        exo_buf_put_u64(b, msg->user.msg_id);
        exo_buf_put_bytes(b, msg->user.data, msg->user.len);
        break;
    case EXO_MEMBERS_MSG_APP:
        exo_buf_put(b, msg->app.from, EXO_MEMBERS_ID_BYTES);
        exo_buf_put_bytes(b, msg->app.data, msg->app.len);
        break;
    case EXO_MEMBERS_MSG_PUSH_PULL:
        exo_buf_put_u8(b, (uint8_t)((msg->push_pull.join ? FLAG_JOIN : 0) |
                                    (msg->push_pull.reply ? FLAG_REPLY : 0)));
        exo_buf_put(b, msg->push_pull.sender, EXO_MEMBERS_ID_BYTES);
        put_addr(b, &msg->push_pull.sender_addr);
        exo_buf_put_varint(b, msg->push_pull.count);
        exo_buf_put_bytes(b, msg->push_pull.nodes, msg->push_pull.nodes_len);
        exo_buf_put_bytes(b, msg->push_pull.app_state, msg->push_pull.app_state_len);
        break;
    default:
        b->err = EXO_EINVAL;
        break;
    }
}

void exo_members_wire_put(struct exo_buf *out, struct exo_buf *scratch,
                          const struct exo_members_msg *msg)
{
    exo_buf_reset(scratch);
    put_body(scratch, msg);
    if (scratch->err) {
        if (!out->err)
            out->err = scratch->err;
        return;
    }
    exo_buf_put_u8(out, msg->type);
    exo_buf_put_bytes(out, scratch->data, scratch->len);
}

/* ---- decoding ---- */

/* The reader's error, reported with the field being read and the offset. */
static int fail(const struct exo_reader *r, struct exo_diag *diag, const char *what)
{
    int code = r->err ? r->err : EXO_EFORMAT;
    return exo_diag_set(diag, code, "gossip: %s at byte %zu: %s", what, r->off, exo_strerror(code));
}

static void get_id(struct exo_reader *r, uint8_t *id)
{
    const uint8_t *p = exo_reader_take(r, EXO_MEMBERS_ID_BYTES);
    if (p)
        memcpy(id, p, EXO_MEMBERS_ID_BYTES);
}

static uint32_t get_u32_varint(struct exo_reader *r)
{
    uint64_t v = exo_reader_varint(r);
    if (!r->err && v > UINT32_MAX) {
        r->err = EXO_ERANGE;
        return 0;
    }
    return (uint32_t)v;
}

static int get_addr(struct exo_reader *r, struct exo_members_addr *a, struct exo_diag *diag)
{
    memset(a, 0, sizeof(*a));
    a->family = exo_reader_u8(r);
    if (r->err)
        return fail(r, diag, "address family");
    if (a->family != EXO_MEMBERS_FAMILY_IPV4 && a->family != EXO_MEMBERS_FAMILY_IPV6)
        return exo_diag_set(diag, EXO_EFORMAT, "gossip: address family %u at byte %zu", a->family,
                            r->off - 1);
    size_t n = a->family == EXO_MEMBERS_FAMILY_IPV6 ? 16 : 4;
    const uint8_t *p = exo_reader_take(r, n);
    if (p)
        memcpy(a->ip, p, n);
    a->port = exo_reader_u16(r);
    if (r->err)
        return fail(r, diag, "address");
    if (a->port == 0)
        return exo_diag_set(diag, EXO_EFORMAT, "gossip: port 0 at byte %zu", r->off - 2);
    return 0;
}

static int get_meta(struct exo_reader *r, struct exo_members_meta *m, struct exo_diag *diag)
{
    memset(m, 0, sizeof(*m));
    m->proto_min = exo_reader_u8(r);
    m->proto_max = exo_reader_u8(r);
    m->gossip_port = exo_reader_u16(r);
    m->api_port = exo_reader_u16(r);
    m->data_port = exo_reader_u16(r);
    m->roles = get_u32_varint(r);
    m->leader_priority = unzigzag(get_u32_varint(r));
    m->blob = exo_reader_bytes(r, EXO_MEMBERS_BLOB_MAX, &m->blob_len);
    if (r->err)
        return fail(r, diag, "member metadata");
    if (m->proto_min > m->proto_max)
        return exo_diag_set(diag, EXO_EFORMAT, "gossip: protocol range %u..%u", m->proto_min,
                            m->proto_max);
    return 0;
}

/* Names are shown in logs and on the dashboard: printable ASCII or UTF-8 bytes, no controls. */
static int get_name(struct exo_reader *r, char *name, struct exo_diag *diag)
{
    size_t n = 0;
    const uint8_t *p = exo_reader_bytes(r, EXO_MEMBERS_NAME_MAX, &n);
    if (!p)
        return fail(r, diag, "member name");
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] == 0x7f)
            return exo_diag_set(diag, EXO_EFORMAT, "gossip: control byte 0x%02x in member name",
                                p[i]);
    memcpy(name, p, n);
    name[n] = '\0';
    return 0;
}

int exo_members_wire_get_node(struct exo_reader *r, struct exo_members_node *n,
                              struct exo_diag *diag)
{
    int rc;
    n->state = exo_reader_u8(r);
    n->incarnation = exo_reader_varint(r);
    get_id(r, n->id);
    if (r->err)
        return fail(r, diag, "member record");
    if (n->state > EXO_MEMBER_STATE_LEFT)
        return exo_diag_set(diag, EXO_EFORMAT, "gossip: member state %u", n->state);
    if ((rc = get_addr(r, &n->addr, diag)) < 0 || (rc = get_name(r, n->name, diag)) < 0 ||
        (rc = get_meta(r, &n->meta, diag)) < 0)
        return rc;
    return 0;
}

int exo_members_wire_open(struct exo_reader *r, struct exo_diag *diag)
{
    uint8_t version = exo_reader_u8(r);
    exo_reader_u8(r); /* flags: none defined yet, so any value is ignored */
    if (r->err)
        return fail(r, diag, "packet header");
    if (version != EXO_MEMBERS_PROTO)
        return exo_diag_set(diag, EXO_EUNSUPPORTED, "gossip: wire version %u, expected %u", version,
                            EXO_MEMBERS_PROTO);
    return 0;
}

int exo_members_wire_next(struct exo_reader *r, uint8_t *ret_type, const uint8_t **ret_body,
                          size_t *ret_len, struct exo_diag *diag)
{
    if (exo_reader_left(r) == 0)
        return r->err ? fail(r, diag, "message") : 0;
    uint8_t type = exo_reader_u8(r);
    size_t len = 0;
    const uint8_t *body = exo_reader_bytes(r, EXO_MEMBERS_STREAM_MAX, &len);
    if (!body)
        return fail(r, diag, "message framing");
    *ret_type = type;
    *ret_body = body;
    *ret_len = len;
    return 1;
}

/* Walk the node records of a push-pull once so that members.c can trust the count. */
static int check_nodes(const uint8_t *p, size_t len, uint32_t count, struct exo_diag *diag)
{
    struct exo_reader r;
    exo_reader_init(&r, p, len);
    for (uint32_t i = 0; i < count; i++) {
        struct exo_members_node node;
        int rc = exo_members_wire_get_node(&r, &node, diag);
        if (rc < 0)
            return rc;
    }
    if (exo_reader_left(&r) != 0)
        return exo_diag_set(diag, EXO_EFORMAT, "gossip: %zu bytes after %u member records",
                            exo_reader_left(&r), count);
    return 0;
}

int exo_members_wire_decode(uint8_t type, const uint8_t *body, size_t len,
                            struct exo_members_msg *msg, struct exo_diag *diag)
{
    struct exo_reader r;
    int rc = 0;
    exo_reader_init(&r, body, len);
    memset(msg, 0, sizeof(*msg));
    msg->type = type;
    switch (type) {
    case EXO_MEMBERS_MSG_PING:
        msg->ping.seq = get_u32_varint(&r);
        get_id(&r, msg->ping.target);
        get_id(&r, msg->ping.source);
        if (r.err)
            return fail(&r, diag, "ping");
        return get_addr(&r, &msg->ping.source_addr, diag);
    case EXO_MEMBERS_MSG_INDIRECT_PING:
        msg->indirect.seq = get_u32_varint(&r);
        get_id(&r, msg->indirect.target);
        if (r.err)
            return fail(&r, diag, "indirect ping");
        if ((rc = get_addr(&r, &msg->indirect.target_addr, diag)) < 0)
            return rc;
        msg->indirect.want_nack = exo_reader_u8(&r) & FLAG_WANT_NACK;
        get_id(&r, msg->indirect.source);
        if (r.err)
            return fail(&r, diag, "indirect ping");
        return get_addr(&r, &msg->indirect.source_addr, diag);
    case EXO_MEMBERS_MSG_ACK:
        msg->ack.seq = get_u32_varint(&r);
        msg->ack.relayed = exo_reader_u8(&r) & FLAG_RELAYED;
        return r.err ? fail(&r, diag, "ack") : 0;
    case EXO_MEMBERS_MSG_NACK:
        msg->ack.seq = get_u32_varint(&r);
        return r.err ? fail(&r, diag, "nack") : 0;
    case EXO_MEMBERS_MSG_ALIVE:
        if ((rc = exo_members_wire_get_node(&r, &msg->alive, diag)) < 0)
            return rc;
        if (msg->alive.state != EXO_MEMBER_STATE_ALIVE)
            return exo_diag_set(diag, EXO_EFORMAT, "gossip: alive message with state %u",
                                msg->alive.state);
        return 0;
    case EXO_MEMBERS_MSG_SUSPECT:
    case EXO_MEMBERS_MSG_DEAD:
        msg->suspect.incarnation = exo_reader_varint(&r);
        get_id(&r, msg->suspect.id);
        get_id(&r, msg->suspect.from);
        return r.err ? fail(&r, diag, type == EXO_MEMBERS_MSG_DEAD ? "dead" : "suspect") : 0;
    case EXO_MEMBERS_MSG_USER:
        get_id(&r, msg->user.origin);
        msg->user.msg_id = exo_reader_u64(&r);
        msg->user.data = exo_reader_bytes(&r, EXO_MEMBERS_BROADCAST_MAX, &msg->user.len);
        return r.err ? fail(&r, diag, "broadcast") : 0;
    case EXO_MEMBERS_MSG_APP:
        get_id(&r, msg->app.from);
        msg->app.data = exo_reader_bytes(&r, EXO_MEMBERS_MESSAGE_MAX, &msg->app.len);
        return r.err ? fail(&r, diag, "application message") : 0;
    case EXO_MEMBERS_MSG_PUSH_PULL: {
        uint8_t flags = exo_reader_u8(&r);
        msg->push_pull.join = flags & FLAG_JOIN;
        msg->push_pull.reply = flags & FLAG_REPLY;
        get_id(&r, msg->push_pull.sender);
        if (r.err)
            return fail(&r, diag, "push-pull");
        if ((rc = get_addr(&r, &msg->push_pull.sender_addr, diag)) < 0)
            return rc;
        msg->push_pull.count = get_u32_varint(&r);
        msg->push_pull.nodes =
            exo_reader_bytes(&r, EXO_MEMBERS_STREAM_MAX, &msg->push_pull.nodes_len);
        msg->push_pull.app_state =
            exo_reader_bytes(&r, EXO_MEMBERS_APP_STATE_MAX, &msg->push_pull.app_state_len);
        if (r.err)
            return fail(&r, diag, "push-pull");
        /* The smallest node record is 32 bytes: a count beyond that is a lie, caught early. */
        if (msg->push_pull.count > msg->push_pull.nodes_len / 32)
            return exo_diag_set(diag, EXO_EFORMAT, "gossip: %u member records in %zu bytes",
                                msg->push_pull.count, msg->push_pull.nodes_len);
        return check_nodes(msg->push_pull.nodes, msg->push_pull.nodes_len, msg->push_pull.count,
                           diag);
    }
    default:
        return exo_diag_set(diag, EXO_ENOENT, "gossip: unknown message type %u", type);
    }
}
