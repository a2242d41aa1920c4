#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# bisect.sh: builds the kernel after each patch of the series, in order, so
# that every patch builds on its own (git bisect can stop anywhere).  The
# config is the test kernel's (configs/test.config: the feature on, the
# debug options); a symbol a patch does not define yet
# (CONFIG_VFIO_PCI_DMABUF before its Kconfig patch) is left out until it
# is.  Warnings fail a patch as errors do.  Prints one line per patch.
#
# The builds are incremental and are the test kernel's: one work tree of
# the integration tree's repository (bisect_worktree, in $CACHE/bisect/<the
# base's name>/src) checked out at each patch in turn, built into
# $CACHE/build-test, where build.sh then builds the series' head -- the last
# of these states -- for the guests.  So a fresh machine builds the kernel
# once, from the first patch on, not once per config.  A tree state that
# built before with the same config is not built again (checked), so a run
# after an edit builds from the first patch it changed.  Patches that change
# only Documentation/, MAINTAINERS or tools/ give the kernel build nothing
# new and are not built.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

TREE=$("$SELFTEST_DIR/scripts/tree.sh")
WT=$(bisect_worktree "$TREE")
B=$(bisect_dir "$TREE")
OUT=$CACHE/build-$WALK_CONFIG
FRAG=$CACHE/build-$WALK_CONFIG.fragment
mapfile -t MV < <(kmake_vars)
git() { command git -c advice.detachedHead=false "$@"; }

# the benchmark config's build directory of earlier versions of this script
rm -rf "$B/build"
mkdir -p "$OUT"
config_fragment "$SELFTEST_DIR/configs/$WALK_CONFIG.config" > "$FRAG"
touch "$B/checked"

mapfile -t commits < <(git -C "$TREE" rev-list --reverse harness-base..HEAD)
n=${#commits[@]}
i=0 bad=0
for c in "${commits[@]}"; do
	i=$((i + 1))
	what=$(printf '%2d/%d %s' "$i" "$n" "$(git -C "$TREE" log -1 --format=%s "$c")")
	if ! builds_kernel "$TREE" "$c"; then
		echo "$what: not built (changes only Documentation/, MAINTAINERS, tools/)"
		continue
	fi
	state=$(bisect_state "$TREE" "$c")
	if grep -qxF "$state" "$B/checked"; then
		echo "$what: builds (this tree state built before)"
		continue
	fi
	git -C "$WT" checkout -q --detach "$c"
	# Kconfig files or the fragment changed: configure again.
	config_id=$(config_stamp "$WT" "$FRAG")
	if [ "$(cat "$OUT/.harness-config" 2>/dev/null)" != "$config_id" ]; then
		if ! kconfig_apply "$WT" "$OUT" "$FRAG" --defined; then
			echo "$what: FAILS: the config fragment does not apply"
			bad=1
			break
		fi
		echo "$config_id" > "$OUT/.harness-config"
	fi
	t0=$SECONDS
	rc=0
	make -C "$WT" O="$OUT" "${MV[@]}" -j"$JOBS" --no-print-directory 2>&1 |
		tee "$B/log" | kbuild_progress "bisect $i/$n" || rc=$?
	steps=$(grep -cE "$KBUILD_STEP" "$B/log" || true)
	if [ $rc != 0 ] || grep -q 'warning:\|error:' "$B/log"; then
		echo "$what: FAILS ($steps build steps, $((SECONDS - t0)) s):"
		grep -vE "$KBUILD_STEP" "$B/log" | tail -n 30 | sed 's/^/    /'
		bad=1
		break
	fi
	on=$(grep -q '^CONFIG_VFIO_PCI_DMABUF=y' "$OUT/.config" && echo ", the feature on" || true)
	echo "$what: builds ($steps build steps, $((SECONDS - t0)) s$on)"
	echo "$state" >> "$B/checked"
done
exit $bad
