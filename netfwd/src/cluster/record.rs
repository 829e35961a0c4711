//! What the cluster keeps in etcd, per pool (`P`, such as `10.200.0.0-16`:
//! the pool is the address space the members share, whatever each host
//! names its network):
//!
//! - `/netfwd/P/subnets/10.200.1.0-24` → [`SubnetRecord`] (JSON), on the
//!   holder's lease (`lease_ttl`): the subnet is routed while it lives;
//! - `/netfwd/P/reserved/10.200.1.0-24` → the holder's node name, on a
//!   second lease of `(1 + GRACE_TTLS) × lease_ttl`: nobody else claims the
//!   subnet until it ends, so a host that comes back gets its own again.

use std::net::Ipv4Addr;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use ipnet::Ipv4Net;

use crate::config::Backend;

/// How many lease TTLs a gone host's subnet stays reserved for it after
/// its routes are withdrawn.
pub const GRACE_TTLS: u64 = 2;

/// A member's subnet record: how its endpoints are reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetRecord {
    pub node: String,
    /// The host's address on its LAN: the next hop (`direct`) or the
    /// tunnel's far end (`vxlan`).
    pub lan_addr: Ipv4Addr,
    pub backend: Backend,
}

pub fn subnets_prefix(pool: Ipv4Net) -> String {
    format!("/netfwd/{}/subnets/", key_part(pool))
}

pub fn reserved_prefix(pool: Ipv4Net) -> String {
    format!("/netfwd/{}/reserved/", key_part(pool))
}

/// `10.200.1.0/24` as a key's last part: `10.200.1.0-24`.
pub fn key_part(subnet: Ipv4Net) -> String {
    format!("{}-{}", subnet.addr(), subnet.prefix_len())
}

/// The subnet a key under `prefix` names.
pub fn subnet_of(prefix: &str, key: &[u8]) -> Result<Ipv4Net> {
    let key = std::str::from_utf8(key).context("a key that is not UTF-8")?;
    let part = key
        .strip_prefix(prefix)
        .with_context(|| format!("{key}: not under {prefix}"))?;
    let (addr, len) = part
        .split_once('-')
        .with_context(|| format!("{key}: not ADDR-LEN"))?;
    crate::subnet::parse(&format!("{addr}/{len}")).map_err(|e| anyhow::anyhow!("{key}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_its_subnet_both_ways() {
        let pool: Ipv4Net = "10.200.0.0/16".parse().unwrap();
        let subnet: Ipv4Net = "10.200.1.0/24".parse().unwrap();
        let key = format!("{}{}", subnets_prefix(pool), key_part(subnet));
        assert_eq!(key, "/netfwd/10.200.0.0-16/subnets/10.200.1.0-24");
        assert_eq!(
            subnet_of(&subnets_prefix(pool), key.as_bytes()).unwrap(),
            subnet
        );
        let host_bits = b"/netfwd/10.200.0.0-16/subnets/10.200.1.1-24";
        assert!(subnet_of(&subnets_prefix(pool), host_bits).is_err());
    }
}
