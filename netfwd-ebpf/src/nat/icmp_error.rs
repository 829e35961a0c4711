//! ICMP errors about NATed flows, both ways, for either family: IPv4's
//! "destination unreachable" (with "fragmentation needed") and "time
//! exceeded", ICMPv6's "destination unreachable", "packet too big" and
//! "time exceeded" (which errors a family translates is its own,
//! `Family::is_icmp_error`). Path-MTU discovery through the NAT lives on
//! them, IPv6's wholly: its routers never fragment. The outer header is
//! translated as the flow's packets are, and the packet the error quotes
//! as well; the ICMP checksum follows every change of what it covers: the
//! quoted packet (and an IPv4 header's own checksum in it), and for ICMPv6
//! the outer addresses of its pseudo-header.

use core::mem::size_of;

use aya_ebpf::programs::TcContext;
use netfwd_common::{
    drop::DropReason,
    nat::{IPPROTO_TCP, IPPROTO_UDP, NatConfig, Tuple},
};
use network_types::eth::EthHdr;

use crate::{
    conntrack, csum,
    deliver::{self, ToEndpoint as _},
    family::{Family, Field},
    hop::NextHop,
    l4::IP_OFF,
    parse,
    verdict::Verdict,
};

/// An ICMP error's own header: type, code, checksum and 4 bytes (unused,
/// or "packet too big"'s MTU); the offending packet's IP header and the 8
/// bytes after it follow.
const ICMP_HDR_LEN: usize = 8;

#[inline(always)]
const fn check_off<F: Family>() -> usize {
    F::L4_OFF + 2
}

#[inline(always)]
const fn inner_ip_off<F: Family>() -> usize {
    F::L4_OFF + ICMP_HDR_LEN
}

#[inline(always)]
const fn inner_l4_off<F: Family>() -> usize {
    inner_ip_off::<F>() + size_of::<F::Hdr>()
}

/// An endpoint's own error (unreachable, time exceeded) about a packet that
/// reached it through the NAT (a reply, or a connection to a published
/// port): it leaves as the NAT's address, the quoted packet addressed to
/// the NAT's address and port as it was sent. Anything it quotes that did
/// not come through the NAT is dropped (`unsupported`), and a packet sent
/// to another endpoint (`icmp_spoofed`): an endpoint speaks for its own
/// flows only.
#[inline(always)]
pub fn snat<F: Family>(ctx: &TcContext, ip: &F::Hdr, hop: &NextHop) -> Result<Verdict, DropReason> {
    // Deepest first: the pull for it keeps the shallower headers linear too.
    // SAFETY (both reads): bounds checked by `header_mut` / `header_at`.
    let inner_l4 = unsafe { *parse::header_mut::<[u8; 8]>(ctx, inner_l4_off::<F>())? };
    let inner = unsafe { *parse::header_at::<F::Hdr>(ctx, inner_ip_off::<F>())? };
    let proto = F::proto(&inner);
    if !F::plain(&inner) || (proto != IPPROTO_TCP && proto != IPPROTO_UDP) {
        return Err(DropReason::Unsupported);
    }
    // The sender's address was checked: the quoted packet must be one it got.
    if F::daddr(&inner) != F::saddr(ip) {
        return Err(DropReason::IcmpSpoofed);
    }
    // The quoted packet went remote -> endpoint; the flow the other way is
    // the endpoint's egress entry, which names the NAT's address and port.
    let flow = Tuple {
        proto,
        src: F::daddr(&inner),
        dst: F::saddr(&inner),
        sport: [inner_l4[2], inner_l4[3]],
        dport: [inner_l4[0], inner_l4[1]],
    };
    // SAFETY: plain data; a stale copy at worst.
    let Some(out) = (unsafe { F::nat().get(flow.egress_key()) }).copied() else {
        return Err(DropReason::Unsupported);
    };

    // `header_mut` made the headers linear: no pull from here on.
    let eth = parse::header_at::<EthHdr>(ctx, 0)?;
    let ipp = parse::header_at::<F::Hdr>(ctx, IP_OFF)?;
    let icmp_check = parse::header_at::<[u8; 2]>(ctx, check_off::<F>())?;
    let inner_ipp = parse::header_at::<F::Hdr>(ctx, inner_ip_off::<F>())?;
    let inner_port = parse::header_at::<[u8; 2]>(ctx, inner_l4_off::<F>() + 2)?;
    // SAFETY: bounds checked by `header_at`; no helper runs in between.
    unsafe {
        let (outer, quoted, check) = (&mut *ipp, &mut *inner_ipp, &mut *icmp_check);
        translate_outer::<F>(check, outer, Field::Src, out.addr);
        let port = &mut *inner_port;
        rewrite_quoted::<F>(check, quoted, Field::Dst, out.addr, port, out.port);
        deliver::set_hop_macs(&mut *eth, hop);
    }
    Ok(Verdict::Translated(hop.redirect()))
}

/// A remote's error about a NATed flow: the quoted packet is the one that
/// left, so its source is translated back along with the outer
/// destination. The quoted transport checksum is left as it was: it may be
/// cut off, and no receiver checks it.
#[inline(always)]
pub fn rev_snat<F: Family>(ctx: &TcContext, config: &NatConfig) -> Result<Verdict, DropReason> {
    // Deepest first: the pull for it keeps the shallower headers linear too.
    let Ok(inner_l4) = parse::header_mut::<[u8; 8]>(ctx, inner_l4_off::<F>()) else {
        return Ok(Verdict::ToHost);
    };
    // SAFETY (both reads): bounds checked by `header_mut`.
    let inner_l4 = unsafe { *inner_l4 };
    let inner = unsafe { *parse::header_at::<F::Hdr>(ctx, inner_ip_off::<F>())? };
    if !F::plain(&inner) {
        return Ok(Verdict::ToHost);
    }
    // The quoted packet went inside -> remote, translated to uplink address:port.
    let proto = F::proto(&inner);
    let (remote_port, port_at) = match proto {
        IPPROTO_TCP | IPPROTO_UDP => ([inner_l4[2], inner_l4[3]], 0),
        _ if proto == F::ICMP && inner_l4[0] == F::ECHO_REQUEST => ([0; 2], 4),
        _ => return Ok(Verdict::ToHost),
    };
    let nat_port = [inner_l4[port_at], inner_l4[port_at + 1]];
    // A reply to the quoted packet would arrive with this tuple.
    let key = Tuple {
        proto,
        src: F::daddr(&inner),
        dst: F::saddr(&inner),
        sport: remote_port,
        dport: nat_port,
    }
    .arriving_key();
    // SAFETY: plain data; a stale copy at worst.
    let Some(entry) = (unsafe { F::nat().get(key) }).copied() else {
        return Ok(Verdict::ToHost);
    };
    if config.timeouts.expired(proto, &entry, conntrack::now_ns()) {
        return Ok(Verdict::ToHost);
    }
    let Some(ep) = F::endpoint(entry.addr) else {
        return Ok(Verdict::ToHost);
    };

    // `header_mut` made the headers linear: no pull (which would invalidate
    // these pointers) from here on.
    let eth = parse::header_at::<EthHdr>(ctx, 0)?;
    let ipp = parse::header_at::<F::Hdr>(ctx, IP_OFF)?;
    let icmp_check = parse::header_at::<[u8; 2]>(ctx, check_off::<F>())?;
    let inner_ipp = parse::header_at::<F::Hdr>(ctx, inner_ip_off::<F>())?;
    let inner_port = parse::header_at::<[u8; 2]>(ctx, inner_l4_off::<F>() + port_at)?;
    // SAFETY: bounds checked by `header_at`; no helper runs in between.
    unsafe {
        let (outer, quoted, check) = (&mut *ipp, &mut *inner_ipp, &mut *icmp_check);
        if F::hop_limit(outer) <= 1 {
            return Err(DropReason::TtlExceeded);
        }
        translate_outer::<F>(check, outer, Field::Dst, entry.addr);
        let port = &mut *inner_port;
        rewrite_quoted::<F>(check, quoted, Field::Src, entry.addr, port, entry.port);
        deliver::set_endpoint_macs(&mut *eth, &ep);
    }
    Ok(Verdict::Translated(ctx.redirect_to(&ep)))
}

/// The error's own header translated as its flow's packets are: `field`
/// to `addr`, a hop off; where the ICMP checksum covers a pseudo-header
/// (ICMPv6), it follows the address.
#[inline(always)]
fn translate_outer<F: Family>(
    check: &mut [u8; 2],
    outer: &mut F::Hdr,
    field: Field,
    addr: F::Addr,
) {
    if F::ICMP_PSEUDO_HDR {
        F::csum_addr(check, address::<F>(outer, field), addr);
    }
    F::set_addr(outer, field, addr);
    F::dec_hop_limit(outer);
}

/// An ICMP error's quoted packet re-addressed: `field` of its IP header to
/// `addr`, its port to `port`. Everything quoted is ICMP payload, so the
/// ICMP checksum follows every change, the quoted header's own checksum
/// (IPv4's) included.
#[inline(always)]
fn rewrite_quoted<F: Family>(
    check: &mut [u8; 2],
    quoted: &mut F::Hdr,
    field: Field,
    addr: F::Addr,
    quoted_port: &mut [u8; 2],
    port: [u8; 2],
) {
    let (old_addr, old_check) = (address::<F>(quoted, field), F::header_check(quoted));
    F::set_addr(quoted, field, addr);
    F::csum_addr(check, old_addr, addr);
    csum::replace(check, old_check, F::header_check(quoted));
    csum::replace(check, *quoted_port, port);
    *quoted_port = port;
}

#[inline(always)]
fn address<F: Family>(ip: &F::Hdr, field: Field) -> F::Addr {
    match field {
        Field::Src => F::saddr(ip),
        Field::Dst => F::daddr(ip),
    }
}
