//! IPv6 inside a dual-stack network: an endpoint's packet passes the gate
//! IPv4's does (`forward::classify`, as `V6`) and goes straight into its
//! peer's namespace; for the gateway or the link (neighbour discovery,
//! multicast listeners) it is the host's; beyond the prefix it takes
//! IPv4's road (`route`), masqueraded out of the uplink (NAT66) by the same
//! bodies (`tc_to_remote6`). What is IPv6's own here: neighbour solicitations for the gateway
//! and other endpoints answered (as ARP is), neighbour advertisements
//! checked, link-local sources. (Router messages were refused before this,
//! by `router_guard`.)

pub(crate) mod ext;
mod family;
pub mod source_note;

use aya_ebpf::{helpers::bpf_redirect, programs::TcContext};
use netfwd_common::{
    drop::DropReason,
    maps::Network6Config,
    names::{CALL_HAIRPIN6, CALL_HAIRPIN6_FLOW, CALL_TO_REMOTE6},
    nat::{IPPROTO_ICMPV6, Ipv6Bytes},
};
use network_types::{eth::EthHdr, ip::Ipv6Hdr};

use crate::{
    csum, deliver,
    forward::{self, Class},
    l4::IP_OFF,
    maps,
    nat::hairpin::{self, Apart},
    parse, router_guard, tail,
    verdict::Verdict,
};
pub use family::V6;

/// An endpoint's IPv6 packet, on its host-side veth `ifindex`: the body of
/// `tc_from_endpoint6`, which has a stack of its own.
#[inline(always)]
pub fn from_endpoint(ctx: &TcContext, ifindex: u32) -> Result<Verdict, DropReason> {
    // An IPv4-only network leaves its endpoints' IPv6 to the host's stack.
    let Some(network) = maps::network6() else {
        return Ok(Verdict::ToHost);
    };
    // SAFETY: bounds checked by `header_mut`; copied out at once.
    if unsafe { (*parse::header_mut::<Ipv6Hdr>(ctx, IP_OFF)?).next_hdr } == IPPROTO_ICMPV6 {
        // SAFETY: bounds checked by `header_mut`; copied out at once.
        match unsafe { *parse::header_mut::<u8>(ctx, ICMP6_OFF)? } {
            router_guard::ND_NEIGHBOUR_ADVERT => check_neighbour_advert(ctx, ifindex)?,
            ND_NEIGHBOUR_SOLICIT => {
                if let Some(answered) = answer_solicitation(ctx, ifindex, network)? {
                    return Ok(answered);
                }
            }
            _ => {}
        }
    }
    // Taken afresh: the check's deeper headers may have been pulled.
    let ip = parse::header_mut::<Ipv6Hdr>(ctx, IP_OFF)?;
    let eth = parse::header_mut::<EthHdr>(ctx, 0)?;
    // SAFETY: bounds checked by `header_mut`.
    let (ip, eth) = unsafe { (&mut *ip, &mut *eth) };
    if ip.version() != 6 {
        return Err(DropReason::Malformed);
    }
    // Neighbour discovery and multicast listener reports speak from the
    // link-local or unspecified address, to the link: the host's to answer.
    // (Read in place: copied, the compiler spills every byte.)
    if is_link_local(&ip.src_addr) || halves(&ip.src_addr) == [0; 2] {
        return if is_link_local(&ip.dst_addr) || is_multicast(&ip.dst_addr) {
            Ok(Verdict::ToHost)
        } else {
            Err(DropReason::IpSpoofed)
        };
    }
    match forward::classify::<V6>(ifindex, eth, ip)? {
        Class::Peer(peer) => Ok(deliver::to_peer::<V6>(ctx, eth, ip, &peer)),
        Class::Itself => Ok(Verdict::ToHost),
        // The link's own (link-local) is the host's; the rest is routed or
        // translated as IPv4's is, by programs with a stack of their own
        // (`tc_to_remote6`; the hairpin's, `tc_hairpin6_flow` and
        // `tc_hairpin6`): IPv6's keys and headers are too big for both.
        Class::Remote if is_link_local(&ip.dst_addr) => Ok(Verdict::ToHost),
        Class::Remote => Err(tail::jump(
            ctx,
            match hairpin::apart_step::<V6>(ip.next_hdr, Ipv6Bytes(ip.dst_addr)) {
                Some(Apart::OpenFlow) => CALL_HAIRPIN6_FLOW,
                Some(Apart::Translate) => CALL_HAIRPIN6,
                None => CALL_TO_REMOTE6,
            },
        )),
    }
}

/// A neighbour solicitation or advertisement (RFC 4861 4.3, 4.4) with the
/// one option every stack sends with it: the MAC of the sender (a
/// solicitation's source) or of the target (an advertisement's).
#[repr(C)]
#[derive(Clone, Copy)]
struct NeighbourMessage {
    kind: u8,
    code: u8,
    check: [u8; 2],
    /// An advertisement's router, solicited and override bits; zero in a
    /// solicitation.
    flags: [u8; 4],
    target: [u8; 16],
    option_type: u8,
    option_len: u8,
    option_mac: [u8; 6],
}

const ND_NEIGHBOUR_SOLICIT: u8 = 135;
/// Neighbour discovery's hop limit: sent at 255, so a message that crossed
/// a router is told apart.
const ND_HOP_LIMIT: u8 = 255;
/// Option types: source and target link-layer address.
const ND_OPT_SOURCE_LL_ADDR: u8 = 1;
const ND_OPT_TARGET_LL_ADDR: u8 = 2;
/// An advertisement's flags: solicited, override; and router with them.
const ND_ADVERT_SOLICITED_OVERRIDE: [u8; 4] = [0x60, 0, 0, 0];
const ND_ADVERT_ROUTER_SOLICITED_OVERRIDE: [u8; 4] = [0xe0, 0, 0, 0];
/// Where the ICMPv6 header of a packet without extension headers is.
const ICMP6_OFF: usize = IP_OFF + Ipv6Hdr::LEN;

/// An endpoint's neighbour advertisement, if the packet is one: for any
/// address but a link-local one it must be the endpoint's own, from its own
/// MAC and naming it, as ARP replies must be (`arp_spoofed`); else
/// `nd_spoofed`. A link-local target is the business of the endpoint's own
/// link alone. (Behind extension headers, `router_guard` dropped it.)
#[inline(always)]
fn check_neighbour_advert(ctx: &TcContext, ifindex: u32) -> Result<(), DropReason> {
    // SAFETY: bounds checked by `header_mut`; copied out at once.
    let src_mac = unsafe { (*parse::header_mut::<EthHdr>(ctx, 0)?).src_addr };
    let advert =
        parse::header_mut::<NeighbourMessage>(ctx, ICMP6_OFF).map_err(|_| DropReason::NdSpoofed)?;
    // SAFETY: bounds checked by `header_mut`; no pull follows.
    let advert = unsafe { &*advert };
    if is_link_local(&advert.target) {
        return Ok(());
    }
    match maps::endpoint6(&advert.target) {
        Some(me)
            if me.host_ifindex == ifindex
                && me.mac == src_mac
                && advert.option_type == ND_OPT_TARGET_LL_ADDR
                && advert.option_mac == me.mac =>
        {
            Ok(())
        }
        _ => Err(DropReason::NdSpoofed),
    }
}

/// An endpoint's solicitation for the gateway or another endpoint,
/// answered in place as ARP is: the gateway's MAC is the endpoint's
/// host-side veth's (and the answer says it is a router, as the host's
/// own would), another endpoint's is its own (so their frames need no
/// rewriting), and the answer goes back out of the interface it came in
/// on. Only one from the endpoint's own address and MAC, with the option
/// naming it, as every stack sends it: one naming another MAC is
/// `nd_spoofed`; any other (an address probe from `::`, a link-local
/// source, a forged source) is left to the checks and the host.
#[inline(never)]
fn answer_solicitation(
    ctx: &TcContext,
    ifindex: u32,
    network: &Network6Config,
) -> Result<Option<Verdict>, DropReason> {
    let Ok(solicit) = parse::header_mut::<NeighbourMessage>(ctx, ICMP6_OFF) else {
        return Ok(None);
    };
    let ip = parse::header_mut::<Ipv6Hdr>(ctx, IP_OFF)?;
    let eth = parse::header_mut::<EthHdr>(ctx, 0)?;
    // SAFETY: bounds checked by `header_mut`; TC programs may write packet data.
    let (solicit, ip, eth) = unsafe { (&mut *solicit, &mut *ip, &mut *eth) };
    let asker = match maps::endpoint6(&ip.src_addr) {
        Some(me) if me.host_ifindex == ifindex && me.mac == eth.src_addr => me,
        _ => return Ok(None),
    };
    // The option tells whoever answers the asker's MAC: another MAC there
    // would have the host (or a peer) send the endpoint's traffic to it,
    // as a forged ARP request would (`nd_spoofed`, as an advertisement's).
    if solicit.option_type == ND_OPT_SOURCE_LL_ADDR && solicit.option_mac != asker.mac {
        return Err(DropReason::NdSpoofed);
    }
    let whole = ip.payload_len() as usize == core::mem::size_of::<NeighbourMessage>();
    // RFC 4861 7.1.1: hop limit 255 and code 0, or it is no solicitation
    // (and the answer keeps the hop limit, which must be 255 too).
    if !whole
        || ip.hop_limit != ND_HOP_LIMIT
        || solicit.code != 0
        || solicit.option_type != ND_OPT_SOURCE_LL_ADDR
        || solicit.option_len != 1
    {
        return Ok(None);
    }
    let (answer, flags) = if halves(&solicit.target) == halves(&network.gateway) {
        (asker.host_mac, ND_ADVERT_ROUTER_SOLICITED_OVERRIDE)
    } else {
        match maps::endpoint6(&solicit.target) {
            Some(peer) if peer.host_ifindex != ifindex => (peer.mac, ND_ADVERT_SOLICITED_OVERRIDE),
            _ => return Ok(None),
        }
    };

    // RFC 1624, field by field. The checksum's pseudo-header had the asker
    // and the solicited-node group; it has the target and the asker: the
    // group became the target.
    csum::replace(&mut solicit.check, ip.dst_addr, solicit.target);
    csum::replace(
        &mut solicit.check,
        [solicit.kind, solicit.code],
        [router_guard::ND_NEIGHBOUR_ADVERT, 0],
    );
    csum::replace(&mut solicit.check, solicit.flags, flags);
    csum::replace(
        &mut solicit.check,
        [solicit.option_type, solicit.option_len],
        [ND_OPT_TARGET_LL_ADDR, 1],
    );
    csum::replace(&mut solicit.check, solicit.option_mac, answer);
    solicit.kind = router_guard::ND_NEIGHBOUR_ADVERT;
    solicit.code = 0;
    solicit.flags = flags;
    solicit.option_type = ND_OPT_TARGET_LL_ADDR;
    solicit.option_mac = answer;
    ip.dst_addr = ip.src_addr;
    ip.src_addr = solicit.target;
    eth.dst_addr = eth.src_addr;
    eth.src_addr = answer;
    // SAFETY: plain helper call; egress of the same device reaches the endpoint.
    let action = unsafe { bpf_redirect(ifindex, 0) } as i32;
    Ok(Some(Verdict::ArpReplied(action)))
}

/// fe80::/10.
#[inline(always)]
fn is_link_local(addr: &[u8; 16]) -> bool {
    addr[0] == 0xfe && addr[1] & 0xc0 == 0x80
}

/// ff00::/8.
#[inline(always)]
pub(crate) fn is_multicast(addr: &[u8; 16]) -> bool {
    addr[0] == 0xff
}

/// An address as two big-endian halves, compared and masked in registers
/// (byte by byte, the compiler spills it all to the stack).
#[inline(always)]
fn halves(addr: &[u8; 16]) -> [u64; 2] {
    let [
        a0,
        a1,
        a2,
        a3,
        a4,
        a5,
        a6,
        a7,
        b0,
        b1,
        b2,
        b3,
        b4,
        b5,
        b6,
        b7,
    ] = *addr;
    [
        u64::from_be_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        u64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
    ]
}

/// Whether `addr` is inside the network's IPv6 prefix.
#[inline(always)]
pub(crate) fn in_prefix(network: &Network6Config, addr: &[u8; 16]) -> bool {
    let len = u32::from(network.prefix_len.min(128));
    let high = u64::MAX.checked_shl(64 - len.min(64)).unwrap_or(0);
    let low = u64::MAX.checked_shl(128 - len.max(64)).unwrap_or(0);
    let ([a, b], [p, q]) = (halves(addr), halves(&network.subnet));
    (a ^ p) & high == 0 && (b ^ q) & low == 0
}
