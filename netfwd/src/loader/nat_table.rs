//! The NAT table as flows: both entries of each, joined; their state and
//! lifetime by the datapath's own rules (`NatTimeouts::for_flow`). Shared by
//! `netfwd nat list` and `status`. Expired flows are removed in the kernel
//! (`netfwd-ebpf/src/nat/sweep.rs`), not here.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use anyhow::{Context as _, Result};
use netfwd_common::nat::{
    IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, Ipv6Bytes, NatEntry, NatKey,
    NatTimeouts, SEEN_REPLY, TCP_CLOSING, TCP_ESTABLISHED, TCP_SEEN_SYN_ACK,
};
use nix::time::{ClockId, clock_gettime};
use serde::Serialize;

use ipnet::IpNet;

/// An address as a family's NAT table holds it.
pub trait TableAddr: Copy {
    fn ip(self) -> IpAddr;
}

impl TableAddr for [u8; 4] {
    fn ip(self) -> IpAddr {
        Ipv4Addr::from(self).into()
    }
}

impl TableAddr for Ipv6Bytes {
    fn ip(self) -> IpAddr {
        Ipv6Addr::from(self.0).into()
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_ns`.
pub fn now_ns() -> Result<u64> {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).context("reading CLOCK_MONOTONIC")?;
    Ok(t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
}

/// One flow, as `nat list` shows it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Flow {
    pub protocol: &'static str,
    pub inside: String,
    /// The translated address and port on the uplink; `outside` in
    /// `nat list --json`, as published.
    #[serde(rename = "outside")]
    pub uplink: String,
    pub remote: String,
    pub state: &'static str,
    pub age_secs: u64,
    pub expires_in_secs: u64,
}

/// How many flows of one protocol in one state a table holds.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct FlowKind {
    /// `tcp`, `udp`, `icmp` or `other`, as `nat list` names them.
    pub proto: &'static str,
    /// As `nat list` names it: `syn_sent`, `syn_recv`, `established`,
    /// `closing` for TCP; `unreplied`, `replied` for the rest.
    pub state: &'static str,
    pub flows: usize,
}

/// A table's flows counted in one pass, without a `Flow` apiece: those of
/// one subnet's endpoints, and all of them by kind (a few counters,
/// whatever the table's size).
#[derive(Debug, PartialEq, Eq)]
pub struct Census {
    pub subnet_flows: usize,
    /// Every flow of the table, each network's on a shared uplink, by
    /// protocol and state, in that order.
    pub by_kind: Vec<FlowKind>,
}

/// Counts `entries`' flows (by their ingress entries) for [`Census`]:
/// `subnet`'s, returned, and all of them into `kinds`.
pub fn census<A: TableAddr>(
    entries: &[(NatKey<A>, NatEntry<A>)],
    subnet: &IpNet,
    kinds: &mut BTreeMap<(&'static str, &'static str), usize>,
) -> usize {
    let mut subnet_flows = 0;
    for (k, v) in entries.iter().filter(|(k, _)| k.is_ingress()) {
        if in_subnet(k, v, subnet) {
            subnet_flows += 1;
        }
        *kinds
            .entry((protocol_name(k.proto), state_name(k.proto, v.flags)))
            .or_insert(0) += 1;
    }
    subnet_flows
}

impl Census {
    /// The census of both families' tables: `subnet`'s flows in the one,
    /// `subnet6`'s in the other (none without it), every flow by kind.
    pub fn of(
        nat: &[(NatKey, NatEntry)],
        nat6: &[(NatKey<Ipv6Bytes>, NatEntry<Ipv6Bytes>)],
        subnet: &IpNet,
        subnet6: Option<&IpNet>,
    ) -> Census {
        let mut kinds = BTreeMap::new();
        let mut subnet_flows = census(nat, subnet, &mut kinds);
        let flows6 = subnet6.map(|subnet6| census(nat6, subnet6, &mut kinds));
        subnet_flows += flows6.unwrap_or_default();
        Census {
            subnet_flows,
            by_kind: kinds
                .into_iter()
                .map(|((proto, state), flows)| FlowKind {
                    proto,
                    state,
                    flows,
                })
                .collect(),
        }
    }
}

/// The entries of the flows of `subnet`'s endpoints, in a table that all
/// networks on an uplink share.
pub fn of_subnet<A: TableAddr>(
    entries: Vec<(NatKey<A>, NatEntry<A>)>,
    subnet: &IpNet,
) -> Vec<(NatKey<A>, NatEntry<A>)> {
    entries
        .into_iter()
        .filter(|(k, v)| in_subnet(k, v, subnet))
        .collect()
}

/// Whether entry `k` -> `v` belongs to a flow of `subnet`'s endpoints: an
/// ingress entry by the endpoint it leads to, an egress entry by its inside
/// source.
fn in_subnet<A: TableAddr>(k: &NatKey<A>, v: &NatEntry<A>, subnet: &IpNet) -> bool {
    subnet.contains(&k.inside_addr(v).ip())
}

/// The flows of a table, from their reply-direction entries (which hold the
/// state); the order is the table's.
pub fn flows<A: TableAddr>(
    entries: &[(NatKey<A>, NatEntry<A>)],
    timeouts: &NatTimeouts,
    now: u64,
) -> Vec<Flow> {
    entries
        .iter()
        .filter(|(k, _)| k.is_ingress())
        .map(|(k, v)| {
            let expires_in_secs = timeouts.expires_in_secs(k.proto, v, now);
            Flow {
                protocol: protocol_name(k.proto),
                inside: endpoint(v.addr, v.port),
                uplink: endpoint(k.daddr, k.dport),
                remote: endpoint(k.saddr, k.sport),
                state: state_name(k.proto, v.flags),
                age_secs: now.saturating_sub(v.created_ns) / 1_000_000_000,
                expires_in_secs,
            }
        })
        .collect()
}

fn endpoint<A: TableAddr>(addr: A, port: [u8; 2]) -> String {
    SocketAddr::new(addr.ip(), u16::from_be_bytes(port)).to_string()
}

fn protocol_name(proto: u8) -> &'static str {
    match proto {
        IPPROTO_TCP => "tcp",
        IPPROTO_UDP => "udp",
        IPPROTO_ICMP => "icmp",
        IPPROTO_ICMPV6 => "icmpv6",
        _ => "other",
    }
}

/// TCP states by conntrack's names: `syn_sent` until the SYN is answered,
/// `syn_recv` until the originator acknowledges the answer.
fn state_name(proto: u8, flags: u8) -> &'static str {
    match proto {
        IPPROTO_TCP if flags & TCP_CLOSING != 0 => "closing",
        IPPROTO_TCP if flags & TCP_ESTABLISHED != 0 => "established",
        IPPROTO_TCP if flags & TCP_SEEN_SYN_ACK != 0 => "syn_recv",
        IPPROTO_TCP => "syn_sent",
        _ if flags & SEEN_REPLY != 0 => "replied",
        _ => "unreplied",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netfwd_common::nat::Tuple;

    const SEC: u64 = 1_000_000_000;

    fn udp_flow(last_seen: u64) -> [(NatKey, NatEntry); 2] {
        let egress = Tuple {
            proto: IPPROTO_UDP,
            src: [10, 0, 0, 2],
            dst: [203, 0, 113, 1],
            sport: 5000u16.to_be_bytes(),
            dport: 53u16.to_be_bytes(),
        }
        .egress_key();
        let out = NatEntry {
            addr: [203, 0, 113, 2],
            port: 61000u16.to_be_bytes(),
            created_ns: 0,
            last_seen_ns: 0,
            ..Default::default()
        };
        let reply = egress.ingress_partner(&out);
        let inside = NatEntry {
            addr: [10, 0, 0, 2],
            port: 5000u16.to_be_bytes(),
            flags: SEEN_REPLY,
            created_ns: 0,
            last_seen_ns: last_seen,
            ..Default::default()
        };
        [(egress, out), (reply, inside)]
    }

    #[test]
    fn a_flow_is_shown_from_both_of_its_entries() {
        let entries = udp_flow(10 * SEC);
        let flows = flows(&entries, &NatTimeouts::DEFAULT, 40 * SEC);
        assert_eq!(
            flows,
            [Flow {
                protocol: "udp",
                inside: "10.0.0.2:5000".into(),
                uplink: "203.0.113.2:61000".into(),
                remote: "203.0.113.1:53".into(),
                state: "replied",
                age_secs: 40,
                expires_in_secs: 30,
            }]
        );
    }

    #[test]
    fn the_census_counts_a_subnets_flows_and_every_flow_by_kind() {
        let mut entries = udp_flow(0).to_vec();
        let mut other = udp_flow(0);
        for (k, v) in &mut other {
            // Another network's endpoint on the same uplink, unanswered.
            if k.is_ingress() {
                v.addr = [10, 1, 0, 2];
                v.flags = 0;
            } else {
                k.saddr = [10, 1, 0, 2];
            }
        }
        entries.extend(other);
        let census = Census::of(&entries, &[], &"10.0.0.0/24".parse().unwrap(), None);
        assert_eq!(census.subnet_flows, 1);
        let kind = |state, flows| FlowKind {
            proto: "udp",
            state,
            flows,
        };
        assert_eq!(census.by_kind, [kind("replied", 1), kind("unreplied", 1)]);
    }

    #[test]
    fn tcp_states_follow_the_handshake() {
        use netfwd_common::nat::{TCP_SEEN_RST, TCP_SEEN_SYN};
        let syn = TCP_SEEN_SYN | SEEN_REPLY;
        assert_eq!(
            state_name(IPPROTO_TCP, syn),
            "syn_sent",
            "a reply is not enough"
        );
        assert_eq!(state_name(IPPROTO_TCP, syn | TCP_SEEN_SYN_ACK), "syn_recv");
        let established = syn | TCP_SEEN_SYN_ACK | TCP_ESTABLISHED;
        assert_eq!(state_name(IPPROTO_TCP, established), "established");
        assert_eq!(
            state_name(IPPROTO_TCP, established | TCP_SEEN_RST),
            "closing"
        );
        let timeouts = NatTimeouts::DEFAULT;
        assert_eq!(
            timeouts.for_flow(IPPROTO_TCP, syn | TCP_SEEN_SYN_ACK),
            timeouts.tcp_syn,
            "unconfirmed flows live on tcp_syn"
        );
    }
}
