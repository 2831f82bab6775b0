/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Leader election: the rank, claim and choice rules against tables, the election object through
 * sequences of claims, and scenarios of the whole replicated state on the simulated network
 * (cluster/sim.c) with fixed seeds: clusters of 1, 2, 3 and 5 nodes, a killed leader, a
 * partition and its healing, loss, a restarted node, a better node joining; and three real
 * nodes on loopback through the daemon-facing wrapper (cluster/cluster.c). Every loop is bounded
 * in steps and in (virtual or wall) time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/cluster.h"
#include "cluster/leader.h"
#include "cluster/members.h"
#include "cluster/sim.h"
#include "cluster/state.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "net/seal.h"

#define SEC  1000000ull
#define MS   1000ull
#define MAXN 8

static void id_of(uint8_t *id, uint8_t v)
{
    memset(id, 0, EXO_MEMBERS_ID_BYTES);
    id[0] = v;
}

static struct exo_leader_claim claim(uint64_t term, uint8_t id, int32_t prio)
{
    struct exo_leader_claim c = {.term = term, .priority = prio};
    id_of(c.id, id);
    return c;
}

/* ---- rules ---- */

static void test_leader_rank_table(void **state)
{
    static const struct {
        int32_t pa;
        uint8_t a;
        int32_t pb;
        uint8_t b;
        int want;
    } rows[] = {
        {0, 1, 0, 2, -1},   {0, 2, 0, 1, 1},         {0, 5, 0, 5, 0},
        {1, 9, 0, 1, -1},   {0, 1, 1, 9, 1},         {-1, 1, 0, 9, 1},
        {-5, 1, -6, 1, -1}, {100, 200, 100, 100, 1}, {INT32_MAX, 255, INT32_MIN, 0, -1},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint8_t a[EXO_MEMBERS_ID_BYTES], b[EXO_MEMBERS_ID_BYTES];
        id_of(a, rows[i].a);
        id_of(b, rows[i].b);
        int got = exo_leader_rank_cmp(rows[i].pa, a, rows[i].pb, b);
        if (got != rows[i].want)
            fail_msg("row %zu: got %d want %d", i, got, rows[i].want);
    }
}

static void test_leader_claim_beats_table(void **state)
{
    static const struct {
        uint64_t ta;
        uint8_t a;
        int32_t pa;
        uint64_t tb;
        uint8_t b;
        int32_t pb;
        bool want;
    } rows[] = {
        {2, 9, 0, 1, 1, 0, true},  /* higher term wins whoever leads */
        {1, 1, 0, 2, 9, 0, false}, /* lower term never */
        {3, 1, 0, 3, 2, 0, true},  /* same term: better rank */
        {3, 2, 0, 3, 1, 0, false}, /* same term: worse rank */
        {3, 2, 5, 3, 1, 0, true},  /* same term: priority before id */
        {3, 4, 0, 3, 4, 0, false}, /* the same claim does not beat itself */
        {1, 7, 0, 0, 0, 0, true},  /* anything beats no claim */
        {0, 1, 9, 0, 2, 0, true},  /* term 0 is never observed, but ranks like the rest */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct exo_leader_claim a = claim(rows[i].ta, rows[i].a, rows[i].pa);
        struct exo_leader_claim b = claim(rows[i].tb, rows[i].b, rows[i].pb);
        if (exo_leader_claim_beats(&a, &b) != rows[i].want)
            fail_msg("row %zu", i);
    }
}

static struct exo_member_info info(uint8_t id, enum exo_member_state st, int32_t prio, uint8_t pmin,
                                   uint8_t pmax)
{
    struct exo_member_info m;
    memset(&m, 0, sizeof(m));
    id_of(m.id, id);
    m.state = st;
    m.meta.leader_priority = prio;
    m.meta.proto_min = pmin;
    m.meta.proto_max = pmax;
    return m;
}

static void test_leader_choose_table(void **state)
{
    const uint8_t P = EXO_MEMBERS_PROTO;
    struct exo_member_info a[] = {
        info(5, EXO_MEMBER_STATE_ALIVE, 0, P, P),
        info(3, EXO_MEMBER_STATE_ALIVE, 0, P, P),
        info(4, EXO_MEMBER_STATE_SUSPECT, 0, P, P),
    };
    assert_int_equal(exo_leader_choose(a, 3), 1); /* lowest id */
    a[1].state = EXO_MEMBER_STATE_DEAD;
    assert_int_equal(exo_leader_choose(a, 3), 2); /* a suspect still counts */
    a[2].state = EXO_MEMBER_STATE_LEFT;
    assert_int_equal(exo_leader_choose(a, 3), 0);
    a[0].meta.proto_min = P + 1;
    a[0].meta.proto_max = P + 1; /* speaks only a newer protocol */
    assert_int_equal(exo_leader_choose(a, 3), -1);
    assert_int_equal(exo_leader_choose(a, 0), -1);

    struct exo_member_info b[] = {
        info(1, EXO_MEMBER_STATE_ALIVE, 0, P, P),
        info(9, EXO_MEMBER_STATE_ALIVE, 2, P, P),
        info(7, EXO_MEMBER_STATE_ALIVE, 2, 0, (uint8_t)(P + 3)), /* a wider range is fine */
        info(2, EXO_MEMBER_STATE_ALIVE, -1, P, P),
    };
    assert_int_equal(exo_leader_choose(b, 4), 2); /* highest priority, then lowest id */
    b[2].meta.leader_priority = 1;
    assert_int_equal(exo_leader_choose(b, 4), 1);
}

/* ---- the election object ---- */

static void test_leader_observe_rules(void **state)
{
    uint8_t self[EXO_MEMBERS_ID_BYTES];
    id_of(self, 5);
    struct exo_leader l;
    exo_leader_init(&l, self, 0);
    struct exo_leader_claim c2 = claim(2, 9, 0);
    assert_true(exo_leader_observe(&l, &c2, false, 100));
    assert_int_equal(l.follow.term, 2);
    assert_int_equal(l.max_term, 2);
    assert_int_equal(l.heard_us, 100); /* adoption counts as hearing */
    /* The same claim again refreshes the lease only when the leader itself speaks. */
    assert_false(exo_leader_observe(&l, &c2, false, 200));
    assert_int_equal(l.heard_us, 100);
    assert_false(exo_leader_observe(&l, &c2, true, 300));
    assert_int_equal(l.heard_us, 300);
    /* Lower terms are ignored but never lower max_term. */
    struct exo_leader_claim c1 = claim(1, 1, 0);
    assert_false(exo_leader_observe(&l, &c1, true, 400));
    assert_int_equal(l.follow.term, 2);
    /* Equal terms resolve by rank. */
    struct exo_leader_claim c2b = claim(2, 3, 0);
    assert_true(exo_leader_observe(&l, &c2b, true, 500));
    assert_memory_equal(l.follow.id, c2b.id, EXO_MEMBERS_ID_BYTES);
    assert_false(exo_leader_observe(&l, &c2, true, 600));
    /* A claim takes max_term + 1. */
    struct exo_leader_claim mine;
    exo_leader_claim(&l, 700, &mine);
    assert_int_equal(mine.term, 3);
    assert_true(exo_leader_is_self(&l));
    assert_int_equal(l.changes, 3);
    struct exo_leader_claim c0 = claim(0, 1, 0);
    assert_false(exo_leader_observe(&l, &c0, true, 800)); /* term 0 is no claim */
    /* A claim in our name that we did not make (a run before a restart): only its term counts. */
    exo_leader_init(&l, self, 0);
    struct exo_leader_claim old = claim(4, 5, 0);
    assert_false(exo_leader_observe(&l, &old, true, 900));
    assert_int_equal(l.follow.term, 0);
    assert_int_equal(l.max_term, 4);
    exo_leader_claim(&l, 1000, &mine);
    assert_int_equal(mine.term, 5);
    assert_false(exo_leader_observe(&l, &mine, false, 1100)); /* our own claim, echoed */
    assert_true(exo_leader_is_self(&l));
}

static void test_leader_should_claim_rules(void **state)
{
    uint8_t self[EXO_MEMBERS_ID_BYTES];
    id_of(self, 5);
    struct exo_leader l;
    exo_leader_init(&l, self, 0);
    const uint64_t lease = 3000, delay = 500;
    uint64_t wake;
    struct exo_leader_input in = {.self_is_choice = true};
    /* Nobody followed: want to claim, after the delay. */
    assert_false(exo_leader_should_claim(&l, &in, 1000, lease, delay, &wake));
    assert_int_equal(wake, 1500);
    assert_false(exo_leader_should_claim(&l, &in, 1499, lease, delay, &wake));
    assert_true(exo_leader_should_claim(&l, &in, 1500, lease, delay, &wake));
    /* Not the choice: never, and the wish resets. */
    in.self_is_choice = false;
    assert_false(exo_leader_should_claim(&l, &in, 1600, lease, delay, &wake));
    assert_int_equal(wake, UINT64_MAX);
    assert_int_equal(l.want_since_us, UINT64_MAX);

    /* A better-ranked leader, alive: defer. */
    struct exo_leader_claim better = claim(4, 2, 0);
    exo_leader_observe(&l, &better, true, 2000);
    in = (struct exo_leader_input){.self_is_choice = true, .leader_alive = true, .in_sync = true};
    assert_false(exo_leader_should_claim(&l, &in, 2100, lease, delay, &wake));
    assert_int_equal(wake, UINT64_MAX);
    /* Dead in the view but heard within the lease: still defer, until the lease ends. */
    in.leader_alive = false;
    assert_false(exo_leader_should_claim(&l, &in, 4000, lease, delay, &wake));
    assert_int_equal(wake, 5000);
    assert_false(exo_leader_should_claim(&l, &in, 5000, lease, delay, &wake));
    assert_int_equal(wake, 5500);
    assert_true(exo_leader_should_claim(&l, &in, 5500, lease, delay, &wake));
    /* Left gracefully: no lease. */
    exo_leader_init(&l, self, 0);
    exo_leader_observe(&l, &better, true, 2000);
    in.leader_left = true;
    assert_false(exo_leader_should_claim(&l, &in, 2001, lease, delay, &wake));
    assert_int_equal(wake, 2501);

    /* A worse-ranked live leader: take over, but only in sync with it. */
    exo_leader_init(&l, self, 0);
    struct exo_leader_claim worse = claim(7, 8, 0);
    exo_leader_observe(&l, &worse, true, 100);
    in = (struct exo_leader_input){.self_is_choice = true, .leader_alive = true};
    assert_false(exo_leader_should_claim(&l, &in, 200, lease, delay, &wake));
    in.in_sync = true;
    assert_false(exo_leader_should_claim(&l, &in, 300, lease, delay, &wake));
    assert_true(exo_leader_should_claim(&l, &in, 800, lease, delay, &wake));
    struct exo_leader_claim mine;
    exo_leader_claim(&l, 800, &mine);
    assert_int_equal(mine.term, 8);
    /* Leading already: nothing more to claim. */
    assert_false(exo_leader_should_claim(&l, &in, 5000, lease, delay, &wake));
    /* Higher priority wins over a lower id. */
    exo_leader_init(&l, self, 3);
    exo_leader_observe(&l, &better, true, 0); /* id 2, priority 0 */
    in = (struct exo_leader_input){.self_is_choice = true, .leader_alive = true, .in_sync = true};
    assert_false(exo_leader_should_claim(&l, &in, 0, lease, delay, &wake));
    assert_true(exo_leader_should_claim(&l, &in, 500, lease, delay, &wake));
}

/* ---- scenarios ---- */

struct watch {
    struct exo_sim *sim;
    unsigned leader_events[MAXN];
    unsigned snapshots[MAXN];
};

static void on_state_event(void *ctx, size_t node, const struct exo_state_event *ev,
                           uint64_t now_us)
{
    struct watch *w = ctx;
    assert_true(node < MAXN);
    if (ev->type == EXO_STATE_EVENT_LEADER)
        w->leader_events[node]++;
    if (ev->type == EXO_STATE_EVENT_SNAPSHOT)
        w->snapshots[node]++;
}

static struct exo_sim *make_sim(size_t n, uint64_t seed, struct watch *w)
{
    struct exo_sim_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    memset(w, 0, sizeof(*w));
    cfg.nodes = n;
    cfg.seed = seed;
    cfg.latency_us = 200;
    cfg.jitter_us = 100;
    exo_members_config_init(&cfg.members);
    cfg.state = true;
    exo_state_config_init(&cfg.state_cfg);
    cfg.state_event_cb = on_state_event;
    cfg.ctx = w;
    struct exo_sim *sim = NULL;
    assert_int_equal(exo_sim_create(&cfg, &sim), 0);
    w->sim = sim;
    return sim;
}

static void start_all(struct exo_sim *sim, size_t n)
{
    size_t seed = 0;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(exo_sim_start(sim, i), 0);
    for (size_t i = 1; i < n; i++)
        assert_int_equal(exo_sim_join(sim, i, &seed, 1), 0);
}

/* Run in 10 ms steps until the state converged or `limit` of virtual time passed. */
static bool run_converged(struct exo_sim *sim, uint64_t limit)
{
    uint64_t end = exo_sim_now(sim) + limit;
    for (int steps = 0; steps < 100000 && exo_sim_now(sim) < end; steps++) {
        if (exo_sim_state_converged(sim))
            return true;
        exo_sim_run_until(sim, exo_sim_now(sim) + 10 * MS);
    }
    return exo_sim_state_converged(sim);
}

/* How many running nodes believe they lead. */
static size_t leaders(struct exo_sim *sim, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += exo_sim_running(sim, i) && exo_state_is_leader(exo_sim_state(sim, i));
    return k;
}

static uint64_t term_of(struct exo_sim *sim, size_t node)
{
    struct exo_leader_claim c;
    exo_state_following(exo_sim_state(sim, node), &c);
    return c.term;
}

static void dump(struct exo_sim *sim, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct exo_state *s = exo_sim_state(sim, i);
        if (!s) {
            print_message("node %zu: down\n", i);
            continue;
        }
        struct exo_leader_claim c;
        exo_state_following(s, &c);
        uint64_t index;
        uint8_t digest[EXO_STATE_HASH_BYTES];
        exo_state_position(s, &index, NULL);
        exo_state_digest(s, digest);
        struct exo_state_stats st;
        exo_state_get_stats(s, &st);
        print_message("node %zu: follows term %llu leader %ld%s, index %llu, digest %02x%02x, "
                      "records %u, reports sent %llu accepted %llu\n",
                      i, (unsigned long long)c.term, exo_sim_node_of(sim, c.id),
                      exo_state_is_leader(s) ? " (leads)" : "", (unsigned long long)index,
                      digest[0], digest[1], st.records, (unsigned long long)st.reports_sent,
                      (unsigned long long)st.reports_accepted);
        for (int d = 0; d < EXO_STATE_DROP__COUNT; d++)
            if (st.dropped[d])
                print_message("  dropped %s: %llu\n", exo_state_drop_name(d),
                              (unsigned long long)st.dropped[d]);
    }
}

static void expect_converged(struct exo_sim *sim, size_t n, uint64_t limit)
{
    if (!run_converged(sim, limit)) {
        dump(sim, n);
        fail_msg("no convergence within %llu s", (unsigned long long)(limit / SEC));
    }
}

static void test_leader_small_clusters_elect_one(void **state)
{
    static const size_t sizes[] = {1, 2, 3, 5};
    for (size_t k = 0; k < 4; k++) {
        size_t n = sizes[k];
        struct watch w;
        struct exo_sim *sim = make_sim(n, 10 + k, &w);
        start_all(sim, n);
        expect_converged(sim, n, 10 * SEC);
        assert_int_equal(leaders(sim, n), 1);
        long expect = exo_sim_expected_leader(sim, 0);
        assert_true(exo_state_is_leader(exo_sim_state(sim, (size_t)expect)));
        /* Formation made one term: the expected leader waited for the membership view. */
        assert_int_equal(term_of(sim, 0), 1);
        /* Stable afterwards, and the members table lists everyone alive. */
        exo_sim_run_until(sim, exo_sim_now(sim) + 20 * SEC);
        assert_true(exo_sim_state_converged(sim));
        assert_int_equal(term_of(sim, 0), 1);
        for (size_t i = 0; i < n; i++) {
            struct exo_state *s = exo_sim_state(sim, i);
            assert_int_equal(exo_state_member_count(s), n);
            for (size_t j = 0; j < n; j++) {
                struct exo_state_member m;
                assert_int_equal(exo_state_member_at(s, j, &m), 0);
                assert_int_equal(m.state, EXO_MEMBER_STATE_ALIVE);
            }
        }
        exo_sim_free(sim);
    }
}

static void test_leader_killed_replaced(void **state)
{
    const size_t n = 5;
    struct watch w;
    struct exo_sim *sim = make_sim(n, 21, &w);
    start_all(sim, n);
    expect_converged(sim, n, 10 * SEC);
    for (int round = 0; round < 2; round++) {
        long old = exo_sim_expected_leader(sim, 0);
        uint64_t term = term_of(sim, (size_t)old);
        exo_sim_kill(sim, (size_t)old);
        uint64_t t0 = exo_sim_now(sim);
        expect_converged(sim, n, 20 * SEC);
        long now_leader = exo_sim_expected_leader(sim, 0);
        assert_true(now_leader != old);
        assert_true(term_of(sim, (size_t)now_leader) > term);
        print_message("leader %ld killed: %ld leads term %llu after %.2f s\n", old, now_leader,
                      (unsigned long long)term_of(sim, (size_t)now_leader),
                      (double)(exo_sim_now(sim) - t0) / SEC);
        assert_int_equal(leaders(sim, n), 1);
        /* The dead leader ends up DEAD in the table everyone shares. */
        uint8_t id[EXO_MEMBERS_ID_BYTES];
        exo_sim_id(sim, (size_t)old, id);
        struct exo_state_member m;
        assert_int_equal(exo_state_member_get(exo_sim_state(sim, (size_t)now_leader), id, &m), 0);
        assert_int_equal(m.state, EXO_MEMBER_STATE_DEAD);
    }
    exo_sim_free(sim);
}

static void test_leader_partition_heals_to_one(void **state)
{
    const size_t n = 5;
    struct watch w;
    struct exo_sim *sim = make_sim(n, 31, &w);
    start_all(sim, n);
    expect_converged(sim, n, 10 * SEC);
    /* Node 0 is in the minority side; whichever side the leader is on keeps it, and the other
     * side elects its own. */
    for (size_t i = 0; i < 2; i++)
        exo_sim_set_group(sim, i, 1);
    expect_converged(sim, n, 30 * SEC);
    assert_int_equal(leaders(sim, n), 2);
    long a = exo_sim_expected_leader(sim, 0), b = exo_sim_expected_leader(sim, 1);
    print_message("split: leaders %ld (term %llu) and %ld (term %llu)\n", a,
                  (unsigned long long)term_of(sim, (size_t)a), b,
                  (unsigned long long)term_of(sim, (size_t)b));
    /* Each side goes on writing its own history. */
    struct exo_state *sa = exo_sim_state(sim, (size_t)a), *sb = exo_sim_state(sim, (size_t)b);
    assert_int_equal(exo_state_object_set(sa, EXO_STATE_KIND_PLACEMENT, "m", 1,
                                          EXO_STATE_FORMAT_JSON, "[1]", 3, exo_sim_now(sim)),
                     0);
    assert_int_equal(exo_state_object_set(sb, EXO_STATE_KIND_PLACEMENT, "m", 1,
                                          EXO_STATE_FORMAT_JSON, "[2]", 3, exo_sim_now(sim)),
                     0);
    exo_sim_run_until(sim, exo_sim_now(sim) + 40 * SEC);
    for (size_t i = 0; i < 2; i++)
        exo_sim_set_group(sim, i, 0);
    uint64_t t0 = exo_sim_now(sim);
    expect_converged(sim, n, 60 * SEC);
    print_message("healed: one leader after %.2f s\n", (double)(exo_sim_now(sim) - t0) / SEC);
    assert_int_equal(leaders(sim, n), 1);
    /* Exactly one of the two placements survived, the same everywhere. */
    struct exo_state_record r0;
    assert_int_equal(
        exo_state_record_get(exo_sim_state(sim, 0), EXO_STATE_KIND_PLACEMENT, NULL, "m", 1, &r0),
        0);
    for (size_t i = 1; i < n; i++) {
        struct exo_state_record r;
        assert_int_equal(
            exo_state_record_get(exo_sim_state(sim, i), EXO_STATE_KIND_PLACEMENT, NULL, "m", 1, &r),
            0);
        assert_int_equal(r.value_len, r0.value_len);
        assert_memory_equal(r.value, r0.value, r.value_len);
    }
    exo_sim_free(sim);
}

static void test_leader_loss_converges(void **state)
{
    const size_t n = 5;
    struct watch w;
    struct exo_sim *sim = make_sim(n, 41, &w);
    exo_sim_set_loss(sim, 0.10);
    start_all(sim, n);
    expect_converged(sim, n, 30 * SEC);
    uint64_t term = term_of(sim, 0);
    /* Reports keep flowing under loss; every node ends up with everyone's. */
    for (size_t i = 0; i < n; i++) {
        char value[32];
        int len = snprintf(value, sizeof(value), "{\"node\":%zu}", i);
        assert_int_equal(exo_state_report_set(exo_sim_state(sim, i), EXO_STATE_KIND_DEVICES, "", 0,
                                              EXO_STATE_FORMAT_JSON, value, (size_t)len,
                                              exo_sim_now(sim)),
                         0);
    }
    exo_sim_run_until(sim, exo_sim_now(sim) + 60 * SEC);
    expect_converged(sim, n, 30 * SEC);
    assert_int_equal(term_of(sim, 0), term); /* no spurious election under 10 % loss */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(exo_state_record_count(exo_sim_state(sim, i)), n);
    exo_sim_free(sim);
}

static void test_leader_restart_catches_up(void **state)
{
    const size_t n = 4;
    struct watch w;
    struct exo_sim *sim = make_sim(n, 51, &w);
    start_all(sim, n);
    expect_converged(sim, n, 10 * SEC);
    long leader = exo_sim_expected_leader(sim, 0);
    size_t victim = (size_t)(leader == 2 ? 3 : 2);
    assert_int_equal(exo_state_report_set(exo_sim_state(sim, victim), EXO_STATE_KIND_DEVICES, "", 0,
                                          EXO_STATE_FORMAT_JSON, "{\"v\":1}", 7, exo_sim_now(sim)),
                     0);
    expect_converged(sim, n, 10 * SEC);
    exo_sim_kill(sim, victim);
    /* The cluster moves on while it is down. */
    for (int i = 0; i < 20; i++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(exo_state_object_set(exo_sim_state(sim, (size_t)leader),
                                              EXO_STATE_KIND_INSTANCE, key, strlen(key),
                                              EXO_STATE_FORMAT_BINARY, "x", 1, exo_sim_now(sim)),
                         0);
    }
    exo_sim_run_until(sim, exo_sim_now(sim) + 15 * SEC);
    /* Back with the same id and a higher incarnation, and a report numbered from 1 again. */
    assert_int_equal(exo_sim_start(sim, victim), 0);
    size_t seed = (size_t)leader;
    assert_int_equal(exo_sim_join(sim, victim, &seed, 1), 0);
    assert_int_equal(exo_state_report_set(exo_sim_state(sim, victim), EXO_STATE_KIND_DEVICES, "", 0,
                                          EXO_STATE_FORMAT_JSON, "{\"v\":2}", 7, exo_sim_now(sim)),
                     0);
    expect_converged(sim, n, 15 * SEC);
    uint8_t id[EXO_MEMBERS_ID_BYTES];
    exo_sim_id(sim, victim, id);
    for (size_t i = 0; i < n; i++) {
        struct exo_state *s = exo_sim_state(sim, i);
        struct exo_state_record r;
        assert_int_equal(exo_state_record_get(s, EXO_STATE_KIND_DEVICES, id, "", 0, &r), 0);
        assert_memory_equal(r.value, "{\"v\":2}", 7);
        assert_int_equal(exo_state_record_get(s, EXO_STATE_KIND_INSTANCE, NULL, "k19", 3, &r), 0);
    }
    exo_sim_free(sim);
}

static void test_leader_quick_restart_leads_again(void **state)
{
    /* The leader crashes and is back before anyone declared it dead (a supervisor restarting
     * it at once): the others still follow its old claim and carry it in every message. The
     * new process must not take that claim, which it never made, for its own: it claims a
     * higher term, and the cluster converges on it. */
    const size_t n = 4;
    struct watch w;
    struct exo_sim *sim = make_sim(n, 71, &w);
    start_all(sim, n);
    expect_converged(sim, n, 10 * SEC);
    long leader = exo_sim_expected_leader(sim, 0);
    uint64_t term = term_of(sim, (size_t)leader);
    exo_sim_kill(sim, (size_t)leader);
    exo_sim_run_until(sim, exo_sim_now(sim) + 300 * MS);
    assert_int_equal(exo_sim_start(sim, (size_t)leader), 0);
    size_t seed = (size_t)(leader == 0 ? 1 : 0);
    assert_int_equal(exo_sim_join(sim, (size_t)leader, &seed, 1), 0);
    expect_converged(sim, n, 15 * SEC);
    assert_int_equal(exo_sim_expected_leader(sim, 0), leader);
    assert_true(term_of(sim, (size_t)leader) > term);
    assert_int_equal(leaders(sim, n), 1);
    exo_sim_free(sim);
}

static void test_leader_better_node_takes_over(void **state)
{
    /* A node with a higher priority joins a running cluster: it catches up first, then leads
     * with a higher term, and nothing the old leader wrote is lost. */
    const size_t n = 4;
    struct watch w;
    struct exo_sim *sim = make_sim(n, 61, &w);
    size_t seed = 0;
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(exo_sim_start(sim, i), 0);
    for (size_t i = 1; i < 3; i++)
        assert_int_equal(exo_sim_join(sim, i, &seed, 1), 0);
    expect_converged(sim, n, 10 * SEC);
    long old = exo_sim_expected_leader(sim, 0);
    uint64_t term = term_of(sim, 0);
    assert_int_equal(exo_state_object_set(exo_sim_state(sim, (size_t)old), EXO_STATE_KIND_PLACEMENT,
                                          "p", 1, EXO_STATE_FORMAT_JSON, "{}", 2, exo_sim_now(sim)),
                     0);
    assert_int_equal(exo_sim_start(sim, 3), 0);
    struct exo_members_meta meta = {.proto_min = EXO_MEMBERS_PROTO,
                                    .proto_max = EXO_MEMBERS_PROTO,
                                    .gossip_port = EXO_MEMBERS_DEFAULT_PORT,
                                    .leader_priority = 10};
    assert_int_equal(exo_members_update_meta(exo_sim_members(sim, 3), &meta, exo_sim_now(sim)), 0);
    assert_int_equal(exo_sim_join(sim, 3, &seed, 1), 0);
    expect_converged(sim, n, 15 * SEC);
    assert_int_equal(exo_sim_expected_leader(sim, 0), 3);
    assert_true(term_of(sim, 3) > term);
    struct exo_state_record r;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(
            exo_state_record_get(exo_sim_state(sim, i), EXO_STATE_KIND_PLACEMENT, NULL, "p", 1, &r),
            0);
    /* The old leader stepped down without a snapshot: its log was already the new one's. */
    assert_int_equal(w.snapshots[old], 0);
    exo_sim_free(sim);
}

static void test_leader_graceful_leave(void **state)
{
    const size_t n = 3;
    struct watch w;
    struct exo_sim *sim = make_sim(n, 71, &w);
    start_all(sim, n);
    expect_converged(sim, n, 10 * SEC);
    long old = exo_sim_expected_leader(sim, 0);
    assert_int_equal(exo_sim_leave(sim, (size_t)old), 0);
    exo_sim_run_until(sim, exo_sim_now(sim) + SEC);
    exo_sim_kill(sim, (size_t)old);
    uint64_t t0 = exo_sim_now(sim);
    expect_converged(sim, n, 10 * SEC);
    /* No suspicion, no lease: a departure is replaced within a couple of seconds. */
    assert_true(exo_sim_now(sim) - t0 < 3 * SEC);
    exo_sim_free(sim);
}

/* ---- the daemon-facing wrapper, on loopback ---- */

#define LIVE_N 3

struct live {
    uv_loop_t loop;
    uv_timer_t poll;
    struct exo_cluster *c[LIVE_N];
    struct exo_seal *seal[LIVE_N];
    bool (*until)(struct live *);
    unsigned events[LIVE_N];
    unsigned others[LIVE_N]; /* messages of another channel */
};

struct live_hook {
    struct live *l;
    int i;
};

static struct live_hook hooks_ctx[LIVE_N];

static void live_event(void *ctx, const struct exo_state_event *ev)
{
    struct live_hook *h = ctx;
    h->l->events[h->i]++;
}

static void live_message(void *ctx, const uint8_t *from, const uint8_t *data, size_t len,
                         bool broadcast)
{
    struct live_hook *h = ctx;
    h->l->others[h->i]++;
}

static void live_poll(uv_timer_t *timer)
{
    struct live *l = timer->data;
    if (l->until(l))
        uv_stop(&l->loop);
}

static bool live_run(struct live *l, bool (*until)(struct live *), uint64_t ms)
{
    l->until = until;
    uv_timer_start(&l->poll, live_poll, 10, 10);
    uint64_t end = exo_clock_ns() / 1000000 + ms;
    while (!until(l) && exo_clock_ns() / 1000000 < end)
        uv_run(&l->loop, UV_RUN_ONCE);
    uv_timer_stop(&l->poll);
    return until(l);
}

static int live_start(struct live *l, int i)
{
    struct exo_seal_config sc = {.cluster = "leader-live"};
    assert_int_equal(exo_seal_create(&sc, &l->seal[i]), 0);
    struct exo_cluster_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.transport = (struct exo_transport_config){
        .bind_v4 = "127.0.0.1", .bind_v6 = "", .ephemeral = true, .seal = l->seal[i]};
    exo_members_config_init(&cfg.members);
    id_of(cfg.members.id, (uint8_t)(i + 1));
    snprintf(cfg.members.name, sizeof(cfg.members.name), "live-%d", i);
    cfg.members.seed = (uint64_t)i;
    exo_state_config_init(&cfg.state);
    hooks_ctx[i] = (struct live_hook){.l = l, .i = i};
    cfg.hooks = (struct exo_cluster_hooks){
        .ctx = &hooks_ctx[i], .event_cb = live_event, .message_cb = live_message};
    return exo_cluster_create(&l->loop, &cfg, &l->c[i]);
}

/* One leader (node 0, the lowest id), everyone at its position with its digest. */
static bool live_agree(struct live *l)
{
    struct exo_state *s0 = exo_cluster_state(l->c[0]);
    if (!exo_state_is_leader(s0))
        return false;
    uint64_t i0, term0;
    uint8_t d0[EXO_STATE_HASH_BYTES], leader[EXO_MEMBERS_ID_BYTES];
    exo_state_position(s0, &i0, NULL);
    exo_state_digest(s0, d0);
    exo_state_leader(s0, leader, &term0);
    for (int i = 1; i < LIVE_N; i++) {
        struct exo_state *s = exo_cluster_state(l->c[i]);
        uint64_t index, term;
        uint8_t d[EXO_STATE_HASH_BYTES], id[EXO_MEMBERS_ID_BYTES];
        exo_state_position(s, &index, NULL);
        exo_state_digest(s, d);
        if (exo_state_is_leader(s) || exo_state_leader(s, id, &term) < 0 || term != term0 ||
            index != i0 || memcmp(d, d0, sizeof(d)) != 0 || memcmp(id, leader, sizeof(id)) != 0)
            return false;
    }
    return exo_state_member_count(s0) == LIVE_N;
}

static bool live_has_report(struct live *l)
{
    uint8_t id[EXO_MEMBERS_ID_BYTES];
    id_of(id, 3);
    struct exo_state_record r;
    return exo_state_record_get(exo_cluster_state(l->c[0]), EXO_STATE_KIND_DEVICES, id, "", 0,
                                &r) == 0 &&
           live_agree(l);
}

static bool live_other_heard(struct live *l)
{
    return l->others[0] > 0;
}

static void test_leader_cluster_loopback(void **state)
{
    struct live *l = exo_calloc(1, sizeof(*l));
    assert_int_equal(uv_loop_init(&l->loop), 0);
    uv_timer_init(&l->loop, &l->poll);
    l->poll.data = l;
    for (int i = 0; i < LIVE_N; i++)
        assert_int_equal(live_start(l, i), 0);
    struct exo_members_addr a0;
    exo_transport_local_addr(exo_cluster_transport(l->c[0]), &a0);
    for (int i = 1; i < LIVE_N; i++)
        assert_int_equal(exo_transport_join_addrs(exo_cluster_transport(l->c[i]), &a0, 1), 0);
    assert_true(live_run(l, live_agree, 10000));
    for (int i = 0; i < LIVE_N; i++)
        assert_true(l->events[i] > 0);

    /* A report set from outside any callback reaches the leader and everyone. */
    struct exo_state *s2 = exo_cluster_state(l->c[2]);
    assert_int_equal(exo_state_report_set(s2, EXO_STATE_KIND_DEVICES, "", 0, EXO_STATE_FORMAT_JSON,
                                          "{\"cpu\":1}", 9, exo_cluster_now_us()),
                     0);
    assert_true(live_run(l, live_has_report, 5000));

    /* Messages of another channel go to the daemon's hook. */
    uint8_t id0[EXO_MEMBERS_ID_BYTES];
    id_of(id0, 1);
    assert_int_equal(
        exo_members_send(exo_cluster_members(l->c[1]), id0, "\x01hi", 3, exo_cluster_now_us()), 0);
    assert_true(live_run(l, live_other_heard, 5000));

    for (int i = 0; i < LIVE_N; i++)
        exo_cluster_close(l->c[i]);
    uv_close((uv_handle_t *)&l->poll, NULL);
    uv_run(&l->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&l->loop), 0); /* every handle was closed */
    for (int i = 0; i < LIVE_N; i++)
        exo_seal_free(l->seal[i]);
    exo_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leader_rank_table),
        cmocka_unit_test(test_leader_claim_beats_table),
        cmocka_unit_test(test_leader_choose_table),
        cmocka_unit_test(test_leader_observe_rules),
        cmocka_unit_test(test_leader_should_claim_rules),
        cmocka_unit_test(test_leader_small_clusters_elect_one),
        cmocka_unit_test(test_leader_killed_replaced),
        cmocka_unit_test(test_leader_partition_heals_to_one),
        cmocka_unit_test(test_leader_loss_converges),
        cmocka_unit_test(test_leader_restart_catches_up),
        cmocka_unit_test(test_leader_quick_restart_leads_again),
        cmocka_unit_test(test_leader_better_node_takes_over),
        cmocka_unit_test(test_leader_graceful_leave),
        cmocka_unit_test(test_leader_cluster_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
