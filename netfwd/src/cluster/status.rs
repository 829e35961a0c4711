//! What `netfwd cluster status` shows: the members as etcd has them (node,
//! subnet, LAN address, backend, the seconds left on each lease) and the
//! routes this host has in force, which it keeps when etcd is away.

use std::net::Ipv4Addr;

use anyhow::Result;
use serde::Serialize;

use super::{etcd, members::read_members, record::SubnetRecord};
use ipnet::Ipv4Net;

use crate::{
    config::{Backend, Member, Peer},
    state::State,
};

#[derive(Debug, Serialize)]
pub struct ClusterStatus {
    pub network: String,
    pub node: String,
    pub pool: Ipv4Net,
    pub backend: Backend,
    pub lease_ttl: u64,
    /// The subnet this host holds, as its state records it.
    pub subnet: Option<Ipv4Net>,
    /// The members, lowest subnet first; empty when etcd is unreachable.
    pub hosts: Vec<HostStatus>,
    /// Why `hosts` is empty, if etcd could not be read.
    pub etcd_error: Option<String>,
    /// The other members' subnets this host routes now.
    pub routes: Vec<Peer>,
    /// The VXLAN device (`backend = "vxlan"`), once the network is up.
    pub tunnel: Option<TunnelStatus>,
}

#[derive(Debug, Serialize)]
pub struct TunnelStatus {
    pub device: String,
    pub vni: u32,
    pub port: u16,
}

#[derive(Debug, Serialize)]
pub struct HostStatus {
    pub node: String,
    pub subnet: Ipv4Net,
    pub lan_addr: Ipv4Addr,
    pub backend: Backend,
    /// Seconds until its lease ends unless renewed.
    pub lease_ttl_left: Option<i64>,
}

pub async fn status(member: &Member) -> Result<ClusterStatus> {
    let recorded = State::load(&member.name)?.map(|st| st.network);
    let routes = recorded
        .as_ref()
        .map(|net| {
            net.peers
                .iter()
                .filter(|p| member.cluster.routes(p))
                .copied()
                .collect()
        })
        .unwrap_or_default();
    let tunnel = recorded.as_ref().and_then(|net| {
        net.vxlan.map(|v| TunnelStatus {
            device: net.vxlan_ifname(),
            vni: v.vni,
            port: v.port,
        })
    });
    let (hosts, etcd_error) = match hosts(member).await {
        Ok(hosts) => (hosts, None),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    };
    Ok(ClusterStatus {
        network: member.name.to_string(),
        node: member.cluster.node.clone(),
        pool: member.cluster.pool,
        backend: member.cluster.backend,
        lease_ttl: member.cluster.lease_ttl_secs,
        subnet: recorded.map(|net| net.subnet),
        hosts,
        etcd_error,
        routes,
        tunnel,
    })
}

/// The members, through the first etcd endpoint that answers.
async fn hosts(member: &Member) -> Result<Vec<HostStatus>> {
    let mut failure = None;
    for endpoint in 0..member.cluster.etcd.len() {
        match hosts_through(member, endpoint).await {
            Ok(hosts) => return Ok(hosts),
            Err(e) => failure = Some(e),
        }
    }
    Err(failure.unwrap_or_else(|| anyhow::anyhow!("no etcd endpoint")))
}

async fn hosts_through(member: &Member, endpoint: usize) -> Result<Vec<HostStatus>> {
    let mut client = etcd::connect(&member.cluster, endpoint).await?;
    let members = read_members(&mut client, member.cluster.pool).await?;
    let mut hosts = Vec::with_capacity(members.subnets.len());
    for (
        subnet,
        SubnetRecord {
            node,
            lan_addr,
            backend,
        },
    ) in members.subnets
    {
        let lease_ttl_left = match members.leases.get(&subnet) {
            Some(&lease) if lease != 0 => Some(client.lease_time_to_live(lease, None).await?.ttl()),
            _ => None,
        };
        hosts.push(HostStatus {
            node,
            subnet,
            lan_addr,
            backend,
            lease_ttl_left,
        });
    }
    hosts.sort_by_key(|h| h.subnet.addr());
    Ok(hosts)
}
