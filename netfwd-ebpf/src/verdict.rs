//! What the datapath decided for a packet, kept apart from the TC return code
//! so it can be counted first.

use aya_ebpf::bindings::{TC_ACT_OK, TC_ACT_SHOT};
use netfwd_common::drop::DropReason;

pub enum Verdict {
    /// Sent to another endpoint; carries the redirect helper's TC action.
    Redirected(i32),
    /// An ARP request answered in place and sent back out of the interface.
    ArpReplied(i32),
    /// Handed to the host's stack unchanged.
    ToHost,
    Drop(DropReason),
}

impl Verdict {
    pub fn tc_action(&self) -> i32 {
        match self {
            Verdict::Redirected(action) | Verdict::ArpReplied(action) => *action,
            Verdict::ToHost => TC_ACT_OK,
            Verdict::Drop(_) => TC_ACT_SHOT,
        }
    }
}
