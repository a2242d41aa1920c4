# SPDX-License-Identifier: GPL-2.0
# Shared settings for the vfio dma-buf harness scripts.  Sourced, not run.

SELFTEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO=$(cd "$SELFTEST_DIR/../../../.." && pwd)

# Pinned base; the newest installed linux-source-6.12 is used when the pin is
# not available from the archive (with a message).
BASE_PIN=${BASE_PIN:-6.12.117-1~deb12u1}
BINDGEN_VERSION=0.73.2
CARGO_FUZZ_VERSION=0.13.2

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
