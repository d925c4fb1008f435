//! IPv4 prefixes: parsing the VIP and checking it against the VPC's CIDR blocks.

use std::fmt;
use std::net::Ipv4Addr;
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
}
