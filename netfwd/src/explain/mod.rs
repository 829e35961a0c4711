//! `netfwd explain`: what the datapath would do with a packet, asked
//! without sending one. The packet is built (`packet`) and run through a
//! private copy of the network's programs and maps
//! (`loader::DatapathCopy`): first where its sender hands it over (an
//! endpoint's host-side veth, or the uplink or LAN for an address outside),
//! then its answer, where the first hop delivered it; through XDP first
//! where the interface runs it, as on the wire. Each hop's verdict is the
//! event the copy's monitor wrote, named as `netfwd monitor` names it; the
//! live maps are only read. IPv4 and, in a dual-stack network, IPv6: the
//! packet's family is its destination's, and an endpoint sends from its
//! address of that family.

pub mod packet;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::{Context as _, Result};
use netfwd_common::monitor::{EVENT_DROP, EVENT_TRACE, MonitorEvent, VERDICT_DROPPED};
use serde::Serialize;

use crate::{
    config::Mode,
    input_error,
    loader::{DatapathCopy, DatapathMaps, ProgramRun},
    monitor::event::{reason_name, verdict_name},
    name::NetworkName,
    netlink::Netlink,
    network::report::{self, HostInterfaceStatus, NetworkStatus},
};
use packet::{Leg, Proto, Tuple};

/// The question: a packet of `proto` from `from` to `to`.
pub struct Question<'a> {
    pub network: &'a NetworkName,
    /// An endpoint (its namespace or either address) or an address outside.
    pub from: &'a str,
    /// An address an endpoint `from` forges instead of its own.
    pub source: Option<IpAddr>,
    pub to: Destination,
    /// `None`: TCP with a port, an ICMP echo without.
    pub proto: Option<Proto>,
}

/// `--to`: an address, and a port for TCP and UDP (`ADDR:PORT`, or
/// `[ADDR]:PORT` for IPv6, as a socket address is written).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Destination {
    pub addr: IpAddr,
    pub port: Option<u16>,
}

impl std::str::FromStr for Destination {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(addr) = text.parse::<IpAddr>() {
            return Ok(Self { addr, port: None });
        }
        match text.parse::<SocketAddr>() {
            Ok(sock) => Ok(Self {
                addr: sock.ip(),
                port: Some(sock.port()),
            }),
            Err(_) => Err(format!(
                "{text:?} is not an address or ADDR:PORT ([ADDR]:PORT for IPv6)"
            )),
        }
    }
}

/// The answer: the packet and what each hop did with it.
#[derive(Serialize)]
pub struct Answer {
    pub network: NetworkName,
    pub mode: Mode,
    pub packet: Tuple,
    pub hops: Vec<Hop>,
    /// `PASSED` when no hop drops the packet or its answer, else `DROPPED`.
    pub verdict: &'static str,
}

impl Answer {
    pub fn passed(&self) -> bool {
        self.verdict == PASSED
    }
}

/// One program run: where the packet comes in and what becomes of it.
#[derive(Serialize)]
pub struct Hop {
    /// `request` (the packet asked about) or `reply` (its answer).
    pub leg: &'static str,
    /// Who hands it to the datapath.
    pub from: Place,
    /// The packet as it comes in.
    pub packet: Tuple,
    /// As `netfwd monitor` names it: `REDIRECTED`, `FORWARDED` (routed),
    /// `TRANSLATED`, `TO_HOST`, `DROPPED`.
    pub verdict: &'static str,
    /// `XDP` or `TC`: the program that decided.
    pub trace_observation_point: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_reason_desc: Option<&'static str>,
    /// The packet as it leaves, when the datapath changed an address or a
    /// port (NAT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub translated: Option<Tuple>,
    /// Where it goes: an endpoint, out of the uplink or LAN, or the host's
    /// stack; none when dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Place>,
}

/// An endpoint, a host interface (the uplink or LAN), or the host's stack.
#[derive(Clone, Serialize)]
pub struct Place {
    /// `endpoint`, `uplink`, `lan` or `host`.
    pub kind: &'static str,
    /// The endpoint's namespace or the interface's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The host-side veth (of an endpoint) or the interface itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(skip)]
    ifindex: u32,
    #[serde(skip)]
    macs: Macs,
    /// Whether XDP runs on the interface, in front of TC.
    #[serde(skip)]
    xdp: bool,
}

/// The MACs a frame handed over at a place carries: to the datapath's
/// side (the host-side veth, the interface), from the sender's.
#[derive(Clone, Copy, Default)]
struct Macs {
    host: [u8; 6],
    sender: [u8; 6],
}

const DROPPED: &str = "DROPPED";
const PASSED: &str = "PASSED";

/// The port `explain` sends from (and an ICMP echo's identifier).
const SOURCE_PORT: u16 = 40_000;

/// The MAC of a sender on the uplink or LAN (locally administered).
const OUTSIDE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// TC's and XDP's actions (`TC_ACT_*`, `XDP_*`), for a run with no event
/// (a datapath built without the monitor's events).
const TC_ACT_UNSPEC: i32 = -1;
const TC_ACT_SHOT: i32 = 2;
const XDP_DROP: i32 = 1;

/// Answers `question` (in the network's namespace).
pub async fn explain(question: &Question<'_>) -> Result<Answer> {
    let status = report::status(Some(question.network)).await?;
    let net = status
        .networks
        .into_iter()
        .find(|n| !n.orphaned)
        .ok_or_else(|| {
            input_error!(
                "--name: network {} is an orphan (its namespace is gone)",
                question.network
            )
        })?;
    let places = Places::of(&net).await?;
    if question.to.addr.is_ipv6() && net.subnet6.is_none() {
        return Err(input_error!(
            "--to: {} is IPv6, and network {} has no IPv6 (no subnet6)",
            question.to.addr,
            question.network
        ));
    }
    let (own_addr, from) = places.sender(question.from, question.to.addr)?;
    let sender_addr = match question.source {
        None => own_addr,
        Some(_) if from.kind != ENDPOINT => {
            return Err(input_error!(
                "--source: only an endpoint --from forges a source; an address outside sends from itself"
            ));
        }
        Some(forged) => {
            same_family("--source", forged, question.to.addr)?;
            forged
        }
    };
    let proto = match (question.proto, question.to.port) {
        (Some(Proto::Icmp), Some(_)) => {
            return Err(input_error!("--to: an ICMP echo has no port"));
        }
        (Some(Proto::Tcp | Proto::Udp), None) => {
            return Err(input_error!("--to: TCP and UDP need a port (ADDR:PORT)"));
        }
        (Some(proto), _) => proto,
        (None, Some(_)) => Proto::Tcp,
        (None, None) => Proto::Icmp,
    };
    let packet = Tuple {
        proto,
        source: SocketAddr::new(sender_addr, SOURCE_PORT),
        destination: SocketAddr::new(question.to.addr, question.to.port.unwrap_or(0)),
    };
    let mut copy = DatapathCopy::of(&net.name)?;
    let first = places.run(&mut copy, Leg::Request, from, packet)?;
    let reply_from = first.to.clone().filter(|to| to.kind != HOST);
    let mut hops = vec![first];
    if let Some(at) = reply_from {
        let sent = hops[0].translated.unwrap_or(hops[0].packet);
        hops.push(places.run(&mut copy, Leg::Reply, at, sent.reversed())?);
    }
    let dropped = hops.iter().any(|hop| hop.verdict == DROPPED);
    Ok(Answer {
        network: net.name.clone(),
        mode: net.mode,
        packet,
        hops,
        verdict: if dropped { DROPPED } else { PASSED },
    })
}

const ENDPOINT: &str = "endpoint";
const HOST: &str = "host";

/// The network's endpoints and host interfaces, as places a packet comes
/// in at or goes to.
struct Places {
    network: NetworkName,
    /// Each endpoint's addresses and place.
    endpoints: Vec<(Addresses, Place)>,
    uplink: Option<Place>,
    lan: Option<Place>,
}

impl Places {
    async fn of(net: &NetworkStatus) -> Result<Self> {
        let entries = DatapathMaps::open(std::path::Path::new(&net.pin_dir))?.endpoints()?;
        let mut endpoints = Vec::new();
        for ep in &net.endpoints {
            let ip: Ipv4Addr = ep
                .ip
                .parse()
                .with_context(|| format!("endpoint address {}", ep.ip))?;
            let ip6 = ep
                .ip6
                .as_deref()
                .map(|ip6| {
                    ip6.parse::<Ipv6Addr>()
                        .with_context(|| format!("endpoint address {ip6}"))
                })
                .transpose()?;
            // An endpoint whose veth is gone is no place a packet comes in.
            let Some(entry) = entries.get(&ip) else {
                continue;
            };
            endpoints.push((
                Addresses { ip, ip6 },
                Place {
                    kind: ENDPOINT,
                    name: Some(ep.netns.clone()),
                    interface: Some(ep.host_ifname.clone()),
                    ifindex: entry.host_ifindex,
                    macs: Macs {
                        host: entry.host_mac,
                        sender: entry.mac,
                    },
                    xdp: ep.mode == Mode::Xdp,
                },
            ));
        }
        let host = Netlink::current()?;
        let uplink = host_interface(&host, "uplink", net.uplink.as_ref()).await?;
        let lan = host_interface(&host, "lan", net.lan.as_ref()).await?;
        Ok(Self {
            network: net.name.clone(),
            endpoints,
            uplink,
            lan,
        })
    }

    /// `--from`: an endpoint by its namespace or address, or an address
    /// outside, which comes in on the uplink (the LAN without one); the
    /// address it sends to `to` from (of `to`'s family) and where it hands
    /// the packet over.
    fn sender(&self, from: &str, to: IpAddr) -> Result<(IpAddr, Place)> {
        let from_ip = from.parse::<IpAddr>().ok();
        let endpoint = self.endpoints.iter().find(|(addrs, place)| {
            place.name.as_deref() == Some(from) || from_ip.is_some_and(|ip| addrs.holds(ip))
        });
        if let Some((addrs, place)) = endpoint {
            let name = place.name.as_deref().unwrap_or(from);
            if let Some(ip) = from_ip {
                same_family("--from", ip, to)?;
            }
            let ip = match to {
                IpAddr::V4(_) => IpAddr::V4(addrs.ip),
                IpAddr::V6(_) => IpAddr::V6(addrs.ip6.ok_or_else(|| {
                    input_error!("--from: endpoint {name} has no IPv6 address for --to {to}")
                })?),
            };
            return Ok((ip, place.clone()));
        }
        let Some(ip) = from_ip else {
            return Err(input_error!(
                "--from: {from:?} is neither an endpoint of network {} (its namespace or address) nor an address",
                self.network
            ));
        };
        same_family("--from", ip, to)?;
        match self.uplink.as_ref().or(self.lan.as_ref()) {
            Some(place) => Ok((ip, place.clone())),
            None => Err(input_error!(
                "--from: {ip} is no endpoint of network {}, which has no uplink or LAN for it to come in on",
                self.network
            )),
        }
    }

    /// Runs `leg` of the flow, as `packet`, handed over at `at`.
    fn run(&self, copy: &mut DatapathCopy, leg: Leg, at: Place, packet: Tuple) -> Result<Hop> {
        let frame = packet.frame(leg, at.macs.host, at.macs.sender);
        let run = if at.kind == ENDPOINT {
            copy.run_from_endpoint(&frame, at.ifindex, at.xdp)?
        } else {
            copy.run_from_uplink(&frame, at.ifindex, at.xdp)?
        };
        let (verdict, reason) = verdict_of(&run);
        let out = Tuple::read(&run.frame).unwrap_or(packet);
        let to = (verdict != DROPPED).then(|| self.destination(&at, verdict, &out));
        Ok(Hop {
            leg: match leg {
                Leg::Request => "request",
                Leg::Reply => "reply",
            },
            from: at,
            packet,
            verdict,
            trace_observation_point: if run.xdp { "XDP" } else { "TC" },
            drop_reason_desc: reason,
            translated: (out != packet).then_some(out),
            to,
        })
    }

    /// Where a packet that left a program as `out` with `verdict` goes: the
    /// endpoint holding its destination, the host's stack, or out of the
    /// uplink (translated) or the LAN (routed).
    fn destination(&self, at: &Place, verdict: &str, out: &Tuple) -> Place {
        let host = Place {
            kind: HOST,
            name: None,
            interface: None,
            ifindex: 0,
            macs: Macs::default(),
            xdp: false,
        };
        if verdict == "TO_HOST" {
            return host;
        }
        if let Some((_, place)) = self
            .endpoints
            .iter()
            .find(|(addrs, _)| addrs.holds(out.destination.ip()))
        {
            return place.clone();
        }
        let out_of = if at.kind != ENDPOINT {
            Some(at)
        } else if verdict == "TRANSLATED" {
            self.uplink.as_ref()
        } else {
            self.lan.as_ref().or(self.uplink.as_ref())
        };
        out_of.cloned().unwrap_or(host)
    }
}

/// Refuses `addr`, given with `flag`, of another family than `--to`'s.
fn same_family(flag: &str, addr: IpAddr, to: IpAddr) -> Result<()> {
    if addr.is_ipv6() == to.is_ipv6() {
        Ok(())
    } else {
        Err(input_error!(
            "{flag}: {addr} and --to {to} are of different families"
        ))
    }
}

/// An endpoint's addresses: IPv4, and IPv6 in a dual-stack network.
struct Addresses {
    ip: Ipv4Addr,
    ip6: Option<Ipv6Addr>,
}

impl Addresses {
    fn holds(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(ip) => ip == self.ip,
            IpAddr::V6(ip) => Some(ip) == self.ip6,
        }
    }
}

/// The uplink or LAN (`kind`) as a place, if it is there.
async fn host_interface(
    host: &Netlink,
    kind: &'static str,
    status: Option<&HostInterfaceStatus>,
) -> Result<Option<Place>> {
    let Some(HostInterfaceStatus {
        ifname,
        ifindex: Some(ifindex),
        mode,
        ..
    }) = status
    else {
        return Ok(None);
    };
    let mac = host.link_by_name(ifname).await?.map_or([0; 6], |l| l.mac);
    Ok(Some(Place {
        kind,
        name: Some(ifname.clone()),
        interface: Some(ifname.clone()),
        ifindex: *ifindex,
        macs: Macs {
            host: mac,
            sender: OUTSIDE_MAC,
        },
        xdp: *mode == Mode::Xdp,
    }))
}

/// A run's verdict and drop reason, from the event the copy's monitor
/// wrote for it (from its TC action where none was written).
fn verdict_of(run: &ProgramRun) -> (&'static str, Option<&'static str>) {
    let event: Option<&MonitorEvent> = run
        .events
        .iter()
        .rev()
        .find(|e| matches!(e.kind, EVENT_DROP | EVENT_TRACE));
    match event {
        Some(e) if e.verdict == VERDICT_DROPPED => (DROPPED, Some(reason_name(e.reason))),
        Some(e) => (verdict_name(e.verdict), None),
        None if run.action == if run.xdp { XDP_DROP } else { TC_ACT_SHOT } => {
            (DROPPED, Some("unknown"))
        }
        None if !run.xdp && run.action == TC_ACT_UNSPEC => ("TO_HOST", None),
        None => ("REDIRECTED", None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_is_an_address_with_or_without_a_port() {
        let parse = |s: &str| s.parse::<Destination>();
        assert_eq!(
            parse("203.0.113.1:80"),
            Ok(Destination {
                addr: Ipv4Addr::new(203, 0, 113, 1).into(),
                port: Some(80)
            })
        );
        assert_eq!(
            parse("10.0.0.3"),
            Ok(Destination {
                addr: Ipv4Addr::new(10, 0, 0, 3).into(),
                port: None
            })
        );
        assert!(parse("host:80").is_err());
    }

    #[test]
    fn an_ipv6_destination_takes_its_port_in_brackets() {
        let parse = |s: &str| s.parse::<Destination>();
        let addr: IpAddr = "2001:db8::1".parse().expect("an address");
        assert_eq!(parse("2001:db8::1"), Ok(Destination { addr, port: None }));
        assert_eq!(
            parse("[2001:db8::1]:80"),
            Ok(Destination {
                addr,
                port: Some(80)
            })
        );
        // Without brackets the last group would be the port: refused.
        assert!(parse("2001:db8::1:80:x").is_err());
    }
}
