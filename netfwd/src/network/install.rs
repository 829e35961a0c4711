//! The datapath steps shared by `up`, `attach` and `publish`: an endpoint
//! entered into its network's datapath, and the published ports applied.

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::Result;

use super::endpoint::EndpointFacts;
use crate::{
    cgroup,
    config::{Mode, Network, Published},
    loader::{AttachOutcome, EndpointVeth, NetworkDatapath},
    procnet,
    state::State,
};

/// Refuses a network whose endpoints (configured and attached) or
/// published ports, as `st` records them, would not fit its maps, before
/// any of them is written.
pub fn check_room(datapath: &NetworkDatapath, st: &State) -> Result<()> {
    datapath.room()?.check(
        st.network.endpoints.len() + st.attached.len(),
        st.all_published().len(),
    )
}

/// Enters a set-up endpoint into the datapath: its counters, its program,
/// its forwarding entry, then forwarding and its mode; returns the TC
/// program's outcome and the mode that runs on its veth.
pub fn install_endpoint(
    net: &Network,
    datapath: &mut NetworkDatapath,
    (ip, ip6): (Ipv4Addr, Option<Ipv6Addr>),
    facts: &EndpointFacts,
) -> Result<(AttachOutcome, Mode)> {
    let host_ifname = &facts.host_ifname;
    let program = datapath.install_endpoint(&EndpointVeth {
        ip,
        ip6,
        host_ifname,
        host_ifindex: facts.host_ifindex,
        mac: facts.mac,
        host_mac: facts.host_mac,
    })?;
    // With forwarding on, packets the program does not catch would be routed
    // out with their private source: only once the program runs.
    // IPv6 as IPv4: out of the uplink (NAT66) or to peers over the LAN.
    if net.uplink.is_some() || net.lan.is_some() {
        procnet::enable_forwarding(host_ifname, &facts.host_settings)?;
        if net.ipv6.is_some() {
            procnet::enable_forwarding6(host_ifname, &facts.host_settings)?;
        }
    }
    let mode = datapath.set_endpoint_mode(
        net.mode,
        host_ifname,
        facts.host_ifindex,
        facts.xdp_ready,
        facts.host_xdp_prog_id,
    )?;
    Ok((program, mode))
}

/// Points the datapath at the published ports. The host's own connections
/// to them go through a socket hook on its cgroup, scoped to this namespace.
pub fn apply_published(
    net: &Network,
    published: &[Published],
    datapath: &mut NetworkDatapath,
) -> Result<()> {
    datapath.set_published(published)?;
    if published.is_empty() {
        return datapath.stop_translating_host_connections();
    }
    let cgroup = match &net.host_cgroup {
        Some(path) => path.clone(),
        None => match cgroup::v2_root()? {
            Some(root) => root,
            None => {
                log::warn!(
                    "no cgroup v2 hierarchy: the host's own connections to published ports are not translated"
                );
                return Ok(());
            }
        },
    };
    datapath.translate_host_connections(&cgroup)
}
