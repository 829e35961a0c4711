//! IPv4 fragments through the NAT (`V4`'s part of `Family`). Only a datagram's first fragment carries
//! its ports; it is translated like a whole packet and leaves its ports
//! behind, keyed by addresses, protocol and IP identification, so the
//! fragments after it find the same mapping (their addresses are
//! translated; they have no ports to translate). A later fragment that comes
//! before its first one finds nothing and is dropped (`unsupported`): veths
//! and one uplink keep fragments in order.

use netfwd_common::nat::{Direction, FragmentKey, FragmentPorts};
use network_types::ip::Ipv4Hdr;

use crate::{family::Piece, maps::FRAGMENTS};

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

#[inline(always)]
fn key(ip: &Ipv4Hdr, dir: Direction) -> FragmentKey {
    FragmentKey {
        saddr: ip.src_addr,
        daddr: ip.dst_addr,
        id: ip.id,
        proto: ip.proto,
        dir: dir.byte(),
    }
}

/// The first fragment's ports, for the rest of its datagram.
#[inline(always)]
pub fn remember(ip: &Ipv4Hdr, dir: Direction, sport: [u8; 2], dport: [u8; 2]) {
    // Best effort: a full LRU makes room; failing that, the later fragments
    // are dropped and counted.
    let _ = FRAGMENTS.insert(key(ip, dir), FragmentPorts { sport, dport }, 0);
}

/// The ports of a later fragment's datagram, if its first fragment passed.
#[inline(always)]
pub fn recall(ip: &Ipv4Hdr, dir: Direction) -> Option<FragmentPorts> {
    // SAFETY: plain data; a stale copy at worst.
    unsafe { FRAGMENTS.get(key(ip, dir)).copied() }
}
