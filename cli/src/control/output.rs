//! Text output shaped like iproute2's `bridge`, from the daemon's JSON answers.

use std::fmt::Write;

use serde_json::Value;

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `bridge fdb show` lines, with the age of learned entries.
pub fn fdb(data: &Value) -> String {
    match serde_json::from_value::<Vec<xvtep_dataplane::FdbRow>>(data.clone()) {
        Ok(rows) => rows.iter().map(|r| r.line(true) + "\n").collect(),
        Err(e) => format!("(cannot read the FDB: {e})\n"),
    }
}

/// `bridge vlan show`, with `tunnel_info id` for vxlan0 (`bridge vlan tunnelshow`).
pub fn vlan(data: &Value) -> String {
    let mut o = format!("{:<16}{}\n", "port", "vlan-id");
    for port in data.as_array().into_iter().flatten() {
        let mut name = s(&port["dev"]);
        for v in port["vlans"].as_array().into_iter().flatten() {
            let mut line = s(&v["vid"]);
            if v["pvid"] == true {
                line += " PVID";
            }
            if v["untagged"] == true {
                line += " Egress Untagged";
            }
            if !v["tunnel_id"].is_null() {
                line += &format!(" tunnel_info id {}", s(&v["tunnel_id"]));
            }
            let _ = writeln!(o, "{name:<16}{line}");
            name.clear();
        }
    }
    o
}

/// `bridge link show`-like lines, each led by the port's id.
pub fn link(data: &Value) -> String {
    let mut o = String::new();
    let on = |v: &Value| if v == true { "on" } else { "off" };
    for l in data.as_array().into_iter().flatten() {
        let i = s(&l["id"]);
        if l["dev"] == "vxlan0" {
            let _ = writeln!(
                o,
                "{i}: vxlan0: underlay {} local {} learning {} mtu {}{}{}",
                s(&l["underlay"]),
                s(&l["local"]),
                on(&l["learning"]),
                s(&l["mtu"]),
                if l["kernel_mode"] == true { " (following the kernel's bridges)" } else { "" },
                match &l["host_kernel"] {
                    Value::Null => String::new(),
                    k => format!(" kernel {} tc {}", s(&k["release"]), s(&k["tc_attach"])),
                }
            );
        } else {
            let pvid = if l["pvid"].is_null() { "none".to_string() } else { s(&l["pvid"]) };
            let _ = writeln!(
                o,
                "{i}: {}: pvid {pvid} hairpin {} learning {} flood {} mtu {} io {}",
                s(&l["dev"]),
                on(&l["hairpin"]),
                on(&l["learning"]),
                on(&l["flood"]),
                s(&l["mtu"]),
                s(&l["io"])
            );
        }
    }
    o
}

/// `ip neigh`-like lines.
pub fn neigh(data: &Value) -> String {
    let mut o = String::new();
    for n in data.as_array().into_iter().flatten() {
        let _ = writeln!(o, "{} lladdr {} vni {}", s(&n["ip"]), s(&n["lladdr"]), s(&n["vni"]));
    }
    o
}
