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
# A fragment may start from others ("# base: NAME" for configs/NAME.config,
# or a path relative to it), which may have bases of their own; its own
# lines win.
with_bases() {
	local b
	for b in $(sed -n 's/^# base: //p' "$1"); do
		case $b in
		*/*) with_bases "$(dirname "$1")/$b" ;;
		*) with_bases "$SELFTEST_DIR/configs/$b.config" ;;
		esac
	done
	cat "$1"
}
merged=$CACHE/build-$cfg.fragment
mkdir -p "$CACHE"
with_bases "$frag" > "$merged"
frag=$merged
TREE=$("$SELFTEST_DIR/scripts/tree.sh")
OUT=$CACHE/build-$cfg
mkdir -p "$OUT"
mapfile -t MV < <(kmake_vars)
kmake() { make -s -C "$TREE" O="$OUT" "${MV[@]}" -j"$JOBS" "$@"; }

stamp=$( (cat "$frag"; cat "$TREE/.harness-series"
	find "$TREE/drivers/vfio/pci" -name Kconfig -exec cat {} +) | sha1sum | cut -c1-40)
if [ "$(cat "$OUT/.harness-config" 2>/dev/null)" != "$stamp" ]; then
	log "configuring $cfg"
	kmake KCONFIG_ALLCONFIG="$frag" allnoconfig >/dev/null
	bad=0
	declare -A want=()
	while read -r line; do
		case "$line" in
		CONFIG_*=*) want[${line%%=*}]=$line ;;
		"# CONFIG_"*" is not set") sym=${line#\# }; want[${sym%% *}]="" ;;
		esac
	done < "$frag"
	for sym in "${!want[@]}"; do
		got=$(grep -E "^$sym=" "$OUT/.config" || true)
		if [ "$got" != "${want[$sym]}" ]; then
			log "config $cfg: wanted '${want[$sym]:-$sym off}', got '${got:-off}'"
			bad=1
		fi
	done
	[ $bad = 0 ] || die "config fragment $cfg does not apply"
	echo "$stamp" > "$OUT/.harness-config"
fi
# Quiet, but a long build says how far it is once a minute: the objects
# built so far (kbuild's "  CC  path" lines); anything else make prints
# (warnings, errors) passes through.
progress() {
	local n=0 t0=$SECONDS last=$SECONDS line
	while IFS= read -r line; do
		if [[ $line =~ ^\ \ [A-Z][A-Z0-9_\ ]{0,10}\ [^\ ] ]]; then
			n=$((n + 1))
		else
			printf '%s\n' "$line" >&2
		fi
		if ((SECONDS - last >= 60)); then
			log "building $cfg: $n build steps done, $((SECONDS - t0)) s"
			last=$SECONDS
		fi
	done
	log "building $cfg: $n build steps, $((SECONDS - t0)) s"
}
log "building $cfg ${*:-(all)}"
make -C "$TREE" O="$OUT" "${MV[@]}" -j"$JOBS" --no-print-directory "$@" 2>&1 | progress
