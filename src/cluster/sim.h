/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An in-memory network with a virtual clock for the membership state machine: the same
 * exo_members code as production, driven by a discrete-event loop instead of libuv. Optionally
 * every node also runs the replicated state (cluster/state.c) on top, as the daemon does. Datagrams
 * see seeded loss and latency; streams are reliable but fail across partitions and to dead nodes,
 * as a TCP connect would. Optionally every datagram and stream is sealed and opened with exo_seal,
 * so that nodes with different keys really cannot talk.
 *
 * It lives in src/cluster rather than in tests/unit/support because bench/sim-membership needs it
 * and benchmarks link only the subsystem libraries.
 *
 * Node i has address 198.18.x.y:52416 (the benchmarking range, RFC 2544); no packet ever leaves
 * the process. Runs are deterministic for a given seed. Single-threaded.
 */
#ifndef EXO_CLUSTER_SIM_H
#define EXO_CLUSTER_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/members.h"
#include "cluster/state.h"

struct exo_seal;

struct exo_sim_config {
    size_t nodes; /* at most 65536 */
    uint64_t seed;
    double loss;         /* probability that a datagram is lost, 0..1 */
    uint32_t latency_us; /* one-way delay of a datagram; a stream takes three (plus retries) */
    uint32_t jitter_us;  /* plus a uniform extra delay in [0, jitter_us] */
    bool seal;           /* seal and open every message (needed to test keys; slower) */
    const char *cluster; /* seal label; "sim" when NULL */
    size_t replay_entries;
    /* Template for every node; id, name, addr, seed and incarnation are filled per node. */
    struct exo_members_config members;
    /* Every event at every node, with the virtual time; optional. */
    void (*event_cb)(void *ctx, size_t node, enum exo_members_event event,
                     const struct exo_member_info *member, uint64_t now_us);
    void (*message_cb)(void *ctx, size_t node, const uint8_t *from, const uint8_t *data, size_t len,
                       bool broadcast);
    /* Application state for push-pull exchanges, as in exo_members_delegate; optional. */
    void (*local_state_cb)(void *ctx, size_t node, bool join, struct exo_buf *out);
    void (*merge_state_cb)(void *ctx, size_t node, bool join, const uint8_t *data, size_t len);
    /* Run the replicated state on every node with this configuration (the id is filled per
     * node). Its messages and push-pull sections then go to it: message_cb hears only the
     * others, and local_state_cb and merge_state_cb are not called. */
    bool state;
    struct exo_state_config state_cfg;
    /* Every state event at every node, with the virtual time; optional. */
    void (*state_event_cb)(void *ctx, size_t node, const struct exo_state_event *event,
                           uint64_t now_us);
    void *ctx; /* borrowed */
};

struct exo_sim_stats {
    uint64_t datagrams, datagram_bytes; /* sent, as sealed on the wire */
    uint64_t streams, stream_bytes;
    uint64_t lost, blocked; /* datagrams lost at random; messages cut by a partition or death */
    uint64_t seal_drops;    /* refused by the receiver's exo_seal */
};

struct exo_sim;

/* cfg (and the template inside it) is copied; *ret_sim is owned by the caller. */
int exo_sim_create(const struct exo_sim_config *cfg, struct exo_sim **ret_sim);
void exo_sim_free(struct exo_sim *sim);

/* Start (or restart, after a kill) node i at the current virtual time. */
int exo_sim_start(struct exo_sim *sim, size_t node);
/* Node i joins through the seed nodes (borrowed array of node indices). */
int exo_sim_join(struct exo_sim *sim, size_t node, const size_t *seeds, size_t n);
/* Crash node i: it stops at once, sends nothing more and everything sent to it is lost. */
void exo_sim_kill(struct exo_sim *sim, size_t node);
int exo_sim_leave(struct exo_sim *sim, size_t node);
bool exo_sim_running(const struct exo_sim *sim, size_t node);

/* Nodes exchange messages only within the same group (all start in group 0). */
void exo_sim_set_group(struct exo_sim *sim, size_t node, int group);
void exo_sim_set_loss(struct exo_sim *sim, double loss);

/* Queue data (borrowed, copied) for delivery to node `to` now, as if node `from` had sent it
 * (sealed with from's keys when sealing): how tests inject hand-made or hostile messages. */
int exo_sim_inject(struct exo_sim *sim, size_t to, size_t from, const uint8_t *data, size_t len,
                   bool reliable);

/* Process every event up to and including virtual time t_us. */
void exo_sim_run_until(struct exo_sim *sim, uint64_t t_us);
uint64_t exo_sim_now(const struct exo_sim *sim);

/* Node i's state machine or sealer, borrowed; NULL while it is not running / not sealing. */
struct exo_members *exo_sim_members(struct exo_sim *sim, size_t node);
/* Node i's replicated state, borrowed; NULL while it is not running or without `state`. */
struct exo_state *exo_sim_state(struct exo_sim *sim, size_t node);
struct exo_seal *exo_sim_seal(struct exo_sim *sim, size_t node);
void exo_sim_addr(const struct exo_sim *sim, size_t node, struct exo_members_addr *ret_addr);
void exo_sim_id(const struct exo_sim *sim, size_t node, uint8_t ret_id[EXO_MEMBERS_ID_BYTES]);
/* Which node has this id; -1 if none. */
long exo_sim_node_of(const struct exo_sim *sim, const uint8_t id[EXO_MEMBERS_ID_BYTES]);

/* True when node i sees exactly the running nodes in its group as alive, and no others. */
bool exo_sim_node_converged(const struct exo_sim *sim, size_t node);
/* True when every running node is converged. */
bool exo_sim_converged(const struct exo_sim *sim);

/* The running node of the group that should lead (first ranked by priority, then id), or -1. */
long exo_sim_expected_leader(const struct exo_sim *sim, int group);
/* True when, in every group with running nodes, they all follow the same claim, whose leader is
 * the group's expected leader and leads, and they all hold the same log position, leader, term
 * and state digest. Needs `state`. */
bool exo_sim_state_converged(struct exo_sim *sim);

void exo_sim_get_stats(const struct exo_sim *sim, struct exo_sim_stats *ret_stats);

#endif
