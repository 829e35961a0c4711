//! IPv6 extension headers through the NAT (the table in docs/datapath.md).
//! The fragment header crosses it both ways, as IPv4's fragment fields do
//! (`frag`): the transport header lies behind it, and its identification
//! matches a datagram's fragments to its first. Hop-by-hop options,
//! routing and destination options headers do not: going out they are
//! dropped (`extension_header`), coming in they are the host's. A
//! hop-by-hop header asks every router to read it and a routing header
//! names further destinations, both beyond the translated addresses; a
//! destination options header would be safe to step over, but no ordinary
//! flow sends one, and a walk of variable length costs the NAT's program
//! more stack than it has. Any other next header (ESP, AH, mobility,
//! "no next header") is a protocol the NAT does not translate
//! (`unsupported`), as IPv4's are.

use netfwd_common::{
    drop::DropReason,
    nat::{FragmentId6, IPPROTO_DSTOPTS, IPPROTO_FRAGMENT, IPPROTO_HOPOPTS, IPPROTO_ROUTING},
};
use network_types::ip::Ipv6Hdr;

use super::V6;
use crate::{
    family::{Family, Piece},
    l4::Transport,
    parse,
};

/// The first 8 bytes of every extension header: the next header and, but
/// for the fragment header, the length in 8-byte units beyond the first 8;
/// the fragment header (RFC 8200 4.5) is all of it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExtensionHeader {
    pub next_hdr: u8,
    pub len: u8,
    /// Fragment header: the offset in 8-byte units (13 bits), two reserved
    /// bits and "more fragments".
    offset_more: [u8; 2],
    /// Fragment header: the datagram's identification.
    id: [u8; 4],
}

impl ExtensionHeader {
    /// A fragment header's place in its datagram.
    #[inline(always)]
    pub fn piece(&self) -> Piece {
        let offset_more = u16::from_be_bytes(self.offset_more);
        match (offset_more & !0x7 != 0, offset_more & 1 != 0) {
            // An atomic fragment (RFC 6946): a whole datagram all the same.
            (false, false) => Piece::Whole,
            (false, true) => Piece::First,
            (true, _) => Piece::Later,
        }
    }
}

/// See `Family::transport`.
#[inline(always)]
pub fn transport(
    ctx: &impl parse::Packet,
    ip: &Ipv6Hdr,
) -> Result<Transport<FragmentId6>, DropReason> {
    let proto = ip.next_hdr;
    if proto != IPPROTO_FRAGMENT {
        refuse_options(proto)?;
        return Ok(Transport {
            proto,
            off: V6::L4_OFF,
            piece: Piece::Whole,
            id: FragmentId6::default(),
        });
    }
    // SAFETY: bounds checked by `header_mut`; copied out at once.
    let frag = unsafe { *parse::header_mut::<ExtensionHeader>(ctx, V6::L4_OFF)? };
    // A fragment header behind the first, or options behind it: refused
    // as options are.
    if frag.next_hdr == IPPROTO_FRAGMENT {
        return Err(DropReason::ExtensionHeader);
    }
    refuse_options(frag.next_hdr)?;
    Ok(Transport {
        proto: frag.next_hdr,
        off: V6::L4_OFF + core::mem::size_of::<ExtensionHeader>(),
        piece: frag.piece(),
        id: FragmentId6 {
            id: frag.id,
            _pad: [0; 2],
        },
    })
}

/// Hop-by-hop, routing and destination options: not translated.
#[inline(always)]
fn refuse_options(next_hdr: u8) -> Result<(), DropReason> {
    match next_hdr {
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => Err(DropReason::ExtensionHeader),
        _ => Ok(()),
    }
}
