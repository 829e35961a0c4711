//! Source NAT (masquerade), egress: an endpoint's packet to a remote host
//! finds its uplink port in `NAT` or gets a new one, and leaves with
//! the uplink's address and that port, straight out of the uplink. In a
//! network that leaves the family untranslated (`nat6 = false`) the flow
//! is kept all the same, mapped to its own address and port: the packet
//! leaves as it came, a hop further on, and only replies to it get in.

use aya_ebpf::{bindings::TC_ACT_UNSPEC, programs::TcContext};
use netfwd_common::{
    drop::DropReason,
    nat::{Direction, FLOW_REMOTE_STARTED, NatConfig, NatEntry, Tuple},
};
use network_types::eth::EthHdr;

use super::{
    hairpin, icmp_error,
    ports::{self, Ports},
    rewrite::{L4Rewrite as _, rewrite_ip},
};
use crate::{
    conntrack, deliver,
    family::{Family, Piece},
    fib, frag,
    l4::{self, IP_OFF, Segment},
    maps, parse,
    verdict::Verdict,
};

/// An endpoint's packet to a remote host (`ip` is its header, the
/// source checked). Translated and sent out of the uplink when that is where
/// the route goes; otherwise the host's stack routes it.
#[inline(always)]
pub fn translate<F: Family>(
    ctx: &TcContext,
    ifindex: u32,
    ip: &F::Hdr,
) -> Result<Verdict, DropReason> {
    let Some(config) = maps::nat_config() else {
        return unrouted::<F>(ctx, ifindex, ip);
    };
    if let Some(verdict) = hairpin::to_published::<F>(ctx, ip, config)? {
        return Ok(verdict);
    }
    // Any size: a datagram too big for the uplink is translated all the
    // same (below), never left to the host to forward untranslated.
    let Some(hop) = fib::lookup_any_size::<F>(ctx, ifindex, F::saddr(ip), F::daddr(ip)) else {
        return unrouted::<F>(ctx, ifindex, ip);
    };
    // Out of any other interface the packet would leave with the endpoint's
    // own address: netfwd translates on the uplink only, and routes
    // untranslated only where it made a route (peers, allowed networks).
    if hop.oif() != config.uplink_ifindex {
        return Err(DropReason::NotUplink);
    }
    // TTL about to run out: the stack answers with "time exceeded" from the
    // gateway, as a router would (traceroute's first hop). Too big with DF
    // set: the stack answers "fragmentation needed" (path-MTU discovery) and
    // forwards nothing. One MTU check a packet: one with DF is checked
    // here, any other after its translation (which changes no length).
    if F::hop_limit(ip) <= 1 || (F::dont_fragment(ip) && fib::too_big(ctx, &hop)) {
        return Ok(Verdict::ToHost);
    }
    let datagram = F::transport(ctx, ip)?;
    if datagram.piece == Piece::Whole && F::is_icmp_error(ctx, ip)? {
        return icmp_error::snat::<F>(ctx, ip, &hop);
    }
    let seg = match datagram.piece {
        Piece::Later => frag::recall::<F>(ip, &datagram, Direction::Egress)
            .map(|p| Segment::ports(datagram.proto, p.sport, p.dport))
            .ok_or(DropReason::Unsupported)?,
        _ => {
            let seg = l4::segment::<F>(ctx, datagram.off, datagram.proto, Direction::Egress)?
                .ok_or(DropReason::Unsupported)?;
            // Here, before the mapping: after it, a first fragment and a
            // whole datagram stay apart to the end and the verifier walks
            // the rest of the translation for each (which took
            // `tc_from_endpoint` past its 1M instructions); here the two
            // meet again before it. A mapping that then fails leaves ports
            // that the later fragments find, to fail the same way.
            if datagram.piece == Piece::First {
                frag::remember::<F>(ip, &datagram, Direction::Egress, seg.sport, seg.dport);
            }
            seg
        }
    };
    let flow = seg.tuple::<F>(ip);
    // The flow's egress entry, found once for the source's check and the
    // mapping, at one time.
    let now = conntrack::now_ns();
    // SAFETY: a live map value; plain fields, which a racing writer leaves
    // whole.
    let mut out = F::nat()
        .get_ptr_mut(flow.egress_key())
        .map(|out| unsafe { &mut *out });
    let (nat_addr, ports) = if F::leaves_untranslated() {
        (flow.src, Ports::Own)
    } else {
        (
            mapping_source::<F>(ctx, ifindex, &flow, out.as_deref_mut(), now)?,
            Ports::Range { preferred: None },
        )
    };
    let (addr, port) =
        match egress_mapping::<F>(&flow, config, (nat_addr, ports), &seg, out.as_deref(), now) {
            Err(DropReason::NatFull) => return Err(F::nat_full(ctx, &flow, now)),
            mapped => mapped?,
        };
    // Read again, not kept through the mapping: IPv6's program has no
    // stack to spare for it, and a piece kept would keep the verifier's
    // paths for each piece apart through the mapping.
    let datagram = F::transport(ctx, ip)?;

    // `segment` made the headers linear: no pull (which would invalidate
    // these pointers) from here on.
    let eth = parse::header_at::<EthHdr>(ctx, 0)?;
    let ipp = parse::header_at::<F::Hdr>(ctx, IP_OFF)?;
    // SAFETY: bounds checked by `header_at`; no helper that moves packet
    // data runs until the last pointer use below.
    unsafe {
        rewrite_ip::<F>(&mut *ipp, Direction::Egress, addr);
        deliver::set_hop_macs(&mut *eth, &hop);
    }
    // A later fragment has no transport header: its addresses are all.
    if datagram.piece != Piece::Later {
        ctx.rewrite_l4::<F>(
            datagram.off,
            flow.proto,
            Direction::Egress,
            (flow.src, addr),
            (flow.sport, port),
        )?;
    }
    if may_fragment::<F>(ctx)? && fib::too_big(ctx, &hop) {
        return to_stack_for_fragmenting::<F>(ctx);
    }
    Ok(Verdict::Translated(hop.redirect()))
}

/// A packet the NAT does not send out (no uplink, or the FIB sends it
/// nowhere): the host's, where the family is routed untranslated or the
/// packet is for one of the host's own addresses; `unsupported` otherwise
/// (see `Family::ROUTED_WITHOUT_NAT`).
#[inline(always)]
fn unrouted<F: Family>(ctx: &TcContext, ifindex: u32, ip: &F::Hdr) -> Result<Verdict, DropReason> {
    if F::ROUTED_WITHOUT_NAT || fib::is_host_address::<F>(ctx, ifindex, F::daddr(ip)) {
        Ok(Verdict::ToHost)
    } else {
        Err(DropReason::Unsupported)
    }
}

/// Whether the translated packet has DF clear. Read from the packet, not
/// from the header checked above: from that copy the compiler knows the
/// answer and makes two copies of the whole translation, one for each,
/// which takes `tc_from_endpoint` past the verifier's 1M instructions.
#[inline(always)]
fn may_fragment<F: Family>(ctx: &TcContext) -> Result<bool, DropReason> {
    let ipp = parse::header_at::<F::Hdr>(ctx, IP_OFF)?;
    // SAFETY: bounds checked by `header_at`.
    Ok(!F::dont_fragment(unsafe { &*ipp }))
}

/// A translated datagram too big for the uplink, DF clear: the stack
/// fragments it on its way out, as it does MASQUERADE's packets, and takes
/// the hop (its hop limit back as it came). It accepts a packet with the host's
/// own source from this veth because `up` sets accept_local there; the
/// endpoint program admits no other.
#[inline(always)]
fn to_stack_for_fragmenting<F: Family>(ctx: &TcContext) -> Result<Verdict, DropReason> {
    let ipp = parse::header_at::<F::Hdr>(ctx, IP_OFF)?;
    // SAFETY: bounds checked by `header_at`.
    unsafe { F::inc_hop_limit(&mut *ipp) };
    Ok(Verdict::Translated(TC_ACT_UNSPEC))
}

/// The address `flow` is to leave with: the host's choice of source
/// (`Family::host_source`), looked up for a new mapping, and for a live one
/// (`out`, its egress entry) every [`SOURCE_RECHECK_NS`] (not per packet:
/// see `fib::source`); in between, its mapping's. A mapping found on
/// another address is replaced ([`egress_mapping`]), as a masquerade
/// forgets flows when its interface's address changes. A flow the remote
/// side started (a published port's) keeps the address it was reached at.
#[inline(always)]
fn mapping_source<F: Family>(
    ctx: &TcContext,
    ifindex: u32,
    flow: &Tuple<F::Addr>,
    out: Option<&mut NatEntry<F::Addr>>,
    now: u64,
) -> Result<F::Addr, DropReason> {
    if let Some(out) = &out
        && (out.flags & FLOW_REMOTE_STARTED != 0
            || now.saturating_sub(out.last_seen_ns) < SOURCE_RECHECK_NS)
    {
        return Ok(out.addr);
    }
    let chosen = masquerade_source::<F>(F::host_source(ctx, ifindex, flow.src, flow.dst, now)?)?;
    if let Some(out) = out
        && out.addr == chosen
    {
        out.last_seen_ns = now;
    }
    Ok(chosen)
}

/// How long an egress mapping's address is taken as the host's choice
/// before it is looked up again (the egress entry's `last_seen_ns` is when
/// it last was).
const SOURCE_RECHECK_NS: u64 = 1_000_000_000;

/// The host's choice of source (`chosen`) as a masquerade address: never an
/// address of netfwd's own networks (a gateway, which the host offers where
/// the uplink has no address of the family for the destination), and never
/// none.
#[inline(always)]
fn masquerade_source<F: Family>(chosen: Option<F::Addr>) -> Result<F::Addr, DropReason> {
    chosen
        .filter(|&addr| !F::in_subnet(addr) && F::remote_flags(addr) == 0)
        .ok_or(DropReason::NoNatSource)
}

/// The uplink address and port of `flow`: its live mapping (`out`, its
/// egress entry), or a new one on `nat_addr`, the address it is to leave
/// with ([`mapping_source`]; the endpoint's own where it leaves
/// untranslated), at one of `ports`. A mapping to another address is
/// replaced.
#[inline(always)]
fn egress_mapping<F: Family>(
    flow: &Tuple<F::Addr>,
    config: &NatConfig,
    (nat_addr, mut ports): (F::Addr, Ports),
    seg: &Segment,
    out: Option<&NatEntry<F::Addr>>,
    now: u64,
) -> Result<(F::Addr, [u8; 2]), DropReason> {
    if let Some(out) = out
        && (out.addr == nat_addr || out.flags & FLOW_REMOTE_STARTED != 0)
    {
        if let Some(ingress) = ports::live_ingress::<F>(flow, (out.addr, out.port), config, now) {
            // SAFETY: a live map value; per-packet updates of plain fields.
            conntrack::seen_egress::<F>(unsafe { &mut *ingress }, flow.proto, seg, now);
            return Ok((out.addr, out.port));
        }
        // Expired, evicted or taken over: keep the port if it is still free.
        if let Ports::Range { preferred } = &mut ports {
            *preferred = Some(out.port);
        }
    }
    let port = ports::reserve_port::<F>(flow, config, nat_addr, ports, seg, now)?;
    let out = NatEntry::new(nat_addr, port, 0, now);
    ports::insert_egress::<F>(&flow.egress_key(), &out, &flow.ingress_key(nat_addr, port))?;
    Ok((nat_addr, port))
}
