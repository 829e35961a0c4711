//! The XDP fast path (`mode = "xdp"`). On a host-side veth: an endpoint's
//! IPv4 packet to another endpoint of the network, its source checked, goes
//! straight to that endpoint's veth. On the uplink: a reply of a live NAT
//! flow is translated back and goes straight to its endpoint's veth.
//! Everything else (ARP, a flow's first packet, ICMP errors, fragments,
//! options, whatever policy drops) passes to the stack unchanged, where the
//! TC program behind it decides exactly as in TC mode: XDP changes where a
//! packet is handled, never what happens to it.
//!
//! An XDP redirect hands over a bare frame: no checksum offload state comes
//! with it, and the receiving veth must run NAPI. The loader sees to both
//! (full checksums from the endpoints, GRO on their `eth0`) and lists in
//! `ENDPOINT_TX` only the veths it did that for.

use aya_ebpf::programs::XdpContext;
use netfwd_common::{drop::DropReason, maps::NETWORK_NO_ICC, nat::Direction};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::Ipv4Hdr,
};

use crate::{
    conntrack,
    deliver::{self, ToEndpoint as _},
    frag::Piece,
    ipv4,
    l4::{self, IP_OFF},
    maps::{self, NAT},
    nat::rev_snat,
    parse,
    verdict::Verdict,
};

/// An endpoint's frame on its host-side veth.
#[inline(always)]
pub fn from_endpoint(ctx: &XdpContext, ifindex: u32) -> Verdict {
    let Some((eth, ip)) = plain_ipv4(ctx) else {
        return Verdict::ToHost;
    };
    // SAFETY: bounds checked by `plain_ipv4`; no helper moves packet data.
    let (eth, ip) = unsafe { (&mut *eth, &mut *ip) };
    // Spoofed sources are TC's to drop and count.
    match maps::endpoint(ip.src_addr) {
        Some(me) if me.host_ifindex == ifindex && me.mac == eth.src_addr => {}
        _ => return Verdict::ToHost,
    }
    let Some(peer) = maps::endpoint(ip.dst_addr) else {
        return Verdict::ToHost;
    };
    if peer.host_ifindex == ifindex
        || maps::network_flags() & NETWORK_NO_ICC != 0
        || !ctx.can_send_to(&peer)
    {
        return Verdict::ToHost;
    }
    deliver::to_peer(ctx, eth, ip, &peer)
}

/// A frame on the uplink: a reply of a live flow takes the body TC's
/// reverse NAT takes (`rev_snat::to_endpoint`).
#[inline(always)]
pub fn from_uplink(ctx: &XdpContext) -> Result<Verdict, DropReason> {
    let Some((_, ip)) = plain_ipv4(ctx) else {
        return Ok(Verdict::ToHost);
    };
    // SAFETY: bounds checked by `plain_ipv4`.
    let header = unsafe { *ip };
    let Some(config) = maps::nat_config() else {
        return Ok(Verdict::ToHost);
    };
    // To an endpoint's own address: LAN delivery or a policy drop, TC's.
    if maps::endpoint(header.dst_addr).is_some() {
        return Ok(Verdict::ToHost);
    }
    let Some(seg) = l4::segment(ctx, header.proto, Direction::Ingress)? else {
        return Ok(Verdict::ToHost);
    };
    let key = l4::packet_key(&header, &seg);
    let now = conntrack::now_ns();
    let Some(entry) = NAT.get_ptr_mut(key) else {
        return Ok(Verdict::ToHost);
    };
    // SAFETY: a live map value; per-packet updates of plain fields.
    let entry = unsafe { &mut *entry };
    // An expired flow may be a new connection to a published port: TC's.
    if config.timeouts.expired(header.proto, entry, now) {
        return Ok(Verdict::ToHost);
    }
    // No TTL left: a drop, TC's to make and count.
    if header.ttl <= 1 {
        return Ok(Verdict::ToHost);
    }
    rev_snat::to_endpoint(ctx, &header, entry, &seg, Piece::Whole, now)
}

/// The frame's Ethernet and IPv4 headers if it is IPv4 without options and
/// whole (not a fragment): the only kind the fast path takes.
#[inline(always)]
fn plain_ipv4(ctx: &XdpContext) -> Option<(*mut EthHdr, *mut Ipv4Hdr)> {
    let eth = parse::header_at::<EthHdr>(ctx, 0).ok()?;
    let ip = parse::header_at::<Ipv4Hdr>(ctx, IP_OFF).ok()?;
    // SAFETY: bounds checked by `header_at`.
    let plain = unsafe {
        (*eth).ether_type == EtherType::Ipv4 as u16
            && (*ip).version() == 4
            && l4::translatable(&*ip)
            && ipv4::header_checksum_ok(&*ip)
    };
    plain.then_some((eth, ip))
}
