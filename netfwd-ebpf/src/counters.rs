//! Per-interface counters, per CPU: no atomics on the fast path. Every
//! verdict of TC and XDP is accounted here, where `netfwd monitor`'s packet
//! events are written from too.

use crate::{
    maps::COUNTERS,
    monitor::{self, Point},
    parse::Packet,
    verdict::Verdict,
};

#[inline(always)]
pub fn account<C: Packet>(ctx: &C, point: Point, ifindex: u32, len: u32, verdict: &Verdict) {
    monitor::packet(ctx, point, ifindex, len, verdict);
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
            // The same slot of two arrays of one length: the compiler
            // checks the bound once, and a drop costs one add more.
            let slot = reason.slot();
            if let (Some(packets), Some(bytes)) = (
                counters.drops.get_mut(slot),
                counters.drop_bytes.get_mut(slot),
            ) {
                *packets += 1;
                *bytes += u64::from(len);
            }
        }
    }
}
