#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# /init of the busybox test initramfs: mount, run the tests, power off.
/bin/busybox --install -s /bin
mount -t proc none /proc
mount -t sysfs none /sys
mount -t devtmpfs none /dev 2>/dev/null
mount -t debugfs none /sys/kernel/debug
mount -t tmpfs none /tmp
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	vfio_dmabuf.scenario=*) scenario=${arg#*=} ;;
	vfio_dmabuf.path=*) path=${arg#*=} ;;
	vfio_dmabuf.bench=*) export VFIO_DMABUF_BENCH=${arg#*=} ;;
	vfio_dmabuf.fuzz_calls=*) export VFIO_DMABUF_FUZZ_CALLS=${arg#*=} ;;
	vfio_dmabuf.stress_seconds=*) export VFIO_DMABUF_STRESS_SECONDS=${arg#*=} ;;
	vfio_dmabuf.fuzz_seed=*) export VFIO_DMABUF_FUZZ_SEED=${arg#*=} ;;
	vfio_dmabuf.tests=*) export TESTS=$(echo "${arg#*=}" | tr , ' ') ;;
	vfio_dmabuf.monitor=*) monitor=${arg#*=} ;;
	vfio_dmabuf.inject=*) export VFIO_DMABUF_INJECT=${arg#*=} ;;
	vfio_dmabuf.fence_ms=*) export VFIO_DMABUF_FENCE_MS=${arg#*=} ;;
	esac
done
# Long runs: every $monitor seconds, one line of what a lost timer interrupt
# or a stuck RCU grace period changes first: per-CPU local timer interrupts
# and RCU/timer softirqs stop growing, kmemleak objects (freed after a
# grace period) and slab pile up.
if [ -n "${monitor:-}" ]; then
	while sleep "$monitor"; do
		echo "### MON t=$(cut -d' ' -f1 /proc/uptime)" \
			"kmemleak_object=$(awk '/^kmemleak_object /{print $2}' /proc/slabinfo)" \
			"$(awk '/^(MemFree|Slab):/{printf "%s%s ", $1, $2}' /proc/meminfo)" \
			"LOC=$(awk '/LOC:/{print $2 "," $3}' /proc/interrupts)" \
			"RCU=$(awk '/RCU:/{print $2 "," $3}' /proc/softirqs)" \
			"TIMER=$(awk '/ TIMER:/{print $2 "," $3}' /proc/softirqs)"
	done &
fi
/run_guest_tests.sh /artifacts "${scenario:-unknown}" "${path:-none}"
poweroff -f
