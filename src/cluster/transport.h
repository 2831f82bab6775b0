/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gossip transport: libuv UDP and TCP sockets for the membership state machine.
 *
 * It binds UDP and TCP on the gossip port (52416 by default) for IPv4 and, where the host has it,
 * IPv6; seals every datagram and every TCP frame with exo_seal and opens what arrives; feeds the
 * plaintext to exo_members_receive; drives exo_members_tick from a uv_timer at the deadline the
 * machine asks for; and resolves --join and mDNS addresses without blocking.
 *
 * TCP carries one frame per connection: u32 LE length | sealed message, then the sender shuts
 * down its side. That suits the traffic (push-pull every 30 s, TCP pings only when UDP fails),
 * keeps no connection state between messages, and answers travel on a connection of their own.
 * Frames are capped, connects and reads time out, and connections are capped in each direction.
 *
 * Threads: everything here runs on the loop thread; nothing blocks it (sends use uv_udp_try_send
 * or queued writes, names resolve with uv_getaddrinfo).
 */
#ifndef EXO_CLUSTER_TRANSPORT_H
#define EXO_CLUSTER_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/members.h"

struct exo_seal;

struct exo_transport_config {
    const char *bind_v4;               /* "0.0.0.0" when NULL; "" to skip IPv4 */
    const char *bind_v6;               /* "::" when NULL; "" to skip IPv6 */
    uint16_t port;                     /* EXO_MEMBERS_DEFAULT_PORT when 0 and !ephemeral */
    bool ephemeral;                    /* let the kernel pick a free port (tests) */
    struct exo_members_addr advertise; /* family 0: the bind address, or the first
                                          non-loopback IPv4 when bound to any */
    size_t max_conns;                  /* per direction; 64 when 0 */
    uint32_t connect_timeout_ms;       /* 3000 when 0 */
    uint32_t io_timeout_ms;            /* 10000 when 0: a connection idle this long is closed */
    struct exo_seal *seal;             /* borrowed, required; must outlive the transport */
};

struct exo_transport_stats {
    uint64_t udp_in, udp_out, udp_send_failed, udp_queue_full;
    uint64_t tcp_accepted, tcp_refused, tcp_connects, tcp_connect_failed, tcp_timeouts;
    uint64_t frames_in, frames_out, frames_too_big, frames_dropped;
    uint64_t opened, open_failed; /* messages that passed or failed exo_seal_open */
    uint64_t resolve_failed;
};

struct exo_transport;

/* Bind the sockets on loop (borrowed), create the state machine from members_cfg (copied; its
 * addr is set from the bound port and the advertised address) with the delegate (copied, may be
 * NULL) and start. *ret_transport is owned by the caller and released by exo_transport_close.
 * On failure nothing is returned, but handles may be closing: run the loop to release them.
 * EXO_EBUSY when the port (or, with `ephemeral`, the port UDP was given) is taken for TCP. */
int exo_transport_create(uv_loop_t *loop, const struct exo_transport_config *cfg,
                         const struct exo_members_config *members_cfg,
                         const struct exo_members_delegate *delegate,
                         struct exo_transport **ret_transport);

/* Join through "host", "host:port", "1.2.3.4:port", "[v6]:port" strings (borrowed). Numeric
 * addresses are contacted at once; names are resolved asynchronously, then contacted. */
int exo_transport_join(struct exo_transport *t, const char *const *hostports, size_t n);
/* Join through addresses already known, e.g. found by mDNS (borrowed array). */
int exo_transport_join_addrs(struct exo_transport *t, const struct exo_members_addr *addrs,
                             size_t n);

/* Announce a graceful leave; keep the loop running about a second, then close. */
int exo_transport_leave(struct exo_transport *t);

/* Re-arm the tick timer at the state machine's next deadline. Call it after using the machine
 * from outside the transport's own callbacks (exo_members_broadcast queues news whose eager
 * gossip would otherwise wait for the next regular tick). */
void exo_transport_kick(struct exo_transport *t);

/* The state machine (borrowed, valid until close) for reading membership and stats. */
struct exo_members *exo_transport_members(struct exo_transport *t);
void exo_transport_local_addr(const struct exo_transport *t, struct exo_members_addr *ret_addr);
void exo_transport_get_stats(const struct exo_transport *t, struct exo_transport_stats *ret_stats);

/* Close every handle; the memory is released once libuv has closed them, so the caller runs the
 * loop afterwards (uv_run returns when nothing is left). Accepts NULL. */
void exo_transport_close(struct exo_transport *t);

/* Parse "host", "host:port" or "[v6]:port" into host (borrowed buffer) and port. */
int exo_transport_parse_hostport(const char *text, char *host, size_t host_len, uint16_t *port);

#endif
