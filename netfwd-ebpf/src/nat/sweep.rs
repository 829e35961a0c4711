//! The NAT table's expiry, in the kernel, as conntrack's own: no netfwd
//! process needs to run for an expired flow's room to come back.
//!
//! A `bpf_timer` in `NAT_SWEEP` (one per table, pinned beside it, so it
//! lives as long as the table) drives the sweep in steps:
//!
//! 1. a **walk** (`bpf_for_each_map_elem` over `NAT`) marks the ingress keys
//!    of expired flows, and (every `LONE_EGRESS_EVERY`th walk) egress
//!    entries whose ingress entry is gone, in `NAT_EXPIRED` (room for the
//!    whole table), and changes nothing;
//! 2. a **removal** step (`bpf_loop` over the marks) takes each flow's
//!    entry as it is *now*, removes it only if it is still expired, with
//!    its egress entry (while that still points at it) and its place in its
//!    sender's share of unanswered flows.
//!
//! Then the timer waits `NatSweep::interval_ns`, or 1 ms when there are
//! marks to remove (or the walk found `NAT_EXPIRED` full). A hash map has no
//! cursor a BPF program can resume at, so a walk visits the whole table at
//! once, and its removals follow in a step of their own. Walking and removing apart also
//! keeps the walk off a bucket chain that a removal hands to another flow.
//!
//! The race between the expiry check and the removal: the datapath
//! refreshes `last_seen_ns` in place, and takes an expired flow's port over
//! in place, without atomics (the BPF ISA the datapath is built for has no
//! compare-and-exchange), and `bpf_map_delete_elem` deletes whatever the
//! key holds. So the removal re-reads the entry after the walk (a flow
//! refreshed or taken over since is kept), compares its `last_seen_ns` once
//! more as the last instruction before the delete, and counts a flow off
//! its sender only when its own delete succeeded (another CPU's eviction of
//! the same flow counts it itself). What remains is a packet that lands in
//! the few instructions between that last compare and the delete: its flow
//! is removed a moment after it was used, and its next packet makes it
//! anew — the window conntrack's own gc has between its check and its kill.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::bpf_timer as KernelTimer,
    helpers::{
        bpf_for_each_map_elem, bpf_loop, bpf_timer_init, bpf_timer_set_callback, bpf_timer_start,
    },
};
use netfwd_common::nat::{LONE_EGRESS_EVERY, NS_PER_SEC, NatEntry, NatKey, NatSweep, NatTimeouts};

use crate::{conntrack::now_ns, early_drop, family::Family, maps::nat_config, monitor};

/// `bpf_timer_init`'s clock.
const CLOCK_MONOTONIC: u64 = 1;

/// The pause before the next step when work is waiting: short, but out of
/// the softirq that ran the last step, so packets go in between.
const STEP_GAP_NS: u64 = 1_000_000;

/// Arms the sweep of the table this program was loaded with (run once by
/// the loader): the timeouts and pace of the network's `NAT_CONFIG`, and the
/// timer's callback this program's (an older program's timer, after an
/// upgrade, is taken over), first step in 1 ms. Nothing without NAT.
#[inline(always)]
pub fn arm<F: Family>() {
    let Some(config) = nat_config() else {
        return;
    };
    let Some(sweep) = F::nat_sweep().get_ptr_mut(0) else {
        return;
    };
    // SAFETY: a live map value; the timer's own fields are the kernel's.
    let sweep = unsafe { &mut *sweep };
    sweep.timeouts = config.timeouts;
    sweep.interval_ns = NatSweep::interval_ns(&config.timeouts);
    let timer = timer_of(sweep);
    // SAFETY: helper calls on the map value's timer. `bpf_timer_init` fails
    // with EBUSY on a timer armed before, which stays armed and gets this
    // program's callback.
    unsafe {
        let _ = bpf_timer_init(timer, map_ptr(F::nat_sweep()), CLOCK_MONOTONIC);
        let _ = bpf_timer_set_callback(timer, on_timer::<F> as *mut c_void);
        let _ = bpf_timer_start(timer, STEP_GAP_NS, 0);
    }
}

/// One step now (a walk, or the removals of the last walk's marks), outside
/// the timer, by the timeouts of this program's `NAT_CONFIG`: the tests,
/// armed or not.
#[inline(always)]
pub fn step_now<F: Family>() {
    let (Some(config), Some(sweep)) = (nat_config(), F::nat_sweep().get_ptr_mut(0)) else {
        return;
    };
    // SAFETY: a live map value. A step racing the timer's step on another
    // CPU is safe: every mark is checked against the table before anything
    // is removed.
    step::<F>(unsafe { &mut *sweep }, &config.timeouts);
}

/// The timer's callback: a step, and the timer set for the next.
extern "C" fn on_timer<F: Family>(_map: *mut c_void, _key: *mut u32, sweep: *mut NatSweep) -> i32 {
    // SAFETY: the kernel passes the map value holding the timer.
    let sweep = unsafe { &mut *sweep };
    let timeouts = sweep.timeouts;
    let pause = step::<F>(sweep, &timeouts);
    // SAFETY: the value's own timer, initialised (it called us).
    unsafe { bpf_timer_start(timer_of(sweep), pause, 0) };
    0
}

/// A walk when no marks wait, else their removal; returns the pause before
/// the next step.
#[inline(never)]
fn step<F: Family>(sweep: &mut NatSweep, timeouts: &NatTimeouts) -> u64 {
    if sweep.pending == 0 {
        walk::<F>(sweep, timeouts);
        return if sweep.pending == 0 {
            sweep.interval_ns
        } else {
            STEP_GAP_NS
        };
    }
    remove_marked::<F>(sweep, timeouts);
    if sweep.cut_short != 0 {
        STEP_GAP_NS
    } else {
        sweep.interval_ns
    }
}

/// What a step carries from entry to entry (a walk) or from mark to mark
/// (the removals): its clock and timeouts, and what it did.
#[repr(C)]
struct Step {
    now: u64,
    timeouts: NatTimeouts,
    /// A walk: the entries it marked; the removals: the flows removed.
    done: u32,
    /// A walk: 1 if it looks for lone egress entries, 2 once `NAT_EXPIRED`
    /// was full; the removals: the lone egress entries removed.
    lone: u32,
}

/// `Step::lone` of a walk.
const LOOK_FOR_LONE: u32 = 1;
const MARKS_FULL: u32 = 2;

impl Step {
    #[inline(always)]
    fn new(timeouts: &NatTimeouts) -> Self {
        Step {
            now: now_ns(),
            timeouts: *timeouts,
            done: 0,
            lone: 0,
        }
    }
}

#[inline(always)]
fn walk<F: Family>(sweep: &mut NatSweep, timeouts: &NatTimeouts) {
    let mut walk = Step::new(timeouts);
    if sweep.walks.is_multiple_of(LONE_EGRESS_EVERY) {
        walk.lone = LOOK_FOR_LONE;
    }
    // SAFETY: helper call; `visit` takes `Step` as its context.
    let visited = unsafe {
        bpf_for_each_map_elem(
            map_ptr(F::nat()),
            visit::<F> as *mut c_void,
            (&raw mut walk).cast(),
            0,
        )
    };
    sweep.pending = walk.done;
    sweep.cut_short = u32::from(walk.lone & MARKS_FULL != 0);
    sweep.walks += 1;
    sweep.last_walk_entries = visited as u64;
    sweep.last_walk_ns = now_ns().saturating_sub(walk.now);
    sweep.busy_ns += sweep.last_walk_ns;
}

/// One entry of the walk: marked if its flow expired, or (when the walk
/// looks for them) if it is an egress entry older than any timeout whose
/// ingress entry is gone. 1 stops the walk (the marks are full).
extern "C" fn visit<F: Family>(
    _map: *mut c_void,
    key: *const NatKey<F::Addr>,
    entry: *const NatEntry<F::Addr>,
    walk: *mut Step,
) -> i64 {
    // SAFETY: the kernel passes the entry's key and value, and our context.
    let (key, entry, walk) = unsafe { (&*key, &*entry, &mut *walk) };
    let marked = if key.is_ingress() {
        walk.timeouts.expired(key.proto, entry, walk.now)
    } else {
        walk.lone & LOOK_FOR_LONE != 0 && lone_egress::<F>(key, entry, &walk.timeouts, walk.now)
    };
    if !marked {
        return 0;
    }
    let Some(slot) = F::nat_expired().get_ptr_mut(walk.done) else {
        walk.lone |= MARKS_FULL;
        return 1;
    };
    // SAFETY: a live map value.
    unsafe { *slot = *key };
    walk.done += 1;
    0
}

/// An egress entry whose ingress entry is gone (an eviction or a takeover
/// that missed it), once older than the shortest timeout: a flow being made
/// has its ingress entry first, so a young one may just be on its way.
#[inline(always)]
fn lone_egress<F: Family>(
    key: &NatKey<F::Addr>,
    entry: &NatEntry<F::Addr>,
    timeouts: &NatTimeouts,
    now: u64,
) -> bool {
    now.saturating_sub(entry.created_ns) > u64::from(timeouts.shortest()) * NS_PER_SEC
        // SAFETY: plain lookup; only whether it exists is read.
        && unsafe { F::nat().get(key.ingress_partner(entry)) }.is_none()
}

#[inline(always)]
fn remove_marked<F: Family>(sweep: &mut NatSweep, timeouts: &NatTimeouts) {
    let mut removal = Step::new(timeouts);
    // SAFETY: helper call; `remove_one` takes `Step` as its context.
    unsafe {
        bpf_loop(
            sweep.pending,
            remove_one::<F> as *mut c_void,
            (&raw mut removal).cast(),
            0,
        )
    };
    sweep.pending = 0;
    sweep.last_removal_ns = now_ns().saturating_sub(removal.now);
    sweep.busy_ns += sweep.last_removal_ns;
    sweep.flows_removed += u64::from(removal.done);
    sweep.lone_removed += u64::from(removal.lone);
}

/// Mark `index`: its flow or lone egress entry removed if it still is
/// what the walk found.
extern "C" fn remove_one<F: Family>(index: u32, removal: *mut Step) -> i64 {
    // SAFETY: our context.
    let removal = unsafe { &mut *removal };
    // A copy: a walk on another CPU may write the slot meanwhile.
    let Some(key) = F::nat_expired().get(index).copied() else {
        return 1;
    };
    if key.is_ingress() {
        if remove_flow::<F>(&key, &removal.timeouts, removal.now) {
            removal.done += 1;
        }
    } else if remove_lone_egress::<F>(&key, &removal.timeouts, removal.now) {
        removal.lone += 1;
    }
    0
}

/// Removes the flow whose ingress key is `key` if it is expired now (see
/// the module's comment on the race); whether it did.
#[inline(always)]
fn remove_flow<F: Family>(key: &NatKey<F::Addr>, timeouts: &NatTimeouts, now: u64) -> bool {
    let nat = F::nat();
    let Some(live) = nat.get_ptr(key) else {
        return false;
    };
    // SAFETY: a live map value; read again below, as late as can be.
    let seen = unsafe { *live };
    if !timeouts.expired(key.proto, &seen, now) {
        return false;
    }
    let egress = key.egress_partner(&seen);
    // SAFETY: as above.
    if unsafe { (*live).last_seen_ns } != seen.last_seen_ns || nat.remove(key).is_err() {
        return false;
    }
    early_drop::forget::<F>(key.proto, &seen);
    monitor::nat_expired(key, &seen);
    // Its egress entry goes with it while it points back at it (a new flow
    // of the endpoint's tuple may have another port already).
    // SAFETY: plain lookup; a stale copy at worst.
    if unsafe { nat.get(egress) }.is_some_and(|out| egress.ingress_partner(out) == *key) {
        let _ = nat.remove(egress);
    }
    true
}

#[inline(always)]
fn remove_lone_egress<F: Family>(key: &NatKey<F::Addr>, timeouts: &NatTimeouts, now: u64) -> bool {
    let nat = F::nat();
    // SAFETY: plain lookup; a stale copy at worst.
    let Some(entry) = (unsafe { nat.get(key) }).copied() else {
        return false;
    };
    lone_egress::<F>(key, &entry, timeouts, now) && nat.remove(key).is_ok()
}

#[inline(always)]
fn timer_of(sweep: &mut NatSweep) -> *mut KernelTimer {
    (&raw mut sweep.timer).cast()
}

/// A BTF map as the `map` argument of a helper.
#[inline(always)]
fn map_ptr<M>(map: &M) -> *mut c_void {
    core::ptr::from_ref(map).cast_mut().cast()
}
