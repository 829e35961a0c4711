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

use std::net::{Ipv4Addr, Ipv6Addr};

use aya::maps::{Map, MapData, ProgramArray};
use common::{LO, PinDir, checksum, eth, network_config};
use netfwd::loader::{DatapathMaps, Programs};
use netfwd_common::{
    counters::IfaceCounters,
    drop::DropReason,
    maps::{EndpointEntry, NETWORK_NO_ICC},
    names::{CALL_FROM_ENDPOINT6, MAP_CALLS, PROG_FROM_ENDPOINT},
};

/// TC_ACT_UNSPEC (TCX_NEXT): left to the next program, else the host stack.
const TO_HOST: u32 = u32::MAX;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;

const A_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 28, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 28, 2);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 28, 5);
const A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa1];
const B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb1];
const A_HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa0];
const B_HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb0];
const B_IFINDEX: u32 = 4242;
const A_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x28, 0, 0, 0, 0, 1);
const B_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x28, 0, 0, 0, 0, 2);
const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x28, 0, 0, 0, 0, 5);

/// A loaded datapath with endpoints A (on lo) and B, removed on drop.
struct TwoEndpoints {
    datapath: Programs,
    maps: DatapathMaps,
    pins: PinDir,
}

impl TwoEndpoints {
    fn new(tag: &str) -> Self {
        let pins = PinDir::new(tag);
        let a = EndpointEntry {
            host_ifindex: LO,
            mac: A_MAC,
            host_mac: A_HOST_MAC,
        };
        let b = EndpointEntry {
            host_ifindex: B_IFINDEX,
            mac: B_MAC,
            host_mac: B_HOST_MAC,
        };
        let (datapath, maps) = common::loaded(&pins, GATEWAY, &[(A_IP, a), (B_IP, b)]);
        Self {
            datapath,
            maps,
            pins,
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

    /// Makes the network dual-stack: A and B get their IPv6 addresses.
    fn with_ipv6(mut self) -> Self {
        let subnet = Ipv6Addr::new(0x2001, 0xdb8, 0x28, 0, 0, 0, 0, 0);
        self.maps
            .set_network6(common::network6_config(GATEWAY6, subnet, 0))
            .unwrap();
        for (ip6, ip4) in [(A_IP6, A_IP), (B_IP6, B_IP)] {
            let entry = self.maps.endpoints().unwrap()[&ip4];
            self.maps.set_endpoint6(ip6, entry).unwrap();
        }
        self
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
    let mut lab = TwoEndpoints::new("arp-peer");
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
    let mut lab = TwoEndpoints::new("arp-gw");
    let (action, out) = lab.run(&arp_request(A_MAC, A_IP, GATEWAY));
    assert_eq!(action, TC_ACT_REDIRECT);
    assert_eq!(&out[22..28], &A_HOST_MAC);
    assert_eq!(&out[28..32], &GATEWAY.octets());
}

#[test]
fn arp_for_an_unknown_address_goes_to_the_host() {
    let mut lab = TwoEndpoints::new("arp-unknown");
    let (action, _) = lab.run(&arp_request(A_MAC, A_IP, Ipv4Addr::new(192, 168, 28, 77)));
    assert_eq!(action, TO_HOST);
    assert_eq!(lab.counters().to_host, 1);
}

#[test]
fn arp_claiming_another_endpoints_address_is_dropped_and_counted() {
    let mut lab = TwoEndpoints::new("arp-spoof");
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
    let mut lab = TwoEndpoints::new("arp-reply-spoof");
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
    let mut lab = TwoEndpoints::new("v4-peer");
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
    let mut lab = TwoEndpoints::new("v4-gwmac");
    let (action, out) = lab.run(&ipv4_ping(A_HOST_MAC, A_IP, B_IP));
    assert_eq!(action, TC_ACT_REDIRECT);
    assert_eq!(&out[0..6], &B_MAC);
    assert_eq!(&out[6..12], &B_HOST_MAC);
    assert_eq!(out[14 + 8], 63, "a hop through the gateway takes one TTL");
    assert_eq!(common::checksum(&out[14..34], 0), 0, "IP checksum");
}

#[test]
fn ipv4_to_the_gateway_or_outside_goes_to_the_host() {
    let mut lab = TwoEndpoints::new("v4-host");
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
    let mut lab = TwoEndpoints::new("arp-short");
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
    let mut lab = TwoEndpoints::new("arp-htype");
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
    let mut lab = TwoEndpoints::new("v4-ihl");
    let mut packet = ipv4_ping(B_MAC, A_IP, B_IP);
    packet[14] = 0x44;
    let (action, _) = lab.run(&packet);
    assert_eq!(action, TC_ACT_SHOT);
    assert_eq!(lab.counters().drops[DropReason::Malformed.slot()], 1);
}

#[test]
fn ipv6_goes_to_the_host() {
    let mut lab = TwoEndpoints::new("v6");
    let (action, _) = lab.run(&icmpv6(&[], 128));
    assert_eq!(action, TO_HOST, "an echo request");
}

/// IPv6 runs in a program of its own, reached through the jump table: with
/// the table's slot empty (a load cut short) the frame is dropped and
/// counted, never passed on unchecked.
#[test]
fn ipv6_whose_program_is_missing_from_the_jump_table_is_dropped_and_counted() {
    let mut lab = TwoEndpoints::new("v6-missed");
    // Opening the entry program fills the table.
    assert_eq!(lab.run(&icmpv6(&[], 128)).0, TO_HOST);
    let calls = MapData::from_pin(lab.pins.0.join(MAP_CALLS)).unwrap();
    ProgramArray::try_from(Map::ProgramArray(calls))
        .unwrap()
        .clear_index(&CALL_FROM_ENDPOINT6)
        .unwrap();
    assert_eq!(lab.run(&icmpv6(&[], 128)).0, TC_ACT_SHOT);
    assert_eq!(lab.counters().drops[DropReason::MissedTailCall.slot()], 1);
}

/// An endpoint's ICMPv6 message of `icmp_type` to all-nodes, behind the
/// extension headers `ext` (each given as its bytes, next-header first).
fn icmpv6(ext: &[&[u8]], icmp_type: u8) -> Vec<u8> {
    const HOPOPTS: u8 = 0;
    let mut chain = Vec::new();
    for (i, header) in ext.iter().enumerate() {
        let mut header = header.to_vec();
        header[0] = if i + 1 < ext.len() { HOPOPTS } else { 58 };
        chain.extend(header);
    }
    chain.extend_from_slice(&[icmp_type, 0, 0, 0, 0, 0, 0, 0]);
    let mut packet = eth([0x33, 0x33, 0, 0, 0, 1], A_MAC, 0x86dd);
    let next = if ext.is_empty() { 58 } else { HOPOPTS };
    let len = (chain.len() as u16).to_be_bytes();
    packet.extend_from_slice(&[0x60, 0, 0, 0, len[0], len[1], next, 255]);
    packet.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xba, 0xd]);
    packet.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    packet.extend(chain);
    packet
}

/// A router advertisement would give the host a default route through the
/// endpoint (and an address of its prefix); solicitations and redirects
/// are no endpoint's to send either, behind extension headers too.
#[test]
fn router_advertisements_solicitations_and_redirects_from_an_endpoint_are_dropped() {
    let mut lab = TwoEndpoints::new("v6-router");
    let hop_by_hop: &[u8] = &[0, 0, 1, 4, 0, 0, 0, 0];
    for (ext, icmp_type) in [
        (vec![], 134),
        (vec![], 133),
        (vec![], 137),
        (vec![hop_by_hop], 134),
        (vec![hop_by_hop, hop_by_hop, hop_by_hop], 134),
    ] {
        let (action, _) = lab.run(&icmpv6(&ext, icmp_type));
        assert_eq!(action, TC_ACT_SHOT, "type {icmp_type} behind {}", ext.len());
    }
    assert_eq!(lab.counters().drops[DropReason::RouterMessage.slot()], 5);
    // A chain longer than the datapath walks hides what it carries.
    let long = vec![hop_by_hop; 5];
    let (action, _) = lab.run(&icmpv6(&long, 134));
    assert_eq!(action, TC_ACT_SHOT);
    assert_eq!(lab.counters().drops[DropReason::Malformed.slot()], 1);
    // Neighbour discovery itself is the host's.
    let (action, _) = lab.run(&icmpv6(&[hop_by_hop], 135));
    assert_eq!(action, TO_HOST, "a neighbour solicitation");
}

/// An endpoint's link is untagged: a frame with an 802.1Q or 802.1ad tag
/// (the address inside its own) goes nowhere.
#[test]
fn vlan_tagged_frames_from_an_endpoint_are_dropped() {
    let mut lab = TwoEndpoints::new("vlan");
    for tpid in [0x8100u16, 0x88a8, 0x9100] {
        let ping = ipv4_ping(B_MAC, A_IP, Ipv4Addr::new(198, 51, 100, 7));
        let mut tagged = ping[..12].to_vec();
        tagged.extend_from_slice(&tpid.to_be_bytes());
        tagged.extend_from_slice(&[0, 5]);
        tagged.extend_from_slice(&ping[12..]);
        let (action, _) = lab.run(&tagged);
        assert_eq!(action, TC_ACT_SHOT, "TPID {tpid:#x}");
    }
    assert_eq!(lab.counters().drops[DropReason::VlanTagged.slot()], 3);
}

/// The host has no neighbour at an address of the subnet no endpoint
/// holds: it would route it out of its default route with the endpoint's
/// private source. Dropped, as is the subnet's broadcast; the gateway is
/// the host's.
#[test]
fn an_address_of_the_subnet_that_no_endpoint_holds_is_dropped() {
    let mut lab = TwoEndpoints::new("no-endpoint");
    for unused in [
        Ipv4Addr::new(192, 168, 28, 77),
        Ipv4Addr::new(192, 168, 28, 255),
    ] {
        let (action, _) = lab.run(&ipv4_ping(A_HOST_MAC, A_IP, unused));
        assert_eq!(action, TC_ACT_SHOT, "{unused}");
    }
    assert_eq!(lab.counters().drops[DropReason::NoEndpoint.slot()], 2);
    let (action, _) = lab.run(&ipv4_ping(A_HOST_MAC, A_IP, GATEWAY));
    assert_eq!(action, TO_HOST, "the gateway");
}

#[test]
fn ipv4_with_another_endpoints_source_or_a_foreign_mac_is_dropped() {
    let mut lab = TwoEndpoints::new("v4-spoof");
    let mut spoofed_ip = ipv4_ping(B_MAC, B_IP, GATEWAY);
    spoofed_ip.extend_from_slice(&[0; 100]);
    let (action, _) = lab.run(&spoofed_ip);
    assert_eq!(action, TC_ACT_SHOT, "B's address from A's interface");
    let mut foreign_mac = ipv4_ping(B_MAC, A_IP, B_IP);
    foreign_mac[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xee]);
    let (action, _) = lab.run(&foreign_mac);
    assert_eq!(action, TC_ACT_SHOT, "A's address with a MAC not A's");
    let c = lab.counters();
    assert_eq!(c.drops[DropReason::IpSpoofed.slot()], 1);
    assert_eq!(c.drops[DropReason::MacSpoofed.slot()], 1);
    // Each reason's bytes are its own packet's (the first padded past
    // its IP length, as the skb carries it).
    assert_eq!(
        c.drop_bytes[DropReason::IpSpoofed.slot()],
        spoofed_ip.len() as u64
    );
    assert_eq!(
        c.drop_bytes[DropReason::MacSpoofed.slot()],
        foreign_mac.len() as u64
    );
    assert_eq!(c.dropped_bytes(), c.rx_bytes, "every byte seen was dropped");
}

#[test]
fn arp_with_a_foreign_sender_mac_is_dropped() {
    let mut lab = TwoEndpoints::new("arp-mac");
    let (action, _) = lab.run(&arp_request([0x02, 0, 0, 0, 0, 0xee], A_IP, GATEWAY));
    assert_eq!(action, TC_ACT_SHOT);
    assert_eq!(lab.counters().drops[DropReason::MacSpoofed.slot()], 1);
}

#[test]
fn without_icc_endpoints_cannot_reach_each_other_but_the_gateway() {
    let mut lab = TwoEndpoints::new("no-icc");
    lab.maps
        .set_network(network_config(GATEWAY, NETWORK_NO_ICC))
        .unwrap();
    let (action, _) = lab.run(&ipv4_ping(B_MAC, A_IP, B_IP));
    assert_eq!(action, TC_ACT_SHOT);
    assert_eq!(lab.counters().drops[DropReason::Icc.slot()], 1);
    let (action, _) = lab.run(&ipv4_ping(A_HOST_MAC, A_IP, GATEWAY));
    assert_eq!(action, TO_HOST);
}

/// A neighbour solicitation (RFC 4861 4.3) from `src` with MAC `mac` for
/// `target`, to its solicited-node group, with the source MAC option.
fn neighbour_solicitation(src: Ipv6Addr, mac: [u8; 6], target: Ipv6Addr) -> Vec<u8> {
    let t = target.octets();
    let group = Ipv6Addr::from([
        0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13], t[14], t[15],
    ]);
    let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&t);
    icmp.extend_from_slice(&[1, 1]);
    icmp.extend_from_slice(&mac);
    let sum = checksum(
        &[icmpv6_pseudo(src, group, icmp.len()), icmp.clone()].concat(),
        0,
    );
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut packet = eth([0x33, 0x33, 0xff, t[13], t[14], t[15]], mac, 0x86dd);
    packet.extend_from_slice(&[0x60, 0, 0, 0, 0, icmp.len() as u8, 58, 255]);
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&group.octets());
    packet.extend(icmp);
    packet
}

/// The IPv6 pseudo-header of an ICMPv6 message of `len` bytes.
fn icmpv6_pseudo(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> Vec<u8> {
    let mut pseudo = [src.octets(), dst.octets()].concat();
    pseudo.extend_from_slice(&(len as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo
}

/// Checks `out` is the advertisement (RFC 4861 4.4) for `target` at `mac`
/// with `flags`, from the target to `asker` at `asker_mac`, its checksum
/// right.
fn assert_advert(out: &[u8], asker: (Ipv6Addr, [u8; 6]), target: (Ipv6Addr, [u8; 6]), flags: u8) {
    let (ip, icmp) = (&out[14..54], &out[54..]);
    assert_eq!(out[0..6], asker.1, "to the asker's MAC");
    assert_eq!(out[6..12], target.1, "from the target's MAC");
    assert_eq!(
        ip[7], 255,
        "a hop limit of 255, as neighbour discovery needs"
    );
    assert_eq!(ip[8..24], target.0.octets(), "from the target");
    assert_eq!(ip[24..40], asker.0.octets(), "to the asker");
    assert_eq!(icmp[0], 136, "an advertisement");
    assert_eq!(icmp[4], flags, "its flags");
    assert_eq!(icmp[8..24], target.0.octets(), "for the target");
    assert_eq!(icmp[24..26], [2, 1], "with the target's link-layer address");
    assert_eq!(icmp[26..32], target.1);
    let pseudo = icmpv6_pseudo(target.0, asker.0, icmp.len());
    assert_eq!(
        checksum(&[pseudo, icmp.to_vec()].concat(), 0),
        0,
        "checksum"
    );
}

/// An endpoint's solicitations are answered in place, as its ARP requests
/// are: for another endpoint with that endpoint's MAC, for the gateway
/// with the host-side veth's (a router's answer); sent back out of the
/// interface they came in on.
#[test]
fn neighbour_solicitations_for_the_gateway_and_other_endpoints_are_answered() {
    let mut lab = TwoEndpoints::new("v6-ns").with_ipv6();
    let (action, out) = lab.run(&neighbour_solicitation(A_IP6, A_MAC, B_IP6));
    assert_eq!(action, TC_ACT_REDIRECT, "for B");
    assert_advert(&out, (A_IP6, A_MAC), (B_IP6, B_MAC), 0x60);
    let (action, out) = lab.run(&neighbour_solicitation(A_IP6, A_MAC, GATEWAY6));
    assert_eq!(action, TC_ACT_REDIRECT, "for the gateway");
    assert_advert(&out, (A_IP6, A_MAC), (GATEWAY6, A_HOST_MAC), 0xe0);
    assert_eq!(lab.counters().arp_replies, 2);
}

/// What the datapath does not answer the host does, or the checks drop:
/// an address no endpoint holds, a hop limit that is not neighbour
/// discovery's (RFC 4861 7.1.1), a solicitation from a MAC or address not
/// the endpoint's (the gate then drops the forged source), or in an
/// IPv4-only network.
#[test]
fn neighbour_solicitations_not_the_datapaths_to_answer_go_on() {
    let mut lab = TwoEndpoints::new("v6-ns-not").with_ipv6();
    let nobody = Ipv6Addr::new(0x2001, 0xdb8, 0x28, 0, 0, 0, 0, 9);
    let mut routed = neighbour_solicitation(A_IP6, A_MAC, B_IP6);
    routed[14 + 7] = 64;
    for (packet, wanted, why) in [
        (routed, TO_HOST, "with a hop limit below 255"),
        (
            neighbour_solicitation(A_IP6, A_MAC, nobody),
            TO_HOST,
            "for nobody",
        ),
        (
            neighbour_solicitation(A_IP6, B_MAC, B_IP6),
            TC_ACT_SHOT,
            "from B's MAC",
        ),
        (
            neighbour_solicitation(B_IP6, A_MAC, B_IP6),
            TC_ACT_SHOT,
            "from B's address",
        ),
    ] {
        assert_eq!(lab.run(&packet).0, wanted, "{why}");
    }
    assert_eq!(lab.counters().arp_replies, 0);
    let mut v4_only = TwoEndpoints::new("v6-ns-v4");
    let (action, _) = v4_only.run(&neighbour_solicitation(A_IP6, A_MAC, B_IP6));
    assert_eq!(action, TO_HOST, "an IPv4-only network's IPv6 is the host's");
}

/// A frame of IPv6 as an endpoint could forge it, in a dual-stack network.
fn ipv6_frame(version: u8, next: u8, src: Ipv6Addr, dst: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
    let mut packet = eth(A_HOST_MAC, A_MAC, 0x86dd);
    let len = (payload.len() as u16).to_be_bytes();
    packet.extend_from_slice(&[version << 4, 0, 0, 0, len[0], len[1], next, 64]);
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.octets());
    packet.extend_from_slice(payload);
    packet
}

/// Hostile IPv6 from an endpoint: each frame is a counted drop by its
/// reason (or the host's, where it would be anyway), never redirected and
/// never a crash of the program's run.
#[test]
fn hostile_ipv6_frames_are_counted_drops() {
    let mut lab = TwoEndpoints::new("v6-hostile").with_ipv6();
    const UDP: u8 = 17;
    const HOPOPTS: u8 = 0;
    const ICMPV6: u8 = 58;
    // (A frame shorter than the fixed header the kernel refuses to test-run.)
    let cases: [(&str, Vec<u8>, DropReason); 4] = [
        (
            "version 4 in an IPv6 frame",
            ipv6_frame(4, UDP, A_IP6, B_IP6, &[0; 8]),
            DropReason::Malformed,
        ),
        (
            "an extension header past the frame's end",
            ipv6_frame(6, HOPOPTS, A_IP6, B_IP6, &[]),
            DropReason::Malformed,
        ),
        (
            "a neighbour advertisement cut short",
            ipv6_frame(6, ICMPV6, A_IP6, B_IP6, &[136, 0, 0, 0, 0, 0, 0, 0]),
            DropReason::NdSpoofed,
        ),
        (
            "B's source from A",
            ipv6_frame(6, UDP, B_IP6, GATEWAY6, &[0; 8]),
            DropReason::IpSpoofed,
        ),
    ];
    for (why, frame, reason) in &cases {
        let before = lab.counters().drops[reason.slot()];
        assert_eq!(lab.run(frame).0, TC_ACT_SHOT, "{why}");
        assert_eq!(lab.counters().drops[reason.slot()], before + 1, "{why}");
    }
    // A solicitation cut short is no question the datapath answers: the
    // host's, as any other neighbour discovery.
    let short = ipv6_frame(6, ICMPV6, A_IP6, GATEWAY6, &[135, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(lab.run(&short).0, TO_HOST, "a solicitation cut short");
    assert_eq!(lab.counters().arp_replies, 0);
    assert_eq!(lab.counters().redirected, 0);
}
