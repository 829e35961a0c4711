//! netfwd's datapath. Entry points only dispatch; the work is in the modules,
//! read top to bottom: parse -> ARP responder / forward -> route or NAT ->
//! deliver, with every outcome counted per interface. Forwarding, routing
//! and the NAT are written once over an address `Family` (`family`) and
//! taken here for IPv4 (`v4::V4`).
#![no_std]
#![no_main]
// `atomic_xadd`: per-sender counts shared by every CPU (see `early_drop`).
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod arp;
mod conntrack;
mod counters;
mod csum;
mod deliver;
mod early_drop;
mod family;
mod fib;
mod forward;
mod frag;
mod hop;
mod l4;
mod maps;
mod monitor;
mod nat;
mod parse;
mod route;
mod router_guard;
mod sockaddr;
mod tail;
mod tunnel;
mod v4;
mod v6;
mod verdict;
mod vlan;
mod xdp;

use aya_ebpf::{
    macros::{cgroup_sock_addr, classifier, xdp},
    programs::{SockAddrContext, TcContext, XdpContext},
};
use netfwd_common::{
    drop::DropReason,
    monitor::{DIRECTION_EGRESS, DIRECTION_INGRESS, HOOK_TC, HOOK_XDP},
    names::{CALL_FROM_ENDPOINT6, CALL_FROM_UPLINK6, CALL_HAIRPIN6},
};
use network_types::eth::{EthHdr, EtherType};

use crate::{monitor::Point, v4::V4, v6::V6, verdict::Verdict};

/// Attached (TCX) to the ingress of every host-side veth: sees each frame an
/// endpoint sends. Endpoint-to-endpoint traffic is redirected straight into the
/// destination's namespace; ARP for endpoints and the gateway is answered here;
/// everything else goes to the host's stack unchanged.
#[classifier]
pub fn tc_from_endpoint(ctx: TcContext) -> i32 {
    // SAFETY: the context pointer is valid for the whole program run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let verdict = from_endpoint(&ctx, ifindex).unwrap_or_else(Verdict::Drop);
    tc_finish(&ctx, DIRECTION_EGRESS, ifindex, &verdict)
}

/// Inlined: the jump to IPv6's program must be made from the entry point.
#[inline(always)]
fn from_endpoint(ctx: &TcContext, ifindex: u32) -> Result<Verdict, DropReason> {
    let eth = parse::header_mut::<EthHdr>(ctx, 0)?;
    // SAFETY: `header_mut` checked the header lies inside the packet.
    let ether_type = unsafe { (*eth).ether_type };
    if vlan::in_metadata(ctx) || vlan::is_tag(ether_type) {
        return Err(DropReason::VlanTagged);
    }
    // Handlers take their headers afresh: a pull for a deeper header
    // invalidates every packet pointer taken before it.
    if ether_type == EtherType::Arp as u16 {
        arp::answer_from_endpoint(ctx, ifindex)
    } else if ether_type == EtherType::Ipv4 as u16 {
        forward::from_endpoint::<V4>(ctx, ifindex)
    } else if ether_type == EtherType::Ipv6 as u16 {
        Err(tail::jump(ctx, CALL_FROM_ENDPOINT6))
    } else {
        // The rest: the host's stack decides (documented in docs/datapath.md).
        Ok(Verdict::ToHost)
    }
}

/// Reached from `tc_from_endpoint` (a tail call) for every untagged IPv6
/// frame an endpoint sends, and counted here.
#[classifier]
pub fn tc_from_endpoint6(ctx: TcContext) -> i32 {
    // SAFETY: the context pointer is valid for the whole program run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let verdict = match router_guard::ipv6_from_endpoint(&ctx) {
        Ok(Verdict::ToHost) => v6::from_endpoint(&ctx, ifindex),
        other => other,
    }
    .unwrap_or_else(Verdict::Drop);
    tc_finish(&ctx, DIRECTION_EGRESS, ifindex, &verdict)
}

/// Reached from `tc_from_endpoint6` (a tail call) for an endpoint's IPv6
/// packet, its source checked, to beyond the network: routed, or
/// masqueraded out of the uplink (NAT66), on a stack of its own.
#[classifier]
pub fn tc_to_remote6(ctx: TcContext) -> i32 {
    // SAFETY: the context pointer is valid for the whole program run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let verdict = route::from_endpoint_to_remote::<V6>(&ctx, ifindex).unwrap_or_else(Verdict::Drop);
    tc_finish(&ctx, DIRECTION_EGRESS, ifindex, &verdict)
}

/// Reached from `tc_to_remote6` (a tail call) for the source address of a
/// flow NAT66 maps, and back (see `v6::source_note`). Counts only a drop:
/// the packet's verdict is `tc_to_remote6`'s.
#[classifier]
pub fn tc_nat_source6(ctx: TcContext) -> i32 {
    let missed = v6::source_note::answer(&ctx, conntrack::now_ns());
    // SAFETY: the context pointer is valid for the whole program run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    tc_finish(&ctx, DIRECTION_EGRESS, ifindex, &Verdict::Drop(missed))
}

/// Reached from `tc_to_remote6` (a tail call) for a new flow NAT66 found
/// no room for: an unanswered flow evicted, and back (see
/// `v6::source_note`). Counts only a drop, as `tc_nat_source6`.
#[classifier]
pub fn tc_nat_room6(ctx: TcContext) -> i32 {
    let missed = v6::source_note::make_room(&ctx, conntrack::now_ns());
    // SAFETY: the context pointer is valid for the whole program run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    tc_finish(&ctx, DIRECTION_EGRESS, ifindex, &Verdict::Drop(missed))
}

/// Reached from `tc_from_endpoint6` (a tail call) for an endpoint's IPv6
/// TCP or UDP to the uplink's IPv6 address: a connection to a published
/// port has its flow found or made here, and goes on to `tc_hairpin6` to be
/// translated; on a stack of its own.
#[classifier]
pub fn tc_hairpin6_flow(ctx: TcContext) -> i32 {
    // SAFETY: the context pointer is valid for the whole program run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let verdict = match nat::hairpin::open_flow::<V6>(&ctx) {
        Ok(true) => Verdict::Drop(tail::jump(&ctx, CALL_HAIRPIN6)),
        Ok(false) => Verdict::ToHost,
        Err(reason) => Verdict::Drop(reason),
    };
    tc_finish(&ctx, DIRECTION_EGRESS, ifindex, &verdict)
}

/// Reached from `tc_hairpin6_flow`, or from `tc_from_endpoint6` for an
/// endpoint's IPv6 TCP or UDP to the gateway (tail calls): the hairpin's
/// translation, to the published endpoint or back from it; on a stack of
/// its own.
#[classifier]
pub fn tc_hairpin6(ctx: TcContext) -> i32 {
    // SAFETY: the context pointer is valid for the whole program run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let verdict = nat::hairpin::translate_apart::<V6>(&ctx).unwrap_or_else(Verdict::Drop);
    tc_finish(&ctx, DIRECTION_EGRESS, ifindex, &verdict)
}

/// Counts what a TC program decided and gives its action.
#[inline(always)]
fn tc_finish(ctx: &TcContext, direction: u8, ifindex: u32, verdict: &Verdict) -> i32 {
    let point = Point {
        hook: HOOK_TC,
        direction,
    };
    counters::account(ctx, point, ifindex, ctx.len(), verdict);
    verdict.tc_action()
}

/// Attached (TCX) to the ingress of the network's uplink and LAN: replies of
/// NATed flows and ICMP errors about them, and traffic from peer hosts' and
/// LAN hosts to endpoints, go straight into their endpoint; other packets to
/// endpoint addresses are dropped; the rest (the host's own traffic) passes
/// unchanged to the next program or the stack.
#[classifier]
pub fn tc_from_uplink(ctx: TcContext) -> i32 {
    // SAFETY: the context pointer is valid for the whole program run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let verdict = from_uplink(&ctx, ifindex).unwrap_or_else(Verdict::Drop);
    tc_finish(&ctx, DIRECTION_INGRESS, ifindex, &verdict)
}

/// Inlined: the jump to IPv6's program must be made from the entry point.
#[inline(always)]
fn from_uplink(ctx: &TcContext, ifindex: u32) -> Result<Verdict, DropReason> {
    let eth = parse::header_mut::<EthHdr>(ctx, 0)?;
    // A tagged frame belongs to a VLAN of the uplink's, not to the
    // network: the host's, untouched, never translated.
    if vlan::in_metadata(ctx) {
        return Ok(Verdict::ToHost);
    }
    // SAFETY: `header_mut` checked the header lies inside the packet.
    let ether_type = unsafe { (*eth).ether_type };
    if ether_type == EtherType::Ipv4 as u16 {
        route::from_uplink::<V4>(ctx, ifindex)
    } else if ether_type == EtherType::Ipv6 as u16 && maps::network6().is_some() {
        Err(tail::jump(ctx, CALL_FROM_UPLINK6))
    } else {
        Ok(Verdict::ToHost)
    }
}

/// Reached from `tc_from_uplink` (a tail call) for every untagged IPv6
/// frame arriving on the uplink of a dual-stack network, and counted here.
#[classifier]
pub fn tc_from_uplink6(ctx: TcContext) -> i32 {
    // SAFETY: the context pointer is valid for the whole program run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let verdict = route::from_uplink::<V6>(&ctx, ifindex).unwrap_or_else(Verdict::Drop);
    tc_finish(&ctx, DIRECTION_INGRESS, ifindex, &verdict)
}

/// XDP on every host-side veth (`mode = "xdp"`), in front of
/// `tc_from_endpoint`: endpoint-to-endpoint packets redirected at the
/// earliest point; the rest passes to TC (see `xdp`).
#[xdp]
pub fn xdp_from_endpoint(ctx: XdpContext) -> u32 {
    let ifindex = ctx.ingress_ifindex() as u32;
    let verdict = xdp::from_endpoint(&ctx, ifindex);
    xdp_finish(&ctx, DIRECTION_EGRESS, ifindex, &verdict)
}

/// XDP on the uplink (`mode = "xdp"`), in front of `tc_from_uplink`:
/// replies of live NAT flows translated and redirected to their endpoint;
/// the rest passes to TC.
#[xdp]
pub fn xdp_from_uplink(ctx: XdpContext) -> u32 {
    let ifindex = ctx.ingress_ifindex() as u32;
    let verdict = xdp::from_uplink(&ctx, ifindex).unwrap_or_else(Verdict::Drop);
    xdp_finish(&ctx, DIRECTION_INGRESS, ifindex, &verdict)
}

/// Counts what XDP finished; what it passes on, TC counts.
#[inline(always)]
fn xdp_finish(ctx: &XdpContext, direction: u8, ifindex: u32, verdict: &Verdict) -> u32 {
    if !matches!(verdict, Verdict::ToHost) {
        let len = (ctx.data_end() - ctx.data()) as u32;
        let point = Point {
            hook: HOOK_XDP,
            direction,
        };
        counters::account(ctx, point, ifindex, len, verdict);
    }
    verdict.xdp_action()
}

/// Attached to the host's cgroup when the network publishes ports: the
/// host's own connections to a published port reach its endpoint. Always
/// lets the `connect()` proceed.
#[cgroup_sock_addr(connect4)]
pub fn connect4_published(ctx: SockAddrContext) -> i32 {
    sockaddr::connect::<V4>(&ctx)
}

/// Attached beside `connect4_published`: the host's own `bind()` to a
/// published port, whose listener `connect4_published` would bypass, fails
/// with `EADDRINUSE`, as with docker-proxy holding the port.
#[cgroup_sock_addr(bind4)]
pub fn bind4_published(ctx: SockAddrContext) -> i32 {
    sockaddr::bind::<V4>(&ctx)
}

/// `connect4_published` over IPv6: to the uplink's IPv6 address or ::1.
#[cgroup_sock_addr(connect6)]
pub fn connect6_published(ctx: SockAddrContext) -> i32 {
    sockaddr::connect::<V6>(&ctx)
}

/// `bind4_published` over IPv6.
#[cgroup_sock_addr(bind6)]
pub fn bind6_published(ctx: SockAddrContext) -> i32 {
    sockaddr::bind::<V6>(&ctx)
}

/// Attached nowhere: run once with `BPF_PROG_TEST_RUN` when a network with
/// NAT comes up, it arms the expiry sweep of the network's NAT table, which
/// then runs on a timer in the kernel with no netfwd process (`nat::sweep`).
#[classifier]
pub fn nat_sweep_arm(_ctx: TcContext) -> i32 {
    nat::sweep::arm::<V4>();
    nat::sweep::arm::<V6>();
    0
}

/// Attached nowhere: run with `BPF_PROG_TEST_RUN`, one step of the expiry
/// sweep at once, for the tests.
#[classifier]
pub fn nat_sweep_step(_ctx: TcContext) -> i32 {
    nat::sweep::step_now::<V4>();
    nat::sweep::step_now::<V6>();
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// GPL-compatible, as `bpf_redirect_peer` and friends require.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
