//! What keeps a running network tidy, one pass at a time (the daemon runs
//! it periodically): expired NAT flows collected so their ports come back,
//! the uplink's current address recorded for hairpin and host access, and
//! attached endpoints whose process has exited forgotten.

use anyhow::Result;
use netfwd_common::nat::NatConfig;

use super::{attach, own_state, preflight, publish};
use crate::{
    loader::{self, DatapathMaps, nat_table},
    name::NetworkName,
    netlink::Netlink,
    state,
};

/// What one pass did.
#[derive(Debug, Default)]
pub struct Maintained {
    pub flows_collected: usize,
    pub uplink_addr: Option<std::net::Ipv4Addr>,
    pub endpoints_gone: Vec<std::net::Ipv4Addr>,
}

pub async fn maintain(name: &NetworkName) -> Result<Maintained> {
    let host = Netlink::current()?;
    let _lock = state::lock()?;
    let mut st = own_state(name)?;
    let mut maps = DatapathMaps::open(&loader::pin_dir(name))?;
    let mut done = Maintained::default();

    let config = maps.nat_config()?;
    let now = nat_table::now_ns()?;
    let snapshot = maps.nat_entries()?;
    done.flows_collected = nat_table::collect_expired(&snapshot, &config.timeouts, now, &mut maps)?;

    if let Some(uplink) = &st.network.uplink
        && let Some(link) = host.link_by_name(uplink).await?
        && let Ok(addr) = preflight::uplink_address(&host, uplink, link.index).await
        && addr.octets() != config.uplink_addr
    {
        maps.set_nat_config(NatConfig {
            uplink_addr: addr.octets(),
            ..config
        })?;
        done.uplink_addr = Some(addr);
    }

    let (live, gone): (Vec<_>, Vec<_>) = st.attached.drain(..).partition(|a| a.present());
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
