/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mDNS responder and querier for one DNS-SD service instance (see mdns.h and
 * docs/internals/mdns.md).
 *
 * Threads: everything here runs on the libuv loop thread given to exo_mdns_start; nothing
 * blocks. Sockets are non-blocking and read through uv_poll with recvmsg (libuv's UDP handle
 * does not expose IP_PKTINFO, and we need the arrival interface to answer only on-link sources
 * and to send replies out of the right interface). A send that would block is dropped and
 * counted: mDNS repeats everything that matters.
 *
 * Sockets: one per address family, bound to the wildcard address and port 5353 with
 * SO_REUSEADDR and SO_REUSEPORT so that avahi or another exo daemon on the host can share the
 * port. Each joins the group (224.0.0.251, ff02::fb) on every multicast-capable interface
 * (or only bind_ifname) and the interface list is re-read every 30 s. Multicast loop stays on so
 * daemons on one host see each other; our own looped-back packets are recognised by a source
 * address of ours and a keyed hash of what we multicast in the last two seconds.
 *
 * Responder: probe the instance name three times 250 ms apart (RFC 6762 section 8.1), rename to
 * "<name> (N)" on a conflict, break simultaneous-probe ties by comparing records (section 8.2),
 * announce three times at 1 s then 2 s, then answer queries: unique records at once, shared ones
 * (PTR) after 20-120 ms, with known-answer suppression and at most one multicast of a record per
 * interface per second. QU questions get a unicast reply unless the record was not multicast on
 * that link within a quarter of its TTL (section 5.4); probes are always answered by multicast;
 * queries from a port other than 5353 get a legacy unicast reply (section 6.7).
 *
 * Querier: browse `<service>.local` PTR at 1 s, 2 s, 4 s ... capped at 60 s (reset when the
 * interfaces change), with known answers whose remaining TTL is at least half; re-query records
 * at 80, 85, 90 and 95 % of their TTL; expire them at 100 % and one second after a goodbye.
 * A peer is reported when its PTR, SRV, TXT and at least one address are known, again when any
 * of them changes, and as gone when it stops being complete.
 */
#include "net/mdns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "net/dns.h"
#include "net/netif.h"

#define MS                1000000ull /* nanoseconds */
#define SEC               1000000000ull
#define MAX_IFACES        32
#define MAX_OWN           24   /* records we publish on one interface */
#define MAX_OWN_ADDRS     8    /* of each family, per interface */
#define OUT_MAX           1400 /* bytes per packet we send */
#define TTL_HOST          120  /* records that carry a host name (RFC 6762 section 10) */
#define TTL_OTHER         4500
#define TTL_LEGACY        10    /* cap in replies to legacy unicast queries (section 6.7) */
#define TTL_CAP           86400 /* longest TTL we believe from a peer */
#define PROBE_COUNT       3
#define PROBE_GAP_MS      250
#define ANNOUNCE_COUNT    3
#define QUERY_FIRST_MS    1000
#define QUERY_MAX_MS      60000
#define RESCAN_MS         30000
#define TICK_MS           1000
#define MCAST_GAP_NS      (1 * SEC)  /* section 6.2: one multicast of a record per second */
#define DEFEND_GAP_NS     (250 * MS) /* section 6.2: probe defense may come sooner */
#define OWN_RING          64
#define OWN_WINDOW_NS     (2 * SEC)
#define MAX_REFRESH_Q     32
#define MAX_TXT_STRINGS   64
#define CONFLICT_WINDOW   (10 * SEC) /* section 8.1: 15 conflicts in 10 s means slow down */
#define CONFLICT_LIMIT    15
#define CONFLICT_PAUSE_MS 5000
#define RECV_BURST        32 /* datagrams read per poll callback, to stay fair to the loop */

enum { FAM4 = 0, FAM6 = 1 };

/* Kinds of record we publish; one interface may have several A/AAAA records. */
enum own_kind {
    OWN_ENUM,      /* _services._dns-sd._udp.local PTR <service>.local (RFC 6763 section 9) */
    OWN_PTR,       /* <service>.local PTR <instance>.<service>.local */
    OWN_SRV,       /* <instance>... SRV 0 0 port <host>.local */
    OWN_TXT,       /* <instance>... TXT */
    OWN_A,         /* <host>.local A, one per IPv4 address of the interface */
    OWN_AAAA,      /* <host>.local AAAA, one per IPv6 address */
    OWN_NSEC_INST, /* <instance>... NSEC: only TXT and SRV exist (section 6.1) */
    OWN_NSEC_HOST, /* <host>.local NSEC: only the address types we have */
};
#define KIND(k) (1u << (k))

struct own_rr {
    struct exo_dns_rr rr;
    enum own_kind kind;
};

struct iface {
    struct exo_netif nif;
    bool joined[2];
    bool seen;
    /* Per family, indexed like the list build_own() makes for this interface. */
    uint64_t last_mc[2][MAX_OWN];
    uint32_t pending[2]; /* answers waiting for their delayed multicast */
    uint64_t pending_due[2];
};

struct life {
    bool valid;
    uint8_t refreshes; /* refresh queries sent so far (0-4) */
    uint32_t ttl;
    uint64_t born, expires;
};

struct peer_addr {
    struct sockaddr_storage sa;
    struct life life;
};

struct peer {
    struct exo_dns_name name; /* <instance>.<service>.local */
    unsigned ifindex;
    struct life ptr, srv, txt;
    uint16_t port;
    struct exo_dns_name target;
    uint8_t *txt_data; /* owned */
    uint16_t txt_len;
    struct peer_addr addrs[EXO_MDNS_PEER_ADDRS];
    size_t n_addrs;
    bool reported; /* the callback has it as present */
    bool changed;  /* report again */
};

enum state { STATE_PROBING, STATE_ANNOUNCING, STATE_READY };

struct own_sent {
    bool used;
    uint8_t fam;
    uint64_t hash;
    uint64_t sent_ns;
};

struct exo_mdns {
    uv_loop_t *loop;
    exo_mdns_peer_cb cb;
    void *ud;

    /* What we publish. */
    char base_instance[EXO_DNS_LABEL_MAX + 1];
    char instance[EXO_DNS_LABEL_MAX + 1];
    unsigned rename_n; /* 0, or the N of "<name> (N)" */
    struct exo_dns_name enum_name, service_name, inst_name, host_name;
    uint16_t port;
    uint8_t txt[EXO_MDNS_TXT_MAX];
    size_t txt_len;
    char bind_ifname[IF_NAMESIZE];
    bool ipv6;

    int fd[2];
    uv_poll_t poll[2];
    bool poll_open[2];
    uv_timer_t probe_timer, query_timer, resp_timer, tick_timer, rescan_timer;
    int open_handles;

    struct iface *ifaces; /* owned, MAX_IFACES */
    size_t n_ifaces;

    enum state state;
    unsigned probes_sent, announces_sent;
    uint64_t conflict_window_start;
    unsigned conflicts_in_window;
    uint64_t query_interval_ms;

    struct peer **peers; /* owned, EXO_MDNS_MAX_PEERS slots */
    size_t n_peers;

    struct own_sent sent[OWN_RING];
    size_t sent_next;
    uint8_t hash_key[crypto_shorthash_KEYBYTES];
    struct exo_rng rng;
    struct exo_mdns_stats stats;

    bool stopping;
    void (*done_cb)(void *ud);
    void *done_ud;

    /* Scratch, to keep big buffers off the stack. */
    uint8_t rx[EXO_DNS_PACKET_MAX + 1];
    struct own_rr own[MAX_OWN];
    uint8_t nsec_bm[2][34];
    struct exo_dns_builder out;
    struct exo_dns_question refresh_q[MAX_REFRESH_Q];
    size_t n_refresh_q;
};

/* ---- Small helpers ---- */

static uint64_t rand_ms(struct exo_mdns *m, uint64_t lo, uint64_t hi)
{
    return lo + exo_rng_below(&m->rng, hi - lo + 1);
}

static struct iface *find_iface(struct exo_mdns *m, unsigned index)
{
    for (size_t i = 0; i < m->n_ifaces; i++)
        if (m->ifaces[i].nif.index == index)
            return &m->ifaces[i];
    return NULL;
}

static bool authoritative(const struct exo_mdns *m)
{
    return m->state != STATE_PROBING;
}

static uint64_t packet_hash(const struct exo_mdns *m, const uint8_t *data, size_t len)
{
    uint8_t h[crypto_shorthash_BYTES];
    uint64_t v = 0;
    crypto_shorthash(h, data, len, m->hash_key);
    memcpy(&v, h, sizeof(v));
    return v;
}

static uint16_t sa_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
}

/* ---- The records we publish ---- */

static void own_add(struct exo_mdns *m, size_t *n, enum own_kind kind,
                    const struct exo_dns_name *name, uint16_t type, bool unique, uint32_t ttl)
{
    struct own_rr *o = &m->own[(*n)++];
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    o->rr.name = *name;
    o->rr.type = type;
    o->rr.rrclass = EXO_DNS_CLASS_IN;
    o->rr.cache_flush = unique;
    o->rr.ttl = ttl;
}

/* Fill m->own with what we publish on ifc and return the count. The order is stable while the
 * interface's addresses are, which is what ifc->last_mc and ifc->pending index. */
static size_t build_own(struct exo_mdns *m, const struct iface *ifc)
{
    size_t n = 0, n4 = 0, n6 = 0;
    uint16_t host_types[2];
    size_t n_host_types = 0;

    own_add(m, &n, OWN_ENUM, &m->enum_name, EXO_DNS_TYPE_PTR, false, TTL_OTHER);
    m->own[n - 1].rr.rd.ptr = m->service_name;
    own_add(m, &n, OWN_PTR, &m->service_name, EXO_DNS_TYPE_PTR, false, TTL_OTHER);
    m->own[n - 1].rr.rd.ptr = m->inst_name;
    own_add(m, &n, OWN_SRV, &m->inst_name, EXO_DNS_TYPE_SRV, true, TTL_HOST);
    m->own[n - 1].rr.rd.srv.port = m->port;
    m->own[n - 1].rr.rd.srv.target = m->host_name;
    own_add(m, &n, OWN_TXT, &m->inst_name, EXO_DNS_TYPE_TXT, true, TTL_OTHER);
    m->own[n - 1].rr.rd.raw.data = m->txt;
    m->own[n - 1].rr.rd.raw.len = (uint16_t)m->txt_len;

    for (size_t i = 0; i < ifc->nif.n_addrs; i++) {
        const struct exo_netif_addr *a = &ifc->nif.addrs[i];
        if (a->family == AF_INET && n4 < MAX_OWN_ADDRS) {
            own_add(m, &n, OWN_A, &m->host_name, EXO_DNS_TYPE_A, true, TTL_HOST);
            memcpy(m->own[n - 1].rr.rd.a, &a->addr.v4, 4);
            n4++;
        } else if (a->family == AF_INET6 && m->ipv6 && n6 < MAX_OWN_ADDRS) {
            own_add(m, &n, OWN_AAAA, &m->host_name, EXO_DNS_TYPE_AAAA, true, TTL_HOST);
            memcpy(m->own[n - 1].rr.rd.aaaa, &a->addr.v6, 16);
            n6++;
        }
    }

    static const uint16_t inst_types[] = {EXO_DNS_TYPE_TXT, EXO_DNS_TYPE_SRV};
    own_add(m, &n, OWN_NSEC_INST, &m->inst_name, EXO_DNS_TYPE_NSEC, true, TTL_HOST);
    m->own[n - 1].rr.rd.nsec.next = m->inst_name;
    m->own[n - 1].rr.rd.nsec.bitmaps = m->nsec_bm[0];
    m->own[n - 1].rr.rd.nsec.bitmaps_len =
        (uint16_t)exo_dns_nsec_bitmap(inst_types, 2, m->nsec_bm[0]);

    if (n4)
        host_types[n_host_types++] = EXO_DNS_TYPE_A;
    if (n6)
        host_types[n_host_types++] = EXO_DNS_TYPE_AAAA;
    own_add(m, &n, OWN_NSEC_HOST, &m->host_name, EXO_DNS_TYPE_NSEC, true, TTL_HOST);
    m->own[n - 1].rr.rd.nsec.next = m->host_name;
    m->own[n - 1].rr.rd.nsec.bitmaps = m->nsec_bm[1];
    m->own[n - 1].rr.rd.nsec.bitmaps_len =
        (uint16_t)exo_dns_nsec_bitmap(host_types, n_host_types, m->nsec_bm[1]);
    return n;
}

static uint32_t mask_of_kinds(const struct exo_mdns *m, size_t n, uint32_t kinds)
{
    uint32_t mask = 0;
    for (size_t i = 0; i < n; i++)
        if (kinds & KIND(m->own[i].kind))
            mask |= 1u << i;
    return mask;
}

/* Records worth adding to an answer as additional data (RFC 6763 section 12). */
static uint32_t additional_for(const struct exo_mdns *m, size_t n, uint32_t answers)
{
    uint32_t kinds = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(answers & (1u << i)))
            continue;
        switch (m->own[i].kind) {
        case OWN_PTR:
            kinds |= KIND(OWN_SRV) | KIND(OWN_TXT) | KIND(OWN_NSEC_INST);
            /* fall through */
        case OWN_SRV:
            kinds |= KIND(OWN_A) | KIND(OWN_AAAA) | KIND(OWN_NSEC_HOST);
            break;
        case OWN_A:
        case OWN_AAAA:
            kinds |= KIND(OWN_A) | KIND(OWN_AAAA) | KIND(OWN_NSEC_HOST);
            break;
        default:
            break;
        }
    }
    return mask_of_kinds(m, n, kinds) & ~answers;
}

/* ---- Sending ---- */

static void remember_sent(struct exo_mdns *m, int fam, const uint8_t *data, size_t len)
{
    struct own_sent *s = &m->sent[m->sent_next];
    m->sent_next = (m->sent_next + 1) % OWN_RING;
    s->used = true;
    s->fam = (uint8_t)fam;
    s->hash = packet_hash(m, data, len);
    s->sent_ns = exo_clock_ns();
}

/* Send one datagram out of ifc: to dest, or to the group when dest is NULL. */
static void send_packet(struct exo_mdns *m, const struct iface *ifc, int fam,
                        const struct sockaddr *dest, const uint8_t *data, size_t len)
{
    struct sockaddr_storage to;
    union {
        char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    struct msghdr mh = {.msg_name = &to, .msg_iov = &iov, .msg_iovlen = 1};

    memset(&to, 0, sizeof(to));
    memset(&ctl, 0, sizeof(ctl));
    mh.msg_control = ctl.buf;
    struct cmsghdr *c = (struct cmsghdr *)(void *)ctl.buf;
    if (fam == FAM4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&to;
        if (dest) {
            memcpy(sin, dest, sizeof(*sin));
        } else {
            sin->sin_family = AF_INET;
            sin->sin_port = htons(EXO_MDNS_PORT);
            inet_pton(AF_INET, "224.0.0.251", &sin->sin_addr);
        }
        mh.msg_namelen = sizeof(*sin);
        struct in_pktinfo pi = {.ipi_ifindex = (int)ifc->nif.index};
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(c), &pi, sizeof(pi));
        mh.msg_controllen = CMSG_SPACE(sizeof(pi));
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&to;
        if (dest) {
            memcpy(sin6, dest, sizeof(*sin6));
        } else {
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons(EXO_MDNS_PORT);
            inet_pton(AF_INET6, "ff02::fb", &sin6->sin6_addr);
            sin6->sin6_scope_id = ifc->nif.index;
        }
        mh.msg_namelen = sizeof(*sin6);
        struct in6_pktinfo pi = {.ipi6_ifindex = ifc->nif.index};
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(c), &pi, sizeof(pi));
        mh.msg_controllen = CMSG_SPACE(sizeof(pi));
    }
    if (sendmsg(m->fd[fam], &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        m->stats.tx_errors++;
        exo_log(EXO_LOG_DEBUG, "mdns", "send on %s failed: %s", ifc->nif.name, strerror(errno));
        return;
    }
    m->stats.tx_packets++;
    if (!dest)
        remember_sent(m, fam, data, len);
}

/* Finish the packet in m->out and send it. */
static void flush(struct exo_mdns *m, const struct iface *ifc, int fam, const struct sockaddr *dest)
{
    const uint8_t *data;
    size_t len;
    if (exo_dns_builder_finish(&m->out, &data, &len) == 0)
        send_packet(m, ifc, fam, dest, data, len);
}

enum resp_mode {
    RESP_MULTICAST,
    RESP_UNICAST,
    RESP_LEGACY,  /* to a legacy resolver: echo id and questions, TTL <= 10, no cache-flush */
    RESP_GOODBYE, /* multicast with TTL 0 */
};

/* Send the records of m->own (already built for ifc, n of them) selected by answers, with the
 * additional records they call for; split over several packets when they do not fit in one. */
static void send_response(struct exo_mdns *m, struct iface *ifc, int fam,
                          const struct sockaddr *dest, size_t n, uint32_t answers,
                          enum resp_mode mode, const struct exo_dns_msg *query)
{
    uint32_t extra = mode == RESP_GOODBYE ? 0 : additional_for(m, n, answers);
    uint16_t id = mode == RESP_LEGACY ? query->id : 0;
    uint64_t now = exo_clock_ns();
    bool multicast = mode == RESP_MULTICAST || mode == RESP_GOODBYE;

    exo_dns_builder_reset(&m->out, id, EXO_DNS_FLAG_QR | EXO_DNS_FLAG_AA);
    if (mode == RESP_LEGACY)
        for (size_t q = 0; q < query->n_qd; q++)
            exo_dns_builder_question(&m->out, &query->qd[q]);
    size_t header_entries = exo_dns_builder_entries(&m->out);

    for (int pass = 0; pass < 2; pass++) {
        uint32_t mask = pass == 0 ? answers : extra;
        enum exo_dns_section sect = pass == 0 ? EXO_DNS_SECTION_ANSWER : EXO_DNS_SECTION_ADDITIONAL;
        for (size_t i = 0; i < n; i++) {
            if (!(mask & (1u << i)))
                continue;
            struct exo_dns_rr rr = m->own[i].rr;
            if (mode == RESP_GOODBYE)
                rr.ttl = 0;
            if (mode == RESP_LEGACY) {
                rr.ttl = rr.ttl < TTL_LEGACY ? rr.ttl : TTL_LEGACY;
                rr.cache_flush = false;
            }
            int rc = exo_dns_builder_rr(&m->out, sect, &rr);
            if (rc == EXO_ENOSPC && pass == 0 && mode != RESP_LEGACY &&
                exo_dns_builder_entries(&m->out) > header_entries) {
                flush(m, ifc, fam, dest);
                exo_dns_builder_reset(&m->out, id, EXO_DNS_FLAG_QR | EXO_DNS_FLAG_AA);
                rc = exo_dns_builder_rr(&m->out, sect, &rr);
            }
            if (rc == 0 && pass == 0 && multicast)
                ifc->last_mc[fam][i] = now;
        }
    }
    if (exo_dns_builder_entries(&m->out) > header_entries)
        flush(m, ifc, fam, dest);
}

/* Drop from answers the records multicast on ifc more recently than gap. */
static uint32_t rate_limit(const struct iface *ifc, int fam, size_t n, uint32_t answers,
                           uint64_t gap)
{
    uint64_t now = exo_clock_ns();
    for (size_t i = 0; i < n; i++)
        if ((answers & (1u << i)) && ifc->last_mc[fam][i] && now - ifc->last_mc[fam][i] < gap)
            answers &= ~(1u << i);
    return answers;
}

#define ANNOUNCE_KINDS \
    (KIND(OWN_ENUM) | KIND(OWN_PTR) | KIND(OWN_SRV) | KIND(OWN_TXT) | KIND(OWN_A) | KIND(OWN_AAAA))
/* Host address records get no goodbye: another daemon on this host may publish the same ones. */
#define GOODBYE_KINDS (KIND(OWN_PTR) | KIND(OWN_SRV) | KIND(OWN_TXT))

/* Multicast our records of the given kinds on every interface. Announcements are not rate
 * limited: their own schedule spaces them at least a second apart. */
static void announce_all(struct exo_mdns *m, uint32_t kinds, enum resp_mode mode)
{
    for (size_t i = 0; i < m->n_ifaces; i++) {
        struct iface *ifc = &m->ifaces[i];
        for (int fam = 0; fam < 2; fam++) {
            if (!ifc->joined[fam])
                continue;
            size_t n = build_own(m, ifc);
            uint32_t answers = mask_of_kinds(m, n, kinds);
            if (answers)
                send_response(m, ifc, fam, NULL, n, answers, mode, NULL);
        }
    }
}

static void send_probe(struct exo_mdns *m, struct iface *ifc, int fam)
{
    size_t n = build_own(m, ifc);
    struct exo_dns_question q = {.name = m->inst_name,
                                 .type = EXO_DNS_TYPE_ANY,
                                 .qclass = EXO_DNS_CLASS_IN,
                                 .unicast_response = m->probes_sent == 0};
    exo_dns_builder_reset(&m->out, 0, 0);
    exo_dns_builder_question(&m->out, &q);
    for (size_t i = 0; i < n; i++)
        if (m->own[i].kind == OWN_SRV || m->own[i].kind == OWN_TXT)
            exo_dns_builder_rr(&m->out, EXO_DNS_SECTION_AUTHORITY, &m->own[i].rr);
    flush(m, ifc, fam, NULL);
}

/* Send a query with the given questions on every interface, followed by the PTR records we
 * already hold from that interface as known answers (section 7.1) when with_known is set.
 * Known answers that do not fit continue in more packets, all but the last with TC. */
static void send_query(struct exo_mdns *m, const struct exo_dns_question *qs, size_t nq,
                       bool with_known)
{
    uint64_t now = exo_clock_ns();
    for (size_t k = 0; k < m->n_ifaces; k++) {
        struct iface *ifc = &m->ifaces[k];
        for (int fam = 0; fam < 2; fam++) {
            if (!ifc->joined[fam])
                continue;
            exo_dns_builder_reset(&m->out, 0, 0);
            for (size_t i = 0; i < nq; i++) {
                if (exo_dns_builder_question(&m->out, &qs[i]) == EXO_ENOSPC) {
                    flush(m, ifc, fam, NULL);
                    exo_dns_builder_reset(&m->out, 0, 0);
                    exo_dns_builder_question(&m->out, &qs[i]);
                }
            }
            for (size_t i = 0; with_known && i < m->n_peers; i++) {
                const struct peer *p = m->peers[i];
                if (!p->ptr.valid || p->ifindex != ifc->nif.index || p->ptr.expires <= now)
                    continue;
                uint64_t left = (p->ptr.expires - now) / SEC;
                if (left * 2 < p->ptr.ttl)
                    continue;
                struct exo_dns_rr ka = {.name = m->service_name,
                                        .type = EXO_DNS_TYPE_PTR,
                                        .rrclass = EXO_DNS_CLASS_IN,
                                        .ttl = (uint32_t)left};
                ka.rd.ptr = p->name;
                if (exo_dns_builder_rr(&m->out, EXO_DNS_SECTION_ANSWER, &ka) == EXO_ENOSPC) {
                    exo_dns_builder_add_flags(&m->out, EXO_DNS_FLAG_TC);
                    flush(m, ifc, fam, NULL);
                    exo_dns_builder_reset(&m->out, 0, 0);
                    exo_dns_builder_rr(&m->out, EXO_DNS_SECTION_ANSWER, &ka);
                }
            }
            if (exo_dns_builder_entries(&m->out))
                flush(m, ifc, fam, NULL);
        }
    }
}

/* ---- Naming and conflicts ---- */

static int set_instance_name(struct exo_mdns *m)
{
    char suffix[16] = "";
    size_t blen = strlen(m->base_instance);
    if (m->rename_n)
        snprintf(suffix, sizeof(suffix), " (%u)", m->rename_n);
    size_t slen = strlen(suffix);
    if (blen + slen > EXO_DNS_LABEL_MAX) {
        blen = EXO_DNS_LABEL_MAX - slen;
        /* Do not cut a UTF-8 sequence in half. */
        while (blen && ((uint8_t)m->base_instance[blen] & 0xc0) == 0x80)
            blen--;
    }
    memcpy(m->instance, m->base_instance, blen);
    memcpy(m->instance + blen, suffix, slen + 1);
    return exo_dns_name_prepend(&m->inst_name, m->instance, strlen(m->instance), &m->service_name);
}

static void forget_multicasts(struct exo_mdns *m)
{
    for (size_t i = 0; i < m->n_ifaces; i++)
        memset(m->ifaces[i].last_mc, 0, sizeof(m->ifaces[i].last_mc));
}

static void on_probe_timer(uv_timer_t *t);

static void restart_probing(struct exo_mdns *m, uint64_t delay_ms)
{
    m->state = STATE_PROBING;
    m->probes_sent = 0;
    for (size_t i = 0; i < m->n_ifaces; i++)
        m->ifaces[i].pending[FAM4] = m->ifaces[i].pending[FAM6] = 0;
    uv_timer_start(&m->probe_timer, on_probe_timer, delay_ms, 0);
}

/* Our name is taken: pick the next "<name> (N)" and probe again. */
static void rename_instance(struct exo_mdns *m)
{
    uint64_t now = exo_clock_ns();
    char old[sizeof(m->instance)];
    memcpy(old, m->instance, sizeof(old));
    if (now - m->conflict_window_start > CONFLICT_WINDOW) {
        m->conflict_window_start = now;
        m->conflicts_in_window = 0;
    }
    m->conflicts_in_window++;
    m->stats.conflicts++;
    m->rename_n = m->rename_n ? m->rename_n + 1 : 2;
    set_instance_name(m); /* cannot fail: the label is capped at 63 bytes */
    forget_multicasts(m);
    exo_log(EXO_LOG_INFO, "mdns", "instance name \"%s\" is taken; trying \"%s\"", old, m->instance);
    restart_probing(m, m->conflicts_in_window >= CONFLICT_LIMIT ? CONFLICT_PAUSE_MS
                                                                : rand_ms(m, 0, PROBE_GAP_MS));
}

/* Whether rr (from someone else's response) says our instance name is in use elsewhere. */
static bool conflicts_with_us(struct exo_mdns *m, const struct exo_dns_rr *rr)
{
    if (rr->ttl == 0 || rr->rrclass != EXO_DNS_CLASS_IN ||
        (rr->type != EXO_DNS_TYPE_SRV && rr->type != EXO_DNS_TYPE_TXT) ||
        !exo_dns_name_eq(&rr->name, &m->inst_name))
        return false;
    struct iface none;
    memset(&none, 0, sizeof(none));
    size_t n = build_own(m, &none);
    for (size_t i = 0; i < n; i++)
        if (m->own[i].rr.type == rr->type && exo_dns_rdata_cmp(&m->own[i].rr, rr) == 0)
            return false;
    return true;
}

static void sort_rrs(const struct exo_dns_rr **v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && exo_dns_rdata_cmp(v[j - 1], v[j]) > 0; j--) {
            const struct exo_dns_rr *t = v[j - 1];
            v[j - 1] = v[j];
            v[j] = t;
        }
}

/* Simultaneous probe tie-break (section 8.2): compare our proposed records with theirs, both
 * sorted; the lexicographically later set wins. Returns <0 when we lose. */
static int probe_tiebreak(struct exo_mdns *m, const struct exo_dns_msg *msg)
{
    const struct exo_dns_rr *ours[2], *theirs[16];
    size_t n_ours = 0, n_theirs = 0;
    struct iface none;
    memset(&none, 0, sizeof(none));
    size_t n = build_own(m, &none);
    for (size_t i = 0; i < n; i++)
        if (m->own[i].kind == OWN_SRV || m->own[i].kind == OWN_TXT)
            ours[n_ours++] = &m->own[i].rr;
    for (size_t i = 0; i < msg->n_ns && n_theirs < 16; i++) {
        const struct exo_dns_rr *rr = exo_dns_msg_rr(msg, EXO_DNS_SECTION_AUTHORITY, i);
        if (exo_dns_name_eq(&rr->name, &m->inst_name))
            theirs[n_theirs++] = rr;
    }
    if (n_theirs == 0)
        return 0;
    sort_rrs(ours, n_ours);
    sort_rrs(theirs, n_theirs);
    for (size_t i = 0; i < n_ours && i < n_theirs; i++) {
        int c = exo_dns_rdata_cmp(ours[i], theirs[i]);
        if (c)
            return c;
    }
    return (n_ours > n_theirs) - (n_ours < n_theirs);
}

/* ---- Answering queries ---- */

static void on_resp_timer(uv_timer_t *t);

static void arm_resp_timer(struct exo_mdns *m)
{
    uint64_t due = UINT64_MAX, now = exo_clock_ns();
    for (size_t i = 0; i < m->n_ifaces; i++)
        for (int fam = 0; fam < 2; fam++)
            if (m->ifaces[i].pending[fam] && m->ifaces[i].pending_due[fam] < due)
                due = m->ifaces[i].pending_due[fam];
    if (due == UINT64_MAX)
        return;
    uv_timer_start(&m->resp_timer, on_resp_timer, due > now ? (due - now + MS - 1) / MS : 0, 0);
}

/* The records answering question q (indices into m->own, n of them). A question about one of
 * our unique names for a type we do not have gets the NSEC that says so (section 6.1). */
static uint32_t answer_question(const struct exo_mdns *m, size_t n,
                                const struct exo_dns_question *q)
{
    uint32_t mask = 0;
    bool name_ours = false;
    if (q->qclass != EXO_DNS_CLASS_IN && q->qclass != EXO_DNS_CLASS_ANY)
        return 0;
    for (size_t i = 0; i < n; i++) {
        const struct exo_dns_rr *rr = &m->own[i].rr;
        if (!exo_dns_name_eq(&q->name, &rr->name))
            continue;
        name_ours = true;
        if (q->type == EXO_DNS_TYPE_ANY || q->type == rr->type)
            mask |= 1u << i;
    }
    if (name_ours && !mask) {
        uint32_t kinds = exo_dns_name_eq(&q->name, &m->inst_name)   ? KIND(OWN_NSEC_INST)
                         : exo_dns_name_eq(&q->name, &m->host_name) ? KIND(OWN_NSEC_HOST)
                                                                    : 0;
        mask = mask_of_kinds(m, n, kinds);
    }
    return mask;
}

/* Known-answer suppression (section 7.1): the querier already holds these with at least half
 * their TTL left. */
static uint32_t known_answers(const struct exo_mdns *m, size_t n, const struct exo_dns_msg *msg)
{
    uint32_t known = 0;
    for (size_t k = 0; k < msg->n_an; k++) {
        const struct exo_dns_rr *ka = &msg->rr[k];
        for (size_t i = 0; i < n; i++)
            if (ka->ttl >= m->own[i].rr.ttl / 2 && exo_dns_rr_same(ka, &m->own[i].rr))
                known |= 1u << i;
    }
    return known;
}

static void handle_query(struct exo_mdns *m, struct iface *ifc, int fam, const struct sockaddr *src,
                         const struct exo_dns_msg *msg)
{
    bool probe = msg->n_ns > 0;
    if (!authoritative(m)) {
        /* Someone else probes the name we are probing: the later record set wins. */
        if (probe) {
            for (size_t i = 0; i < msg->n_qd; i++) {
                if (!exo_dns_name_eq(&msg->qd[i].name, &m->inst_name))
                    continue;
                if (probe_tiebreak(m, msg) < 0) {
                    exo_log(EXO_LOG_DEBUG, "mdns", "lost a probe tie-break for \"%s\"",
                            m->instance);
                    restart_probing(m, 1000);
                }
                break;
            }
        }
        return;
    }

    size_t n = build_own(m, ifc);
    uint32_t qu = 0, qm = 0;
    for (size_t i = 0; i < msg->n_qd; i++) {
        uint32_t a = answer_question(m, n, &msg->qd[i]);
        if (msg->qd[i].unicast_response)
            qu |= a;
        else
            qm |= a;
    }
    uint32_t known = known_answers(m, n, msg);
    qu &= ~known;
    qm &= ~known;
    /* A continuation packet of known answers also trims what we were about to send. */
    ifc->pending[fam] &= ~known;

    if (sa_port(src) != EXO_MDNS_PORT) {
        if (qu | qm)
            send_response(m, ifc, fam, src, n, qu | qm, RESP_LEGACY, msg);
        return;
    }
    if (probe) {
        /* Defend our names at once, and by multicast so every prober on the link hears. */
        uint32_t a = rate_limit(ifc, fam, n, qu | qm, DEFEND_GAP_NS);
        if (a)
            send_response(m, ifc, fam, NULL, n, a, RESP_MULTICAST, msg);
        return;
    }
    /* QU: unicast, unless the link has not seen the record by multicast for a quarter TTL. */
    uint64_t now = exo_clock_ns();
    for (size_t i = 0; i < n; i++) {
        if (!(qu & (1u << i)))
            continue;
        uint64_t last = ifc->last_mc[fam][i];
        if (!last || now - last > (uint64_t)m->own[i].rr.ttl * SEC / 4) {
            qu &= ~(1u << i);
            qm |= 1u << i;
        }
    }
    if (qu)
        send_response(m, ifc, fam, src, n, qu, RESP_UNICAST, msg);
    if (!qm)
        return;
    uint32_t shared = mask_of_kinds(m, n, KIND(OWN_ENUM) | KIND(OWN_PTR));
    bool tc = (msg->flags & EXO_DNS_FLAG_TC) != 0;
    if (!(qm & shared) && !tc) {
        /* Unique records only we can own: answer at once (section 6). */
        qm = rate_limit(ifc, fam, n, qm, MCAST_GAP_NS);
        if (qm)
            send_response(m, ifc, fam, NULL, n, qm, RESP_MULTICAST, msg);
        return;
    }
    /* Shared records get a random 20-120 ms delay so responders do not collide; 400-500 ms when
     * more known answers are coming (section 7.2). */
    uint64_t due = now + (tc ? rand_ms(m, 400, 500) : rand_ms(m, 20, 120)) * MS;
    if (!ifc->pending[fam] || due < ifc->pending_due[fam])
        ifc->pending_due[fam] = due;
    ifc->pending[fam] |= qm;
    arm_resp_timer(m);
}

/* ---- The peer cache ---- */

static void life_set(struct life *l, uint32_t ttl, uint64_t now)
{
    if (ttl > TTL_CAP)
        ttl = TTL_CAP;
    l->valid = true;
    l->born = now;
    if (ttl == 0) {
        /* A goodbye: keep it one more second in case it overtook a refresh (section 10.1). */
        l->ttl = 1;
        l->refreshes = 4;
        l->expires = now + SEC;
        return;
    }
    l->ttl = ttl;
    l->refreshes = 0;
    l->expires = now + (uint64_t)ttl * SEC;
}

static struct peer *find_peer(struct exo_mdns *m, const struct exo_dns_name *name)
{
    for (size_t i = 0; i < m->n_peers; i++)
        if (exo_dns_name_eq(&m->peers[i]->name, name))
            return m->peers[i];
    return NULL;
}

static void peer_free(struct peer *p);

/* The cache is full: make room by dropping the oldest instance that was never complete (a flood
 * of bare PTR records must not lock real peers out), or refuse. Complete peers are kept. */
static bool evict_incomplete(struct exo_mdns *m)
{
    size_t victim = SIZE_MAX;
    m->stats.drop_cache_full++;
    for (size_t i = 0; i < m->n_peers; i++) {
        const struct peer *p = m->peers[i];
        if (!p->reported && (victim == SIZE_MAX || p->ptr.born < m->peers[victim]->ptr.born))
            victim = i;
    }
    if (victim == SIZE_MAX)
        return false;
    peer_free(m->peers[victim]);
    m->peers[victim] = m->peers[--m->n_peers];
    return true;
}

/* The cached peer for an instance name of our service, created if needed; NULL for names that
 * are not ours to cache (our own, unusable labels) or when the cache is full. */
static struct peer *peer_for(struct exo_mdns *m, const struct exo_dns_name *name, unsigned ifindex,
                             bool create)
{
    const uint8_t *label;
    size_t llen;
    if (!exo_dns_name_is_child(name, &m->service_name, &label, &llen))
        return NULL;
    if (memchr(label, 0, llen) || exo_dns_name_eq(name, &m->inst_name))
        return NULL;
    struct peer *p = find_peer(m, name);
    if (p || !create)
        return p;
    if (m->n_peers >= EXO_MDNS_MAX_PEERS && !evict_incomplete(m))
        return NULL;
    p = exo_calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->name = *name;
    p->ifindex = ifindex;
    m->peers[m->n_peers++] = p;
    return p;
}

static void peer_free(struct peer *p)
{
    if (!p)
        return;
    exo_free(p->txt_data);
    exo_free(p);
}

static void set_addr_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static void cache_srv(struct peer *p, const struct exo_dns_rr *rr, uint64_t now)
{
    if (rr->ttl && (!p->srv.valid || p->port != rr->rd.srv.port ||
                    !exo_dns_name_eq(&p->target, &rr->rd.srv.target))) {
        if (!p->srv.valid || !exo_dns_name_eq(&p->target, &rr->rd.srv.target))
            p->n_addrs = 0; /* addresses belong to the old target */
        p->port = rr->rd.srv.port;
        p->target = rr->rd.srv.target;
        for (size_t i = 0; i < p->n_addrs; i++)
            set_addr_port(&p->addrs[i].sa, p->port);
        p->changed = true;
    }
    if (rr->ttl || p->srv.valid)
        life_set(&p->srv, rr->ttl, now);
}

static void cache_txt(struct peer *p, const struct exo_dns_rr *rr, uint64_t now)
{
    if (rr->rd.raw.len > EXO_MDNS_TXT_MAX)
        return;
    if (rr->ttl && (!p->txt.valid || p->txt_len != rr->rd.raw.len ||
                    memcmp(p->txt_data, rr->rd.raw.data, rr->rd.raw.len) != 0)) {
        uint8_t *copy = exo_malloc(rr->rd.raw.len);
        if (!copy)
            return;
        memcpy(copy, rr->rd.raw.data, rr->rd.raw.len);
        exo_free(p->txt_data);
        p->txt_data = copy;
        p->txt_len = rr->rd.raw.len;
        p->changed = true;
    }
    if (rr->ttl || p->txt.valid)
        life_set(&p->txt, rr->ttl, now);
}

static void cache_addr(struct peer *p, const struct exo_dns_rr *rr, unsigned ifindex, uint64_t now)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (rr->type == EXO_DNS_TYPE_A) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, rr->rd.a, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, rr->rd.aaaa, 16);
        if (IN6_IS_ADDR_LINKLOCAL(&sin6->sin6_addr))
            sin6->sin6_scope_id = ifindex;
    }
    set_addr_port(&ss, p->port);

    struct peer_addr *slot = NULL;
    for (size_t i = 0; i < p->n_addrs; i++) {
        struct peer_addr *a = &p->addrs[i];
        if (memcmp(&a->sa, &ss, sizeof(ss)) == 0) {
            slot = a;
        } else if (rr->cache_flush && a->sa.ss_family == ss.ss_family && a->life.born + SEC < now &&
                   a->life.expires > now + SEC) {
            /* Cache flush (section 10.2): older records of this name and type go in a second. */
            a->life.expires = now + SEC;
            a->life.refreshes = 4;
        }
    }
    if (!slot) {
        if (rr->ttl == 0 || p->n_addrs >= EXO_MDNS_PEER_ADDRS)
            return;
        slot = &p->addrs[p->n_addrs++];
        slot->sa = ss;
        p->changed = true;
    }
    life_set(&slot->life, rr->ttl, now);
}

static void cache_record(struct exo_mdns *m, const struct exo_dns_rr *rr, unsigned ifindex,
                         uint64_t now)
{
    struct peer *p;
    switch (rr->type) {
    case EXO_DNS_TYPE_PTR:
        if (!exo_dns_name_eq(&rr->name, &m->service_name))
            return;
        p = peer_for(m, &rr->rd.ptr, ifindex, rr->ttl != 0);
        if (!p)
            return;
        p->ifindex = ifindex;
        if (rr->ttl || p->ptr.valid)
            life_set(&p->ptr, rr->ttl, now);
        return;
    case EXO_DNS_TYPE_SRV:
    case EXO_DNS_TYPE_TXT:
        p = peer_for(m, &rr->name, ifindex, rr->ttl != 0);
        if (!p)
            return;
        p->ifindex = ifindex;
        if (rr->type == EXO_DNS_TYPE_SRV)
            cache_srv(p, rr, now);
        else
            cache_txt(p, rr, now);
        return;
    case EXO_DNS_TYPE_A:
    case EXO_DNS_TYPE_AAAA:
        for (size_t i = 0; i < m->n_peers; i++) {
            p = m->peers[i];
            if (p->srv.valid && exo_dns_name_eq(&p->target, &rr->name))
                cache_addr(p, rr, ifindex, now);
        }
        return;
    default:
        return;
    }
}

static void handle_response(struct exo_mdns *m, struct iface *ifc, const struct exo_dns_msg *msg)
{
    size_t n_rr = (size_t)msg->n_an + msg->n_ns + msg->n_ar;
    uint64_t now = exo_clock_ns();

    for (size_t i = 0; i < n_rr; i++) {
        if (!conflicts_with_us(m, &msg->rr[i]))
            continue;
        if (m->state == STATE_PROBING) {
            rename_instance(m);
        } else {
            /* Section 9: a conflict after probing means probing again. */
            exo_log(EXO_LOG_INFO, "mdns", "another host answers for \"%s\"; probing again",
                    m->instance);
            restart_probing(m, rand_ms(m, 0, PROBE_GAP_MS));
        }
        break;
    }

    /* Pointers first, then what they point at, then addresses of the SRV targets, so that one
     * packet carrying a whole instance is understood in one go. Authority records of a response
     * are not cached. */
    static const uint16_t order[3][2] = {{EXO_DNS_TYPE_PTR, EXO_DNS_TYPE_PTR},
                                         {EXO_DNS_TYPE_SRV, EXO_DNS_TYPE_TXT},
                                         {EXO_DNS_TYPE_A, EXO_DNS_TYPE_AAAA}};
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < n_rr; i++) {
            const struct exo_dns_rr *rr = &msg->rr[i];
            if (i >= msg->n_an && i < (size_t)msg->n_an + msg->n_ns)
                continue;
            if (rr->rrclass != EXO_DNS_CLASS_IN ||
                (rr->type != order[pass][0] && rr->type != order[pass][1]))
                continue;
            cache_record(m, rr, ifc->nif.index, now);
        }
    }
}

/* ---- Reporting peers ---- */

static bool peer_complete(const struct peer *p)
{
    return p->ptr.valid && p->srv.valid && p->txt.valid && p->n_addrs > 0;
}

static void deliver(struct exo_mdns *m, const struct peer *p, bool gone)
{
    char instance[EXO_DNS_LABEL_MAX + 1];
    char host[4 * EXO_DNS_NAME_MAX + 1];
    char txt_buf[EXO_MDNS_TXT_MAX + MAX_TXT_STRINGS];
    const char *txt[MAX_TXT_STRINGS];
    struct exo_mdns_peer info;
    const struct iface *ifc = find_iface(m, p->ifindex);

    memset(&info, 0, sizeof(info));
    memcpy(instance, p->name.wire + 1, p->name.wire[0]);
    instance[p->name.wire[0]] = '\0';
    info.instance = instance;
    info.ifname = ifc ? ifc->nif.name : "";
    if (!gone) {
        exo_dns_name_to_text(&p->target, host, sizeof(host));
        info.host = host;
        info.port = p->port;
        info.ttl = p->srv.ttl;
        for (size_t i = 0; i < p->n_addrs; i++)
            info.addrs[info.n_addrs++] = p->addrs[i].sa;
        size_t off = 0, used = 0;
        const uint8_t *s;
        size_t slen;
        while (info.n_txt < MAX_TXT_STRINGS &&
               exo_dns_txt_next(p->txt_data, p->txt_len, &off, &s, &slen)) {
            if (slen == 0 || memchr(s, 0, slen))
                continue; /* empty, or not representable as a C string */
            memcpy(txt_buf + used, s, slen);
            txt_buf[used + slen] = '\0';
            txt[info.n_txt++] = txt_buf + used;
            used += slen + 1;
        }
        info.txt = txt;
    }
    m->cb(m->ud, &info, gone);
}

/* Tell the callback about peers that became complete, changed or stopped being complete, and
 * drop the ones with nothing left. Stops early if the callback stopped the service. */
static void report_peers(struct exo_mdns *m)
{
    for (size_t i = 0; i < m->n_peers; i++) {
        struct peer *p = m->peers[i];
        bool complete = peer_complete(p);
        if (complete && (!p->reported || p->changed)) {
            p->reported = true;
            p->changed = false;
            deliver(m, p, false);
        } else if (!complete && p->reported) {
            p->reported = false;
            deliver(m, p, true);
        }
        if (m->stopping)
            return;
    }
    size_t k = 0;
    for (size_t i = 0; i < m->n_peers; i++) {
        struct peer *p = m->peers[i];
        if (!p->ptr.valid && !p->srv.valid && !p->reported)
            peer_free(p);
        else
            m->peers[k++] = p;
    }
    m->n_peers = k;
}

/* ---- Receiving ---- */

/* Our own multicast comes back through IP_MULTICAST_LOOP, and on a host with two interfaces on
 * one link also through the other interface: a packet from one of our addresses and port 5353
 * whose bytes we multicast in the last two seconds, on any interface, is ours. */
static bool is_own_packet(struct exo_mdns *m, int fam, const struct sockaddr *src,
                          const uint8_t *data, size_t len)
{
    bool local = false;
    if (sa_port(src) != EXO_MDNS_PORT)
        return false;
    for (size_t i = 0; i < m->n_ifaces && !local; i++)
        local = exo_netif_is_local(&m->ifaces[i].nif, src);
    if (!local)
        return false;
    uint64_t h = packet_hash(m, data, len), now = exo_clock_ns();
    for (size_t i = 0; i < OWN_RING; i++) {
        const struct own_sent *s = &m->sent[i];
        if (s->used && s->fam == fam && s->hash == h && now - s->sent_ns < OWN_WINDOW_NS)
            return true;
    }
    return false;
}

static void handle_packet(struct exo_mdns *m, int fam, unsigned ifindex, const struct sockaddr *src,
                          const uint8_t *data, size_t len)
{
    struct exo_dns_msg msg;
    struct exo_diag diag;
    struct iface *ifc = find_iface(m, ifindex);

    if (!ifc || !ifc->joined[fam]) {
        m->stats.drop_offlink++;
        return;
    }
    if (is_own_packet(m, fam, src, data, len)) {
        m->stats.drop_own++;
        return;
    }
    if (!exo_netif_on_link(&ifc->nif, src)) {
        m->stats.drop_offlink++;
        return;
    }
    if (exo_dns_parse(data, len, &msg, &diag) != 0) {
        m->stats.drop_malformed++;
        exo_log(EXO_LOG_DEBUG, "mdns", "dropped a packet from %s: %s", ifc->nif.name, diag.msg);
        return;
    }
    /* Section 18.3 and 18.11: other opcodes and non-zero rcodes are silently ignored. */
    if (EXO_DNS_OPCODE(msg.flags) != 0 || EXO_DNS_RCODE(msg.flags) != 0) {
        m->stats.drop_malformed++;
    } else if (msg.flags & EXO_DNS_FLAG_QR) {
        /* Section 6: a response not from port 5353 is not an mDNS response. */
        if (sa_port(src) != EXO_MDNS_PORT)
            m->stats.drop_port++;
        else
            handle_response(m, ifc, &msg);
    } else {
        handle_query(m, ifc, fam, src, &msg);
    }
    exo_dns_msg_free(&msg);
    report_peers(m);
}

static unsigned pktinfo_ifindex(struct msghdr *mh)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            return (unsigned)pi.ipi_ifindex;
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            return pi.ipi6_ifindex;
        }
    }
    return 0;
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    struct exo_mdns *m = h->data;
    int fam = h == &m->poll[FAM4] ? FAM4 : FAM6;
    if (status < 0) {
        exo_log(EXO_LOG_WARN, "mdns", "socket poll failed: %s", uv_strerror(status));
        return;
    }
    for (int k = 0; k < RECV_BURST && !m->stopping; k++) {
        struct sockaddr_storage src;
        union {
            char
                buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = {.iov_base = m->rx, .iov_len = sizeof(m->rx)};
        struct msghdr mh = {.msg_name = &src,
                            .msg_namelen = sizeof(src),
                            .msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = ctl.buf,
                            .msg_controllen = sizeof(ctl.buf)};
        ssize_t n = recvmsg(m->fd[fam], &mh, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN) /* EWOULDBLOCK is the same value on Linux */
                exo_log(EXO_LOG_DEBUG, "mdns", "recvmsg: %s", strerror(errno));
            return;
        }
        m->stats.rx_packets++;
        if ((mh.msg_flags & MSG_TRUNC) || (size_t)n > EXO_DNS_PACKET_MAX) {
            m->stats.drop_toobig++;
            continue;
        }
        if (src.ss_family != (fam == FAM4 ? AF_INET : AF_INET6)) {
            m->stats.drop_malformed++;
            continue;
        }
        handle_packet(m, fam, pktinfo_ifindex(&mh), (const struct sockaddr *)&src, m->rx,
                      (size_t)n);
    }
}

/* ---- Interfaces ---- */

static bool join_group(struct exo_mdns *m, int fam, unsigned index)
{
    int rc;
    if (fam == FAM4) {
        struct ip_mreqn mr = {.imr_ifindex = (int)index};
        inet_pton(AF_INET, "224.0.0.251", &mr.imr_multiaddr);
        rc = setsockopt(m->fd[FAM4], IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr));
    } else {
        struct ipv6_mreq mr = {.ipv6mr_interface = index};
        inet_pton(AF_INET6, "ff02::fb", &mr.ipv6mr_multiaddr);
        rc = setsockopt(m->fd[FAM6], IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr, sizeof(mr));
    }
    return rc == 0 || errno == EADDRINUSE;
}

static void leave_group(struct exo_mdns *m, int fam, unsigned index)
{
    if (fam == FAM4) {
        struct ip_mreqn mr = {.imr_ifindex = (int)index};
        inet_pton(AF_INET, "224.0.0.251", &mr.imr_multiaddr);
        setsockopt(m->fd[FAM4], IPPROTO_IP, IP_DROP_MEMBERSHIP, &mr, sizeof(mr));
    } else {
        struct ipv6_mreq mr = {.ipv6mr_interface = index};
        inet_pton(AF_INET6, "ff02::fb", &mr.ipv6mr_multiaddr);
        setsockopt(m->fd[FAM6], IPPROTO_IPV6, IPV6_LEAVE_GROUP, &mr, sizeof(mr));
    }
}

/* Join the group on ifc for each family it has an address of; true if anything new joined. */
static bool join_iface(struct exo_mdns *m, struct iface *ifc)
{
    bool joined_new = false;
    for (int fam = 0; fam < 2; fam++) {
        if (ifc->joined[fam] || m->fd[fam] < 0 ||
            !exo_netif_has_family(&ifc->nif, fam == FAM4 ? AF_INET : AF_INET6, NULL))
            continue;
        if (join_group(m, fam, ifc->nif.index)) {
            ifc->joined[fam] = true;
            joined_new = true;
            exo_log(EXO_LOG_INFO, "mdns", "joined %s on %s",
                    fam == FAM4 ? "224.0.0.251" : "ff02::fb", ifc->nif.name);
        } else {
            exo_log(EXO_LOG_WARN, "mdns", "cannot join the mDNS group on %s: %s", ifc->nif.name,
                    strerror(errno));
        }
    }
    return joined_new;
}

static bool same_addrs(const struct exo_netif *a, const struct exo_netif *b)
{
    return a->n_addrs == b->n_addrs &&
           memcmp(a->addrs, b->addrs, a->n_addrs * sizeof(a->addrs[0])) == 0;
}

/* Forget what we learnt through an interface that went away. */
static void drop_iface_peers(struct exo_mdns *m, unsigned index)
{
    for (size_t i = 0; i < m->n_peers; i++) {
        struct peer *p = m->peers[i];
        if (p->ifindex != index)
            continue;
        p->ptr.valid = p->srv.valid = p->txt.valid = false;
        p->n_addrs = 0;
    }
}

static void on_query_timer(uv_timer_t *t);

/* Re-read the interfaces: join new ones, leave vanished ones, notice address changes. When
 * anything changed, browse again from the 1 s interval and re-announce. */
static void rescan(struct exo_mdns *m)
{
    struct exo_netif *list = NULL;
    size_t n = 0;
    bool changed = false;
    int rc = exo_netif_list(&list, &n);
    if (rc) {
        exo_log(EXO_LOG_WARN, "mdns", "cannot list interfaces: %s", exo_strerror(rc));
        return;
    }
    for (size_t i = 0; i < m->n_ifaces; i++)
        m->ifaces[i].seen = false;
    for (size_t i = 0; i < n; i++) {
        const struct exo_netif *nif = &list[i];
        if (!exo_netif_is_multicast(nif) ||
            (m->bind_ifname[0] && strcmp(nif->name, m->bind_ifname) != 0))
            continue;
        struct iface *ifc = find_iface(m, nif->index);
        if (!ifc) {
            if (m->n_ifaces >= MAX_IFACES)
                continue;
            ifc = &m->ifaces[m->n_ifaces++];
            memset(ifc, 0, sizeof(*ifc));
            ifc->nif = *nif;
            changed = true;
        } else if (!same_addrs(&ifc->nif, nif)) {
            ifc->nif = *nif;
            memset(ifc->last_mc, 0, sizeof(ifc->last_mc));
            ifc->pending[FAM4] = ifc->pending[FAM6] = 0;
            changed = true;
        }
        ifc->seen = true;
        changed |= join_iface(m, ifc);
    }
    size_t k = 0;
    for (size_t i = 0; i < m->n_ifaces; i++) {
        struct iface *ifc = &m->ifaces[i];
        if (ifc->seen) {
            m->ifaces[k++] = *ifc;
            continue;
        }
        exo_log(EXO_LOG_INFO, "mdns", "interface %s is gone", ifc->nif.name);
        for (int fam = 0; fam < 2; fam++)
            if (ifc->joined[fam])
                leave_group(m, fam, ifc->nif.index);
        drop_iface_peers(m, ifc->nif.index);
        changed = true;
    }
    m->n_ifaces = k;
    exo_free(list);
    if (!changed)
        return;
    m->query_interval_ms = QUERY_FIRST_MS;
    uv_timer_start(&m->query_timer, on_query_timer, rand_ms(m, 20, 120), 0);
    if (m->state == STATE_READY) {
        m->state = STATE_ANNOUNCING;
        m->announces_sent = 0;
        uv_timer_start(&m->probe_timer, on_probe_timer, 0, 0);
    }
    report_peers(m);
}

/* ---- Timers ---- */

static void on_probe_timer(uv_timer_t *t)
{
    struct exo_mdns *m = t->data;
    if (m->state == STATE_PROBING) {
        if (m->probes_sent < PROBE_COUNT) {
            for (size_t i = 0; i < m->n_ifaces; i++)
                for (int fam = 0; fam < 2; fam++)
                    if (m->ifaces[i].joined[fam])
                        send_probe(m, &m->ifaces[i], fam);
            m->probes_sent++;
            uv_timer_start(&m->probe_timer, on_probe_timer, PROBE_GAP_MS, 0);
            return;
        }
        exo_log(EXO_LOG_INFO, "mdns", "advertising \"%s\" on %zu interface(s)", m->instance,
                m->n_ifaces);
        m->state = STATE_ANNOUNCING;
        m->announces_sent = 0;
    }
    if (m->state == STATE_ANNOUNCING) {
        announce_all(m, ANNOUNCE_KINDS, RESP_MULTICAST);
        m->announces_sent++;
        if (m->announces_sent < ANNOUNCE_COUNT)
            uv_timer_start(&m->probe_timer, on_probe_timer, 1000ull << (m->announces_sent - 1), 0);
        else
            m->state = STATE_READY;
    }
}

static void on_query_timer(uv_timer_t *t)
{
    struct exo_mdns *m = t->data;
    struct exo_dns_question q = {
        .name = m->service_name, .type = EXO_DNS_TYPE_PTR, .qclass = EXO_DNS_CLASS_IN};
    send_query(m, &q, 1, true);
    uv_timer_start(&m->query_timer, on_query_timer, m->query_interval_ms, 0);
    m->query_interval_ms *= 2;
    if (m->query_interval_ms > QUERY_MAX_MS)
        m->query_interval_ms = QUERY_MAX_MS;
}

static void on_resp_timer(uv_timer_t *t)
{
    struct exo_mdns *m = t->data;
    uint64_t now = exo_clock_ns();
    for (size_t i = 0; i < m->n_ifaces; i++) {
        struct iface *ifc = &m->ifaces[i];
        for (int fam = 0; fam < 2; fam++) {
            if (!ifc->pending[fam] || ifc->pending_due[fam] > now)
                continue;
            size_t n = build_own(m, ifc);
            uint32_t answers = rate_limit(ifc, fam, n, ifc->pending[fam], MCAST_GAP_NS);
            ifc->pending[fam] = 0;
            if (answers && authoritative(m))
                send_response(m, ifc, fam, NULL, n, answers, RESP_MULTICAST, NULL);
        }
    }
    arm_resp_timer(m);
}

/* Ask for a record again as it nears expiry (section 5.2); adds a question unless present. */
static void want_refresh(struct exo_mdns *m, struct life *l, uint64_t now,
                         const struct exo_dns_name *name, uint16_t type)
{
    if (!l->valid || l->refreshes >= 4)
        return;
    uint64_t at = l->born + (uint64_t)l->ttl * SEC / 100 * (80 + 5 * l->refreshes);
    if (now < at)
        return;
    l->refreshes++;
    for (size_t i = 0; i < m->n_refresh_q; i++)
        if (m->refresh_q[i].type == type && exo_dns_name_eq(&m->refresh_q[i].name, name))
            return;
    if (m->n_refresh_q >= MAX_REFRESH_Q)
        return;
    struct exo_dns_question *q = &m->refresh_q[m->n_refresh_q++];
    q->name = *name;
    q->type = type;
    q->qclass = EXO_DNS_CLASS_IN;
    q->unicast_response = false;
}

static void expire(struct life *l, bool *changed, uint64_t now)
{
    if (l->valid && now >= l->expires) {
        l->valid = false;
        *changed = true;
    }
}

static void on_tick(uv_timer_t *t)
{
    struct exo_mdns *m = t->data;
    uint64_t now = exo_clock_ns();
    m->n_refresh_q = 0;
    for (size_t i = 0; i < m->n_peers; i++) {
        struct peer *p = m->peers[i];
        bool changed = false;
        expire(&p->ptr, &changed, now);
        expire(&p->srv, &changed, now);
        expire(&p->txt, &changed, now);
        size_t k = 0;
        for (size_t j = 0; j < p->n_addrs; j++) {
            bool gone = false;
            expire(&p->addrs[j].life, &gone, now);
            if (gone)
                changed = true;
            else
                p->addrs[k++] = p->addrs[j];
        }
        p->n_addrs = k;
        if (changed && peer_complete(p))
            p->changed = true;
        want_refresh(m, &p->ptr, now, &m->service_name, EXO_DNS_TYPE_PTR);
        want_refresh(m, &p->srv, now, &p->name, EXO_DNS_TYPE_SRV);
        want_refresh(m, &p->txt, now, &p->name, EXO_DNS_TYPE_TXT);
        for (size_t j = 0; j < p->n_addrs; j++)
            want_refresh(m, &p->addrs[j].life, now, &p->target,
                         p->addrs[j].sa.ss_family == AF_INET ? EXO_DNS_TYPE_A : EXO_DNS_TYPE_AAAA);
    }
    if (m->n_refresh_q)
        send_query(m, m->refresh_q, m->n_refresh_q, false);
    report_peers(m);
}

static void on_rescan_timer(uv_timer_t *t)
{
    rescan(t->data);
}

/* ---- Lifecycle ---- */

static void free_mdns(struct exo_mdns *m)
{
    for (size_t i = 0; i < m->n_peers; i++)
        peer_free(m->peers[i]);
    exo_free(m->peers);
    exo_free(m->ifaces);
    exo_dns_builder_free(&m->out);
    for (int fam = 0; fam < 2; fam++)
        if (m->fd[fam] >= 0)
            close(m->fd[fam]);
    exo_free(m);
}

static void on_closed(uv_handle_t *h)
{
    struct exo_mdns *m = h->data;
    if (--m->open_handles > 0)
        return;
    void (*done_cb)(void *) = m->done_cb;
    void *done_ud = m->done_ud;
    free_mdns(m);
    if (done_cb)
        done_cb(done_ud);
}

static int sockopt(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof(value)) == 0 ? 0
                                                                   : exo_error_from_errno(errno);
}

/* IP_MULTICAST_ALL is left on, so the socket gets the group's datagrams from every interface
 * where any socket on the host joined, and handle_packet drops those from interfaces we do not
 * use. Turning it off looks tidier but breaks sharing the port: with SO_REUSEPORT and
 * IP_MULTICAST_ALL off, Linux (seen on 6.18) hands each group datagram to only one socket of
 * the port, so a second daemon on the host goes deaf. */
static int open_socket(int fam, int *ret_fd)
{
    int fd = socket(fam == FAM4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = 0;
    if (fd < 0)
        return exo_error_from_errno(errno);
    if ((rc = sockopt(fd, SOL_SOCKET, SO_REUSEADDR, 1)) ||
        (rc = sockopt(fd, SOL_SOCKET, SO_REUSEPORT, 1)))
        goto out;
    if (fam == FAM4) {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(EXO_MDNS_PORT)};
        if ((rc = sockopt(fd, IPPROTO_IP, IP_PKTINFO, 1)) ||
            (rc = sockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, 255)) ||
            (rc = sockopt(fd, IPPROTO_IP, IP_TTL, 255)) ||
            (rc = sockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, 1)))
            goto out;
        if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
            rc = exo_error_from_errno(errno);
    } else {
        struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(EXO_MDNS_PORT)};
        if ((rc = sockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1)) ||
            (rc = sockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)) ||
            (rc = sockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 255)) ||
            (rc = sockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 255)) ||
            (rc = sockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 1)))
            goto out;
        if (bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) != 0)
            rc = exo_error_from_errno(errno);
    }
out:
    if (rc) {
        close(fd);
        return rc;
    }
    *ret_fd = fd;
    return 0;
}

static int set_txt(struct exo_mdns *m, const char *const *txt, size_t n_txt)
{
    size_t len;
    if (n_txt && !txt)
        return EXO_EINVAL;
    int rc = exo_dns_txt_encode(txt, n_txt, m->txt, sizeof(m->txt), &len);
    if (rc)
        return EXO_EINVAL;
    m->txt_len = len;
    return 0;
}

static int configure(struct exo_mdns *m, const struct exo_mdns_config *cfg)
{
    char text[EXO_DNS_NAME_MAX + 8];
    struct exo_dns_name local;

    if (!cfg->instance || !cfg->service || !cfg->host || !cfg->instance[0] ||
        strlen(cfg->instance) > EXO_DNS_LABEL_MAX || !cfg->host[0] ||
        strlen(cfg->host) > EXO_DNS_LABEL_MAX || strchr(cfg->host, '.'))
        return EXO_EINVAL;
    if (cfg->bind_ifname && strlen(cfg->bind_ifname) >= IF_NAMESIZE)
        return EXO_EINVAL;
    if (snprintf(text, sizeof(text), "%s.local", cfg->service) >= (int)sizeof(text) ||
        exo_dns_name_from_text(&m->service_name, text) != 0 ||
        exo_dns_name_from_text(&local, "local") != 0 ||
        exo_dns_name_from_text(&m->enum_name, "_services._dns-sd._udp.local") != 0 ||
        exo_dns_name_prepend(&m->host_name, cfg->host, strlen(cfg->host), &local) != 0)
        return EXO_EINVAL;
    strcpy(m->base_instance, cfg->instance);
    if (set_instance_name(m) != 0 || set_txt(m, cfg->txt, cfg->n_txt) != 0)
        return EXO_EINVAL;
    m->port = cfg->port;
    m->ipv6 = cfg->ipv6;
    if (cfg->bind_ifname)
        strcpy(m->bind_ifname, cfg->bind_ifname);
    return 0;
}

static void init_timer(struct exo_mdns *m, uv_timer_t *t)
{
    uv_timer_init(m->loop, t);
    t->data = m;
    m->open_handles++;
}

int exo_mdns_start(uv_loop_t *loop, const struct exo_mdns_config *cfg, exo_mdns_peer_cb cb,
                   void *ud, struct exo_mdns **ret)
{
    struct exo_mdns *m = NULL;
    uint64_t seed = 0;
    int rc;

    if (!loop || !cfg || !cb || !ret)
        return EXO_EINVAL;
    m = exo_calloc(1, sizeof(*m));
    if (!m)
        return EXO_ENOMEM;
    m->fd[FAM4] = m->fd[FAM6] = -1;
    m->loop = loop;
    m->cb = cb;
    m->ud = ud;
    rc = configure(m, cfg);
    if (rc)
        goto out;
    m->peers = exo_calloc(EXO_MDNS_MAX_PEERS, sizeof(*m->peers));
    m->ifaces = exo_calloc(MAX_IFACES, sizeof(*m->ifaces));
    exo_dns_builder_init(&m->out, 0, 0, OUT_MAX);
    if (!m->peers || !m->ifaces || m->out.buf.err) {
        rc = EXO_ENOMEM;
        goto out;
    }
    if (sodium_init() >= 0) {
        randombytes_buf(&seed, sizeof(seed));
        crypto_shorthash_keygen(m->hash_key);
    } else {
        seed = exo_clock_ns() ^ exo_clock_wall_ms() ^ (uint64_t)getpid() << 32;
        for (size_t i = 0; i < sizeof(m->hash_key); i++)
            m->hash_key[i] = (uint8_t)(seed >> (8 * (i % 8)));
    }
    exo_rng_seed(&m->rng, seed);

    rc = open_socket(FAM4, &m->fd[FAM4]);
    if (rc) {
        exo_log(EXO_LOG_ERROR, "mdns", "cannot open the IPv4 mDNS socket on port %d: %s",
                EXO_MDNS_PORT, exo_strerror(rc));
        goto out;
    }
    if (cfg->ipv6) {
        int rc6 = open_socket(FAM6, &m->fd[FAM6]);
        if (rc6)
            exo_log(EXO_LOG_WARN, "mdns", "no IPv6 mDNS: %s", exo_strerror(rc6));
    }
    rc = uv_poll_init_socket(loop, &m->poll[FAM4], m->fd[FAM4]);
    if (rc) {
        rc = exo_error_from_errno(rc);
        goto out;
    }
    m->poll_open[FAM4] = true;
    m->open_handles++;
    if (m->fd[FAM6] >= 0) {
        if (uv_poll_init_socket(loop, &m->poll[FAM6], m->fd[FAM6]) == 0) {
            m->poll_open[FAM6] = true;
            m->open_handles++;
        } else {
            close(m->fd[FAM6]);
            m->fd[FAM6] = -1;
        }
    }
    /* From here on nothing fails: every handle is released through exo_mdns_stop. */
    for (int fam = 0; fam < 2; fam++) {
        if (m->poll_open[fam]) {
            m->poll[fam].data = m;
            uv_poll_start(&m->poll[fam], UV_READABLE, on_readable);
        }
    }
    init_timer(m, &m->probe_timer);
    init_timer(m, &m->query_timer);
    init_timer(m, &m->resp_timer);
    init_timer(m, &m->tick_timer);
    init_timer(m, &m->rescan_timer);
    m->state = STATE_PROBING;
    m->query_interval_ms = QUERY_FIRST_MS;
    rescan(m);
    if (m->n_ifaces == 0)
        exo_log(EXO_LOG_WARN, "mdns",
                "no multicast-capable interface%s%s is up; looking again every %d s",
                m->bind_ifname[0] ? " named " : "", m->bind_ifname, RESCAN_MS / 1000);
    uv_timer_start(&m->probe_timer, on_probe_timer, rand_ms(m, 0, PROBE_GAP_MS), 0);
    uv_timer_start(&m->query_timer, on_query_timer, rand_ms(m, 20, 120), 0);
    uv_timer_start(&m->tick_timer, on_tick, TICK_MS, TICK_MS);
    uv_timer_start(&m->rescan_timer, on_rescan_timer, RESCAN_MS, RESCAN_MS);
    *ret = m;
    return 0;
out:
    free_mdns(m);
    return rc;
}

int exo_mdns_update_txt(struct exo_mdns *m, const char *const *txt, size_t n_txt)
{
    if (!m || m->stopping)
        return EXO_EINVAL;
    uint8_t old[EXO_MDNS_TXT_MAX];
    size_t old_len = m->txt_len;
    memcpy(old, m->txt, old_len);
    int rc = set_txt(m, txt, n_txt);
    if (rc)
        return rc;
    if (old_len == m->txt_len && memcmp(old, m->txt, old_len) == 0)
        return 0;
    forget_multicasts(m);
    if (authoritative(m)) {
        m->state = STATE_ANNOUNCING;
        m->announces_sent = 0;
        uv_timer_start(&m->probe_timer, on_probe_timer, 0, 0);
    }
    return 0;
}

void exo_mdns_stop(struct exo_mdns *m, void (*done_cb)(void *ud), void *ud)
{
    if (!m || m->stopping)
        return;
    m->stopping = true;
    m->done_cb = done_cb;
    m->done_ud = ud;
    if (authoritative(m))
        announce_all(m, GOODBYE_KINDS, RESP_GOODBYE);
    for (int fam = 0; fam < 2; fam++)
        if (m->poll_open[fam])
            uv_close((uv_handle_t *)&m->poll[fam], on_closed);
    uv_close((uv_handle_t *)&m->probe_timer, on_closed);
    uv_close((uv_handle_t *)&m->query_timer, on_closed);
    uv_close((uv_handle_t *)&m->resp_timer, on_closed);
    uv_close((uv_handle_t *)&m->tick_timer, on_closed);
    uv_close((uv_handle_t *)&m->rescan_timer, on_closed);
}

void exo_mdns_get_stats(const struct exo_mdns *m, struct exo_mdns_stats *ret)
{
    *ret = m->stats;
}

const char *exo_mdns_instance(const struct exo_mdns *m)
{
    return m->instance;
}
