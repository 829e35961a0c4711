//! Claiming a subnet of the pool, and keeping it. A claim is one etcd
//! transaction, so two hosts never hold one subnet: the record and the
//! reservation are created only if both are absent, or, for the host's own
//! subnet, only if the reservation names this node.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use etcd_client::{
    Client, Compare, CompareOp, GetOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn,
    TxnOp,
};

use super::record::{self, GRACE_TTLS, SubnetRecord};
use ipnet::Ipv4Net;

use crate::config::Cluster;

/// A subnet held, with the two leases that hold it.
pub struct Claim {
    pub subnet: Ipv4Net,
    record_lease: i64,
    reserve_lease: i64,
}

/// Claims a subnet for `me`: `recorded` (the state's) first, then the one
/// etcd still reserves for this node, then the lowest free one.
pub async fn claim(
    client: &mut Client,
    cluster: &Cluster,
    me: &SubnetRecord,
    recorded: Option<Ipv4Net>,
) -> Result<Claim> {
    let ttl = i64::try_from(cluster.lease_ttl_secs)?;
    let record_lease = client
        .lease_grant(ttl, None)
        .await
        .context("granting the subnet's lease")?
        .id();
    let reserve_lease = client
        .lease_grant(ttl * (1 + i64::try_from(GRACE_TTLS)?), None)
        .await
        .context("granting the reservation's lease")?
        .id();
    let value = serde_json::to_string(me)?;
    let reserved_prefix = record::reserved_prefix(cluster.pool);
    let reservations = client
        .get(
            reserved_prefix.as_str(),
            Some(GetOptions::new().with_prefix()),
        )
        .await
        .context("reading the reservations")?;
    let mut own = recorded.into_iter().collect::<Vec<_>>();
    let mut taken = Vec::new();
    for kv in reservations.kvs() {
        let subnet = record::subnet_of(&reserved_prefix, kv.key())?;
        if kv.value() == cluster.node.as_bytes() {
            own.push(subnet);
        } else {
            taken.push(subnet);
        }
    }
    let put = |subnet: Ipv4Net| {
        let part = record::key_part(subnet);
        [
            TxnOp::put(
                format!("{}{part}", record::subnets_prefix(cluster.pool)),
                value.clone(),
                Some(PutOptions::new().with_lease(record_lease)),
            ),
            TxnOp::put(
                format!("{reserved_prefix}{part}"),
                cluster.node.clone(),
                Some(PutOptions::new().with_lease(reserve_lease)),
            ),
        ]
    };
    let reserve_key = |subnet| format!("{reserved_prefix}{}", record::key_part(subnet));
    let record_key = |subnet| {
        format!(
            "{}{}",
            record::subnets_prefix(cluster.pool),
            record::key_part(subnet)
        )
    };
    for subnet in own.iter().copied().filter(|s| cluster.holds(*s)) {
        let mine = Txn::new()
            .when([Compare::value(
                reserve_key(subnet),
                CompareOp::Equal,
                cluster.node.clone(),
            )])
            .and_then(put(subnet));
        if client.txn(mine).await?.succeeded() {
            return Ok(Claim {
                subnet,
                record_lease,
                reserve_lease,
            });
        }
    }
    let candidates = own
        .iter()
        .copied()
        .filter(|s| cluster.holds(*s))
        .chain(cluster.subnets().filter(|s| !taken.contains(s)));
    for subnet in candidates {
        let free = Txn::new()
            .when([
                Compare::create_revision(reserve_key(subnet), CompareOp::Equal, 0),
                Compare::create_revision(record_key(subnet), CompareOp::Equal, 0),
            ])
            .and_then(put(subnet));
        if client.txn(free).await?.succeeded() {
            return Ok(Claim {
                subnet,
                record_lease,
                reserve_lease,
            });
        }
    }
    // Nothing granted is left behind for etcd to time out.
    for lease in [record_lease, reserve_lease] {
        let _ = client.lease_revoke(lease).await;
    }
    bail!(
        "cluster.pool: no free /{} subnet left in {}",
        cluster.subnet_len,
        cluster.pool
    )
}

/// Gives `subnet` back at once, if this node holds it: the leases of its
/// record and its reservation revoked, and the keys with them (the other
/// members withdraw its routes as the record goes).
pub async fn give_back(client: &mut Client, cluster: &Cluster, subnet: Ipv4Net) -> Result<()> {
    let part = record::key_part(subnet);
    let mut leases = Vec::with_capacity(2);
    let reserved = client
        .get(
            format!("{}{part}", record::reserved_prefix(cluster.pool)),
            None,
        )
        .await
        .context("reading the subnet's reservation")?;
    leases.extend(
        reserved
            .kvs()
            .iter()
            .filter(|kv| kv.value() == cluster.node.as_bytes())
            .map(|kv| kv.lease()),
    );
    let records = client
        .get(
            format!("{}{part}", record::subnets_prefix(cluster.pool)),
            None,
        )
        .await
        .context("reading the subnet's record")?;
    leases.extend(
        records
            .kvs()
            .iter()
            .filter(|kv| {
                serde_json::from_slice::<SubnetRecord>(kv.value())
                    .is_ok_and(|rec| rec.node == cluster.node)
            })
            .map(|kv| kv.lease()),
    );
    for lease in leases.into_iter().filter(|&lease| lease != 0) {
        client
            .lease_revoke(lease)
            .await
            .with_context(|| format!("revoking lease {lease:x}"))?;
    }
    Ok(())
}

/// Whether `e`, from starting the keep-alives, says a lease has ended (its
/// subnet must be claimed again), rather than that etcd is away.
pub fn ended(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<etcd_client::Error>(),
            Some(etcd_client::Error::LeaseKeepAliveError(_))
        )
    })
}

/// Keeps a claim's leases alive.
pub struct KeepAlive {
    keepers: Vec<(LeaseKeeper, LeaseKeepAliveStream)>,
    pub interval: Duration,
}

impl Claim {
    /// Gives the subnet back at once (both leases revoked); failures are
    /// left to the leases' end.
    pub async fn release(self, client: &mut Client) {
        for lease in [self.record_lease, self.reserve_lease] {
            if let Err(e) = client.lease_revoke(lease).await {
                log::debug!("revoking lease {lease:x}: {e}");
            }
        }
    }

    pub async fn keep_alive(&self, client: &mut Client, cluster: &Cluster) -> Result<KeepAlive> {
        let mut keepers = Vec::with_capacity(2);
        for lease in [self.record_lease, self.reserve_lease] {
            keepers.push(
                client
                    .lease_keep_alive(lease)
                    .await
                    .context("keeping the subnet's lease alive")?,
            );
        }
        Ok(KeepAlive {
            keepers,
            // Three tries before the lease would end.
            interval: Duration::from_millis(cluster.lease_ttl_secs * 1000 / 3),
        })
    }
}

impl KeepAlive {
    /// Renews both leases once: false if etcd says one has ended (then the
    /// subnet must be claimed again), an error if it cannot be reached.
    pub async fn renew(&mut self) -> Result<bool> {
        for (keeper, stream) in &mut self.keepers {
            keeper.keep_alive().await.context("renewing a lease")?;
            let answer = stream
                .message()
                .await
                .context("renewing a lease")?
                .context("etcd closed the keep-alive stream")?;
            if answer.ttl() <= 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
