//! Source NAT of flows an endpoint opens: the masquerade, its checksums,
//! its replies, and how a flow's port is kept and handed on. Each test runs
//! in a namespace of its own (see `nat_lab`).
#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

mod common;
mod nat_lab;

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use common::{ICMP, TCP, UDP, checksums_ok, eth, icmp_echo, ipv4, run, tcp, tcp_seq, udp};
use nat_lab::*;
use netfwd_common::{drop::DropReason, names::PROG_FROM_UPLINK};

#[test]
fn tcp_to_the_outside_leaves_by_the_uplink_masqueraded_and_its_reply_comes_back() {
    with_lab("tcp", (61000, 65535), |lab| {
        let (action, out) = lab.send_from_a(REMOTE, TCP, tcp(40000, 80, 0x02, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(&out[0..6], &ROUTER_MAC, "to the next hop");
        assert_eq!(&out[6..12], &lab.uplink_mac, "from the uplink");
        assert_eq!(addr(&out, SRC), UPLINK_IP);
        assert_eq!(addr(&out, DST), REMOTE);
        assert_eq!(out[TTL], 63);
        let uplink_port = port(&out, SPORT);
        assert!((61000..=65535).contains(&uplink_port), "{uplink_port}");
        assert!(checksums_ok(&out[14..]), "checksums after SNAT");
        assert_eq!(lab.counters(lab.host_a).translated, 1);

        let (action, back) =
            lab.send_from_uplink(REMOTE, UPLINK_IP, TCP, tcp(80, uplink_port, 0x12, b"hi"));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(&back[0..6], &A_MAC);
        assert_eq!(&back[6..12], &lab.host_a_mac);
        assert_eq!(addr(&back, DST), A_IP);
        assert_eq!(port(&back, DPORT), 40000);
        assert!(checksums_ok(&back[14..]), "checksums after reverse NAT");
        assert_eq!(lab.counters(lab.uplink).translated, 1);

        // The flow keeps its port.
        let (_, again) = lab.send_from_a(REMOTE, TCP, tcp(40000, 80, 0x10, b"data"));
        assert_eq!(port(&again, SPORT), uplink_port);
    });
}

#[test]
fn a_zero_udp_checksum_stays_zero_and_a_set_one_stays_valid() {
    with_lab("udp", (61000, 65535), |lab| {
        for (sport, with_checksum) in [(5353, false), (5354, true)] {
            let (action, out) =
                lab.send_from_a(REMOTE, UDP, udp(sport, 53, b"query", with_checksum));
            assert_eq!(action, TC_ACT_REDIRECT);
            assert_eq!(out[40..42] == [0, 0], !with_checksum, "UDP checksum field");
            assert!(checksums_ok(&out[14..]));
            let uplink_port = port(&out, SPORT);
            let (action, back) = lab.send_from_uplink(
                REMOTE,
                UPLINK_IP,
                UDP,
                udp(53, uplink_port, b"answer", with_checksum),
            );
            assert_eq!(action, TC_ACT_REDIRECT);
            assert_eq!((addr(&back, DST), port(&back, DPORT)), (A_IP, sport));
            assert_eq!(back[40..42] == [0, 0], !with_checksum);
            assert!(checksums_ok(&back[14..]));
        }
    });
}

#[test]
fn icmp_echo_identifier_is_translated_like_a_port() {
    with_lab("icmp", (61000, 65535), |lab| {
        let (action, out) = lab.send_from_a(REMOTE, ICMP, icmp_echo(8, 0x1234, 1));
        assert_eq!(action, TC_ACT_REDIRECT);
        let uplink_id = port(&out, 38);
        assert!((61000..=65535).contains(&uplink_id));
        assert!(checksums_ok(&out[14..]));
        let (action, back) =
            lab.send_from_uplink(REMOTE, UPLINK_IP, ICMP, icmp_echo(0, uplink_id, 1));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!((addr(&back, DST), port(&back, 38)), (A_IP, 0x1234));
        assert!(checksums_ok(&back[14..]));
    });
}

#[test]
fn fragmentation_needed_about_a_flow_reaches_the_endpoint_translated() {
    with_lab("pmtu", (61000, 65535), |lab| {
        let (_, out) = lab.send_from_a(REMOTE, TCP, tcp(40000, 80, 0x10, &[0; 64]));
        // A router on the way quotes the translated packet's header + 8 bytes.
        let quoted = &out[14..14 + 28];
        let mut error = vec![3, 4, 0, 0, 0, 0, 0x05, 0x00];
        error.extend_from_slice(quoted);
        let (action, back) = lab.send_from_uplink(ROUTER_IP, UPLINK_IP, ICMP, error);
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(addr(&back, DST), A_IP, "outer destination");
        let inner = &back[14 + 20 + 8..];
        assert_eq!(addr(inner, 12), A_IP, "quoted source");
        assert_eq!(port(inner, 20), 40000, "quoted source port");
        assert_eq!(port(inner, 22), 80);
        assert_eq!(common::checksum(&inner[..20], 0), 0, "quoted IP checksum");
        assert!(checksums_ok(&back[14..]), "outer IP and ICMP checksums");
    });
}

/// The MTU check is exact, in either family: a datagram that can't be
/// fragmented on the way (DF, or IPv6) and fills the uplink's MTU leaves
/// translated; one byte more goes to the stack, which answers "too big".
#[test]
fn a_datagram_is_too_big_for_the_uplink_from_one_byte_over_its_mtu() {
    with_lab("mtu-edge", (61000, 65535), |lab| {
        lab.dual_stack(0);
        ip("link set up0 mtu 1400");
        for (remote, ip_header) in [(IpAddr::from(REMOTE), 20), (REMOTE6.into(), 40)] {
            for (over, verdict) in [(0, TC_ACT_REDIRECT), (1, TO_HOST)] {
                let payload = vec![0x5a; 1400 - ip_header - 8 + over];
                let (action, _) = lab.send_from_a(remote, UDP, udp(40000, 53, &payload, true));
                assert_eq!(action, verdict, "{remote}, {over} byte(s) over the MTU");
            }
        }
    });
}

#[test]
fn the_masquerade_follows_a_change_of_the_uplinks_address() {
    with_lab("readdr", (61000, 65535), |lab| {
        let (_, before) = lab.send_from_a(REMOTE, UDP, udp(1000, 53, b"a", true));
        assert_eq!(addr(&before, SRC), UPLINK_IP);
        ip("addr del 203.0.113.2/24 dev up0");
        ip("addr add 203.0.113.3/24 dev up0");
        ip("route replace default via 203.0.113.1");
        ip("neigh replace 203.0.113.1 lladdr 02:00:00:00:00:01 dev up0 nud permanent");
        // A live mapping's address is checked once a second, not per packet
        // (snat's `SOURCE_RECHECK_NS`): the flow's next packet after that.
        std::thread::sleep(Duration::from_millis(1100));
        let (action, after) = lab.send_from_a(REMOTE, UDP, udp(1000, 53, b"b", true));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(addr(&after, SRC), Ipv4Addr::new(203, 0, 113, 3));
        assert!(checksums_ok(&after[14..]));
    });
}

#[test]
fn a_reply_with_no_ttl_left_is_dropped_not_given_to_the_host() {
    with_lab("ttl", (61000, 65535), |lab| {
        let (_, out) = lab.send_from_a(REMOTE, UDP, udp(1000, 53, b"a", true));
        let mut reply = eth(lab.uplink_mac, ROUTER_MAC, 0x0800);
        let mut ip = ipv4(
            REMOTE,
            UPLINK_IP,
            UDP,
            udp(53, port(&out, SPORT), b"b", true),
        );
        ip[8] = 1;
        ip[10..12].copy_from_slice(&[0, 0]);
        let c = common::checksum(&ip[..20], 0);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        reply.extend(ip);
        let prog = lab.datapath.program(PROG_FROM_UPLINK).unwrap();
        let (action, _) = run(prog, &reply, lab.uplink);
        assert_eq!(action, TC_ACT_SHOT);
        assert_eq!(
            lab.counters(lab.uplink).drops[DropReason::TtlExceeded.slot()],
            1
        );
    });
}

#[test]
fn a_reset_flow_gives_its_port_to_the_next_one_at_once() {
    with_lab("reclaim", (61000, 61000), |lab| {
        let (_, first) = lab.send_from_a(REMOTE, TCP, tcp(40000, 80, 0x02, b""));
        assert_eq!(port(&first, SPORT), 61000);
        let (action, _) = lab.send_from_a(REMOTE, TCP, tcp(40001, 80, 0x02, b""));
        assert_eq!(action, TC_ACT_SHOT, "the live flow holds the only port");
        lab.send_from_a(REMOTE, TCP, tcp(40000, 80, 0x04, b""));
        let (action, next) = lab.send_from_a(REMOTE, TCP, tcp(40001, 80, 0x02, b""));
        assert_eq!(
            action, TC_ACT_REDIRECT,
            "the reset flow's port was not reclaimed"
        );
        assert_eq!(port(&next, SPORT), 61000);
    });
}

/// Outbound too: the remote's SYN-ACK must acknowledge the endpoint's SYN.
/// A RST or FIN from outside counts only within the window past what the
/// endpoint acknowledged: a blind spray neither closes the flow nor hands
/// its port (the only one here) to another.
#[test]
fn a_blind_rst_or_fin_neither_closes_a_flow_nor_frees_its_port() {
    with_lab("blind-rst", (61000, 61000), |lab| {
        let (_, out) = lab.send_from_a(REMOTE, TCP, tcp_seq(40000, 80, SYN, (100, 0), b""));
        let p = port(&out, SPORT);
        let from_remote = |lab: &mut NatLab, flags, seq_ack| {
            let (action, _) =
                lab.send_from_uplink(REMOTE, UPLINK_IP, TCP, tcp_seq(80, p, flags, seq_ack, b""));
            assert_eq!(action, TC_ACT_REDIRECT, "delivered either way");
        };
        // Not acknowledging A's SYN: no answer to it.
        from_remote(lab, RST | ACK, (0, 4242));
        from_remote(lab, SYN | ACK, (7000, 4242));
        assert_eq!(lab.state(REMOTE, 80), "syn_sent");
        from_remote(lab, SYN | ACK, (7000, 101));
        assert_eq!(lab.state(REMOTE, 80), "syn_recv");
        lab.send_from_a(REMOTE, TCP, tcp_seq(40000, 80, ACK, (101, 7001), b""));
        assert_eq!(lab.state(REMOTE, 80), "established");

        for seq in [7001 + 65_536, 7000, 7001u32.wrapping_add(1 << 31)] {
            from_remote(lab, RST, (seq, 0));
            from_remote(lab, FIN | ACK, (seq, 101));
        }
        assert_eq!(lab.state(REMOTE, 80), "established");
        let (action, _) = lab.send_from_a(REMOTE, TCP, tcp_seq(40001, 80, SYN, (500, 0), b""));
        assert_eq!(action, TC_ACT_SHOT, "the port is still the flow's");
        assert_eq!(lab.counters(lab.host_a).drops[DropReason::NoPort.slot()], 1);

        // The remote's RST at its next sequence number (A acknowledged 7001;
        // 1000 bytes are in flight) closes it and frees the port.
        from_remote(lab, RST, (8001, 0));
        assert_eq!(lab.state(REMOTE, 80), "closing");
        let (action, next) = lab.send_from_a(REMOTE, TCP, tcp_seq(40001, 80, SYN, (500, 0), b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(port(&next, SPORT), p);
    });
}
