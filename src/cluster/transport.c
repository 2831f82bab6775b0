/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libuv glue between the gossip sockets and the membership state machine (see transport.h).
 *
 * Threads: only the loop thread runs this file. Lifetimes: the transport owns its handles (two
 * UDP, two TCP listeners, the tick timer), one struct conn per TCP connection (a tcp handle and
 * a timer), and one struct resolve per name lookup in flight. exo_transport_close closes them
 * all; each close callback drops a reference, and the last one frees the transport.
 */
#include "cluster/transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "net/seal.h"

#define DEFAULT_MAX_CONNS  64
#define DEFAULT_CONNECT_MS 3000
#define DEFAULT_IO_MS      10000
#define MAX_UDP_QUEUED     256 /* datagrams waiting in the kernel's stead when it said EAGAIN */
#define FRAME_MAX          (EXO_MEMBERS_STREAM_MAX + EXO_SEAL_OVERHEAD)
#define READ_CHUNK         65536
#define UDP_BUF            65536

struct conn {
    struct exo_transport *t;
    struct conn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect_req;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    struct exo_buf buf; /* inbound: bytes read so far; outbound: the frame to write */
    struct exo_members_addr peer;
    bool outbound;
    bool closing;
    int open_handles;
};

struct resolve {
    struct exo_transport *t;
    struct resolve *prev, *next;
    uv_getaddrinfo_t req;
    uint16_t port;
};

struct udp_send {
    uv_udp_send_t req;
    struct exo_transport *t;
    uint8_t data[];
};

struct exo_transport {
    uv_loop_t *loop;
    struct exo_transport_config cfg;
    struct exo_members *members;
    uv_udp_t udp4, udp6;
    uv_tcp_t tcp4, tcp6;
    uv_timer_t tick;
    bool has4, has6; /* the UDP and TCP handles of that family are open */
    bool closing;
    int refs; /* open handles, connections' handles and lookups in flight, plus one */
    struct conn *conns;
    struct resolve *resolves; /* lookups in flight, cancelled on close */
    size_t inbound, outbound, udp_queued;
    struct exo_members_addr local;
    uint8_t *udp_rbuf; /* [UDP_BUF] received datagrams */
    uint8_t *plain;    /* [FRAME_MAX] opened messages */
    uint8_t *sealed;   /* [UDP_BUF] sealed datagrams */
    struct exo_transport_stats stats;
};

/* ---- small helpers ---- */

static uint64_t now_us(void)
{
    return exo_clock_ns() / 1000;
}

static void addr_to_sockaddr(const struct exo_members_addr *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (a->family == EXO_MEMBERS_FAMILY_IPV6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(a->port);
        memcpy(&s6->sin6_addr, a->ip, 16);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(a->port);
        memcpy(&s4->sin_addr, a->ip, 4);
    }
}

static bool sockaddr_to_addr(const struct sockaddr *sa, struct exo_members_addr *a)
{
    memset(a, 0, sizeof(*a));
    /* Copies rather than casts: a struct sockaddr * need not be aligned for the wider types. */
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, sa, sizeof(s4));
        a->family = EXO_MEMBERS_FAMILY_IPV4;
        memcpy(a->ip, &s4.sin_addr, 4);
        a->port = ntohs(s4.sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 s6;
        memcpy(&s6, sa, sizeof(s6));
        /* An IPv4-mapped address is the IPv4 peer it stands for. */
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(&s6.sin6_addr, mapped, 12) == 0) {
            a->family = EXO_MEMBERS_FAMILY_IPV4;
            memcpy(a->ip, (const uint8_t *)&s6.sin6_addr + 12, 4);
        } else {
            a->family = EXO_MEMBERS_FAMILY_IPV6;
            memcpy(a->ip, &s6.sin6_addr, 16);
        }
        a->port = ntohs(s6.sin6_port);
        return true;
    }
    return false;
}

static void unref(struct exo_transport *t)
{
    if (--t->refs > 0)
        return;
    exo_members_free(t->members);
    exo_free(t->udp_rbuf);
    exo_free(t->plain);
    exo_free(t->sealed);
    exo_free(t);
}

static void on_handle_closed(uv_handle_t *h)
{
    unref(h->data);
}

static void close_handle(uv_handle_t *h)
{
    uv_close(h, on_handle_closed);
}

static void free_handle(uv_handle_t *h)
{
    exo_free(h);
}

static void on_tick(uv_timer_t *timer);

/* Ask for a tick at the machine's next deadline. */
static void reschedule(struct exo_transport *t)
{
    if (t->closing)
        return;
    uint64_t deadline = exo_members_next_deadline(t->members);
    uint64_t now = now_us();
    uint64_t wait_ms = deadline > now ? (deadline - now + 999) / 1000 : 0;
    uv_timer_start(&t->tick, on_tick, wait_ms, 0);
}

static void on_tick(uv_timer_t *timer)
{
    struct exo_transport *t = timer->data;
    exo_members_tick(t->members, now_us());
    reschedule(t);
}

/* Open a sealed message and hand it to the state machine. */
static void deliver(struct exo_transport *t, const struct exo_members_addr *from,
                    const uint8_t *data, size_t len, bool reliable)
{
    size_t plain_len = 0;
    if (exo_seal_open(t->cfg.seal, data, len, exo_clock_wall_ms(), t->plain, FRAME_MAX, &plain_len,
                      NULL) < 0) {
        t->stats.open_failed++;
        return;
    }
    t->stats.opened++;
    exo_members_receive(t->members, from, t->plain, plain_len, reliable, now_us());
    reschedule(t);
}

/* ---- UDP ---- */

static void udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct exo_transport *t = h->data;
    *buf = uv_buf_init((char *)t->udp_rbuf, UDP_BUF);
}

static void udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *sa,
                     unsigned flags)
{
    struct exo_transport *t = h->data;
    struct exo_members_addr from;
    if (nread <= 0 || !sa || t->closing || (flags & UV_UDP_PARTIAL))
        return;
    if (!sockaddr_to_addr(sa, &from))
        return;
    t->stats.udp_in++;
    deliver(t, &from, (const uint8_t *)buf->base, (size_t)nread, false);
}

static void udp_sent(uv_udp_send_t *req, int status)
{
    struct udp_send *s = (struct udp_send *)req;
    s->t->udp_queued--;
    if (status < 0)
        s->t->stats.udp_send_failed++;
    unref(s->t);
    exo_free(s);
}

static void send_packet_cb(void *ctx, const struct exo_members_addr *to, const uint8_t *data,
                           size_t len)
{
    struct exo_transport *t = ctx;
    uv_udp_t *h = to->family == EXO_MEMBERS_FAMILY_IPV6 ? &t->udp6 : &t->udp4;
    if (t->closing || !(to->family == EXO_MEMBERS_FAMILY_IPV6 ? t->has6 : t->has4))
        return;
    size_t n = 0;
    if (exo_seal_seal(t->cfg.seal, data, len, exo_clock_wall_ms(), t->sealed, UDP_BUF, &n) < 0)
        return;
    struct sockaddr_storage ss;
    addr_to_sockaddr(to, &ss);
    uv_buf_t buf = uv_buf_init((char *)t->sealed, (unsigned)n);
    int rc = uv_udp_try_send(h, &buf, 1, (const struct sockaddr *)&ss);
    if (rc >= 0) {
        t->stats.udp_out++;
        return;
    }
    if (rc != UV_EAGAIN) {
        t->stats.udp_send_failed++;
        return;
    }
    /* The socket buffer is full: queue a copy, within a bound (datagrams may be lost anyway). */
    struct udp_send *s = t->udp_queued < MAX_UDP_QUEUED ? exo_malloc(sizeof(*s) + n) : NULL;
    if (!s) {
        t->stats.udp_queue_full++;
        return;
    }
    s->t = t;
    memcpy(s->data, t->sealed, n);
    buf = uv_buf_init((char *)s->data, (unsigned)n);
    if (uv_udp_send(&s->req, h, &buf, 1, (const struct sockaddr *)&ss, udp_sent) < 0) {
        t->stats.udp_send_failed++;
        exo_free(s);
        return;
    }
    t->udp_queued++;
    t->refs++;
    t->stats.udp_out++;
}

/* ---- TCP ---- */

static void conn_unlink(struct conn *c)
{
    struct exo_transport *t = c->t;
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->outbound)
        t->outbound--;
    else
        t->inbound--;
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    struct exo_transport *t = c->t;
    exo_buf_free(&c->buf);
    exo_free(c);
    unref(t);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    conn_unlink(c);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void conn_timeout(uv_timer_t *timer)
{
    struct conn *c = timer->data;
    c->t->stats.tcp_timeouts++;
    conn_close(c);
}

static struct conn *conn_new(struct exo_transport *t, bool outbound)
{
    struct conn *c = exo_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->t = t;
    c->outbound = outbound;
    exo_buf_init(&c->buf, FRAME_MAX + 4 + READ_CHUNK);
    if (uv_tcp_init(t->loop, &c->tcp) < 0) {
        exo_free(c);
        return NULL;
    }
    uv_timer_init(t->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    t->refs++;
    c->next = t->conns;
    if (t->conns)
        t->conns->prev = c;
    t->conns = c;
    if (outbound)
        t->outbound++;
    else
        t->inbound++;
    return c;
}

static uint32_t load32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    if (exo_buf_reserve(&c->buf, READ_CHUNK) < 0) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS and we close */
        return;
    }
    *buf = uv_buf_init((char *)c->buf.data + c->buf.len, READ_CHUNK);
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    struct exo_transport *t = c->t;
    if (nread < 0) {
        conn_close(c); /* EOF, reset or no buffer: in every case this connection is done */
        return;
    }
    c->buf.len += (size_t)nread;
    uv_timer_start(&c->timer, conn_timeout, t->cfg.io_timeout_ms, 0);
    size_t off = 0;
    while (c->buf.len - off >= 4 && !t->closing) {
        uint32_t n = load32(c->buf.data + off);
        if (n > FRAME_MAX || n < EXO_SEAL_OVERHEAD) {
            t->stats.frames_too_big++;
            conn_close(c);
            return;
        }
        if (c->buf.len - off - 4 < n)
            break;
        t->stats.frames_in++;
        deliver(t, &c->peer, c->buf.data + off + 4, n, true);
        off += 4 + (size_t)n;
    }
    memmove(c->buf.data, c->buf.data + off, c->buf.len - off);
    c->buf.len -= off;
}

static void on_connection(uv_stream_t *server, int status)
{
    struct exo_transport *t = server->data;
    if (status < 0 || t->closing)
        return;
    struct conn *c = t->inbound < t->cfg.max_conns ? conn_new(t, false) : NULL;
    if (!c) {
        /* Over the cap: accept and reset, since libuv stops listening until we accept. */
        uv_tcp_t *tmp = exo_malloc(sizeof(*tmp));
        if (tmp && uv_tcp_init(t->loop, tmp) == 0) {
            if (uv_accept(server, (uv_stream_t *)tmp) == 0)
                uv_tcp_close_reset(tmp, free_handle);
            else
                uv_close((uv_handle_t *)tmp, free_handle);
        } else {
            exo_free(tmp);
        }
        t->stats.tcp_refused++;
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    t->stats.tcp_accepted++;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
        sockaddr_to_addr((struct sockaddr *)&ss, &c->peer);
    uv_timer_start(&c->timer, conn_timeout, t->cfg.io_timeout_ms, 0);
    uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_close(req->data);
}

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (status < 0 || c->closing) {
        conn_close(c);
        return;
    }
    c->t->stats.frames_out++;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        conn_close(c);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (c->closing)
        return;
    if (status < 0) {
        c->t->stats.tcp_connect_failed++;
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, conn_timeout, c->t->cfg.io_timeout_ms, 0);
    uv_buf_t buf = uv_buf_init((char *)c->buf.data, (unsigned)c->buf.len);
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) < 0)
        conn_close(c);
}

static void send_stream_cb(void *ctx, const struct exo_members_addr *to, const uint8_t *data,
                           size_t len)
{
    struct exo_transport *t = ctx;
    if (t->closing)
        return;
    if (t->outbound >= t->cfg.max_conns) {
        t->stats.frames_dropped++;
        return;
    }
    struct conn *c = conn_new(t, true);
    if (!c) {
        t->stats.frames_dropped++;
        return;
    }
    c->peer = *to;
    size_t n = 0;
    int rc = exo_buf_reserve(&c->buf, 4 + len + EXO_SEAL_OVERHEAD);
    if (rc == 0)
        rc = exo_seal_seal(t->cfg.seal, data, len, exo_clock_wall_ms(), c->buf.data + 4,
                           c->buf.cap - 4, &n);
    if (rc < 0) {
        t->stats.frames_dropped++;
        conn_close(c);
        return;
    }
    for (int i = 0; i < 4; i++)
        c->buf.data[i] = (uint8_t)(n >> (8 * i));
    c->buf.len = 4 + n;
    struct sockaddr_storage ss;
    addr_to_sockaddr(to, &ss);
    c->connect_req.data = c;
    t->stats.tcp_connects++;
    if (uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&ss, on_connected) < 0) {
        t->stats.tcp_connect_failed++;
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, conn_timeout, t->cfg.connect_timeout_ms, 0);
}

/* ---- binding ---- */

static int parse_ip(const char *text, uint16_t port, struct exo_members_addr *a)
{
    struct sockaddr_storage ss;
    if (uv_ip4_addr(text, port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(text, port, (struct sockaddr_in6 *)&ss) == 0) {
        sockaddr_to_addr((struct sockaddr *)&ss, a);
        return 0;
    }
    return EXO_EINVAL;
}

static bool is_any(const struct exo_members_addr *a)
{
    static const uint8_t zero[16];
    return memcmp(a->ip, zero, a->family == EXO_MEMBERS_FAMILY_IPV6 ? 16 : 4) == 0;
}

/* Bind UDP and TCP of one family on `port` (0: the kernel picks for UDP, TCP follows). */
static int bind_family(struct exo_transport *t, const char *host, uint16_t *port, bool v6)
{
    struct exo_members_addr a;
    if (parse_ip(host, *port, &a) < 0)
        return EXO_EINVAL;
    struct sockaddr_storage ss;
    addr_to_sockaddr(&a, &ss);
    uv_udp_t *u = v6 ? &t->udp6 : &t->udp4;
    uv_tcp_t *s = v6 ? &t->tcp6 : &t->tcp4;
    int family = v6 ? AF_INET6 : AF_INET;
    int rc = uv_udp_init_ex(t->loop, u, (unsigned)family);
    if (rc < 0)
        return exo_error_from_errno(rc);
    u->data = t;
    t->refs++;
    rc = uv_tcp_init_ex(t->loop, s, (unsigned)family);
    if (rc < 0) {
        close_handle((uv_handle_t *)u);
        return exo_error_from_errno(rc);
    }
    s->data = t;
    t->refs++;
    rc = uv_udp_bind(u, (const struct sockaddr *)&ss, v6 ? UV_UDP_IPV6ONLY : 0);
    if (rc == 0 && *port == 0) {
        struct sockaddr_storage got;
        int len = sizeof(got);
        uv_udp_getsockname(u, (struct sockaddr *)&got, &len);
        struct exo_members_addr ga;
        sockaddr_to_addr((struct sockaddr *)&got, &ga);
        *port = ga.port;
        a.port = ga.port;
        addr_to_sockaddr(&a, &ss);
    }
    if (rc == 0)
        rc = uv_tcp_bind(s, (const struct sockaddr *)&ss, v6 ? UV_TCP_IPV6ONLY : 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)s, 128, on_connection);
    if (rc == 0)
        rc = uv_udp_recv_start(u, udp_alloc, udp_recv);
    if (rc < 0) {
        close_handle((uv_handle_t *)u);
        close_handle((uv_handle_t *)s);
        return exo_error_from_errno(rc);
    }
    if (v6)
        t->has6 = true;
    else
        t->has4 = true;
    if (t->local.family == 0) {
        t->local = a;
        t->local.port = *port;
    }
    return 0;
}

/* Bind v4 (if asked) and then v6 on the same port. With an ephemeral port, UDP picks it and TCP
 * must get the same one; if another socket holds it for TCP this fails with EXO_EBUSY and
 * exo_transport_create tries again with new handles (libuv cannot reuse them before they are
 * closed). IPv6 is
 * optional when IPv4 is bound: a host without it runs on IPv4 alone. */
static int bind_all(struct exo_transport *t, uint16_t *port)
{
    const char *v4 = t->cfg.bind_v4 ? t->cfg.bind_v4 : "0.0.0.0";
    const char *v6 = t->cfg.bind_v6 ? t->cfg.bind_v6 : "::";
    uint16_t p = t->cfg.ephemeral ? 0 : *port;
    int rc = *v4 ? bind_family(t, v4, &p, false) : 0;
    if (rc == 0 && *v6) {
        int rc6 = bind_family(t, v6, &p, true);
        if (rc6 < 0 && !*v4)
            rc = rc6;
        else if (rc6 < 0)
            exo_log(EXO_LOG_DEBUG, "gossip", "no IPv6 gossip socket on %s: %s", v6,
                    exo_strerror(rc6));
    }
    if (rc == 0 && !t->has4 && !t->has6)
        rc = EXO_EINVAL; /* both families skipped */
    if (rc == 0)
        *port = p;
    return rc;
}

/* The address others should use: the configured one, the bound one, or for a wildcard bind the
 * first non-loopback IPv4 of this host (loopback when there is none). */
static void choose_advertise(struct exo_transport *t, uint16_t port)
{
    if (t->cfg.advertise.family) {
        t->local = t->cfg.advertise;
        if (!t->local.port)
            t->local.port = port;
        return;
    }
    if (!is_any(&t->local))
        return;
    uv_interface_address_t *ifs = NULL;
    int n = 0;
    struct exo_members_addr best;
    parse_ip("127.0.0.1", port, &best);
    if (uv_interface_addresses(&ifs, &n) == 0) {
        for (int i = 0; i < n; i++) {
            struct exo_members_addr a;
            if (ifs[i].is_internal || ifs[i].address.address4.sin_family != AF_INET)
                continue;
            sockaddr_to_addr((const struct sockaddr *)&ifs[i].address.address4, &a);
            best = a;
            best.port = port;
            break;
        }
        uv_free_interface_addresses(ifs, n);
    }
    t->local = best;
}

/* ---- public API ---- */

static int transport_create(uv_loop_t *loop, const struct exo_transport_config *cfg,
                            const struct exo_members_config *members_cfg,
                            const struct exo_members_delegate *delegate,
                            struct exo_transport **ret_transport)
{
    struct exo_transport *t = exo_calloc(1, sizeof(*t));
    if (!t)
        return EXO_ENOMEM;
    t->loop = loop;
    t->cfg = *cfg;
    t->refs = 1;
    if (!t->cfg.max_conns)
        t->cfg.max_conns = DEFAULT_MAX_CONNS;
    if (!t->cfg.connect_timeout_ms)
        t->cfg.connect_timeout_ms = DEFAULT_CONNECT_MS;
    if (!t->cfg.io_timeout_ms)
        t->cfg.io_timeout_ms = DEFAULT_IO_MS;
    uv_timer_init(loop, &t->tick);
    t->tick.data = t;
    t->refs++;
    int rc = EXO_ENOMEM;
    t->udp_rbuf = exo_malloc(UDP_BUF);
    t->sealed = exo_malloc(UDP_BUF);
    t->plain = exo_malloc(FRAME_MAX);
    if (!t->udp_rbuf || !t->sealed || !t->plain)
        goto out;
    uint16_t port = cfg->port ? cfg->port : EXO_MEMBERS_DEFAULT_PORT;
    rc = bind_all(t, &port);
    if (rc < 0)
        goto out;
    choose_advertise(t, port);
    struct exo_members_config mc = *members_cfg;
    mc.addr = t->local;
    mc.meta.gossip_port = t->local.port;
    if (mc.max_packet > EXO_MEMBERS_PACKET_MAX - EXO_SEAL_OVERHEAD)
        mc.max_packet = EXO_MEMBERS_PACKET_MAX - EXO_SEAL_OVERHEAD;
    struct exo_members_io io = {
        .ctx = t, .send_packet_cb = send_packet_cb, .send_stream_cb = send_stream_cb};
    rc = exo_members_create(&mc, &io, delegate, now_us(), &t->members);
    if (rc < 0)
        goto out;
    char text[64];
    exo_members_addr_format(&t->local, text, sizeof(text));
    exo_log(EXO_LOG_INFO, "gossip", "listening on port %u (%s%s), advertising %s", port,
            t->has4 ? "IPv4" : "", t->has6 ? (t->has4 ? " and IPv6" : "IPv6") : "", text);
    reschedule(t);
    *ret_transport = t;
    return 0;
out:
    exo_transport_close(t);
    return rc;
}

int exo_transport_create(uv_loop_t *loop, const struct exo_transport_config *cfg,
                         const struct exo_members_config *members_cfg,
                         const struct exo_members_delegate *delegate,
                         struct exo_transport **ret_transport)
{
    if (!loop || !cfg || !cfg->seal || !members_cfg || !ret_transport)
        return EXO_EINVAL;
    /* An ephemeral port is free for UDP but may be taken for TCP (by any outgoing connection of
     * this host): another port then, a few times. A failed attempt's sockets are closed at once;
     * only their handles' memory waits for the loop. */
    int rc = EXO_EBUSY;
    for (int tries = 0; tries < (cfg->ephemeral ? 8 : 1) && rc == EXO_EBUSY; tries++)
        rc = transport_create(loop, cfg, members_cfg, delegate, ret_transport);
    if (rc < 0 && cfg->ephemeral)
        exo_log(EXO_LOG_ERROR, "gossip", "cannot bind an ephemeral gossip port: %s",
                exo_strerror(rc));
    else if (rc < 0)
        exo_log(EXO_LOG_ERROR, "gossip", "cannot bind the gossip port %u: %s",
                cfg->port ? cfg->port : EXO_MEMBERS_DEFAULT_PORT, exo_strerror(rc));
    return rc;
}

static void join_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct resolve *r = req->data;
    struct exo_transport *t = r->t;
    if (status == 0 && !t->closing) {
        struct exo_members_addr addrs[8];
        size_t n = 0;
        for (struct addrinfo *ai = res; ai && n < 8; ai = ai->ai_next) {
            if (!sockaddr_to_addr(ai->ai_addr, &addrs[n]))
                continue;
            addrs[n++].port = r->port;
        }
        exo_transport_join_addrs(t, addrs, n);
    } else if (status < 0 && status != UV_ECANCELED) {
        t->stats.resolve_failed++;
        exo_log(EXO_LOG_WARN, "gossip", "cannot resolve a join address: %s", uv_strerror(status));
    }
    uv_freeaddrinfo(res);
    if (r->prev)
        r->prev->next = r->next;
    else
        t->resolves = r->next;
    if (r->next)
        r->next->prev = r->prev;
    exo_free(r);
    unref(t);
}

int exo_transport_parse_hostport(const char *text, char *host, size_t host_len, uint16_t *port)
{
    const char *h = text, *colon = NULL;
    size_t n;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end)
            return EXO_EINVAL;
        h = text + 1;
        n = (size_t)(end - h);
        colon = end[1] == ':' ? end + 1 : NULL;
        if (end[1] && !colon)
            return EXO_EINVAL;
    } else {
        colon = strrchr(text, ':');
        if (colon && strchr(text, ':') != colon)
            colon = NULL; /* a bare IPv6 address has several colons and no port */
        n = colon ? (size_t)(colon - text) : strlen(text);
    }
    if (n == 0 || n >= host_len)
        return EXO_EINVAL;
    memcpy(host, h, n);
    host[n] = '\0';
    /* A host is an IPv6 literal (it has colons) or a name or IPv4 address of name characters. */
    uint8_t ip6[16];
    if (strchr(host, ':')) {
        if (uv_inet_pton(AF_INET6, host, ip6) != 0)
            return EXO_EINVAL;
    } else if (host[strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "0123456789.-_")] != '\0') {
        return EXO_EINVAL;
    }
    *port = EXO_MEMBERS_DEFAULT_PORT;
    if (colon) {
        char *end = NULL;
        unsigned long p = strtoul(colon + 1, &end, 10);
        if (!colon[1] || *end || p == 0 || p > 65535)
            return EXO_EINVAL;
        *port = (uint16_t)p;
    }
    return 0;
}

int exo_transport_join(struct exo_transport *t, const char *const *hostports, size_t n)
{
    int result = 0;
    for (size_t i = 0; i < n; i++) {
        char host[256];
        uint16_t port;
        struct exo_members_addr a;
        if (exo_transport_parse_hostport(hostports[i], host, sizeof(host), &port) < 0) {
            exo_log(EXO_LOG_WARN, "gossip", "ignoring join address '%s': not host[:port]",
                    hostports[i]);
            result = EXO_EINVAL;
            continue;
        }
        if (parse_ip(host, port, &a) == 0) {
            exo_transport_join_addrs(t, &a, 1);
            continue;
        }
        struct resolve *r = exo_calloc(1, sizeof(*r));
        if (!r)
            return EXO_ENOMEM;
        r->t = t;
        r->port = port;
        r->req.data = r;
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM};
        int rc = uv_getaddrinfo(t->loop, &r->req, join_resolved, host, NULL, &hints);
        if (rc < 0) {
            exo_free(r);
            result = exo_error_from_errno(rc);
            continue;
        }
        r->next = t->resolves;
        if (t->resolves)
            t->resolves->prev = r;
        t->resolves = r;
        t->refs++;
    }
    return result;
}

int exo_transport_join_addrs(struct exo_transport *t, const struct exo_members_addr *addrs,
                             size_t n)
{
    if (t->closing)
        return EXO_ECANCELED;
    int rc = exo_members_join(t->members, addrs, n, now_us());
    reschedule(t);
    return rc;
}

int exo_transport_leave(struct exo_transport *t)
{
    int rc = exo_members_leave(t->members, now_us());
    reschedule(t);
    return rc;
}

void exo_transport_kick(struct exo_transport *t)
{
    reschedule(t);
}

struct exo_members *exo_transport_members(struct exo_transport *t)
{
    return t->members;
}

void exo_transport_local_addr(const struct exo_transport *t, struct exo_members_addr *ret_addr)
{
    *ret_addr = t->local;
}

void exo_transport_get_stats(const struct exo_transport *t, struct exo_transport_stats *ret_stats)
{
    *ret_stats = t->stats;
}

void exo_transport_close(struct exo_transport *t)
{
    if (!t || t->closing)
        return;
    t->closing = true;
    close_handle((uv_handle_t *)&t->tick);
    if (t->has4) {
        close_handle((uv_handle_t *)&t->udp4);
        close_handle((uv_handle_t *)&t->tcp4);
    }
    if (t->has6) {
        close_handle((uv_handle_t *)&t->udp6);
        close_handle((uv_handle_t *)&t->tcp6);
    }
    while (t->conns)
        conn_close(t->conns);
    /* A lookup not yet started is cancelled; one under way completes and is ignored. */
    for (struct resolve *r = t->resolves; r; r = r->next)
        uv_cancel((uv_req_t *)&r->req);
    unref(t);
}
