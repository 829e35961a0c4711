//! Publishing ports at run time (`netfwd publish` / `unpublish`), without
//! touching anything else of the network. Connections already made keep
//! their NAT entries; only new ones see the change.

use std::{collections::HashSet, net::Ipv4Addr, ops::RangeInclusive};

use anyhow::Result;

use super::{
    install::{apply_published, check_room},
    preflight::HostPorts,
};
use crate::{
    config::{Proto, Published},
    error::is_input_error,
    input_error,
    loader::NetworkDatapath,
    name::NetworkName,
    netns::Here,
    state::{self, State},
};

/// Where a host port of 0 (Docker's `-P`) takes its port: Kubernetes'
/// NodePort range, below Linux's default `ip_local_port_range` (32768-60999)
/// and netfwd's NAT ports (61000-65535), both of which Docker's own
/// 49153-65535 would collide with.
pub const AUTO_HOST_PORTS: RangeInclusive<u16> = 30_000..=32_767;

/// A port to publish: `host_ip` (see `config::host_ip`) and the first free
/// port of `host_ports`, to `endpoint:port`.
pub struct PortRequest<'a> {
    pub proto: Proto,
    pub host_ip: Ipv4Addr,
    /// One port, or a range to take the first free one of (Docker's
    /// `-p 8000-8010:80`); `0..=0` is `AUTO_HOST_PORTS`.
    pub host_ports: RangeInclusive<u16>,
    /// A config endpoint's netns name or an endpoint address.
    pub endpoint: &'a str,
    pub port: u16,
}

/// Publishes what `req` asks for; returns the port taken.
pub async fn publish(name: &NetworkName, req: &PortRequest<'_>) -> Result<Published> {
    let _lock = state::lock()?;
    let mut st = State::load_own(name)?;
    let net = &st.network;
    if net.uplink.is_none() {
        return Err(input_error!(
            "--name: network {name} has no uplink to publish on"
        ));
    }
    let ip = match req.endpoint.parse::<Ipv4Addr>() {
        Ok(ip) => ip,
        Err(_) => net
            .endpoints
            .iter()
            .find(|e| e.netns == req.endpoint)
            .map(|e| e.ip)
            .ok_or_else(|| input_error!("--endpoint: no endpoint in netns {:?}", req.endpoint))?,
    };
    let known = net.endpoints.iter().any(|e| e.ip == ip) || st.attached.iter().any(|a| a.ip == ip);
    if !known {
        return Err(input_error!(
            "--endpoint: {ip} is no endpoint of network {name}"
        ));
    }
    if req.port == 0 {
        return Err(input_error!("--port: ports are 1 to 65535"));
    }
    let host_port = free_host_port(&st, req.proto, &req.host_ports)?;
    let published = Published {
        proto: req.proto,
        host_port,
        ip,
        port: req.port,
        host_ip: req.host_ip,
    };
    st.published.push(published);
    apply(&st)?;
    st.save()?;
    Ok(published)
}

/// The first port of `wanted` that nothing else has: for one port, the
/// reason it is taken; for a range, that none is free.
fn free_host_port(st: &State, proto: Proto, wanted: &RangeInclusive<u16>) -> Result<u16> {
    let auto = *wanted == (0..=0);
    let wanted = if auto {
        AUTO_HOST_PORTS
    } else {
        wanted.clone()
    };
    if wanted.is_empty() || *wanted.start() == 0 {
        return Err(input_error!(
            "--host-port: {wanted:?}: ports are 1 to 65535"
        ));
    }
    let published: HashSet<(Proto, u16)> = st
        .all_published()
        .iter()
        .map(|p| (p.proto, p.host_port))
        .collect();
    let host_ports = HostPorts::read(&st.network, &Here::current()?)?;
    let check = |host_port: u16| -> Result<()> {
        if published.contains(&(proto, host_port)) {
            return Err(input_error!(
                "--host-port: {host_port} is published already"
            ));
        }
        host_ports.check("--host-port", &st.network, proto, host_port)
    };
    if wanted.start() == wanted.end() {
        let host_port = *wanted.start();
        return check(host_port).map(|()| host_port);
    }
    for host_port in wanted.clone() {
        match check(host_port) {
            Ok(()) => return Ok(host_port),
            Err(e) if is_input_error(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(input_error!(
        "--host-port: no free port in {}-{}",
        wanted.start(),
        wanted.end()
    ))
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
    check_room(&datapath, st)?;
    apply_published(net, &st.all_published(), &mut datapath)
}
