#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Devices and telemetry across three daemons in network namespaces (issue 4): every node's API
# shows all three nodes' devices and scores, every node's latest sample advancing, the links
# between them, and any node answers GET /api/v1/telemetry for another by fetching it from that
# node; a node that does not answer gets a 502 or 504, an unknown one a 404. Exit 77 (skip) without root, iproute2,
# nftables, curl or jq. Without EXO_BIN (ctest sets it) the build tree's build/dev/exo is used.
set -eu
CL_LIMIT=${CL_LIMIT:-150}
. "$(dirname "$0")/cluster-lib.sh"

# curl inside node I: prints the body, then the HTTP status on a line of its own.
api() {
    netns_exec "$1" curl -s -m 5 -w '\n%{http_code}' "http://$(netns_ip "$1"):$CL_API_PORT$2"
}

# The body of a 200 from node I, or nothing.
api_ok() {
    local out
    out=$(api "$@") || return 1
    [ "$(tail -n 1 <<<"$out")" = 200 ] || return 1
    sed '$d' <<<"$out"
}

# wait_for SECONDS CMD...: run CMD every half second until it succeeds.
wait_for() {
    local end=$((SECONDS + $1))
    shift
    while [ "$SECONDS" -lt "$end" ]; do
        "$@" && return 0
        sleep 0.5
    done
    return 1
}

command -v curl >/dev/null || { echo "SKIP: needs curl"; exit 77; }
cl_setup 3

# One score measured, copied to the others: three daemons measuring at once on a small machine
# would only slow the test down. (A machine too busy for the score to be cached leaves each
# daemon to measure its own.)
"$EXO_BIN" devices --state-dir "$CL_DIR/state-n1" --json >/dev/null 2>"$CL_DIR/score.log" ||
    cl_fail "exo devices failed: $(tail -n 5 "$CL_DIR/score.log")"
for i in 2 3; do
    mkdir -p -m 700 "$CL_DIR/state-n$i"
    if [ -f "$CL_DIR/state-n1/device-score.json" ]; then
        cp "$CL_DIR/state-n1/device-score.json" "$CL_DIR/state-n$i/"
    fi
done
for i in 1 2 3; do
    cl_start "$i" --join "$(netns_ip 1):$CL_GOSSIP_PORT"
done

ID=()
for i in 1 2 3; do
    wait_for 20 api_ok "$i" /healthz >/dev/null || cl_fail "node $i does not serve HTTP"
    ID[$i]=$(api_ok "$i" /api/v1/nodes | jq -r .self)
done
echo "nodes: ${ID[1]} ${ID[2]} ${ID[3]}"

# Every node lists three nodes, each with a CPU device and a score.
devices_complete() {
    api_ok "$1" /api/v1/devices | jq -e '(.nodes | length) == 3 and
        all(.nodes[]; any(.devices[]; .id == "cpu0") and .score != null)' >/dev/null
}
for i in 1 2 3; do
    wait_for 40 devices_complete "$i" || cl_fail "node $i does not list every node's devices"
done
for i in 1 2 3; do
    api_ok "$i" "/api/v1/devices?node=${ID[$(((i % 3) + 1))]}" |
        jq -e '(.nodes | length) == 1' >/dev/null || cl_fail "node $i: ?node= does not filter"
done
echo "devices: every node lists the 3 nodes' devices and scores"

# Every node shows every node's latest sample, and the samples advance.
seqs() {
    api_ok "$1" /api/v1/nodes | jq -r '[.nodes[] | .telemetry.seq // -1] | sort | join(" ")'
}
all_telemetry() {
    api_ok "$1" /api/v1/nodes | jq -e '(.nodes | length) == 3 and
        all(.nodes[]; .telemetry != null and .telemetry.mem.total > 0)' >/dev/null
}
for i in 1 2 3; do
    wait_for 20 all_telemetry "$i" || cl_fail "node $i does not show every node's telemetry"
done
for i in 1 2 3; do
    before=$(api_ok "$i" /api/v1/nodes | jq -c '[.nodes[] | {id, seq: .telemetry.seq}]')
    sleep 3
    after=$(api_ok "$i" /api/v1/nodes | jq -c '[.nodes[] | {id, seq: .telemetry.seq}]')
    jq -e -n --argjson a "$before" --argjson b "$after" \
        'all(range(0; $a | length); . as $k | $b[$k].seq >= $a[$k].seq + 2)' >/dev/null ||
        cl_fail "node $i: samples do not advance: $before then $after"
done
echo "telemetry: every node's samples advance on every node"

# Every node shows the whole mesh: each node's measured round trips to the two others.
all_links() {
    api_ok "$1" /api/v1/nodes | jq -e '(.nodes | length) == 3 and all(.nodes[];
        .id as $id | .links | type == "object" and (keys | length) == 2 and
        (has($id) | not) and all(.[]; type == "number" and . >= 0))' >/dev/null
}
for i in 1 2 3; do
    wait_for 20 all_links "$i" || cl_fail "node $i does not show every node's links: $(api "$i" \
        /api/v1/nodes | jq -c '[.nodes[] | {name, links}]')"
done
echo "links: every node shows every node's round trips to the others"

# History of every other node through every node.
for i in 1 2 3; do
    for j in 1 2 3; do
        since=$(($(date +%s%3N) - 60000))
        body=$(api_ok "$i" "/api/v1/telemetry?node=${ID[$j]}&since=$since") ||
            cl_fail "node $i: /api/v1/telemetry?node=<node $j> failed: $(api "$i" \
                "/api/v1/telemetry?node=${ID[$j]}")"
        jq -e --arg id "${ID[$j]}" '.node == $id and (.samples | length) >= 2 and
            (.samples | all(.mem.total > 0))' <<<"$body" >/dev/null ||
            cl_fail "node $i: bad history of node $j"
    done
done
echo "telemetry history: every node answers for every node"

# Errors: a bad id, an unknown node, a node that does not answer.
[ "$(api 1 '/api/v1/telemetry?node=xyz' | tail -n 1)" = 400 ] ||
    cl_fail "a bad node id is not a 400"
[ "$(api 1 "/api/v1/telemetry?node=00000000000000000000000000000001" | tail -n 1)" = 404 ] ||
    cl_fail "an unknown node is not a 404"
kill -STOP "${CL_PID[3]}"
status=$(api 1 "/api/v1/telemetry?node=${ID[3]}" | tail -n 1)
kill -CONT "${CL_PID[3]}"
case "$status" in
502 | 504) echo "a node that does not answer: $status" ;;
*) cl_fail "a stopped node's history answered $status, not 502 or 504" ;;
esac
echo "PASS"
