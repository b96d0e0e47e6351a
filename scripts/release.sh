#!/usr/bin/env bash
# `make release [STATIC=1]`: one stripped binary with the XDP program embedded, for appliance
# images and the Debian package. STATIC=1 links everything in, glibc, libbpf, libelf and zlib
# included (`ldd` says "not a dynamic executable"), so the binary runs on any Linux of its
# architecture. Prints the binary's path last.
set -euo pipefail
cd "$(dirname "$0")/.."

triple=$(rustc -vV | sed -n 's/^host: //p')
if [ "${STATIC:-0}" = 1 ]; then
    # With --target, RUSTFLAGS reach only the target's code, not build scripts.
    # relocation-model=static: a static executable, not a static PIE (smaller, nothing to relocate).
    LIBBPF_SYS_LIBRARY_PATH="/usr/lib/$(gcc -dumpmachine)" \
        RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
        cargo build --profile dist -p xvtep --features static --target "$triple"
    bin="target/$triple/dist/xvtep"
else
    cargo build --profile dist -p xvtep
    bin=target/dist/xvtep
fi
size=$(stat -c %s "$bin")
awk -v s="$size" -v b="$bin" 'BEGIN { printf "%s: %.2f MiB stripped\n", b, s / 1048576 }' >&2
ldd "$bin" >&2 || true
echo "$bin"
