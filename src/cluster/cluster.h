/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cluster node on the loop: the gossip transport (membership) and the replicated state
 * (leader, event log, state machine) put together, which is what the daemon creates.
 *
 * It owns the membership delegate: state messages (first byte EXO_STATE_CHANNEL), membership
 * events and push-pull state go to the state machine, and the daemon hears what it needs through
 * hooks: membership events, every applied state event (what /api/v1/events streams), and
 * application messages of other channels. It drives the state machine from a uv_timer at the
 * deadline the machine asks for and re-arms the transport's timer whenever the state hands the
 * membership layer something to send. It logs leader changes and snapshots.
 *
 * Using the state from the daemon (routes, the device module, placement): take it with
 * exo_cluster_state() and call exo_state_* with exo_cluster_now_us() as the time; the state's
 * wake hook reschedules both timers, so nothing else is needed.
 *
 * Threads: everything runs on the loop thread.
 */
#ifndef EXO_CLUSTER_CLUSTER_H
#define EXO_CLUSTER_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/members.h"
#include "cluster/state.h"
#include "cluster/transport.h"

/* All optional; pointers passed to them are borrowed for the call. */
struct exo_cluster_hooks {
    void *ctx; /* borrowed */
    void (*member_cb)(void *ctx, enum exo_members_event event,
                      const struct exo_member_info *member);
    /* Every state event this node applies, and the snapshot notice; see exo_state_json_event. */
    void (*event_cb)(void *ctx, const struct exo_state_event *event);
    /* Application messages whose first byte is not EXO_STATE_CHANNEL. */
    void (*message_cb)(void *ctx, const uint8_t from[EXO_MEMBERS_ID_BYTES], const uint8_t *data,
                       size_t len, bool broadcast);
};

struct exo_cluster_config {
    struct exo_transport_config transport;
    struct exo_members_config members;
    struct exo_state_config state; /* its id is taken from members.id */
    struct exo_cluster_hooks hooks;
};

struct exo_cluster;

/* Bind the transport on loop (borrowed) and start the membership and state machines. cfg is
 * copied (what its transport part borrows must outlive the node). *ret_cluster is owned by the
 * caller and released by exo_cluster_close. On failure nothing is returned, but handles may be
 * closing: run the loop to release them. */
int exo_cluster_create(uv_loop_t *loop, const struct exo_cluster_config *cfg,
                       struct exo_cluster **ret_cluster);

/* Borrowed parts, valid until close. */
struct exo_transport *exo_cluster_transport(struct exo_cluster *c);
struct exo_members *exo_cluster_members(struct exo_cluster *c);
struct exo_state *exo_cluster_state(struct exo_cluster *c);

/* The clock the machines run on (monotonic microseconds), for exo_state_* calls. */
uint64_t exo_cluster_now_us(void);

/* Announce a graceful leave; keep the loop running about a second, then close. */
int exo_cluster_leave(struct exo_cluster *c);

/* Stop the state machine and close every handle; memory is released once libuv has closed them,
 * so the caller runs the loop afterwards. Accepts NULL. */
void exo_cluster_close(struct exo_cluster *c);

#endif
