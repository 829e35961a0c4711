//! The network configuration a runtime hands the plugin on stdin, and the
//! netfwd network it describes. Fields the plugin does not know are ignored,
//! as the spec asks (runtimes add their own).

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::error::{CniError, CniResult, OrCni as _, code};
use crate::config::{self, ConfigFile, Mode, Network, NetworkSection};

/// The versions this plugin speaks: podman 4.3 writes 0.4.0; 1.1 adds GC
/// and STATUS.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.4.0", "1.0.0", "1.1.0"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    /// A dual-stack network's IPv6 prefix (default: host-local's IPv6
    /// range, if it has one) and gateway.
    pub subnet6: Option<String>,
    pub gateway6: Option<String>,
    /// Masquerade IPv6 on the uplink (NAT66; default true); false routes a
    /// public `subnet6` as it is (`[network] nat6`).
    pub nat6: Option<bool>,
    /// The host interface endpoints are masqueraded behind.
    pub uplink: Option<String>,
    /// Masquerade on the uplink (default true when there is an uplink).
    pub ip_masq: Option<bool>,
    pub mode: Option<Mode>,
    pub mtu: Option<u32>,
    pub icc: Option<bool>,
    /// See `[network] host_cgroup`: whose connections reach published ports
    /// on the host's own addresses.
    pub host_cgroup: Option<PathBuf>,
    /// Delegated to the named IPAM plugin; without it netfwd hands out the
    /// lowest free address itself.
    pub ipam: Option<Value>,
    pub dns: Option<Value>,
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    /// GC (1.1): the attachments the runtime still knows; all others go.
    #[serde(rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<ValidAttachment>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
}

/// One `-p hostPort:containerPort/protocol` of the runtime.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    #[serde(default = "tcp")]
    pub protocol: String,
    #[serde(default, rename = "hostIP")]
    pub host_ip: String,
}

fn tcp() -> String {
    "tcp".to_owned()
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

impl NetConf {
    /// Parses stdin; the version is checked first so a runtime from the
    /// future gets "incompatible version", not a decode error.
    pub fn parse(stdin: &[u8]) -> CniResult<NetConf> {
        let value: Value = serde_json::from_slice(stdin).cni(code::DECODE_FAILED)?;
        let version = value
            .get("cniVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| CniError::new(code::DECODE_FAILED, "cniVersion: missing"))?;
        check_version(version)?;
        serde_json::from_value(value).cni(code::DECODE_FAILED)
    }

    /// Version 1.0 and later results drop `ips[].version`.
    pub fn version_at_least(&self, major: u64, minor: u64) -> bool {
        version_tuple(&self.cni_version) >= (major, minor, 0)
    }

    /// The IPAM plugin's name, if one is configured.
    pub fn ipam_type(&self) -> CniResult<Option<&str>> {
        let Some(ipam) = &self.ipam else {
            return Ok(None);
        };
        match ipam.get("type").and_then(Value::as_str) {
            Some(t) if !t.is_empty() && !t.contains('/') => Ok(Some(t)),
            _ => Err(CniError::new(
                code::INVALID_CONFIG,
                "ipam.type: the IPAM plugin's name is missing or not a plain name",
            )),
        }
    }

    /// The netfwd network this config describes, validated as a TOML config
    /// would be.
    pub fn network(&self) -> CniResult<Network> {
        let uplink = match (self.ip_masq, &self.uplink) {
            (Some(false), Some(_)) => {
                return Err(CniError::new(
                    code::UNSUPPORTED_FIELD,
                    "ipMasq: netfwd always masquerades on its uplink; drop uplink for a network without NAT",
                ));
            }
            (Some(true), None) => {
                return Err(CniError::new(
                    code::INVALID_CONFIG,
                    "ipMasq: masquerading needs an uplink",
                ));
            }
            (_, uplink) => uplink.clone(),
        };
        let subnet = match &self.subnet {
            Some(subnet) => subnet.clone(),
            None => self.ipam_subnet(Family::V4).ok_or_else(|| {
                CniError::new(
                    code::INVALID_CONFIG,
                    "subnet: missing (and no ipam subnet or ranges to take it from)",
                )
            })?,
        };
        let file = ConfigFile {
            network: NetworkSection {
                name: self.name.clone(),
                subnet: Some(subnet),
                gateway: self.gateway.clone(),
                subnet6: self
                    .subnet6
                    .clone()
                    .or_else(|| self.ipam_subnet(Family::V6)),
                gateway6: self.gateway6.clone(),
                nat6: self.nat6,
                mtu: self.mtu,
                uplink,
                kind: None,
                lan: None,
                icc: self.icc,
                host_cgroup: self.host_cgroup.clone(),
                mode: self.mode,
            },
            endpoints: Vec::new(),
            nat: None,
            peers: Vec::new(),
            allows: Vec::new(),
            publishes: Vec::new(),
            cluster: None,
        };
        config::validate(&file).map_err(|e| CniError::new(code::INVALID_CONFIG, e.to_string()))
    }

    /// host-local's `subnet`, or the first of its `ranges` of `family` (a
    /// dual-stack host-local has a range set of each).
    fn ipam_subnet(&self, family: Family) -> Option<String> {
        let ipam = self.ipam.as_ref()?;
        let of_family = |subnet: &&str| subnet.contains(':') == (family == Family::V6);
        let single = ipam.get("subnet").and_then(Value::as_str).filter(of_family);
        let ranges = ipam.get("ranges").and_then(Value::as_array);
        let first_of_sets = ranges
            .into_iter()
            .flatten()
            .filter_map(|set| set.pointer("/0/subnet")?.as_str())
            .find(of_family);
        single.or(first_of_sets).map(str::to_owned)
    }
}

/// An address family of a subnet the IPAM config names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

/// Ok if the plugin speaks `version`.
pub fn check_version(version: &str) -> CniResult<()> {
    if SUPPORTED_VERSIONS.contains(&version) {
        return Ok(());
    }
    Err(CniError::new(
        code::INCOMPATIBLE_VERSION,
        format!(
            "cniVersion {version:?} is not supported; supported: {}",
            SUPPORTED_VERSIONS.join(", ")
        ),
    ))
}

fn version_tuple(version: &str) -> (u64, u64, u64) {
    let mut parts = version.split('.').map(|p| p.parse().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(json: &str) -> CniResult<NetConf> {
        NetConf::parse(json.as_bytes())
    }

    #[test]
    fn subnet_comes_from_host_local_ranges() {
        let c = conf(
            r#"{"cniVersion":"0.4.0","name":"cninet","type":"netfwd",
                "ipam":{"type":"host-local","ranges":[[{"subnet":"10.77.0.0/24"}]]}}"#,
        )
        .unwrap();
        let net = c.network().unwrap();
        assert_eq!(net.subnet.to_string(), "10.77.0.0/24");
        assert!(net.ipv6.is_none());
        assert_eq!(net.gateway.to_string(), "10.77.0.1");
        assert_eq!(c.ipam_type().unwrap(), Some("host-local"));
    }

    #[test]
    fn both_subnets_come_from_a_dual_stack_host_local_in_either_order() {
        let c = conf(
            r#"{"cniVersion":"1.0.0","name":"cninet","type":"netfwd",
                "ipam":{"type":"host-local","ranges":[[{"subnet":"fd00:77::/64"}],
                                                      [{"subnet":"10.77.0.0/24"}]]}}"#,
        )
        .unwrap();
        let net = c.network().unwrap();
        assert_eq!(net.subnet.to_string(), "10.77.0.0/24");
        let ipv6 = net.ipv6.expect("dual-stack");
        assert_eq!(ipv6.subnet.to_string(), "fd00:77::/64");
        assert_eq!(ipv6.gateway.to_string(), "fd00:77::1");
    }

    #[test]
    fn nat6_is_on_by_default_and_off_with_nat6_false() {
        let nat66 = |extra: &str| {
            let c = conf(&format!(
                r#"{{"cniVersion":"1.0.0","name":"cninet","type":"netfwd","subnet":"10.77.0.0/24",
                    "subnet6":"2001:db8:77::/64","uplink":"eth0"{extra}}}"#
            ))
            .unwrap();
            c.network().unwrap().ipv6.expect("dual-stack").nat
        };
        assert!(nat66(""));
        assert!(nat66(r#","nat6":true"#));
        assert!(!nat66(r#","nat6":false"#));
    }

    #[test]
    fn unknown_version_is_incompatible() {
        let err = conf(r#"{"cniVersion":"0.2.0","name":"x","type":"netfwd"}"#).unwrap_err();
        assert_eq!(err.code, code::INCOMPATIBLE_VERSION);
    }

    #[test]
    fn garbage_fails_to_decode() {
        assert_eq!(conf("{").unwrap_err().code, code::DECODE_FAILED);
        assert_eq!(
            conf(r#"{"name":"x"}"#).unwrap_err().code,
            code::DECODE_FAILED
        );
    }

    #[test]
    fn bad_network_is_invalid_config() {
        let c = conf(r#"{"cniVersion":"1.0.0","name":"x","type":"netfwd","subnet":"10.0.0.0/33"}"#)
            .unwrap();
        assert_eq!(c.network().unwrap_err().code, code::INVALID_CONFIG);
        let err = conf(r#"{"cniVersion":"1.0.0","name":"x","type":"netfwd","subnet":"10.0.0.0/24","mode":"dpdk"}"#)
            .unwrap_err();
        assert_eq!(err.code, code::DECODE_FAILED);
    }
}
