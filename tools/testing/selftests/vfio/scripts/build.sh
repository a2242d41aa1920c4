#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# build.sh CONFIG [make targets...]
# Configure (when the fragment or a Kconfig file changed) and build the
# integration tree out of tree in $CACHE/build-CONFIG.  CONFIG names a
# fragment in configs/ (applied on top of allnoconfig); every symbol the
# fragment sets is checked afterwards, so a dependency that silently dropped
# an option stops the build.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cfg=${1:?usage: build.sh CONFIG [targets]}; shift
frag=$SELFTEST_DIR/configs/$cfg.config
[ -f "$frag" ] || die "no config fragment $frag"
merged=$CACHE/build-$cfg.fragment
mkdir -p "$CACHE"
config_fragment "$frag" > "$merged"
frag=$merged
TREE=$("$SELFTEST_DIR/scripts/tree.sh")
OUT=$CACHE/build-$cfg
mkdir -p "$OUT"
mapfile -t MV < <(kmake_vars)

# The test kernel is built where bisect.sh builds the series patch by patch
# (its work tree, the same build directory): at the series' head it is the
# last of those states, so neither is built twice.
SRC=$TREE
if [ "$cfg" = "$WALK_CONFIG" ]; then
	SRC=$(bisect_worktree "$TREE")
	git -C "$SRC" -c advice.detachedHead=false checkout -q --detach \
		"$(git -C "$TREE" rev-parse HEAD)"
fi
stamp=$(config_stamp "$SRC" "$frag")
if [ "$(cat "$OUT/.harness-config" 2>/dev/null)" != "$stamp" ]; then
	log "configuring $cfg"
	kconfig_apply "$SRC" "$OUT" "$frag" || die "config fragment $cfg does not apply"
	echo "$stamp" > "$OUT/.harness-config"
fi
log "building $cfg ${*:-(all)}"
make -C "$SRC" O="$OUT" "${MV[@]}" -j"$JOBS" --no-print-directory "$@" 2>&1 |
	kbuild_progress "building $cfg"
