//! Jumps to the datapath's other programs. A tail call starts the next
//! program on a stack of its own: IPv6's neighbour answers and translations
//! do not fit beside IPv4's in one program's 512 bytes. Only an entry
//! point jumps (a jump from a called function would cap every frame below
//! it at 256 bytes).

use aya_ebpf::EbpfContext;
use netfwd_common::drop::DropReason;

use crate::maps;

/// Jumps to the program in `slot` of `CALLS`; returns only if the slot is
/// empty, as a drop (`missed_tail_call`), never letting the packet pass
/// unchecked.
#[inline(always)]
pub fn jump<C: EbpfContext>(ctx: &C, slot: u32) -> DropReason {
    // SAFETY: `ctx` is the running program's context; control comes back
    // only when the slot holds no program.
    unsafe { maps::CALLS.tail_call(ctx, slot) };
    DropReason::MissedTailCall
}
