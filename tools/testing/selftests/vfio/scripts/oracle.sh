#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# oracle.sh [artifacts TEST_ARTIFACTS|present|fetch]: upstream Linux as the
# oracle of the UAPI.  Debian's newest upstream kernel in trixie-backports
# (linux-binary-ABI-amd64 and linux-modules-ABI-amd64; its vfio-pci-core has
# the merged VFIO_DEVICE_FEATURE_DMA_BUF) boots in the guest shape of
# switch-iommu (vm.sh scenario "upstream") and runs vfio_dmabuf_uapi, the
# program whose answers are compared with ours (see there).
#
#   artifacts DIR  print a directory like artifacts.sh's for that kernel:
#                  its bzImage, the VFIO modules (decompressed), the test
#                  programs of DIR (artifacts.sh's) and the initramfs
#   fetch          fetch the kernel once into $CACHE/upstream/ (no output)
#   present        succeed when it is there (no fetch, no output)
#
# apt runs as lib.sh's trixie_apt_setup says, under $CACHE/upstream/apt;
# once the kernel is there, a call does no network access.
# UPSTREAM_PIN=ABI (7.3.4+deb13, say) takes that kernel instead of the one
# trixie-backports' linux-image-amd64 names (a kernel the lists lack is an
# error naming the ones they have).  Debian's config has no IOMMUFD and no
# VFIO no-IOMMU mode: the group path with an IOMMU is what it can run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

UP=$CACHE/upstream
# what the guest loads from the package, in this order
MODULES="virt/lib/irqbypass drivers/vfio/vfio drivers/vfio/vfio_iommu_type1
	drivers/vfio/pci/vfio-pci-core drivers/vfio/pci/vfio-pci"

uapt() { trixie_apt "$UP/apt" "$@"; }

# kernel_ok: the kernel is there (and is the pinned one)
kernel_ok() {
	[ -f "$UP/kernel/ABI" ] &&
		{ [ -z "${UPSTREAM_PIN:-}" ] || [ "$(cat "$UP/kernel/ABI")" = "$UPSTREAM_PIN" ]; }
}

fetch() {
	local t0=$SECONDS abi have d=$UP/kernel.tmp f
	log "oracle: fetching Debian's upstream kernel from $TRIXIE_SUITE (once)"
	trixie_apt_setup "$UP/apt"
	have=$(uapt apt-cache pkgnames linux-binary- |
		sed -n 's/^linux-binary-\([0-9.]*+deb[0-9]*\)-amd64$/\1/p' | version_sort)
	if [ -n "${UPSTREAM_PIN:-}" ]; then
		abi=$UPSTREAM_PIN
	else
		# the kernel trixie-backports' meta-package depends on
		abi=$(uapt apt-cache show "linux-image-amd64/$TRIXIE_SUITE" |
			sed -n 's/^Depends: .*linux-image-\([0-9.]*+deb[0-9]*\)-amd64.*/\1/p' |
			version_sort | tail -n 1)
	fi
	[ -n "$abi" ] && has -xF -- "$abi" <<<"$have" ||
		die "oracle: no upstream kernel '${abi:-?}' in $TRIXIE_SUITE, which has:" $have
	rm -rf "$d" && mkdir -p "$d/debs"
	(cd "$d/debs" && uapt apt-get download -q "linux-binary-$abi-amd64" \
		"linux-modules-$abi-amd64" > /dev/null) ||
		die "oracle: apt-get download of the $abi kernel failed"
	mkdir "$d/x"
	for f in "$d"/debs/*.deb; do
		dpkg-deb -x "$f" "$d/x"
	done
	mkdir "$d/modules"
	cp "$d/x/usr/lib/modules/$abi-amd64/vmlinuz" "$d/bzImage"
	for f in $MODULES; do
		xz -dc "$d/x/usr/lib/modules/$abi-amd64/kernel/$f.ko.xz" > "$d/modules/${f##*/}.ko"
	done
	echo "$(for f in $MODULES; do echo "${f##*/}"; done)" | paste -sd' ' > "$d/modules/load"
	for f in "$d"/debs/*.deb; do
		dpkg-deb -f "$f" Package Version | paste -sd' '
	done > "$d/PACKAGES"
	rm -rf "$d/x" "$d/debs" "$UP/apt"
	echo "$abi" > "$d/ABI"
	rm -rf "$UP/kernel" && mv "$d" "$UP/kernel"
	log "oracle: Linux $abi-amd64 ($(sed 's/Package: //; s/ Version: / /' \
		"$UP/kernel/PACKAGES" | paste -sd,)) in $UP/kernel, fetched in $((SECONDS - t0)) s"
}

# artifacts TEST_ARTIFACTS: the guest's artifacts for the upstream kernel
artifacts() {
	local test=$1 art=$UP/artifacts
	kernel_ok || fetch
	rm -rf "$art.new" && mkdir -p "$art.new/tests"
	cp -r "$UP/kernel/modules" "$art.new/"
	cp "$UP/kernel/bzImage" "$art.new/"
	cp "$test/tests/vfio_dmabuf_uapi" "$art.new/tests/"
	pack_initramfs "$art.new/initramfs" "$art.new"
	rm -rf "$art" && mv "$art.new" "$art"
	echo "$art"
}

case "${1:-}" in
present) kernel_ok ;;
fetch) kernel_ok || fetch ;;
artifacts) artifacts "${2:?usage: oracle.sh artifacts TEST_ARTIFACTS}" ;;
*)
	sed -n '3,21p' "$0" | sed 's/^# \{0,1\}//'
	exit 2 ;;
esac
