//! What forwarding, routing and the NAT need of an address family: its
//! address and header, the checksum its pseudo-header feeds, its hop limit,
//! its FIB lookup and its maps. Those bodies are written once, generic over
//! a `Family`, and monomorphised (every call `#[inline(always)]`), so the
//! verifier sees plain code for each family, as if written out by hand.
//! Only what is genuinely per family stays apart, behind this trait: the
//! fragment fields and which ICMP errors the NAT translates. (ARP is IPv4's
//! own and never reaches these bodies.) IPv4 is `v4::V4`.

use aya_ebpf::{bindings::bpf_fib_lookup as FibParams, programs::TcContext};
use netfwd_common::{
    drop::DropReason,
    maps::EndpointEntry,
    nat::{NatConfig, PublishTarget, Tuple},
};

use crate::{
    csum::L4Csum,
    l4::Transport,
    maps::{
        ExpiredMarks, FragmentMap, HairpinMap, NatMap, RingCursorMap, SenderMap, SweepMap,
        UnrepliedRing,
    },
    parse,
};

/// Which address of a header a translation rewrites.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Src,
    Dst,
}

/// Where a packet stands in its datagram.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    Whole,
    /// Offset 0, more to come: has the transport header.
    First,
    /// Any other: no transport header.
    Later,
}

/// What the one gate an endpoint's packet passes (`forward::classify`) and
/// the delivery to its peer (`deliver::to_peer`) need of a family: the
/// header's addresses and hop limit, and the network's endpoints. IPv6
/// (`v6::V6`) is this much a family so far; routing and the NAT need the
/// whole `Family`.
pub trait Layer3: 'static {
    /// An address as on the wire.
    type Addr: Copy + PartialEq;
    /// The fixed part of the network header.
    type Hdr: Copy;

    fn saddr(ip: &Self::Hdr) -> Self::Addr;
    fn daddr(ip: &Self::Hdr) -> Self::Addr;
    fn hop_limit(ip: &Self::Hdr) -> u8;
    /// One hop, as the router the host is: the caller has checked that
    /// more than one is left.
    fn dec_hop_limit(ip: &mut Self::Hdr);
    /// Whether the header is the family's (its version) and no shorter
    /// than its fixed part.
    fn valid(ip: &Self::Hdr) -> bool;
    fn endpoint(addr: Self::Addr) -> Option<EndpointEntry>;
}

pub trait Family: Layer3 {
    /// The frame's EtherType for the family.
    const ETHER_TYPE: u16;
    /// The address that names none (a lookup's "any" source).
    const UNSPECIFIED: Self::Addr;
    /// Where the transport header of a plain packet starts.
    const L4_OFF: usize;
    /// ICMP echo: the family's ICMP protocol and its request and reply.
    const ICMP: u8;
    const ECHO_REQUEST: u8;
    const ECHO_REPLY: u8;
    /// Whether the family's ICMP checksum covers a pseudo-header (ICMPv6
    /// does, IPv4's ICMP not): then a translated address changes it too.
    const ICMP_PSEUDO_HDR: bool;
    /// Whether a full table evicts an unanswered flow for a new one (early
    /// drop, `early_drop::make_room`, a BPF subprogram) in place, where the
    /// flow is made. IPv6's does not: the eviction's frame (its 40-byte
    /// keys) beside the NAT's own is more than the 512 bytes of stack a
    /// program's calls share. Its egress evicts by a jump instead
    /// ([`Family::nat_full`]); a full table refuses its published ports'
    /// and hairpin's new flows (`nat_full`), and each sender's share of
    /// unanswered flows holds as IPv4's does.
    const EVICTS_IN_PLACE: bool;
    /// Whether a network without an uplink routes its endpoints' packets
    /// beyond it untranslated (the host's to forward, as a routed network
    /// does: IPv4's). IPv6's leave only through NAT66: without an uplink a
    /// network keeps them to its prefix, its peers and the networks it allows, and
    /// what the FIB cannot send out is the host's only if it is for one of
    /// the host's own addresses (`unsupported` otherwise, never forwarded
    /// with the endpoint's own address).
    const ROUTED_WITHOUT_NAT: bool;
    /// Whether the hairpin (`nat::hairpin`) runs in a program of its own,
    /// reached by a tail call for the packets it may take
    /// (`hairpin::is_candidate`), instead of inside the routing and NAT
    /// bodies: IPv6's, whose hairpin keys beside NAT66's own are more than
    /// the 512 bytes of stack `tc_to_remote6` has.
    const HAIRPIN_APART: bool;

    /// Whether the network's endpoints leave the uplink with their own
    /// addresses and ports, untranslated (IPv6's `nat6 = false`: a public
    /// prefix routed to the host). Their flows are kept in the NAT table
    /// all the same, mapped to themselves, so that only replies to them
    /// come back in (`route::classify_from_uplink`, `nat::rev_snat`).
    fn leaves_untranslated() -> bool;

    // The header.
    /// The transport protocol.
    fn proto(ip: &Self::Hdr) -> u8;
    /// Rewrites an address, with whatever header checksum covers it.
    fn set_addr(ip: &mut Self::Hdr, field: Field, addr: Self::Addr);
    /// Undoes `dec_hop_limit`: a hop the stack takes after all.
    fn inc_hop_limit(ip: &mut Self::Hdr);
    /// Whether a router may forward the header as it is (its checksum).
    fn header_ok(ip: &Self::Hdr) -> bool;
    /// The header's own checksum; zero for a family without one.
    fn header_check(ip: &Self::Hdr) -> [u8; 2];
    /// Whether the transport header lies right after the fixed header.
    fn plain(ip: &Self::Hdr) -> bool;
    fn is_broadcast_or_multicast(addr: Self::Addr) -> bool;
    /// Whether the sender forbids fragmenting the datagram on the way.
    fn dont_fragment(ip: &Self::Hdr) -> bool;

    // What crosses the NAT, fragments too (see `frag`).
    /// A datagram's identification, which its fragments share.
    type FragId: Copy;
    /// Whether the packet is (or, IPv6, is marked as) a piece of a
    /// fragmented datagram.
    fn fragmented(ip: &Self::Hdr) -> bool;
    /// Where the transport header of a packet the NAT may translate lies,
    /// its protocol and which piece of its datagram the packet is; for one
    /// it does not translate (IPv4 options, IPv6 extension headers other
    /// than the fragment header), the reason it is dropped going out (it
    /// is the host's coming in). May pull headers into the linear area.
    fn transport(
        ctx: &impl parse::Packet,
        ip: &Self::Hdr,
    ) -> Result<Transport<Self::FragId>, DropReason>;
    /// The first fragments' ports (`frag`).
    fn fragments() -> &'static FragmentMap<Self::Addr, Self::FragId>;

    // ICMP errors about NATed flows (see `nat::icmp_error`).
    /// Whether the whole packet is an ICMP error the NAT translates along
    /// with the packet it quotes.
    fn is_icmp_error(ctx: &TcContext, ip: &Self::Hdr) -> Result<bool, DropReason>;

    // Checksums.
    /// An address of the pseudo-header changed: `check` updated in place.
    fn csum_addr(check: &mut [u8; 2], old: Self::Addr, new: Self::Addr);
    /// The same through the kernel's helper (CHECKSUM_PARTIAL aware).
    fn l4_csum_addr(
        ctx: &TcContext,
        l4: L4Csum,
        old: Self::Addr,
        new: Self::Addr,
    ) -> Result<(), DropReason>;

    // The FIB.
    /// Fills `bpf_fib_lookup`'s parameters (`params`, zeroed) in for
    /// `src -> dst` from `ifindex`.
    fn fill_fib_params(
        params: &mut FibParams,
        ifindex: u32,
        src: Self::Addr,
        dst: Self::Addr,
        tot_len: u16,
    );
    /// The source address a lookup with `BPF_FIB_LOOKUP_SRC` filled in.
    fn fib_src(params: &FibParams) -> Self::Addr;
    /// The host's choice of source for `src -> dst` forwarded from
    /// `ifindex` (`fib::source`), for a masquerade mapping made or checked:
    /// in place, or (`Err`) by a jump to a program with the stack for it,
    /// which jumps back to the packet with the answer.
    fn host_source(
        ctx: &TcContext,
        ifindex: u32,
        src: Self::Addr,
        dst: Self::Addr,
        now: u64,
    ) -> Result<Option<Self::Addr>, DropReason>;

    /// The drop of a new flow (`flow`, an endpoint's, masqueraded) that
    /// found the table full, or, where the family evicts elsewhere, a jump
    /// to a program that makes room and back to the packet, which tries
    /// once more.
    fn nat_full(ctx: &TcContext, flow: &Tuple<Self::Addr>, now: u64) -> DropReason;

    // The family's maps and what the datapath reads from them.
    fn nat() -> &'static NatMap<Self::Addr>;
    /// The table's expiry sweep: its timer and record, and its marks.
    fn nat_sweep() -> &'static SweepMap;
    fn nat_expired() -> &'static ExpiredMarks<Self::Addr>;
    fn unreplied() -> &'static UnrepliedRing<Self::Addr>;
    fn unreplied_cursor() -> &'static RingCursorMap;
    fn unreplied_by_sender() -> &'static SenderMap<Self::Addr>;
    fn hairpin_host_ports() -> &'static HairpinMap<Self::Addr>;
    fn gateway() -> Option<Self::Addr>;
    fn in_subnet(addr: Self::Addr) -> bool;
    /// The `REMOTE_*` flags of the longest prefix holding `addr`; 0 if none.
    fn remote_flags(addr: Self::Addr) -> u8;
    /// The VXLAN tunnel's far end (an IPv4 LAN address) for `addr`, behind
    /// another cluster member (`REMOTE_TUNNEL`).
    fn tunnel_far_end(addr: Self::Addr) -> Option<[u8; 4]>;
    /// The endpoint behind host port `port` of `proto` for a connection
    /// from the uplink or an endpoint (a host-only port is none of theirs).
    fn published_outside(proto: u8, port: [u8; 2]) -> Option<PublishTarget<Self::Addr>>;
    /// The uplink's address (the hairpin's destination); `None` where the
    /// family has no hairpin.
    fn uplink_addr(config: &NatConfig) -> Option<Self::Addr>;
}
