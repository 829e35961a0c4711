//! Destination NAT for published ports (Docker's `-p`): a client's new
//! connection to a published host port becomes a flow to the endpoint behind
//! it.

use aya_ebpf::programs::TcContext;
use netfwd_common::{
    drop::DropReason,
    nat::{
        FLOW_REMOTE_STARTED, FlowSender, IPPROTO_TCP, IPPROTO_UDP, NatConfig, NatEntry, NatKey,
        PublishTarget,
    },
};

use super::ports;
use crate::{
    conntrack, early_drop, fib,
    l4::Segment,
    maps::{self, NAT},
};

/// A new connection to a published port (Docker's `-p`): the flow's two
/// entries are made as for one an endpoint started, the other way round —
/// replies from the endpoint then leave through the source NAT path with the
/// published address and port, and the endpoint sees the client's own
/// address. Only a SYN opens a TCP connection (`tcp_no_flow` otherwise),
/// and only from a source that can be outside (`martian_source`
/// otherwise). Returns the new ingress entry, `None` if the port is not
/// published.
#[inline(always)]
pub fn publish(
    ctx: &TcContext,
    config: &NatConfig,
    key: &NatKey,
    seg: &Segment,
    now: u64,
) -> Result<Option<*mut NatEntry>, DropReason> {
    if key.proto != IPPROTO_TCP && key.proto != IPPROTO_UDP {
        return Ok(None);
    }
    let Some(target) = maps::published_outside(key.proto, key.dport) else {
        return Ok(None);
    };
    const OPENING: u8 = conntrack::TCP_SYN | conntrack::TCP_ACK | conntrack::TCP_RST;
    if key.proto == IPPROTO_TCP && seg.tcp_flags & OPENING != conntrack::TCP_SYN {
        return Err(DropReason::TcpNoFlow);
    }
    if martian(ctx, key.saddr, &target) {
        return Err(DropReason::MartianSource);
    }
    let sender = FlowSender::published(key.proto, target.addr, target.port);
    early_drop::admit(&sender, config)?;
    let mut inbound = NatEntry::new(target.addr, target.port, FLOW_REMOTE_STARTED, now);
    conntrack::seen_ingress(&mut inbound, key.proto, seg, now);
    // Replaces an expired flow of this tuple, if any (checked by the caller).
    // SAFETY: plain data; a stale copy at worst.
    if let Some(expired) = unsafe { NAT.get(key) } {
        early_drop::forget(key.proto, expired);
    }
    if NAT.insert(key, inbound, 0).is_err()
        && !(early_drop::make_room() && NAT.insert(key, inbound, 0).is_ok())
    {
        return Err(DropReason::NatFull);
    }
    early_drop::count_new(&sender, key);
    let out = NatEntry::new(key.daddr, key.dport, FLOW_REMOTE_STARTED, now);
    ports::insert_egress(&key.egress_partner(&inbound), &out, key)?;
    Ok(NAT.get_ptr_mut(key))
}

/// Whether a client at `src` cannot be outside: an address of a netfwd
/// network of the host (the endpoint would answer a sibling, or the
/// gateway, from inside the network) or of the host itself. The kernel
/// drops such a source as a martian; the datapath goes round its check.
#[inline(always)]
fn martian(ctx: &TcContext, src: [u8; 4], target: &PublishTarget) -> bool {
    if maps::is_network_address(src) {
        return true;
    }
    // Routed as from the endpoint's veth, where forwarding is on.
    maps::endpoint(target.addr).is_some_and(|ep| fib::is_host_address(ctx, ep.host_ifindex, src))
}
