//! Bounds-checked access to packet headers: the only way headers are read.

use aya_ebpf::programs::TcContext;
use netfwd_common::drop::DropReason;

/// A pointer to a `T` at `offset` in the packet, once the verifier-visible
/// bounds check passes. Pulls non-linear data in first if needed (rare on veth:
/// headers are normally in the linear area); a pull invalidates every packet
/// pointer taken before, so take the deepest header first.
#[inline(always)]
pub fn header_mut<T>(ctx: &TcContext, offset: usize) -> Result<*mut T, DropReason> {
    let end = offset + core::mem::size_of::<T>();
    if ctx.data() + end > ctx.data_end() {
        // Best effort: a too-short packet stays too short and is reported below.
        let _ = ctx.pull_data(end as u32);
    }
    let start = ctx.data();
    if start + end > ctx.data_end() {
        return Err(DropReason::Malformed);
    }
    Ok((start + offset) as *mut T)
}

/// A pointer to a `T` at `offset`, bounds checked but never pulled: for
/// headers in a range an earlier [`header_mut`] made linear, so pointers
/// taken since stay valid.
#[inline(always)]
pub fn header_at<T>(ctx: &TcContext, offset: usize) -> Result<*mut T, DropReason> {
    let start = ctx.data();
    if start + offset + core::mem::size_of::<T>() > ctx.data_end() {
        return Err(DropReason::Malformed);
    }
    Ok((start + offset) as *mut T)
}
