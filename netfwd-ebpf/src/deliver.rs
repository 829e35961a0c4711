//! Delivery, where every path ends: the frame re-addressed (its MACs) and
//! handed on, into an endpoint or out of the device the routing table names.
//! TC and XDP hand a frame to an endpoint differently (`ToEndpoint`); the
//! rest is one body for both.

use aya_ebpf::{
    helpers::bpf_redirect_peer,
    programs::{TcContext, XdpContext},
};
use netfwd_common::maps::EndpointEntry;
use network_types::eth::EthHdr;

use crate::{family::Layer3, hop::NextHop, maps::ENDPOINT_TX, verdict::Verdict};

/// How a program's context hands a frame to an endpoint.
pub trait ToEndpoint {
    /// Whether a frame can be handed to `ep` from here: checked before the
    /// frame is changed, so what cannot be is passed on untouched.
    fn can_send_to(&self, ep: &EndpointEntry) -> bool;
    /// Hands the frame to `ep`; returns the program's action.
    fn redirect_to(&self, ep: &EndpointEntry) -> i32;
}

impl ToEndpoint for TcContext {
    #[inline(always)]
    fn can_send_to(&self, _ep: &EndpointEntry) -> bool {
        true
    }

    /// From TC ingress, the peer redirect lands the packet on the endpoint's
    /// `eth0` ingress directly.
    #[inline(always)]
    fn redirect_to(&self, ep: &EndpointEntry) -> i32 {
        // SAFETY: plain helper call.
        (unsafe { bpf_redirect_peer(ep.host_ifindex, 0) }) as i32
    }
}

impl ToEndpoint for XdpContext {
    /// Only to a veth in `ENDPOINT_TX`: an XDP redirect hands over a bare
    /// frame, which the endpoint's end must be set up to take (see `xdp`).
    #[inline(always)]
    fn can_send_to(&self, ep: &EndpointEntry) -> bool {
        ENDPOINT_TX.get_ifindex(ep.host_ifindex).is_some()
    }

    /// `XDP_REDIRECT` to the endpoint's veth. `can_send_to` was checked
    /// before the frame was changed; should the entry go in between, the
    /// frame is dropped rather than passed on half-translated.
    #[inline(always)]
    fn redirect_to(&self, ep: &EndpointEntry) -> i32 {
        const XDP_DROP: u64 = aya_ebpf::bindings::xdp_action::XDP_DROP as u64;
        match ENDPOINT_TX.redirect(ep.host_ifindex, XDP_DROP) {
            Ok(action) | Err(action) => action as i32,
        }
    }
}

/// Addresses the frame to endpoint `ep`, from its host-side veth (what the
/// endpoint knows as the gateway's MAC).
#[inline(always)]
pub fn set_endpoint_macs(eth: &mut EthHdr, ep: &EndpointEntry) {
    eth.src_addr = ep.host_mac;
    eth.dst_addr = ep.mac;
}

/// Addresses the frame to the next hop out of the host, when the kernel
/// knows its MAC (otherwise `NextHop::redirect` has the kernel resolve it).
#[inline(always)]
pub fn set_hop_macs(eth: &mut EthHdr, hop: &NextHop) {
    if let Some((smac, dmac)) = hop.macs() {
        eth.src_addr = smac;
        eth.dst_addr = dmac;
    }
}

/// An endpoint's frame for endpoint `peer`, its policy checked: sent to the
/// peer's MAC it goes as it is, as a bridge would; sent to the gateway's MAC
/// (routed networks, or a route via the gateway) it is a hop through the
/// host, as its routing would make it, and the stack's when no hop is left.
#[inline(always)]
pub fn to_peer<F: Layer3>(
    ctx: &impl ToEndpoint,
    eth: &mut EthHdr,
    ip: &mut F::Hdr,
    peer: &EndpointEntry,
) -> Verdict {
    if eth.dst_addr != peer.mac {
        if F::hop_limit(ip) <= 1 {
            return Verdict::ToHost;
        }
        F::dec_hop_limit(ip);
        set_endpoint_macs(eth, peer);
    }
    Verdict::Redirected(ctx.redirect_to(peer))
}
