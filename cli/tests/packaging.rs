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
