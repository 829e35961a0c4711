//! From the config file to the validated network. Validation is pure: it runs
//! before anything is changed, and every error is one line that names the
//! field.

use std::{collections::HashSet, net::Ipv4Addr, path::Path};

use anyhow::{Context as _, Result};

use super::{
    file::{AllowSection, ConfigFile, EndpointSection, NatSection, PeerSection, PublishSection},
    ifname::validate_ifname,
    model::{Endpoint, NatSettings, Network, Peer, Published, Timeouts, host_ip},
};
use ipnet::Ipv4Net;

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

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Network> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))
        .map_err(|e| input_error!("{e:#}"))?;
    parse(&text).map_err(|e| input_error!("{}: {e:#}", path.display()))
}

/// Parses and validates config text.
pub fn parse(text: &str) -> Result<Network> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
    validate(&file)
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

pub fn validate(file: &ConfigFile) -> Result<Network> {
    let net = &file.network;
    let name = NetworkName::parse("network.name", &net.name)?;
    let subnet = subnet::parse(&net.subnet).map_err(|e| input_error!("network.subnet: {e}"))?;
    if !(MIN_PREFIX_LEN..=MAX_PREFIX_LEN).contains(&subnet.prefix_len()) {
        return Err(input_error!(
            "network.subnet: prefix length must be {MIN_PREFIX_LEN} to {MAX_PREFIX_LEN}, got {}",
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
            input_error!("network.subnet: {subnet} has no host address for a gateway")
        })?,
    };
    let mtu = net.mtu.unwrap_or(DEFAULT_MTU);
    if !(576..=65535).contains(&mtu) {
        return Err(input_error!("network.mtu: {mtu} is not within 576..=65535"));
    }
    let endpoints = validate_endpoints(&file.endpoints, subnet, gateway)?;
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
    let peers = validate_peers(&file.peers, subnet)?;
    Ok(Network {
        name,
        subnet,
        gateway,
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
    })
}

fn validate_peers(peers: &[PeerSection], own: Ipv4Net) -> Result<Vec<Peer>> {
    let mut valid: Vec<Peer> = Vec::with_capacity(peers.len());
    for (i, p) in peers.iter().enumerate() {
        let subnet = subnet::parse(&p.subnet).map_err(|e| input_error!("peer[{i}].subnet: {e}"))?;
        if subnet.overlaps(&own) {
            return Err(input_error!(
                "peer[{i}].subnet: {subnet} overlaps the network's own subnet {own}"
            ));
        }
        if let Some(other) = valid.iter().find(|o| o.subnet.overlaps(&subnet)) {
            return Err(input_error!(
                "peer[{i}].subnet: {subnet} overlaps peer subnet {}",
                other.subnet
            ));
        }
        let via = parse_ip(&format!("peer[{i}].via"), &p.via)?;
        if own.contains(&via) || subnet.contains(&via) {
            return Err(input_error!(
                "peer[{i}].via: {via} must be the other host's address on the LAN, not an endpoint address"
            ));
        }
        valid.push(Peer { subnet, via });
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
        assert_eq!(net.host_ifname(net.endpoints[2].ip), "nfdemo-3");
        assert_eq!(net.mtu, DEFAULT_MTU);
    }

    #[test]
    fn gateway_defaults_to_first_host() {
        let net = parse("[network]\nname = \"a\"\nsubnet = \"172.18.0.0/16\"\n").unwrap();
        assert_eq!(net.gateway, Ipv4Addr::new(172, 18, 0, 1));
        assert_eq!(
            net.host_ifname(Ipv4Addr::new(172, 18, 255, 254)),
            "nfa-fffe"
        );
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
        assert_eq!(net.peers[0].via, Ipv4Addr::new(192, 0, 2, 12));
    }
}
