#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# 10 % of every node's outgoing packets are dropped for 20 s: no node is ever declared dead.
# Suspicions may come and go; deaths, counted by every node, must stay at zero.
set -eu
. "$(dirname "$0")/cluster-lib.sh"

LOSS_S=${LOSS_S:-20}
cl_setup 5
cl_form 5
for i in 1 2 3 4 5; do
    netns_loss "$i" 10
done
cl_hold "$LOSS_S" notsee:1-5:1-5:dead
for i in 1 2 3 4 5; do
    netns_loss "$i" 0
done
cl_wait 10 see:1-5:1-5:alive
deaths=0 suspicions=0 refutations=0 probes=0 indirect=0
for i in 1 2 3 4 5; do
    m=$(cl_json "$i" | jq -r '.membership |
        "\(.deaths) \(.suspicions) \(.refutations) \(.probes) \(.indirect_probes)"')
    read -r d s r p x <<<"$m"
    deaths=$((deaths + d)) suspicions=$((suspicions + s)) refutations=$((refutations + r))
    probes=$((probes + p)) indirect=$((indirect + x))
done
[ "$deaths" -eq 0 ] || cl_fail "$deaths deaths declared under 10 % loss"
# Evidence that the loss was real: a probe whose ping or ack is lost asks 3 relays.
[ "$indirect" -gt 0 ] || cl_fail "no probe went indirect: was any packet lost?"
echo "10 % loss for ${LOSS_S} s on 5 nodes: 0 false deaths ($suspicions suspicions," \
    "$refutations refutations; $probes probes, $indirect indirect probe requests)"
