//! `xvtep replay` and `xvtep check` through the real binary: output files, JSON, and the
//! errors a user sees for bad captures and bad configs (each naming file and record, with no
//! output left behind that claims to be complete).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;

fn xvtep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xvtep")).args(args).output().unwrap()
}

fn root() -> PathBuf {
    support::repo()
}

fn seed_args(out: &Path) -> Vec<String> {
    support::seed_replay_args(out)
}

fn run(args: &[String]) -> Output {
    xvtep(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn replays_the_seed_scenario() {
    let out = tempfile::tempdir().unwrap();
    let o = run(&seed_args(out.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("replayed 9 frames"), "{text}");
    assert!(text.contains("vni_unknown"), "{text}");
    for iface in ["eth0", "tap1_0", "tap2_0"] {
        let got = std::fs::read(out.path().join(format!("{iface}.pcap"))).unwrap();
        let want = std::fs::read(root().join(format!("tests/golden/seed000/expected-{iface}.pcap"))).unwrap();
        assert_eq!(got, want, "{iface}.pcap differs from the golden capture");
    }

    let mut args = seed_args(out.path());
    args.insert(0, "-j".into());
    let o = run(&args);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["frames_in"], 9);
    assert_eq!(v["frames_out"]["eth0"], 4);
    assert_eq!(v["stats"]["drops"]["vni_unknown"], 1);
    assert_eq!(v["stats"]["fdb"]["learned"], 4);
}

/// A pcap with a global header of `snaplen` and the given (incl_len, orig_len, bytes) records.
fn pcap(snaplen: u32, records: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&snaplen.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (i, (incl, orig, data)) in records.iter().enumerate() {
        f.extend_from_slice(&(i as u32 + 1).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&incl.to_le_bytes());
        f.extend_from_slice(&orig.to_le_bytes());
        f.extend_from_slice(data);
    }
    f
}

fn broadcast(len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

/// Replays `capture` as tap1_0's input; returns the result and the out dir's file names.
fn replay_capture(capture: &[u8]) -> (Output, Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.pcap");
    std::fs::write(&path, capture).unwrap();
    let out = dir.path().join("out");
    let o = xvtep(&[
        "replay",
        "-c",
        root().join("configs/seed000-host1.toml").to_str().unwrap(),
        "--in",
        &format!("tap1_0={}", path.display()),
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .map(|d| d.map(|e| e.unwrap().file_name().into_string().unwrap()).collect())
        .unwrap_or_default();
    files.sort();
    (o, files, path.display().to_string())
}

#[test]
fn a_good_handmade_capture_replays() {
    let (o, files, _) = replay_capture(&pcap(65535, &[(60, 60, broadcast(60)), (60, 60, broadcast(60))]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(files, ["eth0.pcap"]);
}

#[test]
fn wrong_magic() {
    let (o, files, path) = replay_capture(b"this is not a capture at all, not even close");
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains(&path) && e.contains("not a pcap capture"), "{e}");
    assert!(files.is_empty(), "{files:?}");
}

#[test]
fn truncated_record_leaves_no_output() {
    let mut cap = pcap(65535, &[(60, 60, broadcast(60)), (60, 60, broadcast(60)), (60, 60, broadcast(60))]);
    cap.truncate(cap.len() - 7);
    let (o, files, path) = replay_capture(&cap);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains(&format!("{path}: record 3: truncated or corrupt record")), "{e}");
    assert!(files.is_empty(), "partial output left behind: {files:?}");
}

#[test]
fn frame_longer_than_snaplen() {
    let (o, _, path) = replay_capture(&pcap(64, &[(60, 60, broadcast(60)), (100, 100, broadcast(100))]));
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains(&format!("{path}: record 2: frame of 100 bytes is longer than the snap length 64")),
        "{e}"
    );
}

#[test]
fn frame_captured_in_part() {
    let (o, _, path) = replay_capture(&pcap(65535, &[(60, 1514, broadcast(60))]));
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains(&format!("{path}: record 1: frame captured in part (60 of 1514 bytes)")), "{e}");
}

#[test]
fn unknown_interface_lists_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let o = xvtep(&[
        "replay",
        "-c",
        root().join("configs/seed000-host1.toml").to_str().unwrap(),
        "--in",
        "tap9=whatever.pcap",
        "--out-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains(
        "'tap9' is not an interface of this switch; use the tunnel's dev or a port: eth0, tap1_0, tap2_0"
    ));
    let o = xvtep(&["replay", "-c", "x.toml", "--in", "novalue", "--out-dir", "d"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("'novalue' is not IFACE=FILE.pcap"), "{}", stderr(&o));
}

#[test]
fn config_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[tunnel]\nlocal = \"192.168.1.4\"\ndev = \"eth0\"\n[[vlan]]\nvid = 5000\nvni = 2\n",
    )
    .unwrap();
    let o = xvtep(&["check", "-c", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains(&format!("{}:4:1: [[vlan]] vid 5000 is out of range 1..=4094", cfg.display())), "{e}");
    let o = xvtep(&["check", "-c", root().join("configs/seed000-host1.toml").to_str().unwrap()]);
    assert!(o.status.success());
}
