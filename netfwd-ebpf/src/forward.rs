//! Endpoint-to-endpoint forwarding: what the Linux bridge did, as one map
//! lookup and a redirect into the destination's namespace. `classify` is
//! the one gate an endpoint's packet passes, in TC and XDP alike: its
//! source checked (anti-spoofing), then a peer (with `icc`), a remote
//! address, or itself.

use aya_ebpf::programs::TcContext;
use netfwd_common::{
    drop::DropReason,
    maps::{EndpointEntry, NETWORK_NO_ICC},
};
use network_types::eth::EthHdr;

use crate::{
    deliver,
    family::{Family, Layer3},
    l4::IP_OFF,
    maps, parse, route,
    verdict::Verdict,
};

/// Where an endpoint's packet, its source checked, is bound.
pub enum Class {
    /// Another endpoint of the network, which `icc` lets it reach.
    Peer(EndpointEntry),
    /// No endpoint of the network: routed, translated or the host's.
    Remote,
    /// Addressed to itself through the gateway: the stack hairpins it.
    Itself,
}

/// The gate for an endpoint's packet (`eth`, `ip`) arriving on its
/// host-side veth `ifindex`: nothing leaves an endpoint but with its own
/// addresses, and endpoints reach each other only where `icc` allows.
#[inline(always)]
pub fn classify<F: Layer3>(ifindex: u32, eth: &EthHdr, ip: &F::Hdr) -> Result<Class, DropReason> {
    if !F::valid(ip) {
        return Err(DropReason::Malformed);
    }
    match F::endpoint(F::saddr(ip)) {
        Some(me) if me.host_ifindex == ifindex && me.mac == eth.src_addr => {}
        Some(me) if me.host_ifindex == ifindex => return Err(DropReason::MacSpoofed),
        _ => return Err(DropReason::IpSpoofed),
    }
    let Some(peer) = F::endpoint(F::daddr(ip)) else {
        return Ok(Class::Remote);
    };
    if peer.host_ifindex == ifindex {
        return Ok(Class::Itself);
    }
    if maps::network_flags() & NETWORK_NO_ICC != 0 {
        return Err(DropReason::Icc);
    }
    Ok(Class::Peer(peer))
}

/// TC's front: an endpoint's packet delivered to its peer, or routed or translated towards a
/// remote host; the gateway, the host's other addresses, broadcast and
/// multicast go to the host's stack.
#[inline(always)]
pub fn from_endpoint<F: Family>(ctx: &TcContext, ifindex: u32) -> Result<Verdict, DropReason> {
    let ip = parse::header_mut::<F::Hdr>(ctx, IP_OFF)?;
    let eth = parse::header_mut::<EthHdr>(ctx, 0)?;
    // SAFETY: bounds checked by `header_mut`.
    let (ip, eth) = unsafe { (&mut *ip, &mut *eth) };
    match classify::<F>(ifindex, eth, ip)? {
        Class::Peer(peer) => Ok(deliver::to_peer::<F>(ctx, eth, ip, &peer)),
        Class::Remote => route::from_endpoint_to_remote::<F>(ctx, ifindex),
        Class::Itself => Ok(Verdict::ToHost),
    }
}
