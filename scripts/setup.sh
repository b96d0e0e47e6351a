#!/usr/bin/env bash
# Installs what building and testing xvtep needs, skipping what is already there.
# Debian/Ubuntu packages via apt; the Rust toolchain must already be installed (rustup).
set -euo pipefail

# tcpdump: tests decode every output capture with it. iproute2/iputils-ping/iperf3: the
# network-namespace tests and the demo. clang/llvm/libelf/zlib/m4/pkg-config: the XDP program
# and the libbpf build (m4: the static build's vendored libelf).
# ethtool: the daemon tests inspect port offloads. frr: the EVPN test (zebra, bgpd in namespaces).
# dpkg-dev/lintian/man-db/groff-base/zsh/fish: `make deb` and the packaging test (dependencies
# from dpkg-shlibdeps, man pages rendered, completion scripts parsed by each shell).
packages=(tcpdump iproute2 iputils-ping iperf3 clang llvm libelf-dev zlib1g-dev m4 pkg-config make ethtool frr
          dpkg-dev lintian man-db groff-base zsh fish)

missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: not root; run: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found; install Rust with rustup (https://rustup.rs) and retry" >&2
    exit 1
fi
if ! cargo fmt --version >/dev/null 2>&1; then
    rustup component add rustfmt
fi
echo "setup: ok"
