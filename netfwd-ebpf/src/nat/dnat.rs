//! Destination NAT for published ports (Docker's `-p`): a client's new
//! connection to a published host port becomes a flow to the endpoint behind
//! it.

use netfwd_common::{
    drop::DropReason,
    nat::{FLOW_REMOTE_STARTED, IPPROTO_TCP, IPPROTO_UDP, NatEntry, NatKey},
};

use super::ports;
use crate::{
    conntrack, early_drop,
    l4::Segment,
    maps::{self, NAT},
};

/// A new connection to a published port (Docker's `-p`): the flow's two
/// entries are made as for one an endpoint started, the other way round —
/// replies from the endpoint then leave through the source NAT path with the
/// published address and port, and the endpoint sees the client's own
/// address. Only a SYN opens a TCP connection (`tcp_no_flow` otherwise).
/// Returns the new ingress entry, `None` if the port is not
/// published.
#[inline(always)]
pub fn publish(key: &NatKey, seg: &Segment, now: u64) -> Result<Option<*mut NatEntry>, DropReason> {
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
    let mut inbound = NatEntry::new(target.addr, target.port, FLOW_REMOTE_STARTED, now);
    conntrack::seen_ingress(&mut inbound, key.proto, seg, now);
    // Replaces an expired flow of this tuple, if any (checked by the caller).
    if ports::insert_making_room(key, &inbound, 0).is_err() {
        return Err(DropReason::NatFull);
    }
    early_drop::remember(key);
    let out = NatEntry::new(key.daddr, key.dport, FLOW_REMOTE_STARTED, now);
    ports::insert_egress(&key.egress_partner(&inbound), &out, key)?;
    Ok(NAT.get_ptr_mut(key))
}
