//! A network whose IPv6 leaves the uplink untranslated (`nat6 = false`, a
//! public prefix): an endpoint's flow keeps its address and port, a hop
//! further on; its replies come back in; nothing else for the endpoint's
//! address does. Beside it, NAT66's masquerade of the same flow. Each test
//! runs in a namespace of its own (see `nat_lab`).
#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

mod common;
mod nat_lab;

use std::net::Ipv6Addr;

use common::{TCP, UDP, checksums6_ok, tcp, tcp_seq, udp};
use nat_lab::*;
use netfwd_common::{drop::DropReason, maps::NETWORK6_NO_NAT};

/// Where the IPv6 header's fields and the transport ports lie in a frame.
const IP6: usize = 14;
const HOP_LIMIT6: usize = IP6 + 7;
const SRC6: usize = IP6 + 8;
const DST6: usize = IP6 + 24;
const SPORT6: usize = IP6 + 40;
const DPORT6: usize = IP6 + 42;

fn addr6(frame: &[u8], at: usize) -> Ipv6Addr {
    <[u8; 16]>::try_from(&frame[at..at + 16]).unwrap().into()
}

#[test]
fn with_nat6_off_a_flow_leaves_with_the_endpoints_own_address_and_its_reply_comes_back() {
    with_lab("nat6off", (61000, 65535), |lab| {
        lab.dual_stack(NETWORK6_NO_NAT);
        let (action, out) = lab.send_from_a(REMOTE6, TCP, tcp(40000, 80, SYN, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(&out[0..6], &ROUTER_MAC, "to the next hop");
        assert_eq!(&out[6..12], &lab.uplink_mac, "from the uplink");
        assert_eq!(addr6(&out, SRC6), A_IP6, "its own address");
        assert_eq!(port(&out, SPORT6), 40000, "its own port");
        assert_eq!(out[HOP_LIMIT6], 63, "a hop further on");
        assert!(checksums6_ok(&out[IP6..]));

        let syn_ack = tcp_seq(80, 40000, SYN | ACK, (5000, 2), b"");
        let (action, back) = lab.send_from_uplink(REMOTE6, A_IP6, TCP, syn_ack);
        assert_eq!(action, TC_ACT_REDIRECT, "the reply goes in");
        assert_eq!(&back[0..6], &A_MAC);
        assert_eq!(&back[6..12], &lab.host_a_mac);
        assert_eq!(addr6(&back, DST6), A_IP6);
        assert_eq!(port(&back, DPORT6), 40000);
        assert_eq!(back[HOP_LIMIT6], 63);
        assert!(checksums6_ok(&back[IP6..]));
    });
}

#[test]
fn with_nat6_off_what_is_no_reply_to_an_endpoints_flow_is_dropped_as_policy() {
    with_lab("nat6pol", (61000, 65535), |lab| {
        lab.dual_stack(NETWORK6_NO_NAT);
        let policy = |lab: &NatLab| lab.counters(lab.uplink).drops[DropReason::Policy.slot()];
        let (action, _) = lab.send_from_uplink(REMOTE6, A_IP6, TCP, tcp(5555, 22, SYN, b""));
        assert_eq!(action, TC_ACT_SHOT, "a new connection from outside");
        assert_eq!(policy(lab), 1);

        let (action, _) = lab.send_from_a(REMOTE6, UDP, udp(5353, 53, b"q", true));
        assert_eq!(action, TC_ACT_REDIRECT);
        let (action, _) = lab.send_from_uplink(REMOTE6, A_IP6, UDP, udp(53, 5353, b"a", true));
        assert_eq!(action, TC_ACT_REDIRECT, "its reply");
        let (action, _) = lab.send_from_uplink(REMOTE6, A_IP6, UDP, udp(54, 5353, b"x", true));
        assert_eq!(action, TC_ACT_SHOT, "another port of the same remote");
        let (action, _) = lab.send_from_uplink(REMOTE6, A_IP6, UDP, udp(53, 5354, b"x", true));
        assert_eq!(action, TC_ACT_SHOT, "another port of the endpoint");
        assert_eq!(policy(lab), 3);
    });
}

#[test]
fn with_nat66_the_same_flow_leaves_as_the_uplink_address() {
    with_lab("nat66", (61000, 65535), |lab| {
        lab.dual_stack(0);
        let (action, out) = lab.send_from_a(REMOTE6, TCP, tcp(40000, 80, SYN, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(addr6(&out, SRC6), UPLINK_IP6);
        let uplink_port = port(&out, SPORT6);
        assert!((61000..=65535).contains(&uplink_port), "{uplink_port}");
        assert!(checksums6_ok(&out[IP6..]));

        let (action, _) = lab.send_from_uplink(REMOTE6, A_IP6, TCP, tcp(5555, 22, SYN, b""));
        assert_eq!(action, TC_ACT_SHOT, "the endpoint's address from outside");
    });
}
