//! The TOML config, in four parts: the file format the user writes (`file`),
//! the validated network netfwd runs on (`model`), the pure validation from
//! one to the other, which runs before anything is changed and names the
//! field in every error (`validate`, and `ipv6` for a dual-stack network's
//! IPv6), and interface naming (`ifname`).

mod file;
mod ifname;
mod ipv6;
mod model;
mod validate;

pub use file::{
    AllowSection, ClusterFile, ClusterFileNetwork, ClusterSection, ConfigFile, EndpointSection,
    NatSection, NetworkSection, PeerSection, PublishSection, TimeoutsSection,
};
pub use ifname::{Slot, ifname_prefixes, validate_ifname};
pub use ipv6::lowest_free_ip6;
pub use model::{
    Backend, Cluster, ClusterTls, Endpoint, Ipv6Network, Kind, Mode, NatSettings, Network, Peer,
    Proto, Published, Timeouts, VXLAN_OVERHEAD, Vxlan, every_address, host_ip,
};
pub use validate::{
    Config, DEFAULT_LEASE_TTL_SECS, DEFAULT_MTU, DEFAULT_SUBNET_LEN, MAX_LEASE_TTL_SECS,
    MAX_NAT_FLOWS, MAX_PREFIX_LEN, MIN_LEASE_TTL_SECS, MIN_PREFIX_LEN, Member, load, load_config,
    parse, parse_cluster_file, parse_config, validate, validate_cluster_file, validate_config,
    validate_netns_name,
};
