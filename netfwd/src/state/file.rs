//! The state file's own format, apart from the config model: the model may
//! change shape in any release, while a later netfwd must still read the
//! state today's wrote (to take down what it made). Each format has a
//! version; files of netfwd before versions were written are version 1.
//! Version 2, which this one writes, records each endpoint's slot (its
//! veth's name), which version 1 derived from the IPv4 address: read, a
//! version-1 file gets the slots its veths were named by.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Attachment, State};
use ipnet::{Ipv4Net, Ipv6Net};

use crate::{
    config::{
        Endpoint, Ipv6Network, Kind, Mode, NatSettings, Network, Peer, Proto, Published, Slot,
        Vxlan,
    },
    name::NetworkName,
    netns::NetnsId,
};

/// The version this netfwd writes, and the newest it reads.
const VERSION: u32 = 2;

/// A state file, version 2.
#[derive(Serialize, Deserialize)]
struct StateFile {
    #[serde(default = "version_1")]
    version: u32,
    network: NetworkRecord,
    host_netns: NetnsId,
    #[serde(default)]
    host_netns_cookie: Option<u64>,
    created_netns: Vec<String>,
    #[serde(default)]
    attached: Vec<Attachment>,
    #[serde(default)]
    published: Vec<PublishedRecord>,
}

/// Files from before versions were written lack the field.
fn version_1() -> u32 {
    1
}

/// Only the version, read first: a later format need not parse as this one.
#[derive(Deserialize)]
struct Versioned {
    #[serde(default = "version_1")]
    version: u32,
}

#[derive(Serialize, Deserialize)]
struct NetworkRecord {
    name: NetworkName,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    /// Added within version 2: absent, the network is IPv4 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipv6: Option<Ipv6Record>,
    mtu: u32,
    endpoints: Vec<EndpointRecord>,
    #[serde(default)]
    uplink: Option<String>,
    #[serde(default)]
    nat: NatRecord,
    #[serde(default)]
    kind: Kind,
    #[serde(default)]
    lan: Option<String>,
    #[serde(default)]
    peers: Vec<PeerRecord>,
    #[serde(default = "yes")]
    icc: bool,
    #[serde(default)]
    allow: Vec<NetworkName>,
    #[serde(default)]
    published: Vec<PublishedRecord>,
    #[serde(default)]
    host_cgroup: Option<PathBuf>,
    #[serde(default)]
    mode: Mode,
    /// Added within version 1 (`backend = "vxlan"`); written only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vxlan: Option<VxlanV1>,
}

#[derive(Serialize, Deserialize)]
struct VxlanV1 {
    vni: u32,
    port: u16,
}

fn yes() -> bool {
    true
}

#[derive(Serialize, Deserialize)]
struct EndpointRecord {
    netns: String,
    ip: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip6: Option<Ipv6Addr>,
    slot: Slot,
}

#[derive(Serialize, Deserialize)]
struct Ipv6Record {
    subnet: Ipv6Net,
    gateway: Ipv6Addr,
    /// Added within version 2 (`nat6`); absent: NAT66, as before.
    #[serde(default = "yes")]
    nat: bool,
}

#[derive(Serialize, Deserialize)]
struct PeerRecord {
    subnet: Ipv4Net,
    via: Ipv4Addr,
    /// Added within version 1: through the VXLAN tunnel; written only when
    /// true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    tunnel: bool,
}

#[derive(Serialize, Deserialize)]
struct PublishedRecord {
    proto: Proto,
    host_port: u16,
    ip: Ipv4Addr,
    port: u16,
    /// Added within version 1: files without it publish on every address,
    /// and a port on every address is written without it (as before).
    #[serde(
        default = "crate::config::every_address",
        skip_serializing_if = "Ipv4Addr::is_unspecified"
    )]
    host_ip: Ipv4Addr,
}

/// The NAT settings; in the model their timeouts are the datapath's own
/// struct, here plain fields.
#[derive(Serialize, Deserialize)]
struct NatRecord {
    port_min: u16,
    port_max: u16,
    max_flows: u32,
    timeouts: TimeoutsRecord,
}

#[derive(Serialize, Deserialize)]
struct TimeoutsRecord {
    tcp_syn: u32,
    tcp_established: u32,
    tcp_closing: u32,
    udp: u32,
    icmp: u32,
}

impl Default for NatRecord {
    fn default() -> Self {
        NatRecord::from(&NatSettings::default())
    }
}

impl From<&NatSettings> for NatRecord {
    fn from(n: &NatSettings) -> Self {
        let t = &n.timeouts;
        NatRecord {
            port_min: n.port_min,
            port_max: n.port_max,
            max_flows: n.max_flows,
            timeouts: TimeoutsRecord {
                tcp_syn: t.tcp_syn,
                tcp_established: t.tcp_established,
                tcp_closing: t.tcp_closing,
                udp: t.udp,
                icmp: t.icmp,
            },
        }
    }
}

impl From<NatRecord> for NatSettings {
    fn from(n: NatRecord) -> Self {
        let mut settings = NatSettings {
            port_min: n.port_min,
            port_max: n.port_max,
            max_flows: n.max_flows,
            ..NatSettings::default()
        };
        let t = &mut settings.timeouts;
        t.tcp_syn = n.timeouts.tcp_syn;
        t.tcp_established = n.timeouts.tcp_established;
        t.tcp_closing = n.timeouts.tcp_closing;
        t.udp = n.timeouts.udp;
        t.icmp = n.timeouts.icmp;
        settings
    }
}

impl From<&Published> for PublishedRecord {
    fn from(p: &Published) -> Self {
        PublishedRecord {
            proto: p.proto,
            host_port: p.host_port,
            ip: p.ip,
            port: p.port,
            host_ip: p.host_ip,
        }
    }
}

impl From<PublishedRecord> for Published {
    fn from(p: PublishedRecord) -> Self {
        Published {
            proto: p.proto,
            host_port: p.host_port,
            ip: p.ip,
            port: p.port,
            host_ip: p.host_ip,
        }
    }
}

impl From<&Network> for NetworkRecord {
    fn from(n: &Network) -> Self {
        NetworkRecord {
            name: n.name.clone(),
            subnet: n.subnet,
            gateway: n.gateway,
            ipv6: n.ipv6.map(|v6| Ipv6Record {
                subnet: v6.subnet,
                gateway: v6.gateway,
                nat: v6.nat,
            }),
            mtu: n.mtu,
            endpoints: n
                .endpoints
                .iter()
                .map(|e| EndpointRecord {
                    netns: e.netns.clone(),
                    ip: e.ip,
                    ip6: e.ip6,
                    slot: e.slot,
                })
                .collect(),
            uplink: n.uplink.clone(),
            nat: NatRecord::from(&n.nat),
            kind: n.kind,
            lan: n.lan.clone(),
            peers: n
                .peers
                .iter()
                .map(|p| PeerRecord {
                    subnet: p.subnet,
                    via: p.via,
                    tunnel: p.tunnel,
                })
                .collect(),
            icc: n.icc,
            allow: n.allow.clone(),
            published: n.published.iter().map(PublishedRecord::from).collect(),
            host_cgroup: n.host_cgroup.clone(),
            mode: n.mode,
            vxlan: n.vxlan.map(|v| VxlanV1 {
                vni: v.vni,
                port: v.port,
            }),
        }
    }
}

impl From<NetworkRecord> for Network {
    fn from(n: NetworkRecord) -> Self {
        Network {
            name: n.name,
            subnet: n.subnet,
            gateway: n.gateway,
            ipv6: n.ipv6.map(|v6| Ipv6Network {
                subnet: v6.subnet,
                gateway: v6.gateway,
                nat: v6.nat,
            }),
            mtu: n.mtu,
            endpoints: n
                .endpoints
                .into_iter()
                .map(|e| Endpoint {
                    netns: e.netns,
                    ip: e.ip,
                    ip6: e.ip6,
                    slot: e.slot,
                })
                .collect(),
            uplink: n.uplink,
            nat: n.nat.into(),
            kind: n.kind,
            lan: n.lan,
            peers: n
                .peers
                .into_iter()
                .map(|p| Peer {
                    subnet: p.subnet,
                    via: p.via,
                    tunnel: p.tunnel,
                })
                .collect(),
            icc: n.icc,
            allow: n.allow,
            published: n.published.into_iter().map(Published::from).collect(),
            host_cgroup: n.host_cgroup,
            mode: n.mode,
            vxlan: n.vxlan.map(|v| Vxlan {
                vni: v.vni,
                port: v.port,
            }),
        }
    }
}

/// The state as this netfwd writes it.
pub(super) fn write(st: &State) -> Result<String> {
    let file = StateFile {
        version: VERSION,
        network: NetworkRecord::from(&st.network),
        host_netns: st.host_netns,
        host_netns_cookie: st.host_netns_cookie,
        created_netns: st.created_netns.clone(),
        attached: st.attached.clone(),
        published: st.published.iter().map(PublishedRecord::from).collect(),
    };
    Ok(serde_json::to_string_pretty(&file)?)
}

/// A state of any version this netfwd reads.
pub(super) fn read(text: &str) -> Result<State> {
    let mut value: Value = serde_json::from_str(text)?;
    let Versioned { version } = serde_json::from_value(value.clone())?;
    if version > VERSION {
        bail!("state version {version} is of a later netfwd (this one reads up to {VERSION})");
    }
    if version == 1 {
        slots_of_v1(&mut value).context("reading a version-1 state")?;
    }
    let file: StateFile = serde_json::from_value(value)?;
    Ok(State {
        network: file.network.into(),
        host_netns: file.host_netns,
        host_netns_cookie: file.host_netns_cookie,
        created_netns: file.created_netns,
        attached: file.attached,
        published: file.published.into_iter().map(Published::from).collect(),
    })
}

/// Version 1 named each endpoint's veths by its address's host part: that is
/// the slot of each endpoint and attachment.
fn slots_of_v1(file: &mut Value) -> Result<()> {
    let subnet: Ipv4Net = serde_json::from_value(file["network"]["subnet"].clone())?;
    let listed = file
        .get_mut("network")
        .and_then(|network| network.get_mut("endpoints"));
    slot_each_by_address(listed, subnet)?;
    slot_each_by_address(file.get_mut("attached"), subnet)
}

fn slot_each_by_address(endpoints: Option<&mut Value>, subnet: Ipv4Net) -> Result<()> {
    let endpoints = endpoints
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten();
    for endpoint in endpoints.filter_map(Value::as_object_mut) {
        let ip = serde_json::from_value(endpoint.get("ip").cloned().unwrap_or_default())?;
        let slot = Slot::of_v1_address(subnet, ip)?;
        endpoint.insert("slot".to_owned(), serde_json::to_value(slot)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state file as netfwd wrote it before states had versions (the
    /// config model serialised as it was): a network with an uplink, a
    /// LAN, a peer, a published port, an attached endpoint and a run-time
    /// published port.
    const UNVERSIONED: &str = r#"{
  "network": {
    "name": "demo",
    "subnet": "10.88.0.0/24",
    "gateway": "10.88.0.1",
    "mtu": 1500,
    "endpoints": [
      { "netns": "nfa", "ip": "10.88.0.2" }
    ],
    "uplink": "eth0",
    "nat": {
      "port_min": 61000,
      "port_max": 65535,
      "max_flows": 65536,
      "timeouts": {
        "tcp_syn": 60,
        "tcp_established": 21600,
        "tcp_closing": 30,
        "udp": 60,
        "icmp": 30
      }
    },
    "kind": "bridge",
    "lan": "eth1",
    "peers": [
      { "subnet": "10.89.0.0/24", "via": "192.168.1.2" }
    ],
    "icc": false,
    "allow": ["other"],
    "published": [
      { "proto": "tcp", "host_port": 8080, "ip": "10.88.0.2", "port": 80 }
    ],
    "host_cgroup": null,
    "mode": "xdp"
  },
  "host_netns": { "dev": 4, "ino": 4026531840 },
  "host_netns_cookie": 1,
  "created_netns": ["nfa"],
  "attached": [
    {
      "ip": "10.88.0.3",
      "ifname": "eth0",
      "netns_path": "/proc/42/ns/net",
      "pid": 42,
      "netns_id": { "dev": 4, "ino": 4026532000 },
      "container_id": "c0ffee"
    }
  ],
  "published": [
    { "proto": "udp", "host_port": 5353, "ip": "10.88.0.3", "port": 53 }
  ]
}"#;

    #[test]
    fn an_unversioned_state_is_read_as_version_1() {
        let st = read(UNVERSIONED).unwrap();
        let net = &st.network;
        assert_eq!(net.name.as_str(), "demo");
        assert_eq!(net.subnet.to_string(), "10.88.0.0/24");
        assert_eq!(net.uplink.as_deref(), Some("eth0"));
        assert_eq!(net.lan.as_deref(), Some("eth1"));
        assert_eq!(
            (net.icc, net.mode, net.kind),
            (false, Mode::Xdp, Kind::Bridge)
        );
        assert_eq!(net.nat, NatSettings::default());
        assert_eq!(net.peers[0].via, Ipv4Addr::new(192, 168, 1, 2));
        assert_eq!(net.published[0].host_port, 8080);
        assert!(!net.published[0].host_only(), "every address");
        assert_eq!(st.host_netns_cookie, Some(1));
        assert_eq!(st.created_netns, ["nfa"]);
        assert_eq!(st.attached[0].container_id.as_deref(), Some("c0ffee"));
        assert_eq!(st.published[0].proto, Proto::Udp);
        // Its veths keep the names they were made with: the host parts.
        assert_eq!(net.host_ifname(net.endpoints[0].slot), "nfdemo-2");
        assert_eq!(net.host_ifname(st.attached[0].slot), "nfdemo-3");
    }

    /// Version 2 is the unversioned format with its version and each
    /// endpoint's slot written.
    #[test]
    fn version_2_is_the_unversioned_format_with_slots() {
        let written: serde_json::Value =
            serde_json::from_str(&write(&read(UNVERSIONED).unwrap()).unwrap()).unwrap();
        let mut expected: serde_json::Value = serde_json::from_str(UNVERSIONED).unwrap();
        expected["version"] = 2.into();
        expected["network"]["endpoints"][0]["slot"] = 2.into();
        expected["attached"][0]["slot"] = 3.into();
        assert_eq!(written, expected);
    }

    /// A slot read from version 2 is the one recorded, whatever the address.
    #[test]
    fn a_version_2_slot_is_kept() {
        let v2 = UNVERSIONED
            .replacen('{', r#"{"version": 2,"#, 1)
            .replace(
                r#"{ "netns": "nfa", "ip": "10.88.0.2" }"#,
                r#"{ "netns": "nfa", "ip": "10.88.0.2", "slot": 7 }"#,
            )
            .replace(r#""ip": "10.88.0.3","#, r#""ip": "10.88.0.3", "slot": 0,"#);
        let st = read(&v2).unwrap();
        assert_eq!(
            st.network.host_ifname(st.network.endpoints[0].slot),
            "nfdemo-7"
        );
        assert_eq!(st.network.host_ifname(st.attached[0].slot), "nfdemo-0");
        let v2_without_slot = UNVERSIONED.replacen('{', r#"{"version": 2,"#, 1);
        assert!(read(&v2_without_slot).is_err());
    }

    /// A version-1 file whose addresses are not its subnet's (hand-edited,
    /// or damaged) is refused, not misnamed.
    #[test]
    fn a_version_1_address_outside_its_subnet_is_refused() {
        let damaged = UNVERSIONED.replace(r#""subnet": "10.88.0.0/24""#, r#""subnet": 7"#);
        assert!(read(&damaged).is_err());
    }

    /// The oldest states lack what later netfwd added (cookie, attached
    /// and published endpoints, NAT settings, ...): they take the defaults.
    #[test]
    fn a_minimal_state_takes_the_defaults() {
        let st = read(
            r#"{"network":{"name":"old","subnet":"10.93.0.0/24","gateway":"10.93.0.1","mtu":1500,"endpoints":[]},
                "host_netns":{"dev":0,"ino":0},"created_netns":[]}"#,
        )
        .unwrap();
        assert!(st.network.icc);
        assert_eq!(st.network.nat, NatSettings::default());
        assert_eq!(st.host_netns_cookie, None);
        assert!(st.attached.is_empty() && st.published.is_empty());
    }

    #[test]
    fn a_state_of_a_later_version_is_refused() {
        let later = UNVERSIONED.replacen('{', r#"{"version": 3,"#, 1);
        let err = read(&later).unwrap_err();
        assert!(err.to_string().contains("later netfwd"), "{err}");
    }
}
