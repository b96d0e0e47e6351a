//! Shared helpers of xvtep's integration tests.
//!
//! Frames are built here independently of xvtep's own `wire` code: with etherparse for
//! Ethernet/IPv4/UDP/ICMP (its checksums are its own), and ARP byte by byte from RFC 826. An
//! expected frame is therefore an independent statement of what should appear on the wire.

pub mod gso;
pub mod nd;
pub mod tcp;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use etherparse::{
    IpHeaders, IpNumber, Ipv4Extensions, Ipv4Header, Ipv6Extensions, Ipv6Header, PacketBuilder,
};
use xvtep_dataplane::events::Event;
use xvtep_dataplane::fdb::Flushed;
use xvtep_dataplane::ids::NANOS_PER_SEC;
use xvtep_dataplane::pipeline::udp_gso;
use xvtep_dataplane::rx_checksums::underlay_checksums;
use xvtep_dataplane::wire::virtio_net::VirtioNetHdr;
use xvtep_dataplane::{
    AgeingTimer, Config, Nanos, NextHops, Pipeline, PortId, RxFrame, Stats, Switch, TxBatch, Underlay,
};

pub type Mac = [u8; 6];

/// Parses "02:00:00:00:00:01".
pub fn mac(s: &str) -> Mac {
    let v: Vec<u8> = s.split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
    v.try_into().unwrap()
}

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub const BROADCAST: Mac = [0xff; 6];

/// The MAC replay assumes for an underlay address without a `[[nexthop]]`: 02:00 + the
/// address (its last four bytes for IPv6).
pub fn underlay_mac(addr: &str) -> Mac {
    let o = match addr.parse::<IpAddr>().unwrap() {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => v6.octets()[12..].try_into().unwrap(),
    };
    [0x02, 0x00, o[0], o[1], o[2], o[3]]
}

fn arp(op: u16, eth_dst: Mac, sha: Mac, spa: &str, tha: Mac, tpa: &str) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&eth_dst);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(&ip(spa).octets());
    f.extend_from_slice(&tha);
    f.extend_from_slice(&ip(tpa).octets());
    f
}

/// A broadcast ARP request "who has `tpa`? tell `spa`".
pub fn arp_request(sha: Mac, spa: &str, tpa: &str) -> Vec<u8> {
    arp(1, BROADCAST, sha, spa, [0; 6], tpa)
}

/// A unicast ARP reply "`spa` is at `sha`" to (`tha`, `tpa`).
pub fn arp_reply(sha: Mac, spa: &str, tha: Mac, tpa: &str) -> Vec<u8> {
    arp(2, tha, sha, spa, tha, tpa)
}

/// An ICMP echo request as Linux ping sends it (DF set, TTL 64), with a 56-byte payload.
pub fn icmp_echo(src: Mac, dst: Mac, sip: &str, dip: &str, seq: u16) -> Vec<u8> {
    let payload: Vec<u8> = (0..56u8).collect();
    let b = PacketBuilder::ethernet2(src, dst)
        .ipv4(ip(sip).octets(), ip(dip).octets(), 64)
        .icmpv4_echo_request(0x1234, seq);
    let mut out = Vec::new();
    b.write(&mut out, &payload).unwrap();
    out
}

/// A UDP datagram in an Ethernet frame (DF set, TTL 64) with `payload`.
pub fn udp_frame(
    src: Mac,
    dst: Mac,
    sip: &str,
    dip: &str,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst).ipv4(ip(sip).octets(), ip(dip).octets(), 64).udp(sport, dport);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// `frame` with an 802.1Q tag (VID `vid`, priority `pcp`) inserted after the MACs.
pub fn tagged(frame: &[u8], vid: u16, pcp: u8) -> Vec<u8> {
    let tci = (pcp as u16) << 13 | vid;
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

/// The outer headers of a VXLAN frame.
#[derive(Clone, Debug)]
pub struct Outer {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    /// IPv4 or IPv6 (then `ident` and `df` do not apply, `ttl` is the hop limit and `tos` the
    /// traffic class).
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub ident: u16,
    pub ttl: u8,
    pub tos: u8,
    pub df: bool,
    /// Compute the UDP checksum (else 0).
    pub udp_csum: bool,
    /// IPv6 only.
    pub flow_label: u32,
}

impl Outer {
    /// What a peer VTEP at `src` sends to us at `dst`: next-hop MACs as replay derives them.
    pub fn from_peer(src: &str, dst: &str) -> Outer {
        Outer {
            src_mac: underlay_mac(src),
            dst_mac: underlay_mac(dst),
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            sport: 50000,
            dport: 4789,
            ident: 0,
            ttl: 64,
            tos: 0,
            df: false,
            udp_csum: true,
            flow_label: 0,
        }
    }
}

/// VXLAN header bytes: flags word then VNI << 8.
pub fn vxlan_header(flags: u32, vni: u32, reserved_low: u8) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..4].copy_from_slice(&flags.to_be_bytes());
    h[4..].copy_from_slice(&((vni << 8) | reserved_low as u32).to_be_bytes());
    h
}

/// A VXLAN-encapsulated `inner` frame with the standard header (I flag, `vni`).
pub fn vxlan(o: &Outer, vni: u32, inner: &[u8]) -> Vec<u8> {
    vxlan_raw(o, &vxlan_header(0x0800_0000, vni, 0), inner)
}

/// A VXLAN frame with an arbitrary 8-byte VXLAN header.
pub fn vxlan_raw(o: &Outer, header: &[u8; 8], inner: &[u8]) -> Vec<u8> {
    let mut payload = header.to_vec();
    payload.extend_from_slice(inner);
    let (ip, ip_len) = match (o.src, o.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let mut iph = Ipv4Header::new(0, o.ttl, IpNumber::UDP, src.octets(), dst.octets()).unwrap();
            iph.identification = o.ident;
            iph.dont_fragment = o.df;
            iph.dscp = etherparse::Ipv4Dscp::try_new(o.tos >> 2).unwrap();
            iph.ecn = etherparse::Ipv4Ecn::try_new(o.tos & 3).unwrap();
            (IpHeaders::Ipv4(iph, Ipv4Extensions::default()), 20)
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let iph = Ipv6Header {
                traffic_class: o.tos,
                flow_label: etherparse::Ipv6FlowLabel::try_new(o.flow_label).unwrap(),
                payload_length: 0,
                next_header: IpNumber::UDP,
                hop_limit: o.ttl,
                source: src.octets(),
                destination: dst.octets(),
            };
            (IpHeaders::Ipv6(iph, Ipv6Extensions::default()), 40)
        }
        _ => panic!("outer addresses of two families"),
    };
    let b = PacketBuilder::ethernet2(o.src_mac, o.dst_mac).ip(ip).udp(o.sport, o.dport);
    let mut out = Vec::new();
    b.write(&mut out, &payload).unwrap();
    if !o.udp_csum {
        out[14 + ip_len + 6..14 + ip_len + 8].copy_from_slice(&[0, 0]);
    }
    out
}

/// Asserts that `got` is exactly the VXLAN frame xvtep at `local` should send to `remote` with
/// `inner` in `vni` (default knobs: TTL 64, DF clear, UDP checksum on, IP ID `ident`; over
/// IPv6: hop limit 64, traffic class and flow label 0). The UDP
/// source port is a hash of the inner flow: it must lie in the default range, and it is taken
/// from `got`; returned so callers can check it is stable per flow.
pub fn assert_encap(got: &[u8], local: &str, remote: &str, vni: u32, ident: u16, inner: &[u8]) -> u16 {
    let at = 14 + if local.contains(':') { 40 } else { 20 };
    assert!(got.len() >= at + 16, "frame too short for VXLAN: {got:02x?}");
    let sport = u16::from_be_bytes([got[at], got[at + 1]]);
    assert!((32768..=60999).contains(&sport), "source port {sport} outside the default range");
    let mut o = Outer::from_peer(local, remote);
    o.sport = sport;
    o.ident = ident;
    let want = vxlan(&o, vni, inner);
    assert_frame(got, &want);
    sport
}

/// Byte-exact comparison with a readable failure.
#[track_caller]
pub fn assert_frame(got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!(
            "frames differ at byte {first} (got {} bytes, want {})\n got: {:02x?}\nwant: {:02x?}",
            got.len(),
            want.len(),
            got,
            want
        );
    }
}

/// A switch driven frame by frame through the real pipeline, recording everything it sends.
pub struct Harness {
    pub switch: Arc<Switch>,
    pipeline: xvtep_dataplane::Pipeline,
    tx: TxBatch,
    /// Interface names by port id; the tunnel port appears as the underlay device.
    pub names: Vec<String>,
    /// Everything sent so far: (time, interface, frame).
    pub sent: Vec<(Nanos, String, Vec<u8>)>,
    pub events: crossbeam_channel::Receiver<Event>,
    ageing: AgeingTimer,
    /// The UDP superframes the last batch's encapsulated segments make (datagrams, header).
    pub udp_superframes: Vec<(usize, VirtioNetHdr)>,
}

/// Interface names by port id (the tunnel port as the underlay device; "" for a vacant id).
fn interface_names(switch: &Switch) -> Vec<String> {
    let topo = switch.topology();
    let mut names: Vec<String> = topo.ports.iter().map(|p| p.name.clone()).collect();
    names[0] = topo.tunnel.dev.clone();
    names
}

/// Seconds to switch-clock nanoseconds.
pub fn secs(s: f64) -> Nanos {
    (s * NANOS_PER_SEC as f64).round() as Nanos
}

impl Harness {
    pub fn new(config: &str) -> Harness {
        Self::with_nexthops(config, NextHops::with_fallback())
    }

    pub fn with_nexthops(config: &str, nexthops: NextHops) -> Harness {
        let config = Config::parse(config, "test.toml").unwrap_or_else(|e| panic!("{e}"));
        let switch = Switch::new(&config, Underlay::for_replay(&config), nexthops);
        let events = switch.events.subscribe(1 << 16);
        let pipeline = Pipeline::new(&switch);
        Harness {
            names: interface_names(&switch),
            switch,
            pipeline,
            tx: TxBatch::default(),
            sent: Vec::new(),
            events,
            ageing: AgeingTimer::default(),
            udp_superframes: Vec::new(),
        }
    }

    /// Applies a changed configuration to the running switch, as the control socket does
    /// (ports may come and go); returns the FDB entries that went with removed ports.
    pub fn reconfigure(&mut self, config: &str) -> Vec<Flushed> {
        let config = Config::parse(config, "changed.toml").unwrap_or_else(|e| panic!("{e}"));
        let removed = self.switch.apply_topology(&config, Underlay::for_replay(&config));
        self.names = interface_names(&self.switch);
        removed
    }

    fn port(&self, iface: &str) -> PortId {
        PortId(self.names.iter().position(|n| n == iface).unwrap_or_else(|| panic!("no interface {iface}"))
            as u16)
    }

    /// Receives `frames` on `iface` as one batch at time `t`; returns what was sent, in order.
    pub fn send_batch(&mut self, t: Nanos, iface: &str, frames: &[Vec<u8>]) -> Vec<(String, Vec<u8>)> {
        let frames: Vec<(Option<VirtioNetHdr>, Vec<u8>)> = frames.iter().map(|f| (None, f.clone())).collect();
        self.send_vnet_batch(t, iface, &frames).into_iter().map(|(i, _, f)| (i, f)).collect()
    }

    /// As [`Harness::send_batch`] for frames with virtio-net headers (from a `vnet` port);
    /// returns each frame sent with the header a `vnet` egress would send it with.
    pub fn send_vnet_batch(
        &mut self,
        t: Nanos,
        iface: &str,
        frames: &[(Option<VirtioNetHdr>, Vec<u8>)],
    ) -> Vec<(String, VirtioNetHdr, Vec<u8>)> {
        let port = self.port(iface);
        let rx: Vec<RxFrame> = frames.iter().map(|(h, f)| RxFrame::with_vnet(port, f, *h)).collect();
        self.process(t, &rx)
    }

    /// As [`Harness::send_batch`] from the underlay, the frames first through the AF_XDP
    /// layer's checksum pass ([`underlay_checksums`]), as the daemon does.
    pub fn send_underlay_checked(
        &mut self,
        t: Nanos,
        frames: &[Vec<u8>],
    ) -> Vec<(String, VirtioNetHdr, Vec<u8>)> {
        let mut frames = frames.to_vec();
        let checks: Vec<_> = frames.iter_mut().map(|f| underlay_checksums(f)).collect();
        let rx: Vec<RxFrame> = frames
            .iter()
            .zip(&checks)
            .map(|(f, c)| RxFrame::after_checksum_pass(PortId::TUNNEL, f, c))
            .collect();
        self.process(t, &rx)
    }

    /// Switches `rx` as one batch at `t`; returns what was sent.
    fn process(&mut self, t: Nanos, rx: &[RxFrame]) -> Vec<(String, VirtioNetHdr, Vec<u8>)> {
        self.ageing.tick(&self.switch, t);
        self.pipeline.process(t, rx, &mut self.tx);
        let mut out = Vec::new();
        for a in self.tx.actions() {
            let mut buf = vec![0u8; a.edit.out_len()];
            let n = self.tx.write(a, rx, &mut buf);
            assert_eq!(n, buf.len(), "out_len and write disagree");
            // What a gathering sender sends (the head, then the parts where they were
            // received) is the same frame.
            let mut gathered = vec![0u8; buf.len()];
            let head = self.tx.write_head(a, rx, &mut gathered);
            gathered.truncate(head);
            self.tx.coalesced_parts(a, rx).for_each(|p| gathered.extend_from_slice(p));
            assert_eq!(gathered, buf, "a gathered frame differs from the written one");
            out.push((self.names[a.port.index()].clone(), TxBatch::vnet_header(a), buf));
        }
        self.check_udp_superframes(rx, &out);
        self.sent.extend(out.iter().map(|(i, _, f)| (t, i.clone(), f.clone())));
        out
    }

    /// Checks that each run of encapsulated segments written as one UDP superframe (what the
    /// daemon hands an underlay with UDP segmentation) is, once the kernel cuts it
    /// ([`gso::udp_gso_cut`]), the frames `out` has for those actions: byte for byte but the
    /// outer UDP checksum, which the cut computes whole.
    fn check_udp_superframes(&mut self, rx: &[RxFrame], out: &[(String, VirtioNetHdr, Vec<u8>)]) {
        self.udp_superframes.clear();
        let actions = self.tx.actions();
        for r in udp_gso::runs(actions, udp_gso::Limits::default()) {
            let (i, n) = (r.start, r.len());
            if n > 1 {
                let run = &actions[r];
                let mut sf = vec![0u8; udp_gso::superframe_len(run)];
                let len = self.tx.write_udp_superframe(run, rx, &mut sf);
                let hdr = udp_gso::superframe_header(run);
                assert_eq!(len, sf.len(), "superframe_len and write_udp_superframe disagree");
                let cut = gso::udp_gso_cut(&sf, &hdr);
                assert_eq!(cut.len(), n, "the kernel cuts the superframe into as many datagrams");
                for (k, d) in cut.iter().enumerate() {
                    let (ok, got) = gso::checked_and_zeroed(d);
                    assert!(ok, "datagram {k} of a UDP superframe has a wrong checksum");
                    let (_, want) = gso::checked_and_zeroed(&out[i + k].2);
                    assert_eq!(got, want, "datagram {k} of a UDP superframe differs from its action's frame");
                }
                self.udp_superframes.push((n, hdr));
            }
        }
    }

    /// Receives one frame on `iface` at time `t` (seconds).
    pub fn send(&mut self, t: f64, iface: &str, frame: &[u8]) -> Vec<(String, Vec<u8>)> {
        self.send_batch(secs(t), iface, &[frame.to_vec()])
    }

    pub fn stats(&self) -> Stats {
        self.switch.stats()
    }

    /// Non-zero drop counters over all ports.
    pub fn drops(&self) -> BTreeMap<&'static str, u64> {
        let names = xvtep_dataplane::DropReason::ALL.iter().map(|r| r.name());
        let stats = self.stats();
        names.filter_map(|n| stats.drops.get(n).map(|c| (n, *c))).collect()
    }

    pub fn fdb(&self, t: f64) -> Vec<String> {
        self.switch.fdb_show(secs(t))
    }

    pub fn take_events(&self) -> Vec<Event> {
        self.events.try_iter().collect()
    }

    /// Writes what each interface sent as a pcap and checks that tcpdump decodes all of it
    /// cleanly (no bad checksum, no truncation).
    pub fn assert_tcpdump_clean(&self) {
        let dir = tempfile::tempdir().unwrap();
        let mut by_iface: BTreeMap<&str, Vec<(Nanos, &[u8])>> = BTreeMap::new();
        for (t, iface, f) in &self.sent {
            by_iface.entry(iface).or_default().push((*t, f));
        }
        for (iface, frames) in by_iface {
            let path = dir.path().join(format!("{iface}.pcap"));
            write_pcap(&path, &frames);
            assert_tcpdump_clean(&path);
        }
    }
}

/// Writes (time, frame) records as a microsecond pcap.
pub fn write_pcap(path: &Path, frames: &[(Nanos, &[u8])]) {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let file = std::fs::File::create(path).unwrap();
    let mut w = PcapWriter::with_header(file, PcapHeader { snaplen: 65535, ..Default::default() }).unwrap();
    for (t, f) in frames {
        let ts = std::time::Duration::from_nanos(*t);
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, f)).unwrap();
    }
}

/// Reads every frame of a pcap with its time.
pub fn read_pcap(path: &Path) -> Vec<(Nanos, Vec<u8>)> {
    use pcap_file::pcap::PcapReader;
    let mut r = PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        out.push((p.timestamp.as_nanos() as Nanos, p.data.into_owned()));
    }
    out
}

/// Runs `tcpdump -r FILE -nn -vvv` and fails on anything it could not decode cleanly. Without
/// tcpdump the check is skipped with a note, except under CI (CI=true), where it must run.
pub fn assert_tcpdump_clean(path: &Path) {
    let out = match Command::new("tcpdump").args(["-r"]).arg(path).args(["-nn", "-vvv", "-e"]).output() {
        Ok(o) => o,
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("tcpdump is required under CI: {e}");
            }
            eprintln!(
                "SKIP tcpdump check of {}: tcpdump not found ({e}); `make setup` installs it",
                path.display()
            );
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tcpdump failed on {}: {err}", path.display());
    for bad in ["bad cksum", "bad udp cksum", "truncated", "[|", "malformed", "invalid"] {
        assert!(!text.contains(bad), "tcpdump reports '{bad}' in {}:\n{text}", path.display());
    }
    assert!(!text.trim().is_empty(), "tcpdump printed nothing for {}", path.display());
}

/// Recomputes the IPv4 header checksum of the header at `frame[off..]` (after a test edits it).
pub fn fix_ipv4_checksum(frame: &mut [u8], off: usize) {
    let ihl = (frame[off] & 0x0f) as usize * 4;
    frame[off + 10] = 0;
    frame[off + 11] = 0;
    let mut sum: u32 = 0;
    for i in (0..ihl).step_by(2) {
        sum += u16::from_be_bytes([frame[off + i], frame[off + i + 1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    frame[off + 10..off + 12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

impl Harness {
    /// Receives `frame` on a raw port id (which may not exist).
    pub fn send_port(&mut self, t: f64, port: PortId, frame: &[u8]) -> usize {
        let rx = [RxFrame::new(port, frame)];
        self.pipeline.process(secs(t), &rx, &mut self.tx);
        self.tx.len()
    }
}

/// The tunnel table of [`BASE_CONFIG`] and [`PROXY_CONFIG`], up to its knobs.
macro_rules! base_tunnel {
    () => {
        "\n[tunnel]\nlocal = \"10.0.0.1\"\ndev = \"eth0\"\n"
    };
}

/// The rest of them: VID 10 ↔ VNI 1000 on p1 (untagged) and trunk (tagged), flooded to 10.0.0.2.
macro_rules! base_switch {
    () => {
        "[[vlan]]\nvid = 10\nvni = 1000\n\
         [[port]]\nname = \"p1\"\nvlans = [{ vid = 10, pvid = true, untagged = true }]\n\
         [[port]]\nname = \"trunk\"\nvlans = [{ vid = 10 }]\n\
         [[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = 1000\ndst = \"10.0.0.2\"\n"
    };
}

/// Two ports in VNI 1000 and one remote VTEP.
pub const BASE_CONFIG: &str = concat!(base_tunnel!(), base_switch!());

/// A switch with ARP and ND suppression on (`proxy`, `l3miss`): ports p1 (VID 10 untagged)
/// and trunk (VID 10 tagged), VID 10 ↔ VNI 1000 flooding to 10.0.0.2, and neighbour
/// 02:00:00:00:00:0b as 10.1.0.2 and fd00::2.
pub const PROXY_CONFIG: &str = concat!(
    base_tunnel!(),
    "proxy = true\nl3miss = true\n",
    base_switch!(),
    "[[neigh]]\nvni = 1000\nip = \"10.1.0.2\"\nmac = \"02:00:00:00:00:0b\"\n\
     [[neigh]]\nvni = 1000\nip = \"fd00::2\"\nmac = \"02:00:00:00:00:0b\"\n"
);
