#!/usr/bin/env bash
# The guest test bed: boots Debian 12's kernel (6.1, what most users run) in QEMU with
# virtme-ng — software emulation (TCG), since /dev/kvm on these machines hangs a stock kernel —
# with this machine's filesystem as the guest's root (read-only, so the built xvtep is there),
# and runs scripts/vm-guest.sh inside (its two virtio-net NICs wired to each other with
# --network loop for the real-driver scenario, and 8021q in the containers). vng loses the
# guest's exit status, so the results come back through a shared directory. Emulation is slow:
# this checks behaviour, never speed. XVTEP_VLAN_IOS="vnet afxdp" adds the trunk-port check
# on an `afxdp` port, which fails on 6.1 (README "Kernels").
#
# Needs root and what scripts/setup.sh installs (qemu-system-x86, virtme-ng and the kernel in
# $XVTEP_VM_DIR, default /opt/xvtep-vm). Without root it skips with the reason; as root,
# anything missing is a failure (CI must not pass a guest test that did not run).
# Ends with a cargo-style "test result:" line, which scripts/test.sh counts.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
vm_dir=${XVTEP_VM_DIR:-/opt/xvtep-vm}
bin=${XVTEP_BIN:-$repo/target/release/xvtep}

failed() {
    echo "vm-test: $*" >&2
    echo "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out"
    exit 1
}
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP vm-test: not root (the guest's scenario creates namespaces and attaches BPF; run as root)"
    exit 0
fi
export PATH=$vm_dir/venv/bin:$PATH
command -v vng >/dev/null || failed "virtme-ng (vng) is not in $vm_dir/venv: run scripts/setup.sh as root"
command -v qemu-system-x86_64 >/dev/null || failed "qemu-system-x86_64 is missing: run scripts/setup.sh as root"
kernel=$(ls "$vm_dir"/kernel-6.1.*/boot/vmlinuz-* 2>/dev/null | sort -V | tail -1)
[ -n "$kernel" ] || failed "no Debian 12 kernel (6.1) in $vm_dir: run scripts/setup.sh as root"
[ -x "$bin" ] || failed "$bin is not built: run cargo build --release --workspace (or make build)"

# The conformance cases that need bridge VLAN filtering (the kernel's reference) run in the
# guest: the release build of their test binary.
conformance=$(cargo test --release -p xvtep --test conformance --no-run 2>&1 |
    sed -n 's/.*Executable tests\/conformance.rs (\(.*\))/\1/p')
[ -n "$conformance" ] && [ -f "$repo/$conformance" ] && [ -x "$repo/$conformance" ] || failed "the conformance tests did not build (cargo test --release -p xvtep --test conformance --no-run)"

mkdir -p target
out=$(mktemp -d "$repo/target/vm-test.XXXXXX")
echo "vm-test: booting $(basename "$kernel") under QEMU (TCG, 2 vCPUs); results in $out"
start=$(date +%s)
# The host's namespaces are not the guest's, so the guest may run beside host tests; only the
# 9p-shared files are common. 10 minutes at most: the guest part of CI stays short.
timeout --kill-after=10 600 vng --run "$kernel" --disable-kvm --user root --cpus 2 --memory 1G --network loop --no-dhcp \
    --rwdir "$out" --cwd "$repo" --exec "XVTEP_BIN=$bin XVTEP_CONFORMANCE=$repo/$conformance XVTEP_VLAN_IOS='${XVTEP_VLAN_IOS:-vnet}' $repo/scripts/vm-guest.sh $out virtio vlan" \
    </dev/null >"$out/console.log" 2>&1
status=$?
took=$(($(date +%s) - start))
if [ ! -f "$out/done" ]; then
    tail -20 "$out/console.log" >&2
    failed "the guest did not finish its scenario (vng exit $status after ${took}s; console: $out/console.log)"
fi
echo "vm-test: guest kernel $(cat "$out/kernel" 2>/dev/null), ${took}s from boot to results"
# The conformance tables (case | expected | kernel | xvtep), for the log.
grep -E '^(cf1q|  .* \| )' "$out/conformance-1q.log" 2>/dev/null
passed=0
failures=0
while read -r verdict name rest; do
    case $verdict in
        ok) echo "test vm::$name ... ok"; passed=$((passed + 1)) ;;
        FAIL) echo "test vm::${name%:} ... FAILED: $rest"; failures=$((failures + 1)) ;;
    esac
done < "$out/results"
if ((passed + failures == 0)); then
    failed "the guest ran no check (see $out/guest.log)"
fi
if ((failures)); then
    echo "vm-test: logs of the guest's run in $out (guest.log, h1.log, h2.log)"
    echo "test result: FAILED. $passed passed; $failures failed; 0 ignored; 0 measured; 0 filtered out"
    exit 1
fi
rm -rf "$out"
echo "test result: ok. $passed passed; 0 failed; 0 ignored; 0 measured; 0 filtered out"
