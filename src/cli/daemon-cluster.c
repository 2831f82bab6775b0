/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's cluster component: packet sealing, the cluster node (gossip membership and the
 * replicated state, cluster/cluster.h), mDNS discovery, --join seeds, and the routes that show
 * them: GET /api/v1/cluster, GET /api/v1/nodes, GET /api/v1/events (SSE), plus /metrics
 * families. docs/api.md has the JSON shapes.
 *
 * Discovery only finds peers: an mDNS answer from a node with our key fingerprint and protocol
 * becomes a join of its gossip address; liveness is membership's job. mDNS runs only when the
 * daemon listens on a real interface: on loopback there is no LAN to find.
 *
 * Stopping is a graceful leave: the leave is gossiped, the loop runs LEAVE_MS more for it to
 * spread, then mDNS sends its goodbyes, then the node closes. SSE clients are ended first.
 *
 * Threads: all of it runs on the loop thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "api/api.h"
#include "api/http.h"
#include "api/prom.h"
#include "cli/daemon-int.h"
#include "cluster/cluster.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "net/mdns.h"
#include "net/netif.h"
#include "net/seal.h"

#define LEAVE_MS      500   /* time the leave gets to spread before the node closes */
#define SSE_PING_MS   15000 /* a comment line keeps idle SSE streams open through proxies */
#define KEYFILE_MAX   (64 << 10)
#define MAX_HANDLERS  8
#define PROTO_VERSION "1"

struct sse_client {
    struct sse_client *next;
    struct daemon_cluster *dc;
    struct exo_http_request *req;
};

struct handler {
    uint8_t channel;
    daemon_message_cb cb;
    void *ud;
};

struct daemon_cluster {
    struct daemon *d;
    struct exo_seal *seal;
    struct exo_cluster *node; /* NULL before start and after the leave */
    struct exo_mdns *mdns;
    uint16_t gossip_port;
    char fingerprint[2 * EXO_SEAL_KEY_ID_BYTES + 1];
    struct sse_client *clients;
    struct handler handlers[MAX_HANDLERS];
    size_t n_handlers;
    uv_timer_t leave_timer, ping_timer;
    bool timers_open;
};

static struct exo_state *state_of(struct daemon_cluster *dc)
{
    return dc && dc->node ? exo_cluster_state(dc->node) : NULL;
}

struct exo_state *cluster_state(struct daemon *d)
{
    return state_of(d->cluster);
}

struct exo_members *cluster_members(struct daemon *d)
{
    return d->cluster && d->cluster->node ? exo_cluster_members(d->cluster->node) : NULL;
}

struct cJSON *cluster_record_json(const struct exo_state *s, uint16_t kind, const uint8_t *owner,
                                  const char *key)
{
    struct exo_state_record r;
    if (exo_state_record_get(s, kind, owner, key, strlen(key), &r) < 0 ||
        r.format != EXO_STATE_FORMAT_JSON)
        return NULL;
    return cJSON_ParseWithLength((const char *)r.value, r.value_len);
}

static void report_failed(uint16_t kind, const char *key, int rc)
{
    exo_log(EXO_LOG_WARN, "cluster", "cannot report %s%s%s to the cluster: %s",
            exo_state_kind_name(kind), key[0] ? " " : "", key, exo_strerror(rc));
}

int cluster_report(struct daemon *d, uint16_t kind, const char *key, struct cJSON *j)
{
    struct exo_state *s = cluster_state(d);
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    int rc = !s      ? 0 /* the cluster has stopped: nobody to tell */
             : !text ? EXO_ENOMEM
                     : exo_state_report_set(s, kind, key, strlen(key), EXO_STATE_FORMAT_JSON, text,
                                            strlen(text), exo_cluster_now_us());
    cJSON_free(text);
    if (rc < 0)
        report_failed(kind, key, rc);
    return rc;
}

int cluster_report_delete(struct daemon *d, uint16_t kind, const char *key)
{
    struct exo_state *s = cluster_state(d);
    int rc = s ? exo_state_report_delete(s, kind, key, strlen(key), exo_cluster_now_us()) : 0;
    if (rc < 0 && rc != EXO_ENOENT)
        report_failed(kind, key, rc);
    return rc;
}

/* ---- server-sent events -------------------------------------------------------------------- */

static void sse_remove(struct sse_client *c)
{
    struct sse_client **p = &c->dc->clients;
    while (*p && *p != c)
        p = &(*p)->next;
    if (*p)
        *p = c->next;
    exo_free(c);
}

static void on_sse_closed(struct exo_http_request *req, void *ud)
{
    struct sse_client *c = ud;
    exo_http_end(req);
    sse_remove(c);
}

void cluster_sse_publish(struct daemon *d, const char *event, const char *id, const char *json)
{
    struct daemon_cluster *dc = d->cluster;
    if (!dc)
        return;
    for (struct sse_client *c = dc->clients; c; c = c->next)
        exo_http_sse_send(c->req, event, id, json); /* a gone client costs nothing */
}

static void publish_state_event(struct daemon_cluster *dc, const struct exo_state_event *ev)
{
    if (!dc->clients)
        return;
    cJSON *j = exo_state_json_event(ev);
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    char id[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)ev->index);
    if (text)
        cluster_sse_publish(dc->d, exo_state_event_name(ev->type),
                            ev->type == EXO_STATE_EVENT_SNAPSHOT ? NULL : id, text);
    cJSON_free(text);
    cJSON_Delete(j);
}

/* A client resuming with Last-Event-ID gets what it missed, or a snapshot notice when the log no
 * longer holds it. */
static void sse_replay(struct daemon_cluster *dc, struct exo_http_request *req, const char *last)
{
    struct exo_state *s = state_of(dc);
    char *end;
    unsigned long long from = strtoull(last, &end, 10);
    if (!s || *end || end == last)
        return;
    uint64_t head;
    uint8_t hash[EXO_STATE_HASH_BYTES];
    exo_state_position(s, &head, hash);
    if (from >= head)
        return;
    if (from + 1 < exo_state_log_first(s)) {
        struct exo_state_event snap = {.index = head, .type = EXO_STATE_EVENT_SNAPSHOT};
        cJSON *j = exo_state_json_event(&snap);
        char *text = j ? cJSON_PrintUnformatted(j) : NULL;
        if (text)
            exo_http_sse_send(req, "snapshot", NULL, text);
        cJSON_free(text);
        cJSON_Delete(j);
        return;
    }
    for (uint64_t i = from + 1; i <= head; i++) {
        struct exo_state_event ev;
        if (exo_state_log_get(s, i, &ev) < 0)
            break;
        cJSON *j = exo_state_json_event(&ev);
        char *text = j ? cJSON_PrintUnformatted(j) : NULL;
        char id[24];
        snprintf(id, sizeof(id), "%llu", (unsigned long long)i);
        if (text)
            exo_http_sse_send(req, exo_state_event_name(ev.type), id, text);
        cJSON_free(text);
        cJSON_Delete(j);
    }
}

static void route_events(struct exo_http_request *req, void *ud)
{
    struct daemon_cluster *dc = ud;
    if (!dc->node) {
        exo_http_respond_error(req, 503, "the cluster is stopping");
        return;
    }
    struct sse_client *c = exo_calloc(1, sizeof(*c));
    if (!c) {
        exo_http_respond_error(req, 503, "out of memory");
        return;
    }
    c->dc = dc;
    c->req = req;
    if (exo_http_sse_begin(req) < 0) {
        exo_free(c);
        return;
    }
    c->next = dc->clients;
    dc->clients = c;
    exo_http_request_on_close(req, on_sse_closed, c);
    const char *last = exo_http_request_header(req, "Last-Event-ID");
    if (last)
        sse_replay(dc, req, last);
}

static void on_sse_ping(uv_timer_t *t)
{
    struct daemon_cluster *dc = t->data;
    for (struct sse_client *c = dc->clients; c; c = c->next)
        exo_http_write(c->req, ": ping\n\n", 8);
}

/* ---- JSON routes --------------------------------------------------------------------------- */

static void add_counter(cJSON *obj, const char *name, uint64_t v)
{
    cJSON_AddNumberToObject(obj, name, (double)v);
}

/* Why packets were dropped, by reason: sealing (wrong key, cluster, replays) and membership. */
static cJSON *dropped_json(struct daemon_cluster *dc)
{
    struct exo_seal_stats ss;
    struct exo_members_stats ms;
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return NULL;
    exo_seal_get_stats(dc->seal, &ss);
    for (int i = 0; i < EXO_SEAL_DROP__COUNT; i++)
        add_counter(j, exo_seal_drop_name((enum exo_seal_drop)i), ss.dropped[i]);
    exo_members_get_stats(exo_cluster_members(dc->node), &ms);
    for (int i = 0; i < EXO_MEMBERS_DROP__COUNT; i++)
        add_counter(j, exo_members_drop_name((enum exo_members_drop)i), ms.dropped[i]);
    return j;
}

static cJSON *membership_json(struct daemon_cluster *dc)
{
    struct exo_members_stats ms;
    exo_members_get_stats(exo_cluster_members(dc->node), &ms);
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return NULL;
    add_counter(j, "probes", ms.probes);
    add_counter(j, "acks", ms.probe_acks);
    add_counter(j, "probe_failures", ms.probe_failures);
    add_counter(j, "indirect_probes", ms.indirect_probes);
    add_counter(j, "nacks", ms.nacks_received);
    add_counter(j, "suspicions", ms.suspicions);
    add_counter(j, "suspicions_refuted", ms.suspicions_refuted);
    add_counter(j, "refutations", ms.refutations);
    add_counter(j, "deaths", ms.deaths);
    add_counter(j, "lefts", ms.lefts);
    add_counter(j, "joins", ms.joins);
    add_counter(j, "bytes_in", ms.bytes_in + ms.stream_bytes_in);
    add_counter(j, "bytes_out", ms.bytes_out + ms.stream_bytes_out);
    add_counter(j, "awareness", ms.awareness);
    return j;
}

static void route_cluster(struct exo_http_request *req, void *ud)
{
    struct daemon_cluster *dc = ud;
    struct exo_state *s = state_of(dc);
    if (!s) {
        exo_http_respond_error(req, 503, "the cluster is stopping");
        return;
    }
    cJSON *j = exo_state_json_cluster(s);
    if (j) {
        cJSON_AddStringToObject(j, "version", EXO_VERSION);
        cJSON_AddItemToObject(j, "membership", membership_json(dc));
        cJSON_AddItemToObject(j, "dropped", dropped_json(dc));
        cJSON_AddBoolToObject(j, "mdns", dc->mdns != NULL);
        cJSON_AddBoolToObject(j, "encrypted", !exo_seal_is_derived(dc->seal));
    }
    if (!j)
        exo_http_respond_error(req, 500, "out of memory");
    else
        exo_http_respond_json(req, 200, j);
    cJSON_Delete(j);
}

bool cluster_addr_host(const struct exo_members_addr *a, char *host, size_t size)
{
    int af = a->family == EXO_MEMBERS_FAMILY_IPV4   ? AF_INET
             : a->family == EXO_MEMBERS_FAMILY_IPV6 ? AF_INET6
                                                    : AF_UNSPEC;
    if (af == AF_UNSPEC || !inet_ntop(af, a->ip, host, (socklen_t)size)) {
        if (size)
            host[0] = '\0';
        return false;
    }
    return true;
}

/* "http://ip:port" of a member's API, or "" when its address is unknown. */
static void api_url(const struct exo_members_addr *a, uint16_t port, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    if (!cluster_addr_host(a, ip, sizeof(ip)) || !port)
        buf[0] = '\0';
    else if (a->family == EXO_MEMBERS_FAMILY_IPV6)
        snprintf(buf, size, "http://[%s]:%u", ip, port);
    else
        snprintf(buf, size, "http://%s:%u", ip, port);
}

/* The round trips a node measured to its peers, from its `links` record (daemon-links.c):
 * {"<peer id>": ms, ...}, or null before it reported any. */
static cJSON *links_json(struct daemon_cluster *dc, const uint8_t id[EXO_MEMBERS_ID_BYTES])
{
    cJSON *v = cluster_record_json(state_of(dc), EXO_STATE_KIND_LINKS, id, "");
    cJSON *rtt = cJSON_DetachItemFromObjectCaseSensitive(v, "rtt_ms");
    cJSON_Delete(v);
    if (cJSON_IsObject(rtt))
        return rtt;
    cJSON_Delete(rtt);
    return cJSON_CreateNull();
}

static cJSON *node_json(struct daemon_cluster *dc, const struct exo_state_member *m,
                        const uint8_t *leader)
{
    struct exo_members *members = exo_cluster_members(dc->node);
    struct exo_member_info info;
    char hex[2 * EXO_MEMBERS_ID_BYTES + 1], addr[64], url[96];
    bool known = exo_members_get(members, m->id, &info) == 0;
    sodium_bin2hex(hex, sizeof(hex), m->id, EXO_MEMBERS_ID_BYTES);
    exo_members_addr_format(&m->addr, addr, sizeof(addr));
    api_url(&m->addr, m->meta.api_port, url, sizeof(url));
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return NULL;
    cJSON_AddStringToObject(j, "id", hex);
    cJSON_AddStringToObject(j, "name", m->name);
    cJSON_AddStringToObject(j, "addr", addr);
    /* This node's own view of liveness is the freshest; the table's is what the leader saw. */
    cJSON_AddStringToObject(j, "state", exo_members_state_name(known ? info.state : m->state));
    cJSON_AddBoolToObject(j, "leader", leader && memcmp(leader, m->id, EXO_MEMBERS_ID_BYTES) == 0);
    cJSON_AddBoolToObject(j, "self", known && info.is_self);
    if (url[0])
        cJSON_AddStringToObject(j, "api", url);
    else
        cJSON_AddNullToObject(j, "api");
    if (known && info.rtt_us && !info.is_self)
        cJSON_AddNumberToObject(j, "rtt_ms", info.rtt_us / 1000.0);
    else
        cJSON_AddNullToObject(j, "rtt_ms");
    cJSON_AddItemToObject(j, "links", links_json(dc, m->id));
    cJSON *t = dc->d->telemetry_of ? dc->d->telemetry_of(dc->d, m->id) : NULL;
    cJSON_AddItemToObject(j, "telemetry", t ? t : cJSON_CreateNull());
    return j;
}

static void route_nodes(struct exo_http_request *req, void *ud)
{
    struct daemon_cluster *dc = ud;
    struct exo_state *s = state_of(dc);
    if (!s) {
        exo_http_respond_error(req, 503, "the cluster is stopping");
        return;
    }
    uint8_t leader[EXO_MEMBERS_ID_BYTES];
    uint64_t term;
    bool has_leader = exo_state_leader(s, leader, &term) == 0;
    cJSON *j = cJSON_CreateObject();
    cJSON *arr = j ? cJSON_AddArrayToObject(j, "nodes") : NULL;
    if (!arr) {
        cJSON_Delete(j);
        exo_http_respond_error(req, 500, "out of memory");
        return;
    }
    char hex[2 * EXO_MEMBERS_ID_BYTES + 1];
    cJSON_AddStringToObject(j, "self", dc->d->node_hex);
    if (has_leader) {
        sodium_bin2hex(hex, sizeof(hex), leader, EXO_MEMBERS_ID_BYTES);
        cJSON_AddStringToObject(j, "leader", hex);
    } else {
        cJSON_AddNullToObject(j, "leader");
    }
    for (size_t i = 0; i < exo_state_member_count(s); i++) {
        struct exo_state_member m;
        if (exo_state_member_at(s, i, &m) == 0)
            cJSON_AddItemToArray(arr, node_json(dc, &m, has_leader ? leader : NULL));
    }
    exo_http_respond_json(req, 200, j);
    cJSON_Delete(j);
}

/* ---- metrics ------------------------------------------------------------------------------- */

static int write_metrics(struct exo_prom *p, void *ud)
{
    struct daemon_cluster *dc = ud;
    if (!dc->node)
        return 0;
    struct exo_members_stats ms;
    struct exo_seal_stats ss;
    exo_members_get_stats(exo_cluster_members(dc->node), &ms);
    exo_seal_get_stats(dc->seal, &ss);

    exo_prom_family(p, "exo_cluster_members", EXO_PROM_GAUGE,
                    "Members by state, as this node sees them");
    const struct {
        const char *state;
        uint32_t n;
    } by_state[] = {
        {"alive", ms.alive}, {"suspect", ms.suspect}, {"dead", ms.dead}, {"left", ms.left}};
    for (size_t i = 0; i < 4; i++) {
        struct exo_prom_label l = {"state", by_state[i].state};
        exo_prom_sample_u64(p, &l, 1, by_state[i].n);
    }
#define COUNTER(name, help, v)                            \
    do {                                                  \
        exo_prom_family(p, name, EXO_PROM_COUNTER, help); \
        exo_prom_sample_u64(p, NULL, 0, v);               \
    } while (0)
    COUNTER("exo_gossip_probes_total", "Direct probes sent", ms.probes);
    COUNTER("exo_gossip_probe_failures_total", "Probes with no answer, direct or indirect",
            ms.probe_failures);
    COUNTER("exo_gossip_indirect_probes_total", "Indirect probes asked of other members",
            ms.indirect_probes);
    COUNTER("exo_gossip_nacks_total", "Nacks received from indirect probes", ms.nacks_received);
    COUNTER("exo_gossip_suspicions_total", "Members this node suspected", ms.suspicions);
    COUNTER("exo_gossip_suspicions_refuted_total", "Suspects that proved alive",
            ms.suspicions_refuted);
    COUNTER("exo_gossip_refutations_total", "Suspicions of this node that it refuted",
            ms.refutations);
    COUNTER("exo_gossip_deaths_total", "Members declared dead", ms.deaths);
#undef COUNTER
    exo_prom_family(p, "exo_gossip_bytes_total", EXO_PROM_COUNTER,
                    "Membership bytes, datagrams and streams");
    struct exo_prom_label in = {"direction", "in"}, out = {"direction", "out"};
    exo_prom_sample_u64(p, &in, 1, ms.bytes_in + ms.stream_bytes_in);
    exo_prom_sample_u64(p, &out, 1, ms.bytes_out + ms.stream_bytes_out);
    exo_prom_family(p, "exo_gossip_packets_dropped_total", EXO_PROM_COUNTER,
                    "Packets and messages dropped, by reason");
    for (int i = 0; i < EXO_SEAL_DROP__COUNT; i++) {
        struct exo_prom_label l = {"reason", exo_seal_drop_name((enum exo_seal_drop)i)};
        exo_prom_sample_u64(p, &l, 1, ss.dropped[i]);
    }
    for (int i = 0; i < EXO_MEMBERS_DROP__COUNT; i++) {
        struct exo_prom_label l = {"reason", exo_members_drop_name((enum exo_members_drop)i)};
        exo_prom_sample_u64(p, &l, 1, ms.dropped[i]);
    }

    /* The state machine's table: one family per run of rows with the same name. */
    struct exo_state_metric mt[EXO_STATE_METRICS_MAX];
    size_t n = exo_state_metrics(exo_cluster_state(dc->node), mt, EXO_STATE_METRICS_MAX);
    const char *open = NULL;
    for (size_t i = 0; i < n && i < EXO_STATE_METRICS_MAX; i++) {
        if (!open || strcmp(open, mt[i].name) != 0) {
            exo_prom_family(p, mt[i].name, mt[i].counter ? EXO_PROM_COUNTER : EXO_PROM_GAUGE,
                            mt[i].help);
            open = mt[i].name;
        }
        struct exo_prom_label l = {mt[i].label, mt[i].label_value};
        exo_prom_sample_u64(p, mt[i].label ? &l : NULL, mt[i].label ? 1 : 0, mt[i].value);
    }
    if (dc->mdns) {
        struct exo_mdns_stats ns;
        exo_mdns_get_stats(dc->mdns, &ns);
        exo_prom_family(p, "exo_mdns_packets_total", EXO_PROM_COUNTER, "mDNS datagrams");
        struct exo_prom_label rx = {"direction", "in"}, tx = {"direction", "out"};
        exo_prom_sample_u64(p, &rx, 1, ns.rx_packets);
        exo_prom_sample_u64(p, &tx, 1, ns.tx_packets);
    }
    return p->err;
}

/* ---- messages, events, discovery ----------------------------------------------------------- */

int cluster_on_message(struct daemon *d, uint8_t channel, daemon_message_cb cb, void *ud)
{
    struct daemon_cluster *dc = d->cluster;
    if (!dc || dc->n_handlers == MAX_HANDLERS || channel == EXO_STATE_CHANNEL)
        return EXO_EINVAL;
    dc->handlers[dc->n_handlers++] = (struct handler){channel, cb, ud};
    return 0;
}

int cluster_broadcast(struct daemon *d, const uint8_t *data, size_t len)
{
    struct exo_members *m = cluster_members(d);
    if (!m)
        return EXO_ECLOSED;
    int rc = exo_members_broadcast(m, data, len);
    if (rc == 0)
        exo_transport_kick(exo_cluster_transport(d->cluster->node));
    return rc;
}

int cluster_send(struct daemon *d, const uint8_t to[EXO_NODE_ID_SIZE], const uint8_t *data,
                 size_t len)
{
    struct exo_members *m = cluster_members(d);
    if (!m)
        return EXO_ECLOSED;
    int rc = exo_members_send(m, to, data, len, exo_cluster_now_us());
    if (rc == 0)
        exo_transport_kick(exo_cluster_transport(d->cluster->node));
    return rc;
}

static void on_message(void *ctx, const uint8_t from[EXO_MEMBERS_ID_BYTES], const uint8_t *data,
                       size_t len, bool broadcast)
{
    struct daemon_cluster *dc = ctx;
    if (len == 0)
        return;
    for (size_t i = 0; i < dc->n_handlers; i++)
        if (dc->handlers[i].channel == data[0])
            dc->handlers[i].cb(dc->handlers[i].ud, from, data, len, broadcast);
}

static void on_member(void *ctx, enum exo_members_event event, const struct exo_member_info *m)
{
    char addr[64];
    if (m->is_self || event == EXO_MEMBERS_EVENT_UPDATE)
        return;
    exo_members_addr_format(&m->addr, addr, sizeof(addr));
    exo_log(event == EXO_MEMBERS_EVENT_DEAD ? EXO_LOG_WARN : EXO_LOG_INFO, "cluster",
            "member %s (%s) %s", m->name, addr, exo_members_event_name(event));
}

static void on_state_event(void *ctx, const struct exo_state_event *ev)
{
    publish_state_event(ctx, ev);
}

/* The value of "key=" among an mDNS peer's TXT strings, or NULL. */
static const char *txt_value(const struct exo_mdns_peer *peer, const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < peer->n_txt; i++)
        if (strncmp(peer->txt[i], key, n) == 0 && peer->txt[i][n] == '=')
            return peer->txt[i] + n + 1;
    return NULL;
}

static void on_mdns_peer(void *ud, const struct exo_mdns_peer *peer, bool gone)
{
    struct daemon_cluster *dc = ud;
    if (gone || !dc->node)
        return;
    const char *id = txt_value(peer, "id"), *kf = txt_value(peer, "kf");
    const char *v = txt_value(peer, "v"), *gp = txt_value(peer, "gp");
    if (!id || strcmp(id, dc->d->node_hex) == 0)
        return;
    if (!kf || strcmp(kf, dc->fingerprint) != 0 || !v || strcmp(v, PROTO_VERSION) != 0) {
        exo_log(EXO_LOG_DEBUG, "cluster",
                "mDNS found %s, of another cluster or version; not joining it", peer->instance);
        return;
    }
    long port = gp ? strtol(gp, NULL, 10) : peer->port;
    struct exo_members_addr addrs[EXO_MDNS_PEER_ADDRS];
    size_t n = 0;
    for (size_t i = 0; i < peer->n_addrs && n < EXO_MDNS_PEER_ADDRS; i++) {
        const struct sockaddr_storage *ss = &peer->addrs[i];
        struct exo_members_addr *a = &addrs[n];
        memset(a, 0, sizeof(*a));
        if (ss->ss_family == AF_INET) {
            const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
            a->family = EXO_MEMBERS_FAMILY_IPV4;
            memcpy(a->ip, &sin->sin_addr, 4);
        } else if (ss->ss_family == AF_INET6) {
            const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
            if (IN6_IS_ADDR_LINKLOCAL(&sin6->sin6_addr))
                continue; /* needs a scope the member address cannot carry */
            a->family = EXO_MEMBERS_FAMILY_IPV6;
            memcpy(a->ip, &sin6->sin6_addr, 16);
        } else {
            continue;
        }
        a->port = (uint16_t)(port > 0 && port < 65536 ? port : 0);
        if (a->port)
            n++;
    }
    if (n > 0)
        exo_transport_join_addrs(exo_cluster_transport(dc->node), addrs, n);
}

/* The interface that holds `listen`, for mDNS; NULL (every interface) for a wildcard. *ret_any
 * is false when the address is loopback, where mDNS has nobody to find. */
static int mdns_interface(const char *listen, char *ifname, size_t size, bool *ret_run)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    ifname[0] = '\0';
    *ret_run = true;
    if (inet_pton(AF_INET, listen, &sin->sin_addr) == 1) {
        ss.ss_family = AF_INET;
        if (sin->sin_addr.s_addr == htonl(INADDR_ANY))
            return 0;
        if ((ntohl(sin->sin_addr.s_addr) >> 24) == 127) {
            *ret_run = false;
            return 0;
        }
    } else if (inet_pton(AF_INET6, listen, &sin6->sin6_addr) == 1) {
        ss.ss_family = AF_INET6;
        if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
            return 0;
        if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)) {
            *ret_run = false;
            return 0;
        }
    } else {
        return 0; /* a host name: let mDNS use every interface */
    }
    struct exo_netif *list;
    size_t n;
    if (exo_netif_list(&list, &n) < 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (exo_netif_is_local(&list[i], (struct sockaddr *)&ss)) {
            snprintf(ifname, size, "%s", list[i].name);
            break;
        }
    exo_free(list);
    return 0;
}

static int mdns_start(struct daemon_cluster *dc, uint16_t api_port)
{
    struct daemon *d = dc->d;
    char ifname[IF_NAMESIZE];
    bool run;
    mdns_interface(d->opt.listen, ifname, sizeof(ifname), &run);
    if (!run) {
        exo_log(EXO_LOG_INFO, "cluster",
                "listening on loopback: no mDNS discovery (run with --listen 0.0.0.0 to form a "
                "cluster on the LAN)");
        return 0;
    }
    char host[32], t_id[40], t_gp[16], t_ap[16], t_dp[16], t_kf[40];
    snprintf(host, sizeof(host), "exo-%.12s", d->node_hex);
    snprintf(t_id, sizeof(t_id), "id=%s", d->node_hex);
    snprintf(t_gp, sizeof(t_gp), "gp=%u", dc->gossip_port);
    snprintf(t_ap, sizeof(t_ap), "ap=%u", api_port);
    snprintf(t_dp, sizeof(t_dp), "dp=%u", DEFAULT_DATA_PORT);
    snprintf(t_kf, sizeof(t_kf), "kf=%s", dc->fingerprint);
    const char *txt[] = {t_id, "v=" PROTO_VERSION, t_gp, t_ap, t_dp, t_kf};
    struct exo_mdns_config cfg = {
        .instance = d->node_hex,
        .service = "_exo._udp",
        .host = host,
        .port = dc->gossip_port,
        .txt = txt,
        .n_txt = sizeof(txt) / sizeof(txt[0]),
        .bind_ifname = ifname[0] ? ifname : NULL,
        .ipv6 = strchr(d->opt.listen, ':') != NULL,
    };
    int rc = exo_mdns_start(&d->loop, &cfg, on_mdns_peer, dc, &dc->mdns);
    if (rc < 0) {
        /* Discovery is a convenience: --join still works without it. */
        exo_log(EXO_LOG_WARN, "cluster", "mDNS discovery is off: %s (use --join to find peers)",
                exo_strerror(rc));
        dc->mdns = NULL;
        return 0;
    }
    exo_log(EXO_LOG_INFO, "cluster", "mDNS: announcing _exo._udp on %s",
            ifname[0] ? ifname : "every interface");
    return 0;
}

/* ---- start and stop ------------------------------------------------------------------------ */

static int load_key(struct daemon_cluster *dc, const char *path)
{
    struct exo_diag diag = {{0}};
    FILE *f = fopen(path, "rb");
    if (!f) {
        exo_log(EXO_LOG_ERROR, "cluster", "cannot read the cluster key %s: %s", path,
                strerror(errno));
        return EXO_ENOENT;
    }
    char *text = exo_malloc(KEYFILE_MAX + 1);
    size_t n = text ? fread(text, 1, KEYFILE_MAX + 1, f) : 0;
    fclose(f);
    int rc = !text ? EXO_ENOMEM : n > KEYFILE_MAX ? EXO_ETOOBIG : 0;
    if (rc == 0)
        rc = exo_seal_load_keyfile(dc->seal, text, n, &diag);
    if (text)
        sodium_memzero(text, KEYFILE_MAX + 1);
    exo_free(text);
    if (rc < 0)
        exo_log(EXO_LOG_ERROR, "cluster", "bad cluster key %s: %s", path,
                diag.msg[0] ? diag.msg : exo_strerror(rc));
    return rc;
}

static void close_timers(struct daemon_cluster *dc)
{
    if (!dc->timers_open)
        return;
    dc->timers_open = false;
    uv_close((uv_handle_t *)&dc->leave_timer, NULL);
    uv_close((uv_handle_t *)&dc->ping_timer, NULL);
}

/* A start that failed half way: undo it without waiting (the daemon is shutting down). */
static int abort_start(struct daemon_cluster *dc, int rc)
{
    if (dc->mdns)
        exo_mdns_stop(dc->mdns, NULL, NULL);
    dc->mdns = NULL;
    exo_cluster_close(dc->node);
    dc->node = NULL;
    close_timers(dc);
    return rc;
}

int cluster_start(struct daemon *d)
{
    struct daemon_cluster *dc = exo_calloc(1, sizeof(*dc));
    if (!dc) {
        exo_log(EXO_LOG_ERROR, "cluster", "out of memory");
        return EXO_ENOMEM;
    }
    dc->d = d;
    d->cluster = dc;
    uv_timer_init(&d->loop, &dc->leave_timer);
    uv_timer_init(&d->loop, &dc->ping_timer);
    dc->leave_timer.data = dc->ping_timer.data = dc;
    dc->timers_open = true;

    struct exo_seal_config sc = {.cluster = d->opt.cluster};
    int rc = exo_seal_create(&sc, &dc->seal);
    if (rc < 0) {
        exo_log(EXO_LOG_ERROR, "cluster", "cannot set up sealing: %s", exo_strerror(rc));
        return abort_start(dc, rc);
    }
    if (d->opt.cluster_key && (rc = load_key(dc, d->opt.cluster_key)) < 0)
        return abort_start(dc, rc);
    if (!d->opt.cluster_key)
        exo_log(EXO_LOG_INFO, "cluster",
                "no --cluster-key: gossip is signed with a key derived from the cluster name "
                "'%s' (integrity, not secrecy); use 'exo keygen' for a closed cluster",
                d->opt.cluster);
    uint8_t kid[EXO_SEAL_KEY_ID_BYTES];
    exo_seal_primary_id(dc->seal, kid);
    sodium_bin2hex(dc->fingerprint, sizeof(dc->fingerprint), kid, sizeof(kid));

    struct exo_cluster_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    bool v6 = strchr(d->opt.listen, ':') != NULL;
    cfg.transport.bind_v4 = v6 ? "" : d->opt.listen;
    cfg.transport.bind_v6 = v6 ? d->opt.listen : "";
    cfg.transport.port = (uint16_t)d->opt.gossip_port;
    cfg.transport.ephemeral = d->opt.gossip_port == 0;
    cfg.transport.seal = dc->seal;
    exo_members_config_init(&cfg.members);
    memcpy(cfg.members.id, d->node_id, EXO_MEMBERS_ID_BYTES);
    if (d->opt.name)
        snprintf(cfg.members.name, sizeof(cfg.members.name), "%s", d->opt.name);
    else if (gethostname(cfg.members.name, sizeof(cfg.members.name)) != 0)
        snprintf(cfg.members.name, sizeof(cfg.members.name), "exo-%.8s", d->node_hex);
    cfg.members.name[sizeof(cfg.members.name) - 1] = '\0';
    uint16_t api_port = d->api ? exo_http_server_port(exo_api_server(d->api)) : 0;
    cfg.members.meta = (struct exo_members_meta){
        .proto_min = EXO_MEMBERS_PROTO,
        .proto_max = EXO_MEMBERS_PROTO,
        .gossip_port = (uint16_t)d->opt.gossip_port,
        .api_port = api_port,
        .data_port = DEFAULT_DATA_PORT,
        .leader_priority = (int32_t)d->opt.leader_priority,
    };
    /* A restart starts above any incarnation the previous run used. */
    cfg.members.incarnation = exo_clock_wall_ms() / 1000;
    randombytes_buf(&cfg.members.seed, sizeof(cfg.members.seed));
    exo_state_config_init(&cfg.state);
    cfg.hooks = (struct exo_cluster_hooks){
        .ctx = dc, .member_cb = on_member, .event_cb = on_state_event, .message_cb = on_message};

    rc = exo_cluster_create(&d->loop, &cfg, &dc->node);
    if (rc < 0) {
        dc->node = NULL;
        exo_log(EXO_LOG_ERROR, "cluster", "cannot start gossip on %s port %ld: %s%s", d->opt.listen,
                d->opt.gossip_port, exo_strerror(rc),
                rc == EXO_EBUSY && d->opt.gossip_port
                    ? " (another daemon on this port? --gossip-port)"
                    : "");
        return abort_start(dc, rc);
    }
    struct exo_members_addr local;
    exo_transport_local_addr(exo_cluster_transport(dc->node), &local);
    dc->gossip_port = local.port;
    char addr[64];
    exo_members_addr_format(&local, addr, sizeof(addr));
    exo_log(EXO_LOG_INFO, "cluster", "gossip on %s as '%s' in cluster '%s'%s", addr,
            cfg.members.name, d->opt.cluster, d->opt.cluster_key ? " (encrypted)" : "");

    if (d->opt.n_join > 0 &&
        (rc = exo_transport_join(exo_cluster_transport(dc->node), d->opt.join, d->opt.n_join)) < 0)
        exo_log(EXO_LOG_WARN, "cluster", "cannot join the --join seeds: %s", exo_strerror(rc));
    mdns_start(dc, api_port);

    struct exo_http_server *srv = exo_api_server(d->api);
    if ((rc = exo_http_route(srv, EXO_HTTP_GET | EXO_HTTP_HEAD, "/api/v1/cluster", 0, route_cluster,
                             dc)) < 0 ||
        (rc = exo_http_route(srv, EXO_HTTP_GET | EXO_HTTP_HEAD, "/api/v1/nodes", 0, route_nodes,
                             dc)) < 0 ||
        (rc = exo_http_route(srv, EXO_HTTP_GET, "/api/v1/events", 0, route_events, dc)) < 0 ||
        (rc = exo_api_add_metrics(d->api, write_metrics, dc)) < 0) {
        exo_log(EXO_LOG_ERROR, "cluster", "cannot add the cluster routes: %s", exo_strerror(rc));
        return abort_start(dc, rc);
    }
    uv_timer_start(&dc->ping_timer, on_sse_ping, SSE_PING_MS, SSE_PING_MS);
    return 0;
}

static void on_mdns_stopped(void *ud)
{
    struct daemon_cluster *dc = ud;
    dc->mdns = NULL;
    exo_cluster_close(dc->node);
    dc->node = NULL;
    close_timers(dc);
    stop_next(dc->d);
}

static void on_left(uv_timer_t *t)
{
    struct daemon_cluster *dc = t->data;
    if (dc->mdns)
        exo_mdns_stop(dc->mdns, on_mdns_stopped, dc); /* sends the goodbyes */
    else
        on_mdns_stopped(dc);
}

void cluster_stop(struct daemon *d)
{
    struct daemon_cluster *dc = d->cluster;
    uv_timer_stop(&dc->ping_timer);
    /* Ending a stream first means no close callback will come for it. */
    while (dc->clients) {
        struct sse_client *c = dc->clients;
        dc->clients = c->next;
        exo_http_end(c->req);
        exo_free(c);
    }
    exo_log(EXO_LOG_INFO, "cluster", "leaving the cluster");
    exo_cluster_leave(dc->node);
    uv_timer_start(&dc->leave_timer, on_left, LEAVE_MS, 0);
}

void cluster_release(struct daemon *d)
{
    struct daemon_cluster *dc = d->cluster;
    if (!dc)
        return;
    exo_seal_free(dc->seal);
    exo_free(dc);
    d->cluster = NULL;
}
