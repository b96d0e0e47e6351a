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
if [ "$(id -u)" -eq 0 ]; then
    cargo build --release --workspace 2>&1 | tail -1
fi
scripts/vm-test.sh 2>&1 | tee -a "$log"
vm_status=${PIPESTATUS[0]}
((status == 0)) && status=$vm_status
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     /^SKIP/ { s += 1 }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, i + s }' "$log"
exit "$status"
