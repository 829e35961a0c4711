//! What each network's datapath routes to, trusts or refuses beyond its own
//! endpoints (the `REMOTES` map): peer hosts' subnets (routed, trusted; or,
//! behind the VXLAN tunnel, encapsulated and trusted from the tunnel), the
//! LAN's own subnet (trusted), and the other netfwd networks of this
//! namespace — isolated from each other, as Docker's networks are, unless
//! each names the other in an `[[allow]]` (then routed both ways). One side's
//! allow opens nothing: a packet is judged only by its sender's network (the
//! receiver's programs see only what its endpoints send), so routing on one
//! side's word alone would let one-way traffic in. Networks are kept apart
//! (or let through) over IPv6 too, by their `subnet6` (`REMOTES6`); peers,
//! the LAN and the tunnel are IPv4's.

use anyhow::{Context as _, Result};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::{
    config::Network,
    loader::{NetworkDatapath, Remote},
    netlink::Netlink,
    netns::Here,
    state::State,
};

/// Rewrites `REMOTES` of every network in namespace `here`, with `current`
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
        let wanted = prefixes(host, net, &networks).await?;
        let wanted6: Vec<(Ipv6Net, Remote)> = other_networks(net, &networks)
            .filter_map(|(other, remote)| Some((other.ipv6?.subnet, remote)))
            .collect();
        datapath
            .set_remotes(&wanted, &wanted6)
            .with_context(|| format!("network {}", net.name))?;
    }
    Ok(())
}

async fn prefixes(
    host: &Netlink,
    net: &Network,
    all: &[Network],
) -> Result<Vec<(Ipv4Net, Remote)>> {
    let mut wanted: Vec<(Ipv4Net, Remote)> = net
        .peers
        .iter()
        .map(|p| {
            let remote = if p.tunnel {
                Remote::Tunneled(p.via)
            } else {
                Remote::Peer
            };
            (p.subnet, remote)
        })
        .collect();
    // On a LAN of its own, the hosts of the link may reach endpoints by
    // address; on a shared uplink only the peers may (the rest of that subnet
    // is the world beyond the uplink).
    if let Some(lan) = &net.lan
        && net.uplink.as_ref() != Some(lan)
        && let Some(link) = host.link_by_name(lan).await?
    {
        for addr in host.ipv4_addresses(link.index).await? {
            wanted.push((addr.trunc(), Remote::Lan));
        }
    }
    wanted.extend(other_networks(net, all).map(|(other, remote)| (other.subnet, remote)));
    Ok(wanted)
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
