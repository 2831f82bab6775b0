#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Five daemons started at once, with no --join, find each other by mDNS alone: every node sees
# all five alive, and all name the same leader and hold the same state digest.
set -eu
. "$(dirname "$0")/cluster-lib.sh"

cl_setup 5
CL_T0=$(cl_now)
for i in 1 2 3 4 5; do
    cl_start "$i"
done
cl_wait 15 see:1-5:1-5:alive
formed=$CL_TOOK
cl_wait 10 agree:1-5
agreed=$CL_TOOK
for i in 1 2 3 4 5; do
    [ "$(cl_json "$i" | jq -r .mdns)" = true ] || cl_fail "node $i runs without mDNS"
done
netns_exec 1 "$EXO_BIN" status --host "$(netns_ip 1)" --api-port "$CL_API_PORT"
echo "5 nodes by mDNS: all see all alive ${formed} s after start, one leader and digest at ${agreed} s"
