//! Routing without NAT: endpoint traffic to another host's endpoints (a
//! `[[peer]]` subnet) leaves straight out of the device the routing table
//! names, and traffic from the LAN for an endpoint goes straight in — each a
//! hop, with the hop limit decremented. What neither applies to is
//! source-NATed out of the uplink, or reverse-NATed in. Another cluster
//! member's endpoints behind the VXLAN tunnel are a hop into the tunnel
//! (`tunnel`), and what the tunnel brings in is for endpoints alone.
//! `classify_from_uplink` is the gate a packet arriving on the uplink, LAN
//! or tunnel passes, in TC and XDP alike.

use aya_ebpf::programs::TcContext;
use netfwd_common::{
    drop::DropReason,
    maps::{EndpointEntry, REMOTE_ISOLATED, REMOTE_ROUTE, REMOTE_TRUSTED, REMOTE_TUNNEL},
};
use network_types::eth::EthHdr;

use crate::{
    deliver::{self, ToEndpoint as _},
    family::Family,
    fib,
    l4::IP_OFF,
    maps,
    nat::{hairpin, rev_snat, snat},
    parse, tunnel,
    verdict::Verdict,
};

/// An endpoint's packet (its source checked) for an address that is no
/// endpoint of the network.
#[inline(always)]
pub fn from_endpoint_to_remote<F: Family>(
    ctx: &TcContext,
    ifindex: u32,
) -> Result<Verdict, DropReason> {
    // SAFETY: bounds checked by `header_mut`; copied out before any pull.
    let ip = unsafe { *parse::header_mut::<F::Hdr>(ctx, IP_OFF)? };
    // Routed or translated from here on: as a router, never forward a
    // corrupt header.
    if !F::header_ok(&ip) {
        return Err(DropReason::Malformed);
    }
    let dst = F::daddr(&ip);
    // Broadcast and multicast are no one's to route or translate (a FIB
    // lookup would happily send them down the default route): the host's
    // stack takes them, and does not forward them.
    if F::is_broadcast_or_multicast(dst) {
        return Ok(Verdict::ToHost);
    }
    let to_gateway = F::gateway() == Some(dst);
    if to_gateway && let Some(verdict) = hairpin::from_published::<F>(ctx, &ip)? {
        return Ok(verdict);
    }
    let remote = F::remote_flags(dst);
    if remote & REMOTE_ISOLATED != 0 {
        return Err(DropReason::Isolated);
    }
    if remote & REMOTE_TUNNEL != 0 {
        return route_into_tunnel::<F>(ctx, &ip);
    }
    // Peers and allowed networks are routed; so are the LAN's own hosts,
    // which may reach endpoints by address and are answered in kind.
    if remote & (REMOTE_ROUTE | REMOTE_TRUSTED) != 0 {
        return route_out::<F>(ctx, ifindex, &ip);
    }
    if F::in_subnet(dst) {
        // The gateway is the host's; any other address of the subnet is
        // no endpoint's (they were looked up first), and the host, which
        // has no such neighbour, would route it out untranslated.
        return if to_gateway {
            Ok(Verdict::ToHost)
        } else {
            Err(DropReason::NoEndpoint)
        };
    }
    snat::translate::<F>(ctx, ifindex, &ip)
}

/// To a peer host's endpoints: out of wherever the routing table says, with
/// the endpoint's own address.
#[inline(always)]
fn route_out<F: Family>(ctx: &TcContext, ifindex: u32, ip: &F::Hdr) -> Result<Verdict, DropReason> {
    let Some(next) = fib::lookup::<F>(ctx, ifindex, F::saddr(ip), F::daddr(ip)) else {
        return Ok(Verdict::ToHost);
    };
    let hopped = hop::<F>(ctx, ip, |eth| deliver::set_hop_macs(eth, &next))?;
    if !hopped {
        return Ok(Verdict::ToHost);
    }
    Ok(Verdict::Routed(next.redirect()))
}

/// To another cluster member's endpoints: a hop into the VXLAN tunnel,
/// with the endpoint's own address. The frame's MACs stay: the far end's
/// datapath sets the endpoint's own on delivery.
#[inline(always)]
fn route_into_tunnel<F: Family>(ctx: &TcContext, ip: &F::Hdr) -> Result<Verdict, DropReason> {
    // A member whose far end is gone meanwhile (the routes changing under
    // the packet): the host has no route there that would not leak it.
    let (tunnel, far_end) = tunnel::far_end::<F>(F::daddr(ip)).ok_or(DropReason::Policy)?;
    if !hop::<F>(ctx, ip, |_| {})? {
        return Ok(Verdict::ToHost);
    }
    Ok(Verdict::Routed(tunnel::send(ctx, tunnel, far_end)?))
}

/// The gate for a packet (`ip`) arriving on the uplink, the LAN or the
/// tunnel (`ifindex`). To an endpoint: let in if its source is trusted and
/// it came in where that source's packets come in: `Some(endpoint)`, a
/// routed hop in; dropped otherwise (the FORWARD policy: from the uplink's
/// side, only replies get in, and those are addressed to the uplink).
/// `None` for no endpoint: a reply of a NATed flow, or the host's; and for
/// an endpoint that leaves untranslated (`nat6 = false`), whose flows'
/// replies the NAT lets in and drops the rest. What the tunnel brings in is
/// never NATed: for no endpoint, it is dropped.
#[inline(always)]
pub fn classify_from_uplink<F: Family>(
    ifindex: u32,
    ip: &F::Hdr,
) -> Result<Option<EndpointEntry>, DropReason> {
    match F::endpoint(F::daddr(ip)) {
        Some(ep) if trusted_source::<F>(ifindex, F::saddr(ip)) => Ok(Some(ep)),
        // Endpoints that leave untranslated (`nat6 = false`) are answered
        // at their own addresses: the NAT table's flows, mapped to
        // themselves, let the replies in (`rev_snat`), and drop the rest.
        Some(_) if F::leaves_untranslated() && !maps::tunnel_iface(ifindex) => Ok(None),
        Some(_) => Err(DropReason::Policy),
        None if maps::tunnel_iface(ifindex) => Err(DropReason::Policy),
        None => Ok(None),
    }
}

/// Whether `saddr` may reach endpoints arriving on `ifindex`: another
/// member's endpoints through the tunnel only, the peer hosts' endpoints
/// and the LAN's own hosts on the trusted interface only.
#[inline(always)]
fn trusted_source<F: Family>(ifindex: u32, saddr: F::Addr) -> bool {
    let flags = F::remote_flags(saddr);
    if flags & REMOTE_TUNNEL != 0 {
        maps::tunnel_iface(ifindex)
    } else {
        flags & REMOTE_TRUSTED != 0 && maps::trusted_iface(ifindex)
    }
}

/// TC's front on the uplink and the LAN (`ifindex`): a trusted packet for
/// an endpoint routed in, a reply of a NATed flow translated back, the
/// host's passed on.
#[inline(always)]
pub fn from_uplink<F: Family>(ctx: &TcContext, ifindex: u32) -> Result<Verdict, DropReason> {
    // SAFETY: bounds checked by `header_mut`; copied out before any pull.
    let ip = unsafe { *parse::header_mut::<F::Hdr>(ctx, IP_OFF)? };
    if !F::header_ok(&ip) {
        return Err(DropReason::Malformed);
    }
    match classify_from_uplink::<F>(ifindex, &ip)? {
        Some(ep) => {
            // Out of the tunnel: the key it came with names its sender
            // (what XDP, which never runs on the tunnel, cannot read).
            if let Some(tunnel) = maps::tunnel().filter(|t| t.ifindex == ifindex)
                && !tunnel::sent_by_its_member::<F>(ctx, tunnel, F::saddr(&ip))
            {
                return Err(DropReason::IpSpoofed);
            }
            route_in::<F>(ctx, &ip, &ep)
        }
        None => rev_snat::translate::<F>(ctx, &ip),
    }
}

#[inline(always)]
fn route_in<F: Family>(
    ctx: &TcContext,
    ip: &F::Hdr,
    ep: &EndpointEntry,
) -> Result<Verdict, DropReason> {
    if !hop::<F>(ctx, ip, |eth| deliver::set_endpoint_macs(eth, ep))? {
        return Ok(Verdict::ToHost);
    }
    Ok(Verdict::Routed(ctx.redirect_to(ep)))
}

/// One routed hop: the hop limit decremented and the frame re-addressed by
/// `set_macs`. `false` when no hop is left: the stack's, which answers
/// "time exceeded".
#[inline(always)]
fn hop<F: Family>(
    ctx: &TcContext,
    ip: &F::Hdr,
    set_macs: impl FnOnce(&mut EthHdr),
) -> Result<bool, DropReason> {
    if F::hop_limit(ip) <= 1 {
        return Ok(false);
    }
    let eth = parse::header_at::<EthHdr>(ctx, 0)?;
    let ipp = parse::header_at::<F::Hdr>(ctx, IP_OFF)?;
    // SAFETY: bounds checked by `header_at`; no helper runs in between.
    unsafe {
        F::dec_hop_limit(&mut *ipp);
        set_macs(&mut *eth);
    }
    Ok(true)
}
