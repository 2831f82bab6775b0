#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Two nodes whose multicast is dropped (a cloud or VPN) cannot find each other by mDNS; one names
# the other with --join and they form a cluster of two.
set -eu
. "$(dirname "$0")/cluster-lib.sh"

cl_setup 2
netns_block_multicast 1
netns_block_multicast 2
CL_T0=$(cl_now)
cl_start 1
cl_start 2 --join "$(netns_ip 1):$CL_GOSSIP_PORT"
cl_wait 15 see:1-2:1-2:alive agree:1-2
formed=$CL_TOOK
# mDNS runs (it cannot tell that the network drops it): the join, not discovery, formed this.
rx=$(netns_exec 1 curl -s "http://$(netns_ip 1):$CL_API_PORT/metrics" |
    awk '/^exo_mdns_packets_total\{direction="in"\}/ { print $2 }')
[ "${rx:-0}" -eq 0 ] || cl_fail "node 1 received $rx mDNS packets through the block"
echo "2 nodes, multicast blocked, --join: both see both alive, one leader, ${formed} s after start"
