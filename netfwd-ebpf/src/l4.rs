//! Where the headers of a packet the datapath translates lie, and what it
//! reads from the transport header. The transport header follows the fixed
//! network header (IPv4 without options), or IPv6's fragment header after
//! it: its offset is the family's `L4_OFF`, or what `Family::transport`
//! found. These are the only definitions, used by TC and XDP alike.

use netfwd_common::{
    drop::DropReason,
    nat::{Direction, IPPROTO_TCP, IPPROTO_UDP, Tuple},
};
use network_types::eth::EthHdr;

use crate::{
    family::{Family, Piece},
    parse,
};

pub const IP_OFF: usize = EthHdr::LEN;
/// The checksum fields, from the transport header.
const TCP_CHECK: usize = 16;
const UDP_CHECK: usize = 6;
const ICMP_CHECK: usize = 2;

/// Where the transport header of a packet the NAT translates lies, its
/// protocol, and which piece of its datagram the packet is (`I`: the
/// family's datagram identification, which matches a datagram's fragments
/// to its first; see `frag`).
#[derive(Clone, Copy)]
pub struct Transport<I> {
    pub proto: u8,
    /// From the frame's start; a later fragment has no transport header.
    pub off: usize,
    pub piece: Piece,
    pub id: I,
}

/// Transport facts of a packet NAT can translate. TCP's sequence and
/// acknowledgment numbers (host byte order) feed the flow's state; 0
/// elsewhere.
pub struct Segment {
    /// The transport protocol (not an extension header's number).
    pub proto: u8,
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub tcp_flags: u8,
    pub seq: u32,
    pub ack: u32,
}

impl Segment {
    /// A segment known by its ports only (a later fragment, a UDP datagram).
    #[inline(always)]
    pub fn ports(proto: u8, sport: [u8; 2], dport: [u8; 2]) -> Self {
        Segment {
            proto,
            sport,
            dport,
            tcp_flags: 0,
            seq: 0,
            ack: 0,
        }
    }

    /// The packet's own tuple (header `ip`, this segment).
    #[inline(always)]
    pub fn tuple<F: Family>(&self, ip: &F::Hdr) -> Tuple<F::Addr> {
        Tuple {
            proto: self.proto,
            src: F::saddr(ip),
            dst: F::daddr(ip),
            sport: self.sport,
            dport: self.dport,
        }
    }
}

/// Reads the ports (or echo identifier) of a TCP, UDP or ICMP echo packet
/// whose transport header (of protocol `proto`) is at `off`; `None` for
/// anything else. Pulls the headers into the linear area, so packet
/// pointers must be taken afresh after it.
#[inline(always)]
pub fn segment<F: Family>(
    ctx: &impl parse::Packet,
    off: usize,
    proto: u8,
    dir: Direction,
) -> Result<Option<Segment>, DropReason> {
    match proto {
        IPPROTO_TCP => {
            // SAFETY (all three reads): bounds checked by `header_mut`.
            let tcp = unsafe { *parse::header_mut::<[u8; 14]>(ctx, off)? };
            Ok(Some(Segment {
                proto,
                sport: [tcp[0], tcp[1]],
                dport: [tcp[2], tcp[3]],
                tcp_flags: tcp[13],
                seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
                ack: u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]),
            }))
        }
        IPPROTO_UDP => {
            let udp = unsafe { *parse::header_mut::<[u8; 8]>(ctx, off)? };
            Ok(Some(Segment::ports(
                proto,
                [udp[0], udp[1]],
                [udp[2], udp[3]],
            )))
        }
        _ if proto == F::ICMP => {
            let icmp = unsafe { *parse::header_mut::<[u8; 8]>(ctx, off)? };
            let id = [icmp[4], icmp[5]];
            Ok(match dir {
                Direction::Egress if icmp[0] == F::ECHO_REQUEST => {
                    Some(Segment::ports(proto, id, [0; 2]))
                }
                Direction::Ingress if icmp[0] == F::ECHO_REPLY => {
                    Some(Segment::ports(proto, [0; 2], id))
                }
                _ => None,
            })
        }
        _ => Ok(None),
    }
}

/// Offset of the port the translation rewrites in a transport header at
/// `off`: the source port going out, the destination port coming in; the
/// identifier for ICMP echo.
#[inline(always)]
pub fn port_offset<F: Family>(off: usize, proto: u8, dir: Direction) -> usize {
    if proto == F::ICMP {
        return off + 4;
    }
    match dir {
        Direction::Egress => off,
        Direction::Ingress => off + 2,
    }
}

/// Offset of the transport checksum in a transport header at `off`: TCP's,
/// UDP's, else ICMP's.
#[inline(always)]
pub fn check_offset(off: usize, proto: u8) -> usize {
    off + match proto {
        IPPROTO_TCP => TCP_CHECK,
        IPPROTO_UDP => UDP_CHECK,
        _ => ICMP_CHECK,
    }
}

/// Whether the packet is plain and a whole datagram: the kind whose
/// transport header is at the family's `L4_OFF`.
#[inline(always)]
pub fn translatable<F: Family>(ip: &F::Hdr) -> bool {
    F::plain(ip) && !F::fragmented(ip)
}
