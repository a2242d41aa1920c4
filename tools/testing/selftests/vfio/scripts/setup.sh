#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Install what the harness needs on a Debian 12 machine.  Idempotent: when
# everything is present it prints one line and does nothing else.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DEBS=(rustc-web rust-web-src rust-web-clippy rustfmt-web cargo-web clang lld llvm
      flex bison bc libelf-dev libssl-dev cpio kmod git rsync python3 python3-docutils
      qemu-system-x86 busybox-static xz-utils make gcc libc6-dev binutils)

deb_installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

missing=()
for p in "${DEBS[@]}"; do
	deb_installed "$p" || missing+=("$p")
done
# The default base (no KDIR, no BASE_PIN; see lib.sh) is the installed
# linux-source-6.12, the newest in the archive when there is none.
if [ -z "${KDIR:-}" ] && [ -z "$BASE_PIN" ] && ! deb_installed linux-source-6.12; then
	missing+=(linux-source-6.12)
fi
# qemu_client.sh verifies trixie's archive with the host's keyring: it has
# trixie's keys since 2023.3+deb12u2 (a bookworm point release).
if ! dpkg --compare-versions \
		"$(dpkg-query -W -f='${Version}' debian-archive-keyring 2>/dev/null)" \
		ge 2023.3+deb12u2; then
	missing+=(debian-archive-keyring)
fi

apt_install() {
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

if [ ${#missing[@]} -gt 0 ]; then
	log "installing Debian packages: ${missing[*]}"
	[ "$(id -u)" = 0 ] || die "need root to install: ${missing[*]}"
	apt-get update -q >/dev/null
	pkgs=()
	for p in "${missing[@]}"; do
		if [ "$p" = linux-source-6.12 ]; then
			v=$(archive_versions | base_pick "") ||
				die "no linux-source-6.12 to install"
			log "the base: linux-source-6.12 $v, the newest in the archive"
			pkgs+=("linux-source-6.12=$v")
		else
			pkgs+=("$p")
		fi
	done
	ticking "installing Debian packages" apt_install "${pkgs[@]}"
fi

installed=${#missing[@]}
if ! [ -x "$BINDGEN" ] || ! "$BINDGEN" --version | has -F "$BINDGEN_VERSION"; then
	installed=$((installed + 1))
	log "installing bindgen-cli $BINDGEN_VERSION into $TOOLS"
	ticking "installing bindgen-cli" /usr/bin/cargo install --locked --quiet \
		--root "$TOOLS" bindgen-cli --version "$BINDGEN_VERSION"
fi

if ! [ -x "$TOOLS/bin/cargo-fuzz" ] ||
		! "$TOOLS/bin/cargo-fuzz" --version | has -F "$CARGO_FUZZ_VERSION"; then
	installed=$((installed + 1))
	log "installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS"
	ticking "installing cargo-fuzz" /usr/bin/cargo install --locked --quiet \
		--root "$TOOLS" cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

# Debian's QEMU 11 for the QEMU client test, fetched once into the cache.
if ! "$SELFTEST_DIR/scripts/qemu_client.sh" present; then
	installed=$((installed + 1))
	"$SELFTEST_DIR/scripts/qemu_client.sh" root > /dev/null
fi

# Debian's upstream kernel, the UAPI's oracle, fetched once into the cache.
if ! "$SELFTEST_DIR/scripts/oracle.sh" present; then
	installed=$((installed + 1))
	"$SELFTEST_DIR/scripts/oracle.sh" fetch
fi

[ "$installed" -gt 0 ] || log "set-up: everything present"
