//! IPv4 subnets: parsing "a.b.c.d/len" and the address arithmetic the config
//! and allocation need.

use std::{fmt, net::Ipv4Addr, str::FromStr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Net {
    /// A subnet whose address has no host bits set.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Result<Self, String> {
        if prefix_len > 32 {
            return Err(format!("prefix length {prefix_len} is over 32"));
        }
        let net = Self { addr, prefix_len };
        if net.network() != addr {
            return Err(format!(
                "{addr}/{prefix_len} has host bits set (did you mean {}/{prefix_len}?)",
                net.network()
            ));
        }
        Ok(net)
    }

    /// The subnet `addr/prefix_len` belongs to (an interface address's
    /// connected subnet).
    pub fn containing(addr: Ipv4Addr, prefix_len: u8) -> Result<Self, String> {
        if prefix_len > 32 {
            return Err(format!("prefix length {prefix_len} is over 32"));
        }
        Self::new(Self { addr, prefix_len }.network(), prefix_len)
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0)
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// True if `ip` is inside and is neither the network nor the broadcast address.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && ip != self.network() && ip != self.broadcast()
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }

    /// Offset of `ip` from the network address (its host part).
    pub fn host_offset(&self, ip: Ipv4Addr) -> u32 {
        u32::from(ip) & !self.mask()
    }

    /// Host addresses in order, first to last.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.network()) + 1;
        let last = u32::from(self.broadcast());
        (first..last).map(Ipv4Addr::from)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl TryFrom<String> for Ipv4Net {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Ipv4Net> for String {
    fn from(net: Ipv4Net) -> String {
        net.to_string()
    }
}

impl FromStr for Ipv4Net {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not of the form a.b.c.d/len"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
        let len: u8 = len
            .parse()
            .map_err(|_| format!("{len:?} is not a prefix length"))?;
        Self::new(addr, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_host_bits() {
        let net: Ipv4Net = "192.168.28.0/24".parse().unwrap();
        assert_eq!(net.broadcast(), Ipv4Addr::new(192, 168, 28, 255));
        assert!(net.is_host(Ipv4Addr::new(192, 168, 28, 5)));
        assert!(!net.is_host(Ipv4Addr::new(192, 168, 28, 255)));
        assert!(!net.contains(Ipv4Addr::new(192, 168, 29, 1)));
        let err = "192.168.28.1/24".parse::<Ipv4Net>().unwrap_err();
        assert!(err.contains("did you mean 192.168.28.0/24"), "{err}");
        assert!("10.0.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("10.0.0.0".parse::<Ipv4Net>().is_err());
    }

    #[test]
    fn overlap_is_symmetric() {
        let a: Ipv4Net = "172.18.0.0/16".parse().unwrap();
        let b: Ipv4Net = "172.18.5.0/24".parse().unwrap();
        let c: Ipv4Net = "172.19.0.0/16".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }

    #[test]
    fn host_offset_and_hosts() {
        let net: Ipv4Net = "10.1.0.0/30".parse().unwrap();
        let hosts: Vec<_> = net.hosts().collect();
        assert_eq!(
            hosts,
            [Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 1, 0, 2)]
        );
        assert_eq!(net.host_offset(Ipv4Addr::new(10, 1, 0, 2)), 2);
    }
}
