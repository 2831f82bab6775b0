/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The membership wire codec, shared by members.c and members-codec.c (and the tests).
 *
 * A packet or stream message (the plaintext inside the seal) is:
 *
 *     0  1  wire version (EXO_MEMBERS_PROTO)
 *     1  1  flags, 0 (reserved)
 *     2  .  messages, each: u8 type | varint body length | body
 *
 * so a datagram can carry a probe and many piggybacked broadcasts ("compound" packets), and a
 * message type this version does not know is skipped by its length. Bodies may grow at the end in
 * later versions: a decoder reads the fields it knows and ignores the rest. Integers are varints
 * unless noted; an id is 16 raw bytes; strings and byte fields are a varint length then bytes.
 *
 *     addr    u8 family (4 or 6) | 4 or 16 bytes | u16 port (LE, not 0)
 *     meta    u8 proto_min | u8 proto_max | u16 gossip | u16 api | u16 data | roles |
 *             leader priority (zigzag) | blob (<= 512)
 *     node    u8 state | incarnation | id | addr | name (<= 63, printable) | meta
 *
 *     PING           seq | target id | source id | source addr
 *     INDIRECT_PING  seq | target id | target addr | u8 flags (1 = wants a nack) | source id |
 *                    source addr
 *     ACK            seq | u8 flags (1 = relayed by an indirect prober)
 *     NACK           seq
 *     ALIVE          node (its state byte is ALIVE)
 *     SUSPECT, DEAD  incarnation | id | accuser id (DEAD with accuser == id means "left")
 *     USER           origin id | u64 message id (LE) | data (<= EXO_MEMBERS_BROADCAST_MAX)
 *     APP            sender id | data (<= EXO_MEMBERS_MESSAGE_MAX)
 *     PUSH_PULL      u8 flags (1 = join, 2 = reply) | sender id | sender addr | node count |
 *                    nodes (a byte field holding `count` nodes) | application state
 */
#ifndef EXO_CLUSTER_MEMBERS_INT_H
#define EXO_CLUSTER_MEMBERS_INT_H

#include "cluster/members.h"
#include "core/buf.h"
#include "core/error.h"

enum exo_members_msg_type {
    EXO_MEMBERS_MSG_PING = 1,
    EXO_MEMBERS_MSG_INDIRECT_PING,
    EXO_MEMBERS_MSG_ACK,
    EXO_MEMBERS_MSG_NACK,
    EXO_MEMBERS_MSG_ALIVE,
    EXO_MEMBERS_MSG_SUSPECT,
    EXO_MEMBERS_MSG_DEAD,
    EXO_MEMBERS_MSG_USER,
    EXO_MEMBERS_MSG_APP,
    EXO_MEMBERS_MSG_PUSH_PULL,
};

#define EXO_MEMBERS_HEADER_BYTES 2
/* Messages in one datagram; a 1400-byte packet cannot hold more than this many useful ones. */
#define EXO_MEMBERS_MAX_MSGS 256

struct exo_members_node {
    uint8_t state; /* enum exo_member_state */
    uint64_t incarnation;
    uint8_t id[EXO_MEMBERS_ID_BYTES];
    struct exo_members_addr addr;
    char name[EXO_MEMBERS_NAME_MAX + 1];
    struct exo_members_meta meta; /* blob borrowed from the decoded bytes */
};

struct exo_members_msg {
    uint8_t type; /* enum exo_members_msg_type */
    union {
        struct {
            uint32_t seq;
            uint8_t target[EXO_MEMBERS_ID_BYTES];
            uint8_t source[EXO_MEMBERS_ID_BYTES];
            struct exo_members_addr source_addr;
        } ping;
        struct {
            uint32_t seq;
            uint8_t target[EXO_MEMBERS_ID_BYTES];
            struct exo_members_addr target_addr;
            bool want_nack;
            uint8_t source[EXO_MEMBERS_ID_BYTES];
            struct exo_members_addr source_addr;
        } indirect;
        struct {
            uint32_t seq; /* ACK and NACK */
            bool relayed;
        } ack;
        struct exo_members_node alive;
        struct {
            uint64_t incarnation; /* SUSPECT and DEAD */
            uint8_t id[EXO_MEMBERS_ID_BYTES];
            uint8_t from[EXO_MEMBERS_ID_BYTES];
        } suspect;
        struct {
            uint8_t origin[EXO_MEMBERS_ID_BYTES];
            uint64_t msg_id;
            const uint8_t *data; /* borrowed from the decoded bytes */
            size_t len;
        } user;
        struct {
            uint8_t from[EXO_MEMBERS_ID_BYTES];
            const uint8_t *data; /* borrowed */
            size_t len;
        } app;
        struct {
            bool join, reply;
            uint8_t sender[EXO_MEMBERS_ID_BYTES];
            struct exo_members_addr sender_addr;
            uint32_t count;
            const uint8_t *nodes; /* borrowed: `count` encoded nodes */
            size_t nodes_len;
            const uint8_t *app_state; /* borrowed */
            size_t app_state_len;
        } push_pull;
    };
};

/* Start a packet: the version and flags bytes. */
void exo_members_wire_begin(struct exo_buf *out);

/* Append msg as type | length | body. scratch (borrowed, reused between calls) holds the body
 * while its length is unknown. Errors stick in out->err. */
void exo_members_wire_put(struct exo_buf *out, struct exo_buf *scratch,
                          const struct exo_members_msg *msg);

/* Append one node record (push-pull bodies are built from these). */
void exo_members_wire_put_node(struct exo_buf *out, const struct exo_members_node *node);

/* Read one node record; 0 or a negative code (diag names the field and offset). */
int exo_members_wire_get_node(struct exo_reader *r, struct exo_members_node *ret_node,
                              struct exo_diag *diag);

/* Check the packet header; leaves r at the first message. EXO_EUNSUPPORTED for another version. */
int exo_members_wire_open(struct exo_reader *r, struct exo_diag *diag);

/* The next message's type and body (borrowed from the reader's bytes); 1 when one was read, 0 at
 * the end, negative on broken framing. */
int exo_members_wire_next(struct exo_reader *r, uint8_t *ret_type, const uint8_t **ret_body,
                          size_t *ret_len, struct exo_diag *diag);

/* Decode a body of a known type. EXO_ENOENT for an unknown type (to be skipped), EXO_EFORMAT or
 * EXO_ETRUNCATED or EXO_ETOOBIG for a bad one. Pointers in *ret_msg borrow from body. */
int exo_members_wire_decode(uint8_t type, const uint8_t *body, size_t len,
                            struct exo_members_msg *ret_msg, struct exo_diag *diag);

#endif
