#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A closed cluster of three (one key file) is joined at node 1 by a node with another key and by
# one with no key: neither ever appears in the cluster, nor does the cluster appear to them, and
# the cluster counts their packets as dropped.
set -eu
. "$(dirname "$0")/cluster-lib.sh"

cl_setup 5
"$EXO_BIN" keygen >"$CL_DIR/good.key"
"$EXO_BIN" keygen >"$CL_DIR/other.key"
for i in 1 2 3; do
    cl_start "$i" --cluster-key "$CL_DIR/good.key"
done
cl_wait 15 see:1-3:1-3:alive agree:1-3
seed="$(netns_ip 1):$CL_GOSSIP_PORT"
cl_start 4 --cluster-key "$CL_DIR/other.key" --join "$seed"
cl_start 5 --join "$seed"
# Long enough for several join attempts (alone, a node retries its seeds every 5 s).
cl_hold 8 notsee:1-3:4-5:any notsee:4:1-3,5:any notsee:5:1-4:any see:1-3:1-3:alive
dropped=$(cl_json 1 | jq '.dropped.unknown_key')
[ "$dropped" -gt 0 ] || cl_fail "node 1 counted no packets dropped for an unknown key"
[ "$(cl_json 1 | jq .encrypted)" = true ] || cl_fail "node 1 does not report encryption"
echo "wrong key and no key: never seen in 8 s; node 1 dropped $dropped packets (unknown_key)"
