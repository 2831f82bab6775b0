/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Leader election and the replicated state in simulation: the production state machine
 * (cluster/state.c over cluster/members.c) on the in-memory network of cluster/sim.c, with a
 * virtual clock, for clusters of several sizes.
 *
 * The baseline is the membership layer underneath, measured in the same runs: the state layer
 * cannot agree on a leader before the members agree on who is alive, so each figure is printed
 * next to the membership figure it waits for, and their ratio is the cost of the layer itself.
 *
 * For each size it measures (median / worst over the trials):
 *   - start: all nodes start at t = 0 and join node 0; the time until membership converged, and
 *     until the state converged (one leader, the expected one, every node at its log position
 *     with its digest);
 *   - kill: the leader is killed (it stops dead); the time until every other node has declared
 *     it dead, and until the state converged on a new leader with a higher term. The old leader
 *     is then restarted; being first ranked it takes over again, once it caught up ("back");
 *   - heal: 2/5 of the nodes are cut off for 40 s (each side must then have its own leader:
 *     "split" counts the trials where it had); the time from healing until membership and until
 *     the state converged to one leader;
 *   - loss: a formed cluster runs with loss% of datagrams lost for `duration` seconds while every
 *     node changes a report every 5 s: the time until every node holds a new report (sampled
 *     every 100 ms), the share of nodes at the leader's log position on average, the elections
 *     (claims) during the window, and the time until all agree once the loss stops;
 *   - load: datagrams and bytes per node per second at rest, with the state layer and without.
 *
 *   sim-leader [--nodes 5,16,64] [--trials N] [--seed N] [--loss PCT] [--duration S]
 *              [--heartbeat-ms N] [--lease-ms N] [--claim-delay-ms N]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/members.h"
#include "cluster/sim.h"
#include "cluster/state.h"

#define MAX_SIZES  8
#define MAX_TRIALS 50
#define S          1000000ull
#define STEP       10000ull /* 10 ms */

struct options {
    size_t sizes[MAX_SIZES];
    size_t n_sizes;
    size_t trials;
    uint64_t seed;
    double loss;
    double duration_s;
    uint32_t heartbeat_ms, lease_ms, claim_delay_ms; /* overrides of the defaults */
};

static const struct options *opts;

static struct exo_sim *make_sim(size_t n, uint64_t seed, bool state, double loss)
{
    struct exo_sim_config cfg = {
        .nodes = n, .seed = seed, .latency_us = 200, .jitter_us = 100, .state = state};
    exo_members_config_init(&cfg.members);
    exo_state_config_init(&cfg.state_cfg);
    if (opts->heartbeat_ms)
        cfg.state_cfg.heartbeat_ms = opts->heartbeat_ms;
    if (opts->lease_ms)
        cfg.state_cfg.lease_ms = opts->lease_ms;
    if (opts->claim_delay_ms)
        cfg.state_cfg.claim_delay_ms = opts->claim_delay_ms;
    struct exo_sim *sim = NULL;
    if (exo_sim_create(&cfg, &sim) < 0)
        return NULL;
    exo_sim_set_loss(sim, loss);
    size_t zero = 0;
    for (size_t i = 0; i < n; i++)
        exo_sim_start(sim, i);
    for (size_t i = 1; i < n; i++)
        exo_sim_join(sim, i, &zero, 1);
    return sim;
}

typedef bool (*pred_fn)(struct exo_sim *sim, void *arg);

/* Run in 10 ms steps until pred holds; the time it took, or UINT64_MAX after limit. */
static uint64_t run_until(struct exo_sim *sim, pred_fn pred, void *arg, uint64_t limit)
{
    uint64_t start = exo_sim_now(sim);
    while (!pred(sim, arg)) {
        if (exo_sim_now(sim) >= start + limit)
            return UINT64_MAX;
        exo_sim_run_until(sim, exo_sim_now(sim) + STEP);
    }
    return exo_sim_now(sim) - start;
}

static bool members_converged(struct exo_sim *sim, void *arg)
{
    return exo_sim_converged(sim);
}

static bool state_converged(struct exo_sim *sim, void *arg)
{
    return exo_sim_state_converged(sim);
}

struct victim {
    size_t node, n;
};

/* Every other running node has declared the victim dead (or forgotten it). */
static bool victim_dead(struct exo_sim *sim, void *arg)
{
    const struct victim *v = arg;
    uint8_t id[EXO_MEMBERS_ID_BYTES];
    exo_sim_id(sim, v->node, id);
    for (size_t i = 0; i < v->n; i++) {
        struct exo_member_info info;
        if (!exo_sim_running(sim, i))
            continue;
        if (exo_members_get(exo_sim_members(sim, i), id, &info) == 0 &&
            (info.state == EXO_MEMBER_STATE_ALIVE || info.state == EXO_MEMBER_STATE_SUSPECT))
            return false;
    }
    return true;
}

static uint64_t term_of(struct exo_sim *sim, size_t node)
{
    struct exo_leader_claim c;
    exo_state_following(exo_sim_state(sim, node), &c);
    return c.term;
}

static size_t leaders(struct exo_sim *sim, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += exo_sim_running(sim, i) && exo_state_is_leader(exo_sim_state(sim, i));
    return k;
}

/* ---- figures ---- */

struct series {
    uint64_t v[MAX_TRIALS];
    size_t n, missed;
};

static void add(struct series *s, uint64_t v)
{
    if (v == UINT64_MAX)
        s->missed++;
    else if (s->n < MAX_TRIALS)
        s->v[s->n++] = v;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double median_s(struct series *s)
{
    if (!s->n)
        return NAN;
    qsort(s->v, s->n, sizeof(s->v[0]), cmp_u64);
    return (double)s->v[(s->n - 1) / 2] / 1e6;
}

static double max_s(const struct series *s)
{
    uint64_t m = 0;
    for (size_t i = 0; i < s->n; i++)
        m = s->v[i] > m ? s->v[i] : m;
    return s->n ? (double)m / 1e6 : NAN;
}

/* "members/state" medians and worst cases, and the ratio of the medians. */
static void print_pair(const char *what, struct series *m, struct series *st)
{
    double mm = median_s(m), sm = median_s(st);
    printf("  %-6s members %6.2f s (max %6.2f)   state %6.2f s (max %6.2f)   x%.2f", what, mm,
           max_s(m), sm, max_s(st), sm / mm);
    if (m->missed || st->missed)
        printf("   missed %zu/%zu", m->missed, st->missed);
    printf("\n");
}

static double now_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- scenarios ---- */

static void start_trials(const struct options *o, size_t n)
{
    struct series m = {0}, st = {0};
    for (size_t k = 0; k < o->trials; k++) {
        struct exo_sim *sim = make_sim(n, o->seed + k, true, 0);
        if (!sim)
            return;
        uint64_t t0 = exo_sim_now(sim);
        add(&m, run_until(sim, members_converged, NULL, 60 * S));
        uint64_t rest = run_until(sim, state_converged, NULL, 60 * S);
        add(&st, rest == UINT64_MAX ? rest : exo_sim_now(sim) - t0);
        exo_sim_free(sim);
    }
    print_pair("start", &m, &st);
}

static void kill_trials(const struct options *o, size_t n)
{
    struct series dead = {0}, st = {0}, back = {0};
    size_t higher = 0;
    struct exo_sim *sim = make_sim(n, o->seed, true, 0);
    if (!sim || run_until(sim, state_converged, NULL, 60 * S) == UINT64_MAX) {
        printf("  kill   no convergence\n");
        exo_sim_free(sim);
        return;
    }
    for (size_t k = 0; k < o->trials; k++) {
        long leader = exo_sim_expected_leader(sim, 0);
        uint64_t term = term_of(sim, (size_t)leader);
        struct victim v = {.node = (size_t)leader, .n = n};
        exo_sim_kill(sim, v.node);
        uint64_t t0 = exo_sim_now(sim);
        uint64_t d = run_until(sim, victim_dead, &v, 60 * S);
        add(&dead, d);
        uint64_t rest = run_until(sim, state_converged, NULL, 60 * S);
        add(&st, rest == UINT64_MAX ? rest : exo_sim_now(sim) - t0);
        long now_leader = exo_sim_expected_leader(sim, 0);
        higher += rest != UINT64_MAX && term_of(sim, (size_t)now_leader) > term;
        /* The old leader comes back with a higher incarnation and takes over again. */
        exo_sim_start(sim, v.node);
        size_t seed = (size_t)now_leader;
        exo_sim_join(sim, v.node, &seed, 1);
        add(&back, run_until(sim, state_converged, NULL, 60 * S));
        exo_sim_run_until(sim, exo_sim_now(sim) + 2 * S);
    }
    exo_sim_free(sim);
    print_pair("kill", &dead, &st);
    printf("  back   state %6.2f s (max %6.2f)   new leader with a higher term in %zu/%zu\n",
           median_s(&back), max_s(&back), higher, o->trials);
}

static void heal_trials(const struct options *o, size_t n)
{
    struct series m = {0}, st = {0};
    size_t split = 0, one_after = 0;
    size_t cut = (n * 2 + 4) / 5;
    for (size_t k = 0; k < o->trials; k++) {
        struct exo_sim *sim = make_sim(n, o->seed + 100 + k, true, 0);
        if (!sim || run_until(sim, state_converged, NULL, 60 * S) == UINT64_MAX) {
            exo_sim_free(sim);
            continue;
        }
        for (size_t i = 0; i < cut; i++)
            exo_sim_set_group(sim, i, 1);
        exo_sim_run_until(sim, exo_sim_now(sim) + 40 * S);
        split +=
            run_until(sim, state_converged, NULL, 20 * S) != UINT64_MAX && leaders(sim, n) == 2;
        for (size_t i = 0; i < cut; i++)
            exo_sim_set_group(sim, i, 0);
        uint64_t t0 = exo_sim_now(sim);
        add(&m, run_until(sim, members_converged, NULL, 120 * S));
        uint64_t rest = run_until(sim, state_converged, NULL, 120 * S);
        add(&st, rest == UINT64_MAX ? rest : exo_sim_now(sim) - t0);
        one_after += rest != UINT64_MAX && leaders(sim, n) == 1;
        exo_sim_free(sim);
    }
    print_pair("heal", &m, &st);
    printf("  split  two leaders while apart in %zu/%zu, one after healing in %zu/%zu\n", split,
           o->trials, one_after, o->trials);
}

/* Node i's report as every node should come to hold it. */
struct pending_report {
    char value[48];
    size_t len;
    uint64_t set_us; /* UINT64_MAX once everyone holds it */
};

static bool everyone_holds(struct exo_sim *sim, size_t n, size_t owner,
                           const struct pending_report *p)
{
    uint8_t id[EXO_MEMBERS_ID_BYTES];
    exo_sim_id(sim, owner, id);
    for (size_t i = 0; i < n; i++) {
        struct exo_state_record r;
        if (exo_state_record_get(exo_sim_state(sim, i), EXO_STATE_KIND_DEVICES, id, "", 0, &r) <
                0 ||
            r.value_len != p->len || memcmp(r.value, p->value, p->len) != 0)
            return false;
    }
    return true;
}

/* Share of nodes at the leader's log position with its digest. */
static double share_agreeing(struct exo_sim *sim, size_t n)
{
    long l = exo_sim_expected_leader(sim, 0);
    if (l < 0)
        return 0;
    uint64_t il, in;
    uint8_t dl[EXO_STATE_HASH_BYTES], dn[EXO_STATE_HASH_BYTES];
    exo_state_position(exo_sim_state(sim, (size_t)l), &il, NULL);
    exo_state_digest(exo_sim_state(sim, (size_t)l), dl);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        exo_state_position(exo_sim_state(sim, i), &in, NULL);
        exo_state_digest(exo_sim_state(sim, i), dn);
        k += in == il && memcmp(dn, dl, sizeof(dn)) == 0;
    }
    return (double)k / (double)n;
}

static void loss_run(const struct options *o, size_t n)
{
    struct exo_sim *sim = make_sim(n, o->seed + 200, true, 0);
    struct pending_report *pend = calloc(n, sizeof(*pend));
    if (!sim || !pend || run_until(sim, state_converged, NULL, 60 * S) == UINT64_MAX) {
        printf("  loss   no convergence\n");
        free(pend);
        exo_sim_free(sim);
        return;
    }
    uint64_t claims0 = 0;
    for (size_t i = 0; i < n; i++) {
        struct exo_state_stats st;
        exo_state_get_stats(exo_sim_state(sim, i), &st);
        claims0 += st.claims;
        pend[i].set_us = UINT64_MAX;
    }
    exo_sim_set_loss(sim, o->loss / 100.0);
    uint64_t end = exo_sim_now(sim) + (uint64_t)(o->duration_s * 1e6);
    static uint64_t lat[1 << 16];
    size_t n_lat = 0, samples = 0, unfinished = 0;
    double share = 0;
    for (uint64_t tick = 0; exo_sim_now(sim) < end; tick++) {
        /* Every node changes its report every 5 s, the nodes spread over the 5 s. */
        for (size_t i = 0; i < n; i++) {
            if ((tick + i * 50 / n) % 50 != 0)
                continue;
            struct pending_report *p = &pend[i];
            unfinished += p->set_us != UINT64_MAX;
            int len = snprintf(p->value, sizeof(p->value), "{\"node\":%zu,\"tick\":%llu}", i,
                               (unsigned long long)tick);
            p->len = (size_t)len;
            p->set_us = exo_sim_now(sim);
            exo_state_report_set(exo_sim_state(sim, i), EXO_STATE_KIND_DEVICES, "", 0,
                                 EXO_STATE_FORMAT_JSON, p->value, p->len, exo_sim_now(sim));
        }
        exo_sim_run_until(sim, exo_sim_now(sim) + 100000);
        for (size_t i = 0; i < n; i++) {
            struct pending_report *p = &pend[i];
            if (p->set_us == UINT64_MAX || !everyone_holds(sim, n, i, p))
                continue;
            if (n_lat < sizeof(lat) / sizeof(lat[0]))
                lat[n_lat++] = exo_sim_now(sim) - p->set_us;
            p->set_us = UINT64_MAX;
        }
        samples++;
        share += share_agreeing(sim, n);
    }
    uint64_t claims = 0;
    for (size_t i = 0; i < n; i++) {
        struct exo_state_stats st;
        exo_state_get_stats(exo_sim_state(sim, i), &st);
        claims += st.claims;
    }
    exo_sim_set_loss(sim, 0);
    uint64_t settle = run_until(sim, state_converged, NULL, 60 * S);
    qsort(lat, n_lat, sizeof(lat[0]), cmp_u64);
    printf("  loss   %.0f%% for %.0f s, each node's report changing every 5 s: a report held by "
           "every node after %.2f s (p99 %.2f, %zu superseded first); %.1f%% of nodes at the "
           "leader's position on average; %llu elections; all agreed %.2f s after the loss "
           "stopped\n",
           o->loss, o->duration_s, n_lat ? (double)lat[(n_lat - 1) / 2] / 1e6 : NAN,
           n_lat ? (double)lat[(size_t)ceil(0.99 * (double)n_lat) - 1] / 1e6 : NAN, unfinished,
           100.0 * share / (double)samples, (unsigned long long)(claims - claims0),
           (double)settle / 1e6);
    free(pend);
    exo_sim_free(sim);
}

static void load_run(const struct options *o, size_t n)
{
    double pkt[2], udp[2], tcp[2];
    for (int with = 0; with < 2; with++) {
        struct exo_sim *sim = make_sim(n, o->seed + 300, with, 0);
        if (!sim)
            return;
        run_until(sim, with ? state_converged : members_converged, NULL, 60 * S);
        exo_sim_run_until(sim, exo_sim_now(sim) + 60 * S); /* formation news drains */
        struct exo_sim_stats a, b;
        exo_sim_get_stats(sim, &a);
        const uint64_t window = 120 * S;
        exo_sim_run_until(sim, exo_sim_now(sim) + window);
        exo_sim_get_stats(sim, &b);
        double node_s = (double)n * (double)window / 1e6;
        pkt[with] = (double)(b.datagrams - a.datagrams) / node_s;
        udp[with] = (double)(b.datagram_bytes - a.datagram_bytes) / node_s;
        tcp[with] = (double)(b.stream_bytes - a.stream_bytes) / node_s;
        exo_sim_free(sim);
    }
    printf("  load   per node per second at rest: members %.2f pkt %.0f B + %.0f B TCP; with "
           "state %.2f pkt %.0f B + %.0f B TCP (x%.2f bytes)\n",
           pkt[0], udp[0], tcp[0], pkt[1], udp[1], tcp[1], (udp[1] + tcp[1]) / (udp[0] + tcp[0]));
}

static void parse_list(const char *s, size_t *out, size_t max, size_t *n)
{
    *n = 0;
    for (char *end; *s && *n < max; s = *end ? end + 1 : end) {
        out[(*n)++] = strtoul(s, &end, 10);
        if (end == s)
            break;
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: sim-leader [--nodes 5,16,64] [--trials N] [--seed N] [--loss PCT]\n"
                    "                  [--duration S] [--heartbeat-ms N] [--lease-ms N]\n"
                    "                  [--claim-delay-ms N]\n");
}

int main(int argc, char **argv)
{
    struct options o = {
        .sizes = {5, 16, 64}, .n_sizes = 3, .trials = 10, .seed = 1, .loss = 10, .duration_s = 120};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--nodes") == 0 && v) {
            parse_list(v, o.sizes, MAX_SIZES, &o.n_sizes);
            i++;
        } else if (strcmp(a, "--trials") == 0 && v) {
            o.trials = strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--seed") == 0 && v) {
            o.seed = strtoull(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--loss") == 0 && v) {
            o.loss = atof(v);
            i++;
        } else if (strcmp(a, "--duration") == 0 && v) {
            o.duration_s = atof(v);
            i++;
        } else if (strcmp(a, "--heartbeat-ms") == 0 && v) {
            o.heartbeat_ms = (uint32_t)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--lease-ms") == 0 && v) {
            o.lease_ms = (uint32_t)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--claim-delay-ms") == 0 && v) {
            o.claim_delay_ms = (uint32_t)strtoul(v, NULL, 10);
            i++;
        } else {
            usage();
            return 2;
        }
    }
    opts = &o;
    if (o.trials == 0 || o.trials > MAX_TRIALS) {
        usage();
        return 2;
    }
    printf("sim-leader: seed %llu, %zu trials, virtual time, medians (worst)\n",
           (unsigned long long)o.seed, o.trials);
    for (size_t k = 0; k < o.n_sizes; k++) {
        size_t n = o.sizes[k];
        if (n < 2 || n > 65536)
            continue;
        double wall0 = now_wall();
        printf("%zu nodes\n", n);
        start_trials(&o, n);
        kill_trials(&o, n);
        heal_trials(&o, n);
        loss_run(&o, n);
        load_run(&o, n);
        printf("  wall   %.1f s\n", now_wall() - wall0);
        fflush(stdout);
    }
    return 0;
}
