# SPDX-License-Identifier: GPL-2.0
# Shared settings for the vfio dma-buf harness scripts.  Sourced, not run.

SELFTEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO=$(cd "$SELFTEST_DIR/../../../.." && pwd)

# The base tree: $KDIR when set; else Debian's linux-source-6.12 at version
# $BASE_PIN when set (fetched into the cache when the installed one is
# another version); else the installed linux-source-6.12, which setup.sh
# installs at the newest version the archive has when it is missing.
BASE_PIN=${BASE_PIN:-}
BINDGEN_VERSION=0.73.2
CARGO_FUZZ_VERSION=0.13.2

# The feature's lines of drivers/vfio/pci/Kconfig and Makefile (a diff that
# series.sh folds into the exporter's patch).
KBUILD_DIFF=$REPO/patches/exporter-kbuild.diff

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

# has [GREP-OPTIONS] PATTERN: grep that reads all of its input.  In a
# pipeline, grep -q (or head) stops reading at the first match; the writer
# then dies of SIGPIPE, and under pipefail the pipeline fails although the
# pattern was found.
has() { grep "$@" > /dev/null; }

# kbuild_apply DIR: adds the feature's lines to DIR/drivers/vfio/pci/Kconfig
# and Makefile (git apply: wherever their context is); says which file does
# not take them.
kbuild_apply() {
	local out
	out=$(cd "$1" && git apply "$KBUILD_DIFF" 2>&1) && return 0
	log "the feature's Kconfig and Makefile lines ($KBUILD_DIFF) do not apply to $1:"
	printf '%s\n' "$out" | sed 's/^/    /' >&2
	return 1
}

# version_sort: Debian version strings (stdin, one per line) in Debian's
# order (dpkg --compare-versions), oldest first, each once.
version_sort() {
	local v i sorted=()
	while read -r v; do
		[ -n "$v" ] || continue
		for ((i = ${#sorted[@]}; i > 0; i--)); do
			dpkg --compare-versions "${sorted[i - 1]}" lt "$v" && break
		done
		[ "${sorted[i]:-}" != "$v" ] || continue
		sorted=("${sorted[@]:0:i}" "$v" "${sorted[@]:i}")
	done
	[ ${#sorted[@]} = 0 ] || printf '%s\n' "${sorted[@]}"
}

# base_pick PIN: of the archive's versions of linux-source-6.12 (stdin, one
# per line, any order), prints the one the base is: PIN when set, else the
# newest.  A PIN the archive does not have is an error naming what it has.
base_pick() {
	local pin=$1 versions
	versions=$(version_sort)
	[ -n "$versions" ] || { log "the archive has no linux-source-6.12"; return 1; }
	if [ -z "$pin" ]; then
		tail -n 1 <<<"$versions"
	elif grep -qxF -- "$pin" <<<"$versions"; then
		echo "$pin"
	else
		log "linux-source-6.12 $pin is not in the archive, which has:" $versions
		return 1
	fi
}

# base_neighbour VERSION: of the archive's versions (stdin), the newest one
# older than VERSION, else the oldest newer one: the second base the series
# is checked on.
base_neighbour() {
	local v=$1 versions
	versions=$( (cat; echo "$v") | version_sort)
	[ "$versions" != "$v" ] || { log "the archive has no linux-source-6.12 but $v"; return 1; }
	awk -v v="$v" '$0 == v { if (NR > 1) { print prev; exit } getline; print; exit }
		{ prev = $0 }' <<<"$versions"
}

# archive_versions: the versions of linux-source-6.12 apt knows of.
archive_versions() {
	apt-cache madison linux-source-6.12 | awk -F'|' '{ gsub(/ /, "", $2); print $2 }'
}

# base_tarball VERSION: prints the path of linux-source-6.12 VERSION's
# tarball: the installed one, or one fetched once into the cache.
base_tarball() {
	local v=$1 d=$CACHE/debs/$1
	if [ "$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null)" = "$v" ] &&
			[ -f /usr/src/linux-source-6.12.tar.xz ]; then
		echo /usr/src/linux-source-6.12.tar.xz
		return 0
	fi
	if ! [ -f "$d/linux-source-6.12.tar.xz" ]; then
		log "fetching linux-source-6.12 $v into $d (once)"
		rm -rf "$d.tmp" && mkdir -p "$d.tmp"
		# as root, apt's download user could not write into the cache
		(cd "$d.tmp" && apt-get download -q -o APT::Sandbox::User="$(id -un)" \
			"linux-source-6.12=$v" > /dev/null) ||
			die "cannot fetch linux-source-6.12=$v" \
			    "(apt-cache madison linux-source-6.12 lists the archive's)"
		dpkg-deb --fsys-tarfile "$d.tmp"/*.deb |
			tar -C "$d.tmp" -x --strip-components=3 ./usr/src/linux-source-6.12.tar.xz
		rm -f "$d.tmp"/*.deb
		rm -rf "$d" && mv "$d.tmp" "$d"
	fi
	echo "$d/linux-source-6.12.tar.xz"
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
		has -v '^\(Documentation/\|MAINTAINERS$\|tools/\)'
}

# The config bisect.sh builds every patch with: the test kernel's, in its
# build directory (build-$WALK_CONFIG), whose last state is the test kernel.
WALK_CONFIG=test

# bisect_dir TREE: where bisect.sh builds the series applied to TREE patch by
# patch: a git work tree of TREE's repository (src/; the test kernel is built
# there, at the series' head, into $CACHE/build-test) and the checked file,
# which lists the bisect_state of every tree state that built.
bisect_dir() {
	echo "$CACHE/bisect/${1##*/}"
}

# bisect_worktree TREE: prints the work tree of bisect_dir, created once from
# TREE's repository (again when TREE is another tree).
bisect_worktree() {
	local b
	b=$(bisect_dir "$1")
	if [ "$(cat "$b/tree" 2>/dev/null)" != "$1" ] || ! [ -d "$b/src" ]; then
		git -C "$1" worktree remove --force "$b/src" 2>/dev/null || true
		rm -rf "$b" && mkdir -p "$b"
		git -C "$1" worktree prune
		ticking "checking out a work tree of $1 for the test kernel (once)" \
			git -C "$1" worktree add -q --detach "$b/src" harness-base >&2
		echo "$1" > "$b/tree"
	fi
	echo "$b/src"
}

# bisect_state REPO COMMIT: what bisect.sh records (in its checked file) once
# COMMIT's tree has built with the test kernel's config: the tree's and the
# config fragment's ids.
bisect_state() {
	echo "$(git -C "$1" rev-parse "$2^{tree}")" \
		"$(config_fragment "$SELFTEST_DIR/configs/$WALK_CONFIG.config" |
			sha1sum | cut -c1-40)"
}

# config_stamp SRC FRAGMENT: the id of a configuration: the fragment and the
# Kconfig files of SRC's checked-out commit.  A build directory configured
# with another id is configured again.
config_stamp() {
	{ cat "$2"; git -C "$1" ls-tree -r HEAD |
		awk '$4 ~ /(^|\/)Kconfig[^\/]*$/ { print $3 }'; } | sha1sum | cut -c1-40
}

# Debian trixie and trixie-backports, for what the test command takes from
# a newer Debian than the host's: QEMU 11 (qemu_client.sh) and upstream
# Linux as the oracle (oracle.sh).  apt runs with its own configuration,
# lists, cache and an empty dpkg status under a directory of the cache
# (APT_CONFIG, so that the host's apt.conf.d and its hooks are not read),
# from deb.debian.org, verified with the host's debian-archive-keyring
# (trixie's keys since 2023.3+deb12u2; setup.sh installs that).  Nothing
# of the host's apt state is used or changed.
TRIXIE_SUITE=trixie-backports
TRIXIE_MIRROR=http://deb.debian.org/debian
TRIXIE_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# trixie_apt_setup DIR: that apt configuration, its state and an empty dpkg
# status, under DIR, and its package lists (apt-get update).
trixie_apt_setup() {
	local a=$1
	mkdir -p "$a"/etc/{apt.conf.d,preferences.d,trusted.gpg.d} \
		"$a"/state/lists/partial "$a"/cache/archives/partial
	: > "$a/state/status"
	: > "$a/etc/apt.conf.main"
	printf 'deb [signed-by=%s] %s %s main\n' \
		"$TRIXIE_KEYRING" "$TRIXIE_MIRROR" "$TRIXIE_SUITE" \
		"$TRIXIE_KEYRING" "$TRIXIE_MIRROR" trixie > "$a/etc/sources.list"
	cat > "$a/apt.conf" <<-EOC
	Dir::State "$a/state";
	Dir::State::status "$a/state/status";
	Dir::Cache "$a/cache";
	Dir::Etc::SourceList "$a/etc/sources.list";
	Dir::Etc::SourceParts "/dev/null";
	Dir::Etc::Parts "$a/etc/apt.conf.d";
	Dir::Etc::Main "$a/etc/apt.conf.main";
	Dir::Etc::Preferences "$a/etc/preferences";
	Dir::Etc::PreferencesParts "$a/etc/preferences.d";
	Dir::Etc::TrustedParts "$a/etc/trusted.gpg.d";
	Dir::Etc::Trusted "$a/etc/trusted.gpg";
	APT::Architecture "amd64";
	APT::Architectures { "amd64"; };
	Acquire::Languages "none";
	APT::Sandbox::User "$(id -un)";
	EOC
	trixie_apt "$a" apt-get update -q > "$a/update.log" 2>&1 || {
		sed 's/^/    /' "$a/update.log" >&2
		die "apt-get update of $TRIXIE_SUITE failed (above): NO_PUBKEY means" \
		    "debian-archive-keyring older than 2023.3+deb12u2 (scripts/setup.sh" \
		    "installs a newer one)"
	}
}

# trixie_apt DIR CMD...: CMD (apt-get, apt-cache) with DIR's configuration.
trixie_apt() {
	local a=$1
	shift
	APT_CONFIG=$a/apt.conf "$@"
}

# pack_initramfs ROOT ART: the busybox test initramfs for ROOT/artifacts
# (ART's modules/ and tests/) into ART/initramfs.cpio.gz.
pack_initramfs() {
	local root=$1 art=$2
	mkdir -p "$root"/{bin,dev,proc,sys,tmp,artifacts}
	cp /bin/busybox "$root/bin/busybox"
	cp "$SELFTEST_DIR/guest/init.sh" "$root/init"
	cp "$SELFTEST_DIR/guest/run_guest_tests.sh" "$root/"
	cp -r "$art/modules" "$art/tests" "$root/artifacts/"
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$art/initramfs.cpio.gz"
	rm -rf "$root"
}
