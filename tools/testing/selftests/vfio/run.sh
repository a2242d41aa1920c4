#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The vfio-pci dma-buf exporter's harness: one entry point.
#
#   run.sh test     set up the machine, build the kernel with this repository
#                   in it (after each patch of the series), run the host
#                   checks and every selftest in every guest scenario, one
#                   guest per core at a time; ends with the counts of test
#                   cases and harness checks, non-zero on any failure
#   run.sh demo     boot one guest and walk through a multi-range dma-buf:
#                   create, import, segments, reset, revocation, restoration
#   run.sh bench [SCENARIO]
#                   build a kernel without debug options and run the
#                   benchmark (vfio_dmabuf_bench) in SCENARIO (default
#                   switch-noiommu: bus addresses; rootport-iommu: through
#                   the host bridge and an IOMMU); prints its tables
#   run.sh benchmarks
#                   the benchmark in switch-noiommu, rootport-iommu and
#                   switch-iommu, and BENCHMARKS.md written from that run
#   run.sh series [DIR]
#                   write the whole feature as one patch series for the
#                   base tree, with a cover letter, into DIR (default
#                   ~/.cache/vfio-dmabuf/series); checks that it applies
#                   with git am and that every patch passes checkpatch
#   run.sh vng [SCENARIO]
#                   run the selftests of one scenario under virtme-ng instead
#                   of the busybox initramfs (needs `pip install virtme-ng`)
#
# Environment: KDIR=<kernel tree> to start from your own 6.12 tree instead of
# Debian's linux-source-6.12; VFIO_DMABUF_CACHE=<dir> (default
# ~/.cache/vfio-dmabuf) for the trees, builds and logs; SCENARIOS="..." to
# run a subset; VM_TIMEOUT=<s> per guest (default 900); GUEST_LANES=<n>
# guests at a time (default: the number of cores).
set -euo pipefail
. "$(dirname "$0")/scripts/lib.sh"

# Longest first: guests run side by side (see cmd_test), and a long one
# started last would run alone at the end.
ALL_SCENARIOS="rootport-iommu switch-iommu rootport-noiommu switch-noiommu rootport-refused"

# boot SCENARIO ARTIFACTS LOGS: one guest of the test command
boot() {
	log "booting $1"
	if [ "$1" = upstream ]; then
		# the oracle: the same UAPI program on upstream Linux
		"$SELFTEST_DIR/scripts/vm.sh" upstream \
			"$("$SELFTEST_DIR/scripts/oracle.sh" artifacts "$2")" \
			"$3/$1.log" vfio_dmabuf_uapi
	else
		"$SELFTEST_DIR/scripts/vm.sh" "$1" "$2" "$3/$1.log"
	fi
	log "$1 done"
}

cmd_test() {
	local art logs start=$SECONDS host p f s hp hf sc hc pid lanes n
	local -A running=()
	"$SELFTEST_DIR/scripts/setup.sh"
	# The kernel after each patch of the series (the host checks report
	# it): the test kernel is the last of those builds.
	"$SELFTEST_DIR/scripts/bisect.sh" >&2 ||
		log "a patch of the series does not build on its own (see the host checks)"
	art=$("$SELFTEST_DIR/scripts/artifacts.sh" test)
	log "kernel and test programs built in $((SECONDS - start)) s"
	logs=$CACHE/logs
	rm -rf "$logs" && mkdir -p "$logs"

	# A TCG guest runs on one host thread (vm.sh): GUEST_LANES guests at
	# a time, one per core by default, and the host checks beside them,
	# niced so that they take what the guests leave (the guests' timers
	# run in host time).
	lanes=${GUEST_LANES:-$(nproc)}
	nice -n 10 "$SELFTEST_DIR/scripts/host_checks.sh" > "$logs/host.txt" &
	hc=$!
	for sc in ${SCENARIOS:-$ALL_SCENARIOS upstream}; do
		while [ ${#running[@]} -ge "$lanes" ]; do
			sleep 2
			for pid in "${!running[@]}"; do
				kill -0 "$pid" 2>/dev/null || unset "running[$pid]"
			done
		done
		boot "$sc" "$art" "$logs" &
		running[$!]=$sc
	done
	wait "${!running[@]}" || true
	wait "$hc" || true
	host=$(cat "$logs/host.txt")
	# host_checks.sh dying half-way must not pass for fewer checks
	n=$(grep -c '^check ' "$SELFTEST_DIR/scripts/host_checks.sh")
	[ "$(grep -cE '^(not )?ok host: ' <<<"$host")" = "$n" ] ||
		host+=$'\n'"not ok host: every one of the $n host checks reported"
	log "guests and host checks done, $((SECONDS - start)) s"
	{
		printf '%s\n' "$host"
		python3 "$SELFTEST_DIR/scripts/report.py" \
			--expected "$SELFTEST_DIR/scripts/expected.txt" "$logs"/*.log
	} > "$logs/report.txt"
	read -r p f s hp hf < <(tail -n 1 "$logs/report.txt")
	sed '$d' "$logs/report.txt"
	hf=$((hf + $(grep -c '^not ok' <<<"$host" || true)))
	hp=$((hp + $(grep -c '^ok' <<<"$host" || true)))
	log "guest consoles: $logs/*.log; total time $((SECONDS - start)) s"
	summary "$p" "$f" "$s" "$hp" "$hf" | tee "$logs/summary"
	[ "$f" = 0 ] && [ "$hf" = 0 ]
}

# summary P F S HP HF: the closing line, test cases and harness checks apart
summary() {
	echo "$(($1 + $2 + $3)) test cases: $1 passed, $2 failed, $3 skipped;" \
		"$(($4 + $5)) harness checks: $4 passed, $5 failed"
}

cmd_demo() {
	local art sc=${1:-switch-noiommu}
	"$SELFTEST_DIR/scripts/setup.sh"
	art=$("$SELFTEST_DIR/scripts/artifacts.sh" test)
	"$SELFTEST_DIR/scripts/vm.sh" "$sc" "$art" "$CACHE/logs/demo.log" vfio_dmabuf_demo
	sed -n '/### BEGIN vfio_dmabuf_demo/,/### END/p' "$CACHE/logs/demo.log" |
		grep -v '^\[ *[0-9.]*\] ' | sed '1d;$d'
}

# bench_guest SCENARIO ARTIFACTS LOG: the benchmark in one guest; prints its
# output and fails on a failed check of it.
bench_guest() {
	VM_TIMEOUT=${VM_TIMEOUT:-3600} \
	VM_APPEND="vfio_dmabuf.bench=full udmabuf.list_limit=262144 udmabuf.size_limit_mb=1024" \
		"$SELFTEST_DIR/scripts/vm.sh" "$1" "$2" "$3" vfio_dmabuf_bench
	sed -n '/### BEGIN vfio_dmabuf_bench/,/### END/p' "$3" |
		grep -v '^\[ *[0-9.]*\] ' | sed '1d;$d'
	grep -q '^ok 1 benchmark' "$3"
}

cmd_bench() {
	local art sc=${1:-switch-noiommu}
	"$SELFTEST_DIR/scripts/setup.sh"
	art=$("$SELFTEST_DIR/scripts/artifacts.sh" bench)
	bench_guest "$sc" "$art" "$CACHE/logs/bench-$sc.log"
}

# The benchmark in the three guests whose paths it compares, one after
# another, and BENCHMARKS.md written from that one run (scripts/benchmarks.py).
cmd_benchmarks() {
	local art sc logs=$CACHE/logs/benchmarks start=$SECONDS rc=0 runs=() about built
	"$SELFTEST_DIR/scripts/setup.sh"
	art=$("$SELFTEST_DIR/scripts/artifacts.sh" bench)
	built=$((SECONDS - start)) start=$SECONDS
	rm -rf "$logs" && mkdir -p "$logs"
	for sc in switch-noiommu rootport-iommu switch-iommu; do
		log "benchmark in $sc"
		bench_guest "$sc" "$art" "$logs/$sc.log" > "$logs/$sc.txt" || rc=1
		runs+=("$sc=$logs/$sc.txt")
	done
	about="One run on $(date -u +%F) of commit $(git -C "$REPO" describe --always --dirty)"
	about+=" of this repository on the base $(basename "$("$SELFTEST_DIR/scripts/tree.sh")")"
	about+=", $(nproc) host cores: the bench kernel and programs built in $built s"
	about+=" (incremental), the three guests took $((SECONDS - start)) s."
	python3 "$SELFTEST_DIR/scripts/benchmarks.py" \
		--runner "${SELFTEST_DIR#"$REPO"/}/${0##*/}" --about "$about" \
		"${runs[@]}" > "$logs/BENCHMARKS.md" || rc=1
	cp "$logs/BENCHMARKS.md" "$SELFTEST_DIR/BENCHMARKS.md"
	log "wrote $SELFTEST_DIR/BENCHMARKS.md (consoles: $logs)"
	return $rc
}

cmd_vng() {
	local art sc=${1:-switch-noiommu} p f s hp hf
	art=$("$SELFTEST_DIR/scripts/artifacts.sh" test)
	"$SELFTEST_DIR/scripts/vm.sh" --vng "$sc" "$art" "$CACHE/logs/vng/$sc.log"
	python3 "$SELFTEST_DIR/scripts/report.py" \
		--expected "$SELFTEST_DIR/scripts/expected.txt" \
		"$CACHE/logs/vng/$sc.log" > "$CACHE/logs/vng/report.txt"
	sed '$d' "$CACHE/logs/vng/report.txt"
	read -r p f s hp hf < <(tail -n 1 "$CACHE/logs/vng/report.txt")
	summary "$p" "$f" "$s" "$hp" "$hf"
	[ "$f" = 0 ] && [ "$hf" = 0 ]
}

case "${1:-}" in
test) shift; cmd_test "$@" ;;
demo) shift; cmd_demo "$@" ;;
bench) shift; cmd_bench "$@" ;;
benchmarks) shift; cmd_benchmarks ;;
series) shift; "$SELFTEST_DIR/scripts/setup.sh"; "$SELFTEST_DIR/scripts/series.sh" "$@" ;;
vng) shift; cmd_vng "$@" ;;
*) sed -n '3,33p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
