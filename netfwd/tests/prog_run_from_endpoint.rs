//! The endpoint program on crafted packets with BPF_PROG_TEST_RUN: no
//! namespace, no device, deterministic. Each test loads the datapath with maps
//! pinned in a directory of its own, fills the maps as `up` would, runs one
//! packet and checks the verdict, the bytes that come out and the counters.
//!
//! A test run has no real interface: the packet "arrives" on `lo` (ifindex 1),
//! so endpoint A is given ifindex 1 and the redirect helpers only record
//! where the packet would go.
#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

mod common;

use std::net::Ipv4Addr;

use common::{PinDir, eth};
use netfwd::loader::{Datapath, DatapathMaps};
use netfwd_common::{
    counters::IfaceCounters,
    drop::DropReason,
    maps::{EndpointEntry, NetworkConfig},
    names::PROG_FROM_ENDPOINT,
};

/// TC_ACT_UNSPEC (TCX_NEXT): left to the next program, else the host stack.
const TO_HOST: u32 = u32::MAX;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;

const LO: u32 = 1;
const A_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 28, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 28, 2);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 28, 5);
const A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa1];
const B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb1];
const A_HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa0];
const B_HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb0];
const B_IFINDEX: u32 = 4242;

/// A loaded datapath with endpoints A (on lo) and B, removed on drop.
struct Lab {
    datapath: Datapath,
    maps: DatapathMaps,
    _pins: PinDir,
}

impl Lab {
    fn new(tag: &str) -> Self {
        let pins = PinDir::new(tag);
        let datapath = Datapath::load_at(&pins.0, 1024, None)
            .map_err(|e| format!("{e:#}"))
            .unwrap();
        let mut maps = DatapathMaps::open(&pins.0).unwrap();
        maps.set_network(NetworkConfig {
            gateway: GATEWAY.octets(),
            subnet: [192, 168, 28, 0],
            prefix_len: 24,
            flags: 0,
            _pad: [0; 2],
        })
        .unwrap();
        maps.set_endpoint(
            A_IP,
            EndpointEntry {
                host_ifindex: LO,
                mac: A_MAC,
                host_mac: A_HOST_MAC,
            },
        )
        .unwrap();
        maps.set_endpoint(
            B_IP,
            EndpointEntry {
                host_ifindex: B_IFINDEX,
                mac: B_MAC,
                host_mac: B_HOST_MAC,
            },
        )
        .unwrap();
        maps.ensure_counters(LO).unwrap();
        Self {
            datapath,
            maps,
            _pins: pins,
        }
    }

    /// Runs the program once (no device: the packet "arrives" on `lo`).
    fn run(&mut self, packet: &[u8]) -> (u32, Vec<u8>) {
        common::run(
            self.datapath.program(PROG_FROM_ENDPOINT).unwrap(),
            packet,
            0,
        )
    }

    fn counters(&self) -> IfaceCounters {
        self.maps
            .counters()
            .unwrap()
            .get(&LO)
            .copied()
            .unwrap_or_default()
    }
}

fn arp_request(sender_mac: [u8; 6], sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
    arp(1, sender_mac, sender_ip, target_ip)
}

/// An ARP frame of operation `op` (1 request, 2 reply).
fn arp(op: u8, sender_mac: [u8; 6], sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
    let mut p = eth([0xff; 6], sender_mac, 0x0806);
    p.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, op]);
    p.extend_from_slice(&sender_mac);
    p.extend_from_slice(&sender_ip.octets());
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&target_ip.octets());
    p
}

/// An ICMP echo request from `src`, checksums and all.
fn ipv4_ping(dst_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut p = eth(dst_mac, A_MAC, 0x0800);
    p.extend(common::ipv4(
        src,
        dst,
        common::ICMP,
        common::icmp_echo(8, 1, 0),
    ));
    p
}

#[test]
fn arp_for_another_endpoint_is_answered_with_its_mac() {
    let mut lab = Lab::new("arp-peer");
    let (action, out) = lab.run(&arp_request(A_MAC, A_IP, B_IP));
    assert_eq!(
        action, TC_ACT_REDIRECT,
        "reply goes back out of the interface"
    );
    assert_eq!(&out[0..6], &A_MAC, "to the asker");
    assert_eq!(&out[6..12], &B_MAC, "from the peer's MAC");
    assert_eq!(&out[20..22], &[0, 2], "an ARP reply");
    assert_eq!(&out[22..28], &B_MAC, "sender hardware address");
    assert_eq!(&out[28..32], &B_IP.octets(), "sender protocol address");
    assert_eq!(&out[32..38], &A_MAC, "target hardware address");
    assert_eq!(&out[38..42], &A_IP.octets(), "target protocol address");
    assert_eq!(lab.counters().arp_replies, 1);
}

#[test]
fn arp_for_the_gateway_is_answered_with_the_host_side_mac() {
    let mut lab = Lab::new("arp-gw");
    let (action, out) = lab.run(&arp_request(A_MAC, A_IP, GATEWAY));
    assert_eq!(action, TC_ACT_REDIRECT);
    assert_eq!(&out[22..28], &A_HOST_MAC);
    assert_eq!(&out[28..32], &GATEWAY.octets());
}

#[test]
fn arp_for_an_unknown_address_goes_to_the_host() {
    let mut lab = Lab::new("arp-unknown");
    let (action, _) = lab.run(&arp_request(A_MAC, A_IP, Ipv4Addr::new(192, 168, 28, 77)));
    assert_eq!(action, TO_HOST);
    assert_eq!(lab.counters().to_host, 1);
}

#[test]
fn arp_claiming_another_endpoints_address_is_dropped_and_counted() {
    let mut lab = Lab::new("arp-spoof");
    // Arrives on A's interface but claims B's address.
    let (action, _) = lab.run(&arp_request(A_MAC, B_IP, GATEWAY));
    assert_eq!(action, TC_ACT_SHOT);
    assert_eq!(lab.counters().drops[DropReason::ArpSpoofed.slot()], 1);
}

/// Replies too: the host's neighbour table learns from them, so a reply
/// claiming B's address from A's interface would steer the host's traffic
/// for B to A.
#[test]
fn an_arp_reply_claiming_another_endpoints_address_is_dropped_and_counted() {
    let mut lab = Lab::new("arp-reply-spoof");
    let (action, _) = lab.run(&arp(2, A_MAC, B_IP, GATEWAY));
    assert_eq!(action, TC_ACT_SHOT);
    assert_eq!(lab.counters().drops[DropReason::ArpSpoofed.slot()], 1);
    let (action, _) = lab.run(&arp(2, [0x02, 0, 0, 0, 0, 0xee], A_IP, GATEWAY));
    assert_eq!(action, TC_ACT_SHOT, "a foreign sender MAC");
    assert_eq!(lab.counters().drops[DropReason::MacSpoofed.slot()], 1);
    let (action, _) = lab.run(&arp(2, A_MAC, A_IP, GATEWAY));
    assert_eq!(action, TO_HOST, "an honest reply is the host's");
}

#[test]
fn ipv4_to_another_endpoint_is_redirected_unchanged() {
    let mut lab = Lab::new("v4-peer");
    let packet = ipv4_ping(B_MAC, A_IP, B_IP);
    let (action, out) = lab.run(&packet);
    assert_eq!(action, TC_ACT_REDIRECT);
    assert_eq!(
        out, packet,
        "addressed to the peer's MAC already: nothing to rewrite"
    );
    let c = lab.counters();
    assert_eq!((c.rx_packets, c.redirected), (1, 1));
}

#[test]
fn ipv4_sent_to_the_gateway_mac_gets_the_peers_macs() {
    let mut lab = Lab::new("v4-gwmac");
    let (action, out) = lab.run(&ipv4_ping(A_HOST_MAC, A_IP, B_IP));
    assert_eq!(action, TC_ACT_REDIRECT);
    assert_eq!(&out[0..6], &B_MAC);
    assert_eq!(&out[6..12], &B_HOST_MAC);
    assert_eq!(out[14 + 8], 63, "a hop through the gateway takes one TTL");
    assert_eq!(common::checksum(&out[14..34], 0), 0, "IP checksum");
}

#[test]
fn ipv4_to_the_gateway_or_outside_goes_to_the_host() {
    let mut lab = Lab::new("v4-host");
    for dst in [GATEWAY, Ipv4Addr::new(203, 0, 113, 1), Ipv4Addr::BROADCAST] {
        let (action, _) = lab.run(&ipv4_ping(A_HOST_MAC, A_IP, dst));
        assert_eq!(action, TO_HOST, "{dst}");
    }
    assert_eq!(lab.counters().to_host, 3);
}

/// Truncation is tested on ARP: BPF_PROG_TEST_RUN on this kernel refuses an
/// IPv4 frame shorter than an IPv4 header before the program sees it (EINVAL).
#[test]
fn truncated_arp_is_dropped_as_malformed() {
    let mut lab = Lab::new("arp-short");
    let mut packet = arp_request(A_MAC, A_IP, B_IP);
    packet.truncate(14 + 20);
    let (action, _) = lab.run(&packet);
    assert_eq!(action, TC_ACT_SHOT);
    assert_eq!(lab.counters().drops[DropReason::Malformed.slot()], 1);
}

/// Linux learns the sender of an ARP request with hardware type IEEE 802
/// (6) as of Ethernet (1); one that is not IPv4 over Ethernet never passes
/// the sender checks, so it goes nowhere.
#[test]
fn arp_that_is_not_ipv4_over_ethernet_is_dropped_as_malformed() {
    let mut lab = Lab::new("arp-htype");
    let mut ieee802 = arp_request(A_MAC, B_IP, GATEWAY);
    ieee802[15] = 6;
    let mut other_protocol = arp_request(A_MAC, A_IP, GATEWAY);
    other_protocol[16] = 0x86;
    other_protocol[17] = 0xdd;
    for packet in [ieee802, other_protocol] {
        let (action, _) = lab.run(&packet);
        assert_eq!(action, TC_ACT_SHOT);
    }
    assert_eq!(lab.counters().drops[DropReason::Malformed.slot()], 2);
}

#[test]
fn ipv4_with_impossible_header_length_is_dropped_as_malformed() {
    let mut lab = Lab::new("v4-ihl");
    let mut packet = ipv4_ping(B_MAC, A_IP, B_IP);
    packet[14] = 0x44;
    let (action, _) = lab.run(&packet);
    assert_eq!(action, TC_ACT_SHOT);
    assert_eq!(lab.counters().drops[DropReason::Malformed.slot()], 1);
}

#[test]
fn ipv6_goes_to_the_host() {
    let mut lab = Lab::new("v6");
    let mut packet = eth([0x33, 0x33, 0, 0, 0, 1], A_MAC, 0x86dd);
    packet.extend_from_slice(&[0x60, 0, 0, 0, 0, 0, 58, 255]);
    packet.extend_from_slice(&[0; 32]);
    let (action, _) = lab.run(&packet);
    assert_eq!(action, TO_HOST);
}

#[test]
fn ipv4_with_another_endpoints_source_or_a_foreign_mac_is_dropped() {
    let mut lab = Lab::new("v4-spoof");
    let (action, _) = lab.run(&ipv4_ping(B_MAC, B_IP, GATEWAY));
    assert_eq!(action, TC_ACT_SHOT, "B's address from A's interface");
    let mut foreign_mac = ipv4_ping(B_MAC, A_IP, B_IP);
    foreign_mac[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xee]);
    let (action, _) = lab.run(&foreign_mac);
    assert_eq!(action, TC_ACT_SHOT, "A's address with a MAC not A's");
    let c = lab.counters();
    assert_eq!(c.drops[DropReason::IpSpoofed.slot()], 1);
    assert_eq!(c.drops[DropReason::MacSpoofed.slot()], 1);
}

#[test]
fn arp_with_a_foreign_sender_mac_is_dropped() {
    let mut lab = Lab::new("arp-mac");
    let (action, _) = lab.run(&arp_request([0x02, 0, 0, 0, 0, 0xee], A_IP, GATEWAY));
    assert_eq!(action, TC_ACT_SHOT);
    assert_eq!(lab.counters().drops[DropReason::MacSpoofed.slot()], 1);
}

#[test]
fn without_icc_endpoints_cannot_reach_each_other_but_the_gateway() {
    let mut lab = Lab::new("no-icc");
    lab.maps
        .set_network(NetworkConfig {
            gateway: GATEWAY.octets(),
            subnet: [192, 168, 28, 0],
            prefix_len: 24,
            flags: netfwd_common::maps::NETWORK_NO_ICC,
            _pad: [0; 2],
        })
        .unwrap();
    let (action, _) = lab.run(&ipv4_ping(B_MAC, A_IP, B_IP));
    assert_eq!(action, TC_ACT_SHOT);
    assert_eq!(lab.counters().drops[DropReason::Icc.slot()], 1);
    let (action, _) = lab.run(&ipv4_ping(A_HOST_MAC, A_IP, GATEWAY));
    assert_eq!(action, TO_HOST);
}
