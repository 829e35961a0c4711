//! `netfwd up -c FILE`: create or complete the network.

use std::path::Path;

use anyhow::Result;

use crate::{config, network};

pub async fn exec(config_path: &Path, json: bool) -> Result<()> {
    let net = config::load(config_path)?;
    let report = network::up(&net).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    for ifname in &report.removed {
        println!("removed {ifname} (no longer in the config)");
    }
    for ep in &report.endpoints {
        let made = if ep.created { "created" } else { "present" };
        println!(
            "{:<16} {:<15} {:<15} veth {made}, program {:?}",
            ep.netns, ep.ip, ep.host_ifname, ep.program
        );
    }
    if let Some(uplink) = &report.uplink {
        println!(
            "uplink {} masquerades to {}, program {:?}",
            uplink.ifname, uplink.addr, uplink.program
        );
    }
    println!("network {} is up", report.network);
    Ok(())
}
