//! Fragments and sizes through the NAT: a fragmented datagram both ways
//! (IPv4, and IPv6's fragment header through NAT66), a later fragment
//! without its first, a datagram too big for the uplink, and the IPv6
//! extension headers NAT66 does not cross. Each test runs in a namespace of
//! its own (see `nat_lab`).
#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

mod common;
mod nat_lab;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::{
    UDP, checksum, checksums_ok, eth, fill_l4_checksum, ipv4, ipv6_raw, l4_checksum_ok, run, udp,
};
use nat_lab::*;
use netfwd_common::{
    drop::DropReason,
    names::{PROG_FROM_ENDPOINT, PROG_FROM_UPLINK},
    nat::{IPPROTO_DSTOPTS, IPPROTO_FRAGMENT, IPPROTO_HOPOPTS, IPPROTO_ROUTING},
};

/// Where the transport header starts in the frame of an option-less IPv4
/// packet, and of an IPv6 fragment (behind its fragment header).
const L4: usize = 14 + 20;
const L4_FRAG6: usize = 14 + 40 + 8;

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

/// `l4` in two IPv6 fragments (identification `id`), as `fragments`.
fn fragments6(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    proto: u8,
    mut l4: Vec<u8>,
    id: u32,
    first_len: usize,
) -> [Vec<u8>; 2] {
    fill_l4_checksum(src.into(), dst.into(), proto, &mut l4);
    let piece = |bytes: &[u8], offset: usize, more: bool| {
        // The offset in 8-byte units above three flag bits: the offset in
        // bytes, "more fragments" the lowest bit.
        let mut header = vec![proto, 0];
        header.extend_from_slice(&(offset as u16 | u16::from(more)).to_be_bytes());
        header.extend_from_slice(&id.to_be_bytes());
        header.extend_from_slice(bytes);
        ipv6_raw(src, dst, IPPROTO_FRAGMENT, &header)
    };
    [
        piece(&l4[..first_len], 0, true),
        piece(&l4[first_len..], first_len, false),
    ]
}

/// Whether the datagram that translated fragments `frames` make holds its
/// transport checksum: the transport bytes of each (from `l4_off` on),
/// between the addresses `src` and `dst` they now carry.
fn reassembled_checksum_ok(
    frames: &[Vec<u8>],
    l4_off: usize,
    (src, dst): (IpAddr, IpAddr),
    proto: u8,
) -> bool {
    let l4: Vec<u8> = frames.iter().flat_map(|f| f[l4_off..].to_vec()).collect();
    l4_checksum_ok(src, dst, proto, &l4)
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
        assert!(
            reassembled_checksum_ok(&outs, L4, (UPLINK_IP.into(), REMOTE.into()), UDP),
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

/// Each of `pieces` through `send`, which must redirect it: the frames that
/// come out.
fn redirected(pieces: &[Vec<u8>], mut send: impl FnMut(&[u8]) -> (u32, Vec<u8>)) -> Vec<Vec<u8>> {
    pieces
        .iter()
        .map(|piece| {
            let (action, out) = send(piece);
            assert_eq!(action, TC_ACT_REDIRECT, "a fragment did not get through");
            out
        })
        .collect()
}

#[test]
fn an_ipv6_fragmented_datagram_crosses_nat66_both_ways_whole() {
    with_lab("frag6", (61000, 65535), |lab| {
        lab.dual_stack(0);
        let body: Vec<u8> = (0..200u8).collect();
        let request = udp(5353, 53, &body, true);
        let outs = redirected(
            &fragments6(A_IP6, REMOTE6, UDP, request, 0x0a0b_0c0d, 64),
            |piece| lab.send6_from_a(piece),
        );
        assert!(outs.iter().all(|out| addr6(out, SRC6) == UPLINK_IP6));
        // The first fragment's checksum, adjusted for the new address and
        // port alone, holds for the whole datagram.
        assert!(
            reassembled_checksum_ok(&outs, L4_FRAG6, (UPLINK_IP6.into(), REMOTE6.into()), UDP),
            "UDP checksum of the translated datagram"
        );
        let uplink_port = port(&outs[0], L4_FRAG6);
        assert!((61000..=65535).contains(&uplink_port));

        let reply = udp(53, uplink_port, &body, true);
        let backs = redirected(
            &fragments6(REMOTE6, UPLINK_IP6, UDP, reply, 0x0102_0304, 64),
            |piece| lab.send6_from_uplink(piece),
        );
        assert!(backs.iter().all(|back| addr6(back, DST6) == A_IP6));
        assert_eq!(port(&backs[0], L4_FRAG6 + 2), 5353);
        assert!(
            reassembled_checksum_ok(&backs, L4_FRAG6, (REMOTE6.into(), A_IP6.into()), UDP),
            "UDP checksum of the datagram translated back"
        );
    });
}

#[test]
fn an_ipv6_later_fragment_without_its_first_is_dropped() {
    with_lab("frag6orph", (61000, 65535), |lab| {
        lab.dual_stack(0);
        let [_, later] = fragments6(A_IP6, REMOTE6, UDP, udp(5353, 53, &[7; 100], true), 9, 64);
        let (action, _) = lab.send6_from_a(&later);
        assert_eq!(action, TC_ACT_SHOT);
        assert_eq!(
            lab.counters(lab.host_a).drops[DropReason::Unsupported.slot()],
            1
        );
    });
}

/// An 8-byte extension header (hop-by-hop, routing or destination options:
/// the next header and the length come first) followed by `next`.
fn extension_header(next: u8) -> [u8; 8] {
    // The rest: a PadN option's, or a routing header's type and segments
    // left, with padding.
    [next, 0, 1, 4, 0, 0, 0, 0]
}

#[test]
fn ipv6_hop_by_hop_routing_and_destination_options_do_not_cross_nat66() {
    with_lab("ext6", (61000, 65535), |lab| {
        lab.dual_stack(0);
        let mut l4 = udp(5353, 53, b"options", true);
        fill_l4_checksum(A_IP6.into(), REMOTE6.into(), UDP, &mut l4);
        let behind = |first: u8, headers: &[&[u8]]| {
            let mut payload: Vec<u8> = headers.concat();
            payload.extend_from_slice(&l4);
            ipv6_raw(A_IP6, REMOTE6, first, &payload)
        };
        let udp_after = extension_header(UDP);
        let mut refused = vec![
            behind(IPPROTO_HOPOPTS, &[&udp_after]),
            behind(IPPROTO_ROUTING, &[&udp_after]),
            behind(IPPROTO_DSTOPTS, &[&udp_after]),
        ];
        // Destination options behind an (atomic) fragment header.
        let fragment_header = [IPPROTO_DSTOPTS, 0, 0, 0, 0, 0, 0, 1];
        refused.push(behind(IPPROTO_FRAGMENT, &[&fragment_header, &udp_after]));
        for packet in &refused {
            let (action, out) = lab.send6_from_a(packet);
            assert_eq!(action, TC_ACT_SHOT);
            assert_eq!(addr6(&out, SRC6), A_IP6, "nothing translated");
        }
        assert_eq!(
            lab.counters(lab.host_a).drops[DropReason::ExtensionHeader.slot()],
            refused.len() as u64
        );
        assert_eq!(lab.maps.nat6_entries().unwrap().len(), 0);

        // Coming in, the host's: no flow of NAT66's carries them.
        let mut payload = extension_header(UDP).to_vec();
        payload.extend_from_slice(&udp(53, 61000, b"options", true));
        let (action, _) =
            lab.send6_from_uplink(&ipv6_raw(REMOTE6, UPLINK_IP6, IPPROTO_HOPOPTS, &payload));
        assert_eq!(action, TO_HOST);
    });
}
