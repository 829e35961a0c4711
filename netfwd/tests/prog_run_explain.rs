//! `netfwd explain`'s copy of a datapath (`loader::DatapathCopy`) on
//! crafted packets: it holds what the pinned maps hold (an endpoint entered
//! there is known to it), its own monitor reports each verdict, and the
//! pinned maps are byte for byte the same after its runs, counters
//! included.
#![expect(
    clippy::unwrap_used,
    reason = "tests report a broken expectation by panicking"
)]

mod common;

use std::{collections::BTreeMap, net::Ipv4Addr, path::Path};

use common::{LO, PinDir, eth, ipv4, udp};
use netfwd::loader::{
    DatapathCopy,
    raw_map::{Entries, RawMap},
};
use netfwd_common::{
    drop::DropReason,
    maps::EndpointEntry,
    monitor::{EVENT_DROP, EVENT_TRACE, VERDICT_TO_HOST},
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

#[test]
fn the_copy_answers_with_the_pinned_maps_contents_and_changes_none_of_them() {
    let pins = PinDir::new("explain");
    let a = EndpointEntry {
        host_ifindex: LO,
        mac: A_MAC,
        host_mac: A_HOST_MAC,
    };
    let (_datapath, _maps) = common::loaded(&pins, GATEWAY, &[(A_IP, a)]);
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
