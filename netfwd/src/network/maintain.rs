//! What keeps a running network tidy, one pass at a time (the daemon runs
//! it periodically): the uplink's current address recorded for hairpin and
//! host access, and attached endpoints whose process has exited forgotten.
//! Expired NAT flows are not its business: the kernel removes them (the
//! NAT table's sweep, `netfwd-ebpf/src/nat/sweep.rs`); a pass only reads
//! how many it has.

use anyhow::Result;

use super::{attach, preflight, publish};
use crate::{
    loader::{NetworkDatapath, UplinkAddrs},
    name::NetworkName,
    netlink::Netlink,
    state::{self, State},
};

/// What one pass did.
#[derive(Debug, Default)]
pub struct Maintained {
    /// Expired flows the kernel's sweep has removed from the network's NAT
    /// table since it was armed, if the network has NAT.
    pub flows_expired: Option<u64>,
    pub uplink_addrs: Option<UplinkAddrs>,
    pub endpoints_gone: Vec<std::net::Ipv4Addr>,
}

pub async fn maintain(name: &NetworkName) -> Result<Maintained> {
    let host = Netlink::current()?;
    let _lock = state::lock()?;
    let mut st = State::load_own(name)?;
    let mut datapath = NetworkDatapath::open(name)?;
    let mut done = Maintained {
        flows_expired: datapath.nat_sweep()?.map(|sweep| sweep.flows_removed),
        ..Maintained::default()
    };

    if let Some(uplink) = &st.network.uplink
        && let Some(link) = host.link_by_name(uplink).await?
        && let Ok(addrs) = preflight::uplink_addresses(&host, uplink, link.index).await
        && datapath.set_uplink_addrs(addrs)?
    {
        done.uplink_addrs = Some(addrs);
    }

    let (mut live, mut gone) = (Vec::new(), Vec::new());
    for a in std::mem::take(&mut st.attached) {
        // A Docker endpoint's veth dies with its container's namespace
        // (Docker, restarted, forgets running containers without a word).
        let here = if a.handed_off {
            host.link_by_name(&st.network.host_ifname(a.slot))
                .await?
                .is_some()
        } else {
            a.present()
        };
        if here { live.push(a) } else { gone.push(a) }
    }
    st.attached = live;
    for a in &gone {
        attach::uninstall(&host, &st.network, a).await?;
        done.endpoints_gone.push(a.ip);
    }
    if !gone.is_empty() {
        if st.withdraw_orphan_ports() {
            publish::apply(&st)?;
        }
        st.save()?;
    }
    Ok(done)
}
