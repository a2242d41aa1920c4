#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# build.sh CONFIG [make targets...]
# Configure (when the fragment changed) and build the integration tree out of
# tree in $CACHE/build-CONFIG.  CONFIG names a fragment in configs/ (applied on
# top of allnoconfig); every symbol the fragment sets is checked afterwards, so
# a dependency that silently dropped an option stops the build.
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

stamp=$( (cat "$frag"; cat "$TREE/.harness-series"
	find "$TREE/drivers/vfio/pci" -name Kconfig -exec cat {} +) | sha1sum | cut -c1-40)
if [ "$(cat "$OUT/.harness-config" 2>/dev/null)" != "$stamp" ]; then
	log "configuring $cfg"
	kconfig_apply "$TREE" "$OUT" "$frag" || die "config fragment $cfg does not apply"
	echo "$stamp" > "$OUT/.harness-config"
fi
log "building $cfg ${*:-(all)}"
make -C "$TREE" O="$OUT" "${MV[@]}" -j"$JOBS" --no-print-directory "$@" 2>&1 |
	kbuild_progress "building $cfg"
