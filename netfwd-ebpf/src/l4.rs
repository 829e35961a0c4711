//! Where the headers of a packet the datapath translates lie, and what it
//! reads from the transport header. Only IPv4 without options is
//! translated, so every offset is fixed: these are their only definitions,
//! used by TC and XDP alike.

use netfwd_common::{
    drop::DropReason,
    nat::{DIR_INGRESS, Direction, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, NatKey},
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use crate::parse;

pub const IP_OFF: usize = EthHdr::LEN;
pub const L4_OFF: usize = IP_OFF + Ipv4Hdr::LEN;
/// The checksum fields.
pub const TCP_CHECK_OFF: usize = L4_OFF + 16;
pub const UDP_CHECK_OFF: usize = L4_OFF + 6;
pub const ICMP_CHECK_OFF: usize = L4_OFF + 2;
/// An ICMP error quotes the offending packet's IP header and 8 bytes after it.
pub const INNER_IP_OFF: usize = L4_OFF + ICMP_HDR_LEN;
pub const INNER_L4_OFF: usize = INNER_IP_OFF + Ipv4Hdr::LEN;
const ICMP_HDR_LEN: usize = 8;

pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_DEST_UNREACH: u8 = 3;
pub const ICMP_ECHO: u8 = 8;
pub const ICMP_TIME_EXCEEDED: u8 = 11;

/// Transport facts of a packet NAT can translate. TCP's sequence and
/// acknowledgment numbers (host byte order) feed the flow's state; 0
/// elsewhere.
pub struct Segment {
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub tcp_flags: u8,
    pub seq: u32,
    pub ack: u32,
}

impl Segment {
    /// A segment known by its ports only (a later fragment, a UDP datagram).
    #[inline(always)]
    pub fn ports(sport: [u8; 2], dport: [u8; 2]) -> Self {
        Segment {
            sport,
            dport,
            tcp_flags: 0,
            seq: 0,
            ack: 0,
        }
    }
}

/// Reads the ports (or echo identifier) of a TCP, UDP or ICMP echo packet;
/// `None` for anything else. Pulls the headers into the linear area, so
/// packet pointers must be taken afresh after it.
#[inline(always)]
pub fn segment(
    ctx: &impl parse::Packet,
    proto: u8,
    dir: Direction,
) -> Result<Option<Segment>, DropReason> {
    match proto {
        IPPROTO_TCP => {
            // SAFETY (all three reads): bounds checked by `header_mut`.
            let tcp = unsafe { *parse::header_mut::<[u8; 14]>(ctx, L4_OFF)? };
            Ok(Some(Segment {
                sport: [tcp[0], tcp[1]],
                dport: [tcp[2], tcp[3]],
                tcp_flags: tcp[13],
                seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
                ack: u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]),
            }))
        }
        IPPROTO_UDP => {
            let udp = unsafe { *parse::header_mut::<[u8; 8]>(ctx, L4_OFF)? };
            Ok(Some(Segment::ports([udp[0], udp[1]], [udp[2], udp[3]])))
        }
        IPPROTO_ICMP => {
            let icmp = unsafe { *parse::header_mut::<[u8; 8]>(ctx, L4_OFF)? };
            let id = [icmp[4], icmp[5]];
            Ok(match (dir, icmp[0]) {
                (Direction::Egress, ICMP_ECHO) => Some(Segment::ports(id, [0; 2])),
                (Direction::Ingress, ICMP_ECHO_REPLY) => Some(Segment::ports([0; 2], id)),
                _ => None,
            })
        }
        _ => Ok(None),
    }
}

/// The ingress-direction key of a packet's own tuple: how replies (and a
/// published endpoint's answers to the hairpin) are looked up.
#[inline(always)]
pub fn packet_key(ip: &Ipv4Hdr, seg: &Segment) -> NatKey {
    NatKey {
        saddr: ip.src_addr,
        daddr: ip.dst_addr,
        sport: seg.sport,
        dport: seg.dport,
        proto: ip.proto,
        dir: DIR_INGRESS,
        _pad: [0; 2],
    }
}

/// Offset of the port the translation rewrites: the source port going out,
/// the destination port coming in; the identifier for ICMP echo.
#[inline(always)]
pub fn port_offset(proto: u8, dir: Direction) -> usize {
    match (proto, dir) {
        (IPPROTO_ICMP, _) => L4_OFF + 4,
        (_, Direction::Egress) => L4_OFF,
        (_, Direction::Ingress) => L4_OFF + 2,
    }
}

/// Whether the packet is IPv4 without options and a whole datagram: the
/// kind whose headers lie where this module says.
#[inline(always)]
pub fn translatable(ip: &Ipv4Hdr) -> bool {
    // More-fragments flag or a fragment offset: not a whole datagram.
    let fragment = (ip.frags[0] & 0x3f) != 0 || ip.frags[1] != 0;
    usize::from(ip.ihl()) == Ipv4Hdr::LEN && !fragment
}
