//! A lab shared by the tests of one file. Labs cost seconds to build
//! (namespaces, an internet, `netfwd up` loading and verifying programs),
//! and many tests of a file only read theirs: such a file builds it once.
//! [`SharedLab::get`] builds it for the first test that asks and lends it
//! to one test at a time (the harness runs them one at a time anyway); it
//! is torn down when the test process exits, or at once when a test fails
//! while holding it, so that the next test gets a fresh lab instead of
//! what the failure left.
//!
//! A test that borrows a shared lab leaves it as it found it and reads
//! counters as differences, never as totals: other tests used it before.
//! A test that changes the lab for good (`down`, another config) builds
//! its own.

use std::{
    ops::Deref,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Mutex, MutexGuard, Once, PoisonError},
};

/// A lab of type `T`, built on first use; declare it as a `static`.
pub struct SharedLab<T> {
    lab: Mutex<Option<T>>,
    registered: Once,
}

impl<T: Send> SharedLab<T> {
    pub const fn new() -> Self {
        SharedLab {
            lab: Mutex::new(None),
            registered: Once::new(),
        }
    }

    /// The lab, built by `build` if no test has built it yet (or the last
    /// test that held it failed), lent until the returned guard drops.
    pub fn get(&'static self, build: impl FnOnce() -> T) -> Lent<T> {
        // A test that failed while holding it poisoned the lock and took
        // the lab down with it (see `Lent`'s drop): the slot is empty.
        let mut slot = self.lab.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            self.registered.call_once(|| register(self));
            *slot = Some(build());
        }
        Lent { slot }
    }
}

impl<T: Send> Default for SharedLab<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// A shared lab lent to one test.
pub struct Lent<T: 'static> {
    slot: MutexGuard<'static, Option<T>>,
}

impl<T> Deref for Lent<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.slot
            .as_ref()
            .expect("a lent lab is built before it is lent")
    }
}

impl<T> Drop for Lent<T> {
    fn drop(&mut self) {
        // A failed test may have left the lab half changed: tear it down
        // now (its own guards never panic), the next test builds another.
        if std::thread::panicking() {
            drop(self.slot.take());
        }
    }
}

/// What the exit hook tears down: every shared lab built in this process.
trait TearDown: Sync {
    fn tear_down(&self);
}

impl<T: Send> TearDown for SharedLab<T> {
    fn tear_down(&self) {
        // A lock still held at exit belongs to no test that will finish:
        // leave that lab rather than wait forever.
        let lab = match self.lab.try_lock() {
            Ok(mut slot) => slot.take(),
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner().take(),
            Err(std::sync::TryLockError::WouldBlock) => {
                eprintln!("cleanup: a shared lab still lent at exit is left");
                None
            }
        };
        drop(lab);
    }
}

static BUILT: Mutex<Vec<&'static dyn TearDown>> = Mutex::new(Vec::new());
static EXIT_HOOK: Once = Once::new();

fn register(lab: &'static dyn TearDown) {
    EXIT_HOOK.call_once(|| {
        // SAFETY: `atexit` only records the address of a function that
        // takes no arguments and lives as long as the program.
        if unsafe { nix::libc::atexit(tear_down_all) } != 0 {
            eprintln!("cleanup: no exit hook; shared labs will be left behind");
        }
    });
    BUILT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(lab);
}

/// Runs when the test process exits (libtest returns from `main`, or calls
/// `exit` after a failure): the shared labs go as a test's own lab goes
/// when it drops, `netfwd down` and all.
extern "C" fn tear_down_all() {
    let labs = std::mem::take(&mut *BUILT.lock().unwrap_or_else(PoisonError::into_inner));
    for lab in labs {
        // A panic must not unwind out of an `extern "C"` function; the
        // teardown never panics, but exit is no place to find out.
        if catch_unwind(AssertUnwindSafe(|| lab.tear_down())).is_err() {
            eprintln!("cleanup: tearing down a shared lab panicked");
        }
    }
}
