/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Leader election rules: who should lead, which claim to leadership wins, and when this node
 * should make a claim of its own. Pure functions and one small object, no I/O and no clock of
 * their own; cluster/state.c drives them and turns a claim into a log event.
 *
 * The rules, in full (docs/internals/state.md explains why they converge):
 *  - Rank. A member that should lead ranks before another when its leader priority is higher or,
 *    at equal priority, its node id is lower (bytewise). Ranks are a total order on members.
 *  - Choice. The member that should lead is the first ranked among the eligible members: alive
 *    or suspect in this node's membership view and advertising a protocol range that contains
 *    ours. Different nodes compute the same choice once their membership views agree.
 *  - Claims. A claim is (term, leader id, leader priority). Claim a supersedes claim b when its
 *    term is higher or, at the same term, its leader ranks first. Every node follows the most
 *    superseding claim it has seen, whoever told it, and remembers the highest term seen.
 *  - Claiming. A node claims (with the highest term it has seen plus one) when it is its own
 *    choice and has been for claim_delay, unless the leader it follows is live and ranks before
 *    it, or is live and this node's log has not caught up with that leader's yet. "Live" means
 *    alive or suspect in the membership view, or heard from within the lease (unless it left
 *    gracefully). So a better node
 *    takes over from a live worse leader only once it holds everything that leader wrote, and a
 *    leader that the membership view wrongly thinks dead is not challenged while it is heard.
 *
 * Threads: none of its own; an instance belongs to the thread that drives it.
 */
#ifndef EXO_CLUSTER_LEADER_H
#define EXO_CLUSTER_LEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/members.h"

struct exo_leader_claim {
    uint64_t term; /* 0: no claim */
    uint8_t id[EXO_MEMBERS_ID_BYTES];
    int32_t priority; /* the leader's priority when it claimed: ranks equal terms */
};

/* Negative when (prio_a, id_a) ranks before (should lead rather than) (prio_b, id_b), positive
 * when after, 0 for the same node. The ids are borrowed. */
int exo_leader_rank_cmp(int32_t prio_a, const uint8_t *id_a, int32_t prio_b, const uint8_t *id_b);

/* True when claim a supersedes claim b (both borrowed); a claim never supersedes itself. */
bool exo_leader_claim_beats(const struct exo_leader_claim *a, const struct exo_leader_claim *b);

/* True when the member (borrowed) may lead: alive or suspect, and its protocol range contains
 * EXO_MEMBERS_PROTO. */
bool exo_leader_eligible(const struct exo_member_info *member);

/* Index in members[0..n) (borrowed) of the member that should lead, or -1 when none is eligible. */
long exo_leader_choose(const struct exo_member_info *members, size_t n);

/* What the election knows beyond the claims it has seen, recomputed by the caller each time. */
struct exo_leader_input {
    bool self_is_choice; /* exo_leader_choose picked this node */
    bool leader_alive;   /* the followed leader is alive or suspect in the membership view */
    bool leader_left;    /* it left gracefully: no lease holds for it */
    bool in_sync;        /* this node's log holds the followed leader's last announced entry */
};

/* One node's election state. Plain data: the fields may be read directly. */
struct exo_leader {
    uint8_t self[EXO_MEMBERS_ID_BYTES];
    int32_t self_priority;
    struct exo_leader_claim follow; /* the claim followed; term 0 before any */
    uint64_t max_term;              /* highest term seen in any claim */
    uint64_t heard_us;              /* last word from the followed leader (or its adoption) */
    uint64_t want_since_us; /* since when this node wants to claim; UINT64_MAX: it does not */
    uint64_t changes;       /* times the followed claim changed */
};

/* A node (id borrowed, copied) that follows nobody yet. */
void exo_leader_init(struct exo_leader *l, const uint8_t self[EXO_MEMBERS_ID_BYTES],
                     int32_t self_priority);

/* Take note of a claim (borrowed) seen at now_us: raise max_term, follow it when it supersedes
 * the followed claim, and refresh heard_us when it is the followed claim and from_leader (the
 * message came from the leader itself). A claim naming this node other than the one it follows
 * (made before a restart) only raises max_term. Returns true when the followed claim changed. */
bool exo_leader_observe(struct exo_leader *l, const struct exo_leader_claim *claim,
                        bool from_leader, uint64_t now_us);

/* True when this node leads: it follows a claim of its own. */
bool exo_leader_is_self(const struct exo_leader *l);

/* Whether to claim now, by the rules above. *ret_wake_us (always written) is when the answer may
 * change without new input: the end of claim_delay or of the lease; UINT64_MAX when only new
 * input can change it. */
bool exo_leader_should_claim(struct exo_leader *l, const struct exo_leader_input *in,
                             uint64_t now_us, uint64_t lease_us, uint64_t delay_us,
                             uint64_t *ret_wake_us);

/* Claim leadership: term max_term + 1, this node, its priority. The claim is followed at once
 * and written to *ret_claim. */
void exo_leader_claim(struct exo_leader *l, uint64_t now_us, struct exo_leader_claim *ret_claim);

#endif
