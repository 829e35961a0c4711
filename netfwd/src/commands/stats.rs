//! `netfwd stats [--name NET] [--json]`: the datapath counters of every
//! interface of each network — endpoints' host-side veths, the uplink, the
//! LAN — with drops by reason.

use anyhow::Result;
use netfwd_common::drop::DropReason;
use serde::Serialize;

use super::status::{self, CountersStatus};
use crate::name::NetworkName;

#[derive(Serialize)]
struct StatsReport {
    networks: Vec<NetworkStats>,
}

#[derive(Serialize)]
struct NetworkStats {
    name: NetworkName,
    interfaces: Vec<InterfaceStats>,
}

#[derive(Serialize)]
struct InterfaceStats {
    ifname: String,
    ifindex: u32,
    role: &'static str,
    #[serde(flatten)]
    counters: CountersStatus,
}

pub async fn exec(name: Option<&NetworkName>, json: bool) -> Result<()> {
    let status = status::collect(name).await?;
    let networks = status
        .networks
        .into_iter()
        .map(|net| {
            let endpoints = net
                .endpoints
                .into_iter()
                .map(|e| ("endpoint", e.host_ifname, e.host_ifindex, e.counters));
            let externals = [("uplink", net.uplink), ("lan", net.lan)]
                .into_iter()
                .filter_map(|(role, x)| x.map(|x| (role, x.ifname, x.ifindex, x.counters)));
            let interfaces = endpoints
                .chain(externals)
                .filter_map(|(role, ifname, ifindex, counters)| {
                    Some(InterfaceStats {
                        ifname,
                        ifindex: ifindex?,
                        role,
                        counters: counters?,
                    })
                })
                .collect();
            NetworkStats {
                name: net.name,
                interfaces,
            }
        })
        .collect();
    let report = StatsReport { networks };
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
                if n > 0 {
                    println!("      dropped {n} ({})", reason.name());
                }
            }
        }
    }
}
