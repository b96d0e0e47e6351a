//! The tc fallback for kernels without tcx (before Linux 6.6), run on this kernel by forcing it
//! (`XVTEP_TC_ATTACH=clsact`): the guest's scenario (scripts/vm-guest.sh, which `make vm-test`
//! runs on Debian 12's 6.1 in QEMU) run here in network namespaces, once with the fallback and
//! once with tcx. Two hosts with default (`vnet`) ports ping within a VNI and not across; the
//! `vnet` hold keeps the kernel off a port's frames; after SIGKILL the port is not black-holed;
//! a restarted daemon replaces the filter a killed one left, and a stopped one removes it.
mod support;
use support::*;

fn scenario(tc: &str) {
    let out = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(repo().join("scripts/vm-guest.sh"))
        .arg(out.path())
        .env("XVTEP_BIN", xvtep())
        .env("XVTEP_TC_ATTACH", tc)
        .env("XVTEP_NS_PREFIX", prefix(tc))
        .status()
        .expect("scripts/vm-guest.sh runs");
    let results = std::fs::read_to_string(out.path().join("results")).unwrap_or_default();
    let log = std::fs::read_to_string(out.path().join("guest.log")).unwrap_or_default();
    assert!(run.success() && out.path().join("done").exists(), "the scenario did not finish:\n{log}");
    let failed: Vec<&str> = results.lines().filter(|l| !l.starts_with("ok ")).collect();
    let h1 = std::fs::read_to_string(out.path().join("h1.log")).unwrap_or_default();
    assert!(failed.is_empty(), "{failed:#?}\nh1.log:\n{h1}\nguest.log:\n{log}");
    // Every check ran: the clsact ones only with the fallback.
    let expected = if tc == "clsact" { 17 } else { 14 };
    assert_eq!(results.lines().count(), expected, "{results}");
}

#[test]
fn default_ports_with_clsact_filters() {
    require_root!();
    scenario("clsact");
}

#[test]
fn default_ports_with_tcx() {
    require_root!();
    scenario("tcx");
}

/// `link show` ends the tunnel's row with the kernel and the tc attach the daemon took, and
/// says nothing of them where there is no kernel (the control tests' stand-in).
#[test]
fn link_show_names_the_kernel_and_the_tc_attach() {
    let row = |host: serde_json::Value| {
        serde_json::json!([{"id": 0, "dev": "vxlan0", "underlay": "eth0", "local": "192.168.1.1",
            "learning": true, "mtu": 1500, "kernel_mode": false, "host_kernel": host}])
    };
    let text = xvtep::control::output::link(&row(
        serde_json::json!({"release": "6.1.0-57-amd64", "tc_attach": "clsact"}),
    ));
    assert_eq!(
        text,
        "0: vxlan0: underlay eth0 local 192.168.1.1 learning on mtu 1500 kernel 6.1.0-57-amd64 tc clsact\n"
    );
    let text = xvtep::control::output::link(&row(serde_json::Value::Null));
    assert_eq!(text, "0: vxlan0: underlay eth0 local 192.168.1.1 learning on mtu 1500\n");
}
