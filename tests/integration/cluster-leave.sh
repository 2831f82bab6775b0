#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# SIGTERM is a graceful leave: the daemon exits 0 within 2 s, and every other node records it as
# left (not dead).
set -eu
. "$(dirname "$0")/cluster-lib.sh"

cl_setup 4
cl_form 4
CL_T0=$(cl_now)
cl_stop 4 TERM
exited=$(printf "%.3f" "$(echo "$(cl_now) - $CL_T0" | bc)")
[ "$CL_STATUS" -eq 0 ] || cl_fail "the daemon exited with $CL_STATUS after SIGTERM"
[ "$(echo "$exited < 2" | bc)" -eq 1 ] || cl_fail "the daemon took $exited s to exit (over 2 s)"
cl_wait 10 see:1-3:4:left
seen=$CL_TOOK
grep -q "leaving the cluster" "$CL_DIR/n4.log" || cl_fail "no leave in node 4's log"
echo "SIGTERM: exit status 0 after ${exited} s; left to all others at ${seen} s"
