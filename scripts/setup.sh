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
# qemu-system-x86, kmod (depmod, modprobe), busybox-static (its initramfs): the guest test bed (scripts/vm-test.sh), with virtme-ng
# and a kernel below.
packages=(tcpdump iproute2 iputils-ping iperf3 clang llvm libelf-dev zlib1g-dev m4 pkg-config make ethtool frr
          dpkg-dev lintian man-db groff-base zsh fish qemu-system-x86 kmod busybox-static)

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

# The guest test bed (scripts/vm-test.sh): virtme-ng in a venv and Debian 12's kernel (6.1),
# fetched and unpacked, not installed (the package pulls udev and initramfs-tools). Kept in
# $XVTEP_VM_DIR (default /opt/xvtep-vm), shared by every checkout on the machine.
vm_dir=${XVTEP_VM_DIR:-/opt/xvtep-vm}
if [ "$(id -u)" -eq 0 ]; then
    if [ ! -x "$vm_dir/venv/bin/vng" ]; then
        echo "setup: installing virtme-ng into $vm_dir/venv"
        mkdir -p "$vm_dir"
        python3 -m venv "$vm_dir/venv"
        "$vm_dir/venv/bin/pip" install -q "virtme-ng==1.42" # the version vm-test was built with
    fi
    if ! ls "$vm_dir"/kernel-6.1.*/boot/vmlinuz-* >/dev/null 2>&1; then
        # The newest Debian 12 kernel of the 6.1 series (the generic flavour).
        pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' | cut -d' ' -f1 | sort -V | tail -1)
        if [ -z "$pkg" ]; then
            apt-get update -qq
            pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' | cut -d' ' -f1 | sort -V | tail -1)
        fi
        if [ -z "$pkg" ]; then
            echo "setup: no linux-image-6.1.0-*-amd64 in the package lists (needs Debian 12's bookworm/bookworm-security sources)" >&2
            exit 1
        fi
        echo "setup: fetching $pkg for the guest"
        tmp=$(mktemp -d)
        chown _apt "$tmp" 2>/dev/null || true # apt downloads as its _apt user
        (cd "$tmp" && apt-get download -qq "$pkg")
        version=${pkg#linux-image-}
        version=${version%-amd64}
        dpkg-deb -x "$tmp"/"$pkg"_*.deb "$vm_dir/kernel-$version.tmp"
        rm -rf "$tmp" "$vm_dir/kernel-$version"
        mv "$vm_dir/kernel-$version.tmp" "$vm_dir/kernel-$version"
    fi
fi
echo "setup: ok"
