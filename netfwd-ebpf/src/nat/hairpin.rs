//! Hairpin: an endpoint connecting to a published port on the host's own
//! (uplink) address lands on the published endpoint, itself included, as
//! Docker's hairpin NAT does. Both ends are endpoints, so the connection is
//! translated twice: the destination to the published endpoint, and the
//! source to the gateway with a NAT port, so the replies come back through
//! the datapath (addressed to the gateway) instead of straight to the
//! client, which expects them from the published address.

use aya_ebpf::programs::TcContext;
use netfwd_common::{
    drop::DropReason,
    maps::EndpointEntry,
    nat::{Direction, IPPROTO_TCP, IPPROTO_UDP, NatConfig, NatEntry, Tuple},
};
use network_types::eth::EthHdr;

use super::{dnat, ports, rewrite::L4Rewrite as _};
use crate::{
    conntrack,
    deliver::{self, ToEndpoint as _},
    family::{Family, Field},
    l4::{self, IP_OFF, Segment},
    maps::{self, HairpinReply},
    parse,
    verdict::Verdict,
};

/// The first step of the hairpin for an endpoint's packet where it runs
/// apart (`Family::HAIRPIN_APART`).
pub enum Apart {
    /// TCP or UDP to the uplink's address (to a published port, maybe): its
    /// flow found or made (`open_flow`), then translated (`translate_apart`).
    OpenFlow,
    /// TCP or UDP to the gateway (a published endpoint's reply, maybe):
    /// translated at once (`translate_apart`).
    Translate,
}

/// The first step of the hairpin for an endpoint's packet of protocol
/// `proto` to `dst`; `None`: not the hairpin's.
#[inline(always)]
pub fn apart_step<F: Family>(proto: u8, dst: F::Addr) -> Option<Apart> {
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        None
    } else if F::gateway() == Some(dst) {
        Some(Apart::Translate)
    } else if maps::nat_config().is_some_and(|config| dnat::to_host::<F>(config, dst)) {
        Some(Apart::OpenFlow)
    } else {
        None
    }
}

/// `Apart::OpenFlow`, in a program of its own: whether the packet's flow to
/// a published endpoint is open now (its gateway port found or reserved),
/// to be translated next. Not a published port's: the host's, as the
/// routing body would have made it (the uplink's address is the host's own).
#[inline(always)]
pub fn open_flow<F: Family>(ctx: &TcContext) -> Result<bool, DropReason> {
    // The settings before the header's copy: the other way round, IPv6's
    // `tc_hairpin6_flow` comes out 56 bytes of stack bigger, past what its
    // accounting's calls leave it.
    let Some(config) = maps::nat_config() else {
        return Ok(false);
    };
    // SAFETY: bounds checked by `header_mut`; copied out before any pull.
    let ip = unsafe { *parse::header_mut::<F::Hdr>(ctx, IP_OFF)? };
    let Some(to) = hairpinned::<F>(ctx, &ip, F::uplink_addr(config))? else {
        return Ok(false);
    };
    gateway_port::<F>(&to, config)?;
    Ok(true)
}

/// The translation where the hairpin runs apart, in a program of its own:
/// a connection whose flow `open_flow` opened, or a published endpoint's
/// reply. Anything else is the host's, as the routing body would have made
/// it (the gateway and the uplink's address are the host's own).
#[inline(always)]
pub fn translate_apart<F: Family>(ctx: &TcContext) -> Result<Verdict, DropReason> {
    // SAFETY: bounds checked by `header_mut`; copied out before any pull.
    let ip = unsafe { *parse::header_mut::<F::Hdr>(ctx, IP_OFF)? };
    if F::gateway() == Some(F::daddr(&ip)) {
        return Ok(reply_from_published::<F>(ctx, &ip, true)?.unwrap_or(Verdict::ToHost));
    }
    let Some(config) = maps::nat_config() else {
        return Ok(Verdict::ToHost);
    };
    let Some(to) = hairpinned::<F>(ctx, &ip, F::uplink_addr(config))? else {
        return Ok(Verdict::ToHost);
    };
    let now = conntrack::now_ns();
    match live_flow::<F>(&to, config, now) {
        Some((port, _)) => to_server::<F>(ctx, &ip, &to, port),
        None => Ok(Verdict::ToHost),
    }
}

/// An endpoint's connection to a published port at the uplink's address,
/// as the hairpin sees it.
struct Hairpinned<A> {
    seg: Segment,
    /// The connection as the server sees it, before its source is chosen:
    /// the client's, to the endpoint's port instead of the host port.
    to_server: Tuple<A>,
    /// The host port the client chose.
    host_port: [u8; 2],
    server: EndpointEntry,
    gateway: A,
}

/// An endpoint's packet to `uplink address:published port`; `None` if it is
/// not one, or where the hairpin runs apart (`open_flow`).
#[inline(always)]
pub fn to_published<F: Family>(
    ctx: &TcContext,
    ip: &F::Hdr,
    config: &NatConfig,
) -> Result<Option<Verdict>, DropReason> {
    // Where the hairpin runs apart, no uplink address is its here.
    let uplink_addr = F::uplink_addr(config).filter(|_| !F::HAIRPIN_APART);
    let Some(to) = hairpinned::<F>(ctx, ip, uplink_addr)? else {
        return Ok(None);
    };
    let port = gateway_port::<F>(&to, config)?;
    to_server::<F>(ctx, ip, &to, port).map(Some)
}

/// The connection to a published port at `uplink_addr` an endpoint's
/// packet (`ip`) is, if it is one.
#[inline(always)]
fn hairpinned<F: Family>(
    ctx: &TcContext,
    ip: &F::Hdr,
    uplink_addr: Option<F::Addr>,
) -> Result<Option<Hairpinned<F::Addr>>, DropReason> {
    let proto = F::proto(ip);
    let Some(uplink_addr) = uplink_addr else {
        return Ok(None);
    };
    if F::daddr(ip) != uplink_addr
        || (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
        || !l4::translatable::<F>(ip)
    {
        return Ok(None);
    }
    let Some(seg) = l4::segment::<F>(ctx, F::L4_OFF, proto, Direction::Egress)? else {
        return Ok(None);
    };
    let Some(target) = F::published_outside(proto, seg.dport) else {
        return Ok(None);
    };
    let (Some(server), Some(gateway)) = (F::endpoint(target.addr), F::gateway()) else {
        return Ok(None);
    };
    Ok(Some(Hairpinned {
        to_server: Tuple {
            dst: target.addr,
            dport: target.port,
            ..seg.tuple::<F>(ip)
        },
        host_port: seg.dport,
        seg,
        server,
        gateway,
    }))
}

/// The packet of connection `to`, from the gateway's `port`, handed to the
/// published endpoint.
#[inline(always)]
fn to_server<F: Family>(
    ctx: &TcContext,
    ip: &F::Hdr,
    to: &Hairpinned<F::Addr>,
    port: [u8; 2],
) -> Result<Verdict, DropReason> {
    translate::<F>(
        ctx,
        ip,
        [to.gateway, to.to_server.dst],
        [port, to.to_server.dport],
        &to.server,
    )
}

/// The gateway port the client's connection is translated to: its live one,
/// or a new one reserved as a source NAT port is. Both entries are keyed as
/// the server sees the connection (client -> server egress, server ->
/// gateway port ingress), so each derives the other as any flow's do.
#[inline(always)]
fn gateway_port<F: Family>(
    to: &Hairpinned<F::Addr>,
    config: &NatConfig,
) -> Result<[u8; 2], DropReason> {
    let now = conntrack::now_ns();
    let (to_server, gateway, seg) = (&to.to_server, to.gateway, &to.seg);
    if let Some((port, ingress)) = live_flow::<F>(to, config, now) {
        // SAFETY: a live map value; per-packet updates of plain fields.
        conntrack::seen_egress::<F>(unsafe { &mut *ingress }, to_server.proto, seg, now);
        return Ok(port);
    }
    let port = ports::reserve_port::<F>(
        to_server,
        config,
        gateway,
        ports::Ports::Range { preferred: None },
        seg,
        now,
    )?;
    let out = NatEntry::new(gateway, port, 0, now);
    ports::insert_egress::<F>(
        &to_server.egress_key(),
        &out,
        &to_server.ingress_key(gateway, port),
    )?;
    // The replies come from the host port the client chose: one endpoint
    // port may be published on several. An LRU map takes every insert.
    let reply = HairpinReply {
        addr: to_server.dst,
        port: to_server.dport,
        gateway_port: port,
        proto: to_server.proto,
        _pad: [0; 3],
    };
    let _ = F::hairpin_host_ports().insert(reply, to.host_port, 0);
    Ok(port)
}

/// The live flow of connection `to`: its gateway port and ingress entry.
#[inline(always)]
fn live_flow<F: Family>(
    to: &Hairpinned<F::Addr>,
    config: &NatConfig,
    now: u64,
) -> Option<([u8; 2], *mut NatEntry<F::Addr>)> {
    let to_server = &to.to_server;
    // SAFETY: plain data; a stale copy at worst.
    let port = unsafe { F::nat().get(to_server.egress_key()) }.map(|out| out.port)?;
    ports::live_ingress::<F>(to_server, (to.gateway, port), config, now)
        .map(|ingress| (port, ingress))
}

/// The published endpoint's reply to the gateway; `None` if it is not one,
/// or where the hairpin runs apart (`translate_apart`).
#[inline(always)]
pub fn from_published<F: Family>(
    ctx: &TcContext,
    ip: &F::Hdr,
) -> Result<Option<Verdict>, DropReason> {
    reply_from_published::<F>(ctx, ip, !F::HAIRPIN_APART)
}

/// `from_published`, where the hairpin runs apart too (`here`: whether it
/// runs here, as written so that IPv6's `tc_to_remote6` compiles within
/// its 512 bytes of stack).
#[inline(always)]
fn reply_from_published<F: Family>(
    ctx: &TcContext,
    ip: &F::Hdr,
    here: bool,
) -> Result<Option<Verdict>, DropReason> {
    let Some(config) = maps::nat_config() else {
        return Ok(None);
    };
    let Some(uplink_addr) = F::uplink_addr(config).filter(|_| here) else {
        return Ok(None);
    };
    let proto = F::proto(ip);
    if (proto != IPPROTO_TCP && proto != IPPROTO_UDP) || !l4::translatable::<F>(ip) {
        return Ok(None);
    }
    let Some(seg) = l4::segment::<F>(ctx, F::L4_OFF, proto, Direction::Egress)? else {
        return Ok(None);
    };
    let Some(entry) = F::nat().get_ptr_mut(seg.tuple::<F>(ip).arriving_key()) else {
        return Ok(None);
    };
    // Before the flow's state is looked at: the verifier walks what follows
    // for every state that has, at a cost `tc_from_endpoint` cannot bear.
    let reply = HairpinReply {
        addr: F::saddr(ip),
        port: seg.sport,
        gateway_port: seg.dport,
        proto,
        _pad: [0; 3],
    };
    // SAFETY: plain data; a stale copy at worst.
    let Some(host_port) = (unsafe { F::hairpin_host_ports().get(reply) }).copied() else {
        return Ok(None);
    };
    // SAFETY: a live map value; per-packet updates of plain fields.
    let entry = unsafe { &mut *entry };
    let now = conntrack::now_ns();
    if config.timeouts.expired(proto, entry, now) {
        return Ok(None);
    }
    conntrack::seen_ingress::<F>(entry, proto, &seg, now);
    let Some(client) = F::endpoint(entry.addr) else {
        return Ok(None);
    };
    translate::<F>(
        ctx,
        ip,
        [uplink_addr, entry.addr],
        [host_port, entry.port],
        &client,
    )
    .map(Some)
}

/// Rewrites both addresses and ports (`[source, destination]`), takes a hop
/// off the TTL and hands the packet to endpoint `to`.
#[inline(always)]
fn translate<F: Family>(
    ctx: &TcContext,
    ip: &F::Hdr,
    addrs: [F::Addr; 2],
    ports: [[u8; 2]; 2],
    to: &EndpointEntry,
) -> Result<Verdict, DropReason> {
    if F::hop_limit(ip) <= 1 {
        return Ok(Verdict::ToHost);
    }
    let old_ports = {
        // SAFETY: `segment` made the transport header linear; read only.
        let l4 = unsafe { *parse::header_at::<[u8; 4]>(ctx, F::L4_OFF)? };
        [[l4[0], l4[1]], [l4[2], l4[3]]]
    };
    let eth = parse::header_at::<EthHdr>(ctx, 0)?;
    let ipp = parse::header_at::<F::Hdr>(ctx, IP_OFF)?;
    // SAFETY: bounds checked by `header_at`; no helper runs in between.
    unsafe {
        F::set_addr(&mut *ipp, Field::Src, addrs[0]);
        F::set_addr(&mut *ipp, Field::Dst, addrs[1]);
        F::dec_hop_limit(&mut *ipp);
        deliver::set_endpoint_macs(&mut *eth, to);
    }
    let proto = F::proto(ip);
    ctx.rewrite_l4::<F>(
        F::L4_OFF,
        proto,
        Direction::Egress,
        (F::saddr(ip), addrs[0]),
        (old_ports[0], ports[0]),
    )?;
    ctx.rewrite_l4::<F>(
        F::L4_OFF,
        proto,
        Direction::Ingress,
        (F::daddr(ip), addrs[1]),
        (old_ports[1], ports[1]),
    )?;
    Ok(Verdict::Translated(ctx.redirect_to(to)))
}
