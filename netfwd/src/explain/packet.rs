//! The packets `explain` runs through the datapath: a flow's first packet
//! and its answer, as Ethernet frames with correct checksums, and the
//! tuple read back from what a program made of them.

use std::{
    fmt,
    net::{Ipv4Addr, SocketAddrV4},
};

use netfwd_common::nat::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};
use serde::Serialize;

/// The protocol of the packet asked about (`--proto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// A TCP SYN, answered by a SYN-ACK.
    Tcp,
    /// A UDP datagram, answered by one.
    Udp,
    /// An ICMP echo request, answered by an echo reply.
    Icmp,
}

impl Proto {
    fn number(self) -> u8 {
        match self {
            Proto::Tcp => IPPROTO_TCP,
            Proto::Udp => IPPROTO_UDP,
            Proto::Icmp => IPPROTO_ICMP,
        }
    }

    fn of(number: u8) -> Option<Self> {
        [Proto::Tcp, Proto::Udp, Proto::Icmp]
            .into_iter()
            .find(|p| p.number() == number)
    }
}

/// A packet's addresses and ports; an ICMP echo's identifier is its source
/// port, its destination port 0 (as the NAT keys it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Tuple {
    pub proto: Proto,
    pub source: SocketAddrV4,
    pub destination: SocketAddrV4,
}

/// Whether a frame is a flow's first packet or the answer to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    Request,
    Reply,
}

/// The sequence numbers of the SYN and of its SYN-ACK, which acknowledges it.
const SYN_SEQ: u32 = 1;
const SYN_ACK_SEQ: u32 = 1_000;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;
const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
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

    /// The frame of `leg` of this flow, from MAC `src_mac` to `dst_mac`.
    pub fn frame(&self, leg: Leg, dst_mac: [u8; 6], src_mac: [u8; 6]) -> Vec<u8> {
        let (src, dst) = (*self.source.ip(), *self.destination.ip());
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
                let kind = match leg {
                    Leg::Request => ICMP_ECHO_REQUEST,
                    Leg::Reply => ICMP_ECHO_REPLY,
                };
                let id = match leg {
                    Leg::Request => self.source.port(),
                    Leg::Reply => self.destination.port(),
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
        let pseudo = match self.proto {
            Proto::Icmp => 0,
            _ => pseudo_sum(src, dst, self.proto.number(), l4.len()),
        };
        let sum = checksum(&l4, pseudo);
        l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());

        let mut frame = Vec::with_capacity(ETH_LEN + IPV4_LEN + l4.len());
        frame.extend_from_slice(&dst_mac);
        frame.extend_from_slice(&src_mac);
        frame.extend_from_slice(&0x0800u16.to_be_bytes());
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((IPV4_LEN + l4.len()) as u16).to_be_bytes());
        // No identification, don't fragment, TTL 64.
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, self.proto.number(), 0, 0]);
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        let sum = checksum(&ip, 0);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&l4);
        frame
    }

    fn ports(&self) -> Vec<u8> {
        let mut p = self.source.port().to_be_bytes().to_vec();
        p.extend_from_slice(&self.destination.port().to_be_bytes());
        p
    }

    /// The tuple of an IPv4 frame of TCP, UDP or an ICMP echo; `None` for
    /// anything else.
    pub fn read(frame: &[u8]) -> Option<Self> {
        if frame.get(12..14)? != [0x08, 0x00] {
            return None;
        }
        let ip = frame.get(ETH_LEN..)?;
        let ihl = usize::from(ip.first()? & 0x0f) * 4;
        let proto = Proto::of(*ip.get(9)?)?;
        let addr = |at: usize| -> Option<Ipv4Addr> {
            let bytes: [u8; 4] = ip.get(at..at + 4)?.try_into().ok()?;
            Some(Ipv4Addr::from(bytes))
        };
        let (src, dst) = (addr(12)?, addr(16)?);
        let l4 = ip.get(ihl..)?;
        let word = |at: usize| -> Option<u16> {
            Some(u16::from_be_bytes(l4.get(at..at + 2)?.try_into().ok()?))
        };
        let (sport, dport) = match proto {
            Proto::Tcp | Proto::Udp => (word(0)?, word(2)?),
            // The identifier names the flow both ways: the requester's
            // "port" going out, the destination's coming back.
            Proto::Icmp if *l4.first()? == ICMP_ECHO_REPLY => (0, word(4)?),
            Proto::Icmp => (word(4)?, 0),
        };
        Some(Self {
            proto,
            source: SocketAddrV4::new(src, sport),
            destination: SocketAddrV4::new(dst, dport),
        })
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.proto {
            Proto::Icmp => {
                let id = self.source.port().max(self.destination.port());
                write!(
                    f,
                    "icmp {} -> {} id {id}",
                    self.source.ip(),
                    self.destination.ip()
                )
            }
            Proto::Tcp => write!(f, "tcp {} -> {}", self.source, self.destination),
            Proto::Udp => write!(f, "udp {} -> {}", self.source, self.destination),
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

/// The sum of the IPv4 pseudo-header of a transport header of `len` bytes.
pub fn pseudo_sum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> u32 {
    let word = |b: [u8; 2]| u32::from(u16::from_be_bytes(b));
    let [a, b, c, d] = src.octets();
    let [e, f, g, h] = dst.octets();
    word([a, b]) + word([c, d]) + word([e, f]) + word([g, h]) + u32::from(proto) + len as u32
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

    #[test]
    fn a_frame_reads_back_as_its_tuple() {
        for proto in [Proto::Tcp, Proto::Udp] {
            let t = tuple(proto);
            for leg in [Leg::Request, Leg::Reply] {
                assert_eq!(Tuple::read(&t.frame(leg, [2; 6], [4; 6])), Some(t));
            }
        }
        let echo = Tuple {
            destination: "203.0.113.1:0".parse().expect("an address"),
            ..tuple(Proto::Icmp)
        };
        let request = echo.frame(Leg::Request, [2; 6], [4; 6]);
        assert_eq!(Tuple::read(&request), Some(echo));
        let reply = echo.reversed();
        assert_eq!(
            Tuple::read(&reply.frame(Leg::Reply, [2; 6], [4; 6])),
            Some(reply)
        );
    }

    #[test]
    fn checksums_are_correct() {
        let t = tuple(Proto::Tcp);
        let frame = t.frame(Leg::Request, [2; 6], [4; 6]);
        let ip = &frame[ETH_LEN..];
        assert_eq!(checksum(&ip[..IPV4_LEN], 0), 0);
        let l4 = &ip[IPV4_LEN..];
        let pseudo = pseudo_sum(*t.source.ip(), *t.destination.ip(), IPPROTO_TCP, l4.len());
        assert_eq!(checksum(l4, pseudo), 0);
    }

    #[test]
    fn a_tuple_reads_as_monitor_writes_it() {
        assert_eq!(
            tuple(Proto::Udp).to_string(),
            "udp 10.0.0.2:40000 -> 203.0.113.1:80"
        );
    }
}
