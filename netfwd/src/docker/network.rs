//! A Docker network as a netfwd network: `CreateNetwork`'s pool, gateway and
//! options written as a config file and checked by the same validation as
//! `up`'s, so a Docker user gets the messages a config author gets.

use std::net::Ipv4Addr;

use anyhow::{Context as _, Result, bail};
use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::protocol::{CreateNetwork, IpamData, Options, StaticRoute};
use crate::{
    config::{self, ClusterFile, Config, ConfigFile, Mode, Network, NetworkSection},
    input_error,
    name::NetworkName,
};

/// Docker's label for `--internal`.
const INTERNAL: &str = "com.docker.network.internal";
/// Docker's label for `--ipv6`.
const ENABLE_IPV6: &str = "com.docker.network.enable_ipv6";
/// Docker's route types: through a gateway (`types.NEXTHOP`), on the link
/// (`types.CONNECTED`).
const NEXT_HOP: u8 = 0;
const CONNECTED: u8 = 1;
/// Where Docker puts the user's `-o key=value` options.
const GENERIC: &str = "com.docker.network.generic";
/// The interface name prefix inside containers (`eth` by default).
const IFACE_PREFIX: &str = "com.docker.network.container_iface_prefix";

/// Docker's bridge-driver options netfwd maps to its own settings, and the
/// netfwd setting each sets.
const MAPPED: &[(&str, &str)] = &[
    ("com.docker.network.bridge.enable_icc", "icc"),
    ("com.docker.network.driver.mtu", "mtu"),
    (
        "com.docker.network.bridge.enable_ip_masquerade",
        "masquerade",
    ),
    (
        "com.docker.network.bridge.host_binding_ipv4",
        "host_binding",
    ),
    (
        "com.docker.network.bridge.gateway_mode_ipv6",
        "gateway_mode_ipv6",
    ),
];

/// Docker's bridge-driver options that have no meaning without a bridge or
/// iptables, with the reason given to the user.
const REFUSED: &[(&str, &str)] = &[
    (
        "com.docker.network.bridge.name",
        "netfwd makes no bridge (endpoints are veths joined by its datapath)",
    ),
    (
        "com.docker.network.bridge.default_bridge",
        "netfwd networks are never Docker's default bridge",
    ),
    (
        "com.docker.network.bridge.inhibit_ipv4",
        "the gateway address is the point of a netfwd network",
    ),
];

/// What the plugin keeps of a Docker network, besides netfwd's own state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerNetwork {
    pub network_id: String,
    pub name: NetworkName,
    /// `--internal`: no uplink, no gateway route in containers.
    pub internal: bool,
    /// `com.docker.network.container_iface_prefix`, default `eth`.
    pub iface_prefix: String,
    /// `com.docker.network.bridge.host_binding_ipv4`: the host address of
    /// a `-p` that names none (0.0.0.0 or 127.0.0.1).
    #[serde(default = "config::every_address")]
    pub host_binding: Ipv4Addr,
}

/// The netfwd name of Docker network `id`: `dk` and the ID's first six hex
/// digits (names are at most 8 characters; a clash is refused at create).
pub fn network_name(id: &str) -> Result<NetworkName> {
    check_id("NetworkID", id)?;
    NetworkName::parse("NetworkID", &format!("dk{}", &id[..6]))
}

/// Docker's object IDs are 64 lowercase hex digits; nothing else is used
/// as a file name.
pub fn check_id(field: &str, id: &str) -> Result<()> {
    if id.len() != 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(input_error!(
            "{field}: {id:?} is not a Docker ID (64 hex digits)"
        ));
    }
    Ok(())
}

/// The network `req` asks for, validated; `default_uplink` is the interface
/// of the host's default route, for a network that names none. `cluster` is
/// the cluster file of a pool netfwd's IPAM leased: the network is then a
/// member's, validated as a config with that `[cluster]` is.
pub fn from_request(
    req: &CreateNetwork,
    default_uplink: Option<&str>,
    cluster: Option<&ClusterFile>,
) -> Result<(DockerNetwork, Network)> {
    let name = network_name(&req.network_id)?;
    let internal = flag(&req.options, INTERNAL)?;
    let [pool] = req.ipv4_data.as_slice() else {
        return Err(input_error!(
            "IPv4Data: a netfwd network has exactly one IPv4 subnet, got {}",
            req.ipv4_data.len()
        ));
    };
    let (subnet6, gateway6) = match ipv6_pool(req)? {
        Some(pool) => (Some(pool.pool.clone()), gateway_address(pool)),
        None => (None, None),
    };
    let options = generic_options(&req.options)?;
    let mut section = NetworkSection {
        name: name.to_string(),
        subnet: Some(pool.pool.clone()),
        gateway: gateway_address(pool),
        subnet6,
        gateway6,
        nat6: None,
        mtu: None,
        uplink: None,
        kind: None,
        lan: cluster.map(|c| c.network.lan.clone()),
        icc: None,
        host_cgroup: None,
        mode: None,
    };
    let mut masquerade = true;
    let mut iface_prefix = "eth".to_owned();
    let mut host_binding = config::every_address();
    for (key, value) in &options {
        let setting = MAPPED
            .iter()
            .find(|(docker, _)| docker == key)
            .map_or(key.as_str(), |(_, ours)| ours);
        let field = format!("-o {key}");
        match setting {
            "uplink" => section.uplink = Some(value.clone()),
            "icc" => section.icc = Some(parse_bool(&field, value)?),
            "mtu" => {
                section.mtu = Some(
                    value
                        .parse()
                        .map_err(|_| input_error!("{field}: {value:?} is not an MTU"))?,
                )
            }
            "mode" => {
                section.mode = Some(
                    serde_json::from_value::<Mode>(Value::String(value.clone()))
                        .map_err(|_| input_error!("{field}: {value:?} is not tc or xdp"))?,
                )
            }
            "masquerade" => masquerade = parse_bool(&field, value)?,
            "host_binding" => host_binding = config::host_ip(&field, value)?,
            "gateway_mode_ipv6" => section.nat6 = nat6(&field, value)?,
            IFACE_PREFIX => {
                config::validate_ifname(&field, &format!("{value}0"))?;
                iface_prefix = value.clone();
            }
            "cluster" => {
                return Err(input_error!(
                    "{field}: Docker asks its IPAM for the subnet before the driver sees -o: give the cluster to netfwd's IPAM, --ipam-driver NAME --ipam-opt cluster=FILE"
                ));
            }
            _ => {
                if let Some((_, why)) = REFUSED.iter().find(|(docker, _)| docker == key) {
                    return Err(input_error!("{field}: not supported: {why}"));
                }
                return Err(input_error!(
                    "{field}: not an option of the netfwd driver (uplink, icc, mtu, mode, or Docker's {})",
                    MAPPED
                        .iter()
                        .map(|(k, _)| *k)
                        .chain([IFACE_PREFIX])
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    match (internal, masquerade, section.uplink.is_some()) {
        (true, _, true) => {
            return Err(input_error!(
                "-o uplink: an --internal network has no way out"
            ));
        }
        (false, false, true) => {
            return Err(input_error!(
                "-o com.docker.network.bridge.enable_ip_masquerade=false: netfwd always masquerades on its uplink; drop -o uplink"
            ));
        }
        (false, true, false) => {
            section.uplink = Some(default_uplink.map(str::to_owned).context(
                "the host has no IPv4 default route: name the uplink with -o uplink=IFACE",
            )?);
        }
        _ => {}
    }
    let leased = match cluster {
        Some(_) => {
            Some(crate::subnet::parse(&pool.pool).map_err(|e| input_error!("IPv4Data.Pool: {e}"))?)
        }
        None => None,
    };
    if leased.is_some() {
        // The member's own: the subnet leased, the gateway its first address.
        section.subnet = None;
        section.gateway = None;
    }
    let file = ConfigFile {
        network: section,
        endpoints: Vec::new(),
        nat: None,
        peers: Vec::new(),
        allows: Vec::new(),
        publishes: Vec::new(),
        cluster: cluster.map(|c| c.cluster.clone()),
    };
    let net = match (config::validate_config(file)?, leased) {
        (Config::Network(net), None) => net,
        (Config::Member(member), Some(subnet)) if member.cluster.holds(subnet) => {
            member.network(subnet)?
        }
        _ => bail!("IPv4Data.Pool: {} is not the cluster's", pool.pool),
    };
    Ok((
        DockerNetwork {
            network_id: req.network_id.clone(),
            name,
            internal,
            iface_prefix,
            host_binding,
        },
        net,
    ))
}

/// Docker 27's `gateway_mode_ipv6` as netfwd's `nat6`: `nat` (Docker's
/// default) masquerades IPv6 as netfwd does by default, `routed` routes a
/// public prefix as it is (`nat6 = false`).
fn nat6(field: &str, value: &str) -> Result<Option<bool>> {
    match value {
        "nat" => Ok(None),
        "routed" => Ok(Some(false)),
        _ => Err(input_error!("{field}: {value:?} is not nat or routed")),
    }
}

/// `--ipv6`'s pool: a dual-stack network has exactly one.
fn ipv6_pool(req: &CreateNetwork) -> Result<Option<&IpamData>> {
    if !flag(&req.options, ENABLE_IPV6)? {
        return Ok(None);
    }
    match req.ipv6_data.as_slice() {
        [pool] => Ok(Some(pool)),
        pools => Err(input_error!(
            "IPv6Data: a netfwd network has exactly one IPv6 prefix, got {}",
            pools.len()
        )),
    }
}

/// A pool's gateway without the prefix length Docker writes it with.
fn gateway_address(pool: &IpamData) -> Option<String> {
    let gateway = pool.gateway.as_deref()?;
    Some(
        gateway
            .split_once('/')
            .map_or(gateway, |(addr, _)| addr)
            .to_owned(),
    )
}

/// A boolean label of Docker's; absent is false.
fn flag(options: &Options, key: &str) -> Result<bool> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => parse_bool(key, s),
        Some(other) => bail!("{key}: {other} is not a boolean"),
    }
}

fn parse_bool(field: &str, value: &str) -> Result<bool> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(input_error!("{field}: {value:?} is not true or false")),
    }
}

/// The user's `-o` options, in the order Docker sent them.
fn generic_options(options: &Options) -> Result<Vec<(String, String)>> {
    let Some(generic) = options.get(GENERIC) else {
        return Ok(Vec::new());
    };
    let Value::Object(map) = generic else {
        bail!("{GENERIC}: not an object");
    };
    Ok(map
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k.clone(), s.clone()),
            other => (k.clone(), other.to_string()),
        })
        .collect())
}

/// The gateway's address for `Join`: empty for an internal network.
pub fn join_gateway(docker: &DockerNetwork, net: &Network) -> String {
    if docker.internal {
        String::new()
    } else {
        Ipv4Addr::to_string(&net.gateway)
    }
}

/// The IPv6 gateway's address for `Join` (Docker's default IPv6 route
/// through it): empty for an internal or an IPv4-only network, and for one
/// whose IPv6 reaches its prefix alone (no uplink: `Network::ipv6_reach`).
pub fn join_gateway6(docker: &DockerNetwork, net: &Network) -> String {
    match (&net.ipv6, net.ipv6_reach()) {
        (Some(v6), Some(reach)) if !docker.internal && reach.prefix_len() == 0 => {
            v6.gateway.to_string()
        }
        _ => String::new(),
    }
}

/// The container's routes to the rest of a dual-stack network's prefix,
/// through the IPv6 gateway. Docker addresses the container on-link (with
/// the pool's length); the datapath answers a solicitation for another
/// endpoint only from the asker's own address, and one from its link-local
/// address (a link-local sender's, a probe's) would reach the host, which
/// holds no peer's address: the two halves of the prefix, more specific
/// than the on-link route, send it all to the gateway, whose solicitations
/// are answered whatever their source, and the datapath redirects it to
/// the peer. The gateway itself stays on-link (first: a half holds it).
pub fn join_routes(net: &Network) -> Vec<StaticRoute> {
    let Some(v6) = &net.ipv6 else {
        return Vec::new();
    };
    let gateway = StaticRoute {
        destination: Ipv6Net::from(v6.gateway).to_string(),
        route_type: CONNECTED,
        next_hop: String::new(),
    };
    let halves = v6.subnet.subnets(v6.subnet.prefix_len().saturating_add(1));
    let through_gateway = halves.into_iter().flatten().map(|half| StaticRoute {
        destination: half.to_string(),
        route_type: NEXT_HOP,
        next_hop: v6.gateway.to_string(),
    });
    std::iter::once(gateway).chain(through_gateway).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1eff0d5a1c0f8a4a9b6e9a4f1ac3b6e0c2d5f7a8b9c0d1e2f3a4b5c6d7e8f9a0";

    fn request(options: Value) -> CreateNetwork {
        serde_json::from_value(serde_json::json!({
            "NetworkID": ID,
            "Options": options,
            "IPv4Data": [{"AddressSpace": "LocalDefault", "Gateway": "10.77.0.1/24", "Pool": "10.77.0.0/24"}],
            "IPv6Data": [],
        }))
        .unwrap()
    }

    /// [`request`] with `--ipv6` and an IPv6 pool.
    fn request6(generic: Value) -> CreateNetwork {
        let mut req = request(serde_json::json!({
            "com.docker.network.enable_ipv6": true,
            "com.docker.network.generic": generic,
        }));
        req.ipv6_data = serde_json::from_value(serde_json::json!([
            {"AddressSpace": "LocalDefault", "Gateway": "2001:db8:77::1/64", "Pool": "2001:db8:77::/64"}
        ]))
        .unwrap();
        req
    }

    #[test]
    fn gateway_mode_ipv6_routed_turns_nat66_off() {
        let nat66 = |generic: Value| {
            let (_, net) = from_request(&request6(generic), Some("eth0"), None).unwrap();
            net.ipv6.expect("dual-stack").nat
        };
        let key = "com.docker.network.bridge.gateway_mode_ipv6";
        assert!(nat66(serde_json::json!({})));
        assert!(nat66(serde_json::json!({key: "nat"})));
        assert!(!nat66(serde_json::json!({key: "routed"})));
        let err = from_request(
            &request6(serde_json::json!({key: "isolated"})),
            Some("eth0"),
            None,
        )
        .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            format!("-o {key}: \"isolated\" is not nat or routed")
        );
    }

    fn error(options: Value) -> String {
        format!(
            "{:#}",
            from_request(&request(options), Some("eth0"), None).unwrap_err()
        )
    }

    #[test]
    fn docker_20_10s_create_becomes_a_network_behind_the_default_route() {
        let (docker, net) = from_request(
            &request(serde_json::json!({
                "com.docker.network.enable_ipv6": false,
                "com.docker.network.generic": {"com.docker.network.bridge.enable_icc": "false", "mtu": "1400"}
            })),
            Some("eth0"),
            None,
        )
        .unwrap();
        assert_eq!(docker.name.as_str(), "dk1eff0d");
        assert!(!docker.internal);
        assert_eq!(net.subnet.to_string(), "10.77.0.0/24");
        assert_eq!(net.gateway, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(net.uplink.as_deref(), Some("eth0"));
        assert!(!net.icc);
        assert_eq!(net.mtu, 1400);
        assert_eq!(join_gateway(&docker, &net), "10.77.0.1");
        assert_eq!(docker.host_binding, Ipv4Addr::UNSPECIFIED);
    }

    #[test]
    fn host_binding_ipv4_sets_where_a_bare_p_publishes() {
        let (docker, _) = from_request(
            &request(serde_json::json!({
                "com.docker.network.generic": {"com.docker.network.bridge.host_binding_ipv4": "127.0.0.1"}
            })),
            Some("eth0"),
            None,
        )
        .unwrap();
        assert_eq!(docker.host_binding, Ipv4Addr::LOCALHOST);
        let err = error(serde_json::json!({
            "com.docker.network.generic": {"com.docker.network.bridge.host_binding_ipv4": "192.0.2.1"}
        }));
        assert!(err.contains("host_binding_ipv4"), "{err}");
    }

    #[test]
    fn an_internal_network_has_no_uplink_and_no_gateway_route() {
        let (docker, net) = from_request(
            &request(serde_json::json!({"com.docker.network.internal": true})),
            Some("eth0"),
            None,
        )
        .unwrap();
        assert!(docker.internal);
        assert_eq!(net.uplink, None);
        assert_eq!(join_gateway(&docker, &net), "");
    }

    #[test]
    fn what_netfwd_cannot_do_is_refused_naming_the_option() {
        for (options, says) in [
            (
                serde_json::json!({"com.docker.network.enable_ipv6": true}),
                "IPv6Data: a netfwd network has exactly one IPv6 prefix, got 0",
            ),
            (
                serde_json::json!({"com.docker.network.generic": {"foo": "bar"}}),
                "-o foo: not an option",
            ),
            (
                serde_json::json!({"com.docker.network.generic": {"com.docker.network.bridge.name": "br0"}}),
                "-o com.docker.network.bridge.name: not supported",
            ),
            (
                serde_json::json!({"com.docker.network.generic": {"mtu": "big"}}),
                "-o mtu",
            ),
            (
                serde_json::json!({"com.docker.network.generic": {"mode": "fast"}}),
                "-o mode",
            ),
            (
                serde_json::json!({"com.docker.network.internal": true, "com.docker.network.generic": {"uplink": "eth0"}}),
                "--internal",
            ),
        ] {
            let err = error(options.clone());
            assert!(err.contains(says), "{options}: {err}");
        }
        let mut bad_id = request(serde_json::json!({}));
        bad_id.network_id = "../../etc".into();
        assert!(
            format!("{:#}", from_request(&bad_id, None, None).unwrap_err()).contains("NetworkID")
        );
        let no_route = from_request(&request(serde_json::json!({})), None, None).unwrap_err();
        assert!(format!("{no_route:#}").contains("-o uplink=IFACE"));
    }

    #[test]
    fn a_pool_leased_from_a_cluster_is_a_members_network() {
        let (file, _) = config::parse_cluster_file(
            "[network]\nlan = \"lan0\"\n[cluster]\netcd = [\"http://192.0.2.21:2379\"]\n\
             pool = \"10.77.0.0/16\"\nnode = \"h\"\nbackend = \"vxlan\"\n",
        )
        .unwrap();
        let (_, net) =
            from_request(&request(serde_json::json!({})), Some("eth0"), Some(&file)).unwrap();
        assert_eq!(net.subnet.to_string(), "10.77.0.0/24");
        assert_eq!(net.gateway, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(net.lan.as_deref(), Some("lan0"));
        assert!(net.vxlan.is_some());
        assert_eq!(net.mtu, config::DEFAULT_MTU - config::VXLAN_OVERHEAD);
        let err =
            error(serde_json::json!({"com.docker.network.generic": {"cluster": "/etc/c.toml"}}));
        assert!(err.contains("--ipam-opt cluster=FILE"), "{err}");
    }
}
