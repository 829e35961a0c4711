//! What `status` and `stats` report: the networks of this namespace (and
//! the orphans of any), their endpoints, uplink and LAN, the programs
//! attached to them and the datapath's counters, gathered from the state,
//! netlink and the pinned maps. The commands only print it.

use std::collections::BTreeMap;

use anyhow::Result;
use netfwd_common::{
    counters::IfaceCounters,
    drop::{DROP_REASON_SLOTS, DropReason},
};
use serde::Serialize;

use crate::{
    config::{Mode, Network, Proto},
    loader::{self, AttachedProgram, NetworkDatapath, nat_table::FlowKind},
    name::NetworkName,
    netlink::{Link, Netlink, format_mac},
    netns,
    state::State,
};

#[derive(Serialize)]
pub struct StatusReport {
    pub networks: Vec<NetworkStatus>,
}

#[derive(Serialize)]
pub struct NetworkStatus {
    pub name: NetworkName,
    pub subnet: String,
    pub gateway: String,
    /// A dual-stack network's IPv6 prefix and gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<String>,
    /// A dual-stack network with an uplink: whether its IPv6 is
    /// masqueraded (NAT66) or leaves with the endpoints' own addresses
    /// (`nat6 = false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat6: Option<bool>,
    pub mtu: u32,
    /// As configured; each interface shows what it runs.
    pub mode: Mode,
    /// Its host namespace is gone (and its veths with it); `down --name`
    /// from any namespace removes what is left.
    pub orphaned: bool,
    pub pin_dir: String,
    pub created_netns: Vec<String>,
    pub endpoints: Vec<EndpointStatus>,
    pub uplink: Option<HostInterfaceStatus>,
    pub lan: Option<HostInterfaceStatus>,
    /// The VXLAN device (`backend = "vxlan"`).
    pub tunnel: Option<HostInterfaceStatus>,
    pub nat: Option<NatStatus>,
    pub published: Vec<PublishedStatus>,
}

/// A host interface a network reaches past its endpoints by: the uplink,
/// the LAN interface or the VXLAN device.
#[derive(Serialize)]
pub struct HostInterfaceStatus {
    pub ifname: String,
    pub ifindex: Option<u32>,
    /// Its primary IPv4 address (what endpoints are masqueraded to).
    pub addr: Option<String>,
    pub program: Option<ProgramStatus>,
    /// XDP in front of TC, or TC alone.
    pub mode: Mode,
    pub counters: Option<CountersStatus>,
}

#[derive(Serialize)]
pub struct NatStatus {
    /// The network's flows.
    pub flows: usize,
    /// Every flow of the uplink's table (each network's on it), by
    /// protocol and state.
    pub by_kind: Vec<FlowKind>,
    pub max_flows: u32,
    pub port_min: u16,
    pub port_max: u16,
    /// What the kernel charges for the NAT table.
    pub memory_bytes: u64,
    /// Where the uplink's table is pinned (shared by the networks on it).
    pub table: Option<String>,
}

#[derive(Serialize)]
pub struct PublishedStatus {
    pub proto: Proto,
    pub host_port: u16,
    pub endpoint: String,
    pub port: u16,
    /// 0.0.0.0: every address; 127.0.0.1: the host only.
    pub host_ip: String,
}

#[derive(Serialize)]
pub struct EndpointStatus {
    pub netns: String,
    pub ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip6: Option<String>,
    /// MAC of the endpoint's eth0, as the datapath knows it.
    pub mac: Option<String>,
    pub host_ifname: String,
    pub host_ifindex: Option<u32>,
    pub host_mac: Option<String>,
    pub program: Option<ProgramStatus>,
    /// XDP in front of TC on its veth, or TC alone.
    pub mode: Mode,
    pub counters: Option<CountersStatus>,
    /// How it was attached with `netfwd attach`; `None` for config endpoints.
    pub attached: Option<AttachedStatus>,
    /// Its namespace is there (an attached process may have exited).
    pub present: bool,
}

#[derive(Serialize)]
pub struct AttachedStatus {
    pub pid: Option<u32>,
    pub netns_path: String,
    /// Set for endpoints a CNI ADD made.
    pub container_id: Option<String>,
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
    pub translated: u64,
    pub dropped: u64,
    pub dropped_bytes: u64,
    /// Packets dropped, by reason.
    pub drops: BTreeMap<&'static str, u64>,
    /// Bytes dropped, by reason.
    pub drop_bytes: BTreeMap<&'static str, u64>,
}

impl From<&IfaceCounters> for CountersStatus {
    fn from(c: &IfaceCounters) -> Self {
        Self {
            rx_packets: c.rx_packets,
            rx_bytes: c.rx_bytes,
            redirected: c.redirected,
            to_host: c.to_host,
            arp_replies: c.arp_replies,
            translated: c.translated,
            dropped: c.dropped(),
            dropped_bytes: c.dropped_bytes(),
            drops: by_reason(&c.drops),
            drop_bytes: by_reason(&c.drop_bytes),
        }
    }
}

/// A per-reason counter array by reason name.
fn by_reason(slots: &[u64; DROP_REASON_SLOTS]) -> BTreeMap<&'static str, u64> {
    DropReason::ALL
        .iter()
        .map(|r| (r.name(), slots[r.slot()]))
        .collect()
}

/// The networks of this namespace, and the orphans of any.
pub async fn status(name: Option<&NetworkName>) -> Result<StatusReport> {
    let here = netns::Here::current()?;
    let mut states = Vec::new();
    for st in State::all()?
        .into_iter()
        .filter(|s| name.is_none_or(|n| s.network.name == *n))
    {
        if st.lives_in(&here) {
            states.push((st, false));
        } else if st.is_orphan()? {
            states.push((st, true));
        }
    }
    if let Some(name) = name
        && states.is_empty()
    {
        return Err(crate::input_error!(
            "--name: no network {name} in this network namespace"
        ));
    }
    let host = Netlink::current()?;
    let mut networks = Vec::with_capacity(states.len());
    for (st, orphaned) in &states {
        // An orphan's interfaces went with its namespace: none of ours here
        // is one of them.
        let host = (!orphaned).then_some(&host);
        networks.push(network_status(host, st).await?);
    }
    Ok(StatusReport { networks })
}

/// A network's status; `host` is `None` for an orphan (no interface facts).
async fn network_status(host: Option<&Netlink>, st: &State) -> Result<NetworkStatus> {
    let net: &Network = &st.network;
    // A network whose pins are gone (half-made, or torn down under us) still
    // shows, without datapath facts.
    let maps = NetworkDatapath::open(&net.name).ok();
    let macs = match &maps {
        Some(m) => m.endpoint_macs()?,
        None => BTreeMap::new(),
    };
    let counters = match &maps {
        Some(m) => m.counters()?,
        None => BTreeMap::new(),
    };
    let listed = net
        .endpoints
        .iter()
        .map(|ep| {
            (
                ep.netns.clone(),
                (ep.ip, ep.ip6),
                ep.slot,
                None,
                netns::exists(&ep.netns).unwrap_or(false),
            )
        })
        .chain(st.attached.iter().map(|a| {
            let how = AttachedStatus {
                pid: a.pid,
                netns_path: a.netns_path.display().to_string(),
                container_id: a.container_id.clone(),
            };
            (
                how.netns_path.clone(),
                (a.ip, a.ip6),
                a.slot,
                Some(how),
                a.present(),
            )
        }));
    let mut endpoints = Vec::new();
    for (netns, (ip, ip6), slot, attached, present) in listed {
        let host_ifname = net.host_ifname(slot);
        let link = match host {
            Some(host) => host.link_by_name(&host_ifname).await?,
            None => None,
        };
        let program = match &link {
            Some(_) => loader::attached(&net.name, &host_ifname)?,
            None => None,
        };
        let host_ifindex = link.as_ref().map(|l| l.index);
        let mode = iface_mode(&net.name, link.as_ref())?;
        endpoints.push(EndpointStatus {
            netns,
            ip: ip.to_string(),
            ip6: ip6.map(|ip6| ip6.to_string()),
            mac: macs.get(&ip).map(|mac| format_mac(*mac)),
            host_ifname,
            host_ifindex,
            host_mac: link.as_ref().map(|l| format_mac(l.mac)),
            program: program.map(ProgramStatus::from),
            mode,
            counters: host_ifindex
                .and_then(|i| counters.get(&i))
                .map(CountersStatus::from),
            attached,
            present,
        });
    }
    let uplink = match (host, &net.uplink) {
        (Some(host), Some(ifname)) => {
            Some(host_interface_status(host, &net.name, ifname, &counters).await?)
        }
        _ => None,
    };
    let lan = match (host, &net.lan) {
        (Some(host), Some(ifname)) => {
            Some(host_interface_status(host, &net.name, ifname, &counters).await?)
        }
        _ => None,
    };
    let tunnel = match (host, &net.vxlan) {
        (Some(host), Some(_)) => {
            Some(host_interface_status(host, &net.name, &net.vxlan_ifname(), &counters).await?)
        }
        _ => None,
    };
    let nat = match (&maps, &net.uplink) {
        (Some(m), Some(uplink)) => {
            let (memory_bytes, max_flows) = m.nat_capacity()?;
            let census = m.flow_census(net.flow_subnets())?;
            Some(NatStatus {
                flows: census.subnet_flows,
                by_kind: census.by_kind,
                max_flows,
                port_min: net.nat.port_min,
                port_max: net.nat.port_max,
                memory_bytes,
                table: st
                    .host_netns_cookie
                    .map(|cookie| loader::uplink_nat_shown(cookie, uplink)),
            })
        }
        _ => None,
    };
    let published = st
        .all_published()
        .iter()
        .map(|p| PublishedStatus {
            proto: p.proto,
            host_port: p.host_port,
            endpoint: p.ip.to_string(),
            port: p.port,
            host_ip: p.host_ip.to_string(),
        })
        .collect();
    Ok(NetworkStatus {
        name: net.name.clone(),
        subnet: net.subnet.to_string(),
        gateway: net.gateway.to_string(),
        subnet6: net.ipv6.map(|v6| v6.subnet.to_string()),
        gateway6: net.ipv6.map(|v6| v6.gateway.to_string()),
        nat6: net.ipv6.filter(|_| net.uplink.is_some()).map(|v6| v6.nat),
        mtu: net.mtu,
        mode: net.mode,
        orphaned: host.is_none(),
        pin_dir: loader::pins_shown(&net.name),
        created_netns: st.created_netns.clone(),
        endpoints,
        uplink,
        lan,
        tunnel,
        nat,
        published,
    })
}

impl From<AttachedProgram> for ProgramStatus {
    fn from(AttachedProgram { id, tag }: AttachedProgram) -> Self {
        Self {
            id,
            tag: format!("{tag:016x}"),
        }
    }
}

async fn host_interface_status(
    host: &Netlink,
    network: &NetworkName,
    ifname: &str,
    counters: &BTreeMap<u32, IfaceCounters>,
) -> Result<HostInterfaceStatus> {
    let link = host.link_by_name(ifname).await?;
    let (addr, program) = match &link {
        Some(l) => (
            host.ipv4_addresses(l.index)
                .await?
                .first()
                .map(|a| a.addr().to_string()),
            loader::attached(network, ifname)?.map(ProgramStatus::from),
        ),
        None => (None, None),
    };
    let mode = iface_mode(network, link.as_ref())?;
    let ifindex = link.map(|l| l.index);
    Ok(HostInterfaceStatus {
        ifname: ifname.to_owned(),
        ifindex,
        addr,
        program,
        mode,
        counters: ifindex
            .and_then(|i| counters.get(&i))
            .map(CountersStatus::from),
    })
}

/// XDP where our XDP link runs on the interface, else TC.
fn iface_mode(network: &NetworkName, link: Option<&Link>) -> Result<Mode> {
    Ok(match link {
        Some(l) if loader::xdp_attached(network, l)? => Mode::Xdp,
        _ => Mode::Tc,
    })
}

#[derive(Serialize)]
pub struct StatsReport {
    pub networks: Vec<NetworkStats>,
}

#[derive(Serialize)]
pub struct NetworkStats {
    pub name: NetworkName,
    pub interfaces: Vec<InterfaceStats>,
}

#[derive(Serialize)]
pub struct InterfaceStats {
    pub ifname: String,
    pub ifindex: u32,
    pub role: &'static str,
    #[serde(flatten)]
    pub counters: CountersStatus,
}

/// The counters of every interface of each network (the endpoints'
/// host-side veths, the uplink, the LAN, the tunnel), as `status` finds
/// them.
pub async fn stats(name: Option<&NetworkName>) -> Result<StatsReport> {
    let status = status(name).await?;
    let networks = status
        .networks
        .into_iter()
        .map(|net| {
            let endpoints = net
                .endpoints
                .into_iter()
                .map(|e| ("endpoint", e.host_ifname, e.host_ifindex, e.counters));
            let host_interfaces = [
                ("uplink", net.uplink),
                ("lan", net.lan),
                ("tunnel", net.tunnel),
            ]
            .into_iter()
            .filter_map(|(role, x)| x.map(|x| (role, x.ifname, x.ifindex, x.counters)));
            let interfaces = endpoints
                .chain(host_interfaces)
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
    Ok(StatsReport { networks })
}
