//! Publishing ports at run time (`netfwd publish` / `unpublish`), without
//! touching anything else of the network. Connections already made keep
//! their NAT entries; only new ones see the change.

use std::net::Ipv4Addr;

use anyhow::Result;

use super::{install::apply_published, preflight};
use crate::{
    config::{Proto, Published},
    input_error,
    loader::NetworkDatapath,
    name::NetworkName,
    netns::Here,
    state::{self, State},
};

/// Publishes `host_port` of `proto` to `endpoint:port`, where `endpoint` is
/// a config endpoint's netns name or an endpoint address.
pub async fn publish(
    name: &NetworkName,
    proto: Proto,
    host_port: u16,
    endpoint: &str,
    port: u16,
) -> Result<Published> {
    let _lock = state::lock()?;
    let mut st = State::load_own(name)?;
    let net = &st.network;
    if net.uplink.is_none() {
        return Err(input_error!(
            "--name: network {name} has no uplink to publish on"
        ));
    }
    let ip = match endpoint.parse::<Ipv4Addr>() {
        Ok(ip) => ip,
        Err(_) => net
            .endpoints
            .iter()
            .find(|e| e.netns == endpoint)
            .map(|e| e.ip)
            .ok_or_else(|| input_error!("--endpoint: no endpoint in netns {endpoint:?}"))?,
    };
    let known = net.endpoints.iter().any(|e| e.ip == ip) || st.attached.iter().any(|a| a.ip == ip);
    if !known {
        return Err(input_error!(
            "--endpoint: {ip} is no endpoint of network {name}"
        ));
    }
    if port == 0 || host_port == 0 {
        return Err(input_error!("--host-port: ports are 1 to 65535"));
    }
    let all = st.all_published();
    if all
        .iter()
        .any(|p| p.proto == proto && p.host_port == host_port)
    {
        return Err(input_error!(
            "--host-port: {host_port} is published already"
        ));
    }
    preflight::check_host_port("--host-port", net, proto, host_port, &Here::current()?)?;
    let published = Published {
        proto,
        host_port,
        ip,
        port,
    };
    st.published.push(published);
    apply(&st)?;
    st.save()?;
    Ok(published)
}

/// Stops publishing `host_port` of `proto`; Ok if it was not. A port the
/// config publishes comes back with the next `up`.
pub async fn unpublish(name: &NetworkName, proto: Proto, host_port: u16) -> Result<bool> {
    let _lock = state::lock()?;
    let mut st = State::load_own(name)?;
    let matches = |p: &Published| p.proto == proto && p.host_port == host_port;
    let before = st.all_published().len();
    st.published.retain(|p| !matches(p));
    st.network.published.retain(|p| !matches(p));
    let removed = st.all_published().len() != before;
    apply(&st)?;
    st.save()?;
    Ok(removed)
}

/// Makes the datapath's published ports what the state says.
pub(super) fn apply(st: &State) -> Result<()> {
    let net = &st.network;
    let mut datapath = NetworkDatapath::load(net)?;
    apply_published(net, &st.all_published(), &mut datapath)
}
