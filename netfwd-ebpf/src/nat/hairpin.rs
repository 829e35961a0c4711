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

use super::{ports, rewrite::L4Rewrite as _};
use crate::{
    conntrack,
    deliver::{self, ToEndpoint as _},
    family::{Family, Field},
    l4::{self, IP_OFF, Segment},
    maps::{self, HairpinReply},
    parse,
    verdict::Verdict,
};

/// An endpoint's packet to `uplink address:published port`; `None` if it is
/// not one.
#[inline(always)]
pub fn to_published<F: Family>(
    ctx: &TcContext,
    ip: &F::Hdr,
    config: &NatConfig,
) -> Result<Option<Verdict>, DropReason> {
    let proto = F::proto(ip);
    let Some(uplink_addr) = F::uplink_addr(config) else {
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
    let client = seg.tuple::<F>(ip);
    // The connection as the server sees it, before its source is chosen.
    let to_server = Tuple {
        dst: target.addr,
        dport: target.port,
        ..client
    };
    let port = gateway_port::<F>(&client, &to_server, config, gateway, &seg)?;
    translate::<F>(
        ctx,
        ip,
        [gateway, target.addr],
        [port, target.port],
        &server,
    )
    .map(Some)
}

/// The gateway port the client's connection is translated to: its live one,
/// or a new one reserved as a source NAT port is. Both entries are keyed as
/// the server sees the connection (client -> server egress, server ->
/// gateway port ingress), so each derives the other as any flow's do.
#[inline(always)]
fn gateway_port<F: Family>(
    client: &Tuple<F::Addr>,
    to_server: &Tuple<F::Addr>,
    config: &NatConfig,
    gateway: F::Addr,
    seg: &Segment,
) -> Result<[u8; 2], DropReason> {
    let now = conntrack::now_ns();
    let nat = F::nat();
    let key = to_server.egress_key();
    // SAFETY: plain data; a stale copy at worst.
    if let Some(out) = unsafe { nat.get(key) }.copied()
        && let Some(ingress) = nat.get_ptr_mut(to_server.ingress_key(gateway, out.port))
    {
        // SAFETY: a live map value; per-packet updates of plain fields.
        let ingress = unsafe { &mut *ingress };
        if ingress.addr == client.src
            && ingress.port == client.sport
            && !config.timeouts.expired(client.proto, ingress, now)
        {
            conntrack::seen_egress::<F>(ingress, client.proto, seg, now);
            return Ok(out.port);
        }
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
    ports::insert_egress::<F>(&key, &out, &to_server.ingress_key(gateway, port))?;
    // The replies come from the host port the client chose: one endpoint
    // port may be published on several. An LRU map takes every insert.
    let reply = HairpinReply {
        addr: to_server.dst,
        port: to_server.dport,
        gateway_port: port,
        proto: to_server.proto,
        _pad: [0; 3],
    };
    let _ = F::hairpin_host_ports().insert(reply, client.dport, 0);
    Ok(port)
}

/// The published endpoint's reply to the gateway; `None` if it is not one.
#[inline(always)]
pub fn from_published<F: Family>(
    ctx: &TcContext,
    ip: &F::Hdr,
) -> Result<Option<Verdict>, DropReason> {
    let Some(config) = maps::nat_config() else {
        return Ok(None);
    };
    let Some(uplink_addr) = F::uplink_addr(config) else {
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
