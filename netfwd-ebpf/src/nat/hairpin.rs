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
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use super::{ports, rewrite::L4Rewrite as _};
use crate::{
    conntrack,
    deliver::{self, ToEndpoint as _},
    ipv4,
    l4::{self, IP_OFF, L4_OFF, Segment},
    maps::{self, HAIRPIN_HOST_PORTS, HairpinReply, NAT},
    parse,
    verdict::Verdict,
};

/// An endpoint's packet to `uplink address:published port`; `None` if it is
/// not one.
#[inline(always)]
pub fn to_published(
    ctx: &TcContext,
    ip: &Ipv4Hdr,
    config: &NatConfig,
) -> Result<Option<Verdict>, DropReason> {
    if ip.dst_addr != config.uplink_addr
        || (ip.proto != IPPROTO_TCP && ip.proto != IPPROTO_UDP)
        || !l4::translatable(ip)
    {
        return Ok(None);
    }
    let Some(seg) = l4::segment(ctx, ip.proto, Direction::Egress)? else {
        return Ok(None);
    };
    let Some(target) = maps::published_outside(ip.proto, seg.dport) else {
        return Ok(None);
    };
    let (Some(server), Some(gateway)) = (maps::endpoint(target.addr), maps::gateway()) else {
        return Ok(None);
    };
    let client = Tuple {
        proto: ip.proto,
        src: ip.src_addr,
        dst: ip.dst_addr,
        sport: seg.sport,
        dport: seg.dport,
    };
    // The connection as the server sees it, before its source is chosen.
    let to_server = Tuple {
        dst: target.addr,
        dport: target.port,
        ..client
    };
    let port = gateway_port(&client, &to_server, config, gateway, &seg)?;
    translate(
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
fn gateway_port(
    client: &Tuple,
    to_server: &Tuple,
    config: &NatConfig,
    gateway: [u8; 4],
    seg: &Segment,
) -> Result<[u8; 2], DropReason> {
    let now = conntrack::now_ns();
    let key = to_server.egress_key();
    // SAFETY: plain data; a stale copy at worst.
    if let Some(out) = unsafe { NAT.get(key) }.copied()
        && let Some(ingress) = NAT.get_ptr_mut(to_server.ingress_key(gateway, out.port))
    {
        // SAFETY: a live map value; per-packet updates of plain fields.
        let ingress = unsafe { &mut *ingress };
        if ingress.addr == client.src
            && ingress.port == client.sport
            && !config.timeouts.expired(client.proto, ingress, now)
        {
            conntrack::seen_egress(ingress, client.proto, seg, now);
            return Ok(out.port);
        }
    }
    let port = ports::reserve_port(to_server, config, gateway, None, seg, now)?;
    let out = NatEntry::new(gateway, port, 0, now);
    ports::insert_egress(&key, &out, &to_server.ingress_key(gateway, port))?;
    // The replies come from the host port the client chose: one endpoint
    // port may be published on several. An LRU map takes every insert.
    let reply = HairpinReply {
        addr: to_server.dst,
        port: to_server.dport,
        gateway_port: port,
        proto: to_server.proto,
        _pad: [0; 3],
    };
    let _ = HAIRPIN_HOST_PORTS.insert(reply, client.dport, 0);
    Ok(port)
}

/// The published endpoint's reply to the gateway; `None` if it is not one.
#[inline(always)]
pub fn from_published(ctx: &TcContext, ip: &Ipv4Hdr) -> Result<Option<Verdict>, DropReason> {
    let Some(config) = maps::nat_config() else {
        return Ok(None);
    };
    if (ip.proto != IPPROTO_TCP && ip.proto != IPPROTO_UDP) || !l4::translatable(ip) {
        return Ok(None);
    }
    let Some(seg) = l4::segment(ctx, ip.proto, Direction::Egress)? else {
        return Ok(None);
    };
    let Some(entry) = NAT.get_ptr_mut(l4::packet_key(ip, &seg)) else {
        return Ok(None);
    };
    // Before the flow's state is looked at: the verifier walks what follows
    // for every state that has, at a cost `tc_from_endpoint` cannot bear.
    let Some(host_port) = maps::hairpin_host_port(&HairpinReply {
        addr: ip.src_addr,
        port: seg.sport,
        gateway_port: seg.dport,
        proto: ip.proto,
        _pad: [0; 3],
    }) else {
        return Ok(None);
    };
    // SAFETY: a live map value; per-packet updates of plain fields.
    let entry = unsafe { &mut *entry };
    let now = conntrack::now_ns();
    if config.timeouts.expired(ip.proto, entry, now) {
        return Ok(None);
    }
    conntrack::seen_ingress(entry, ip.proto, &seg, now);
    let Some(client) = maps::endpoint(entry.addr) else {
        return Ok(None);
    };
    translate(
        ctx,
        ip,
        [config.uplink_addr, entry.addr],
        [host_port, entry.port],
        &client,
    )
    .map(Some)
}

/// Rewrites both addresses and ports (`[source, destination]`), takes a hop
/// off the TTL and hands the packet to endpoint `to`.
#[inline(always)]
fn translate(
    ctx: &TcContext,
    ip: &Ipv4Hdr,
    addrs: [[u8; 4]; 2],
    ports: [[u8; 2]; 2],
    to: &EndpointEntry,
) -> Result<Verdict, DropReason> {
    if ip.ttl <= 1 {
        return Ok(Verdict::ToHost);
    }
    let old_ports = {
        // SAFETY: `segment` made the transport header linear; read only.
        let l4 = unsafe { *parse::header_at::<[u8; 4]>(ctx, L4_OFF)? };
        [[l4[0], l4[1]], [l4[2], l4[3]]]
    };
    let eth = parse::header_at::<EthHdr>(ctx, 0)?;
    let ipp = parse::header_at::<Ipv4Hdr>(ctx, IP_OFF)?;
    // SAFETY: bounds checked by `header_at`; no helper runs in between.
    unsafe {
        ipv4::set_addr(&mut *ipp, ipv4::Field::Src, addrs[0]);
        ipv4::set_addr(&mut *ipp, ipv4::Field::Dst, addrs[1]);
        ipv4::dec_ttl(&mut *ipp);
        deliver::set_endpoint_macs(&mut *eth, to);
    }
    ctx.rewrite_l4(
        ip.proto,
        Direction::Egress,
        (ip.src_addr, addrs[0]),
        (old_ports[0], ports[0]),
    )?;
    ctx.rewrite_l4(
        ip.proto,
        Direction::Ingress,
        (ip.dst_addr, addrs[1]),
        (old_ports[1], ports[1]),
    )?;
    Ok(Verdict::Translated(ctx.redirect_to(to)))
}
