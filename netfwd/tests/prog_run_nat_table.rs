//! The NAT table's limits and lifetime: a full port range, a full table, a
//! table full of unconfirmed flows, and a table pinned with an older
//! layout (expiry: `prog_run_nat_sweep.rs`). Each test runs in a namespace of its own (see `nat_lab`).
#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

mod common;
mod nat_lab;

use std::{
    net::{IpAddr, Ipv4Addr},
    process::Command,
};

use common::{PinDir, TCP, UDP, eth, ipv4, run, tcp_seq, udp};
use nat_lab::*;
use netfwd::loader::Programs;
use netfwd_common::{
    drop::DropReason,
    names::PROG_FROM_ENDPOINT,
    nat::{NatConfig, NatEntry},
};

#[test]
fn a_full_port_range_drops_new_flows_as_no_port_and_keeps_the_old_ones() {
    with_lab("noport", (61000, 61000), |lab| {
        let (action, first) = lab.send_from_a(REMOTE, UDP, udp(1000, 53, b"a", true));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(port(&first, SPORT), 61000);
        let (action, _) = lab.send_from_a(REMOTE, UDP, udp(1001, 53, b"b", true));
        assert_eq!(action, TC_ACT_SHOT, "no port left for this remote");
        assert_eq!(lab.counters(lab.host_a).drops[DropReason::NoPort.slot()], 1);
        let (action, again) = lab.send_from_a(REMOTE, UDP, udp(1000, 53, b"c", true));
        assert_eq!(action, TC_ACT_REDIRECT, "the live flow keeps working");
        assert_eq!(port(&again, SPORT), 61000);
        let (action, other) = lab.send_from_a(REMOTE, UDP, udp(1001, 54, b"d", true));
        assert_eq!(
            action, TC_ACT_REDIRECT,
            "ports are shared across remote ports"
        );
        assert_eq!(port(&other, SPORT), 61000);
    });
}

/// The lab's table holds 1024 flows: 16 to each of 64 remote ports, with 16
/// uplink ports (as many as a new flow tries), each answered (an unanswered one would give its room to
/// a new flow). A new flow to another remote port is refused and counted,
/// the ones in the table go on both ways; once they have expired, a new flow
/// to one of their remote ports takes an expired one's place.
#[test]
fn a_full_table_refuses_new_flows_as_nat_full_and_keeps_the_old_ones() {
    with_lab("natfull", (61000, 61015), |lab| {
        let mut first = 0;
        for dport in 100..164u16 {
            for i in 0..16u16 {
                let sport = 1000 + (dport - 100) * 16 + i;
                let (action, out) = lab.send_from_a(REMOTE, UDP, udp(sport, dport, b"q", true));
                assert_eq!(action, TC_ACT_REDIRECT, "flow {sport} -> {dport}");
                let answer = udp(dport, port(&out, SPORT), b"a", true);
                let (action, _) = lab.send_from_uplink(REMOTE, UPLINK_IP, UDP, answer);
                assert_eq!(action, TC_ACT_REDIRECT, "answer to {sport}");
                if sport == 1000 {
                    first = port(&out, SPORT);
                }
            }
        }
        let (action, _) = lab.send_from_a(REMOTE, UDP, udp(5000, 53, b"q", true));
        assert_eq!(action, TC_ACT_SHOT, "no room for a 1025th flow");
        assert_eq!(
            lab.counters(lab.host_a).drops[DropReason::NatFull.slot()],
            1
        );
        let (action, again) = lab.send_from_a(REMOTE, UDP, udp(1000, 100, b"r", true));
        assert_eq!(action, TC_ACT_REDIRECT, "a flow in the table goes on");
        assert_eq!(port(&again, SPORT), first);
        let (action, _) = lab.send_from_uplink(REMOTE, UPLINK_IP, UDP, udp(100, first, b"a", true));
        assert_eq!(action, TC_ACT_REDIRECT, "and its replies come back");

        let mut config = lab.maps.nat_config().unwrap();
        config.timeouts.udp = 1;
        lab.maps.set_nat_config(config).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let (action, _) = lab.send_from_a(REMOTE, UDP, udp(5000, 101, b"q", true));
        assert_eq!(action, TC_ACT_REDIRECT, "an expired flow made room");
    });
}

/// A SYN flood from spoofed sources fills the table (1024 flows here) with
/// unconfirmed flows: new flows, the endpoint's and the flood's, each evict
/// the oldest of them instead of being refused as `nat_full`, whichever
/// load of the datapath runs them.
#[test]
fn a_table_full_of_unconfirmed_flows_makes_room_for_new_ones() {
    with_lab("early-drop", (61000, 65535), |lab| {
        lab.maps
            .set_published(&[published(TCP, 8080, A_IP, 80)])
            .unwrap();
        let spoofed = |i: u32| Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i);
        for i in 0..1024 {
            let syn = tcp_seq(40000, 8080, SYN, (i, 0), b"");
            let (action, _) = lab.send_from_uplink(spoofed(i), UPLINK_IP, TCP, syn);
            assert_eq!(action, TC_ACT_REDIRECT, "SYN {i}");
        }
        // A's flows through a program of another load (as `attach` makes):
        // the rings are the network's, not one load's.
        let mut other_load = Programs::load_at(&lab.pins.0, 1024, None).unwrap();
        let from_a = other_load.program(PROG_FROM_ENDPOINT).unwrap();
        for sport in [1000, 1001] {
            let mut packet = eth(lab.host_a_mac, A_MAC, 0x0800);
            packet.extend(ipv4(A_IP, REMOTE, UDP, udp(sport, 53, b"q", true)));
            let (action, _) = run(from_a, &packet, lab.host_a);
            assert_eq!(action, TC_ACT_REDIRECT, "A's new flow from {sport} refused");
        }
        let (action, _) = lab.send_from_uplink(
            spoofed(5000),
            UPLINK_IP,
            TCP,
            tcp_seq(40000, 8080, SYN, (7, 0), b""),
        );
        assert_eq!(
            action, TC_ACT_REDIRECT,
            "a new connection to the published port"
        );
        assert_eq!(
            lab.counters(lab.host_a).drops[DropReason::NatFull.slot()],
            0
        );
        let entries = lab.maps.nat_entries().unwrap();
        assert_eq!(entries.len(), 2048, "every flow whole");
        for i in 0..3 {
            assert_eq!(lab.state(spoofed(i), 40000), "none", "the oldest made room");
        }
        assert_eq!(lab.state(spoofed(3), 40000), "syn_sent");
    });
}

/// A later load opens the program an earlier one loaded and pinned (the
/// verifier runs once); once a map it uses is made anew (a resized NAT
/// table), the next load loads it again, bound to the new map.
#[test]
fn a_load_opens_the_pinned_program_until_a_map_it_uses_is_made_anew() {
    let pins = PinDir::new("prog-pin");
    let loaded = |max_flows: u32| {
        let mut programs = Programs::load_at(&pins.0, max_flows, None).unwrap();
        let info = programs
            .program(PROG_FROM_ENDPOINT)
            .unwrap()
            .info()
            .unwrap();
        (info.id(), info.map_ids().unwrap().unwrap_or_default())
    };
    let (first, _) = loaded(1024);
    let (again, _) = loaded(1024);
    assert_eq!(again, first, "the second load verified the program again");
    let (resized, maps) = loaded(2048);
    assert_ne!(resized, first, "still bound to the old NAT table");
    let nat = aya::maps::MapInfo::from_pin(pins.0.join("NAT")).unwrap();
    assert!(maps.contains(&nat.id()), "{maps:?} lacks NAT {}", nat.id());
}

/// A NAT table pinned by a netfwd whose entries had another layout (24
/// bytes, before TCP sequence numbers) is recreated on load, not reused:
/// the programs would read past its values.
#[test]
fn a_pinned_nat_table_of_an_older_entry_layout_is_recreated() {
    let pins = PinDir::new("nat-layout");
    std::fs::create_dir_all(&pins.0).unwrap();
    let nat = pins.0.join("NAT");
    let nat_path = nat.to_str().unwrap();
    let args = "type hash key 16 value 24 entries 2048 name NAT";
    let status = Command::new("bpftool")
        .args(["map", "create", nat_path])
        .args(args.split_whitespace())
        .status()
        .unwrap();
    assert!(status.success(), "bpftool map create");
    Programs::load_at(&pins.0, 1024, None)
        .map_err(|e| format!("{e:#}"))
        .unwrap();
    let info = aya::maps::MapInfo::from_pin(&nat).unwrap();
    assert_eq!(info.value_size() as usize, size_of::<NatEntry>());
}

/// 1024 datagrams from as many client ports fill the table (1024 flows)
/// with flows the endpoint never answered: a new TCP connection of A's and
/// an answered flow's neighbours still get in, each evicting the oldest
/// unanswered flow, of any protocol.
#[test]
fn a_table_full_of_unanswered_datagrams_makes_room_for_a_new_connection() {
    with_lab("early-drop-udp", (61000, 65535), |lab| {
        lab.maps
            .set_published(&[published(UDP, 5353, A_IP, 53)])
            .unwrap();
        fill_with_unanswered_datagrams(lab, REMOTE.into(), UPLINK_IP.into());
        assert_eq!(lab.nat_flows(), 1024, "the table is full");
        let (action, _) = lab.send_from_a(REMOTE, TCP, tcp_seq(40001, 80, SYN, (1, 0), b""));
        assert_eq!(action, TC_ACT_REDIRECT, "A's new connection");
        assert_eq!(lab.state(REMOTE, 80), "syn_sent");
        assert_eq!(
            lab.counters(lab.host_a).drops[DropReason::NatFull.slot()],
            0
        );
        assert!(
            lab.flow(REMOTE, 10000).is_none(),
            "the oldest datagram made room"
        );
    });
}

/// The same over IPv6: `tc_to_remote6` has the eviction made by a jump
/// (`tc_nat_room6`) and comes back to take the room.
#[test]
fn over_ipv6_a_table_full_of_unanswered_datagrams_makes_room_for_a_new_connection() {
    with_lab("early-drop-udp6", (61000, 65535), |lab| {
        lab.dual_stack(0);
        lab.maps
            .set_published6(&[published6(UDP, 5353, A_IP6, 53)])
            .unwrap();
        fill_with_unanswered_datagrams(lab, REMOTE6.into(), UPLINK_IP6.into());
        let remote_ports = |lab: &NatLab| -> Vec<u16> {
            let entries = lab.maps.nat6_entries().unwrap();
            entries
                .iter()
                .filter(|(key, _)| key.saddr.0 == REMOTE6.octets())
                .map(|(key, _)| u16::from_be_bytes(key.sport))
                .collect()
        };
        assert_eq!(remote_ports(lab).len(), 1024, "the table is full");
        let (action, _) = lab.send_from_a(REMOTE6, TCP, tcp_seq(40001, 80, SYN, (1, 0), b""));
        assert_eq!(action, TC_ACT_REDIRECT, "A's new connection");
        assert_eq!(
            lab.counters(lab.host_a).drops[DropReason::NatFull.slot()],
            0
        );
        let left = remote_ports(lab);
        assert!(left.contains(&80), "A's flow is in the table");
        assert!(!left.contains(&10000), "the oldest datagram made room");
    });
}

/// Fills the lab's table (1024 flows) with datagrams from `remote` to the
/// published port 5353 at `uplink_ip`, which the endpoint never answers.
fn fill_with_unanswered_datagrams(lab: &mut NatLab, remote: IpAddr, uplink_ip: IpAddr) {
    for sport in 0..1024u16 {
        let query = udp(10000 + sport, 5353, b"q", true);
        let (action, _) = lab.send_from_uplink(remote, uplink_ip, UDP, query);
        assert_eq!(action, TC_ACT_REDIRECT, "datagram {sport}");
    }
}

/// One endpoint may hold at most `max_unreplied` unanswered flows: its
/// flood is refused past that (`unreplied_share`), its neighbour is not,
/// and an answer gives the share back.
#[test]
fn an_endpoints_unanswered_flows_are_held_to_its_share() {
    with_lab("share", (61000, 65535), |lab| {
        let config = lab.maps.nat_config().unwrap();
        lab.maps
            .set_nat_config(NatConfig {
                max_unreplied: 8,
                ..config
            })
            .unwrap();
        for sport in 0..8u16 {
            let (action, _) = lab.send_from_a(REMOTE, UDP, udp(20000 + sport, 53, b"q", true));
            assert_eq!(action, TC_ACT_REDIRECT, "flow {sport}");
        }
        let (action, _) = lab.send_from_a(REMOTE, UDP, udp(20008, 53, b"q", true));
        assert_eq!(action, TC_ACT_SHOT, "past its share");
        assert_eq!(
            lab.counters(lab.host_a).drops[DropReason::UnrepliedShare.slot()],
            1
        );
        // A packet of a flow it holds is no new flow.
        let (action, out) = lab.send_from_a(REMOTE, UDP, udp(20000, 53, b"again", true));
        assert_eq!(action, TC_ACT_REDIRECT);
        // The answer to it gives one back.
        let answer = udp(53, port(&out, SPORT), b"a", true);
        let (action, _) = lab.send_from_uplink(REMOTE, UPLINK_IP, UDP, answer);
        assert_eq!(action, TC_ACT_REDIRECT);
        let (action, _) = lab.send_from_a(REMOTE, UDP, udp(20008, 53, b"q", true));
        assert_eq!(action, TC_ACT_REDIRECT, "within its share again");
    });
}
