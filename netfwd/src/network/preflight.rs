//! Checks of a validated config against what exists on the machine, all made
//! before anything is changed. Failures are bad input (exit 2).

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use ipnet::IpNet;

use super::endpoint::ENDPOINT_IFNAME;
use crate::{
    config::{Network, Proto},
    input_error,
    loader::UplinkAddrs,
    name::NetworkName,
    netlink::Netlink,
    netns::{self, Here},
    procnet,
    state::State,
    subnet::Subnet as _,
};

pub async fn check(net: &Network, previous: Option<&State>, here: &Here) -> Result<()> {
    if let Some(prev) = previous
        && !prev.lives_in(here)
    {
        if prev.is_orphan()? {
            return Err(input_error!(
                "network.name: network {} is an orphan (its network namespace is gone); `netfwd down --name {}` removes it",
                net.name,
                net.name
            ));
        }
        return Err(input_error!(
            "network.name: network {} already exists in another network namespace",
            net.name
        ));
    }
    for other in State::all()? {
        let o = &other.network;
        if o.name == net.name || !other.lives_in(here) {
            continue;
        }
        if o.uplink.is_some() && o.uplink == net.uplink {
            check_shared_nat(net, o)?;
        }
        if o.subnet.overlaps(&net.subnet) {
            return Err(input_error!(
                "network.subnet: {} overlaps network {} ({})",
                net.subnet,
                o.name,
                o.subnet
            ));
        }
        for (i, ep) in net.endpoints.iter().enumerate() {
            if o.endpoints.iter().any(|e| e.netns == ep.netns) {
                return Err(input_error!(
                    "endpoint[{i}].netns: {} is already an endpoint of network {}",
                    ep.netns,
                    o.name
                ));
            }
        }
    }
    if let Some(uplink) = &net.uplink {
        check_uplink(net, uplink).await?;
    }
    if let Some(lan) = &net.lan {
        check_external("network.lan", net, lan).await?;
    }
    if !net.published.is_empty() {
        let host_ports = HostPorts::read(net, here)?;
        for (i, p) in net.published.iter().enumerate() {
            host_ports.check(
                &format!("publish[{i}].host_port"),
                net,
                p.proto,
                p.host_port,
            )?;
        }
    }
    for (i, ep) in net.endpoints.iter().enumerate() {
        let ours =
            previous.is_some_and(|p| p.network.endpoints.iter().any(|e| e.netns == ep.netns));
        check_endpoint_netns(i, &ep.netns, ours).await?;
    }
    Ok(())
}

/// The namespace must be absent (we create it), or a namespace whose eth0 is
/// free or already ours.
async fn check_endpoint_netns(i: usize, name: &str, ours: bool) -> Result<()> {
    let exists = netns::exists(name).map_err(|e| input_error!("endpoint[{i}].netns: {e:#}"))?;
    if !exists || ours {
        return Ok(());
    }
    let inner = Netlink::in_netns(&netns::path(name))?;
    if inner.link_by_name(ENDPOINT_IFNAME).await?.is_some() {
        return Err(input_error!(
            "endpoint[{i}].netns: {name} already has an {ENDPOINT_IFNAME} that netfwd did not make"
        ));
    }
    Ok(())
}

/// The uplink must be a device of this namespace, not one of the network's
/// own, with an IPv4 address to masquerade to; NAT ports must stay clear of
/// the ports host sockets pick (BPF NAT does not see host flows, so sharing
/// that range could hand a host socket's tuple to a NAT flow).
async fn check_uplink(net: &Network, uplink: &str) -> Result<()> {
    let (host, index) = check_external("network.uplink", net, uplink).await?;
    uplink_addresses(&host, uplink, index).await?;
    let (low, high) = procnet::ip_local_port_range()?;
    let (min, max) = (net.nat.port_min, net.nat.port_max);
    if min <= high && low <= max {
        return Err(input_error!(
            "nat.port_min: NAT ports {min}-{max} overlap net.ipv4.ip_local_port_range {low}-{high}"
        ));
    }
    Ok(())
}

/// An external interface (uplink or LAN): one of this namespace's, not
/// one of the network's own veths. Returns it with a netlink handle.
async fn check_external(field: &str, net: &Network, ifname: &str) -> Result<(Netlink, u32)> {
    if crate::config::ifname_prefixes(&net.name)
        .iter()
        .any(|p| ifname.starts_with(p.as_str()))
    {
        return Err(input_error!(
            "{field}: {ifname} is one of the network's own interfaces"
        ));
    }
    let host = Netlink::current()?;
    let Some(link) = host.link_by_name(ifname).await? else {
        return Err(input_error!(
            "{field}: no interface {ifname} in this network namespace"
        ));
    };
    Ok((host, link.index))
}

/// The uplink's addresses: its primary IPv4 address, what endpoints are
/// masqueraded to, and its first global IPv6 address, if any (a link-local
/// one is no address a published port answers on).
pub async fn uplink_addresses(host: &Netlink, uplink: &str, index: u32) -> Result<UplinkAddrs> {
    let addrs = host.addresses(index).await?;
    let v4 = addrs
        .iter()
        .find_map(|a| match a {
            IpNet::V4(v4) => Some(v4.addr()),
            IpNet::V6(_) => None,
        })
        .ok_or_else(|| input_error!("network.uplink: {uplink} has no IPv4 address"))?;
    let v6 = addrs.iter().find_map(|a| match a {
        IpNet::V6(v6) if !v6.addr().is_unicast_link_local() => Some(v6.addr()),
        _ => None,
    });
    Ok(UplinkAddrs { v4, v6 })
}

/// A host port to publish on `net`'s uplink must be the uplink's alone:
/// - not one of the NAT's own uplink ports (the network's, or those of
///   another network on the same uplink),
/// - not published by another network on the same uplink (the first
///   program to see a connection would take it),
/// - not in `net.ipv4.ip_local_port_range`: the host's own connections pick
///   their source ports there, and their replies would be taken for
///   connections to the published port,
/// - not bound by a socket of the host.
pub struct HostPorts {
    /// Other networks in this namespace on the same uplink.
    neighbours: Vec<Network>,
    /// Their published ports, and whose each is.
    taken: HashMap<(Proto, u16), NetworkName>,
    local_port_range: (u16, u16),
    bound_tcp: HashSet<u16>,
    bound_udp: HashSet<u16>,
}

impl HostPorts {
    /// What the ports of `net` must stay clear of, read once for all of
    /// them: a network of 10,000 published ports would otherwise read every
    /// state file and socket table 10,000 times.
    pub fn read(net: &Network, here: &Here) -> Result<Self> {
        let neighbours: Vec<State> = State::all()?
            .into_iter()
            .filter(|o| {
                o.network.name != net.name && o.lives_in(here) && o.network.uplink == net.uplink
            })
            .collect();
        Ok(Self {
            taken: neighbours
                .iter()
                .flat_map(|o| {
                    o.all_published()
                        .into_iter()
                        .map(|p| ((p.proto, p.host_port), o.network.name.clone()))
                })
                .collect(),
            neighbours: neighbours.into_iter().map(|o| o.network).collect(),
            local_port_range: procnet::ip_local_port_range()?,
            bound_tcp: procnet::ports_in_use(Proto::Tcp)?,
            bound_udp: procnet::ports_in_use(Proto::Udp)?,
        })
    }

    pub fn check(&self, field: &str, net: &Network, proto: Proto, host_port: u16) -> Result<()> {
        let in_nat_range = |n: &Network| (n.nat.port_min..=n.nat.port_max).contains(&host_port);
        if in_nat_range(net) {
            return Err(input_error!(
                "{field}: {host_port} is inside the NAT port range {}-{}",
                net.nat.port_min,
                net.nat.port_max
            ));
        }
        if let Some(o) = self.neighbours.iter().find(|o| in_nat_range(o)) {
            return Err(input_error!(
                "{field}: {host_port} is inside the NAT port range {}-{} of network {} on the same uplink",
                o.nat.port_min,
                o.nat.port_max,
                o.name
            ));
        }
        if let Some(owner) = self.taken.get(&(proto, host_port)) {
            return Err(input_error!(
                "{field}: {host_port} is published already by network {owner} on the same uplink"
            ));
        }
        let (low, high) = self.local_port_range;
        if (low..=high).contains(&host_port) {
            return Err(input_error!(
                "{field}: {host_port} is inside net.ipv4.ip_local_port_range {low}-{high}, where the host's own connections take their ports"
            ));
        }
        let bound = match proto {
            Proto::Tcp => &self.bound_tcp,
            Proto::Udp => &self.bound_udp,
        };
        if bound.contains(&host_port) {
            return Err(input_error!(
                "{field}: {host_port} is bound by a socket of the host"
            ));
        }
        Ok(())
    }
}

/// Networks on one uplink share its NAT table (one port allocation for the
/// uplink): its size and the timeouts every program and collector judges a
/// flow by must be the same for all. Port ranges may differ (each network
/// allocates from its own, in the one table).
fn check_shared_nat(net: &Network, other: &Network) -> Result<()> {
    let uplink = net.uplink.as_deref().unwrap_or_default();
    if net.nat.max_flows != other.nat.max_flows {
        return Err(input_error!(
            "nat.max_flows: {} differs from network {}'s {} on uplink {uplink}, whose NAT table they share",
            net.nat.max_flows,
            other.name,
            other.nat.max_flows
        ));
    }
    if net.nat.timeouts != other.nat.timeouts {
        return Err(input_error!(
            "nat.timeouts: differ from network {}'s on uplink {uplink}, whose NAT table they share",
            other.name
        ));
    }
    Ok(())
}
