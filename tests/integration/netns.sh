# SPDX-License-Identifier: Apache-2.0
# Network namespaces for multi-host tests, sourced by the test scripts beside it.
#
# Topology: one "switch" namespace holding a bridge, and N node namespaces, each joined to the
# bridge by a veth pair; node i has 198.18.0.(10+i)/24 on its interface "eth0" and a multicast
# route, so mDNS works between nodes exactly as on a LAN. Nothing is created in the host's own
# namespace and no address outside 198.18.0.0/15 (and loopback) is used.
#
#   netns_up N            create the switch and nodes 1..N; the caller removes them with
#                         netns_cleanup from an EXIT trap, so that a failure cleans up too
#   netns_exec I CMD...   run CMD inside node I
#   netns_spawn I LOG CMD...   start CMD in node I in the background, output to LOG; sets
#                         NETNS_PID to its pid (the command itself, so signals reach it); every
#                         spawned process is killed on cleanup
#   netns_ip I            print node I's address
#   netns_loss I PCT      drop PCT % of node I's outgoing packets at random (0 clears)
#   netns_delay I MS      delay node I's outgoing packets (tc netem; returns 1 when the kernel
#                         has no netem, as some CI kernels do)
#   netns_partition "1 2" "3 4 5"   split the LAN into two bridges; netns_heal joins them again
#   netns_block_multicast I         drop node I's outgoing multicast (mDNS) traffic
#
# Loss uses nftables (numgen random) rather than tc netem, because netem is a kernel option that
# is often missing (this project's CI kernel lacks it) while nf_tables is nearly always built in.
#
# Every name carries the shell's pid, so concurrent runs never collide.

NETNS_TAG="exo$$"
NETNS_SW="${NETNS_TAG}-sw"
NETNS_N=0
NETNS_PIDS=""

netns_node() { echo "${NETNS_TAG}-n$1"; }
netns_ip() { echo "198.18.0.$((10 + $1))"; }

netns_cleanup() {
    local i
    if [ -n "$NETNS_PIDS" ]; then
        kill -9 $NETNS_PIDS 2>/dev/null
        wait $NETNS_PIDS 2>/dev/null
    fi
    NETNS_PIDS=""
    for i in $(seq 1 "$NETNS_N"); do
        ip netns del "$(netns_node "$i")" 2>/dev/null
    done
    ip netns del "$NETNS_SW" 2>/dev/null
    NETNS_N=0
}

netns_require() {
    if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! command -v nft >/dev/null; then
        echo "SKIP: network namespace tests need root, iproute2 and nftables"
        exit 77
    fi
    if ! ip netns add "${NETNS_TAG}-probe" 2>/dev/null; then
        echo "SKIP: cannot create network namespaces here"
        exit 77
    fi
    ip netns del "${NETNS_TAG}-probe"
}

netns_up() {
    local n=$1 i ns
    netns_require
    ip netns add "$NETNS_SW"
    ip -n "$NETNS_SW" link set lo up
    ip -n "$NETNS_SW" link add br0 type bridge
    ip -n "$NETNS_SW" link add br1 type bridge
    ip -n "$NETNS_SW" link set br0 up
    ip -n "$NETNS_SW" link set br1 up
    for i in $(seq 1 "$n"); do
        ns=$(netns_node "$i")
        ip netns add "$ns"
        NETNS_N=$i
        ip -n "$ns" link set lo up
        ip -n "$ns" link add eth0 type veth peer name "p$i" netns "$NETNS_SW"
        ip -n "$ns" addr add "$(netns_ip "$i")/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" route add 224.0.0.0/4 dev eth0
        ip -n "$NETNS_SW" link set "p$i" master br0
        ip -n "$NETNS_SW" link set "p$i" up
        ip netns exec "$ns" nft -f - <<NFT
table inet exo {
    chain loss { type filter hook output priority 0; }
    chain mcast { type filter hook output priority 1; }
}
NFT
    done
}

netns_exec() {
    local i=$1
    shift
    ip netns exec "$(netns_node "$i")" "$@"
}

netns_spawn() {
    local i=$1 log=$2
    shift 2
    ip netns exec "$(netns_node "$i")" "$@" >"$log" 2>&1 &
    NETNS_PID=$!
    NETNS_PIDS="$NETNS_PIDS $NETNS_PID"
}

netns_loss() {
    local ns
    ns=$(netns_node "$1")
    ip netns exec "$ns" nft flush chain inet exo loss
    if [ "$2" -gt 0 ]; then
        ip netns exec "$ns" nft add rule inet exo loss oifname eth0 numgen random mod 100 \< "$2" drop
    fi
}

netns_delay() {
    tc -n "$(netns_node "$1")" qdisc replace dev eth0 root netem delay "${2}ms" 2>/dev/null
}

netns_partition() {
    local i
    for i in $2; do
        ip -n "$NETNS_SW" link set "p$i" master br1
    done
}

netns_heal() {
    local i
    for i in $(seq 1 "$NETNS_N"); do
        ip -n "$NETNS_SW" link set "p$i" master br0
    done
}

netns_block_multicast() {
    local ns
    ns=$(netns_node "$1")
    ip netns exec "$ns" nft add rule inet exo mcast ip daddr 224.0.0.0/4 drop
    ip netns exec "$ns" nft add rule inet exo mcast ip6 daddr ff00::/8 drop
}
