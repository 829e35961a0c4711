//! conntrack's early drop: when the NAT table is full, a TCP flow whose
//! handshake has not completed gives its room to the new flow, so a flood of
//! spoofed SYNs cannot lock endpoints out of the NAT for `tcp_syn` (or, as
//! before, for `tcp_established`). Each CPU remembers the last
//! `UNCONFIRMED_SLOTS` TCP flows it made in a ring; making room looks at a
//! few of the oldest there (`EVICTION_TRIES`) and evicts the first still
//! unconfirmed: bounded work, and only when the table is full.

use netfwd_common::nat::{IPPROTO_TCP, NatKey};

use crate::{
    conntrack,
    maps::{NAT, UNCONFIRMED, UNCONFIRMED_CURSOR, UNCONFIRMED_SLOTS},
};

/// How many of the oldest remembered flows one new flow looks at.
const EVICTION_TRIES: u32 = 8;

/// Remembers the ingress key of a new TCP flow.
#[inline(always)]
pub fn remember(key: &NatKey) {
    if key.proto != IPPROTO_TCP {
        return;
    }
    let Some(cursor) = UNCONFIRMED_CURSOR.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's own value; nothing else runs on it meanwhile.
    let cursor = unsafe { &mut *cursor };
    if let Some(slot) = UNCONFIRMED.get_ptr_mut(cursor.head % UNCONFIRMED_SLOTS) {
        // SAFETY: as above.
        unsafe { *slot = *key };
    }
    cursor.head = cursor.head.wrapping_add(1);
    // Full: the oldest is overwritten, forgotten.
    if cursor.head.wrapping_sub(cursor.tail) > UNCONFIRMED_SLOTS {
        cursor.tail = cursor.head.wrapping_sub(UNCONFIRMED_SLOTS);
    }
}

/// Evicts one unconfirmed flow (both entries), the oldest this CPU
/// remembers among the next `EVICTION_TRIES`; whether it did. The flows
/// looked at are forgotten either way: they were confirmed, gone or evicted.
/// A function of its own (a BPF subprogram): inlined at each insertion, it
/// would take the programs past the 512-byte stack.
#[inline(never)]
pub fn make_room() -> bool {
    let Some(cursor) = UNCONFIRMED_CURSOR.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's own value.
    let cursor = unsafe { &mut *cursor };
    for _ in 0..EVICTION_TRIES {
        if cursor.tail == cursor.head {
            return false;
        }
        let Some(slot) = UNCONFIRMED.get_ptr_mut(cursor.tail % UNCONFIRMED_SLOTS) else {
            return false;
        };
        cursor.tail = cursor.tail.wrapping_add(1);
        // SAFETY: this CPU's own value. Used as the map key in place: a copy
        // would take stack the programs have not got to spare.
        if evict(unsafe { &*slot }) {
            return true;
        }
    }
    false
}

/// Evicts the flow whose ingress key is `key` if it is unconfirmed.
#[inline(always)]
fn evict(key: &NatKey) -> bool {
    if key.proto != IPPROTO_TCP {
        return false;
    }
    // SAFETY: a live map value, read in place (a stale read at worst).
    let Some(entry) = NAT.get_ptr(key).map(|entry| unsafe { &*entry }) else {
        return false;
    };
    if !conntrack::unconfirmed(entry, key.proto) {
        return false;
    }
    let egress = key.egress_partner(entry);
    // Its egress entry goes with it while it points back at it.
    // SAFETY: as above.
    if NAT
        .get_ptr(egress)
        .is_some_and(|out| unsafe { (*out).addr == key.daddr && (*out).port == key.dport })
    {
        let _ = NAT.remove(egress);
    }
    NAT.remove(key).is_ok()
}
