//! Whether the underlay takes UDP superframes whole, and how large: the workers' packet socket
//! for them sends straight to the driver, which drops what the kernel would have to cut in
//! software (`xvtep_dataplane::io::afxdp::udp_superframes`). So they go only where every rule
//! below holds; otherwise encapsulated superframes leave one AF_XDP frame per datagram.

use xvtep_dataplane::io::sys::{ethtool_feature, kernel_at_least};
use xvtep_dataplane::pipeline::udp_gso::{Limits, UDP_SEGMENTATION};

use super::host::Iface;
use super::netlink::Rtnl;

/// How large a UDP superframe `dev` (an underlay of IPv6 if `ipv6`) takes whole, or why it
/// takes none (for the start log).
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
    if dev.tx_queues != Some(1) {
        return Err(format!("{} has not one transmit queue", dev.name));
    }
    if dev.stacked {
        return Err(format!("{} is stacked on another device", dev.name));
    }
    let (size, segs) =
        gso_limits(dev.index).map_err(|e| format!("reading {}'s GSO limits: {e}", dev.name))?;
    Ok(Limits::of_device(size, segs))
}

/// The device's `gso_max_size` and `gso_max_segs` (`ip -d link show`).
fn gso_limits(index: u32) -> std::io::Result<(u32, u32)> {
    use netlink_packet_route::link::LinkAttribute;
    let link = Rtnl::new()?.links()?.into_iter().find(|l| l.header.index == index);
    let link = link.ok_or_else(|| std::io::Error::other("the device is gone"))?;
    let (mut size, mut segs) = (None, None);
    for a in &link.attributes {
        match a {
            LinkAttribute::GsoMaxSize(v) => size = Some(*v),
            LinkAttribute::GsoMaxSegs(v) => segs = Some(*v),
            _ => {}
        }
    }
    size.zip(segs).ok_or_else(|| std::io::Error::other("the kernel did not say"))
}
