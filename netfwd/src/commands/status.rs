//! `netfwd status [--name NET] [--json]`: the networks of this namespace, their
//! endpoints, attached programs and datapath counters.

use anyhow::Result;

use crate::{
    name::NetworkName,
    network::report::{self, StatusReport},
};

pub async fn exec(name: Option<&NetworkName>, json: bool) -> Result<()> {
    let report = report::status(name).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(&report);
    }
    Ok(())
}

fn print_human(report: &StatusReport) {
    if report.networks.is_empty() {
        println!("no netfwd network in this network namespace");
    }
    for net in &report.networks {
        println!(
            "network {}  subnet {}  gateway {}  mtu {}  mode {}  pins {}",
            net.name, net.subnet, net.gateway, net.mtu, net.mode, net.pin_dir
        );
        if let (Some(subnet6), Some(gateway6)) = (&net.subnet6, &net.gateway6) {
            let nat6 = match net.nat6 {
                Some(true) => "  nat66",
                Some(false) => "  routed untranslated (nat6 = false)",
                None => "",
            };
            println!("  ipv6: subnet {subnet6}  gateway {gateway6}{nat6}");
        }
        if net.orphaned {
            println!(
                "  orphaned: its host network namespace is gone; `netfwd down --name {}` removes what is left",
                net.name
            );
        }
        println!(
            "  {:<16} {:<15} {:<17} {:<12} {:>7} {:<8} {:<4} {:>9} {:>10} {:>8} {:>6} {:>7}",
            "NETNS",
            "IP",
            "MAC",
            "HOST-IF",
            "IFINDEX",
            "PROG",
            "MODE",
            "RX",
            "REDIRECT",
            "TO-HOST",
            "ARP",
            "DROPPED"
        );
        for ep in &net.endpoints {
            let c = ep.counters.as_ref();
            // A CNI endpoint's namespace is the runtime's; its container is
            // what the operator knows it by.
            let label = match ep.attached.as_ref().and_then(|a| a.container_id.as_ref()) {
                // Escaped: a state file is not the CNI plugin's checked input.
                Some(id) => format!("cni:{}", id.get(..12).unwrap_or(id).escape_debug()),
                None => ep.netns.clone(),
            };
            println!(
                "  {:<16} {:<15} {:<17} {:<12} {:>7} {:<8} {:<4} {:>9} {:>10} {:>8} {:>6} {:>7}",
                label,
                ep.ip,
                ep.mac.as_deref().unwrap_or("-"),
                ep.host_ifname,
                ep.host_ifindex.map_or("-".into(), |i| i.to_string()),
                ep.program
                    .as_ref()
                    .map_or("none".into(), |p| p.id.to_string()),
                ep.mode,
                c.map_or(0, |c| c.rx_packets),
                c.map_or(0, |c| c.redirected),
                c.map_or(0, |c| c.to_host),
                c.map_or(0, |c| c.arp_replies),
                c.map_or(0, |c| c.dropped),
            );
            if let Some(ip6) = &ep.ip6 {
                println!("  {:<16} {ip6}", "");
            }
        }
    }
}
