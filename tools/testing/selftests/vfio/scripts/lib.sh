# SPDX-License-Identifier: GPL-2.0
# Shared settings for the vfio dma-buf harness scripts.  Sourced, not run.

SELFTEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO=$(cd "$SELFTEST_DIR/../../../.." && pwd)

# Pinned base; the newest installed linux-source-6.12 is used when the pin is
# not available from the archive (with a message).
BASE_PIN=${BASE_PIN:-6.12.117-1~deb12u1}
BINDGEN_VERSION=0.73.2
CARGO_FUZZ_VERSION=0.13.2

# The repository keeps drivers/vfio/pci/Kconfig and Makefile whole: Linux
# $KBUILD_BASE's files with the feature's lines added (kbuild_merge).
KBUILD_BASE=6.12.117
KBUILD_FILES=(Kconfig Makefile)

CACHE=${VFIO_DMABUF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vfio-dmabuf}
TOOLS=$CACHE/tools

RUSTC=/usr/bin/rustc
RUST_LIB_SRC=/usr/src/rustc-1.96.0/library
BINDGEN=$TOOLS/bin/bindgen
JOBS=${JOBS:-$(nproc)}

log() { printf '[harness] %s\n' "$*" >&2; }
die() { printf '[harness] error: %s\n' "$*" >&2; exit 1; }

# ticking WHAT CMD...: runs CMD; a long step says it is still going, once a
# minute, instead of staying silent.
ticking() {
	local what=$1 t0=$SECONDS ticker rc=0
	shift
	( while sleep 60; do log "$what: still going, $((SECONDS - t0)) s"; done ) &
	ticker=$!
	"$@" || rc=$?
	kill "$ticker" 2>/dev/null || true
	wait "$ticker" 2>/dev/null || true
	return $rc
}

# Make variables that select the Debian Rust toolchain (rustup's comes first in
# PATH on these machines and has no rust-src).
kmake_vars() {
	printf '%s\n' LLVM=1 "RUSTC=$RUSTC" RUSTDOC=/usr/bin/rustdoc \
		"RUST_LIB_SRC=$RUST_LIB_SRC" "BINDGEN=$BINDGEN" \
		CLIPPY_DRIVER=/usr/bin/clippy-driver RUSTFMT=/usr/bin/rustfmt
}

# kbuild_originals: prints a directory with drivers/vfio/pci/Kconfig and
# Makefile as Linux $KBUILD_BASE has them (cached once), from the default
# base tree or from Debian's linux-source-6.12 of that version.
kbuild_originals() {
	local dir=$CACHE/kbuild-base/$KBUILD_BASE t=$CACHE/src/linux-$KBUILD_BASE f
	local tarball=/usr/src/linux-source-6.12.tar.xz
	if ! [ -f "$dir/Makefile" ]; then
		rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
		if [ -f "$t/.harness-base" ]; then
			for f in "${KBUILD_FILES[@]}"; do
				git -C "$t" show "harness-base:drivers/vfio/pci/$f" > "$dir.tmp/$f"
			done
		elif dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null |
				grep -q "^$KBUILD_BASE-"; then
			tar -C "$dir.tmp" --strip-components=4 -xf "$tarball" --wildcards \
				'*/drivers/vfio/pci/Kconfig' '*/drivers/vfio/pci/Makefile'
		else
			die "need Linux $KBUILD_BASE's drivers/vfio/pci/Kconfig and Makefile:" \
			    "install linux-source-6.12=$BASE_PIN"
		fi
		mv "$dir.tmp" "$dir"
	fi
	echo "$dir"
}

# kbuild_merge NAME BASE_FILE OUT: writes to OUT the repository's
# drivers/vfio/pci/NAME for a base tree whose NAME is BASE_FILE: the
# repository's file where the base has Linux $KBUILD_BASE's, else the
# feature's lines merged into the base's file (three-way, as git does), so
# that what a newer 6.12.y changed there stays.  A conflict is an error.
kbuild_merge() {
	local name=$1 base=$2 out=$3 orig
	orig=$(kbuild_originals)/$name
	cp "$REPO/$name" "$out"
	cmp -s "$orig" "$base" && return 0
	git merge-file -q -L repository -L "Linux $KBUILD_BASE" -L base \
		"$out" "$orig" "$base" ||
		die "drivers/vfio/pci/$name: the feature's lines do not merge" \
		    "into the base's file (see the conflicts in $out)"
}

# config_fragment FILE: prints a config fragment with the fragments it starts
# from ("# base: NAME" for configs/NAME.config, or a path relative to it),
# which may have bases of their own, first; its own lines win.
config_fragment() {
	local b
	for b in $(sed -n 's/^# base: //p' "$1"); do
		case $b in
		*/*) config_fragment "$(dirname "$1")/$b" ;;
		*) config_fragment "$SELFTEST_DIR/configs/$b.config" ;;
		esac
	done
	cat "$1"
}

# kconfig_apply TREE OUT FRAGMENT [--defined]: configures OUT as allnoconfig
# with FRAGMENT on top, then checks every symbol the fragment sets, so that a
# dependency that silently dropped an option fails (says which, returns 1).
# With --defined, symbols the tree does not define (yet) are left out.
kconfig_apply() {
	local tree=$1 out=$2 frag=$3 defined=${4:-} line sym got bad=0
	local -A want=()
	make -s -C "$tree" O="$out" $(kmake_vars) KCONFIG_ALLCONFIG="$frag" \
		allnoconfig > /dev/null || return 1
	while read -r line; do
		case "$line" in
		CONFIG_*=*) want[${line%%=*}]=$line ;;
		"# CONFIG_"*" is not set") sym=${line#\# }; want[${sym%% *}]="" ;;
		esac
	done < "$frag"
	local -A known=()
	if [ -n "$defined" ]; then
		while read -r sym; do known[CONFIG_$sym]=1; done < <(grep -rhsE \
			--include='Kconfig*' '^[[:space:]]*(menu)?config[[:space:]]+[A-Z0-9_]+' \
			"$tree" | awk '{ print $2 }')
	fi
	for sym in "${!want[@]}"; do
		[ -z "$defined" ] || [ -n "${known[$sym]:-}" ] || continue
		got=$(grep -E "^$sym=" "$out/.config" || true)
		if [ "$got" != "${want[$sym]}" ]; then
			log "config: wanted '${want[$sym]:-$sym off}', got '${got:-off}'"
			bad=1
		fi
	done
	return $bad
}

# A build step in kbuild's quiet output ("  CC      path"), as an ERE.
KBUILD_STEP='^  [A-Z][A-Z0-9_ ]{0,10} [^ ]'

# ... | kbuild_progress WHAT: a quiet kernel build that says how far it is
# once a minute (its build steps counted); anything else make prints
# (warnings, errors) passes through to stderr.
kbuild_progress() {
	local what=$1 n=0 t0=$SECONDS last=$SECONDS line
	while IFS= read -r line; do
		if [[ $line =~ $KBUILD_STEP ]]; then
			n=$((n + 1))
		else
			printf '%s\n' "$line" >&2
		fi
		if ((SECONDS - last >= 60)); then
			log "$what: $n build steps done, $((SECONDS - t0)) s"
			last=$SECONDS
		fi
	done
	log "$what: $n build steps, $((SECONDS - t0)) s"
}

# builds_kernel REPO COMMIT: whether COMMIT changes anything a kernel build
# reads (not only Documentation/, MAINTAINERS, tools/).
builds_kernel() {
	git -C "$1" diff-tree --no-commit-id --name-only -r "$2" |
		grep -qv '^\(Documentation/\|MAINTAINERS$\|tools/\)'
}

# bisect_dir TREE: where bisect.sh builds the series applied to TREE; its
# checked file lists the bisect_state of every tree that built there.
bisect_dir() {
	echo "$CACHE/bisect/${1##*/}"
}

# bisect_state REPO COMMIT: what bisect.sh records (in its checked file) once
# COMMIT's tree has built with the benchmark's config: the tree's and the
# config fragment's ids.
bisect_state() {
	echo "$(git -C "$1" rev-parse "$2^{tree}")" \
		"$(config_fragment "$SELFTEST_DIR/configs/bench.config" | sha1sum | cut -c1-40)"
}
