//! Interfaces as ports of the running daemon: the XDP program attached to each, and one AF_XDP
//! socket per rx queue handed to the worker that serves the queue. Used at start for the
//! configured ports, and by `link add` / `link del` (and SIGHUP) while running.

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use crossbeam_channel::Sender;
use tracing::{info, warn};
use xvtep::control::apply::PortAttach;
use xvtep_bpf::{Role, Steering};
use xvtep_dataplane::config::{InternalPort, PortIo};
use xvtep_dataplane::io::afxdp::{self, IoCommand, Xsk, XskSpec};
use xvtep_dataplane::io::sys::{kernel_at_least, kernel_release};
use xvtep_dataplane::io::vnet::VnetSocket;
use xvtep_dataplane::io::xdp::Umem;
use xvtep_dataplane::wire::MacAddr;
use xvtep_dataplane::PortId;

use super::host::Iface;
use super::internal::InternalPorts;

/// How long `link del` waits for a worker to close its sockets (it looks between batches, at
/// least every 100 ms when idle).
const WORKER_ANSWER: Duration = Duration::from_secs(2);

/// Opens the sockets of port `port` on `iface`, one per rx queue, queue q going to worker
/// q mod the number of workers, on that worker's UMEM (`umems`, in worker order). Returns them
/// per worker; register them with the XDP program ([`register_sockets`]) once their workers
/// serve them, so that no frame is steered to a socket with nothing in its fill ring.
pub fn open_sockets(port: PortId, iface: &Iface, umems: &[Arc<Umem>]) -> Result<Vec<Vec<Xsk>>> {
    let mut per_worker: Vec<Vec<Xsk>> = umems.iter().map(|_| Vec::new()).collect();
    for queue in 0..iface.queues {
        let w = queue as usize % umems.len();
        let spec = XskSpec { port, ifname: iface.name.clone(), queue };
        let xsk = Xsk::open(spec, &umems[w], !fits_one_chunk(iface))?;
        check_frame_fits(iface, xsk.multi_buffer())?;
        per_worker[w].push(xsk);
    }
    Ok(per_worker)
}

/// An Ethernet header and one 802.1Q tag on top of the MTU.
const L2: usize = 18;

/// Whether every frame `iface`'s MTU allows fits one UMEM chunk (else its sockets need
/// multi-buffer).
fn fits_one_chunk(iface: &Iface) -> bool {
    chunk_takes(iface.mtu)
}

fn chunk_takes(mtu: u32) -> bool {
    mtu as usize + L2 <= afxdp::ONE_CHUNK_FRAME
}

/// If `iface`'s AF_XDP sockets, opened for it as it was, do not take every frame of MTU
/// `mtu_now`: the largest MTU they take. They were opened without multi-buffer when its MTU
/// fit one chunk.
pub fn outgrown(iface: &Iface, mtu_now: u32) -> Option<usize> {
    (fits_one_chunk(iface) && !chunk_takes(mtu_now)).then_some(afxdp::ONE_CHUNK_FRAME - L2)
}

/// Whether this kernel has AF_XDP multi-buffer (`XDP_USE_SG`, Linux 6.6).
pub fn kernel_has_multi_buffer() -> bool {
    kernel_at_least((6, 6))
}

/// Refuses an interface whose MTU allows frames larger than its AF_XDP sockets take: without
/// multi-buffer (Linux older than 6.6) a frame must fit one UMEM chunk, and the kernel would
/// drop every larger one, counted only as `rx_fill_empty`.
fn check_frame_fits(iface: &Iface, multi_buffer: bool) -> Result<()> {
    let largest = afxdp::ONE_CHUNK_FRAME - L2;
    if !multi_buffer && !fits_one_chunk(iface) {
        bail!(
            "{}: MTU {} is above the {largest} bytes its AF_XDP sockets can take on this kernel: \
             frames larger than one UMEM chunk need AF_XDP multi-buffer (XDP_USE_SG, Linux 6.6 or \
             later); lower the MTU (ip link set dev {} mtu {largest}) or run a newer kernel",
            iface.name,
            iface.mtu,
            iface.name
        );
    }
    Ok(())
}

/// The (queue, socket) pairs of `iface`'s AF_XDP sockets among `sockets`, for the XDP program.
pub fn socket_entries<'a>(sockets: impl IntoIterator<Item = &'a Xsk>) -> Vec<(u32, RawFd)> {
    sockets.into_iter().map(|x| (x.spec().queue, x.fd())).collect()
}

/// Steers each queue of interface `ifindex` to its socket.
pub fn register_sockets(steering: &mut Steering, ifindex: u32, entries: &[(u32, RawFd)]) -> Result<()> {
    for &(queue, fd) in entries {
        steering.set_socket(ifindex, queue, fd)?;
    }
    Ok(())
}

/// What `auto` means for `iface`: `vnet` for a veth or a tap (driver `tun`), whose other side
/// keeps its TCP offloads that way (the bench: TCP several times faster than through AF_XDP,
/// where an XDP program strips GSO from the veth's peer); `afxdp` for anything else.
pub fn resolve_io(io: PortIo, iface: &Iface) -> PortIo {
    match io {
        PortIo::Auto if matches!(iface.driver.as_str(), "veth" | "tun") => PortIo::Vnet,
        PortIo::Auto => PortIo::Afxdp,
        chosen => chosen,
    }
}

/// Warns of an `afxdp` trunk port on a veth: an 8021q device on the other side hands its tag
/// over in skb metadata (the veth's TX VLAN offload), which an XDP program does not see, so
/// such frames would reach the switch untagged and be switched into the port's PVID (measured
/// on Linux 6.1 in the guest test bed). `vnet` ports put the tag back; so does turning the
/// offload off on the other side.
pub fn warn_metadata_tags(port: &xvtep_dataplane::config::PortConfig, iface: &Iface) {
    let tagged: Vec<u16> = port.vlans.iter().filter(|v| !v.untagged).map(|v| v.vid).collect();
    if port.io == PortIo::Afxdp && iface.driver == "veth" && !tagged.is_empty() {
        warn!(
            port = %port.name,
            "{} is an afxdp port with tagged VLANs {tagged:?} on a veth: tags that an 8021q device on its \
             peer sends in skb metadata (TX VLAN offload, on by default) are not seen by XDP, and such \
             frames would be switched untagged into the port's PVID. Make it a vnet port (io = \"vnet\"), \
             or turn the offload off on the peer: ethtool -K PEER txvlan off",
            port.name
        );
    }
}

/// A port's sockets for one worker.
#[derive(Default)]
pub struct WorkerSockets {
    pub xsks: Vec<Xsk>,
    pub vnet: Vec<VnetSocket>,
}

/// Makes `iface` switch frames as port `port` with I/O `io` (resolved): attaches the XDP
/// program and opens AF_XDP sockets (to be registered once served, see [`open_sockets`]), or holds its frames from the kernel at tc ingress and
/// opens a packet socket per worker (sharing the port's frames by flow with fanout). Returns
/// each worker's sockets; on error nothing stays attached.
pub fn open_port(
    steering: &mut Steering,
    port: PortId,
    iface: &Iface,
    io: PortIo,
    umems: &[Arc<Umem>],
) -> Result<Vec<WorkerSockets>> {
    let workers = umems.len();
    let mut per_worker: Vec<WorkerSockets> = (0..workers).map(|_| WorkerSockets::default()).collect();
    let opened: Result<()> = (|| {
        if io == PortIo::Vnet {
            let fanout = (workers > 1).then_some(iface.index as u16);
            for (w, sockets) in per_worker.iter_mut().enumerate() {
                let sock = VnetSocket::open(port, &iface.name, iface.index, fanout).with_context(|| {
                    format!(
                        "opening a packet socket with its 2 MiB receive ring on {} for worker {w} \
                             (io = \"vnet\"; io = \"afxdp\" on this port needs none)",
                        iface.name
                    )
                })?;
                sockets.vnet.push(sock);
            }
            // Held from the kernel only once our sockets have their copies.
            steering.attach_vnet(&iface.name, iface.index)?;
            return Ok(());
        }
        if (iface.queues as usize) < workers {
            bail!(
                "{} has {} rx queue(s) but xvtep runs {workers} workers, each of which needs a queue on \
                 every AF_XDP port: give it more queues (veth: ip link add ... numrxqueues {workers} \
                 numtxqueues {workers}), make it a vnet port (io = \"vnet\"), or run xvtep with fewer --cores",
                iface.name,
                iface.queues
            );
        }
        steering.attach(&iface.name, iface.index, Role::Port)?;
        for (w, xsks) in open_sockets(port, iface, umems)?.into_iter().enumerate() {
            per_worker[w].xsks = xsks;
        }
        Ok(())
    })();
    if let Err(e) = opened {
        steering.detach(&iface.name, iface.index);
        return Err(e);
    }
    Ok(per_worker)
}

/// The interfaces attached as ports, by name (shared with the daemon's watch on them).
pub type Attached = Arc<Mutex<BTreeMap<String, Iface>>>;

/// The daemon's [`PortAttach`]: see the module docs.
pub struct PortHost {
    pub steering: Arc<Mutex<Steering>>,
    /// Each worker's command channel, in worker order.
    pub workers: Vec<Sender<IoCommand>>,
    /// Each worker's UMEM, in worker order: its sockets are opened on it.
    pub umems: Vec<Arc<Umem>>,
    pub attached: Attached,
    /// The internal ports' interfaces, made when such a port joins and removed when it leaves.
    pub internal: Arc<Mutex<InternalPorts>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PortHost {
    /// Sends each worker, in order, the command `make` builds and waits for each to apply
    /// it. A worker that stopped takes the daemon down; it is not waited for.
    fn ask_workers(&self, port: &str, mut make: impl FnMut(Sender<()>) -> IoCommand) {
        let (done, answers) = crossbeam_channel::bounded(self.workers.len());
        let asked = self.workers.iter().filter(|w| w.send(make(done.clone())).is_ok()).count();
        for _ in 0..asked {
            if answers.recv_timeout(WORKER_ANSWER).is_err() {
                warn!(port, "a worker did not confirm the change of its sockets in time");
                break;
            }
        }
    }

    fn try_attach(
        &mut self,
        name: &str,
        id: PortId,
        io: PortIo,
        internal: Option<&InternalPort>,
    ) -> Result<(PortIo, Option<MacAddr>)> {
        // An internal port: its pair made first; the switch serves the peer.
        let (served, own_mac, conduit) = match internal {
            Some(i) => {
                let made = lock(&self.internal).create(name, i)?;
                (made.served, Some(made.mac), made.conduit)
            }
            None => (name.to_string(), None, None),
        };
        let redirected = match &conduit {
            Some(c) => {
                lock(&self.steering).attach_host_redirect(&c.name, c.index, c.bridge).map_err(Into::into)
            }
            None => Ok(()),
        };
        let attached = redirected.and_then(|()| self.open_and_serve(name, &served, id, io));
        if attached.is_err() && internal.is_some() {
            self.remove_internal(name);
        }
        Ok((attached?, own_mac))
    }

    /// Removes internal port `name`'s interfaces, if it is one, and a kernel bridge port's
    /// redirect first.
    fn remove_internal(&mut self, name: &str) {
        let mut internal = lock(&self.internal);
        if let Some((conduit, index)) = internal.conduit_of(name) {
            lock(&self.steering).detach(&conduit, index);
        }
        if internal.owns(name) {
            internal.remove(name);
        }
    }

    /// Opens port `name`'s sockets on interface `served` and has every worker serve them.
    fn open_and_serve(&mut self, name: &str, served: &str, id: PortId, io: PortIo) -> Result<PortIo> {
        let iface = Iface::lookup(served, "the port to add", "create it first")?;
        let io = resolve_io(io, &iface);
        let sockets = open_port(&mut lock(&self.steering), id, &iface, io, &self.umems)?;
        let entries = socket_entries(sockets.iter().flat_map(|s| &s.xsks));
        // The port joins the topology when this returns: wait until every worker serves its
        // sockets, so that no frame for it finds no socket; then steer frames to them.
        let mut sockets = sockets.into_iter();
        self.ask_workers(name, |done| {
            let s = sockets.next().unwrap_or_default();
            IoCommand::Add { socks: s.xsks, vnet: s.vnet, done }
        });
        if let Err(e) = register_sockets(&mut lock(&self.steering), iface.index, &entries) {
            lock(&self.steering).detach(&iface.name, iface.index);
            self.ask_workers(name, |done| IoCommand::Remove { port: id, done });
            return Err(e);
        }
        info!(port = name, id = id.0, ifindex = iface.index, io = io.name(), "attached port");
        lock(&self.attached).insert(name.to_string(), iface);
        Ok(io)
    }
}

impl PortAttach for PortHost {
    fn host_kernel(&self) -> serde_json::Value {
        let tc = lock(&self.steering).tc_attach();
        serde_json::json!({"release": kernel_release(), "tc_attach": tc.name()})
    }

    fn attach(
        &mut self,
        name: &str,
        id: PortId,
        io: PortIo,
        internal: Option<&InternalPort>,
    ) -> Result<(PortIo, Option<MacAddr>), String> {
        self.try_attach(name, id, io, internal).map_err(|e| format!("{e:#}"))
    }

    fn detach(&mut self, name: &str, id: PortId) {
        let Some(iface) = lock(&self.attached).remove(name) else { return };
        // Frames go back to the kernel first, then the sockets close.
        lock(&self.steering).detach(name, iface.index);
        self.ask_workers(name, |done| IoCommand::Remove { port: id, done });
        self.remove_internal(name);
        info!(port = name, id = id.0, "detached port");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(mtu: u32) -> Iface {
        Iface {
            name: "p".into(),
            index: 1,
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            mtu,
            queues: 1,
            tx_queues: Some(1),
            stacked: false,
            driver: "veth".into(),
        }
    }

    #[test]
    fn sockets_opened_for_one_chunk_are_outgrown_by_an_mtu_past_it() {
        let largest = afxdp::ONE_CHUNK_FRAME - L2;
        assert_eq!(outgrown(&iface(1500), 1500), None);
        assert_eq!(outgrown(&iface(1500), largest as u32), None);
        assert_eq!(outgrown(&iface(1500), largest as u32 + 1), Some(largest));
        assert_eq!(outgrown(&iface(1500), 9000), Some(largest));
        // Opened with multi-buffer: any MTU.
        assert_eq!(outgrown(&iface(9000), 9216), None);
    }
}
