//! `netfwd daemon -c FILE [--gc-interval SECS]`: brings the network up, then
//! keeps it (see `network::maintain`), logging one line per thing it does.
//! With `[cluster]` it is the cluster agent too: it leases the subnet
//! first, and routes the other members as they come and go (`cluster`).
//! SIGTERM or SIGINT stops it and leaves the network up: programs and maps
//! are pinned, so traffic never depends on the daemon, and a restarted
//! daemon adopts the state as it finds it.

use std::{net::SocketAddr, path::Path, time::Duration};

use anyhow::{Context as _, Result};
use nix::sys::signal::{SigSet, Signal};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cluster::{self, Agent},
    config::{self, Config, Member, Peer},
    metrics, network,
};

/// The cluster's next word on the peers; never, for a network of its own.
async fn changed_peers(member: &mut Option<(Member, Agent)>) -> Result<Vec<Peer>> {
    match member {
        Some((member, agent)) => agent.changed_peers(member).await,
        None => std::future::pending().await,
    }
}

/// Longest pause between two passes.
const MAX_INTERVAL_SECS: u64 = 5;

pub async fn exec(
    config_path: &Path,
    gc_interval: Option<u64>,
    metrics_addr: Option<SocketAddr>,
) -> Result<()> {
    // A cluster member claims its subnet first (retrying while etcd is
    // away; nothing is made meanwhile, so the default SIGTERM is right).
    let (net, mut member) = match config::load_config(config_path)? {
        Config::Network(net) => (net, None),
        Config::Member(member) => {
            let (net, agent) = cluster::start(&member).await?;
            (net, Some((member, agent)))
        }
    };
    // A SIGTERM or SIGINT while `up` runs waits for it to finish, then stops
    // the daemon cleanly: neither kills it half-way (the default action) nor
    // interrupts the syscalls `up` makes (a handled signal made a program
    // load retry for ever).
    let stop_signals = SigSet::from_iter([Signal::SIGTERM, Signal::SIGINT]);
    stop_signals
        .thread_block()
        .context("holding SIGTERM and SIGINT")?;
    // As often as the kernel's sweep walks the NAT table (`NatSweep::interval_ns`).
    let shortest = u64::from(net.nat.timeouts.shortest());
    let secs = gc_interval.unwrap_or((shortest / 2).clamp(1, MAX_INTERVAL_SECS));
    if secs == 0 {
        return Err(crate::input_error!(
            "--gc-interval: must be at least 1 second"
        ));
    }
    // Bound before `up`, so a taken address changes nothing.
    let metrics_listener = match metrics_addr {
        Some(addr) => Some(metrics::bind(addr).await?),
        None => None,
    };
    let report = network::up(&net).await?;
    log::info!(
        "network {} is up: {} endpoints, uplink {}",
        net.name,
        report.endpoints.len(),
        net.uplink.as_deref().unwrap_or("none")
    );
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    // One that came meanwhile is delivered now, to the handlers.
    stop_signals
        .thread_unblock()
        .context("releasing SIGTERM and SIGINT")?;
    if let Some(listener) = metrics_listener {
        log::info!(
            "serving metrics on http://{}/metrics",
            listener.local_addr()?
        );
        tokio::spawn(metrics::serve(
            listener,
            metrics::Scope::Network(net.name.clone()),
        ));
    }
    let mut tick = tokio::time::interval(Duration::from_secs(secs));
    let mut ready = false;
    // The kernel expires NAT flows; the daemon tells how many, as they go.
    let mut flows_expired_before = None;
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            peers = changed_peers(&mut member) => match peers {
                Ok(peers) => {
                    let count = peers.len();
                    match network::set_peers(&net.name, peers).await {
                        Ok(true) => log::info!("cluster: now routing {count} peer subnets"),
                        Ok(false) => {}
                        Err(e) => log::warn!("cluster: routing the members: {e:#}"),
                    }
                }
                Err(e) => {
                    log::warn!("cluster: {e:#}");
                    member = None;
                }
            },
            _ = tick.tick() => match network::maintain(&net.name).await {
                Ok(done) => {
                    // The line that says the daemon does all it is for:
                    // supervisors and tests wait for it, not for `up`'s
                    // result, which a previous `up` may have made already.
                    if !ready {
                        log::info!("ready: first maintenance pass done, next every {secs} s");
                        ready = true;
                    }
                    if let (Some(before), Some(now)) = (flows_expired_before, done.flows_expired)
                        && now > before
                    {
                        log::info!("the kernel removed {} expired NAT flows", now - before);
                    }
                    flows_expired_before = done.flows_expired.or(flows_expired_before);
                    if let Some(addrs) = done.uplink_addrs {
                        log::info!("uplink address is now {addrs}");
                    }
                    for ip in done.endpoints_gone {
                        log::info!("attached endpoint {ip} is gone; removed it");
                    }
                }
                Err(e) => log::warn!("maintaining network {}: {e:#}", net.name),
            },
        }
    }
    log::info!("stopping; network {} stays up", net.name);
    Ok(())
}
