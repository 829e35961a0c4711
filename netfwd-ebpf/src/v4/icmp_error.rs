//! ICMP errors about NATed flows, both ways: "destination unreachable"
//! (with "fragmentation needed", which path-MTU discovery lives on) and
//! "time exceeded" (traceroute). The outer header is translated as the
//! flow's packets are, and the packet the error quotes as well. IPv4's
//! ICMP (`V4`'s part of `Family`): its errors quote an IPv4 header.

use aya_ebpf::programs::TcContext;
use netfwd_common::{
    drop::DropReason,
    nat::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, NatConfig, Tuple},
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use super::header::{self, ICMP_ECHO};
use crate::{
    conntrack, csum,
    deliver::{self, ToEndpoint as _},
    family::Field,
    hop::NextHop,
    l4::IP_OFF,
    maps::{self, NAT},
    parse,
    verdict::Verdict,
};

const ICMP_CHECK_OFF: usize = header::L4_OFF + 2;
/// An ICMP error quotes the offending packet's IP header and 8 bytes after it.
const INNER_IP_OFF: usize = header::L4_OFF + ICMP_HDR_LEN;
const INNER_L4_OFF: usize = INNER_IP_OFF + Ipv4Hdr::LEN;
const ICMP_HDR_LEN: usize = 8;

/// An endpoint's own "destination unreachable" or "time exceeded" about a
/// packet that reached it through the NAT (a reply, or a connection to a
/// published port): it leaves as the NAT's address, the quoted packet
/// addressed to the NAT's address and port as it was sent. Anything it
/// quotes that did not come through the NAT is dropped (`unsupported`), and
/// a packet sent to another endpoint (`icmp_spoofed`): an endpoint speaks
/// for its own flows only.
#[inline(always)]
pub fn snat(ctx: &TcContext, ip: &Ipv4Hdr, hop: &NextHop) -> Result<Verdict, DropReason> {
    // Deepest first: the pull for it keeps the shallower headers linear too.
    // SAFETY (both reads): bounds checked by `header_mut` / `header_at`.
    let inner_l4 = unsafe { *parse::header_mut::<[u8; 8]>(ctx, INNER_L4_OFF)? };
    let inner = unsafe { *parse::header_at::<Ipv4Hdr>(ctx, INNER_IP_OFF)? };
    if usize::from(inner.ihl()) != Ipv4Hdr::LEN
        || (inner.proto != IPPROTO_TCP && inner.proto != IPPROTO_UDP)
    {
        return Err(DropReason::Unsupported);
    }
    // The sender's address was checked: the quoted packet must be one it got.
    if inner.dst_addr != ip.src_addr {
        return Err(DropReason::IcmpSpoofed);
    }
    // The quoted packet went remote -> endpoint; the flow the other way is
    // the endpoint's egress entry, which names the NAT's address and port.
    let flow = Tuple {
        proto: inner.proto,
        src: inner.dst_addr,
        dst: inner.src_addr,
        sport: [inner_l4[2], inner_l4[3]],
        dport: [inner_l4[0], inner_l4[1]],
    };
    // SAFETY: plain data; a stale copy at worst.
    let Some(out) = (unsafe { NAT.get(flow.egress_key()) }).copied() else {
        return Err(DropReason::Unsupported);
    };

    // `header_mut` made the headers linear: no pull from here on.
    let eth = parse::header_at::<EthHdr>(ctx, 0)?;
    let ipp = parse::header_at::<Ipv4Hdr>(ctx, IP_OFF)?;
    let icmp_check = parse::header_at::<[u8; 2]>(ctx, ICMP_CHECK_OFF)?;
    let inner_ipp = parse::header_at::<Ipv4Hdr>(ctx, INNER_IP_OFF)?;
    let inner_port = parse::header_at::<[u8; 2]>(ctx, INNER_L4_OFF + 2)?;
    // SAFETY: bounds checked by `header_at`; no helper runs in between.
    unsafe {
        let (outer, quoted, check) = (&mut *ipp, &mut *inner_ipp, &mut *icmp_check);
        translate_outer(outer, Field::Src, out.addr);
        let port = &mut *inner_port;
        rewrite_quoted(check, quoted, Field::Dst, out.addr, port, out.port);
        deliver::set_hop_macs(&mut *eth, hop);
    }
    Ok(Verdict::Translated(hop.redirect()))
}

/// "Destination unreachable" (with "fragmentation needed", which path-MTU
/// discovery lives on) and "time exceeded" (traceroute) about a NATed flow:
/// the quoted packet is the one that left, so its source is translated back
/// along with the outer destination. The quoted transport checksum is left
/// as it was: it may be cut off, and no receiver checks it.
#[inline(always)]
pub fn rev_snat(ctx: &TcContext, config: &NatConfig) -> Result<Verdict, DropReason> {
    // Deepest first: the pull for it keeps the shallower headers linear too.
    let Ok(inner_l4) = parse::header_mut::<[u8; 8]>(ctx, INNER_L4_OFF) else {
        return Ok(Verdict::ToHost);
    };
    // SAFETY (both reads): bounds checked by `header_mut`.
    let inner_l4 = unsafe { *inner_l4 };
    let inner = unsafe { *parse::header_at::<Ipv4Hdr>(ctx, INNER_IP_OFF)? };
    if usize::from(inner.ihl()) != Ipv4Hdr::LEN {
        return Ok(Verdict::ToHost);
    }
    // The quoted packet went inside -> remote, translated to uplink address:port.
    let (remote_port, port_at) = match inner.proto {
        IPPROTO_TCP | IPPROTO_UDP => ([inner_l4[2], inner_l4[3]], 0),
        IPPROTO_ICMP if inner_l4[0] == ICMP_ECHO => ([0; 2], 4),
        _ => return Ok(Verdict::ToHost),
    };
    let nat_port = [inner_l4[port_at], inner_l4[port_at + 1]];
    // A reply to the quoted packet would arrive with this tuple.
    let key = Tuple {
        proto: inner.proto,
        src: inner.dst_addr,
        dst: inner.src_addr,
        sport: remote_port,
        dport: nat_port,
    }
    .arriving_key();
    // SAFETY: plain data; a stale copy at worst.
    let Some(entry) = (unsafe { NAT.get(key) }).copied() else {
        return Ok(Verdict::ToHost);
    };
    if config
        .timeouts
        .expired(inner.proto, &entry, conntrack::now_ns())
    {
        return Ok(Verdict::ToHost);
    }
    let Some(ep) = maps::endpoint(entry.addr) else {
        return Ok(Verdict::ToHost);
    };

    // `segment` made the headers linear: no pull (which would invalidate
    // these pointers) from here on.
    let eth = parse::header_at::<EthHdr>(ctx, 0)?;
    let ipp = parse::header_at::<Ipv4Hdr>(ctx, IP_OFF)?;
    let icmp_check = parse::header_at::<[u8; 2]>(ctx, ICMP_CHECK_OFF)?;
    let inner_ipp = parse::header_at::<Ipv4Hdr>(ctx, INNER_IP_OFF)?;
    let inner_port = parse::header_at::<[u8; 2]>(ctx, INNER_L4_OFF + port_at)?;
    // SAFETY: bounds checked by `header_at`; no helper runs in between.
    unsafe {
        let (outer, quoted, check) = (&mut *ipp, &mut *inner_ipp, &mut *icmp_check);
        if outer.ttl <= 1 {
            return Err(DropReason::TtlExceeded);
        }
        translate_outer(outer, Field::Dst, entry.addr);
        let port = &mut *inner_port;
        rewrite_quoted(check, quoted, Field::Src, entry.addr, port, entry.port);
        deliver::set_endpoint_macs(&mut *eth, &ep);
    }
    Ok(Verdict::Translated(ctx.redirect_to(&ep)))
}

/// The error's own header translated as its flow's packets are: `field`
/// to `addr`, a hop off.
#[inline(always)]
fn translate_outer(outer: &mut Ipv4Hdr, field: Field, addr: [u8; 4]) {
    header::set_addr(outer, field, addr);
    header::dec_ttl(outer);
}

/// An ICMP error's quoted packet re-addressed: `field` of its IP header to
/// `addr`, its port to `port`. Everything quoted is ICMP payload, so the
/// ICMP checksum follows every change, the quoted header's own included.
#[inline(always)]
fn rewrite_quoted(
    check: &mut [u8; 2],
    quoted: &mut Ipv4Hdr,
    field: Field,
    addr: [u8; 4],
    quoted_port: &mut [u8; 2],
    port: [u8; 2],
) {
    let (old_addr, old_check) = match field {
        Field::Src => (quoted.src_addr, quoted.check),
        Field::Dst => (quoted.dst_addr, quoted.check),
    };
    header::set_addr(quoted, field, addr);
    csum::replace(check, old_addr, addr);
    csum::replace(check, old_check, quoted.check);
    csum::replace(check, *quoted_port, port);
    *quoted_port = port;
}
