//! A packet too big for the tunnel (README "MTU"): dropped as `mtu_exceeded`, and its sender
//! told the MTU that fits, as the kernel's vxlan on a bridge tells it
//! (`iptunnel_pmtud_build_icmp(v6)`): an ICMP "fragmentation needed" or ICMPv6 "packet too
//! big" back out of the port the packet came in on, from the packet's destination MAC and
//! address, with its TTL, quoting as much of it as fits in 576 or 1280 bytes. Every expected
//! message is built independently with etherparse.

use etherparse::{Icmpv4Type, Icmpv6Type, PacketBuilder};
use xvtep_tests::*;

const A: Mac = [2, 0, 0, 0, 0, 0x0a];
const FAR: Mac = [2, 0, 0, 0, 0, 0x77];

fn config(local: &str, remotes: &[&str]) -> String {
    let mut c = format!(
        "[tunnel]\nlocal = \"{local}\"\ndev = \"eth0\"\n[[vlan]]\nvid = 10\nvni = 1000\n\
         [[port]]\nname = \"p1\"\nvlans = [{{ vid = 10, pvid = true, untagged = true }}]\n\
         [[port]]\nname = \"trunk\"\nvlans = [{{ vid = 10 }}]\n"
    );
    for r in remotes {
        c += &format!("[[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = 1000\ndst = \"{r}\"\n");
    }
    c
}

/// The message the kernel sends for IPv4 `packet` (an Ethernet frame from A to FAR).
fn frag_needed(packet: &[u8], mtu: u16) -> Vec<u8> {
    let ip = &packet[14..];
    let (src, dst, ttl) =
        (<[u8; 4]>::try_from(&ip[12..16]).unwrap(), <[u8; 4]>::try_from(&ip[16..20]).unwrap(), ip[8]);
    let quoted = &ip[..ip.len().min(548)];
    let b = PacketBuilder::ethernet2(FAR, A).ipv4(dst, src, ttl).icmpv4(Icmpv4Type::DestinationUnreachable(
        etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu },
    ));
    let mut out = Vec::new();
    b.write(&mut out, quoted).unwrap();
    out
}

/// A UDP datagram over IPv6 from A (2001:db8:1::a) to FAR (2001:db8:1::77), `len` bytes of
/// payload, hop limit 50.
fn udp6(len: usize) -> Vec<u8> {
    let (src, dst) = (
        [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a],
        [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x77],
    );
    let b = PacketBuilder::ethernet2(A, FAR).ipv6(src, dst, 50).udp(1, 2);
    let mut out = Vec::new();
    b.write(&mut out, &vec![0x5a; len]).unwrap();
    out
}

fn too_big6(packet: &[u8], mtu: u32) -> Vec<u8> {
    let ip = &packet[14..];
    let src: [u8; 16] = ip[8..24].try_into().unwrap();
    let dst: [u8; 16] = ip[24..40].try_into().unwrap();
    let b = PacketBuilder::ethernet2(FAR, A).ipv6(dst, src, ip[7]).icmpv6(Icmpv6Type::PacketTooBig { mtu });
    let mut out = Vec::new();
    b.write(&mut out, &ip[..ip.len().min(1232)]).unwrap();
    out
}

/// The switch with FAR learned behind `remote`.
fn learned(local: &str, remote: &str) -> Harness {
    let mut h = Harness::new(&config(local, &[remote]));
    let from_far = udp_frame(FAR, A, "10.1.0.7", "10.1.0.1", 1, 1, b"x");
    let outer = Outer::from_peer(remote, local);
    assert_eq!(h.send(0.0, "eth0", &vxlan(&outer, 1000, &from_far)).len(), 2);
    h
}

fn too_big_sent(h: &Harness, port: &str) -> u64 {
    h.stats().ports.iter().find(|p| p.name == port).map_or(0, |p| p.too_big_sent)
}

#[test]
fn an_ipv4_packet_with_df_too_big_for_the_tunnel_gets_fragmentation_needed() {
    let mut h = learned("10.0.0.1", "10.0.0.2");
    // 1500 bytes of IP: 1550 on the underlay of 1500; 1450 fit.
    let big = udp_frame(A, FAR, "10.1.0.1", "10.1.0.7", 1, 1, &[7u8; 1472]);
    let out = h.send(1.0, "p1", &big);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, "p1");
    assert_frame(&out[0].1, &frag_needed(&big, 1450));
    assert_eq!(out[0].1.len(), 14 + 576);
    assert_eq!(h.drops().into_iter().collect::<Vec<_>>(), [("mtu_exceeded", 1)]);
    assert_eq!(too_big_sent(&h, "p1"), 1);
    h.assert_tcpdump_clean();
}

#[test]
fn the_message_to_a_trunk_port_carries_the_packets_vlan() {
    let mut h = learned("10.0.0.1", "10.0.0.2");
    let big = udp_frame(A, FAR, "10.1.0.1", "10.1.0.7", 1, 1, &[7u8; 1472]);
    let out = h.send(1.0, "trunk", &tagged(&big, 10, 0));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, "trunk");
    assert_frame(&out[0].1, &tagged(&frag_needed(&big, 1450), 10, 0));
}

#[test]
fn a_packet_flooded_to_several_remotes_gets_one_message() {
    let mut h = Harness::new(&config("10.0.0.1", &["10.0.0.2", "10.0.0.3", "10.0.0.4"]));
    // FAR unknown: flooded (to the trunk port as it is, too big only for the tunnel).
    let big = udp_frame(A, FAR, "10.1.0.1", "10.1.0.7", 1, 1, &[7u8; 1472]);
    let out = h.send(1.0, "p1", &big);
    let ports: Vec<&str> = out.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(ports, ["trunk", "p1"]);
    assert_frame(&out[1].1, &frag_needed(&big, 1450));
    assert_eq!(h.drops().into_iter().collect::<Vec<_>>(), [("mtu_exceeded", 3)]);
    assert_eq!(too_big_sent(&h, "p1"), 1);
}

#[test]
fn a_packet_to_a_group_mac_gets_no_message() {
    // Its source MAC would be the group's, which the sender drops.
    let mut h = Harness::new(&config("10.0.0.1", &["10.0.0.2"]));
    let group: Mac = [0x01, 0x00, 0x5e, 0, 0, 9];
    let big = udp_frame(A, group, "10.1.0.1", "10.1.0.7", 1, 1, &[7u8; 1472]);
    let out = h.send(1.0, "p1", &big);
    assert_eq!(out.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), ["trunk"]);
    assert_eq!(too_big_sent(&h, "p1"), 0);
}

#[test]
fn a_packet_without_df_or_one_that_fits_gets_no_message() {
    let mut h = learned("10.0.0.1", "10.0.0.2");
    let mut no_df = udp_frame(A, FAR, "10.1.0.1", "10.1.0.7", 1, 1, &[7u8; 1472]);
    no_df[20] = 0; // flags: DF off
    let sum = no_df[24..26].to_vec();
    let fix = u16::from_be_bytes([sum[0], sum[1]]).wrapping_add(0x4000); // ones' complement: +DF
    no_df[24..26].copy_from_slice(&fix.to_be_bytes());
    assert!(h.send(1.0, "p1", &no_df).is_empty());
    assert_eq!(h.drops().into_iter().collect::<Vec<_>>(), [("mtu_exceeded", 1)]);
    let fits = udp_frame(A, FAR, "10.1.0.1", "10.1.0.7", 1, 1, &[7u8; 1422]);
    let out = h.send(2.0, "p1", &fits);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, "eth0");
    assert_eq!(too_big_sent(&h, "p1"), 0);
}

#[test]
fn an_ipv6_packet_too_big_for_an_ipv6_underlay_gets_packet_too_big() {
    let mut h = learned("2001:db8::1", "2001:db8::2");
    // 1460 bytes of IP: over the 1430 an IPv6 underlay of 1500 leaves (70 of overhead).
    let big = udp6(1412);
    let out = h.send(1.0, "p1", &big);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, "p1");
    assert_frame(&out[0].1, &too_big6(&big, 1430));
    assert_eq!(out[0].1.len(), 14 + 1280);
    assert_eq!(too_big_sent(&h, "p1"), 1);
    let fits = udp6(1382);
    assert_eq!(h.send(2.0, "p1", &fits).len(), 1);
}
