//! Peer subnets and their kernel routes (`SUBNET via HOST`), which the
//! datapath's `bpf_fib_lookup` follows: set by `up` from `[[peer]]`, and
//! changed in place while the network runs by the cluster agent
//! (`set_peers`). A peer through the VXLAN tunnel has no kernel route: the
//! datapath sends its packets into the tunnel by itself, and the host's own
//! would leave through the device with no tunnel key (and be dropped).

use anyhow::{Context as _, Result};

use super::remotes;
use crate::{
    config::Peer,
    name::NetworkName,
    netlink::{Netlink, Route},
    netns,
    state::{self, State},
};

/// Routes `wanted`, and withdraws the routes of `old` peers not in it.
pub(super) async fn route(host: &Netlink, old: &[Peer], wanted: &[Peer]) -> Result<()> {
    for gone in routed(old).filter(|p| !wanted.contains(p)) {
        host.delete_route(&peer_route(gone)).await?;
    }
    for peer in routed(wanted) {
        host.replace_route(&peer_route(peer))
            .await
            .with_context(|| format!("routing {} via {}", peer.subnet, peer.via))?;
    }
    Ok(())
}

/// The peers with a kernel route (not through the tunnel).
pub(super) fn routed(peers: &[Peer]) -> impl Iterator<Item = &Peer> {
    peers.iter().filter(|p| !p.tunnel)
}

pub(super) fn peer_route(peer: &Peer) -> Route {
    Route {
        dst: peer.subnet,
        gateway: Some(peer.via),
        oif: None,
        src: None,
        scope_link: false,
        onlink: false,
    }
}

/// Makes `peers` the running network `name`'s peers: recorded, routed,
/// and in the datapath of every network here. Says whether anything
/// changed.
pub async fn set_peers(name: &NetworkName, peers: Vec<Peer>) -> Result<bool> {
    let host = Netlink::current()?;
    let here = netns::Here::current()?;
    let _lock = state::lock()?;
    let mut st = State::load_own(name)?;
    if st.network.peers == peers {
        return Ok(false);
    }
    let old = std::mem::replace(&mut st.network.peers, peers);
    st.save()?;
    route(&host, &old, &st.network.peers).await?;
    remotes::refresh_all(&host, &here, None).await?;
    Ok(true)
}
