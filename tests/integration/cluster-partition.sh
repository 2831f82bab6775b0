#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Five nodes split into {1,2} | {3,4,5}: each side declares the other dead and follows a leader
# of its own. Once healed, all five see all five alive, name one leader and hold one digest.
set -eu
. "$(dirname "$0")/cluster-lib.sh"

cl_setup 5
cl_form 5
CL_T0=$(cl_now)
netns_partition "1 2" "3 4 5"
cl_wait 20 see:1-2:3-5:dead see:3-5:1-2:dead agree:1-2 agree:3-5
split=$CL_TOOK
CL_T0=$(cl_now)
netns_heal
cl_wait 40 see:1-5:1-5:alive agree:1-5
healed=$CL_TOOK
leader=$(cl_json 1 | jq -r .leader.name)
echo "partition {1,2}|{3,4,5}: each side alone with its own leader after ${split} s;" \
    "healed to one membership, leader $leader and digest ${healed} s after the heal"
