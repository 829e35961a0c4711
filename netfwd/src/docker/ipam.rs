//! netfwd as Docker's IPAM driver, for a network whose subnet a cluster
//! leases (`--ipam-driver netfwd --ipam-opt cluster=FILE`). Docker asks its
//! IPAM for the pool before it asks the network driver for the network, so
//! the lease is taken here: `RequestPool` reads the cluster file, starts the
//! cluster agent (`cluster::join`: claim, keep alive, follow) and answers
//! with the subnet it holds; `RequestAddress` hands out its addresses;
//! `ReleasePool`, the last call of `docker network rm`, gives the subnet
//! back. The driver binds the network it makes on the pool (`bind`), whose
//! peers then follow the members (`follow`). Each pool is recorded
//! (`store`), so a restarted plugin claims the same subnets first.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fs::OpenOptions,
    io::Read as _,
    net::Ipv4Addr,
    os::unix::fs::OpenOptionsExt as _,
    path::Path,
    time::Duration,
};

use anyhow::{Context as _, Result};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    protocol::{
        AddressGranted, PoolGranted, ReleaseAddress, ReleasePool, RequestAddress, RequestPool,
    },
    store::Store,
};
use crate::{
    cluster::{self, Agent},
    config::{self, Cluster, ClusterFile, Peer},
    input_error,
    name::NetworkName,
    netns::{self, Here, NetnsId},
    network as lib,
    subnet::{self, Subnet as _},
};

/// The `--ipam-opt` that names the cluster file.
const CLUSTER_OPTION: &str = "cluster";
/// Docker's `RequestPool` data key for the gateway, and its
/// `RequestAddress` option that asks for it.
const GATEWAY: &str = "com.docker.network.gateway";
const REQUEST_ADDRESS_TYPE: &str = "RequestAddressType";
/// Largest cluster file read: a `[cluster]` table is a few hundred bytes.
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Longest wait for a subnet in `RequestPool`, inside Docker's 30 s for a
/// plugin call: etcd unreachable is an error then, not a hang.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(15);

/// What the plugin keeps of a pool it leased.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PoolRecord {
    pub subnet: Ipv4Net,
    /// The cluster file as it was read (its path is never used again).
    pub file: ClusterFile,
    /// The addresses handed out, besides the gateway.
    pub addresses: BTreeSet<Ipv4Addr>,
    /// The netfwd network Docker made on the pool, once made.
    pub network: Option<NetworkName>,
    /// The plugin's namespace: the store is the machine's, and only a
    /// plugin there holds the pool again.
    pub host_netns: NetnsId,
    pub host_netns_cookie: u64,
}

impl PoolRecord {
    /// A cluster member's gateway: its subnet's first host address.
    fn gateway(&self) -> Result<Ipv4Addr> {
        self.subnet
            .hosts()
            .next()
            .with_context(|| format!("{} has no host address", self.subnet))
    }
}

/// A pool held: its record, its cluster and the agent that holds it.
struct Pool {
    record: PoolRecord,
    cluster: Cluster,
    agent: Agent,
}

#[derive(Default)]
pub struct Ipam {
    pools: HashMap<Ipv4Net, Pool>,
}

impl Ipam {
    /// The pools recorded in this namespace, each subnet claimed again
    /// first (with etcd away, held on until it is back).
    pub async fn restore(store: &Store) -> Ipam {
        let mut ipam = Ipam::default();
        let records = match own_pools(store) {
            Ok(records) => records,
            Err(e) => {
                log::error!("reading the cluster pools: {e:#}");
                return ipam;
            }
        };
        for record in records {
            let subnet = record.subnet;
            if let Err(e) = ipam.resume(record).await {
                log::error!("cluster pool {subnet}: {e:#}");
            }
        }
        ipam
    }

    async fn resume(&mut self, record: PoolRecord) -> Result<()> {
        let cluster = config::validate_cluster_file(&record.file)?;
        let agent = cluster::join(&cluster, &record.file.network.lan, Some(record.subnet)).await?;
        if agent.subnet != record.subnet {
            let other = agent.subnet;
            agent.release(&cluster).await?;
            anyhow::bail!(
                "now another host's (this one was offered {other}): its containers are unreachable from the cluster until the network is made again"
            );
        }
        log::info!("cluster pool {} resumed", record.subnet);
        self.hold(record, cluster, agent);
        Ok(())
    }

    /// `RequestPool`: a subnet leased from the cluster `--ipam-opt
    /// cluster=FILE` names.
    pub async fn request_pool(&mut self, store: &Store, req: &RequestPool) -> Result<Value> {
        if req.v6 {
            return Err(input_error!("--ipv6: a cluster leases IPv4 subnets only"));
        }
        let options = req.options.clone().unwrap_or_default();
        let path = options.get(CLUSTER_OPTION).ok_or_else(|| {
            input_error!(
                "--ipam-opt cluster=FILE: netfwd's IPAM leases subnets from a cluster only (for a subnet of your own, leave --ipam-driver out)"
            )
        })?;
        if let Some(other) = options.keys().find(|k| *k != CLUSTER_OPTION) {
            return Err(input_error!(
                "--ipam-opt {other}: not an option of netfwd's IPAM (cluster=FILE)"
            ));
        }
        if !req.pool.is_empty() {
            return Err(input_error!(
                "--subnet: with --ipam-opt cluster the subnet is leased from cluster.pool; leave --subnet out"
            ));
        }
        if !req.sub_pool.is_empty() {
            return Err(input_error!(
                "--ip-range: with --ipam-opt cluster the whole leased subnet is the range; leave it out"
            ));
        }
        let text = read_cluster_file(path)?;
        let (file, cluster) =
            config::parse_cluster_file(&text).map_err(|e| input_error!("{path}: {e:#}"))?;
        if let Some(held) = self.pools.values().find(|p| p.cluster.pool == cluster.pool) {
            return Err(input_error!(
                "{path}: cluster.pool {} already gives this host {} for another Docker network: one network per pool on a host",
                cluster.pool,
                held.record.subnet
            ));
        }
        let agent = tokio::time::timeout(
            CLAIM_TIMEOUT,
            cluster::join(&cluster, &file.network.lan, None),
        )
        .await
        .map_err(|_| anyhow::anyhow!("{path}: no subnet from etcd in {CLAIM_TIMEOUT:?}"))??;
        let here = Here::current()?;
        let record = PoolRecord {
            subnet: agent.subnet,
            file,
            addresses: BTreeSet::new(),
            network: None,
            host_netns: here.id,
            host_netns_cookie: here.cookie,
        };
        let answer = PoolGranted {
            pool_id: record.subnet.to_string(),
            pool: record.subnet.to_string(),
            data: BTreeMap::from([(
                GATEWAY.to_owned(),
                format!("{}/{}", record.gateway()?, record.subnet.prefix_len()),
            )]),
        };
        if let Err(e) = store.save_pool(&record) {
            agent.release(&cluster).await?;
            return Err(e);
        }
        self.hold(record, cluster, agent);
        Ok(json!(answer))
    }

    /// `ReleasePool`: the subnet given back, its record gone.
    pub async fn release_pool(&mut self, store: &Store, req: &ReleasePool) -> Result<Value> {
        let subnet = pool_id(&req.pool_id)?;
        if let Some(pool) = self.pools.remove(&subnet) {
            store.remove_pool(subnet)?;
            pool.agent.release(&pool.cluster).await?;
        } else if own_pools(store)?.iter().any(|p| p.subnet == subnet) {
            // Recorded, but not held again after a restart.
            store.remove_pool(subnet)?;
        }
        Ok(json!({}))
    }

    /// `RequestAddress`: the gateway, the address asked for, or the lowest
    /// free one.
    pub fn request_address(&mut self, store: &Store, req: &RequestAddress) -> Result<Value> {
        let subnet = pool_id(&req.pool_id)?;
        let pool = self.pool_mut(subnet)?;
        let record = &mut pool.record;
        let gateway = record.gateway()?;
        let asked = match req.address.as_str() {
            "" => None,
            text => Some(
                text.parse::<Ipv4Addr>()
                    .map_err(|_| input_error!("Address: {text:?} is not an IPv4 address"))?,
            ),
        };
        let for_gateway = req
            .options
            .as_ref()
            .and_then(|o| o.get(REQUEST_ADDRESS_TYPE))
            .is_some_and(|t| t == GATEWAY);
        let address = if for_gateway {
            match asked {
                Some(ip) if ip != gateway => {
                    return Err(input_error!(
                        "--gateway: a cluster network's gateway is its subnet's first address, {gateway}; leave --gateway out"
                    ));
                }
                _ => gateway,
            }
        } else {
            let ip = match asked {
                Some(ip) => {
                    if !subnet.is_host(ip) || ip == gateway || record.addresses.contains(&ip) {
                        return Err(input_error!("--ip: {ip} is not a free address of {subnet}"));
                    }
                    ip
                }
                None => subnet
                    .hosts()
                    .find(|ip| *ip != gateway && !record.addresses.contains(ip))
                    .ok_or_else(|| input_error!("{subnet}: no free address left"))?,
            };
            record.addresses.insert(ip);
            store.save_pool(record)?;
            ip
        };
        Ok(json!(AddressGranted {
            address: format!("{address}/{}", subnet.prefix_len()),
            data: BTreeMap::new(),
        }))
    }

    /// `ReleaseAddress`: the address free again (the gateway is never
    /// taken).
    pub fn release_address(&mut self, store: &Store, req: &ReleaseAddress) -> Result<Value> {
        let subnet = pool_id(&req.pool_id)?;
        let Some(pool) = self.pools.get_mut(&subnet) else {
            return Ok(json!({}));
        };
        let ip: Ipv4Addr = req
            .address
            .split_once('/')
            .map_or(req.address.as_str(), |(ip, _)| ip)
            .parse()
            .map_err(|_| input_error!("Address: {:?} is not an IPv4 address", req.address))?;
        if pool.record.addresses.remove(&ip) {
            store.save_pool(&pool.record)?;
        }
        Ok(json!({}))
    }

    /// The cluster file of a pool this IPAM leased, for the network Docker
    /// makes on it.
    pub fn cluster_file(&self, subnet: Ipv4Net) -> Option<&ClusterFile> {
        self.pools.get(&subnet).map(|p| &p.record.file)
    }

    /// The other members' subnets, as the pool's agent last read them.
    pub fn peers(&mut self, subnet: Ipv4Net) -> Vec<Peer> {
        self.pools
            .get_mut(&subnet)
            .map(|p| p.agent.cluster_peers(&p.cluster))
            .unwrap_or_default()
    }

    /// Records that network `name` is made on the pool: its peers follow
    /// the members from now on.
    pub fn bind(&mut self, store: &Store, subnet: Ipv4Net, name: &NetworkName) -> Result<()> {
        let pool = self.pool_mut(subnet)?;
        pool.record.network = Some(name.clone());
        store.save_pool(&pool.record)
    }

    /// Network `name` is removed: its pool, if any, routes nothing.
    pub fn unbind(&mut self, store: &Store, name: &NetworkName) -> Result<()> {
        for pool in self.pools.values_mut() {
            if pool.record.network.as_ref() == Some(name) {
                pool.record.network = None;
                store.save_pool(&pool.record)?;
            }
        }
        Ok(())
    }

    /// Routes what the members changed to for every network made on a
    /// pool, as `netfwd daemon` does for its own.
    pub async fn follow(&mut self) {
        for pool in self.pools.values_mut() {
            let Some(name) = &pool.record.network else {
                continue;
            };
            if !pool.agent.changed() {
                continue;
            }
            let peers = pool.agent.cluster_peers(&pool.cluster);
            let count = peers.len();
            match lib::set_peers(name, peers).await {
                Ok(true) => log::info!("{name}: cluster: now routing {count} peer subnets"),
                Ok(false) => {}
                Err(e) => log::warn!("{name}: cluster: routing the members: {e:#}"),
            }
        }
    }

    fn hold(&mut self, record: PoolRecord, cluster: Cluster, agent: Agent) {
        self.pools.insert(
            record.subnet,
            Pool {
                record,
                cluster,
                agent,
            },
        );
    }

    fn pool_mut(&mut self, subnet: Ipv4Net) -> Result<&mut Pool> {
        self.pools
            .get_mut(&subnet)
            .ok_or_else(|| input_error!("PoolID: {subnet} is not a pool of netfwd's IPAM"))
    }
}

/// The pools the store records for a plugin in this namespace. Records of
/// a namespace that is gone (a plugin's that never gave its pools back) are
/// removed on the way: their leases ended with it.
fn own_pools(store: &Store) -> Result<Vec<PoolRecord>> {
    let here = Here::current()?;
    let mut own = Vec::new();
    for pool in store.pools()? {
        if here.is(pool.host_netns, Some(pool.host_netns_cookie)) {
            own.push(pool);
        } else if !netns::is_alive(pool.host_netns, Some(pool.host_netns_cookie))? {
            store.remove_pool(pool.subnet)?;
        }
    }
    Ok(own)
}

/// A pool ID as this IPAM gives them: its subnet.
fn pool_id(id: &str) -> Result<Ipv4Net> {
    subnet::parse(id).map_err(|e| input_error!("PoolID: {e}"))
}

/// The cluster file at `path`, which a user gave a root process: an
/// absolute path to a regular file of at most [`MAX_FILE_BYTES`], opened
/// without waiting (a FIFO is refused, not waited on) and checked on the
/// descriptor read, so nothing can swap it in between.
fn read_cluster_file(path: &str) -> Result<String> {
    let field = "--ipam-opt cluster";
    if !Path::new(path).is_absolute() {
        return Err(input_error!("{field}: {path:?} is not an absolute path"));
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(|e| input_error!("{field}: {path}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| input_error!("{field}: {path}: {e}"))?;
    if !meta.is_file() {
        return Err(input_error!("{field}: {path} is not a regular file"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(input_error!(
            "{field}: {path} is larger than {MAX_FILE_BYTES} bytes: not a cluster file"
        ));
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| input_error!("{field}: {path}: {e}"))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_file_path_must_be_an_absolute_regular_small_file() {
        for (path, says) in [
            ("cluster.toml", "not an absolute path"),
            ("/nonexistent/cluster.toml", "No such file"),
            ("/proc/self", "not a regular file"),
        ] {
            let err = format!("{:#}", read_cluster_file(path).unwrap_err());
            assert!(err.contains(says), "{path}: {err}");
        }
    }

    #[test]
    fn a_pool_id_is_a_subnet() {
        assert_eq!(
            pool_id("10.200.1.0/24").unwrap().to_string(),
            "10.200.1.0/24"
        );
        for bad in ["../../etc", "10.200.1.1/24", ""] {
            assert!(pool_id(bad).is_err(), "{bad}");
        }
    }
}
