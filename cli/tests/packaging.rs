//! What an operator installs: the Debian package (its exact contents, Depends read off the
//! binary, install and removal with dpkg), man pages that render without warnings, completion
//! scripts each shell parses, and the static binary (no dynamic dependencies, ≤ 5 MiB, runs
//! `check` and a replay). The package and the static build are made by the same scripts as
//! `make deb` and `make release STATIC=1`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{nix_is_root, repo, seed_replay_args, xvtep};

fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?} failed:\n{}{}", text(&o.stdout), text(&o.stderr));
    o
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn have(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
}

/// Runs one of the packaging scripts; returns the path it prints last.
fn script(name: &str, env: &[(&str, &str)]) -> PathBuf {
    let o =
        run(Command::new(repo().join("scripts").join(name)).envs(env.iter().copied()).current_dir(repo()));
    let out = text(&o.stdout);
    repo().join(out.lines().last().expect("the script prints its output's path").trim())
}

const PACKAGE_FILES: &[&str] = &[
    "./etc/xvtep/xvtep.toml",
    "./lib/systemd/system/xvtep.service",
    "./usr/sbin/xvtep",
    "./usr/share/bash-completion/completions/xvtep",
    "./usr/share/doc/xvtep/changelog.Debian.gz",
    "./usr/share/doc/xvtep/copyright",
    "./usr/share/fish/vendor_completions.d/xvtep.fish",
    "./usr/share/man/man5/xvtep.toml.5.gz",
    "./usr/share/man/man8/xvtep-bench.8.gz",
    "./usr/share/man/man8/xvtep-check.8.gz",
    "./usr/share/man/man8/xvtep-completions.8.gz",
    "./usr/share/man/man8/xvtep-fdb.8.gz",
    "./usr/share/man/man8/xvtep-link.8.gz",
    "./usr/share/man/man8/xvtep-monitor.8.gz",
    "./usr/share/man/man8/xvtep-neigh.8.gz",
    "./usr/share/man/man8/xvtep-replay.8.gz",
    "./usr/share/man/man8/xvtep-run.8.gz",
    "./usr/share/man/man8/xvtep-save.8.gz",
    "./usr/share/man/man8/xvtep-stats.8.gz",
    "./usr/share/man/man8/xvtep-vlan.8.gz",
    "./usr/share/man/man8/xvtep.8.gz",
    "./usr/share/zsh/vendor-completions/_xvtep",
];

fn dpkg_query_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| text(&o.stdout).contains("install ok installed"))
}

/// Purges the package on drop, so that a failing test leaves no package behind.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "xvtep"]).output();
    }
}

#[test]
fn the_debian_package_has_its_files_and_installs_and_removes_cleanly() {
    if !have("dpkg-deb") || !have("dpkg-shlibdeps") {
        eprintln!(
            "SKIP: dpkg-deb and dpkg-shlibdeps are needed (apt install dpkg-dev; scripts/setup.sh does)"
        );
        return;
    }
    let deb = script("deb.sh", &[]);
    let listing = text(&run(Command::new("dpkg-deb").arg("-c").arg(&deb)).stdout);
    let mut files: Vec<&str> =
        listing.lines().filter(|l| l.starts_with('-')).filter_map(|l| l.split_whitespace().last()).collect();
    files.sort();
    assert_eq!(files, PACKAGE_FILES, "package contents");
    assert!(listing.contains("-rwxr-xr-x root/root") && listing.contains("./usr/sbin/xvtep"), "{listing}");

    let field = |name: &str| text(&run(Command::new("dpkg-deb").args(["-f"]).arg(&deb).arg(name)).stdout);
    let depends = field("Depends");
    // What the binary links against, as dpkg-shlibdeps found it (ldd: libelf, zlib, libgcc_s, libc).
    for lib in ["libc6 (>= ", "libelf1 (>= ", "zlib1g (>= ", "libgcc-s1 (>= "] {
        assert!(depends.contains(lib), "Depends lacks {lib}: {depends}");
    }
    assert_eq!(field("Package").trim(), "xvtep");
    let control = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(control.path()));
    assert_eq!(std::fs::read_to_string(control.path().join("conffiles")).unwrap(), "/etc/xvtep/xvtep.toml\n");

    if !nix_is_root() {
        eprintln!("SKIP: installing the package needs root");
        return;
    }
    if dpkg_query_installed("xvtep") {
        eprintln!("SKIP: an xvtep package is already installed here; not replacing it");
        return;
    }
    let _guard = Installed;
    run(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(dpkg_query_installed("xvtep"));
    let version = text(&run(Command::new("/usr/sbin/xvtep").arg("--version")).stdout);
    assert!(version.contains("features: afxdp") && version.contains("commit: "), "{version}");
    run(Command::new("/usr/sbin/xvtep").args(["check", "--config", "/etc/xvtep/xvtep.toml"]));
    let page = text(&run(Command::new("man").args(["-w", "5", "xvtep.toml"])).stdout);
    assert_eq!(page.trim(), "/usr/share/man/man5/xvtep.toml.5.gz");
    // No service is started by installing: the example config names interfaces a host may
    // not have.
    let pids = Command::new("pgrep").args(["-x", "xvtep"]).output().unwrap();
    assert!(pids.stdout.is_empty(), "a daemon was started: {}", text(&pids.stdout));

    run(Command::new("dpkg").args(["-r", "xvtep"]));
    assert!(!Path::new("/usr/sbin/xvtep").exists());
    assert!(!Path::new("/usr/share/man/man5/xvtep.toml.5.gz").exists());
    // Removal keeps the conffile, as for any package; purging removes it.
    assert!(Path::new("/etc/xvtep/xvtep.toml").exists());
    run(Command::new("dpkg").args(["--purge", "xvtep"]));
    assert!(!Path::new("/etc/xvtep").exists());
    assert!(!dpkg_query_installed("xvtep"));
}

#[test]
fn man_pages_render_without_warnings() {
    if !have("man") || !have("groff") {
        eprintln!("SKIP: man and groff are needed (apt install man-db groff-base; scripts/setup.sh does)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    run(Command::new(xvtep()).arg("manpages").arg(dir.path()));
    let mut pages: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    pages.sort();
    assert_eq!(pages.len(), PACKAGE_FILES.iter().filter(|f| f.contains("/man/")).count());
    for page in &pages {
        let o = run(Command::new("man")
            .args(["--warnings=w", "-l"])
            .arg(page)
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8"));
        assert_eq!(text(&o.stderr), "", "{} renders with warnings", page.display());
        assert!(o.stdout.len() > 300, "{} rendered almost nothing", page.display());
    }
    let run_page = text(
        &run(Command::new("man").arg("-l").arg(dir.path().join("xvtep-run.8")).env("MANWIDTH", "200")).stdout,
    );
    assert!(run_page.contains("--config"), "{run_page}");
    let config_page = text(
        &run(Command::new("man").arg("-l").arg(dir.path().join("xvtep.toml.5")).env("MANWIDTH", "200"))
            .stdout,
    );
    assert!(config_page.contains("dstport = port (default: 4789)"), "{config_page}");
}

#[test]
fn completion_scripts_parse_in_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, check) in [("bash", "bash"), ("zsh", "zsh"), ("fish", "fish")] {
        let script = run(Command::new(xvtep()).args(["completions", shell])).stdout;
        assert!(text(&script).contains("xvtep"), "{shell}: {}", text(&script));
        if !have(check) {
            eprintln!("SKIP: {check} is not installed; its completion script is not parsed");
            continue;
        }
        let path = dir.path().join(format!("xvtep.{shell}"));
        std::fs::write(&path, &script).unwrap();
        run(Command::new(check).arg("-n").arg(&path));
    }
    // A shell that clap does not know is refused with the list of those it does.
    let o = Command::new(xvtep()).args(["completions", "tcsh"]).output().unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("possible values: bash, elvish, fish, powershell, zsh"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn the_static_binary_has_no_dynamic_dependencies_and_runs() {
    if !Path::new(&format!("/usr/lib/{}-linux-gnu/libelf.a", std::env::consts::ARCH)).exists() {
        eprintln!("SKIP: the static build needs libelf.a (apt install libelf-dev; scripts/setup.sh does)");
        return;
    }
    let bin = script("release.sh", &[("STATIC", "1")]);
    let ldd = Command::new("ldd").arg(&bin).output().unwrap();
    assert!(text(&[ldd.stdout, ldd.stderr].concat()).contains("not a dynamic executable"));
    let size = std::fs::metadata(&bin).unwrap().len();
    assert!(size <= 5 << 20, "{} is {size} bytes, over 5 MiB", bin.display());
    let version = text(&run(Command::new(&bin).arg("--version")).stdout);
    assert!(version.contains("linkage: static"), "{version}");

    let r = repo();
    run(Command::new(&bin).args(["check", "--config"]).arg(r.join("packaging/xvtep.toml")));
    let out = tempfile::tempdir().unwrap();
    let g = r.join("tests/golden/seed000");
    let o = run(Command::new(&bin).args(seed_replay_args(out.path())));
    assert!(text(&o.stdout).contains("replayed 9 frames"), "{}", text(&o.stdout));
    for iface in ["eth0", "tap1_0", "tap2_0"] {
        let got = std::fs::read(out.path().join(format!("{iface}.pcap"))).unwrap();
        let want = std::fs::read(g.join(format!("expected-{iface}.pcap"))).unwrap();
        assert_eq!(got, want, "{iface}.pcap from the static binary differs from the golden capture");
    }
}

/// The sources of what the unit runs (`xvtep run`): the daemon, its control server, the
/// dataplane and the BPF loader; not the bench, the traffic generator or the netns helpers,
/// which other subcommands run.
const DAEMON_SOURCES: &[&str] =
    &["cli/src/main.rs", "cli/src/daemon", "cli/src/control", "dataplane/src", "bpf/src"];

/// Calls that open sockets without naming a family at the call, with the families they open
/// and why. A socket(2) call names its family and needs no entry here.
const SOCKET_OPENERS: &[(&str, &[&str], &str)] = &[
    ("UdpSocket::bind", &["AF_INET", "AF_INET6"], "multicast joins, of the tunnel's family"),
    ("TcpListener::bind", &["AF_INET", "AF_INET6"], "--metrics ADDR, of either family"),
    ("UnixListener", &["AF_UNIX"], "the control socket"),
    ("UnixStream", &["AF_UNIX"], "the control socket"),
    ("netlink_sys::", &["AF_NETLINK"], "routes, neighbours, links, the kernel follower"),
    ("getifaddrs", &["AF_NETLINK"], "glibc reads addresses over rtnetlink"),
    ("if_nametoindex", &["AF_UNIX"], "glibc's ioctl socket (__opensock: AF_UNIX first)"),
    ("if_indextoname", &["AF_UNIX"], "glibc's ioctl socket (__opensock: AF_UNIX first)"),
    ("libbpf_rs::Xdp", &["AF_NETLINK"], "libbpf queries XDP attachments over rtnetlink"),
];

/// Each `.rs` file under `path` (or `path` itself), as (path, code without `//` comments and
/// without its unit tests, which the daemon does not run: its `#[cfg(test)] mod`, last in a
/// file by this tree's convention).
fn rust_sources(path: &Path, out: &mut Vec<(PathBuf, String)>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_sources(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        // A test module of its own file (`#[cfg(test)] mod tests;`, `mod veth_tests;`) is not
        // the daemon's code.
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name == "tests.rs" || name.ends_with("_tests.rs") {
            return;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let daemon = text.split("\n#[cfg(test)]\nmod ").next().unwrap_or_default();
        let code =
            daemon.lines().map(|l| l.find("//").map_or(l, |at| &l[..at])).collect::<Vec<_>>().join("\n");
        out.push((path.strip_prefix(repo()).unwrap_or(path).to_path_buf(), code));
    }
}

fn daemon_sources() -> Vec<(PathBuf, String)> {
    let mut sources = Vec::new();
    for dir in DAEMON_SOURCES {
        rust_sources(&repo().join(dir), &mut sources);
    }
    assert!(sources.len() > 30, "only {} daemon sources found: has the tree moved?", sources.len());
    sources
}

/// The family a socket(2) call at the start of `call` names: `libc::AF_X` or nix's
/// `AddressFamily::X`.
fn family_of_call(call: &str) -> Option<String> {
    let call = &call[..call.len().min(200)];
    let libc = call.find("AF_").map(|at| (at, &call[at..]));
    let nix = call.find("AddressFamily::").map(|at| (at, &call[at + "AddressFamily::".len()..]));
    let (_, name) = [libc, nix].into_iter().flatten().min_by_key(|(at, _)| *at)?;
    let name: String = name.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    Some(if name.starts_with("AF_") { name } else { format!("AF_{}", name.to_uppercase()) })
}

/// Every address family the daemon's code opens a socket of, with where.
fn families_the_daemon_opens() -> std::collections::BTreeMap<String, Vec<String>> {
    let mut found: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (path, code) in daemon_sources() {
        let mut rest = code.as_str();
        while let Some(at) = rest.find("socket(") {
            let before = rest[..at].chars().last();
            rest = &rest[at + "socket(".len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue; // set_socket(, clear_socket(: not socket(2)
            }
            let family = family_of_call(rest).unwrap_or_else(|| {
                panic!(
                    "{}: a socket( call whose family this test cannot read; name it as libc::AF_X \
                     or AddressFamily::X in the call",
                    path.display()
                )
            });
            found.entry(family).or_default().push(format!("{}: socket(2)", path.display()));
        }
        for (opener, families, why) in SOCKET_OPENERS {
            if code.contains(opener) {
                for f in *families {
                    found
                        .entry(f.to_string())
                        .or_default()
                        .push(format!("{}: {opener} ({why})", path.display()));
                }
            }
        }
    }
    found
}

/// The `[Service]` settings of the shipped unit: each key's values, space-separated, over all
/// its lines.
fn unit_settings() -> std::collections::BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(repo().join("packaging/xvtep.service")).unwrap();
    let mut settings: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut in_service = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if let (true, Some((key, value))) =
            (in_service && !line.starts_with('#'), line.split_once('='))
        {
            settings.entry(key.to_string()).or_default().extend(value.split_whitespace().map(String::from));
        }
    }
    settings
}

/// The unit's RestrictAddressFamilies allows exactly the families the daemon opens sockets of:
/// found by reading the daemon's sources, so that a socket of a new family fails here rather
/// than under systemd (as an IPv6 underlay with a group did at join_group, AF_INET6 missing).
/// No systemd runs as PID 1 on the test machines, so this is a static check.
#[test]
fn the_unit_allows_every_address_family_the_daemon_opens_and_no_other() {
    let opened = families_the_daemon_opens();
    for family in ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET", "AF_XDP", "AF_UNIX"] {
        assert!(
            opened.contains_key(family),
            "the source scan missed {family}, which the daemon opens: {opened:#?}"
        );
    }
    let allowed =
        unit_settings().remove("RestrictAddressFamilies").expect("the unit restricts address families");
    for (family, places) in &opened {
        assert!(
            allowed.contains(family),
            "packaging/xvtep.service: RestrictAddressFamilies lacks {family}, which the daemon opens at:\n  {}\nadd it",
            places.join("\n  ")
        );
    }
    for family in &allowed {
        assert!(
            opened.contains_key(family),
            "packaging/xvtep.service allows {family}, which the daemon never opens: remove it (or teach \
             SOCKET_OPENERS in this test how the code opens it)"
        );
    }
}

/// The unit's other restrictions against what the daemon does: its capabilities, locked
/// memory, writable paths, namespaces and memory mappings.
#[test]
fn the_units_other_restrictions_fit_what_the_daemon_does() {
    let unit = unit_settings();
    let values = |key: &str| unit.get(key).cloned().unwrap_or_default();
    let yes = |key: &str| values(key).first().is_some_and(|v| v == "yes" || v == "true" || v == "strict");
    let code: String = daemon_sources().into_iter().map(|(_, c)| c).collect();

    // XDP attachment and netlink (CAP_NET_ADMIN), AF_XDP and AF_PACKET sockets (CAP_NET_RAW),
    // bpf(2) loads and map updates (CAP_BPF); ambient, so that root without them works too.
    let (bounding, ambient) = (values("CapabilityBoundingSet"), values("AmbientCapabilities"));
    for cap in ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF"] {
        assert!(bounding.contains(&cap.to_string()), "CapabilityBoundingSet lacks {cap}");
        assert!(ambient.contains(&cap.to_string()), "AmbientCapabilities lacks {cap}");
    }
    assert!(ambient.iter().all(|c| bounding.contains(c)), "an ambient capability outside the bounding set");
    // UMEM and BPF maps are locked memory: without CAP_IPC_LOCK the limit must not bind.
    assert!(
        bounding.contains(&"CAP_IPC_LOCK".to_string()) || values("LimitMEMLOCK") == ["infinity"],
        "UMEM registration needs LimitMEMLOCK=infinity or CAP_IPC_LOCK"
    );
    // A filter would have to allow bpf(2), setsockopt/getsockopt (XDP rings), mmap (rings and
    // UMEM), sendto/sendmmsg/recvmsg/poll, ioctl and sched_setaffinity; none is set today.
    assert!(
        !unit.contains_key("SystemCallFilter"),
        "the unit now filters system calls: check that it allows bpf, setsockopt, getsockopt, mmap, \
         munmap, sendto, sendmmsg, recvmsg, poll, ioctl and sched_setaffinity, then extend this test"
    );
    assert!(!yes("PrivateNetwork"), "PrivateNetwork hides the interfaces the daemon serves");
    assert!(
        !yes("PrivateDevices") || !code.contains("/dev/"),
        "PrivateDevices hides a device the daemon opens"
    );
    if yes("MemoryDenyWriteExecute") {
        assert!(
            !code.contains("PROT_EXEC"),
            "the daemon maps executable memory; MemoryDenyWriteExecute forbids it"
        );
    }
    if yes("RestrictNamespaces") {
        for call in ["setns(", "unshare(", "CLONE_NEW"] {
            assert!(!code.contains(call), "the daemon calls {call}, which RestrictNamespaces=yes forbids");
        }
    }
    // Internal ports enable IPv6 through /proc/sys.
    if code.contains("/proc/sys") {
        assert!(
            !yes("ProtectKernelTunables"),
            "ProtectKernelTunables makes /proc/sys read-only; internal ports write it"
        );
    }
    // With the file system read-only, `save` writes next to the config, and the control socket
    // lives in the runtime directory.
    assert!(yes("ProtectSystem"), "expected ProtectSystem=strict");
    let exec = values("ExecStart");
    let arg = |name: &str| exec.iter().position(|a| a == name).and_then(|i| exec.get(i + 1)).cloned();
    let config = arg("--config").expect("ExecStart names --config");
    let writable = values("ReadWritePaths");
    assert!(
        writable.iter().any(|dir| Path::new(&config).starts_with(dir)),
        "`xvtep save` writes {config}, which is not under ReadWritePaths {writable:?}"
    );
    let control = arg("--control").expect("ExecStart names --control");
    let runtime = values("RuntimeDirectory");
    assert!(
        runtime.iter().any(|dir| Path::new(&control).starts_with(Path::new("/run").join(dir))),
        "the control socket {control} is not in the RuntimeDirectory {runtime:?}"
    );
}

/// What the daemon opens when it runs, as strace sees it (root): an IPv6 underlay with a group,
/// IPv6 metrics, vnet and AF_XDP ports, a control command. Every socket(2) it makes, its
/// libraries' included, must be of a family the unit allows. The static check above covers the
/// code paths this run does not take; this one covers what libraries open on their own.
#[test]
fn every_socket_the_running_daemon_opens_is_of_a_family_the_unit_allows() {
    if !nix_is_root() || !have("strace") {
        eprintln!("SKIP: needs root and strace (apt install strace)");
        return;
    }
    let t = support::topo(&support::prefix("afam"), 1);
    let config =
        support::ports_io(&support::seed_config("2001:db8:1::1", &[], "group = \"ff05::1:2\""), "vnet")
            .replacen("io = \"vnet\"", "io = \"afxdp\"", 1);
    let (dir, ns) = (t.dir.path(), &t.hosts[0].h.name);
    std::fs::write(dir.join("c.toml"), config).unwrap();
    let (trace, log, control) = (dir.join("trace"), dir.join("log"), dir.join("c.sock"));
    let output = std::fs::File::create(&log).unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "strace", "-f", "-qq", "-e", "trace=socket", "-o"])
        .arg(&trace)
        .arg(xvtep())
        .args(["run", "--summary-every", "0", "--metrics", "[2001:db8:1::1]:9470", "--control"])
        .arg(&control)
        .arg("-c")
        .arg(dir.join("c.toml"))
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("xvtep: running") {
        assert!(
            started.elapsed().as_secs() < 20 && child.try_wait().unwrap().is_none(),
            "the daemon did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let stats = Command::new(xvtep()).arg("--socket").arg(&control).arg("stats").output().unwrap();
    assert!(stats.status.success(), "{}", text(&stats.stderr));
    // The daemon is strace's child: its pid is the first one traced.
    let traced = std::fs::read_to_string(&trace).unwrap();
    let pid = traced.split_whitespace().next().unwrap();
    run(Command::new("kill").args(["-TERM", pid]));
    child.wait().unwrap();
    let traced = std::fs::read_to_string(&trace).unwrap();

    let allowed = unit_settings().remove("RestrictAddressFamilies").unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for line in traced.lines().filter(|l| l.contains("socket(")) {
        let family = family_of_call(&line[line.find("socket(").unwrap()..]).unwrap_or_default();
        assert!(allowed.contains(&family), "the daemon opened {family}, which the unit forbids: {line}");
        seen.insert(family);
    }
    for family in ["AF_INET6", "AF_NETLINK", "AF_XDP", "AF_PACKET", "AF_UNIX"] {
        assert!(seen.contains(family), "the run opened no {family} socket (did it run?):\n{traced}");
    }
}
