//! A datapath event (`MonitorEvent`) as `netfwd monitor` shows it: JSON
//! with Hubble's field names where they fit, or one line of text.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use chrono::{DateTime, SecondsFormat, Utc};
use netfwd_common::{
    drop::DropReason,
    monitor::{
        DIRECTION_EGRESS, DIRECTION_INGRESS, EVENT_DROP, EVENT_NAT_CREATED, EVENT_NAT_EXPIRED,
        EVENT_TRACE, FAMILY_IPV4, FAMILY_IPV6, HOOK_SWEEP, HOOK_TC, HOOK_XDP, MonitorEvent,
        VERDICT_ARP_REPLIED, VERDICT_DROPPED, VERDICT_REDIRECTED, VERDICT_ROUTED, VERDICT_TO_HOST,
        VERDICT_TRANSLATED,
    },
    nat::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP},
};
use serde::Serialize;

/// One event, decoded.
#[derive(Serialize)]
pub struct Flow {
    /// RFC 3339, UTC.
    pub time: String,
    pub network: String,
    /// `drop`, `trace`, `nat_created`, `nat_expired`.
    pub event: &'static str,
    /// `DROPPED`, `REDIRECTED`, `FORWARDED` (routed), `TRANSLATED`,
    /// `ARP_REPLIED`, `TO_HOST`; a NAT event's is `TRANSLATED`.
    pub verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_reason_desc: Option<&'static str>,
    #[serde(rename = "IP", skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ip>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l4: Option<L4>,
    /// `EGRESS` (from an endpoint) or `INGRESS` (from the uplink or LAN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_direction: Option<&'static str>,
    /// `TC`, `XDP` or `NAT_SWEEP`.
    pub trace_observation_point: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<Interface>,
    /// Bytes, L2 header included (packet events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<u32>,
    /// NAT events: what the source is translated to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat: Option<Translated>,
}

#[derive(Serialize)]
pub struct Ip {
    pub source: IpAddr,
    pub destination: IpAddr,
    #[serde(rename = "ipVersion")]
    pub ip_version: &'static str,
}

#[derive(Serialize)]
pub enum L4 {
    #[serde(rename = "TCP")]
    Tcp {
        source_port: u16,
        destination_port: u16,
        flags: TcpFlags,
    },
    #[serde(rename = "UDP")]
    Udp {
        source_port: u16,
        destination_port: u16,
    },
    #[serde(rename = "ICMPv4")]
    Icmp {
        /// An echo's identifier.
        identifier: u16,
    },
    #[serde(rename = "ICMPv6")]
    Icmp6 {
        /// An echo's identifier.
        identifier: u16,
    },
}

/// The flags a TCP segment carries (Hubble's `l4.TCP.flags`; unset ones
/// are left out).
#[derive(Serialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub struct TcpFlags {
    #[serde(skip_serializing_if = "is_false")]
    pub fin: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub syn: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub rst: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub psh: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub ack: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

#[derive(Serialize)]
pub struct Interface {
    pub index: u32,
    pub name: String,
}

#[derive(Serialize)]
pub struct Translated {
    pub source: IpAddr,
    pub source_port: u16,
}

impl TcpFlags {
    fn from_byte(byte: u8) -> Self {
        Self {
            fin: byte & 0x01 != 0,
            syn: byte & 0x02 != 0,
            rst: byte & 0x04 != 0,
            psh: byte & 0x08 != 0,
            ack: byte & 0x10 != 0,
        }
    }

    fn names(&self) -> Vec<&'static str> {
        [
            (self.syn, "SYN"),
            (self.ack, "ACK"),
            (self.fin, "FIN"),
            (self.rst, "RST"),
            (self.psh, "PSH"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    }
}

/// Turns `CLOCK_MONOTONIC` nanoseconds (the datapath's clock) into wall
/// time, by the offset between the two read once.
pub struct Clock {
    wall_at_zero_ns: i128,
}

impl Clock {
    pub fn now() -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let mono = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .context("reading CLOCK_MONOTONIC")?;
        let mono_ns = i128::from(mono.tv_sec()) * 1_000_000_000 + i128::from(mono.tv_nsec());
        let wall_ns = i128::from(Utc::now().timestamp_nanos_opt().unwrap_or(0));
        Ok(Self {
            wall_at_zero_ns: wall_ns - mono_ns,
        })
    }

    fn wall(&self, mono_ns: u64) -> DateTime<Utc> {
        let ns = self.wall_at_zero_ns + i128::from(mono_ns);
        DateTime::from_timestamp_nanos(i64::try_from(ns).unwrap_or(0))
    }
}

/// Decodes `event` of `network`; `ifname` names an interface by index.
pub fn decode(
    event: &MonitorEvent,
    network: &str,
    clock: &Clock,
    ifname: impl Fn(u32) -> String,
) -> Flow {
    let is_nat = matches!(event.kind, EVENT_NAT_CREATED | EVENT_NAT_EXPIRED);
    let ip = address(event.family, &event.src).zip(address(event.family, &event.dst));
    Flow {
        time: clock
            .wall(event.time_ns)
            .to_rfc3339_opts(SecondsFormat::Nanos, true),
        network: network.to_owned(),
        event: match event.kind {
            EVENT_DROP => "drop",
            EVENT_TRACE => "trace",
            EVENT_NAT_CREATED => "nat_created",
            EVENT_NAT_EXPIRED => "nat_expired",
            _ => "unknown",
        },
        verdict: if is_nat {
            "TRANSLATED"
        } else {
            verdict_name(event.verdict)
        },
        drop_reason_desc: (event.kind == EVENT_DROP).then(|| reason_name(event.reason)),
        ip: ip.map(|(source, destination)| Ip {
            source,
            destination,
            ip_version: if source.is_ipv4() { "IPv4" } else { "IPv6" },
        }),
        l4: l4(event),
        traffic_direction: match event.direction {
            DIRECTION_EGRESS => Some("EGRESS"),
            DIRECTION_INGRESS => Some("INGRESS"),
            _ => None,
        },
        trace_observation_point: match event.hook {
            HOOK_TC => "TC",
            HOOK_XDP => "XDP",
            HOOK_SWEEP => "NAT_SWEEP",
            _ => "UNKNOWN",
        },
        interface: (event.ifindex != 0).then(|| Interface {
            index: event.ifindex,
            name: ifname(event.ifindex),
        }),
        length: (!is_nat).then_some(event.len),
        nat: is_nat
            .then(|| address(event.family, &event.nat_addr))
            .flatten()
            .map(|source| Translated {
                source,
                source_port: u16::from_be_bytes(event.nat_port),
            }),
    }
}

pub(crate) fn verdict_name(verdict: u8) -> &'static str {
    match verdict {
        VERDICT_DROPPED => "DROPPED",
        VERDICT_REDIRECTED => "REDIRECTED",
        VERDICT_ROUTED => "FORWARDED",
        VERDICT_TRANSLATED => "TRANSLATED",
        VERDICT_ARP_REPLIED => "ARP_REPLIED",
        VERDICT_TO_HOST => "TO_HOST",
        _ => "UNKNOWN",
    }
}

/// A drop reason's stable name; `unknown` for a number this build does not
/// know (a newer datapath's).
pub(crate) fn reason_name(reason: u8) -> &'static str {
    DropReason::ALL
        .into_iter()
        .find(|r| *r as u8 == reason)
        .map_or("unknown", DropReason::name)
}

fn address(family: u8, bytes: &[u8; 16]) -> Option<IpAddr> {
    match family {
        FAMILY_IPV4 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        FAMILY_IPV6 => Some(IpAddr::V6(Ipv6Addr::from(*bytes))),
        _ => None,
    }
}

fn l4(event: &MonitorEvent) -> Option<L4> {
    let source_port = u16::from_be_bytes(event.src_port);
    let destination_port = u16::from_be_bytes(event.dst_port);
    match event.proto {
        IPPROTO_TCP => Some(L4::Tcp {
            source_port,
            destination_port,
            flags: TcpFlags::from_byte(event.tcp_flags),
        }),
        IPPROTO_UDP => Some(L4::Udp {
            source_port,
            destination_port,
        }),
        IPPROTO_ICMP => Some(L4::Icmp {
            identifier: source_port,
        }),
        IPPROTO_ICMPV6 => Some(L4::Icmp6 {
            identifier: source_port,
        }),
        _ => None,
    }
}

impl Flow {
    /// One line a person reads at a glance: time, network, interface,
    /// hook, direction, verdict, `proto src:port -> dst:port`, length and
    /// flags.
    pub fn line(&self) -> String {
        let time = self.time.get(11..26).unwrap_or(&self.time);
        let interface = self.interface.as_ref().map_or("-", |i| i.name.as_str());
        let direction = self.traffic_direction.unwrap_or("-").to_lowercase();
        let what = match self.drop_reason_desc {
            Some(reason) => format!("DROP {reason}"),
            None if self.event.starts_with("nat_") => self.event.to_uppercase(),
            None => self.verdict.to_owned(),
        };
        let mut line = format!(
            "{time} {} {interface} {} {direction} {what}",
            self.network,
            self.trace_observation_point.to_lowercase()
        );
        let (proto, sport, dport, flags) = match &self.l4 {
            Some(L4::Tcp {
                source_port,
                destination_port,
                flags,
            }) => ("tcp", *source_port, *destination_port, flags.names()),
            Some(L4::Udp {
                source_port,
                destination_port,
            }) => ("udp", *source_port, *destination_port, Vec::new()),
            Some(L4::Icmp { identifier }) => ("icmp", *identifier, 0, Vec::new()),
            Some(L4::Icmp6 { identifier }) => ("icmp6", *identifier, 0, Vec::new()),
            None => ("ip", 0, 0, Vec::new()),
        };
        if let Some(ip) = &self.ip {
            // `[2001:db8::2]:80` for IPv6, as a socket address reads.
            line += &format!(
                " {proto} {} -> {}",
                SocketAddr::new(ip.source, sport),
                SocketAddr::new(ip.destination, dport)
            );
        }
        if let Some(nat) = &self.nat {
            line += &format!(" as {}", SocketAddr::new(nat.source, nat.source_port));
        }
        if let Some(len) = self.length {
            line += &format!(" len {len}");
        }
        if !flags.is_empty() {
            line += &format!(" flags {}", flags.join(","));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use netfwd_common::monitor::{
        DIRECTION_EGRESS, EVENT_DROP, FAMILY_IPV4, FAMILY_IPV6, HOOK_TC, MonitorEvent,
        VERDICT_DROPPED,
    };

    use super::{Clock, decode};

    fn spoofed_syn() -> MonitorEvent {
        let mut event = MonitorEvent {
            time_ns: 1,
            kind: EVENT_DROP,
            verdict: VERDICT_DROPPED,
            reason: netfwd_common::drop::DropReason::IpSpoofed as u8,
            hook: HOOK_TC,
            direction: DIRECTION_EGRESS,
            family: FAMILY_IPV4,
            proto: 6,
            tcp_flags: 0x02,
            ifindex: 7,
            len: 74,
            src_port: 4242u16.to_be_bytes(),
            dst_port: 80u16.to_be_bytes(),
            ..MonitorEvent::default()
        };
        event.src[..4].copy_from_slice(&[10, 0, 0, 9]);
        event.dst[..4].copy_from_slice(&[203, 0, 113, 1]);
        event
    }

    #[test]
    fn a_drop_reads_as_one_line_and_as_hubble_json() {
        let clock = Clock::now().expect("the clocks");
        let flow = decode(&spoofed_syn(), "net1", &clock, |i| format!("veth{i}"));
        let line = flow.line();
        assert!(
            line.ends_with(
                " net1 veth7 tc egress DROP ip_spoofed tcp 10.0.0.9:4242 -> 203.0.113.1:80 len 74 flags SYN"
            ),
            "{line}"
        );
        let json = serde_json::to_value(&flow).expect("serialisable");
        assert_eq!(json["verdict"], "DROPPED");
        assert_eq!(json["drop_reason_desc"], "ip_spoofed");
        assert_eq!(json["IP"]["source"], "10.0.0.9");
        assert_eq!(json["l4"]["TCP"]["destination_port"], 80);
        assert_eq!(json["l4"]["TCP"]["flags"]["SYN"], true);
        assert_eq!(json["traffic_direction"], "EGRESS");
        assert_eq!(json["interface"]["name"], "veth7");
    }

    #[test]
    fn an_ipv6_echo_reads_with_bracketed_addresses_and_as_icmpv6() {
        let clock = Clock::now().expect("the clocks");
        let mut event = MonitorEvent {
            family: FAMILY_IPV6,
            proto: 58,
            tcp_flags: 0,
            src_port: 77u16.to_be_bytes(),
            dst_port: [0; 2],
            ..spoofed_syn()
        };
        event.src = "2001:db8::9"
            .parse::<Ipv6Addr>()
            .expect("an address")
            .octets();
        event.dst = "2001:db8:1::1"
            .parse::<Ipv6Addr>()
            .expect("an address")
            .octets();
        let flow = decode(&event, "net1", &clock, |i| format!("veth{i}"));
        let line = flow.line();
        assert!(
            line.ends_with(" icmp6 [2001:db8::9]:77 -> [2001:db8:1::1]:0 len 74"),
            "{line}"
        );
        let json = serde_json::to_value(&flow).expect("serialisable");
        assert_eq!(json["IP"]["ipVersion"], "IPv6");
        assert_eq!(json["l4"]["ICMPv6"]["identifier"], 77);
    }
}
