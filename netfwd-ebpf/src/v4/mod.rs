//! IPv4 as a `Family`: its header, checksums, FIB parameters and maps for
//! the bodies written once over `Family`, and what is IPv4's own behind
//! the trait: `header` (in-place header changes and the fragment fields)
//! and which ICMP errors the NAT translates.

mod header;

use aya_ebpf::{bindings::bpf_fib_lookup as FibParams, programs::TcContext};
use netfwd_common::{
    drop::DropReason,
    maps::EndpointEntry,
    nat::{IPPROTO_ICMP, NatConfig, PublishTarget, Tuple},
};
use network_types::{eth::EtherType, ip::Ipv4Hdr};

use crate::{
    csum::{self, L4Csum},
    family::{Family, Field, Layer3, Piece},
    fib,
    l4::Transport,
    maps::{
        self, ExpiredMarks, FRAGMENTS, FragmentMap, HAIRPIN_HOST_PORTS, HairpinMap, NAT,
        NAT_EXPIRED, NAT_SWEEP, NatMap, RingCursorMap, SenderMap, SweepMap, UNREPLIED,
        UNREPLIED_BY_SENDER, UNREPLIED_CURSOR, UnrepliedRing,
    },
    parse,
};

use header::{ICMP_DEST_UNREACH, ICMP_ECHO, ICMP_ECHO_REPLY, ICMP_TIME_EXCEEDED};

/// `bpf_fib_lookup`'s family.
const AF_INET: u8 = 2;

/// IPv4: only headers without options are translated or routed here.
pub enum V4 {}

impl Layer3 for V4 {
    type Addr = [u8; 4];
    type Hdr = Ipv4Hdr;

    #[inline(always)]
    fn saddr(ip: &Ipv4Hdr) -> [u8; 4] {
        ip.src_addr
    }

    #[inline(always)]
    fn daddr(ip: &Ipv4Hdr) -> [u8; 4] {
        ip.dst_addr
    }

    #[inline(always)]
    fn hop_limit(ip: &Ipv4Hdr) -> u8 {
        ip.ttl
    }

    #[inline(always)]
    fn dec_hop_limit(ip: &mut Ipv4Hdr) {
        header::dec_ttl(ip);
    }

    /// `ihl()` is in bytes.
    #[inline(always)]
    fn valid(ip: &Ipv4Hdr) -> bool {
        ip.version() == 4 && usize::from(ip.ihl()) >= Ipv4Hdr::LEN
    }

    #[inline(always)]
    fn endpoint(addr: [u8; 4]) -> Option<EndpointEntry> {
        maps::endpoint(addr)
    }
}

impl Family for V4 {
    const ETHER_TYPE: u16 = EtherType::Ipv4 as u16;
    const UNSPECIFIED: [u8; 4] = [0; 4];
    const L4_OFF: usize = header::L4_OFF;
    const ICMP: u8 = IPPROTO_ICMP;
    const ECHO_REQUEST: u8 = ICMP_ECHO;
    const ECHO_REPLY: u8 = ICMP_ECHO_REPLY;
    const ICMP_PSEUDO_HDR: bool = false;
    const ROUTED_WITHOUT_NAT: bool = true;
    const HAIRPIN_APART: bool = false;
    const EVICTS_IN_PLACE: bool = true;

    /// IPv4 is always masqueraded on the uplink.
    #[inline(always)]
    fn leaves_untranslated() -> bool {
        false
    }

    #[inline(always)]
    fn proto(ip: &Ipv4Hdr) -> u8 {
        ip.proto
    }

    #[inline(always)]
    fn set_addr(ip: &mut Ipv4Hdr, field: Field, addr: [u8; 4]) {
        header::set_addr(ip, field, addr);
    }

    #[inline(always)]
    fn inc_hop_limit(ip: &mut Ipv4Hdr) {
        header::inc_ttl(ip);
    }

    #[inline(always)]
    fn header_ok(ip: &Ipv4Hdr) -> bool {
        header::header_checksum_ok(ip)
    }

    #[inline(always)]
    fn header_check(ip: &Ipv4Hdr) -> [u8; 2] {
        ip.check
    }

    #[inline(always)]
    fn plain(ip: &Ipv4Hdr) -> bool {
        header::plain(ip)
    }

    #[inline(always)]
    fn is_broadcast_or_multicast(addr: [u8; 4]) -> bool {
        header::is_broadcast_or_multicast(addr)
    }

    #[inline(always)]
    fn dont_fragment(ip: &Ipv4Hdr) -> bool {
        header::dont_fragment(ip)
    }

    /// The IP identification.
    type FragId = [u8; 2];

    #[inline(always)]
    fn fragmented(ip: &Ipv4Hdr) -> bool {
        header::piece(ip) != Piece::Whole
    }

    /// Right after a header without options; one with options is not
    /// translated (`unsupported`).
    #[inline(always)]
    fn transport(
        _ctx: &impl parse::Packet,
        ip: &Ipv4Hdr,
    ) -> Result<Transport<[u8; 2]>, DropReason> {
        if !header::plain(ip) {
            return Err(DropReason::Unsupported);
        }
        Ok(Transport {
            proto: ip.proto,
            off: Self::L4_OFF,
            piece: header::piece(ip),
            id: ip.id,
        })
    }

    #[inline(always)]
    fn fragments() -> &'static FragmentMap<[u8; 4], [u8; 2]> {
        &FRAGMENTS
    }

    /// "Destination unreachable" and "time exceeded".
    #[inline(always)]
    fn is_icmp_error(ctx: &TcContext, ip: &Ipv4Hdr) -> Result<bool, DropReason> {
        if ip.proto != IPPROTO_ICMP {
            return Ok(false);
        }
        // SAFETY: bounds checked by `header_mut`.
        let icmp_type = unsafe { *parse::header_mut::<u8>(ctx, Self::L4_OFF)? };
        Ok(icmp_type == ICMP_DEST_UNREACH || icmp_type == ICMP_TIME_EXCEEDED)
    }

    #[inline(always)]
    fn csum_addr(check: &mut [u8; 2], old: [u8; 4], new: [u8; 4]) {
        csum::replace(check, old, new);
    }

    #[inline(always)]
    fn l4_csum_addr(
        ctx: &TcContext,
        l4: L4Csum,
        old: [u8; 4],
        new: [u8; 4],
    ) -> Result<(), DropReason> {
        l4.addr(ctx, old, new)
    }

    #[inline(always)]
    fn fill_fib_params(
        params: &mut FibParams,
        ifindex: u32,
        src: [u8; 4],
        dst: [u8; 4],
        tot_len: u16,
    ) {
        params.family = AF_INET;
        params.__bindgen_anon_1.tot_len = tot_len;
        params.ifindex = ifindex;
        params.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(src);
        params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(dst);
    }

    #[inline(always)]
    fn fib_src(params: &FibParams) -> [u8; 4] {
        // SAFETY: the kernel wrote an IPv4 source for an AF_INET lookup.
        unsafe { params.__bindgen_anon_3.ipv4_src }.to_ne_bytes()
    }

    /// In place: IPv4's path has the stack for the lookup.
    #[inline(always)]
    fn host_source(
        ctx: &TcContext,
        ifindex: u32,
        src: [u8; 4],
        dst: [u8; 4],
        _now: u64,
    ) -> Result<Option<[u8; 4]>, DropReason> {
        Ok(fib::source::<V4>(ctx, ifindex, src, dst))
    }

    /// Refused: its room was looked for in place (`EVICTS_IN_PLACE`).
    #[inline(always)]
    fn nat_full(_ctx: &TcContext, _flow: &Tuple<[u8; 4]>, _now: u64) -> DropReason {
        DropReason::NatFull
    }

    #[inline(always)]
    fn nat() -> &'static NatMap<[u8; 4]> {
        &NAT
    }

    #[inline(always)]
    fn nat_sweep() -> &'static SweepMap {
        &NAT_SWEEP
    }

    #[inline(always)]
    fn nat_expired() -> &'static ExpiredMarks<[u8; 4]> {
        &NAT_EXPIRED
    }

    #[inline(always)]
    fn unreplied() -> &'static UnrepliedRing<[u8; 4]> {
        &UNREPLIED
    }

    #[inline(always)]
    fn unreplied_cursor() -> &'static RingCursorMap {
        &UNREPLIED_CURSOR
    }

    #[inline(always)]
    fn unreplied_by_sender() -> &'static SenderMap<[u8; 4]> {
        &UNREPLIED_BY_SENDER
    }

    #[inline(always)]
    fn hairpin_host_ports() -> &'static HairpinMap<[u8; 4]> {
        &HAIRPIN_HOST_PORTS
    }

    #[inline(always)]
    fn gateway() -> Option<[u8; 4]> {
        maps::gateway()
    }

    #[inline(always)]
    fn in_subnet(addr: [u8; 4]) -> bool {
        maps::in_subnet(addr)
    }

    #[inline(always)]
    fn remote_flags(addr: [u8; 4]) -> u8 {
        maps::remote_flags(addr)
    }

    #[inline(always)]
    fn tunnel_far_end(addr: [u8; 4]) -> Option<[u8; 4]> {
        maps::tunnel_far_end(addr)
    }

    #[inline(always)]
    fn published_outside(proto: u8, port: [u8; 2]) -> Option<PublishTarget> {
        maps::published_outside(&maps::PUBLISHED, proto, port)
    }

    #[inline(always)]
    fn uplink_addr(config: &NatConfig) -> Option<[u8; 4]> {
        Some(config.uplink_addr)
    }
}
