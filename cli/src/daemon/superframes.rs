//! Whether the underlay takes UDP superframes whole, and how large: the workers' packet socket
//! for them sends straight to the driver, which drops what the kernel would have to cut in
//! software (`xvtep_dataplane::io::afxdp::udp_superframes`). So they go only where every rule
//! below holds; otherwise encapsulated superframes leave one AF_XDP frame per datagram.

use xvtep_dataplane::io::sys::kernel_at_least;
use xvtep_dataplane::pipeline::udp_gso::Limits;

use super::host::{ethtool_feature, Iface};
use super::netlink::Rtnl;

/// The device feature that cuts UDP superframes (`NETIF_F_GSO_UDP_L4`), as ethtool names it.
const UDP_SEGMENTATION: &str = "tx-udp-segmentation";

/// How large a UDP superframe `dev` takes whole, or why it takes none (for the start log).
pub fn underlay_takes(dev: &Iface) -> Result<Limits, String> {
    if std::env::var("XVTEP_UDP_GSO").is_ok_and(|v| v == "off") {
        return Err("XVTEP_UDP_GSO=off".into());
    }
    if !kernel_at_least((6, 2)) {
        return Err("UDP superframes from a packet socket need Linux 6.2".into());
    }
    match ethtool_feature(&dev.name, UDP_SEGMENTATION) {
        Ok(true) => {}
        Ok(false) => return Err(format!("{UDP_SEGMENTATION} is off on {}", dev.name)),
        Err(e) => return Err(format!("reading {}'s {UDP_SEGMENTATION}: {e}", dev.name)),
    }
    // Frames of one flow leave by two sockets; they keep their order only through one queue.
    if dev.tx_queues != 1 {
        return Err(format!("{} has {} transmit queues", dev.name, dev.tx_queues));
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
