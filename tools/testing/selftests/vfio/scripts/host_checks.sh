#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Checks that need no guest, one result line each ("ok NAME" / "not ok
# NAME", with the failing output as "# " lines):
#   - cargo test of the pure range/segment logic (unit and property tests);
#   - rustfmt --check and clippy (warnings are errors) of the kernel crate;
#   - checkpatch --strict of our C and of the patch series;
#   - the whole feature as one series (series.sh) applies to the base and
#     every patch of it passes checkpatch --strict;
#   - the kernel builds after each patch of it (bisect.sh);
#   - the series applies and passes checkpatch on a second base (the
#     neighbouring 6.12.y of the archive); the feature's Kconfig and Makefile
#     lines apply to a base that changed those files; the base version
#     logic; no pipeline that stops reading early;
#   - the UAPI fragment in uapi/ is what the series adds to vfio.h;
#   - the documentation page is valid reStructuredText (docutils);
#   - with CONFIG_VFIO_PCI_DMABUF and CONFIG_RUST off, drivers/vfio/ and
#     iommufd build.
# Expects the test config to be built (artifacts.sh) already.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

TREE=$("$SELFTEST_DIR/scripts/tree.sh") || exit 1
mapfile -t MV < <(kmake_vars)

check() {	# check [--show] NAME COMMAND...; --show: the output also when ok
	local show=0 name out
	[ "$1" != --show ] || { show=1; shift; }
	name=$1
	shift
	if out=$("$@" 2>&1); then
		echo "ok host: $name"
		[ $show = 0 ] || printf '%s\n' "$out" | sed 's/^/# /'
	else
		echo "not ok host: $name"
		printf '%s\n' "$out" | tail -n 40 | sed 's/^/# /'
	fi
}

# Cargo's fingerprint of the range crates records their source by absolute
# path when it lies outside the package (vfio_pci_dmabuf_ranges.rs at the
# root): a build made from another checkout whose file still exists passes
# as fresh, and the tests run against that checkout's code (seen: a test of
# a new function failed to link).  Their fingerprints are dropped, so they
# are built from this checkout; the dependencies' stay.
rm -rf "$CACHE"/cargo-target/release/.fingerprint/vfio-pci-dmabuf-ranges-* \
	"$CACHE"/cargo-fuzz-target/*/release/.fingerprint/vfio-pci-dmabuf-ranges-*

cd "$REPO"
check "cargo test of vfio_pci_dmabuf_ranges.rs" \
	env CARGO_TARGET_DIR="$CACHE/cargo-target" /usr/bin/cargo test --locked --release -q \
	--manifest-path "$SELFTEST_DIR/ranges/Cargo.toml"
# libFuzzer through cargo fuzz; no sanitizer (safe Rust: a panic is the
# finding).  Long mode: FUZZ_ARGS="-max_total_time=3600".
check "cargo fuzz of vfio_pci_dmabuf_ranges.rs, ${FUZZ_RUNS:=1000000} runs" \
	env RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$CACHE/cargo-fuzz-target" \
	PATH="/usr/bin:$PATH" bash -c 'set -o pipefail; cd "$1" && "$2" run -s none --release \
	ranges -- -runs="$3" -max_len=4096 -seed=1 ${FUZZ_ARGS:-} 2>&1 | tail -n 5' _ \
	"$SELFTEST_DIR/ranges/fuzz" "$TOOLS/bin/cargo-fuzz" "$FUZZ_RUNS"
check "rustfmt" /usr/bin/rustfmt --check --edition 2021 \
	--config-path "$TREE/.rustfmt.toml" ./*.rs ./vfio_pci_core_glue/*.rs \
	"$SELFTEST_DIR"/ranges/tests/*.rs "$SELFTEST_DIR"/ranges/fuzz/fuzz_targets/*.rs
check "clippy, warnings as errors" \
	make -s -C "$CACHE/build-test" "${MV[@]}" CLIPPY=1 \
	KRUSTFLAGS=-Dwarnings drivers/vfio/pci/vfio_pci_dmabuf.o
check "checkpatch --strict of the C" \
	"$TREE/scripts/checkpatch.pl" --strict --no-tree -q -f \
	vfio_pci_dmabuf_shim.c vfio_pci_dmabuf.h
# User-space selftests use <stdint.h> types, which kernel types cannot replace.
check "checkpatch --strict of the selftests and the test importer" \
	"$TREE/scripts/checkpatch.pl" --strict --no-tree -q \
	--ignore PREFER_KERNEL_TYPES -f "$SELFTEST_DIR"/*.[ch] \
	"$SELFTEST_DIR"/dmabuf_importer/*.[ch]
# New files in directories MAINTAINERS already covers (rust/helpers/) are
# not reported, as series.sh does for each patch.
check "checkpatch --strict of the patch series" \
	bash -c 'cd "$1" && scripts/checkpatch.pl --strict -q "${@:2}"' _ \
	"$TREE" --ignore FILE_PATH_CHANGES "$REPO"/patches/*.patch
check "the whole series: git am on the base, checkpatch --strict of each patch" \
	"$SELFTEST_DIR/scripts/series.sh" "$CACHE/series"
# One line per patch; the build's progress goes to logs/bisect.txt (logs/*.log
# are guest consoles).
check --show "the series builds after each patch (the test kernel's config, warnings fail)" \
	bash -c '"$1" 2> "$2" || { tail -n 20 "$2"; exit 1; }' _ \
	"$SELFTEST_DIR/scripts/bisect.sh" "$CACHE/logs/bisect.txt"
# The second base: the neighbouring 6.12.y of the archive (the newest one
# older than the base, else the next newer one), fetched once into the cache;
# the series is written for it, applied with git am and checked there as on
# the base, so a base other than the one the series was made on is tested in
# every run.
if [ -n "${KDIR:-}" ]; then
	second=$(archive_versions | base_pick "")
else
	second=$(archive_versions | base_neighbour \
		"${BASE_PIN:-$(dpkg-query -W -f='${Version}' linux-source-6.12)}")
fi
second_base() {
	[ -n "$second" ] || { echo "no second linux-source-6.12 in the archive"; return 1; }
	env -u KDIR BASE_PIN="$second" "$SELFTEST_DIR/scripts/series.sh" "$CACHE/series-second"
}
check "the series on a second base, linux-source-6.12 ${second:-(none)}: git am, checkpatch" \
	second_base
# Kconfig and Makefile differ from 6.12.117's on a later 6.12.y: the
# feature's lines go where their context is and the base's changes stay; a
# change next to them is an error naming the file.
check "Kconfig and Makefile: the feature's lines apply to a base that changed those files" \
	bash -c '. "$1/scripts/lib.sh"; set -e
	d=$(mktemp -d); trap "rm -rf $d" EXIT
	P=drivers/vfio/pci
	mkdir -p "$d/base/$P"
	for f in Kconfig Makefile; do
		{ echo "# a 6.12.y change"; git -C "$2" show "harness-base:$P/$f"
		  echo "# another"; } > "$d/base/$P/$f"
	done
	cp -r "$d/base" "$d/new"
	kbuild_apply "$d/new"
	diff -r "$d/base" "$d/new" | sed -n "s/^> //p" > "$d/added" || true
	diff -u <(sed -n "s/^+\([^+]\)/\1/p;s/^+\$//p" "$KBUILD_DIFF") "$d/added"
	grep -qx "# a 6.12.y change" "$d/new/$P/Kconfig"
	sed -i "/^config VFIO_PCI\$/i # next to the feature" "$d/base/$P/Kconfig"
	if kbuild_apply "$d/base" 2> "$d/err"; then
		echo "applied next to a change"; exit 1
	fi
	grep -q "Kconfig" "$d/err"' _ "$SELFTEST_DIR" "$TREE"
# The base version setup.sh installs and tree.sh uses, for the archive's
# shapes: a pin it has (with newer ones), a pin it lacks, no pin.
check "the base version: pin present, pin absent, newer than pin, no pin; the second base" \
	bash -c '. "$1/scripts/lib.sh"; set -e
	a="6.12.118-1~deb12u1
6.12.117-1~deb12u1
6.12.115-2~deb12u1
6.12.99-1~deb12u1"
	t() { [ "$1" = "$2" ] || { echo "got \"$1\", wanted \"$2\""; exit 1; }; }
	t "$(base_pick 6.12.115-2~deb12u1 <<<"$a")" 6.12.115-2~deb12u1
	t "$(base_pick 6.12.117-1~deb12u1 <<<"$(head -n 2 <<<"$a")")" 6.12.117-1~deb12u1
	if base_pick 6.12.116-1~deb12u1 <<<"$a" 2> /dev/null; then exit 1; fi
	t "$(base_pick "" <<<"$a")" 6.12.118-1~deb12u1
	t "$(base_pick "" <<<"6.12.119-1~deb12u1
$a")" 6.12.119-1~deb12u1
	t "$(base_neighbour 6.12.118-1~deb12u1 <<<"$a")" 6.12.117-1~deb12u1
	t "$(base_neighbour 6.12.99-1~deb12u1 <<<"$a")" 6.12.115-2~deb12u1
	t "$(base_neighbour 6.12.120-1 <<<"$a")" 6.12.118-1~deb12u1
	if base_neighbour 6.12.99-1 <<<6.12.99-1 2> /dev/null; then exit 1; fi' _ "$SELFTEST_DIR"
# grep -q and head stop reading at their first line; the writer then dies
# of SIGPIPE and, under pipefail, the pipeline fails (the cause of a base
# that was not picked although the archive had it).  No harness script
# pipes into them: lib.sh has has().
check "no pipeline in the harness ends in a reader that stops early (grep -q, head)" \
	bash -c 'r="(head|grep[[:space:]]+-[a-zA-Z]*[qm][a-zA-Z]*)([[:space:]]|\$)"
		p="(^|[^|])\|[[:space:]]*"
		! grep -nE -A1 "$p(\$|$r)" "$1"/run.sh "$1"/scripts/*.sh \
			"$1"/guest/*.sh "$2"/.ci/run |
		grep -E "($p|^[^:]*-[0-9]+-[[:space:]]*)$r"' _ "$SELFTEST_DIR" "$REPO"
check "uapi/ matches the UAPI patch" bash -c '
	added=$(sed -n "/^+++ b\/include\/uapi\/linux\/vfio.h/,/^-- *\$/p" patches/*.patch |
		grep "^+" | grep -v "^+++" | cut -c2- | sed "1{/^\$/d}")
	diff -u uapi/vfio_device_feature_dma_buf.h <(printf "%s\n" "$added")'
# Sphinx-only roles and directives are not used on the page, so plain
# docutils parses it the way Sphinx would; warnings fail.
check "Documentation/driver-api/vfio-pci-dmabuf.rst parses without warnings" \
	/usr/bin/python3 -c 'import sys, docutils.core
docutils.core.publish_doctree(open(sys.argv[1]).read(), source_path=sys.argv[1],
	settings_overrides={"report_level": 2, "halt_level": 2})' \
	Documentation/driver-api/vfio-pci-dmabuf.rst
check "drivers/vfio/ and iommufd build with CONFIG_VFIO_PCI_DMABUF=n, CONFIG_RUST=n" \
	"$SELFTEST_DIR/scripts/build.sh" off drivers/vfio/ drivers/iommu/iommufd/
