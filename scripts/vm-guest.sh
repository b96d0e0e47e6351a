#!/usr/bin/env bash
# The guest's scenario (run by scripts/vm-test.sh inside a QEMU guest; runs as well on any
# host as root): two xvtep hosts in network namespaces over a shared underlay, the seed-000
# configuration with default ports (veths, so `vnet` I/O, held from the kernel at tc ingress),
# then what a kernel without tcx needs checked: the hold's clsact filter passes every frame
# once its daemon is killed (SIGKILL), a restarted daemon replaces the filter, and a stopped
# one removes it.
#
# With `virtio` as second argument it then runs the hosts again over the guest's two virtio-net
# NICs joined back to back (vng --network loop) as the underlay: the path of a real NIC's
# driver (native XDP, AF_XDP bound on a driver's queue, in copy mode on 6.1), checks named
# virtio_*.
#
# With `vlan` as third argument it also runs a trunk port that a container's 8021q device sends
# tagged frames to (the tag in skb metadata), checks named vlan_*, and [kernel] mode following
# a VLAN-aware bridge with vlan_tunnel (scripts/vm-guest-kernel-vlan.sh), checks named kvlan_*.
#
# Usage: vm-guest.sh OUT [virtio|-] [vlan]. Writes OUT/results, one line per check ("ok NAME" or "FAIL
# NAME: what"), the daemons' logs, and OUT/done last (the guest's exit status is lost:
# vm-test.sh reads these instead). Everything it creates is removed on exit.
set -uo pipefail
out=${1:?usage: vm-guest.sh OUT [virtio]}
virtio=${2:-}
vlan=${3:-}
cd "$(dirname "$0")/.."
bin=${XVTEP_BIN:-$PWD/target/release/xvtep}
results=$out/results
: > "$results"
exec > "$out/guest.log" 2>&1
set -x

. scripts/vm-checks.sh

# No udev in the guest: what the scenario needs, loaded by hand (built-ins are no-ops).
modprobe -a veth bridge vxlan af_packet sch_ingress cls_bpf virtio_net 8021q 2>/dev/null || true
uname -r > "$out/kernel"

P=${XVTEP_NS_PREFIX:-xvvm}
work=$(mktemp -d /tmp/xvtep-vm.XXXXXX)
pids=(0 0 0)
stop_all() {
    for pid in "${pids[@]}"; do [ "$pid" != 0 ] && kill -TERM "$pid" 2>/dev/null; done
    for pid in "${pids[@]}"; do [ "$pid" != 0 ] && wait "$pid" 2>/dev/null; done
    pids=(0 0 0)
    # A physical NIC goes back to the first namespace with its namespace.
    for n in ul h1 h2 a1 a2 b1 b2; do ip netns del $P-$n 2>/dev/null; done
    cp "$work"/*.log "$out/" 2>/dev/null
}
cleanup() {
    stop_all
    rm -rf "$work"
    echo done > "$out/done"
}
trap cleanup EXIT

# tcx came with Linux 6.6: before it the tc programs are clsact filters.
release=$(uname -r)
major=${release%%.*}
minor=${release#*.}
minor=${minor%%[.-]*}
if [ -n "${XVTEP_TC_ATTACH:-}" ]; then
    want_tc=$XVTEP_TC_ATTACH
elif ((major > 6 || (major == 6 && minor >= 6))); then
    want_tc=tcx
else
    want_tc=clsact
fi

topology() { # topology veth|virtio: the hosts, their containers and the underlay between them
    local underlay=$1
    for n in ul h1 h2 a1 a2 b1 b2; do
        ip netns del $P-$n 2>/dev/null
        ip netns add $P-$n
        ip netns exec $P-$n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        ip -n $P-$n link set lo up
    done
    ip -n $P-ul link add br0 type bridge && ip -n $P-ul link set br0 up
    for i in 1 2; do
        if [ "$underlay" = virtio ]; then
            # The guest's NICs eth0 and eth1 are wired to each other: one per host, as eth0.
            ip link set "eth$((i - 1))" down
            ip link set "eth$((i - 1))" netns $P-h$i
            ip -n $P-h$i link set "eth$((i - 1))" name eth0 2>/dev/null
        else
            # Made inside the host's namespace: the guest's own eth0 would clash.
            ip -n $P-h$i link add eth0 type veth peer name p$i netns $P-ul
            ip -n $P-ul link set p$i master br0 && ip -n $P-ul link set p$i up
        fi
        ip -n $P-h$i addr add 192.168.1.$i/24 dev eth0 && ip -n $P-h$i link set eth0 up
        ip -n $P-h$i link add tap1_0 type veth peer name eth0 netns $P-a$i
        ip -n $P-h$i link add tap2_0 type veth peer name eth0 netns $P-b$i
        ip -n $P-h$i link set tap1_0 up && ip -n $P-h$i link set tap2_0 up
        ip -n $P-a$i addr add 10.2.0.$i/24 dev eth0 && ip -n $P-a$i link set eth0 up mtu 1450
        ip -n $P-b$i addr add 10.3.0.$i/24 dev eth0 && ip -n $P-b$i link set eth0 up mtu 1450
        local other=$((3 - i))
        # Default ports: the seed's [[port]]s name no io, so veths get `vnet`.
        sed -e "s/192.168.1.4/192.168.1.$i/" -e "s/dst = \"192.168.1.2\"/dst = \"192.168.1.$other\"/" \
            configs/seed000-host1.toml > "$work/h$i.toml"
    done
}

plain() { # the daemon's log without its colours
    sed 's/\x1b\[[0-9;]*m//g' "$1"
}
xvtep_filters() { # xvtep_filters HOST DEV: how many of xvtep's tc filters are on DEV's ingress
    tc -n $P-h$1 filter show dev "$2" ingress | grep -c "xvtep_tc_"
}

topology veth
for i in 1 2; do
    check "start_h$i" "xvtep run with default ports did not start (see h$i.log)" start $i "$work/h$i.log"
done
check tc_attach "link show does not say tc $want_tc" \
    grep -q "kernel $release tc $want_tc" <("$bin" --socket "$work/h1.sock" link show)
check ports_vnet "tap1_0 is not a vnet port" \
    grep -q "tap1_0: .* io vnet" <("$bin" --socket "$work/h1.sock" link show)
check start_log_kernel "the start log does not name the kernel and the tc attach" \
    grep -q "kernel=$release (tc $want_tc)" <(plain "$work/h1.log")
if [ "$want_tc" = clsact ]; then
    check hold_filter "tap1_0 has not exactly one xvtep filter" test "$(xvtep_filters 1 tap1_0)" = 1
fi
check ping_vni2 "a1 -> a2 (VNI 2): not 3 of 3 answered" pings a1 10.2.0.2 3
check ping_vni3 "b1 -> b2 (VNI 3): not 3 of 3 answered" pings b1 10.3.0.2 3
ip -n $P-b2 addr add 10.2.0.99/24 dev eth0
check isolation "a1 (VNI 2) reached 10.2.0.99 on b2 (VNI 3)" silent a1 10.2.0.99

# The hold keeps the kernel off the port's frames: h1's own address on tap1_0 is not
# reachable from a1 while the daemon runs...
ip -n $P-h1 addr add 10.2.0.201/24 dev tap1_0
check held "h1's stack answered a1 on a held vnet port" silent a1 10.2.0.201
# ...and is once the daemon is killed: the leftover filter (clsact) passes every frame, the
# tcx link is gone with the process.
kill -KILL "${pids[1]}"
wait "${pids[1]}" 2>/dev/null
pids[1]=0
ip -n $P-a1 neigh flush all # the failed resolution of 10.2.0.201 above
check sigkill_not_black_holed "a1 -> h1 after SIGKILL: the port stayed black-holed" pings a1 10.2.0.201 2
# A restarted daemon replaces the leftover filter and holds again.
check restart "the restarted daemon did not start (see h1-restart.log)" start 1 "$work/h1-restart.log"
if [ "$want_tc" = clsact ]; then
    check stale_replaced "the restart did not replace the leftover filter" \
        grep -q "replacing the tc filter xvtep_tc_hold" "$work/h1-restart.log"
    check one_filter "tap1_0 has not exactly one xvtep filter after the restart" \
        test "$(xvtep_filters 1 tap1_0)" = 1
fi
check held_again "h1's stack answered a1 after the restart" silent a1 10.2.0.201
check ping_after_restart "a1 -> a2 after the restart: not 3 of 3 answered" pings a1 10.2.0.2 3
# A stopped daemon leaves no filter behind.
kill -TERM "${pids[1]}"
wait "${pids[1]}" 2>/dev/null
pids[1]=0
check no_filter_left "xvtep filters left on h1's ports after SIGTERM" \
    test "$(($(xvtep_filters 1 tap1_0) + $(xvtep_filters 1 tap2_0)))" = 0
stop_all
if [ "$vlan" = vlan ]; then
    # Tags an 8021q device in a container hands to its veth in skb metadata (TX VLAN offload),
    # on a trunk port (VID 10 tagged, VNI 10). `vnet` ports by default: an `afxdp` port loses
    # such a tag on 6.1 (its XDP program never sees it; see README "Kernels"), which
    # XVTEP_VLAN_IOS="vnet afxdp" shows.
    for io in ${XVTEP_VLAN_IOS:-vnet}; do
        topology veth
        for i in 1 2; do
            other=$((3 - i))
            sed -i -e "s/^name = \"tap1_0\"/name = \"tap1_0\"\nio = \"$io\"/" \
                -e "s/vlans = \[{ vid = 2, pvid = true, untagged = true }\]/vlans = [{ vid = 2, pvid = true, untagged = true }, { vid = 10 }]/" \
                "$work/h$i.toml"
            printf '\n[[vlan]]\nvid = 10\nvni = 10\n[[fdb]]\nmac = "00:00:00:00:00:00"\nvni = 10\ndst = "192.168.1.%s"\n' \
                $other >> "$work/h$i.toml"
            ip -n $P-a$i link add link eth0 name eth0.10 type vlan id 10
            ip -n $P-a$i addr add 10.10.0.$i/24 dev eth0.10
            ip -n $P-a$i link set eth0.10 up
            check "vlan_${io}_start_h$i" "xvtep did not start (see h$i-vlan-$io.log)" start $i "$work/h$i-vlan-$io.log"
        done
        ip netns exec $P-a1 ethtool -k eth0 | grep vlan-offload
        check "vlan_${io}_tagged" "a1.10 -> a2.10 (VID 10 tagged on a $io port): not 3 of 3 answered" \
            pings a1 10.10.0.2 3
        check "vlan_${io}_untagged" "a1 -> a2 untagged beside the trunk ($io): not 3 of 3 answered" \
            pings a1 10.2.0.2 3
        stop_all
    done
fi
if [ "$vlan" = vlan ]; then
    # [kernel] mode following seed 000 built the kernel's way: a VLAN-aware bridge with an
    # `external` vxlan device and vlan_tunnel (issue 30), checks named kvlan_*; its log is
    # kernel-vlan.log.
    XVTEP_BIN=$bin scripts/vm-guest-kernel-vlan.sh "$out"
    # The VLAN-aware conformance cases (the kernel's bridge with VLAN filtering as the
    # reference, then xvtep, in this guest), one check each, named conformance_*.
    log=$out/conformance-1q.log
    if [ -x "${XVTEP_CONFORMANCE:-}" ]; then
        "$XVTEP_CONFORMANCE" --test-threads 1 --show-output vlan_aware > "$log" 2>&1
        while read -r _ name _ verdict; do
            if [ "$verdict" = ok ]; then ok "conformance_$name"; else fail "conformance_$name" "see $log"; fi
        done < <(grep -E '^test vlan_aware_[a-z0-9_]+ \.\.\. ' "$log")
        grep -q '^test vlan_aware_' "$log" || fail conformance_vlan_aware "no case ran (see $log)"
        ! grep -q '^SKIP' "$log" || fail conformance_vlan_aware "a case skipped in the guest (see $log)"
    else
        fail conformance_vlan_aware "XVTEP_CONFORMANCE names no test binary (run through scripts/vm-test.sh)"
    fi
fi
[ "$virtio" = virtio ] || exit 0

# A real NIC's driver as the underlay: virtio-net, native XDP, AF_XDP on its queue.
check virtio_nics "the guest has no eth0 and eth1 (vng --network loop)" ip link show eth1
topology virtio
for i in 1 2; do
    check "virtio_start_h$i" "xvtep did not start over virtio-net (see h$i-virtio.log)" \
        start $i "$work/h$i-virtio.log"
done
# Driver mode: `ip link` says "xdp" (not "xdpgeneric") for a program in the driver.
check virtio_native_xdp "the underlay's XDP program is not in virtio-net's driver" \
    grep -q " xdp qdisc\| xdp " <(ip -n $P-h1 link show eth0)
check virtio_ping_vni2 "a1 -> a2 over virtio-net: not 3 of 3 answered" pings a1 10.2.0.2 3
check virtio_ping_vni3 "b1 -> b2 over virtio-net: not 3 of 3 answered" pings b1 10.3.0.2 3
ip -n $P-b2 addr add 10.2.0.99/24 dev eth0
check virtio_isolation "a1 (VNI 2) reached 10.2.0.99 on b2 (VNI 3)" silent a1 10.2.0.99
# TCP: 1 MiB each way, checked by length and SHA-256 at the receiver.
tcp() { # tcp FROM TO ADDR: FROM sends 1 MiB to TO (listening on ADDR)
    local got=$work/tcp-$2.got
    ip netns exec $P-$2 python3 -c '
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5201)); s.listen(1); s.settimeout(120)
c, _ = s.accept(); c.settimeout(120); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    h.update(b); n += len(b)
print(n, h.hexdigest())' "$3" > "$got" &
    local server=$!
    sleep 1
    local sent
    sent=$(ip netns exec $P-$1 python3 -c '
import hashlib, os, socket, sys
data = os.urandom(1 << 20)
c = socket.create_connection((sys.argv[1], 5201), timeout=120); c.sendall(data); c.close()
print(len(data), hashlib.sha256(data).hexdigest())' "$3")
    wait $server
    echo "sent: $sent; received: $(cat "$got")"
    [ -n "$sent" ] && [ "$sent" = "$(cat "$got")" ]
}
check virtio_tcp "TCP a1 -> a2 over virtio-net: 1 MiB not received intact" tcp a1 a2 10.2.0.2
check virtio_tcp_reverse "TCP a2 -> a1 over virtio-net: 1 MiB not received intact" tcp a2 a1 10.2.0.1
stop_all
check virtio_underlay_frames "the daemons' exit reports show no VXLAN steered from virtio-net" \
    grep -q "underlay_redirect [1-9]" "$work/h1-virtio.log"
exit 0
