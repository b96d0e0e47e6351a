//! The MTUs of the bench's topology: the underlay's, and the ports' and containers' (the
//! tenants').
//!
//! An MTU counts a frame's IP packet, not its Ethernet header: a frame of `size` bytes (the
//! bench's inner frames carry no VLAN tag) needs a tenant MTU of `size - 14`, and its VXLAN
//! packet an underlay MTU of `size - 14 + 50`. That is the rule the daemon drops by (an inner
//! packet plus 50 above the underlay MTU) and above which the kernel's vxlan would fragment
//! the outer packet; with it, an 8950-byte frame crosses an underlay of 9000, as a tenant MTU
//! of 8936 does over a fabric of 9000.
//!
//! For TCP the tenants get 50 bytes less than the underlay, as on any VXLAN network over IPv4.
//! For packet rates every interface has the underlay's MTU, as in every earlier run (1500
//! everywhere): the frames the generator sends fit either way, and the bare forwarder, which
//! sends a VXLAN frame out of the port unchanged in decap, needs it.

use std::fmt;

/// VXLAN over IPv4: outer Ethernet 14, IPv4 20, UDP 8, VXLAN 8.
pub const VXLAN4: u32 = 50;
/// The Ethernet header of the bench's frames, which no MTU counts.
const ETHERNET: usize = 14;
/// The smallest frame the bench sends: Ethernet's minimum without the FCS.
pub const SMALLEST: usize = 60;
/// The largest inner frame: a 9216-byte jumbo frame on the underlay, less its encapsulation.
pub const LARGEST: usize = 9216 - VXLAN4 as usize;
/// The underlay MTU of every earlier run, and what the bench uses unless a size needs more.
pub const USUAL: u32 = 1500;
/// The smallest underlay MTU the bench accepts: the tenants' then is IPv4's minimum, 68.
const LEAST: u32 = 68 + VXLAN4;
/// A veth's largest MTU.
const MOST: u32 = 65535;

/// The MTUs of one topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mtus {
    pub underlay: u32,
    /// The ports' and the containers'.
    pub tenant: u32,
}

impl Mtus {
    /// For packet rates: every interface at `underlay`.
    pub fn packet_rates(underlay: u32) -> Mtus {
        Mtus { underlay, tenant: underlay }
    }

    /// For TCP: the tenants [`VXLAN4`] bytes below `underlay`.
    pub fn tcp(underlay: u32) -> Mtus {
        Mtus { underlay, tenant: underlay - VXLAN4 }
    }
}

impl fmt::Display for Mtus {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.tenant == self.underlay {
            write!(f, "MTU {} (underlay and ports)", self.underlay)
        } else {
            write!(f, "underlay MTU {}, ports {}", self.underlay, self.tenant)
        }
    }
}

/// The underlay MTU a frame of `size` bytes needs.
pub fn underlay_needed(size: usize) -> u32 {
    (size.max(SMALLEST) - ETHERNET) as u32 + VXLAN4
}

/// Checks `--underlay-mtu` on its own: a veth takes it, and tenants 50 bytes below get an
/// IPv4 MTU.
pub fn check_given(given: u32) -> Result<u32, String> {
    if !(LEAST..=MOST).contains(&given) {
        return Err(format!(
            "--underlay-mtu {given}: use {LEAST} to {MOST} (the containers of the TCP measurements get \
             {VXLAN4} less)"
        ));
    }
    Ok(given)
}

/// The MTUs the packet rates of `size` are measured with ([`Mtus::packet_rates`]): `given`
/// (`--underlay-mtu`) if the user gave one, refused if the size does not fit it; else the
/// usual 1500, raised to what the size needs.
pub fn for_size(size: usize, given: Option<u32>) -> Result<Mtus, String> {
    if !(SMALLEST..=LARGEST).contains(&size) {
        return Err(format!(
            "--sizes: {size} B is not a frame the bench sends: sizes are inner frames of {SMALLEST} to \
             {LARGEST} bytes without FCS ({LARGEST} + {VXLAN4} bytes of VXLAN make a 9216-byte jumbo frame)"
        ));
    }
    let need = underlay_needed(size);
    match given {
        Some(given) => {
            check_given(given)?;
            if given < need {
                return Err(format!(
                    "--underlay-mtu {given} is too small for {size} B frames: they need an underlay MTU \
                     of at least {need} ({size} - {ETHERNET} bytes of Ethernet header + {VXLAN4} of VXLAN \
                     over IPv4) and ports of {}; pass --underlay-mtu {need} or more, or leave it out and \
                     the bench raises the MTUs for the sizes that need it",
                    need - VXLAN4
                ));
            }
            Ok(Mtus::packet_rates(given))
        }
        None => Ok(Mtus::packet_rates(USUAL.max(need))),
    }
}

/// The sizes grouped by the MTUs they are measured with, in the order first given: one
/// topology per group.
pub fn groups(sizes: &[usize], given: Option<u32>) -> Result<Vec<(Mtus, Vec<usize>)>, String> {
    let mut out: Vec<(Mtus, Vec<usize>)> = Vec::new();
    for &size in sizes {
        let mtus = for_size(size, given)?;
        match out.iter_mut().find(|(m, _)| *m == mtus) {
            Some((_, group)) => group.push(size),
            None => out.push((mtus, vec![size])),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_size_needs_its_ip_packet_plus_the_encapsulation() {
        assert_eq!(underlay_needed(64), 100);
        assert_eq!(underlay_needed(1464), 1500, "the largest frame of a 1500 underlay");
        assert_eq!(underlay_needed(1514), 1550, "a full 1500 tenant frame");
        assert_eq!(underlay_needed(8950), 8986);
        assert_eq!(underlay_needed(8964), 9000, "a full 8950 tenant frame over 9000");
        assert_eq!(underlay_needed(LARGEST), 9202);
        assert_eq!(LARGEST + VXLAN4 as usize, 9216);
    }

    #[test]
    fn the_bench_raises_the_mtu_only_where_a_size_needs_it() {
        assert_eq!(for_size(64, None), Ok(Mtus::packet_rates(1500)));
        assert_eq!(for_size(1450, None), Ok(Mtus::packet_rates(1500)));
        assert_eq!(for_size(1465, None), Ok(Mtus::packet_rates(1501)));
        let jumbo = for_size(8950, None).unwrap();
        assert_eq!((jumbo.underlay, jumbo.tenant), (8986, 8986));
        assert_eq!(jumbo.to_string(), "MTU 8986 (underlay and ports)");
        assert_eq!(Mtus::tcp(9000).to_string(), "underlay MTU 9000, ports 8950");
        assert_eq!(
            for_size(64, Some(9000)),
            Ok(Mtus::packet_rates(9000)),
            "a given MTU holds for every size"
        );
        assert_eq!(for_size(8964, Some(9000)), Ok(Mtus::packet_rates(9000)));
    }

    #[test]
    fn a_given_mtu_too_small_for_a_size_is_refused_by_name() {
        let e = for_size(8965, Some(9000)).unwrap_err();
        assert!(e.contains("--underlay-mtu 9000 is too small for 8965 B frames"), "{e}");
        assert!(e.contains("at least 9001"), "{e}");
        let e = for_size(1450, Some(1400)).unwrap_err();
        assert!(e.contains("1450 B") && e.contains("1486"), "{e}");
        for bad in [0, 59, LARGEST + 1, 9216] {
            let e = for_size(bad, None).unwrap_err();
            assert!(e.contains(&format!("{bad} B")) && e.contains("9166"), "{e}");
        }
        assert!(
            for_size(64, Some(100)).unwrap_err().contains("--underlay-mtu 100: use 118 to 65535"),
            "{:?}",
            for_size(64, Some(100))
        );
        assert!(check_given(70000).is_err());
        assert_eq!(for_size(LARGEST, None), Ok(Mtus::packet_rates(9202)));
    }

    #[test]
    fn sizes_that_share_their_mtus_share_a_topology() {
        let g = groups(&[64, 8950, 1450, 9000, 8950], None).unwrap();
        assert_eq!(
            g,
            vec![
                (Mtus::packet_rates(1500), vec![64, 1450]),
                (Mtus::packet_rates(8986), vec![8950, 8950]),
                (Mtus::packet_rates(9036), vec![9000]),
            ]
        );
        assert_eq!(
            groups(&[64, 1450, 8950], Some(9216)).unwrap(),
            vec![(Mtus::packet_rates(9216), vec![64, 1450, 8950])]
        );
        assert!(groups(&[64, 8950], Some(1500)).unwrap_err().contains("8950 B"));
    }
}
