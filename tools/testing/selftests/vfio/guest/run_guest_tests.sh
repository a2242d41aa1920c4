#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs inside a test guest (busybox initramfs or virtme-ng): loads the
# modules, binds the exporting device to vfio-pci and runs every test
# program, framing each one's TAP output for the host-side runner.
#
#   run_guest_tests.sh ARTIFACTS_DIR SCENARIO PATH [TEST...]
#
# ARTIFACTS_DIR holds modules/ (the .ko files, and "load": which ones to
# load, in order) and tests/ (the programs).
# PATH is the P2P path the scenario must give: bus, host or none.
set -u
art=$1 scenario=$2 path=$3
shift 3

say() { echo "### $*"; }

modules=$(cat "$art/modules/load")
for m in $modules; do
	insmod "$art/modules/$m.ko" || say "ERROR insmod $m failed"
done
# refcnts: "module=count ..." of our modules (the names use underscores)
refcnts() {
	for m in $modules; do
		m=$(echo "$m" | tr - _)
		printf '%s=%s ' "$m" "$(cat "/sys/module/$m/refcnt" 2>/dev/null)"
	done
}

# pci-testdev (1b36:0005): of the single-function ones, the first and the
# third are bound to vfio-pci and export, the second imports (it keeps no
# driver, so the DMA API works on it).  Both functions of the two-function
# one are bound to vfio-pci (one device set).
devs="" mf0="" mf1=""
for d in /sys/bus/pci/devices/*; do
	[ "$(cat "$d/vendor")" = 0x1b36 ] && [ "$(cat "$d/device")" = 0x0005 ] ||
		continue
	bdf=${d##*/}
	case $bdf in
	*.1) mf1=$bdf ;;
	*) if [ -e "/sys/bus/pci/devices/${bdf%.*}.1" ]; then mf0=$bdf
	   else devs="$devs $bdf"; fi ;;
	esac
done
set -- $devs
exporter=${1:-} importer=${2:-} exporter2=${3:-}
[ -n "$exporter2" ] || say "ERROR expected three pci-testdev, found:$devs"
[ -n "$mf0" ] && [ -n "$mf1" ] ||
	say "ERROR expected a two-function pci-testdev, found '$mf0' '$mf1'"
# ivshmem-plain (1af4:1110): BAR 2 is memory, exported; edu (1234:11e8):
# the test importer's module drives its DMA engine (bound at insmod), except
# while vfio_dmabuf_iommufd runs, which drives it itself through vfio-pci.
# virtio-rng-pci (1af4:1044), where the scenario has it: PM and FLR
# capabilities; bound to vfio-pci instead of virtio-pci.
memdev="" dmadev="" pmdev=""
for d in /sys/bus/pci/devices/*; do
	case "$(cat "$d/vendor"):$(cat "$d/device")" in
	0x1af4:0x1110) memdev=${d##*/} ;;
	0x1234:0x11e8) dmadev=${d##*/} ;;
	0x1af4:0x1044) pmdev=${d##*/} ;;
	esac
done
[ -n "$memdev" ] && [ -n "$dmadev" ] ||
	say "ERROR expected an ivshmem-plain and an edu, found '$memdev' '$dmadev'"
# (upstream's kernel, scenario "upstream", has no test importer)
[ -z "$dmadev" ] || [ ! -e /sys/module/vfio_dmabuf_importer ] ||
	[ -e "/sys/bus/pci/drivers/vfio_dmabuf_importer_edu/$dmadev" ] ||
	say "ERROR the test importer did not bind edu $dmadev"
for e in $exporter $exporter2 $mf0 $mf1 $memdev $pmdev; do
	[ ! -e "/sys/bus/pci/devices/$e/driver" ] ||
		echo "$e" > "/sys/bus/pci/devices/$e/driver/unbind"
	echo vfio-pci > "/sys/bus/pci/devices/$e/driver_override"
	echo "$e" > /sys/bus/pci/drivers_probe
	[ -e "/sys/bus/pci/drivers/vfio-pci/$e" ] ||
		say "ERROR $e did not bind to vfio-pci"
done

export VFIO_DMABUF_SCENARIO=$scenario VFIO_DMABUF_EXPORTER=$exporter \
	VFIO_DMABUF_EXPORTER2=$exporter2 VFIO_DMABUF_IMPORTER=$importer \
	VFIO_DMABUF_MF0=$mf0 VFIO_DMABUF_MF1=$mf1 VFIO_DMABUF_PATH=$path \
	VFIO_DMABUF_MEMDEV=$memdev VFIO_DMABUF_DMADEV=$dmadev \
	VFIO_DMABUF_PMDEV=$pmdev
say "SCENARIO $scenario exporter=$exporter exporter2=$exporter2" \
	"importer=$importer mf=$mf0,$mf1 memdev=$memdev dmadev=$dmadev" \
	"pmdev=${pmdev:-none} path=$path"

# scripts/inject.sh: make the kernel report a lockup, a stall or a hung
# task (test_lockup's parameters, comma-separated), to prove the runner
# fails the run on it.  Runs beside the tests; the guest waits for it.
inject_pid=""
if [ -n "${VFIO_DMABUF_INJECT:-}" ]; then
	say "INJECT test_lockup $VFIO_DMABUF_INJECT"
	insmod "$art/modules/test_lockup.ko" $(echo "$VFIO_DMABUF_INJECT" | tr , ' ') &
	inject_pid=$!
fi

kmemleak=/sys/kernel/debug/kmemleak
[ -w $kmemleak ] && echo clear > $kmemleak
refs_before=$(refcnts)

# edu_driver DRIVER: binds edu to DRIVER, vfio-pci (by driver_override) or
# the driver that claims it by its ID (the test importer's).
edu_driver() {
	local dev=/sys/bus/pci/devices/$dmadev

	[ -n "$dmadev" ] || return 0
	[ ! -e "$dev/driver" ] || echo "$dmadev" > "$dev/driver/unbind"
	if [ "$1" = vfio-pci ]; then
		echo vfio-pci > "$dev/driver_override"
	else
		echo > "$dev/driver_override"
	fi
	echo "$dmadev" > /sys/bus/pci/drivers_probe
	[ -e "/sys/bus/pci/drivers/$1/$dmadev" ] ||
		say "ERROR edu $dmadev did not bind to $1"
}

# run NAME [VAR=VALUE...]: runs program NAME (PROGRAM or PROGRAM@cdev) in
# that environment, framed, and says how long it took.
run() {
	name=$1
	shift
	say "BEGIN $name"
	t0=$(cut -d. -f1 /proc/uptime)
	(cd "$art/tests" && env "$@" "./${name%@*}")
	say "END $name rc=$?"
	say "TIME $name $(($(cut -d. -f1 /proc/uptime) - t0)) s"
}

# Every program that opens the exporting device runs twice: through the
# VFIO group and container, then through the device cdev bound to iommufd
# (VFIO_DMABUF_OPEN=cdev; its results are named PROGRAM@cdev).  6.12 gives
# a no-IOMMU device no cdev: there the second run is one reported skip.
# The fuzzer and the race stress exercise the same ioctls either way: their
# cdev runs are shorter (a fifth of the calls, other seeds; half the time).
# vfio_dmabuf_iommufd opens its devices through their cdevs only, and runs
# once, with edu lent to vfio-pci; without an IOMMU it skips itself.
# vfio_dmabuf_qemu (guest/vfio_dmabuf_qemu.sh) runs once: the QEMU it
# starts opens the device both ways itself.
cdev_skip=""
if ! [ -e "/sys/bus/pci/devices/$exporter/iommu" ]; then
	cdev_skip="6.12 gives a no-IOMMU device no cdev (vfio_device_add in drivers/vfio/vfio.h)"
elif ! [ -e /dev/vfio/devices ]; then
	cdev_skip="this kernel has no VFIO device cdevs (CONFIG_VFIO_DEVICE_CDEV off)"
fi
calls=${VFIO_DMABUF_FUZZ_CALLS:-100000} seed=${VFIO_DMABUF_FUZZ_SEED:-1}
secs=${VFIO_DMABUF_STRESS_SECONDS:-10}
tests=${TESTS:-$(ls "$art/tests")}
for t in $tests; do
	if [ "$t" = vfio_dmabuf_iommufd ]; then
		edu_driver vfio-pci
		run "$t"
		edu_driver vfio_dmabuf_importer_edu
		continue
	fi
	run "$t"
	case $t in
	vfio_dmabuf_demo|vfio_dmabuf_bench|vfio_dmabuf_qemu) continue ;;
	esac
	if [ -n "$cdev_skip" ]; then
		say "SKIP $t@cdev $cdev_skip"
		continue
	fi
	run "$t@cdev" VFIO_DMABUF_OPEN=cdev \
		VFIO_DMABUF_FUZZ_CALLS=$(((calls + 4) / 5)) \
		VFIO_DMABUF_FUZZ_SEED=$((seed + 1000)) \
		VFIO_DMABUF_STRESS_SECONDS=$(((secs + 1) / 2))
done

[ -z "$inject_pid" ] || wait "$inject_pid"

# Teardown: nothing the tests made outlives them.  No dma-buf is left,
# every module's reference count is back to what it was before the tests,
# and every module unloads (unbinding its devices); then kmemleak also sees
# what an unload should have freed.  scripts/report.py requires the
# TEARDOWN line of a clean end and fails on each ERROR.
teardown() {
	local bufinfo=/sys/kernel/debug/dma_buf/bufinfo clean=1 left refs_after
	local m unload=""

	if [ ! -r $bufinfo ]; then
		say "TEARDOWN no $bufinfo: this kernel has no debugfs"
		clean=0
	else
		left=$(sed -n 's/^Total \([0-9]*\) objects.*/\1/p' $bufinfo)
		if [ "$left" != 0 ]; then
			say "ERROR teardown: dma-bufs left: ${left:-unknown}"
			cat $bufinfo
			clean=0
		fi
	fi
	refs_after=$(refcnts)
	if [ "$refs_after" != "$refs_before" ]; then
		say "ERROR teardown: module references before the tests:" \
			"$refs_before, after: $refs_after"
		clean=0
	fi
	for m in $(echo "$modules" | tr - _); do
		unload="$m $unload"
	done
	for m in $unload; do
		if ! rmmod "$m"; then
			say "ERROR teardown: rmmod $m failed"
			clean=0
		fi
	done
	[ $clean = 0 ] ||
		say "TEARDOWN clean: no dma-buf left, module references as before," \
			"every module unloaded"
}
teardown

# Leaks: objects must be older than kmemleak's minimum age to be reported.
if [ -w $kmemleak ]; then
	sleep 6
	echo scan > $kmemleak
	echo scan > $kmemleak
	cat $kmemleak
fi
say "DONE"
