//! Helpers for tests that build network namespaces and run daemons in them (root only).
//! Every namespace and daemon is held by a guard that removes it on drop, also when the test
//! fails; names carry a per-test prefix so that tests can run side by side.

#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};

use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
pub use xvtep::netns::{sh, try_sh, veth, veth_queues, Netns};

/// Skips the test (with a printed reason) unless running as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !nix_is_root() {
            eprintln!("SKIP: this test builds network namespaces and attaches XDP; it needs root");
            return;
        }
    };
}

pub fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// A packet socket bound to one interface of a namespace: frames sent go out of it as they
/// are, and every frame it sees (both directions) can be read. Closed on drop.
pub struct PacketSocket {
    fd: std::os::fd::OwnedFd,
}

impl PacketSocket {
    /// Opens it on `ifname` inside namespace `ns` (the socket stays in that namespace).
    pub fn open(ns: &Netns, ifname: &str) -> PacketSocket {
        use std::os::fd::FromRawFd;
        let ifname = ifname.to_string();
        let fd = xvtep::traffic::gen::in_netns(&ns.name, None, move || {
            let index = nix::net::if_::if_nametoindex(ifname.as_str())?;
            let proto = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: plain socket calls; the descriptor is owned by the caller from here.
            unsafe {
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
                anyhow::ensure!(fd >= 0, "packet socket: {}", std::io::Error::last_os_error());
                let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
                let mut sll: libc::sockaddr_ll = std::mem::zeroed();
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_protocol = proto;
                sll.sll_ifindex = index as i32;
                let r = libc::bind(
                    fd,
                    &sll as *const _ as *const libc::sockaddr,
                    std::mem::size_of_val(&sll) as u32,
                );
                anyhow::ensure!(r == 0, "bind: {}", std::io::Error::last_os_error());
                // The kernel takes a received frame's VLAN tag out into metadata; with
                // auxdata, `receive` puts it back, as libpcap does.
                let on: libc::c_int = 1;
                let r = libc::setsockopt(
                    fd,
                    libc::SOL_PACKET,
                    libc::PACKET_AUXDATA,
                    &on as *const _ as *const libc::c_void,
                    std::mem::size_of_val(&on) as u32,
                );
                anyhow::ensure!(r == 0, "PACKET_AUXDATA: {}", std::io::Error::last_os_error());
                Ok(owned)
            }
        })
        .unwrap();
        PacketSocket { fd }
    }

    /// Sends `frame` out of the interface; false if the kernel refused it (its queue full).
    pub fn try_send(&self, frame: &[u8]) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: `frame` is a live buffer of the length given.
        let n = unsafe {
            libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), libc::MSG_DONTWAIT)
        };
        n == frame.len() as isize
    }

    /// Sends `frame` out of the interface.
    pub fn send(&self, frame: &[u8]) {
        use std::os::fd::AsRawFd;
        // SAFETY: `frame` is a live buffer of the length given.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(n, frame.len() as isize, "send: {}", std::io::Error::last_os_error());
    }

    /// Frames seen until `idle` passes without one, or `max` were read, as on the wire (a VLAN
    /// tag the kernel took out is back in place).
    pub fn receive(&self, max: usize, idle: Duration) -> Vec<Vec<u8>> {
        use std::os::fd::AsRawFd;
        let tv = libc::timeval { tv_sec: idle.as_secs() as _, tv_usec: idle.subsec_micros() as _ };
        let fd = self.fd.as_raw_fd();
        // SAFETY: `tv` is a valid timeval of the size given; `buf` a live buffer.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of_val(&tv) as u32,
            );
        }
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        let mut control = [0u64; 16];
        while out.len() < max {
            let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
            // SAFETY: zeroed msghdr pointing at live buffers of the lengths given.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control) as _;
            // SAFETY: as above.
            let len = unsafe { libc::recvmsg(fd, &mut msg, 0) };
            if len <= 0 {
                break;
            }
            let mut frame = buf[..len as usize].to_vec();
            if let Some((tpid, tci)) = vlan_of(&msg) {
                if frame.len() >= 12 {
                    let tag = [(tpid >> 8) as u8, tpid as u8, (tci >> 8) as u8, tci as u8];
                    frame.splice(12..12, tag);
                }
            }
            out.push(frame);
        }
        out
    }
}

/// The VLAN tag (TPID, TCI) the kernel took out of a received frame, from its auxdata.
fn vlan_of(msg: &libc::msghdr) -> Option<(u16, u16)> {
    // SAFETY: the control messages recvmsg wrote into `msg`'s buffer.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA {
                let aux = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::tpacket_auxdata);
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                    let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                        aux.tp_vlan_tpid
                    } else {
                        0x8100
                    };
                    return Some((tpid, aux.tp_vlan_tci));
                }
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

/// The repository's top directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("the repository exists")
}

/// `xvtep replay` of the seed scenario (golden captures in tests/golden/seed000), writing
/// into `out`.
pub fn seed_replay_args(out: &Path) -> Vec<String> {
    let r = repo();
    let g = r.join("tests/golden/seed000");
    let mut args = vec![
        "replay".to_string(),
        "--config".into(),
        r.join("configs/seed000-host1.toml").display().to_string(),
    ];
    for iface in ["eth0", "tap1_0", "tap2_0"] {
        args.push("--in".into());
        args.push(format!("{iface}={}", g.join(format!("in-{iface}.pcap")).display()));
    }
    args.extend(["--out-dir".to_string(), out.display().to_string()]);
    args
}

/// The xvtep binary under test.
pub fn xvtep() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xvtep"))
}

/// A running `xvtep run` in a namespace; stopped with SIGTERM on drop (SIGKILL if it hangs).
pub struct Daemon {
    child: Option<Child>,
    pub ns: String,
    log: PathBuf,
    /// Its control socket.
    pub control: PathBuf,
}

impl Daemon {
    pub fn start(ns: &Netns, config_text: &str, dir: &Path, name: &str) -> Daemon {
        Self::start_with(ns, config_text, dir, name, &[])
    }

    /// [`Daemon::start`] with more `xvtep run` options.
    pub fn start_with(ns: &Netns, config_text: &str, dir: &Path, name: &str, extra: &[&str]) -> Daemon {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, config_text).unwrap();
        let log = dir.join(format!("{name}.log"));
        let control = dir.join(format!("{name}.sock"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(xvtep())
            .args(["run", "--summary-every", "0", "--control"])
            .arg(&control)
            .args(extra)
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        let d = Daemon { child: Some(child), ns: ns.name.clone(), log, control };
        d.wait_for("xvtep: running", Duration::from_secs(10));
        d
    }

    /// Runs `xvtep --socket <ours> ARGS` (a control command); returns (success, stdout, stderr).
    pub fn ctl(&self, args: &str) -> (bool, String, String) {
        let out = Command::new(xvtep())
            .arg("--socket")
            .arg(&self.control)
            .args(args.split_whitespace())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    /// [`Daemon::ctl`] that must succeed; its stdout.
    #[track_caller]
    pub fn ctl_ok(&self, args: &str) -> String {
        let (ok, out, err) = self.ctl(args);
        assert!(ok, "xvtep {args} failed: {err}");
        out
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `text` in the log; panics with the log if it does not show up.
    #[track_caller]
    pub fn wait_for(&self, text: &str, within: Duration) {
        self.wait_for_nth(text, 1, within);
    }

    /// Waits until the log holds `text` `n` times; panics with the log if it does not.
    #[track_caller]
    pub fn wait_for_nth(&self, text: &str, n: usize, within: Duration) {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.log().matches(text).count() >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("xvtep in {} did not print '{text}' {n} time(s):\n{}", self.ns, self.log());
    }

    fn signal(&mut self, sig: &str) {
        if let Some(c) = &self.child {
            // The child is `ip netns exec`, which execs xvtep: same pid.
            let _ = try_sh(&format!("kill -{sig} {}", c.id()));
        }
    }

    /// Stops with SIGTERM and returns everything it printed, after checking that the exit
    /// report counts no loss of frames inside the daemon (see [`LOSS_COUNTERS`]); a test that
    /// provokes such loss uses [`Daemon::stop_with_loss`].
    #[track_caller]
    pub fn stop(&mut self) -> String {
        let out = self.stop_with_loss();
        if let Some(io) = out.lines().find(|l| l.starts_with("io: ")) {
            let lost = LOSS_COUNTERS.map(|n| (n, io_counter(io, n)));
            assert!(
                lost.iter().all(|(_, v)| *v == 0),
                "frames lost inside xvtep in {}: {lost:?}\n{out}",
                self.ns
            );
        }
        out
    }

    /// Stops with SIGTERM and returns everything it printed.
    pub fn stop_with_loss(&mut self) -> String {
        self.signal("TERM");
        if let Some(mut c) = self.child.take() {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if c.try_wait().unwrap().is_some() {
                    return self.log();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
            panic!("xvtep in {} did not stop within 10 s of SIGTERM:\n{}", self.ns, self.log());
        }
        self.log()
    }

    /// Sends SIGHUP (reload the config file).
    pub fn hup(&mut self) {
        self.signal("HUP");
    }

    /// Stops the process in its tracks (SIGSTOP), as a descheduled worker; [`Daemon::resume`]
    /// lets it go on (dropping it resumes it too).
    pub fn pause(&mut self) {
        self.signal("STOP");
    }

    pub fn resume(&mut self) {
        self.signal("CONT");
    }

    /// Kills with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // CONT after TERM: a paused daemon handles the TERM once it runs again.
            let _ = try_sh(&format!("kill -TERM {0}; kill -CONT {0}", c.id()));
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A host config for the seed topology: VID 2 ↔ VNI 2 on tap1_0, VID 3 ↔ VNI 3 on tap2_0.
pub fn seed_config(local: &str, flood: &[&str], extra_tunnel: &str) -> String {
    let mut c = format!(
        "[tunnel]\nlocal = \"{local}\"\ndev = \"eth0\"\n{extra_tunnel}\n\
         [[vlan]]\nvid = 2\nvni = 2\n[[vlan]]\nvid = 3\nvni = 3\n\
         [[port]]\nname = \"tap1_0\"\nvlans = [{{ vid = 2, pvid = true, untagged = true }}]\n\
         [[port]]\nname = \"tap2_0\"\nvlans = [{{ vid = 3, pvid = true, untagged = true }}]\n"
    );
    for dst in flood {
        for vni in [2, 3] {
            c += &format!("[[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = {vni}\ndst = \"{dst}\"\n");
        }
    }
    c
}

/// `config` with every port on port I/O `io` ("afxdp", "vnet"), for tests of one mode.
pub fn ports_io(config: &str, io: &str) -> String {
    config
        .replace("[[port]]\nname = \"tap1_0\"\n", &format!("[[port]]\nname = \"tap1_0\"\nio = \"{io}\"\n"))
        .replace("[[port]]\nname = \"tap2_0\"\n", &format!("[[port]]\nname = \"tap2_0\"\nio = \"{io}\"\n"))
}

/// Kernel side of host `i`: one bridge and one vxlan device per VNI (this kernel has no VLAN
/// filtering, so no `vlan_tunnel`), flooding to `peers`.
pub fn kernel_vtep(h: &Netns, local: &str, peers: &[&str], group: Option<&str>) {
    for (vni, port) in [(2, "tap1_0"), (3, "tap2_0")] {
        let remote = match group {
            Some(g) => format!("group {g} dev eth0"),
            None => "dev eth0".to_string(),
        };
        h.sh(&format!(
            "ip link add br{vni} type bridge && ip link set br{vni} up && \
             ip link add vx{vni} type vxlan id {vni} local {local} dstport 4789 {remote} && \
             ip link set vx{vni} master br{vni} && ip link set vx{vni} up && ip link set {port} master br{vni}"
        ));
        for p in peers {
            h.sh(&format!("bridge fdb append 00:00:00:00:00:00 dev vx{vni} dst {p}"));
        }
    }
}

/// Runs `f` in a thread that has entered `ns`'s network namespace.
pub fn in_netns<T: Send + 'static>(
    ns: &Netns,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let name = ns.name.clone();
    std::thread::spawn(move || {
        let file = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
}

/// Sends `len` bytes of a known pattern over TCP from `from` to `to_ip`:9100 in `to`; the
/// receiver checks every byte and returns how many arrived.
pub fn tcp_transfer_checked(from: &Netns, to: &Netns, to_ip: &str, len: usize) -> usize {
    use std::io::{Read, Write};
    let pattern = |i: usize| (i.wrapping_mul(2654435761) >> 7) as u8;
    let listener = in_netns(to, || std::net::TcpListener::bind("0.0.0.0:9100").unwrap()).join().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let (mut got, mut buf) = (0usize, vec![0u8; 1 << 16]);
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                return got;
            }
            for (k, b) in buf[..n].iter().enumerate() {
                assert_eq!(*b, pattern(got + k), "byte {} arrived changed", got + k);
            }
            got += n;
        }
    });
    let to_ip = to_ip.to_string();
    in_netns(from, move || {
        let mut s = std::net::TcpStream::connect((to_ip.as_str(), 9100)).unwrap();
        let data: Vec<u8> = (0..len).map(pattern).collect();
        s.write_all(&data).unwrap();
    })
    .join()
    .unwrap();
    server.join().unwrap()
}

/// Number of XDP programs attached in `ns`.
pub fn xdp_programs(ns: &Netns) -> usize {
    ns.sh("ip link show").matches("prog/xdp").count()
}

/// The seed topology: an underlay namespace with a bridge joins the hosts' `eth0`
/// (192.168.1.N/24 and 2001:db8:1::N/64). Host N has two "containers": aN on tap1_0 (VID 2 ↔ VNI 2, 10.2.0.N/24)
/// and bN on tap2_0 (VID 3 ↔ VNI 3, 10.3.0.N/24).
pub struct Host {
    pub h: Netns,
    pub a: Netns,
    pub b: Netns,
}

pub struct Topo {
    // Dropped in order: containers and hosts, then the underlay.
    pub hosts: Vec<Host>,
    pub ul: Netns,
    pub dir: tempfile::TempDir,
}

pub fn topo(prefix: &str, n: usize) -> Topo {
    let ul = Netns::new(&format!("{prefix}-ul"));
    ul.sh("ip link add br0 type bridge && ip link set br0 up");
    let mut hosts = Vec::new();
    for i in 1..=n {
        let h = Netns::new(&format!("{prefix}-h{i}"));
        veth(&h, "eth0", &ul, &format!("p{i}"));
        ul.sh(&format!("ip link set p{i} master br0"));
        // IPv6 on the underlay too, for the IPv6 underlay tests (nodad: usable at once).
        h.sh(&format!(
            "ip addr add 192.168.1.{i}/24 dev eth0 && sysctl -qw net.ipv6.conf.eth0.disable_ipv6=0 && \
             ip addr add 2001:db8:1::{i}/64 dev eth0 nodad"
        ));
        let a = Netns::new(&format!("{prefix}-a{i}"));
        let b = Netns::new(&format!("{prefix}-b{i}"));
        veth(&h, "tap1_0", &a, "eth0");
        veth(&h, "tap2_0", &b, "eth0");
        // 1450: the inner MTU of a 1500-byte underlay, as on any VXLAN network.
        a.sh(&format!("ip addr add 10.2.0.{i}/24 dev eth0 && ip link set eth0 mtu 1450"));
        b.sh(&format!("ip addr add 10.3.0.{i}/24 dev eth0 && ip link set eth0 mtu 1450"));
        hosts.push(Host { h, a, b });
    }
    Topo { hosts, ul, dir: tempfile::tempdir().unwrap() }
}

impl Topo {
    /// Makes the underlay between the hosts behave as a wire between NICs (see
    /// `xvtep::netns::make_wire`): hosts send MTU-sized frames, and each host's `eth0`
    /// receives from the underlay bridge with GRO in its own NAPI context.
    pub fn underlay_is_a_wire(&self) {
        for (i, host) in self.hosts.iter().enumerate() {
            host.h.sh("ethtool -K eth0 tso off >/dev/null");
            xvtep::netns::make_wire(&self.ul, &format!("p{}", i + 1), &host.h, "eth0");
        }
    }
}

pub fn prefix(test: &str) -> String {
    format!("xv{}-{}", std::process::id() % 100000, test)
}

/// Resident memory, in KiB, of the first process whose command line matches `pattern`.
pub fn rss_kib(pattern: &str) -> u64 {
    let pid = sh(&format!("pgrep -f '{pattern}' | head -1"));
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap();
    kib.trim().trim_end_matches(" kB").trim().parse().unwrap()
}

/// I/O counters that mean frames lost inside the daemon through no fault of the traffic: a
/// worker short of UMEM frames to receive into or to send from.
pub const LOSS_COUNTERS: [&str; 3] = ["fill_starved", "tx_no_frame", "tx_invalid_descs"];

/// The exit report's "io: name value ..." line; panics with the report if it has none.
pub fn io_line(report: &str) -> &str {
    report
        .lines()
        .find(|l| l.starts_with("io: "))
        .unwrap_or_else(|| panic!("no io line in the exit report:\n{report}"))
}

/// The counter `name` of the exit report's "io: name value ..." line.
pub fn io_counter(line: &str, name: &str) -> u64 {
    line.split(&format!("{name} "))
        .nth(1)
        .and_then(|r| r.split([' ', ',', ';']).next())
        .unwrap_or_else(|| panic!("no counter {name} in: {line}"))
        .parse()
        .unwrap()
}

/// Sets `dev`'s `gso_ipv4_max_size` in `ns` to `size` through rtnetlink (IFLA_GSO_IPV4_MAX_SIZE,
/// Linux 6.3): iproute2 before 6.3 has no word for it.
pub fn set_gso_ipv4_max_size(ns: &Netns, dev: &str, size: u32) -> std::io::Result<()> {
    const RTM_SETLINK: u16 = 19;
    const NLMSG_ERROR: u16 = 2;
    const IFLA_GSO_IPV4_MAX_SIZE: u16 = 63;
    let dev = dev.to_string();
    in_netns(ns, move || {
        use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
        let index = nix::net::if_::if_nametoindex(dev.as_str()).map_err(std::io::Error::from)?;
        let mut req = Vec::with_capacity(40);
        req.extend_from_slice(&40u32.to_ne_bytes());
        req.extend_from_slice(&RTM_SETLINK.to_ne_bytes());
        req.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
        req.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
        req.extend_from_slice(&0u32.to_ne_bytes());
        // struct ifinfomsg: family, pad, type, index, flags, change.
        req.extend_from_slice(&[0; 4]);
        req.extend_from_slice(&(index as i32).to_ne_bytes());
        req.extend_from_slice(&[0; 8]);
        req.extend_from_slice(&8u16.to_ne_bytes());
        req.extend_from_slice(&IFLA_GSO_IPV4_MAX_SIZE.to_ne_bytes());
        req.extend_from_slice(&size.to_ne_bytes());
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.send_to(&req, &SocketAddr::new(0, 0), 0)?;
        let (reply, _) = sock.recv_from_full()?;
        let kind = reply.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]]));
        let code = reply.get(16..20).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        match (kind, code) {
            (Some(NLMSG_ERROR), Some(0)) => Ok(()),
            (Some(NLMSG_ERROR), Some(code)) => Err(std::io::Error::from_raw_os_error(-code)),
            _ => Err(std::io::Error::other("no acknowledgement from rtnetlink")),
        }
    })
    .join()
    .unwrap()
}

/// GET /metrics from `addr` inside namespace `ns`.
pub fn scrape_metrics(ns: &Netns, addr: &'static str) -> String {
    use std::io::{Read, Write};
    in_netns(ns, move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut body = String::new();
        c.read_to_string(&mut body).unwrap();
        body
    })
    .join()
    .unwrap()
}

/// The sum of metric `name` over its series (every worker's, every port's) in `text`; panics
/// with the text if it has none.
pub fn metric_sum(text: &str, name: &str) -> u64 {
    let values: Vec<u64> = text
        .lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with('{') || r.starts_with(' ')))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(!values.is_empty(), "no {name} in:\n{text}");
    values.iter().sum()
}
