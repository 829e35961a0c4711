//! What the datapath decided for a packet, kept apart from the TC return code
//! so it can be counted first.

use aya_ebpf::bindings::{TC_ACT_SHOT, TC_ACT_UNSPEC, xdp_action};
use netfwd_common::drop::DropReason;

pub enum Verdict {
    /// Sent to another endpoint; carries the redirect helper's TC action.
    Redirected(i32),
    /// An ARP request or an IPv6 neighbour solicitation answered in place
    /// and sent back out of the interface (counted as `arp_replies`).
    ArpReplied(i32),
    /// Routed (a hop without NAT: through the gateway, to or from a peer
    /// host); carries the redirect helper's TC action.
    Routed(i32),
    /// Address-translated (source NAT out, reverse NAT in) and redirected;
    /// carries the redirect helper's TC action.
    Translated(i32),
    /// Not the datapath's to handle: the next TCX program, else the host's
    /// stack, gets it unchanged.
    ToHost,
    Drop(DropReason),
}

impl Verdict {
    pub fn tc_action(&self) -> i32 {
        match self {
            Verdict::Redirected(action)
            | Verdict::ArpReplied(action)
            | Verdict::Routed(action)
            | Verdict::Translated(action) => *action,
            // TCX_NEXT: another network's program on a shared uplink may own it.
            Verdict::ToHost => TC_ACT_UNSPEC,
            Verdict::Drop(_) => TC_ACT_SHOT,
        }
    }

    /// In XDP, what is not the fast path's passes on to the stack, where the
    /// TC program behind it decides as in TC mode.
    pub fn xdp_action(&self) -> u32 {
        match self {
            Verdict::Redirected(action)
            | Verdict::ArpReplied(action)
            | Verdict::Routed(action)
            | Verdict::Translated(action) => *action as u32,
            Verdict::ToHost => xdp_action::XDP_PASS,
            Verdict::Drop(_) => xdp_action::XDP_DROP,
        }
    }
}
