//! Checks of a validated config against what exists on the machine, all made
//! before anything is changed. Failures are bad input (exit 2).

use anyhow::Result;

use super::endpoint::ENDPOINT_IFNAME;
use crate::{
    config::Network,
    input_error,
    netlink::Netlink,
    netns::{self, NetnsId},
    state::State,
};

pub async fn check(net: &Network, previous: Option<&State>, here: NetnsId) -> Result<()> {
    if let Some(prev) = previous
        && prev.host_netns != here
    {
        return Err(input_error!(
            "network.name: network {} already exists in another network namespace",
            net.name
        ));
    }
    for other in State::all()? {
        let o = &other.network;
        if o.name == net.name || other.host_netns != here {
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
