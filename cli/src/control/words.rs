//! The command line in iproute2's `bridge` words: `fdb add MAC dev PORT dst IP vni N static`.
//! Turns the words after the object into a [`Request`], with exact errors.

use std::net::IpAddr;
use std::str::FromStr;

use xvtep_dataplane::config::{parse_host_prefix, InternalPort};
use xvtep_dataplane::wire::MacAddr;

use super::protocol::{FdbOp, Request};

/// Reads keyword arguments: `take("dev")` finds `dev X` anywhere; flags are bare words.
struct Words<'a> {
    words: Vec<&'a str>,
    used: Vec<bool>,
}

impl<'a> Words<'a> {
    fn new(words: &'a [String]) -> Words<'a> {
        Words { words: words.iter().map(String::as_str).collect(), used: vec![false; words.len()] }
    }

    /// The value after `key`, parsed.
    fn value<T: FromStr>(&mut self, key: &str) -> Result<Option<T>, String>
    where
        T::Err: std::fmt::Display,
    {
        let Some(i) = self.words.iter().position(|w| *w == key) else { return Ok(None) };
        let v = self.words.get(i + 1).ok_or_else(|| format!("'{key}' needs a value"))?;
        self.used[i] = true;
        self.used[i + 1] = true;
        v.parse().map(Some).map_err(|e| format!("{key} '{v}': {e}"))
    }

    fn required<T: FromStr>(&mut self, key: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        self.value(key)?.ok_or_else(|| format!("'{key}' is required"))
    }

    /// Whether the bare word `flag` is present.
    fn flag(&mut self, flag: &str) -> bool {
        match self.words.iter().position(|w| *w == flag) {
            Some(i) => {
                self.used[i] = true;
                true
            }
            None => false,
        }
    }

    /// `key on|off`.
    fn on_off(&mut self, key: &str) -> Result<Option<bool>, String> {
        match self.value::<String>(key)?.as_deref() {
            None => Ok(None),
            Some("on") => Ok(Some(true)),
            Some("off") => Ok(Some(false)),
            Some(v) => Err(format!("{key} '{v}': expected on or off")),
        }
    }

    /// The first word not used by a keyword, parsed (the MAC of `fdb add MAC ...`).
    fn positional<T: FromStr>(&mut self, what: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        let i = self.used.iter().position(|u| !u).ok_or_else(|| format!("{what} is required"))?;
        self.used[i] = true;
        self.words[i].parse().map_err(|e| format!("{e}"))
    }

    /// Fails on any word nobody asked for.
    fn done(self) -> Result<(), String> {
        match self.used.iter().position(|u| !u) {
            Some(i) => Err(format!("unexpected '{}'", self.words[i])),
            None => Ok(()),
        }
    }
}

/// `fdb show|add|append|replace|del|flush ...`
pub fn fdb(verb: &str, args: &[String]) -> Result<Request, String> {
    let mut w = Words::new(args);
    let r = match verb {
        "show" | "list" => Request::FdbShow { vni: w.value("vni")?, dev: w.value("dev")? },
        "add" | "append" | "replace" => {
            let op = match verb {
                "add" => FdbOp::Add,
                "append" => FdbOp::Append,
                _ => FdbOp::Replace,
            };
            let dev = w.required("dev")?;
            let dst = w.value("dst")?;
            let vni = w.value("vni")?;
            let vlan = w.value("vlan")?;
            let permanent = w.flag("permanent");
            w.flag("static");
            let mac: MacAddr = w.positional("MAC")?;
            Request::FdbAdd { op, mac, dev, dst, vni, vlan, permanent }
        }
        "del" | "delete" => {
            let dev = w.required("dev")?;
            let (dst, vni, vlan) = (w.value("dst")?, w.value("vni")?, w.value("vlan")?);
            let mac: MacAddr = w.positional("MAC")?;
            Request::FdbDel { mac, dev, dst, vni, vlan }
        }
        "flush" => {
            Request::FdbFlush { dev: w.value("dev")?, vni: w.value("vni")?, dynamic: w.flag("dynamic") }
        }
        _ => {
            return Err(format!("unknown fdb command '{verb}': use show, add, append, replace, del or flush"))
        }
    };
    w.done()?;
    Ok(r)
}

/// `vlan show | add|del dev PORT vid N [pvid] [untagged] | add|del dev vxlan0 vid N tunnel_info id VNI`
pub fn vlan(verb: &str, args: &[String]) -> Result<Request, String> {
    let mut w = Words::new(args);
    let r = match verb {
        "show" | "list" => Request::VlanShow,
        "add" | "del" | "delete" => {
            let dev: String = w.required("dev")?;
            let vid: u16 = w.required("vid")?;
            let tunnel_id = if w.flag("tunnel_info") { Some(w.required::<u32>("id")?) } else { None };
            if verb == "add" {
                Request::VlanAdd { dev, vid, pvid: w.flag("pvid"), untagged: w.flag("untagged"), tunnel_id }
            } else {
                Request::VlanDel { dev, vid }
            }
        }
        _ => return Err(format!("unknown vlan command '{verb}': use show, add or del")),
    };
    w.done()?;
    Ok(r)
}

/// `link show | add dev IFACE [io auto|afxdp|vnet] | del dev IFACE | set dev PORT [hairpin on|off] [learning on|off]
/// [flood on|off]`
pub fn link(verb: &str, args: &[String]) -> Result<Request, String> {
    let mut w = Words::new(args);
    let r = match verb {
        "show" | "list" => Request::LinkShow,
        "add" => {
            let (dev, io) = (w.required("dev")?, w.value("io")?);
            let addresses: Option<String> = w.value("address")?;
            let mac: Option<MacAddr> = w.value("mac")?;
            let internal = if w.flag("internal") {
                let addresses = addresses.as_deref().map_or(Ok(Vec::new()), |list| {
                    list.split(',')
                        .map(|a| {
                            parse_host_prefix(a).ok_or_else(|| {
                                format!("address '{a}': not an IPv4 or IPv6 address with a prefix length (10.2.0.1/24)")
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })?;
                Some(InternalPort { addresses, mac, kernel_bridge: false })
            } else if addresses.is_some() || mac.is_some() {
                return Err("address and mac are for an internal port: add 'internal'".into());
            } else {
                None
            };
            Request::LinkAdd { dev, io, internal }
        }
        "del" | "delete" => Request::LinkDel { dev: w.required("dev")? },
        "set" => {
            let dev = w.required("dev")?;
            let (hairpin, learning, flood) =
                (w.on_off("hairpin")?, w.on_off("learning")?, w.on_off("flood")?);
            if hairpin.is_none() && learning.is_none() && flood.is_none() {
                return Err("link set needs at least one of hairpin, learning, flood".into());
            }
            Request::LinkSet { dev, hairpin, learning, flood }
        }
        _ => return Err(format!("unknown link command '{verb}': use show, add, del or set")),
    };
    w.done()?;
    Ok(r)
}

/// `neigh show | add IP lladdr MAC vni N | del IP vni N` (IPv4 or IPv6)
pub fn neigh(verb: &str, args: &[String]) -> Result<Request, String> {
    let mut w = Words::new(args);
    let r = match verb {
        "show" | "list" => Request::NeighShow,
        "add" | "replace" => {
            let mac = w.required("lladdr")?;
            let vni = w.required("vni")?;
            let ip: IpAddr = w.positional("IP")?;
            Request::NeighAdd { ip, mac, vni }
        }
        "del" | "delete" => {
            let vni = w.required("vni")?;
            let ip: IpAddr = w.positional("IP")?;
            Request::NeighDel { ip, vni }
        }
        _ => return Err(format!("unknown neigh command '{verb}': use show, add or del")),
    };
    w.done()?;
    Ok(r)
}

/// `monitor [fdb] [miss]` (neither: both).
pub fn monitor(args: &[String]) -> Result<Request, String> {
    let mut w = Words::new(args);
    let (fdb, miss) = (w.flag("fdb"), w.flag("miss"));
    w.done()?;
    Ok(if !fdb && !miss {
        Request::Monitor { fdb: true, miss: true }
    } else {
        Request::Monitor { fdb, miss }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn fdb_words() {
        assert_eq!(
            fdb("append", &w("00:00:00:00:00:00 dev vxlan0 dst 10.0.0.2 vni 2")).unwrap(),
            Request::FdbAdd {
                op: FdbOp::Append,
                mac: MacAddr::ZERO,
                dev: "vxlan0".into(),
                dst: Some("10.0.0.2".parse().unwrap()),
                vni: Some(2),
                vlan: None,
                permanent: false
            }
        );
        // An IPv6 remote, as for an IPv6 underlay.
        assert!(matches!(
            fdb("add", &w("02:00:00:00:00:01 dev vxlan0 dst 2001:db8::2 vni 2")).unwrap(),
            Request::FdbAdd { dst: Some(ip), .. } if ip == "2001:db8::2".parse::<std::net::IpAddr>().unwrap()
        ));
        assert_eq!(
            fdb("add", &w("02:00:00:00:00:01 dev p1 vlan 10 permanent")).unwrap(),
            Request::FdbAdd {
                op: FdbOp::Add,
                mac: "02:00:00:00:00:01".parse().unwrap(),
                dev: "p1".into(),
                dst: None,
                vni: None,
                vlan: Some(10),
                permanent: true
            }
        );
        assert_eq!(
            fdb("flush", &w("dev p1 dynamic")).unwrap(),
            Request::FdbFlush { dev: Some("p1".into()), vni: None, dynamic: true }
        );
        assert_eq!(fdb("show", &w("vni 2")).unwrap(), Request::FdbShow { vni: Some(2), dev: None });
    }

    #[test]
    fn fdb_errors() {
        let e = |verb: &str, s: &str| fdb(verb, &w(s)).unwrap_err();
        assert_eq!(e("add", "02:00:00:00:00:01"), "'dev' is required");
        assert_eq!(e("add", "02:00:00:00:00:01 dev"), "'dev' needs a value");
        assert!(e("add", "02:00:00:00:0g:01 dev p1").contains("invalid MAC address '02:00:00:00:0g:01'"));
        assert!(e("add", "02:00:00:00:00:01 dev p1 dst 10.0.0.300").starts_with("dst '10.0.0.300':"));
        assert_eq!(e("add", "02:00:00:00:00:01 dev p1 vni 2 bogus"), "unexpected 'bogus'");
        assert_eq!(e("add", "dev p1 vni 2"), "MAC is required");
        assert!(e("frobnicate", "").starts_with("unknown fdb command 'frobnicate'"));
        assert!(e("add", "02:00:00:00:00:01 dev p1 vni x").starts_with("vni 'x':"));
    }

    #[test]
    fn vlan_link_neigh_monitor_words() {
        assert_eq!(
            vlan("add", &w("dev p1 vid 10 pvid untagged")).unwrap(),
            Request::VlanAdd { dev: "p1".into(), vid: 10, pvid: true, untagged: true, tunnel_id: None }
        );
        assert_eq!(
            vlan("add", &w("dev vxlan0 vid 10 tunnel_info id 1000")).unwrap(),
            Request::VlanAdd {
                dev: "vxlan0".into(),
                vid: 10,
                pvid: false,
                untagged: false,
                tunnel_id: Some(1000)
            }
        );
        assert_eq!(vlan("del", &w("dev p1 vid 10")).unwrap(), Request::VlanDel { dev: "p1".into(), vid: 10 });
        assert_eq!(vlan("add", &w("dev p1")).unwrap_err(), "'vid' is required");
        assert_eq!(vlan("add", &w("dev vxlan0 vid 10 tunnel_info")).unwrap_err(), "'id' is required");
        assert_eq!(
            link("add", &w("dev p9")).unwrap(),
            Request::LinkAdd { dev: "p9".into(), io: None, internal: None }
        );
        assert_eq!(
            link("add", &w("dev p9 io afxdp")).unwrap(),
            Request::LinkAdd {
                dev: "p9".into(),
                io: Some(xvtep_dataplane::config::PortIo::Afxdp),
                internal: None
            }
        );
        assert!(link("add", &w("dev p9 io xdp")).unwrap_err().contains("use auto, afxdp or vnet"));
        assert_eq!(link("delete", &w("dev p9")).unwrap(), Request::LinkDel { dev: "p9".into() });
        assert_eq!(link("del", &w("p9")).unwrap_err(), "'dev' is required");
        assert_eq!(link("add", &w("dev p9 hairpin on")).unwrap_err(), "unexpected 'hairpin'");
        assert_eq!(
            link("set", &w("dev p1 hairpin on flood off")).unwrap(),
            Request::LinkSet { dev: "p1".into(), hairpin: Some(true), learning: None, flood: Some(false) }
        );
        assert_eq!(
            link("set", &w("dev p1 hairpin maybe")).unwrap_err(),
            "hairpin 'maybe': expected on or off"
        );
        assert_eq!(
            link("set", &w("dev p1")).unwrap_err(),
            "link set needs at least one of hairpin, learning, flood"
        );
        assert_eq!(
            neigh("add", &w("10.2.0.9 lladdr 02:00:00:00:00:09 vni 2")).unwrap(),
            Request::NeighAdd {
                ip: "10.2.0.9".parse().unwrap(),
                mac: "02:00:00:00:00:09".parse().unwrap(),
                vni: 2
            }
        );
        assert_eq!(neigh("add", &w("10.2.0.9 vni 2")).unwrap_err(), "'lladdr' is required");
        assert_eq!(
            neigh("add", &w("2001:db8::5 lladdr 02:00:00:00:00:05 vni 2")).unwrap(),
            Request::NeighAdd {
                ip: "2001:db8::5".parse().unwrap(),
                mac: "02:00:00:00:00:05".parse().unwrap(),
                vni: 2
            }
        );
        assert_eq!(
            neigh("del", &w("2001:db8::5 vni 2")).unwrap(),
            Request::NeighDel { ip: "2001:db8::5".parse().unwrap(), vni: 2 }
        );
        assert_eq!(monitor(&w("")).unwrap(), Request::Monitor { fdb: true, miss: true });
        assert_eq!(monitor(&w("miss")).unwrap(), Request::Monitor { fdb: false, miss: true });
        assert_eq!(monitor(&w("everything")).unwrap_err(), "unexpected 'everything'");
    }
}
