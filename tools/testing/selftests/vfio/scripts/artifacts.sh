#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# artifacts.sh CONFIG: build what the guests run -- the kernel (build.sh),
# the UAPI headers, the test importer module, the selftests -- and pack the
# busybox initramfs.  Prints the artifacts directory.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cfg=${1:?usage: artifacts.sh CONFIG}
"$SELFTEST_DIR/scripts/build.sh" "$cfg" >&2
TREE=$("$SELFTEST_DIR/scripts/tree.sh")
OUT=$CACHE/build-$cfg
ART=$CACHE/artifacts-$cfg
mapfile -t MV < <(kmake_vars)
rm -rf "$ART.new" && mkdir -p "$ART.new/modules" "$ART.new/tests"

make -s -C "$OUT" "${MV[@]}" headers_install >&2
log "building the test importer and the selftests"
imp=$TREE/tools/testing/selftests/vfio/dmabuf_importer
make -s -C "$OUT" "${MV[@]}" M="$imp" modules >&2
cp "$imp/vfio_dmabuf_importer.ko" "$ART.new/modules/"
for m in virt/lib/irqbypass drivers/vfio/pci/vfio-pci-core drivers/vfio/pci/vfio-pci; do
	cp "$OUT/$m.ko" "$ART.new/modules/"
done
# what the guest loads, in this order (guest/run_guest_tests.sh)
echo irqbypass vfio-pci-core vfio-pci vfio_dmabuf_importer > "$ART.new/modules/load"
# lockups on demand for scripts/inject.sh (test config only)
[ ! -f "$OUT/lib/test_lockup.ko" ] || cp "$OUT/lib/test_lockup.ko" "$ART.new/modules/"
# The module is built above with the kernel's toolchain: not again here.
make -s -C "$TREE/tools/testing/selftests/vfio" OUTPUT="$ART.new/tests" \
	KHDR_INCLUDES="-isystem $OUT/usr/include" CC=gcc LLVM= TEST_GEN_MODS_DIR= >&2
rm -f "$ART.new/tests"/*.o
# The QEMU client test (a script) and QEMU 11's root, fetched once
# (qemu_client.sh): vm.sh boots the guest that runs it from
# initramfs-qemu11.cpio.gz, the initramfs with the root appended as /qemu11.
cp "$SELFTEST_DIR/guest/vfio_dmabuf_qemu.sh" "$ART.new/tests/vfio_dmabuf_qemu"
qemu11=$("$SELFTEST_DIR/scripts/qemu_client.sh" cpio)

log "packing the initramfs"
pack_initramfs "$ART.new/initramfs" "$ART.new"
cat "$ART.new/initramfs.cpio.gz" "$qemu11" > "$ART.new/initramfs-qemu11.cpio.gz"
cp "$OUT/arch/x86/boot/bzImage" "$ART.new/"
rm -rf "$ART" && mv "$ART.new" "$ART"
echo "$ART"
