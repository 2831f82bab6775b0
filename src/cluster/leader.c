/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Leader election rules (the contract and the rules themselves are in leader.h; why they converge
 * is in docs/internals/state.md). Everything here is a pure function of its arguments and of the
 * struct exo_leader it is given, so the rules can be tested against tables.
 */
#include "cluster/leader.h"

#include <string.h>

int exo_leader_rank_cmp(int32_t prio_a, const uint8_t *id_a, int32_t prio_b, const uint8_t *id_b)
{
    if (prio_a != prio_b)
        return prio_a > prio_b ? -1 : 1;
    int c = memcmp(id_a, id_b, EXO_MEMBERS_ID_BYTES);
    return (c > 0) - (c < 0);
}

bool exo_leader_claim_beats(const struct exo_leader_claim *a, const struct exo_leader_claim *b)
{
    if (a->term != b->term)
        return a->term > b->term;
    return exo_leader_rank_cmp(a->priority, a->id, b->priority, b->id) < 0;
}

bool exo_leader_eligible(const struct exo_member_info *m)
{
    return (m->state == EXO_MEMBER_STATE_ALIVE || m->state == EXO_MEMBER_STATE_SUSPECT) &&
           m->meta.proto_min <= EXO_MEMBERS_PROTO && m->meta.proto_max >= EXO_MEMBERS_PROTO;
}

long exo_leader_choose(const struct exo_member_info *members, size_t n)
{
    long best = -1;
    for (size_t i = 0; i < n; i++) {
        const struct exo_member_info *m = &members[i];
        if (!exo_leader_eligible(m))
            continue;
        if (best < 0 ||
            exo_leader_rank_cmp(m->meta.leader_priority, m->id, members[best].meta.leader_priority,
                                members[best].id) < 0)
            best = (long)i;
    }
    return best;
}

void exo_leader_init(struct exo_leader *l, const uint8_t self[EXO_MEMBERS_ID_BYTES],
                     int32_t self_priority)
{
    memset(l, 0, sizeof(*l));
    memcpy(l->self, self, EXO_MEMBERS_ID_BYTES);
    l->self_priority = self_priority;
    l->want_since_us = UINT64_MAX;
}

static bool same_claim(const struct exo_leader_claim *a, const struct exo_leader_claim *b)
{
    return a->term == b->term && memcmp(a->id, b->id, EXO_MEMBERS_ID_BYTES) == 0;
}

bool exo_leader_observe(struct exo_leader *l, const struct exo_leader_claim *claim,
                        bool from_leader, uint64_t now_us)
{
    if (claim->term == 0)
        return false;
    if (claim->term > l->max_term)
        l->max_term = claim->term;
    /* A claim in this node's name that it does not follow was made by an earlier run of it (a
     * restart faster than the others' failure detection): following it would lead with none of
     * that run's log, and the others would keep following it. Its term is all that counts. */
    if (memcmp(claim->id, l->self, EXO_MEMBERS_ID_BYTES) == 0 && !same_claim(claim, &l->follow))
        return false;
    if (exo_leader_claim_beats(claim, &l->follow)) {
        l->follow = *claim;
        /* Adopting a claim counts as hearing from its leader: a claim relayed by a third party
         * still deserves a lease before anyone challenges it. */
        l->heard_us = now_us;
        l->changes++;
        return true;
    }
    if (from_leader && same_claim(claim, &l->follow))
        l->heard_us = now_us;
    return false;
}

bool exo_leader_is_self(const struct exo_leader *l)
{
    return l->follow.term > 0 && memcmp(l->follow.id, l->self, EXO_MEMBERS_ID_BYTES) == 0;
}

bool exo_leader_should_claim(struct exo_leader *l, const struct exo_leader_input *in,
                             uint64_t now_us, uint64_t lease_us, uint64_t delay_us,
                             uint64_t *ret_wake_us)
{
    *ret_wake_us = UINT64_MAX;
    bool want = false;
    if (in->self_is_choice && !exo_leader_is_self(l)) {
        bool following = l->follow.term > 0;
        uint64_t lease_end = l->heard_us + lease_us;
        bool heard = following && now_us < lease_end;
        bool live = following && !in->leader_left && (in->leader_alive || heard);
        bool ranks_first = following && exo_leader_rank_cmp(l->follow.priority, l->follow.id,
                                                            l->self_priority, l->self) < 0;
        want = !live || (!ranks_first && in->in_sync);
        /* Held back only by the lease: the answer changes when it runs out. */
        if (!want && !in->leader_alive && !in->leader_left)
            *ret_wake_us = lease_end;
    }
    if (!want) {
        l->want_since_us = UINT64_MAX;
        return false;
    }
    if (l->want_since_us == UINT64_MAX)
        l->want_since_us = now_us;
    if (now_us - l->want_since_us >= delay_us)
        return true;
    *ret_wake_us = l->want_since_us + delay_us;
    return false;
}

void exo_leader_claim(struct exo_leader *l, uint64_t now_us, struct exo_leader_claim *ret_claim)
{
    l->max_term++;
    l->follow.term = l->max_term;
    memcpy(l->follow.id, l->self, EXO_MEMBERS_ID_BYTES);
    l->follow.priority = l->self_priority;
    l->heard_us = now_us;
    l->want_since_us = UINT64_MAX;
    l->changes++;
    *ret_claim = l->follow;
}
