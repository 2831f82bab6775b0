#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Devices and telemetry across three daemons in network namespaces (issue 4): every node's API
# shows all three nodes' devices and scores, every node's latest sample advancing, and any node
# answers GET /api/v1/telemetry for another by fetching it from that node; a node that does not
# answer gets a 502 or 504, an unknown one a 404. Exit 77 (skip) without root, iproute2,
# nftables, curl or jq. Without EXO_BIN (ctest sets it) the build tree's build/dev/exo is used.
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/netns.sh"

LIMIT=150 # seconds for the whole script; each wait below is bounded too
EXO_BIN=${EXO_BIN:-$HERE/../../build/dev/exo}
DIR=""
WATCHDOG=""

cleanup() {
    local rc=$? f
    set +e
    trap - EXIT INT TERM
    [ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
    netns_cleanup
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -n "$DIR" ]; then
        for f in "$DIR"/n*.log; do
            [ -f "$f" ] && { echo "--- last lines of $(basename "$f")" >&2; tail -n 15 "$f" >&2; }
        done
    fi
    [ -n "$DIR" ] && rm -rf "$DIR"
    exit "$rc"
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# curl inside node I: prints the body, then the HTTP status on a line of its own.
api() {
    netns_exec "$1" curl -s -m 5 -w '\n%{http_code}' "http://$(netns_ip "$1"):52415$2"
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

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: needs root for network namespaces"
    exit 77
fi
for tool in curl jq; do
    command -v "$tool" >/dev/null || { echo "SKIP: needs $tool"; exit 77; }
done
[ -x "$EXO_BIN" ] || { echo "SKIP: no exo binary at $EXO_BIN (set EXO_BIN)"; exit 77; }

trap cleanup EXIT
trap 'fail "interrupted or over the ${LIMIT} s limit"' INT TERM
(
    exec >/dev/null 2>&1
    sleep "$LIMIT" &
    s=$!
    trap 'kill $s; exit 0' TERM
    wait $s && kill -TERM $$
) &
WATCHDOG=$!
DIR=$(mktemp -d "${TMPDIR:-/tmp}/exo-devices.XXXXXX")
netns_up 3

# One score measured, copied to the others: three daemons measuring at once on a small machine
# would only slow the test down.
"$EXO_BIN" devices --state-dir "$DIR/state-n1" --json >/dev/null 2>&1
for i in 2 3; do
    mkdir -p -m 700 "$DIR/state-n$i"
    cp "$DIR/state-n1/device-score.json" "$DIR/state-n$i/" 2>/dev/null
done
declare -a PID
for i in 1 2 3; do
    netns_spawn "$i" "$DIR/n$i.log" "$EXO_BIN" --listen "$(netns_ip "$i")" --model none \
        --state-dir "$DIR/state-n$i" --name "n$i" --join "$(netns_ip 1):52416"
    PID[$i]=$NETNS_PID
done

ID=()
for i in 1 2 3; do
    wait_for 20 api_ok "$i" /healthz >/dev/null || fail "node $i does not serve HTTP"
    ID[$i]=$(api_ok "$i" /api/v1/nodes | jq -r .self)
done
echo "nodes: ${ID[1]} ${ID[2]} ${ID[3]}"

# Every node lists three nodes, each with a CPU device and a score.
devices_complete() {
    api_ok "$1" /api/v1/devices | jq -e '(.nodes | length) == 3 and
        all(.nodes[]; any(.devices[]; .id == "cpu0") and .score != null)' >/dev/null
}
for i in 1 2 3; do
    wait_for 40 devices_complete "$i" || fail "node $i does not list every node's devices"
done
for i in 1 2 3; do
    api_ok "$i" "/api/v1/devices?node=${ID[$(((i % 3) + 1))]}" |
        jq -e '(.nodes | length) == 1' >/dev/null || fail "node $i: ?node= does not filter"
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
    wait_for 20 all_telemetry "$i" || fail "node $i does not show every node's telemetry"
done
for i in 1 2 3; do
    before=$(api_ok "$i" /api/v1/nodes | jq -c '[.nodes[] | {id, seq: .telemetry.seq}]')
    sleep 3
    after=$(api_ok "$i" /api/v1/nodes | jq -c '[.nodes[] | {id, seq: .telemetry.seq}]')
    jq -e -n --argjson a "$before" --argjson b "$after" \
        'all(range(0; $a | length); . as $k | $b[$k].seq >= $a[$k].seq + 2)' >/dev/null ||
        fail "node $i: samples do not advance: $before then $after"
done
echo "telemetry: every node's samples advance on every node"

# History of every other node through every node.
for i in 1 2 3; do
    for j in 1 2 3; do
        since=$(($(date +%s%3N) - 60000))
        body=$(api_ok "$i" "/api/v1/telemetry?node=${ID[$j]}&since=$since") ||
            fail "node $i: /api/v1/telemetry?node=<node $j> failed: $(api "$i" \
                "/api/v1/telemetry?node=${ID[$j]}")"
        jq -e --arg id "${ID[$j]}" '.node == $id and (.samples | length) >= 2 and
            (.samples | all(.mem.total > 0))' <<<"$body" >/dev/null ||
            fail "node $i: bad history of node $j"
    done
done
echo "telemetry history: every node answers for every node"

# Errors: a bad id, an unknown node, a node that does not answer.
[ "$(api 1 '/api/v1/telemetry?node=xyz' | tail -n 1)" = 400 ] || fail "a bad node id is not a 400"
[ "$(api 1 "/api/v1/telemetry?node=00000000000000000000000000000001" | tail -n 1)" = 404 ] ||
    fail "an unknown node is not a 404"
kill -STOP "${PID[3]}"
status=$(api 1 "/api/v1/telemetry?node=${ID[3]}" | tail -n 1)
kill -CONT "${PID[3]}"
case "$status" in
502 | 504) echo "a node that does not answer: $status" ;;
*) fail "a stopped node's history answered $status, not 502 or 504" ;;
esac
# Under the sanitizers, undefined behaviour is only logged: it fails the test all the same.
if grep -l -E "runtime error:|AddressSanitizer" "$DIR"/n*.log; then
    fail "sanitizer reports in the daemons' logs"
fi
echo "PASS"
