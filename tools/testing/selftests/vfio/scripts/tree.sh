#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Prepare the integration kernel tree in the cache and print its path:
#   1. a pristine base (Debian's linux-source-6.12, or $KDIR), committed in git;
#   2. patches/*.patch applied with git am (re-applied from pristine whenever
#      the series changes);
#   3. the repository's own files (Kbuild fragments, sources, documentation)
#      copied into drivers/vfio/pci/ -- only files whose content changed are
#      written, so an edit in the clone rebuilds only what it touches.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

GIT=(git -c user.name=harness -c user.email=harness@localhost -c commit.gpgsign=false)

if [ -n "${KDIR:-}" ]; then
	[ -f "$KDIR/Makefile" ] || die "KDIR=$KDIR is not a kernel tree"
	ver=$(make -s -C "$KDIR" kernelversion)
	key=kdir-$ver-$(printf '%s' "$(realpath "$KDIR")" | sha1sum | cut -c1-8)
else
	tarball=$(ls /usr/src/linux-source-6.12.tar.xz 2>/dev/null) ||
		die "linux-source-6.12 is not installed (run scripts/setup.sh)"
	ver=$(dpkg-query -W -f='${Version}' linux-source-6.12 | sed 's/[^0-9.].*//')
	key=linux-$ver
fi
TREE=$CACHE/src/$key

if ! [ -f "$TREE/.harness-base" ]; then
	log "creating pristine base $TREE (once)"
	rm -rf "$TREE.tmp" && mkdir -p "$TREE.tmp"
	if [ -n "${KDIR:-}" ]; then
		rsync -a --exclude=.git "$KDIR/" "$TREE.tmp/"
	else
		ticking "unpacking $tarball" tar -C "$TREE.tmp" --strip-components=1 -xf "$tarball"
	fi
	base_commit() (
		cd "$TREE.tmp" && "${GIT[@]}" init -q && "${GIT[@]}" add -A -f . &&
			"${GIT[@]}" commit -q -m "base: $key" && "${GIT[@]}" tag harness-base
	)
	ticking "committing the pristine base" base_commit
	touch "$TREE.tmp/.harness-base"
	rm -rf "$TREE" && mv "$TREE.tmp" "$TREE"
fi

series_id=$(find "$REPO/patches" -name "*.patch" -print0 | sort -z |
	xargs -0 -r cat | sha1sum | cut -c1-40)
if [ "$(cat "$TREE/.harness-series" 2>/dev/null)" != "$series_id" ]; then
	log "applying patch series to $TREE"
	cd "$TREE"
	# Files the old series and copies touched: remember their content and
	# mtime, so that those the new series leaves as they were get their
	# mtime back (below) and make rebuilds nothing.
	stamps=$(mktemp)
	{ "${GIT[@]}" diff --name-only harness-base --; "${GIT[@]}" ls-files --others; } |
		while read -r f; do
			if [ -f "$f" ]; then
				echo "$(sha1sum < "$f" | cut -c1-40) $(stat -c %Y "$f") $f"
			fi
		done > "$stamps"
	"${GIT[@]}" am --abort >/dev/null 2>&1 || true
	"${GIT[@]}" reset -q --hard harness-base
	"${GIT[@]}" clean -q -fd -e .harness-base
	for p in "$REPO"/patches/*.patch; do
		[ -e "$p" ] || continue
		"${GIT[@]}" am -q --keep-cr "$p" >/dev/null 2>&1 || {
			"${GIT[@]}" am --abort >/dev/null 2>&1 || true
			die "patch does not apply: patches/$(basename "$p")"
		}
	done
	echo "$series_id" > "$TREE/.harness-series"
fi

# Copy the repository's kernel files, writing only what differs.
place() {	# place SRC DST
	if ! cmp -s "$1" "$2"; then
		mkdir -p "$(dirname "$2")"
		cp "$1" "$2"
	fi
}
cd "$REPO"
for f in Kconfig Makefile *.c *.h *.rs; do
	[ -f "$f" ] && place "$f" "$TREE/drivers/vfio/pci/$f"
done
# Documentation and the selftests mirror their place in the tree.
git ls-files --cached --others --exclude-standard Documentation \
		tools/testing/selftests/vfio 2>/dev/null |
	while read -r f; do [ -f "$f" ] && place "$f" "$TREE/$f"; done
if [ -n "${stamps:-}" ]; then
	cd "$TREE"
	while read -r sum mtime f; do
		if [ -f "$f" ] && [ "$(sha1sum < "$f" | cut -c1-40)" = "$sum" ]; then
			touch -d "@$mtime" "$f"
		fi
	done < "$stamps"
	rm -f "$stamps"
fi
echo "$TREE"
