//! What netfwd reads or sets of the network namespace through /proc: a few
//! sysctls (/proc/sys/net) and the host's sockets (/proc/thread-self/net),
//! both as the calling thread's namespace sees them.

use std::{collections::HashSet, fs};

use anyhow::{Context as _, Result, bail};

use rtnetlink::packet_route::link::{Inet6DevConf, InetDevConf};

use crate::{config::Proto, netlink::Settings};

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

/// Makes the host route what an endpoint sends on `link` (its host-side
/// veth), with settings of that interface only:
/// - `forwarding` (not the global `ip_forward`): `bpf_fib_lookup` answers
///   "forwarding disabled" without it, and the stack forwards what the
///   datapath leaves to it;
/// - `accept_local`: a datagram too big for the uplink is translated in BPF
///   and left to the stack to fragment, with the host's own address as its
///   source, which the stack drops as martian otherwise;
/// - `rp_filter` 0: the same packet fails a strict reverse-path check. The
///   endpoint program admits only the endpoint's own address and the
///   translations it made itself, so neither setting lets a spoofed packet in.
///
/// `settings` are the link's as last read (netlink reports them with the
/// link): a setting they show in place is not touched.
pub fn enable_forwarding(ifname: &str, settings: &Settings) -> Result<()> {
    let ipv4 = |get: fn(&InetDevConf) -> i32| settings.ipv4.as_ref().map(get);
    for (setting, value, reported) in [
        ("forwarding", 1, ipv4(|c| c.forwarding)),
        ("accept_local", 1, ipv4(|c| c.accept_local)),
        ("rp_filter", 0, ipv4(|c| c.rp_filter)),
    ] {
        if reported == Some(value) {
            continue;
        }
        let path = format!("/proc/sys/net/ipv4/conf/{ifname}/{setting}");
        fs::write(&path, value.to_string()).with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}

/// [`enable_forwarding`] for IPv6, in a dual-stack network with an uplink
/// or a LAN (whose datapath checks the endpoints' IPv6 sources and sends
/// IPv6 out translated, or routed only to peers; an IPv4-only network's
/// endpoints' IPv6 is never forwarded):
/// - `forwarding`: `bpf_fib_lookup` answers "forwarding disabled" for IPv6
///   without it on the interface a packet comes in on;
/// - `force_forwarding` (kernel 6.17): the stack forwards IPv6 only with the
///   global `forwarding` on, which turns off router advertisements on every
///   interface of the host, or with this on the interface it came in on.
///   What the datapath leaves to the stack is a packet that needs its
///   answer: "packet too big" (path-MTU discovery through the NAT), "time
///   exceeded". An older kernel has no such setting: there, the stack
///   forwards those only with the global setting on.
///
/// `settings` as for [`enable_forwarding`]; `force_forwarding`, which
/// netlink does not report, is read first and written only if it is off.
pub fn enable_forwarding6(ifname: &str, settings: &Settings) -> Result<()> {
    let conf = format!("/proc/sys/net/ipv6/conf/{ifname}");
    if settings.ipv6.as_ref().map(|c| c.forwarding) != Some(1) {
        let path = format!("{conf}/forwarding");
        fs::write(&path, "1").with_context(|| format!("writing {path}"))?;
    }
    let path = format!("{conf}/force_forwarding");
    match fs::read_to_string(&path) {
        Ok(value) if value.trim() == "1" => Ok(()),
        Ok(_) => fs::write(&path, "1").with_context(|| format!("writing {path}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("reading {path}")),
    }
}

/// Makes the host take no configuration from what an endpoint sends on
/// `ifname` (its host-side veth), before the link comes up: no IPv6 router
/// advertisement (`accept_ra`: a default route through the endpoint), no
/// address of its prefix (`autoconf`), no ICMP or ICMPv6 redirect
/// (`accept_redirects`). The datapath drops those messages too
/// (`router_message`); these hold for what reaches the stack before it
/// runs. A kernel without IPv6 has nothing to refuse there. `settings` as
/// for [`enable_forwarding`].
pub fn refuse_endpoint_router_config(ifname: &str, settings: &Settings) -> Result<()> {
    let ipv6 = |get: fn(&Inet6DevConf) -> i32| settings.ipv6.as_ref().map(get);
    for (family, setting, reported) in [
        ("ipv6", "accept_ra", ipv6(|c| c.accept_ra)),
        ("ipv6", "autoconf", ipv6(|c| c.autoconf)),
        ("ipv6", "accept_redirects", ipv6(|c| c.accept_redirects)),
        (
            "ipv4",
            "accept_redirects",
            settings.ipv4.as_ref().map(|c| c.accept_redirects),
        ),
    ] {
        if reported == Some(0) {
            continue;
        }
        let path = format!("/proc/sys/net/{family}/conf/{ifname}/{setting}");
        match fs::write(&path, "0") {
            Err(e) if family == "ipv6" && e.kind() == std::io::ErrorKind::NotFound => {}
            result => result.with_context(|| format!("writing {path}"))?,
        }
    }
    Ok(())
}

/// The ports of `proto` that host sockets hold: TCP's listening ones, and
/// every bound UDP one (IPv4 and IPv6 sockets alike).
pub fn ports_in_use(proto: Proto) -> Result<HashSet<u16>> {
    let (files, listening_only): (&[&str], bool) = match proto {
        Proto::Tcp => (&["tcp", "tcp6"], true),
        Proto::Udp => (&["udp", "udp6"], false),
    };
    let mut ports = HashSet::new();
    for file in files {
        let path = format!("/proc/thread-self/net/{file}");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            // No IPv6 in this kernel.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {path}")),
        };
        // "sl local_address rem_address st ...": local is ADDR:PORT in hex,
        // st 0A is LISTEN.
        ports.extend(text.lines().skip(1).filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let local_port = fields
                .next()
                .and_then(|local| local.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            let state = fields.nth(1);
            local_port.filter(|_| !listening_only || state == Some("0A"))
        }));
    }
    Ok(ports)
}
