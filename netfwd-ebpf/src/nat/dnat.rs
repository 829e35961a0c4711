//! Destination NAT for published ports (Docker's `-p`): a client's new
//! connection to a published host port becomes a flow to the endpoint behind
//! it.

use netfwd_common::{
    drop::DropReason,
    maps::REMOTE_LOCAL,
    nat::{
        FLOW_REMOTE_STARTED, FlowSender, IPPROTO_TCP, IPPROTO_UDP, NatConfig, NatEntry, NatKey,
        PublishTarget,
    },
};

use super::ports;
use crate::{conntrack, early_drop, family::Family, fib, l4::Segment, parse::Packet};

/// A new connection to a published port (Docker's `-p`): the flow's two
/// entries are made as for one an endpoint started, the other way round —
/// replies from the endpoint then leave through the source NAT path with the
/// published address and port, and the endpoint sees the client's own
/// address. Only a connection to the host (`to_host`) is one, only a SYN
/// opens a TCP connection (`tcp_no_flow` otherwise), and only from a
/// source that can be outside (`martian_source` otherwise). Returns the new
/// ingress entry, `None` if the port is not published at the packet's
/// destination.
#[inline(always)]
pub fn publish<F: Family>(
    ctx: &impl Packet,
    config: &NatConfig,
    key: &NatKey<F::Addr>,
    seg: &Segment,
    now: u64,
) -> Result<Option<*mut NatEntry<F::Addr>>, DropReason> {
    if !to_host::<F>(config, key.daddr) || (key.proto != IPPROTO_TCP && key.proto != IPPROTO_UDP) {
        return Ok(None);
    }
    let Some(target) = F::published_outside(key.proto, key.dport) else {
        return Ok(None);
    };
    const OPENING: u8 = conntrack::TCP_SYN | conntrack::TCP_ACK | conntrack::TCP_RST;
    if key.proto == IPPROTO_TCP && seg.tcp_flags & OPENING != conntrack::TCP_SYN {
        return Err(DropReason::TcpNoFlow);
    }
    if martian::<F>(ctx, key.saddr, &target) {
        return Err(DropReason::MartianSource);
    }
    let sender = FlowSender::published(key.proto, target.addr, target.port);
    early_drop::admit::<F>(&sender, config)?;
    let mut inbound = NatEntry::new(target.addr, target.port, FLOW_REMOTE_STARTED, now);
    conntrack::seen_ingress::<F>(&mut inbound, key.proto, seg, now);
    let nat = F::nat();
    // Replaces an expired flow of this tuple, if any (checked by the caller).
    // SAFETY: plain data; a stale copy at worst.
    if let Some(expired) = unsafe { nat.get(key) } {
        early_drop::forget::<F>(key.proto, expired);
    }
    if nat.insert(key, inbound, 0).is_err()
        && !(F::EVICTS_IN_PLACE
            && early_drop::make_room::<F>()
            && nat.insert(key, inbound, 0).is_ok())
    {
        return Err(DropReason::NatFull);
    }
    early_drop::count_new::<F>(&sender, key);
    let out = NatEntry::new(key.daddr, key.dport, FLOW_REMOTE_STARTED, now);
    ports::insert_egress::<F>(&key.egress_partner(&inbound), &out, key)?;
    Ok(nat.get_ptr_mut(key))
}

/// Whether a packet for `dst` arriving on the uplink is addressed to the
/// host, where its ports are published: `dst` is the uplink's address of
/// the family (`NatConfig::uplink_addr`, `uplink_addr6`), as Docker's DNAT
/// matches only `--dst-type LOCAL`. An address the host routes (an
/// untranslated prefix's endpoint, a routed network's, another host's) is
/// never a published port's, whatever its port; nor is any address of a
/// family the uplink has none of.
#[inline(always)]
pub(super) fn to_host<F: Family>(config: &NatConfig, dst: F::Addr) -> bool {
    F::uplink_addr(config) == Some(dst)
}

/// Whether a client at `src` cannot be outside: an address of a netfwd
/// network of the host (this one's subnet, the gateway included, or
/// another network's: the endpoint would answer a sibling, or the gateway,
/// from inside the network) or of the host itself. The kernel drops such a
/// source as a martian; the datapath goes round its check.
#[inline(always)]
fn martian<F: Family>(ctx: &impl Packet, src: F::Addr, target: &PublishTarget<F::Addr>) -> bool {
    if F::in_subnet(src) || F::remote_flags(src) & REMOTE_LOCAL != 0 {
        return true;
    }
    // Routed as from the endpoint's veth, where forwarding is on.
    F::endpoint(target.addr).is_some_and(|ep| fib::is_host_address::<F>(ctx, ep.host_ifindex, src))
}
