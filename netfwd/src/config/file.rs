//! The config file as the user writes it: TOML sections with every field as
//! written (strings for addresses, options for defaults). Unknown keys are an
//! error, so a misspelt field never falls back silently to its default.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::model::{Backend, Kind, Mode, Proto};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub network: NetworkSection,
    #[serde(default, rename = "endpoint")]
    pub endpoints: Vec<EndpointSection>,
    pub nat: Option<NatSection>,
    #[serde(default, rename = "peer")]
    pub peers: Vec<PeerSection>,
    #[serde(default, rename = "allow")]
    pub allows: Vec<AllowSection>,
    #[serde(default, rename = "publish")]
    pub publishes: Vec<PublishSection>,
    pub cluster: Option<ClusterSection>,
}

/// A Docker network's cluster file (`--ipam-opt cluster=FILE`): a config's
/// `[cluster]` table, and of its `[network]` only the LAN, which Docker's
/// options do not give. Everything else of the network comes from Docker.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub network: ClusterFileNetwork,
    pub cluster: ClusterSection,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFileNetwork {
    /// The interface the other members are reached on.
    pub lan: String,
}

/// The network's subnet leased from a pool shared through etcd, and the
/// other members' subnets routed (see docs/cluster.md).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// etcd's client URLs (`http://…:2379`, or `https://…` with `ca`).
    pub etcd: Vec<String>,
    /// PEM files for TLS to etcd: the CA that signed etcd's certificate,
    /// and a client certificate and key if etcd asks for one.
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Where every member's subnet comes from, such as "10.200.0.0/16".
    pub pool: String,
    pub subnet_len: Option<u8>,
    /// This host's name in the cluster (default: the hostname).
    pub node: Option<String>,
    pub backend: Option<Backend>,
    /// Seconds a member's lease outlives its last keep-alive.
    pub lease_ttl: Option<u64>,
    /// `backend = "vxlan"` only: the VXLAN network identifier (default 1)
    /// and UDP port (default 4789) every member uses.
    pub vni: Option<u32>,
    pub vxlan_port: Option<u16>,
}

/// A host port forwarded to an endpoint (Docker's `-p host_port:port`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSection {
    pub proto: Proto,
    pub host_port: u16,
    /// The endpoint's netns name.
    pub endpoint: String,
    pub port: u16,
    /// "0.0.0.0" (default): every address; "127.0.0.1": the host only
    /// (Docker's `-p 127.0.0.1:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

/// Opens this network to another netfwd network of the host.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AllowSection {
    pub network: String,
}

/// Another host's endpoint subnet, reached through the LAN without NAT.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSection {
    pub subnet: String,
    pub via: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    pub name: String,
    /// Absent with `[cluster]`, which leases it.
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    /// The IPv6 prefix of a dual-stack network, and its gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<String>,
    /// `false`: the IPv6 prefix is routed out of the uplink untranslated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat6: Option<bool>,
    pub mtu: Option<u32>,
    pub uplink: Option<String>,
    pub kind: Option<Kind>,
    pub lan: Option<String>,
    pub icc: Option<bool>,
    pub host_cgroup: Option<PathBuf>,
    pub mode: Option<Mode>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NatSection {
    pub port_min: Option<u16>,
    pub port_max: Option<u16>,
    pub max_flows: Option<u32>,
    pub max_unreplied_share: Option<u8>,
    #[serde(default)]
    pub timeouts: TimeoutsSection,
}

/// Idle timeouts in seconds; each defaults to `Timeouts::default()`'s.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsSection {
    pub tcp_syn: Option<u32>,
    pub tcp_established: Option<u32>,
    pub tcp_closing: Option<u32>,
    pub udp: Option<u32>,
    pub icmp: Option<u32>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSection {
    pub netns: String,
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<String>,
}
