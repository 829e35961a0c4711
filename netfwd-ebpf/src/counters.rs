//! Per-interface counters, per CPU: no atomics on the fast path.

use crate::{maps::COUNTERS, verdict::Verdict};

#[inline(always)]
pub fn account(ifindex: u32, len: u32, verdict: &Verdict) {
    let Some(counters) = COUNTERS.get_ptr_mut(ifindex) else {
        return;
    };
    // SAFETY: per-CPU value; this program is the only writer on this CPU.
    let counters = unsafe { &mut *counters };
    counters.rx_packets += 1;
    counters.rx_bytes += u64::from(len);
    match verdict {
        Verdict::Redirected(_) | Verdict::Routed(_) => counters.redirected += 1,
        Verdict::ArpReplied(_) => counters.arp_replies += 1,
        Verdict::Translated(_) => counters.translated += 1,
        Verdict::ToHost => counters.to_host += 1,
        Verdict::Drop(reason) => {
            if let Some(slot) = counters.drops.get_mut(reason.slot()) {
                *slot += 1;
            }
        }
    }
}
