//! IPv4 headers: in-place changes, each with its header checksum update,
//! and the facts the datapath reads from them.

use network_types::ip::Ipv4Hdr;

use crate::{
    csum,
    family::{Field, Piece},
    l4::IP_OFF,
};

/// Where the transport header of an option-less IPv4 packet starts.
pub const L4_OFF: usize = IP_OFF + Ipv4Hdr::LEN;

pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_DEST_UNREACH: u8 = 3;
pub const ICMP_ECHO: u8 = 8;
pub const ICMP_TIME_EXCEEDED: u8 = 11;

/// Rewrites an address of an IPv4 header, with the header checksum.
#[inline(always)]
pub fn set_addr(ip: &mut Ipv4Hdr, field: Field, addr: [u8; 4]) {
    let field = match field {
        Field::Src => &mut ip.src_addr,
        Field::Dst => &mut ip.dst_addr,
    };
    csum::replace(&mut ip.check, *field, addr);
    *field = addr;
}

/// One hop, as the router the host is: the caller has checked `ttl > 1`.
#[inline(always)]
pub fn dec_ttl(ip: &mut Ipv4Hdr) {
    let old = [ip.ttl, ip.proto];
    ip.ttl -= 1;
    csum::replace(&mut ip.check, old, [ip.ttl, ip.proto]);
}

/// Undoes [`dec_ttl`]: a hop the stack takes after all.
#[inline(always)]
pub fn inc_ttl(ip: &mut Ipv4Hdr) {
    let old = [ip.ttl, ip.proto];
    ip.ttl += 1;
    csum::replace(&mut ip.check, old, [ip.ttl, ip.proto]);
}

/// No options (`ihl()` is in bytes).
#[inline(always)]
pub fn plain(ip: &Ipv4Hdr) -> bool {
    usize::from(ip.ihl()) == Ipv4Hdr::LEN
}

/// Whether the header checksum of an option-less header is right, as a
/// router checks before it forwards (a header with options is left to the
/// host's stack, which checks it).
#[inline(always)]
pub fn header_checksum_ok(ip: &Ipv4Hdr) -> bool {
    if !plain(ip) {
        return true;
    }
    // SAFETY: `Ipv4Hdr` is 20 bytes of plain data with alignment 1.
    let bytes: &[u8; Ipv4Hdr::LEN] = unsafe { &*(ip as *const Ipv4Hdr).cast() };
    let mut sum = 0u32;
    let mut i = 0;
    while i < Ipv4Hdr::LEN {
        sum += u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
        i += 2;
    }
    csum::fold(sum) == 0xffff
}

/// 255.255.255.255 or 224.0.0.0/4.
#[inline(always)]
pub fn is_broadcast_or_multicast(addr: [u8; 4]) -> bool {
    addr == [255; 4] || addr[0] & 0xf0 == 0xe0
}

/// Whether the sender forbids fragmenting the datagram (DF).
#[inline(always)]
pub fn dont_fragment(ip: &Ipv4Hdr) -> bool {
    ip.frags[0] & 0x40 != 0
}

/// Where the packet stands in its datagram: by its fragment offset and
/// "more fragments" flag.
#[inline(always)]
pub fn piece(ip: &Ipv4Hdr) -> Piece {
    let more = ip.frags[0] & 0x20 != 0;
    let offset = (ip.frags[0] & 0x1f) != 0 || ip.frags[1] != 0;
    match (offset, more) {
        (false, false) => Piece::Whole,
        (false, true) => Piece::First,
        (true, _) => Piece::Later,
    }
}
