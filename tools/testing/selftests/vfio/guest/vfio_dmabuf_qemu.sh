#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# vfio_dmabuf_qemu: the exporter's real client.  Debian's QEMU 11
# (scripts/qemu_client.sh; /qemu11 in the guest, or $VFIO_DMABUF_QEMU)
# takes the memory-backed device ($VFIO_DMABUF_MEMDEV, bound to vfio-pci,
# BAR 2 of 8 GiB) into a nested VM that runs only its firmware, and hands
# its dma-buf of BAR 2 to iommufd (IOMMU_IOAS_MAP_FILE) once the firmware
# turns the BAR on.  One TAP line per check:
#   1 realize: with the iommufd backend, QEMU gets a dma-buf of BAR 2
#     (trace vfio_region_dmabuf);
#   2 map_file: QEMU maps it with IOMMU_IOAS_MAP_FILE (trace
#     iommufd_backend_map_file_dma ... (0)) at the BAR's address in the
#     nested VM ("info pci"), its whole size; no map_file fails and QEMU
#     gives no warning but the known one (below);
#   3 reset: system_reset turns the BAR off: the exporter revokes the
#     buffer, and iommufd unmaps the range from the IOMMU for it (ftrace
#     iommu:unmap of the range, with dma_buf_move_notify and
#     iopt_dmabuf_revoke on the kernel stack); QEMU unmaps it (trace
#     iommufd_backend_unmap_dma ... (0)) and maps it again with
#     IOMMU_IOAS_MAP_FILE ... (0) when the firmware turns the BAR on again;
#   4 quit: QEMU exits with status 0, the IOMMU maps the range no more
#     (ftrace iommu:unmap last) and no dma-buf is left
#     (/sys/kernel/debug/dma_buf/bufinfo);
#   5 container: the same QEMU on the VFIO group and container (no iommufd
#     object) realizes the 64 MiB pci-testdev exporter
#     ($VFIO_DMABUF_EXPORTER), gets a dma-buf of its BAR 2 and maps the BAR
#     for P2P (trace vfio_listener_region_add_ram at its address) without a
#     warning, and quits with status 0.  Not ivshmem: on that path 6.12's
#     type1 pins a BAR's mmap page by page, and the 8 GiB BAR's 2,097,152
#     pages took about 490 s of this TCG guest (QEMU's monitor frozen).
# The trace lines and kernel events matched are printed as "# " lines.  It
# skips itself whole where QEMU cannot take the device: no IOMMU, or no
# QEMU 11 in the guest.
#
# One warning is known, with the iommufd backend only: QEMU also maps the
# device's BAR 0 (256 bytes of registers, one page in QEMU's mmap) for P2P.
# A dma-buf is whole pages of a BAR, so there is none of BAR 0 (EINVAL: "BAR
# 0: dma-buf unavailable, using mmap fallback"), and QEMU falls back to
# mapping its mmap by user address (IOMMU_IOAS_MAP), which iommufd refuses
# for a BAR (EFAULT: it pins pages, a BAR's mmap has none): "IOMMU_IOAS_MAP
# failed: Bad address, PCI BAR?", "vfio_container_dma_map(..., <BAR 0>,
# 0x1000, ...) = -14 (Bad address)", "PCI peer-to-peer transactions on
# BARs are not supported".  Those lines, for BAR 0's page, are known; any
# other fails the check it appears in.
# VFIO_DMABUF_QEMU_TIMEOUT: seconds to wait for each step (default 120; each
# takes under 15 s here).

memdev=${VFIO_DMABUF_MEMDEV:-}
exporter=${VFIO_DMABUF_EXPORTER:-}
q=${VFIO_DMABUF_QEMU:-/qemu11}
limit=${VFIO_DMABUF_QEMU_TIMEOUT:-120}
bufinfo=/sys/kernel/debug/dma_buf/bufinfo
tr=/sys/kernel/tracing

echo "TAP version 13"
skip_all() {
	echo "1..0 # SKIP $*"
	exit 4
}
[ -n "$memdev" ] && [ -n "$exporter" ] ||
	skip_all "needs VFIO_DMABUF_MEMDEV and VFIO_DMABUF_EXPORTER: device BDFs" \
		"set up as guest/run_guest_tests.sh does (see run.sh)"
[ -e "/sys/bus/pci/devices/$memdev/iommu" ] ||
	skip_all "QEMU's vfio-pci needs an IOMMU: there is none in this scenario"
[ -x "$q/qemu" ] ||
	skip_all "no QEMU 11 in this guest: vm.sh adds it (scripts/qemu_client.sh)" \
		"to rootport-iommu's initramfs only"

echo "1..5"
version=$("$q/qemu" --version | sed -n 1p)
dir=/tmp/vfio_dmabuf_qemu
rm -rf "$dir" && mkdir -p "$dir"
n=0 failed=0
result() {	# result OK NAME [WHY]
	n=$((n + 1))
	if [ "$1" = 1 ]; then
		echo "ok $n $2"
	else
		echo "not ok $n $2${3:+ # $3}"
		failed=1
	fi
}
comment() { sed 's/^/# /'; }
dmabufs() { sed -n 's/^Total \([0-9]*\) objects.*/\1/p' $bufinfo; }
# bar_size BDF: the size of BAR 2 of device BDF in this guest, in hex
bar_size() {
	set -- $(sed -n 3p "/sys/bus/pci/devices/$1/resource")
	printf '0x%x' $(($2 - $1 + 1))
}
# pci_id BDF: VENDOR:DEVICE as "info pci" prints it
pci_id() {
	local d=/sys/bus/pci/devices/$1
	echo "$(sed 's/^0x//' $d/vendor):$(sed 's/^0x//' $d/device)"
}

# The kernel's view: every IOMMU map and unmap of a range of SIZE bytes,
# with the kernel stack that made it.
[ -d $tr/events ] || mount -t tracefs nodev $tr
ftrace_on() {	# ftrace_on SIZE
	echo 0 > $tr/tracing_on
	echo > $tr/trace
	for e in map unmap; do
		echo "size == $(($1))" > $tr/events/iommu/$e/filter
		echo 1 > $tr/events/iommu/$e/enable
	done
	echo 1 > $tr/options/stacktrace
	echo 1 > $tr/tracing_on
}
ftrace_off() {
	for e in map unmap; do
		echo 0 > $tr/events/iommu/$e/enable
		echo 0 > $tr/events/iommu/$e/filter
	done
	echo 0 > $tr/options/stacktrace
	grep -v '^#' $tr/trace > "$dir/ftrace"
	echo > $tr/trace
}

# start NAME BDF ARGS...: QEMU with device BDF, its monitor on a FIFO (fd
# 3), the nested VM running only its firmware; trace in $dir/NAME.trace,
# monitor output in NAME.mon, stderr in NAME.err.  The nested CPU has 39
# physical address bits, as many as this guest's IOMMU translates
# (intel-iommu's aw-bits): with TCG's default 40, SeaBIOS puts the 64-bit
# BAR window at the top of 1 TiB, out of the IOMMU's reach.
start() {
	name=$1 bdf=$2
	shift 2
	pciid=$(pci_id "$bdf") barsize=$(bar_size "$bdf")
	rm -f "$dir/mon" && mkfifo "$dir/mon"
	exec 3<> "$dir/mon"
	t0=$(cut -d. -f1 /proc/uptime)
	"$q/qemu" -nodefaults -display none -machine q35 -accel tcg,tb-size=64 \
		-cpu qemu64,phys-bits=39 -m 128M -serial none -monitor stdio \
		-D "$dir/$name.trace" -trace vfio_region_dmabuf \
		-trace 'iommufd_backend_map*' -trace 'iommufd_backend_unmap_dma*' \
		-trace vfio_listener_region_add_ram -trace 'vfio_pci_reset*' \
		-trace 'vfio_pci_hot_reset*' "$@" \
		< "$dir/mon" > "$dir/$name.mon" 2> "$dir/$name.err" &
	qpid=$!
	mon=$dir/$name.mon trace=$dir/$name.trace
	dmabuf_re="vfio_region_dmabuf Device $bdf, dmabuf fd [0-9]* region 2 .*size: $barsize$"
	echo "# $name: $version, device $bdf ($pciid), BAR 2 $barsize"
}
elapsed() { echo $(($(cut -d. -f1 /proc/uptime) - t0)); }
# until_ SECONDS CMD...: polls CMD once a second until it succeeds, QEMU
# exits, or SECONDS pass; returns CMD's status.
until_() {
	local left=$1
	shift
	while ! "$@"; do
		kill -0 $qpid 2> /dev/null || { "$@"; return; }
		[ "$left" -gt 0 ] || return 1
		sleep 1
		left=$((left - 1))
	done
}
prompts() { grep -o '(qemu)' "$mon" | wc -l; }
more_prompts() { [ "$(prompts)" -gt "$1" ]; }
# hmp COMMAND: one monitor command; returns once its output is complete
hmp() {
	local before
	before=$(prompts)
	echo "$1" >&3
	until_ 60 more_prompts "$before"
}
# quit: quits QEMU (killed if it does not) and gives its exit status
quit() {
	hmp quit
	until_ 60 sh -c "! kill -0 $qpid 2> /dev/null"
	kill -0 $qpid 2> /dev/null && kill -9 $qpid
	wait $qpid
	rc=$?
	exec 3>&-
	return $rc
}
# bar N: BAR N's address in the nested VM, from "info pci" (nothing while
# the BAR is off)
bar() {
	hmp "info pci"
	awk -v id="PCI device $pciid" -v bar="BAR$1:" '
		index($0, id) { d = 1; next } /^  Bus / { d = 0 }
		d && $1 == bar { a = $0 } END { print a }' "$mon" |
		sed -n 's/.*memory at \(0x[0-9a-f]*\).*/\1/p' | grep -v '^0xffffffffffffffff$'
}
bar2_on() { addr=$(bar 2) && [ -n "$addr" ]; }
lines() { cat "$trace" 2> /dev/null | grep -c -- "$1"; }
more_lines() { [ "$(lines "$1")" -ge "$2" ]; }
# show PATTERN: the trace's matching lines, as TAP comments
show() { grep -- "$1" "$trace" | comment; }
# warnings FILE: what QEMU said on stderr but the known lines (see the top)
# for the sub-page BAR 0 at $bar0 with the iommufd backend
warnings() {
	local x="0x[0-9a-f]*"
	local map="warning: vfio_container_dma_map($x, $bar0, 0x1000, $x) = -14 (Bad address)$"
	local p2p="PCI peer-to-peer transactions on BARs are not supported.$"
	local nodmabuf="vfio-pci,host=$bdf,iommufd=ifd: warning: $bdf BAR 0: dma-buf unavailable,"
	local ioas="warning: IOMMU_IOAS_MAP failed: Bad address, PCI BAR?$"
	nodmabuf="$nodmabuf using mmap fallback, P2P DMA will not work: Invalid argument$"
	if [ -z "$bar0" ] || [ "$(grep -c "$p2p" "$1")" -gt "$(grep -c "$map" "$1")" ]; then
		map=nothing-is-known p2p=nothing-is-known
	fi
	grep -v -e "$map" -e "$p2p" -e "$nodmabuf" -e "$ioas" "$1"
}

# ---- the iommufd backend ---------------------------------------------------
before=$(dmabufs)
ftrace_on "$(bar_size "$memdev")"
start iommufd "$memdev" -object iommufd,id=ifd -device "vfio-pci,host=$memdev,iommufd=ifd"

# 1: realized, with a dma-buf of BAR 2
until_ "$limit" more_lines "$dmabuf_re" 1
ok=0
[ "$(lines "$dmabuf_re")" -ge 1 ] && ok=1
echo "# realized after $(elapsed) s:"
show vfio_region_dmabuf
result $ok "qemu.iommufd_realize_dmabuf" "no dma-buf of BAR 2"

# 2: the firmware turns the BAR on, QEMU maps the dma-buf through iommufd
until_ "$limit" more_lines "iommufd_backend_map_file_dma .* size=$barsize " 1
t_map=$(elapsed)
addr=$(bar 2) bar0=$(bar 0)
echo "# BAR 2 mapped after $t_map s; info pci: BAR 2 at ${addr:-nothing}," \
	"BAR 0 at ${bar0:-nothing}; map_file and failed calls:"
grep -e '^iommufd.*(-[0-9]*)$' -e '^iommufd_backend_map_file' "$trace" | comment
map_ok="iommufd_backend_map_file_dma .* iova=$addr size=$barsize .* (0)$"
ok=0 why=""
if [ -z "$addr" ]; then
	why="BAR 2 is off"
elif [ "$(lines "$map_ok")" -lt 1 ]; then
	why="no map_file of BAR 2 at $addr with result 0"
elif grep -q 'iommufd_backend_map_file_dma .*(-[0-9]*)$' "$trace"; then
	why="a map_file failed"
elif warnings "$dir/iommufd.err" | grep . >/dev/null; then
	why="QEMU warned"
else
	ok=1
fi
comment < "$dir/iommufd.err"
result $ok "qemu.iommufd_map_file" "$why"

# 3: system_reset: revoked, unmapped, mapped again
maps=$(lines "$map_ok")
echo "# system_reset"
hmp system_reset
until_ "$limit" more_lines "$map_ok" $((maps + 1))
echo "# BAR 2 mapped again after $(elapsed) s; the resets and BAR 2's calls:"
show "vfio_pci_reset\|vfio_pci_hot_reset\|iova=$addr size=$barsize"
addr2=$(bar 2)
snapshot=$(cat $bufinfo)
# QEMU's calls for BAR 2's range, in order, with their results
order=$(grep "iommufd_backend_map_file_dma\|iommufd_backend_unmap_dma" "$trace" |
	grep -- "iova=$addr size=$barsize" |
	sed 's/^iommufd_backend_\([a-z_]*\) .*(\(-*[0-9]*\))$/\1(\2)/' | tr '\n' ' ')
echo "# BAR 2 after the reset at ${addr2:-nothing}; QEMU's calls for it: $order"

# 4: quit, no dma-buf left
echo "# dma-bufs before QEMU: $before; while it ran:"
echo "$snapshot" | grep -v '^$' | comment
quit
qrc=$?
ftrace_off
after=$(dmabufs)
echo "# QEMU exited with status $qrc after $(elapsed) s; dma-bufs after it: $after"

# the kernel's IOMMU maps and unmaps of the BAR's size, with their stacks
echo "# the kernel's IOMMU maps and unmaps of $barsize bytes (ftrace iommu:map, iommu:unmap):"
sed 's/^ *//' "$dir/ftrace" | grep -e ': map:' -e ': unmap:' -e '^=>' |
	grep -v -e '=> trace_event_raw_event' -e '=> __*x64_sys' -e '=> do_syscall' \
		-e '=> entry_SYSCALL' | comment
# Each event and its stack on one line: "map|unmap IOVA FUNCTION..."
awk '/: (map|unmap): / { if (ev) print ev; ev = ($0 ~ /: map:/ ? "map" : "unmap")
		sub(/.*iova=0x0*/, "0x"); ev = ev " " $0; sub(/ - .*/, "", ev); next }
	/^ *=> / { ev = ev " " $2 } END { if (ev) print ev }' "$dir/ftrace" > "$dir/events"
kaddr=$(printf '0x%x' $((addr)) 2> /dev/null)
ok=0 why=""
# mapped, unmapped, mapped again, nothing failed
if ! echo "$order" | grep '^map_file_dma(0) .*unmap_dma(0) .*map_file_dma(0) $' >/dev/null ||
		echo "$order" | grep '(-' >/dev/null; then
	why="QEMU's calls for BAR 2: $order"
elif [ "$addr2" != "$addr" ]; then
	why="BAR 2 moved from $addr to $addr2"
# the kernel: mapped, unmapped by the revocation, mapped again
elif ! sed -n 1p "$dir/events" | grep "^map $kaddr " >/dev/null ||
		! sed -n 2p "$dir/events" | grep \
			"^unmap $kaddr .*iopt_dmabuf_revoke dma_buf_move_notify .*vfio_pci" \
			>/dev/null ||
		! sed -n 3p "$dir/events" | grep "^map $kaddr " >/dev/null; then
	why="the kernel did not map $kaddr, unmap it by the exporter's revocation, map it again"
else
	ok=1
fi
result $ok "qemu.iommufd_reset_revokes_and_remaps" "$why"

ok=0 why=""
if [ "$qrc" != 0 ]; then
	why="QEMU exit status $qrc"
elif [ "$after" != "$before" ]; then
	why="dma-bufs: $before before QEMU, $after after"
	comment < $bufinfo
elif ! tail -n 1 "$dir/events" | grep "^unmap $kaddr " >/dev/null; then
	why="the IOMMU still maps $kaddr"
elif warnings "$dir/iommufd.err" | grep . >/dev/null; then
	why="QEMU warned"
else
	ok=1
fi
result $ok "qemu.iommufd_quit_releases" "$why"

# ---- the VFIO group and container ------------------------------------------
start container "$exporter" -device "vfio-pci,host=$exporter"
until_ "$limit" more_lines "$dmabuf_re" 1
addr="" bar0=""
until_ "$limit" bar2_on
bar_re="vfio_listener_region_add_ram region_add \[ram\] $addr - "
until_ "$limit" more_lines "$bar_re" 1
echo "# BAR 2 mapped after $(elapsed) s; info pci: BAR 2 at ${addr:-nothing}:"
show "vfio_region_dmabuf\|region_add \[ram\] $addr "
quit
qrc=$?
echo "# QEMU exited with status $qrc after $(elapsed) s"
comment < "$dir/container.err"
ok=0 why=""
if [ "$(lines "$dmabuf_re")" -lt 1 ]; then
	why="no dma-buf of BAR 2"
elif [ -z "$addr" ] || [ "$(lines "$bar_re")" -lt 1 ]; then
	why="BAR 2 (at ${addr:-nothing}) not mapped for DMA"
elif [ -s "$dir/container.err" ]; then
	why="QEMU warned"
elif [ "$qrc" != 0 ]; then
	why="QEMU exit status $qrc"
else
	ok=1
fi
result $ok "qemu.container_realize_and_map" "$why"
exit $failed
