//! Endpoint-to-endpoint forwarding: what the Linux bridge did, as one map
//! lookup and a redirect into the destination's namespace.

use aya_ebpf::programs::TcContext;
use netfwd_common::{drop::DropReason, maps::NETWORK_NO_ICC};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use crate::{deliver, l4::IP_OFF, maps, parse, route, verdict::Verdict};

pub fn ipv4_from_endpoint(ctx: &TcContext, ifindex: u32) -> Result<Verdict, DropReason> {
    let ip = parse::header_mut::<Ipv4Hdr>(ctx, IP_OFF)?;
    let eth = parse::header_mut::<EthHdr>(ctx, 0)?;
    // SAFETY: bounds checked by `header_mut`.
    let (ip, eth) = unsafe { (&mut *ip, &mut *eth) };
    // `ihl()` is in bytes.
    if ip.version() != 4 || usize::from(ip.ihl()) < Ipv4Hdr::LEN {
        return Err(DropReason::Malformed);
    }
    // Anti-spoofing: nothing leaves an endpoint but with its own addresses.
    match maps::endpoint(ip.src_addr) {
        Some(me) if me.host_ifindex == ifindex && me.mac == eth.src_addr => {}
        Some(me) if me.host_ifindex == ifindex => return Err(DropReason::MacSpoofed),
        _ => return Err(DropReason::IpSpoofed),
    }
    let Some(peer) = maps::endpoint(ip.dst_addr) else {
        // Remote hosts through the uplink's NAT; the gateway, the host's
        // other addresses, broadcast and multicast go to the host's stack.
        return route::from_endpoint_to_remote(ctx, ifindex);
    };
    if peer.host_ifindex == ifindex {
        // Addressed to itself through the gateway: let the stack hairpin it.
        return Ok(Verdict::ToHost);
    }
    if maps::network_flags() & NETWORK_NO_ICC != 0 {
        return Err(DropReason::Icc);
    }
    Ok(deliver::to_peer(ctx, eth, ip, &peer))
}
