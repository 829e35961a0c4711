//! VLAN tags. An endpoint's link is one untagged segment: a tag an endpoint
//! chose would otherwise ride its packets out of the uplink into whatever
//! VLAN it named. The kernel moves an in-band 802.1Q tag into the skb's
//! metadata before TC runs; XDP sees the frame as sent.

use aya_ebpf::programs::TcContext;
use network_types::eth::EtherType;

/// Whether `ether_type` (as on the wire) is a VLAN tag: 802.1Q, 802.1ad
/// and the pre-standard QinQ types, which switches still honour.
#[inline(always)]
pub fn is_tag(ether_type: u16) -> bool {
    ether_type == EtherType::Ieee8021q as u16
        || ether_type == EtherType::Ieee8021ad as u16
        || ether_type == EtherType::Ieee8021QinQ1 as u16
        || ether_type == EtherType::Ieee8021QinQ2 as u16
        || ether_type == EtherType::Ieee8021QinQ3 as u16
}

/// Whether the skb carries a tag in its metadata (taken out of the frame by
/// the receiving device or the stack, or put there by a VLAN device above
/// the sender's veth).
#[inline(always)]
pub fn in_metadata(ctx: &TcContext) -> bool {
    // SAFETY: the context pointer is valid for the whole program run.
    unsafe { (*ctx.skb.skb).vlan_present != 0 }
}
