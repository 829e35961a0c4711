//! The NAT table as flows: both entries of each, joined; their state and
//! lifetime by the datapath's own rules (`NatTimeouts::for_flow`). Shared by
//! `netfwd nat list`, `status` and the daemon's collector.

use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{Context as _, Result};
use netfwd_common::nat::{
    DIR_EGRESS, DIR_INGRESS, FLOW_HAIRPIN, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, NatEntry,
    NatKey, NatTimeouts, SEEN_REPLY, TCP_SEEN_FIN_EGRESS, TCP_SEEN_FIN_INGRESS, TCP_SEEN_RST,
};
use nix::time::{ClockId, clock_gettime};
use serde::Serialize;

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
    pub outside: String,
    pub remote: String,
    pub state: &'static str,
    pub age_secs: u64,
    pub expires_in_secs: u64,
}

/// The flows of a table, from their reply-direction entries (which hold the
/// state); the order is the table's.
pub fn flows(entries: &[(NatKey, NatEntry)], timeouts: &NatTimeouts, now: u64) -> Vec<Flow> {
    entries
        .iter()
        .filter(|(k, _)| k.dir == DIR_INGRESS)
        .map(|(k, v)| {
            let idle = now.saturating_sub(v.last_seen_ns) / 1_000_000_000;
            let timeout = u64::from(timeouts.for_flow(k.proto, v.flags));
            Flow {
                protocol: protocol_name(k.proto),
                inside: endpoint(v.addr, v.port),
                outside: endpoint(k.daddr, k.dport),
                remote: endpoint(k.saddr, k.sport),
                state: state_name(k.proto, v.flags),
                age_secs: now.saturating_sub(v.created_ns) / 1_000_000_000,
                expires_in_secs: timeout.saturating_sub(idle),
            }
        })
        .collect()
}

/// The keys the collector removes: both entries of every expired flow, and
/// egress entries whose reply entry is gone (evicted, or collected before)
/// once they are older than the shortest timeout. `entries` is a snapshot
/// taken while the datapath kept changing the table (an iteration that races
/// deletions can miss keys), so every verdict is checked against the table
/// itself through `current` before a live flow could be cut.
pub fn expired_keys(
    entries: &[(NatKey, NatEntry)],
    timeouts: &NatTimeouts,
    now: u64,
    current: impl Fn(&NatKey) -> Option<NatEntry>,
) -> Vec<NatKey> {
    let shortest = [
        timeouts.tcp_syn,
        timeouts.tcp_established,
        timeouts.tcp_closing,
        timeouts.udp,
        timeouts.icmp,
    ]
    .into_iter()
    .min()
    .map_or(0, |s| u64::from(s) * 1_000_000_000);
    let is_expired = |k: &NatKey, v: &NatEntry| {
        let timeout = u64::from(timeouts.for_flow(k.proto, v.flags)) * 1_000_000_000;
        now.saturating_sub(v.last_seen_ns) > timeout
    };
    let seen: std::collections::HashSet<NatKey> = entries.iter().map(|(k, _)| *k).collect();
    let mut doomed = Vec::new();
    for (k, v) in entries.iter().filter(|(k, _)| k.dir == DIR_INGRESS) {
        if is_expired(k, v) && current(k).is_some_and(|fresh| is_expired(k, &fresh)) {
            doomed.push(*k);
            doomed.push(egress_partner(k, v));
        }
    }
    for (k, v) in entries.iter().filter(|(k, _)| k.dir == DIR_EGRESS) {
        let partner = reply_partner(k, v);
        let orphan = v.flags & FLOW_HAIRPIN == 0
            && !seen.contains(&partner)
            && now.saturating_sub(v.created_ns) > shortest
            && current(&partner).is_none();
        if orphan && !doomed.contains(k) {
            doomed.push(*k);
        }
    }
    doomed
}

/// The egress entry of the flow whose reply entry is `(k, v)`.
fn egress_partner(k: &NatKey, v: &NatEntry) -> NatKey {
    NatKey {
        saddr: v.addr,
        daddr: k.saddr,
        sport: v.port,
        dport: k.sport,
        proto: k.proto,
        dir: DIR_EGRESS,
        _pad: [0; 2],
    }
}

/// The reply entry of the flow whose egress entry is `(k, v)`.
fn reply_partner(k: &NatKey, v: &NatEntry) -> NatKey {
    NatKey {
        saddr: k.daddr,
        daddr: v.addr,
        sport: k.dport,
        dport: v.port,
        proto: k.proto,
        dir: DIR_INGRESS,
        _pad: [0; 2],
    }
}

fn endpoint(addr: [u8; 4], port: [u8; 2]) -> String {
    SocketAddrV4::new(Ipv4Addr::from(addr), u16::from_be_bytes(port)).to_string()
}

fn protocol_name(proto: u8) -> &'static str {
    match proto {
        IPPROTO_TCP => "tcp",
        IPPROTO_UDP => "udp",
        IPPROTO_ICMP => "icmp",
        _ => "other",
    }
}

fn state_name(proto: u8, flags: u8) -> &'static str {
    let closing = TCP_SEEN_FIN_EGRESS | TCP_SEEN_FIN_INGRESS | TCP_SEEN_RST;
    match (proto, flags & SEEN_REPLY != 0) {
        (IPPROTO_TCP, _) if flags & closing != 0 => "closing",
        (IPPROTO_TCP, true) => "established",
        (IPPROTO_TCP, false) => "syn_sent",
        (_, true) => "replied",
        (_, false) => "unreplied",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn udp_flow(last_seen: u64) -> [(NatKey, NatEntry); 2] {
        let egress = NatKey {
            saddr: [10, 0, 0, 2],
            daddr: [203, 0, 113, 1],
            sport: 5000u16.to_be_bytes(),
            dport: 53u16.to_be_bytes(),
            proto: IPPROTO_UDP,
            dir: DIR_EGRESS,
            _pad: [0; 2],
        };
        let out = NatEntry {
            addr: [203, 0, 113, 2],
            port: 61000u16.to_be_bytes(),
            created_ns: 0,
            last_seen_ns: 0,
            ..Default::default()
        };
        let reply = reply_partner(&egress, &out);
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
                outside: "203.0.113.2:61000".into(),
                remote: "203.0.113.1:53".into(),
                state: "replied",
                age_secs: 40,
                expires_in_secs: 30,
            }]
        );
    }

    /// A snapshot taken while the datapath changes the table can miss a
    /// live flow's reply entry, or hold a value refreshed since: the table
    /// itself decides.
    #[test]
    fn what_the_snapshot_got_wrong_the_table_corrects() {
        let entries = udp_flow(10 * SEC);
        let timeouts = NatTimeouts::DEFAULT;
        let (reply, egress) = if entries[0].0.dir == DIR_INGRESS {
            (entries[0], entries[1])
        } else {
            (entries[1], entries[0])
        };
        let live = |k: &NatKey| (*k == reply.0).then_some(reply.1);
        assert!(expired_keys(&[egress], &timeouts, 100 * SEC, live).is_empty());
        let refreshed = |_: &NatKey| {
            Some(NatEntry {
                last_seen_ns: 90 * SEC,
                ..reply.1
            })
        };
        assert!(expired_keys(&entries, &timeouts, 100 * SEC, refreshed).is_empty());
    }

    #[test]
    fn an_idle_flow_goes_whole_and_a_live_one_stays() {
        let entries = udp_flow(10 * SEC);
        let timeouts = NatTimeouts::DEFAULT;
        let current = |k: &NatKey| entries.iter().find(|(o, _)| o == k).map(|(_, v)| *v);
        assert!(expired_keys(&entries, &timeouts, 69 * SEC, current).is_empty());
        let doomed = expired_keys(&entries, &timeouts, 71 * SEC, current);
        assert_eq!(doomed.len(), 2);
        assert!(doomed.contains(&entries[0].0) && doomed.contains(&entries[1].0));
    }

    #[test]
    fn an_egress_entry_without_its_reply_entry_goes_once_old() {
        let [egress, _] = udp_flow(0);
        let timeouts = NatTimeouts::DEFAULT;
        let none = |_: &NatKey| None;
        assert!(expired_keys(&[egress], &timeouts, SEC, none).is_empty());
        assert_eq!(
            expired_keys(&[egress], &timeouts, 31 * SEC, none),
            [egress.0]
        );
    }

    #[test]
    fn tcp_states_follow_the_flags() {
        assert_eq!(state_name(IPPROTO_TCP, 0), "syn_sent");
        assert_eq!(state_name(IPPROTO_TCP, SEEN_REPLY), "established");
        assert_eq!(
            state_name(IPPROTO_TCP, SEEN_REPLY | TCP_SEEN_RST),
            "closing"
        );
    }
}
