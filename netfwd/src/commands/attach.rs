//! `netfwd attach` / `netfwd detach`: plug a running process's namespace (or
//! any namespace file) into a network as an endpoint, and take it out again.

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::Result;
use serde::Serialize;

use crate::{
    name::NetworkName,
    network::{self, AttachRequest, Target},
    state::Attachment,
};

#[derive(Serialize)]
struct AttachReport<'a> {
    network: &'a NetworkName,
    ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip6: Option<String>,
    ifname: &'a str,
    host_ifname: String,
    netns_path: String,
    pid: Option<u32>,
}

pub async fn exec_attach(
    name: &NetworkName,
    target: &Target,
    (ip, ip6): (Option<Ipv4Addr>, Option<Ipv6Addr>),
    ifname: &str,
    json: bool,
) -> Result<()> {
    let req = AttachRequest {
        target,
        ip,
        ip6,
        ifname,
        container_id: None,
        handoff: false,
        mac: None,
    };
    let a = network::attach(name, &req).await?;
    let report = AttachReport {
        network: name,
        ip: a.ip.to_string(),
        ip6: a.ip6.map(|ip6| ip6.to_string()),
        ifname: &a.ifname,
        host_ifname: host_ifname(name, &a)?,
        netns_path: a.netns_path.display().to_string(),
        pid: a.pid,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "attached {} as {} ({} inside, {} on the host) to network {name}",
            report.netns_path, report.ip, report.ifname, report.host_ifname
        );
    }
    Ok(())
}

pub async fn exec_detach(name: &NetworkName, target: &Target) -> Result<()> {
    match network::detach(name, target).await? {
        Some(a) => println!(
            "detached {} ({}) from network {name}",
            a.netns_path.display(),
            a.ip
        ),
        None => println!("nothing attached to network {name} matches; nothing to do"),
    }
    Ok(())
}

fn host_ifname(name: &NetworkName, a: &Attachment) -> Result<String> {
    let st = crate::state::State::load(name)?
        .ok_or_else(|| anyhow::anyhow!("network {name} vanished"))?;
    Ok(st.network.host_ifname(a.slot))
}
