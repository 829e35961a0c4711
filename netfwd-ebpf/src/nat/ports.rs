//! Uplink ports: a flow's port is reserved by inserting its ingress entry,
//! which no live flow's entry may be overwritten by; its egress entry
//! follows.

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_get_prandom_u32};
use netfwd_common::{
    drop::DropReason,
    nat::{FlowSender, NatConfig, NatEntry, NatKey, PORT_RETRIES, Tuple},
};

use crate::{conntrack, early_drop, family::Family, l4::Segment, monitor};

/// `bpf_map_update_elem`'s error for a full hash map.
const E2BIG: i32 = -7;

/// Inserts the egress entry of a flow whose ingress entry `ingress_key` was just
/// made, and takes that back if the table is full.
#[inline(always)]
pub fn insert_egress<F: Family>(
    egress_key: &NatKey<F::Addr>,
    out: &NatEntry<F::Addr>,
    ingress_key: &NatKey<F::Addr>,
) -> Result<(), DropReason> {
    let nat = F::nat();
    // No early drop here: a ingress entry just went in, so the table had room
    // a moment ago; on this narrow miss the flow is refused.
    if nat.insert(egress_key, out, 0).is_err() {
        let _ = nat.remove(ingress_key);
        return Err(DropReason::NatFull);
    }
    monitor::nat_created(egress_key, out);
    Ok(())
}

/// The ingress entry of `flow` mapped to `addr:port`, while it is still
/// the flow's: it points back at the flow's source and has not expired
/// (`None` once expired, evicted or taken over by another flow).
#[inline(always)]
pub fn live_ingress<F: Family>(
    flow: &Tuple<F::Addr>,
    (addr, port): (F::Addr, [u8; 2]),
    config: &NatConfig,
    now: u64,
) -> Option<*mut NatEntry<F::Addr>> {
    let ingress = F::nat().get_ptr_mut(flow.ingress_key(addr, port))?;
    // SAFETY: a live map value; read only.
    let entry = unsafe { &*ingress };
    (entry.addr == flow.src
        && entry.port == flow.sport
        && !config.timeouts.expired(flow.proto, entry, now))
    .then_some(ingress)
}

/// Which ports a new flow may take on its way out.
#[derive(Clone, Copy)]
pub enum Ports {
    /// The network's NAT range: `preferred`, else a random start, then
    /// the next ports, `PORT_RETRIES` in all.
    Range { preferred: Option<[u8; 2]> },
    /// The flow's own source port alone: a flow that leaves untranslated
    /// (`Family::leaves_untranslated`) keeps its address and port.
    Own,
}

/// Reserves an uplink port for `flow` by inserting its ingress entry with
/// `BPF_NOEXIST`: a live mapping is never overwritten; one that has expired,
/// or a TCP flow that is over (`conntrack::reclaimable`), is taken over —
/// also when the table is full (`nat_full` only when no port tried held
/// one and no unanswered flow could be evicted for the first port tried),
/// since that frees the room it takes.
/// The new flow counts against its endpoint's share of unanswered flows
/// (`unreplied_share` when that is full).
#[inline(always)]
pub fn reserve_port<F: Family>(
    flow: &Tuple<F::Addr>,
    config: &NatConfig,
    nat_addr: F::Addr,
    ports: Ports,
    seg: &Segment,
    now: u64,
) -> Result<[u8; 2], DropReason> {
    let sender = FlowSender::endpoint(flow.src);
    early_drop::admit::<F>(&sender, config)?;
    let port = insert_ingress::<F>(flow, config, nat_addr, ports, seg, now)?;
    early_drop::count_new::<F>(&sender, &flow.ingress_key(nat_addr, port));
    Ok(port)
}

#[inline(always)]
fn insert_ingress<F: Family>(
    flow: &Tuple<F::Addr>,
    config: &NatConfig,
    nat_addr: F::Addr,
    ports: Ports,
    seg: &Segment,
    now: u64,
) -> Result<[u8; 2], DropReason> {
    let (min, span, start) = match ports {
        Ports::Own => (u32::from(u16::from_be_bytes(flow.sport)), 1, 0),
        Ports::Range { preferred } => {
            let min = u32::from(config.port_min);
            let start = match preferred {
                Some(p) => u32::from(u16::from_be_bytes(p)).wrapping_sub(min),
                // SAFETY: plain helper call.
                None => unsafe { bpf_get_prandom_u32() },
            };
            let span = u32::from(config.port_max.saturating_sub(config.port_min)) + 1;
            (min, span, start)
        }
    };
    let mut ingress = NatEntry::new(flow.src, flow.sport, 0, now);
    conntrack::seen_egress::<F>(&mut ingress, flow.proto, seg, now);
    let nat = F::nat();
    let mut full = false;
    for i in 0..PORT_RETRIES {
        // Every port of the span tried (the own port alone: once).
        if i >= span {
            break;
        }
        let port = ((min + start.wrapping_add(i) % span) as u16).to_be_bytes();
        let key = flow.ingress_key(nat_addr, port);
        match nat.insert(key, ingress, u64::from(BPF_NOEXIST)) {
            Ok(()) => return Ok(port),
            // No room (as opposed to `EEXIST`, a port taken): a flow that
            // is over on one of the next ports can still make some.
            Err(E2BIG) => {
                full = true;
                continue;
            }
            Err(_) => {}
        }
        // SAFETY: plain data; a stale copy at worst.
        let Some(old) = (unsafe { nat.get(key) }).copied() else {
            continue;
        };
        if !config.timeouts.expired(flow.proto, &old, now)
            && !conntrack::reclaimable(&old, flow.proto, now)
        {
            continue;
        }
        // The old flow is over: drop both of its entries and take the port.
        let _ = nat.remove(key.egress_partner(&old));
        let _ = nat.remove(key);
        if nat.insert(key, ingress, u64::from(BPF_NOEXIST)).is_ok() {
            return Ok(port);
        }
    }
    if !full {
        return Err(DropReason::NoPort);
    }
    // Full, and no port tried held a flow that is over: an unanswered flow
    // gives its room up for the first port tried. After the loop, once: the
    // verifier walks the eviction for every state it reaches.
    let port = ((min + start % span) as u16).to_be_bytes();
    let key = flow.ingress_key(nat_addr, port);
    if F::EVICTS_IN_PLACE
        && early_drop::make_room::<F>()
        && nat.insert(key, ingress, u64::from(BPF_NOEXIST)).is_ok()
    {
        return Ok(port);
    }
    Err(DropReason::NatFull)
}
