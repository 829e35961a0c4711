//! Checks of a validated config against what exists on the machine, all made
//! before anything is changed. Failures are bad input (exit 2).

use std::net::Ipv4Addr;

use anyhow::Result;

use super::endpoint::ENDPOINT_IFNAME;
use crate::{
    config::Network,
    input_error,
    netlink::Netlink,
    netns::{self, Here},
    procnet,
    state::State,
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
    for (i, p) in net.published.iter().enumerate() {
        if procnet::port_in_use(p.proto, p.host_port)? {
            return Err(input_error!(
                "publish[{i}].host_port: {} is bound by a socket of the host",
                p.host_port
            ));
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
    uplink_address(&host, uplink, index).await?;
    let (low, high) = procnet::ip_local_port_range()?;
    let (min, max) = (net.nat.port_min, net.nat.port_max);
    if min <= high && low <= max {
        return Err(input_error!(
            "nat.port_min: NAT ports {min}-{max} overlap net.ipv4.ip_local_port_range {low}-{high}"
        ));
    }
    Ok(())
}

/// An interface to the outside (uplink or LAN): one of this namespace's, not
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

/// The uplink's primary IPv4 address: what endpoints are masqueraded to.
pub async fn uplink_address(host: &Netlink, uplink: &str, index: u32) -> Result<Ipv4Addr> {
    host.ipv4_addresses(index)
        .await?
        .first()
        .map(|(addr, _)| *addr)
        .ok_or_else(|| input_error!("network.uplink: {uplink} has no IPv4 address"))
}
