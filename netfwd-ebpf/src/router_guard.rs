//! IPv6 from endpoints: router messages never reach the host. A router
//! advertisement from an endpoint would give the host a default route
//! through it and an address of the endpoint's choosing; a redirect would
//! reroute the host's traffic. The host-side veth also refuses both by
//! sysctl (`accept_ra`, `autoconf`, `accept_redirects`); dropping them here
//! counts them, and holds whatever the sysctls say. Everything else of
//! IPv6 goes on to `v6` (a dual-stack network's) or, in an IPv4-only
//! network, to the host's stack.

use aya_ebpf::programs::TcContext;
use netfwd_common::{
    drop::DropReason,
    nat::{IPPROTO_DSTOPTS, IPPROTO_FRAGMENT, IPPROTO_HOPOPTS, IPPROTO_ICMPV6, IPPROTO_ROUTING},
};
use network_types::ip::Ipv6Hdr;

use crate::{family::Piece, l4::IP_OFF, maps, parse, v6::ext::ExtensionHeader, verdict::Verdict};

const ND_ROUTER_SOLICIT: u8 = 133;
const ND_ROUTER_ADVERT: u8 = 134;
pub const ND_NEIGHBOUR_ADVERT: u8 = 136;
const ND_REDIRECT: u8 = 137;

/// Extension headers walked before the upper layer. A chain longer than
/// this is refused: past it a router message could hide (RA-Guard evasion,
/// RFC 7113), and no ordinary packet has one.
const MAX_EXTENSION_HEADERS: usize = 4;

/// An endpoint's IPv6 packet: dropped if it is a router solicitation,
/// advertisement or redirect (or, in a dual-stack network, a neighbour
/// advertisement behind extension headers); the host's otherwise.
#[inline(always)]
pub fn ipv6_from_endpoint(ctx: &TcContext) -> Result<Verdict, DropReason> {
    // SAFETY: bounds checked by `header_mut`; copied out at once.
    let mut next = unsafe { (*parse::header_mut::<Ipv6Hdr>(ctx, IP_OFF)?).next_hdr };
    let mut off = IP_OFF + Ipv6Hdr::LEN;
    for _ in 0..MAX_EXTENSION_HEADERS {
        match next {
            IPPROTO_ICMPV6 => return icmpv6(ctx, off),
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_FRAGMENT => {}
            _ => return Ok(Verdict::ToHost),
        }
        let ext = load::<ExtensionHeader>(ctx, off)?;
        if next == IPPROTO_FRAGMENT {
            // A later fragment has no upper-layer header to judge; the
            // kernel drops neighbour discovery that came in fragments
            // (RFC 6980), so only the first fragment matters.
            if ext.piece() == Piece::Later {
                return Ok(Verdict::ToHost);
            }
            off += 8;
        } else {
            off += (usize::from(ext.len) + 1) * 8;
        }
        next = ext.next_hdr;
    }
    match next {
        IPPROTO_ICMPV6 => icmpv6(ctx, off),
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_FRAGMENT => {
            Err(DropReason::Malformed)
        }
        _ => Ok(Verdict::ToHost),
    }
}

#[inline(always)]
fn icmpv6(ctx: &TcContext, off: usize) -> Result<Verdict, DropReason> {
    let icmp_type = load::<u8>(ctx, off)?;
    match icmp_type {
        ND_ROUTER_SOLICIT | ND_ROUTER_ADVERT | ND_REDIRECT => Err(DropReason::RouterMessage),
        // Checked by `v6` where it stands right after the fixed header, as
        // every stack sends it; behind extension headers it would evade
        // that check.
        ND_NEIGHBOUR_ADVERT if off != IP_OFF + Ipv6Hdr::LEN && maps::network6().is_some() => {
            Err(DropReason::NdSpoofed)
        }
        _ => Ok(Verdict::ToHost),
    }
}

/// Reads a `T` at an offset found in the packet (the header chain): copied
/// out by `bpf_skb_load_bytes`, which the verifier needs no packet-pointer
/// range for.
#[inline(always)]
fn load<T>(ctx: &TcContext, off: usize) -> Result<T, DropReason> {
    ctx.load::<T>(off).map_err(|_| DropReason::Malformed)
}
