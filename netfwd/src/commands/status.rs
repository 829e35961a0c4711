//! `netfwd status [--name NET] [--json]`: the networks of this namespace, their
//! endpoints, attached programs and datapath counters.

use std::collections::BTreeMap;

use anyhow::Result;
use netfwd_common::{counters::IfaceCounters, drop::DropReason};
use serde::Serialize;

use crate::{
    config::Network,
    loader::{self, AttachedProgram, DatapathMaps},
    netlink::Netlink,
    netns,
    state::State,
};

#[derive(Serialize)]
pub struct StatusReport {
    pub networks: Vec<NetworkStatus>,
}

#[derive(Serialize)]
pub struct NetworkStatus {
    pub name: String,
    pub subnet: String,
    pub gateway: String,
    pub mtu: u32,
    pub pin_dir: String,
    pub created_netns: Vec<String>,
    pub endpoints: Vec<EndpointStatus>,
}

#[derive(Serialize)]
pub struct EndpointStatus {
    pub netns: String,
    pub ip: String,
    /// MAC of the endpoint's eth0, as the datapath knows it.
    pub mac: Option<String>,
    pub host_ifname: String,
    pub host_ifindex: Option<u32>,
    pub host_mac: Option<String>,
    pub program: Option<ProgramStatus>,
    pub counters: Option<CountersStatus>,
}

#[derive(Serialize)]
pub struct ProgramStatus {
    pub id: u32,
    pub tag: String,
}

#[derive(Serialize)]
pub struct CountersStatus {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub redirected: u64,
    pub to_host: u64,
    pub arp_replies: u64,
    pub dropped: u64,
    pub drops: BTreeMap<&'static str, u64>,
}

impl From<&IfaceCounters> for CountersStatus {
    fn from(c: &IfaceCounters) -> Self {
        Self {
            rx_packets: c.rx_packets,
            rx_bytes: c.rx_bytes,
            redirected: c.redirected,
            to_host: c.to_host,
            arp_replies: c.arp_replies,
            dropped: c.dropped(),
            drops: DropReason::ALL
                .iter()
                .map(|r| (r.name(), c.drops[r.slot()]))
                .collect(),
        }
    }
}

pub async fn exec(name: Option<&str>, json: bool) -> Result<()> {
    let report = collect(name).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(&report);
    }
    Ok(())
}

pub async fn collect(name: Option<&str>) -> Result<StatusReport> {
    let here = netns::current_id()?;
    let states: Vec<State> = State::all()?
        .into_iter()
        .filter(|s| s.host_netns == here && name.is_none_or(|n| s.network.name == n))
        .collect();
    if let Some(name) = name
        && states.is_empty()
    {
        return Err(crate::input_error!(
            "--name: no network {name} in this network namespace"
        ));
    }
    let host = Netlink::current()?;
    let mut networks = Vec::with_capacity(states.len());
    for st in &states {
        networks.push(network_status(&host, st).await?);
    }
    Ok(StatusReport { networks })
}

async fn network_status(host: &Netlink, st: &State) -> Result<NetworkStatus> {
    let net: &Network = &st.network;
    let pin_dir = loader::pin_dir(&net.name);
    // A network whose pins are gone (half-made, or torn down under us) still
    // shows, without datapath facts.
    let maps = DatapathMaps::open(&pin_dir).ok();
    let entries = match &maps {
        Some(m) => m.endpoints()?,
        None => BTreeMap::new(),
    };
    let counters = match &maps {
        Some(m) => m.counters()?,
        None => BTreeMap::new(),
    };
    let mut endpoints = Vec::with_capacity(net.endpoints.len());
    for ep in &net.endpoints {
        let host_ifname = net.host_ifname(ep.ip);
        let link = host.link_by_name(&host_ifname).await?;
        let program = match &link {
            Some(_) => loader::attached(&net.name, &host_ifname)?,
            None => None,
        };
        let host_ifindex = link.as_ref().map(|l| l.index);
        endpoints.push(EndpointStatus {
            netns: ep.netns.clone(),
            ip: ep.ip.to_string(),
            mac: entries.get(&ep.ip).map(|e| format_mac(e.mac)),
            host_ifname,
            host_ifindex,
            host_mac: link.as_ref().map(|l| format_mac(l.mac)),
            program: program.map(|AttachedProgram { id, tag }| ProgramStatus {
                id,
                tag: format!("{tag:016x}"),
            }),
            counters: host_ifindex
                .and_then(|i| counters.get(&i))
                .map(CountersStatus::from),
        });
    }
    Ok(NetworkStatus {
        name: net.name.clone(),
        subnet: net.subnet.to_string(),
        gateway: net.gateway.to_string(),
        mtu: net.mtu,
        pin_dir: pin_dir.display().to_string(),
        created_netns: st.created_netns.clone(),
        endpoints,
    })
}

pub fn format_mac(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

fn print_human(report: &StatusReport) {
    if report.networks.is_empty() {
        println!("no netfwd network in this network namespace");
    }
    for net in &report.networks {
        println!(
            "network {}  subnet {}  gateway {}  mtu {}  pins {}",
            net.name, net.subnet, net.gateway, net.mtu, net.pin_dir
        );
        println!(
            "  {:<16} {:<15} {:<17} {:<12} {:>7} {:<8} {:>9} {:>10} {:>8} {:>6} {:>7}",
            "NETNS",
            "IP",
            "MAC",
            "HOST-IF",
            "IFINDEX",
            "PROG",
            "RX",
            "REDIRECT",
            "TO-HOST",
            "ARP",
            "DROPPED"
        );
        for ep in &net.endpoints {
            let c = ep.counters.as_ref();
            println!(
                "  {:<16} {:<15} {:<17} {:<12} {:>7} {:<8} {:>9} {:>10} {:>8} {:>6} {:>7}",
                ep.netns,
                ep.ip,
                ep.mac.as_deref().unwrap_or("-"),
                ep.host_ifname,
                ep.host_ifindex.map_or("-".into(), |i| i.to_string()),
                ep.program
                    .as_ref()
                    .map_or("none".into(), |p| p.id.to_string()),
                c.map_or(0, |c| c.rx_packets),
                c.map_or(0, |c| c.redirected),
                c.map_or(0, |c| c.to_host),
                c.map_or(0, |c| c.arp_replies),
                c.map_or(0, |c| c.dropped),
            );
        }
    }
}
