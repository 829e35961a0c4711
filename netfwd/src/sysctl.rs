//! The few per-namespace sysctls netfwd reads or sets, through /proc/sys/net,
//! which shows the calling thread's network namespace.

use std::fs;

use anyhow::{Context as _, Result, bail};

/// `net.ipv4.ip_local_port_range`: the ports host sockets pick by themselves.
pub fn ip_local_port_range() -> Result<(u16, u16)> {
    const PATH: &str = "/proc/sys/net/ipv4/ip_local_port_range";
    let text = fs::read_to_string(PATH).with_context(|| format!("reading {PATH}"))?;
    let mut ports = text.split_whitespace().map(str::parse::<u16>);
    match (ports.next(), ports.next()) {
        (Some(Ok(low)), Some(Ok(high))) => Ok((low, high)),
        _ => bail!("{PATH}: unexpected contents {text:?}"),
    }
}

/// Turns IPv4 forwarding on for packets arriving on `ifname` only (not the
/// global `ip_forward`): `bpf_fib_lookup` answers "forwarding disabled"
/// without it, and the stack forwards what the datapath leaves to it.
pub fn enable_forwarding(ifname: &str) -> Result<()> {
    let path = format!("/proc/sys/net/ipv4/conf/{ifname}/forwarding");
    fs::write(&path, "1").with_context(|| format!("writing {path}"))
}
