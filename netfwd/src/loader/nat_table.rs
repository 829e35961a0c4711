//! The NAT table as flows: both entries of each, joined; their state and
//! lifetime by the datapath's own rules (`NatTimeouts::for_flow`). Shared by
//! `netfwd nat list`, `status` and the daemon's collector.

use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{Context as _, Result};
use netfwd_common::nat::{
    DIR_EGRESS, DIR_INGRESS, FlowSender, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, NatEntry, NatKey,
    NatTimeouts, SEEN_REPLY, TCP_CLOSING, TCP_ESTABLISHED, TCP_SEEN_SYN_ACK,
};
use nix::time::{ClockId, clock_gettime};
use serde::Serialize;

use crate::ipnet::Ipv4Net;

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

/// The entries of the flows of `subnet`'s endpoints, in a table that all
/// networks on an uplink share: an ingress entry by the endpoint it leads to,
/// an egress entry by its inside source.
pub fn of_subnet(entries: Vec<(NatKey, NatEntry)>, subnet: &Ipv4Net) -> Vec<(NatKey, NatEntry)> {
    entries
        .into_iter()
        .filter(|(k, v)| {
            let inside = if k.dir == DIR_INGRESS {
                v.addr
            } else {
                k.saddr
            };
            subnet.contains(Ipv4Addr::from(inside))
        })
        .collect()
}

/// The flows of a table, from their reply-direction entries (which hold the
/// state); the order is the table's.
pub fn flows(entries: &[(NatKey, NatEntry)], timeouts: &NatTimeouts, now: u64) -> Vec<Flow> {
    entries
        .iter()
        .filter(|(k, _)| k.dir == DIR_INGRESS)
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

/// The NAT map as the collector reads and changes it, one entry at a time.
pub trait NatTable {
    fn entry(&self, key: &NatKey) -> Result<Option<NatEntry>>;
    fn remove(&mut self, key: &NatKey) -> Result<()>;
    /// One unanswered flow of `sender` fewer (see `UNREPLIED_BY_SENDER`).
    fn count_gone(&mut self, sender: &FlowSender) -> Result<()>;
}

/// One collector pass: removes both entries of every expired flow, and
/// egress entries whose ingress entry is gone (evicted, or collected before)
/// once they are older than the shortest timeout; returns the flows removed.
/// `snapshot` only names candidates: it was read while the datapath kept
/// changing the table (an iteration racing deletions can miss keys, values
/// go stale), and the datapath hands an expired flow's port to a new flow
/// in place. So each verdict is taken on the entry as it is now, right
/// before its removal, and an egress entry goes with an ingress entry only
/// while it still points at it.
pub fn collect_expired(
    snapshot: &[(NatKey, NatEntry)],
    timeouts: &NatTimeouts,
    now: u64,
    table: &mut impl NatTable,
) -> Result<usize> {
    let is_expired = |k: &NatKey, v: &NatEntry| timeouts.expired(k.proto, v, now);
    let mut collected = 0;
    for (k, v) in snapshot.iter().filter(|(k, _)| k.dir == DIR_INGRESS) {
        if !is_expired(k, v) {
            continue;
        }
        let Some(reply) = table.entry(k)?.filter(|fresh| is_expired(k, fresh)) else {
            continue;
        };
        table.remove(k)?;
        collected += 1;
        if reply.answered == 0 {
            table.count_gone(&FlowSender::of_flow(k.proto, &reply))?;
        }
        let egress = k.egress_partner(&reply);
        if table
            .entry(&egress)?
            .is_some_and(|out| egress.ingress_partner(&out) == *k)
        {
            table.remove(&egress)?;
        }
    }
    let shortest = u64::from(timeouts.shortest()) * 1_000_000_000;
    let seen: std::collections::HashSet<NatKey> = snapshot.iter().map(|(k, _)| *k).collect();
    let orphan = |k: &NatKey, v: &NatEntry| {
        now.saturating_sub(v.created_ns) > shortest && !seen.contains(&k.ingress_partner(v))
    };
    for (k, v) in snapshot.iter().filter(|(k, _)| k.dir == DIR_EGRESS) {
        if !orphan(k, v) {
            continue;
        }
        if let Some(out) = table.entry(k)?
            && orphan(k, &out)
            && table.entry(&k.ingress_partner(&out))?.is_none()
        {
            table.remove(k)?;
        }
    }
    Ok(collected)
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

    /// The map, for the collector.
    #[derive(Default)]
    struct Table(std::collections::HashMap<NatKey, NatEntry>);

    impl NatTable for Table {
        fn entry(&self, key: &NatKey) -> Result<Option<NatEntry>> {
            Ok(self.0.get(key).copied())
        }
        fn remove(&mut self, key: &NatKey) -> Result<()> {
            self.0.remove(key);
            Ok(())
        }
        fn count_gone(&mut self, _sender: &FlowSender) -> Result<()> {
            Ok(())
        }
    }

    fn table_of(entries: &[(NatKey, NatEntry)]) -> Table {
        Table(entries.iter().copied().collect())
    }

    /// (egress, reply) of a flow.
    fn split(entries: [(NatKey, NatEntry); 2]) -> ((NatKey, NatEntry), (NatKey, NatEntry)) {
        if entries[0].0.dir == DIR_EGRESS {
            (entries[0], entries[1])
        } else {
            (entries[1], entries[0])
        }
    }

    /// A snapshot taken while the datapath changes the table can miss a
    /// live flow's ingress entry, or hold a value refreshed since: the table
    /// itself decides.
    #[test]
    fn what_the_snapshot_got_wrong_the_table_corrects() {
        let entries = udp_flow(10 * SEC);
        let timeouts = NatTimeouts::DEFAULT;
        let (egress, reply) = split(entries);
        let mut table = table_of(&entries);
        let collected = collect_expired(&[egress], &timeouts, 100 * SEC, &mut table).unwrap();
        assert_eq!((collected, table.0.len()), (0, 2));
        table.0.insert(
            reply.0,
            NatEntry {
                last_seen_ns: 90 * SEC,
                ..reply.1
            },
        );
        let collected = collect_expired(&entries, &timeouts, 100 * SEC, &mut table).unwrap();
        assert_eq!((collected, table.0.len()), (0, 2));
    }

    #[test]
    fn an_idle_flow_goes_whole_and_a_live_one_stays() {
        let entries = udp_flow(10 * SEC);
        let timeouts = NatTimeouts::DEFAULT;
        let mut table = table_of(&entries);
        assert_eq!(
            collect_expired(&entries, &timeouts, 69 * SEC, &mut table).unwrap(),
            0
        );
        assert_eq!(table.0.len(), 2);
        assert_eq!(
            collect_expired(&entries, &timeouts, 71 * SEC, &mut table).unwrap(),
            1
        );
        assert!(table.0.is_empty());
    }

    /// The datapath gave the expired flow's uplink port to a new flow of
    /// another endpoint after the snapshot was read: the new flow stays, and
    /// so does an egress entry that has moved to another port meanwhile.
    #[test]
    fn a_port_handed_on_in_place_is_not_collected() {
        let entries = udp_flow(10 * SEC);
        let timeouts = NatTimeouts::DEFAULT;
        let (egress, reply) = split(entries);
        let mut table = table_of(&entries);
        let newcomer = NatEntry {
            addr: [10, 0, 0, 3],
            last_seen_ns: 99 * SEC,
            ..reply.1
        };
        table.0.insert(reply.0, newcomer);
        collect_expired(&entries, &timeouts, 100 * SEC, &mut table).unwrap();
        assert_eq!(table.0.get(&reply.0), Some(&newcomer));

        let mut table = table_of(&entries);
        let moved = NatEntry {
            port: 61001u16.to_be_bytes(),
            ..egress.1
        };
        table.0.insert(egress.0, moved);
        assert_eq!(
            collect_expired(&entries, &timeouts, 100 * SEC, &mut table).unwrap(),
            1
        );
        assert_eq!(table.0.get(&egress.0), Some(&moved));
        assert_eq!(table.0.len(), 1);
    }

    #[test]
    fn an_egress_entry_without_its_reply_entry_goes_once_old() {
        let [egress, _] = udp_flow(0);
        let timeouts = NatTimeouts::DEFAULT;
        let mut table = table_of(&[egress]);
        collect_expired(&[egress], &timeouts, SEC, &mut table).unwrap();
        assert_eq!(table.0.len(), 1);
        collect_expired(&[egress], &timeouts, 31 * SEC, &mut table).unwrap();
        assert!(table.0.is_empty());
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
