//! Every key of the config file, documented once: `xvtep.toml(5)` is rendered from this
//! table, and a test checks it against the keys the parser accepts (both ways), so a key
//! cannot be added to one and forgotten in the other.

/// A table of the config file (`[switch]`) or an array of tables (`[[port]]`).
#[derive(Debug)]
pub struct TableDoc {
    /// Its dotted name: `tunnel`, `port`, `port.vlans` (an inline array inside `[[port]]`).
    pub name: &'static str,
    /// `[[name]]`: it repeats.
    pub array: bool,
    pub doc: &'static str,
    pub keys: &'static [KeyDoc],
}

/// One key: its value's form, its default (`None`: required), and what it does.
#[derive(Debug)]
pub struct KeyDoc {
    pub key: &'static str,
    pub value: &'static str,
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

const fn key(
    key: &'static str,
    value: &'static str,
    default: Option<&'static str>,
    doc: &'static str,
) -> KeyDoc {
    KeyDoc { key, value, default, doc }
}

/// A key that may be left out and then has no value (the feature is off).
const UNSET: Option<&str> = Some("unset");

pub const TABLES: &[TableDoc] = &[
    TableDoc {
        name: "switch",
        array: false,
        doc: "The switch as a whole. Optional.",
        keys: &[
            key("ageing", "seconds", Some("300"), "Learned entries that saw no traffic this long are removed (at least 1)."),
            key(
                "max_learned",
                "count",
                Some("65536"),
                "Learned entries at most (0: unlimited). Past it, frames are forwarded but not learned, and counted.",
            ),
        ],
    },
    TableDoc {
        name: "worker",
        array: false,
        doc: "The worker threads. Optional; `xvtep run --poll` overrides it.",
        keys: &[key(
            "poll",
            "\"adaptive\" | \"busy\" | \"sleep\"",
            Some("\"adaptive\""),
            "How a worker waits when its rings are empty. adaptive: keeps looking for 200 µs after the last frame, then sleeps in poll(2) (an idle worker costs nothing). busy: never sleeps (a core always; give the worker its own). sleep: sleeps at once (a wake-up per frame that comes alone).",
        )],
    },
    TableDoc {
        name: "tunnel",
        array: false,
        doc: "The switch's one VXLAN port, shown as vxlan0: what the kernel's `external` vxlan device with \
              `vlan_tunnel` does. Required, unless [kernel] is given.",
        keys: &[
            key("local", "IPv4 or IPv6 address", None, "Our VTEP address on the underlay; it must be configured on dev. Its family is the underlay's: every remote, group, peer and next hop is of the same family."),
            key("dev", "interface", None, "The underlay interface (1 to 15 bytes)."),
            key("dstport", "port", Some("4789"), "The UDP port VXLAN is sent to and received on."),
            key("learning", "bool", Some("true"), "Learn remote MACs <MAC, VNI> -> outer source address from decapsulated frames."),
            key(
                "proxy",
                "bool",
                Some("false"),
                "ARP and ND suppression: answer broadcast ARP requests and multicast neighbour solicitations for addresses in [[neigh]] locally.",
            ),
            key("l2miss", "bool", Some("false"), "Emit an l2miss event for unknown unicast (xvtep monitor miss)."),
            key("l3miss", "bool", Some("false"), "With proxy: emit an l3miss event for an ARP request missing from [[neigh]]."),
            key("remote", "IP address", UNSET, "A point-to-point default remote for every VNI (BUM and unknown unicast)."),
            key("group", "IP multicast address", UNSET, "The multicast group of every VNI's BUM traffic; joined through the kernel (IGMP or MLD)."),
            key("ttl", "1..255 | \"inherit\"", Some("64"), "The outer IPv4 TTL or IPv6 hop limit; inherit: the inner TTL or hop limit (64 for non-IP frames)."),
            key(
                "tos",
                "0..255 | \"inherit\"",
                Some("0"),
                "The outer IPv4 TOS or IPv6 traffic class; inherit: the inner TOS or traffic class (0 for non-IP). Either way the ECN field follows \
                 RFC 6040 as the kernel's: copied from the inner frame on encap (CE sent as ECT(0)); on decap an outer CE \
                 marks the inner frame CE, and is dropped (ecn_ce_not_ect) over an inner frame that is not ECN-capable.",
            ),
            key("df", "\"unset\" | \"set\" | \"inherit\"", Some("\"unset\""), "The outer DF bit: clear, set, or copied from an inner IPv4 header."),
            key("udpcsum", "bool", Some("true"), "IPv4 underlay: fill in the outer UDP checksum."),
            key("udp6zerocsumtx", "bool", Some("false"), "IPv6 underlay: send a zero outer UDP checksum (RFC 6935) instead of computing it."),
            key("udp6zerocsumrx", "bool", Some("false"), "IPv6 underlay: accept VXLAN with a zero UDP checksum (otherwise dropped as udp6_zero_checksum)."),
            key("flowlabel", "0..1048575 | \"inherit\"", Some("0"), "IPv6 underlay: the outer flow label; inherit: the inner IPv6 flow label (0 for other frames)."),
            key("srcport", "[low, high]", Some("[32768, 60999]"), "The range of outer UDP source ports, picked by a hash of the inner flow."),
            key("mtu", "68..65535", Some("the MTU of dev"), "The underlay MTU; frames that do not fit with 50 (IPv4) or 70 (IPv6) bytes of VXLAN overhead are dropped and counted."),
            key("mac", "MAC", Some("the MAC of dev"), "Our underlay MAC (for replay; the daemon reads it from dev)."),
            key(
                "reserved_bits",
                "integer or \"0x...\" string",
                Some("0"),
                "VXLAN header bits to accept besides the I flag and the VNI (64-bit, network order, as the kernel's reserved_bits).",
            ),
            key("allowed_peers", "[IP address, ...]", Some("[] (any)"), "Accept VXLAN only from these outer source addresses."),
        ],
    },
    TableDoc {
        name: "vlan",
        array: true,
        doc: "One VID <-> VNI mapping of vxlan0 (`bridge vlan add dev vxlan0 vid N tunnel_info id VNI`); the map is one-to-one.",
        keys: &[
            key("vid", "1..4094", None, "The VLAN ID."),
            key("vni", "1..16777215", None, "The VXLAN network identifier."),
            key("group", "IP multicast address", UNSET, "This VNI's own multicast group for BUM traffic, instead of tunnel.group."),
        ],
    },
    TableDoc {
        name: "port",
        array: true,
        doc: "A local port: a veth or tap of a container or VM, or an internal port (the host's own interface on the overlay).",
        keys: &[
            key("name", "interface", None, "The interface name (1 to 15 bytes; not vxlan0 nor tunnel.dev)."),
            key("vlans", "[{ vid, pvid, untagged }, ...]", Some("[]"), "VLAN membership (see port.vlans)."),
            key("hairpin", "bool", Some("false"), "Frames may leave by the port they came in on."),
            key("learning", "bool", Some("true"), "Learn source MACs on this port."),
            key("flood", "bool", Some("true"), "Unknown unicast is flooded to this port (broadcast and multicast always are)."),
            key("mtu", "68..65535", Some("1500"), "Frames longer than this plus the L2 header are not sent out of the port."),
            key(
                "io",
                "\"auto\" | \"afxdp\" | \"vnet\"",
                Some("\"auto\""),
                "How frames reach the workers: AF_XDP, or a virtio-net-header channel that keeps the container's offloads; auto: vnet on veth and tap.",
            ),
            key("internal", "bool", Some("false"), "xvtep creates this interface at start (a veth pair) and removes it at stop."),
            key(
                "address",
                "[\"IPv4/len\" | \"IPv6/len\", ...]",
                Some("[]"),
                "Internal ports only: the host's addresses on it (IPv6 is turned on for the interface if one is IPv6).",
            ),
            key("mac", "MAC", Some("one the kernel picks"), "Internal ports only: its MAC, permanent in the FDB."),
            key(
                "kernel_bridge",
                "bool",
                Some("false"),
                "Internal ports only ([kernel] mode writes it): the host's side is the existing kernel bridge of this name; \
                 frames to it reach the host's stack as received on the bridge.",
            ),
        ],
    },
    TableDoc {
        name: "port.vlans",
        array: true,
        doc: "One VLAN membership of a port, as an inline table in its vlans list.",
        keys: &[
            key("vid", "1..4094", None, "The VLAN ID."),
            key("pvid", "bool", Some("false"), "Untagged frames received on the port belong to this VLAN (one per port)."),
            key("untagged", "bool", Some("false"), "Frames of this VLAN leave the port without a tag."),
        ],
    },
    TableDoc {
        name: "fdb",
        array: true,
        doc: "A static FDB entry. The all-zeros MAC repeated with several dst is a flood list (head-end replication).",
        keys: &[
            key("mac", "MAC", None, "A unicast MAC, or 00:00:00:00:00:00 for a flood-list entry."),
            key("vni", "1..16777215", UNSET, "The VNI the entry belongs to (one of vni and vid)."),
            key("vid", "1..4094", UNSET, "The VLAN, for a VLAN that has no VNI (one of vni and vid)."),
            key("port", "port name", UNSET, "The local port the MAC is behind (one of port and dst)."),
            key("dst", "IP address", UNSET, "The remote VTEP the MAC is behind (one of port and dst)."),
            key("dst_port", "port", Some("tunnel.dstport"), "With dst: the remote's UDP port."),
            key("remote_vni", "1..16777215", Some("vni"), "With dst: the VNI sent to the remote."),
            key("permanent", "bool", Some("false"), "A permanent entry; else static (neither ages, neither is moved by learning)."),
            key("extern_learn", "bool", Some("false"), "With dst: installed by a control plane; never ages, but learning may move it."),
        ],
    },
    TableDoc {
        name: "neigh",
        array: true,
        doc: "A neighbour ARP and ND suppression answer for (tunnel.proxy): broadcast ARP requests and multicast \
              neighbour solicitations for it are answered locally (RFC 9161).",
        keys: &[
            key("vni", "1..16777215", None, "The VNI it lives in."),
            key("ip", "IPv4 or IPv6 address", None, "Its address."),
            key("mac", "MAC", None, "Its MAC."),
        ],
    },
    TableDoc {
        name: "nexthop",
        array: true,
        doc: "An underlay next hop's MAC, for replay (the daemon resolves next hops from the kernel).",
        keys: &[
            key("ip", "IP address", None, "The remote VTEP or gateway address."),
            key("mac", "MAC", None, "Its MAC."),
        ],
    },
    TableDoc {
        name: "kernel",
        array: false,
        doc: "Follow the kernel instead: the configuration is read from kernel bridges holding one vxlan device \
              each, and followed over netlink while xvtep runs (with [switch] and [worker] only; no other table).",
        keys: &[key("bridges", "[\"br2\", ...]", None, "The bridges to take over.")],
    },
];

/// The table named `name`, if there is one.
pub fn table(name: &str) -> Option<&'static TableDoc> {
    TABLES.iter().find(|t| t.name == name)
}

/// The key a probe puts where a table's keys go, to make the parser list the ones it accepts.
pub const PROBE_KEY: &str = "xvtep_probe_key";

/// The keys a parser accepts, read off its error for [`PROBE_KEY`] (serde's "unknown field
/// `xvtep_probe_key`, expected one of `a`, `b`"): the parser's own list, so a test comparing
/// it with [`TABLES`] cannot drift from the structs. `None` if the error is another one.
pub fn keys_in_unknown_field_error(message: &str) -> Option<Vec<String>> {
    let (_, expected) = message.split_once(&format!("unknown field `{PROBE_KEY}`, expected"))?;
    Some(expected.split('`').skip(1).step_by(2).map(str::to_string).collect())
}

/// Keys of the documented table `name`, sorted.
pub fn documented_keys(name: &str) -> Vec<String> {
    let mut keys: Vec<String> =
        table(name).map_or(Vec::new(), |t| t.keys.iter().map(|k| k.key.to_string()).collect());
    keys.sort();
    keys
}
