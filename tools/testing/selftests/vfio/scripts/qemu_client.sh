#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# qemu_client.sh [root|cpio|present]: the exporter's real client, Debian's
# QEMU 11 (qemu-system-x86 from trixie-backports), which hands each BAR's
# dma-buf to iommufd (IOMMU_IOAS_MAP_FILE).  guest/vfio_dmabuf_qemu.sh runs
# it inside the rootport-iommu guest.
#
#   root  (default) fetch it once into $CACHE/qemu11/ and print the root:
#         qemu-system-x86_64, the shared libraries it needs, SeaBIOS, and
#         ./qemu, which runs it through trixie's own loader (it needs glibc
#         >= 2.38: bookworm has 2.36, the busybox guest has none)
#   cpio  print a gzip'd cpio of that root as /qemu11 (artifacts.sh appends
#         it to a copy of the guest's initramfs)
#   present  succeed when the root is there (no fetch, no output)
#
# apt runs as lib.sh's trixie_apt_setup says, under $CACHE/qemu11/apt.
# The dependency closure (apt-get install --print-uris
# against the empty status) is downloaded with apt-get download into
# $CACHE/qemu11/debs, unpacked with dpkg-deb -x, and what QEMU does not load
# is left out of the root.  Once the root is there, a call does no network
# access.  QEMU_CLIENT_PIN=VERSION takes that version of qemu-system-x86
# instead of trixie-backports' newest (a version the lists lack is an
# error naming the ones they have); a root of another version is replaced.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

QC=$CACHE/qemu11
ROOT=$QC/qemu11
# The root's layout; a change here rebuilds the root from the kept .debs.
LAYOUT=2
MULTIARCH=usr/lib/x86_64-linux-gnu

qapt() { trixie_apt "$QC/apt" "$@"; }

# fetch: the .debs of qemu-system-x86's dependency closure into $QC/debs
# (its file "closure" lists them), from the lists of a fresh apt update.
fetch() {
	local t0=$SECONDS want versions d=$QC/debs.tmp
	log "QEMU client: fetching Debian's qemu-system-x86 from $TRIXIE_SUITE (once)"
	trixie_apt_setup "$QC/apt"
	versions=$(qapt apt-cache madison qemu-system-x86 |
		awk -F'|' '{ gsub(/ /, "", $2); print $2 }')
	if [ -n "${QEMU_CLIENT_PIN:-}" ]; then
		grep -qxF -- "$QEMU_CLIENT_PIN" <<<"$versions" ||
			die "qemu-system-x86 $QEMU_CLIENT_PIN is not in $TRIXIE_SUITE or trixie," \
			    "which have:" $versions
		want=qemu-system-x86=$QEMU_CLIENT_PIN
	else
		want=qemu-system-x86/$TRIXIE_SUITE
	fi
	rm -rf "$d" && mkdir -p "$d"
	# The closure against an empty dpkg status, the Recommends left out;
	# $TRIXIE_SUITE first, as Debian says to install from backports.
	qapt apt-get install -qq --print-uris --no-install-recommends -t "$TRIXIE_SUITE" "$want" \
		> "$d/uris" || die "apt cannot resolve $want from $TRIXIE_SUITE and trixie"
	# 'URI' name_version_arch.deb size hash: name=version (the version's
	# epoch colon is %3a in the file name)
	awk '{ f = $2; sub(/\.deb$/, "", f); split(f, p, "_"); v = p[2];
		gsub(/%3a/, ":", v); print p[1] "=" v }' "$d/uris" > "$d/closure"
	[ -s "$d/closure" ] || die "empty dependency closure for $want"
	(cd "$d" && qapt apt-get download -q $(cat closure) > /dev/null) ||
		die "apt-get download of qemu-system-x86's closure failed"
	rm -rf "$QC/debs" && mv "$d" "$QC/debs"
	# the lists (about 140 MB) are needed no more
	rm -rf "$QC/apt"
	log "QEMU client: $(wc -l < "$QC/debs/closure") packages," \
	    "$(du -sm "$QC/debs" | cut -f1) MB, fetched in $((SECONDS - t0)) s"
}

# needed ELF...: the sonames the files need (DT_NEEDED), one a line.
needed() {
	readelf -d "$@" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p' | sort -u
}

# build: the root from the .debs: qemu-system-x86_64, the shared libraries
# it needs (DT_NEEDED, transitively; QEMU loads none of its modules on our
# command line: TCG is built in), the loader, SeaBIOS, and ./qemu.
build() {
	local full=$QC/full.tmp new=$QC/qemu11.tmp f lib todo seen=" " version
	rm -rf "$full" "$new" && mkdir -p "$full" "$new/$MULTIARCH" \
		"$new/usr/bin" "$new/usr/share/qemu"
	for f in "$QC"/debs/*.deb; do
		dpkg-deb -x "$f" "$full"
	done
	cp "$full/usr/bin/qemu-system-x86_64" "$new/usr/bin/"
	cp -L "$full/$MULTIARCH/ld-linux-x86-64.so.2" "$new/$MULTIARCH/"
	todo=$(needed "$new/usr/bin/qemu-system-x86_64")
	while [ -n "$todo" ]; do
		f=$todo todo=""
		for lib in $f; do
			case $seen in *" $lib "*) continue ;; esac
			seen+="$lib "
			[ -e "$full/$MULTIARCH/$lib" ] ||
				die "QEMU client: $lib (a library QEMU needs) is in no" \
				    "package of the closure"
			cp -L "$full/$MULTIARCH/$lib" "$new/$MULTIARCH/$lib"
			todo+=" $(needed "$new/$MULTIARCH/$lib")"
		done
	done
	# The firmware: SeaBIOS (QEMU's q35 default) and the option ROM every
	# x86 machine loads (the APIC's), nothing else.
	cp -L "$full/usr/share/seabios/bios-256k.bin" \
		"$full/usr/share/qemu/kvmvapic.bin" "$new/usr/share/qemu/"
	version=$(dpkg-deb -f "$(ls "$QC"/debs/qemu-system-x86_*.deb)" Version)
	for f in "$QC"/debs/*.deb; do
		dpkg-deb -f "$f" Package Version | paste -sd' '
	done | sed 's/^Package: \(.*\) Version: /\1 /' > "$new/PACKAGES"
	cat > "$new/qemu" <<-'EOF'
	#!/bin/sh
	# Debian's qemu-system-x86_64, through its own loader and libraries
	r=$(cd "$(dirname "$0")" && pwd)
	exec "$r/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \
		--library-path "$r/usr/lib/x86_64-linux-gnu" --argv0 qemu-system-x86_64 \
		"$r/usr/bin/qemu-system-x86_64" -L "$r/usr/share/qemu" "$@"
	EOF
	chmod +x "$new/qemu"
	rm -rf "$full"
	echo "$LAYOUT $version" > "$new/.harness-root"
	rm -rf "$ROOT" "$QC/qemu11.cpio.gz" && mv "$new" "$ROOT"
	log "QEMU client: qemu-system-x86 $version in $ROOT," \
	    "$(du -sm "$ROOT" | cut -f1) MB, $(ls "$ROOT/$MULTIARCH" | wc -l) libraries"
}

# root_ok: the root is there, of this layout and of the pinned version
root_ok() {
	local layout version
	[ -f "$ROOT/.harness-root" ] || return 1
	read -r layout version < "$ROOT/.harness-root"
	[ "$layout" = "$LAYOUT" ] || return 1
	[ -z "${QEMU_CLIENT_PIN:-}" ] || [ "$version" = "$QEMU_CLIENT_PIN" ]
}

root() {
	root_ok && return 0
	mkdir -p "$QC"
	local v=""
	[ ! -f "$QC/debs/closure" ] ||
		v=$(sed -n 's/^qemu-system-x86=//p' "$QC/debs/closure")
	if [ -z "$v" ] || { [ -n "${QEMU_CLIENT_PIN:-}" ] && [ "$v" != "$QEMU_CLIENT_PIN" ]; }; then
		fetch
	fi
	build
	root_ok || die "QEMU client: the root in $ROOT is not what was asked for"
}

case "${1:-root}" in
present)
	root_ok ;;
root)
	root
	echo "$ROOT" ;;
cpio)
	root
	if ! [ -f "$QC/qemu11.cpio.gz" ]; then
		(cd "$QC" && find qemu11 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet |
			gzip -1) > "$QC/qemu11.cpio.gz.tmp"
		mv "$QC/qemu11.cpio.gz.tmp" "$QC/qemu11.cpio.gz"
	fi
	echo "$QC/qemu11.cpio.gz" ;;
*)
	sed -n '3,14p' "$0" | sed 's/^# \{0,1\}//'
	exit 2 ;;
esac
