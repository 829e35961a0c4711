//! The XDP fast path (`mode = "xdp"`). On a host-side veth: an endpoint's
//! packet to another endpoint of the network (IPv4, or IPv6's TCP and UDP),
//! through the gate TC uses (`forward::classify`), goes straight to that
//! endpoint's veth. On the
//! uplink: a packet the uplink's gate (`route::classify_from_uplink`) sends
//! to the NAT, of a live flow (`rev_snat::live_flow`), is translated back
//! and goes straight to its endpoint's veth (`rev_snat::to_endpoint`).
//! Everything else (ARP, a flow's first packet, ICMP errors, fragments,
//! options, whatever the gates drop) passes to the stack unchanged, where
//! the TC program behind it decides exactly as in TC mode: XDP changes
//! where a packet is handled, never what happens to it, and holds no
//! decision of its own.
//!
//! An XDP redirect hands over a bare frame: no checksum offload state comes
//! with it, and the receiving veth must run NAPI. The loader sees to both
//! (full checksums from the endpoints, GRO on their `eth0`) and lists in
//! `ENDPOINT_TX` only the veths it did that for.

use aya_ebpf::programs::XdpContext;
use netfwd_common::{
    drop::DropReason,
    nat::{Direction, IPPROTO_TCP, IPPROTO_UDP},
};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::Ipv6Hdr,
};

use crate::{
    conntrack,
    deliver::{self, ToEndpoint as _},
    family::{Family, Layer3},
    forward::{self, Class},
    l4::{self, IP_OFF},
    maps,
    nat::rev_snat,
    parse, route,
    v4::V4,
    v6::V6,
    verdict::Verdict,
};

/// An endpoint's frame on its host-side veth: IPv4, or IPv6 in a
/// dual-stack network, to a peer.
#[inline(always)]
pub fn from_endpoint(ctx: &XdpContext, ifindex: u32) -> Verdict {
    if let Some((eth, ip)) = plain::<V4>(ctx) {
        // SAFETY: bounds checked by `plain`; no helper moves packet data.
        return to_peer::<V4>(ctx, ifindex, unsafe { (&mut *eth, &mut *ip) });
    }
    if let Some((eth, ip)) = plain6(ctx) {
        // SAFETY: as above.
        return to_peer::<V6>(ctx, ifindex, unsafe { (&mut *eth, &mut *ip) });
    }
    Verdict::ToHost
}

/// A packet the gate finds for a peer goes to it; the gate's drops are
/// TC's to make and count.
#[inline(always)]
fn to_peer<F: Layer3>(
    ctx: &XdpContext,
    ifindex: u32,
    (eth, ip): (&mut EthHdr, &mut F::Hdr),
) -> Verdict {
    match forward::classify::<F>(ifindex, eth, ip) {
        Ok(Class::Peer(peer)) if ctx.can_send_to(&peer) => {
            deliver::to_peer::<F>(ctx, eth, ip, &peer)
        }
        _ => Verdict::ToHost,
    }
}

/// A frame on the uplink (`ifindex`): a reply of a live flow takes the body
/// TC's reverse NAT takes.
#[inline(always)]
pub fn from_uplink(ctx: &XdpContext, ifindex: u32) -> Result<Verdict, DropReason> {
    let Some((_, ip)) = plain::<V4>(ctx) else {
        return Ok(Verdict::ToHost);
    };
    // SAFETY: bounds checked by `plain`.
    let header = unsafe { *ip };
    let Some(config) = maps::nat_config() else {
        return Ok(Verdict::ToHost);
    };
    // For an endpoint: a routed hop in or a policy drop, TC's.
    if !matches!(
        route::classify_from_uplink::<V4>(ifindex, &header),
        Ok(None)
    ) {
        return Ok(Verdict::ToHost);
    }
    // Plain and whole (`plain`): at `L4_OFF`.
    let datagram = V4::transport(ctx, &header)?;
    let Some(seg) = l4::segment::<V4>(ctx, datagram.off, datagram.proto, Direction::Ingress)?
    else {
        return Ok(Verdict::ToHost);
    };
    let key = seg.tuple::<V4>(&header).arriving_key();
    let now = conntrack::now_ns();
    // No live flow (a new one, or an expired flow that may be a new
    // connection to a published port): TC's.
    let Some(entry) = rev_snat::live_flow::<V4>(config, &key, now) else {
        return Ok(Verdict::ToHost);
    };
    // No hop left: a drop, TC's to make and count.
    if V4::hop_limit(&header) <= 1 {
        return Ok(Verdict::ToHost);
    }
    // SAFETY: a live map value; per-packet updates of plain fields.
    let entry = unsafe { &mut *entry };
    rev_snat::to_endpoint::<V4, _>(ctx, &header, entry, &seg, &datagram, now)
}

/// The frame's Ethernet and IPv6 headers if it carries TCP or UDP right
/// after the fixed header, in a dual-stack network: the only IPv6 the fast
/// path takes. Neighbour discovery, router messages and extension headers
/// (which `router_guard` walks) are TC's.
#[inline(always)]
fn plain6(ctx: &XdpContext) -> Option<(*mut EthHdr, *mut Ipv6Hdr)> {
    maps::network6()?;
    let eth = parse::header_at::<EthHdr>(ctx, 0).ok()?;
    let ip = parse::header_at::<Ipv6Hdr>(ctx, IP_OFF).ok()?;
    // SAFETY: bounds checked by `header_at`.
    let plain = unsafe {
        (*eth).ether_type == EtherType::Ipv6 as u16
            && V6::valid(&*ip)
            && matches!((*ip).next_hdr, IPPROTO_TCP | IPPROTO_UDP)
    };
    plain.then_some((eth, ip))
}

/// The frame's Ethernet and network headers if they are the family's,
/// plain and whole (not a fragment), with a good header: the only kind the
/// fast path takes.
#[inline(always)]
fn plain<F: Family>(ctx: &XdpContext) -> Option<(*mut EthHdr, *mut F::Hdr)> {
    let eth = parse::header_at::<EthHdr>(ctx, 0).ok()?;
    let ip = parse::header_at::<F::Hdr>(ctx, IP_OFF).ok()?;
    // SAFETY: bounds checked by `header_at`.
    let plain = unsafe {
        (*eth).ether_type == F::ETHER_TYPE
            && F::valid(&*ip)
            && l4::translatable::<F>(&*ip)
            && F::header_ok(&*ip)
    };
    plain.then_some((eth, ip))
}
