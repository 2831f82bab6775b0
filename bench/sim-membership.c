/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Membership in simulation: the production state machine (cluster/members.c) on the in-memory
 * network of cluster/sim.c, with a virtual clock, for clusters of several sizes.
 *
 * For each size it measures:
 *   - convergence: all nodes start at t = 0 and join node 0; the time until every node lists
 *     every other node as a member;
 *   - failure detection: a random node is killed (it stops dead, like kill -9); the time until the
 *     first node suspects it, the first declares it dead, and every other node has declared it
 *     dead. It is then restarted and rejoins, and the next trial begins;
 *   - false positives: with loss% of datagrams dropped for `duration` seconds and no failures,
 *     the number of times a live node was declared dead (and suspected);
 *   - load: datagrams, and bytes as sealed on the wire (datagrams, and streams for push-pull),
 *     sent per node per second at rest, over two push-pull periods (at least 120 s) once the
 *     news of the formation has drained.
 *
 * The baseline row runs memberlist's LAN configuration in the same simulator; the exo rows run
 * our defaults. Figures are virtual time, so they do not depend on the machine's load.
 *
 *   sim-membership [--nodes 8,64,256,1024] [--loss 10,20] [--seed N] [--duration S]
 *                  [--trials N] [--latency-us N] [--seal] [--no-baseline]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/members.h"
#include "cluster/sim.h"
#include "core/alloc.h"
#include "core/rng.h"

#define MAX_SIZES  8
#define MAX_LOSSES 4
#define MAX_TRIALS 200
#define S          1000000ull

struct options {
    size_t sizes[MAX_SIZES];
    size_t n_sizes;
    double losses[MAX_LOSSES];
    size_t n_losses;
    uint64_t seed;
    double duration_s;
    size_t trials;
    uint32_t latency_us;
    bool seal;
    bool baseline;
    uint32_t probe_ms, timeout_ms, mult; /* overrides for the exo rows */
};

/* What the event callback records. */
struct tracker {
    size_t n;
    size_t *known;    /* per node: other members it lists (alive or suspect) */
    size_t converged; /* nodes whose known == running - 1 */
    size_t running;
    uint64_t converged_at;
    long victim; /* node killed in the current trial, -1 when none */
    uint64_t first_suspect, first_dead, all_dead;
    size_t dead_reports;
    size_t expected_reports;
    uint64_t false_deaths, false_suspects;
    bool counting_false;
};

static void track_converged(struct tracker *t, size_t node, size_t before, uint64_t now_us)
{
    size_t target = t->running - 1;
    if (before == target && t->known[node] != target)
        t->converged--;
    else if (before != target && t->known[node] == target)
        t->converged++;
    if (t->converged == t->running && t->converged_at == UINT64_MAX)
        t->converged_at = now_us;
}

static void on_event(void *ctx, size_t node, enum exo_members_event ev,
                     const struct exo_member_info *info, uint64_t now_us)
{
    struct tracker *t = ctx;
    size_t before = t->known[node];
    long about = -1;
    uint64_t idx = 0;
    for (int b = 7; b >= 0; b--)
        idx = idx << 8 | info->id[8 + b];
    if (idx < t->n)
        about = (long)idx;
    switch (ev) {
    case EXO_MEMBERS_EVENT_JOIN:
        t->known[node]++;
        break;
    case EXO_MEMBERS_EVENT_DEAD:
    case EXO_MEMBERS_EVENT_LEFT:
        if (t->known[node] > 0)
            t->known[node]--;
        break;
    default:
        break;
    }
    track_converged(t, node, before, now_us);
    if (about >= 0 && about == t->victim) {
        if (ev == EXO_MEMBERS_EVENT_SUSPECT && t->first_suspect == UINT64_MAX)
            t->first_suspect = now_us;
        if (ev == EXO_MEMBERS_EVENT_DEAD) {
            if (t->first_dead == UINT64_MAX)
                t->first_dead = now_us;
            if (++t->dead_reports == t->expected_reports)
                t->all_dead = now_us;
        }
    } else if (t->counting_false) {
        if (ev == EXO_MEMBERS_EVENT_DEAD)
            t->false_deaths++;
        if (ev == EXO_MEMBERS_EVENT_SUSPECT)
            t->false_suspects++;
    }
}

static void recount(struct tracker *t, struct exo_sim *sim)
{
    t->running = 0;
    for (size_t i = 0; i < t->n; i++)
        t->running += exo_sim_running(sim, i);
    t->converged = 0;
    for (size_t i = 0; i < t->n; i++)
        if (exo_sim_running(sim, i) && t->known[i] == t->running - 1)
            t->converged++;
}

static void configure(struct exo_members_config *mc, bool baseline, const struct options *tune)
{
    exo_members_config_init(mc);
    if (baseline) {
        /* memberlist's DefaultLANConfig, as far as this state machine has the same knobs. */
        mc->probe_interval_ms = 1000;
        mc->probe_timeout_ms = 500;
        mc->suspicion_mult = 4;
        mc->gossip_interval_ms = 200;
        mc->gossip_eager_ms = 0;
        mc->confirm_probes = false;
        mc->corrections = false;
        mc->join_resync = false;
        mc->verify_suspects = false;
        return;
    }
    if (tune->probe_ms)
        mc->probe_interval_ms = tune->probe_ms;
    if (tune->timeout_ms)
        mc->probe_timeout_ms = tune->timeout_ms;
    if (tune->mult)
        mc->suspicion_mult = tune->mult;
}

static struct exo_sim *make_sim(const struct options *o, size_t n, double loss, uint64_t seed,
                                bool baseline, struct tracker *t)
{
    struct exo_sim_config cfg = {
        .nodes = n,
        .seed = seed,
        .loss = loss,
        .latency_us = o->latency_us,
        .jitter_us = o->latency_us / 2,
        .seal = o->seal,
        .replay_entries = 4096,
        .event_cb = on_event,
        .ctx = t,
    };
    configure(&cfg.members, baseline, o);
    struct exo_sim *sim = NULL;
    if (exo_sim_create(&cfg, &sim) < 0)
        return NULL;
    memset(t->known, 0, n * sizeof(*t->known));
    t->n = n;
    t->converged_at = UINT64_MAX;
    t->victim = -1;
    for (size_t i = 0; i < n; i++)
        exo_sim_start(sim, i);
    recount(t, sim);
    size_t seed_node = 0;
    for (size_t i = 1; i < n; i++)
        exo_sim_join(sim, i, &seed_node, 1);
    return sim;
}

/* Run until every node is converged or `limit_us` passes; the time it took, or UINT64_MAX. */
static uint64_t run_to_convergence(struct exo_sim *sim, struct tracker *t, uint64_t limit_us)
{
    uint64_t start = exo_sim_now(sim);
    t->converged_at = t->converged == t->running ? start : UINT64_MAX;
    for (uint64_t step = 1000;
         t->converged_at == UINT64_MAX && exo_sim_now(sim) < start + limit_us;)
        exo_sim_run_until(sim, exo_sim_now(sim) + step);
    return t->converged_at == UINT64_MAX ? UINT64_MAX : t->converged_at - start;
}

static bool drained(struct exo_sim *sim, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct exo_members *m = exo_sim_members(sim, i);
        struct exo_members_stats st;
        if (!m)
            continue;
        exo_members_get_stats(m, &st);
        if (st.queued)
            return false;
    }
    return true;
}

static uint64_t run_until_drained(struct exo_sim *sim, size_t n, uint64_t limit_us)
{
    uint64_t start = exo_sim_now(sim);
    while (!drained(sim, n) && exo_sim_now(sim) < start + limit_us)
        exo_sim_run_until(sim, exo_sim_now(sim) + S);
    return exo_sim_now(sim) - start;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof(*v), cmp_u64);
    size_t i = (size_t)ceil(p * (double)n) - 1;
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1e6;
}

struct row {
    double converge_s, drain_s;
    double susp_med, susp_p99, dead_med, dead_p99, all_med, all_p99;
    size_t trials, missed;
    double pkts, udp_bytes, tcp_bytes;
    double fp_deaths[MAX_LOSSES], fp_suspects[MAX_LOSSES];
    double wall_s;
};

static double now_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run_size(const struct options *o, size_t n, bool baseline, struct row *row)
{
    double wall0 = now_wall();
    struct tracker t = {0};
    t.known = exo_calloc(n, sizeof(*t.known));
    if (!t.known)
        return -1;
    memset(row, 0, sizeof(*row));

    /* Convergence, then steady-state load, then kill-and-restart trials. */
    struct exo_sim *sim = make_sim(o, n, 0.0, o->seed, baseline, &t);
    if (!sim)
        return -1;
    uint64_t conv = run_to_convergence(sim, &t, 120 * S);
    row->converge_s = conv == UINT64_MAX ? NAN : (double)conv / 1e6;
    /* Steady state: once the news of the formation has been sent its last time everywhere. */
    row->drain_s = (double)run_until_drained(sim, n, 300 * S) / 1e6;
    /* Two push-pull periods (at least 120 s), so that every node's exchanges are counted
     * whatever their phase. */
    struct exo_sim_stats a, b;
    exo_sim_get_stats(sim, &a);
    struct exo_members_config mc;
    configure(&mc, baseline, o);
    uint64_t window = 2 * exo_members_push_pull_ms(mc.push_pull_ms, n) * 1000;
    if (window < 120 * S)
        window = 120 * S;
    exo_sim_run_until(sim, exo_sim_now(sim) + window);
    exo_sim_get_stats(sim, &b);
    double node_s = (double)n * (double)window / 1e6;
    row->pkts = (double)(b.datagrams - a.datagrams) / node_s;
    row->udp_bytes = (double)(b.datagram_bytes - a.datagram_bytes) / node_s;
    row->tcp_bytes = (double)(b.stream_bytes - a.stream_bytes) / node_s;

    size_t trials = o->trials ? o->trials : (n <= 64 ? 40 : (n <= 256 ? 12 : 6));
    if (trials > MAX_TRIALS)
        trials = MAX_TRIALS;
    uint64_t susp[MAX_TRIALS], dead[MAX_TRIALS], all[MAX_TRIALS];
    struct exo_rng rng;
    exo_rng_seed(&rng, o->seed ^ 0x5bd1e995);
    for (size_t k = 0; k < trials; k++) {
        size_t victim = (size_t)exo_rng_below(&rng, n);
        exo_sim_kill(sim, victim);
        recount(&t, sim);
        t.victim = (long)victim;
        t.first_suspect = t.first_dead = t.all_dead = UINT64_MAX;
        t.dead_reports = 0;
        t.expected_reports = t.running;
        uint64_t t0 = exo_sim_now(sim);
        while (t.all_dead == UINT64_MAX && exo_sim_now(sim) < t0 + 120 * S)
            exo_sim_run_until(sim, exo_sim_now(sim) + 10000);
        if (t.all_dead == UINT64_MAX) {
            row->missed++;
        } else {
            susp[row->trials] = t.first_suspect - t0;
            dead[row->trials] = t.first_dead - t0;
            all[row->trials] = t.all_dead - t0;
            row->trials++;
        }
        t.victim = -1;
        /* Bring it back and let the cluster settle before the next trial. */
        exo_sim_start(sim, victim);
        size_t seed_node = victim == 0 ? 1 : 0;
        exo_sim_join(sim, victim, &seed_node, 1);
        recount(&t, sim);
        t.known[victim] = 0;
        recount(&t, sim);
        run_to_convergence(sim, &t, 120 * S);
        exo_sim_run_until(sim, exo_sim_now(sim) + 2 * S + exo_rng_below(&rng, 2 * S));
    }
    row->susp_med = pct(susp, row->trials, 0.5);
    row->susp_p99 = pct(susp, row->trials, 0.99);
    row->dead_med = pct(dead, row->trials, 0.5);
    row->dead_p99 = pct(dead, row->trials, 0.99);
    row->all_med = pct(all, row->trials, 0.5);
    row->all_p99 = pct(all, row->trials, 0.99);
    exo_sim_free(sim);

    /* False positives under loss: a fresh cluster, converged without loss, then loss for D s. */
    for (size_t l = 0; l < o->n_losses; l++) {
        sim = make_sim(o, n, 0.0, o->seed + 7 * (l + 1), baseline, &t);
        if (!sim)
            return -1;
        run_to_convergence(sim, &t, 120 * S);
        exo_sim_run_until(sim, exo_sim_now(sim) + 5 * S);
        exo_sim_set_loss(sim, o->losses[l] / 100.0);
        t.false_deaths = t.false_suspects = 0;
        t.counting_false = true;
        exo_sim_run_until(sim, exo_sim_now(sim) + (uint64_t)(o->duration_s * 1e6));
        t.counting_false = false;
        row->fp_deaths[l] = (double)t.false_deaths;
        row->fp_suspects[l] = (double)t.false_suspects;
        exo_sim_free(sim);
    }
    exo_free(t.known);
    row->wall_s = now_wall() - wall0;
    return 0;
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
    fprintf(stderr, "usage: sim-membership [--nodes 8,64,256,1024] [--loss 10,20] [--seed N]\n"
                    "                      [--duration S] [--trials N] [--latency-us N] [--seal]\n"
                    "                      [--no-baseline]\n");
}

int main(int argc, char **argv)
{
    struct options o = {
        .sizes = {8, 64, 256, 1024},
        .n_sizes = 4,
        .losses = {10, 20},
        .n_losses = 2,
        .seed = 1,
        .duration_s = 120,
        .latency_us = 200,
        .baseline = true,
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--nodes") == 0 && v) {
            parse_list(v, o.sizes, MAX_SIZES, &o.n_sizes);
            i++;
        } else if (strcmp(a, "--loss") == 0 && v) {
            size_t l[MAX_LOSSES];
            parse_list(v, l, MAX_LOSSES, &o.n_losses);
            for (size_t k = 0; k < o.n_losses; k++)
                o.losses[k] = (double)l[k];
            i++;
        } else if (strcmp(a, "--seed") == 0 && v) {
            o.seed = strtoull(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--duration") == 0 && v) {
            o.duration_s = atof(v);
            i++;
        } else if (strcmp(a, "--trials") == 0 && v) {
            o.trials = strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--latency-us") == 0 && v) {
            o.latency_us = (uint32_t)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--probe-ms") == 0 && v) {
            o.probe_ms = (uint32_t)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--timeout-ms") == 0 && v) {
            o.timeout_ms = (uint32_t)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--mult") == 0 && v) {
            o.mult = (uint32_t)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--seal") == 0) {
            o.seal = true;
        } else if (strcmp(a, "--no-baseline") == 0) {
            o.baseline = false;
        } else {
            usage();
            return 2;
        }
    }
    printf("# virtual time; latency %u us +- %u us; seed %llu; loss runs %.0f s%s\n", o.latency_us,
           o.latency_us / 2, (unsigned long long)o.seed, o.duration_s,
           o.seal ? "; every message sealed" : "");
    printf("%-9s %6s %8s | %-13s %-13s %-13s %6s | %-12s", "config", "nodes", "conv_s", "suspect_s",
           "first_dead_s", "all_dead_s", "trials", "false_deaths");
    printf(" | %8s %8s %8s %6s\n", "pkt/n/s", "udpB/n/s", "tcpB/n/s", "wall_s");
    for (size_t s = 0; s < o.n_sizes; s++) {
        for (int pass = o.baseline ? 0 : 1; pass < 2; pass++) {
            struct row r;
            if (run_size(&o, o.sizes[s], pass == 0, &r) < 0) {
                fprintf(stderr, "sim-membership: run failed for %zu nodes\n", o.sizes[s]);
                return 1;
            }
            char fp[64] = "";
            for (size_t l = 0; l < o.n_losses; l++) {
                char one[24];
                snprintf(one, sizeof(one), "%s%.0f%%:%.0f(%.0f)", l ? " " : "", o.losses[l],
                         r.fp_deaths[l], r.fp_suspects[l]);
                strncat(fp, one, sizeof(fp) - strlen(fp) - 1);
            }
            printf("%-9s %6zu %8.3f | %5.2f/%-7.2f %5.2f/%-7.2f %5.2f/%-7.2f %3zu/%-2zu | %-12s",
                   pass == 0 ? "baseline" : "exo", o.sizes[s], r.converge_s, r.susp_med, r.susp_p99,
                   r.dead_med, r.dead_p99, r.all_med, r.all_p99, r.trials, r.trials + r.missed, fp);
            printf(" | %8.2f %8.0f %8.0f %6.1f\n", r.pkts, r.udp_bytes, r.tcp_bytes, r.wall_s);
            fflush(stdout);
        }
    }
    printf("# suspect/first_dead/all_dead: median/p99 seconds after the kill; false_deaths: "
           "loss:deaths(suspicions)\n# load at rest, bytes as sealed on the wire: datagrams "
           "(probes, gossip) and streams (push-pull)\n");
    return 0;
}
