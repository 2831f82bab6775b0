/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cluster membership: SWIM with the Lifeguard extensions, written as a sans-IO state machine.
 *
 * The machine never reads a clock or touches a socket. The caller hands it bytes with
 * exo_members_receive() and the time with every call, calls exo_members_tick() at (or after) the
 * deadline it returns, and sends what the machine asks for through the io callbacks: datagrams
 * (send_packet, at most config.max_packet bytes) and reliable messages (send_stream, TCP in
 * production). The same code therefore runs over libuv sockets (cluster/transport.c) and over the
 * in-memory network of the simulation (cluster/sim.c) with a virtual clock.
 *
 * Times are microseconds on the caller's monotonic clock (RTTs on a LAN are well under a
 * millisecond, and placement needs them). Intervals in the configuration are milliseconds.
 *
 * What the machine does, with memberlist's LAN defaults as the baseline (docs/internals/
 * membership.md explains each choice): one randomized round-robin probe per interval, indirect
 * probes through k members that answer with nacks, a TCP fallback ping, suspicion with a timeout
 * that shrinks as independent confirmations arrive, incarnation numbers and refutation, local
 * health awareness that slows probing when this node is the one in trouble, the buddy system,
 * piggybacked dissemination with a retransmit limit, periodic gossip and push-pull anti-entropy,
 * graceful leave, reaping of dead members, rejoin of seeds while isolated and reconnection
 * attempts to recently failed members (which is what heals a long partition). Beyond memberlist,
 * the extensions marked in struct exo_members_config (corrections of stale accusations, a
 * last-chance probe before a death, confirmation probes, eager gossip, a resync after joining)
 * halve detection time without false deaths at 20% loss in the simulator.
 *
 * Threads: one instance belongs to one thread (the loop thread). Callbacks run inside receive,
 * tick, join, leave and send; they may call exo_members_broadcast, exo_members_send and the
 * read-only functions, and must not free the instance or re-enter receive or tick.
 */
#ifndef EXO_CLUSTER_MEMBERS_H
#define EXO_CLUSTER_MEMBERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define EXO_MEMBERS_ID_BYTES     16
#define EXO_MEMBERS_NAME_MAX     63
#define EXO_MEMBERS_BLOB_MAX     512
#define EXO_MEMBERS_DEFAULT_PORT 52416
/* The wire protocol this code speaks (meta.proto_min..proto_max advertise the range). */
#define EXO_MEMBERS_PROTO 1
/* Largest datagram by default; the transport lowers it by the sealing overhead. */
#define EXO_MEMBERS_PACKET_MAX 1400
/* Largest reliable (stream) message: a push-pull of a full cluster with full blobs fits. */
#define EXO_MEMBERS_STREAM_MAX (6u << 20)
/* Application payloads: a piggybacked broadcast, a direct message, the push-pull state. */
#define EXO_MEMBERS_BROADCAST_MAX 1024
#define EXO_MEMBERS_MESSAGE_MAX   (64u << 10)
#define EXO_MEMBERS_APP_STATE_MAX (1u << 20)

enum exo_members_family {
    EXO_MEMBERS_FAMILY_NONE = 0,
    EXO_MEMBERS_FAMILY_IPV4 = 4,
    EXO_MEMBERS_FAMILY_IPV6 = 6,
};

struct exo_members_addr {
    uint8_t family; /* enum exo_members_family */
    uint8_t ip[16]; /* network byte order; IPv4 uses the first 4 bytes */
    uint16_t port;
};

/* What a member says about itself; changes are gossiped with a higher incarnation. */
struct exo_members_meta {
    uint8_t proto_min, proto_max;
    uint16_t gossip_port, api_port, data_port;
    uint32_t roles;
    int32_t leader_priority;
    const uint8_t *blob; /* opaque application bytes, at most EXO_MEMBERS_BLOB_MAX; see below */
    size_t blob_len;
};

enum exo_member_state {
    EXO_MEMBER_STATE_ALIVE = 0,
    EXO_MEMBER_STATE_SUSPECT,
    EXO_MEMBER_STATE_DEAD,
    EXO_MEMBER_STATE_LEFT,
};

/* A read-only view of one member. meta.blob points into the instance and stays valid until the
 * next call that can change membership (receive, tick, join, leave, update_meta). */
struct exo_member_info {
    uint8_t id[EXO_MEMBERS_ID_BYTES];
    char name[EXO_MEMBERS_NAME_MAX + 1];
    struct exo_members_addr addr;
    struct exo_members_meta meta;
    uint64_t incarnation;
    enum exo_member_state state;
    uint64_t state_since_us;
    uint32_t rtt_us;     /* smoothed round trip of direct probes; 0 until the first sample */
    uint32_t rtt_var_us; /* its mean deviation */
    bool is_self;
};

enum exo_members_event {
    EXO_MEMBERS_EVENT_JOIN = 0, /* a new member, or a dead or departed one back */
    EXO_MEMBERS_EVENT_UPDATE,   /* metadata or address changed */
    EXO_MEMBERS_EVENT_SUSPECT,
    EXO_MEMBERS_EVENT_ALIVE, /* a suspect refuted the suspicion */
    EXO_MEMBERS_EVENT_DEAD,
    EXO_MEMBERS_EVENT_LEFT,
};

/* How the machine reaches the network. Both callbacks are required; the bytes are borrowed for
 * the call. Delivery is best effort for packets and at most once for streams. */
struct exo_members_io {
    void *ctx;
    void (*send_packet_cb)(void *ctx, const struct exo_members_addr *to, const uint8_t *data,
                           size_t len);
    void (*send_stream_cb)(void *ctx, const struct exo_members_addr *to, const uint8_t *data,
                           size_t len);
};

/* What the application hears and contributes, in the spirit of memberlist's Delegate. Every
 * callback is optional; pointers passed to them are borrowed for the call. */
struct exo_members_delegate {
    void *ctx;
    /* Events about other members (never about this node). */
    void (*event_cb)(void *ctx, enum exo_members_event event, const struct exo_member_info *member);
    /* An application message: `broadcast` for one sent with exo_members_broadcast (delivered
     * once per node), otherwise a direct one from exo_members_send. */
    void (*message_cb)(void *ctx, const uint8_t from[EXO_MEMBERS_ID_BYTES], const uint8_t *data,
                       size_t len, bool broadcast);
    /* Append this node's application state to out (capped at EXO_MEMBERS_APP_STATE_MAX) for a
     * push-pull exchange; `join` when the exchange is a join. */
    void (*local_state_cb)(void *ctx, bool join, struct exo_buf *out);
    /* The state another node appended to its push-pull. */
    void (*merge_state_cb)(void *ctx, bool join, const uint8_t *data, size_t len);
};

struct exo_members_config {
    uint8_t id[EXO_MEMBERS_ID_BYTES]; /* persistent node id, supplied by the daemon */
    char name[EXO_MEMBERS_NAME_MAX + 1];
    struct exo_members_addr addr; /* where others reach us (UDP and TCP on the same port) */
    struct exo_members_meta meta; /* blob borrowed for the create call (copied) */
    /* Start above any incarnation a previous run of this node may have used, e.g. the wall-clock
     * seconds at start; a lower one still works, via refutation, but more slowly. */
    uint64_t incarnation;
    uint64_t seed; /* for the randomized choices, mixed with the incarnation (so that a restart
                      with the same seed does not repeat its broadcast ids); the simulation
                      replays runs with it */

    uint32_t probe_interval_ms;  /* 500 (memberlist: 1000) */
    uint32_t probe_timeout_ms;   /* 250 (memberlist: 500) */
    uint32_t indirect_checks;    /* 3 */
    uint32_t suspicion_mult;     /* 4 */
    uint32_t suspicion_max_mult; /* 6 */
    uint32_t retransmit_mult;    /* 4 */
    uint32_t gossip_interval_ms; /* 200 */
    uint32_t gossip_nodes;       /* 3 */
    uint32_t dead_gossip_ms;     /* 30000: dead members are gossiped to, then reaped */
    uint32_t push_pull_ms;       /* 30000, scaled up beyond 32 members; 0 disables */
    uint32_t awareness_max;      /* 8 */
    uint32_t rejoin_ms;          /* 5000: retry seeds at most this often while alone (the
                                  * first retry comes after 250 ms, then the wait doubles) */
    uint32_t reconnect_ms;       /* 10000: push-pull with one recently failed member */
    uint32_t reconnect_keep_ms;  /* 3600000: how long a failed member is worth retrying */
    bool tcp_ping;               /* true */
    /* Beyond memberlist (docs/internals/membership.md measures each): */
    uint32_t gossip_eager_ms; /* 20: gossip fresh news this soon, at most once per interval */
    bool confirm_probes;      /* true: probe a member soon after someone else suspects it */
    bool corrections;         /* true: answer a stale accusation with the newer statement */
    bool join_resync;         /* true: a second push-pull 1-2 intervals after joining */
    bool verify_suspects;     /* true: probe once more before declaring a suspect dead */
    size_t max_packet;        /* EXO_MEMBERS_PACKET_MAX */
    size_t max_members;       /* 4096 */
    size_t max_queue;         /* 8192 queued broadcasts */
};

/* Statistics for /metrics. Counters only grow; the gauges at the end are current values. */
enum exo_members_drop {
    EXO_MEMBERS_DROP_MALFORMED = 0, /* bad framing or a message that does not decode */
    EXO_MEMBERS_DROP_TOO_BIG,
    EXO_MEMBERS_DROP_VERSION,      /* unknown wire version */
    EXO_MEMBERS_DROP_UNKNOWN_TYPE, /* skipped, for forward compatibility */
    EXO_MEMBERS_DROP_MISDIRECTED,  /* a ping for another node id */
    EXO_MEMBERS_DROP_INCOMPATIBLE, /* a member whose protocol range excludes ours */
    EXO_MEMBERS_DROP_MEMBER_CAP,
    EXO_MEMBERS_DROP_QUEUE_FULL,
    EXO_MEMBERS_DROP_RELAY_FULL,
    EXO_MEMBERS_DROP_UNKNOWN_ORIGIN, /* an application broadcast from a non-member */
    EXO_MEMBERS_DROP__COUNT
};

struct exo_members_stats {
    uint64_t probes, probe_acks, probe_failures, verifications, verified_alive;
    uint64_t indirect_probes, indirect_relayed, nacks_sent, nacks_received, tcp_pings;
    uint64_t suspicions;         /* members this node marked suspect (first hearing) */
    uint64_t confirmations;      /* independent suspicions of an already suspect member */
    uint64_t suspicions_refuted; /* suspects that proved alive: the would-be false positives */
    uint64_t refutations;        /* times this node refuted a suspicion or death of itself */
    uint64_t deaths, lefts, joins;
    uint64_t packets_in, packets_out, bytes_in, bytes_out;
    uint64_t streams_in, streams_out, stream_bytes_in, stream_bytes_out;
    uint64_t push_pulls, broadcasts_queued, broadcasts_dropped, corrections;
    uint64_t dropped[EXO_MEMBERS_DROP__COUNT];
    uint32_t awareness; /* Lifeguard health score: 0 healthy .. awareness_max - 1 */
    uint32_t alive, suspect, dead, left;
    uint32_t queued; /* broadcasts waiting to be sent */
};

struct exo_members;

/* Defaults as documented in struct exo_members_config; id, name, addr and meta still to fill. */
void exo_members_config_init(struct exo_members_config *cfg);

/* A machine starting at now_us with no peers. cfg, io and delegate (may be NULL) are copied;
 * io->ctx and delegate->ctx are borrowed until exo_members_free. *ret_members is owned by the
 * caller. EXO_EINVAL for a bad configuration. */
int exo_members_create(const struct exo_members_config *cfg, const struct exo_members_io *io,
                       const struct exo_members_delegate *delegate, uint64_t now_us,
                       struct exo_members **ret_members);
void exo_members_free(struct exo_members *m);

/* Contact seeds (borrowed array) with a join push-pull now, and remember them (up to 64) for
 * rejoining while isolated. Our own address is skipped. */
int exo_members_join(struct exo_members *m, const struct exo_members_addr *seeds, size_t n,
                     uint64_t now_us);

/* Feed one datagram (reliable false) or stream message (reliable true) from `from` (borrowed).
 * Returns 0, or a negative code when some or all of it was refused (it is counted either way). */
int exo_members_receive(struct exo_members *m, const struct exo_members_addr *from,
                        const uint8_t *data, size_t len, bool reliable, uint64_t now_us);

/* Run whatever is due at now_us; returns the next deadline (absolute, microseconds). */
uint64_t exo_members_tick(struct exo_members *m, uint64_t now_us);
uint64_t exo_members_next_deadline(const struct exo_members *m);

/* Announce a graceful departure. The caller keeps the loop running for about a second so the
 * news spreads, then frees the instance. */
int exo_members_leave(struct exo_members *m, uint64_t now_us);

/* Change this node's metadata (blob borrowed, copied) and gossip it with a higher incarnation. */
int exo_members_update_meta(struct exo_members *m, const struct exo_members_meta *meta,
                            uint64_t now_us);

/* Disseminate data (borrowed, at most EXO_MEMBERS_BROADCAST_MAX) to every member by piggyback;
 * each node delivers it once. EXO_ENOSPC when the queue is full. */
int exo_members_broadcast(struct exo_members *m, const void *data, size_t len);

/* Send data (borrowed, at most EXO_MEMBERS_MESSAGE_MAX) to one member: a datagram when it fits,
 * a stream otherwise. EXO_ENOENT for an unknown or dead member. */
int exo_members_send(struct exo_members *m, const uint8_t id[EXO_MEMBERS_ID_BYTES],
                     const void *data, size_t len, uint64_t now_us);

/* Members in any of the states in mask (bit 1 << state), this node included. */
size_t exo_members_count(const struct exo_members *m, unsigned state_mask);
int exo_members_get(const struct exo_members *m, const uint8_t id[EXO_MEMBERS_ID_BYTES],
                    struct exo_member_info *ret_info);
/* Fill out[0..cap) (borrowed) with members in no particular order; returns how many exist. */
size_t exo_members_list(const struct exo_members *m, struct exo_member_info *out, size_t cap);
void exo_members_get_stats(const struct exo_members *m, struct exo_members_stats *ret_stats);
const char *exo_members_drop_name(enum exo_members_drop reason);
const char *exo_members_state_name(enum exo_member_state state);
const char *exo_members_event_name(enum exo_members_event event);

/* The formulas, exposed so they can be tested against tables and quoted by the docs. */
/* Lower bound of a suspicion: mult * max(1, log10(n)) * interval. */
uint64_t exo_members_suspicion_min_ms(uint32_t mult, size_t n, uint32_t interval_ms);
/* Timeout (from the start of the suspicion) after c of k expected confirmations:
 * max - (max - min) * log(c + 1) / log(k + 1), never below min; min when k is 0. */
uint64_t exo_members_suspicion_timeout_ms(uint64_t min_ms, uint64_t max_ms, uint32_t k, uint32_t c);
/* How many times each broadcast is sent: mult * ceil(log10(n + 1)). */
uint32_t exo_members_retransmit_limit(uint32_t mult, size_t n);
/* Push-pull period: base up to 32 members, then one more base per doubling (memberlist's). */
uint64_t exo_members_push_pull_ms(uint32_t base_ms, size_t n);

/* "1.2.3.4:52416" or "[fe80::1]:52416" into buf (borrowed). */
void exo_members_addr_format(const struct exo_members_addr *addr, char *buf, size_t len);
bool exo_members_addr_equal(const struct exo_members_addr *a, const struct exo_members_addr *b);

#endif
