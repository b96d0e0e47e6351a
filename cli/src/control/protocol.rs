//! The control protocol, version 1: one JSON object per line over a Unix stream socket.
//!
//! Request:  `{"v":1,"cmd":"fdb_add","op":"add","mac":"02:..","dev":"vxlan0","dst":"10.0.0.2","vni":2}`
//! Response: `{"ok":true,"data":...}` or `{"ok":false,"error":"what is wrong"}`, one line.
//! `monitor` answers `{"ok":true}` and then streams one `{"event":...}` line per event until
//! the client closes the connection. Every field not listed for a command is an error.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use xvtep_dataplane::wire::MacAddr;

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FdbOp {
    /// Fails if the entry exists (the all-zeros MAC: adds a flood-list remote).
    Add,
    /// Adds another remote to the all-zeros flood list.
    Append,
    /// Adds or overwrites.
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    FdbShow {
        #[serde(default)]
        vni: Option<u32>,
        #[serde(default)]
        dev: Option<String>,
    },
    FdbAdd {
        op: FdbOp,
        mac: MacAddr,
        dev: String,
        #[serde(default)]
        dst: Option<IpAddr>,
        #[serde(default)]
        vni: Option<u32>,
        #[serde(default)]
        vlan: Option<u16>,
        #[serde(default)]
        permanent: bool,
    },
    FdbDel {
        mac: MacAddr,
        dev: String,
        #[serde(default)]
        dst: Option<IpAddr>,
        #[serde(default)]
        vni: Option<u32>,
        #[serde(default)]
        vlan: Option<u16>,
    },
    FdbFlush {
        #[serde(default)]
        dev: Option<String>,
        #[serde(default)]
        vni: Option<u32>,
        #[serde(default)]
        dynamic: bool,
    },
    VlanShow,
    VlanAdd {
        dev: String,
        vid: u16,
        #[serde(default)]
        pvid: bool,
        #[serde(default)]
        untagged: bool,
        #[serde(default)]
        tunnel_id: Option<u32>,
    },
    VlanDel {
        dev: String,
        vid: u16,
    },
    LinkShow,
    /// Makes an interface a port (in VLAN 1, untagged, as a new kernel bridge port), with
    /// port I/O `io` (default `auto`).
    LinkAdd {
        dev: String,
        #[serde(default)]
        io: Option<xvtep_dataplane::config::PortIo>,
        /// An internal port: xvtep creates the interface, with these addresses and MAC.
        #[serde(default)]
        internal: Option<xvtep_dataplane::config::InternalPort>,
    },
    /// Removes a port, with its FDB entries.
    LinkDel {
        dev: String,
    },
    LinkSet {
        dev: String,
        #[serde(default)]
        hairpin: Option<bool>,
        #[serde(default)]
        learning: Option<bool>,
        #[serde(default)]
        flood: Option<bool>,
    },
    NeighShow,
    NeighAdd {
        ip: IpAddr,
        mac: MacAddr,
        vni: u32,
    },
    NeighDel {
        ip: IpAddr,
        vni: u32,
    },
    Stats {
        #[serde(default)]
        dev: Option<String>,
    },
    Monitor {
        #[serde(default)]
        fdb: bool,
        #[serde(default)]
        miss: bool,
    },
    Save {
        #[serde(default)]
        path: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Envelope {
    v: u32,
    #[serde(flatten)]
    request: Request,
}

/// Encodes a request as one line (without the newline).
pub fn encode(request: &Request) -> String {
    serde_json::to_string(&Envelope { v: VERSION, request: request.clone() }).expect("requests serialize")
}

/// Decodes one request line; the error says what is wrong with it.
pub fn decode(line: &str) -> Result<Request, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("request is not JSON: {e}"))?;
    match value.get("v").and_then(|v| v.as_u64()) {
        Some(v) if v == VERSION as u64 => {}
        Some(v) => {
            return Err(format!("protocol version {v} is not supported (this daemon speaks {VERSION})"))
        }
        None => return Err("request has no protocol version \"v\"".into()),
    }
    let env: Envelope = serde_json::from_value(value.clone()).map_err(|e| format!("bad request: {e}"))?;
    // serde does not refuse unknown fields through `flatten` for commands without fields; the
    // encoded request names every field its command has, so anything else is unknown.
    let known = serde_json::to_value(&env).map_err(|e| e.to_string())?;
    if let (Some(given), Some(known)) = (value.as_object(), known.as_object()) {
        if let Some(extra) = given.keys().find(|k| !known.contains_key(*k)) {
            return Err(format!("bad request: unknown field `{extra}` for {}", known["cmd"]));
        }
    }
    Ok(env.request)
}

/// A response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl Response {
    pub fn ok(data: serde_json::Value) -> Response {
        Response { ok: true, error: None, data }
    }

    pub fn error(msg: impl Into<String>) -> Response {
        Response { ok: false, error: Some(msg.into()), data: serde_json::Value::Null }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r = Request::FdbAdd {
            op: FdbOp::Append,
            mac: MacAddr::ZERO,
            dev: "vxlan0".into(),
            dst: Some(std::net::Ipv4Addr::new(10, 0, 0, 2).into()),
            vni: Some(2),
            vlan: None,
            permanent: false,
        };
        let line = encode(&r);
        assert!(line.starts_with("{\"v\":1,\"cmd\":\"fdb_add\""), "{line}");
        assert_eq!(decode(&line), Ok(r));
        assert_eq!(decode(&encode(&Request::VlanShow)), Ok(Request::VlanShow));
    }

    #[test]
    fn malformed_requests_are_answered_with_errors() {
        let cases = [
            ("", "request is not JSON"),
            ("{", "request is not JSON"),
            ("[]", "no protocol version"),
            ("{\"cmd\":\"vlan_show\"}", "no protocol version"),
            ("{\"v\":2,\"cmd\":\"vlan_show\"}", "protocol version 2 is not supported"),
            ("{\"v\":1}", "bad request"),
            ("{\"v\":1,\"cmd\":\"reboot\"}", "unknown variant `reboot`"),
            ("{\"v\":1,\"cmd\":\"vlan_show\",\"extra\":1}", "unknown field `extra`"),
            ("{\"v\":1,\"cmd\":\"neigh_add\",\"ip\":\"10.0.0.1\",\"mac\":\"zz\",\"vni\":2}", "invalid MAC address 'zz'"),
            ("{\"v\":1,\"cmd\":\"neigh_add\",\"ip\":\"10.0.0.300\",\"mac\":\"02:00:00:00:00:01\",\"vni\":2}", "invalid"),
            ("{\"v\":1,\"cmd\":\"vlan_add\",\"dev\":\"p1\"}", "missing field `vid`"),
            ("{\"v\":1,\"cmd\":\"vlan_add\",\"dev\":\"p1\",\"vid\":-1}", "invalid value"),
        ];
        for (line, want) in cases {
            let e = decode(line).expect_err(line);
            assert!(e.contains(want), "{line:?}: {e}");
        }
    }
}
