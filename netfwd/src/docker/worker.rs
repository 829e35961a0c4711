//! The thread that runs the driver: Docker's calls one at a time and, between
//! them, the networks' upkeep. A call can wait on a network's lock (a CLI or
//! the collector holds it) and blocks its thread while it waits; on a thread
//! of its own, that never stops the socket from accepting and answering
//! what needs no lock.

use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::sync::{mpsc, oneshot};

use super::{
    MAINTAIN_EVERY,
    driver::{self, Driver},
    protocol::PluginCall,
    store::Store,
};
use crate::http::Response;

/// Calls waiting for the driver; the connection cap bounds them anyway.
const QUEUE: usize = 64;
/// How often the cluster agents' news is looked at. They run on threads of
/// their own; their routes are set here, between calls, because setting
/// them takes the locks a call may hold.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

type Call = (PluginCall, oneshot::Sender<Response>);

/// The accepting side's handle on the driver's thread.
#[derive(Clone)]
pub struct Worker {
    calls: mpsc::Sender<Call>,
}

impl Worker {
    /// Starts the thread. It is in the namespace the process entered
    /// (`--netns`), as a new thread is in its creator's. The receiver
    /// completes when the thread has stopped (an error, a panic): the
    /// plugin cannot serve without it.
    pub fn start(store: Store) -> Result<(Worker, oneshot::Receiver<()>)> {
        let (calls, queue) = mpsc::channel(QUEUE);
        let (alive, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("docker-driver".into())
            .spawn(move || {
                // Dropped when the thread ends, however it ends.
                let _alive = alive;
                if let Err(e) = run(store, queue) {
                    log::error!("the driver's thread stopped: {e:#}");
                }
            })
            .context("starting the driver's thread")?;
        Ok((Worker { calls }, stopped))
    }

    /// The driver's answer to `req`, once the calls before it are done.
    pub async fn call(&self, req: PluginCall) -> Response {
        let (answer, answered) = oneshot::channel();
        let stopped = driver::failure(
            500,
            &format!("{}: the driver's thread has stopped", req.call),
        );
        if self.calls.send((req, answer)).await.is_err() {
            return stopped;
        }
        answered.await.unwrap_or(stopped)
    }
}

fn run(store: Store, mut queue: mpsc::Receiver<Call>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the driver's runtime")?;
    runtime.block_on(async {
        let mut driver = Driver::new(store).await;
        let mut tick = tokio::time::interval(MAINTAIN_EVERY);
        let mut follow = tokio::time::interval(FOLLOW_EVERY);
        loop {
            tokio::select! {
                call = queue.recv() => {
                    let Some((req, answer)) = call else { break };
                    // The caller may have gone (its deadline); nothing to do then.
                    let _ = answer.send(driver.call(&req).await);
                }
                _ = tick.tick() => maintain(&driver).await,
                _ = follow.tick() => driver.follow_clusters().await,
            }
        }
    });
    Ok(())
}

/// One pass of `network::maintain` over the plugin's networks.
async fn maintain(driver: &Driver) {
    let networks = match driver.store().networks() {
        Ok(networks) => networks,
        Err(e) => return log::warn!("listing Docker networks: {e:#}"),
    };
    for net in networks {
        if let Err(e) = driver.maintained(&net.name).await {
            log::warn!("maintaining network {}: {e:#}", net.name);
        }
    }
}
