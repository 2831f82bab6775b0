/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mDNS service on real sockets, inside a private network namespace so that no packet can
 * leave this process's own links. When the test runs as root it unshares a new network
 * namespace for the whole process (it disappears with the process, even after a crash), turns
 * on multicast on its loopback and adds a veth pair exo-v0 (198.18.0.1/24) <-> exo-v1
 * (198.18.0.2/24). Without root, or where namespaces are not allowed, the tests skip.
 *
 * Two exo_mdns instances on one loop must find each other (on every interface, or each bound to
 * one end of the veth pair, over IPv4 and IPv6), see goodbyes and TXT updates, resolve a name
 * conflict, and count (not act on) off-link, malformed, oversized and wrong-port packets.
 * Hand-made queries check legacy unicast replies, QU unicast replies and known-answer
 * suppression. Every wait is bounded by a timer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "net/dns.h"
#include "net/mdns.h"
#include "net/netif.h"

static const char *skip_reason; /* set when the namespace could not be made */

static int sh(const char *cmd)
{
    char full[512];
    snprintf(full, sizeof(full), "%s >/dev/null 2>&1", cmd);
    return system(full);
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static void setup_netns(void)
{
    static const char *const cmds[] = {
        "ip link set lo up",
        "ip link set lo multicast on",
        "ip route add 224.0.0.0/4 dev lo",
        "ip link add exo-v0 type veth peer name exo-v1",
        "ip addr add 198.18.0.1/24 dev exo-v0",
        "ip addr add 198.18.0.2/24 dev exo-v1",
        /* A second address, outside exo-v1's subnet, to send off-link packets from. */
        "ip addr add 198.19.0.1/32 dev exo-v0",
        "ip link set exo-v0 up",
        "ip link set exo-v1 up",
    };
    if (geteuid() != 0) {
        skip_reason = "not root: cannot make a private network namespace";
        return;
    }
    if (unshare(CLONE_NEWNET) != 0) {
        skip_reason = "unshare(CLONE_NEWNET) is not allowed here";
        return;
    }
    /* Both ends of the pair live in this namespace, so each end sees the other's packets come
     * from a local address: accept_local lets them in. No DAD, so IPv6 link-local addresses
     * are usable at once. */
    write_file("/proc/sys/net/ipv6/conf/default/accept_dad", "0");
    write_file("/proc/sys/net/ipv4/conf/all/rp_filter", "0");
    write_file("/proc/sys/net/ipv4/conf/default/rp_filter", "0");
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (sh(cmds[i]) != 0) {
            skip_reason = "cannot configure the test namespace with ip(8)";
            return;
        }
    }
    for (int i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/exo-v%d/accept_local", i);
        write_file(path, "1");
        snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/exo-v%d/rp_filter", i);
        write_file(path, "0");
    }
}

#define NEED_NETNS()                                     \
    do {                                                 \
        if (skip_reason) {                               \
            print_message("skipped: %s\n", skip_reason); \
            skip();                                      \
        }                                                \
    } while (0)

/* ---- What the callback saw ---- */

struct seen {
    char instance[64];
    char host[256];
    char ifname[IF_NAMESIZE];
    uint16_t port;
    size_t n_addrs;
    struct sockaddr_storage addrs[EXO_MDNS_PEER_ADDRS];
    char txt[8][64];
    size_t n_txt;
    bool present;
    int ups, gones;
};

struct watcher {
    struct seen peers[8];
    size_t n;
};

static struct seen *lookup(struct watcher *w, const char *instance, bool add)
{
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->peers[i].instance, instance) == 0)
            return &w->peers[i];
    if (!add || w->n == 8)
        return NULL;
    struct seen *s = &w->peers[w->n++];
    memset(s, 0, sizeof(*s));
    snprintf(s->instance, sizeof(s->instance), "%s", instance);
    return s;
}

static void on_peer(void *ud, const struct exo_mdns_peer *p, bool gone)
{
    struct watcher *w = ud;
    struct seen *s = lookup(w, p->instance, true);
    if (!s)
        return;
    snprintf(s->ifname, sizeof(s->ifname), "%s", p->ifname);
    if (gone) {
        s->present = false;
        s->gones++;
        return;
    }
    s->present = true;
    s->ups++;
    snprintf(s->host, sizeof(s->host), "%s", p->host);
    s->port = p->port;
    s->n_addrs = p->n_addrs;
    memcpy(s->addrs, p->addrs, p->n_addrs * sizeof(p->addrs[0]));
    s->n_txt = 0;
    for (size_t i = 0; i < p->n_txt && i < 8; i++)
        snprintf(s->txt[s->n_txt++], sizeof(s->txt[0]), "%s", p->txt[i]);
}

static bool has_txt(const struct seen *s, const char *kv)
{
    for (size_t i = 0; i < s->n_txt; i++)
        if (strcmp(s->txt[i], kv) == 0)
            return true;
    return false;
}

static bool has_addr(const struct seen *s, const char *text)
{
    for (size_t i = 0; i < s->n_addrs; i++) {
        char buf[INET6_ADDRSTRLEN];
        const struct sockaddr_storage *a = &s->addrs[i];
        const void *raw = a->ss_family == AF_INET
                              ? (const void *)&((const struct sockaddr_in *)a)->sin_addr
                              : (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr;
        if (inet_ntop(a->ss_family, raw, buf, sizeof(buf)) && strcmp(buf, text) == 0)
            return true;
    }
    return false;
}

/* ---- Running the loop until something holds, for at most timeout_ms ---- */

typedef bool (*pred_fn)(void *arg);

struct waiter {
    pred_fn pred;
    void *arg;
    uint64_t deadline;
    bool met;
};

static void on_wait_tick(uv_timer_t *t)
{
    struct waiter *w = t->data;
    if (w->pred && w->pred(w->arg)) {
        w->met = true;
        uv_stop(t->loop);
    } else if (exo_clock_ns() >= w->deadline) {
        uv_stop(t->loop);
    }
}

static bool run_until(uv_loop_t *loop, pred_fn pred, void *arg, unsigned timeout_ms)
{
    struct waiter w = {
        .pred = pred, .arg = arg, .deadline = exo_clock_ns() + timeout_ms * 1000000ull};
    uv_timer_t t;
    uv_timer_init(loop, &t);
    t.data = &w;
    uv_timer_start(&t, on_wait_tick, 10, 10);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return w.met;
}

static void on_done(void *ud)
{
    *(bool *)ud = true;
}

static bool flag_set(void *arg)
{
    return *(bool *)arg;
}

static void stop_and_wait(uv_loop_t *loop, struct exo_mdns *m)
{
    bool done = false;
    exo_mdns_stop(m, on_done, &done);
    assert_true(run_until(loop, flag_set, &done, 2000));
}

/* ---- Fixtures ---- */

struct pair {
    uv_loop_t loop;
    struct exo_mdns *a, *b;
    struct watcher wa, wb;
};

static struct exo_mdns_config config(const char *instance, const char *host, uint16_t port,
                                     const char *bind, const char *const *txt, size_t n_txt)
{
    struct exo_mdns_config c = {.instance = instance,
                                .service = "_exo._udp",
                                .host = host,
                                .port = port,
                                .txt = txt,
                                .n_txt = n_txt,
                                .bind_ifname = bind};
    return c;
}

static const char *const txt_a[] = {"id=aaaa", "v=1", "gp=1111"};
static const char *const txt_b[] = {"id=bbbb", "v=1", "gp=2222"};

static void start_pair(struct pair *p, const char *bind_a, const char *bind_b, bool ipv6,
                       const char *name_a, const char *name_b)
{
    memset(p, 0, sizeof(*p));
    assert_int_equal(uv_loop_init(&p->loop), 0);
    struct exo_mdns_config ca = config(name_a, "host-a", 1111, bind_a, txt_a, 3);
    struct exo_mdns_config cb = config(name_b, "host-b", 2222, bind_b, txt_b, 3);
    ca.ipv6 = cb.ipv6 = ipv6;
    assert_int_equal(exo_mdns_start(&p->loop, &ca, on_peer, &p->wa, &p->a), 0);
    assert_int_equal(exo_mdns_start(&p->loop, &cb, on_peer, &p->wb, &p->b), 0);
}

static void stop_pair(struct pair *p)
{
    if (p->a)
        stop_and_wait(&p->loop, p->a);
    if (p->b)
        stop_and_wait(&p->loop, p->b);
    assert_int_equal(uv_loop_close(&p->loop), 0);
}

static bool both_see(void *arg)
{
    struct pair *p = arg;
    struct seen *ab = lookup(&p->wa, exo_mdns_instance(p->b), false);
    struct seen *ba = lookup(&p->wb, exo_mdns_instance(p->a), false);
    return ab && ab->present && ba && ba->present;
}

/* ---- Tests ---- */

static void test_mdns_config_rejected(void **state)
{
    uv_loop_t loop;
    struct exo_mdns *m = NULL;
    struct watcher w;
    char long_label[80];
    memset(long_label, 'x', 79);
    long_label[79] = '\0';
    char long_txt[300];
    memset(long_txt, 't', 299);
    long_txt[299] = '\0';
    const char *const bad_txt[] = {long_txt};

    assert_int_equal(uv_loop_init(&loop), 0);
    struct exo_mdns_config c = config("n", "h", 1, NULL, NULL, 0);
    c.instance = "";
    assert_int_equal(exo_mdns_start(&loop, &c, on_peer, &w, &m), EXO_EINVAL);
    c.instance = long_label;
    assert_int_equal(exo_mdns_start(&loop, &c, on_peer, &w, &m), EXO_EINVAL);
    c = config("n", "h.x", 1, NULL, NULL, 0);
    assert_int_equal(exo_mdns_start(&loop, &c, on_peer, &w, &m), EXO_EINVAL);
    c = config("n", "h", 1, NULL, bad_txt, 1);
    assert_int_equal(exo_mdns_start(&loop, &c, on_peer, &w, &m), EXO_EINVAL);
    c = config("n", "h", 1, "an-interface-name-too-long", NULL, 0);
    assert_int_equal(exo_mdns_start(&loop, &c, on_peer, &w, &m), EXO_EINVAL);
    c = config("n", "h", 1, NULL, NULL, 0);
    c.service = "bad..service";
    assert_int_equal(exo_mdns_start(&loop, &c, on_peer, &w, &m), EXO_EINVAL);
    c.service = "_exo._udp";
    assert_int_equal(exo_mdns_start(&loop, &c, NULL, &w, &m), EXO_EINVAL);
    assert_null(m);
    exo_mdns_stop(NULL, NULL, NULL);
    assert_int_equal(uv_loop_close(&loop), 0);
    (void)state;
}

static void test_mdns_two_instances_find_each_other(void **state)
{
    NEED_NETNS();
    struct pair p;
    start_pair(&p, NULL, NULL, false, "alpha", "beta");
    assert_true(run_until(&p.loop, both_see, &p, 5000));

    struct seen *b = lookup(&p.wa, "beta", false);
    assert_string_equal(b->host, "host-b.local");
    assert_int_equal(b->port, 2222);
    assert_true(has_txt(b, "id=bbbb"));
    assert_true(has_txt(b, "gp=2222"));
    assert_true(b->n_addrs >= 1);
    assert_true(has_addr(b, "127.0.0.1") || has_addr(b, "198.18.0.1") || has_addr(b, "198.18.0.2"));
    struct seen *a = lookup(&p.wb, "alpha", false);
    assert_int_equal(a->port, 1111);
    assert_true(has_txt(a, "id=aaaa"));
    /* Neither reports itself, and both saw (and dropped) their own looped-back packets. */
    assert_null(lookup(&p.wa, "alpha", false));
    assert_null(lookup(&p.wb, "beta", false));
    struct exo_mdns_stats st;
    exo_mdns_get_stats(p.a, &st);
    assert_true(st.drop_own > 0);
    assert_true(st.tx_packets > 0 && st.rx_packets > 0);
    assert_int_equal(st.conflicts, 0);
    assert_int_equal(st.drop_malformed, 0);
    assert_string_equal(exo_mdns_instance(p.a), "alpha");
    stop_pair(&p);
    (void)state;
}

static void test_mdns_bound_interfaces(void **state)
{
    NEED_NETNS();
    struct pair p;
    start_pair(&p, "exo-v0", "exo-v1", false, "alpha", "beta");
    assert_true(run_until(&p.loop, both_see, &p, 5000));
    struct seen *b = lookup(&p.wa, "beta", false);
    struct seen *a = lookup(&p.wb, "alpha", false);
    /* Each publishes only the addresses of the link it answers on. */
    assert_int_equal(b->n_addrs, 1);
    assert_true(has_addr(b, "198.18.0.2"));
    assert_string_equal(b->ifname, "exo-v0");
    assert_true(has_addr(a, "198.18.0.1"));
    assert_string_equal(a->ifname, "exo-v1");
    assert_int_equal(((struct sockaddr_in *)&b->addrs[0])->sin_port, htons(2222));
    stop_pair(&p);
    (void)state;
}

static bool both_see_v6(void *arg)
{
    struct pair *p = arg;
    if (!both_see(arg))
        return false;
    struct seen *b = lookup(&p->wa, "beta", false);
    for (size_t i = 0; i < b->n_addrs; i++)
        if (b->addrs[i].ss_family == AF_INET6)
            return true;
    return false;
}

static void test_mdns_ipv6(void **state)
{
    NEED_NETNS();
    struct pair p;
    start_pair(&p, "exo-v0", "exo-v1", true, "alpha", "beta");
    assert_true(run_until(&p.loop, both_see_v6, &p, 5000));
    struct seen *b = lookup(&p.wa, "beta", false);
    bool scoped = false;
    for (size_t i = 0; i < b->n_addrs; i++) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&b->addrs[i];
        if (b->addrs[i].ss_family == AF_INET6 && IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr))
            scoped = s6->sin6_scope_id == if_nametoindex("exo-v0");
    }
    assert_true(scoped);
    stop_pair(&p);
    (void)state;
}

struct gone_check {
    struct watcher *w;
    const char *instance;
};

static bool saw_gone(void *arg)
{
    struct gone_check *g = arg;
    struct seen *s = lookup(g->w, g->instance, false);
    return s && s->gones > 0 && !s->present;
}

static bool seen_present(void *arg)
{
    struct gone_check *g = arg;
    struct seen *s = lookup(g->w, g->instance, false);
    return s && s->present;
}

static void test_mdns_goodbye_reports_gone(void **state)
{
    NEED_NETNS();
    struct pair p;
    start_pair(&p, "exo-v0", "exo-v1", false, "alpha", "beta");
    assert_true(run_until(&p.loop, both_see, &p, 5000));
    bool done = false;
    exo_mdns_stop(p.b, on_done, &done);
    p.b = NULL;
    struct gone_check g = {.w = &p.wa, .instance = "beta"};
    uint64_t t0 = exo_clock_ns();
    assert_true(run_until(&p.loop, saw_gone, &g, 4000));
    print_message("gone reported %.2f s after the goodbye\n", (exo_clock_ns() - t0) / 1e9);
    assert_true(done);
    stop_pair(&p);
    (void)state;
}

static bool txt_updated(void *arg)
{
    struct pair *p = arg;
    struct seen *b = lookup(&p->wa, "beta", false);
    return b && b->present && has_txt(b, "gp=3333");
}

static void test_mdns_txt_update(void **state)
{
    NEED_NETNS();
    struct pair p;
    start_pair(&p, "exo-v0", "exo-v1", false, "alpha", "beta");
    assert_true(run_until(&p.loop, both_see, &p, 5000));
    static const char *const txt_new[] = {"id=bbbb", "v=1", "gp=3333"};
    assert_int_equal(exo_mdns_update_txt(p.b, txt_new, 3), 0);
    assert_true(run_until(&p.loop, txt_updated, &p, 3000));
    struct seen *b = lookup(&p.wa, "beta", false);
    assert_false(has_txt(b, "gp=2222"));
    assert_int_equal(b->gones, 0);
    /* A TXT change is not a name conflict for anyone. */
    struct exo_mdns_stats st;
    exo_mdns_get_stats(p.b, &st);
    assert_int_equal(st.conflicts, 0);
    stop_pair(&p);
    (void)state;
}

static void test_mdns_name_conflict_renames(void **state)
{
    NEED_NETNS();
    struct pair p;
    start_pair(&p, "exo-v0", "exo-v1", false, "same", "same");
    assert_true(run_until(&p.loop, both_see, &p, 8000));
    const char *na = exo_mdns_instance(p.a), *nb = exo_mdns_instance(p.b);
    assert_string_not_equal(na, nb);
    assert_true(strcmp(na, "same (2)") == 0 || strcmp(nb, "same (2)") == 0);
    struct exo_mdns_stats sa, sb;
    exo_mdns_get_stats(p.a, &sa);
    exo_mdns_get_stats(p.b, &sb);
    assert_int_equal(sa.conflicts + sb.conflicts, 1);
    stop_pair(&p);
    (void)state;
}

/* ---- Hand-made packets ---- */

/* A UDP socket on exo-v0 from `src` (port 0: any) that can send to the group and read what
 * comes back. */
static int test_socket(const char *src, uint16_t port, bool join)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, src, &sin.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    struct ip_mreqn mr = {.imr_ifindex = (int)if_nametoindex("exo-v0")};
    inet_pton(AF_INET, "224.0.0.251", &mr.imr_multiaddr);
    assert_int_equal(setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof(mr)), 0);
    if (join)
        assert_int_equal(setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr)), 0);
    return fd;
}

static void send_group(int fd, const void *data, size_t len)
{
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(EXO_MDNS_PORT)};
    inet_pton(AF_INET, "224.0.0.251", &to.sin_addr);
    assert_int_equal(sendto(fd, data, len, 0, (struct sockaddr *)&to, sizeof(to)), (ssize_t)len);
}

static size_t build_query(uint8_t *out, uint16_t id, const char *name, uint16_t type, bool qu,
                          const struct exo_dns_rr *known)
{
    struct exo_dns_builder b;
    const uint8_t *data;
    size_t len;
    struct exo_dns_question q = {.type = type, .qclass = EXO_DNS_CLASS_IN, .unicast_response = qu};
    assert_int_equal(exo_dns_name_from_text(&q.name, name), 0);
    exo_dns_builder_init(&b, id, 0, 1400);
    assert_int_equal(exo_dns_builder_question(&b, &q), 0);
    if (known)
        assert_int_equal(exo_dns_builder_rr(&b, EXO_DNS_SECTION_ANSWER, known), 0);
    assert_int_equal(exo_dns_builder_finish(&b, &data, &len), 0);
    memcpy(out, data, len);
    exo_dns_builder_free(&b);
    return len;
}

/* Run the loop for ms, reading fd meanwhile; true when a response with a record of `type`
 * named `name` arrived (ret_msg_id/ret_ttl/ret_from get the first such). */
struct listen {
    int fd;
    const char *name;
    uint16_t type;
    bool got;
    uint16_t id;
    uint32_t ttl;
    bool cache_flush;
    size_t n_qd;
    struct sockaddr_in from;
};

static bool listen_pred(void *arg)
{
    struct listen *l = arg;
    uint8_t buf[9000];
    struct exo_dns_name want;
    exo_dns_name_from_text(&want, l->name);
    for (int k = 0; k < 64; k++) {
        struct sockaddr_in from;
        socklen_t flen = sizeof(from);
        ssize_t n = recvfrom(l->fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
        if (n < 0)
            break;
        struct exo_dns_msg msg;
        if (exo_dns_parse(buf, (size_t)n, &msg, NULL) != 0)
            continue;
        for (size_t i = 0; (msg.flags & EXO_DNS_FLAG_QR) && i < msg.n_an; i++) {
            if (msg.rr[i].type == l->type && exo_dns_name_eq(&msg.rr[i].name, &want) && !l->got) {
                l->got = true;
                l->id = msg.id;
                l->ttl = msg.rr[i].ttl;
                l->cache_flush = msg.rr[i].cache_flush;
                l->n_qd = msg.n_qd;
                l->from = from;
            }
        }
        exo_dns_msg_free(&msg);
    }
    return l->got;
}

static struct exo_mdns *start_one(uv_loop_t *loop, struct watcher *w, const char *bind)
{
    struct exo_mdns *m = NULL;
    struct exo_mdns_config c = config("beta", "host-b", 2222, bind, txt_b, 3);
    assert_int_equal(exo_mdns_start(loop, &c, on_peer, w, &m), 0);
    /* Probing and the first announcement take about a second. */
    run_until(loop, NULL, NULL, 1500);
    return m;
}

static void test_mdns_legacy_unicast_reply(void **state)
{
    NEED_NETNS();
    uv_loop_t loop;
    struct watcher w = {0};
    assert_int_equal(uv_loop_init(&loop), 0);
    struct exo_mdns *m = start_one(&loop, &w, "exo-v1");
    int fd = test_socket("198.18.0.1", 0, false);
    uint8_t q[512];
    size_t len = build_query(q, 0x4242, "beta._exo._udp.local", EXO_DNS_TYPE_SRV, false, NULL);
    send_group(fd, q, len);
    struct listen l = {.fd = fd, .name = "beta._exo._udp.local", .type = EXO_DNS_TYPE_SRV};
    assert_true(run_until(&loop, listen_pred, &l, 1000));
    /* Section 6.7: the id and the question come back, TTL at most 10, no cache-flush bit. */
    assert_int_equal(l.id, 0x4242);
    assert_int_equal(l.n_qd, 1);
    assert_true(l.ttl <= 10);
    assert_false(l.cache_flush);
    close(fd);
    stop_and_wait(&loop, m);
    assert_int_equal(uv_loop_close(&loop), 0);
    (void)state;
}

static void test_mdns_qu_unicast_reply(void **state)
{
    NEED_NETNS();
    uv_loop_t loop;
    struct watcher w = {0};
    assert_int_equal(uv_loop_init(&loop), 0);
    struct exo_mdns *m = start_one(&loop, &w, "exo-v1");
    /* From port 5353 but a specific address, so the unicast reply comes to this socket. */
    int fd = test_socket("198.18.0.1", EXO_MDNS_PORT, false);
    uint8_t q[512];
    size_t len = build_query(q, 0, "_exo._udp.local", EXO_DNS_TYPE_PTR, true, NULL);
    send_group(fd, q, len);
    struct listen l = {.fd = fd, .name = "_exo._udp.local", .type = EXO_DNS_TYPE_PTR};
    assert_true(run_until(&loop, listen_pred, &l, 1000));
    assert_int_equal(l.ttl, 4500);
    assert_int_equal(l.id, 0);
    close(fd);
    stop_and_wait(&loop, m);
    assert_int_equal(uv_loop_close(&loop), 0);
    (void)state;
}

static void test_mdns_known_answer_suppression(void **state)
{
    NEED_NETNS();
    uv_loop_t loop;
    struct watcher w = {0};
    assert_int_equal(uv_loop_init(&loop), 0);
    struct exo_mdns *m = start_one(&loop, &w, "exo-v1");
    /* Let the announcements (about 1, 2 and 4 s after start) finish, so that neither they nor
     * the 1 s multicast rate limit are what we measure. */
    run_until(&loop, NULL, NULL, 3000);
    int fd = test_socket("0.0.0.0", EXO_MDNS_PORT, true);
    struct exo_dns_rr ka;
    memset(&ka, 0, sizeof(ka));
    exo_dns_name_from_text(&ka.name, "_exo._udp.local");
    exo_dns_name_from_text(&ka.rd.ptr, "beta._exo._udp.local");
    ka.type = EXO_DNS_TYPE_PTR;
    ka.rrclass = EXO_DNS_CLASS_IN;
    ka.ttl = 4000; /* more than half of 4500 */
    uint8_t q[512];
    size_t len = build_query(q, 0, "_exo._udp.local", EXO_DNS_TYPE_PTR, false, &ka);
    send_group(fd, q, len);
    struct listen l = {.fd = fd, .name = "_exo._udp.local", .type = EXO_DNS_TYPE_PTR};
    assert_false(run_until(&loop, listen_pred, &l, 600));
    /* A known answer with less than half the TTL left does not suppress. */
    ka.ttl = 2000;
    len = build_query(q, 0, "_exo._udp.local", EXO_DNS_TYPE_PTR, false, &ka);
    send_group(fd, q, len);
    assert_true(run_until(&loop, listen_pred, &l, 600));
    close(fd);
    stop_and_wait(&loop, m);
    assert_int_equal(uv_loop_close(&loop), 0);
    (void)state;
}

struct stats_check {
    struct exo_mdns *m;
    struct exo_mdns_stats want;
};

static bool stats_reached(void *arg)
{
    struct stats_check *c = arg;
    struct exo_mdns_stats st;
    exo_mdns_get_stats(c->m, &st);
    return st.drop_malformed >= c->want.drop_malformed && st.drop_offlink >= c->want.drop_offlink &&
           st.drop_port >= c->want.drop_port && st.drop_toobig >= c->want.drop_toobig;
}

static bool stats_reached_cache(void *arg)
{
    struct stats_check *c = arg;
    struct exo_mdns_stats st;
    exo_mdns_get_stats(c->m, &st);
    return st.drop_cache_full >= c->want.drop_cache_full;
}

static void test_mdns_drops_bad_packets(void **state)
{
    NEED_NETNS();
    uv_loop_t loop;
    struct watcher w = {0};
    assert_int_equal(uv_loop_init(&loop), 0);
    struct exo_mdns *m = start_one(&loop, &w, "exo-v1");
    struct exo_mdns_stats before;
    exo_mdns_get_stats(m, &before);

    /* Garbage from an on-link address. */
    int fd = test_socket("198.18.0.1", 0, false);
    static const uint8_t junk[] = {0, 0, 0x84, 0, 0, 0, 0, 9, 0xc0, 0x0c, 0xff};
    send_group(fd, junk, sizeof(junk));
    /* A response from a port other than 5353. */
    uint8_t pkt[9500];
    struct exo_dns_builder b;
    const uint8_t *data;
    size_t len;
    struct exo_dns_rr rr;
    memset(&rr, 0, sizeof(rr));
    exo_dns_name_from_text(&rr.name, "_exo._udp.local");
    exo_dns_name_from_text(&rr.rd.ptr, "evil._exo._udp.local");
    rr.type = EXO_DNS_TYPE_PTR;
    rr.rrclass = EXO_DNS_CLASS_IN;
    rr.ttl = 4500;
    exo_dns_builder_init(&b, 0, EXO_DNS_FLAG_QR | EXO_DNS_FLAG_AA, 1400);
    exo_dns_builder_rr(&b, EXO_DNS_SECTION_ANSWER, &rr);
    exo_dns_builder_finish(&b, &data, &len);
    send_group(fd, data, len);
    /* More than 9000 bytes. */
    memset(pkt, 0, sizeof(pkt));
    send_group(fd, pkt, sizeof(pkt));
    close(fd);
    /* A query from an address outside exo-v1's subnet. */
    fd = test_socket("198.19.0.1", EXO_MDNS_PORT, false);
    size_t qlen = build_query(pkt, 0, "_exo._udp.local", EXO_DNS_TYPE_PTR, false, NULL);
    send_group(fd, pkt, qlen);
    close(fd);
    exo_dns_builder_free(&b);

    struct stats_check c = {.m = m, .want = before};
    c.want.drop_malformed++;
    c.want.drop_port++;
    c.want.drop_toobig++;
    c.want.drop_offlink++;
    assert_true(run_until(&loop, stats_reached, &c, 1000));
    /* Nothing of it became a peer. */
    assert_int_equal(w.n, 0);
    stop_and_wait(&loop, m);
    assert_int_equal(uv_loop_close(&loop), 0);
    (void)state;
}

/* A response from the test socket (port 5353, on-link) carrying PTRs for n made-up instances
 * numbered from first. */
static void send_fake_ptrs(int fd, int first, int n)
{
    struct exo_dns_builder b;
    const uint8_t *data;
    size_t len;
    struct exo_dns_rr rr;
    memset(&rr, 0, sizeof(rr));
    exo_dns_name_from_text(&rr.name, "_exo._udp.local");
    rr.type = EXO_DNS_TYPE_PTR;
    rr.rrclass = EXO_DNS_CLASS_IN;
    rr.ttl = 4500;
    exo_dns_builder_init(&b, 0, EXO_DNS_FLAG_QR | EXO_DNS_FLAG_AA, EXO_DNS_PACKET_MAX);
    for (int i = first; i < first + n; i++) {
        char text[64];
        snprintf(text, sizeof(text), "fake-%03d._exo._udp.local", i);
        exo_dns_name_from_text(&rr.rd.ptr, text);
        assert_int_equal(exo_dns_builder_rr(&b, EXO_DNS_SECTION_ANSWER, &rr), 0);
    }
    assert_int_equal(exo_dns_builder_finish(&b, &data, &len), 0);
    send_group(fd, data, len);
    exo_dns_builder_free(&b);
}

/* B's browse queries, as seen on the link: how many packets had TC and how many known answers
 * came in all. */
struct query_watch {
    int fd;
    int tc_packets, last_packets;
    size_t known;
};

static bool query_pred(void *arg)
{
    struct query_watch *q = arg;
    uint8_t buf[9000];
    for (int k = 0; k < 64; k++) {
        ssize_t n = recv(q->fd, buf, sizeof(buf), 0);
        if (n < 0)
            break;
        struct exo_dns_msg msg;
        if (exo_dns_parse(buf, (size_t)n, &msg, NULL) != 0)
            continue;
        if (!(msg.flags & EXO_DNS_FLAG_QR) && msg.n_an > 0) {
            q->known += msg.n_an;
            if (msg.flags & EXO_DNS_FLAG_TC)
                q->tc_packets++;
            else
                q->last_packets++;
        }
        exo_dns_msg_free(&msg);
    }
    return q->tc_packets > 0 && q->last_packets > 0;
}

static void test_mdns_cache_bounded_and_known_answers_split(void **state)
{
    NEED_NETNS();
    uv_loop_t loop;
    struct watcher w = {0};
    assert_int_equal(uv_loop_init(&loop), 0);
    struct exo_mdns *m = start_one(&loop, &w, "exo-v1");
    int fd = test_socket("0.0.0.0", EXO_MDNS_PORT, true);
    /* 300 instances: more than EXO_MDNS_MAX_PEERS, and far more known answers than one
     * 1400-byte query can carry. */
    send_fake_ptrs(fd, 0, 150);
    send_fake_ptrs(fd, 150, 150);
    struct stats_check c = {.m = m};
    exo_mdns_get_stats(m, &c.want);
    c.want.drop_cache_full = 300 - EXO_MDNS_MAX_PEERS;
    assert_true(run_until(&loop, stats_reached_cache, &c, 1000));
    /* Incomplete instances (no SRV, TXT or address) are never reported. */
    assert_int_equal(w.n, 0);
    /* The next browse query lists the 256 as known answers over several packets, all but the
     * last with TC (section 7.2). Browse intervals double from 1 s, so wait up to 9 s. */
    struct query_watch q = {.fd = fd};
    assert_true(run_until(&loop, query_pred, &q, 9000));
    assert_true(q.known >= EXO_MDNS_MAX_PEERS);
    /* A real instance arriving into the full cache evicts a never-complete one and is found. */
    struct exo_mdns *a = NULL;
    struct exo_mdns_config ca = config("alpha", "host-a", 1111, "exo-v0", txt_a, 3);
    assert_int_equal(exo_mdns_start(&loop, &ca, on_peer, &w, &a), 0);
    struct gone_check g = {.w = &w, .instance = "alpha"};
    assert_true(run_until(&loop, seen_present, &g, 5000));
    stop_and_wait(&loop, a);
    close(fd);
    stop_and_wait(&loop, m);
    assert_int_equal(uv_loop_close(&loop), 0);
    (void)state;
}

static void test_mdns_netif_on_link(void **state)
{
    struct exo_netif nif;
    memset(&nif, 0, sizeof(nif));
    nif.addrs[0].family = AF_INET;
    inet_pton(AF_INET, "198.18.0.1", &nif.addrs[0].addr.v4);
    nif.addrs[0].prefix_len = 24;
    nif.addrs[1].family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8:1::1", &nif.addrs[1].addr.v6);
    nif.addrs[1].prefix_len = 64;
    nif.n_addrs = 2;

    struct sockaddr_in v4 = {.sin_family = AF_INET};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    const struct {
        const char *addr;
        bool on_link, local;
    } cases[] = {
        {"198.18.0.77", true, false},    {"198.18.0.1", true, true},
        {"198.18.1.1", false, false},    {"169.254.3.4", true, false},
        {"10.0.0.1", false, false},      {"fe80::1", true, false},
        {"2001:db8:1::42", true, false}, {"2001:db8:1::1", true, true},
        {"2001:db8:2::1", false, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct sockaddr *sa;
        if (inet_pton(AF_INET, cases[i].addr, &v4.sin_addr) == 1) {
            sa = (const struct sockaddr *)&v4;
        } else {
            assert_int_equal(inet_pton(AF_INET6, cases[i].addr, &v6.sin6_addr), 1);
            sa = (const struct sockaddr *)&v6;
        }
        if (exo_netif_on_link(&nif, sa) != cases[i].on_link ||
            exo_netif_is_local(&nif, sa) != cases[i].local) {
            print_error("%s\n", cases[i].addr);
            fail();
        }
    }
    /* A /19 prefix compares only its first 19 bits. */
    nif.addrs[0].prefix_len = 19;
    inet_pton(AF_INET, "198.18.31.200", &v4.sin_addr);
    assert_true(exo_netif_on_link(&nif, (const struct sockaddr *)&v4));
    inet_pton(AF_INET, "198.18.32.1", &v4.sin_addr);
    assert_false(exo_netif_on_link(&nif, (const struct sockaddr *)&v4));
    const struct exo_netif_addr *first;
    assert_true(exo_netif_has_family(&nif, AF_INET6, &first));
    assert_ptr_equal(first, &nif.addrs[1]);

    /* The real listing has at least a loopback, and every entry is up. */
    struct exo_netif *list;
    size_t n;
    assert_int_equal(exo_netif_list(&list, &n), 0);
    for (size_t i = 0; i < n; i++)
        assert_true(list[i].flags & IFF_UP);
    exo_free(list);
    (void)state;
}

int main(void)
{
    /* EXO_TEST_FILTER=<glob> runs some tests only; EXO_TEST_LOG=debug shows the service's log. */
    if (getenv("EXO_TEST_FILTER"))
        cmocka_set_test_filter(getenv("EXO_TEST_FILTER"));
    enum exo_log_level level;
    if (getenv("EXO_TEST_LOG") && exo_log_level_parse(getenv("EXO_TEST_LOG"), &level) == 0)
        exo_log_set_level(level);
    else
        exo_log_set_level(EXO_LOG_WARN);
    setup_netns();
    if (skip_reason)
        fprintf(stderr, "test-mdns: network tests skip: %s\n", skip_reason);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mdns_config_rejected),
        cmocka_unit_test(test_mdns_two_instances_find_each_other),
        cmocka_unit_test(test_mdns_bound_interfaces),
        cmocka_unit_test(test_mdns_ipv6),
        cmocka_unit_test(test_mdns_goodbye_reports_gone),
        cmocka_unit_test(test_mdns_txt_update),
        cmocka_unit_test(test_mdns_name_conflict_renames),
        cmocka_unit_test(test_mdns_legacy_unicast_reply),
        cmocka_unit_test(test_mdns_qu_unicast_reply),
        cmocka_unit_test(test_mdns_known_answer_suppression),
        cmocka_unit_test(test_mdns_drops_bad_packets),
        cmocka_unit_test(test_mdns_cache_bounded_and_known_answers_split),
        cmocka_unit_test(test_mdns_netif_on_link),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
