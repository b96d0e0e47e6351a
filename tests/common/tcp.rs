//! TCP frames as a guest's stack builds them, built with etherparse: the segments and
//! superframes that the superframe and coalescing tests feed xvtep and expect back.

use etherparse::{IpHeaders, IpNumber, Ipv4Header, Ipv6Header, PacketBuilder, TcpOptionElement};

use crate::{mac, Mac};

/// Flags beyond ACK (which every frame here has).
#[derive(Clone, Copy, Default, Debug)]
pub struct Flags {
    pub psh: bool,
    pub fin: bool,
    pub cwr: bool,
    pub syn: bool,
    pub rst: bool,
    pub urg: bool,
}

/// PSH, FIN and CWR: what a superframe's header may carry for segmentation to sort out.
pub const PSH_FIN_CWR: Flags = Flags { psh: true, fin: true, cwr: true, syn: false, rst: false, urg: false };

/// One TCP frame's headers; [`TcpFrame::build`] puts a payload behind them.
#[derive(Clone, Copy, Debug)]
pub struct TcpFrame {
    pub src: Mac,
    pub dst: Mac,
    pub v6: bool,
    pub seq: u32,
    /// IPv4 identification.
    pub ident: u16,
    /// IPv4 TOS / IPv6 traffic class.
    pub tos: u8,
    pub ttl: u8,
    pub sport: u16,
    /// TCP timestamp value (the option's bytes differ with it).
    pub tsval: u32,
    pub flags: Flags,
}

impl TcpFrame {
    /// Port 40000 of fd00::1 / 10.2.0.1 at `src` to port 5201 at `dst`, DF set, TTL 64, ACK 77,
    /// window 502, timestamps.
    pub fn new(src: &str, dst: Mac, v6: bool, seq: u32) -> TcpFrame {
        TcpFrame {
            src: mac(src),
            dst,
            v6,
            seq,
            ident: 100,
            tos: 0,
            ttl: 64,
            sport: 40000,
            tsval: 1,
            flags: Flags::default(),
        }
    }

    /// The L4 offset of frames built with these headers.
    pub fn l4(&self) -> usize {
        if self.v6 {
            14 + 40
        } else {
            14 + 20
        }
    }

    /// The headers' length, up to the end of TCP (12 bytes of options).
    pub fn hdr_len(&self) -> usize {
        self.l4() + 32
    }

    pub fn build(&self, data: &[u8]) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2(self.src, self.dst);
        let ip = if self.v6 {
            let mut h = Ipv6Header {
                hop_limit: self.ttl,
                source: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                destination: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                ..Default::default()
            };
            h.traffic_class = self.tos;
            IpHeaders::Ipv6(h, Default::default())
        } else {
            let mut h = Ipv4Header::new(0, self.ttl, IpNumber::TCP, [10, 2, 0, 1], [10, 2, 0, 2]).unwrap();
            h.identification = self.ident;
            h.dont_fragment = true;
            h.dscp = etherparse::Ipv4Dscp::try_new(self.tos >> 2).unwrap();
            h.ecn = etherparse::Ipv4Ecn::try_new(self.tos & 3).unwrap();
            IpHeaders::Ipv4(h, Default::default())
        };
        let ts = TcpOptionElement::Timestamp(self.tsval, 2);
        let mut b = eth
            .ip(ip)
            .tcp(self.sport, 5201, self.seq, 502)
            .ack(77)
            .options(&[TcpOptionElement::Noop, TcpOptionElement::Noop, ts])
            .unwrap();
        let f = self.flags;
        if f.psh {
            b = b.psh();
        }
        if f.fin {
            b = b.fin();
        }
        if f.cwr {
            b = b.cwr();
        }
        if f.syn {
            b = b.syn();
        }
        if f.rst {
            b = b.rst();
        }
        if f.urg {
            b = b.urg(0);
        }
        let mut out = Vec::new();
        b.write(&mut out, data).unwrap();
        out
    }
}

/// Payload bytes that differ from offset to offset (a misplaced byte shows).
pub fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// RFC 1071 sum of big-endian 16-bit words, not folded.
pub fn sum16(b: &[u8]) -> u64 {
    b.chunks(2).map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u64).sum()
}

/// Leaves the checksum at `l4 + at` partial, as a stack with checksum offload does: the
/// pseudo-header sum `pseudo`, folded, not complemented.
pub fn make_partial(frame: &mut [u8], l4: usize, at: usize, pseudo: u64) {
    let mut s = pseudo;
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    frame[l4 + at..l4 + at + 2].copy_from_slice(&(s as u16).to_be_bytes());
}

/// The pseudo-header sum of the TCP frame `frame` (IPv4 or IPv6, untagged, L4 at `l4`).
pub fn tcp_pseudo_sum(frame: &[u8], l4: usize) -> u64 {
    let len = (frame.len() - l4) as u64;
    if l4 == 54 {
        sum16(&frame[22..54]) + 6 + len
    } else {
        sum16(&frame[26..34]) + 6 + len
    }
}
