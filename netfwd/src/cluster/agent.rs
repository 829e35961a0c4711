//! The cluster agent in the daemon: it claims the host's subnet, keeps the
//! lease alive and follows the other members, in a task of its own that
//! only talks to etcd. What it learns goes out on a channel; the daemon
//! programs it (`network::set_peers`), so the datapath always holds the
//! last-known routes. etcd unreachable or without quorum: the agent retries
//! with back-off, says so once, and on its return reads the members whole
//! before watching again.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use etcd_client::{Client, WatchStream};
use tokio::sync::{oneshot, watch};

use super::{
    etcd,
    lease::{self, Claim, KeepAlive},
    members::{Members, read_members},
    record::SubnetRecord,
};
use ipnet::Ipv4Net;

use crate::{
    config::{Cluster, Member, Network, Peer},
    netlink::Netlink,
    state::State,
};

const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Longest wait for one renewal of the leases.
const RENEW_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for a session's start: connected, claimed, read, watching.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A member that has its subnet; its thread follows the others until the
/// agent is dropped.
pub struct Agent {
    pub subnet: Ipv4Net,
    /// The members as last read; `None` until etcd has been read once.
    members: watch::Receiver<Option<Members>>,
    /// Dropped with the agent: its thread stops.
    stop: oneshot::Sender<()>,
    /// Completes when the thread has stopped.
    stopped: oneshot::Receiver<()>,
}

/// The member's network on the subnet it holds, with the other members'
/// subnets it last knew of as peers (the datapath keeps them until etcd says
/// otherwise), and its agent.
pub async fn start(member: &Member) -> Result<(Network, Agent)> {
    let recorded = State::load(&member.name)?
        .map(|st| st.network)
        .filter(|net| member.cluster.holds(net.subnet));
    let agent = join(
        &member.cluster,
        member.lan(),
        recorded.as_ref().map(|net| net.subnet),
    )
    .await?;
    let mut net = member.network(agent.subnet)?;
    if let Some(recorded) = recorded.filter(|r| r.subnet == agent.subnet) {
        net.peers.extend(
            recorded
                .peers
                .into_iter()
                .filter(|p| member.cluster.routes(p)),
        );
    }
    Ok((net, agent))
}

impl Agent {
    /// Waits for the members to change, then says what the peers of `net`
    /// should be: its own `[[peer]]`s and every other member's subnet.
    pub async fn changed_peers(&mut self, member: &Member) -> Result<Vec<Peer>> {
        self.members
            .changed()
            .await
            .context("the cluster agent stopped")?;
        let mut peers = member.network(self.subnet)?.peers;
        peers.extend(self.cluster_peers(&member.cluster));
        Ok(peers)
    }

    /// Whether the members changed since [`Agent::cluster_peers`] last read
    /// them.
    pub fn changed(&self) -> bool {
        self.members.has_changed().unwrap_or(false)
    }

    /// The other members' subnets as peers, as last read (none before etcd
    /// has been read once).
    pub fn cluster_peers(&mut self, cluster: &Cluster) -> Vec<Peer> {
        let Some(members) = self.members.borrow_and_update().clone() else {
            return Vec::new();
        };
        let (peers, refused) = members.peers(&cluster.node, cluster.backend);
        if !refused.is_empty() {
            log::warn!(
                "cluster: not routing {} (another backend than ours, {}): every member of a pool must use one",
                refused.join(", "),
                cluster.backend
            );
        }
        peers
    }

    /// Stops following and gives the subnet back at once (its record and
    /// reservation gone), for a network that is removed rather than
    /// restarted. With etcd away, its leases end by themselves.
    pub async fn release(self, cluster: &Cluster) -> Result<()> {
        let Agent {
            subnet,
            stop,
            stopped,
            ..
        } = self;
        drop(stop);
        // Nothing of the thread's renews or claims the subnet after this.
        let _ = stopped.await;
        let mut failure = None;
        for endpoint in 0..cluster.etcd.len() {
            let given_back = async {
                let mut client = etcd::connect(cluster, endpoint).await?;
                lease::give_back(&mut client, cluster, subnet).await
            };
            match given_back.await {
                Ok(()) => {
                    log::info!("cluster: node {} gave back {subnet}", cluster.node);
                    return Ok(());
                }
                Err(e) => failure = Some(e),
            }
        }
        Err(failure.unwrap_or_else(|| anyhow::anyhow!("no etcd endpoint")))
            .with_context(|| format!("giving back {subnet} (its leases end by themselves)"))
    }
}

/// Claims this host's subnet (`recorded`, the state's, first) and starts
/// following the members, on a thread and runtime of the agent's own: the
/// daemon's thread blocks for seconds at a time (loading programs, waiting
/// for the state lock), and a keep-alive must never wait for it. With etcd
/// unreachable it retries, unless the host has a recorded subnet: then it
/// goes on with that one, and claims it when etcd is back. `lan` is the
/// interface whose address the other members reach this host at.
pub async fn join(cluster: &Cluster, lan: &str, recorded: Option<Ipv4Net>) -> Result<Agent> {
    let host = Netlink::current()?;
    let link = host
        .link_by_name(lan)
        .await?
        .with_context(|| format!("network.lan: no interface {lan}"))?;
    let lan_addr = host
        .ipv4_addresses(link.index)
        .await?
        .first()
        .map(|a| a.addr())
        .with_context(|| format!("network.lan: {lan} has no IPv4 address to be reached at"))?;
    let me = SubnetRecord {
        node: cluster.node.clone(),
        lan_addr,
        backend: cluster.backend,
    };
    let (claimed_tx, claimed) = oneshot::channel();
    let (tx, members) = watch::channel(None);
    let (stop, stop_rx) = oneshot::channel::<()>();
    let (stopped_tx, stopped) = oneshot::channel::<()>();
    let cluster = cluster.clone();
    std::thread::Builder::new()
        .name("cluster-agent".to_owned())
        .spawn(move || {
            // Dropped when the thread ends, however it ends.
            let _stopped = stopped_tx;
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = claimed_tx.send(Err(anyhow::Error::from(e)));
                    return;
                }
            };
            runtime.block_on(async move {
                tokio::select! {
                    () = agent(cluster, me, recorded, claimed_tx, tx) => {}
                    _ = stop_rx => {}
                }
            });
        })
        .context("starting the cluster agent's thread")?;
    let subnet = claimed
        .await
        .context("the cluster agent stopped before it claimed a subnet")??;
    Ok(Agent {
        subnet,
        members,
        stop,
        stopped,
    })
}

/// The agent's thread: claim, say which subnet, then follow for ever.
async fn agent(
    cluster: Cluster,
    me: SubnetRecord,
    recorded: Option<Ipv4Net>,
    claimed_tx: oneshot::Sender<Result<Ipv4Net>>,
    tx: watch::Sender<Option<Members>>,
) {
    let mut backoff = Backoff::new();
    let (client, claim) = loop {
        match claim_once(&cluster, &me, recorded, backoff.endpoint).await {
            Ok((client, claim)) => break (Some(client), Some(claim)),
            Err(e) if crate::error::is_input_error(&e) => {
                let _ = claimed_tx.send(Err(e));
                return;
            }
            Err(e) => {
                backoff.failed(&e);
                if recorded.is_some() {
                    break (None, None);
                }
                backoff.wait().await;
            }
        }
    };
    let Some(subnet) = claim.as_ref().map(|c| c.subnet).or(recorded) else {
        return;
    };
    log::info!(
        "cluster: node {} holds {subnet} of {}",
        me.node,
        cluster.pool
    );
    if claimed_tx.send(Ok(subnet)).is_err() {
        return;
    }
    let follower = Follower {
        cluster,
        me,
        subnet,
        claim,
        backoff,
        tx,
    };
    follower.run(client).await;
}

async fn claim_once(
    cluster: &Cluster,
    me: &SubnetRecord,
    recorded: Option<Ipv4Net>,
    endpoint: usize,
) -> Result<(Client, Claim)> {
    let mut client = etcd::connect(cluster, endpoint).await?;
    let claim = lease::claim(&mut client, cluster, me, recorded).await?;
    Ok((client, claim))
}

/// Back-off between attempts, the one log line per outage, and which etcd
/// endpoint to try: the next one after each failure (a member cut off or
/// without quorum is left for another), the same one while it works.
struct Backoff {
    next: Duration,
    said: bool,
    endpoint: usize,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: MIN_BACKOFF,
            said: false,
            endpoint: 0,
        }
    }

    fn failed(&mut self, e: &anyhow::Error) {
        self.endpoint = self.endpoint.wrapping_add(1);
        if !self.said {
            log::warn!(
                "cluster: etcd: {e:#}; keeping the last-known routes and retrying (said once)"
            );
            self.said = true;
        }
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(MAX_BACKOFF);
    }

    fn recovered(&mut self) {
        if self.said {
            log::info!("cluster: etcd is back: reading the members again");
        }
        *self = Backoff {
            endpoint: self.endpoint,
            ..Backoff::new()
        };
    }
}

struct Follower {
    cluster: Cluster,
    me: SubnetRecord,
    subnet: Ipv4Net,
    /// The leases held; `None` when they must be claimed again (never
    /// claimed, or ended while etcd was away).
    claim: Option<Claim>,
    backoff: Backoff,
    tx: watch::Sender<Option<Members>>,
}

impl Follower {
    /// Connects, claims the subnet again if its lease ended, and reads the
    /// members whole; then the renewals and the watch can start.
    async fn start_session(
        &mut self,
        client: Option<Client>,
    ) -> Result<(KeepAlive, Members, WatchStream)> {
        let mut client = match client {
            Some(client) => client,
            None => etcd::connect(&self.cluster, self.backoff.endpoint).await?,
        };
        let cluster = &self.cluster;
        if self.claim.is_none() {
            let claim = lease::claim(&mut client, cluster, &self.me, Some(self.subnet)).await?;
            if claim.subnet != self.subnet {
                claim.release(&mut client).await;
                bail!(
                    "{} is now another host's: its endpoints are unreachable from the cluster",
                    self.subnet
                );
            }
            self.claim = Some(claim);
        }
        let claim = self.claim.as_ref().context("no claim")?;
        let keep_alive = match claim.keep_alive(&mut client, cluster).await {
            Ok(keep_alive) => keep_alive,
            Err(e) => {
                if lease::ended(&e) {
                    self.claim = None;
                }
                return Err(e);
            }
        };
        let members = read_members(&mut client, cluster.pool).await?;
        let stream = members.watch(&mut client, cluster.pool).await?;
        Ok((keep_alive, members, stream))
    }

    async fn run(mut self, mut client: Option<Client>) {
        loop {
            let e = self.session(client.take()).await;
            self.backoff.failed(&e);
            self.backoff.wait().await;
        }
    }

    /// Connects, holds the subnet and follows the members until something
    /// fails; returns why.
    async fn session(&mut self, client: Option<Client>) -> anyhow::Error {
        match self.follow(client).await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn follow(&mut self, client: Option<Client>) -> Result<std::convert::Infallible> {
        // Each step has its request timeout, but a stream's first answer
        // does not: the whole start is bounded.
        let (mut keep_alive, mut members, mut stream) =
            match tokio::time::timeout(START_TIMEOUT, self.start_session(client)).await {
                Ok(started) => started?,
                Err(_) => bail!("no answer in {START_TIMEOUT:?}"),
            };
        self.backoff.recovered();
        self.tx.send_replace(Some(members.clone()));
        let mut renew = tokio::time::interval(keep_alive.interval);
        loop {
            tokio::select! {
                _ = renew.tick() => {
                    match tokio::time::timeout(RENEW_TIMEOUT, keep_alive.renew()).await {
                        Ok(Ok(true)) => {}
                        Ok(Ok(false)) => {
                            self.claim = None;
                            bail!("the subnet's lease ended while etcd was away");
                        }
                        Ok(Err(e)) => return Err(e),
                        Err(_) => bail!("renewing the leases: no answer in {RENEW_TIMEOUT:?}"),
                    }
                }
                changed = members.follow(&mut stream, self.cluster.pool) => {
                    if changed? {
                        self.tx.send_replace(Some(members.clone()));
                    }
                }
            }
        }
    }
}
