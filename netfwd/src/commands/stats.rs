//! `netfwd stats [--name NET] [--json]`: the datapath counters of every
//! interface of each network — endpoints' host-side veths, the uplink, the
//! LAN — with drops by reason.

use anyhow::Result;
use netfwd_common::drop::DropReason;

use crate::{
    name::NetworkName,
    network::report::{self, StatsReport},
};

pub async fn exec(name: Option<&NetworkName>, json: bool) -> Result<()> {
    let report = report::stats(name).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(&report);
    }
    Ok(())
}

fn print_human(report: &StatsReport) {
    for net in &report.networks {
        println!("network {}", net.name);
        println!(
            "  {:<14} {:<8} {:>10} {:>12} {:>10} {:>8} {:>6} {:>10} {:>8}",
            "IFACE", "ROLE", "RX", "RX-BYTES", "REDIRECT", "TO-HOST", "ARP", "NAT", "DROPPED"
        );
        for i in &net.interfaces {
            let c = &i.counters;
            println!(
                "  {:<14} {:<8} {:>10} {:>12} {:>10} {:>8} {:>6} {:>10} {:>8}",
                i.ifname,
                i.role,
                c.rx_packets,
                c.rx_bytes,
                c.redirected,
                c.to_host,
                c.arp_replies,
                c.translated,
                c.dropped
            );
            for reason in DropReason::ALL {
                let n = c.drops.get(reason.name()).copied().unwrap_or(0);
                let bytes = c.drop_bytes.get(reason.name()).copied().unwrap_or(0);
                if n > 0 {
                    println!("      dropped {n} ({}, {bytes} bytes)", reason.name());
                }
            }
        }
    }
}
