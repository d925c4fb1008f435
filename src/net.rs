//! IP prefixes: parsing the VIP and checking it against the VPC's CIDR blocks.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 network in CIDR notation; the address is kept as given (host bits allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    /// The network mask as a u32 (prefix 0 → 0).
    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// True when `ip` lies inside this network.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) & self.mask()) == (u32::from(self.addr) & self.mask())
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Why a text is not an IPv4 network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetParseError {
    #[error("`{0}` is not an IPv4 address (expected a.b.c.d)")]
    Address(String),
    #[error("`{0}` has an invalid prefix length (expected 0..=32)")]
    Prefix(String),
}

impl FromStr for Ipv4Net {
    type Err = NetParseError;

    /// `a.b.c.d` (taken as /32) or `a.b.c.d/n`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                // `u8::from_str` accepts a leading '+'; a prefix is digits only.
                if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(NetParseError::Prefix(s.to_owned()));
                }
                let n: u8 = p.parse().map_err(|_| NetParseError::Prefix(s.to_owned()))?;
                if n > 32 {
                    return Err(NetParseError::Prefix(s.to_owned()));
                }
                (a, n)
            }
            None => (s, 32),
        };
        let addr = Ipv4Addr::from_str(addr).map_err(|_| NetParseError::Address(s.to_owned()))?;
        Ok(Ipv4Net { addr, prefix })
    }
}

/// An IPv6 network in CIDR notation; the address is kept as given (host bits allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Net {
    pub addr: Ipv6Addr,
    pub prefix: u8,
}

impl Ipv6Net {
    fn mask(self) -> u128 {
        if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix))
        }
    }

    /// True when `ip` lies inside this network.
    pub fn contains(self, ip: Ipv6Addr) -> bool {
        (u128::from(ip) & self.mask()) == (u128::from(self.addr) & self.mask())
    }
}

impl fmt::Display for Ipv6Net {
    /// The address in RFC 5952 form (lowercase, longest zero run compressed), as EC2 writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv6Net {
    type Err = NetParseError;

    /// `x:y::z` (taken as /128) or `x:y::z/n`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(NetParseError::Prefix(s.to_owned()));
                }
                let n: u8 = p.parse().map_err(|_| NetParseError::Prefix(s.to_owned()))?;
                if n > 128 || (p.len() > 1 && p.starts_with('0')) {
                    return Err(NetParseError::Prefix(s.to_owned()));
                }
                (a, n)
            }
            None => (s, 128),
        };
        // Zone ids (`%eth0`) and IPv4-in-brackets forms are not route destinations.
        let addr = Ipv6Addr::from_str(addr).map_err(|_| NetParseError::Address(s.to_owned()))?;
        Ok(Ipv6Net { addr, prefix })
    }
}

/// Either family: the VIP of `mode=route` may be IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpNet {
    V4(Ipv4Net),
    V6(Ipv6Net),
}

impl IpNet {
    pub fn addr(self) -> IpAddr {
        match self {
            IpNet::V4(n) => IpAddr::V4(n.addr),
            IpNet::V6(n) => IpAddr::V6(n.addr),
        }
    }

    pub fn prefix(self) -> u8 {
        match self {
            IpNet::V4(n) => n.prefix,
            IpNet::V6(n) => n.prefix,
        }
    }

    /// The prefix of a single address in this family (32 or 128).
    pub fn host_prefix(self) -> u8 {
        match self {
            IpNet::V4(_) => 32,
            IpNet::V6(_) => 128,
        }
    }

    pub fn is_v6(self) -> bool {
        matches!(self, IpNet::V6(_))
    }

    /// True when `ip` (of the same family) lies inside this network.
    pub fn contains(self, ip: IpAddr) -> bool {
        match (self, ip) {
            (IpNet::V4(n), IpAddr::V4(a)) => n.contains(a),
            (IpNet::V6(n), IpAddr::V6(a)) => n.contains(a),
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpNet::V4(n) => n.fmt(f),
            IpNet::V6(n) => n.fmt(f),
        }
    }
}

impl From<Ipv4Net> for IpNet {
    fn from(n: Ipv4Net) -> Self {
        IpNet::V4(n)
    }
}

impl FromStr for IpNet {
    type Err = NetParseError;

    /// IPv6 when the text has a `:`, else IPv4.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            s.parse().map(IpNet::V6)
        } else {
            s.parse().map(IpNet::V4)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("valid test network")
    }

    #[test]
    fn parses_plain_address_as_host_route() {
        assert_eq!(
            net("192.168.240.10"),
            Ipv4Net {
                addr: Ipv4Addr::new(192, 168, 240, 10),
                prefix: 32
            }
        );
        assert_eq!(net("192.168.240.10/32").to_string(), "192.168.240.10/32");
        assert_eq!(net("10.0.0.0/8").prefix, 8);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "1.2.3.4/",
            "1.2.3.4/33",
            "1.2.3.4/+3",
            "1.2.3.4/032",
            "a.b.c.d",
            " 1.2.3.4",
            "1.2.3.4/3 2",
            "::1",
        ] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn containment_at_the_edges() {
        let vpc = net("10.20.0.0/16");
        assert!(vpc.contains(Ipv4Addr::new(10, 20, 0, 0)));
        assert!(vpc.contains(Ipv4Addr::new(10, 20, 255, 255)));
        assert!(!vpc.contains(Ipv4Addr::new(10, 21, 0, 0)));
        assert!(!vpc.contains(Ipv4Addr::new(10, 19, 255, 255)));
        assert!(net("0.0.0.0/0").contains(Ipv4Addr::new(8, 8, 8, 8)));
        assert!(net("192.168.1.7/32").contains(Ipv4Addr::new(192, 168, 1, 7)));
        assert!(!net("192.168.1.7/32").contains(Ipv4Addr::new(192, 168, 1, 8)));
        // Host bits in the CIDR text do not change the network.
        assert!(net("10.20.3.4/16").contains(Ipv4Addr::new(10, 20, 9, 9)));
    }

    #[test]
    fn ipv6_networks() {
        let n: Ipv6Net = "fd00:ec2::/56".parse().expect("v6");
        assert_eq!(n.prefix, 56);
        assert!(n.contains("fd00:ec2:0:ff::1".parse().expect("addr")));
        assert!(!n.contains("fd00:ec2:0:100::1".parse().expect("addr")));
        let host: Ipv6Net = "FD00:0:0:0:0:0:0:0A".parse().expect("v6");
        assert_eq!(host.prefix, 128);
        // EC2's spelling: lowercase, zeros compressed.
        assert_eq!(host.to_string(), "fd00::a/128");
        for bad in [
            "fd00::/129",
            "fd00::/",
            "fd00::/+1",
            "fd00::/064",
            "fd00:::1",
            "fe80::1%eth0",
            "1.2.3.4",
            "",
        ] {
            assert!(bad.parse::<Ipv6Net>().is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn either_family() {
        let v4: IpNet = "192.168.240.10".parse().expect("v4");
        assert_eq!((v4.prefix(), v4.host_prefix(), v4.is_v6()), (32, 32, false));
        let v6: IpNet = "fd12:3456::10".parse().expect("v6");
        assert_eq!(
            (v6.prefix(), v6.host_prefix(), v6.is_v6()),
            (128, 128, true)
        );
        assert_eq!(v6.to_string(), "fd12:3456::10/128");
        // Families never contain each other.
        let all4: IpNet = "0.0.0.0/0".parse().expect("v4");
        assert!(!all4.contains(v6.addr()));
        let all6: IpNet = "::/0".parse().expect("v6");
        assert!(!all6.contains(v4.addr()));
        assert!(all6.contains(v6.addr()));
    }
}
