#!/usr/bin/env bash
# The main job, live: the seed-000 topology in network namespaces, two hosts each running the
# xvtep daemon over a shared underlay, containers in VNI 2 and VNI 3 pinging across, host 1's
# own address on the overlay (an internal port) reaching and reached by a container, a port
# added and removed while running, then the daemons' FDBs and counters. Everything it creates
# is removed on exit, also on failure. Without root it runs the pcap replay of the same
# scenario instead.
set -euo pipefail
cd "$(dirname "$0")/.."
# XVTEP_BIN: another build of xvtep, e.g. the static one (make release STATIC=1).
bin=${XVTEP_BIN:-$PWD/target/release/xvtep}
if [ "$(id -u)" -ne 0 ]; then
    echo "demo: not root, so no namespaces or XDP; showing the pcap replay of the scenario instead"
    exec scripts/demo-replay.sh
fi

P=xvdemo
work=$(mktemp -d /tmp/xvtep-demo.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for n in ul h1 h2 a1 a2 b1 b2 c1; do ip netns del $P-$n 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

echo "== building the topology: underlay 192.168.1.0/24, hosts h1 (.1) and h2 (.2)"
for n in ul h1 h2 a1 a2 b1 b2 c1; do
    ip netns del $P-$n 2>/dev/null || true
    ip netns add $P-$n
    ip netns exec $P-$n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip -n $P-ul link add br0 type bridge && ip -n $P-ul link set br0 up
for i in 1 2; do
    ip link add eth0 netns $P-h$i type veth peer name p$i netns $P-ul
    ip -n $P-ul link set p$i master br0 && ip -n $P-ul link set p$i up
    ip -n $P-h$i addr add 192.168.1.$i/24 dev eth0 && ip -n $P-h$i link set eth0 up
    ip link add tap1_0 netns $P-h$i type veth peer name eth0 netns $P-a$i
    ip link add tap2_0 netns $P-h$i type veth peer name eth0 netns $P-b$i
    ip -n $P-h$i link set tap1_0 up && ip -n $P-h$i link set tap2_0 up
    ip -n $P-a$i addr add 10.2.0.$i/24 dev eth0 && ip -n $P-a$i link set eth0 up mtu 1450
    ip -n $P-b$i addr add 10.3.0.$i/24 dev eth0 && ip -n $P-b$i link set eth0 up mtu 1450
    other=$((3 - i))
    sed -e "s/192.168.1.4/192.168.1.$i/" -e "s/dst = \"192.168.1.2\"/dst = \"192.168.1.$other\"/" \
        configs/seed000-host1.toml > "$work/h$i.toml"
done
# Host 1's own address on the overlay: an internal port in VNI 2.
printf '\n[[port]]\nname = "xv2"\ninternal = true\naddress = ["10.2.0.100/24"]\nvlans = [{ vid = 2, pvid = true, untagged = true }]\n' \
    >> "$work/h1.toml"

for i in 1 2; do
    echo "== starting xvtep on h$i"
    ip netns exec $P-h$i "$bin" run --config "$work/h$i.toml" --summary-every 0 --control "$work/h$i.sock" \
        > "$work/h$i.log" 2>&1 &
    pids+=($!)
done
for i in 1 2; do
    for _ in $(seq 100); do grep -q "xvtep: running" "$work/h$i.log" && break; sleep 0.1; done
    grep -q "xvtep: running" "$work/h$i.log" || { cat "$work/h$i.log"; exit 1; }
done
echo "== host 1's ports: veths, so vnet I/O (the containers keep their TCP offloads); XDP steers the underlay"
"$bin" --socket "$work/h1.sock" link show
ip -n $P-h1 link show eth0 | grep -o "prog/xdp.*"

echo
echo "== VNI 2: a1 (10.2.0.1, host 1) -> a2 (10.2.0.2, host 2)"
ip netns exec $P-a1 ping -c 3 10.2.0.2
echo
echo "== host 1 itself on the overlay (internal port xv2, 10.2.0.100) -> a2 on host 2"
ip netns exec $P-h1 ping -c 2 10.2.0.2
echo "== a2 reaches a service listening on host 1's overlay address (iperf3, 1 s)"
ip netns exec $P-h1 iperf3 -s -1 -D -B 10.2.0.100
sleep 0.3
ip netns exec $P-a2 iperf3 -c 10.2.0.100 -t 1 | grep -E "sender|receiver"
echo
echo "== VNI 3: b1 (10.3.0.1) -> b2 (10.3.0.2)"
ip netns exec $P-b1 ping -c 3 10.3.0.2
echo
echo "== isolation: b2 also takes 10.2.0.99, but it is in VNI 3; a1 (VNI 2) cannot reach it"
ip netns exec $P-b2 ip addr add 10.2.0.99/24 dev eth0
if ip netns exec $P-a1 ping -c 2 -W 1 10.2.0.99 >/dev/null; then echo "LEAK: reached VNI 3"; exit 1; fi
echo "10.2.0.99 unreachable from VNI 2, as it should be"
echo
echo "== live control of host 1: xvtep fdb show; vlan show"
"$bin" --socket "$work/h1.sock" fdb show
"$bin" --socket "$work/h1.sock" vlan show

echo
echo "== a port added while running: c1 (10.2.0.11) on a new interface tap9 of host 1 joins VNI 2"
ip link add tap9 netns $P-h1 type veth peer name eth0 netns $P-c1
ip -n $P-h1 link set tap9 up
ip -n $P-c1 addr add 10.2.0.11/24 dev eth0 && ip -n $P-c1 link set eth0 up mtu 1450
ctl() { echo "# xvtep $*"; "$bin" --socket "$work/h1.sock" "$@"; }
ctl link add dev tap9
ctl vlan add dev tap9 vid 2 pvid untagged
ctl vlan del dev tap9 vid 1
ctl link show
ip netns exec $P-c1 ping -c 3 10.2.0.2
ctl link del dev tap9
if ip netns exec $P-c1 ping -c 2 -W 1 10.2.0.2 >/dev/null; then echo "tap9 still forwards after link del"; exit 1; fi
echo "after link del, tap9 is the kernel's again: c1 is cut off; the other ports forward on:"
ip netns exec $P-a1 ping -c 1 10.2.0.2 | grep "bytes from"

for i in 1 2; do kill -TERM "${pids[$((i - 1))]}"; done
for pid in "${pids[@]}"; do wait "$pid" || true; done
pids=()
for i in 1 2; do
    echo
    echo "== host $i: counters and FDB at exit"
    sed -n '/^port /,$p' "$work/h$i.log"
done
echo
echo "== XDP programs left attached: $(ip -n $P-h1 link show | grep -c prog/xdp || true)"
