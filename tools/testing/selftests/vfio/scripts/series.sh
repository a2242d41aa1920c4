#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# series.sh [DIR]: writes the whole feature, from the repository as it is,
# as one patch series for the base tree (Debian's linux-source-6.12, or
# $KDIR) into DIR (default $CACHE/series), with a cover letter:
#
#   1. the kernel-tree patches of patches/, in their order, except those
#      that only touch Documentation/ and MAINTAINERS (they go with step
#      4): exports, the UAPI, the Rust bindings, the hooks (with stubs
#      while the option does not exist), the DMA-API patches;
#   2. the range logic, a module of the crate (built from step 3 on);
#   3. the exporter: the feature's lines of Kconfig and Makefile
#      (patches/exporter-kbuild.diff, applied to the base's files with
#      kbuild_apply), the C shim and the crate;
#   4. the documentation page, then the patches held back from step 1
#      (its index entry, the MAINTAINERS entry);
#   5. the selftests, the test importer and the harness.
#
# Each patch is checked with checkpatch.pl --strict; the series is applied
# with git am to a pristine copy of the base as it is written, and it must
# be exactly the integration tree the guests' kernel is built from.
#
# series.sh --quick DIR only writes it, for tree.sh, which builds the
# integration tree from it (SERIES_BASE_TREE names that tree).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

quick=0
if [ "${1:-}" = --quick ]; then
	quick=1
	shift
fi
out=${1:-$CACHE/series}
TREE=${SERIES_BASE_TREE:-$("$SELFTEST_DIR/scripts/tree.sh")}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
W=$work/linux
git clone -q -s -n "$TREE" "$W"
cd "$W"
# Only the files the series writes, and checkpatch, are checked out.
{
	sed -n 's|^+++ b/||p;s|^--- a/||p' "$REPO"/patches/*.patch
	printf '%s\n' /drivers/vfio/pci/ /Documentation/driver-api/ /MAINTAINERS \
		/tools/testing/selftests/vfio/ /scripts/
} | sort -u | sed 's|^\([^/]\)|/\1|' > "$work/sparse"
git sparse-checkout set --no-cone --stdin < "$work/sparse"
git checkout -q harness-base

# The series' author is the one of the kernel-tree patches.
kpatches=("$REPO"/patches/*.patch)
ident=$(git mailinfo /dev/null /dev/null < "${kpatches[0]}" |
	sed -n 's/^Author: //p;s/^Email: //p' | paste -sd'\t')
name=${ident%%$'\t'*} email=${ident#*$'\t'}
GIT=(git -c "user.name=$name" -c "user.email=$email" -c commit.gpgsign=false)

am() { "${GIT[@]}" am -q --keep-cr "$1" || die "does not apply: $1"; }
docs_only() { ! grep '^+++ b/' "$1" | has -v '^+++ b/\(Documentation/\|MAINTAINERS$\)'; }
commit() {	# commit MESSAGE FILE...: files as the repository has them
	local msg=$1 f
	shift
	for f in "$@"; do
		mkdir -p "$(dirname "$f")"
		case $f in
		drivers/vfio/pci/Kconfig | drivers/vfio/pci/Makefile)
			;;	# the base's, with the feature's lines (kbuild_apply)
		*)
			cp "$REPO/$(repo_path "$f")" "$f" ;;
		esac
	done
	"${GIT[@]}" add -f -- "$@"
	"${GIT[@]}" commit -q -s -m "$msg"
}
# Where a tree path lives in the repository (the root is drivers/vfio/pci/).
repo_path() { echo "${1#drivers/vfio/pci/}"; }

deferred=() infra=0
for p in "${kpatches[@]}"; do
	if docs_only "$p"; then deferred+=("$p"); else am "$p"; infra=$((infra + 1)); fi
done

P=drivers/vfio/pci
commit "vfio/pci: dma-buf: Range list validation and segment planning

The pure logic of the dma-buf exporter, in Rust and free of kernel
objects: validation of a range list against a BAR (page alignment, bounds,
64-bit overflow, with upstream's errno choices), the physically contiguous
runs of a list (ranges that follow each other in the BAR merge), and the
cut of a run into DMA segments that respect an importer's maximum segment
size and boundary, in whole pages.

It is a module of the exporter's crate, added in the next patch; until
then nothing builds it.  The same file is unit-tested on the host (cargo
test, property tests and a fuzz target) by the selftests' harness." \
	$P/vfio_pci_dmabuf_ranges.rs

mapfile -t glue < <(cd "$REPO" && ls vfio_pci_core_glue/*.rs | sed "s|^|$P/|")
kbuild_apply . || die "cannot add the feature's lines to the base's Kbuild files"
commit "vfio/pci: Export ranges of a BAR as a dma-buf (VFIO_DEVICE_FEATURE_DMA_BUF)

CONFIG_VFIO_PCI_DMABUF adds to vfio-pci-core the exporter behind
VFIO_DEVICE_FEATURE_DMA_BUF: a dma-buf made of several page-aligned
ranges of one memory BAR, concatenated in the order given, for dynamic
importers that allow peer-to-peer.  Importers get PCI bus addresses
through a switch; through a host bridge, one IOVA range for the whole
buffer where an IOMMU translates them (the DMA IOVA API) and a
dma_map_resource() per contiguous run where nothing does.  The CPU may
mmap() the buffer: one mapping of the ranges in order, faulted in as
vfio-pci's BAR mmap is.  Access is revoked with move_notify, and the CPU
mappings zapped, wherever vfio-pci zaps the user's BAR mappings and given
back when the BAR is usable again; closing the device revokes for good.
Revocation waits for the importers' fences.

The exporter is written in Rust (vfio_pci_dmabuf.rs, with the safe
wrappers it needs over the C objects in vfio_pci_core_glue.rs and its
modules, one per kind of object); a small C
shim (vfio_pci_dmabuf_shim.c) holds what Rust cannot reach in 6.12
(vfio-pci's inline helpers, THIS_MODULE, macros bindgen cannot evaluate)
and vfio-pci's get_dmabuf_phys() helpers, exported for variant drivers." \
	$P/Kconfig $P/Makefile $P/vfio_pci_dmabuf.h $P/vfio_pci_dmabuf_shim.c \
	$P/vfio_pci_core_glue.rs "${glue[@]}" $P/vfio_pci_dmabuf.rs

commit "Documentation: vfio-pci: The dma-buf exporter for PCI BAR memory

The user API, its errno table, the importers the exporter accepts and the
DMA addresses each path gives them, revocation and the buffer's lifetime,
an example and how the feature is tested." \
	Documentation/driver-api/vfio-pci-dmabuf.rst
for p in "${deferred[@]}"; do am "$p"; done

mapfile -t tests < <(cd "$REPO" &&
	git ls-files --cached --others --exclude-standard tools/testing/selftests/vfio)
commit "selftests/vfio: dma-buf exporter tests, a test importer and their harness

Selftests of VFIO_DEVICE_FEATURE_DMA_BUF (UAPI and errno table, segments
on each P2P path, importer refusals, revocation by every trigger and its
order, lifetime, fault injection, real DMA through QEMU's edu device, CPU
mappings, fuzzers, a race stress, a benchmark), a test importer module
(dmabuf_importer/) and run.sh, which builds a kernel with this series and
runs everything in QEMU guests shaped like real hosts." \
	"${tests[@]}"

rm -rf "$out" && mkdir -p "$out"
git format-patch -q --cover-letter --thread=shallow -o "$out" harness-base..HEAD

# The cover letter: what the series is, how it differs from upstream, how
# it was tested (the last test run on record).
n=$(git rev-list --count harness-base..HEAD)
shapes="behind a PCIe switch with and without an IOMMU, through the host
bridge with and without one, and with no P2P path"
summary="no run of the test command on record in $CACHE/logs"
if [ -f "$CACHE/logs/summary" ]; then
	summary="$(cat "$CACHE/logs/summary") ($(date -r "$CACHE/logs/summary" +%F))"
fi
# Whether bisect.sh built every patch of this very series (tree states).
built=0 unbuilt=0
for c in $(git rev-list harness-base..HEAD); do
	builds_kernel . "$c" || continue
	if grep -qxF "$(bisect_state . "$c")" "$(bisect_dir "$TREE")/checked" 2>/dev/null
	then
		built=$((built + 1))
	else
		unbuilt=$((unbuilt + 1))
	fi
done
if [ $unbuilt = 0 ]; then
	bisect="Each of the $built patches that change what the kernel build reads
was built on its own, in order (the test kernel's config, debug options
on, warnings failing; CONFIG_VFIO_PCI_DMABUF from the patch that adds it)."
else
	bisect="$unbuilt of the $((built + unbuilt)) patches that change what the kernel
build reads have not been built on their own yet (the test command does it)."
fi
blurb=$work/blurb
cat > "$blurb" <<EOF
vfio-pci: export ranges of a PCI BAR as a dma-buf (6.12)

This series lets the user of a vfio-pci device create a dma-buf from
several ranges of one memory BAR (VFIO_DEVICE_FEATURE_DMA_BUF) and hand it
to another driver -- an RDMA NIC, a GPU, iommufd -- which then DMAs into
the BAR peer-to-peer; the CPU may map it too, as one mapping.  Access is
revoked through move_notify, and CPU mappings are zapped (SIGBUS while
revoked), whenever the BAR becomes unusable (memory decode off, resets,
low power) and for good when the device is closed.

The UAPI is binary-compatible with upstream Linux 6.19.  Compared with
upstream's exporter, this one is written in Rust, merges ranges that
follow each other in the BAR, cuts entries at the importer's segment
limits in whole pages, revokes synchronously (every importer is told,
then all their fences are waited for), and allows mmap() of the buffer
(upstream 6.19 refuses it; a series under review there adds it).  6.12 lacks what upstream builds
on, so the series adds the minimum: exported registration helpers, the
P2P map type between a provider and a client, Rust bindings, and a DMA
IOVA API shaped as upstream's (one IOVA range per buffer behind an IOMMU).

Patches 1-$infra change the rest of the tree, $((infra + 1))-$((infra + 2)) add the exporter,
$((infra + 3))-$((n - 1)) its documentation and $n its selftests, test importer and harness
(tools/testing/selftests/vfio/run.sh builds a kernel with the series and
runs everything in QEMU guests).

Tested under QEMU (TCG) with a debug kernel (KASAN, lockdep, kmemleak,
DMA-API and dma-buf debugging), in guests $shapes.
Last run of the test command: $summary. $bisect
Benchmarks (one N-range buffer against N buffers and udmabuf, on the
bus-address and the IOMMU path; one CPU mapping against N mmaps of the
region): tools/testing/selftests/vfio/BENCHMARKS.md.

Known limits: CPU mappings are faulted in a page at a time (no huge
pages); 6.12 gives a device without an IOMMU no VFIO cdev, so such a device
is opened through its group only.
EOF
python3 - "$out"/0000-cover-letter.patch "$blurb" <<'PY'
import sys
cover, blurb = sys.argv[1], open(sys.argv[2]).read()
import textwrap
subject, body = blurb.split('\n', 1)
body = '\n\n'.join(textwrap.fill(' '.join(par.split()), 72)
                   for par in body.strip('\n').split('\n\n'))
s = open(cover).read()
s = s.replace('*** SUBJECT HERE ***', subject).replace('*** BLURB HERE ***', body)
open(cover, 'w').write(s)
PY

if [ $quick = 1 ]; then
	log "series: $n patches in $out"
	exit 0
fi

# What is shipped is what is tested: every file the series writes is the
# one in the integration tree the guests' kernel was built from.
differs=$(git diff --name-only harness-base HEAD | while read -r f; do
	cmp -s "$f" "$TREE/$f" || echo "$f"
done)
[ -z "$differs" ] || die "the series and the integration tree differ in: $differs"

# Every patch passes checkpatch (new files without a MAINTAINERS change are
# not reported); the series applies to a pristine base.
mapfile -t patches < <(ls "$out"/*.patch | grep -v '/0000-cover-letter.patch$')
bad=0
for p in "${patches[@]}"; do
	if ! "$W/scripts/checkpatch.pl" --strict -q --no-tree \
			--ignore FILE_PATH_CHANGES "$p" > "$work/cp" 2>&1; then
		log "checkpatch: $(basename "$p")"
		sed 's/^/    /' "$work/cp" >&2
		bad=1
	fi
done
git checkout -q harness-base
for p in "${patches[@]}"; do am "$p"; done
log "series: $n patches and a cover letter in $out; applies with git am to the base"
[ $bad = 0 ] || die "checkpatch found problems (above)"
