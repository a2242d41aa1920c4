#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Prepare the integration kernel tree in the cache and print its path:
#   1. a pristine base (Debian's linux-source-6.12, the installed one or
#      $BASE_PIN's, or $KDIR; see lib.sh), committed in git;
#   2. the whole feature as series.sh writes it from the repository (the
#      patches of patches/, then the crate, the shim, Kbuild, documentation
#      and selftests) applied with git am -- what is tested is what is
#      shipped.  Re-applied from the pristine base whenever the repository
#      changes; files whose content stayed keep their mtime, so an edit in
#      the clone rebuilds only what it touches.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

GIT=(git -c user.name=harness -c user.email=harness@localhost -c commit.gpgsign=false)

if [ -n "${KDIR:-}" ]; then
	[ -f "$KDIR/Makefile" ] || die "KDIR=$KDIR is not a kernel tree"
	ver=$(make -s -C "$KDIR" kernelversion)
	key=kdir-$ver-$(printf '%s' "$(realpath "$KDIR")" | sha1sum | cut -c1-8)
else
	if [ -n "$BASE_PIN" ]; then
		ver=$(archive_versions | base_pick "$BASE_PIN") || die "BASE_PIN=$BASE_PIN"
	else
		ver=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null) ||
			die "linux-source-6.12 is not installed (run scripts/setup.sh)"
	fi
	tarball=$(base_tarball "$ver")
	key=linux-${ver%%~*}
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

# The tree is the base plus the whole series, as series.sh writes it from
# the repository (git am, re-applied from the pristine base whenever its
# inputs change).  Files whose content the new series leaves as it was get
# their old mtime back, so that an edit rebuilds only what it touches.
series_id=$(find "$REPO/patches" \( -name "*.patch" -o -name "*.diff" \) -print0 | sort -z |
	xargs -0 -r cat | sha1sum | cut -c1-40)
cd "$REPO"
tree_id=$( {
	echo "$series_id"
	ls ./*.c ./*.h ./*.rs ./vfio_pci_core_glue/*.rs 2>/dev/null
	git ls-files --cached --others --exclude-standard Documentation \
		tools/testing/selftests/vfio
} | while read -r f; do
	[ -f "$f" ] && { echo "$f"; cat "$f"; } || echo "$f"
done | sha1sum | cut -c1-40)
if [ "$(cat "$TREE/.harness-tree" 2>/dev/null)" != "$tree_id" ]; then
	log "applying the series to $TREE"
	series=$TREE.series
	SERIES_BASE_TREE=$TREE "$SELFTEST_DIR/scripts/series.sh" --quick "$series" ||
		die "cannot write the series"
	cd "$TREE"
	# Content and mtime of every file the old series wrote; kept until the
	# new series is in, so that a run that dies half-way leaves them for
	# the next one.
	stamps=$TREE/.harness-stamps
	if ! [ -f "$stamps" ]; then
		{ "${GIT[@]}" diff --name-only harness-base --; "${GIT[@]}" ls-files --others; } |
			while read -r f; do
				if [ -f "$f" ]; then
					echo "$(sha1sum < "$f" | cut -c1-40) $(stat -c %Y "$f") $f"
				fi
			done > "$stamps.tmp"
		mv "$stamps.tmp" "$stamps"
	fi
	"${GIT[@]}" am --abort >/dev/null 2>&1 || true
	"${GIT[@]}" reset -q --hard harness-base
	"${GIT[@]}" clean -q -fd -e '.harness-*'
	# The files the series creates may be there from the last one, ignored
	# (Debian's .gitignore ignores the whole tree): they go, while build
	# products (the test importer's, in the source tree) stay.
	sed -n 's/^ create mode [0-7]* //p' "$series"/*.patch | while read -r f; do
		rm -f "$f"
	done
	"${GIT[@]}" am -q --keep-cr $(ls "$series"/*.patch | grep -v /0000-cover-letter) \
			> "$TREE/.harness-am.log" 2>&1 || {
		sed 's/^/    /' "$TREE/.harness-am.log" >&2
		"${GIT[@]}" am --abort >/dev/null 2>&1 || true
		die "the series does not apply to $TREE (above)"
	}
	while read -r sum mtime f; do
		if [ -f "$f" ] && [ "$(sha1sum < "$f" | cut -c1-40)" = "$sum" ]; then
			touch -d "@$mtime" "$f"
		fi
	done < "$stamps"
	rm -f "$stamps"
	echo "$series_id" > "$TREE/.harness-series"
	echo "$tree_id" > "$TREE/.harness-tree"
fi
echo "$TREE"
