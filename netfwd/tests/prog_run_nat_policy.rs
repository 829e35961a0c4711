//! What the NAT does not translate: unsolicited packets, packets of no
//! flow, spoofed sources, untranslatable protocols, other networks' replies
//! and trusted sources on the wrong interface. Each test runs in a
//! namespace of its own (see `nat_lab`).
#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

mod common;
mod nat_lab;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::{ICMP, TCP, UDP, eth, icmp_echo, ipv4, run, tcp, udp};
use nat_lab::*;
use netfwd_common::{
    drop::DropReason,
    maps::{REMOTE_ROUTE, REMOTE_TRUSTED},
    names::PROG_FROM_ENDPOINT,
};

#[test]
fn unsolicited_packets_to_an_endpoint_are_dropped_as_policy() {
    with_lab("policy", (61000, 65535), |lab| {
        let (action, _) = lab.send_from_uplink(REMOTE, A_IP, TCP, tcp(5555, 22, 0x02, b""));
        assert_eq!(action, TC_ACT_SHOT);
        assert_eq!(lab.counters(lab.uplink).drops[DropReason::Policy.slot()], 1);
    });
}

#[test]
fn packets_of_no_flow_go_to_the_host_unchanged() {
    with_lab("hostflow", (61000, 65535), |lab| {
        let (action, _) = lab.send_from_uplink(REMOTE, UPLINK_IP, TCP, tcp(80, 40000, 0x12, b""));
        assert_eq!(action, TO_HOST);
        let (action, _) = lab.send_from_uplink(REMOTE, UPLINK_IP, ICMP, icmp_echo(8, 7, 1));
        assert_eq!(action, TO_HOST, "a ping of the host itself");
        assert_eq!(lab.counters(lab.uplink).to_host, 2);
    });
}

#[test]
fn spoofed_sources_and_untranslatable_protocols_are_dropped() {
    with_lab("spoof", (61000, 65535), |lab| {
        let mut packet = eth(lab.host_a_mac, A_MAC, 0x0800);
        packet.extend(ipv4(
            Ipv4Addr::new(192, 168, 28, 9),
            REMOTE,
            UDP,
            udp(1, 2, b"x", true),
        ));
        let prog = lab.datapath.program(PROG_FROM_ENDPOINT).unwrap();
        let (action, _) = run(prog, &packet, lab.host_a);
        assert_eq!(action, TC_ACT_SHOT);
        let (action, _) = lab.send_from_a(REMOTE, 47, vec![0; 8]);
        assert_eq!(action, TC_ACT_SHOT, "GRE");
        let c = lab.counters(lab.host_a);
        assert_eq!(c.drops[DropReason::IpSpoofed.slot()], 1);
        assert_eq!(c.drops[DropReason::Unsupported.slot()], 1);
    });
}

#[test]
fn a_reply_for_another_networks_endpoint_passes_on_untouched() {
    with_lab("shared", (61000, 65535), |lab| {
        // A TCP flow of A's, then A becomes another network's endpoint (the
        // table is the uplink's, shared by its networks).
        let (_, out) = lab.send_from_a(REMOTE, TCP, tcp(40000, 80, 0x02, b""));
        let uplink_port = port(&out, SPORT);
        let before = lab.maps.nat_entries().unwrap();
        lab.maps.remove_endpoint(A_IP).unwrap();

        // Its SYN-ACK is the other network's program's: passed on, neither
        // translated nor tracked here.
        let (action, back) =
            lab.send_from_uplink(REMOTE, UPLINK_IP, TCP, tcp(80, uplink_port, 0x12, b""));
        assert_eq!(action, TO_HOST);
        assert_eq!(addr(&back, DST), UPLINK_IP);
        assert_eq!(lab.maps.nat_entries().unwrap(), before, "state touched");
        assert_eq!(lab.counters(lab.uplink).translated, 0);
    });
}

/// A source in a trusted prefix (a peer host's endpoints, the LAN's own
/// hosts) reaches endpoints directly only on the interface those arrive on:
/// the same address on another interface (here the uplink, the LAN being
/// another) is the outside world's, and the FORWARD policy drops it.
#[test]
fn a_trusted_source_address_counts_only_on_the_trusted_interface() {
    with_lab("trust-iface", (61000, 65535), |lab| {
        let peers = ipnet::Ipv4Net::new(Ipv4Addr::new(10, 0, 2, 0), 24).unwrap();
        lab.maps
            .set_remotes(&[(peers, REMOTE_ROUTE | REMOTE_TRUSTED)])
            .unwrap();
        let peer = Ipv4Addr::new(10, 0, 2, 2);
        let inside = trusted_only_on_the_trusted_interface(lab, peer, A_IP);
        assert_eq!(addr(&inside, SRC), peer, "routed, not translated");
    });
}

/// A peer host's IPv6 prefix is IPv4's peer subnet: an endpoint's packet
/// to it is routed, one hop, with the endpoint's own address (no NAT66),
/// and the peer's packets get in only on the interface the peers are on.
#[test]
fn an_ipv6_peers_prefix_is_routed_untranslated_and_trusted_only_where_peers_are() {
    with_lab("peer6", (61000, 65535), |lab| {
        lab.dual_stack(0);
        ip(&format!(
            "-6 route add fd00:2::/64 via {ROUTER_IP6} dev up0"
        ));
        let peers: ipnet::Ipv6Net = "fd00:2::/64".parse().unwrap();
        lab.maps
            .set_remotes6(&[(peers, REMOTE_ROUTE | REMOTE_TRUSTED)])
            .unwrap();
        let peer = Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 2);
        let (action, out) = lab.send_from_a(peer, UDP, udp(5000, 53, b"q", true));
        assert_eq!(action, TC_ACT_REDIRECT, "routed to the peer");
        assert_eq!(addr6(&out, SRC6), A_IP6, "with the endpoint's own address");
        assert_eq!(out[HOP_LIMIT6], 63, "one hop");
        assert_eq!(&out[0..6], &ROUTER_MAC, "to the next hop");

        let inside = trusted_only_on_the_trusted_interface(lab, peer, A_IP6);
        assert_eq!(addr6(&inside, SRC6), peer, "routed, not translated");
        assert_eq!(inside[HOP_LIMIT6], 63, "one hop");
        assert_eq!(&inside[0..6], &A_MAC, "to the endpoint");
    });
}

/// `peer`'s packet to endpoint address `a` on the uplink: dropped as
/// `policy` while the trusted interface is another (the LAN), let in once
/// it is the uplink. Returns the packet let in.
fn trusted_only_on_the_trusted_interface<A: Into<IpAddr>>(
    lab: &mut NatLab,
    peer: A,
    a: A,
) -> Vec<u8> {
    let (peer, a): (IpAddr, IpAddr) = (peer.into(), a.into());
    let lan = lab.host_b;
    lab.maps.set_trusted_iface(lan).unwrap();
    let (action, _) = lab.send_from_uplink(peer, a, UDP, udp(5000, 53, b"q", true));
    assert_eq!(action, TC_ACT_SHOT, "a peer's address on the uplink");
    assert_eq!(lab.counters(lab.uplink).drops[DropReason::Policy.slot()], 1);

    lab.maps.set_trusted_iface(lab.uplink).unwrap();
    let (action, inside) = lab.send_from_uplink(peer, a, UDP, udp(5000, 53, b"q", true));
    assert_eq!(action, TC_ACT_REDIRECT, "where the peers are, it gets in");
    inside
}

/// netfwd translates on the uplink only: a destination the host routes out
/// of another interface would leave with the endpoint's own address.
#[test]
fn an_endpoints_packet_routed_out_of_another_interface_is_dropped() {
    with_lab("not-uplink", (61000, 65535), |lab| {
        ip("link add other0 type veth peer name other1");
        ip("link set other0 up");
        ip("link set other1 up");
        ip("addr add 192.0.2.2/24 dev other0");
        ip("neigh replace 192.0.2.9 lladdr 02:00:00:00:00:09 dev other0 nud permanent");
        let (action, _) = lab.send_from_a(Ipv4Addr::new(192, 0, 2, 9), ICMP, icmp_echo(8, 1, 1));
        assert_eq!(action, TC_ACT_SHOT);
        let drops = lab.counters(lab.host_a).drops;
        assert_eq!(drops[DropReason::NotUplink.slot()], 1);
        let (action, _) = lab.send_from_a(REMOTE, ICMP, icmp_echo(8, 1, 1));
        assert_eq!(action, TC_ACT_REDIRECT, "the uplink's way still translates");
    });
}
