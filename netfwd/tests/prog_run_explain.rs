//! `netfwd explain`'s copy of a datapath (`loader::DatapathCopy`) on
//! crafted packets: it holds what the pinned maps hold (an endpoint entered
//! there is known to it), its own monitor reports each verdict, and the
//! pinned maps are byte for byte the same after its runs, counters
//! included; an IPv6 frame reaches the copy's own IPv6 program (its jump
//! table) and its events carry IPv6 addresses.
#![expect(
    clippy::unwrap_used,
    reason = "tests report a broken expectation by panicking"
)]

mod common;

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
};

use common::{LO, PinDir, eth, ipv4, udp};
use netfwd::explain::packet::{Leg, Proto, Tuple};
use netfwd::loader::{
    DatapathCopy,
    raw_map::{Entries, RawMap},
};
use netfwd_common::{
    drop::DropReason,
    maps::EndpointEntry,
    maps::Network6Config,
    monitor::{EVENT_DROP, EVENT_TRACE, FAMILY_IPV6, VERDICT_TO_HOST},
};

const A_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 28, 1);
const SPOOFED_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 28, 99);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 28, 5);
const A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa1];
const A_HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa0];
const TC_ACT_SHOT: i32 = 2;

/// Every map pinned in `dir`, by name.
fn pinned_maps(dir: &Path) -> BTreeMap<String, Entries> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| !path.is_dir())
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, RawMap::from_pin(&path).unwrap().entries().unwrap())
        })
        .collect()
}

/// Endpoint A, on `lo`.
const A: EndpointEntry = EndpointEntry {
    host_ifindex: LO,
    mac: A_MAC,
    host_mac: A_HOST_MAC,
};

#[test]
fn the_copy_answers_with_the_pinned_maps_contents_and_changes_none_of_them() {
    let pins = PinDir::new("explain");
    let (_datapath, _maps) = common::loaded(&pins, GATEWAY, &[(A_IP, A)]);
    let before = pinned_maps(&pins.0);
    assert!(before.contains_key("COUNTERS"), "{:?}", before.keys());
    let mut copy = DatapathCopy::of_pins(&pins.0).unwrap();

    // A spoofed source: dropped, and said why.
    let mut spoofed = eth(A_HOST_MAC, A_MAC, 0x0800);
    spoofed.extend(ipv4(SPOOFED_IP, GATEWAY, 17, udp(4242, 53, b"x", true)));
    // With XDP in front, the same: XDP leaves drops to TC.
    for xdp in [false, true] {
        let run = copy.run_from_endpoint(&spoofed, LO, xdp).unwrap();
        assert!(!run.xdp, "XDP finished a spoofed packet");
        assert_eq!(run.action, TC_ACT_SHOT);
        assert_eq!(run.events.len(), 1, "{:?}", run.events);
        assert_eq!(run.events[0].kind, EVENT_DROP);
        assert_eq!(run.events[0].reason, DropReason::IpSpoofed as u8);
    }

    // The endpoint's own address (entered in the pinned `ENDPOINTS` only)
    // to the gateway: the host's, a trace event.
    let mut to_gateway = eth(A_HOST_MAC, A_MAC, 0x0800);
    to_gateway.extend(ipv4(A_IP, GATEWAY, 17, udp(4242, 53, b"x", true)));
    let run = copy.run_from_endpoint(&to_gateway, LO, false).unwrap();
    let trace = run.events.iter().find(|e| e.kind == EVENT_TRACE);
    assert_eq!(
        trace.map(|e| e.verdict),
        Some(VERDICT_TO_HOST),
        "{:?}",
        run.events
    );

    drop(copy);
    assert_eq!(pinned_maps(&pins.0), before, "a pinned map changed");
}

const A_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x28, 0, 0, 0, 0, 2);
const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x28, 0, 0, 0, 0, 1);

/// `explain`'s ICMPv6 echo from `source` to the IPv6 gateway, from A's MAC.
fn echo6(source: Ipv6Addr) -> Vec<u8> {
    let tuple = Tuple {
        proto: Proto::Icmp,
        source: SocketAddr::new(source.into(), 40_000),
        destination: SocketAddr::new(GATEWAY6.into(), 0),
    };
    tuple.frame(Leg::Request, A_HOST_MAC, A_MAC)
}

#[test]
fn the_copy_runs_ipv6_through_its_own_jump_table_and_reports_ipv6_addresses() {
    let pins = PinDir::new("explain6");
    let (_datapath, mut maps) = common::loaded(&pins, GATEWAY, &[(A_IP, A)]);
    maps.set_network6(Network6Config {
        gateway: GATEWAY6.octets(),
        subnet: Ipv6Addr::new(0x2001, 0xdb8, 0x28, 0, 0, 0, 0, 0).octets(),
        prefix_len: 64,
        flags: 0,
        _pad: [0; 2],
    })
    .unwrap();
    maps.set_endpoint6(A_IP6, A).unwrap();
    let before = pinned_maps(&pins.0);
    let mut copy = DatapathCopy::of_pins(&pins.0).unwrap();

    // A's own address to the gateway: the host's, told by IPv6's program.
    let run = copy.run_from_endpoint(&echo6(A_IP6), LO, false).unwrap();
    let trace = run.events.iter().find(|e| e.kind == EVENT_TRACE).unwrap();
    assert_eq!(trace.verdict, VERDICT_TO_HOST, "{:?}", run.events);
    assert_eq!(trace.family, FAMILY_IPV6);
    assert_eq!(trace.src, A_IP6.octets());
    assert_eq!(trace.dst, GATEWAY6.octets());

    // A forged source: dropped, the reason and the forged address said.
    let forged = Ipv6Addr::new(0x2001, 0xdb8, 0x28, 0, 0, 0, 0, 0x99);
    let run = copy.run_from_endpoint(&echo6(forged), LO, false).unwrap();
    assert_eq!(run.action, TC_ACT_SHOT);
    let dropped = run.events.iter().find(|e| e.kind == EVENT_DROP).unwrap();
    assert_eq!(dropped.reason, DropReason::IpSpoofed as u8);
    assert_eq!(dropped.family, FAMILY_IPV6);
    assert_eq!(dropped.src, forged.octets());

    drop(copy);
    assert_eq!(pinned_maps(&pins.0), before, "a pinned map changed");
}
