//! The next hop out of the host, as the FIB names it, and the redirect that
//! sends a packet there without the host's forwarding path.

use aya_ebpf::helpers::{bpf_redirect, bpf_redirect_neigh};

/// Where a packet leaves: out of `oif`, to a next hop whose MAC is known
/// (`resolved`, with the device's `mtu`), or not in the neighbour table
/// yet (`mtu` 0: not looked up). A struct, every byte
/// set either way: as an enum, the MACs of an unresolved hop were bytes the
/// compiler left unset, and it spilled them across a helper call, a read
/// of an unset register that the verifier refuses.
pub struct NextHop {
    oif: u32,
    smac: [u8; 6],
    dmac: [u8; 6],
    resolved: bool,
    mtu: u32,
}

impl NextHop {
    #[inline(always)]
    pub fn resolved(oif: u32, smac: [u8; 6], dmac: [u8; 6], mtu: u32) -> Self {
        NextHop {
            oif,
            smac,
            dmac,
            resolved: true,
            mtu,
        }
    }

    #[inline(always)]
    pub fn unresolved(oif: u32) -> Self {
        NextHop {
            oif,
            smac: [0; 6],
            dmac: [0; 6],
            resolved: false,
            mtu: 0,
        }
    }

    pub fn oif(&self) -> u32 {
        self.oif
    }

    /// The MTU of `oif`, where the lookup gave it.
    pub fn mtu(&self) -> Option<u32> {
        (self.mtu != 0).then_some(self.mtu)
    }

    /// The MACs the frame leaves with; `None` when the kernel resolves them.
    pub fn macs(&self) -> Option<([u8; 6], [u8; 6])> {
        self.resolved.then_some((self.smac, self.dmac))
    }

    /// Sends the packet out: straight out of the device when the next hop's
    /// MAC is known (set by the caller from [`NextHop::macs`]), else through
    /// `bpf_redirect_neigh`, which routes the translated packet and resolves
    /// the neighbour. Returns the TC action.
    #[inline(always)]
    pub fn redirect(&self) -> i32 {
        if self.resolved {
            // SAFETY: plain helper call.
            (unsafe { bpf_redirect(self.oif, 0) }) as i32
        } else {
            // SAFETY: a null parameter block is allowed and means "look it up".
            (unsafe { bpf_redirect_neigh(self.oif, core::ptr::null_mut(), 0, 0) }) as i32
        }
    }
}
