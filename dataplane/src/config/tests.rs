use super::*;

const SEED: &str = include_str!("../../../configs/seed000-host1.toml");

fn err(text: &str) -> ConfigError {
    Config::parse(text, "x.toml").expect_err("config accepted")
}

#[test]
fn seed_config_parses_with_defaults() {
    let c = Config::parse(SEED, "seed.toml").unwrap();
    assert_eq!(c.switch, SwitchConfig { ageing_secs: 300, max_learned: 65536 });
    assert_eq!(c.tunnel.local, Ipv4Addr::new(192, 168, 1, 4));
    assert_eq!(c.tunnel.srcport, (32768, 60999));
    assert_eq!((c.tunnel.ttl, c.tunnel.tos), (Inheritable::Fixed(64), Inheritable::Fixed(0)));
    assert_eq!((c.tunnel.df, c.tunnel.udpcsum), (DfMode::Unset, true));
    assert_eq!(c.tunnel.allowed_bits, VXLAN_VALID_BITS);
    assert_eq!(c.vlans.len(), 2);
    assert_eq!(c.ports[0].vlans, vec![PortVlan { vid: 2, pvid: true, untagged: true }]);
    assert!(c.ports[0].learning && c.ports[0].flood && !c.ports[0].hairpin);
    assert_eq!(c.fdb.len(), 2);
    assert_eq!(
        c.fdb[0].target,
        FdbTarget::Remote { ip: Ipv4Addr::new(192, 168, 1, 2).into(), port: None, vni: None }
    );
    assert_eq!(c.vni_of(3), Some(3));
}

const MIN: &str = "[tunnel]\nlocal = \"10.0.0.1\"\ndev = \"eth0\"\n";

#[test]
fn unknown_key_names_file_line_and_key() {
    let e = err(&format!("{MIN}bogus = 1\n"));
    assert_eq!((e.file.as_str(), e.line), ("x.toml", 4));
    assert!(e.message.contains("unknown field `bogus`"), "{e}");
    assert!(e.to_string().starts_with("x.toml:4:"), "{e}");
}

#[test]
fn bad_addresses_are_named() {
    let e = err("[tunnel]\nlocal = \"10.0.0.300\"\ndev = \"eth0\"\n");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("invalid IP address"), "{e}");
    let e = err(&format!(
        "{MIN}[[vlan]]\nvid = 2\nvni = 2\n[[neigh]]\nvni = 2\nip = \"10.0.0.9\"\nmac = \"02:00:00:00:00\"\n"
    ));
    assert_eq!(e.line, 10);
    assert!(e.message.contains("invalid MAC address '02:00:00:00:00'"), "{e}");
}

#[test]
fn vni_mapped_twice() {
    let e = err(&format!("{MIN}[[vlan]]\nvid = 2\nvni = 7\n[[vlan]]\nvid = 3\nvni = 7\n"));
    assert_eq!(e.line, 7);
    assert!(e.message.contains("VNI 7 is mapped twice (from VID 2 and VID 3)"), "{e}");
    let e = err(&format!("{MIN}[[vlan]]\nvid = 2\nvni = 7\n[[vlan]]\nvid = 2\nvni = 8\n"));
    assert!(e.message.contains("VID 2 is mapped twice"), "{e}");
}

#[test]
fn port_with_two_pvids() {
    let e = err(&format!(
        "{MIN}[[port]]\nname = \"p1\"\nvlans = [{{ vid = 2, pvid = true }}, {{ vid = 3, pvid = true }}]\n"
    ));
    assert_eq!(e.line, 4);
    assert!(e.message.contains("port 'p1' has two PVIDs (VID 2 and VID 3)"), "{e}");
}

#[test]
fn vid_without_vni_used_by_tunnel() {
    let e = err(&format!(
        "{MIN}[[port]]\nname = \"p1\"\nvlans = [{{ vid = 5 }}]\n[[fdb]]\nmac = \"02:00:00:00:00:01\"\nvid = 5\ndst = \"10.0.0.2\"\n"
    ));
    assert_eq!(e.line, 7);
    assert!(e.message.contains("VID 5 has no VNI, so the tunnel cannot carry it"), "{e}");
    let e = err(&format!("{MIN}[[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = 9\ndst = \"10.0.0.2\"\n"));
    assert!(e.message.contains("vni 9 is not mapped to any VID"), "{e}");
}

#[test]
fn fdb_entry_rules() {
    let base = format!("{MIN}[[vlan]]\nvid = 2\nvni = 2\n[[port]]\nname = \"p1\"\nvlans = [{{ vid = 3 }}]\n");
    let e = err(&format!("{base}[[fdb]]\nmac = \"02:00:00:00:00:01\"\nvni = 2\nport = \"p1\"\n"));
    assert!(e.message.contains("port 'p1' is not a member of VID 2"), "{e}");
    let e = err(&format!("{base}[[fdb]]\nmac = \"02:00:00:00:00:01\"\nvni = 2\nport = \"nope\"\n"));
    assert!(e.message.contains("port 'nope' is not a [[port]]"), "{e}");
    let e = err(&format!("{base}[[fdb]]\nmac = \"01:00:5e:00:00:01\"\nvni = 2\ndst = \"10.0.0.2\"\n"));
    assert!(e.message.contains("multicast"), "{e}");
    let e = err(&format!("{base}[[fdb]]\nmac = \"02:00:00:00:00:01\"\nvni = 2\n"));
    assert!(e.message.contains("exactly one of `port`"), "{e}");
    let twice = "[[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = 2\ndst = \"10.0.0.2\"\n";
    let e = err(&format!("{base}{twice}{twice}"));
    assert!(e.message.contains("given twice"), "{e}");
    // Two different remotes under the all-zeros MAC are a flood list, not a clash.
    let ok = format!("{base}{twice}[[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = 2\ndst = \"10.0.0.3\"\n");
    assert_eq!(Config::parse(&ok, "x").unwrap().fdb.len(), 2);
    // A control plane's entry: a remote MAC only; it survives `save`.
    let e = err(&format!(
        "{base}[[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = 2\ndst = \"10.0.0.2\"\nextern_learn = true\n"
    ));
    assert!(e.message.contains("extern_learn is for a remote MAC"), "{e}");
    let ext = format!(
        "{base}[[fdb]]\nmac = \"02:00:00:00:00:01\"\nvni = 2\ndst = \"10.0.0.2\"\nextern_learn = true\n"
    );
    let c = Config::parse(&ext, "x").unwrap();
    assert_eq!(c.fdb[0].kind(), crate::fdb::EntryKind::External);
    assert_eq!(Config::parse(&c.to_toml(), "saved").unwrap(), c);
}

#[test]
fn tunnel_knobs_are_checked() {
    let e = err("[tunnel]\nlocal = \"10.0.0.1\"\ndev = \"eth0\"\nsrcport = [5000, 4000]\n");
    assert!(e.message.contains("srcport [5000, 4000]"), "{e}");
    let e = err("[tunnel]\nlocal = \"10.0.0.1\"\ndev = \"eth0\"\ngroup = \"10.1.1.1\"\n");
    assert!(e.message.contains("not a multicast address"), "{e}");
    let e = err("[tunnel]\nlocal = \"10.0.0.1\"\ndev = \"eth0\"\ndf = \"sometimes\"\n");
    assert!(e.message.contains("unknown variant `sometimes`"), "{e}");
    let c = Config::parse(
        "[tunnel]\nlocal = \"10.0.0.1\"\ndev = \"eth0\"\nreserved_bits = \"0x01000000_00000000\"\n",
        "x",
    )
    .unwrap();
    assert_eq!(c.tunnel.allowed_bits, VXLAN_VALID_BITS | 0x0100_0000_0000_0000);
    let e = err("[switch]\nageing = 0\n[tunnel]\nlocal = \"10.0.0.1\"\ndev = \"eth0\"\n");
    assert_eq!(e.line, 2);
}

#[test]
fn missing_tunnel_and_unreadable_file() {
    let e = err("[switch]\n");
    assert!(e.message.contains("missing field `tunnel`"), "{e}");
    let e = Config::load(Path::new("/nonexistent/xvtep.toml")).unwrap_err();
    assert_eq!(e.line, 0);
    assert!(e.to_string().starts_with("/nonexistent/xvtep.toml: cannot read the config file"), "{e}");
}

/// A control character in a comment makes the TOML parser's error message empty: the error
/// still says where and what.
#[test]
fn every_error_says_something() {
    let e = err(&format!("# comment \u{0}\n{MIN}"));
    assert_eq!((e.line, e.column), (1, 11));
    assert!(!e.message.is_empty(), "{e:?}");
    assert!(e.message.contains("invalid") || e.message.contains("character"), "{e}");
}

#[test]
fn internal_ports_parse_check_and_save() {
    let base = format!("{MIN}[[vlan]]\nvid = 2\nvni = 2\n");
    let port = "[[port]]\nname = \"xv2\"\ninternal = true\naddress = [\"10.2.0.100/24\", \"fd00:2::64/64\"]\nmac = \"02:00:00:00:02:01\"\nvlans = [{ vid = 2, pvid = true, untagged = true }]\n";
    let c = Config::parse(&format!("{base}{port}"), "x").unwrap();
    let i = c.ports[0].internal.as_ref().unwrap();
    assert_eq!(i.addresses, vec![("10.2.0.100".parse().unwrap(), 24), ("fd00:2::64".parse().unwrap(), 64)]);
    assert_eq!(i.mac, Some("02:00:00:00:02:01".parse().unwrap()));
    assert_eq!(Config::parse(&c.to_toml(), "saved").unwrap(), c, "save round trip");
    for bad in ["10.2.0.100", "10.2.0.100/33", "fd00:2::64/129", "ff02::1/64", "::/0"] {
        let e = err(&format!("{base}{}", port.replace("10.2.0.100/24", bad)));
        assert!(e.message.contains("is not an IPv4 or IPv6 address with a prefix length"), "{bad}: {e}");
    }
    let e = err(&format!("{base}{}", port.replace("internal = true\n", "")));
    assert!(e.message.contains("address, mac and kernel_bridge are for an internal port"), "{e}");
    let e = err(&format!("{base}{}", port.replace("02:00:00:00:02:01", "01:00:00:00:02:01")));
    assert!(e.message.contains("is not a unicast MAC"), "{e}");
    // A kernel bridge's port ([kernel] mode): the bridge's addresses and MAC are the kernel's.
    let bridge = "[[port]]\nname = \"br2\"\ninternal = true\nkernel_bridge = true\nvlans = [{ vid = 2, pvid = true, untagged = true }]\n";
    let c = Config::parse(&format!("{base}{bridge}"), "x").unwrap();
    assert!(c.ports[0].internal.as_ref().unwrap().kernel_bridge);
    assert_eq!(Config::parse(&c.to_toml(), "saved").unwrap(), c, "save round trip");
    let e = err(&format!("{base}{}", bridge.replace("internal = true\n", "mac = \"02:00:00:00:02:01\"\n")));
    assert!(e.message.contains("are for an internal port"), "{e}");
    let e = err(&format!(
        "{base}{}",
        bridge.replace("internal = true\n", "internal = true\naddress = [\"10.2.0.1/24\"]\n")
    ));
    assert!(e.message.contains("with kernel_bridge the host's side is the kernel bridge br2"), "{e}");
}

/// The keys the parser accepts where `probe` puts [`keys::PROBE_KEY`], sorted.
fn parser_keys(probe: &str) -> Vec<String> {
    let text = probe.replace("PROBE", keys::PROBE_KEY);
    let message = match toml::from_str::<RawConfig>(&text) {
        Ok(_) => panic!("the probe was accepted: {text}"),
        Err(e) => e.message().to_string(),
    };
    let mut found =
        keys::keys_in_unknown_field_error(&message).unwrap_or_else(|| panic!("{text}: {message}"));
    found.sort();
    found
}

#[test]
fn the_documented_keys_are_the_keys_the_parser_accepts() {
    let probes = [
        ("switch", "[switch]\nPROBE = 1"),
        ("tunnel", "[tunnel]\nPROBE = 1"),
        ("vlan", "[[vlan]]\nPROBE = 1"),
        ("port", "[[port]]\nPROBE = 1"),
        ("port.vlans", "[[port]]\nvlans = [{ PROBE = 1 }]"),
        ("fdb", "[[fdb]]\nPROBE = 1"),
        ("neigh", "[[neigh]]\nPROBE = 1"),
        ("nexthop", "[[nexthop]]\nPROBE = 1"),
    ];
    for (table, probe) in probes {
        assert_eq!(keys::documented_keys(table), parser_keys(probe), "keys of [{table}]");
    }
    // Every top-level table of the parser is documented, and every documented one is parsed
    // here or, for [kernel], by the daemon (its own test checks that one).
    let mut tables: Vec<&str> =
        keys::TABLES.iter().map(|t| t.name).filter(|n| !n.contains('.') && *n != "kernel").collect();
    tables.sort();
    assert_eq!(parser_keys("PROBE = 1"), tables);
}

#[test]
fn the_key_probe_reads_serde_errors_of_one_and_of_many_fields() {
    let one = format!("unknown field `{}`, expected `bridges`", keys::PROBE_KEY);
    assert_eq!(keys::keys_in_unknown_field_error(&one), Some(vec!["bridges".to_string()]));
    let many = format!("unknown field `{}`, expected one of `a`, `b`", keys::PROBE_KEY);
    assert_eq!(keys::keys_in_unknown_field_error(&many), Some(vec!["a".to_string(), "b".to_string()]));
    assert_eq!(keys::keys_in_unknown_field_error("missing field `vid`"), None);
}

#[test]
fn tos_and_ttl_are_numbers_or_inherit() {
    let c = Config::parse(&format!("{MIN}ttl = \"inherit\"\ntos = \"inherit\"\n"), "x.toml").unwrap();
    assert_eq!((c.tunnel.ttl, c.tunnel.tos), (Inheritable::Inherit, Inheritable::Inherit));
    let c = Config::parse(&format!("{MIN}ttl = 5\ntos = 0xb8\n"), "x.toml").unwrap();
    assert_eq!((c.tunnel.ttl, c.tunnel.tos), (Inheritable::Fixed(5), Inheritable::Fixed(0xb8)));
    assert_eq!(
        err(&format!("{MIN}ttl = 0\n")).to_string(),
        "x.toml:4:7: tunnel.ttl must be a number 1..=255 or \"inherit\""
    );
    assert_eq!(
        err(&format!("{MIN}tos = 256\n")).to_string(),
        "x.toml:4:7: tunnel.tos must be a number 0..=255 or \"inherit\""
    );
    assert_eq!(
        err(&format!("{MIN}tos = \"inherited\"\n")).to_string(),
        "x.toml:4:7: tunnel.tos must be a number 0..=255 or \"inherit\""
    );
}

#[test]
fn neighbours_are_ipv4_or_ipv6_unicast() {
    let text = |ip: &str| {
        format!("{MIN}[[vlan]]\nvid = 2\nvni = 2\n[[neigh]]\nvni = 2\nip = \"{ip}\"\nmac = \"02:00:00:00:00:09\"\n")
    };
    let c = Config::parse(&text("fd00::9"), "x.toml").unwrap();
    assert_eq!(c.neigh[0].ip, "fd00::9".parse::<std::net::IpAddr>().unwrap());
    for bad in ["ff02::1", "::", "::1", "224.0.0.1"] {
        assert!(err(&text(bad)).message.contains("is not a unicast address"), "{bad}");
    }
}

/// An IPv6 underlay: every address of the tunnel IPv6, its own checksum and flow-label keys,
/// the 70-byte overhead; `save` gives back the same configuration.
#[test]
fn an_ipv6_underlay_parses_checks_and_saves() {
    let v6 = "[tunnel]\nlocal = \"2001:db8::1\"\ndev = \"eth0\"\n";
    let text = format!(
        "{v6}group = \"ff05::1:2\"\nallowed_peers = [\"2001:db8::2\"]\nudp6zerocsumrx = true\nflowlabel = \"inherit\"\n\
         [[vlan]]\nvid = 2\nvni = 2\ngroup = \"ff05::2:2\"\n\
         [[fdb]]\nmac = \"00:00:00:00:00:00\"\nvni = 2\ndst = \"2001:db8::3\"\n\
         [[nexthop]]\nip = \"2001:db8::3\"\nmac = \"02:00:00:00:00:03\"\n"
    );
    let c = Config::parse(&text, "x").unwrap();
    let t = &c.tunnel;
    assert!(t.ipv6());
    assert_eq!(t.overhead(), 70);
    assert_eq!((t.udp6zerocsumtx, t.udp6zerocsumrx, t.flowlabel), (false, true, Inheritable::Inherit));
    assert_eq!(
        c.fdb[0].target,
        FdbTarget::Remote { ip: "2001:db8::3".parse().unwrap(), port: None, vni: None }
    );
    assert_eq!(Config::parse(&c.to_toml(), "saved").unwrap(), c);
    assert_eq!(Config::parse(MIN, "x").unwrap().tunnel.overhead(), 50);

    // One family per tunnel, as one kernel vxlan device: each place names the address.
    let mixed = [
        ("remote = \"10.0.0.2\"", 4, "tunnel.remote 10.0.0.2 is IPv4 but tunnel.local 2001:db8::1 is IPv6"),
        ("group = \"239.1.1.1\"", 4, "tunnel.group 239.1.1.1 is IPv4"),
        ("allowed_peers = [\"10.0.0.2\"]", 4, "tunnel.allowed_peers 10.0.0.2 is IPv4"),
        ("[[vlan]]\nvid = 2\nvni = 2\ngroup = \"239.1.1.1\"", 4, "[[vlan]] group 239.1.1.1 is IPv4"),
        ("[[nexthop]]\nip = \"10.0.0.2\"\nmac = \"02:00:00:00:00:03\"", 4, "[[nexthop]] ip 10.0.0.2 is IPv4"),
    ];
    for (extra, line, want) in mixed {
        let e = err(&format!("{v6}{extra}\n"));
        assert!(e.message.contains(want), "{extra}: {e}");
        assert_eq!(e.line, line, "{extra}: {e}");
    }
    let e = err(&format!(
        "{v6}[[vlan]]\nvid = 2\nvni = 2\n[[fdb]]\nmac = \"02:00:00:00:00:01\"\nvni = 2\ndst = \"10.0.0.3\"\n"
    ));
    assert!(e.message.contains("[[fdb]] dst 10.0.0.3 is IPv4"), "{e}");
    let e = err(&format!("{MIN}remote = \"2001:db8::2\"\n"));
    assert!(e.message.contains("is IPv6 but tunnel.local 10.0.0.1 is IPv4"), "{e}");

    // The checksum keys belong to one family each; the flow label to IPv6.
    let e = err(&format!("{v6}udpcsum = false\n"));
    assert!(
        e.message.contains("tunnel.udpcsum applies to an IPv4 underlay")
            && e.message.contains("udp6zerocsumtx"),
        "{e}"
    );
    let e = err(&format!("{MIN}udp6zerocsumtx = true\n"));
    assert!(e.message.contains("tunnel.udp6zerocsumtx applies to an IPv6 underlay"), "{e}");
    let e = err(&format!("{MIN}flowlabel = 5\n"));
    assert!(e.message.contains("tunnel.flowlabel applies to an IPv6 underlay"), "{e}");
    let e = err(&format!("{v6}flowlabel = 1048576\n"));
    assert!(e.message.contains("tunnel.flowlabel must be a number 0..=1048575 or \"inherit\""), "{e}");
    let e = err("[tunnel]\nlocal = \"fe80::1\"\ndev = \"eth0\"\n");
    assert!(e.message.contains("tunnel.local fe80::1 is not a unicast address (nor link-local)"), "{e}");
}

/// The IPv6 example of the README parses, and is an IPv6 tunnel.
#[test]
fn the_ipv6_example_parses() {
    let c = Config::parse(include_str!("../../../configs/ipv6-underlay.toml"), "ipv6-underlay.toml").unwrap();
    assert!(c.tunnel.ipv6());
    assert_eq!(c.fdb.len(), 1);
}

/// `[worker] poll`: the three modes, adaptive by default, and a clear error for another word.
#[test]
fn the_poll_mode_is_read_and_checked() {
    use crate::config::PollMode;
    const MIN: &str = "[tunnel]\nlocal = \"10.0.0.1\"\ndev = \"eth0\"\n";
    assert_eq!(Config::parse(MIN, "t.toml").unwrap().worker.poll, PollMode::Adaptive);
    for mode in [PollMode::Adaptive, PollMode::Busy, PollMode::Sleep] {
        let c = Config::parse(&format!("[worker]\npoll = \"{}\"\n{MIN}", mode.name()), "t.toml").unwrap();
        assert_eq!(c.worker.poll, mode);
        assert_eq!(Config::parse(&c.to_toml(), "w.toml").unwrap(), c);
    }
    let e = Config::parse(&format!("[worker]\npoll = \"spin\"\n{MIN}"), "t.toml").unwrap_err();
    assert_eq!(
        (e.line, e.message.as_str()),
        (2, "worker.poll: unknown poll mode 'spin': use adaptive, busy or sleep")
    );
}
