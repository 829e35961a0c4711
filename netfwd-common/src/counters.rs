//! Per-interface datapath counters (a per-CPU hash keyed by ifindex; userspace
//! sums the CPUs).

use crate::drop::DROP_REASON_SLOTS;

/// What happened to the packets that entered the datapath on one interface.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(bytemuck::Pod, bytemuck::Zeroable))]
pub struct IfaceCounters {
    /// Packets seen.
    pub rx_packets: u64,
    /// Bytes seen (skb length, L2 header included).
    pub rx_bytes: u64,
    /// Packets redirected straight to another endpoint.
    pub redirected: u64,
    /// Packets handed to the host's stack unchanged.
    pub to_host: u64,
    /// ARP requests and IPv6 neighbour solicitations answered by the
    /// datapath.
    pub arp_replies: u64,
    /// Packets address-translated: source NAT on an endpoint's interface,
    /// reverse NAT on the uplink.
    pub translated: u64,
    /// Packets dropped, indexed by [`crate::drop::DropReason`].
    pub drops: [u64; DROP_REASON_SLOTS],
    /// Bytes of the packets dropped (as `rx_bytes` counts them), indexed
    /// as `drops`. Last, so the fields before it keep their offsets.
    pub drop_bytes: [u64; DROP_REASON_SLOTS],
}

impl IfaceCounters {
    /// Adds another CPU's counters to these.
    pub fn add(&mut self, other: &IfaceCounters) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.redirected += other.redirected;
        self.to_host += other.to_host;
        self.arp_replies += other.arp_replies;
        self.translated += other.translated;
        for (sum, n) in self.drops.iter_mut().zip(other.drops.iter()) {
            *sum += n;
        }
        for (sum, n) in self.drop_bytes.iter_mut().zip(other.drop_bytes.iter()) {
            *sum += n;
        }
    }

    /// Packets dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Bytes dropped for any reason.
    pub fn dropped_bytes(&self) -> u64 {
        self.drop_bytes.iter().sum()
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), only u64 fields, no padding; every bit pattern is valid.
unsafe impl aya::Pod for IfaceCounters {}
