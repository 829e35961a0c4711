//! Published ports on crafted packets: destination NAT, the hairpin, host-
//! only ports, the handshake that establishes a published flow, and ICMP
//! errors about published flows. Each test runs in a namespace of its own
//! (see `nat_lab`).
#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

mod common;
mod nat_lab;

use std::net::Ipv4Addr;

use common::{ICMP, TCP, UDP, checksums_ok, checksums6_ok, eth, ipv4, run, tcp, tcp_seq, udp};
use nat_lab::*;
use netfwd_common::{
    drop::DropReason,
    maps::{REMOTE_ISOLATED, REMOTE_LOCAL},
    names::PROG_FROM_ENDPOINT,
    nat::PUBLISH_HOST_ONLY,
};

#[test]
fn a_published_port_takes_new_connections_to_its_endpoint_and_replies_go_back() {
    with_lab("publish", (61000, 65535), |lab| {
        lab.maps
            .set_published(&[published(TCP, 8080, A_IP, 80)])
            .unwrap();
        let (action, inside) =
            lab.send_from_uplink(REMOTE, UPLINK_IP, TCP, tcp(50000, 8080, 0x02, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!((addr(&inside, DST), port(&inside, DPORT)), (A_IP, 80));
        assert_eq!(addr(&inside, SRC), REMOTE, "the server sees the client");
        assert!(checksums_ok(&inside[14..]));

        let (action, reply) = lab.send_from_a(REMOTE, TCP, tcp(80, 50000, 0x12, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!((addr(&reply, SRC), port(&reply, SPORT)), (UPLINK_IP, 8080));
        assert!(checksums_ok(&reply[14..]));

        let (action, _) = lab.send_from_uplink(REMOTE, UPLINK_IP, TCP, tcp(50000, 8081, 0x02, b""));
        assert_eq!(action, TO_HOST, "an unpublished port is the host's");
    });
}

/// Endpoint A's SYN from `sport` to its own published `host_port` (through
/// the hairpin) and the SYN-ACK it answers with, as the datapath puts each
/// out.
fn hairpin_round_trip(lab: &mut NatLab, sport: u16, host_port: u16) -> (Vec<u8>, Vec<u8>) {
    let (action, there) = lab.send_from_a(UPLINK_IP, TCP, tcp(sport, host_port, 0x02, b""));
    assert_eq!(action, TC_ACT_REDIRECT);
    let mut reply = eth(lab.host_a_mac, A_MAC, 0x0800);
    reply.extend(ipv4(
        A_IP,
        GATEWAY,
        TCP,
        tcp(80, port(&there, SPORT), 0x12, b""),
    ));
    let prog = lab.datapath.program(PROG_FROM_ENDPOINT).unwrap();
    let (action, back) = run(prog, &reply, lab.host_a);
    assert_eq!(action, TC_ACT_REDIRECT);
    (there, back)
}

/// The IPv6 twin, through the hairpin's own programs (`tc_hairpin6_flow`,
/// then `tc_hairpin6`): to the uplink's IPv6 address, translated to the
/// endpoint from the gateway's; the reply back from the uplink's address
/// and the host port.
#[test]
fn over_ipv6_an_endpoint_reaches_its_own_published_port_through_the_hairpin() {
    with_lab("hairpin6", (61000, 65535), |lab| {
        lab.dual_stack(0);
        lab.maps
            .set_published6(&[published6(TCP, 8080, A_IP6, 80)])
            .unwrap();
        let (action, there) = lab.send_from_a(UPLINK_IP6, TCP, tcp(40000, 8080, SYN, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!((addr6(&there, DST6), port(&there, DPORT6)), (A_IP6, 80));
        assert_eq!(addr6(&there, SRC6), GATEWAY6, "from the gateway");
        assert_eq!(&there[0..6], &A_MAC);
        assert!(checksums6_ok(&there[14..]));

        let gateway_port = port(&there, SPORT6);
        let (action, back) = lab.send_from_a(GATEWAY6, TCP, tcp(80, gateway_port, SYN | ACK, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(
            (addr6(&back, SRC6), port(&back, SPORT6)),
            (UPLINK_IP6, 8080)
        );
        assert_eq!((addr6(&back, DST6), port(&back, DPORT6)), (A_IP6, 40000));
        assert!(checksums6_ok(&back[14..]));

        let (action, _) = lab.send_from_a(UPLINK_IP6, TCP, tcp(40001, 8081, SYN, b""));
        assert_eq!(action, TO_HOST, "an unpublished port is the host's");
    });
}

#[test]
fn an_endpoint_reaches_its_own_published_port_through_the_hairpin() {
    with_lab("hairpin", (61000, 65535), |lab| {
        lab.maps
            .set_published(&[published(TCP, 8080, A_IP, 80)])
            .unwrap();
        let (there, back) = hairpin_round_trip(lab, 40000, 8080);
        assert_eq!((addr(&there, DST), port(&there, DPORT)), (A_IP, 80));
        assert_eq!(
            addr(&there, SRC),
            GATEWAY,
            "from the gateway, so replies come back"
        );
        assert_eq!(&there[0..6], &A_MAC);
        assert!(checksums_ok(&there[14..]));
        assert_eq!((addr(&back, SRC), port(&back, SPORT)), (UPLINK_IP, 8080));
        assert_eq!((addr(&back, DST), port(&back, DPORT)), (A_IP, 40000));
        assert!(checksums_ok(&back[14..]));
    });
}

/// One endpoint port on two host ports (`-p 8080:80 -p 8081:80`): each
/// hairpinned connection's replies come from the host port it chose.
#[test]
fn each_host_port_of_one_endpoint_port_answers_the_hairpin_from_itself() {
    with_lab("hairpin2", (61000, 65535), |lab| {
        lab.maps
            .set_published(&[
                published(TCP, 8080, A_IP, 80),
                published(TCP, 8081, A_IP, 80),
            ])
            .unwrap();
        for (sport, host_port) in [(40000, 8080), (40001, 8081)] {
            let (_, back) = hairpin_round_trip(lab, sport, host_port);
            assert_eq!(
                (addr(&back, SRC), port(&back, SPORT)),
                (UPLINK_IP, host_port)
            );
            assert_eq!((addr(&back, DST), port(&back, DPORT)), (A_IP, sport));
            assert!(checksums_ok(&back[14..]));
        }
    });
}

#[test]
fn a_host_only_port_is_neither_published_on_the_uplink_nor_hairpinned() {
    with_lab("hostonly", (61000, 65535), |lab| {
        let (key, mut target) = published(TCP, 8080, A_IP, 80);
        target.flags = PUBLISH_HOST_ONLY;
        lab.maps.set_published(&[(key, target)]).unwrap();
        let (action, _) = lab.send_from_uplink(REMOTE, UPLINK_IP, TCP, tcp(50000, 8080, 0x02, b""));
        assert_eq!(action, TO_HOST, "from the uplink: the host's port");
        let (_, there) = lab.send_from_a(UPLINK_IP, TCP, tcp(40000, 8080, 0x02, b""));
        assert_eq!(
            (addr(&there, DST), port(&there, DPORT)),
            (UPLINK_IP, 8080),
            "from an endpoint: not translated"
        );
        assert_eq!(lab.nat_flows(), 0, "no flow made");
    });
}

/// Issue #14: one spoofed SYN held a flow for `tcp_established`. Only a SYN
/// opens a flow to a published port, and the flow is established only once
/// the client acknowledges the endpoint's SYN-ACK, which a spoofed client
/// never sees.
#[test]
fn only_a_syn_opens_a_published_flow_and_only_the_handshake_establishes_it() {
    with_lab("syn-only", (61000, 65535), |lab| {
        lab.maps
            .set_published(&[published(TCP, 8080, A_IP, 80)])
            .unwrap();
        for flags in [ACK, RST, SYN | ACK] {
            let (action, _) = lab.send_from_uplink(
                REMOTE,
                UPLINK_IP,
                TCP,
                tcp_seq(50000, 8080, flags, (1000, 1), b""),
            );
            assert_eq!(action, TC_ACT_SHOT, "flags {flags:#x} opened a flow");
        }
        assert_eq!(
            lab.counters(lab.uplink).drops[DropReason::TcpNoFlow.slot()],
            3
        );
        assert_eq!(lab.state(REMOTE, 50000), "none");

        let syn = tcp_seq(50000, 8080, SYN, (1000, 0), b"");
        let (action, _) = lab.send_from_uplink(REMOTE, UPLINK_IP, TCP, syn);
        assert_eq!(action, TC_ACT_REDIRECT);
        let flow = lab.flow(REMOTE, 50000).unwrap();
        assert_eq!(flow.state, "syn_sent");
        assert!(flow.expires_in_secs <= 60, "on tcp_syn: {flow:?}");

        let syn_ack = tcp_seq(80, 50000, SYN | ACK, (5000, 1001), b"");
        let (action, _) = lab.send_from_a(REMOTE, TCP, syn_ack);
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(lab.state(REMOTE, 50000), "syn_recv");

        // A blind ACK (not of the SYN-ACK): delivered, A's stack judges it,
        // but the flow stays unconfirmed.
        let blind = tcp_seq(50000, 8080, ACK, (1001, 4242), b"");
        let (action, _) = lab.send_from_uplink(REMOTE, UPLINK_IP, TCP, blind);
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(lab.state(REMOTE, 50000), "syn_recv");

        let ack = tcp_seq(50000, 8080, ACK, (1001, 5001), b"");
        let (action, _) = lab.send_from_uplink(REMOTE, UPLINK_IP, TCP, ack);
        assert_eq!(action, TC_ACT_REDIRECT);
        let flow = lab.flow(REMOTE, 50000).unwrap();
        assert_eq!(flow.state, "established");
        assert!(flow.expires_in_secs > 60, "on tcp_established: {flow:?}");
    });
}

#[test]
fn an_endpoints_icmp_error_about_a_published_flow_leaves_as_the_nat() {
    with_lab("icmp-out", (61000, 65535), |lab| {
        let (key, target) = published(UDP, 5353, A_IP, 53);
        lab.maps.set_published(&[(key, target)]).unwrap();
        // A datagram to the published port makes the flow...
        let query = udp(33000, 5353, b"q", true);
        let (action, inbound) = lab.send_from_uplink(REMOTE, UPLINK_IP, UDP, query);
        assert_eq!(action, TC_ACT_REDIRECT);
        // ...and A answers it with "port unreachable", quoting what it got.
        let quoted = inbound[14..14 + 28].to_vec();
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&quoted);
        let (action, out) = lab.send_from_a(REMOTE, ICMP, icmp);
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(addr(&out, 26), UPLINK_IP, "outer source");
        assert_eq!(
            addr(&out, 14 + 20 + 8 + 16),
            UPLINK_IP,
            "quoted destination"
        );
        assert_eq!(
            port(&out, 14 + 20 + 8 + 20 + 2),
            5353,
            "quoted destination port"
        );
        assert!(checksums_ok(&out[14..]), "ICMP checksum after translation");
        assert_eq!(common::checksum(&out[42..62], 0), 0, "quoted IP checksum");
        // An error about a flow the NAT never carried: dropped.
        let mut stray = vec![3, 3, 0, 0, 0, 0, 0, 0];
        stray.extend(ipv4(REMOTE, A_IP, UDP, udp(1, 2, b"", true))[..28].to_vec());
        let (action, _) = lab.send_from_a(REMOTE, ICMP, stray);
        assert_eq!(action, TC_ACT_SHOT);
    });
}

/// The quoted packet was sent to A: B may not speak for A's flow (it could
/// reset or throttle A's connections).
#[test]
fn an_endpoints_icmp_error_quoting_another_endpoints_flow_is_dropped() {
    with_lab("icmp-foreign", (61000, 65535), |lab| {
        netfwd::procnet::enable_forwarding("hostb", &netfwd::netlink::Settings::default()).unwrap();
        lab.maps.ensure_counters(lab.host_b).unwrap();
        let (key, target) = published(UDP, 5353, A_IP, 53);
        lab.maps.set_published(&[(key, target)]).unwrap();
        let query = udp(33000, 5353, b"q", true);
        let (action, inbound) = lab.send_from_uplink(REMOTE, UPLINK_IP, UDP, query);
        assert_eq!(action, TC_ACT_REDIRECT);
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&inbound[14..14 + 28]);
        let mut packet = eth(mac_of("hostb"), B_MAC, 0x0800);
        packet.extend(ipv4(B_IP, REMOTE, ICMP, icmp));
        let prog = lab.datapath.program(PROG_FROM_ENDPOINT).unwrap();
        let (action, _) = run(prog, &packet, lab.host_b);
        assert_eq!(action, TC_ACT_SHOT);
        assert_eq!(
            lab.counters(lab.host_b).drops[DropReason::IcmpSpoofed.slot()],
            1
        );
    });
}

/// What the kernel drops as a martian, the datapath must not deliver: a
/// datagram to a published port from the gateway's, a sibling endpoint's,
/// another netfwd network's, the uplink's own or a loopback address.
#[test]
fn a_published_port_takes_no_source_that_cannot_be_on_the_internet() {
    with_lab("martian", (61000, 65535), |lab| {
        lab.maps
            .set_published(&[published(UDP, 5353, A_IP, 53)])
            .unwrap();
        let other_network: ipnet::Ipv4Net = "10.77.0.0/16".parse().unwrap();
        lab.maps
            .set_remotes(&[(other_network, REMOTE_ISOLATED | REMOTE_LOCAL)])
            .unwrap();
        let martians = [
            GATEWAY,
            B_IP,
            Ipv4Addr::new(10, 77, 0, 9),
            UPLINK_IP,
            Ipv4Addr::new(127, 0, 0, 1),
        ];
        for src in martians {
            let query = udp(33000, 5353, b"q", true);
            let (action, _) = lab.send_from_uplink(src, UPLINK_IP, UDP, query);
            assert_eq!(action, TC_ACT_SHOT, "from {src}");
        }
        let drops = lab.counters(lab.uplink).drops;
        assert_eq!(
            drops[DropReason::MartianSource.slot()],
            martians.len() as u64
        );
        assert_eq!(lab.nat_flows(), 0, "no flow for any of them");
        let query = udp(33000, 5353, b"q", true);
        let (action, _) = lab.send_from_uplink(REMOTE, UPLINK_IP, UDP, query);
        assert_eq!(action, TC_ACT_REDIRECT, "a client on the internet");
    });
}
