//! `netfwd cluster status -c FILE [--json]`: the cluster's members and the
//! routes this host has in force.

use std::path::Path;

use anyhow::Result;

use crate::{
    cluster::{self, ClusterStatus},
    config::{self, Config},
    input_error,
};

pub async fn exec_status(config_path: &Path, json: bool) -> Result<()> {
    let Config::Member(member) = config::load_config(config_path)? else {
        return Err(input_error!(
            "{}: no [cluster] section: the network is not a cluster member",
            config_path.display()
        ));
    };
    let status = cluster::status(&member).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print_human(&status);
    }
    Ok(())
}

fn print_human(s: &ClusterStatus) {
    println!(
        "network {}  node {}  pool {}  backend {}  lease ttl {} s  subnet {}",
        s.network,
        s.node,
        s.pool,
        s.backend,
        s.lease_ttl,
        s.subnet
            .map_or_else(|| "none".to_owned(), |n| n.to_string())
    );
    if let Some(tunnel) = &s.tunnel {
        println!(
            "  tunnel {}  vni {}  udp port {}",
            tunnel.device, tunnel.vni, tunnel.port
        );
    }
    match &s.etcd_error {
        Some(e) => println!("  etcd unreachable: {e}"),
        None => {
            println!(
                "  {:<16} {:<18} {:<15} {:<8} {:>9}",
                "NODE", "SUBNET", "LAN-ADDR", "BACKEND", "TTL-LEFT"
            );
            for h in &s.hosts {
                let ttl = h
                    .lease_ttl_left
                    .map_or_else(|| "-".to_owned(), |t| format!("{t} s"));
                println!(
                    "  {:<16} {:<18} {:<15} {:<8} {:>9}",
                    h.node,
                    h.subnet.to_string(),
                    h.lan_addr.to_string(),
                    h.backend.to_string(),
                    ttl
                );
            }
        }
    }
    println!("  routes in force ({}):", s.routes.len());
    for r in &s.routes {
        let how = if r.tunnel {
            "through the tunnel to"
        } else {
            "via"
        };
        println!("    {} {how} {}", r.subnet, r.via);
    }
}
