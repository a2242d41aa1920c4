#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# inject.sh [ARTIFACTS]: proves that scripts/report.py fails a run on each
# hang, stall and debug-facility report it claims to catch, by making a
# test guest's kernel produce each one for real (switch-noiommu, a short
# program next to it) and checking that the report fails that guest with
# the pattern in its splat lines.  About 2 min per injection; not part of
# the test command.  Prints one ok/not ok line per injection.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

art=${1:-$CACHE/artifacts-test}
out=$CACHE/logs/inject
mkdir -p "$out"
bad=0

# inject NAME PATTERN TESTS VM_APPEND: boots one guest; its report must
# fail and hold PATTERN (in a failed line or in the splat it prints)
inject() {
	local name=$1 pattern=$2 tests=$3 append=$4 logf=$out/$1.log rep
	VM_APPEND="$append" VM_TIMEOUT=600 "$SELFTEST_DIR/scripts/vm.sh" \
		switch-noiommu "$art" "$logf" "$tests"
	rep=$(python3 "$SELFTEST_DIR/scripts/report.py" "$logf" || true)
	if grep -q '^not ok' <<<"$rep" && grep -q -- "$pattern" <<<"$rep"; then
		echo "ok $name: the run fails on '$pattern'"
	else
		echo "not ok $name: '$pattern' not caught (console: $logf)"
		bad=1
	fi
}

# a task in D state for 70 s (hung-task timeout and check period 30 s)
inject hung-task "blocked for more than" vfio_dmabuf_demo \
	"vfio_dmabuf.inject=state=D,time_secs=70"
# 30 s with preemption off: the soft-lockup detector (20 s) and RCU (21 s)
inject soft-lockup "soft lockup" vfio_dmabuf_demo \
	"vfio_dmabuf.inject=disable_preempt=1,time_secs=30"
inject rcu-stall "self-detected stall" vfio_dmabuf_demo \
	"vfio_dmabuf.inject=disable_preempt=1,time_secs=30"
# importers whose fences signal after 70 s: the exporter's own report at
# 10 s, then the hung-task report of the waiting reset
inject exporter-busy "dma-buf importers still busy" vfio_dmabuf_test \
	"vfio_dmabuf.fence_ms=70000"
# debug facilities off
inject kmemleak-off "kmemleak is on # no" vfio_dmabuf_demo "kmemleak=off"
inject dma-debug-off "DMA-API: debugging disabled" vfio_dmabuf_demo "dma_debug=off"
exit $bad
