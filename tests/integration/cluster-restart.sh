#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A node killed with -9, declared dead, and started again on the same state directory is the same
# node: same id, alive again to every other node, and no second member under its name. Then the
# leader is killed and started again at once, before anyone declared it dead (a supervisor's
# restart): it leads again under a higher term instead of stalling on its earlier run's claim.
set -eu
. "$(dirname "$0")/cluster-lib.sh"

cl_setup 4
cl_form 4
id=$(cl_json 3 | jq -r .node.id)
inc=$(cl_json 1 | jq '.members[] | select(.name == "n3") | .incarnation')
cl_stop 3 KILL
cl_wait 20 see:1,2,4:3:dead
CL_T0=$(cl_now)
cl_start 3
cl_wait 20 see:1-4:1-4:alive
back=$CL_TOOK
[ "$(cl_json 3 | jq -r .node.id)" = "$id" ] || cl_fail "node 3 came back with another id"
for i in 1 2 4; do
    ids=$(cl_json "$i" | jq -r '[.members[] | select(.name == "n3") | .id] | join(" ")')
    [ "$ids" = "$id" ] || cl_fail "node $i knows n3 as '$ids', not as $id alone"
done
inc2=$(cl_json 1 | jq '.members[] | select(.name == "n3") | .incarnation')
echo "restart after kill -9: same id ${id:0:16}, incarnation $inc -> $inc2," \
    "alive to all ${back} s after the new start"

leader=$(cl_json 1 | jq -r .leader.name)
term=$(cl_json 1 | jq .term)
CL_T0=$(cl_now)
cl_stop "${leader#n}" KILL
cl_start "${leader#n}"
cl_wait 20 see:1-4:1-4:alive agree:1-4
quick=$CL_TOOK
[ "$(cl_json 1 | jq -r .leader.name)" = "$leader" ] || cl_fail "$leader does not lead again"
term2=$(cl_json 1 | jq .term)
[ "$term2" -gt "$term" ] || cl_fail "still term $term2 after the leader's restart"
echo "leader $leader restarted at once: leads again, term $term -> $term2, agreed ${quick} s" \
    "after the kill"
