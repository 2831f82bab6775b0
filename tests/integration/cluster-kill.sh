#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# kill -9 of one node of five, the leader, is detected: every other node declares it dead, and
# the four that are left agree on a new leader and state.
set -eu
. "$(dirname "$0")/cluster-lib.sh"

cl_setup 5
cl_form 5
victim=$(cl_json 1 | jq -r .leader.name)
v=${victim#n}
rest=$(for i in 1 2 3 4 5; do [ "$i" = "$v" ] || echo "$i"; done | paste -sd,)
CL_T0=$(cl_now)
cl_stop "$v" KILL
cl_wait 20 "see:$rest:$v:dead"
detected=$CL_TOOK
cl_wait 15 "agree:$rest" "notsee:$rest:$v:alive"
led=$CL_TOOK
leader=$(cl_json "${rest%%,*}" | jq -r .leader.name)
[ "$leader" != "$victim" ] || cl_fail "the dead $victim still leads"
echo "kill -9 of the leader $victim: dead to all of $rest after ${detected} s;" \
    "new leader $leader agreed by all at ${led} s"
