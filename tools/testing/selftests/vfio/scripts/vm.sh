#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# vm.sh [--vng] SCENARIO ARTIFACTS LOG [TESTS]: boot one test guest under
# QEMU TCG (KVM here hangs stock kernels) and write its console to LOG.  The
# guest powers off after its end marker; a guest still running after
# $VM_TIMEOUT seconds (default 900) is killed.  With --vng the guest is a
# virtme-ng one (root over 9p) running the same guest script and tests.
# VM_APPEND adds kernel parameters.  VM_MONITOR=PATH opens QEMU's monitor on
# a UNIX socket there (a hung guest: "info registers -a" gives each vCPU's
# RIP, for scripts/faddr2line).
#
# Scenarios (three pci-testdev devices each, BAR 2 = 64 MiB, 64-bit; the
# guest exports from the first and the third and imports into the second;
# and one two-function pci-testdev, both functions bound to vfio-pci, one
# device set for hot reset: behind the switch its function 0 has an 8 GiB
# BAR 2, which the firmware places above 4 GiB; and two devices that move
# real data: an ivshmem-plain whose 8 GiB BAR 2 is a sparse host file
# (LOG with .ivshmem for .log; the guest exports from it and report.py
# reads the file after the guest stopped), and an edu whose DMA engine the
# test importer drives, with a 64-bit DMA mask, next to the importer (on
# its own root port in switch-iommu, see there); in the rootport scenarios
# also a device with a PM capability and FLR, a virtio-rng-pci whose BAR 4
# the guest exports (vfio_dmabuf_test's pm tests)):
#   switch-noiommu    all behind one PCIe switch, no IOMMU (noiommu VFIO):
#                     bus-address P2P
#   switch-iommu      the same switch with intel-iommu and an AMD CPU: QEMU's
#                     switch ports have no ACS, so P2P stays in the switch:
#                     bus addresses, even with the IOMMU on
#   rootport-iommu    each device on its own root port, intel-iommu, AMD CPU:
#                     through the host bridge, which the CPU allows, with
#                     IOVAs from dma_map_resource()
#   rootport-noiommu  each device on its own root port, AMD CPU, no IOMMU:
#                     through the host bridge, dma_map_resource() without
#                     translation (the DMA address is the CPU address)
#   rootport-refused  each device on its own root port, Intel CPU: refused
#   upstream          switch-iommu's guest for upstream Linux as the oracle
#                     (ARTIFACTS from scripts/oracle.sh)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

vng=0
if [ "${1:-}" = --vng ]; then
	vng=1
	shift
fi
scenario=${1:?usage: vm.sh [--vng] SCENARIO ARTIFACTS LOG [TESTS]}
art=${2:?}
logf=${3:?}
tests=${4:-}

switch=(-device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1
	-device x3130-upstream,id=up1,bus=rp1
	-device xio3130-downstream,id=dn1,bus=up1,chassis=2,slot=0
	-device xio3130-downstream,id=dn2,bus=up1,chassis=3,slot=1
	-device xio3130-downstream,id=dn3,bus=up1,chassis=4,slot=2
	-device xio3130-downstream,id=dn4,bus=up1,chassis=5,slot=3
	-device pci-testdev,membar=64M,bus=dn1
	-device pci-testdev,membar=64M,bus=dn2
	-device pci-testdev,membar=64M,bus=dn3
	-device pci-testdev,membar=8G,bus=dn4,addr=0.0,multifunction=on
	-device pci-testdev,membar=64M,bus=dn4,addr=0.1
	-device xio3130-downstream,id=dn5,bus=up1,chassis=6,slot=4
	-device ivshmem-plain,memdev=shm,bus=dn5)
edu=edu,dma_mask=0xffffffffffffffff
edu_in_switch=(-device xio3130-downstream,id=dn6,bus=up1,chassis=7,slot=5
	-device $edu,bus=dn6)
edu_on_rootport=(-device pcie-root-port,id=rp7,bus=pcie.0,chassis=7,slot=7
	-device $edu,bus=rp7)
rootports=(-device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1
	-device pcie-root-port,id=rp2,bus=pcie.0,chassis=2,slot=2
	-device pcie-root-port,id=rp3,bus=pcie.0,chassis=3,slot=3
	-device pcie-root-port,id=rp4,bus=pcie.0,chassis=4,slot=4
	-device pci-testdev,membar=64M,bus=rp1
	-device pci-testdev,membar=64M,bus=rp2
	-device pci-testdev,membar=64M,bus=rp3
	-device pci-testdev,membar=64M,bus=rp4,addr=0.0,multifunction=on
	-device pci-testdev,membar=64M,bus=rp4,addr=0.1
	-device pcie-root-port,id=rp5,bus=pcie.0,chassis=5,slot=5
	-device ivshmem-plain,memdev=shm,bus=rp5
	"${edu_on_rootport[@]}"
	-device pcie-root-port,id=rp8,bus=pcie.0,chassis=8,slot=8
	-device virtio-rng-pci,disable-legacy=on,bus=rp8)
noiommu=vfio.enable_unsafe_noiommu_mode=1
# QEMU 7.2's multi-threaded TCG can lose the wake-up of a vCPU halted in
# idle: its timer interrupt never arrives, RCU grace periods stop, the
# guest reports an RCU stall ("0 ticks this GP", the CPU in
# pv_native_safe_halt) and runs out of memory on deferred frees.  Seen
# after 35 s of a stress with the host cores busy, never with idle=poll
# under the same load for 300 s.  Idle vCPUs spin instead of halting.
common="idle=poll"
# One host thread runs both vCPUs in the IOMMU scenarios.  With QEMU's
# default multi-threaded TCG, guests with intel-iommu (interrupt
# remapping on) stopped under stress with the local timer vector (236)
# pending in both vCPUs' LAPIC IRR, ISR empty, PPR 0x10, IF=1, both CPUs in
# cpu_idle_poll ("info lapic" in the QEMU monitor): the interrupt was never
# injected, and the guest reported an RCU stall ("Possible timer handling
# issue on cpu=0").  Seen 3 times in about 2,000 s of stress.  Every
# scenario runs so since the same stop hit switch-noiommu (no IOMMU) in a
# CI rehearsal: CPU 1 in cpu_idle_poll, "0 ticks this GP", "Possible timer
# handling issue on cpu=1", during reset_loop.
tcg=tcg,thread=single

case "$scenario" in
switch-noiommu)
	machine=q35 cpu=EPYC path=bus extra=$noiommu
	devs=("${switch[@]}" "${edu_in_switch[@]}") ;;
switch-iommu|upstream)
	# The devices behind the switch (no ACS) share one IOMMU group, which
	# VFIO cannot own while the edu has a kernel driver (a real limit,
	# not QEMU's): the edu sits on its own root port and moves data
	# through the host bridge, in an identity domain (iommu=pt, as many
	# hosts run), the host-bridge path's untranslated case.
	machine=q35,kernel-irqchip=split cpu=EPYC path=bus
	extra="intel_iommu=on iommu.passthrough=1"
	devs=(-device intel-iommu,intremap=on,caching-mode=on "${switch[@]}"
	      "${edu_on_rootport[@]}") ;;
rootport-iommu)
	machine=q35,kernel-irqchip=split cpu=EPYC path=host extra=intel_iommu=on
	devs=(-device intel-iommu,intremap=on,caching-mode=on "${rootports[@]}") ;;
rootport-noiommu)
	machine=q35 cpu=EPYC path=host devs=("${rootports[@]}") extra=$noiommu ;;
rootport-refused)
	machine=q35 cpu=Nehalem path=none devs=("${rootports[@]}") extra=$noiommu ;;
*)
	die "unknown scenario $scenario" ;;
esac

# The QEMU client test (guest/vfio_dmabuf_qemu.sh) runs Debian's QEMU 11,
# whose root (scripts/qemu_client.sh: 67 MB, 20 MB compressed) is appended
# to the initramfs only where it runs, and only when it is to run (a vng
# guest reads it from the cache).
initrd=$art/initramfs.cpio.gz qemu11=/nonexistent
case "$scenario,${tests:-vfio_dmabuf_qemu}" in
rootport-iommu,*vfio_dmabuf_qemu*)
	qemu11=$CACHE/qemu11/qemu11
	[ ! -f "$art/initramfs-qemu11.cpio.gz" ] || initrd=$art/initramfs-qemu11.cpio.gz ;;
esac

mkdir -p "$(dirname "$logf")"
shm=${logf%.log}.ivshmem
rm -f "$shm" && truncate -s 8G "$shm"
devs+=(-object "memory-backend-file,id=shm,mem-path=$shm,size=8G,share=on")
if [ $vng = 1 ]; then
	command -v vng >/dev/null || die "virtme-ng is not installed: pip install virtme-ng"
	run=$SELFTEST_DIR/guest/run_guest_tests.sh
	# vng's own machine is q35; our -cpu comes last and wins.
	TESTS=$tests timeout --foreground -k 10 "${VM_TIMEOUT:-900}" \
		vng --disable-kvm --verbose --run "$art/bzImage" --memory 2G --cpus 2 \
		--append "loglevel=7 kmemleak=on $common $extra" \
		--qemu-opts="-cpu $cpu ${devs[*]}" \
		--exec "env VFIO_DMABUF_QEMU=$qemu11 $run $art $scenario $path" \
		</dev/null >"$logf" 2>&1 || true
	exit 0
fi

append="console=ttyS0 panic=-1 kmemleak=on $common $extra ${VM_APPEND:-}"
append+=" vfio_dmabuf.scenario=$scenario vfio_dmabuf.path=$path"
[ -z "$tests" ] || append+=" vfio_dmabuf.tests=$tests"

mon=()
[ -z "${VM_MONITOR:-}" ] || mon=(-monitor "unix:$VM_MONITOR,server=on,wait=off")
# Once a minute, which program the guest is running and for how long.
(
	t0=$SECONDS
	while sleep 60; do
		# no BEGIN yet is no error: under errexit and pipefail grep's
		# status 1 would end the ticker
		p=$(grep -a '^### BEGIN' "$logf" 2>/dev/null | tail -n 1 | cut -d' ' -f3 || true)
		log "$scenario: ${p:-booting}, guest running for $((SECONDS - t0)) s"
	done
) &
ticker=$!
# An ended ticker is no failure of the run either.
trap 'kill $ticker 2>/dev/null || true' EXIT
timeout --foreground -k 10 "${VM_TIMEOUT:-900}" \
	qemu-system-x86_64 -M "$machine" -accel "$tcg" -cpu "$cpu" -smp 2 -m 2G \
	-nographic -no-reboot -nodefaults -serial stdio \
	-kernel "$art/bzImage" -initrd "$initrd" \
	-append "$append" "${devs[@]}" "${mon[@]}" </dev/null >"$logf" 2>&1 || true
