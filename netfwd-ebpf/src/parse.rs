//! Bounds-checked access to packet headers: the only way headers are read.

use core::ffi::c_void;

use aya_ebpf::{
    EbpfContext as _,
    programs::{TcContext, XdpContext},
};
use netfwd_common::drop::DropReason;

/// What headers are read from: an skb (TC) or an XDP frame.
pub trait Packet {
    fn start(&self) -> usize;
    fn end(&self) -> usize;
    /// Makes the first `len` bytes linear where that can be needed.
    fn pull(&self, len: u32);
    /// The program's context, as helpers that take either (the FIB lookup,
    /// the MTU check) want it.
    fn helper_ctx(&self) -> *mut c_void;
}

impl Packet for TcContext {
    #[inline(always)]
    fn helper_ctx(&self) -> *mut c_void {
        self.as_ptr()
    }

    #[inline(always)]
    fn start(&self) -> usize {
        self.data()
    }

    #[inline(always)]
    fn end(&self) -> usize {
        self.data_end()
    }

    #[inline(always)]
    fn pull(&self, len: u32) {
        // Best effort: a too-short packet stays too short and is reported
        // by the bounds check that follows.
        let _ = self.pull_data(len);
    }
}

impl Packet for XdpContext {
    #[inline(always)]
    fn helper_ctx(&self) -> *mut c_void {
        self.as_ptr()
    }

    #[inline(always)]
    fn start(&self) -> usize {
        self.data()
    }

    #[inline(always)]
    fn end(&self) -> usize {
        self.data_end()
    }

    /// An XDP frame (single buffer) is linear already.
    #[inline(always)]
    fn pull(&self, _len: u32) {}
}

/// A pointer to a `T` at `offset` in the packet, once the verifier-visible
/// bounds check passes. Pulls non-linear data in first if needed (rare on veth:
/// headers are normally in the linear area); a pull invalidates every packet
/// pointer taken before, so take the deepest header first.
#[inline(always)]
pub fn header_mut<T>(ctx: &impl Packet, offset: usize) -> Result<*mut T, DropReason> {
    let end = offset + core::mem::size_of::<T>();
    if ctx.start() + end > ctx.end() {
        ctx.pull(end as u32);
    }
    let start = ctx.start();
    if start + end > ctx.end() {
        return Err(DropReason::Malformed);
    }
    Ok((start + offset) as *mut T)
}

/// A pointer to a `T` at `offset`, bounds checked but never pulled: for
/// headers in a range an earlier [`header_mut`] made linear, so pointers
/// taken since stay valid.
#[inline(always)]
pub fn header_at<T>(ctx: &impl Packet, offset: usize) -> Result<*mut T, DropReason> {
    let start = ctx.start();
    if start + offset + core::mem::size_of::<T>() > ctx.end() {
        return Err(DropReason::Malformed);
    }
    Ok((start + offset) as *mut T)
}
