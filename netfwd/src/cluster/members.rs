//! The members of a network as etcd has them: every live subnet record,
//! read whole and then followed through a watch from the revision read.

use std::collections::HashMap;

use anyhow::{Context as _, Result, bail};
use etcd_client::{Client, EventType, GetOptions, WatchOptions, WatchStream};
use serde::Serialize;

use super::record::{self, SubnetRecord};
use ipnet::Ipv4Net;

use crate::config::{Backend, Peer};

/// Every live subnet record, and the etcd revision they are as of.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Members {
    pub subnets: HashMap<Ipv4Net, SubnetRecord>,
    /// The etcd lease each record lives on.
    pub leases: HashMap<Ipv4Net, i64>,
    pub revision: i64,
}

/// Reads every record of `pool`.
pub async fn read_members(client: &mut Client, pool: Ipv4Net) -> Result<Members> {
    let prefix = record::subnets_prefix(pool);
    let got = client
        .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
        .await
        .context("reading the subnet records")?;
    let mut members = Members {
        revision: got.header().map_or(0, |h| h.revision()),
        ..Members::default()
    };
    for kv in got.kvs() {
        match parse(&prefix, kv.key(), kv.value()) {
            Ok((subnet, rec)) => {
                members.subnets.insert(subnet, rec);
                members.leases.insert(subnet, kv.lease());
            }
            Err(e) => log::warn!("ignoring a subnet record: {e:#}"),
        }
    }
    Ok(members)
}

fn parse(prefix: &str, key: &[u8], value: &[u8]) -> Result<(Ipv4Net, SubnetRecord)> {
    let subnet = record::subnet_of(prefix, key)?;
    let rec = serde_json::from_slice(value).with_context(|| format!("{subnet}'s record"))?;
    Ok((subnet, rec))
}

impl Members {
    /// The other members' subnets as peers, for a member of `backend`:
    /// their LAN address the next hop (`direct`) or the tunnel's far end
    /// (`vxlan`). Members of another backend are not routed (a direct
    /// member has no tunnel, and a vxlan member's LAN may be no next hop):
    /// they come second, by node name.
    pub fn peers(&self, own_node: &str, backend: Backend) -> (Vec<Peer>, Vec<&str>) {
        let (ours, others): (Vec<_>, Vec<_>) = self
            .subnets
            .iter()
            .filter(|(_, rec)| rec.node != own_node)
            .partition(|(_, rec)| rec.backend == backend);
        let mut peers = ours
            .into_iter()
            .map(|(subnet, rec)| Peer {
                subnet: (*subnet).into(),
                via: rec.lan_addr.into(),
                tunnel: backend == Backend::Vxlan,
            })
            .collect::<Vec<_>>();
        peers.sort_by_key(|p| p.subnet.addr());
        let mut refused: Vec<&str> = others
            .into_iter()
            .map(|(_, rec)| rec.node.as_str())
            .collect();
        refused.sort_unstable();
        (peers, refused)
    }

    /// Starts following the records from just past the revision read.
    pub async fn watch(&self, client: &mut Client, pool: Ipv4Net) -> Result<WatchStream> {
        client
            .watch(
                record::subnets_prefix(pool),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(self.revision + 1),
                ),
            )
            .await
            .context("watching the subnet records")
    }

    /// Applies the watch's next message; false if it changed nothing.
    pub async fn follow(&mut self, stream: &mut WatchStream, pool: Ipv4Net) -> Result<bool> {
        let prefix = record::subnets_prefix(pool);
        let message = stream
            .message()
            .await
            .context("watching the subnet records")?
            .context("etcd ended the watch")?;
        if message.canceled() {
            bail!("etcd cancelled the watch: {}", message.cancel_reason());
        }
        let before = self.subnets.clone();
        for event in message.events() {
            let Some(kv) = event.kv() else { continue };
            self.revision = self.revision.max(kv.mod_revision());
            match event.event_type() {
                EventType::Put => match parse(&prefix, kv.key(), kv.value()) {
                    Ok((subnet, rec)) => {
                        self.subnets.insert(subnet, rec);
                        self.leases.insert(subnet, kv.lease());
                    }
                    Err(e) => log::warn!("ignoring a subnet record: {e:#}"),
                },
                EventType::Delete => {
                    if let Ok(subnet) = record::subnet_of(&prefix, kv.key()) {
                        self.subnets.remove(&subnet);
                        self.leases.remove(&subnet);
                    }
                }
            }
        }
        Ok(before != self.subnets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_other_members_are_peers_through_their_lan_address_lowest_first() {
        let record = |node: &str, last: u8, backend| SubnetRecord {
            node: node.to_owned(),
            lan_addr: std::net::Ipv4Addr::new(192, 0, 2, last),
            backend,
        };
        let mut members = Members::default();
        for (subnet, node, last, backend) in [
            ("10.200.2.0/24", "c", 13, Backend::Direct),
            ("10.200.0.0/24", "a", 11, Backend::Direct),
            ("10.200.1.0/24", "b", 12, Backend::Direct),
            ("10.200.3.0/24", "d", 14, Backend::Vxlan),
        ] {
            members
                .subnets
                .insert(subnet.parse().unwrap(), record(node, last, backend));
        }
        let (peers, refused) = members.peers("b", Backend::Direct);
        assert_eq!(refused, ["d"]);
        assert!(peers.iter().all(|p| !p.tunnel));
        let shown: Vec<String> = peers
            .iter()
            .map(|p| format!("{} via {}", p.subnet, p.via))
            .collect();
        assert_eq!(
            shown,
            [
                "10.200.0.0/24 via 192.0.2.11",
                "10.200.2.0/24 via 192.0.2.13"
            ]
        );
        let (peers, refused) = members.peers("d", Backend::Vxlan);
        assert!(peers.is_empty());
        assert_eq!(refused, ["a", "b", "c"]);
        let (peers, _) = members.peers("a", Backend::Vxlan);
        assert_eq!(
            peers,
            [Peer {
                subnet: "10.200.3.0/24".parse().unwrap(),
                via: std::net::Ipv4Addr::new(192, 0, 2, 14).into(),
                tunnel: true,
            }]
        );
    }
}
