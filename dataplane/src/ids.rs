//! Small identifiers shared by every part of the switch.

use std::fmt;

/// A port of the switch: index 0 is the tunnel port ("vxlan0", reached through the underlay
/// device); 1.. are the local ports in configuration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

impl PortId {
    pub const TUNNEL: PortId = PortId(0);

    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }

    #[inline]
    pub fn is_tunnel(self) -> bool {
        self == PortId::TUNNEL
    }
}

/// A bridging domain: what an FDB entry is keyed by besides its MAC. A VID mapped to a VNI is
/// keyed by the VNI; a VID with no VNI (switched locally only) by the VID. Packed in a u32 so
/// that hashing a key is cheap: bit 31 set marks a VID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(u32);

const VID_FLAG: u32 = 1 << 31;

impl Domain {
    #[inline]
    pub const fn vni(vni: u32) -> Domain {
        Domain(vni & 0x00ff_ffff)
    }

    #[inline]
    pub const fn vid(vid: u16) -> Domain {
        Domain(VID_FLAG | vid as u32)
    }

    /// The VNI, if this domain is carried by the tunnel.
    #[inline]
    pub fn as_vni(self) -> Option<u32> {
        (self.0 & VID_FLAG == 0).then_some(self.0)
    }

    /// The VID, if this domain is a VLAN without a VNI.
    #[inline]
    pub fn as_vid(self) -> Option<u16> {
        (self.0 & VID_FLAG != 0).then_some(self.0 as u16)
    }

    #[inline]
    pub fn raw(self) -> u32 {
        self.0
    }

    /// The inverse of [`Domain::raw`].
    #[inline]
    pub fn from_raw(raw: u32) -> Domain {
        Domain(raw)
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.as_vni(), self.as_vid()) {
            (Some(vni), _) => write!(f, "vni {vni}"),
            (_, Some(vid)) => write!(f, "vlan {vid}"),
            _ => unreachable!("a domain is a VNI or a VID"),
        }
    }
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The switch clock, in nanoseconds. Injected by the caller (wall clock in the daemon, capture
/// timestamps in replay, anything in tests) so that ageing is deterministic.
pub type Nanos = u64;

pub const NANOS_PER_SEC: Nanos = 1_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vni_and_vid_domains_never_collide() {
        assert_ne!(Domain::vni(5), Domain::vid(5));
        assert_eq!(Domain::vni(5).as_vni(), Some(5));
        assert_eq!(Domain::vid(5).as_vid(), Some(5));
        assert_eq!(Domain::vid(5).as_vni(), None);
        assert_eq!(Domain::vni(0xffffff).to_string(), "vni 16777215");
        assert_eq!(Domain::vid(4094).to_string(), "vlan 4094");
    }
}
