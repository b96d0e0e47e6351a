//! The configuration file (README "Configuration"): TOML, parsed with serde, then
//! validated as a whole. Every error names the file, the line and what is wrong, and a config
//! that fails validation produces no [`Config`] at all, so nothing starts half-configured.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::ops::RangeInclusive;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::ids::Domain;
use crate::wire::{MacAddr, VXLAN_VALID_BITS};

/// Highest VXLAN network identifier (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;
/// Highest usable VLAN ID; 0 is the priority tag and 4095 is reserved (802.1Q).
pub const MAX_VID: u16 = 4094;
/// Local ports a switch can have (the tunnel port is one more).
pub const MAX_LOCAL_PORTS: usize = 1023;
/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;
/// Outer Ethernet + IPv4 + UDP + VXLAN, as counted against the underlay MTU (RFC 7348 §4.3);
/// 20 more over IPv6 ([`TunnelConfig::overhead`]).
pub const VXLAN_OVERHEAD: u32 = 50;
/// The highest IPv6 flow label (20 bits).
pub const MAX_FLOW_LABEL: u32 = 0xf_ffff;

/// A configuration error: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the error concerns the file as a whole (e.g. it cannot be read).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// How the outer IPv4 DF bit is set, as iproute2's `df` option of a vxlan device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DfMode {
    /// DF clear.
    Unset,
    /// DF set.
    Set,
    /// DF copied from the inner IPv4 header (clear for non-IPv4 inner frames).
    Inherit,
}

/// An outer header field set to a number, or copied from the inner frame (`"inherit"`), as
/// iproute2's `tos`, `ttl` and `flowlabel` options of a vxlan device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inheritable<T = u8> {
    Fixed(T),
    Inherit,
}

impl<T: Copy> Inheritable<T> {
    /// The value for an inner frame whose own field is `inner` (`None`: not IP), `default`
    /// when there is none to inherit.
    #[inline]
    pub fn resolve(self, inner: Option<T>, default: T) -> T {
        match self {
            Inheritable::Fixed(v) => v,
            Inheritable::Inherit => inner.unwrap_or(default),
        }
    }
}

/// As written in the config file: the number, or `"inherit"`.
impl<T: fmt::Display> fmt::Display for Inheritable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Inheritable::Fixed(v) => write!(f, "{v}"),
            Inheritable::Inherit => f.write_str("\"inherit\""),
        }
    }
}

/// How a port's frames reach the workers (docs/design.md "Port I/O").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortIo {
    /// `vnet` for veth and tap interfaces, `afxdp` for the rest (the daemon decides at attach).
    #[default]
    Auto,
    /// The XDP program redirects every frame into AF_XDP sockets; the peer loses its GSO.
    Afxdp,
    /// Frames move with a virtio-net header, superframes whole (AF_PACKET with
    /// `PACKET_VNET_HDR` on a veth).
    Vnet,
}

impl std::str::FromStr for PortIo {
    type Err = String;

    fn from_str(s: &str) -> Result<PortIo, String> {
        match s {
            "auto" => Ok(PortIo::Auto),
            "afxdp" => Ok(PortIo::Afxdp),
            "vnet" => Ok(PortIo::Vnet),
            other => Err(format!("unknown port I/O '{other}': use auto, afxdp or vnet")),
        }
    }
}

impl PortIo {
    pub fn name(self) -> &'static str {
        match self {
            PortIo::Auto => "auto",
            PortIo::Afxdp => "afxdp",
            PortIo::Vnet => "vnet",
        }
    }
}

/// How a worker waits for frames when its rings are empty (`[worker] poll`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PollMode {
    /// Keeps looking at its rings for a short while after the last frame (no system call:
    /// the rings are shared memory), then sleeps in poll(2): the answer to a frame just sent
    /// finds the worker awake, and an idle worker costs nothing.
    #[default]
    Adaptive,
    /// Never sleeps: the lowest latency, a whole core always (for a worker given its own core).
    Busy,
    /// Sleeps in poll(2) whenever the rings are empty: a wake-up for every frame that comes
    /// alone.
    Sleep,
}

impl std::str::FromStr for PollMode {
    type Err = String;

    fn from_str(s: &str) -> Result<PollMode, String> {
        match s {
            "adaptive" => Ok(PollMode::Adaptive),
            "busy" => Ok(PollMode::Busy),
            "sleep" => Ok(PollMode::Sleep),
            other => Err(format!("unknown poll mode '{other}': use adaptive, busy or sleep")),
        }
    }
}

impl PollMode {
    pub fn name(self) -> &'static str {
        match self {
            PollMode::Adaptive => "adaptive",
            PollMode::Busy => "busy",
            PollMode::Sleep => "sleep",
        }
    }
}

/// The workers (`[worker]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkerConfig {
    pub poll: PollMode,
}

/// The switch as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchConfig {
    /// Seconds after which a learned entry that saw no traffic is removed.
    pub ageing_secs: u64,
    /// Learned entries at most; 0 = unlimited.
    pub max_learned: usize,
}

/// The one VXLAN port ("vxlan0").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelConfig {
    /// Our VTEP address; its family is the underlay's: every remote, group and peer is of it.
    pub local: IpAddr,
    pub dev: String,
    pub dstport: u16,
    pub learning: bool,
    pub proxy: bool,
    pub l2miss: bool,
    pub l3miss: bool,
    pub remote: Option<IpAddr>,
    pub group: Option<IpAddr>,
    /// Outer TTL: a number, or the inner TTL / hop limit (64 for non-IP).
    pub ttl: Inheritable,
    /// Outer TOS: a number, or the inner TOS / traffic class (0 for non-IP). Either way its
    /// ECN field comes from the inner frame ([`crate::wire::ecn::encapsulate`]).
    pub tos: Inheritable,
    pub df: DfMode,
    /// UDP checksum over an IPv4 underlay.
    pub udpcsum: bool,
    /// Over an IPv6 underlay: send a zero UDP checksum (RFC 6935), accept one.
    pub udp6zerocsumtx: bool,
    pub udp6zerocsumrx: bool,
    /// Outer IPv6 flow label: a number, or the inner IPv6 frame's (0 for others).
    pub flowlabel: Inheritable<u32>,
    pub srcport: (u16, u16),
    /// Underlay MTU; `None` = read it from `dev` (daemon) or 1500 (replay).
    pub mtu: Option<u32>,
    /// Our underlay MAC; `None` = read it from `dev` (daemon) or derived from `local` (replay).
    pub mac: Option<MacAddr>,
    /// VXLAN header bits allowed to be set, as the kernel's `reserved_bits` (64-bit, network order).
    pub allowed_bits: u64,
    /// If non-empty, VXLAN is accepted only from these outer source addresses.
    pub allowed_peers: Vec<IpAddr>,
}

impl TunnelConfig {
    /// The underlay is IPv6.
    pub fn ipv6(&self) -> bool {
        self.local.is_ipv6()
    }

    /// What encapsulation adds, as counted against the underlay MTU (RFC 7348 section 4.3):
    /// outer IP + UDP + VXLAN + the inner Ethernet header.
    pub fn overhead(&self) -> u32 {
        overhead(self.ipv6())
    }
}

/// [`TunnelConfig::overhead`] for an IPv6 or IPv4 underlay.
pub fn overhead(ipv6: bool) -> u32 {
    VXLAN_OVERHEAD + if ipv6 { 20 } else { 0 }
}

/// One VID ↔ VNI mapping of the tunnel port (`tunnel_info id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanMap {
    pub vid: u16,
    pub vni: u32,
    /// Multicast group for this VNI's BUM traffic, overriding `tunnel.group`.
    pub group: Option<IpAddr>,
}

/// A port's membership of one VLAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortVlan {
    pub vid: u16,
    pub pvid: bool,
    pub untagged: bool,
}

/// A local port (veth or tap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub name: String,
    pub vlans: Vec<PortVlan>,
    pub hairpin: bool,
    pub learning: bool,
    pub flood: bool,
    /// The port's MTU: frames longer than this plus the L2 header are not sent out of it.
    pub mtu: u32,
    /// How its frames reach the workers.
    pub io: PortIo,
    /// An internal port: the host's own interface on the overlay, which xvtep creates.
    pub internal: Option<InternalPort>,
}

/// What xvtep gives the host's own interface of an internal port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct InternalPort {
    /// Addresses with their prefix length ("10.2.0.1/24").
    pub addresses: Vec<(IpAddr, u8)>,
    /// Its MAC; `None`: one the kernel picks.
    pub mac: Option<MacAddr>,
    /// The host's side is the existing kernel bridge of the port's name, not a new interface
    /// (`[kernel]` mode): frames the switch sends to it reach the host's stack as received on
    /// the bridge, and the host sends through the kernel's bridge.
    #[serde(default)]
    pub kernel_bridge: bool,
}

/// The key of a static FDB entry: a VNI, or a VID that has no VNI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FdbScope {
    Vni(u32),
    Vid(u16),
}

impl StaticFdb {
    /// The kind of FDB entry it installs.
    pub fn kind(&self) -> crate::fdb::EntryKind {
        use crate::fdb::EntryKind;
        match (self.permanent, self.extern_learn) {
            (true, _) => EntryKind::Permanent,
            (false, true) => EntryKind::External,
            (false, false) => EntryKind::Static,
        }
    }
}

impl From<FdbScope> for Domain {
    fn from(scope: FdbScope) -> Domain {
        match scope {
            FdbScope::Vni(vni) => Domain::vni(vni),
            FdbScope::Vid(vid) => Domain::vid(vid),
        }
    }
}

impl From<Domain> for FdbScope {
    fn from(domain: Domain) -> FdbScope {
        domain.as_vni().map_or_else(|| FdbScope::Vid(domain.as_vid().unwrap_or(0)), FdbScope::Vni)
    }
}

/// Where a static FDB entry points.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FdbTarget {
    Port(String),
    Remote { ip: IpAddr, port: Option<u16>, vni: Option<u32> },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StaticFdb {
    pub mac: MacAddr,
    pub scope: FdbScope,
    pub target: FdbTarget,
    pub permanent: bool,
    /// Installed by a control plane (`extern_learn`): never ages, but learning moves it.
    pub extern_learn: bool,
}

/// A neighbour for ARP suppression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighConfig {
    pub vni: u32,
    pub ip: IpAddr,
    pub mac: MacAddr,
}

/// An underlay next hop (replay; the daemon resolves next hops from the kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHopConfig {
    pub ip: IpAddr,
    pub mac: MacAddr,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub switch: SwitchConfig,
    pub worker: WorkerConfig,
    pub tunnel: TunnelConfig,
    pub vlans: Vec<VlanMap>,
    pub ports: Vec<PortConfig>,
    pub fdb: Vec<StaticFdb>,
    pub neigh: Vec<NeighConfig>,
    pub nexthops: Vec<NextHopConfig>,
}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read the config file: {e}"),
        })?;
        Config::parse(&text, &file)
    }

    /// Parses and validates config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let at = |span: Option<Range<usize>>, message: String| {
            let (line, column) = span.map_or((1, 1), |s| line_col(text, s.start));
            ConfigError { file: file.to_string(), line, column, message }
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // Some syntax errors (a control character in a comment) come without a message.
            let message = match e.message().trim() {
                "" => "invalid TOML here: a control character, or a syntax error".to_string(),
                m => m.to_string(),
            };
            at(e.span(), message)
        })?;
        validate(raw).map_err(|(span, msg)| at(Some(span), msg))
    }

    /// The VNI mapped to `vid`, if any.
    pub fn vni_of(&self, vid: u16) -> Option<u32> {
        self.vlans.iter().find(|m| m.vid == vid).map(|m| m.vni)
    }

    /// The VID mapped to `vni`, if any.
    pub fn vid_of(&self, vni: u32) -> Option<u16> {
        self.vlans.iter().find(|m| m.vni == vni).map(|m| m.vid)
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

// ---- The file as written (serde), before validation. ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    switch: RawSwitch,
    #[serde(default)]
    worker: RawWorker,
    tunnel: Spanned<RawTunnel>,
    #[serde(default)]
    vlan: Vec<Spanned<RawVlan>>,
    #[serde(default)]
    port: Vec<Spanned<RawPort>>,
    #[serde(default)]
    fdb: Vec<Spanned<RawFdb>>,
    #[serde(default)]
    neigh: Vec<Spanned<RawNeigh>>,
    #[serde(default)]
    nexthop: Vec<Spanned<RawNextHop>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSwitch {
    #[serde(default = "default_ageing")]
    ageing: Spanned<u64>,
    #[serde(default = "default_max_learned")]
    max_learned: usize,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWorker {
    poll: Option<Spanned<String>>,
}

impl Default for RawSwitch {
    fn default() -> Self {
        RawSwitch { ageing: default_ageing(), max_learned: default_max_learned() }
    }
}

fn default_ageing() -> Spanned<u64> {
    Spanned::new(0..0, 300)
}
fn default_max_learned() -> usize {
    65536
}
fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTunnel {
    local: Spanned<IpAddr>,
    dev: Spanned<String>,
    #[serde(default = "default_dstport")]
    dstport: Spanned<u16>,
    #[serde(default = "yes")]
    learning: bool,
    #[serde(default)]
    proxy: bool,
    #[serde(default)]
    l2miss: bool,
    #[serde(default)]
    l3miss: bool,
    remote: Option<Spanned<IpAddr>>,
    group: Option<Spanned<IpAddr>>,
    #[serde(default = "default_ttl")]
    ttl: Spanned<RawInheritable>,
    #[serde(default = "default_tos")]
    tos: Spanned<RawInheritable>,
    #[serde(default = "default_df")]
    df: DfMode,
    udpcsum: Option<Spanned<bool>>,
    udp6zerocsumtx: Option<Spanned<bool>>,
    udp6zerocsumrx: Option<Spanned<bool>>,
    flowlabel: Option<Spanned<RawInheritable>>,
    #[serde(default = "default_srcport")]
    srcport: Spanned<[u16; 2]>,
    mtu: Option<Spanned<u32>>,
    mac: Option<Spanned<MacAddr>>,
    reserved_bits: Option<Spanned<RawBits>>,
    #[serde(default)]
    allowed_peers: Vec<Spanned<IpAddr>>,
}

fn default_dstport() -> Spanned<u16> {
    Spanned::new(0..0, 4789)
}
fn default_ttl() -> Spanned<RawInheritable> {
    Spanned::new(0..0, RawInheritable::Int(64))
}
fn default_tos() -> Spanned<RawInheritable> {
    Spanned::new(0..0, RawInheritable::Int(0))
}

/// A number, or a word (which must be "inherit").
#[derive(Deserialize)]
#[serde(untagged)]
enum RawInheritable {
    Int(i64),
    Word(String),
}

/// `tunnel.NAME` as a number in `range` or "inherit".
fn inheritable<T: TryFrom<i64> + PartialOrd + fmt::Display>(
    raw: &Spanned<RawInheritable>,
    name: &str,
    range: RangeInclusive<T>,
) -> Result<Inheritable<T>, Invalid> {
    let bad = || {
        let (lo, hi) = (range.start(), range.end());
        (raw.span(), format!("tunnel.{name} must be a number {lo}..={hi} or \"inherit\""))
    };
    match raw.get_ref() {
        RawInheritable::Int(v) => {
            T::try_from(*v).ok().filter(|v| range.contains(v)).map(Inheritable::Fixed).ok_or_else(bad)
        }
        RawInheritable::Word(w) if w == "inherit" => Ok(Inheritable::Inherit),
        RawInheritable::Word(_) => Err(bad()),
    }
}
fn default_df() -> DfMode {
    DfMode::Unset
}
fn default_srcport() -> Spanned<[u16; 2]> {
    // The kernel's default ephemeral range (net.ipv4.ip_local_port_range).
    Spanned::new(0..0, [32768, 60999])
}

/// A 64-bit mask written as an integer or, since TOML integers are signed, a "0x…" string.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawBits {
    Int(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVlan {
    vid: u16,
    vni: u32,
    group: Option<IpAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPortVlan {
    vid: u16,
    #[serde(default)]
    pvid: bool,
    #[serde(default)]
    untagged: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: String,
    #[serde(default)]
    vlans: Vec<RawPortVlan>,
    #[serde(default)]
    hairpin: bool,
    #[serde(default = "yes")]
    learning: bool,
    #[serde(default = "yes")]
    flood: bool,
    #[serde(default = "default_port_mtu")]
    mtu: u32,
    #[serde(default)]
    io: PortIo,
    #[serde(default)]
    internal: bool,
    #[serde(default)]
    address: Vec<String>,
    mac: Option<MacAddr>,
    #[serde(default)]
    kernel_bridge: bool,
}

fn default_port_mtu() -> u32 {
    1500
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFdb {
    mac: MacAddr,
    vni: Option<u32>,
    vid: Option<u16>,
    port: Option<String>,
    dst: Option<IpAddr>,
    dst_port: Option<u16>,
    remote_vni: Option<u32>,
    #[serde(default)]
    permanent: bool,
    #[serde(default)]
    extern_learn: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNeigh {
    vni: u32,
    ip: IpAddr,
    mac: MacAddr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNextHop {
    ip: IpAddr,
    mac: MacAddr,
}

// ---- Validation. ----

type Invalid = (Range<usize>, String);

fn check(ok: bool, span: &Range<usize>, msg: impl FnOnce() -> String) -> Result<(), Invalid> {
    if ok {
        Ok(())
    } else {
        Err((span.clone(), msg()))
    }
}

/// An IPv6 link-local address: not one a tunnel can be reached at from another link.
fn is_link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local())
}

fn unicast_ip(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() || ip.is_loopback())
}

/// An address of the host with its prefix length ("10.2.0.1/24", "fd00:2::1/64"): unicast,
/// the length within the family's.
pub fn parse_host_prefix(text: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = text.split_once('/')?;
    let (ip, len) = (ip.parse::<IpAddr>().ok()?, len.parse::<u8>().ok()?);
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    (len <= bits && unicast_neighbour(ip)).then_some((ip, len))
}

/// A neighbour address suppression can answer for: IPv4 neither unspecified, multicast,
/// broadcast nor loopback, IPv6 neither unspecified, loopback nor multicast.
pub fn unicast_neighbour(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => unicast_ip(v4),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_loopback() || v6.is_multicast()),
    }
}

fn vni_ok(vni: u32) -> bool {
    (1..=MAX_VNI).contains(&vni)
}

fn vid_ok(vid: u16) -> bool {
    (1..=MAX_VID).contains(&vid)
}

/// The whole file, section by section in the order they are written; the first error found is
/// the one reported.
fn validate(raw: RawConfig) -> Result<Config, Invalid> {
    let switch = validate_switch(&raw.switch)?;
    let worker = validate_worker(&raw.worker)?;
    let tunnel = validate_tunnel(raw.tunnel)?;
    let vlans = validate_vlans(&raw.vlan, &tunnel)?;
    let ports = validate_ports(&raw.port, &tunnel)?;
    let fdb = validate_fdb(&raw.fdb, &tunnel, &vlans, &ports)?;
    let neigh = validate_neighs(&raw.neigh, &vlans)?;
    let nexthops = validate_nexthops(&raw.nexthop, &tunnel)?;
    Ok(Config { switch, worker, tunnel, vlans, ports, fdb, neigh, nexthops })
}

/// `[switch]`: an ageing time of at least a second.
fn validate_switch(s: &RawSwitch) -> Result<SwitchConfig, Invalid> {
    let ageing = &s.ageing;
    check(*ageing.get_ref() >= 1, &ageing.span(), || "switch.ageing must be at least 1 second".into())?;
    Ok(SwitchConfig { ageing_secs: *ageing.get_ref(), max_learned: s.max_learned })
}

/// `[worker]`: a poll mode [`PollMode`] knows, if one is given.
fn validate_worker(w: &RawWorker) -> Result<WorkerConfig, Invalid> {
    Ok(match &w.poll {
        Some(p) => WorkerConfig {
            poll: p.get_ref().parse().map_err(|e: String| (p.span(), format!("worker.poll: {e}")))?,
        },
        None => WorkerConfig::default(),
    })
}

/// `[[vlan]]`: VIDs and VNIs in range, the map one-to-one, a group multicast and of the
/// tunnel's family.
fn validate_vlans(raw: &[Spanned<RawVlan>], tunnel: &TunnelConfig) -> Result<Vec<VlanMap>, Invalid> {
    let mut vlans: Vec<VlanMap> = Vec::new();
    for v in raw {
        let (span, v) = (v.span(), v.get_ref());
        check(vid_ok(v.vid), &span, || format!("[[vlan]] vid {} is out of range 1..={MAX_VID}", v.vid))?;
        check(vni_ok(v.vni), &span, || format!("[[vlan]] vni {} is out of range 1..={MAX_VNI}", v.vni))?;
        if let Some(prev) = vlans.iter().find(|m| m.vid == v.vid) {
            return Err((
                span,
                format!(
                    "VID {} is mapped twice (to VNI {} and VNI {}); the map is one-to-one",
                    v.vid, prev.vni, v.vni
                ),
            ));
        }
        if let Some(prev) = vlans.iter().find(|m| m.vni == v.vni) {
            return Err((
                span,
                format!(
                    "VNI {} is mapped twice (from VID {} and VID {}); the map is one-to-one",
                    v.vni, prev.vid, v.vid
                ),
            ));
        }
        if let Some(g) = v.group {
            check(g.is_multicast(), &span, || format!("[[vlan]] group {g} is not a multicast address"))?;
            same_family(tunnel.local, g, "[[vlan]] group", &span)?;
        }
        vlans.push(VlanMap { vid: v.vid, vni: v.vni, group: v.group });
    }
    Ok(vlans)
}

/// The VID the validated map gives `vni`, if any.
fn mapped_vid(vlans: &[VlanMap], vni: u32) -> Option<u16> {
    vlans.iter().find(|m| m.vni == vni).map(|m| m.vid)
}

/// The VNI the validated map gives `vid`, if any.
fn mapped_vni(vlans: &[VlanMap], vid: u16) -> Option<u32> {
    vlans.iter().find(|m| m.vid == vid).map(|m| m.vni)
}

/// `[[port]]`: at most [`MAX_LOCAL_PORTS`] of them, each as [`validate_port`].
fn validate_ports(raw: &[Spanned<RawPort>], tunnel: &TunnelConfig) -> Result<Vec<PortConfig>, Invalid> {
    check(raw.len() <= MAX_LOCAL_PORTS, &raw.last().map_or(0..0, |p| p.span()), || {
        format!("at most {MAX_LOCAL_PORTS} ports are supported")
    })?;
    let mut ports: Vec<PortConfig> = Vec::new();
    for p in raw {
        ports.push(validate_port(p, tunnel, &ports)?);
    }
    Ok(ports)
}

/// `[[fdb]]`: each entry as [`validate_fdb_entry`], and given once: one entry per MAC and
/// scope, and in the flood list (the all-zeros MAC) one per target.
fn validate_fdb(
    raw: &[Spanned<RawFdb>],
    tunnel: &TunnelConfig,
    vlans: &[VlanMap],
    ports: &[PortConfig],
) -> Result<Vec<StaticFdb>, Invalid> {
    let mut fdb: Vec<StaticFdb> = Vec::new();
    // A set rather than a search of `fdb`: a control plane may install tens of thousands.
    let mut keys = HashSet::new();
    for e in raw {
        let entry = validate_fdb_entry(e, tunnel, vlans, ports)?;
        let key = (entry.mac, entry.scope, entry.mac.is_zero().then(|| entry.target.clone()));
        if !keys.insert(key) {
            return Err((e.span(), format!("[[fdb]] {} in {:?} is given twice", entry.mac, entry.scope)));
        }
        fdb.push(entry);
    }
    Ok(fdb)
}

/// One `[[fdb]]` entry: its scope, a unicast MAC (or the all-zeros flood entry), one target,
/// and `extern_learn` only on a remote MAC.
fn validate_fdb_entry(
    e: &Spanned<RawFdb>,
    tunnel: &TunnelConfig,
    vlans: &[VlanMap],
    ports: &[PortConfig],
) -> Result<StaticFdb, Invalid> {
    let (span, e) = (e.span(), e.get_ref());
    let scope = fdb_scope(e, &span, vlans)?;
    let vid = match scope {
        FdbScope::Vni(vni) => mapped_vid(vlans, vni).unwrap_or(0),
        FdbScope::Vid(vid) => vid,
    };
    check(!e.mac.is_multicast() || e.mac.is_zero(), &span, || {
        format!("[[fdb]] mac {} is a multicast address; only unicast MACs and the all-zeros flood entry are FDB entries", e.mac)
    })?;
    let target = match (&e.port, e.dst) {
        (Some(port), None) => fdb_port_target(e, port, vid, &span, ports)?,
        (None, Some(ip)) => fdb_remote_target(e, ip, scope, &span, tunnel)?,
        _ => {
            return Err((
                span,
                "[[fdb]] needs exactly one of `port` (a local port) or `dst` (a remote VTEP)".into(),
            ))
        }
    };
    check(!e.extern_learn || (e.dst.is_some() && !e.permanent && !e.mac.is_zero()), &span, || {
        "[[fdb]] extern_learn is for a remote MAC (with dst, not permanent, not the flood entry)".into()
    })?;
    Ok(StaticFdb { mac: e.mac, scope, target, permanent: e.permanent, extern_learn: e.extern_learn })
}

/// The key of an `[[fdb]]` entry: exactly one of a mapped `vni` or a `vid` in range.
fn fdb_scope(e: &RawFdb, span: &Range<usize>, vlans: &[VlanMap]) -> Result<FdbScope, Invalid> {
    match (e.vni, e.vid) {
        (Some(vni), None) => {
            check(mapped_vid(vlans, vni).is_some(), span, || {
                format!("[[fdb]] vni {vni} is not mapped to any VID; add a [[vlan]] with vni = {vni}")
            })?;
            Ok(FdbScope::Vni(vni))
        }
        (None, Some(vid)) => {
            check(vid_ok(vid), span, || format!("[[fdb]] vid {vid} is out of range 1..={MAX_VID}"))?;
            // A VID that has a VNI is keyed by its VNI (docs/design.md: the FDB is keyed by <MAC, VNI>).
            Ok(mapped_vni(vlans, vid).map_or(FdbScope::Vid(vid), FdbScope::Vni))
        }
        _ => Err((span.clone(), "[[fdb]] needs exactly one of `vni` or `vid`".into())),
    }
}

/// An `[[fdb]]` entry's local port: a `[[port]]` that is a member of the entry's VID, for a
/// unicast MAC, with none of the keys of a remote.
fn fdb_port_target(
    e: &RawFdb,
    port: &str,
    vid: u16,
    span: &Range<usize>,
    ports: &[PortConfig],
) -> Result<FdbTarget, Invalid> {
    check(e.dst_port.is_none() && e.remote_vni.is_none(), span, || {
        "[[fdb]] `dst_port` and `remote_vni` apply only to entries with `dst`".into()
    })?;
    check(!e.mac.is_zero(), span, || {
        "[[fdb]] the all-zeros MAC is the flood list of the tunnel: give it a `dst`, not a `port`".into()
    })?;
    let p = ports
        .iter()
        .find(|p| p.name == port)
        .ok_or_else(|| (span.clone(), format!("[[fdb]] port '{port}' is not a [[port]] of this switch")))?;
    check(p.vlans.iter().any(|v| v.vid == vid), span, || {
        format!("[[fdb]] port '{port}' is not a member of VID {vid}")
    })?;
    Ok(FdbTarget::Port(port.to_string()))
}

/// An `[[fdb]]` entry's remote VTEP: a unicast or multicast address of the tunnel's family,
/// in a scope the tunnel carries (one with a VNI), with a `remote_vni` in range.
fn fdb_remote_target(
    e: &RawFdb,
    ip: IpAddr,
    scope: FdbScope,
    span: &Range<usize>,
    tunnel: &TunnelConfig,
) -> Result<FdbTarget, Invalid> {
    check(unicast_neighbour(ip) || ip.is_multicast(), span, || {
        format!("[[fdb]] dst {ip} is not a usable remote VTEP address")
    })?;
    same_family(tunnel.local, ip, "[[fdb]] dst", span)?;
    if let FdbScope::Vid(vid) = scope {
        return Err((span.clone(), format!("VID {vid} has no VNI, so the tunnel cannot carry it: add a [[vlan]] mapping for VID {vid} or point the entry at a `port`")));
    }
    if let Some(v) = e.remote_vni {
        check(vni_ok(v), span, || format!("[[fdb]] remote_vni {v} is out of range 1..={MAX_VNI}"))?;
    }
    Ok(FdbTarget::Remote { ip, port: e.dst_port, vni: e.remote_vni })
}

/// `[[neigh]]`: a mapped VNI, a unicast address and MAC, each address once per VNI.
fn validate_neighs(raw: &[Spanned<RawNeigh>], vlans: &[VlanMap]) -> Result<Vec<NeighConfig>, Invalid> {
    let mut neigh: Vec<NeighConfig> = Vec::new();
    for n in raw {
        let (span, n) = (n.span(), n.get_ref());
        check(mapped_vid(vlans, n.vni).is_some(), &span, || {
            format!("[[neigh]] vni {} is not mapped to any VID; add a [[vlan]] with vni = {}", n.vni, n.vni)
        })?;
        check(unicast_neighbour(n.ip), &span, || format!("[[neigh]] ip {} is not a unicast address", n.ip))?;
        check(!n.mac.is_multicast() && !n.mac.is_zero(), &span, || {
            format!("[[neigh]] mac {} is not a unicast MAC", n.mac)
        })?;
        check(!neigh.iter().any(|o| o.vni == n.vni && o.ip == n.ip), &span, || {
            format!("[[neigh]] {} in VNI {} is given twice", n.ip, n.vni)
        })?;
        neigh.push(NeighConfig { vni: n.vni, ip: n.ip, mac: n.mac });
    }
    Ok(neigh)
}

/// `[[nexthop]]`: a unicast MAC, each address once and of the tunnel's family.
fn validate_nexthops(
    raw: &[Spanned<RawNextHop>],
    tunnel: &TunnelConfig,
) -> Result<Vec<NextHopConfig>, Invalid> {
    let mut nexthops: Vec<NextHopConfig> = Vec::new();
    for h in raw {
        let (span, h) = (h.span(), h.get_ref());
        check(!h.mac.is_multicast() && !h.mac.is_zero(), &span, || {
            format!("[[nexthop]] mac {} is not a unicast MAC", h.mac)
        })?;
        check(!nexthops.iter().any(|o| o.ip == h.ip), &span, || {
            format!("[[nexthop]] {} is given twice", h.ip)
        })?;
        same_family(tunnel.local, h.ip, "[[nexthop]] ip", &span)?;
        nexthops.push(NextHopConfig { ip: h.ip, mac: h.mac });
    }
    Ok(nexthops)
}

/// Every address of the tunnel is of `tunnel.local`'s family, as for one kernel vxlan device
/// (docs/design.md "Wire format").
fn same_family(local: IpAddr, ip: IpAddr, what: &str, span: &Range<usize>) -> Result<(), Invalid> {
    let family = |a: IpAddr| if a.is_ipv4() { "IPv4" } else { "IPv6" };
    check(ip.is_ipv4() == local.is_ipv4(), span, || {
        format!(
            "{what} {ip} is {} but tunnel.local {local} is {}: every address of the tunnel is of one family",
            family(ip),
            family(local)
        )
    })
}

/// `[tunnel]`: its own address and device, the remotes it sends to, the outer headers it
/// writes, its MTU and MAC, and the VXLAN header bits it accepts.
fn validate_tunnel(t: Spanned<RawTunnel>) -> Result<TunnelConfig, Invalid> {
    let t = t.into_inner();
    let local = *t.local.get_ref();
    check(unicast_neighbour(local) && !is_link_local(local), &t.local.span(), || {
        format!("tunnel.local {local} is not a unicast address (nor link-local)")
    })?;
    let dev = t.dev.get_ref();
    check(!dev.is_empty() && dev.len() <= IFNAME_MAX, &t.dev.span(), || {
        format!("tunnel.dev '{dev}' is not an interface name (1 to {IFNAME_MAX} bytes)")
    })?;
    check(*t.dstport.get_ref() != 0, &t.dstport.span(), || "tunnel.dstport must not be 0".into())?;
    check_tunnel_remotes(&t, local)?;
    let ttl = inheritable(&t.ttl, "ttl", 1..=255)?;
    let tos = inheritable(&t.tos, "tos", 0..=255)?;
    let udpcsum = checksum_key(&t.udpcsum, "udpcsum", false, local)?.unwrap_or(true);
    let udp6zerocsumtx = checksum_key(&t.udp6zerocsumtx, "udp6zerocsumtx", true, local)?.unwrap_or(false);
    let udp6zerocsumrx = checksum_key(&t.udp6zerocsumrx, "udp6zerocsumrx", true, local)?.unwrap_or(false);
    let flowlabel = tunnel_flowlabel(&t.flowlabel, local)?;
    let [lo, hi] = *t.srcport.get_ref();
    check(lo >= 1 && lo <= hi, &t.srcport.span(), || {
        format!("tunnel.srcport [{lo}, {hi}] is not a range [low, high] with 1 <= low <= high")
    })?;
    check_tunnel_mtu_and_mac(&t, local)?;
    let allowed_bits = allowed_vxlan_bits(&t.reserved_bits)?;
    Ok(TunnelConfig {
        local,
        dev: dev.clone(),
        dstport: *t.dstport.get_ref(),
        learning: t.learning,
        proxy: t.proxy,
        l2miss: t.l2miss,
        l3miss: t.l3miss,
        remote: t.remote.map(|r| *r.get_ref()),
        group: t.group.map(|g| *g.get_ref()),
        ttl,
        tos,
        df: t.df,
        udpcsum,
        udp6zerocsumtx,
        udp6zerocsumrx,
        flowlabel,
        srcport: (lo, hi),
        mtu: t.mtu.map(|m| *m.get_ref()),
        mac: t.mac.map(|m| *m.get_ref()),
        allowed_bits,
        allowed_peers: t.allowed_peers.iter().map(|p| *p.get_ref()).collect(),
    })
}

/// `tunnel.remote` unicast, `tunnel.group` multicast, and they and `tunnel.allowed_peers` of
/// `local`'s family.
fn check_tunnel_remotes(t: &RawTunnel, local: IpAddr) -> Result<(), Invalid> {
    if let Some(r) = &t.remote {
        check(unicast_neighbour(*r.get_ref()), &r.span(), || {
            format!("tunnel.remote {} is not a unicast address", r.get_ref())
        })?;
        same_family(local, *r.get_ref(), "tunnel.remote", &r.span())?;
    }
    if let Some(g) = &t.group {
        check(g.get_ref().is_multicast(), &g.span(), || {
            format!("tunnel.group {} is not a multicast address", g.get_ref())
        })?;
        same_family(local, *g.get_ref(), "tunnel.group", &g.span())?;
    }
    for p in &t.allowed_peers {
        same_family(local, *p.get_ref(), "tunnel.allowed_peers", &p.span())?;
    }
    Ok(())
}

/// The value of the checksum key `tunnel.NAME`, which belongs to the IPv6 underlay if `v6`
/// and to the IPv4 one if not, as the kernel's: given for the other family it would silently
/// do nothing, so it is an error.
fn checksum_key(
    key: &Option<Spanned<bool>>,
    name: &str,
    v6: bool,
    local: IpAddr,
) -> Result<Option<bool>, Invalid> {
    match key {
        Some(k) if local.is_ipv6() != v6 => Err((
            k.span(),
            format!(
                "tunnel.{name} applies to an {} underlay, and tunnel.local {local} is not one{}",
                if v6 { "IPv6" } else { "IPv4" },
                if v6 {
                    " (over IPv4 use udpcsum)"
                } else {
                    " (over IPv6 use udp6zerocsumtx/udp6zerocsumrx)"
                }
            ),
        )),
        k => Ok(k.as_ref().map(|k| *k.get_ref())),
    }
}

/// `tunnel.flowlabel`: only over an IPv6 underlay; 0 when not given.
fn tunnel_flowlabel(
    key: &Option<Spanned<RawInheritable>>,
    local: IpAddr,
) -> Result<Inheritable<u32>, Invalid> {
    match key {
        None => Ok(Inheritable::Fixed(0)),
        Some(f) => {
            check(local.is_ipv6(), &f.span(), || {
                format!("tunnel.flowlabel applies to an IPv6 underlay, and tunnel.local {local} is IPv4")
            })?;
            inheritable(f, "flowlabel", 0..=MAX_FLOW_LABEL)
        }
    }
}

/// `tunnel.mtu` large enough for the encapsulation and a tagged Ethernet header, `tunnel.mac`
/// unicast.
fn check_tunnel_mtu_and_mac(t: &RawTunnel, local: IpAddr) -> Result<(), Invalid> {
    if let Some(m) = &t.mtu {
        let min = overhead(local.is_ipv6()) + 14 + 4;
        check((min..=65535).contains(m.get_ref()), &m.span(), || {
            format!("tunnel.mtu {} is out of range {min}..=65535", m.get_ref())
        })?;
    }
    if let Some(m) = &t.mac {
        check(!m.get_ref().is_multicast() && !m.get_ref().is_zero(), &m.span(), || {
            format!("tunnel.mac {} is not a unicast MAC", m.get_ref())
        })?;
    }
    Ok(())
}

/// The VXLAN header bits accepted: the I flag and the VNI always, plus the reserved bits of
/// `tunnel.reserved_bits` (an integer or a "0x…" hex string).
fn allowed_vxlan_bits(key: &Option<Spanned<RawBits>>) -> Result<u64, Invalid> {
    let Some(b) = key else { return Ok(VXLAN_VALID_BITS) };
    let mask = match b.get_ref() {
        RawBits::Int(i) => Some(*i as u64),
        RawBits::Text(s) => {
            s.strip_prefix("0x").and_then(|h| u64::from_str_radix(&h.replace('_', ""), 16).ok())
        }
    };
    let mask = mask.ok_or_else(|| {
        (b.span(), "tunnel.reserved_bits must be an integer or a \"0x…\" hex string".to_string())
    })?;
    Ok(VXLAN_VALID_BITS | mask)
}

/// One `[[port]]`: an interface name not the tunnel's nor an earlier port's, an MTU in
/// range, its VLAN membership, and the keys of an internal port only on one.
fn validate_port(
    p: &Spanned<RawPort>,
    tunnel: &TunnelConfig,
    earlier: &[PortConfig],
) -> Result<PortConfig, Invalid> {
    let (span, p) = (p.span(), p.get_ref());
    let name = &p.name;
    check(!name.is_empty() && name.len() <= IFNAME_MAX && !name.contains(['/', ' ', ':']), &span, || {
        format!(
            "port name '{name}' is not an interface name (1 to {IFNAME_MAX} bytes, no '/', ':' or spaces)"
        )
    })?;
    check(name != "vxlan0" && *name != tunnel.dev, &span, || {
        format!("port name '{name}' is taken by the tunnel (vxlan0 and tunnel.dev '{}')", tunnel.dev)
    })?;
    check(!earlier.iter().any(|o| &o.name == name), &span, || format!("port '{name}' is given twice"))?;
    check((68..=65535).contains(&p.mtu), &span, || {
        format!("port '{name}' mtu {} is out of range 68..=65535", p.mtu)
    })?;
    check_port_vlans(p, &span)?;
    let internal = internal_port(p, &span)?;
    Ok(PortConfig {
        name: name.clone(),
        vlans: p.vlans.iter().map(|v| PortVlan { vid: v.vid, pvid: v.pvid, untagged: v.untagged }).collect(),
        hairpin: p.hairpin,
        learning: p.learning,
        flood: p.flood,
        mtu: p.mtu,
        io: p.io,
        internal,
    })
}

/// A port's VIDs: each in range, listed once, at most one of them the PVID.
fn check_port_vlans(p: &RawPort, span: &Range<usize>) -> Result<(), Invalid> {
    let name = &p.name;
    let mut seen = HashSet::new();
    let mut pvid: Option<u16> = None;
    for v in &p.vlans {
        check(vid_ok(v.vid), span, || format!("port '{name}' vid {} is out of range 1..={MAX_VID}", v.vid))?;
        check(seen.insert(v.vid), span, || format!("port '{name}' lists VID {} twice", v.vid))?;
        if v.pvid {
            if let Some(first) = pvid {
                return Err((
                    span.clone(),
                    format!(
                        "port '{name}' has two PVIDs (VID {first} and VID {}); a port has at most one",
                        v.vid
                    ),
                ));
            }
            pvid = Some(v.vid);
        }
    }
    Ok(())
}

/// The keys of an internal port (`address`, `mac`, `kernel_bridge`): only on one, with
/// `kernel_bridge` neither address nor MAC (the kernel bridge's are the kernel's), addresses
/// with their prefix length, a unicast MAC. `None` for a port that is not internal.
fn internal_port(p: &RawPort, span: &Range<usize>) -> Result<Option<InternalPort>, Invalid> {
    let name = &p.name;
    check(p.internal || (p.address.is_empty() && p.mac.is_none() && !p.kernel_bridge), span, || {
        format!("port '{name}': address, mac and kernel_bridge are for an internal port (internal = true)")
    })?;
    check(!p.kernel_bridge || (p.address.is_empty() && p.mac.is_none()), span, || {
        format!(
            "port '{name}': with kernel_bridge the host's side is the kernel bridge {name}, whose addresses \
             and MAC are the kernel's: give it no address or mac"
        )
    })?;
    let mut addresses = Vec::new();
    for a in &p.address {
        let Some(a) = parse_host_prefix(a) else {
            return Err((
                span.clone(),
                format!(
                    "port '{name}' address '{a}' is not an IPv4 or IPv6 address with a prefix length \
                     (10.2.0.1/24, fd00:2::1/64)"
                ),
            ));
        };
        addresses.push(a);
    }
    if let Some(mac) = p.mac {
        check(!mac.is_multicast() && !mac.is_zero(), span, || {
            format!("port '{name}' mac {mac} is not a unicast MAC")
        })?;
    }
    Ok(p.internal.then_some(InternalPort { addresses, mac: p.mac, kernel_bridge: p.kernel_bridge }))
}

pub mod keys;
mod write;
pub use write::quoted;

#[cfg(test)]
mod tests;
