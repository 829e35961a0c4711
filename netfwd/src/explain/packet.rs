//! The packets `explain` runs through the datapath: a flow's first packet
//! and its answer, as Ethernet frames of IPv4 or IPv6 with correct
//! checksums, and the tuple read back from what a program made of them.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use netfwd_common::nat::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP};
use serde::Serialize;

/// The protocol of the packet asked about (`--proto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// A TCP SYN, answered by a SYN-ACK.
    Tcp,
    /// A UDP datagram, answered by one.
    Udp,
    /// An ICMP echo request (ICMPv6's over IPv6), answered by an echo reply.
    Icmp,
}

impl Proto {
    /// Its IP protocol number (next header) in `family`.
    fn number(self, family: Family) -> u8 {
        match (self, family) {
            (Proto::Tcp, _) => IPPROTO_TCP,
            (Proto::Udp, _) => IPPROTO_UDP,
            (Proto::Icmp, Family::V4) => IPPROTO_ICMP,
            (Proto::Icmp, Family::V6) => IPPROTO_ICMPV6,
        }
    }

    fn of(number: u8, family: Family) -> Option<Self> {
        [Proto::Tcp, Proto::Udp, Proto::Icmp]
            .into_iter()
            .find(|p| p.number(family) == number)
    }
}

/// A packet's addresses and ports; an ICMP echo's identifier is its source
/// port, its destination port 0 (as the NAT keys it). Both addresses are
/// of one family: a tuple with an IPv4 and an IPv6 address is framed as
/// IPv6, the IPv4 address mapped (`::ffff:a.b.c.d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Tuple {
    pub proto: Proto,
    pub source: SocketAddr,
    pub destination: SocketAddr,
}

/// Whether a frame is a flow's first packet or the answer to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    Request,
    Reply,
}

/// The IP version of a frame, and what differs by it: the IP header,
/// the EtherType, the echo's types and whether its checksum covers the
/// pseudo-header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn ether_type(self) -> [u8; 2] {
        match self {
            Family::V4 => ETH_P_IP,
            Family::V6 => ETH_P_IPV6,
        }
    }

    /// An echo request's ICMP type and its reply's.
    fn echo_types(self) -> (u8, u8) {
        match self {
            Family::V4 => (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY),
            Family::V6 => (ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY),
        }
    }
}

/// The sequence numbers of the SYN and of its SYN-ACK, which acknowledges it.
const SYN_SEQ: u32 = 1;
const SYN_ACK_SEQ: u32 = 1_000;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;
const ETH_P_IP: [u8; 2] = [0x08, 0x00];
const ETH_P_IPV6: [u8; 2] = [0x86, 0xdd];
const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
/// TTL and hop limit, as a host sends.
const HOP_LIMIT: u8 = 64;
const PAYLOAD: &[u8] = b"netfwd explain";

impl Tuple {
    /// The answer's tuple: source and destination swapped.
    pub fn reversed(&self) -> Self {
        Self {
            proto: self.proto,
            source: self.destination,
            destination: self.source,
        }
    }

    fn family(&self) -> Family {
        if self.source.is_ipv4() && self.destination.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    /// The frame of `leg` of this flow, from MAC `src_mac` to `dst_mac`.
    pub fn frame(&self, leg: Leg, dst_mac: [u8; 6], src_mac: [u8; 6]) -> Vec<u8> {
        let family = self.family();
        let number = self.proto.number(family);
        let (src, dst) = match family {
            Family::V4 => (self.source.ip(), self.destination.ip()),
            Family::V6 => (
                v6(self.source.ip()).into(),
                v6(self.destination.ip()).into(),
            ),
        };
        let mut l4 = match self.proto {
            Proto::Tcp => {
                let (seq, ack, flags) = match leg {
                    Leg::Request => (SYN_SEQ, 0, TCP_SYN),
                    Leg::Reply => (SYN_ACK_SEQ, SYN_SEQ + 1, TCP_SYN | TCP_ACK),
                };
                let mut t = self.ports();
                t.extend_from_slice(&seq.to_be_bytes());
                t.extend_from_slice(&ack.to_be_bytes());
                t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
                t
            }
            Proto::Udp => {
                let mut u = self.ports();
                u.extend_from_slice(&((8 + PAYLOAD.len()) as u16).to_be_bytes());
                u.extend_from_slice(&[0, 0]);
                u.extend_from_slice(PAYLOAD);
                u
            }
            Proto::Icmp => {
                let (request, reply) = family.echo_types();
                let (kind, id) = match leg {
                    Leg::Request => (request, self.source.port()),
                    Leg::Reply => (reply, self.destination.port()),
                };
                let mut i = vec![kind, 0, 0, 0];
                i.extend_from_slice(&id.to_be_bytes());
                i.extend_from_slice(&1u16.to_be_bytes());
                i.extend_from_slice(PAYLOAD);
                i
            }
        };
        let at = match self.proto {
            Proto::Tcp => 16,
            Proto::Udp => 6,
            Proto::Icmp => 2,
        };
        // ICMP's checksum covers its message alone, ICMPv6's the
        // pseudo-header too, as TCP's and UDP's do.
        let pseudo = match number {
            IPPROTO_ICMP => 0,
            _ => pseudo_sum(src, dst, number, l4.len()),
        };
        let sum = checksum(&l4, pseudo);
        l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());

        let ip = match family {
            Family::V4 => ipv4_header(src, dst, number, l4.len()),
            Family::V6 => ipv6_header(src, dst, number, l4.len()),
        };
        let mut frame = Vec::with_capacity(ETH_LEN + ip.len() + l4.len());
        frame.extend_from_slice(&dst_mac);
        frame.extend_from_slice(&src_mac);
        frame.extend_from_slice(&family.ether_type());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&l4);
        frame
    }

    fn ports(&self) -> Vec<u8> {
        let mut p = self.source.port().to_be_bytes().to_vec();
        p.extend_from_slice(&self.destination.port().to_be_bytes());
        p
    }

    /// The tuple of an IPv4 or IPv6 frame of TCP, UDP or an ICMP echo
    /// (transport right behind the IP header); `None` for anything else.
    pub fn read(frame: &[u8]) -> Option<Self> {
        let ip = frame.get(ETH_LEN..)?;
        let addr4 = |at: usize| -> Option<IpAddr> {
            let bytes: [u8; 4] = ip.get(at..at + 4)?.try_into().ok()?;
            Some(Ipv4Addr::from(bytes).into())
        };
        let addr6 = |at: usize| -> Option<IpAddr> {
            let bytes: [u8; 16] = ip.get(at..at + 16)?.try_into().ok()?;
            Some(Ipv6Addr::from(bytes).into())
        };
        let ether_type: [u8; 2] = frame.get(12..14)?.try_into().ok()?;
        let (family, number, src, dst, l4) = match ether_type {
            ETH_P_IP => {
                let ihl = usize::from(ip.first()? & 0x0f) * 4;
                (
                    Family::V4,
                    *ip.get(9)?,
                    addr4(12)?,
                    addr4(16)?,
                    ip.get(ihl..)?,
                )
            }
            ETH_P_IPV6 => (
                Family::V6,
                *ip.get(6)?,
                addr6(8)?,
                addr6(24)?,
                ip.get(IPV6_LEN..)?,
            ),
            _ => return None,
        };
        let proto = Proto::of(number, family)?;
        let word = |at: usize| -> Option<u16> {
            Some(u16::from_be_bytes(l4.get(at..at + 2)?.try_into().ok()?))
        };
        let (sport, dport) = match proto {
            Proto::Tcp | Proto::Udp => (word(0)?, word(2)?),
            // The identifier names the flow both ways: the requester's
            // "port" going out, the destination's coming back.
            Proto::Icmp if *l4.first()? == family.echo_types().1 => (0, word(4)?),
            Proto::Icmp => (word(4)?, 0),
        };
        Some(Self {
            proto,
            source: SocketAddr::new(src, sport),
            destination: SocketAddr::new(dst, dport),
        })
    }
}

/// The IPv4 header before a transport header of `len` bytes: no
/// identification, don't fragment, its checksum filled in.
fn ipv4_header(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> Vec<u8> {
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((IPV4_LEN + len) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, HOP_LIMIT, proto, 0, 0]);
    ip.extend_from_slice(&octets(src));
    ip.extend_from_slice(&octets(dst));
    let sum = checksum(&ip, 0);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip
}

/// The IPv6 fixed header before a transport header of `len` bytes (no
/// extension headers, no flow label).
fn ipv6_header(src: IpAddr, dst: IpAddr, next: u8, len: usize) -> Vec<u8> {
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(len as u16).to_be_bytes());
    ip.extend_from_slice(&[next, HOP_LIMIT]);
    ip.extend_from_slice(&octets(src));
    ip.extend_from_slice(&octets(dst));
    ip
}

/// An IPv4 address's 4 bytes, an IPv6 address's 16.
fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    }
}

/// `ip` as IPv6 (an IPv4 address mapped).
fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(ip) => ip.to_ipv6_mapped(),
        IpAddr::V6(ip) => ip,
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.proto, self.family()) {
            (Proto::Icmp, family) => {
                let id = self.source.port().max(self.destination.port());
                // As `netfwd monitor` names them.
                let name = match family {
                    Family::V4 => "icmp",
                    Family::V6 => "icmp6",
                };
                write!(
                    f,
                    "{name} {} -> {} id {id}",
                    self.source.ip(),
                    self.destination.ip()
                )
            }
            (Proto::Tcp, _) => write!(f, "tcp {} -> {}", self.source, self.destination),
            (Proto::Udp, _) => write!(f, "udp {} -> {}", self.source, self.destination),
        }
    }
}

/// The Internet checksum of `data`, with `sum` carried in (also the
/// datapath tests' packet builder's).
pub fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], chunk.get(1).copied().unwrap_or(0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The sum of the pseudo-header of a transport header of `len` bytes:
/// IPv4's (RFC 793) or IPv6's (RFC 8200 8.1), as the addresses are; the
/// two differ only in the addresses' length and where the words lie,
/// which a one's complement sum does not see.
pub fn pseudo_sum(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u32 {
    let words = |ip: IpAddr| -> u32 {
        octets(ip)
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum()
    };
    let len = len as u32;
    words(src) + words(dst) + u32::from(proto) + (len >> 16) + (len & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(proto: Proto) -> Tuple {
        Tuple {
            proto,
            source: "10.0.0.2:40000".parse().expect("an address"),
            destination: "203.0.113.1:80".parse().expect("an address"),
        }
    }

    fn tuple6(proto: Proto) -> Tuple {
        Tuple {
            proto,
            source: "[2001:db8:1::2]:40000".parse().expect("an address"),
            destination: "[2001:db8:1::3]:80".parse().expect("an address"),
        }
    }

    /// An echo's tuple: the destination's port is 0.
    fn echo(t: Tuple) -> Tuple {
        Tuple {
            proto: Proto::Icmp,
            destination: SocketAddr::new(t.destination.ip(), 0),
            ..t
        }
    }

    #[test]
    fn a_frame_reads_back_as_its_tuple() {
        for t in [tuple(Proto::Tcp), tuple(Proto::Udp)] {
            for leg in [Leg::Request, Leg::Reply] {
                assert_eq!(Tuple::read(&t.frame(leg, [2; 6], [4; 6])), Some(t));
            }
        }
        let echo = echo(tuple(Proto::Tcp));
        let request = echo.frame(Leg::Request, [2; 6], [4; 6]);
        assert_eq!(Tuple::read(&request), Some(echo));
        let reply = echo.reversed();
        assert_eq!(
            Tuple::read(&reply.frame(Leg::Reply, [2; 6], [4; 6])),
            Some(reply)
        );
    }

    #[test]
    fn an_ipv6_frame_reads_back_as_its_tuple() {
        let echo = echo(tuple6(Proto::Tcp));
        for t in [tuple6(Proto::Tcp), tuple6(Proto::Udp), echo] {
            let request = t.frame(Leg::Request, [2; 6], [4; 6]);
            assert_eq!(request[12..14], ETH_P_IPV6);
            assert_eq!(Tuple::read(&request), Some(t));
            let reply = t.reversed();
            assert_eq!(
                Tuple::read(&reply.frame(Leg::Reply, [2; 6], [4; 6])),
                Some(reply)
            );
        }
    }

    #[test]
    fn checksums_are_correct() {
        let t = tuple(Proto::Tcp);
        let frame = t.frame(Leg::Request, [2; 6], [4; 6]);
        let ip = &frame[ETH_LEN..];
        assert_eq!(checksum(&ip[..IPV4_LEN], 0), 0);
        let l4 = &ip[IPV4_LEN..];
        let pseudo = pseudo_sum(t.source.ip(), t.destination.ip(), IPPROTO_TCP, l4.len());
        assert_eq!(checksum(l4, pseudo), 0);
    }

    /// Over IPv6 every checksum (ICMPv6's too) covers the pseudo-header:
    /// both addresses, the upper-layer length as 32 bits, the next header.
    #[test]
    fn ipv6_checksums_are_correct() {
        let echo = echo(tuple6(Proto::Tcp));
        for t in [tuple6(Proto::Tcp), tuple6(Proto::Udp), echo] {
            let frame = t.frame(Leg::Request, [2; 6], [4; 6]);
            let ip = &frame[ETH_LEN..];
            let (l4, next) = (&ip[IPV6_LEN..], ip[6]);
            assert_eq!(ip[..8], [0x60, 0, 0, 0, 0, l4.len() as u8, next, 64]);
            let mut pseudo = ip[8..40].to_vec();
            pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, next]);
            assert_eq!(checksum(&[pseudo, l4.to_vec()].concat(), 0), 0, "{t}");
        }
        let frame = echo.frame(Leg::Request, [2; 6], [4; 6]);
        assert_eq!(frame[ETH_LEN + 6], IPPROTO_ICMPV6);
        assert_eq!(frame[ETH_LEN + IPV6_LEN], ICMPV6_ECHO_REQUEST);
    }

    #[test]
    fn a_tuple_reads_as_monitor_writes_it() {
        assert_eq!(
            tuple(Proto::Udp).to_string(),
            "udp 10.0.0.2:40000 -> 203.0.113.1:80"
        );
        assert_eq!(
            tuple6(Proto::Tcp).to_string(),
            "tcp [2001:db8:1::2]:40000 -> [2001:db8:1::3]:80"
        );
        assert_eq!(
            echo(tuple6(Proto::Tcp)).to_string(),
            "icmp6 2001:db8:1::2 -> 2001:db8:1::3 id 40000"
        );
    }
}
