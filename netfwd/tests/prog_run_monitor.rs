//! `netfwd monitor`'s datapath side on crafted packets: nothing is written
//! while the switch is off; once on, a drop is one event with its tuple,
//! and a burst past a CPU's budget is suppressed and counted, every packet
//! written or counted. Prints what a run costs off, on but suppressed, and
//! on and written (ns per run, for the bench notes).
#![expect(
    clippy::unwrap_used,
    reason = "tests report a broken expectation by panicking"
)]

mod common;

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use aya::programs::{SchedClassifier, TestRun as _, TestRunOptions};
use common::{LO, PinDir, eth, ipv4, udp};
use netfwd::loader::monitor::{MonitorRing, MonitorSwitch};
use netfwd_common::{
    drop::DropReason,
    maps::EndpointEntry,
    monitor::{EVENT_BURST, EVENT_DROP, FAMILY_IPV6, WANT_DROP},
    names::PROG_FROM_ENDPOINT,
    nat::IPPROTO_ICMPV6,
};

const A_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 28, 1);
const SPOOFED_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 28, 99);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 28, 5);
const ROUTER_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0xa1);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa1];
const A_HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa0];
const TC_ACT_SHOT: u32 = 2;
/// Runs of one burst: three budgets' worth.
const BURST_RUNS: u32 = 3 * EVENT_BURST as u32;
/// Runs of a cost measurement.
const COST_RUNS: u32 = 200_000;

/// Runs `prog` `repeat` times on `packet`; its action and ns a run.
fn run(prog: &SchedClassifier, packet: &[u8], repeat: u32) -> (u32, f64) {
    let mut out = vec![0u8; packet.len() + 64];
    let result = prog
        .test_run(TestRunOptions {
            data_in: Some(packet),
            data_out: Some(&mut out),
            repeat,
            ..Default::default()
        })
        .unwrap();
    // The kernel reports the mean duration of the runs.
    (result.return_value, result.duration.as_nanos() as f64)
}

/// A router advertisement (no options) from `ROUTER_LL` to all nodes.
fn ipv6_router_advert() -> Vec<u8> {
    let mut icmp = vec![134, 0, 0, 0, 64, 0, 0x07, 0x08];
    icmp.extend([0; 8]);
    let mut frame = eth([0x33, 0x33, 0, 0, 0, 1], A_MAC, 0x86dd);
    frame.extend([0x60, 0, 0, 0]);
    frame.extend((icmp.len() as u16).to_be_bytes());
    frame.extend([IPPROTO_ICMPV6, 255]);
    frame.extend(ROUTER_LL.octets());
    frame.extend(ALL_NODES.octets());
    // The checksum is left 0: the guard drops the message unread.
    frame.extend(icmp);
    frame
}

fn drain(ring: &mut MonitorRing) -> Vec<netfwd_common::monitor::MonitorEvent> {
    std::iter::from_fn(|| ring.next_event()).collect()
}

#[test]
fn drops_are_written_only_while_switched_on_and_a_burst_is_suppressed_and_counted() {
    let pins = PinDir::new("monitor");
    let a = EndpointEntry {
        host_ifindex: LO,
        mac: A_MAC,
        host_mac: A_HOST_MAC,
    };
    let (mut datapath, _maps) = common::loaded(&pins, GATEWAY, &[(A_IP, a)]);
    let mut ring = MonitorRing::open(&pins.0).unwrap();
    let mut switch = MonitorSwitch::open(&pins.0).unwrap();
    let mut spoofed = eth(A_HOST_MAC, A_MAC, 0x0800);
    spoofed.extend(ipv4(SPOOFED_IP, GATEWAY, 17, udp(4242, 53, b"x", true)));
    let prog = datapath.program(PROG_FROM_ENDPOINT).unwrap();

    // Off: dropped, nothing written, nothing counted missed.
    let (action, off_ns) = run(prog, &spoofed, COST_RUNS);
    assert_eq!(action, TC_ACT_SHOT);
    assert!(drain(&mut ring).is_empty(), "an event while off");
    assert_eq!(switch.missed().unwrap().total(), 0);

    // On: one drop, one event with its tuple.
    switch.keep_on(WANT_DROP).unwrap();
    assert_eq!(run(prog, &spoofed, 1).0, TC_ACT_SHOT);
    let events = drain(&mut ring);
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.kind, EVENT_DROP);
    assert_eq!(event.reason, DropReason::IpSpoofed as u8);
    assert_eq!(event.src[..4], SPOOFED_IP.octets());
    assert_eq!(event.dst[..4], GATEWAY.octets());
    assert_eq!(u16::from_be_bytes(event.src_port), 4242);
    assert_eq!(u16::from_be_bytes(event.dst_port), 53);
    assert_eq!(event.proto, 17);

    // An IPv6 drop carries its addresses and protocol: a router
    // advertisement from the endpoint (`router_guard`).
    let advert = ipv6_router_advert();
    assert_eq!(run(prog, &advert, 1).0, TC_ACT_SHOT);
    let events = drain(&mut ring);
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.reason, DropReason::RouterMessage as u8);
    assert_eq!(event.family, FAMILY_IPV6);
    assert_eq!(event.proto, IPPROTO_ICMPV6);
    assert_eq!(event.src, ROUTER_LL.octets());
    assert_eq!(event.dst, ALL_NODES.octets());

    // A burst on one CPU: its budget written, the rest suppressed.
    run(prog, &spoofed, BURST_RUNS);
    let written = drain(&mut ring).len() as u64;
    let missed = switch.missed().unwrap();
    assert_eq!(missed.lost, 0, "the ring holds a budget");
    assert!(missed.suppressed > 0, "{missed:?}");
    assert_eq!(written + missed.suppressed, u64::from(BURST_RUNS));
    assert!(
        written < EVENT_BURST + 100,
        "{written} written of a burst of {BURST_RUNS}"
    );

    // What a run costs: suppressed (budget spent), and written (a fresh
    // budget, at most that many runs).
    let (_, suppressed_ns) = run(prog, &spoofed, COST_RUNS);
    std::thread::sleep(Duration::from_millis(1100));
    drain(&mut ring);
    let (_, written_ns) = run(prog, &spoofed, EVENT_BURST as u32);
    drain(&mut ring);
    eprintln!(
        "tc_from_endpoint, a spoofed drop: monitor off {off_ns:.1} ns/run, \
         on and suppressed {suppressed_ns:.1} ns/run, on and written {written_ns:.1} ns/run"
    );
}
