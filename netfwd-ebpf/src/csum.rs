//! Checksum updates. IPv4 header and ICMP checksums are updated in place,
//! incrementally (RFC 1624): a field and its checksum change together, so the
//! packet's overall sum, and with it a CHECKSUM_COMPLETE skb->csum, stays
//! valid. TCP/UDP checksums go through `bpf_l4_csum_replace`, which knows
//! what CHECKSUM_PARTIAL and the pseudo-header need.

use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR},
    helpers::bpf_csum_diff,
    programs::TcContext,
};
use netfwd_common::{drop::DropReason, nat::Ipv6Bytes};

#[inline(always)]
pub fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// `check` after `N` bytes of the covered data (16-bit aligned, `N` even)
/// change from `old` to `new`: HC' = ~(~HC + ~m + m'), a word at a time.
/// Any width, so an IPv6 address (16 bytes) takes the same rule as an IPv4
/// address (4), a port (2) or a TTL and protocol (2).
#[inline(always)]
pub fn replace<const N: usize>(check: &mut [u8; 2], old: [u8; N], new: [u8; N]) {
    let mut sum = u32::from(!u16::from_be_bytes(*check));
    let mut i = 0;
    while i + 1 < N {
        sum += u32::from(!u16::from_be_bytes([old[i], old[i + 1]]));
        sum += u32::from(u16::from_be_bytes([new[i], new[i + 1]]));
        i += 2;
    }
    *check = (!fold(sum)).to_be_bytes();
}

/// `bpf_l4_csum_replace`'s flag for a difference in an IPv6 address
/// (`include/uapi/linux/bpf.h`; newer than the bindings).
const BPF_F_IPV6: u64 = 1 << 7;

/// Where a TCP or UDP checksum lives and how it must be treated.
#[derive(Clone, Copy)]
pub struct L4Csum {
    /// Offset of the checksum field in the packet.
    pub offset: usize,
    /// UDP: a zero checksum means "none" and must stay zero.
    pub udp: bool,
}

impl L4Csum {
    fn flags(self, pseudo: bool) -> u64 {
        let mut flags = 0;
        if pseudo {
            flags |= u64::from(BPF_F_PSEUDO_HDR);
        }
        if self.udp {
            flags |= u64::from(BPF_F_MARK_MANGLED_0);
        }
        flags
    }

    /// An address of the pseudo-header changed.
    #[inline(always)]
    pub fn addr(self, ctx: &TcContext, old: [u8; 4], new: [u8; 4]) -> Result<(), DropReason> {
        ctx.l4_csum_replace(
            self.offset,
            u64::from(u32::from_ne_bytes(old)),
            u64::from(u32::from_ne_bytes(new)),
            self.flags(true) | 4,
        )
        .map_err(|_| DropReason::Malformed)
    }

    /// An IPv6 address of the pseudo-header changed: the difference of its
    /// 16 bytes summed once (`bpf_csum_diff`) and folded in as one.
    #[inline(always)]
    pub fn addr6(
        self,
        ctx: &TcContext,
        old: &Ipv6Bytes,
        new: &Ipv6Bytes,
    ) -> Result<(), DropReason> {
        let (old, new) = (
            old.0.as_ptr().cast_mut().cast(),
            new.0.as_ptr().cast_mut().cast(),
        );
        // SAFETY: both are 16 readable bytes, 4-byte aligned (`Ipv6Bytes`),
        // which the helper only reads.
        let diff = unsafe { bpf_csum_diff(old, 16, new, 16, 0) };
        if diff < 0 {
            return Err(DropReason::Malformed);
        }
        // Size 0: `to` is a sum of differences already. `BPF_F_IPV6`: no
        // header checksum balances the change, so a CHECKSUM_COMPLETE
        // skb->csum is left as it is (kernel 6.16).
        ctx.l4_csum_replace(self.offset, 0, diff as u64, self.flags(true) | BPF_F_IPV6)
            .map_err(|_| DropReason::Malformed)
    }

    /// A port changed.
    #[inline(always)]
    pub fn port(self, ctx: &TcContext, old: [u8; 2], new: [u8; 2]) -> Result<(), DropReason> {
        ctx.l4_csum_replace(
            self.offset,
            u64::from(u16::from_ne_bytes(old)),
            u64::from(u16::from_ne_bytes(new)),
            self.flags(false) | 2,
        )
        .map_err(|_| DropReason::Malformed)
    }
}
