#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# bisect.sh: builds the kernel after each patch of the series, in order, so
# that every patch builds on its own (git bisect can stop anywhere).  The
# config is the benchmark guest's (configs/bench.config: the feature on, no
# debug options); a symbol a patch does not define yet (CONFIG_VFIO_PCI_DMABUF
# before its Kconfig patch) is left out until it is.  Warnings fail a patch
# as errors do.  Prints one line per patch.
#
# The builds are incremental, in $CACHE/bisect/<the base's name>/: one work
# tree of the integration tree's repository (src/, a git worktree) checked
# out at each patch in turn, one build directory (build/).  A tree state
# that built before with the same config is not built again (checked), so a
# run after an edit builds from the first patch it changed.
# Patches that change only Documentation/, MAINTAINERS or tools/ give the
# kernel build nothing new and are not built.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

TREE=$("$SELFTEST_DIR/scripts/tree.sh")
B=$(bisect_dir "$TREE")
WT=$B/src
OUT=$B/build
mapfile -t MV < <(kmake_vars)
git() { command git -c advice.detachedHead=false "$@"; }

if [ "$(cat "$B/tree" 2>/dev/null)" != "$TREE" ]; then
	git -C "$TREE" worktree remove --force "$WT" 2>/dev/null || true
	rm -rf "$B" && mkdir -p "$B"
	git -C "$TREE" worktree prune
	log "bisect: checking out a work tree of $TREE (once)"
	ticking "checking out $WT" git -C "$TREE" worktree add -q --detach "$WT" harness-base
	echo "$TREE" > "$B/tree"
fi
mkdir -p "$OUT"
config_fragment "$SELFTEST_DIR/configs/bench.config" > "$B/fragment"
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
	config_id=$( { echo "${state#* }"
		git -C "$WT" ls-tree -r HEAD | awk '$4 ~ /(^|\/)Kconfig[^\/]*$/ { print $3 }'
	} | sha1sum | cut -c1-40)
	if [ "$(cat "$OUT/.harness-config" 2>/dev/null)" != "$config_id" ]; then
		if ! kconfig_apply "$WT" "$OUT" "$B/fragment" --defined; then
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
