use std::fmt;
use std::str::FromStr;

/// An IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const ZERO: MacAddr = MacAddr([0; 6]);
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// Reads a MAC from the first six bytes of `b` (the caller has checked the length).
    #[inline]
    pub fn from_bytes(b: &[u8]) -> MacAddr {
        MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    /// Group bit set: multicast or broadcast.
    #[inline]
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    #[inline]
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    #[inline]
    pub fn is_broadcast(&self) -> bool {
        self.0 == [0xff; 6]
    }

    /// 01:80:c2:00:00:00 through 01:80:c2:00:00:0f: IEEE 802.1D link-local groups (STP, LACP,
    /// LLDP, 802.1X, pause). A bridge never forwards these.
    #[inline]
    pub fn is_link_local(&self) -> bool {
        self.0[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && self.0[5] & 0xf0 == 0
    }

    /// The address as the low 48 bits of a u64, for compact keys.
    #[inline]
    pub fn to_u64(self) -> u64 {
        let b = self.0;
        u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    #[inline]
    pub fn from_u64(v: u64) -> MacAddr {
        let b = v.to_be_bytes();
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    /// The Ethernet address an IPv4 multicast group maps to (RFC 1112 §6.4).
    pub fn ipv4_multicast(group: std::net::Ipv4Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
    }

    /// The Ethernet address an IPv6 multicast group maps to (RFC 2464 section 7).
    pub fn ipv6_multicast(group: std::net::Ipv6Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    /// The Ethernet address of multicast group `group`, IPv4 or IPv6.
    pub fn ip_multicast(group: std::net::IpAddr) -> MacAddr {
        match group {
            std::net::IpAddr::V4(g) => Self::ipv4_multicast(g),
            std::net::IpAddr::V6(g) => Self::ipv6_multicast(g),
        }
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address '{0}': expected six hex bytes separated by ':', like 02:00:00:00:00:0a")]
pub struct MacParseError(pub String);

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let m: MacAddr = "02:00:00:00:00:0A".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0, 0, 0, 0x0a]);
        assert_eq!(m.to_string(), "02:00:00:00:00:0a");
        assert_eq!(MacAddr::from_u64(m.to_u64()), m);
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "02:00:00:00:00", "02:00:00:00:00:00:00", "02:00:00:00:00:0g", "002:0:0:0:0:0"] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn classifies() {
        assert!("01:80:c2:00:00:0e".parse::<MacAddr>().unwrap().is_link_local());
        assert!(!"01:80:c2:00:00:10".parse::<MacAddr>().unwrap().is_link_local());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert_eq!(MacAddr::ipv4_multicast("239.129.1.1".parse().unwrap()).to_string(), "01:00:5e:01:01:01");
    }
}
