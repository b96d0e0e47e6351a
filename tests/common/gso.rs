//! The kernel's cut of a UDP GSO superframe (`VIRTIO_NET_HDR_GSO_UDP_L4`), written from its
//! rules (`__udp_gso_segment`, `inet_gso_segment`, `ipv6_gso_segment`, `skb_checksum_help`)
//! and not from xvtep's code: the headers up to `hdr_len` repeated before every `gso_size`
//! bytes of payload, each datagram's IP length and UDP length its own, the IPv4 ID counting
//! up from the superframe's, the IPv4 header checksum recomputed, and the UDP checksum
//! completed from the seed the superframe carries (the pseudo-header sum of its own length,
//! moved to each datagram's length as `__udp_gso_segment` does): a wrong seed makes a wrong
//! checksum, as it would on the wire. The superframe's own headers are checked first, as the
//! kernel and the devices on the way read them.

use xvtep_dataplane::wire::virtio_net::{VirtioNetHdr, VNET_F_NEEDS_CSUM, VNET_GSO_UDP_L4};

use crate::tcp::sum16;

/// The datagrams the kernel cuts `frame` (Ethernet + IP + UDP) into, as `hdr` asks.
pub fn udp_gso_cut(frame: &[u8], hdr: &VirtioNetHdr) -> Vec<Vec<u8>> {
    assert_eq!((hdr.gso_type, hdr.flags & VNET_F_NEEDS_CSUM), (VNET_GSO_UDP_L4, VNET_F_NEEDS_CSUM));
    let (udp, h) = (hdr.csum_start as usize, hdr.hdr_len as usize);
    assert_eq!((hdr.csum_offset, h), (6, udp + 8), "the checksum is UDP's, the header ends after it");
    let ipv6 = frame[14] >> 4 == 6;
    check_superframe(frame, udp, ipv6);
    let payload = &frame[h..];
    assert!(payload.len() > hdr.gso_size as usize, "the kernel refuses a superframe of one datagram");
    assert!(payload.len().div_ceil(hdr.gso_size as usize) <= 64, "more than UDP_MAX_SEGMENTS");
    let seed = u16::from_be_bytes([frame[udp + 6], frame[udp + 7]]);
    let old_len = u16::from_be_bytes([frame[udp + 4], frame[udp + 5]]);
    payload
        .chunks(hdr.gso_size as usize)
        .enumerate()
        .map(|(i, chunk)| {
            let mut d = [&frame[..h], chunk].concat();
            let udp_len = d.len() - udp;
            if ipv6 {
                d[18..20].copy_from_slice(&(udp_len as u16).to_be_bytes());
            } else {
                d[16..18].copy_from_slice(&((udp_len + 20) as u16).to_be_bytes());
                let id = u16::from_be_bytes([d[18], d[19]]).wrapping_add(i as u16);
                d[18..20].copy_from_slice(&id.to_be_bytes());
                d[24..26].copy_from_slice(&[0, 0]);
                let c = fold(sum16(&d[14..34]));
                d[24..26].copy_from_slice(&c.to_be_bytes());
            }
            d[udp + 4..udp + 6].copy_from_slice(&(udp_len as u16).to_be_bytes());
            // csum16_add(csum16_sub(check, old len), new len), then the device's completion.
            let moved = !fold(seed as u64 + (!old_len) as u64 + udp_len as u64);
            d[udp + 6..udp + 8].copy_from_slice(&moved.to_be_bytes());
            let mut c = fold(sum16(&d[udp..]));
            if c == 0 {
                c = 0xffff;
            }
            d[udp + 6..udp + 8].copy_from_slice(&c.to_be_bytes());
            d
        })
        .collect()
}

/// The superframe's own headers, as read before it is cut: an IP length that is the frame's
/// (the kernel trims a packet to it where it passes one whole), a valid IPv4 header checksum,
/// the UDP length of the whole, and a frame shorter than the 64 KiB a device cuts whole.
fn check_superframe(frame: &[u8], udp: usize, ipv6: bool) {
    assert!(frame.len() <= 65535, "a superframe of {} bytes: cut in software, dropped", frame.len());
    let be = |at: usize| u16::from_be_bytes([frame[at], frame[at + 1]]) as usize;
    if ipv6 {
        assert_eq!(be(18), frame.len() - 54, "IPv6 payload length");
    } else {
        assert_eq!(be(16), frame.len() - 14, "IPv4 total length");
        assert_eq!(fold(sum16(&frame[14..34])), 0, "IPv4 header checksum");
    }
    assert_eq!(be(udp + 4), frame.len() - udp, "UDP length");
}

/// The checksum of a sum: folded and complemented.
fn fold(mut s: u64) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Whether the UDP checksum of datagram `d` (Ethernet + IP + UDP) is right, and `d` with that
/// checksum zeroed: what a datagram sent with a zero checksum is otherwise.
pub fn checked_and_zeroed(d: &[u8]) -> (bool, Vec<u8>) {
    let ipv6 = d[14] >> 4 == 6;
    let udp = if ipv6 { 54 } else { 34 };
    let addresses = if ipv6 { sum16(&d[22..54]) } else { sum16(&d[26..34]) };
    let ok = fold(addresses + 17 + (d.len() - udp) as u64 + sum16(&d[udp..])) == 0;
    let mut z = d.to_vec();
    z[udp + 6..udp + 8].copy_from_slice(&[0, 0]);
    (ok, z)
}
