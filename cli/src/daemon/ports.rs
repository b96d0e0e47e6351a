//! Interfaces as ports of the running daemon: the XDP program attached to each, and one AF_XDP
//! socket per rx queue handed to the worker that serves the queue. Used at start for the
//! configured ports, and by `link add` / `link del` (and SIGHUP) while running.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Result};
use crossbeam_channel::Sender;
use tracing::{info, warn};
use xvtep::control::apply::PortAttach;
use xvtep_bpf::{Role, Steering};
use xvtep_dataplane::io::afxdp::{IoCommand, Xsk, XskSpec};
use xvtep_dataplane::PortId;

use super::host::Iface;

/// How long `link del` waits for a worker to close its sockets (it looks between batches, at
/// least every 100 ms when idle).
const WORKER_ANSWER: Duration = Duration::from_secs(2);

/// Opens the sockets of port `port` on `iface`, one per rx queue, queue q going to worker
/// q mod `workers`, and registers them with the XDP program. Returns them per worker.
pub fn open_sockets(
    steering: &mut Steering,
    port: PortId,
    iface: &Iface,
    workers: usize,
) -> Result<Vec<Vec<Xsk>>> {
    let mut per_worker: Vec<Vec<Xsk>> = (0..workers).map(|_| Vec::new()).collect();
    for queue in 0..iface.queues {
        let xsk = Xsk::open(XskSpec { port, ifname: iface.name.clone(), queue })?;
        steering.set_socket(iface.index, queue, xsk.fd())?;
        per_worker[queue as usize % workers].push(xsk);
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
    pub attached: Attached,
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

    fn try_attach(&mut self, name: &str, id: PortId) -> Result<()> {
        let iface = Iface::lookup(name, "the port to add", "create it first")?;
        let workers = self.workers.len();
        if (iface.queues as usize) < workers {
            bail!(
                "{name} has {} rx queue(s) but xvtep runs {workers} workers, each of which needs a queue on \
                 every port: give it more queues (veth: ip link add ... numrxqueues {workers} numtxqueues \
                 {workers}) or run xvtep with fewer --cores",
                iface.queues
            );
        }
        let mut steering = lock(&self.steering);
        steering.attach(name, iface.index, Role::Port)?;
        let sockets = match open_sockets(&mut steering, id, &iface, workers) {
            Ok(s) => s,
            Err(e) => {
                steering.detach(name, iface.index);
                return Err(e);
            }
        };
        drop(steering);
        // The port joins the topology when this returns: wait until every worker serves its
        // sockets, so that no frame for it finds no socket.
        let mut sockets = sockets.into_iter();
        self.ask_workers(name, |done| IoCommand::Add { socks: sockets.next().unwrap_or_default(), done });
        info!(port = name, id = id.0, ifindex = iface.index, queues = iface.queues, "attached port");
        lock(&self.attached).insert(name.to_string(), iface);
        Ok(())
    }
}

impl PortAttach for PortHost {
    fn attach(&mut self, name: &str, id: PortId) -> Result<(), String> {
        self.try_attach(name, id).map_err(|e| format!("{e:#}"))
    }

    fn detach(&mut self, name: &str, id: PortId) {
        let Some(iface) = lock(&self.attached).remove(name) else { return };
        // Frames go back to the kernel first, then the sockets close.
        lock(&self.steering).detach(name, iface.index);
        self.ask_workers(name, |done| IoCommand::Remove { port: id, done });
        info!(port = name, id = id.0, "detached port");
    }
}
