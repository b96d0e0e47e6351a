#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 12: the smoke run of `make test`) and
# prints the executions per target and in total. New inputs go to target/fuzz-corpus/TARGET
# (the committed seeds in fuzz/corpus stay as they are); a crash fails the run, and its input
# is in fuzz/artifacts/TARGET/.
#
# FUZZ_SANITIZER picks cargo-fuzz's sanitizer: `address` (the default, for the smoke run) or
# `none`, which `make fuzz` uses: the fuzzed code (the switch core, config, control protocol)
# has no `unsafe`, so AddressSanitizer can find nothing a panic would not, and without it the
# targets run 4-6 times as many inputs per second.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-12}
sanitizer=${FUZZ_SANITIZER:-address}
targets=(local_ingress underlay_ingress superframes config control_protocol)
# cargo-fuzz needs nightly features; the stable toolchain allows them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz (once)"
    cargo install cargo-fuzz --locked --quiet
fi
(cd fuzz && cargo fuzz build -O -s "$sanitizer" >/dev/null 2>&1) || (cd fuzz && cargo fuzz build -O -s "$sanitizer")
total=0
for t in "${targets[@]}"; do
    work=target/fuzz-corpus/$t
    mkdir -p "$work"
    log=target/fuzz-$t.log
    if ! (cd fuzz && cargo fuzz run -O -s "$sanitizer" "$t" "../$work" "corpus/$t" -- \
            -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048) >"$log" 2>&1; then
        echo "fuzz: $t FAILED; the log is $log, the input in fuzz/artifacts/$t/"
        grep -m1 -A3 "panicked" "$log" || tail -20 "$log"
        exit 1
    fi
    n=$(awk '/stat::number_of_executed_units/ {print $NF}' "$log")
    echo "fuzz: $t: ${n:-0} executions in ${seconds}s, no crash"
    total=$((total + ${n:-0}))
done
echo "fuzz: ${#targets[@]} targets, $total executions (sanitizer $sanitizer), no crash"
