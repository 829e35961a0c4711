//! Reverse source NAT, ingress: a reply arriving on the uplink finds the
//! inside address and port of its flow (`live_flow`, which TC and XDP both
//! ask), and goes straight into the endpoint; so do ICMP errors about the
//! flow (`icmp_error`) and a new connection to a published port (`dnat`).

use aya_ebpf::programs::TcContext;
use netfwd_common::{
    drop::DropReason,
    nat::{Direction, NatConfig, NatEntry, NatKey},
};
use network_types::eth::EthHdr;

use super::{
    dnat, icmp_error,
    rewrite::{L4Rewrite, rewrite_ip},
};
use crate::{
    conntrack,
    deliver::{self, ToEndpoint},
    family::{Family, Piece},
    frag,
    l4::{self, IP_OFF, Segment, Transport},
    maps, parse,
    verdict::Verdict,
};

/// A packet arriving on the uplink for no endpoint (`ip` is its header):
/// replies of NATed flows and ICMP errors about them go straight to their
/// endpoint, as does a new connection to a published port at the host's
/// address (`dnat`); the rest is the host's. In a network that leaves the
/// family untranslated (`nat6 = false`), a packet for an endpoint's own
/// address too, a reply of its flow (mapped to itself) going in alike; but
/// nothing else for that address is the host's (which would forward it):
/// it is dropped (`policy`), as Docker's routed mode drops what no flow
/// and no published port lets in.
#[inline(always)]
pub fn translate<F: Family>(ctx: &TcContext, ip: &F::Hdr) -> Result<Verdict, DropReason> {
    let to_own_address = F::leaves_untranslated() && F::endpoint(F::daddr(ip)).is_some();
    match translate_reply::<F>(ctx, ip)? {
        Verdict::ToHost if to_own_address => Err(DropReason::Policy),
        verdict => Ok(verdict),
    }
}

/// `translate`'s body.
#[inline(always)]
fn translate_reply<F: Family>(ctx: &TcContext, ip: &F::Hdr) -> Result<Verdict, DropReason> {
    let Some(config) = maps::nat_config() else {
        return Ok(Verdict::ToHost);
    };
    // What the NAT does not translate (options, extension headers) is the
    // host's, as is a later fragment whose first one did not pass.
    let Ok(datagram) = F::transport(ctx, ip) else {
        return Ok(Verdict::ToHost);
    };
    if datagram.piece == Piece::Whole && F::is_icmp_error(ctx, ip)? {
        return icmp_error::rev_snat::<F>(ctx, config);
    }
    let seg = match datagram.piece {
        Piece::Later => match frag::recall::<F>(ip, &datagram, Direction::Ingress) {
            Some(p) => Segment::ports(datagram.proto, p.sport, p.dport),
            None => return Ok(Verdict::ToHost),
        },
        _ => match l4::segment::<F>(ctx, datagram.off, datagram.proto, Direction::Ingress)? {
            Some(seg) => seg,
            None => return Ok(Verdict::ToHost),
        },
    };
    let key = seg.tuple::<F>(ip).arriving_key();
    let now = conntrack::now_ns();
    // No live flow: a new connection to a published port starts one (over
    // an expired flow of the same tuple — clients reuse their ports);
    // anything else is the host's.
    let entry = match live_flow::<F>(config, &key, now) {
        Some(entry) => entry,
        None => match dnat::publish::<F>(ctx, config, &key, &seg, now)? {
            Some(entry) => entry,
            None => return Ok(Verdict::ToHost),
        },
    };
    // SAFETY: a live map value; per-packet updates of plain fields.
    to_endpoint::<F, _>(ctx, ip, unsafe { &mut *entry }, &seg, &datagram, now)
}

/// The ingress entry of the live (unexpired) flow a packet arriving from
/// the uplink with key `key` (its own tuple, `Tuple::arriving_key`)
/// belongs to, if any: the one lookup TC and XDP both make.
#[inline(always)]
pub fn live_flow<F: Family>(
    config: &NatConfig,
    key: &NatKey<F::Addr>,
    now: u64,
) -> Option<*mut NatEntry<F::Addr>> {
    F::nat().get_ptr_mut(key).filter(|entry| {
        // SAFETY: a live map value, read in place.
        !config.timeouts.expired(key.proto, unsafe { &**entry }, now)
    })
}

/// A packet of a live flow arriving from the uplink (`ip` its header,
/// `entry` the flow's ingress entry, `datagram` where its transport header
/// lies): translated back and handed to its endpoint. One body for TC and
/// XDP; in XDP, what cannot be handed over from there passes on untouched,
/// to TC.
#[inline(always)]
pub fn to_endpoint<F: Family, C: parse::Packet + ToEndpoint + L4Rewrite>(
    ctx: &C,
    ip: &F::Hdr,
    entry: &mut NatEntry<F::Addr>,
    seg: &Segment,
    datagram: &Transport<F::FragId>,
    now: u64,
) -> Result<Verdict, DropReason> {
    let (inside_addr, inside_port) = (entry.addr, entry.port);
    // The table is the uplink's, shared by its networks: a flow of another
    // network's endpoint is that network's program's (the next one) to track
    // and deliver.
    let Some(ep) = F::endpoint(inside_addr) else {
        return Ok(Verdict::ToHost);
    };
    if !ctx.can_send_to(&ep) {
        return Ok(Verdict::ToHost);
    }
    let proto = seg.proto;
    conntrack::seen_ingress::<F>(entry, proto, seg, now);
    if F::hop_limit(ip) <= 1 {
        return Err(DropReason::TtlExceeded);
    }

    // `segment` made the headers linear: no pull (which would invalidate
    // these pointers) from here on.
    let eth = parse::header_at::<EthHdr>(ctx, 0)?;
    let ipp = parse::header_at::<F::Hdr>(ctx, IP_OFF)?;
    // SAFETY: bounds checked by `header_at`; no helper that moves packet
    // data runs until the last pointer use below.
    unsafe {
        rewrite_ip::<F>(&mut *ipp, Direction::Ingress, inside_addr);
        deliver::set_endpoint_macs(&mut *eth, &ep);
    }
    if datagram.piece == Piece::First {
        frag::remember::<F>(ip, datagram, Direction::Ingress, seg.sport, seg.dport);
    }
    if datagram.piece != Piece::Later {
        ctx.rewrite_l4::<F>(
            datagram.off,
            proto,
            Direction::Ingress,
            (F::daddr(ip), inside_addr),
            (seg.dport, inside_port),
        )?;
    }
    Ok(Verdict::Translated(ctx.redirect_to(&ep)))
}
