//! IPv4 fragments and sizes through the NAT: a fragmented datagram both
//! ways, a later fragment without its first, and a datagram too big for the
//! uplink. Each test runs in a namespace of its own (see `nat_lab`).
#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

mod common;
mod nat_lab;

use std::net::Ipv4Addr;

use common::{UDP, checksum, checksums_ok, eth, ipv4, run, udp};
use nat_lab::*;
use netfwd_common::{
    drop::DropReason,
    names::{PROG_FROM_ENDPOINT, PROG_FROM_UPLINK},
};

/// `l4` in two IPv4 fragments (identification `id`): the first with
/// `first_len` bytes of it (a multiple of 8), the second with the rest.
fn fragments(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    l4: Vec<u8>,
    id: u16,
    first_len: usize,
) -> [Vec<u8>; 2] {
    // The transport checksum over the whole datagram, as a sender computes it.
    let whole = ipv4(src, dst, proto, l4);
    let l4 = &whole[20..];
    let piece = |bytes: &[u8], offset: usize, more: bool| {
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((20 + bytes.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&id.to_be_bytes());
        let frags = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
        ip.extend_from_slice(&frags.to_be_bytes());
        ip.extend_from_slice(&[64, proto, 0, 0]);
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        let c = common::checksum(&ip, 0);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip.extend_from_slice(bytes);
        ip
    };
    [
        piece(&l4[..first_len], 0, true),
        piece(&l4[first_len..], first_len, false),
    ]
}

#[test]
fn a_fragmented_datagram_crosses_the_nat_both_ways_whole() {
    with_lab("frag", (61000, 65535), |lab| {
        let body: Vec<u8> = (0..200u8).collect();
        let [first, later] = fragments(A_IP, REMOTE, UDP, udp(5353, 53, &body, true), 0x4242, 64);
        let mut outs = Vec::new();
        for piece in [first, later] {
            let mut packet = eth(lab.host_a_mac, A_MAC, 0x0800);
            packet.extend(piece);
            let prog = lab.datapath.program(PROG_FROM_ENDPOINT).unwrap();
            let (action, out) = run(prog, &packet, lab.host_a);
            assert_eq!(action, TC_ACT_REDIRECT);
            assert_eq!(addr(&out, SRC), UPLINK_IP);
            assert_eq!(common::checksum(&out[14..34], 0), 0, "IP checksum");
            outs.push(out);
        }
        // Reassembled, the datagram's UDP checksum still holds.
        // The translated first fragment's header, made whole, around the
        // transport bytes of both.
        let mut datagram = outs[0][14..34].to_vec();
        datagram.extend_from_slice(&outs[0][34..]);
        datagram.extend_from_slice(&outs[1][34..]);
        let total = datagram.len() as u16;
        datagram[2..4].copy_from_slice(&total.to_be_bytes());
        datagram[6..8].copy_from_slice(&[0, 0]);
        datagram[10..12].copy_from_slice(&[0, 0]);
        let c = common::checksum(&datagram[..20], 0);
        datagram[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(
            checksums_ok(&datagram),
            "UDP checksum of the translated datagram"
        );
        let uplink_port = port(&outs[0], SPORT);

        let [first, later] = fragments(
            REMOTE,
            UPLINK_IP,
            UDP,
            udp(53, uplink_port, &body, true),
            0x5151,
            64,
        );
        for piece in [first, later] {
            let mut packet = eth(lab.uplink_mac, ROUTER_MAC, 0x0800);
            packet.extend(piece);
            let prog = lab.datapath.program(PROG_FROM_UPLINK).unwrap();
            let (action, back) = run(prog, &packet, lab.uplink);
            assert_eq!(action, TC_ACT_REDIRECT, "a reply fragment did not get in");
            assert_eq!(addr(&back, DST), A_IP);
        }
    });
}

#[test]
fn a_later_fragment_without_its_first_is_dropped() {
    with_lab("fragorph", (61000, 65535), |lab| {
        let [_, later] = fragments(A_IP, REMOTE, UDP, udp(5353, 53, &[7; 100], true), 9, 64);
        let mut packet = eth(lab.host_a_mac, A_MAC, 0x0800);
        packet.extend(later);
        let prog = lab.datapath.program(PROG_FROM_ENDPOINT).unwrap();
        let (action, _) = run(prog, &packet, lab.host_a);
        assert_eq!(action, TC_ACT_SHOT);
        assert_eq!(
            lab.counters(lab.host_a).drops[DropReason::Unsupported.slot()],
            1
        );
    });
}

#[test]
fn a_datagram_too_big_for_the_uplink_is_translated_for_the_stack_to_fragment_unless_df() {
    with_lab("mtu", (61000, 65535), |lab| {
        ip("link set up0 mtu 1400");
        let datagram = |df: bool| {
            let mut frame = eth(lab.host_a_mac, A_MAC, 0x0800);
            let mut packet = ipv4(A_IP, REMOTE, UDP, udp(40000, 53, &[7; 1460], true));
            if !df {
                packet[6] = 0;
                packet[10..12].copy_from_slice(&[0, 0]);
                let c = checksum(&packet[..20], 0);
                packet[10..12].copy_from_slice(&c.to_be_bytes());
            }
            frame.extend(packet);
            frame
        };
        let prog = lab.datapath.program(PROG_FROM_ENDPOINT).unwrap();

        // DF set: the stack answers "fragmentation needed"; nothing is
        // translated, no flow made.
        let (action, out) = run(prog, &datagram(true), lab.host_a);
        assert_eq!(action, TO_HOST);
        assert_eq!(addr(&out, SRC), A_IP);
        assert_eq!(lab.nat_flows(), 0);

        // DF clear: translated here, then the stack's to fragment (and to
        // count the hop: the TTL is as it came).
        let prog = lab.datapath.program(PROG_FROM_ENDPOINT).unwrap();
        let (action, out) = run(prog, &datagram(false), lab.host_a);
        assert_eq!(action, TO_HOST);
        assert_eq!(addr(&out, SRC), UPLINK_IP);
        assert!((61000..=65535).contains(&port(&out, SPORT)));
        assert_eq!(out[TTL], 64);
        assert!(checksums_ok(&out[14..]), "checksums after SNAT");
        assert_eq!(lab.nat_flows(), 1);
    });
}
