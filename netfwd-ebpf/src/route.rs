//! Routing without NAT: endpoint traffic to another host's endpoints (a
//! `[[peer]]` subnet) leaves straight out of the device the routing table
//! names, and traffic from the LAN for an endpoint goes straight in — each a
//! hop, with the TTL decremented. What neither applies to is source-NATed
//! out of the uplink, or reverse-NATed in.

use aya_ebpf::programs::TcContext;
use netfwd_common::{
    drop::DropReason,
    maps::{EndpointEntry, REMOTE_ISOLATED, REMOTE_ROUTE, REMOTE_TRUSTED},
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use crate::{
    deliver::{self, ToEndpoint as _},
    fib, ipv4,
    l4::IP_OFF,
    maps,
    nat::{hairpin, rev_snat, snat},
    parse,
    verdict::Verdict,
};

/// An endpoint's IPv4 packet (its source checked) for an address that is no
/// endpoint of the network.
#[inline(always)]
pub fn from_endpoint_to_remote(ctx: &TcContext, ifindex: u32) -> Result<Verdict, DropReason> {
    // SAFETY: bounds checked by `header_mut`; copied out before any pull.
    let ip = unsafe { *parse::header_mut::<Ipv4Hdr>(ctx, IP_OFF)? };
    // Routed or translated from here on: as a router, never forward a
    // corrupt header.
    if !ipv4::header_checksum_ok(&ip) {
        return Err(DropReason::Malformed);
    }
    // Broadcast and multicast are no one's to route or translate (a FIB
    // lookup would happily send them down the default route): the host's
    // stack takes them, and does not forward them.
    if ipv4::is_broadcast_or_multicast(ip.dst_addr) {
        return Ok(Verdict::ToHost);
    }
    let to_gateway = maps::gateway() == Some(ip.dst_addr);
    if to_gateway && let Some(verdict) = hairpin::from_published(ctx, &ip)? {
        return Ok(verdict);
    }
    let remote = maps::remote_flags(ip.dst_addr);
    if remote & REMOTE_ISOLATED != 0 {
        return Err(DropReason::Isolated);
    }
    // Peers and allowed networks are routed; so are the LAN's own hosts,
    // which may reach endpoints by address and are answered in kind.
    if remote & (REMOTE_ROUTE | REMOTE_TRUSTED) != 0 {
        return route_out(ctx, ifindex, &ip);
    }
    if maps::in_subnet(ip.dst_addr) {
        // The gateway is the host's; any other address of the subnet is
        // no endpoint's (they were looked up first), and the host, which
        // has no such neighbour, would route it out untranslated.
        return if to_gateway {
            Ok(Verdict::ToHost)
        } else {
            Err(DropReason::NoEndpoint)
        };
    }
    snat::translate(ctx, ifindex, &ip)
}

/// To a peer host's endpoints: out of wherever the routing table says, with
/// the endpoint's own address.
#[inline(always)]
fn route_out(ctx: &TcContext, ifindex: u32, ip: &Ipv4Hdr) -> Result<Verdict, DropReason> {
    let Some(route) = fib::lookup(ctx, ifindex, ip.src_addr, ip.dst_addr) else {
        return Ok(Verdict::ToHost);
    };
    let hopped = hop(ctx, ip, |eth| deliver::set_hop_macs(eth, &route.hop))?;
    if !hopped {
        return Ok(Verdict::ToHost);
    }
    Ok(Verdict::Routed(route.hop.redirect()))
}

/// A packet arriving on the uplink or the LAN (`ifindex`). To an endpoint:
/// delivered if its source is trusted (a peer host's endpoints, the LAN's
/// own hosts) and it came in on the trusted interface, where those are;
/// dropped otherwise (the FORWARD policy: from the uplink's side, only replies get in,
/// and those are addressed to the uplink). Else: a reply of a NATed flow, or
/// the host's.
#[inline(always)]
pub fn from_uplink(ctx: &TcContext, ifindex: u32) -> Result<Verdict, DropReason> {
    // SAFETY: bounds checked by `header_mut`; copied out before any pull.
    let ip = unsafe { *parse::header_mut::<Ipv4Hdr>(ctx, IP_OFF)? };
    if !ipv4::header_checksum_ok(&ip) {
        return Err(DropReason::Malformed);
    }
    match maps::endpoint(ip.dst_addr) {
        Some(ep)
            if maps::trusted_iface(ifindex)
                && maps::remote_flags(ip.src_addr) & REMOTE_TRUSTED != 0 =>
        {
            route_in(ctx, &ip, &ep)
        }
        Some(_) => Err(DropReason::Policy),
        None => rev_snat::translate(ctx, &ip),
    }
}

#[inline(always)]
fn route_in(ctx: &TcContext, ip: &Ipv4Hdr, ep: &EndpointEntry) -> Result<Verdict, DropReason> {
    if !hop(ctx, ip, |eth| deliver::set_endpoint_macs(eth, ep))? {
        return Ok(Verdict::ToHost);
    }
    Ok(Verdict::Routed(ctx.redirect_to(ep)))
}

/// One routed hop: the TTL decremented and the frame re-addressed by
/// `set_macs`. `false` when no TTL is left: the stack's, which answers
/// "time exceeded".
#[inline(always)]
fn hop(
    ctx: &TcContext,
    ip: &Ipv4Hdr,
    set_macs: impl FnOnce(&mut EthHdr),
) -> Result<bool, DropReason> {
    if ip.ttl <= 1 {
        return Ok(false);
    }
    let eth = parse::header_at::<EthHdr>(ctx, 0)?;
    let ipp = parse::header_at::<Ipv4Hdr>(ctx, IP_OFF)?;
    // SAFETY: bounds checked by `header_at`; no helper runs in between.
    unsafe {
        ipv4::dec_ttl(&mut *ipp);
        set_macs(&mut *eth);
    }
    Ok(true)
}
