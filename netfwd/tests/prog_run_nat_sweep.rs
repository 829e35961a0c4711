//! The NAT table's expiry sweep in the kernel (`nat::sweep`), one step at a
//! time as its timer runs it (a walk that marks, then the removals), and
//! armed on its own timer. Each test runs in a namespace of its own (see
//! `nat_lab`).
#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

mod common;
mod nat_lab;

use std::time::{Duration, Instant};

use common::{TCP, UDP, tcp, udp};
use nat_lab::*;
use netfwd_common::nat::{
    DIR_INGRESS, FlowSender, LONE_EGRESS_EVERY, NatConfig, NatSweep, NatTimeouts,
};

/// Longer than any default timeout (`tcp_established` is 6 h).
const A_DAY: u64 = 86_400;

fn sweep_record(lab: &NatLab) -> NatSweep {
    lab.maps.nat_sweep().unwrap().unwrap()
}

#[test]
fn an_expired_flow_is_removed_whole_and_off_its_senders_share() {
    with_lab("sweep-expired", (61000, 65535), |lab| {
        let (action, _) = lab.send_from_a(REMOTE, UDP, udp(1000, 53, b"q", true));
        assert_eq!(action, TC_ACT_REDIRECT);
        let sender = FlowSender::endpoint(A_IP.octets());
        assert_eq!(lab.unreplied(&sender), 1, "unanswered, on A's share");
        lab.age_flows(A_DAY);

        lab.sweep_step();
        assert_eq!(lab.nat_flows(), 1, "a walk only marks");
        assert_eq!(sweep_record(lab).pending, 1);
        lab.sweep_step();
        let left = lab.maps.nat_entries().unwrap();
        assert!(left.is_empty(), "left behind: {left:?}");
        assert_eq!(lab.unreplied(&sender), 0, "off A's share");
        let record = sweep_record(lab);
        assert_eq!((record.pending, record.flows_removed), (0, 1));
        assert_eq!(record.walks, 1);
        assert_eq!(record.last_walk_entries, 2, "both entries walked");
    });
}

#[test]
fn a_live_flow_is_kept() {
    with_lab("sweep-live", (61000, 65535), |lab| {
        let (action, _) = lab.send_from_a(REMOTE, UDP, udp(1000, 53, b"old", true));
        assert_eq!(action, TC_ACT_REDIRECT);
        lab.age_flows(A_DAY);
        let (action, _) = lab.send_from_a(REMOTE, UDP, udp(1001, 53, b"new", true));
        assert_eq!(action, TC_ACT_REDIRECT);
        let sender = FlowSender::endpoint(A_IP.octets());
        assert_eq!(lab.unreplied(&sender), 2);

        lab.sweep_step();
        lab.sweep_step();
        assert_eq!(lab.nat_flows(), 1);
        assert!(
            lab.flow(REMOTE, 53)
                .is_some_and(|f| f.inside.ends_with(":1001"))
        );
        assert_eq!(lab.unreplied(&sender), 1, "the live flow still counts");
        let (action, _) = lab.send_from_a(REMOTE, UDP, udp(1001, 53, b"again", true));
        assert_eq!(action, TC_ACT_REDIRECT, "and goes on");
        assert_eq!(lab.nat_flows(), 1);
    });
}

/// The race the sweep closes: a packet refreshes the flow in place after
/// the walk found it expired and before its removal. The removal takes the
/// entry as it is then, and keeps it.
#[test]
fn a_flow_refreshed_between_the_walk_and_the_removal_is_kept() {
    with_lab("sweep-refreshed", (61000, 65535), |lab| {
        let (action, _) = lab.send_from_a(REMOTE, UDP, udp(1000, 53, b"q", true));
        assert_eq!(action, TC_ACT_REDIRECT);
        lab.age_flows(A_DAY);
        lab.sweep_step();
        assert_eq!(sweep_record(lab).pending, 1, "marked expired");

        lab.refresh_flows();
        lab.sweep_step();
        assert_eq!(lab.nat_flows(), 1, "kept whole");
        let record = sweep_record(lab);
        assert_eq!((record.pending, record.flows_removed), (0, 0));
        let sender = FlowSender::endpoint(A_IP.octets());
        assert_eq!(lab.unreplied(&sender), 1, "still on A's share");
    });
}

/// The other way a flow changes under the sweep: the endpoint's next packet
/// finds its flow expired and takes its port over in place, as a new flow.
/// The removal finds a live entry, and keeps it.
#[test]
fn a_flow_taken_over_between_the_walk_and_the_removal_is_kept() {
    with_lab("sweep-taken-over", (61000, 65535), |lab| {
        let (action, first) = lab.send_from_a(REMOTE, TCP, tcp(40000, 443, SYN, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        lab.age_flows(A_DAY);
        lab.sweep_step();
        assert_eq!(sweep_record(lab).pending, 1, "marked expired");

        let (action, again) = lab.send_from_a(REMOTE, TCP, tcp(40000, 443, SYN, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(port(&again, SPORT), port(&first, SPORT), "its own port");
        lab.sweep_step();
        assert_eq!(lab.nat_flows(), 1, "kept whole");
        assert_eq!(sweep_record(lab).flows_removed, 0);
        let (action, _) = lab.send_from_a(REMOTE, TCP, tcp(40000, 443, SYN, b""));
        assert_eq!(action, TC_ACT_REDIRECT, "and goes on");
    });
}

/// A hairpinned flow's egress entry is keyed by the client's tuple, which
/// is derived from its ingress entry as for any flow: both go.
#[test]
fn an_expired_hairpin_flow_is_removed_whole() {
    with_lab("sweep-hairpin", (61000, 65535), |lab| {
        lab.maps
            .set_published(&[published(TCP, 8080, A_IP, 80)])
            .unwrap();
        let (action, _) = lab.send_from_a(UPLINK_IP, TCP, tcp(40000, 8080, SYN, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(lab.maps.nat_entries().unwrap().len(), 2);
        lab.age_flows(A_DAY);
        lab.sweep_step();
        lab.sweep_step();
        let left = lab.maps.nat_entries().unwrap();
        assert!(left.is_empty(), "left behind: {left:?}");
    });
}

/// An egress entry whose ingress entry went without it is removed once
/// older than the shortest timeout, not before, by a walk that looks for
/// such entries (every `LONE_EGRESS_EVERY`th).
#[test]
fn a_lone_egress_entry_is_removed_once_old() {
    with_lab("sweep-lone", (61000, 65535), |lab| {
        let (action, _) = lab.send_from_a(REMOTE, UDP, udp(1000, 53, b"q", true));
        assert_eq!(action, TC_ACT_REDIRECT);
        let entries = lab.maps.nat_entries().unwrap();
        let (ingress, _) = entries.iter().find(|(k, _)| k.dir == DIR_INGRESS).unwrap();
        lab.remove_entry(ingress);
        lab.sweep_step();
        let record = sweep_record(lab);
        assert_eq!(
            (record.walks, record.pending),
            (1, 0),
            "young: it may be on its way"
        );
        lab.age_flows(A_DAY);
        for _ in 0..2 * LONE_EGRESS_EVERY {
            lab.sweep_step();
        }
        assert!(lab.maps.nat_entries().unwrap().is_empty());
        assert_eq!(sweep_record(lab).lone_removed, 1);
    });
}

/// Armed once, the sweep runs on its own timer: an expired flow goes
/// within its pace (1 s with these timeouts), with no step run by hand.
#[test]
fn the_armed_sweep_removes_expired_flows_on_its_own() {
    with_lab("sweep-timer", (61000, 65535), |lab| {
        let config = lab.maps.nat_config().unwrap();
        lab.maps
            .set_nat_config(NatConfig {
                timeouts: NatTimeouts {
                    udp: 2,
                    ..config.timeouts
                },
                ..config
            })
            .unwrap();
        lab.datapath.arm_nat_sweep().unwrap();
        let (action, _) = lab.send_from_a(REMOTE, UDP, udp(1000, 53, b"q", true));
        assert_eq!(action, TC_ACT_REDIRECT);
        lab.age_flows(A_DAY);
        let deadline = Instant::now() + Duration::from_secs(10);
        while lab.nat_flows() > 0 {
            assert!(Instant::now() < deadline, "the timer removed nothing");
            std::thread::sleep(Duration::from_millis(100));
        }
        let record = sweep_record(lab);
        assert!(record.walks >= 1 && record.flows_removed == 1, "{record:?}");
        assert_eq!(record.interval_ns, 1_000_000_000);
    });
}
