//! Reverse source NAT, ingress: a reply arriving on the uplink finds the
//! inside address and port of its flow, and goes straight into the
//! endpoint; so do ICMP errors about the flow (`icmp_error`) and a new
//! connection to a published port (`dnat`).

use aya_ebpf::programs::TcContext;
use netfwd_common::{
    drop::DropReason,
    nat::{Direction, IPPROTO_ICMP, NatEntry},
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use super::{
    dnat, icmp_error,
    rewrite::{L4Rewrite, rewrite_ip},
};
use crate::{
    conntrack,
    deliver::{self, ToEndpoint},
    frag::{self, Piece},
    l4::{self, ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED, IP_OFF, L4_OFF, Segment},
    maps::{self, NAT},
    parse,
    verdict::Verdict,
};

/// A packet arriving on the uplink for no endpoint (`ip` is its header):
/// replies of NATed flows and ICMP errors about them go straight to their
/// endpoint; the rest is the host's.
#[inline(always)]
pub fn translate(ctx: &TcContext, ip: &Ipv4Hdr) -> Result<Verdict, DropReason> {
    let Some(config) = maps::nat_config() else {
        return Ok(Verdict::ToHost);
    };
    if usize::from(ip.ihl()) != Ipv4Hdr::LEN {
        return Ok(Verdict::ToHost);
    }
    let piece = frag::piece(ip);
    if piece == Piece::Whole && ip.proto == IPPROTO_ICMP {
        // SAFETY: bounds checked by `header_mut`.
        let icmp_type = unsafe { *parse::header_mut::<u8>(ctx, L4_OFF)? };
        if icmp_type == ICMP_DEST_UNREACH || icmp_type == ICMP_TIME_EXCEEDED {
            return icmp_error::rev_snat(ctx, &config);
        }
    }
    let seg = match piece {
        Piece::Later => match frag::recall(ip, Direction::Ingress) {
            Some(p) => Segment::ports(p.sport, p.dport),
            None => return Ok(Verdict::ToHost),
        },
        _ => match l4::segment(ctx, ip.proto, Direction::Ingress)? {
            Some(seg) => seg,
            None => return Ok(Verdict::ToHost),
        },
    };
    let key = l4::packet_key(ip, &seg);
    let now = conntrack::now_ns();
    let live = NAT.get_ptr_mut(key).filter(|entry| {
        // SAFETY: a live map value, read in place.
        !config.timeouts.expired(ip.proto, unsafe { &**entry }, now)
    });
    // No live flow: a new connection to a published port starts one (over
    // an expired flow of the same tuple — clients reuse their ports);
    // anything else is the host's.
    let entry = match live {
        Some(entry) => entry,
        None => match dnat::publish(ctx, &config, &key, &seg, now)? {
            Some(entry) => entry,
            None => return Ok(Verdict::ToHost),
        },
    };
    // SAFETY: a live map value; per-packet updates of plain fields.
    to_endpoint(ctx, ip, unsafe { &mut *entry }, &seg, piece, now)
}

/// A packet of a live flow arriving from the uplink (`ip` its header,
/// `entry` the flow's ingress entry): translated back and handed to its
/// endpoint. One body for TC and XDP; in XDP, what cannot be handed over
/// from there passes on untouched, to TC.
#[inline(always)]
pub fn to_endpoint<C: parse::Packet + ToEndpoint + L4Rewrite>(
    ctx: &C,
    ip: &Ipv4Hdr,
    entry: &mut NatEntry,
    seg: &Segment,
    piece: Piece,
    now: u64,
) -> Result<Verdict, DropReason> {
    let (inside_addr, inside_port) = (entry.addr, entry.port);
    // The table is the uplink's, shared by its networks: a flow of another
    // network's endpoint is that network's program's (the next one) to track
    // and deliver.
    let Some(ep) = maps::endpoint(inside_addr) else {
        return Ok(Verdict::ToHost);
    };
    if !ctx.can_send_to(&ep) {
        return Ok(Verdict::ToHost);
    }
    conntrack::seen_ingress(entry, ip.proto, seg, now);
    if ip.ttl <= 1 {
        return Err(DropReason::TtlExceeded);
    }

    // `segment` made the headers linear: no pull (which would invalidate
    // these pointers) from here on.
    let eth = parse::header_at::<EthHdr>(ctx, 0)?;
    let ipp = parse::header_at::<Ipv4Hdr>(ctx, IP_OFF)?;
    // SAFETY: bounds checked by `header_at`; no helper that moves packet
    // data runs until the last pointer use below.
    unsafe {
        rewrite_ip(&mut *ipp, Direction::Ingress, inside_addr);
        deliver::set_endpoint_macs(&mut *eth, &ep);
    }
    if piece == Piece::First {
        frag::remember(ip, Direction::Ingress, seg.sport, seg.dport);
    }
    if piece != Piece::Later {
        ctx.rewrite_l4(
            ip.proto,
            Direction::Ingress,
            (ip.dst_addr, inside_addr),
            (seg.dport, inside_port),
        )?;
    }
    Ok(Verdict::Translated(ctx.redirect_to(&ep)))
}
