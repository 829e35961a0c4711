//! What a NAT flow has seen, and when it expires: the state half of the NAT
//! table's ingress entries.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use netfwd_common::nat::{
    IPPROTO_TCP, NatEntry, NatTimeouts, SEEN_REPLY, TCP_SEEN_FIN_EGRESS, TCP_SEEN_FIN_INGRESS,
    TCP_SEEN_RST, TCP_SEEN_SYN,
};

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

const CLOSING: u8 = TCP_SEEN_FIN_EGRESS | TCP_SEEN_FIN_INGRESS | TCP_SEEN_RST;

#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: plain helper call.
    unsafe { bpf_ktime_get_ns() }
}

#[inline(always)]
pub fn expired(entry: &NatEntry, proto: u8, timeouts: &NatTimeouts, now: u64) -> bool {
    let timeout_ns = u64::from(timeouts.for_flow(proto, entry.flags)) * 1_000_000_000;
    now.saturating_sub(entry.last_seen_ns) > timeout_ns
}

/// Whether a TCP flow that is not yet expired may give up its outside port to
/// a new flow: one reset, or closed by both sides and quiet for a second
/// (its last ACK has passed). Without this, a range of a few thousand ports
/// per remote address and port would run dry under short connections that
/// wait out `tcp_closing`; Linux conntrack reopens such tuples too.
#[inline(always)]
pub fn reclaimable(entry: &NatEntry, proto: u8, now: u64) -> bool {
    const BOTH_FINS: u8 = TCP_SEEN_FIN_EGRESS | TCP_SEEN_FIN_INGRESS;
    proto == IPPROTO_TCP
        && (entry.flags & TCP_SEEN_RST != 0
            || (entry.flags & BOTH_FINS == BOTH_FINS
                && now.saturating_sub(entry.last_seen_ns) > 1_000_000_000))
}

/// Records a packet the endpoint sent.
#[inline(always)]
pub fn seen_egress(entry: &mut NatEntry, proto: u8, tcp_flags: u8, now: u64) {
    entry.last_seen_ns = now;
    if proto != IPPROTO_TCP {
        return;
    }
    if tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN && entry.flags & CLOSING != 0 {
        // A new connection on the tuple of a closed one (TIME_WAIT reuse).
        entry.flags = TCP_SEEN_SYN;
    }
    entry.flags |= tcp_bits(tcp_flags, TCP_SEEN_FIN_EGRESS);
}

/// Records a reply from the remote side.
#[inline(always)]
pub fn seen_ingress(entry: &mut NatEntry, proto: u8, tcp_flags: u8, now: u64) {
    entry.last_seen_ns = now;
    entry.flags |= SEEN_REPLY;
    if proto == IPPROTO_TCP {
        entry.flags |= tcp_bits(tcp_flags, TCP_SEEN_FIN_INGRESS);
    }
}

#[inline(always)]
fn tcp_bits(tcp_flags: u8, fin_bit: u8) -> u8 {
    let mut bits = 0;
    if tcp_flags & TCP_SYN != 0 {
        bits |= TCP_SEEN_SYN;
    }
    if tcp_flags & TCP_FIN != 0 {
        bits |= fin_bit;
    }
    if tcp_flags & TCP_RST != 0 {
        bits |= TCP_SEEN_RST;
    }
    bits
}
