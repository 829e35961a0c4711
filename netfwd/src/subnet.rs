//! Subnets, on the `ipnet` crate: the strict parse of a subnet the user
//! writes (no host bits: a subnet, not an interface's address), and the two
//! questions the crate leaves to its users.

use std::{
    fmt::Display,
    net::{Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use ipnet::{Ipv4Net, Ipv6Net};

/// "a.b.c.d/len" (or an IPv6 prefix) with no host bits set.
pub fn parse<N: Subnet>(s: &str) -> Result<N, String> {
    let net: N = s
        .parse()
        .map_err(|_| format!("{s:?} is not of the form {}", N::FORM))?;
    if net != net.trunc() {
        return Err(format!(
            "{net} has host bits set (did you mean {}?)",
            net.trunc()
        ));
    }
    Ok(net)
}

pub trait Subnet: FromStr + Display + PartialEq + Sized {
    type Addr: Copy;
    /// How one is written, for errors.
    const FORM: &str;

    /// The address it is written with (an interface's, for `a.b.c.d/len`).
    fn addr(&self) -> Self::Addr;

    fn prefix_len(&self) -> u8;

    /// Inside, and none of the addresses no host may hold (IPv4's network
    /// and broadcast addresses, IPv6's subnet-router anycast): an address
    /// an endpoint or a gateway may hold.
    fn is_host(&self, ip: Self::Addr) -> bool;

    /// Either holds the other (subnets never overlap in part).
    fn overlaps(&self, other: &Self) -> bool;

    /// With its host bits cleared.
    fn trunc(&self) -> Self;
}

impl Subnet for Ipv4Net {
    type Addr = Ipv4Addr;
    const FORM: &str = "a.b.c.d/len (len at most 32)";

    fn addr(&self) -> Ipv4Addr {
        Ipv4Net::addr(self)
    }

    fn prefix_len(&self) -> u8 {
        Ipv4Net::prefix_len(self)
    }

    fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(&ip) && ip != self.network() && ip != self.broadcast()
    }

    fn overlaps(&self, other: &Self) -> bool {
        self.contains(other) || other.contains(self)
    }

    fn trunc(&self) -> Self {
        Ipv4Net::trunc(self)
    }
}

impl Subnet for Ipv6Net {
    type Addr = Ipv6Addr;
    const FORM: &str = "an IPv6 prefix such as 2001:db8:1::/64 (len at most 128)";

    fn addr(&self) -> Ipv6Addr {
        Ipv6Net::addr(self)
    }

    fn prefix_len(&self) -> u8 {
        Ipv6Net::prefix_len(self)
    }

    fn is_host(&self, ip: Ipv6Addr) -> bool {
        self.contains(&ip) && ip != self.network()
    }

    fn overlaps(&self, other: &Self) -> bool {
        self.contains(other) || other.contains(self)
    }

    fn trunc(&self) -> Self {
        Ipv6Net::trunc(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_host_bits() {
        let net: Ipv4Net = parse("192.168.28.0/24").unwrap();
        assert!(net.is_host(Ipv4Addr::new(192, 168, 28, 5)));
        assert!(!net.is_host(Ipv4Addr::new(192, 168, 28, 255)));
        assert!(!net.is_host(Ipv4Addr::new(192, 168, 28, 0)));
        assert!(!net.is_host(Ipv4Addr::new(192, 168, 29, 1)));
        let err = parse::<Ipv4Net>("192.168.28.1/24").unwrap_err();
        assert!(err.contains("did you mean 192.168.28.0/24"), "{err}");
        assert!(parse::<Ipv4Net>("10.0.0.0/33").is_err());
        assert!(parse::<Ipv4Net>("10.0.0.0").is_err());
        assert!(parse::<Ipv4Net>("2001:db8::/64").is_err());
    }

    #[test]
    fn ipv6_prefixes_parse_strictly() {
        let net: Ipv6Net = parse("2001:db8:1::/64").unwrap();
        assert!(net.is_host("2001:db8:1::2".parse().unwrap()));
        assert!(
            !net.is_host("2001:db8:1::".parse().unwrap()),
            "subnet-router anycast"
        );
        assert!(!net.is_host("2001:db8:2::2".parse().unwrap()));
        let err = parse::<Ipv6Net>("2001:db8:1::5/64").unwrap_err();
        assert!(err.contains("did you mean 2001:db8:1::/64"), "{err}");
        assert!(parse::<Ipv6Net>("10.0.0.0/24").is_err());
    }

    #[test]
    fn overlap_is_symmetric() {
        let a: Ipv4Net = parse("172.18.0.0/16").unwrap();
        let b: Ipv4Net = parse("172.18.5.0/24").unwrap();
        let c: Ipv4Net = parse("172.19.0.0/16").unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }
}
