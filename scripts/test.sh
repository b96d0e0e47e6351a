#!/usr/bin/env bash
# Runs every test of the workspace and ends with one summed closing line
# ("N passed, N failed, N skipped"), as cargo prints one line per test binary.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
log=target/test.log
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The guest test bed (Linux 6.1 in QEMU) runs the release binary; it skips without root.
# A release build that fails must fail the run: the guest would test an older binary.
vm_status=0
if [ "$(id -u)" -eq 0 ] && ! cargo build --release --workspace >target/release-build.log 2>&1; then
    tail -20 target/release-build.log
    echo "test: the release build failed (target/release-build.log); the guest tests were not run"
    vm_status=1
else
    scripts/vm-test.sh 2>&1 | tee -a "$log"
    vm_status=${PIPESTATUS[0]}
fi
((status == 0)) && status=$vm_status
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     /^SKIP/ { s += 1 }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, i + s }' "$log"
exit "$status"
