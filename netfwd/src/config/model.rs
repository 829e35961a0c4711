//! The validated network: what netfwd builds and runs on, every field checked
//! and every address decided. It holds netfwd's own types only; the datapath's
//! map types are made from it in one place (`convert_timeouts!`).

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use serde::{Deserialize, Serialize};

use netfwd_common::nat::{
    DEFAULT_MAX_FLOWS, DEFAULT_MAX_UNREPLIED_SHARE, DEFAULT_PORT_MAX, DEFAULT_PORT_MIN, NatTimeouts,
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::Slot;
use crate::name::NetworkName;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => netfwd_common::nat::IPPROTO_TCP,
            Proto::Udp => netfwd_common::nat::IPPROTO_UDP,
        }
    }
}

/// Where the datapath runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// TC (TCX) on every interface: measured fastest on veths.
    #[default]
    Tc,
    /// XDP in front of TC on the uplink and the host-side veths, for the
    /// packets it can finish (endpoint to endpoint, the ingress packets of
    /// NAT flows); TC alone where XDP cannot attach.
    Xdp,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Tc => "tc",
            Mode::Xdp => "xdp",
        })
    }
}

/// How endpoints are joined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One L2 segment, as on Docker's bridge: endpoints hold `IP/prefix` and
    /// resolve each other (the datapath answers their ARP).
    #[default]
    Bridge,
    /// Routed, as in seed 002: each endpoint holds `IP/32` and reaches
    /// everything through the gateway; the datapath routes between them.
    Routed,
}

/// A network as netfwd builds it: every field checked, every address decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: NetworkName,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Dual-stack: the IPv6 prefix beside the (mandatory) IPv4 subnet.
    #[serde(default)]
    pub ipv6: Option<Ipv6Network>,
    pub mtu: u32,
    pub endpoints: Vec<Endpoint>,
    /// Host interface endpoints are masqueraded behind; no NAT without it.
    #[serde(default)]
    pub uplink: Option<String>,
    #[serde(default)]
    pub nat: NatSettings,
    #[serde(default)]
    pub kind: Kind,
    /// Interface to the other hosts: what arrives on it for endpoints from a
    /// peer subnet or its own connected subnet is delivered without NAT.
    #[serde(default)]
    pub lan: Option<String>,
    #[serde(default)]
    pub peers: Vec<Peer>,
    /// Endpoints may talk to each other (Docker's inter-container
    /// communication).
    #[serde(default = "yes")]
    pub icc: bool,
    /// Other netfwd networks this one's endpoints may reach.
    #[serde(default)]
    pub allow: Vec<NetworkName>,
    #[serde(default)]
    pub published: Vec<Published>,
    /// The cgroup whose processes reach published ports on the host's own
    /// addresses; default: the root of the host's cgroup v2 hierarchy.
    #[serde(default)]
    pub host_cgroup: Option<PathBuf>,
    #[serde(default)]
    pub mode: Mode,
    /// The VXLAN tunnel to other cluster members (`backend = "vxlan"`).
    #[serde(default)]
    pub vxlan: Option<Vxlan>,
}

/// A dual-stack network's IPv6: its prefix, and the gateway's address in it
/// (held by the host, like the IPv4 gateway).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv6Network {
    pub subnet: Ipv6Net,
    pub gateway: Ipv6Addr,
    /// Masqueraded out of the uplink (NAT66, the default); `false`
    /// (`nat6 = false`, a public prefix routed to the host): the endpoints'
    /// own addresses leave the uplink untranslated.
    #[serde(default = "yes")]
    pub nat: bool,
}

/// A cluster member's VXLAN tunnel: one collect-metadata device per network
/// (`Network::vxlan_ifname`), over the LAN, the datapath setting each
/// packet's tunnel key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vxlan {
    /// The VXLAN network identifier every member of the cluster uses.
    pub vni: u32,
    /// The UDP port every member listens on and sends to.
    pub port: u16,
}

/// What VXLAN adds to an endpoint's packet over IPv4: outer IPv4 (20), UDP
/// (8), VXLAN (8) and the inner Ethernet header (14). The tunnel device's
/// MTU is the LAN's less this, and a vxlan member's endpoints default to
/// 1500 less this.
pub const VXLAN_OVERHEAD: u32 = 50;

/// A validated published port: host port -> endpoint address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub proto: Proto,
    pub host_port: u16,
    pub ip: Ipv4Addr,
    pub port: u16,
    /// 0.0.0.0 (every address: the uplink's, the hairpin's and the host's)
    /// or 127.0.0.1 (the host's own connections only); see `host_ip`.
    pub host_ip: Ipv4Addr,
}

/// A published port's default host address: every address (serde's
/// default where a file predates `host_ip`).
pub fn every_address() -> Ipv4Addr {
    Ipv4Addr::UNSPECIFIED
}

impl Network {
    /// The subnets its NAT flows are told apart by: IPv4's, and the IPv6
    /// prefix of a dual-stack network.
    pub fn flow_subnets(&self) -> (IpNet, Option<IpNet>) {
        (self.subnet.into(), self.ipv6.map(|v6| v6.subnet.into()))
    }

    /// Where a dual-stack network's endpoints route IPv6 through `gateway6`:
    /// everywhere when an uplink takes it on (NAT66); else the prefix alone
    /// (a default route would turn "network unreachable", which clients
    /// fall back to IPv4 on at once, into silence).
    pub fn ipv6_reach(&self) -> Option<Ipv6Net> {
        let v6 = self.ipv6?;
        Some(match self.uplink {
            Some(_) => Ipv6Net::default(),
            None => v6.subnet,
        })
    }
}

impl Published {
    /// Reached by the host's own connections to 127.0.0.1 only.
    pub fn host_only(&self) -> bool {
        self.host_ip.is_loopback()
    }
}

/// A published port's host address, as Docker's `-p [HOST_IP:]…` names it:
/// empty or 0.0.0.0 publishes on every address, 127.0.0.1 to the host's own
/// connections only. netfwd has no other address to bind to: the uplink's
/// may change, and the endpoints' gateway is not published on.
pub fn host_ip(field: &str, text: &str) -> anyhow::Result<Ipv4Addr> {
    match text {
        "" | "0.0.0.0" => Ok(every_address()),
        "127.0.0.1" => Ok(Ipv4Addr::LOCALHOST),
        other => Err(crate::input_error!(
            "{field}: {other:?}: a port is published on every address (0.0.0.0) or to the host only (127.0.0.1)"
        )),
    }
}

fn yes() -> bool {
    true
}

/// How a cluster member's endpoints reach the other members'.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The other member's LAN address is the next hop: hosts on one L2
    /// segment (flannel's host-gw).
    #[default]
    Direct,
    /// Encapsulated in VXLAN to the other member's LAN address, for hosts
    /// on different segments.
    Vxlan,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Direct => "direct",
            Backend::Vxlan => "vxlan",
        })
    }
}

/// A validated `[cluster]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub etcd: Vec<String>,
    pub tls: Option<ClusterTls>,
    pub pool: Ipv4Net,
    pub subnet_len: u8,
    pub node: String,
    pub backend: Backend,
    pub lease_ttl_secs: u64,
    /// The tunnel's settings, with `backend = "vxlan"` only.
    pub vxlan: Option<Vxlan>,
}

impl Cluster {
    /// The pool's subnets of `subnet_len`, lowest first.
    pub fn subnets(&self) -> impl Iterator<Item = Ipv4Net> + use<> {
        // Validated: `subnet_len` is within 32 and no shorter than the pool's
        // prefix, so there is no error to drop here.
        self.pool.subnets(self.subnet_len).into_iter().flatten()
    }

    /// Whether `subnet` is one of the pool's subnets.
    pub fn holds(&self, subnet: Ipv4Net) -> bool {
        subnet.prefix_len() == self.subnet_len && self.pool.contains(&subnet)
    }
}

/// TLS to etcd: the CA, and the client's own certificate if it has one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterTls {
    pub ca: PathBuf,
    pub identity: Option<(PathBuf, PathBuf)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub subnet: Ipv4Net,
    /// The other host's address on the LAN link.
    pub via: Ipv4Addr,
    /// Reached through the network's VXLAN tunnel, `via` its far end (a
    /// vxlan cluster member), rather than routed with `via` the next hop.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tunnel: bool,
}

/// Source NAT settings (used when the network has an uplink).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatSettings {
    pub port_min: u16,
    pub port_max: u16,
    pub max_flows: u32,
    /// The percentage of the table one sender (an endpoint, a published
    /// endpoint port) may fill with flows nothing has answered yet.
    #[serde(default = "default_max_unreplied_share")]
    pub max_unreplied_share: u8,
    pub timeouts: Timeouts,
}

fn default_max_unreplied_share() -> u8 {
    DEFAULT_MAX_UNREPLIED_SHARE
}

impl Default for NatSettings {
    fn default() -> Self {
        NatSettings {
            port_min: DEFAULT_PORT_MIN,
            port_max: DEFAULT_PORT_MAX,
            max_flows: DEFAULT_MAX_FLOWS,
            max_unreplied_share: DEFAULT_MAX_UNREPLIED_SHARE,
            timeouts: Timeouts::default(),
        }
    }
}

/// How long an idle NAT flow lives, by state, in seconds. Serialized with the
/// field names `NatTimeouts` had when the model held it, so a state file
/// written then still reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// TCP before its handshake has completed.
    pub tcp_syn: u32,
    pub tcp_established: u32,
    /// TCP after a FIN or RST.
    pub tcp_closing: u32,
    pub udp: u32,
    pub icmp: u32,
}

impl Default for Timeouts {
    /// The datapath's defaults, so the numbers are written once.
    fn default() -> Self {
        NatTimeouts::DEFAULT.into()
    }
}

impl Timeouts {
    /// The shortest of them, by the datapath's own rule.
    pub fn shortest(self) -> u32 {
        NatTimeouts::from(self).shortest()
    }
}

/// Both conversions between the model's timeouts and the map type the
/// datapath reads, in one body: destructured, so a field added to either side
/// fails to compile here.
macro_rules! convert_timeouts {
    ($from:ident => $to:ident) => {
        impl From<$from> for $to {
            fn from(t: $from) -> Self {
                let $from {
                    tcp_syn,
                    tcp_established,
                    tcp_closing,
                    udp,
                    icmp,
                } = t;
                $to {
                    tcp_syn,
                    tcp_established,
                    tcp_closing,
                    udp,
                    icmp,
                }
            }
        }
    };
}
convert_timeouts!(Timeouts => NatTimeouts);
convert_timeouts!(NatTimeouts => Timeouts);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// ip-netns name: /run/netns/<netns>.
    pub netns: String,
    pub ip: Ipv4Addr,
    /// Its IPv6 address: in a dual-stack network, one of `Ipv6Network::subnet`.
    pub ip6: Option<Ipv6Addr>,
    /// Its veth's: in a parsed config, those of a fresh network (in the
    /// order listed); `up` keeps those the state recorded.
    pub slot: Slot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_convert_to_the_map_type_field_by_field() {
        let t = Timeouts {
            tcp_syn: 1,
            tcp_established: 2,
            tcp_closing: 3,
            udp: 4,
            icmp: 5,
        };
        let map = NatTimeouts {
            tcp_syn: 1,
            tcp_established: 2,
            tcp_closing: 3,
            udp: 4,
            icmp: 5,
        };
        assert_eq!(NatTimeouts::from(t), map);
        assert_eq!(Timeouts::from(map), t);
    }

    #[test]
    fn nat_settings_keep_their_serialized_shape() {
        let json = serde_json::to_string(&NatSettings::default()).unwrap();
        assert_eq!(
            json,
            r#"{"port_min":61000,"port_max":65535,"max_flows":65536,"max_unreplied_share":50,"timeouts":{"tcp_syn":60,"tcp_established":21600,"tcp_closing":30,"udp":60,"icmp":30}}"#
        );
    }
}
