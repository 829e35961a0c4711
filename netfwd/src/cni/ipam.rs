//! Delegation to the IPAM plugin, as the spec has it: the plugin named by
//! `ipam.type`, found on `CNI_PATH`, run with our environment and the same
//! network configuration on stdin.

use std::{
    io::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::Deserialize;
use serde_json::Value;

use super::{
    conf::SUPPORTED_VERSIONS,
    error::{CniError, CniResult, OrCni as _, code},
};
use crate::{config::Network, subnet::Subnet as _};

/// What an IPAM ADD gave: the first IPv4 address, and DNS if it set any.
#[derive(Debug)]
pub struct Lease {
    pub ip: Ipv4Addr,
    /// In a dual-stack network: the IPv6 address leased beside.
    pub ip6: Option<Ipv6Addr>,
    pub dns: Option<Value>,
}

#[derive(Deserialize)]
struct IpamResult {
    #[serde(default)]
    ips: Vec<IpamIp>,
    dns: Option<Value>,
}

#[derive(Deserialize)]
struct IpamIp {
    address: String,
}

/// Runs `CNI_COMMAND=command` of the IPAM plugin; its stdout on success.
/// A plugin older than the config's version (Debian 12's host-local stops
/// at 1.0.0) is asked again in the newest version both speak: an IPAM
/// result is the same in 1.0 and 1.1.
pub fn delegate(plugin: &str, command: &str, cni_path: &str, stdin: &[u8]) -> CniResult<Vec<u8>> {
    delegate_as(plugin, command, cni_path, stdin, &[])
}

/// [`delegate`] with `CNI_*` variables of its own (GC's DEL of one
/// container).
pub fn delegate_as(
    plugin: &str,
    command: &str,
    cni_path: &str,
    stdin: &[u8],
    vars: &[(&str, &str)],
) -> CniResult<Vec<u8>> {
    let binary = find_plugin(plugin, cni_path)?;
    match exec(&binary, plugin, command, stdin, vars) {
        Err(e) if e.code == code::INCOMPATIBLE_VERSION => {
            let Some(older) = common_version(&binary, plugin, stdin)? else {
                return Err(e);
            };
            let mut conf: Value = serde_json::from_slice(stdin).cni(code::DECODE_FAILED)?;
            conf["cniVersion"] = Value::String(older.to_owned());
            exec(&binary, plugin, command, conf.to_string().as_bytes(), vars)
        }
        other => other,
    }
}

/// Whether the plugin speaks `version` (GC needs 1.1).
pub fn speaks(plugin: &str, cni_path: &str, version: &str) -> CniResult<bool> {
    let binary = find_plugin(plugin, cni_path)?;
    Ok(supported_versions(&binary, plugin)?
        .iter()
        .any(|v| v == version))
}

/// The newest version older than the config's that both sides speak.
fn common_version(binary: &Path, plugin: &str, stdin: &[u8]) -> CniResult<Option<&'static str>> {
    let asked: Value = serde_json::from_slice(stdin).cni(code::DECODE_FAILED)?;
    let asked = asked
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let theirs = supported_versions(binary, plugin)?;
    Ok(SUPPORTED_VERSIONS
        .iter()
        .rev()
        .skip_while(|v| **v != asked)
        .skip(1)
        .find(|v| theirs.iter().any(|t| t == *v))
        .copied())
}

fn supported_versions(binary: &Path, plugin: &str) -> CniResult<Vec<String>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Versions {
        supported_versions: Vec<String>,
    }
    let out = exec(
        binary,
        plugin,
        "VERSION",
        b"{\"cniVersion\":\"1.0.0\"}",
        &[],
    )?;
    serde_json::from_slice::<Versions>(&out)
        .map(|v| v.supported_versions)
        .map_err(|e| {
            CniError::new(
                code::DECODE_FAILED,
                format!("IPAM plugin {plugin}'s VERSION: {e}"),
            )
        })
}

fn exec(
    binary: &Path,
    plugin: &str,
    command: &str,
    stdin: &[u8],
    vars: &[(&str, &str)],
) -> CniResult<Vec<u8>> {
    let mut child = Command::new(binary)
        .env("CNI_COMMAND", command)
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            CniError::new(
                code::IO_FAILURE,
                format!("running IPAM plugin {}: {e}", binary.display()),
            )
        })?;
    if let Some(mut input) = child.stdin.take() {
        // A plugin may answer before reading all of its stdin (an error of
        // its own, such as a version it does not speak): its exit status
        // and output say how it went, not the pipe it closed.
        match input.write_all(stdin) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            written => written.cni(code::IO_FAILURE)?,
        }
    }
    let out = child.wait_with_output().cni(code::IO_FAILURE)?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    // A plugin's own error JSON keeps its code; anything else is an I/O
    // failure with what it printed.
    match serde_json::from_slice::<CniError>(&out.stdout) {
        Ok(mut err) => {
            err.msg = format!("IPAM plugin {plugin} ({command}): {}", err.msg);
            Err(err)
        }
        Err(_) => Err(CniError {
            code: code::IO_FAILURE,
            msg: format!("IPAM plugin {plugin} ({command}) failed: {}", out.status),
            details: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
    }
}

/// ADD: the addresses the IPAM plugin leased, which must be host addresses
/// of `net`'s subnet and, in a dual-stack network, of its IPv6 prefix; on
/// any other answer the lease is given back.
pub fn lease(plugin: &str, cni_path: &str, stdin: &[u8], net: &Network) -> CniResult<Lease> {
    let out = delegate(plugin, "ADD", cni_path, stdin)?;
    let result: IpamResult = serde_json::from_slice(&out).map_err(|e| {
        CniError::new(
            code::DECODE_FAILED,
            format!("IPAM plugin {plugin}'s result: {e}"),
        )
    })?;
    checked_lease(plugin, &result, net).inspect_err(|_| {
        // Give back whatever it leased before failing.
        let _ = delegate(plugin, "DEL", cni_path, stdin);
    })
}

fn checked_lease(plugin: &str, result: &IpamResult, net: &Network) -> CniResult<Lease> {
    let invalid = |msg: String| CniError::new(code::INVALID_CONFIG, msg);
    let ip = leased::<Ipv4Net>(result)
        .ok_or_else(|| invalid(format!("ipam: {plugin} leased no IPv4 address")))?;
    if !net.subnet.is_host(ip.addr()) || ip.prefix_len() != net.subnet.prefix_len() {
        return Err(invalid(format!(
            "ipam: {plugin} leased {ip}, which is not a host address of subnet {}",
            net.subnet
        )));
    }
    let ip6 = match (&net.ipv6, leased::<Ipv6Net>(result)) {
        (None, _) => None,
        (Some(v6), Some(ip6))
            if v6.subnet.is_host(ip6.addr()) && ip6.prefix_len() == v6.subnet.prefix_len() =>
        {
            Some(ip6.addr())
        }
        (Some(v6), Some(ip6)) => {
            return Err(invalid(format!(
                "ipam: {plugin} leased {ip6}, which is not a host address of subnet6 {}",
                v6.subnet
            )));
        }
        (Some(v6), None) => {
            return Err(invalid(format!(
                "ipam: {plugin} leased no IPv6 address, and the network has subnet6 {}: \
                 give the IPAM plugin a range of it",
                v6.subnet
            )));
        }
    };
    Ok(Lease {
        ip: ip.addr(),
        ip6,
        dns: result.dns.clone(),
    })
}

/// The first leased interface address of a family ("a.b.c.d/len", host
/// bits set, unlike a subnet's).
fn leased<N: std::str::FromStr>(result: &IpamResult) -> Option<N> {
    result.ips.iter().find_map(|ip| ip.address.parse().ok())
}

fn find_plugin(plugin: &str, cni_path: &str) -> CniResult<PathBuf> {
    cni_path
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                format!("ipam.type: no plugin {plugin:?} in CNI_PATH {cni_path:?}"),
            )
        })
}
