//! IPv6 as a `Family`: an endpoint's packet is checked and delivered to
//! its peer, masqueraded (NAT66) and translated back by the bodies IPv4's
//! is. What differs is here: no header checksum, a pseudo-header under
//! ICMPv6's checksum too, a hop limit no router may fragment around
//! (`dont_fragment` always: a packet too big is answered "packet too big"
//! by the stack), and of the extension headers only the fragment header
//! crossing the NAT (`ext`).

use aya_ebpf::{bindings::bpf_fib_lookup as FibParams, programs::TcContext};
use netfwd_common::{
    drop::DropReason,
    maps::{
        EndpointEntry, NETWORK6_NO_NAT, REMOTE_ISOLATED, REMOTE_LOCAL, REMOTE_ROUTE, REMOTE_TRUSTED,
    },
    nat::{
        FragmentId6, IPPROTO_FRAGMENT, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, Ipv6Bytes,
        NatConfig, PublishTarget, Tuple,
    },
};
use network_types::{eth::EtherType, ip::Ipv6Hdr};

use super::{ext, in_prefix, is_multicast, source_note};
use crate::{
    csum::{self, L4Csum},
    family::{Family, Field, Layer3},
    l4::{IP_OFF, Transport},
    maps::{
        self, ExpiredMarks, FRAGMENTS6, FragmentMap, HAIRPIN6_HOST_PORTS, HairpinMap, NAT6,
        NAT6_EXPIRED, NAT6_SWEEP, NatMap, RingCursorMap, SenderMap, SweepMap, UNREPLIED6,
        UNREPLIED6_BY_SENDER, UNREPLIED6_CURSOR, UnrepliedRing,
    },
    parse,
};

/// `bpf_fib_lookup`'s family.
const AF_INET6: u8 = 10;
/// ICMPv6 errors the NAT translates (RFC 4443 3).
const ICMP6_DEST_UNREACH: u8 = 1;
const ICMP6_PACKET_TOO_BIG: u8 = 2;
const ICMP6_TIME_EXCEEDED: u8 = 3;
/// ICMPv6 echo (RFC 4443 4.1, 4.2).
const ICMP6_ECHO_REQUEST: u8 = 128;
const ICMP6_ECHO_REPLY: u8 = 129;

pub enum V6 {}

impl Layer3 for V6 {
    type Addr = Ipv6Bytes;
    type Hdr = Ipv6Hdr;

    #[inline(always)]
    fn saddr(ip: &Ipv6Hdr) -> Ipv6Bytes {
        Ipv6Bytes(ip.src_addr)
    }

    #[inline(always)]
    fn daddr(ip: &Ipv6Hdr) -> Ipv6Bytes {
        Ipv6Bytes(ip.dst_addr)
    }

    #[inline(always)]
    fn hop_limit(ip: &Ipv6Hdr) -> u8 {
        ip.hop_limit
    }

    /// No header checksum: the hop limit changes alone.
    #[inline(always)]
    fn dec_hop_limit(ip: &mut Ipv6Hdr) {
        ip.hop_limit -= 1;
    }

    #[inline(always)]
    fn valid(ip: &Ipv6Hdr) -> bool {
        ip.version() == 6
    }

    #[inline(always)]
    fn endpoint(addr: Ipv6Bytes) -> Option<EndpointEntry> {
        maps::endpoint6(&addr.0).copied()
    }
}

impl Family for V6 {
    const ETHER_TYPE: u16 = EtherType::Ipv6 as u16;
    const UNSPECIFIED: Ipv6Bytes = Ipv6Bytes([0; 16]);
    const L4_OFF: usize = IP_OFF + Ipv6Hdr::LEN;
    const ICMP: u8 = IPPROTO_ICMPV6;
    const ECHO_REQUEST: u8 = ICMP6_ECHO_REQUEST;
    const ECHO_REPLY: u8 = ICMP6_ECHO_REPLY;
    const ICMP_PSEUDO_HDR: bool = true;
    const ROUTED_WITHOUT_NAT: bool = false;
    const HAIRPIN_APART: bool = true;
    const EVICTS_IN_PLACE: bool = false;

    #[inline(always)]
    fn leaves_untranslated() -> bool {
        maps::network6().is_some_and(|network| network.flags & NETWORK6_NO_NAT != 0)
    }

    #[inline(always)]
    fn proto(ip: &Ipv6Hdr) -> u8 {
        ip.next_hdr
    }

    #[inline(always)]
    fn set_addr(ip: &mut Ipv6Hdr, field: Field, addr: Ipv6Bytes) {
        match field {
            Field::Src => ip.src_addr = addr.0,
            Field::Dst => ip.dst_addr = addr.0,
        }
    }

    #[inline(always)]
    fn inc_hop_limit(ip: &mut Ipv6Hdr) {
        ip.hop_limit += 1;
    }

    /// IPv6 has no header checksum to be wrong.
    #[inline(always)]
    fn header_ok(_ip: &Ipv6Hdr) -> bool {
        true
    }

    #[inline(always)]
    fn header_check(_ip: &Ipv6Hdr) -> [u8; 2] {
        [0; 2]
    }

    #[inline(always)]
    fn plain(ip: &Ipv6Hdr) -> bool {
        matches!(ip.next_hdr, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_ICMPV6)
    }

    /// IPv6 has no broadcast.
    #[inline(always)]
    fn is_broadcast_or_multicast(addr: Ipv6Bytes) -> bool {
        is_multicast(&addr.0)
    }

    /// Routers never fragment IPv6 (RFC 8200 5).
    #[inline(always)]
    fn dont_fragment(_ip: &Ipv6Hdr) -> bool {
        true
    }

    /// The fragment header's identification.
    type FragId = FragmentId6;

    /// A fragment header right after the fixed one (an atomic fragment
    /// too: its transport header is not at `L4_OFF`).
    #[inline(always)]
    fn fragmented(ip: &Ipv6Hdr) -> bool {
        ip.next_hdr == IPPROTO_FRAGMENT
    }

    #[inline(always)]
    fn transport(
        ctx: &impl parse::Packet,
        ip: &Ipv6Hdr,
    ) -> Result<Transport<FragmentId6>, DropReason> {
        ext::transport(ctx, ip)
    }

    #[inline(always)]
    fn fragments() -> &'static FragmentMap<Ipv6Bytes, FragmentId6> {
        &FRAGMENTS6
    }

    /// "Destination unreachable", "packet too big" and "time exceeded"
    /// (RFC 4443 3.1-3.3).
    #[inline(always)]
    fn is_icmp_error(ctx: &TcContext, ip: &Ipv6Hdr) -> Result<bool, DropReason> {
        if ip.next_hdr != IPPROTO_ICMPV6 {
            return Ok(false);
        }
        // SAFETY: bounds checked by `header_mut`.
        let icmp_type = unsafe { *parse::header_mut::<u8>(ctx, Self::L4_OFF)? };
        Ok(matches!(
            icmp_type,
            ICMP6_DEST_UNREACH | ICMP6_PACKET_TOO_BIG | ICMP6_TIME_EXCEEDED
        ))
    }

    #[inline(always)]
    fn csum_addr(check: &mut [u8; 2], old: Ipv6Bytes, new: Ipv6Bytes) {
        csum::replace(check, old.0, new.0);
    }

    #[inline(always)]
    fn l4_csum_addr(
        ctx: &TcContext,
        l4: L4Csum,
        old: Ipv6Bytes,
        new: Ipv6Bytes,
    ) -> Result<(), DropReason> {
        l4.addr6(ctx, &old, &new)
    }

    #[inline(always)]
    fn fill_fib_params(
        params: &mut FibParams,
        ifindex: u32,
        src: Ipv6Bytes,
        dst: Ipv6Bytes,
        tot_len: u16,
    ) {
        params.family = AF_INET6;
        params.__bindgen_anon_1.tot_len = tot_len;
        params.ifindex = ifindex;
        params.__bindgen_anon_3.ipv6_src = words(src);
        params.__bindgen_anon_4.ipv6_dst = words(dst);
    }

    /// By a jump (`tc_nat_source6`): `tc_to_remote6` has no room for a
    /// lookup's parameters where its mapping is made.
    #[inline(always)]
    fn host_source(
        ctx: &TcContext,
        ifindex: u32,
        src: Ipv6Bytes,
        dst: Ipv6Bytes,
        now: u64,
    ) -> Result<Option<Ipv6Bytes>, DropReason> {
        match source_note::take(ifindex, src, dst, now) {
            Some(answer) => Ok(answer),
            None => Err(source_note::ask(ctx, ifindex, src, dst)),
        }
    }

    /// By a jump (`tc_nat_room6`), once: `tc_to_remote6` has no room for
    /// the eviction's frame.
    #[inline(always)]
    fn nat_full(ctx: &TcContext, flow: &Tuple<Ipv6Bytes>, now: u64) -> DropReason {
        let ports = [flow.sport, flow.dport];
        if source_note::room_made_for(ports, flow.proto, now) {
            DropReason::NatFull
        } else {
            source_note::ask_room(ctx, ports, flow.proto)
        }
    }

    #[inline(always)]
    fn fib_src(params: &FibParams) -> Ipv6Bytes {
        // SAFETY: the kernel wrote an IPv6 source for an AF_INET6 lookup.
        let words = unsafe { params.__bindgen_anon_3.ipv6_src };
        let mut addr = [0; 16];
        for (i, word) in words.iter().enumerate() {
            addr[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
        }
        Ipv6Bytes(addr)
    }

    #[inline(always)]
    fn nat() -> &'static NatMap<Ipv6Bytes> {
        &NAT6
    }

    #[inline(always)]
    fn nat_sweep() -> &'static SweepMap {
        &NAT6_SWEEP
    }

    #[inline(always)]
    fn nat_expired() -> &'static ExpiredMarks<Ipv6Bytes> {
        &NAT6_EXPIRED
    }

    #[inline(always)]
    fn unreplied() -> &'static UnrepliedRing<Ipv6Bytes> {
        &UNREPLIED6
    }

    #[inline(always)]
    fn unreplied_cursor() -> &'static RingCursorMap {
        &UNREPLIED6_CURSOR
    }

    #[inline(always)]
    fn unreplied_by_sender() -> &'static SenderMap<Ipv6Bytes> {
        &UNREPLIED6_BY_SENDER
    }

    #[inline(always)]
    fn hairpin_host_ports() -> &'static HairpinMap<Ipv6Bytes> {
        &HAIRPIN6_HOST_PORTS
    }

    #[inline(always)]
    fn gateway() -> Option<Ipv6Bytes> {
        maps::network6().map(|network| Ipv6Bytes(network.gateway))
    }

    #[inline(always)]
    fn in_subnet(addr: Ipv6Bytes) -> bool {
        maps::network6().is_some_and(|network| in_prefix(network, &addr.0))
    }

    /// Other networks' prefixes, allowed (routed) or isolated, and peer
    /// hosts' and the LAN's, routed to and trusted as IPv4's are. The
    /// tunnel is IPv4's: its flag is never IPv6's (masked, so its path is
    /// compiled out of IPv6's programs).
    #[inline(always)]
    fn remote_flags(addr: Ipv6Bytes) -> u8 {
        maps::remote_flags6(&addr.0)
            & (REMOTE_ROUTE | REMOTE_TRUSTED | REMOTE_ISOLATED | REMOTE_LOCAL)
    }

    /// No IPv6 crosses the tunnel (`remote_flags` is never `REMOTE_TUNNEL`).
    #[inline(always)]
    fn tunnel_far_end(_addr: Ipv6Bytes) -> Option<[u8; 4]> {
        None
    }

    #[inline(always)]
    fn published_outside(proto: u8, port: [u8; 2]) -> Option<PublishTarget<Ipv6Bytes>> {
        maps::published_outside(&maps::PUBLISHED6, proto, port)
    }

    /// `None` where the uplink has no global IPv6 address: nothing to
    /// hairpin at.
    #[inline(always)]
    fn uplink_addr(config: &NatConfig) -> Option<Ipv6Bytes> {
        (config.uplink_addr6 != [0; 16]).then_some(Ipv6Bytes(config.uplink_addr6))
    }
}

/// An address as `bpf_fib_lookup` takes it: four words in wire order.
#[inline(always)]
fn words(addr: Ipv6Bytes) -> [u32; 4] {
    let a = addr.0;
    [
        u32::from_ne_bytes([a[0], a[1], a[2], a[3]]),
        u32::from_ne_bytes([a[4], a[5], a[6], a[7]]),
        u32::from_ne_bytes([a[8], a[9], a[10], a[11]]),
        u32::from_ne_bytes([a[12], a[13], a[14], a[15]]),
    ]
}
