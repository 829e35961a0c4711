//! NAT66's source address, found on a stack of its own. The host's choice
//! of source for a flow (`fib::source`) is looked up for each mapping
//! made or checked, and its 64 bytes of lookup parameters do not fit
//! beside the rest of `tc_to_remote6` where the mapping is made. So that
//! program leaves the question in this CPU's note and jumps to
//! `tc_nat_source6`, which answers it and jumps back: the packet runs
//! `tc_to_remote6` again, finds its answer and goes on. A program runs to
//! its end on its CPU before another starts there, so the note is the
//! packet's; an answer is taken only by the flow it was asked for, and
//! only at once after it was written.

use aya_ebpf::programs::TcContext;
use netfwd_common::{
    drop::DropReason,
    names::{CALL_NAT_SOURCE6, CALL_TO_REMOTE6},
    nat::Ipv6Bytes,
};

use super::V6;
use crate::{fib, maps::NAT6_SRC_NOTE, tail};

/// A question for `tc_nat_source6`, and its answer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SourceNote {
    /// The flow's addresses, and the veth it came from.
    pub src: Ipv6Bytes,
    pub dst: Ipv6Bytes,
    pub ifindex: u32,
    /// 1 when the host has a source for it (`source`).
    pub found: u32,
    pub source: Ipv6Bytes,
    /// When the answer was written; 0 while asked, not answered.
    pub answered_ns: u64,
}

/// How long an answer waits for the jump back (a few microseconds at
/// most): an older one was left by a packet that went another way.
const ANSWER_FRESH_NS: u64 = 1_000_000;

/// This CPU's note, the packet's until its program ends (above); `None`
/// only if the map's one slot were missing.
#[inline(always)]
fn note() -> Option<&'static mut SourceNote> {
    // SAFETY: this CPU's slot, used by one program run at a time.
    NAT6_SRC_NOTE
        .get_ptr_mut(0)
        .map(|note| unsafe { &mut *note })
}

/// The answer to this packet's question about `src -> dst` from `ifindex`
/// (the host's choice of source, if it has one), taken once; `None` if it
/// has asked none.
#[inline(always)]
pub fn take(ifindex: u32, src: Ipv6Bytes, dst: Ipv6Bytes, now: u64) -> Option<Option<Ipv6Bytes>> {
    let note = note()?;
    if note.answered_ns == 0
        || now.saturating_sub(note.answered_ns) >= ANSWER_FRESH_NS
        || note.src != src
        || note.dst != dst
        || note.ifindex != ifindex
    {
        return None;
    }
    note.answered_ns = 0;
    Some((note.found != 0).then_some(note.source))
}

/// Asks `tc_nat_source6` for the host's choice of source for `src -> dst`
/// from `ifindex` by jumping there; returns only if that jump is missing.
#[inline(always)]
pub fn ask(ctx: &TcContext, ifindex: u32, src: Ipv6Bytes, dst: Ipv6Bytes) -> DropReason {
    if let Some(note) = note() {
        note.src = src;
        note.dst = dst;
        note.ifindex = ifindex;
        note.answered_ns = 0;
    }
    tail::jump(ctx, CALL_NAT_SOURCE6)
}

/// The body of `tc_nat_source6`: this CPU's question answered, and back
/// to `tc_to_remote6` (returns only if that jump is missing).
#[inline(always)]
pub fn answer(ctx: &TcContext, now: u64) -> DropReason {
    if let Some(note) = note() {
        let source = fib::source::<V6>(ctx, note.ifindex, note.src, note.dst);
        note.found = u32::from(source.is_some());
        note.source = source.unwrap_or(note.source);
        note.answered_ns = now;
    }
    tail::jump(ctx, CALL_TO_REMOTE6)
}
