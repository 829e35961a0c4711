//! The VXLAN backend's device: one collect-metadata VXLAN device per
//! network (`nf<network>-vx`), over the LAN, made by `up` and removed with
//! the network's veths by `down` (and by a fresh `up` that fails). Its MTU
//! is the LAN's less the encapsulation (`VXLAN_OVERHEAD`); the endpoints'
//! veths default to 1500 less the same (`Member::network`). The uplink
//! program runs on it, delivering what it brings in to endpoints.

use anyhow::{Context as _, Result};

use crate::{
    config::{Network, VXLAN_OVERHEAD},
    loader::NetworkDatapath,
    netlink::{Netlink, VxlanDevice},
};

/// Makes the network's VXLAN device if it has the VXLAN backend (kept as
/// it is if there: `up` again changes nothing) and points the datapath at
/// it; a network without one has no tunnel in the datapath.
pub(super) async fn setup(
    host: &Netlink,
    net: &Network,
    datapath: &mut NetworkDatapath,
) -> Result<()> {
    let (Some(vxlan), Some(lan)) = (net.vxlan, &net.lan) else {
        return datapath.no_tunnel();
    };
    let lan_link = host
        .link_by_name(lan)
        .await?
        .with_context(|| format!("LAN interface {lan} vanished"))?;
    let local = host
        .ipv4_addresses(lan_link.index)
        .await?
        .first()
        .map(|a| a.addr())
        .with_context(|| format!("network.lan: {lan} has no IPv4 address to tunnel from"))?;
    let name = net.vxlan_ifname();
    let mtu = lan_link.mtu.saturating_sub(VXLAN_OVERHEAD);
    if host.link_by_name(&name).await?.is_none() {
        host.create_vxlan(&VxlanDevice {
            name: &name,
            port: vxlan.port,
            local,
            mtu,
        })
        .await?;
    }
    let link = host
        .link_by_name(&name)
        .await?
        .with_context(|| format!("VXLAN device {name} vanished"))?;
    if net.mtu > link.mtu {
        log::warn!(
            "network {}: endpoint MTU {} is above the tunnel {name}'s {}: larger packets to \
             other members do not fit the LAN once encapsulated",
            net.name,
            net.mtu,
            link.mtu
        );
    }
    host.set_up(link.index).await?;
    datapath.attach_tunnel(&link, vxlan.vni)
}
