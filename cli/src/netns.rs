//! Network namespaces for tests and benchmarks, held by guards that delete them (and every
//! interface in them) on drop, also when the caller fails.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Runs a shell command line; panics with its output if it fails.
#[track_caller]
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command line, returning its output whatever the exit status.
pub fn try_sh(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().unwrap()
}

/// A network namespace, deleted (with every interface in it) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str) -> Netns {
        let _ = try_sh(&format!("ip netns del {name} 2>/dev/null"));
        sh(&format!("ip netns add {name}"));
        sh(&format!("ip -n {name} link set lo up"));
        // No IPv6: its link-up chatter (MLD reports, router solicitations, DAD) is multicast
        // that a switch rightly floods, and would blur counts of what the test sends.
        sh(&format!(
            "ip netns exec {name} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
        ));
        Netns { name: name.to_string() }
    }

    /// Runs `cmd` inside the namespace.
    #[track_caller]
    pub fn sh(&self, cmd: &str) -> String {
        sh(&format!("ip netns exec {} sh -c '{}'", self.name, cmd.replace('\'', "'\\''")))
    }

    pub fn try_sh(&self, cmd: &str) -> Output {
        try_sh(&format!("ip netns exec {} sh -c '{}'", self.name, cmd.replace('\'', "'\\''")))
    }

    /// Pings `dst` until one answer comes back or `within` passes; true if answered.
    pub fn ping_ok(&self, dst: &str, within: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.try_sh(&format!("ping -c 1 -W 1 {dst}")).status.success() {
                return true;
            }
        }
        false
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = try_sh(&format!("ip netns pids {} | xargs -r kill -9", self.name));
        let _ = try_sh(&format!("ip netns del {}", self.name));
    }
}

/// A veth pair `a` (in `na`) ↔ `b` (in `nb`), both up, with one queue each.
/// Makes the veth link from `sender`'s `tx_dev` to `receiver`'s `rx_dev` behave as a wire
/// between two NICs: the sending end passes MTU-sized frames only (no TSO: a veth hands
/// superframes to its peer whole, which no wire carries; and with TSO on, veth.c never hands
/// a frame to its peer's NAPI), and the receiving end coalesces as a NIC driver does (GRO) in
/// its own NAPI context (threaded NAPI; a veth otherwise receives in the sender's softirq, on
/// the sender's core, one frame at a time, so GRO never sees two frames together).
pub fn make_wire(sender: &Netns, tx_dev: &str, receiver: &Netns, rx_dev: &str) {
    sender.sh(&format!("ethtool -K {tx_dev} tso off >/dev/null"));
    receiver
        .sh(&format!("ethtool -K {rx_dev} gro on >/dev/null && echo 1 > /sys/class/net/{rx_dev}/threaded"));
}

pub fn veth(na: &Netns, a: &str, nb: &Netns, b: &str) {
    veth_queues(na, a, nb, b, 1);
}

/// [`veth`] with `queues` rx and tx queues on each end.
pub fn veth_queues(na: &Netns, a: &str, nb: &Netns, b: &str, queues: u32) {
    let q = format!("numrxqueues {queues} numtxqueues {queues}");
    sh(&format!("ip link add {a} netns {} {q} type veth peer name {b} netns {} {q}", na.name, nb.name));
    na.sh(&format!("ip link set {a} up"));
    nb.sh(&format!("ip link set {b} up"));
}
