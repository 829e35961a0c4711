//! Subnets, on the `ipnet` crate: the strict parse of a subnet the user
//! writes (no host bits: a subnet, not an interface's address), and the two
//! questions the crate leaves to its users.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// "a.b.c.d/len" with no host bits set.
pub fn parse(s: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = s
        .parse()
        .map_err(|_| format!("{s:?} is not of the form a.b.c.d/len (len at most 32)"))?;
    if net != net.trunc() {
        return Err(format!(
            "{net} has host bits set (did you mean {}?)",
            net.trunc()
        ));
    }
    Ok(net)
}

pub trait Subnet {
    /// Inside, and neither the network nor the broadcast address: an address
    /// an endpoint or a gateway may hold.
    fn is_host(&self, ip: Ipv4Addr) -> bool;

    /// Either holds the other (subnets never overlap in part).
    fn overlaps(&self, other: &Self) -> bool;
}

impl Subnet for Ipv4Net {
    fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(&ip) && ip != self.network() && ip != self.broadcast()
    }

    fn overlaps(&self, other: &Self) -> bool {
        self.contains(other) || other.contains(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_host_bits() {
        let net = parse("192.168.28.0/24").unwrap();
        assert!(net.is_host(Ipv4Addr::new(192, 168, 28, 5)));
        assert!(!net.is_host(Ipv4Addr::new(192, 168, 28, 255)));
        assert!(!net.is_host(Ipv4Addr::new(192, 168, 28, 0)));
        assert!(!net.is_host(Ipv4Addr::new(192, 168, 29, 1)));
        let err = parse("192.168.28.1/24").unwrap_err();
        assert!(err.contains("did you mean 192.168.28.0/24"), "{err}");
        assert!(parse("10.0.0.0/33").is_err());
        assert!(parse("10.0.0.0").is_err());
    }

    #[test]
    fn overlap_is_symmetric() {
        let a = parse("172.18.0.0/16").unwrap();
        let b = parse("172.18.5.0/24").unwrap();
        let c = parse("172.19.0.0/16").unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }
}
