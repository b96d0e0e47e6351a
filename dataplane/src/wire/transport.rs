//! A checked view of a frame down to its transport header: Ethernet (at most one 802.1Q tag),
//! an IPv4 header (options allowed) or the fixed IPv6 header, then a TCP or UDP header, the
//! whole segment inside the IP packet's length. Segmentation, GRO and checksum completion read
//! frames through it: their rules differ (options, padding), the bounds they rely on do not.

use super::checksum::checksum_sum;
use super::tcp::{TcpHeader, TCP_CHECKSUM_OFFSET};
use super::{EthernetHeader, IpPacket, IP_PROTO_TCP, IP_PROTO_UDP, UDP_HEADER_LEN};

/// Offset of the checksum field in a UDP header.
const UDP_CHECKSUM_OFFSET: usize = 6;

/// A frame that carries a whole TCP or UDP segment right behind its IP header: not a
/// fragment, no IPv6 extension headers. Checked once by [`TransportFrame::new_checked`]; the
/// offsets it gives lie within the frame, in order (`l3 <= l4 <= header_end <= end`).
#[derive(Debug, Clone, Copy)]
pub struct TransportFrame<'a> {
    frame: &'a [u8],
    eth: EthernetHeader,
    ip: IpPacket<'a>,
    /// The TCP header; `None`: UDP.
    tcp: Option<TcpHeader<'a>>,
}

impl<'a> TransportFrame<'a> {
    /// The view of `frame`, if its headers are all there and consistent.
    #[inline]
    pub fn new_checked(frame: &'a [u8]) -> Option<TransportFrame<'a>> {
        let eth = EthernetHeader::parse(frame).ok()?;
        let ip = IpPacket::new_checked(eth.ethertype, &frame[eth.len()..])?;
        if ip.is_fragment() {
            return None;
        }
        let tcp = match ip.protocol() {
            IP_PROTO_TCP => Some(TcpHeader::new_checked(ip.payload())?),
            IP_PROTO_UDP if ip.payload().len() >= UDP_HEADER_LEN => None,
            _ => return None,
        };
        Some(TransportFrame { frame, eth, ip, tcp })
    }

    #[inline]
    pub fn eth(&self) -> &EthernetHeader {
        &self.eth
    }

    #[inline]
    pub fn ip(&self) -> &IpPacket<'a> {
        &self.ip
    }

    /// The TCP header, if the segment is TCP (else it is UDP).
    #[inline]
    pub fn tcp(&self) -> Option<&TcpHeader<'a>> {
        self.tcp.as_ref()
    }

    #[inline]
    pub fn is_tcp(&self) -> bool {
        self.tcp.is_some()
    }

    /// Where the IP header starts.
    #[inline]
    pub fn l3(&self) -> usize {
        self.eth.len()
    }

    /// Where the transport header starts.
    #[inline]
    pub fn l4(&self) -> usize {
        self.l3() + self.ip.header_len()
    }

    /// Where the transport header ends (TCP options included): every header before the payload.
    #[inline]
    pub fn header_end(&self) -> usize {
        self.l4() + self.tcp.map_or(UDP_HEADER_LEN, |t| t.header_len())
    }

    /// Where the IP packet ends; link-layer padding may follow it.
    #[inline]
    pub fn end(&self) -> usize {
        self.l3() + self.ip.total_len()
    }

    /// The IP packet ends where the frame does.
    #[inline]
    pub fn fills_frame(&self) -> bool {
        self.end() == self.frame.len()
    }

    /// The frame up to the transport segment: its Ethernet and IP headers.
    #[inline]
    pub fn link_and_ip_headers(&self) -> &'a [u8] {
        &self.frame[..self.l4()]
    }

    /// The transport segment: its header and payload.
    #[inline]
    pub fn segment(&self) -> &'a [u8] {
        &self.frame[self.l4()..self.end()]
    }

    /// Bytes of transport payload.
    #[inline]
    pub fn payload_len(&self) -> usize {
        self.end() - self.header_end()
    }

    /// Offset of the transport checksum field in the segment.
    #[inline]
    pub fn checksum_offset(&self) -> usize {
        if self.is_tcp() {
            TCP_CHECKSUM_OFFSET
        } else {
            UDP_CHECKSUM_OFFSET
        }
    }

    /// The transport checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        let at = self.l4() + self.checksum_offset();
        u16::from_be_bytes([self.frame[at], self.frame[at + 1]])
    }

    /// The sum of the transport checksum's pseudo-header (addresses, protocol, length).
    #[inline]
    pub fn pseudo_header_sum(&self) -> u64 {
        checksum_sum(self.ip.addresses()) + self.ip.protocol() as u64 + self.segment().len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{IpRepr, UdpRepr, ETHERTYPE_VLAN};
    use std::net::IpAddr;

    /// A frame of `ip` with `l4` bytes of transport: a TCP header of `doff` bytes or a UDP
    /// header, then zeros.
    fn frame(src: &str, dst: &str, protocol: u8, l4: usize, doff: usize) -> Vec<u8> {
        let (src, dst): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        let ip = IpRepr { src, dst, protocol, ttl: 64, payload_len: l4 as u16 };
        let mut f = vec![0u8; 14 + ip.header_len() + l4];
        f[12..14].copy_from_slice(&ip.ethertype().to_be_bytes());
        let at = 14 + ip.emit(&mut f[14..]);
        if protocol == IP_PROTO_TCP {
            f[at + 12] = ((doff / 4) << 4) as u8;
        } else {
            UdpRepr { src_port: 1, dst_port: 2, payload_len: (l4 - 8) as u16 }.emit(&mut f[at..]);
        }
        f
    }

    #[test]
    fn finds_each_layer() {
        let f = frame("10.0.0.1", "10.0.0.2", IP_PROTO_TCP, 32 + 100, 32);
        let t = TransportFrame::new_checked(&f).unwrap();
        assert_eq!((t.l3(), t.l4(), t.header_end(), t.end()), (14, 34, 66, f.len()));
        assert!(t.is_tcp() && t.fills_frame() && t.ip().is_ipv4());
        assert_eq!((t.payload_len(), t.checksum_offset()), (100, 16));
        assert_eq!(t.pseudo_header_sum(), checksum_sum(&f[26..34]) + 6 + 132);

        let f = frame("fd00::1", "fd00::2", IP_PROTO_UDP, 8 + 5, 0);
        let mut padded = f.clone();
        padded.extend_from_slice(&[0; 10]);
        let t = TransportFrame::new_checked(&padded).unwrap();
        assert_eq!((t.l4(), t.header_end(), t.end(), t.checksum_offset()), (54, 62, f.len(), 6));
        assert!(!t.is_tcp() && !t.fills_frame() && !t.ip().is_ipv4());

        let mut tagged = f[..12].to_vec();
        tagged.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        tagged.extend_from_slice(&[0, 5]);
        tagged.extend_from_slice(&f[12..]);
        let t = TransportFrame::new_checked(&tagged).unwrap();
        assert_eq!((t.l3(), t.l4(), t.end()), (18, 58, tagged.len()));
    }

    #[test]
    fn refuses_what_does_not_hold_a_whole_transport_header() {
        let tcp = frame("10.0.0.1", "10.0.0.2", IP_PROTO_TCP, 40, 20);
        let udp6 = frame("fd00::1", "fd00::2", IP_PROTO_UDP, 8, 0);
        // Every cut: the IP length no longer fits, or the headers do not.
        for f in [&tcp, &udp6] {
            for n in 0..f.len() {
                assert!(TransportFrame::new_checked(&f[..n]).is_none(), "{n} bytes");
            }
        }
        let with = |f: &[u8], at: usize, b: u8| {
            let mut f = f.to_vec();
            f[at] = b;
            TransportFrame::new_checked(&f).is_none()
        };
        assert!(with(&tcp, 14, 0x44), "IHL 4");
        assert!(with(&tcp, 14, 0x4f), "IHL beyond the packet");
        assert!(with(&tcp, 20, 0x20), "a fragment");
        assert!(with(&tcp, 23, 1), "not TCP or UDP");
        assert!(with(&tcp, 46, 0x40), "data offset below 20");
        assert!(with(&tcp, 46, 0xf0), "data offset beyond the segment");
        assert!(with(&udp6, 20, 44), "an IPv6 extension header");
        assert!(with(&udp6, 19, 7), "an IPv6 payload length shorter than UDP's header");
        // The short IPv4 header a superframe once came with: IHL 5, total length 8.
        let mut short = tcp[..22].to_vec();
        short[16..18].copy_from_slice(&8u16.to_be_bytes());
        assert!(TransportFrame::new_checked(&short).is_none());
    }
}
