#!/usr/bin/env bash
# Replays the seed scenario "000" (host 1) from its committed captures and shows what the
# switch did: the frames it sent on each interface (decoded by tcpdump), its counters and FDB.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/xvtep
golden=tests/golden/seed000
out=$(mktemp -d /tmp/xvtep-demo.XXXXXX)
trap 'rm -rf "$out"' EXIT

echo "== xvtep replay: seed 000, host 1 (VID 2 <-> VNI 2, VID 3 <-> VNI 3, flood list to 192.168.1.2)"
"$bin" replay --config configs/seed000-host1.toml \
    --in eth0="$golden/in-eth0.pcap" --in tap1_0="$golden/in-tap1_0.pcap" --in tap2_0="$golden/in-tap2_0.pcap" \
    --out-dir "$out" --events --fdb
for iface in eth0 tap1_0 tap2_0; do
    echo
    echo "== sent on $iface"
    tcpdump -r "$out/$iface.pcap" -nn -e 2>/dev/null
done
