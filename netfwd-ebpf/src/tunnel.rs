//! The VXLAN backend's encapsulation (`backend = "vxlan"`), as Cilium does
//! it: the packet gets a tunnel key (the far end, the VNI) and is
//! redirected to the network's one collect-metadata VXLAN device, which
//! encapsulates it. No device or FDB entry per peer: the key says where it
//! goes. Only TC can set a key; XDP passes such packets on to TC. What
//! comes out of the tunnel is checked against its key in turn: the
//! cluster's VNI, sent by the member its source address belongs to.

use aya_ebpf::{
    bindings::bpf_tunnel_key,
    helpers::{bpf_redirect, bpf_skb_get_tunnel_key, bpf_skb_set_tunnel_key},
    programs::TcContext,
};
use netfwd_common::{drop::DropReason, maps::TunnelConfig};

use crate::{family::Family, maps};

/// Outer TTL: the underlay may be several routers deep.
const TUNNEL_TTL: u8 = 64;

/// Where a packet for `dst` enters the tunnel: the device and VNI, and
/// the far end (a member's LAN address); `None` if `dst` is behind no
/// member's tunnel.
#[inline(always)]
pub fn far_end<F: Family>(dst: F::Addr) -> Option<(TunnelConfig, [u8; 4])> {
    Some((maps::tunnel()?, F::tunnel_far_end(dst)?))
}

/// Sends the packet into the tunnel: keyed for `far_end` and redirected to
/// the VXLAN device, which encapsulates it. Returns the TC action.
#[inline(always)]
pub fn send(ctx: &TcContext, tunnel: TunnelConfig, far_end: [u8; 4]) -> Result<i32, DropReason> {
    // SAFETY: a plain C struct, all zeroes valid.
    let mut key: bpf_tunnel_key = unsafe { core::mem::zeroed() };
    key.tunnel_id = tunnel.vni;
    // The helper takes the far end in host byte order.
    key.__bindgen_anon_1.remote_ipv4 = u32::from_be_bytes(far_end);
    key.tunnel_ttl = TUNNEL_TTL;
    // SAFETY: `key` lives across the call, its size is the struct's.
    let set = unsafe {
        bpf_skb_set_tunnel_key(ctx.skb.skb, &mut key, size_of::<bpf_tunnel_key>() as u32, 0)
    };
    if set != 0 {
        return Err(DropReason::Unsupported);
    }
    // SAFETY: plain helper call.
    Ok(unsafe { bpf_redirect(tunnel.ifindex, 0) } as i32)
}

/// Whether a packet the tunnel `tunnel` brought in, from `saddr`, came with
/// the cluster's VNI from the member `saddr` is behind: a member sends
/// with its own endpoints' addresses only.
#[inline(always)]
pub fn sent_by_its_member<F: Family>(
    ctx: &TcContext,
    tunnel: TunnelConfig,
    saddr: F::Addr,
) -> bool {
    let Some(far_end) = F::tunnel_far_end(saddr) else {
        return false;
    };
    // SAFETY: a plain C struct, all zeroes valid.
    let mut key: bpf_tunnel_key = unsafe { core::mem::zeroed() };
    // SAFETY: `key` lives across the call, its size is the struct's.
    let got = unsafe {
        bpf_skb_get_tunnel_key(ctx.skb.skb, &mut key, size_of::<bpf_tunnel_key>() as u32, 0)
    };
    // SAFETY: an IPv4 key (no BPF_F_TUNINFO_IPV6): the union's IPv4 side.
    got == 0
        && key.tunnel_id == tunnel.vni
        && unsafe { key.__bindgen_anon_1.remote_ipv4 } == u32::from_be_bytes(far_end)
}
