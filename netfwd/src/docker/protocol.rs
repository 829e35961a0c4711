//! The messages of Docker's remote network-driver protocol (libnetwork's
//! `drivers/remote/api`), as Docker Engine 20.10 sends them: each call is a
//! POST to `/NetworkDriver.<Call>` with one of these bodies. Field names are
//! Docker's (Go's exported names); fields netfwd does not use are left out
//! and ignored when present.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The media type of every answer.
pub const MEDIA_TYPE: &str = "application/vnd.docker.plugins.v1+json";

/// What Docker asked: the call (the path without its `/`) and its JSON body.
#[derive(Debug, PartialEq, Eq)]
pub struct PluginCall {
    pub call: String,
    pub body: Vec<u8>,
}

impl PluginCall {
    /// The call an HTTP request makes: a POST to `/<Call>`, the call 1 to 64
    /// letters, digits and dots; anything else is refused with why.
    pub fn of(req: crate::http::Request) -> Result<PluginCall, String> {
        if req.method != hyper::Method::POST {
            return Err(format!("method {}: only POST is served", req.method));
        }
        let call = req
            .path
            .strip_prefix('/')
            .filter(|c| {
                !c.is_empty()
                    && c.len() <= 64
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
            })
            .ok_or_else(|| format!("path {:?}: not a plugin call", req.path))?;
        Ok(PluginCall {
            call: call.to_owned(),
            body: req.body,
        })
    }
}

/// Options Docker passes through: `com.docker.network.generic` holds the
/// user's `-o key=value` pairs; other keys are Docker's own labels.
pub type Options = BTreeMap<String, Value>;

/// `Plugin.Activate`'s answer.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Activated {
    pub implements: &'static [&'static str],
}

/// `NetworkDriver.GetCapabilities`'s answer.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Capabilities {
    pub scope: &'static str,
    pub connectivity_scope: &'static str,
}

/// One address pool of a network, from Docker's IPAM.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamData {
    /// The subnet, e.g. `10.77.0.0/24`.
    pub pool: String,
    /// The gateway with the pool's prefix length, e.g. `10.77.0.1/24`.
    #[serde(default)]
    pub gateway: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateNetwork {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(default)]
    pub options: Options,
    #[serde(rename = "IPv4Data", default)]
    pub ipv4_data: Vec<IpamData>,
    /// Given with `--ipv6` only.
    #[serde(rename = "IPv6Data", default)]
    pub ipv6_data: Vec<IpamData>,
}

/// `DeleteNetwork`, `FreeNetwork`, and every call naming only a network.
#[derive(Debug, Deserialize)]
pub struct NetworkCall {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// An endpoint's interface as Docker's IPAM chose it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointInterface {
    /// The address with the network's prefix length, e.g. `10.77.0.2/24`.
    #[serde(default)]
    pub address: String,
    #[serde(rename = "AddressIPv6", default)]
    pub address_ipv6: String,
    /// Set only for `--mac-address`.
    #[serde(default)]
    pub mac_address: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateEndpoint {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(default)]
    pub interface: Option<EndpointInterface>,
}

/// `DeleteEndpoint`, `EndpointOperInfo`, `Leave`,
/// `RevokeExternalConnectivity`.
#[derive(Debug, Deserialize)]
pub struct EndpointCall {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

/// `EndpointOperInfo`'s answer.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OperInfo {
    pub value: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Join {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The container's network namespace file.
    pub sandbox_key: String,
}

/// The interface Docker moves into the container and renames.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InterfaceName {
    pub src_name: String,
    pub dst_prefix: String,
}

/// `Join`'s answer.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Joined {
    pub interface_name: InterfaceName,
    /// Empty for an `--internal` network: no default route.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    /// Empty unless the network is dual-stack (and not `--internal`).
    #[serde(rename = "GatewayIPv6", skip_serializing_if = "String::is_empty")]
    pub gateway_ipv6: String,
    /// Routes Docker adds in the container.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_routes: Vec<StaticRoute>,
    /// An internal network has no gateway, so Docker must not give the
    /// container one of its own either.
    pub disable_gateway_service: bool,
}

/// A route of `Joined`: `destination` through `next_hop`, or on the link.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StaticRoute {
    pub destination: String,
    pub route_type: u8,
    /// Empty for a route on the link.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub next_hop: String,
}

/// `ProgramExternalConnectivity`: `-p` and `--expose` of one endpoint.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExternalConnectivity {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(default)]
    pub options: Options,
}

/// One `-p` binding (`com.docker.network.portmap`): libnetwork's
/// `types.PortBinding`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    /// IP protocol number: 6 TCP, 17 UDP, 132 SCTP.
    pub proto: u8,
    /// The container's address (in answers; requests leave it empty).
    #[serde(rename = "IP", default)]
    pub ip: String,
    /// The container's port.
    pub port: u16,
    /// The host address to bind; empty: every address.
    #[serde(rename = "HostIP", default)]
    pub host_ip: String,
    pub host_port: u16,
    /// The last host port of a range binding; 0 or `HostPort`: one port.
    #[serde(default)]
    pub host_port_end: u16,
}

/// `IpamDriver.GetCapabilities`'s answer.
#[derive(Serialize)]
pub struct IpamCapabilities {
    #[serde(rename = "RequiresMACAddress")]
    pub requires_mac_address: bool,
    #[serde(rename = "RequiresRequestReplay")]
    pub requires_request_replay: bool,
}

/// `IpamDriver.GetDefaultAddressSpaces`'s answer.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddressSpaces {
    pub local_default_address_space: &'static str,
    pub global_default_address_space: &'static str,
}

/// `IpamDriver.RequestPool`: `--subnet` (`Pool`), `--ip-range`
/// (`SubPool`) and `--ipam-opt key=value` (`Options`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestPool {
    #[serde(default)]
    pub pool: String,
    #[serde(default)]
    pub sub_pool: String,
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(rename = "V6", default)]
    pub v6: bool,
}

/// `RequestPool`'s answer: `Data` may name the gateway
/// (`com.docker.network.gateway`, with its prefix length).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PoolGranted {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    pub pool: String,
    pub data: BTreeMap<String, String>,
}

/// `IpamDriver.ReleasePool`.
#[derive(Debug, Deserialize)]
pub struct ReleasePool {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

/// `IpamDriver.RequestAddress`: `Address` is the one asked for (`--ip`,
/// `--gateway`), or empty.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
}

/// `RequestAddress`'s answer: the address with the pool's prefix length.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddressGranted {
    pub address: String,
    pub data: BTreeMap<String, String>,
}

/// `IpamDriver.ReleaseAddress`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReleaseAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    pub address: String,
}

/// The answer to a call that failed: Docker shows `Err` to the user.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Failure {
    pub err: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Request;

    fn request(method: hyper::Method, path: &str) -> Request {
        Request {
            method,
            path: path.to_owned(),
            body: b"{}".to_vec(),
        }
    }

    #[test]
    fn a_plugin_call_is_a_post_to_its_name() {
        assert_eq!(
            PluginCall::of(request(hyper::Method::POST, "/NetworkDriver.Join")),
            Ok(PluginCall {
                call: "NetworkDriver.Join".into(),
                body: b"{}".to_vec()
            })
        );
        for (method, path, says) in [
            (hyper::Method::GET, "/Plugin.Activate", "only POST"),
            (hyper::Method::POST, "/../etc", "not a plugin call"),
            (hyper::Method::POST, "/", "not a plugin call"),
            (hyper::Method::POST, "/a/b", "not a plugin call"),
        ] {
            let err = PluginCall::of(request(method, path)).unwrap_err();
            assert!(err.contains(says), "{path}: {err}");
        }
    }
}
