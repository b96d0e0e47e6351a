#!/usr/bin/env bash
# A guest scenario (issue 30 item 1; run by scripts/vm-guest.sh inside the QEMU guest, whose
# 6.1 kernel has bridge VLAN filtering; runs as well on any such host as root): `[kernel]` mode
# follows seed 000 built the kernel's way — one VLAN-aware bridge with an `external` vxlan
# device, `vlan_tunnel` and `tunnel_info id 2/3` — on two hosts (namespaces), containers ns2
# and ns3 on VID 2 and VID 3. The kernel forwards first; then xvtep takes over both hosts from
# the kernel's configuration: pings within a VNI pass, across VNIs not; `bridge vlan del/add`
# on a port and a `tunnel_info` change are followed while running; after SIGTERM the kernel
# forwards again; then the same with `external vnifilter` and `bridge vni delete/add` followed.
# Checks named kvlan_*.
#
# Usage: vm-guest-kernel-vlan.sh OUT. Appends one line per check to OUT/results ("ok NAME" or
# "FAIL NAME: what"), its log to OUT/kernel-vlan.log and the daemons' logs to OUT/kvlan-h*.log.
# Everything it creates is removed on exit.
set -uo pipefail
out=${1:?usage: vm-guest-kernel-vlan.sh OUT}
cd "$(dirname "$0")/.."
bin=${XVTEP_BIN:-$PWD/target/release/xvtep}
results=$out/results
exec >> "$out/kernel-vlan.log" 2>&1
set -x

. scripts/vm-checks.sh

modprobe -a veth bridge vxlan af_packet sch_ingress cls_bpf 2>/dev/null || true

P=${XVTEP_NS_PREFIX:-xvkv}
nss="h1 h2 ns2-1 ns3-1 ns2-2 ns3-2"
work=$(mktemp -d /tmp/xvtep-kvlan.XXXXXX)
pids=(0 0 0)
stop() { # stop HOST: SIGTERM its daemon and wait for it
    local pid=${pids[$1]}
    [ "$pid" != 0 ] || return 0
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pids[$1]=0
}
cleanup() {
    stop 1
    stop 2
    for n in $nss; do ip netns del "$P-$n" 2>/dev/null; done
    cp "$work"/*.log "$out/" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# The point of the guest: a kernel with bridge VLAN filtering. Without it nothing here can run.
ip netns add $P-probe
if ! ip -n $P-probe link add br0 type bridge vlan_filtering 1; then
    fail kvlan_vlan_filtering "this kernel has no bridge VLAN filtering (run it in the guest: make vm-test)"
    ip netns del $P-probe
    exit 0
fi
ip netns del $P-probe
tunnel_device() { # tunnel_device HOST [vnifilter]: the commands of HOST's external vx0 on br0, VID 2/3 <-> VNI 2/3
    cat <<EOC
ip link add vx0 type vxlan external ${2:-} local 192.168.1.$1 dstport 4789
ip link set vx0 master br0
bridge link set dev vx0 vlan_tunnel on
bridge vlan add dev vx0 vid 2
bridge vlan add dev vx0 vid 3
bridge vlan add dev vx0 vid 2 tunnel_info id 2
bridge vlan add dev vx0 vid 3 tunnel_info id 3
EOC
}
for n in $nss; do
    ip netns del "$P-$n" 2>/dev/null
    ip netns add "$P-$n"
    ip netns exec "$P-$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$P-$n" link set lo up
done
# The underlay: one veth between the hosts.
ip -n $P-h1 link add eth0 type veth peer name eth0 netns $P-h2
for i in 1 2; do
    other=$((3 - i))
    h=$P-h$i
    ip -n $h addr add 192.168.1.$i/24 dev eth0
    ip -n $h link set eth0 up
    ip -n $h link add tap1_0 type veth peer name eth0 netns $P-ns2-$i
    ip -n $h link add tap2_0 type veth peer name eth0 netns $P-ns3-$i
    ip -n $P-ns2-$i addr add 10.2.0.$i/24 dev eth0
    ip -n $P-ns3-$i addr add 10.3.0.$i/24 dev eth0
    for c in ns2 ns3; do ip -n $P-$c-$i link set eth0 up mtu 1450; done
    # Seed 000, the kernel's way: VID 2 <-> VNI 2, VID 3 <-> VNI 3, flood lists to the other host.
    ip netns exec $h bash -ex <<EOF
ip link add br0 type bridge vlan_filtering 1 vlan_default_pvid 0
$(tunnel_device $i)
ip link set tap1_0 master br0
ip link set tap2_0 master br0
bridge vlan add dev tap1_0 vid 2 pvid untagged
bridge vlan add dev tap2_0 vid 3 pvid untagged
bridge fdb append 00:00:00:00:00:00 dev vx0 dst 192.168.1.$other src_vni 2 self permanent
bridge fdb append 00:00:00:00:00:00 dev vx0 dst 192.168.1.$other src_vni 3 self permanent
ip link set br0 up
ip link set vx0 up
ip link set tap1_0 up
ip link set tap2_0 up
EOF
    printf '[kernel]\nbridges = ["br0"]\n' > "$work/h$i.toml"
done
ip netns exec $P-h1 bridge vlan show
ip netns exec $P-h1 bridge vlan tunnelshow
ip netns exec $P-h1 bridge fdb show dev vx0

run=kvlan # the daemons' logs: $work/$run-hN.log
reloads() { # reloads HOST: how many kernel-followed reloads its daemon logged
    grep -c "followed a change of the kernel" "$work/$run-h$1.log"
}
reloaded() { # reloaded HOST COUNT: waits (5 s at most) until the daemon logged more than COUNT reloads
    for _ in $(seq 50); do
        (($(reloads "$1") > $2)) && return 0
        sleep 0.1
    done
    return 1
}
flush() { # the containers forget the MACs they resolved
    for n in ns2-1 ns3-1 ns2-2 ns3-2; do ip -n "$P-$n" neigh flush all; done
}

# The kernel's own forwarding first: the reference.
check kvlan_kernel_ping_vni2 "before xvtep, the kernel did not forward ns2-1 -> ns2-2 (VNI 2)" pings ns2-1 10.2.0.2 3
check kvlan_kernel_ping_vni3 "before xvtep, the kernel did not forward ns3-1 -> ns3-2 (VNI 3)" pings ns3-1 10.3.0.2 3

# What xvtep makes of it.
ip netns exec $P-h1 "$bin" check --config "$work/h1.toml" > "$work/check.txt" 2>&1
cat "$work/check.txt"
check kvlan_translated "xvtep check did not read 2 VLAN mappings, 3 ports and 2 flood entries from the kernel" \
    grep -q "2 VLAN mappings, 3 ports, 2 static FDB entries" "$work/check.txt"
flush
for i in 1 2; do
    check "kvlan_start_h$i" "xvtep in [kernel] mode did not start on host $i (see kvlan-h$i.log)" start $i "$work/$run-h$i.log"
done
vlan_show() { ip netns exec $P-h1 "$bin" --socket "$work/h1.sock" vlan show; }
vlan_show
check kvlan_vlan_show "xvtep vlan show does not map VID 2 to VNI 2 and VID 3 to VNI 3 on vxlan0" \
    grep -qzE "vxlan0 +2 tunnel_info id 2
 +3 tunnel_info id 3
" <(vlan_show)
check kvlan_ping_vni2 "ns2-1 -> ns2-2 (VID 2, VNI 2) through xvtep: not 3 of 3 answered" pings ns2-1 10.2.0.2 3
check kvlan_ping_vni3 "ns3-1 -> ns3-2 (VID 3, VNI 3) through xvtep: not 3 of 3 answered" pings ns3-1 10.3.0.2 3
# Write-back in the VLAN of each MAC, as the kernel's bridge learns it; a `bridge fdb del` of
# it in that VLAN is honoured (xvtep forgets the MAC) until the MAC talks again.
mac2=$(ip netns exec $P-ns2-1 cat /sys/class/net/eth0/address)
mac3=$(ip netns exec $P-ns3-1 cat /sys/class/net/eth0/address)
written() { # written MAC PORT VID: MAC is written back on h1's PORT in VLAN VID, and in no other
    local fdb
    fdb=$(ip netns exec $P-h1 bridge fdb show dev "$2") || return 1
    grep -qE "^$1 (dev $2 )?vlan $3 .*extern_learn" <<< "$fdb" &&
        ! grep -E "^$1 " <<< "$fdb" | grep -vqE "^$1 (dev $2 )?vlan $3 "
}
forgotten() { # forgotten MAC KEPT: xvtep on h1 no longer has MAC, and still has KEPT
    local fdb
    fdb=$(ip netns exec $P-h1 "$bin" --socket "$work/h1.sock" fdb show) || return 1
    ! grep -q "$1" <<< "$fdb" && grep -q "$2" <<< "$fdb"
}
ip netns exec $P-h1 bridge fdb show dev tap1_0
ip netns exec $P-h1 bridge fdb show dev tap2_0
check kvlan_written_back_vid2 "ns2-1's MAC $mac2 is not written back on h1's tap1_0 in VLAN 2" within 3 written "$mac2" tap1_0 2
check kvlan_written_back_vid3 "ns3-1's MAC $mac3 is not written back on h1's tap2_0 in VLAN 3" within 3 written "$mac3" tap2_0 3
# A MAC behind the tunnel, where the kernel would have learned it: the external device's own
# entry (dst, src_vni) and the bridge's on the vxlan port in its VLAN, both dynamic. An
# `external` device does not learn unless told (iproute2's default): learning on, followed.
far2=$(ip netns exec $P-ns2-2 cat /sys/class/net/eth0/address)
behind_tunnel() { # behind_tunnel MAC VID VNI: both of h1's entries for MAC, dynamic
    local fdb
    fdb=$(ip netns exec $P-h1 bridge fdb show dev vx0) || return 1
    grep -qE "^$1 (dev vx0 )?dst 192.168.1.2 (vni $3 )?src_vni $3 self *$" <<< "$fdb" &&
        grep -qE "^$1 (dev vx0 )?vlan $2 master br0 *$" <<< "$fdb"
}
n=$(reloads 1)
ip netns exec $P-h1 ip link set vx0 type vxlan learning
check kvlan_learning_reload "learning on h1's vx0 made no reload" reloaded 1 "$n"
sleep 0.3
check kvlan_tunnel_learned "ns2-2 -> ns2-1 with learning on: not 3 of 3 answered" pings ns2-2 10.2.0.1 3
ip netns exec $P-h1 bridge fdb show dev vx0
check kvlan_tunnel_written_back "ns2-2's MAC $far2 is not written back on h1's vx0 as the kernel learns it (dst, src_vni 2, vlan 2)" \
    within 3 behind_tunnel "$far2" 2 2
ip netns exec $P-h1 bridge fdb del "$mac2" dev tap1_0 vlan 2 master
check kvlan_fdb_del_followed "xvtep on h1 still has $mac2 after bridge fdb del ... vlan 2 master" \
    within 3 forgotten "$mac2" "$mac3"
check kvlan_fdb_del_relearned "ns2-1 -> ns2-2 after its MAC was deleted: not 3 of 3 answered" pings ns2-1 10.2.0.2 3
check kvlan_fdb_del_written_again "$mac2 is not written back again on tap1_0 in VLAN 2 after it talked" \
    within 3 written "$mac2" tap1_0 2
ip -n $P-ns3-2 addr add 10.2.0.99/24 dev eth0
check kvlan_isolation "ns2-1 (VNI 2) reached 10.2.0.99 on ns3-2 (VNI 3)" silent ns2-1 10.2.0.99
ip -n $P-ns3-2 addr del 10.2.0.99/24 dev eth0
# The bridge is a port of itself in its own VLANs: h1's stack joins VID 2 (`self`) and is
# reached through xvtep from both hosts.
n=$(reloads 1)
ip netns exec $P-h1 bridge vlan add dev br0 vid 2 pvid untagged self
ip -n $P-h1 addr add 10.2.0.101/24 dev br0
check kvlan_bridge_self_reload "bridge vlan add dev br0 self on h1 made no reload" reloaded 1 "$n"
sleep 0.3
check kvlan_bridge_self_remote "ns2-2 -> h1's br0 in VID 2 (VNI 2): not 3 of 3 answered" pings ns2-2 10.2.0.101 3
check kvlan_bridge_self_local "ns2-1 -> h1's br0 in VID 2: not 3 of 3 answered" pings ns2-1 10.2.0.101 3
ip -n $P-ns3-1 addr add 10.2.0.98/24 dev eth0
check kvlan_bridge_self_isolation "ns3-1 (VID 3) reached h1's br0 in VID 2" silent ns3-1 10.2.0.101
ip -n $P-ns3-1 addr del 10.2.0.98/24 dev eth0

# Followed while running: a port leaves VID 3 and comes back (`bridge vlan del/add`).
n=$(reloads 1)
ip netns exec $P-h1 bridge vlan del dev tap2_0 vid 3
check kvlan_vlan_del_reload "bridge vlan del on h1 made no reload" reloaded 1 "$n"
flush
check kvlan_vlan_del_followed "ns3-1 still reached ns3-2 after tap2_0 left VID 3" silent ns3-1 10.3.0.2
n=$(reloads 1)
ip netns exec $P-h1 bridge vlan add dev tap2_0 vid 3 pvid untagged
check kvlan_vlan_add_reload "bridge vlan add on h1 made no reload" reloaded 1 "$n"
check kvlan_vlan_add_followed "ns3-1 -> ns3-2 after tap2_0 rejoined VID 3: not 3 of 3 answered" pings ns3-1 10.3.0.2 3
# A tunnel_info change: h1 maps VID 3 to VNI 33 (with its flood list), h2 still to VNI 3, so
# VID 3 no longer meets; then h2 too, and it does again.
retunnel() { # retunnel HOST VNI: VID 3 of HOST's vx0 to VNI, flood list included
    local i=$1 other=$((3 - $1))
    ip netns exec $P-h$i bash -ex <<EOF
bridge vlan del dev vx0 vid 3
bridge vlan add dev vx0 vid 3
bridge vlan add dev vx0 vid 3 tunnel_info id $2
bridge fdb append 00:00:00:00:00:00 dev vx0 dst 192.168.1.$other src_vni $2 self permanent
EOF
}
n=$(reloads 1)
retunnel 1 33
check kvlan_tunnel_info_reload "the tunnel_info change on h1 made no reload" reloaded 1 "$n"
sleep 0.3 # the last of the burst's notifications
flush
check kvlan_tunnel_info_followed "ns3-1 reached ns3-2 with VID 3 on VNI 33 on h1 and VNI 3 on h2" silent ns3-1 10.3.0.2
vlan_show
check kvlan_tunnel_info_shown "xvtep vlan show on h1 does not map VID 3 to VNI 33" \
    grep -qE " 3 tunnel_info id 33$" <(vlan_show)
n=$(reloads 2)
retunnel 2 33
check kvlan_tunnel_info_reload_h2 "the tunnel_info change on h2 made no reload" reloaded 2 "$n"
sleep 0.3
check kvlan_tunnel_info_both "ns3-1 -> ns3-2 with VID 3 on VNI 33 on both: not 3 of 3 answered" pings ns3-1 10.3.0.2 3
check kvlan_vni2_untouched "ns2-1 -> ns2-2 after VID 3's changes: not 3 of 3 answered" pings ns2-1 10.2.0.2 3

# After SIGTERM the kernel's bridge and vxlan forward again.
stop 1
stop 2
check kvlan_xvtep_forwarded "h1's exit report shows no VXLAN steered to xvtep: the kernel, not xvtep, forwarded" \
    grep -q "underlay_redirect [1-9]" "$work/kvlan-h1.log"
flush
check kvlan_kernel_again_vni2 "after SIGTERM the kernel did not forward ns2-1 -> ns2-2" pings ns2-1 10.2.0.2 3
check kvlan_kernel_again_vni3 "after SIGTERM the kernel did not forward ns3-1 -> ns3-2 (VNI 33)" pings ns3-1 10.3.0.2 3

# The same with `external vnifilter` (FRR's single VXLAN device): the VNIs the device takes
# are `bridge vni`'s, and `bridge vni delete/add` is followed.
for i in 1 2; do
    other=$((3 - i))
    ip netns exec $P-h$i bash -ex <<EOF
ip link del vx0
$(tunnel_device $i vnifilter)
bridge vni add dev vx0 vni 2
bridge vni add dev vx0 vni 3
bridge fdb append 00:00:00:00:00:00 dev vx0 dst 192.168.1.$other src_vni 2 self permanent
bridge fdb append 00:00:00:00:00:00 dev vx0 dst 192.168.1.$other src_vni 3 self permanent
ip link set vx0 up
EOF
done
ip netns exec $P-h1 bridge vni show
flush
check kvlan_vnifilter_kernel_ping "with vnifilter, the kernel did not forward ns3-1 -> ns3-2" pings ns3-1 10.3.0.2 3
ip netns exec $P-h1 "$bin" check --config "$work/h1.toml" > "$work/check.txt" 2>&1
cat "$work/check.txt"
check kvlan_vnifilter_translated "xvtep check with vnifilter did not read 2 VLAN mappings and 2 flood entries" \
    grep -q "2 VLAN mappings, 3 ports, 2 static FDB entries" "$work/check.txt"
run=kvlan-vnifilter
for i in 1 2; do
    check "kvlan_vnifilter_start_h$i" "xvtep did not start on host $i with vnifilter (see $run-h$i.log)" start $i "$work/$run-h$i.log"
done
check kvlan_vnifilter_ping_vni2 "with vnifilter, ns2-1 -> ns2-2 through xvtep: not 3 of 3 answered" pings ns2-1 10.2.0.2 3
check kvlan_vnifilter_ping_vni3 "with vnifilter, ns3-1 -> ns3-2 through xvtep: not 3 of 3 answered" pings ns3-1 10.3.0.2 3
n=$(reloads 1)
ip netns exec $P-h1 bridge vni delete dev vx0 vni 3
check kvlan_vni_del_reload "bridge vni delete on h1 made no reload" reloaded 1 "$n"
sleep 0.3
flush
check kvlan_vni_del_followed "ns3-1 reached ns3-2 after h1's vx0 dropped VNI 3" silent ns3-1 10.3.0.2
n=$(reloads 1)
ip netns exec $P-h1 bridge vni add dev vx0 vni 3
# Whether the kernel kept VNI 3's flood entry or not, it is there again.
ip netns exec $P-h1 bridge fdb append 00:00:00:00:00:00 dev vx0 dst 192.168.1.2 src_vni 3 self permanent || true
check kvlan_vni_add_reload "bridge vni add on h1 made no reload" reloaded 1 "$n"
sleep 0.3
check kvlan_vni_add_followed "ns3-1 -> ns3-2 after h1's vx0 took VNI 3 again: not 3 of 3 answered" pings ns3-1 10.3.0.2 3
stop 1
stop 2
flush
check kvlan_vnifilter_kernel_again "with vnifilter, after SIGTERM the kernel did not forward ns3-1 -> ns3-2" \
    pings ns3-1 10.3.0.2 3
exit 0
