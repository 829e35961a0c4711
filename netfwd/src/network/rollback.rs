//! One guard for every change made of several steps (netavark's commit
//! guard): each step done pushes its undo; [`Rollback::commit`] keeps what
//! was done, and a guard dropped uncommitted (an error returned with `?`, a
//! panic) undoes it all, the last step first. No error path writes its own
//! undo list.

use std::future::Future;

use anyhow::{Context as _, Result};

type Undo = Box<dyn FnOnce() -> Result<()> + Send>;

/// The undo steps of a change under way; see the module.
#[must_use = "a guard dropped at once undoes at once"]
#[derive(Default)]
pub struct Rollback {
    /// Each with the words its failure is logged after.
    undo: Vec<(&'static str, Undo)>,
}

impl Rollback {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pushes an undo step; `context` prefixes the warning it logs if it
    /// fails (the error that caused the rollback is the one reported).
    pub fn push(
        &mut self,
        context: &'static str,
        undo: impl FnOnce() -> Result<()> + Send + 'static,
    ) {
        self.undo.push((context, Box::new(undo)));
    }

    /// Pushes an async undo step (netlink's), as [`Rollback::push`]. Drop
    /// cannot await, and the caller's runtime is single-threaded and busy
    /// dropping us, so the step runs to completion on a runtime of its own,
    /// on a thread of its own: a new thread starts in the namespace of the
    /// one that made it, and opens its own netlink connections there.
    pub fn push_async<F>(
        &mut self,
        context: &'static str,
        undo: impl FnOnce() -> F + Send + 'static,
    ) where
        F: Future<Output = Result<()>>,
    {
        self.push(context, move || {
            std::thread::scope(|s| {
                s.spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .context("starting a runtime to undo with")?
                        .block_on(undo())
                })
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the undo step panicked")))
            })
        });
    }

    /// Keeps every step done: nothing is undone.
    pub fn commit(mut self) {
        self.undo.clear();
    }
}

impl Drop for Rollback {
    fn drop(&mut self) {
        while let Some((context, undo)) = self.undo.pop() {
            if let Err(e) = undo() {
                log::warn!("{context}: {e:#}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn recorder() -> (Arc<Mutex<Vec<u32>>>, impl Fn(u32) -> Undo) {
        let done = Arc::new(Mutex::new(Vec::new()));
        let log = done.clone();
        let step = move |n: u32| -> Undo {
            let log = log.clone();
            Box::new(move || {
                log.lock().unwrap().push(n);
                Ok(())
            })
        };
        (done, step)
    }

    #[test]
    fn an_uncommitted_guard_undoes_every_step_last_first() {
        let (done, step) = recorder();
        let mut guard = Rollback::new();
        guard.push("one", step(1));
        guard.push("two", step(2));
        guard.push_async("three", || async { Err(anyhow::anyhow!("fails, logged")) });
        guard.push("four", step(4));
        drop(guard);
        assert_eq!(*done.lock().unwrap(), [4, 2, 1]);
    }

    #[test]
    fn a_committed_guard_undoes_nothing() {
        let (done, step) = recorder();
        let mut guard = Rollback::new();
        guard.push("one", step(1));
        guard.commit();
        assert!(done.lock().unwrap().is_empty());
    }

    #[test]
    fn an_async_step_runs_to_completion() {
        let done = Arc::new(Mutex::new(false));
        let flag = done.clone();
        let mut guard = Rollback::new();
        guard.push_async("async", move || async move {
            tokio::task::yield_now().await;
            *flag.lock().unwrap() = true;
            Ok(())
        });
        drop(guard);
        assert!(*done.lock().unwrap());
    }
}
