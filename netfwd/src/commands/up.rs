//! `netfwd up -c FILE`: create or complete the network.

use std::path::Path;

use anyhow::Result;

use crate::{
    config::{self, Mode},
    network,
};

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
            "{:<16} {:<15} {:<15} veth {made}, program {:?}, mode {}",
            ep.netns, ep.ip, ep.host_ifname, ep.program, ep.mode
        );
    }
    if let Some(uplink) = &report.uplink {
        println!(
            "uplink {} masquerades to {}, program {:?}, mode {}",
            uplink.ifname, uplink.addr, uplink.program, uplink.mode
        );
    }
    if net.mode == Mode::Xdp {
        println!(
            "xdp: endpoints send full checksums and receive with GRO on, as XDP redirects into a veth need"
        );
    }
    println!("network {} is up", report.network);
    Ok(())
}
