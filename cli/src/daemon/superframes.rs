//! Whether the underlay takes UDP superframes whole, and how large: the workers' packet socket
//! for them sends straight to the driver, which drops what the kernel would have to cut in
//! software (`xvtep_dataplane::io::afxdp::udp_superframes`). So they go only where every rule
//! below holds; otherwise encapsulated superframes leave one AF_XDP frame per datagram.

use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use netlink_packet_route::link::LinkAttribute;
use tracing::info;
use xvtep_dataplane::io::afxdp::IoCommand;
use xvtep_dataplane::io::sys::{ethtool_feature, ifname_of, kernel_at_least};
use xvtep_dataplane::pipeline::udp_gso::{Limits, UDP_SEGMENTATION};

use super::host::Iface;
use super::netlink::{unnamed_link_attribute, Rtnl};

/// How large a UDP superframe `dev` (an underlay of IPv6 if `ipv6`) takes whole, or why it
/// takes none (for the log).
pub fn underlay_takes(dev: &Iface, ipv6: bool) -> Result<Limits, String> {
    if std::env::var("XVTEP_UDP_GSO").is_ok_and(|v| v == "off") {
        return Err("XVTEP_UDP_GSO=off".into());
    }
    if !kernel_at_least((6, 2)) {
        return Err("UDP superframes from a packet socket need Linux 6.2".into());
    }
    let on = |feature: &str| {
        ethtool_feature(&dev.name, feature).map_err(|e| format!("reading {}'s {feature}: {e}", dev.name))
    };
    if !on(UDP_SEGMENTATION)? {
        return Err(format!("{UDP_SEGMENTATION} is off on {}", dev.name));
    }
    // Without checksum offload the kernel cuts them in software (before Linux 6.11 the
    // offload could be off while tx-udp-segmentation stayed on), and a device that cuts
    // them only partly (tx-gso-partial) leaves the rest to software too: both dropped.
    let family = if ipv6 { "tx-checksum-ipv6" } else { "tx-checksum-ipv4" };
    if !on("tx-checksum-ip-generic")? && !on(family)? {
        return Err(format!("{} has no transmit checksum offload", dev.name));
    }
    if on("tx-gso-partial")? {
        return Err(format!("{} cuts superframes partly in software (tx-gso-partial)", dev.name));
    }
    // Frames of one flow leave by two sockets; they keep their order only through one queue,
    // of this device's own (a stacked device passes them to another's queues).
    match dev.tx_queues {
        Some(1) => {}
        Some(n) => {
            return Err(format!(
                "{} has {n} transmit queues, and superframes keep a flow's order only through one \
                 (ethtool -L {} tx 1 would allow them)",
                dev.name, dev.name
            ))
        }
        None => {
            return Err(format!(
                "{}'s transmit queues are unknown (no /sys/class/net/{}/queues)",
                dev.name, dev.name
            ))
        }
    }
    if dev.stacked {
        return Err(format!("{} is stacked on another device", dev.name));
    }
    let (size, segs) =
        gso_limits(dev.index, ipv6).map_err(|e| format!("reading {}'s GSO limits: {e}", dev.name))?;
    Ok(Limits::of_device(size, segs))
}

/// `IFLA_GSO_IPV4_MAX_SIZE` (Linux 6.3), which netlink-packet-route does not name.
const IFLA_GSO_IPV4_MAX_SIZE: u16 = 63;

/// The GSO limits of device `index` for superframes of IPv6 if `ipv6`, else of IPv4: (size,
/// segments), as `ip -d link show` shows them.
fn gso_limits(index: u32, ipv6: bool) -> std::io::Result<(u32, u32)> {
    let link = Rtnl::new()?.link(index)?;
    let link = link.ok_or_else(|| std::io::Error::other("the device is gone"))?;
    gso_limits_of(&link.attributes, ipv6).ok_or_else(|| std::io::Error::other("the kernel did not say"))
}

/// The GSO limits among a link's `attributes` for superframes of IPv6 if `ipv6`, else of IPv4:
/// (size, segments). The kernel holds an IPv4 GSO skb to `gso_ipv4_max_size` and an IPv6 one
/// to `gso_max_size` (`netif_get_gso_max_size`); a kernel before 6.3 has no
/// `gso_ipv4_max_size`, and `gso_max_size` holds for both.
pub fn gso_limits_of(attributes: &[LinkAttribute], ipv6: bool) -> Option<(u32, u32)> {
    let (mut size, mut segs) = (None, None);
    for a in attributes {
        match a {
            LinkAttribute::GsoMaxSize(v) => size = Some(*v),
            LinkAttribute::GsoMaxSegs(v) => segs = Some(*v),
            _ => {}
        }
    }
    let ipv4_size = || {
        let v = unnamed_link_attribute(attributes, IFLA_GSO_IPV4_MAX_SIZE)?;
        Some(u32::from_ne_bytes(v.as_slice().try_into().ok()?))
    };
    // Both for IPv4: a stable kernel may have the size check of 6.3 without its fix (which
    // compares IPv4 with `gso_max_size`), and the smaller keeps within either.
    let size = if ipv6 { size } else { ipv4_size().map_or(size, |v4| Some(size.map_or(v4, |s| s.min(v4)))) };
    size.zip(segs)
}

/// The underlay's UDP superframes as decided at start and again every [`Superframes::EVERY`]
/// while running: its offloads and GSO limits can change under the daemon (`ethtool -K`,
/// `ip link set ... gso_max_size`), and every worker hears each decision.
pub struct Superframes {
    ipv6: bool,
    /// The last decision: the limits, or why there are none.
    decided: Result<Limits, String>,
    last: Instant,
}

impl Superframes {
    /// How often the decision is made again (a few ethtool ioctls, one netlink request).
    pub const EVERY: Duration = Duration::from_secs(2);

    /// Decides whether underlay `dev` (of IPv6 if `ipv6`) takes UDP superframes, and says so in
    /// the log.
    pub fn decide(dev: &Iface, ipv6: bool) -> Superframes {
        let decided = underlay_takes(dev, ipv6);
        match &decided {
            Ok(limits) => info!("encapsulated superframes leave {} as {}", dev.name, described(limits)),
            Err(why) => info!("encapsulated superframes leave one AF_XDP frame per datagram: {why}"),
        }
        Superframes { ipv6, decided, last: Instant::now() }
    }

    /// The limits decided, if the underlay takes superframes.
    pub fn limits(&self) -> Option<Limits> {
        self.decided.as_ref().ok().copied()
    }

    /// When due, decides again for `dev` (looked up anew: its transmit queues or what it is
    /// stacked on may have changed), tells every worker of `workers` (a worker applies only a
    /// change, and so takes up superframes again after it turned them off itself on a
    /// refusal), and says in the log what changed, if anything.
    pub fn recheck(&mut self, dev: &Iface, workers: &[Sender<IoCommand>]) {
        // Housekeeping passes come a second apart, give or take: half a pass early is due.
        if self.last.elapsed() + Duration::from_millis(500) < Self::EVERY {
            return;
        }
        self.last = Instant::now();
        let fix = "restart xvtep once it is back";
        // By index: the device the AF_XDP sockets are bound to, renamed or not.
        let decided = match ifname_of(dev.index) {
            None => Err(format!("{} is gone: {fix}", dev.name)),
            Some(name) => match Iface::lookup(&name, "tunnel.dev", fix) {
                Ok(now) if now.index == dev.index => underlay_takes(&now, self.ipv6),
                Ok(_) => Err(format!("{name} was recreated: restart xvtep to use the new one")),
                Err(e) => Err(e.to_string()),
            },
        };
        let limits = decided.as_ref().ok().copied();
        for w in workers {
            let _ = w.send(IoCommand::UdpSuperframes(limits));
        }
        if let Some(change) = change(&dev.name, &self.decided, &decided) {
            info!("{change}");
        }
        self.decided = decided;
    }
}

/// What the log says of superframes of at most `limits`.
fn described(limits: &Limits) -> String {
    format!("UDP superframes (up to {} datagrams, {} bytes)", limits.datagrams, limits.frame)
}

/// What changed from decision `was` to decision `now` for underlay `dev`, for the log; `None`
/// if the limits stayed the same (off for another reason is no change).
pub fn change(dev: &str, was: &Result<Limits, String>, now: &Result<Limits, String>) -> Option<String> {
    const WHAT: &str = "UDP superframes to the tunnel";
    match (was, now) {
        (Ok(a), Ok(b)) if a == b => None,
        (Err(_), Err(_)) => None,
        (Ok(a), Ok(b)) => Some(format!(
            "{WHAT}: new limits: encapsulated superframes leave {dev} as {} (were up to {} datagrams, {} bytes)",
            described(b),
            a.datagrams,
            a.frame
        )),
        (Err(_), Ok(b)) => {
            Some(format!("{WHAT}: on again: encapsulated superframes leave {dev} as {}", described(b)))
        }
        (Ok(_), Err(why)) => Some(format!(
            "{WHAT}: off: {why}; encapsulated superframes leave one AF_XDP frame per datagram"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::RouteNetlinkMessage;

    const IFLA_GSO_MAX_SEGS: u16 = 40;
    const IFLA_GSO_MAX_SIZE: u16 = 41;

    /// A link's attributes as netlink-packet-route parses an RTM_NEWLINK from the kernel that
    /// carries `attrs` (type, u32 value).
    fn link_with(attrs: &[(u16, u32)]) -> Vec<LinkAttribute> {
        const RTM_NEWLINK: u16 = 16;
        let mut body = vec![0u8; 16]; // struct ifinfomsg
        body[4..8].copy_from_slice(&7i32.to_ne_bytes());
        for (kind, v) in attrs {
            body.extend_from_slice(&8u16.to_ne_bytes());
            body.extend_from_slice(&kind.to_ne_bytes());
            body.extend_from_slice(&v.to_ne_bytes());
        }
        let mut msg = Vec::new();
        msg.extend_from_slice(&(16 + body.len() as u32).to_ne_bytes());
        msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
        msg.extend_from_slice(&[0; 10]); // flags, sequence number, port
        msg.extend_from_slice(&body);
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&msg).unwrap().payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => l.attributes,
            other => panic!("not a link: {other:?}"),
        }
    }

    #[test]
    fn ipv4_takes_gso_ipv4_max_size_where_the_kernel_has_it() {
        let attrs = link_with(&[(IFLA_GSO_MAX_SIZE, 65536), (IFLA_GSO_MAX_SEGS, 64), (63, 32000)]);
        assert!(attrs.iter().any(|a| matches!(a, LinkAttribute::Other(_))), "{attrs:?}");
        assert_eq!(gso_limits_of(&attrs, false), Some((32000, 64)));
        // Larger than gso_max_size (BIG TCP for IPv4): the smaller, as a stable kernel with the
        // check of 6.3 but not its fix holds IPv4 to gso_max_size (superframes are under 64
        // KiB anyway).
        let attrs = link_with(&[(63, 185000), (IFLA_GSO_MAX_SIZE, 65536), (IFLA_GSO_MAX_SEGS, 65535)]);
        assert_eq!(gso_limits_of(&attrs, false), Some((65536, 65535)));
    }

    #[test]
    fn ipv4_before_linux_6_3_takes_gso_max_size() {
        let attrs = link_with(&[(IFLA_GSO_MAX_SIZE, 40000), (IFLA_GSO_MAX_SEGS, 100)]);
        assert_eq!(gso_limits_of(&attrs, false), Some((40000, 100)));
        // Another attribute this crate does not name is no GSO limit.
        let attrs = link_with(&[(IFLA_GSO_MAX_SIZE, 40000), (IFLA_GSO_MAX_SEGS, 100), (64, 1000)]);
        assert_eq!(gso_limits_of(&attrs, false), Some((40000, 100)));
    }

    #[test]
    fn ipv6_takes_gso_max_size() {
        let attrs = link_with(&[(IFLA_GSO_MAX_SIZE, 65536), (IFLA_GSO_MAX_SEGS, 64), (63, 32000)]);
        assert_eq!(gso_limits_of(&attrs, true), Some((65536, 64)));
        let attrs = link_with(&[(IFLA_GSO_MAX_SIZE, 50000), (IFLA_GSO_MAX_SEGS, 64)]);
        assert_eq!(gso_limits_of(&attrs, true), Some((50000, 64)));
    }

    #[test]
    fn limits_the_kernel_did_not_give_are_none() {
        assert_eq!(gso_limits_of(&link_with(&[(IFLA_GSO_MAX_SEGS, 64)]), true), None);
        assert_eq!(gso_limits_of(&link_with(&[(IFLA_GSO_MAX_SEGS, 64), (63, 32000)]), true), None);
        assert_eq!(gso_limits_of(&link_with(&[(63, 32000)]), false), None);
        assert_eq!(gso_limits_of(&[], false), None);
    }

    #[test]
    fn the_log_hears_of_changes_only() {
        let (a, b) = (Limits { frame: 65535, datagrams: 64 }, Limits { frame: 31999, datagrams: 64 });
        let off = |why: &str| Err::<Limits, String>(why.into());
        assert_eq!(change("eth0", &Ok(a), &Ok(a)), None);
        assert_eq!(change("eth0", &off("tx-udp-segmentation is off on eth0"), &off("eth0 is stacked")), None);
        assert_eq!(
            change("eth0", &off("x"), &Ok(a)).unwrap(),
            "UDP superframes to the tunnel: on again: encapsulated superframes leave eth0 as UDP \
             superframes (up to 64 datagrams, 65535 bytes)"
        );
        assert_eq!(
            change("eth0", &Ok(a), &off("tx-udp-segmentation is off on eth0")).unwrap(),
            "UDP superframes to the tunnel: off: tx-udp-segmentation is off on eth0; encapsulated \
             superframes leave one AF_XDP frame per datagram"
        );
        assert_eq!(
            change("eth0", &Ok(a), &Ok(b)).unwrap(),
            "UDP superframes to the tunnel: new limits: encapsulated superframes leave eth0 as UDP \
             superframes (up to 64 datagrams, 31999 bytes) (were up to 64 datagrams, 65535 bytes)"
        );
    }
}
