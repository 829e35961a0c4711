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
use netfwd_common::{
    drop::DropReason,
    maps::{EndpointEntry, NETWORK_NO_ICC},
    nat::{IPPROTO_TCP, IPPROTO_UDP},
};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::Ipv4Hdr,
};

use crate::{
    conntrack, csum, ipv4,
    maps::{self, ENDPOINT_TX, NAT},
    nat::{self, Way},
    parse,
    verdict::Verdict,
};

const IP_OFF: usize = EthHdr::LEN;
const L4_OFF: usize = IP_OFF + Ipv4Hdr::LEN;

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
        || !can_send_to(&peer)
    {
        return Verdict::ToHost;
    }
    // Sent to the gateway's MAC: a routed hop, as in `forward`.
    if eth.dst_addr != peer.mac {
        if ip.ttl <= 1 {
            return Verdict::ToHost;
        }
        ipv4::dec_ttl(ip);
        nat::set_endpoint_macs(eth, &peer);
    }
    Verdict::Redirected(redirect(&peer))
}

/// A frame on the uplink.
#[inline(always)]
pub fn from_uplink(ctx: &XdpContext) -> Result<Verdict, DropReason> {
    let Some((eth, ip)) = plain_ipv4(ctx) else {
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
    let Some(seg) = nat::segment(ctx, header.proto, Way::In)? else {
        return Ok(Verdict::ToHost);
    };
    let key = nat::packet_key(&header, &seg);
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
    let Some(ep) = maps::endpoint(entry.addr) else {
        return Ok(Verdict::ToHost);
    };
    if header.ttl <= 1 || !can_send_to(&ep) {
        return Ok(Verdict::ToHost);
    }
    conntrack::seen_ingress(entry, header.proto, &seg, now);
    let (inside_addr, inside_port) = (entry.addr, entry.port);
    // SAFETY: bounds checked by `plain_ipv4`; map lookups leave packet
    // pointers valid.
    unsafe {
        nat::rewrite_ip(&mut *ip, Way::In, inside_addr);
        nat::set_endpoint_macs(&mut *eth, &ep);
    }
    rewrite_l4(
        ctx,
        header.proto,
        (header.dst_addr, inside_addr),
        (seg.dport, inside_port),
    )?;
    Ok(Verdict::Translated(redirect(&ep)))
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
            && nat::translatable(&*ip)
            && ipv4::header_checksum_ok(&*ip)
    };
    plain.then_some((eth, ip))
}

/// Whether the endpoint's veth takes XDP frames (see the module comment).
#[inline(always)]
fn can_send_to(ep: &EndpointEntry) -> bool {
    ENDPOINT_TX.get_ifindex(ep.host_ifindex).is_some()
}

/// `XDP_REDIRECT` to the endpoint's veth. `can_send_to` was checked before
/// the frame was changed; should the entry go in between, the frame is
/// dropped rather than passed on half-translated.
#[inline(always)]
fn redirect(ep: &EndpointEntry) -> i32 {
    const XDP_DROP: u64 = aya_ebpf::bindings::xdp_action::XDP_DROP as u64;
    match ENDPOINT_TX.redirect(ep.host_ifindex, XDP_DROP) {
        Ok(action) | Err(action) => action as i32,
    }
}

/// The destination port (the identifier, for an ICMP echo reply) and the
/// transport checksum, updated in place: a frame from the wire carries a
/// full checksum, and no offload state comes along to finish one.
#[inline(always)]
fn rewrite_l4(
    ctx: &XdpContext,
    proto: u8,
    (old_addr, new_addr): ([u8; 4], [u8; 4]),
    (old_port, new_port): ([u8; 2], [u8; 2]),
) -> Result<(), DropReason> {
    // (checksum, port) offsets; TCP and UDP sum a pseudo-header, ICMP not.
    let (check_at, port_at) = match proto {
        IPPROTO_TCP => (L4_OFF + 16, L4_OFF + 2),
        IPPROTO_UDP => (L4_OFF + 6, L4_OFF + 2),
        _ => (L4_OFF + 2, L4_OFF + 4),
    };
    let check = parse::header_at::<[u8; 2]>(ctx, check_at)?;
    let port = parse::header_at::<[u8; 2]>(ctx, port_at)?;
    // SAFETY: bounds checked by `header_at`.
    unsafe {
        let check = &mut *check;
        let udp = proto == IPPROTO_UDP;
        // A UDP datagram without a checksum stays without one.
        if !(udp && *check == [0; 2]) {
            if proto == IPPROTO_TCP || udp {
                csum::replace4(check, old_addr, new_addr);
            }
            csum::replace2(check, old_port, new_port);
            if udp && *check == [0; 2] {
                *check = [0xff; 2];
            }
        }
        *port = new_port;
    }
    Ok(())
}
