#!/usr/bin/env bash
# EVPN with FRR, live: three VTEP hosts in network namespaces, each with a bridge and a vxlan
# device (VNI 2) as an EVPN host has them and FRR (zebra + bgpd, iBGP l2vpn evpn,
# advertise-all-vni); hosts 1 and 2 run xvtep in [kernel] mode, host 3 is the plain kernel.
# Containers a1..a3 ping each other; xvtep's FDB shows what zebra installed, host 3's FRR what
# xvtep learned. Everything it creates is removed on exit, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/target/release/xvtep
if [ "$(id -u)" -ne 0 ]; then
    echo "demo-evpn: needs root (network namespaces, XDP, FRR): sudo make demo-evpn" >&2
    exit 1
fi
if [ ! -x /usr/lib/frr/bgpd ]; then
    echo "demo-evpn: FRR is not installed: scripts/setup.sh installs it (apt install frr)" >&2
    exit 1
fi

P=xvevpn
work=$(mktemp -d /tmp/xvtep-evpn.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for f in "$work"/frr-*/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
    sleep 0.3
    for n in ul h1 h2 h3 a1 a2 a3; do ip netns del $P-$n 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

echo "== three hosts on an underlay bridge (192.168.1.1-3), a container aN (10.2.0.N, VNI 2) on each"
for n in ul h1 h2 h3 a1 a2 a3; do
    ip netns del $P-$n 2>/dev/null || true
    ip netns add $P-$n
done
ip -n $P-ul link add br0 type bridge && ip -n $P-ul link set br0 up
for i in 1 2 3; do
    ip link add eth0 netns $P-h$i type veth peer name p$i netns $P-ul
    ip -n $P-ul link set p$i master br0 && ip -n $P-ul link set p$i up
    ip -n $P-h$i addr add 192.168.1.$i/24 dev eth0 && ip -n $P-h$i link set eth0 up && ip -n $P-h$i link set lo up
    ip link add tap1_0 netns $P-h$i type veth peer name eth0 netns $P-a$i
    ip -n $P-h$i link set tap1_0 up
    ip -n $P-a$i addr add 10.2.0.$i/24 dev eth0 && ip -n $P-a$i link set eth0 up mtu 1450
    ip netns exec $P-h$i sh -c "ip link add br2 type bridge && ip link set br2 up &&
        ip link add vx2 type vxlan id 2 local 192.168.1.$i dstport 4789 dev eth0 nolearning &&
        ip link set vx2 master br2 && ip link set vx2 up && ip link set tap1_0 master br2 &&
        bridge link set dev vx2 learning off"
done

for i in 1 2; do
    echo "== host $i: xvtep following its bridge ([kernel] bridges = [\"br2\"])"
    printf '[kernel]\nbridges = ["br2"]\n' > "$work/h$i.toml"
    ip netns exec $P-h$i "$bin" run --config "$work/h$i.toml" --summary-every 0 --control "$work/h$i.sock" \
        > "$work/h$i.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do grep -q "xvtep: running" "$work/h$i.log" && break; sleep 0.1; done
    grep -q "xvtep: running" "$work/h$i.log" || { cat "$work/h$i.log"; exit 1; }
done
"$bin" --socket "$work/h1.sock" link show

echo "== FRR on every host: zebra + bgpd, iBGP l2vpn evpn, advertise-all-vni"
for i in 1 2 3; do
    d=$work/frr-$i
    mkdir -p "$d"
    {
        echo "hostname h$i"
        echo "log file $d/frr.log"
        echo "router bgp 65000"
        echo " bgp router-id 192.168.1.$i"
        echo " no bgp default ipv4-unicast"
        for p in 1 2 3; do [ $p -ne $i ] && echo " neighbor 192.168.1.$p remote-as 65000"; done
        echo " address-family l2vpn evpn"
        for p in 1 2 3; do [ $p -ne $i ] && echo "  neighbor 192.168.1.$p activate"; done
        echo "  advertise-all-vni"
        echo " exit-address-family"
    } > "$d/bgpd.conf"
    printf 'hostname h%s\nlog file %s/frr.log\n' "$i" "$d" > "$d/zebra.conf"
    touch "$d/vtysh.conf"
    chown -R frr:frr "$d"
    for daemon in zebra bgpd; do
        ip netns exec $P-h$i /usr/lib/frr/$daemon -d -N h$i -u frr -g frr -f "$d/$daemon.conf" \
            -i "$d/$daemon.pid" -z "$d/zserv.api" --vty_socket "$d" 2>/dev/null
    done
done
echo -n "waiting for EVPN type-3 routes to reach xvtep"
for _ in $(seq 300); do
    fdb=$("$bin" --socket "$work/h1.sock" fdb show)
    if grep -q "dst 192.168.1.2" <<<"$fdb" && grep -q "dst 192.168.1.3" <<<"$fdb"; then break; fi
    echo -n .; sleep 0.2
done
echo

echo
echo "== pings across the fabric: a1 (xvtep) -> a2 (xvtep), a1 -> a3 (kernel), a3 -> a2"
ip netns exec $P-a1 ping -c 2 10.2.0.2
ip netns exec $P-a1 ping -c 2 10.2.0.3
ip netns exec $P-a3 ping -c 2 10.2.0.2
sleep 1

echo
echo "== host 1's xvtep FDB: flood lists (type-3) and remote MACs (type-2) installed by zebra"
"$bin" --socket "$work/h1.sock" fdb show
echo
echo "== host 1's bridge: what xvtep learned, written back as extern_learn for zebra"
ip netns exec $P-h1 bridge fdb show dev tap1_0 | grep extern_learn || true
echo
echo "== host 3 (plain kernel) FRR: the MACs behind the xvtep hosts, with their VTEP addresses"
ip netns exec $P-h3 vtysh --vty_socket "$work/frr-3" --config_dir "$work/frr-3" -c "show evpn mac vni 2"
