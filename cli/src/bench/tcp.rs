//! TCP throughput (iperf3, 1 and 4 streams) and ping round-trip times between the container
//! `g` behind the device under test and a container `r` behind a kernel VTEP on `s`: traffic
//! both ways, so only the kernel and xvtep paths (the bare forwarder moves one direction).

use std::time::Duration;

use anyhow::{Context, Result};
use xvtep::netns::{veth, Netns};

use super::endpoints::{B, D, S};

/// Adds a container `r` (10.2.0.2, MAC B) behind a kernel bridge + vxlan on `s`.
pub fn add_remote_container(s: &Netns, g: &Netns, prefix: &str, mtu: u32) -> Result<Netns> {
    let r = Netns::new(&format!("{prefix}-r"));
    veth(s, "tap1_0", &r, "eth0");
    r.sh(&format!("ip link set eth0 address {} mtu {mtu} && ip addr add {}/24 dev eth0", B.mac, B.ip));
    s.sh(&format!("ip link set tap1_0 mtu {mtu}"));
    g.sh(&format!("ip link set eth0 mtu {mtu}"));
    s.sh(&format!(
        "ip link add br2 type bridge && ip link set br2 up && \
         ip link add vx2 type vxlan id 2 local {} dstport 4789 dev eth0 && \
         ip link set vx2 master br2 && ip link set vx2 up && ip link set tap1_0 master br2 && \
         bridge fdb append 00:00:00:00:00:00 dev vx2 dst {}",
        S.ip, D.ip
    ));
    Ok(r)
}

/// What one iperf3 run moved.
pub struct IperfRun {
    pub bits_per_second: f64,
    pub bytes: u64,
}

/// iperf3 between `g` and `r` for `secs` with `streams` parallel streams, from `g` (or to it,
/// `reverse`); what the receiver got.
pub fn iperf(g: &Netns, r: &Netns, secs: u64, streams: u32, reverse: bool) -> Result<IperfRun> {
    r.sh("iperf3 -s -1 -D");
    std::thread::sleep(Duration::from_millis(300));
    let flag = if reverse { " -R" } else { "" };
    let out = g.sh(&format!("iperf3 -c {} -t {secs} -P {streams} -J{flag}", B.ip));
    let v: serde_json::Value = serde_json::from_str(&out).context("reading iperf3's JSON")?;
    let got = &v["end"]["sum_received"];
    Ok(IperfRun {
        bits_per_second: got["bits_per_second"].as_f64().unwrap_or(0.0),
        bytes: got["bytes"].as_u64().unwrap_or(0),
    })
}

/// Round-trip times of `count` pings at 10 ms intervals, in microseconds.
pub fn ping_rtts(g: &Netns, count: u32) -> Result<Vec<f64>> {
    let out = g.sh(&format!("ping -c {count} -i 0.01 -W 1 {}", B.ip));
    Ok(out
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.trim_end_matches(" ms").trim().parse::<f64>().ok())
        .map(|ms| ms * 1000.0)
        .collect())
}

/// Frames the device under test's daemon counted: (tunnel rx, tunnel tx, port rx, port tx),
/// from its control socket `ctl`; `None` if it does not answer.
pub fn tunnel_and_port_frames(ctl: &std::path::Path) -> Option<[u64; 4]> {
    use xvtep::control::protocol::Request;
    let stats = xvtep::control::client::call(ctl, &Request::Stats { dev: None }).ok()?;
    let port = |name: &str, field: &str| {
        let ports = stats["ports"].as_array()?;
        ports.iter().find(|p| p["name"] == name)?[field].as_u64()
    };
    Some([
        port("vxlan0", "rx_packets")?,
        port("vxlan0", "tx_packets")?,
        port("tap1_0", "rx_packets")?,
        port("tap1_0", "tx_packets")?,
    ])
}

/// Segments on the tunnel per frame on the port between two counts of
/// [`tunnel_and_port_frames`]: to the container (`decap`), the tunnel's received per frame
/// sent to the port (GRO); from it, the tunnel's sent per frame received from the port (TSO).
pub fn segments_per_frame(before: [u64; 4], after: [u64; 4], direction: &str) -> f64 {
    let d = |k: usize| after[k].saturating_sub(before[k]) as f64;
    let (tunnel, port) = if direction == "decap" { (d(0), d(3)) } else { (d(1), d(2)) };
    super::report::ratio(tunnel, port)
}
