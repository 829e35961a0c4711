//! Work spread over a few threads, each with a runtime of its own: for
//! netlink work whose waits in the kernel (RCU grace periods, one
//! namespace's dumps) overlap across sockets but not within one.

use anyhow::{Context as _, Result, anyhow};

/// `work` on `items` split into at most `threads` parts, each on a thread
/// of its own (a new thread starts in the calling thread's network
/// namespace) with a current-thread runtime; `work` gives one result per
/// item of its part, and the results come back in the items' order. A part
/// that fails whole (its runtime, its thread, or `work` itself) gives
/// `lost(item, error)` for each of its items.
pub fn on_threads<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    work: impl AsyncFn(&[T]) -> Result<Vec<R>> + Sync,
    lost: impl Fn(&T, &anyhow::Error) -> R,
) -> Vec<R> {
    let per_thread = items.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(per_thread)
            .map(|part| (part, scope.spawn(|| run_part(part, &work))))
            .collect();
        workers
            .into_iter()
            .flat_map(|(part, worker)| {
                match worker
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("its thread panicked")))
                {
                    Ok(results) => results,
                    Err(e) => part.iter().map(|item| lost(item, &e)).collect(),
                }
            })
            .collect()
    })
}

/// One part of [`on_threads`], on this thread.
fn run_part<T, R>(part: &[T], work: &impl AsyncFn(&[T]) -> Result<Vec<R>>) -> Result<Vec<R>> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("starting a runtime")?
        .block_on(work(part))
}
