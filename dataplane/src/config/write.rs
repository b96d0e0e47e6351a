//! Writing a [`Config`] back as a config file that `Config::parse` accepts and that means the
//! same: used by `xvtep save`, and to validate an edited running configuration with the very
//! same rules as a file.

use std::fmt::Write;

use super::{Config, DfMode, FdbScope, FdbTarget, PortConfig, StaticFdb, TunnelConfig};
use crate::wire::VXLAN_VALID_BITS;

impl Config {
    /// The configuration as TOML. `Config::parse(&c.to_toml(), ..)` gives back `c`.
    pub fn to_toml(&self) -> String {
        let mut o = String::new();
        let s = &self.switch;
        let _ = writeln!(o, "[switch]\nageing = {}\nmax_learned = {}\n", s.ageing_secs, s.max_learned);
        let _ = writeln!(o, "[worker]\npoll = \"{}\"\n", self.worker.poll.name());
        write_tunnel(&mut o, &self.tunnel);
        for m in &self.vlans {
            let _ = write!(o, "\n[[vlan]]\nvid = {}\nvni = {}\n", m.vid, m.vni);
            if let Some(g) = m.group {
                let _ = writeln!(o, "group = \"{g}\"");
            }
        }
        for p in &self.ports {
            write_port(&mut o, p);
        }
        for e in &self.fdb {
            write_fdb_entry(&mut o, e);
        }
        for n in &self.neigh {
            let _ = write!(o, "\n[[neigh]]\nvni = {}\nip = \"{}\"\nmac = \"{}\"\n", n.vni, n.ip, n.mac);
        }
        for h in &self.nexthops {
            let _ = write!(o, "\n[[nexthop]]\nip = \"{}\"\nmac = \"{}\"\n", h.ip, h.mac);
        }
        o
    }

    /// Checks an edited configuration with the rules a file is checked with; the error is the
    /// problem alone (there is no file to point into).
    pub fn revalidate(&self) -> Result<Config, String> {
        Config::parse(&self.to_toml(), "running configuration").map_err(|e| e.message)
    }
}

/// The `[tunnel]` section: every key, the optional ones only when set.
fn write_tunnel(o: &mut String, t: &TunnelConfig) {
    let _ =
        writeln!(o, "[tunnel]\nlocal = \"{}\"\ndev = {}\ndstport = {}", t.local, quoted(&t.dev), t.dstport);
    let _ = writeln!(
        o,
        "learning = {}\nproxy = {}\nl2miss = {}\nl3miss = {}",
        t.learning, t.proxy, t.l2miss, t.l3miss
    );
    if let Some(r) = t.remote {
        let _ = writeln!(o, "remote = \"{r}\"");
    }
    if let Some(g) = t.group {
        let _ = writeln!(o, "group = \"{g}\"");
    }
    let df = match t.df {
        DfMode::Unset => "unset",
        DfMode::Set => "set",
        DfMode::Inherit => "inherit",
    };
    let _ = writeln!(o, "ttl = {}\ntos = {}\ndf = \"{df}\"", t.ttl, t.tos);
    // Each checksum key is of one family (the parser refuses the other's).
    if t.ipv6() {
        let _ = writeln!(
            o,
            "udp6zerocsumtx = {}\nudp6zerocsumrx = {}\nflowlabel = {}",
            t.udp6zerocsumtx, t.udp6zerocsumrx, t.flowlabel
        );
    } else {
        let _ = writeln!(o, "udpcsum = {}", t.udpcsum);
    }
    let _ = writeln!(o, "srcport = [{}, {}]", t.srcport.0, t.srcport.1);
    if let Some(m) = t.mtu {
        let _ = writeln!(o, "mtu = {m}");
    }
    if let Some(m) = t.mac {
        let _ = writeln!(o, "mac = \"{m}\"");
    }
    if t.allowed_bits != VXLAN_VALID_BITS {
        let _ = writeln!(o, "reserved_bits = \"0x{:016x}\"", t.allowed_bits & !VXLAN_VALID_BITS);
    }
    if !t.allowed_peers.is_empty() {
        let peers: Vec<String> = t.allowed_peers.iter().map(|p| format!("\"{p}\"")).collect();
        let _ = writeln!(o, "allowed_peers = [{}]", peers.join(", "));
    }
}

/// One `[[port]]`, with the keys of an internal port if it is one.
fn write_port(o: &mut String, p: &PortConfig) {
    let vlans: Vec<String> = p
        .vlans
        .iter()
        .map(|v| format!("{{ vid = {}, pvid = {}, untagged = {} }}", v.vid, v.pvid, v.untagged))
        .collect();
    let _ = write!(
        o,
        "\n[[port]]\nname = {}\nvlans = [{}]\nhairpin = {}\nlearning = {}\nflood = {}\nmtu = {}\nio = \"{}\"\n",
        quoted(&p.name),
        vlans.join(", "),
        p.hairpin,
        p.learning,
        p.flood,
        p.mtu,
        p.io.name()
    );
    if let Some(i) = &p.internal {
        let addrs: Vec<String> = i.addresses.iter().map(|(ip, len)| format!("\"{ip}/{len}\"")).collect();
        let _ = writeln!(o, "internal = true\naddress = [{}]", addrs.join(", "));
        if i.kernel_bridge {
            let _ = writeln!(o, "kernel_bridge = true");
        }
        if let Some(mac) = i.mac {
            let _ = writeln!(o, "mac = \"{mac}\"");
        }
    }
}

/// One `[[fdb]]` entry: its MAC, scope and target, and its flags when set.
fn write_fdb_entry(o: &mut String, e: &StaticFdb) {
    let _ = write!(o, "\n[[fdb]]\nmac = \"{}\"\n", e.mac);
    let _ = match e.scope {
        FdbScope::Vni(v) => writeln!(o, "vni = {v}"),
        FdbScope::Vid(v) => writeln!(o, "vid = {v}"),
    };
    match &e.target {
        FdbTarget::Port(p) => {
            let _ = writeln!(o, "port = {}", quoted(p));
        }
        FdbTarget::Remote { ip, port, vni } => {
            let _ = writeln!(o, "dst = \"{ip}\"");
            if let Some(p) = port {
                let _ = writeln!(o, "dst_port = {p}");
            }
            if let Some(v) = vni {
                let _ = writeln!(o, "remote_vni = {v}");
            }
        }
    }
    if e.extern_learn {
        let _ = writeln!(o, "extern_learn = true");
    }
    if e.permanent {
        let _ = writeln!(o, "permanent = true");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let full = r#"
[switch]
ageing = 30
max_learned = 7
[tunnel]
local = "10.0.0.1"
dev = "eth0"
remote = "10.0.0.9"
group = "239.1.1.1"
ttl = 5
tos = 8
df = "inherit"
udpcsum = false
srcport = [1000, 2000]
mtu = 9000
mac = "02:00:00:00:00:01"
reserved_bits = "0x0100000000000000"
allowed_peers = ["10.0.0.2", "10.0.0.3"]
[[vlan]]
vid = 2
vni = 20
group = "239.2.2.2"
[[vlan]]
vid = 3
vni = 30
[[port]]
name = "p1"
vlans = [{ vid = 2, pvid = true, untagged = true }, { vid = 3 }]
hairpin = true
learning = false
flood = false
mtu = 1400
[[port]]
name = "p2"
vlans = [{ vid = 5, pvid = true }]
[[fdb]]
mac = "00:00:00:00:00:00"
vni = 20
dst = "10.0.0.7"
dst_port = 8472
remote_vni = 99
[[fdb]]
mac = "02:00:00:00:00:05"
vid = 5
port = "p2"
permanent = true
[[neigh]]
vni = 20
ip = "10.2.0.9"
mac = "02:00:00:00:00:09"
[[nexthop]]
ip = "10.0.0.7"
mac = "02:00:00:00:00:07"
"#;
        let c = Config::parse(full, "full.toml").unwrap();
        let again =
            Config::parse(&c.to_toml(), "written.toml").unwrap_or_else(|e| panic!("{e}\n{}", c.to_toml()));
        assert_eq!(again, c);
        let seed = Config::parse(include_str!("../../../configs/seed000-host1.toml"), "seed").unwrap();
        assert_eq!(Config::parse(&seed.to_toml(), "w").unwrap(), seed);
    }

    #[test]
    fn revalidate_reports_the_problem() {
        let mut c = Config::parse("[tunnel]\nlocal = \"10.0.0.1\"\ndev = \"eth0\"\n", "x").unwrap();
        c.vlans.push(super::super::VlanMap { vid: 2, vni: 7, group: None });
        c.vlans.push(super::super::VlanMap { vid: 3, vni: 7, group: None });
        assert_eq!(
            c.revalidate().unwrap_err(),
            "VNI 7 is mapped twice (from VID 2 and VID 3); the map is one-to-one"
        );
    }
}

/// `text` as a TOML string, escaped: an interface name may hold any character but NUL and `/`.
/// For every writer of configuration text (`to_toml`, `[kernel]` mode's translation).
pub fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

#[cfg(test)]
mod quoting_tests {
    use crate::Config;

    /// Names with backslashes, a tab and a quote are written escaped, so that the written
    /// config parses to the same one.
    #[test]
    fn names_with_escapes_are_written_so_that_they_parse_again() {
        let text = "[tunnel]\nlocal = \"2001:db8:1::1\"\ndev = \"e\\\\\\\\|\\\\\\th0\"\n\
                    [[port]]\nname = \"p\\\"x\"\n";
        let c = Config::parse(text, "t.toml").unwrap();
        assert_eq!((c.tunnel.dev.as_str(), c.ports[0].name.as_str()), ("e\\\\|\\\th0", "p\"x"));
        assert_eq!(Config::parse(&c.to_toml(), "w.toml").unwrap(), c);
    }
}
