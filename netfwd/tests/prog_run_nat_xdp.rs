//! The uplink's and endpoints' XDP programs with NAT: redirects only where
//! the loader allowed them, and a live flow's reply translated. Each test
//! runs in a namespace of its own (see `nat_lab`).
#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

mod common;
mod nat_lab;

use common::{ICMP, TCP, UDP, checksums_ok, eth, icmp_echo, ipv4, run_xdp, tcp, udp};
use nat_lab::*;
use netfwd_common::names::{PROG_XDP_FROM_ENDPOINT, PROG_XDP_FROM_UPLINK};

#[test]
fn xdp_redirects_to_an_endpoint_only_where_the_loader_allowed_it() {
    with_lab("xdp-east-west", (61000, 65535), |lab| {
        let mut packet = eth(B_MAC, A_MAC, 0x0800);
        packet.extend(ipv4(A_IP, B_IP, UDP, udp(5000, 53, b"q", true)));
        let run = |lab: &mut NatLab, packet: &[u8]| {
            let prog = lab.datapath.xdp(PROG_XDP_FROM_ENDPOINT).unwrap();
            run_xdp(prog, packet, lab.host_a)
        };
        // B's end not made fit for XDP frames: TC's.
        assert_eq!(run(lab, &packet).0, XDP_PASS);
        lab.maps.set_xdp_target(lab.host_b, true).unwrap();
        let (action, out) = run(lab, &packet);
        assert_eq!(action, XDP_REDIRECT);
        assert_eq!(out, packet, "addressed to B's MAC already: unchanged");
        assert_eq!(lab.counters(lab.host_a).redirected, 1);
        // A spoofed source is TC's to drop and count.
        let mut spoofed = eth(B_MAC, A_MAC, 0x0800);
        spoofed.extend(ipv4(REMOTE, B_IP, UDP, udp(5000, 53, b"q", true)));
        assert_eq!(run(lab, &spoofed).0, XDP_PASS);
        assert_eq!(
            lab.counters(lab.host_a).rx_packets,
            1,
            "XDP counts what it finished"
        );
    });
}

#[test]
fn xdp_translates_a_live_flows_reply_and_passes_everything_else() {
    with_lab("xdp-nat", (61000, 65535), |lab| {
        // The first packet of a flow leaves through TC, which makes the flow.
        let (action, out) = lab.send_from_a(REMOTE, TCP, tcp(40000, 443, 0x02, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        let uplink_port = port(&out, 34);
        let reply = || tcp(443, uplink_port, 0x12, b"hello");

        // Not yet allowed to redirect to A: passed, unchanged, to TC.
        let (action, out) = lab.send_from_uplink_xdp(REMOTE, UPLINK_IP, TCP, reply());
        assert_eq!(action, XDP_PASS);
        assert_eq!(addr(&out, 30), UPLINK_IP);

        lab.maps.set_xdp_target(lab.host_a, true).unwrap();
        let (action, out) = lab.send_from_uplink_xdp(REMOTE, UPLINK_IP, TCP, reply());
        assert_eq!(action, XDP_REDIRECT);
        assert_eq!(&out[0..6], &A_MAC);
        assert_eq!(&out[6..12], &lab.host_a_mac);
        assert_eq!(addr(&out, 30), A_IP);
        assert_eq!(port(&out, 36), 40000);
        assert_eq!(out[22], 63, "one hop");
        assert!(checksums_ok(&out[14..]), "checksums after translation");
        assert_eq!(lab.counters(lab.uplink).translated, 1);

        // A packet of no flow, an ICMP error, a fragment: TC's.
        let (action, _) =
            lab.send_from_uplink_xdp(REMOTE, UPLINK_IP, TCP, tcp(443, 1234, 0x12, b""));
        assert_eq!(action, XDP_PASS);
        let (action, _) = lab.send_from_uplink_xdp(REMOTE, UPLINK_IP, ICMP, icmp_echo(3, 0, 0));
        assert_eq!(action, XDP_PASS);
        let mut fragment = lab.uplink_frame(REMOTE, UPLINK_IP, TCP, reply());
        fragment[14 + 6] = 0x20; // more fragments
        let prog = lab.datapath.xdp(PROG_XDP_FROM_UPLINK).unwrap();
        assert_eq!(run_xdp(prog, &fragment, lab.uplink).0, XDP_PASS);
    });
}
