//! Unanswered flows: conntrack's early drop, and each sender held to its
//! share of the table.
//!
//! A flow no reply has answered yet (a TCP flow whose handshake has not
//! completed, a datagram or echo the remote side never answered) is what a
//! flood is made of. When the NAT table is full, a new flow takes the room
//! of the oldest such flow among the last `UNREPLIED_SLOTS` made on any CPU
//! (`make_room`: a few looked at, bounded work). And one sender (an
//! endpoint, or a published endpoint port) may hold at most
//! `NatConfig::max_unreplied` unanswered flows (`admit`), so its flood
//! fills its own share, not its neighbours' room.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::bindings::BPF_NOEXIST;
use netfwd_common::{
    drop::DropReason,
    nat::{FlowSender, IPPROTO_TCP, NatConfig, NatEntry, NatKey, TCP_ESTABLISHED},
};

use crate::{family::Family, maps::UNREPLIED_SLOTS};

/// How many of the oldest remembered flows one new flow looks at.
const EVICTION_TRIES: u32 = 8;

/// Whether `sender` may start another unanswered flow.
#[inline(always)]
pub fn admit<F: Family>(
    sender: &FlowSender<F::Addr>,
    config: &NatConfig,
) -> Result<(), DropReason> {
    if config.max_unreplied == 0 {
        return Ok(());
    }
    // SAFETY: plain data; a stale copy at worst.
    let held = unsafe { F::unreplied_by_sender().get(sender) }.copied();
    if held.is_some_and(|held| held >= config.max_unreplied) {
        return Err(DropReason::UnrepliedShare);
    }
    Ok(())
}

/// Records a new flow (its ingress key `key`) of `sender`: counted against
/// its share, and remembered as a candidate for early drop.
#[inline(always)]
pub fn count_new<F: Family>(sender: &FlowSender<F::Addr>, key: &NatKey<F::Addr>) {
    let senders = F::unreplied_by_sender();
    match senders.get_ptr_mut(sender) {
        Some(held) => add(held, 1),
        None => {
            // Another CPU may have made the entry meanwhile: its count stands.
            let _ = senders.insert(sender, 1, u64::from(BPF_NOEXIST));
        }
    }
    remember::<F>(key);
}

/// A flow of `sender` was answered, or went unanswered: off its share.
#[inline(always)]
pub fn count_gone<F: Family>(sender: &FlowSender<F::Addr>) {
    let Some(held) = F::unreplied_by_sender().get_ptr_mut(sender) else {
        return;
    };
    // Never below 0: a count lost to the LRU (or to a race with another
    // CPU's check) starts again low, not huge.
    // SAFETY: a live map value; a stale read at worst.
    if unsafe { *held } > 0 {
        add(held, u32::MAX);
    }
}

/// `*counter += n` (wrapping), atomically: every CPU counts into the same
/// value (BPF's atomic add; its result unused, as the BPF ISA before v3
/// requires). `core::sync::atomic` offers no read-modify-write on BPF.
#[inline(always)]
fn add(counter: *mut u32, n: u32) {
    // SAFETY: `counter` points into a live map value, aligned for a u32.
    unsafe { atomic_xadd::<u32, u32, { AtomicOrdering::Relaxed }>(counter, n) };
}

/// Off its sender's share, if unanswered: a flow (ingress entry `entry`)
/// that is about to leave the table.
#[inline(always)]
pub fn forget<F: Family>(proto: u8, entry: &NatEntry<F::Addr>) {
    if entry.answered == 0 {
        count_gone::<F>(&FlowSender::of_flow(proto, entry));
    }
}

/// Remembers the ingress key of a new flow, in the ring every CPU shares.
#[inline(always)]
fn remember<F: Family>(key: &NatKey<F::Addr>) {
    let Some(cursor) = F::unreplied_cursor().get_ptr_mut(0) else {
        return;
    };
    // SAFETY: a live map value; a race with another CPU loses a candidate.
    let cursor = unsafe { &mut *cursor };
    let head = cursor.head;
    if let Some(slot) = F::unreplied().get_ptr_mut(head % UNREPLIED_SLOTS) {
        // SAFETY: as above.
        unsafe { *slot = *key };
    }
    cursor.head = head.wrapping_add(1);
    // Full: the oldest is overwritten, forgotten.
    if cursor.head.wrapping_sub(cursor.tail) > UNREPLIED_SLOTS {
        cursor.tail = cursor.head.wrapping_sub(UNREPLIED_SLOTS);
    }
}

/// Evicts one unanswered flow (both entries), the oldest remembered among
/// the next `EVICTION_TRIES`; whether it did. The flows looked at are
/// forgotten either way: they were answered, gone or evicted.
/// A function of its own (a BPF subprogram): inlined at each insertion, it
/// would take the programs past the 512-byte stack.
#[inline(never)]
pub fn make_room<F: Family>() -> bool {
    let Some(cursor) = F::unreplied_cursor().get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: a live map value; a race with another CPU skips a candidate
    // or looks at one twice, which finds it gone.
    let cursor = unsafe { &mut *cursor };
    for _ in 0..EVICTION_TRIES {
        let tail = cursor.tail;
        if tail == cursor.head {
            return false;
        }
        let Some(slot) = F::unreplied().get_ptr(tail % UNREPLIED_SLOTS) else {
            return false;
        };
        cursor.tail = tail.wrapping_add(1);
        // SAFETY: a live map value. Used as the map key in place: a copy
        // would take stack the programs have not got to spare.
        if evict::<F>(unsafe { &*slot }) {
            return true;
        }
    }
    false
}

/// Whether a live flow may be evicted for a new one when the table is full
/// (conntrack's early drop): a TCP flow whose handshake has not completed,
/// or a datagram or echo flow its responder never answered.
#[inline(always)]
fn evictable<A>(entry: &NatEntry<A>, proto: u8) -> bool {
    if proto == IPPROTO_TCP {
        entry.flags & TCP_ESTABLISHED == 0
    } else {
        entry.answered == 0
    }
}

/// Evicts the flow whose ingress key is `key` if it is unanswered.
#[inline(always)]
fn evict<F: Family>(key: &NatKey<F::Addr>) -> bool {
    let nat = F::nat();
    // SAFETY: a live map value, read in place (a stale read at worst).
    let Some(entry) = nat.get_ptr(key).map(|entry| unsafe { &*entry }) else {
        return false;
    };
    if !evictable(entry, key.proto) {
        return false;
    }
    let egress = key.egress_partner(entry);
    // Its egress entry goes with it while it points back at it.
    // SAFETY: as above.
    if nat
        .get_ptr(egress)
        .is_some_and(|out| unsafe { (*out).addr == key.daddr && (*out).port == key.dport })
    {
        let _ = nat.remove(egress);
    }
    forget::<F>(key.proto, entry);
    nat.remove(key).is_ok()
}
