//! What a NAT flow has seen, and when it expires: the state half of the NAT
//! table's ingress entries. A TCP flow is established only after the
//! originator's SYN, the answer's SYN-ACK acknowledging it and the
//! originator's ACK of that, each checked against the sequence numbers the
//! other side chose: a spoofed SYN, whose SYN-ACK its sender never sees,
//! leaves a flow on `tcp_syn` that early drop may take back. A RST or FIN
//! from the remote side counts only within `REMOTE_CLOSE_WINDOW` of what the
//! endpoint has acknowledged.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use netfwd_common::nat::{
    FLOW_REMOTE_STARTED, FlowSender, IPPROTO_TCP, NatEntry, REMOTE_CLOSE_WINDOW, SEEN_REPLY,
    TCP_CLOSING, TCP_ESTABLISHED, TCP_SEEN_FIN_EGRESS, TCP_SEEN_FIN_INGRESS, TCP_SEEN_RST,
    TCP_SEEN_SYN, TCP_SEEN_SYN_ACK,
};

use crate::{early_drop, family::Family, l4::Segment};

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;
const TCP_SYN_ACK: u8 = TCP_SYN | TCP_ACK;

#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: plain helper call.
    unsafe { bpf_ktime_get_ns() }
}

/// Whether a TCP flow that is not yet expired may give up its uplink port to
/// a new flow: one reset, or closed by both sides and quiet for a second
/// (its last ACK has passed). Without this, a range of a few thousand ports
/// per remote address and port would run dry under short connections that
/// wait out `tcp_closing`; Linux conntrack reopens such tuples too.
#[inline(always)]
pub fn reclaimable<A>(entry: &NatEntry<A>, proto: u8, now: u64) -> bool {
    const BOTH_FINS: u8 = TCP_SEEN_FIN_EGRESS | TCP_SEEN_FIN_INGRESS;
    proto == IPPROTO_TCP
        && (entry.flags & TCP_SEEN_RST != 0
            || (entry.flags & BOTH_FINS == BOTH_FINS
                && now.saturating_sub(entry.last_seen_ns) > 1_000_000_000))
}

/// The flow's responder spoke: off its sender's share of unanswered flows.
#[inline(always)]
fn answered<F: Family>(entry: &mut NatEntry<F::Addr>, proto: u8) {
    if entry.answered == 0 {
        entry.answered = 1;
        early_drop::count_gone::<F>(&FlowSender::of_flow(proto, entry));
    }
}

/// Records a packet the endpoint sent.
#[inline(always)]
pub fn seen_egress<F: Family>(entry: &mut NatEntry<F::Addr>, proto: u8, seg: &Segment, now: u64) {
    entry.last_seen_ns = now;
    if entry.flags & FLOW_REMOTE_STARTED != 0 {
        answered::<F>(entry, proto);
    }
    if proto != IPPROTO_TCP {
        return;
    }
    let flags = entry.flags;
    let inbound = flags & FLOW_REMOTE_STARTED != 0;
    match seg.tcp_flags & TCP_SYN_ACK {
        // The endpoint opens a connection: a new flow, a retried SYN, or a
        // new connection on the tuple of a closed one (TIME_WAIT reuse).
        TCP_SYN if !inbound && (flags & TCP_ESTABLISHED == 0 || flags & TCP_CLOSING != 0) => {
            entry.flags = TCP_SEEN_SYN | (flags & SEEN_REPLY);
            entry.endpoint_isn_next = seg.seq.wrapping_add(1);
        }
        // The endpoint answers the remote side's SYN.
        TCP_SYN_ACK if inbound && flags & (TCP_SEEN_SYN | TCP_ESTABLISHED) == TCP_SEEN_SYN => {
            entry.flags |= TCP_SEEN_SYN_ACK;
            entry.endpoint_isn_next = seg.seq.wrapping_add(1);
        }
        // The endpoint, originator, acknowledges the remote side's SYN-ACK.
        TCP_ACK
            if !inbound
                && flags & (TCP_SEEN_SYN_ACK | TCP_ESTABLISHED) == TCP_SEEN_SYN_ACK
                && seg.ack == entry.endpoint_ack =>
        {
            entry.flags |= TCP_ESTABLISHED;
        }
        _ => {}
    }
    if seg.tcp_flags & TCP_ACK != 0 {
        entry.endpoint_ack = seg.ack;
    }
    entry.flags |= close_bits(seg.tcp_flags, TCP_SEEN_FIN_EGRESS);
}

/// Records a packet from the remote side (delivered whatever this says: the
/// endpoint's stack is the judge of its own connection).
#[inline(always)]
pub fn seen_ingress<F: Family>(entry: &mut NatEntry<F::Addr>, proto: u8, seg: &Segment, now: u64) {
    entry.last_seen_ns = now;
    entry.flags |= SEEN_REPLY;
    if entry.flags & FLOW_REMOTE_STARTED == 0 {
        answered::<F>(entry, proto);
    }
    if proto != IPPROTO_TCP {
        return;
    }
    let flags = entry.flags;
    let inbound = flags & FLOW_REMOTE_STARTED != 0;
    match seg.tcp_flags & TCP_SYN_ACK {
        // A client opens a connection to a published port: a new flow, a
        // retried SYN, or TIME_WAIT reuse of a closed one's tuple.
        TCP_SYN if inbound && (flags & TCP_ESTABLISHED == 0 || flags & TCP_CLOSING != 0) => {
            entry.flags = FLOW_REMOTE_STARTED | SEEN_REPLY | TCP_SEEN_SYN;
            entry.endpoint_ack = seg.seq.wrapping_add(1);
        }
        // The remote side answers the endpoint's SYN, acknowledging it.
        TCP_SYN_ACK
            if !inbound
                && flags & (TCP_SEEN_SYN | TCP_ESTABLISHED) == TCP_SEEN_SYN
                && seg.ack == entry.endpoint_isn_next =>
        {
            entry.flags |= TCP_SEEN_SYN_ACK;
            entry.endpoint_ack = seg.seq.wrapping_add(1);
        }
        // The client acknowledges the endpoint's SYN-ACK: only one that saw
        // it knows its sequence number.
        TCP_ACK
            if inbound
                && flags & (TCP_SEEN_SYN_ACK | TCP_ESTABLISHED) == TCP_SEEN_SYN_ACK
                && seg.ack == entry.endpoint_isn_next =>
        {
            entry.flags |= TCP_ESTABLISHED;
        }
        _ => {}
    }
    if seg.tcp_flags & (TCP_FIN | TCP_RST) != 0 && plausible_close(entry, seg) {
        entry.flags |= close_bits(seg.tcp_flags, TCP_SEEN_FIN_INGRESS);
    }
}

/// Whether a RST or FIN from the remote side belongs to the connection the
/// endpoint has: before the remote side has answered the endpoint's SYN, a
/// RST must acknowledge that SYN (RFC 9293, SYN-SENT); after, its sequence
/// number must lie within `REMOTE_CLOSE_WINDOW` past the endpoint's last
/// acknowledgment.
#[inline(always)]
fn plausible_close<A>(entry: &NatEntry<A>, seg: &Segment) -> bool {
    if entry.flags & (FLOW_REMOTE_STARTED | TCP_SEEN_SYN | TCP_SEEN_SYN_ACK) == TCP_SEEN_SYN {
        return seg.tcp_flags & TCP_ACK != 0 && seg.ack == entry.endpoint_isn_next;
    }
    seg.seq.wrapping_sub(entry.endpoint_ack) < REMOTE_CLOSE_WINDOW
}

#[inline(always)]
fn close_bits(tcp_flags: u8, fin_bit: u8) -> u8 {
    let mut bits = 0;
    if tcp_flags & TCP_FIN != 0 {
        bits |= fin_bit;
    }
    if tcp_flags & TCP_RST != 0 {
        bits |= TCP_SEEN_RST;
    }
    bits
}
