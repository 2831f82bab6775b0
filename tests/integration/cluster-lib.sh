# SPDX-License-Identifier: Apache-2.0
# Real exo daemons in the namespaces of netns.sh, for the cluster tests beside this file and the
# benches bench/cluster-formation and bench/failure-detection. Source it, then:
#
#   cl_setup N            N node namespaces, a scratch directory, cleanup on any exit, and a
#                         watchdog that ends the script after CL_LIMIT seconds (default 120)
#   cl_start I [ARGS...]  start exo in node I: --listen on its address, default ports, --model
#                         none, its own state dir (kept across restarts of node I), --name nI,
#                         then ARGS; its pid goes to CL_PID[I], its log to $CL_DIR/nI.log
#   cl_form N [ARGS...]  start nodes 1..N with ARGS and wait (15 s at most) until all N see all
#                         N alive and agree on leader and state
#   cl_stop I SIG         send SIG to node I's daemon and wait until it exits; its exit status
#                         goes to CL_STATUS
#   cl_wait S PRED...     wait at most S seconds until every predicate holds; sets CL_TOOK to the
#                         seconds it took (from CL_T0 when set, else from the call); fails the
#                         test if not
#   cl_hold S PRED...     every predicate must hold for S seconds; fails the test if not
#   cl_json I             node I's GET /api/v1/cluster
#   cl_fail MSG           fail the test (the cleanup prints the tail of every daemon's log)
#   cl_now                epoch seconds with nanoseconds, for CL_T0 and durations
#   cl_stats X...         "median M s (min A, max B, N runs)" of the seconds given
#
# Predicates are cluster-watch's (see:OBS:TGT:STATE, notsee:OBS:TGT:STATE, agree:OBS): one
# Python process polls every node's /api/v1/cluster from inside its namespace, so waiting costs
# the daemons little CPU. Without EXO_BIN (ctest sets it) the build tree's build/dev/exo is used.
# CL_KEEP=1 keeps the scratch directory; CL_LOG_LEVEL sets the daemons' log level (info).
# A test that passes still fails when a daemon's log holds a sanitizer report: under UBSan,
# undefined behaviour is only logged.

CL_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$CL_HERE/netns.sh"

CL_WATCH="$CL_HERE/cluster-watch"
CL_API_PORT=52415
CL_GOSSIP_PORT=52416
CL_LIMIT=${CL_LIMIT:-120}
CL_LOG_LEVEL=${CL_LOG_LEVEL:-info}
CL_DIR=""
CL_WATCHDOG=""
CL_T0=""
CL_TOOK=""
CL_STATUS=""
declare -a CL_PID

cl_now() { date +%s.%N; }

cl_cleanup() {
    local rc=$? f
    # Cleanup goes to the end whatever fails in it, even in a script run with set -e.
    set +e
    trap - EXIT INT TERM
    if [ -n "$CL_WATCHDOG" ]; then
        kill "$CL_WATCHDOG" 2>/dev/null
    fi
    netns_cleanup
    if [ "$rc" -eq 0 ] && [ -n "$CL_DIR" ] &&
        grep -l -E "runtime error:|AddressSanitizer|LeakSanitizer" "$CL_DIR"/n*.log >&2; then
        echo "FAIL: sanitizer reports in the daemons' logs above" >&2
        rc=1
    fi
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -n "$CL_DIR" ]; then
        for f in "$CL_DIR"/n*.log; do
            [ -f "$f" ] || continue
            echo "--- last lines of $(basename "$f")" >&2
            tail -n 15 "$f" >&2
        done
    fi
    if [ -n "$CL_DIR" ] && [ -z "${CL_KEEP:-}" ]; then
        rm -rf "$CL_DIR"
    elif [ -n "$CL_DIR" ]; then
        echo "logs and state kept in $CL_DIR" >&2
    fi
    exit "$rc"
}

cl_fail() {
    echo "FAIL: $*" >&2
    exit 1
}

cl_setup() {
    local n=$1
    if [ -z "${EXO_BIN:-}" ]; then
        EXO_BIN="$CL_HERE/../../build/dev/exo"
    fi
    if [ ! -x "$EXO_BIN" ]; then
        echo "SKIP: no exo binary at $EXO_BIN (set EXO_BIN)"
        exit 77
    fi
    if ! command -v python3 >/dev/null || ! command -v jq >/dev/null; then
        echo "SKIP: the cluster tests need python3 and jq"
        exit 77
    fi
    EXO_BIN=$(cd "$(dirname "$EXO_BIN")" && pwd)/$(basename "$EXO_BIN")
    trap cl_cleanup EXIT
    trap 'cl_fail "interrupted or over the ${CL_LIMIT} s limit"' INT TERM
    # Its output closed so that it holds no pipe a caller waits on; stopped, it ends its sleep.
    (
        exec >/dev/null 2>&1
        sleep "$CL_LIMIT" &
        s=$!
        trap 'kill $s; exit 0' TERM
        wait $s && kill -TERM $$
    ) &
    CL_WATCHDOG=$!
    CL_DIR=$(mktemp -d "${TMPDIR:-/tmp}/exo-cluster.XXXXXX")
    netns_up "$n"
    export NETNS_TAG CL_API_PORT
}

cl_start() {
    local i=$1
    shift
    netns_spawn "$i" "$CL_DIR/n$i.log" "$EXO_BIN" --listen "$(netns_ip "$i")" \
        --api-port "$CL_API_PORT" --gossip-port "$CL_GOSSIP_PORT" --model none \
        --state-dir "$CL_DIR/state-n$i" --name "n$i" --log-level "$CL_LOG_LEVEL" "$@"
    CL_PID[$i]=$NETNS_PID
}

cl_form() {
    local n=$1 i
    shift
    for i in $(seq 1 "$n"); do
        cl_start "$i" "$@"
    done
    cl_wait 15 "see:1-$n:1-$n:alive" "agree:1-$n"
}

cl_stop() {
    local pid=${CL_PID[$1]}
    kill -"$2" "$pid"
    CL_STATUS=0
    # Quietly: bash would otherwise report a killed job on stderr.
    wait "$pid" 2>/dev/null || CL_STATUS=$?
    # Reaped, its pid may be reused: the cleanup must not kill it again.
    NETNS_PIDS=$(echo " $NETNS_PIDS " | sed "s/ $pid / /")
}

cl_wait() {
    local s=$1
    shift
    CL_TOOK=$("$CL_WATCH" ${CL_T0:+--since "$CL_T0"} wait "$s" "$@") || cl_fail "waiting for $*"
}

cl_hold() {
    local s=$1
    shift
    "$CL_WATCH" hold "$s" "$@" >/dev/null || cl_fail "$* did not hold for $s s"
}

cl_json() {
    "$CL_WATCH" json "$1" || cl_fail "node $1 does not answer"
}


cl_stats() {
    printf '%s\n' "$@" | sort -g | awk '
        { v[NR] = $1 }
        END {
            m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "median %.3f s (min %.3f, max %.3f, %d runs)\n", m, v[1], v[NR], NR
        }'
}
