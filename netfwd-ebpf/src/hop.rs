//! The next hop out of the host, as the FIB names it, and the redirect that
//! sends a packet there without the host's forwarding path.

use aya_ebpf::helpers::{bpf_redirect, bpf_redirect_neigh};

pub enum NextHop {
    /// Out of `oif` to a next hop whose MAC is known.
    Resolved {
        oif: u32,
        smac: [u8; 6],
        dmac: [u8; 6],
    },
    /// Out of `oif`, next hop not in the neighbour table yet.
    Unresolved { oif: u32 },
}

impl NextHop {
    pub fn oif(&self) -> u32 {
        match *self {
            NextHop::Resolved { oif, .. } | NextHop::Unresolved { oif } => oif,
        }
    }

    /// The MACs the frame leaves with; `None` when the kernel resolves them.
    pub fn macs(&self) -> Option<([u8; 6], [u8; 6])> {
        match *self {
            NextHop::Resolved { smac, dmac, .. } => Some((smac, dmac)),
            NextHop::Unresolved { .. } => None,
        }
    }

    /// Sends the packet out: straight out of the device when the next hop's
    /// MAC is known (set by the caller from [`NextHop::macs`]), else through
    /// `bpf_redirect_neigh`, which routes the translated packet and resolves
    /// the neighbour. Returns the TC action.
    #[inline(always)]
    pub fn redirect(&self) -> i32 {
        match *self {
            // SAFETY: plain helper call.
            NextHop::Resolved { oif, .. } => (unsafe { bpf_redirect(oif, 0) }) as i32,
            // SAFETY: a null parameter block is allowed and means "look it up".
            NextHop::Unresolved { oif } => {
                (unsafe { bpf_redirect_neigh(oif, core::ptr::null_mut(), 0, 0) }) as i32
            }
        }
    }
}
