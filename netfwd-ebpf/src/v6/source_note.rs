//! NAT66's source address and early drop, each on a stack of its own. The
//! host's choice of source for a flow (`fib::source`) is looked up for
//! each mapping made or checked, and its 64 bytes of lookup parameters do
//! not fit beside the rest of `tc_to_remote6` where the mapping is made;
//! nor does the eviction's frame (`early_drop::make_room`) where a new
//! flow finds the table full. So that program leaves the question in this
//! CPU's note and jumps to `tc_nat_source6` or `tc_nat_room6`, which
//! answers it and jumps back: the packet runs `tc_to_remote6` again, finds
//! its answer and goes on. A program runs to its end on its CPU before
//! another starts there, so the note is the packet's; an answer is taken
//! only by the flow it was asked for, and only at once after it was
//! written.

use aya_ebpf::programs::TcContext;
use netfwd_common::{
    drop::DropReason,
    names::{CALL_NAT_ROOM6, CALL_NAT_SOURCE6, CALL_TO_REMOTE6},
    nat::Ipv6Bytes,
};

use super::V6;
use crate::{early_drop, fib, maps::NAT6_SRC_NOTE, tail};

/// This CPU's questions for `tc_nat_source6` and `tc_nat_room6`, and
/// their answers.
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
    /// The flow a full table was asked to make room for: its ports
    /// (source, destination) and protocol, and when the room was looked
    /// for (0 while asked); whether any was made, its second try tells.
    pub room_ports: [[u8; 2]; 2],
    pub room_proto: u8,
    pub room_ns: u64,
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
    jump_with_note(ctx, CALL_NAT_SOURCE6, |note| {
        note.src = src;
        note.dst = dst;
        note.ifindex = ifindex;
        note.answered_ns = 0;
    })
}

/// The body of `tc_nat_source6`: this CPU's question answered, and back
/// to `tc_to_remote6` (returns only if that jump is missing).
#[inline(always)]
pub fn answer(ctx: &TcContext, now: u64) -> DropReason {
    jump_with_note(ctx, CALL_TO_REMOTE6, |note| {
        let source = fib::source::<V6>(ctx, note.ifindex, note.src, note.dst);
        note.found = u32::from(source.is_some());
        note.source = source.unwrap_or(note.source);
        note.answered_ns = now;
    })
}

/// Whether `tc_nat_room6` has just looked for room for this packet's flow
/// (`ports`, `proto`): its second try, which takes what it finds; taken
/// once.
#[inline(always)]
pub fn room_made_for(ports: [[u8; 2]; 2], proto: u8, now: u64) -> bool {
    let Some(note) = note() else {
        return false;
    };
    let fresh = note.room_ns != 0
        && now.saturating_sub(note.room_ns) < ANSWER_FRESH_NS
        && note.room_ports == ports
        && note.room_proto == proto;
    note.room_ns = 0;
    fresh
}

/// Asks `tc_nat_room6` to make room in `NAT6` for a new flow (`ports`,
/// `proto`) by jumping there; returns only if that jump is missing.
#[inline(always)]
pub fn ask_room(ctx: &TcContext, ports: [[u8; 2]; 2], proto: u8) -> DropReason {
    jump_with_note(ctx, CALL_NAT_ROOM6, |note| {
        note.room_ports = ports;
        note.room_proto = proto;
        note.room_ns = 0;
    })
}

/// The body of `tc_nat_room6`: an unanswered flow evicted if one can be,
/// and back to `tc_to_remote6` (returns only if that jump is missing).
#[inline(always)]
pub fn make_room(ctx: &TcContext, now: u64) -> DropReason {
    early_drop::make_room::<V6>();
    jump_with_note(ctx, CALL_TO_REMOTE6, |note| note.room_ns = now)
}

/// Writes this CPU's note (`write`) and jumps to the program in `slot`;
/// returns only if that jump is missing.
#[inline(always)]
fn jump_with_note(ctx: &TcContext, slot: u32, write: impl FnOnce(&mut SourceNote)) -> DropReason {
    if let Some(note) = note() {
        write(note);
    }
    tail::jump(ctx, slot)
}
