//! One switch per fuzzing thread, kept across inputs so that state (FDB, flood lists)
//! accumulates as it would in a daemon.

use std::cell::RefCell;
use std::sync::Arc;

use xvtep_dataplane::rx_checksums::underlay_checksums;
use xvtep_dataplane::wire::virtio_net::{VirtioNetHdr, VNET_HDR_LEN};
use xvtep_dataplane::{Config, NextHops, Pipeline, RxFrame, Switch, TxBatch, Underlay};

pub const CONFIG: &str = r#"
[switch]
max_learned = 64
[tunnel]
local = "10.0.0.1"
dev = "eth0"
proxy = true
l2miss = true
l3miss = true
reserved_bits = "0x0100000000000000"
[[vlan]]
vid = 10
vni = 1000
[[vlan]]
vid = 20
vni = 2000
[[port]]
name = "p1"
vlans = [{ vid = 10, pvid = true, untagged = true }]
[[port]]
name = "trunk"
hairpin = true
vlans = [{ vid = 10 }, { vid = 20 }, { vid = 30 }]
[[port]]
name = "p3"
flood = false
mtu = 200
vlans = [{ vid = 20, pvid = true }]
[[fdb]]
mac = "00:00:00:00:00:00"
vni = 1000
dst = "10.0.0.2"
[[fdb]]
mac = "02:00:00:00:00:5a"
vni = 2000
port = "p3"
[[neigh]]
vni = 1000
ip = "10.1.0.2"
mac = "02:00:00:00:00:0b"
[[neigh]]
vni = 1000
ip = "fd00::2"
mac = "02:00:00:00:00:0b"
"#;

type State = RefCell<(Arc<Switch>, Pipeline, TxBatch, Vec<u8>, u64)>;

fn state(text: &str) -> State {
    let config = Config::parse(text, "fuzz.toml").expect("the fuzz config is valid");
    let switch = Switch::new(&config, Underlay::for_replay(&config), NextHops::with_fallback());
    let pipeline = Pipeline::new(&switch);
    RefCell::new((switch, pipeline, TxBatch::default(), vec![0u8; 70_000], 0))
}

/// [`CONFIG`] over an IPv6 underlay: our address 2001:db8::1, the flood list 2001:db8::2.
pub fn config6() -> String {
    CONFIG.replace("10.0.0.1", "2001:db8::1").replace("dst = \"10.0.0.2\"", "dst = \"2001:db8::2\"")
}

thread_local! {
    static STATE: State = state(CONFIG);
    static STATE6: State = state(&config6());
}

/// [`switch`] on the switch with an IPv6 underlay.
pub fn switch6(frames: &[(u16, &[u8])]) {
    STATE6.with(|s| run(s, frames))
}

/// Switches `frames` as one batch (port, bytes) and writes every output frame, checking
/// that each is exactly as long as announced.
pub fn switch(frames: &[(u16, &[u8])]) {
    STATE.with(|s| run(s, frames))
}

fn run(s: &State, frames: &[(u16, &[u8])]) {
    {
        let (switch, pipeline, tx, buf, clock) = &mut *s.borrow_mut();
        *clock += 50_000_000;
        // From the underlay, the AF_XDP layer's checksum pass first (it may leave an inner
        // checksum partial and announce sums). From a local port, an odd first byte means "a
        // virtio-net header comes first": the superframe checks and segmentation are fuzzed too.
        let mut underlay: Vec<Vec<u8>> =
            frames.iter().map(|&(p, d)| if p == 0 { d.to_vec() } else { Vec::new() }).collect();
        let checks: Vec<_> = underlay.iter_mut().map(|d| underlay_checksums(d)).collect();
        let rx: Vec<RxFrame> = frames
            .iter()
            .zip(underlay.iter().zip(&checks))
            .map(|(&(p, d), (u, c))| {
                let port = xvtep_dataplane::PortId(p);
                if p == 0 {
                    return RxFrame::after_checksum_pass(port, u, c);
                }
                match VirtioNetHdr::parse(d) {
                    Some(h) if d[0] & 1 == 1 => RxFrame::with_vnet(port, &d[VNET_HDR_LEN..], Some(h)),
                    _ => RxFrame::new(port, d),
                }
            })
            .collect();
        pipeline.process(*clock, &rx, tx);
        for a in tx.actions() {
            let len = a.edit.out_len();
            assert_eq!(tx.write(a, &rx, &mut buf[..len]), len);
        }
        if *clock % 2_000_000_000 == 0 {
            switch.age(*clock);
        }
        assert!(switch.fdb.stats().learned <= 64, "max_learned exceeded");
    }
}
