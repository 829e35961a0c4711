//! `netfwd nat list [--name NET] [--json]`: the NAT flows of each network.

use anyhow::Result;
use serde::Serialize;

use crate::{
    loader::{
        NetworkDatapath,
        nat_table::{self, Flow},
    },
    name::NetworkName,
    netns,
    state::State,
};

#[derive(Serialize)]
struct NatReport {
    networks: Vec<NetworkFlows>,
}

#[derive(Serialize)]
struct NetworkFlows {
    name: NetworkName,
    flows: Vec<Flow>,
}

pub async fn exec_list(name: Option<&NetworkName>, json: bool) -> Result<()> {
    let here = netns::Here::current()?;
    let now = nat_table::now_ns()?;
    let mut networks = Vec::new();
    for st in State::all()?
        .into_iter()
        .filter(|s| s.lives_in(&here) && name.is_none_or(|n| s.network.name == *n))
    {
        let flows = match NetworkDatapath::open(&st.network.name) {
            Ok(datapath) => datapath.flows(st.network.flow_subnets(), &st.network.nat, now)?,
            Err(_) => Vec::new(),
        };
        networks.push(NetworkFlows {
            name: st.network.name,
            flows,
        });
    }
    if let Some(name) = name
        && networks.is_empty()
    {
        return Err(crate::input_error!(
            "--name: no network {name} in this network namespace"
        ));
    }
    let report = NatReport { networks };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    for net in &report.networks {
        println!("network {}: {} flows", net.name, net.flows.len());
        println!(
            "  {:<5} {:<21} {:<21} {:<21} {:<12} {:>7} {:>9}",
            "PROTO", "INSIDE", "UPLINK", "REMOTE", "STATE", "AGE", "EXPIRES"
        );
        for f in &net.flows {
            println!(
                "  {:<5} {:<21} {:<21} {:<21} {:<12} {:>6}s {:>8}s",
                f.protocol, f.inside, f.uplink, f.remote, f.state, f.age_secs, f.expires_in_secs
            );
        }
    }
    Ok(())
}
