//! Source NAT (masquerade) of endpoint traffic leaving by the uplink, and the
//! reverse translation of replies and of ICMP errors about those flows.
//!
//! Egress: the endpoint's tuple finds its outside port in `NAT` or gets a new
//! one; the packet leaves with the uplink's address and that port, straight
//! out of the uplink. Ingress (uplink): the reply's tuple finds the inside
//! address and port, and the packet goes straight into the endpoint. Only
//! IPv4 without options and unfragmented packets are translated (ports are in
//! the first fragment only); see `netfwd_common::nat` for the table.

use aya_ebpf::{
    bindings::{BPF_NOEXIST, TC_ACT_UNSPEC},
    helpers::{bpf_get_prandom_u32, bpf_redirect_peer},
    programs::TcContext,
};
use netfwd_common::{
    drop::DropReason,
    maps::EndpointEntry,
    nat::{
        DIR_EGRESS, DIR_INGRESS, FLOW_INBOUND, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, NatConfig,
        NatEntry, NatKey, PORT_RETRIES, Tuple,
    },
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use crate::{
    conntrack, csum,
    csum::L4Csum,
    early_drop, fib,
    frag::{self, Piece},
    hairpin, ipv4,
    maps::{self, NAT},
    parse,
    verdict::Verdict,
};

const IP_OFF: usize = EthHdr::LEN;
const L4_OFF: usize = IP_OFF + Ipv4Hdr::LEN;
/// An ICMP error quotes the offending packet's IP header and 8 bytes after it.
const INNER_IP_OFF: usize = L4_OFF + ICMP_HDR_LEN;
const INNER_L4_OFF: usize = INNER_IP_OFF + Ipv4Hdr::LEN;
const ICMP_HDR_LEN: usize = 8;
/// `bpf_map_update_elem`'s error for a full hash map.
const E2BIG: i32 = -7;

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_ECHO: u8 = 8;
const ICMP_TIME_EXCEEDED: u8 = 11;

/// Transport facts of a packet NAT can translate. TCP's sequence and
/// acknowledgment numbers (host byte order) feed the flow's state; 0
/// elsewhere.
pub struct Segment {
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub tcp_flags: u8,
    pub seq: u32,
    pub ack: u32,
}

impl Segment {
    /// A segment known by its ports only (a later fragment, a UDP datagram).
    #[inline(always)]
    pub fn ports(sport: [u8; 2], dport: [u8; 2]) -> Self {
        Segment {
            sport,
            dport,
            tcp_flags: 0,
            seq: 0,
            ack: 0,
        }
    }
}

/// Which way a packet crosses the NAT.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Way {
    Out,
    In,
}

/// Reads the ports (or echo identifier) of a TCP, UDP or ICMP echo packet;
/// `None` for anything else. Pulls the headers into the linear area, so
/// packet pointers must be taken afresh after it.
#[inline(always)]
pub fn segment(
    ctx: &impl parse::Packet,
    proto: u8,
    way: Way,
) -> Result<Option<Segment>, DropReason> {
    match proto {
        IPPROTO_TCP => {
            // SAFETY (all three reads): bounds checked by `header_mut`.
            let tcp = unsafe { *parse::header_mut::<[u8; 14]>(ctx, L4_OFF)? };
            Ok(Some(Segment {
                sport: [tcp[0], tcp[1]],
                dport: [tcp[2], tcp[3]],
                tcp_flags: tcp[13],
                seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
                ack: u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]),
            }))
        }
        IPPROTO_UDP => {
            let udp = unsafe { *parse::header_mut::<[u8; 8]>(ctx, L4_OFF)? };
            Ok(Some(Segment::ports([udp[0], udp[1]], [udp[2], udp[3]])))
        }
        IPPROTO_ICMP => {
            let icmp = unsafe { *parse::header_mut::<[u8; 8]>(ctx, L4_OFF)? };
            let id = [icmp[4], icmp[5]];
            Ok(match (way, icmp[0]) {
                (Way::Out, ICMP_ECHO) => Some(Segment::ports(id, [0; 2])),
                (Way::In, ICMP_ECHO_REPLY) => Some(Segment::ports([0; 2], id)),
                _ => None,
            })
        }
        _ => Ok(None),
    }
}

/// The reply-direction key of a packet's own tuple: how replies (and a
/// published endpoint's answers to the hairpin) are looked up.
#[inline(always)]
pub fn packet_key(ip: &Ipv4Hdr, seg: &Segment) -> NatKey {
    NatKey {
        saddr: ip.src_addr,
        daddr: ip.dst_addr,
        sport: seg.sport,
        dport: seg.dport,
        proto: ip.proto,
        dir: DIR_INGRESS,
        _pad: [0; 2],
    }
}

/// Offset of the port the translation rewrites: the source port going out,
/// the destination port coming in; the identifier for ICMP echo.
#[inline(always)]
fn port_offset(proto: u8, way: Way) -> usize {
    match (proto, way) {
        (IPPROTO_ICMP, _) => L4_OFF + 4,
        (_, Way::Out) => L4_OFF,
        (_, Way::In) => L4_OFF + 2,
    }
}

/// The TCP/UDP checksum to update through the kernel's helpers; ICMP's is
/// updated in place with the identifier.
#[inline(always)]
fn l4_csum(proto: u8) -> Option<L4Csum> {
    match proto {
        IPPROTO_TCP => Some(L4Csum {
            offset: L4_OFF + 16,
            udp: false,
        }),
        IPPROTO_UDP => Some(L4Csum {
            offset: L4_OFF + 6,
            udp: true,
        }),
        _ => None,
    }
}

#[inline(always)]
pub fn translatable(ip: &Ipv4Hdr) -> bool {
    // More-fragments flag or a fragment offset: not a whole datagram.
    let fragment = (ip.frags[0] & 0x3f) != 0 || ip.frags[1] != 0;
    usize::from(ip.ihl()) == Ipv4Hdr::LEN && !fragment
}

/// An endpoint's IPv4 packet to the outside world (`ip` is its header, the
/// source checked). Translated and sent out of the uplink when that is where
/// the route goes; otherwise the host's stack routes it.
#[inline(always)]
pub fn snat_v4(ctx: &TcContext, ifindex: u32, ip: &Ipv4Hdr) -> Result<Verdict, DropReason> {
    let Some(config) = maps::nat_config() else {
        return Ok(Verdict::ToHost);
    };
    if let Some(verdict) = hairpin::to_published(ctx, ip, &config)? {
        return Ok(verdict);
    }
    // Any size: a datagram too big for the uplink is translated all the
    // same (below), never left to the host to forward untranslated.
    let Some(fib::Route { hop, src: outside }) =
        fib::lookup_any_size(ctx, ifindex, ip.src_addr, ip.dst_addr)
    else {
        return Ok(Verdict::ToHost);
    };
    // TTL about to run out: the stack answers with "time exceeded" from the
    // gateway, as a router would (traceroute's first hop). Too big with DF
    // set: the stack answers "fragmentation needed" (path-MTU discovery) and
    // forwards nothing.
    if hop.oif() != config.uplink_ifindex
        || ip.ttl <= 1
        || (ipv4::dont_fragment(ip) && fib::too_big(ctx, hop.oif()))
    {
        return Ok(Verdict::ToHost);
    }
    if usize::from(ip.ihl()) != Ipv4Hdr::LEN {
        return Err(DropReason::Unsupported);
    }
    let piece = frag::piece(ip);
    if piece == Piece::Whole && ip.proto == IPPROTO_ICMP {
        // SAFETY: bounds checked by `header_mut`.
        let icmp_type = unsafe { *parse::header_mut::<u8>(ctx, L4_OFF)? };
        if icmp_type == ICMP_DEST_UNREACH || icmp_type == ICMP_TIME_EXCEEDED {
            return snat_icmp_error(ctx, ip, &hop);
        }
    }
    let seg = match piece {
        Piece::Later => frag::recall(ip, DIR_EGRESS)
            .map(|p| Segment::ports(p.sport, p.dport))
            .ok_or(DropReason::Unsupported)?,
        _ => segment(ctx, ip.proto, Way::Out)?.ok_or(DropReason::Unsupported)?,
    };
    let flow = Tuple {
        proto: ip.proto,
        src: ip.src_addr,
        dst: ip.dst_addr,
        sport: seg.sport,
        dport: seg.dport,
    };
    let (addr, port) = egress_mapping(&flow, &config, outside, &seg)?;
    if piece == Piece::First {
        frag::remember(ip, DIR_EGRESS, seg.sport, seg.dport);
    }

    // `segment` made the headers linear: no pull (which would invalidate
    // these pointers) from here on.
    let eth = parse::header_at::<EthHdr>(ctx, 0)?;
    let ipp = parse::header_at::<Ipv4Hdr>(ctx, IP_OFF)?;
    // SAFETY: bounds checked by `header_at`; no helper that moves packet
    // data runs until the last pointer use below.
    unsafe {
        rewrite_ip(&mut *ipp, Way::Out, addr);
        if let Some((smac, dmac)) = hop.macs() {
            (*eth).src_addr = smac;
            (*eth).dst_addr = dmac;
        }
    }
    // A later fragment has no transport header: its addresses are all.
    if piece != Piece::Later {
        rewrite_l4(ctx, flow.proto, Way::Out, flow.src, addr, flow.sport, port)?;
    }
    if fib::too_big(ctx, hop.oif()) {
        return to_stack_for_fragmenting(ctx);
    }
    Ok(Verdict::Translated(hop.redirect()))
}

/// A translated datagram too big for the uplink, DF clear: the stack
/// fragments it on its way out, as it does MASQUERADE's packets, and takes
/// the hop (its TTL back as it came). It accepts a packet with the host's
/// own source from this veth because `up` sets accept_local there; the
/// endpoint program admits no other.
#[inline(always)]
fn to_stack_for_fragmenting(ctx: &TcContext) -> Result<Verdict, DropReason> {
    let ipp = parse::header_at::<Ipv4Hdr>(ctx, IP_OFF)?;
    // SAFETY: bounds checked by `header_at`.
    unsafe { ipv4::inc_ttl(&mut *ipp) };
    Ok(Verdict::Translated(TC_ACT_UNSPEC))
}

/// The outside address and port of `flow`: its live mapping, or a new one
/// on `outside`, the address the host routes it out with. A mapping to an
/// address the uplink no longer routes with is replaced, as a masquerade
/// forgets flows when its interface's address changes.
#[inline(always)]
fn egress_mapping(
    flow: &Tuple,
    config: &NatConfig,
    outside: [u8; 4],
    seg: &Segment,
) -> Result<([u8; 4], [u8; 2]), DropReason> {
    let now = conntrack::now_ns();
    let egress_key = flow.egress_key();
    let mut preferred = None;
    // SAFETY: plain data; a concurrent change gives a stale copy at worst.
    if let Some(out) = unsafe { NAT.get(egress_key) }.copied()
        && (out.addr == outside || out.flags & FLOW_INBOUND != 0)
    {
        if let Some(reply) = NAT.get_ptr_mut(flow.ingress_key(out.addr, out.port)) {
            // SAFETY: a live map value; per-packet updates of plain fields.
            let reply = unsafe { &mut *reply };
            if reply.addr == flow.src
                && reply.port == flow.sport
                && !config.timeouts.expired(flow.proto, reply, now)
            {
                conntrack::seen_egress(reply, flow.proto, seg, now);
                return Ok((out.addr, out.port));
            }
        }
        // Expired, evicted or taken over: keep the port if it is still free.
        preferred = Some(out.port);
    }
    let port = reserve_port(flow, config, outside, preferred, seg, now)?;
    let out = NatEntry::new(outside, port, 0, now);
    insert_egress(&egress_key, &out, &flow.ingress_key(outside, port))?;
    Ok((outside, port))
}

/// Inserts the egress entry of a flow whose reply entry `reply_key` was just
/// made, and takes that back if the table is full.
#[inline(always)]
pub fn insert_egress(
    egress_key: &NatKey,
    out: &NatEntry,
    reply_key: &NatKey,
) -> Result<(), DropReason> {
    // No early drop here: a reply entry just went in, so the table had room
    // a moment ago; on this narrow miss the flow is refused.
    if NAT.insert(egress_key, out, 0).is_err() {
        let _ = NAT.remove(reply_key);
        return Err(DropReason::NatFull);
    }
    Ok(())
}

/// Inserts a NAT entry; a full table first gives up an unconfirmed flow
/// (early drop) for it.
#[inline(always)]
fn insert_making_room(key: &NatKey, value: &NatEntry, flags: u64) -> Result<(), i32> {
    match NAT.insert(key, value, flags) {
        Err(E2BIG) if early_drop::make_room() => NAT.insert(key, value, flags),
        result => result,
    }
}

/// Reserves an outside port for `flow` by inserting its reply entry with
/// `BPF_NOEXIST`: a live mapping is never overwritten; one that has expired,
/// or a TCP flow that is over (`conntrack::reclaimable`), is taken over —
/// also when the table is full (`nat_full` only when no port tried held
/// one and no unconfirmed flow could be evicted for the first port tried),
/// since that frees the room it takes.
/// Tries `preferred`, else a random start, then the next ports,
/// `PORT_RETRIES` in all.
#[inline(always)]
pub fn reserve_port(
    flow: &Tuple,
    config: &NatConfig,
    outside: [u8; 4],
    preferred: Option<[u8; 2]>,
    seg: &Segment,
    now: u64,
) -> Result<[u8; 2], DropReason> {
    let min = u32::from(config.port_min);
    let span = u32::from(config.port_max.saturating_sub(config.port_min)) + 1;
    let start = match preferred {
        Some(p) => u32::from(u16::from_be_bytes(p)).wrapping_sub(min),
        // SAFETY: plain helper call.
        None => unsafe { bpf_get_prandom_u32() },
    };
    let mut reply = NatEntry::new(flow.src, flow.sport, 0, now);
    conntrack::seen_egress(&mut reply, flow.proto, seg, now);
    let mut full = false;
    for i in 0..PORT_RETRIES {
        let port = ((min + start.wrapping_add(i) % span) as u16).to_be_bytes();
        let key = flow.ingress_key(outside, port);
        match NAT.insert(key, reply, u64::from(BPF_NOEXIST)) {
            Ok(()) => {
                early_drop::remember(&key);
                return Ok(port);
            }
            // No room (as opposed to `EEXIST`, a port taken): a flow that
            // is over on one of the next ports can still make some.
            Err(E2BIG) => {
                full = true;
                continue;
            }
            Err(_) => {}
        }
        // SAFETY: plain data; a stale copy at worst.
        let Some(old) = (unsafe { NAT.get(key) }).copied() else {
            continue;
        };
        if !config.timeouts.expired(flow.proto, &old, now)
            && !conntrack::reclaimable(&old, flow.proto, now)
        {
            continue;
        }
        // The old flow is over: drop both of its entries and take the port.
        let _ = NAT.remove(key.egress_partner(&old));
        let _ = NAT.remove(key);
        if NAT.insert(key, reply, u64::from(BPF_NOEXIST)).is_ok() {
            early_drop::remember(&key);
            return Ok(port);
        }
    }
    if !full {
        return Err(DropReason::NoPort);
    }
    // Full, and no port tried held a flow that is over: an unconfirmed flow
    // gives its room up for the first port tried. After the loop, once: the
    // verifier walks the eviction for every state it reaches.
    let port = ((min + start % span) as u16).to_be_bytes();
    let key = flow.ingress_key(outside, port);
    if early_drop::make_room() && NAT.insert(key, reply, u64::from(BPF_NOEXIST)).is_ok() {
        early_drop::remember(&key);
        return Ok(port);
    }
    Err(DropReason::NatFull)
}

/// A packet arriving on the uplink for no endpoint (`ip` is its header):
/// replies of NATed flows and ICMP errors about them go straight to their
/// endpoint; the rest is the host's.
#[inline(always)]
pub fn rev_snat_v4(ctx: &TcContext, ip: &Ipv4Hdr) -> Result<Verdict, DropReason> {
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
            return rev_snat_icmp_error(ctx, &config);
        }
    }
    let seg = match piece {
        Piece::Later => match frag::recall(ip, DIR_INGRESS) {
            Some(p) => Segment::ports(p.sport, p.dport),
            None => return Ok(Verdict::ToHost),
        },
        _ => match segment(ctx, ip.proto, Way::In)? {
            Some(seg) => seg,
            None => return Ok(Verdict::ToHost),
        },
    };
    let key = packet_key(ip, &seg);
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
        None => match publish(&key, &seg, now)? {
            Some(entry) => entry,
            None => return Ok(Verdict::ToHost),
        },
    };
    // SAFETY: a live map value; per-packet updates of plain fields.
    let entry = unsafe { &mut *entry };
    let (inside_addr, inside_port) = (entry.addr, entry.port);
    // The table is the uplink's, shared by its networks: a flow of another
    // network's endpoint is that network's program's (the next one) to track
    // and deliver.
    let Some(ep) = maps::endpoint(inside_addr) else {
        return Ok(Verdict::ToHost);
    };
    conntrack::seen_ingress(entry, ip.proto, &seg, now);
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
        rewrite_ip(&mut *ipp, Way::In, inside_addr);
        set_endpoint_macs(&mut *eth, &ep);
    }
    if piece == Piece::First {
        frag::remember(ip, DIR_INGRESS, seg.sport, seg.dport);
    }
    if piece != Piece::Later {
        rewrite_l4(
            ctx,
            ip.proto,
            Way::In,
            ip.dst_addr,
            inside_addr,
            seg.dport,
            inside_port,
        )?;
    }
    Ok(Verdict::Translated(redirect_to_endpoint(&ep)))
}

/// A new connection to a published port (Docker's `-p`): the flow's two
/// entries are made as for one an endpoint started, the other way round —
/// replies from the endpoint then leave through the source NAT path with the
/// published address and port, and the endpoint sees the client's own
/// address. Only a SYN opens a TCP connection (`tcp_no_flow` otherwise).
/// Returns the new reply-direction entry, `None` if the port is not
/// published.
#[inline(always)]
fn publish(key: &NatKey, seg: &Segment, now: u64) -> Result<Option<*mut NatEntry>, DropReason> {
    if key.proto != IPPROTO_TCP && key.proto != IPPROTO_UDP {
        return Ok(None);
    }
    let Some(target) = maps::published(key.proto, key.dport) else {
        return Ok(None);
    };
    const OPENING: u8 = conntrack::TCP_SYN | conntrack::TCP_ACK | conntrack::TCP_RST;
    if key.proto == IPPROTO_TCP && seg.tcp_flags & OPENING != conntrack::TCP_SYN {
        return Err(DropReason::TcpNoFlow);
    }
    let mut inbound = NatEntry::new(target.addr, target.port, FLOW_INBOUND, now);
    conntrack::seen_ingress(&mut inbound, key.proto, seg, now);
    // Replaces an expired flow of this tuple, if any (checked by the caller).
    if insert_making_room(key, &inbound, 0).is_err() {
        return Err(DropReason::NatFull);
    }
    early_drop::remember(key);
    let from_endpoint = Tuple {
        proto: key.proto,
        src: target.addr,
        dst: key.saddr,
        sport: target.port,
        dport: key.sport,
    };
    let out = NatEntry::new(key.daddr, key.dport, FLOW_INBOUND, now);
    insert_egress(&from_endpoint.egress_key(), &out, key)?;
    Ok(NAT.get_ptr_mut(key))
}

/// "Destination unreachable" (with "fragmentation needed", which path-MTU
/// discovery lives on) and "time exceeded" (traceroute) about a NATed flow:
/// the quoted packet is the one that left, so its source is translated back
/// along with the outer destination. The quoted transport checksum is left
/// as it was: it may be cut off, and no receiver checks it.
#[inline(always)]
fn rev_snat_icmp_error(ctx: &TcContext, config: &NatConfig) -> Result<Verdict, DropReason> {
    // Deepest first: the pull for it keeps the shallower headers linear too.
    let Ok(inner_l4) = parse::header_mut::<[u8; 8]>(ctx, INNER_L4_OFF) else {
        return Ok(Verdict::ToHost);
    };
    // SAFETY (both reads): bounds checked by `header_mut`.
    let inner_l4 = unsafe { *inner_l4 };
    let inner = unsafe { *parse::header_at::<Ipv4Hdr>(ctx, INNER_IP_OFF)? };
    if usize::from(inner.ihl()) != Ipv4Hdr::LEN {
        return Ok(Verdict::ToHost);
    }
    // The quoted packet went inside -> remote, translated to outside:port.
    let (remote_port, port_at) = match inner.proto {
        IPPROTO_TCP | IPPROTO_UDP => ([inner_l4[2], inner_l4[3]], 0),
        IPPROTO_ICMP if inner_l4[0] == ICMP_ECHO => ([0; 2], 4),
        _ => return Ok(Verdict::ToHost),
    };
    let outside_port = [inner_l4[port_at], inner_l4[port_at + 1]];
    let key = NatKey {
        saddr: inner.dst_addr,
        daddr: inner.src_addr,
        sport: remote_port,
        dport: outside_port,
        proto: inner.proto,
        dir: DIR_INGRESS,
        _pad: [0; 2],
    };
    // SAFETY: plain data; a stale copy at worst.
    let Some(entry) = (unsafe { NAT.get(key) }).copied() else {
        return Ok(Verdict::ToHost);
    };
    if config
        .timeouts
        .expired(inner.proto, &entry, conntrack::now_ns())
    {
        return Ok(Verdict::ToHost);
    }
    let Some(ep) = maps::endpoint(entry.addr) else {
        return Ok(Verdict::ToHost);
    };

    // `segment` made the headers linear: no pull (which would invalidate
    // these pointers) from here on.
    let eth = parse::header_at::<EthHdr>(ctx, 0)?;
    let ipp = parse::header_at::<Ipv4Hdr>(ctx, IP_OFF)?;
    let icmp_check = parse::header_at::<[u8; 2]>(ctx, L4_OFF + 2)?;
    let inner_ipp = parse::header_at::<Ipv4Hdr>(ctx, INNER_IP_OFF)?;
    let inner_port = parse::header_at::<[u8; 2]>(ctx, INNER_L4_OFF + port_at)?;
    // SAFETY: bounds checked by `header_at`; no helper runs in between.
    unsafe {
        let (outer, quoted, check) = (&mut *ipp, &mut *inner_ipp, &mut *icmp_check);
        if outer.ttl <= 1 {
            return Err(DropReason::TtlExceeded);
        }
        rewrite_ip(outer, Way::In, entry.addr);
        let port = &mut *inner_port;
        rewrite_quoted(
            check,
            quoted,
            ipv4::Field::Src,
            entry.addr,
            port,
            entry.port,
        );
        set_endpoint_macs(&mut *eth, &ep);
    }
    Ok(Verdict::Translated(redirect_to_endpoint(&ep)))
}

/// An endpoint's own "destination unreachable" or "time exceeded" about a
/// packet that reached it through the NAT (a reply, or a connection to a
/// published port): it leaves as the NAT's address, the quoted packet
/// addressed to the NAT's address and port as it was sent. Anything it
/// quotes that did not come through the NAT is dropped (`unsupported`), and
/// a packet sent to another endpoint (`icmp_spoofed`): an endpoint speaks
/// for its own flows only.
#[inline(always)]
fn snat_icmp_error(
    ctx: &TcContext,
    ip: &Ipv4Hdr,
    hop: &fib::NextHop,
) -> Result<Verdict, DropReason> {
    // Deepest first: the pull for it keeps the shallower headers linear too.
    // SAFETY (both reads): bounds checked by `header_mut` / `header_at`.
    let inner_l4 = unsafe { *parse::header_mut::<[u8; 8]>(ctx, INNER_L4_OFF)? };
    let inner = unsafe { *parse::header_at::<Ipv4Hdr>(ctx, INNER_IP_OFF)? };
    if usize::from(inner.ihl()) != Ipv4Hdr::LEN
        || (inner.proto != IPPROTO_TCP && inner.proto != IPPROTO_UDP)
    {
        return Err(DropReason::Unsupported);
    }
    // The sender's address was checked: the quoted packet must be one it got.
    if inner.dst_addr != ip.src_addr {
        return Err(DropReason::IcmpSpoofed);
    }
    // The quoted packet went remote -> endpoint; the flow the other way is
    // the endpoint's egress entry, which names the NAT's address and port.
    let flow = Tuple {
        proto: inner.proto,
        src: inner.dst_addr,
        dst: inner.src_addr,
        sport: [inner_l4[2], inner_l4[3]],
        dport: [inner_l4[0], inner_l4[1]],
    };
    // SAFETY: plain data; a stale copy at worst.
    let Some(out) = (unsafe { NAT.get(flow.egress_key()) }).copied() else {
        return Err(DropReason::Unsupported);
    };

    // `header_mut` made the headers linear: no pull from here on.
    let eth = parse::header_at::<EthHdr>(ctx, 0)?;
    let ipp = parse::header_at::<Ipv4Hdr>(ctx, IP_OFF)?;
    let icmp_check = parse::header_at::<[u8; 2]>(ctx, L4_OFF + 2)?;
    let inner_ipp = parse::header_at::<Ipv4Hdr>(ctx, INNER_IP_OFF)?;
    let inner_port = parse::header_at::<[u8; 2]>(ctx, INNER_L4_OFF + 2)?;
    // SAFETY: bounds checked by `header_at`; no helper runs in between.
    unsafe {
        let (outer, quoted, check) = (&mut *ipp, &mut *inner_ipp, &mut *icmp_check);
        rewrite_ip(outer, Way::Out, out.addr);
        let port = &mut *inner_port;
        rewrite_quoted(check, quoted, ipv4::Field::Dst, out.addr, port, out.port);
        if let Some((smac, dmac)) = hop.macs() {
            (*eth).src_addr = smac;
            (*eth).dst_addr = dmac;
        }
    }
    Ok(Verdict::Translated(hop.redirect()))
}

/// An ICMP error's quoted packet re-addressed: `field` of its IP header to
/// `addr`, its port to `port`. Everything quoted is ICMP payload, so the
/// ICMP checksum follows every change, the quoted header's own included.
#[inline(always)]
fn rewrite_quoted(
    check: &mut [u8; 2],
    quoted: &mut Ipv4Hdr,
    field: ipv4::Field,
    addr: [u8; 4],
    quoted_port: &mut [u8; 2],
    port: [u8; 2],
) {
    let (old_addr, old_check) = match field {
        ipv4::Field::Src => (quoted.src_addr, quoted.check),
        ipv4::Field::Dst => (quoted.dst_addr, quoted.check),
    };
    ipv4::set_addr(quoted, field, addr);
    csum::replace4(check, old_addr, addr);
    csum::replace2(check, old_check, quoted.check);
    csum::replace2(check, *quoted_port, port);
    *quoted_port = port;
}

/// Rewrites the translated address (source going out, destination coming
/// in) and decrements the TTL, as the router the host is would.
#[inline(always)]
pub fn rewrite_ip(ip: &mut Ipv4Hdr, way: Way, addr: [u8; 4]) {
    let field = match way {
        Way::Out => ipv4::Field::Src,
        Way::In => ipv4::Field::Dst,
    };
    ipv4::set_addr(ip, field, addr);
    ipv4::dec_ttl(ip);
}

/// Rewrites the translated port and the transport checksum. Runs after every
/// packet-pointer use: the checksum helpers invalidate them.
#[inline(always)]
pub fn rewrite_l4(
    ctx: &TcContext,
    proto: u8,
    way: Way,
    old_addr: [u8; 4],
    new_addr: [u8; 4],
    old_port: [u8; 2],
    new_port: [u8; 2],
) -> Result<(), DropReason> {
    let port = parse::header_at::<[u8; 2]>(ctx, port_offset(proto, way))?;
    match l4_csum(proto) {
        Some(l4) => {
            // SAFETY: bounds checked by `header_at`.
            unsafe { *port = new_port };
            l4.addr(ctx, old_addr, new_addr)?;
            l4.port(ctx, old_port, new_port)
        }
        None => {
            let check = parse::header_at::<[u8; 2]>(ctx, L4_OFF + 2)?;
            // SAFETY: bounds checked by `header_at`.
            unsafe {
                csum::replace2(&mut *check, old_port, new_port);
                *port = new_port;
            }
            Ok(())
        }
    }
}

#[inline(always)]
pub fn set_endpoint_macs(eth: &mut EthHdr, ep: &EndpointEntry) {
    eth.src_addr = ep.host_mac;
    eth.dst_addr = ep.mac;
}

/// From TC ingress, the peer redirect lands the packet on the endpoint's
/// `eth0` ingress directly.
#[inline(always)]
pub fn redirect_to_endpoint(ep: &EndpointEntry) -> i32 {
    // SAFETY: plain helper call.
    (unsafe { bpf_redirect_peer(ep.host_ifindex, 0) }) as i32
}
