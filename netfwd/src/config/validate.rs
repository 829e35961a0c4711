//! From the config file to the validated network. Validation is pure: it runs
//! before anything is changed, and every error is one line that names the
//! field.

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr},
    path::Path,
};

use anyhow::{Context as _, Result};

use super::{
    file::{
        AllowSection, ClusterFile, ClusterSection, ConfigFile, EndpointSection, NatSection,
        PeerSection, PublishSection,
    },
    ifname::{Slot, validate_ifname},
    ipv6,
    model::{
        Backend, Cluster, ClusterTls, Endpoint, NatSettings, Network, Peer, Published, Timeouts,
        VXLAN_OVERHEAD, Vxlan, host_ip,
    },
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::{
    input_error,
    name::NetworkName,
    subnet::{self, Subnet as _},
};

/// Widest subnet: host-side veths are named by the endpoint's host offset in
/// four hex digits.
pub const MIN_PREFIX_LEN: u8 = 16;
/// Narrowest subnet: room for a gateway and one endpoint.
pub const MAX_PREFIX_LEN: u8 = 30;
/// Default MTU of both ends of every veth.
pub const DEFAULT_MTU: u32 = 1500;
/// Most NAT flows a network may hold (two map entries each).
pub const MAX_NAT_FLOWS: u32 = 1 << 22;

/// Shortest `cluster.lease_ttl`: etcd's own floor for a lease is about
/// this (one and a half election timeouts at its defaults).
pub const MIN_LEASE_TTL_SECS: u64 = 2;
/// Longest `cluster.lease_ttl`: the issue's bound on how long a gone host's
/// routes may stay.
pub const MAX_LEASE_TTL_SECS: u64 = 60;
/// Default `cluster.vni`.
pub const DEFAULT_VNI: u32 = 1;
/// Largest VNI: VXLAN's identifier has 24 bits.
pub const MAX_VNI: u32 = (1 << 24) - 1;
/// Default `cluster.vxlan_port`: IANA's VXLAN port.
pub const DEFAULT_VXLAN_PORT: u16 = 4789;
/// Default `cluster.lease_ttl`.
pub const DEFAULT_LEASE_TTL_SECS: u64 = 20;
/// Default `cluster.subnet_len`.
pub const DEFAULT_SUBNET_LEN: u8 = 24;

/// A config file, validated: a network of its own, or a cluster member's,
/// whose subnet the cluster leases.
#[derive(Clone, Debug)]
pub enum Config {
    Network(Network),
    Member(Member),
}

impl Config {
    pub fn name(&self) -> &NetworkName {
        match self {
            Config::Network(net) => &net.name,
            Config::Member(member) => &member.name,
        }
    }
}

/// A cluster member's network: everything validated (against a trial subnet
/// of the pool) but its subnet, which the cluster leases.
#[derive(Clone, Debug)]
pub struct Member {
    pub name: NetworkName,
    pub cluster: Cluster,
    file: Box<ConfigFile>,
}

impl Member {
    /// The interface the other members are reached on (checked present).
    pub fn lan(&self) -> &str {
        self.file.network.lan.as_deref().unwrap_or_default()
    }

    /// The network on `subnet`, a subnet of the pool leased to this host.
    /// With the VXLAN backend its endpoints' MTU defaults to what fits in
    /// the tunnel over a 1500-byte LAN.
    pub fn network(&self, subnet: Ipv4Net) -> Result<Network> {
        let mut net = network_on(&self.file, subnet, true)?;
        net.vxlan = self.cluster.vxlan;
        if net.vxlan.is_some() && self.file.network.mtu.is_none() {
            net.mtu = DEFAULT_MTU - VXLAN_OVERHEAD;
        }
        Ok(net)
    }
}

/// Reads and validates a config file that writes its subnet (`up`'s).
pub fn load(path: &Path) -> Result<Network> {
    match load_config(path)? {
        Config::Network(net) => Ok(net),
        Config::Member(_) => Err(input_error!(
            "{}: cluster: the subnet is leased from the cluster: `netfwd daemon -c FILE` brings the network up",
            path.display()
        )),
    }
}

/// Reads and validates a config file, with or without `[cluster]`.
pub fn load_config(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))
        .map_err(|e| input_error!("{e:#}"))?;
    parse_config(&text).map_err(|e| input_error!("{}: {e:#}", path.display()))
}

/// Parses and validates config text that writes its subnet.
pub fn parse(text: &str) -> Result<Network> {
    match parse_config(text)? {
        Config::Network(net) => Ok(net),
        Config::Member(_) => Err(input_error!(
            "cluster: the subnet is leased from the cluster, not brought up by hand"
        )),
    }
}

/// Parses and validates config text, with or without `[cluster]`.
pub fn parse_config(text: &str) -> Result<Config> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
    validate_config(file)
}

/// Parses and validates a Docker network's cluster file: its cluster, and
/// the table as written (which `validate_config` takes again, in the
/// network Docker asks for).
pub fn parse_cluster_file(text: &str) -> Result<(ClusterFile, Cluster)> {
    let file: ClusterFile = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
    let cluster = validate_cluster_file(&file)?;
    Ok((file, cluster))
}

/// Validates a Docker network's cluster file as parsed.
pub fn validate_cluster_file(file: &ClusterFile) -> Result<Cluster> {
    validate_ifname("network.lan", &file.network.lan)?;
    validate_cluster(&file.cluster)
}

/// Validates a config, with or without `[cluster]`.
pub fn validate_config(file: ConfigFile) -> Result<Config> {
    let Some(section) = &file.cluster else {
        return validate(&file).map(Config::Network);
    };
    let cluster = validate_cluster(section)?;
    for (field, written) in [
        ("network.subnet", file.network.subnet.is_some()),
        ("network.gateway", file.network.gateway.is_some()),
    ] {
        if written {
            return Err(input_error!(
                "{field}: leased from cluster.pool with [cluster]; leave it out"
            ));
        }
    }
    if file.network.subnet6.is_some() {
        return Err(input_error!(
            "network.subnet6: a cluster leases IPv4 subnets only (IPv6 across hosts is not built yet)"
        ));
    }
    if let Some(i) = file.endpoints.iter().position(|e| e.ip.is_some()) {
        return Err(input_error!(
            "endpoint[{i}].ip: addresses come from the subnet the cluster leases; leave it out"
        ));
    }
    if file.network.lan.is_none() {
        return Err(input_error!(
            "network.lan: a cluster member needs the interface the other members are reached on"
        ));
    }
    if let Some(i) = file
        .peers
        .iter()
        .position(|p| subnet::parse::<Ipv4Net>(&p.subnet).is_ok_and(|s| s.overlaps(&cluster.pool)))
    {
        return Err(input_error!(
            "peer[{i}].subnet: overlaps cluster.pool {}, whose subnets the cluster routes",
            cluster.pool
        ));
    }
    // Everything else is checked now, on the pool's first subnet: the leased
    // one differs only in its addresses.
    let trial = cluster
        .subnets()
        .next()
        .ok_or_else(|| input_error!("cluster.pool: {} has no subnet", cluster.pool))?;
    let net = network_on(&file, trial, true)?;
    Ok(Config::Member(Member {
        name: net.name,
        cluster,
        file: Box::new(file),
    }))
}

/// A TOML error on one line: "line 3: unknown field `nmae`, expected ...".
fn toml_error(text: &str, err: &toml::de::Error) -> anyhow::Error {
    let message = err.message().replace('\n', " ");
    match err.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            input_error!("line {line}: {message}")
        }
        None => input_error!("{message}"),
    }
}

/// Validates a config without `[cluster]`.
pub fn validate(file: &ConfigFile) -> Result<Network> {
    if file.cluster.is_some() {
        return Err(input_error!("cluster: not taken here"));
    }
    let subnet: Ipv4Net = file
        .network
        .subnet
        .as_deref()
        .ok_or_else(|| input_error!("network.subnet: missing (or lease it with [cluster])"))
        .and_then(|s| subnet::parse(s).map_err(|e| input_error!("network.subnet: {e}")))?;
    network_on(file, subnet, false)
}

/// The network `file` describes on `subnet` (written, or leased when
/// `leased`: then the peers must not overlap the pool either, checked by the
/// caller).
fn network_on(file: &ConfigFile, subnet: Ipv4Net, leased: bool) -> Result<Network> {
    let net = &file.network;
    let name = NetworkName::parse("network.name", &net.name)?;
    let subnet_field = if leased {
        "cluster.subnet_len"
    } else {
        "network.subnet"
    };
    if !(MIN_PREFIX_LEN..=MAX_PREFIX_LEN).contains(&subnet.prefix_len()) {
        return Err(input_error!(
            "{subnet_field}: prefix length must be {MIN_PREFIX_LEN} to {MAX_PREFIX_LEN}, got {}",
            subnet.prefix_len()
        ));
    }
    let gateway = match &net.gateway {
        Some(gw) => {
            let gw = parse_ip("network.gateway", gw)?;
            if !subnet.is_host(gw) {
                return Err(input_error!(
                    "network.gateway: {gw} is not a host address of subnet {subnet}"
                ));
            }
            gw
        }
        None => subnet.hosts().next().ok_or_else(|| {
            input_error!("{subnet_field}: {subnet} has no host address for a gateway")
        })?,
    };
    let mtu = net.mtu.unwrap_or(DEFAULT_MTU);
    if !(576..=65535).contains(&mtu) {
        return Err(input_error!("network.mtu: {mtu} is not within 576..=65535"));
    }
    let (ipv6, ip6s) = ipv6::validate(net, &file.endpoints)?;
    let mut endpoints = validate_endpoints(&file.endpoints, subnet, gateway)?;
    for (endpoint, ip6) in endpoints.iter_mut().zip(ip6s) {
        endpoint.ip6 = ip6;
    }
    if let Some(uplink) = &net.uplink {
        validate_ifname("network.uplink", uplink)?;
    }
    let nat = match (&file.nat, &net.uplink) {
        (Some(_), None) => {
            return Err(input_error!("nat: NAT needs an uplink (network.uplink)"));
        }
        (Some(section), Some(_)) => validate_nat(section)?,
        (None, _) => NatSettings::default(),
    };
    if let Some(lan) = &net.lan {
        validate_ifname("network.lan", lan)?;
    }
    if !file.publishes.is_empty() && net.uplink.is_none() {
        return Err(input_error!("publish: published ports need network.uplink"));
    }
    let endpoints_by_netns: Vec<(String, Ipv4Addr)> =
        endpoints.iter().map(|e| (e.netns.clone(), e.ip)).collect();
    let peers = validate_peers(&file.peers, subnet, ipv6.map(|v6| v6.subnet))?;
    Ok(Network {
        name,
        subnet,
        gateway,
        ipv6,
        mtu,
        endpoints,
        uplink: net.uplink.clone(),
        nat,
        kind: net.kind.unwrap_or_default(),
        lan: net.lan.clone(),
        peers,
        icc: net.icc.unwrap_or(true),
        allow: validate_allows(&file.allows)?,
        published: validate_publishes(&file.publishes, &endpoints_by_netns, nat)?,
        host_cgroup: net.host_cgroup.clone(),
        mode: net.mode.unwrap_or_default(),
        vxlan: None,
    })
}

fn validate_cluster(section: &ClusterSection) -> Result<Cluster> {
    if section.etcd.is_empty() {
        return Err(input_error!("cluster.etcd: give etcd's client URLs"));
    }
    let tls = match (&section.ca, &section.cert, &section.key) {
        (None, None, None) => None,
        (Some(ca), None, None) => Some(ClusterTls {
            ca: ca.clone(),
            identity: None,
        }),
        (Some(ca), Some(cert), Some(key)) => Some(ClusterTls {
            ca: ca.clone(),
            identity: Some((cert.clone(), key.clone())),
        }),
        (None, _, _) => {
            return Err(input_error!(
                "cluster.ca: a client certificate needs the CA that signed etcd's"
            ));
        }
        (Some(_), _, _) => {
            return Err(input_error!(
                "cluster.cert: give both cert and key, or neither"
            ));
        }
    };
    let scheme = if tls.is_some() { "https://" } else { "http://" };
    for (i, url) in section.etcd.iter().enumerate() {
        let Some(rest) = url.strip_prefix(scheme) else {
            return Err(input_error!(
                "cluster.etcd[{i}]: {url:?} must start with {scheme} ({})",
                if tls.is_some() {
                    "TLS is on: cluster.ca is given"
                } else {
                    "TLS is off: give cluster.ca to turn it on"
                }
            ));
        };
        let port_ok = rest.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !port_ok || rest.contains('/') {
            return Err(input_error!(
                "cluster.etcd[{i}]: {url:?} is not {scheme}HOST:PORT"
            ));
        }
    }
    let pool: Ipv4Net =
        subnet::parse(&section.pool).map_err(|e| input_error!("cluster.pool: {e}"))?;
    let subnet_len = section.subnet_len.unwrap_or(DEFAULT_SUBNET_LEN);
    if !(MIN_PREFIX_LEN..=MAX_PREFIX_LEN).contains(&subnet_len) || subnet_len < pool.prefix_len() {
        return Err(input_error!(
            "cluster.subnet_len: {subnet_len} must be within {}..={MAX_PREFIX_LEN} (the pool's prefix length, at least {MIN_PREFIX_LEN})",
            pool.prefix_len().max(MIN_PREFIX_LEN)
        ));
    }
    let node = match &section.node {
        Some(node) => node.clone(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .context("reading the hostname for cluster.node")?
            .trim()
            .to_owned(),
    };
    let node_ok = !node.is_empty()
        && node.len() <= 64
        && node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !node_ok {
        return Err(input_error!(
            "cluster.node: {node:?} must be 1 to 64 letters, digits, '.', '-' or '_'"
        ));
    }
    let lease_ttl_secs = section.lease_ttl.unwrap_or(DEFAULT_LEASE_TTL_SECS);
    if !(MIN_LEASE_TTL_SECS..=MAX_LEASE_TTL_SECS).contains(&lease_ttl_secs) {
        return Err(input_error!(
            "cluster.lease_ttl: {lease_ttl_secs} is not within {MIN_LEASE_TTL_SECS}..={MAX_LEASE_TTL_SECS} seconds"
        ));
    }
    let backend = section.backend.unwrap_or_default();
    let vxlan = match backend {
        Backend::Vxlan => Some(validate_vxlan(section)?),
        Backend::Direct => {
            for (field, written) in [
                ("cluster.vni", section.vni.is_some()),
                ("cluster.vxlan_port", section.vxlan_port.is_some()),
            ] {
                if written {
                    return Err(input_error!(
                        "{field}: only with backend = \"vxlan\" (\"direct\" has no tunnel)"
                    ));
                }
            }
            None
        }
    };
    Ok(Cluster {
        etcd: section.etcd.clone(),
        tls,
        pool,
        subnet_len,
        node,
        backend,
        lease_ttl_secs,
        vxlan,
    })
}

fn validate_vxlan(section: &ClusterSection) -> Result<Vxlan> {
    let vni = section.vni.unwrap_or(DEFAULT_VNI);
    if !(1..=MAX_VNI).contains(&vni) {
        return Err(input_error!(
            "cluster.vni: {vni} is not within 1..={MAX_VNI} (24 bits)"
        ));
    }
    let port = section.vxlan_port.unwrap_or(DEFAULT_VXLAN_PORT);
    if port == 0 {
        return Err(input_error!("cluster.vxlan_port: 0 is no UDP port"));
    }
    Ok(Vxlan { vni, port })
}

/// Each `[[peer]]`: a subnet of either family, routed `via` an address of
/// the same; an IPv6 one needs the network's own IPv6 (`subnet6`).
fn validate_peers(peers: &[PeerSection], own: Ipv4Net, own6: Option<Ipv6Net>) -> Result<Vec<Peer>> {
    let mut valid: Vec<Peer> = Vec::with_capacity(peers.len());
    for (i, p) in peers.iter().enumerate() {
        let field = format!("peer[{i}].subnet");
        let (subnet, own): (IpNet, IpNet) = if p.subnet.contains(':') {
            let subnet: Ipv6Net =
                subnet::parse(&p.subnet).map_err(|e| input_error!("{field}: {e}"))?;
            let own6 = own6.ok_or_else(|| {
                input_error!("{field}: {subnet} is IPv6, and the network has no network.subnet6")
            })?;
            (subnet.into(), own6.into())
        } else {
            let subnet: Ipv4Net =
                subnet::parse(&p.subnet).map_err(|e| input_error!("{field}: {e}"))?;
            (subnet.into(), own.into())
        };
        if own.contains(&subnet) || subnet.contains(&own) {
            return Err(input_error!(
                "{field}: {subnet} overlaps the network's own subnet {own}"
            ));
        }
        if let Some(other) = valid
            .iter()
            .find(|o| o.subnet.contains(&subnet) || subnet.contains(&o.subnet))
        {
            return Err(input_error!(
                "{field}: {subnet} overlaps peer subnet {}",
                other.subnet
            ));
        }
        let via: IpAddr = p
            .via
            .parse()
            .map_err(|_| input_error!("peer[{i}].via: {:?} is not an IP address", p.via))?;
        if via.is_ipv6() != subnet.addr().is_ipv6() {
            return Err(input_error!(
                "peer[{i}].via: {via} is not of the family of its subnet {subnet} (one [[peer]] a family)"
            ));
        }
        if own.contains(&via) || subnet.contains(&via) {
            return Err(input_error!(
                "peer[{i}].via: {via} must be the other host's address on the LAN, not an endpoint address"
            ));
        }
        valid.push(Peer {
            subnet,
            via,
            tunnel: false,
        });
    }
    Ok(valid)
}

fn validate_nat(section: &NatSection) -> Result<NatSettings> {
    let defaults = NatSettings::default();
    let port_min = section.port_min.unwrap_or(defaults.port_min);
    let port_max = section.port_max.unwrap_or(defaults.port_max);
    if port_min == 0 {
        return Err(input_error!("nat.port_min: must be at least 1"));
    }
    if port_min > port_max {
        return Err(input_error!(
            "nat.port_min: {port_min} is above nat.port_max ({port_max})"
        ));
    }
    let max_flows = section.max_flows.unwrap_or(defaults.max_flows);
    if !(1..=MAX_NAT_FLOWS).contains(&max_flows) {
        return Err(input_error!(
            "nat.max_flows: {max_flows} is not within 1..={MAX_NAT_FLOWS}"
        ));
    }
    let max_unreplied_share = section
        .max_unreplied_share
        .unwrap_or(defaults.max_unreplied_share);
    if !(1..=100).contains(&max_unreplied_share) {
        return Err(input_error!(
            "nat.max_unreplied_share: {max_unreplied_share} is not a percentage within 1..=100"
        ));
    }
    let t = &section.timeouts;
    let d = Timeouts::default();
    let timeout = |field: &str, value: Option<u32>, default: u32| -> Result<u32> {
        match value.unwrap_or(default) {
            0 => Err(input_error!(
                "nat.timeouts.{field}: must be at least 1 second"
            )),
            secs => Ok(secs),
        }
    };
    Ok(NatSettings {
        port_min,
        port_max,
        max_flows,
        max_unreplied_share,
        timeouts: Timeouts {
            tcp_syn: timeout("tcp_syn", t.tcp_syn, d.tcp_syn)?,
            tcp_established: timeout("tcp_established", t.tcp_established, d.tcp_established)?,
            tcp_closing: timeout("tcp_closing", t.tcp_closing, d.tcp_closing)?,
            udp: timeout("udp", t.udp, d.udp)?,
            icmp: timeout("icmp", t.icmp, d.icmp)?,
        },
    })
}

fn validate_allows(allows: &[AllowSection]) -> Result<Vec<NetworkName>> {
    allows
        .iter()
        .enumerate()
        .map(|(i, a)| NetworkName::parse(&format!("allow[{i}].network"), &a.network))
        .collect()
}

fn validate_publishes(
    publishes: &[PublishSection],
    endpoints: &[(String, Ipv4Addr)],
    nat: NatSettings,
) -> Result<Vec<Published>> {
    let mut valid: Vec<Published> = Vec::with_capacity(publishes.len());
    for (i, p) in publishes.iter().enumerate() {
        let Some((_, ip)) = endpoints.iter().find(|(ns, _)| ns == &p.endpoint) else {
            return Err(input_error!(
                "publish[{i}].endpoint: no endpoint in netns {:?}",
                p.endpoint
            ));
        };
        if p.host_port == 0 || p.port == 0 {
            return Err(input_error!("publish[{i}].host_port: ports are 1 to 65535"));
        }
        if (nat.port_min..=nat.port_max).contains(&p.host_port) {
            return Err(input_error!(
                "publish[{i}].host_port: {} is inside the NAT port range {}-{}",
                p.host_port,
                nat.port_min,
                nat.port_max
            ));
        }
        if valid
            .iter()
            .any(|v| v.proto == p.proto && v.host_port == p.host_port)
        {
            return Err(input_error!(
                "publish[{i}].host_port: {} is published twice",
                p.host_port
            ));
        }
        let host_ip = host_ip(
            &format!("publish[{i}].host_ip"),
            p.host_ip.as_deref().unwrap_or(""),
        )?;
        valid.push(Published {
            proto: p.proto,
            host_port: p.host_port,
            ip: *ip,
            port: p.port,
            host_ip,
        });
    }
    Ok(valid)
}

/// Checks every endpoint and gives each one without an `ip` the lowest free
/// host address, in config order, so the same config always gives the same
/// addresses.
fn validate_endpoints(
    sections: &[EndpointSection],
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
) -> Result<Vec<Endpoint>> {
    let mut taken = HashSet::from([gateway]);
    let mut netns_seen = HashSet::new();
    let mut fixed = Vec::with_capacity(sections.len());
    for (i, ep) in sections.iter().enumerate() {
        validate_netns_name(&format!("endpoint[{i}].netns"), &ep.netns)?;
        if !netns_seen.insert(ep.netns.as_str()) {
            return Err(input_error!(
                "endpoint[{i}].netns: {:?} is listed twice",
                ep.netns
            ));
        }
        let ip = match &ep.ip {
            Some(ip) => Some(checked_endpoint_ip(i, ip, subnet, gateway, &mut taken)?),
            None => None,
        };
        fixed.push(ip);
    }
    let mut free = subnet.hosts().filter(|ip| !taken.contains(ip));
    sections
        .iter()
        .zip(fixed)
        .enumerate()
        .map(|(i, (ep, ip))| {
            let ip = match ip {
                Some(ip) => ip,
                None => free.next().ok_or_else(|| {
                    input_error!("endpoint[{i}].ip: subnet {subnet} has no free address left")
                })?,
            };
            Ok(Endpoint {
                netns: ep.netns.clone(),
                ip,
                ip6: None,
                slot: Slot::nth(i)?,
            })
        })
        .collect()
}

fn checked_endpoint_ip(
    i: usize,
    ip: &str,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    taken: &mut HashSet<Ipv4Addr>,
) -> Result<Ipv4Addr> {
    let field = format!("endpoint[{i}].ip");
    let ip = parse_ip(&field, ip)?;
    if !subnet.is_host(ip) {
        return Err(input_error!(
            "{field}: {ip} is not a host address of subnet {subnet}"
        ));
    }
    if ip == gateway {
        return Err(input_error!("{field}: {ip} is the gateway's address"));
    }
    if !taken.insert(ip) {
        return Err(input_error!("{field}: {ip} is assigned twice"));
    }
    Ok(ip)
}

/// What `ip netns add` accepts: a single path component (`/run/netns/<name>`).
pub fn validate_netns_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.len() > 255 {
        return Err(input_error!(
            "{field}: {name:?} is not a valid ip-netns name"
        ));
    }
    Ok(())
}

fn parse_ip(field: &str, s: &str) -> Result<Ipv4Addr> {
    s.parse()
        .map_err(|_| input_error!("{field}: {s:?} is not an IPv4 address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Kind,
        error::{EXIT_BAD_INPUT, exit_code},
    };

    const SEED001: &str = r#"
        [network]
        name = "demo"
        subnet = "192.168.28.0/24"
        gateway = "192.168.28.5"
        [[endpoint]]
        netns = "ns1"
        ip = "192.168.28.1"
        [[endpoint]]
        netns = "ns2"
        [[endpoint]]
        netns = "ns3"
    "#;

    fn err_of(text: &str) -> String {
        let err = parse(text).unwrap_err();
        assert_eq!(exit_code(&err), EXIT_BAD_INPUT, "{err:#}");
        let msg = format!("{err:#}");
        assert!(!msg.contains('\n'), "error is not one line: {msg}");
        msg
    }

    #[test]
    fn seed001_allocates_free_addresses_in_order() {
        let net = parse(SEED001).unwrap();
        let ips: Vec<String> = net.endpoints.iter().map(|e| e.ip.to_string()).collect();
        assert_eq!(ips, ["192.168.28.1", "192.168.28.2", "192.168.28.3"]);
        // Named in order, not by address.
        assert_eq!(net.host_ifname(net.endpoints[2].slot), "nfdemo-2");
        assert_eq!(net.mtu, DEFAULT_MTU);
    }

    #[test]
    fn gateway_defaults_to_first_host() {
        let net = parse("[network]\nname = \"a\"\nsubnet = \"172.18.0.0/16\"\n").unwrap();
        assert_eq!(net.gateway, Ipv4Addr::new(172, 18, 0, 1));
    }

    #[test]
    fn bad_input_names_the_field() {
        let base = "[network]\nname = \"demo\"\nsubnet = \"192.168.28.0/24\"\n";
        let cases = [
            (
                "[network]\nname = \"toolongname\"\nsubnet = \"10.0.0.0/24\"\n",
                "network.name",
            ),
            (
                "[network]\nname = \"Demo\"\nsubnet = \"10.0.0.0/24\"\n",
                "network.name",
            ),
            (
                &format!("{base}gateway = \"10.0.0.1\"\n"),
                "network.gateway",
            ),
            (
                &format!("{base}gateway = \"192.168.28.255\"\n"),
                "network.gateway",
            ),
            (
                "[network]\nname = \"d\"\nsubnet = \"10.0.0.0/8\"\n",
                "network.subnet",
            ),
            (
                "[network]\nname = \"d\"\nsubnet = \"10.0.0.1/24\"\n",
                "network.subnet",
            ),
            (
                &format!("{base}[[endpoint]]\nnetns = \"a\"\nip = \"192.168.29.3\"\n"),
                "endpoint[0].ip",
            ),
            (
                &format!(
                    "{base}[[endpoint]]\nnetns = \"a\"\nip = \"192.168.28.3\"\n[[endpoint]]\nnetns = \"b\"\nip = \"192.168.28.3\"\n"
                ),
                "endpoint[1].ip",
            ),
            (
                &format!("{base}[[endpoint]]\nnetns = \"a\"\nip = \"192.168.28.1\"\n"),
                "gateway",
            ),
            (
                &format!("{base}[[endpoint]]\nnetns = \"a/b\"\n"),
                "endpoint[0].netns",
            ),
            (
                &format!("{base}[[endpoint]]\nnetns = \"a\"\n[[endpoint]]\nnetns = \"a\"\n"),
                "endpoint[1].netns",
            ),
            (&format!("{base}nmae = 1\n"), "unknown field"),
            ("[network\nname = 1", "line 1"),
        ];
        for (text, needle) in cases {
            let msg = err_of(text);
            assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
        }
    }

    #[test]
    fn full_subnet_is_an_error() {
        let text = "[network]\nname = \"d\"\nsubnet = \"10.0.0.0/30\"\n[[endpoint]]\nnetns = \"a\"\n[[endpoint]]\nnetns = \"b\"\n";
        assert!(err_of(text).contains("no free address"));
    }

    #[test]
    fn nat_lan_and_peer_settings_are_validated() {
        let base = "[network]\nname = \"a\"\nsubnet = \"10.0.1.0/24\"\n";
        let cases = [
            (
                format!("{base}[nat]\nport_min = 100\n"),
                "nat: NAT needs an uplink",
            ),
            (
                format!("{base}uplink = \"up0\"\n[nat]\nport_min = 62000\nport_max = 61000\n"),
                "nat.port_min",
            ),
            (
                format!("{base}uplink = \"up0\"\n[nat.timeouts]\nudp = 0\n"),
                "nat.timeouts.udp",
            ),
            (format!("{base}uplink = \"a/b\"\n"), "network.uplink"),
            (
                format!("{base}lan = \"waytoolonginterface\"\n"),
                "network.lan",
            ),
            (
                format!("{base}[[peer]]\nsubnet = \"10.0.0.0/16\"\nvia = \"192.0.2.12\"\n"),
                "peer[0].subnet",
            ),
            (
                format!("{base}[[peer]]\nsubnet = \"10.0.2.0/24\"\nvia = \"10.0.2.9\"\n"),
                "peer[0].via",
            ),
            (format!("{base}kind = \"mesh\"\n"), "line 4"),
            (
                format!("{base}[[allow]]\nnetwork = \"Bad-Name\"\n"),
                "allow[0].network",
            ),
        ];
        for (text, field) in cases {
            let msg = err_of(&text);
            assert!(msg.contains(field), "{field} not in: {msg}");
        }
        let net = parse(&format!(
            "{base}kind = \"routed\"\nlan = \"lan0\"\n[[peer]]\nsubnet = \"10.0.2.0/24\"\nvia = \"192.0.2.12\"\n"
        ))
        .unwrap();
        assert_eq!(net.kind, Kind::Routed);
        assert_eq!(net.peers[0].via, IpAddr::from(Ipv4Addr::new(192, 0, 2, 12)));
    }

    #[test]
    fn an_ipv6_peer_needs_subnet6_and_one_family() {
        let base = "[network]\nname = \"a\"\nsubnet = \"10.0.1.0/24\"\nlan = \"lan0\"\n".to_owned();
        let dual = format!("{base}subnet6 = \"2001:db8:1::/64\"\n");
        let peer =
            |subnet: &str, via: &str| format!("[[peer]]\nsubnet = \"{subnet}\"\nvia = \"{via}\"\n");
        // (the network, the peer's subnet and via, the error)
        let cases = [
            (
                &base,
                "2001:db8:2::/64",
                "2001:db8:ff::12",
                "is IPv6, and the network has no network.subnet6",
            ),
            (
                &dual,
                "2001:db8:2::/64",
                "192.0.2.12",
                "via: 192.0.2.12 is not of the family",
            ),
            (
                &dual,
                "10.0.2.0/24",
                "2001:db8:ff::12",
                "via: 2001:db8:ff::12 is not of the family",
            ),
            (
                &dual,
                "2001:db8::/32",
                "2001:db8:ff::12",
                "subnet: 2001:db8::/32 overlaps the network's own",
            ),
            (
                &dual,
                "2001:db8:2::1/64",
                "2001:db8:ff::12",
                "subnet: 2001:db8:2::1/64 has host bits",
            ),
            (
                &dual,
                "2001:db8:2::/64",
                "2001:db8:2::9",
                "via: 2001:db8:2::9 must be the other host's",
            ),
        ];
        for (network, subnet, via, error) in cases {
            let msg = err_of(&format!("{network}{}", peer(subnet, via)));
            assert!(
                msg.contains("peer[0].") && msg.contains(error),
                "{error} not in: {msg}"
            );
        }

        let net = parse(&format!(
            "{dual}{}{}",
            peer("10.0.2.0/24", "192.0.2.12"),
            peer("2001:db8:2::/64", "2001:db8:ff::12")
        ))
        .unwrap();
        assert_eq!(
            net.peers[1].subnet,
            "2001:db8:2::/64".parse::<IpNet>().unwrap()
        );
        assert_eq!(
            net.peers[1].via,
            "2001:db8:ff::12".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            net.ipv6_reach(),
            Some(Ipv6Net::default()),
            "routed beyond the prefix"
        );
    }

    const MEMBER: &str = r#"
        [network]
        name = "c"
        lan = "lan0"
        [[endpoint]]
        netns = "a"
        [cluster]
        etcd = ["http://192.0.2.21:2379"]
        pool = "10.200.0.0/16"
        node = "h1"
    "#;

    #[test]
    fn a_member_leases_its_subnet_and_gets_its_addresses_from_it() {
        let Config::Member(member) = parse_config(MEMBER).unwrap() else {
            panic!("not a member");
        };
        assert_eq!(member.cluster.subnet_len, DEFAULT_SUBNET_LEN);
        assert_eq!(member.cluster.lease_ttl_secs, DEFAULT_LEASE_TTL_SECS);
        let second = member.cluster.subnets().nth(1).unwrap();
        assert_eq!(second.to_string(), "10.200.1.0/24");
        assert_eq!(member.cluster.subnets().count(), 256);
        let net = member.network(second).unwrap();
        assert_eq!(net.gateway, Ipv4Addr::new(10, 200, 1, 1));
        assert_eq!(net.endpoints[0].ip, Ipv4Addr::new(10, 200, 1, 2));
        assert!(err_of(MEMBER).contains("leased from the cluster"));
    }

    #[test]
    fn a_vxlan_member_tunnels_with_defaults_and_fits_its_endpoints_in_the_tunnel() {
        let vxlan = MEMBER.replace("node = \"h1\"", "node = \"h1\"\nbackend = \"vxlan\"");
        let Config::Member(member) = parse_config(&vxlan).unwrap() else {
            panic!("not a member");
        };
        let expected = Vxlan {
            vni: DEFAULT_VNI,
            port: DEFAULT_VXLAN_PORT,
        };
        assert_eq!(member.cluster.vxlan, Some(expected));
        let subnet = member.cluster.subnets().next().unwrap();
        let net = member.network(subnet).unwrap();
        assert_eq!(net.vxlan, Some(expected));
        assert_eq!(net.mtu, DEFAULT_MTU - VXLAN_OVERHEAD);

        let chosen = vxlan
            .replace("lan = \"lan0\"", "lan = \"lan0\"\nmtu = 1400")
            .replace(
                "backend = \"vxlan\"",
                "backend = \"vxlan\"\nvni = 16777215\nvxlan_port = 8472",
            );
        let Config::Member(member) = parse_config(&chosen).unwrap() else {
            panic!("not a member");
        };
        let net = member.network(subnet).unwrap();
        assert_eq!(
            net.vxlan,
            Some(Vxlan {
                vni: MAX_VNI,
                port: 8472
            })
        );
        assert_eq!(net.mtu, 1400);

        // The direct backend has no tunnel, and keeps the MTU.
        let Config::Member(direct) = parse_config(MEMBER).unwrap() else {
            panic!("not a member");
        };
        assert_eq!(direct.cluster.vxlan, None);
        let net = direct.network(subnet).unwrap();
        assert_eq!((net.vxlan, net.mtu), (None, DEFAULT_MTU));
    }

    #[test]
    fn bad_cluster_input_names_the_field() {
        let with = |network: &str, cluster: &str| {
            format!(
                "[network]\nname = \"c\"\nlan = \"lan0\"\n{network}[cluster]\nnode = \"h\"\n{cluster}"
            )
        };
        let ok = "etcd = [\"http://192.0.2.21:2379\"]\npool = \"10.200.0.0/16\"\n";
        let cases = [
            (with("subnet = \"10.0.0.0/24\"\n", ok), "network.subnet"),
            (with("gateway = \"10.200.0.1\"\n", ok), "network.gateway"),
            (
                format!(
                    "{}[[endpoint]]\nnetns = \"a\"\nip = \"10.200.0.5\"\n",
                    with("", ok)
                ),
                "endpoint[0].ip",
            ),
            (
                with("", "etcd = []\npool = \"10.200.0.0/16\"\n"),
                "cluster.etcd",
            ),
            (
                with(
                    "",
                    "etcd = [\"192.0.2.21:2379\"]\npool = \"10.200.0.0/16\"\n",
                ),
                "cluster.etcd[0]",
            ),
            (
                with(
                    "",
                    "etcd = [\"http://192.0.2.21:2379\"]\npool = \"10.200.0.0/16\"\nca = \"/ca.pem\"\n",
                ),
                "cluster.etcd[0]",
            ),
            (
                with(
                    "",
                    "etcd = [\"https://e:2379\"]\npool = \"10.200.0.0/16\"\nca = \"/ca\"\ncert = \"/c\"\n",
                ),
                "cluster.cert",
            ),
            (
                with("", "etcd = [\"http://e:2379\"]\npool = \"10.200.0.1/16\"\n"),
                "cluster.pool",
            ),
            (
                with("", &format!("{ok}subnet_len = 12\n")),
                "cluster.subnet_len",
            ),
            (
                with("", &format!("{ok}subnet_len = 31\n")),
                "cluster.subnet_len",
            ),
            (
                with("", &format!("{ok}lease_ttl = 1\n")),
                "cluster.lease_ttl",
            ),
            (
                with("", &format!("{ok}lease_ttl = 61\n")),
                "cluster.lease_ttl",
            ),
            (with("", &format!("{ok}backend = \"gre\"\n")), "line"),
            (with("", &format!("{ok}vni = 5\n")), "cluster.vni"),
            (
                with("", &format!("{ok}vxlan_port = 4789\n")),
                "cluster.vxlan_port",
            ),
            (
                with("", &format!("{ok}backend = \"vxlan\"\nvni = 0\n")),
                "cluster.vni",
            ),
            (
                with("", &format!("{ok}backend = \"vxlan\"\nvni = 16777216\n")),
                "cluster.vni",
            ),
            (
                with("", &format!("{ok}backend = \"vxlan\"\nvxlan_port = 0\n")),
                "cluster.vxlan_port",
            ),
            (
                with(
                    "",
                    &format!("{ok}backend = \"vxlan\"\nvxlan_port = 65536\n"),
                ),
                "line",
            ),
            (
                format!("[network]\nname = \"c\"\n[cluster]\n{ok}"),
                "network.lan",
            ),
            (
                format!("[network]\nname = \"c\"\nlan = \"l\"\n[cluster]\nnode = \"a b\"\n{ok}"),
                "cluster.node",
            ),
            (
                format!(
                    "{}[[peer]]\nsubnet = \"10.200.9.0/24\"\nvia = \"192.0.2.9\"\n",
                    with("", ok)
                ),
                "peer[0].subnet",
            ),
        ];
        for (text, field) in cases {
            let err = parse_config(&text).unwrap_err();
            assert_eq!(exit_code(&err), EXIT_BAD_INPUT, "{err:#}");
            let msg = format!("{err:#}");
            assert!(msg.contains(field), "{field} not in: {msg}");
        }
    }

    #[test]
    fn a_docker_cluster_file_is_the_cluster_table_and_the_lan() {
        let ok = "[cluster]\netcd = [\"http://192.0.2.21:2379\"]\npool = \"10.200.0.0/16\"\nnode = \"h\"\n";
        let (file, cluster) =
            parse_cluster_file(&format!("[network]\nlan = \"lan0\"\n{ok}")).unwrap();
        assert_eq!(file.network.lan, "lan0");
        assert_eq!(cluster.subnet_len, DEFAULT_SUBNET_LEN);
        for (text, says) in [
            (ok.to_owned(), "network"),
            (
                format!("[network]\nlan = \"lan0\"\nsubnet = \"10.0.0.0/24\"\n{ok}"),
                "unknown field `subnet`",
            ),
            (format!("[network]\nlan = \"a/b\"\n{ok}"), "network.lan"),
            (
                "[network]\nlan = \"lan0\"\n[cluster]\netcd = []\npool = \"10.200.0.0/16\"\n"
                    .to_owned(),
                "cluster.etcd",
            ),
        ] {
            let err = parse_cluster_file(&text).unwrap_err();
            assert_eq!(exit_code(&err), EXIT_BAD_INPUT, "{err:#}");
            assert!(format!("{err:#}").contains(says), "{says} not in: {err:#}");
        }
    }
}
