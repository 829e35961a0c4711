//! Published ports on crafted packets: destination NAT (at the uplink's
//! address alone), the hairpin, host-only ports, the handshake that
//! establishes a published flow, and ICMP errors about published flows.
//! Each scenario is written once over a `Family` and run for IPv4 and for
//! IPv6 (NAT66). Each test runs in a namespace of its own (see `nat_lab`).
#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

mod common;
mod nat_lab;
// `family_twins!`: the scenario tests' own, one macro for both crates.
#[path = "../../tests/src/twins.rs"]
mod twins;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::{
    ICMP, ICMPV6, TCP, UDP, checksums_ok, checksums6_ok, eth, ipv4, run, tcp, tcp_seq, udp,
};
use ipnet::IpNet;
use nat_lab::*;
use netfwd_common::{
    drop::DropReason,
    maps::{NETWORK6_NO_NAT, REMOTE_ISOLATED, REMOTE_LOCAL},
    names::PROG_FROM_ENDPOINT,
    nat::PUBLISH_HOST_ONLY,
};

/// The lab's addresses of one family, and where its headers differ.
struct Family {
    uplink: IpAddr,
    remote: IpAddr,
    a: IpAddr,
    gateway: IpAddr,
    /// Another address of A's subnet.
    sibling: IpAddr,
    /// An endpoint of another network on the same uplink that the host
    /// routes as it is: IPv4's of the routed kind, IPv6's of a `nat6 =
    /// false` prefix; and that network's subnet.
    routed: IpAddr,
    other_network: &'static str,
    loopback: IpAddr,
    /// The family's ICMP protocol and its "port unreachable" (type, code).
    icmp: u8,
    port_unreachable: [u8; 2],
    /// The fixed IP header's length, and where its destination lies in it.
    ip_len: usize,
    dst_at: usize,
}

const V4: Family = Family {
    uplink: IpAddr::V4(UPLINK_IP),
    remote: IpAddr::V4(REMOTE),
    a: IpAddr::V4(A_IP),
    gateway: IpAddr::V4(GATEWAY),
    sibling: IpAddr::V4(B_IP),
    routed: IpAddr::V4(Ipv4Addr::new(10, 77, 0, 9)),
    other_network: "10.77.0.0/16",
    loopback: IpAddr::V4(Ipv4Addr::LOCALHOST),
    icmp: ICMP,
    port_unreachable: [3, 3],
    ip_len: 20,
    dst_at: 16,
};

const V6: Family = Family {
    uplink: IpAddr::V6(UPLINK_IP6),
    remote: IpAddr::V6(REMOTE6),
    a: IpAddr::V6(A_IP6),
    gateway: IpAddr::V6(GATEWAY6),
    sibling: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x28, 0, 0, 0, 0, 3)),
    routed: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 0, 9)),
    other_network: "2001:db8:77::/64",
    loopback: IpAddr::V6(Ipv6Addr::LOCALHOST),
    icmp: ICMPV6,
    port_unreachable: [1, 4],
    ip_len: 40,
    dst_at: 24,
};

impl Family {
    fn is_v6(&self) -> bool {
        self.a.is_ipv6()
    }

    /// Runs `test` on a fresh lab (NAT ports 61000-65535), dual-stack with
    /// NAT66 for IPv6.
    fn with_lab(&self, tag: &str, test: impl FnOnce(&mut NatLab) + Send) {
        let v6 = self.is_v6();
        with_lab(tag, (61000, 65535), |lab| {
            if v6 {
                lab.dual_stack(0);
            }
            test(lab);
        });
    }

    /// Publishes each `(proto, host port, port)` to endpoint A.
    fn publish(&self, lab: &mut NatLab, ports: &[(u8, u16, u16)]) {
        let ports = ports.iter().copied();
        if self.is_v6() {
            let entries: Vec<_> = ports
                .map(|(p, host, to)| published6(p, host, A_IP6, to))
                .collect();
            lab.maps.set_published6(&entries).unwrap();
        } else {
            let entries: Vec<_> = ports
                .map(|(p, host, to)| published(p, host, A_IP, to))
                .collect();
            lab.maps.set_published(&entries).unwrap();
        }
    }

    /// Makes `other_network` another netfwd network's on the host.
    fn other_network_is_local(&self, lab: &mut NatLab) {
        let flags = REMOTE_ISOLATED | REMOTE_LOCAL;
        match self.other_network.parse().unwrap() {
            IpNet::V4(net) => lab.maps.set_remotes(&[(net, flags)]).unwrap(),
            IpNet::V6(net) => lab.maps.set_remotes6(&[(net, flags)]).unwrap(),
        }
    }

    /// Where a frame's transport header starts.
    fn l4(&self) -> usize {
        14 + self.ip_len
    }
}

/// A frame's source and destination addresses, of either family.
fn src(frame: &[u8]) -> IpAddr {
    address(frame, (SRC, SRC6))
}

fn dst(frame: &[u8]) -> IpAddr {
    address(frame, (DST, DST6))
}

/// The address at `at.0` of an IPv4 frame, `at.1` of an IPv6 one.
fn address(frame: &[u8], (at, at6): (usize, usize)) -> IpAddr {
    if is_v6(frame) {
        addr6(frame, at6).into()
    } else {
        addr(frame, at).into()
    }
}

fn is_v6(frame: &[u8]) -> bool {
    frame[12..14] == [0x86, 0xdd]
}

/// A frame's transport ports: (source, destination).
fn ports(frame: &[u8]) -> (u16, u16) {
    let at = if is_v6(frame) { SPORT6 } else { SPORT };
    (port(frame, at), port(frame, at + 2))
}

/// Whether a frame's checksums are right, IP and transport.
fn checksums(frame: &[u8]) -> bool {
    if is_v6(frame) {
        checksums6_ok(&frame[14..])
    } else {
        checksums_ok(&frame[14..])
    }
}

// Each scenario below, for IPv4 and for IPv6.
family_twins! {
    a_published_port_takes_new_connections_to_its_endpoint_and_replies_go_back,
    over_ipv6_a_published_port_takes_new_connections_to_its_endpoint_and_replies_go_back:
        new_connections_and_replies("publish");
    a_published_port_is_the_uplink_addresss_not_a_routed_endpoints,
    over_ipv6_a_published_port_is_the_uplink_addresss_not_an_untranslated_endpoints:
        at_the_uplink_address_alone("pubdst");
    an_endpoint_reaches_its_own_published_port_through_the_hairpin,
    over_ipv6_an_endpoint_reaches_its_own_published_port_through_the_hairpin:
        hairpin_to_itself("hairpin");
    each_host_port_of_one_endpoint_port_answers_the_hairpin_from_itself,
    over_ipv6_each_host_port_of_one_endpoint_port_answers_the_hairpin_from_itself:
        hairpin_on_two_host_ports("hairpin2");
    only_a_syn_opens_a_published_flow_and_only_the_handshake_establishes_it,
    over_ipv6_only_a_syn_opens_a_published_flow_and_only_the_handshake_establishes_it:
        syn_opens_handshake_establishes("syn-only");
    an_endpoints_icmp_error_about_a_published_flow_leaves_as_the_nat,
    over_ipv6_an_endpoints_icmp_error_about_a_published_flow_leaves_as_the_nat:
        icmp_error_leaves_as_the_nat("icmp-out");
    a_published_port_takes_no_source_that_cannot_be_on_the_internet,
    over_ipv6_a_published_port_takes_no_source_that_cannot_be_on_the_internet:
        no_martian_source("martian");
}

/// Over `fam`: a SYN to a published port at the uplink's address reaches
/// A, from the client's own address; A's reply leaves from the published
/// address and port; an unpublished port is the host's.
fn new_connections_and_replies(tag: &str, fam: &Family) {
    fam.with_lab(tag, |lab| {
        fam.publish(lab, &[(TCP, 8080, 80)]);
        let (action, inside) =
            lab.send_from_uplink(fam.remote, fam.uplink, TCP, tcp(50000, 8080, SYN, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!((dst(&inside), ports(&inside).1), (fam.a, 80));
        assert_eq!(src(&inside), fam.remote, "the server sees the client");
        assert!(checksums(&inside));

        let (action, reply) = lab.send_from_a(fam.remote, TCP, tcp(80, 50000, SYN | ACK, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!((src(&reply), ports(&reply).0), (fam.uplink, 8080));
        assert!(checksums(&reply));

        let (action, _) =
            lab.send_from_uplink(fam.remote, fam.uplink, TCP, tcp(50000, 8081, SYN, b""));
        assert_eq!(action, TO_HOST, "an unpublished port is the host's");
    });
}

/// Over `fam`: a published port is the host's (Docker's DNAT matches only
/// `--dst-type LOCAL`). Another network on the same uplink routes its
/// endpoints' own addresses through the host (the routed kind; IPv6's
/// `nat6 = false`): a SYN to such an address at a port this network
/// publishes is not this network's (the next program's on the uplink,
/// that network's) and makes no flow; the same SYN to the uplink's address
/// is DNATed to A.
fn at_the_uplink_address_alone(tag: &str, fam: &Family) {
    fam.with_lab(tag, |lab| {
        fam.publish(lab, &[(TCP, 8080, 80), (UDP, 5353, 53)]);
        fam.other_network_is_local(lab);
        let (action, there) =
            lab.send_from_uplink(fam.remote, fam.routed, TCP, tcp(50000, 8080, SYN, b""));
        assert_eq!(action, TO_HOST, "another network's endpoint: not DNATed");
        assert_eq!((dst(&there), ports(&there).1), (fam.routed, 8080));
        let (action, _) =
            lab.send_from_uplink(fam.remote, fam.routed, UDP, udp(33000, 5353, b"q", true));
        assert_eq!(action, TO_HOST, "UDP alike");
        assert_eq!(lab.all_nat_flows(), 0, "no flow made");

        let (action, inside) =
            lab.send_from_uplink(fam.remote, fam.uplink, TCP, tcp(50000, 8080, SYN, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!((dst(&inside), ports(&inside).1), (fam.a, 80));
    });
}

/// With `nat6 = false` in the network itself: a SYN from outside to A's
/// own address at a published port is no connection to the published port
/// (`policy`, as anything else for A's address that no flow lets in); at
/// the uplink's IPv6 address it is.
#[test]
fn with_nat6_off_a_published_port_is_the_uplink_addresss_not_the_endpoints_own() {
    with_lab("pubdstown6", (61000, 65535), |lab| {
        lab.dual_stack(NETWORK6_NO_NAT);
        V6.publish(lab, &[(TCP, 8080, 80)]);
        let (action, _) = lab.send_from_uplink(REMOTE6, A_IP6, TCP, tcp(50000, 8080, SYN, b""));
        assert_eq!(action, TC_ACT_SHOT, "to A's own address");
        assert_eq!(lab.counters(lab.uplink).drops[DropReason::Policy.slot()], 1);
        assert_eq!(lab.all_nat_flows(), 0, "no flow made");

        let (action, inside) =
            lab.send_from_uplink(REMOTE6, UPLINK_IP6, TCP, tcp(50000, 8080, SYN, b""));
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!((dst(&inside), ports(&inside).1), (V6.a, 80));
    });
}

/// Endpoint A's SYN from `sport` to its own published `host_port` at the
/// uplink's address of `fam` (through the hairpin: IPv6's own programs,
/// `tc_hairpin6_flow`, then `tc_hairpin6`) and the SYN-ACK it answers with
/// to the gateway, as the datapath puts each out.
fn hairpin_round_trip(
    lab: &mut NatLab,
    fam: &Family,
    sport: u16,
    host_port: u16,
) -> (Vec<u8>, Vec<u8>) {
    let (action, there) = lab.send_from_a(fam.uplink, TCP, tcp(sport, host_port, SYN, b""));
    assert_eq!(action, TC_ACT_REDIRECT);
    let gateway_port = ports(&there).0;
    let (action, back) = lab.send_from_a(fam.gateway, TCP, tcp(80, gateway_port, SYN | ACK, b""));
    assert_eq!(action, TC_ACT_REDIRECT);
    (there, back)
}

/// Over `fam`: A's connection to its own published port at the uplink's
/// address reaches it from the gateway, so the replies come back, which
/// leave from the uplink's address and the host port; an unpublished port
/// is the host's.
fn hairpin_to_itself(tag: &str, fam: &Family) {
    fam.with_lab(tag, |lab| {
        fam.publish(lab, &[(TCP, 8080, 80)]);
        let (there, back) = hairpin_round_trip(lab, fam, 40000, 8080);
        assert_eq!((dst(&there), ports(&there).1), (fam.a, 80));
        assert_eq!(
            src(&there),
            fam.gateway,
            "from the gateway, so replies come back"
        );
        assert_eq!(&there[0..6], &A_MAC);
        assert!(checksums(&there));
        assert_eq!((src(&back), ports(&back).0), (fam.uplink, 8080));
        assert_eq!((dst(&back), ports(&back).1), (fam.a, 40000));
        assert!(checksums(&back));

        let (action, _) = lab.send_from_a(fam.uplink, TCP, tcp(40001, 8081, SYN, b""));
        assert_eq!(action, TO_HOST, "an unpublished port is the host's");
    });
}

/// Over `fam`, one endpoint port on two host ports (`-p 8080:80 -p
/// 8081:80`): each hairpinned connection's replies come from the host port
/// it chose.
fn hairpin_on_two_host_ports(tag: &str, fam: &Family) {
    fam.with_lab(tag, |lab| {
        fam.publish(lab, &[(TCP, 8080, 80), (TCP, 8081, 80)]);
        for (sport, host_port) in [(40000, 8080), (40001, 8081)] {
            let (_, back) = hairpin_round_trip(lab, fam, sport, host_port);
            assert_eq!((src(&back), ports(&back).0), (fam.uplink, host_port));
            assert_eq!((dst(&back), ports(&back).1), (fam.a, sport));
            assert!(checksums(&back));
        }
    });
}

/// A host-only port (`-p 127.0.0.1:…`) is IPv4's loopback's alone: its
/// `PUBLISHED` entry is neither published on the uplink nor hairpinned.
/// (Over IPv6 there is no such entry: `PUBLISHED6` never holds one.)
#[test]
fn a_host_only_port_is_neither_published_on_the_uplink_nor_hairpinned() {
    with_lab("hostonly", (61000, 65535), |lab| {
        let (key, mut target) = published(TCP, 8080, A_IP, 80);
        target.flags = PUBLISH_HOST_ONLY;
        lab.maps.set_published(&[(key, target)]).unwrap();
        let (action, _) = lab.send_from_uplink(REMOTE, UPLINK_IP, TCP, tcp(50000, 8080, SYN, b""));
        assert_eq!(action, TO_HOST, "from the uplink: the host's port");
        let (_, there) = lab.send_from_a(UPLINK_IP, TCP, tcp(40000, 8080, SYN, b""));
        assert_eq!(
            (addr(&there, DST), port(&there, DPORT)),
            (UPLINK_IP, 8080),
            "from an endpoint: not translated"
        );
        assert_eq!(lab.nat_flows(), 0, "no flow made");
    });
}

/// Issue #14, over `fam`: one spoofed SYN held a flow for
/// `tcp_established`. Only a SYN opens a flow to a published port, and the
/// flow is established only once the client acknowledges the endpoint's
/// SYN-ACK, which a spoofed client never sees.
fn syn_opens_handshake_establishes(tag: &str, fam: &Family) {
    fam.with_lab(tag, |lab| {
        fam.publish(lab, &[(TCP, 8080, 80)]);
        let (remote, uplink) = (fam.remote, fam.uplink);
        for flags in [ACK, RST, SYN | ACK] {
            let segment = tcp_seq(50000, 8080, flags, (1000, 1), b"");
            let (action, _) = lab.send_from_uplink(remote, uplink, TCP, segment);
            assert_eq!(action, TC_ACT_SHOT, "flags {flags:#x} opened a flow");
        }
        assert_eq!(
            lab.counters(lab.uplink).drops[DropReason::TcpNoFlow.slot()],
            3
        );
        assert_eq!(lab.state(remote, 50000), "none");

        let syn = tcp_seq(50000, 8080, SYN, (1000, 0), b"");
        let (action, _) = lab.send_from_uplink(remote, uplink, TCP, syn);
        assert_eq!(action, TC_ACT_REDIRECT);
        let flow = lab.flow(remote, 50000).unwrap();
        assert_eq!(flow.state, "syn_sent");
        assert!(flow.expires_in_secs <= 60, "on tcp_syn: {flow:?}");

        let syn_ack = tcp_seq(80, 50000, SYN | ACK, (5000, 1001), b"");
        let (action, _) = lab.send_from_a(remote, TCP, syn_ack);
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(lab.state(remote, 50000), "syn_recv");

        // A blind ACK (not of the SYN-ACK): delivered, A's stack judges it,
        // but the flow stays unconfirmed.
        let blind = tcp_seq(50000, 8080, ACK, (1001, 4242), b"");
        let (action, _) = lab.send_from_uplink(remote, uplink, TCP, blind);
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(lab.state(remote, 50000), "syn_recv");

        let ack = tcp_seq(50000, 8080, ACK, (1001, 5001), b"");
        let (action, _) = lab.send_from_uplink(remote, uplink, TCP, ack);
        assert_eq!(action, TC_ACT_REDIRECT);
        let flow = lab.flow(remote, 50000).unwrap();
        assert_eq!(flow.state, "established");
        assert!(flow.expires_in_secs > 60, "on tcp_established: {flow:?}");
    });
}

/// Over `fam`: A's "port unreachable" about a datagram of a published flow
/// leaves from the uplink's address, the packet it quotes translated back
/// to the published address and port; an error about a flow the NAT never
/// carried is dropped.
fn icmp_error_leaves_as_the_nat(tag: &str, fam: &Family) {
    fam.with_lab(tag, |lab| {
        fam.publish(lab, &[(UDP, 5353, 53)]);
        // A datagram to the published port makes the flow...
        let query = udp(33000, 5353, b"q", true);
        let (action, inbound) = lab.send_from_uplink(fam.remote, fam.uplink, UDP, query);
        assert_eq!(action, TC_ACT_REDIRECT);
        // ...and A answers it with "port unreachable", quoting what it got.
        let quoted_len = fam.ip_len + 8;
        let (action, out) = lab.send_from_a(
            fam.remote,
            fam.icmp,
            port_unreachable(fam, &inbound[14..14 + quoted_len]),
        );
        assert_eq!(action, TC_ACT_REDIRECT);
        assert_eq!(src(&out), fam.uplink, "outer source");
        let quoted = fam.l4() + 8;
        let quoted_dst = &out[quoted + fam.dst_at..][..if fam.is_v6() { 16 } else { 4 }];
        assert_eq!(quoted_dst, address_octets(fam.uplink), "quoted destination");
        assert_eq!(
            port(&out, quoted + fam.ip_len + 2),
            5353,
            "quoted destination port"
        );
        assert!(checksums(&out), "ICMP checksum after translation");
        if !fam.is_v6() {
            let quoted_ip = &out[quoted..quoted + fam.ip_len];
            assert_eq!(common::checksum(quoted_ip, 0), 0, "quoted IP checksum");
        }
        // An error about a flow the NAT never carried: dropped.
        let stray = common::ip_frame((A_MAC, A_MAC), fam.remote, fam.a, UDP, udp(1, 2, b"", true));
        let (action, _) = lab.send_from_a(
            fam.remote,
            fam.icmp,
            port_unreachable(fam, &stray[14..14 + quoted_len]),
        );
        assert_eq!(action, TC_ACT_SHOT);
    });
}

/// `fam`'s "port unreachable" quoting `quoted` (its checksum filled in by
/// the packet builder).
fn port_unreachable(fam: &Family, quoted: &[u8]) -> Vec<u8> {
    let mut icmp = vec![
        fam.port_unreachable[0],
        fam.port_unreachable[1],
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    icmp.extend_from_slice(quoted);
    icmp
}

fn address_octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    }
}

/// The quoted packet was sent to A: B may not speak for A's flow (it could
/// reset or throttle A's connections).
#[test]
fn an_endpoints_icmp_error_quoting_another_endpoints_flow_is_dropped() {
    with_lab("icmp-foreign", (61000, 65535), |lab| {
        netfwd::procnet::enable_forwarding("hostb", &netfwd::netlink::Settings::default()).unwrap();
        lab.maps.ensure_counters(lab.host_b).unwrap();
        V4.publish(lab, &[(UDP, 5353, 53)]);
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

/// What the kernel drops as a martian, the datapath must not deliver: over
/// `fam`, a datagram to a published port from the gateway's, a sibling
/// endpoint's, another netfwd network's, the uplink's own or a loopback
/// address.
fn no_martian_source(tag: &str, fam: &Family) {
    fam.with_lab(tag, |lab| {
        fam.publish(lab, &[(UDP, 5353, 53)]);
        fam.other_network_is_local(lab);
        let martians = [
            fam.gateway,
            fam.sibling,
            fam.routed,
            fam.uplink,
            fam.loopback,
        ];
        for src in martians {
            let query = udp(33000, 5353, b"q", true);
            let (action, _) = lab.send_from_uplink(src, fam.uplink, UDP, query);
            assert_eq!(action, TC_ACT_SHOT, "from {src}");
        }
        let drops = lab.counters(lab.uplink).drops;
        assert_eq!(
            drops[DropReason::MartianSource.slot()],
            martians.len() as u64
        );
        assert_eq!(lab.all_nat_flows(), 0, "no flow for any of them");
        let query = udp(33000, 5353, b"q", true);
        let (action, _) = lab.send_from_uplink(fam.remote, fam.uplink, UDP, query);
        assert_eq!(action, TC_ACT_REDIRECT, "a client on the internet");
    });
}
