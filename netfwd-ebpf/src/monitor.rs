//! `netfwd monitor`'s events (`netfwd_common::monitor`): written to
//! `MONITOR_EVENTS` only while a monitor has turned them on in `MONITOR`.
//! Nobody listening costs a packet one array lookup and one branch; the
//! rest is out of line (`#[inline(never)]`), so the verifier walks it once
//! per call site's state rather than inlined into every path, and a
//! per-CPU token bucket bounds it under a flood.

use aya_ebpf::{helpers::bpf_ktime_get_ns, maps::ring_buf::RingBufEntry};
use netfwd_common::monitor::{
    EVENT_BURST, EVENT_DROP, EVENT_NAT_CREATED, EVENT_NAT_EXPIRED, EVENT_TRACE, FAMILY_IPV4,
    FAMILY_IPV6, HOOK_SWEEP, HOOK_TC, MonitorEvent, NS_PER_EVENT, VERDICT_ARP_REPLIED,
    VERDICT_DROPPED, VERDICT_REDIRECTED, VERDICT_ROUTED, VERDICT_TO_HOST, VERDICT_TRANSLATED,
    WANT_DROP, WANT_NAT, WANT_TRACE,
};

use netfwd_common::nat::{
    IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, NatEntry, NatKey,
};

use crate::{
    maps::{MONITOR, MONITOR_BUDGET, MONITOR_EVENTS, MONITOR_SCRATCH},
    parse::Packet,
    verdict::Verdict,
};

/// Where a packet was seen: the hook (`HOOK_*`) and its direction
/// (`DIRECTION_*`).
#[derive(Clone, Copy)]
pub struct Point {
    pub hook: u8,
    pub direction: u8,
}

/// What the out-of-line writer needs besides the packet: a BPF call takes
/// five arguments at most, so they travel together by reference.
#[repr(C)]
struct Seen {
    ifindex: u32,
    len: u32,
    point: Point,
    verdict: u8,
    reason: u8,
}

/// A packet's event, if a monitor wants its kind: a drop, or (opt-in) any
/// other verdict as a trace.
#[inline(always)]
pub fn packet<C: Packet>(ctx: &C, point: Point, ifindex: u32, len: u32, verdict: &Verdict) {
    if !COMPILED_IN {
        return;
    }
    let kinds = MONITOR.get(0).map_or(0, |config| config.kinds);
    // All a packet pays while nobody listens.
    if kinds == 0 {
        return;
    }
    if kinds & WANT_NAT != 0 {
        // A flow this packet made (see `nat_created`).
        write_scratch();
    }
    let (want, verdict, reason) = match verdict {
        Verdict::Drop(reason) => (WANT_DROP, VERDICT_DROPPED, *reason as u8),
        Verdict::Redirected(_) => (WANT_TRACE, VERDICT_REDIRECTED, 0),
        Verdict::ArpReplied(_) => (WANT_TRACE, VERDICT_ARP_REPLIED, 0),
        Verdict::Routed(_) => (WANT_TRACE, VERDICT_ROUTED, 0),
        Verdict::Translated(_) => (WANT_TRACE, VERDICT_TRANSLATED, 0),
        Verdict::ToHost => (WANT_TRACE, VERDICT_TO_HOST, 0),
    };
    if kinds & want == 0 {
        return;
    }
    let seen = Seen {
        ifindex,
        len,
        point,
        verdict,
        reason,
    };
    write_packet(ctx, &seen);
}

#[inline(never)]
fn write_packet<C: Packet>(ctx: &C, seen: &Seen) {
    let Some(now) = budget() else {
        return;
    };
    let Some(mut entry) = reserve() else {
        return;
    };
    // Written in the ring itself: a copy on the stack would not fit in the
    // programs' 512 bytes beside their own frames.
    let event = entry.as_mut_ptr();
    // SAFETY: the reserved entry is `MonitorEvent`'s size and alignment;
    // zeroed first, so every field is initialised.
    unsafe {
        core::ptr::write_bytes(event, 0, 1);
        let event = &mut *event;
        event.time_ns = now;
        event.kind = if seen.verdict == VERDICT_DROPPED {
            EVENT_DROP
        } else {
            EVENT_TRACE
        };
        event.verdict = seen.verdict;
        event.reason = seen.reason;
        event.hook = seen.point.hook;
        event.direction = seen.point.direction;
        event.ifindex = seen.ifindex;
        event.len = seen.len;
        read_tuple(ctx, event);
    }
    entry.submit(0);
}

/// A NAT flow made: its egress key and entry (the endpoint's tuple and the
/// uplink address and port it is translated to), if a monitor wants NAT
/// events. Only kept in `MONITOR_SCRATCH` here, and written when the
/// packet is accounted (`packet`): a call on the NAT's path would grow
/// `tc_from_endpoint`'s frame past the 512 bytes it shares with its calls.
#[inline(always)]
pub fn nat_created<A: Copy>(egress_key: &NatKey<A>, out: &NatEntry<A>) {
    if wants(WANT_NAT) {
        let src = (&egress_key.saddr, egress_key.sport);
        let dst = (&egress_key.daddr, egress_key.dport);
        let nat = (&out.addr, out.port);
        keep_nat_event(EVENT_NAT_CREATED, egress_key.proto, src, dst, nat);
    }
}

/// A NAT flow removed by the sweep: its ingress key and entry (the
/// remote's tuple to the uplink address and port, and the endpoint's
/// address and port), if a monitor wants NAT events.
#[inline(always)]
pub fn nat_expired<A: Copy>(ingress_key: &NatKey<A>, entry: &NatEntry<A>) {
    if wants(WANT_NAT) {
        let src = (&entry.addr, entry.port);
        let dst = (&ingress_key.saddr, ingress_key.sport);
        let nat = (&ingress_key.daddr, ingress_key.dport);
        keep_nat_event(EVENT_NAT_EXPIRED, ingress_key.proto, src, dst, nat);
        write_scratch();
    }
}

/// Whether events are compiled in (the `monitor` feature, on by default):
/// off, the datapath is built as if the monitor did not exist, which
/// `cargo xtask bench --monitor` compares the switched-off monitor with.
const COMPILED_IN: bool = cfg!(feature = "monitor");

/// Whether a monitor has events of `want` (`WANT_*`) on.
#[inline(always)]
fn wants(want: u32) -> bool {
    COMPILED_IN
        && MONITOR
            .get(0)
            .is_some_and(|config| config.kinds & want != 0)
}

/// A NAT event as its endpoint's tuple (source translated to `nat`),
/// kept in this CPU's `MONITOR_SCRATCH` until `write_scratch`: on the
/// stack, or as arguments, it would grow the NAT paths' frames past the
/// 512 bytes they share with their calls.
#[inline(always)]
fn keep_nat_event<A: Copy>(
    kind: u8,
    proto: u8,
    src: (&A, [u8; 2]),
    dst: (&A, [u8; 2]),
    nat: (&A, [u8; 2]),
) {
    let Some(event) = MONITOR_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU value, this program's alone while it runs; an
    // address is copied as the bytes it is (4 or 16), into fields of 16.
    unsafe {
        let event = &mut *event;
        event.kind = kind;
        event.proto = proto;
        let len = size_of::<A>().min(16);
        event.family = if len == 4 { FAMILY_IPV4 } else { FAMILY_IPV6 };
        for (to, (from, _)) in [
            (&mut event.src, src),
            (&mut event.dst, dst),
            (&mut event.nat_addr, nat),
        ] {
            *to = [0; 16];
            core::ptr::copy_nonoverlapping((from as *const A).cast::<u8>(), to.as_mut_ptr(), len);
        }
        event.src_port = src.1;
        event.dst_port = dst.1;
        event.nat_port = nat.1;
    }
}

/// Writes this CPU's `MONITOR_SCRATCH` event, if one is kept, to the ring,
/// stamped now.
#[inline(never)]
fn write_scratch() {
    let Some(kept) = MONITOR_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: as in `keep_nat_event`.
    let event = unsafe { &mut *kept };
    // Taken: written once at most, whatever happens below.
    let kind = core::mem::replace(&mut event.kind, 0);
    if kind == 0 {
        return;
    }
    let Some(now) = budget() else {
        return;
    };
    event.kind = kind;
    event.time_ns = now;
    event.hook = if kind == EVENT_NAT_EXPIRED {
        HOOK_SWEEP
    } else {
        HOOK_TC
    };
    let kept: &MonitorEvent = event;
    let written = MONITOR_EVENTS.output(kept, 0);
    event.kind = 0;
    if written.is_err() {
        count_lost();
    }
}

/// The current time if a monitor still listens and this CPU has budget
/// left (a spent budget counts the event as suppressed).
#[inline(always)]
fn budget() -> Option<u64> {
    // SAFETY: helper call without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if MONITOR.get(0).is_none_or(|config| now > config.deadline_ns) {
        return None;
    }
    let budget = MONITOR_BUDGET.get_ptr_mut(0)?;
    // SAFETY: per-CPU value; a program preempting this one on the CPU
    // can at worst lose a count.
    let budget = unsafe { &mut *budget };
    let credit = budget.credit_ns + now.saturating_sub(budget.refilled_ns);
    budget.refilled_ns = now;
    if credit < NS_PER_EVENT {
        budget.credit_ns = credit;
        budget.suppressed += 1;
        return None;
    }
    budget.credit_ns = (credit - NS_PER_EVENT).min(EVENT_BURST * NS_PER_EVENT);
    Some(now)
}

/// Room in the ring for one event; none counts the event as lost.
#[inline(always)]
fn reserve() -> Option<RingBufEntry<MonitorEvent>> {
    let entry = MONITOR_EVENTS.reserve(0);
    if entry.is_none() {
        count_lost();
    }
    entry
}

#[inline(always)]
fn count_lost() {
    if let Some(budget) = MONITOR_BUDGET.get_ptr_mut(0) {
        // SAFETY: as in `budget`.
        unsafe { (*budget).lost += 1 };
    }
}

/// The addresses, protocol, ports (an ICMP echo's identifier as the
/// source port) and TCP flags, as far as the linear data holds them;
/// absent fields stay 0 (an ARP frame, a truncated header, an IPv6 packet
/// with extension headers before its transport header).
#[inline(always)]
fn read_tuple<C: Packet>(ctx: &C, event: &mut MonitorEvent) {
    const ETH_LEN: usize = 14;
    let start = ctx.start();
    let end = ctx.end();
    if start + ETH_LEN > end {
        return;
    }
    // SAFETY: bounds checked just above.
    let ether_type = unsafe { *((start + 12) as *const [u8; 2]) };
    let l4 = match ether_type {
        [0x08, 0x00] => read_ipv4(start + ETH_LEN, end, event),
        [0x86, 0xdd] => read_ipv6(start + ETH_LEN, end, event),
        _ => None,
    };
    if let Some(l4) = l4 {
        read_ports(l4, end, event);
    }
}

/// An IPv4 header's part of the tuple; where its transport header starts.
#[inline(always)]
fn read_ipv4(ip: usize, end: usize, event: &mut MonitorEvent) -> Option<usize> {
    const IPV4_MIN: usize = 20;
    if ip + IPV4_MIN > end {
        return None;
    }
    // SAFETY: bounds checked just above.
    let hdr = unsafe { &*(ip as *const [u8; IPV4_MIN]) };
    if hdr[0] >> 4 != 4 {
        return None;
    }
    event.family = FAMILY_IPV4;
    event.proto = hdr[9];
    event.src[..4].copy_from_slice(&hdr[12..16]);
    event.dst[..4].copy_from_slice(&hdr[16..20]);
    Some(ip + usize::from(hdr[0] & 0x0f) * 4)
}

/// An IPv6 header's part of the tuple; where its transport header starts
/// (right after it: with extension headers, the first of them is named
/// the protocol and no ports are read).
#[inline(always)]
fn read_ipv6(ip: usize, end: usize, event: &mut MonitorEvent) -> Option<usize> {
    const IPV6_LEN: usize = 40;
    if ip + IPV6_LEN > end {
        return None;
    }
    // SAFETY: bounds checked just above.
    let hdr = unsafe { &*(ip as *const [u8; IPV6_LEN]) };
    if hdr[0] >> 4 != 6 {
        return None;
    }
    event.family = FAMILY_IPV6;
    event.proto = hdr[6];
    event.src.copy_from_slice(&hdr[8..24]);
    event.dst.copy_from_slice(&hdr[24..40]);
    Some(ip + IPV6_LEN)
}

/// Ports (or an echo's identifier) in the first 8 bytes of the transport
/// header at `l4`; TCP's flags in its 14th.
#[inline(always)]
fn read_ports(l4: usize, end: usize, event: &mut MonitorEvent) {
    if l4 + 8 > end {
        return;
    }
    // SAFETY: bounds checked just above.
    let head = unsafe { &*(l4 as *const [u8; 8]) };
    match event.proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            event.src_port = [head[0], head[1]];
            event.dst_port = [head[2], head[3]];
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => event.src_port = [head[4], head[5]],
        _ => {}
    }
    if event.proto == IPPROTO_TCP && l4 + 14 <= end {
        // SAFETY: bounds checked just above.
        event.tcp_flags = unsafe { *((l4 + 13) as *const u8) };
    }
}
