//! What each network's datapath routes to, trusts or refuses beyond its own
//! endpoints (the `REMOTES` and `REMOTES6` maps): peer hosts' subnets
//! (routed, trusted; or, behind the VXLAN tunnel, encapsulated and trusted
//! from the tunnel), the LAN's own subnets (trusted), and the other netfwd
//! networks of this namespace — isolated from each other, as Docker's
//! networks are, unless each names the other in an `[[allow]]` (then routed
//! both ways). One side's allow opens nothing: a packet is judged only by
//! its sender's network (the receiver's programs see only what its
//! endpoints send), so routing on one side's word alone would let one-way
//! traffic in. Each family's prefixes go to its own map: IPv6 peers and
//! the LAN's IPv6 subnets beside the networks' `subnet6`; the tunnel is
//! IPv4's.

use std::net::IpAddr;

use anyhow::{Context as _, Result};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::{
    config::Network,
    loader::{NetworkDatapath, Remote},
    netlink::Netlink,
    netns::Here,
    state::State,
};

/// Rewrites `REMOTES` and `REMOTES6` of every network in namespace `here`, with `current`
/// (being brought up) in place of its recorded state. Networks whose pins
/// are gone (half-made, being torn down) are skipped.
pub async fn refresh_all(host: &Netlink, here: &Here, current: Option<&Network>) -> Result<()> {
    let mut networks: Vec<Network> = State::all()?
        .into_iter()
        .filter(|st| st.lives_in(here))
        .map(|st| st.network)
        .filter(|n| current.is_none_or(|c| c.name != n.name))
        .collect();
    networks.extend(current.cloned());
    for net in &networks {
        let Ok(mut datapath) = NetworkDatapath::open(&net.name) else {
            continue;
        };
        let (wanted, wanted6) = prefixes(host, net, &networks).await?;
        datapath
            .set_remotes(&wanted, &wanted6)
            .with_context(|| format!("network {}", net.name))?;
    }
    Ok(())
}

/// The remote prefixes of each family: IPv4's, IPv6's.
type Prefixes = (Vec<(Ipv4Net, Remote)>, Vec<(Ipv6Net, Remote)>);

async fn prefixes(host: &Netlink, net: &Network, all: &[Network]) -> Result<Prefixes> {
    let mut wanted = Vec::new();
    let mut wanted6 = Vec::new();
    let mut add = |prefix: IpNet, remote: Remote| match prefix {
        IpNet::V4(v4) => wanted.push((v4, remote)),
        IpNet::V6(v6) => wanted6.push((v6, remote)),
    };
    for peer in &net.peers {
        // A tunnel's far end is a member's IPv4 LAN address (the cluster
        // leases IPv4 subnets only).
        let remote = match (peer.tunnel, peer.via) {
            (true, IpAddr::V4(far_end)) => Remote::Tunneled(far_end),
            _ => Remote::Peer,
        };
        add(peer.subnet, remote);
    }
    // On a LAN of its own, the hosts of the link may reach endpoints by
    // address; on a shared uplink only the peers may (the rest of that subnet
    // is the world beyond the uplink). A link-local prefix is every link's
    // own: it names no host of this LAN.
    if let Some(lan) = &net.lan
        && net.uplink.as_ref() != Some(lan)
        && let Some(link) = host.link_by_name(lan).await?
    {
        for addr in host.addresses(link.index).await? {
            if !matches!(addr, IpNet::V6(v6) if v6.addr().is_unicast_link_local()) {
                add(addr.trunc(), Remote::Lan);
            }
        }
    }
    for (other, remote) in other_networks(net, all) {
        add(other.subnet.into(), remote);
        if let Some(v6) = other.ipv6 {
            add(v6.subnet.into(), remote);
        }
    }
    Ok((wanted, wanted6))
}

/// The other networks of `all`, each allowed if both sides allow the
/// other, isolated from `net` otherwise.
fn other_networks<'a>(
    net: &'a Network,
    all: &'a [Network],
) -> impl Iterator<Item = (&'a Network, Remote)> {
    all.iter().filter(|o| o.name != net.name).map(|other| {
        let allowed_both_ways = net.allow.iter().any(|a| a == &other.name)
            && other.allow.iter().any(|a| a == &net.name);
        let remote = if allowed_both_ways {
            Remote::Allowed
        } else {
            Remote::Isolated
        };
        (other, remote)
    })
}
