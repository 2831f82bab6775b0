/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mDNS / DNS-SD discovery of exo peers on the local links (RFC 6762, RFC 6763).
 *
 * One struct exo_mdns is both a responder, which advertises this node as
 * `<instance>.<service>.local` (PTR, SRV, TXT and the host's A/AAAA records), and a querier,
 * which browses `<service>.local` continuously and reports every other instance it finds, with
 * its addresses, port and TXT strings. mDNS only finds peers: liveness is gossip's job, so a peer
 * is reported gone only on a goodbye or when its records expire.
 *
 * Everything runs on the given libuv loop and never blocks it; the callbacks run on that loop.
 * See docs/internals/mdns.md for the timers, the records and what is dropped and why.
 */
#ifndef EXO_NET_MDNS_H
#define EXO_NET_MDNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define EXO_MDNS_PORT       5353
#define EXO_MDNS_PEER_ADDRS 8
#define EXO_MDNS_TXT_MAX    1024 /* bytes of encoded TXT rdata we advertise or accept */
#define EXO_MDNS_MAX_PEERS  256  /* instances cached at once; more are dropped and counted */

struct exo_mdns;

/* Everything is borrowed for the call and copied. */
struct exo_mdns_config {
    const char *instance;   /* instance label, e.g. the node id in hex; at most 56 bytes */
    const char *service;    /* "_exo._udp" */
    const char *host;       /* host label; ".local" is appended; unique per daemon */
    uint16_t port;          /* gossip port advertised in SRV */
    const char *const *txt; /* "key=value" strings (DESIGN.md section 4); each <= 255 bytes */
    size_t n_txt;
    const char *bind_ifname; /* NULL: every multicast-capable interface; else only this one */
    bool ipv6;               /* also ff02::fb over IPv6, and advertise AAAA records */
};

/* A discovered instance, as reported to the callback. Every pointer is borrowed and valid only
 * during the callback. */
struct exo_mdns_peer {
    const char *instance; /* the instance label, without the service and domain */
    const char *host;     /* SRV target in presentation form, e.g. "node-1.local" */
    struct sockaddr_storage addrs[EXO_MDNS_PEER_ADDRS]; /* port set; IPv6 link-local scoped */
    size_t n_addrs;
    uint16_t port;
    const char *const *txt; /* NUL-terminated TXT strings ("key=value") */
    size_t n_txt;
    uint32_t ttl;       /* SRV TTL in seconds */
    const char *ifname; /* interface it was last heard on */
};

/* A peer appeared or changed (gone false), or left or expired (gone true; only instance and
 * ifname are set then). The callback may call exo_mdns_stop. */
typedef void (*exo_mdns_peer_cb)(void *ud, const struct exo_mdns_peer *peer, bool gone);

struct exo_mdns_stats {
    uint64_t rx_packets;      /* datagrams read */
    uint64_t tx_packets;      /* datagrams sent */
    uint64_t tx_errors;       /* sends that failed (they are not retried) */
    uint64_t drop_malformed;  /* did not parse, or a bad opcode/rcode */
    uint64_t drop_offlink;    /* source not on the receiving link, or an interface we do not use */
    uint64_t drop_own;        /* our own multicast looped back */
    uint64_t drop_toobig;     /* longer than EXO_DNS_PACKET_MAX */
    uint64_t drop_port;       /* a response whose source port is not the mDNS port */
    uint64_t drop_cache_full; /* instances evicted or refused: EXO_MDNS_MAX_PEERS cached */
    uint64_t conflicts;       /* times our instance name was taken and changed */
};

/* Open the sockets, join the group on the interfaces and start probing for the instance name.
 * The callback and ud are borrowed until exo_mdns_stop's done_cb. *ret (owned by the caller, to
 * be released with exo_mdns_stop) is written only on success. EXO_EINVAL for a bad config,
 * EXO_EBUSY when the port is taken by a socket without SO_REUSEPORT, other codes on socket
 * errors. */
int exo_mdns_start(uv_loop_t *loop, const struct exo_mdns_config *cfg, exo_mdns_peer_cb cb,
                   void *ud, struct exo_mdns **ret);

/* Replace the TXT strings (borrowed, copied) and announce them again. 0 or EXO_EINVAL. */
int exo_mdns_update_txt(struct exo_mdns *m, const char *const *txt, size_t n_txt);

/* Send goodbyes (TTL 0) for the advertised service records, close every handle and free m, then
 * call done_cb(ud) (if not NULL) from the loop. m must not be used after this call; accepts
 * NULL (done_cb is then not called). */
void exo_mdns_stop(struct exo_mdns *m, void (*done_cb)(void *ud), void *ud);

/* Counters since start. */
void exo_mdns_get_stats(const struct exo_mdns *m, struct exo_mdns_stats *ret);

/* The instance label now advertised: the configured one, or "<name> (N)" after a conflict.
 * Borrowed; valid until the next loop iteration. */
const char *exo_mdns_instance(const struct exo_mdns *m);

#endif
