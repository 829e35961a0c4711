//! What a packet costs the datapath on each of its main paths, in ns per
//! program run as `BPF_PROG_TEST_RUN` measures it, printed as a table
//! (`--nocapture`); only the verdicts are asserted (a timed test is not a
//! benchmark). The maps are those of a NAT network (`nat_lab`): two
//! endpoints, the uplink with its route and neighbour, `NAT_CONFIG`.
//!
//! The kernel runs one skb `repeat` times, so a path that rewrites the
//! packet (every NAT path) would see its own output from the second run on:
//! those are timed one run a call, many calls, and the median taken. One
//! run a call also counts the test run's own clock reads; the L2 path,
//! which leaves the packet as it is, is timed both ways to show that floor.
//!
//! What a test run covers: parsing, policy, the NAT table, conntrack, the
//! FIB lookup (a real one, in the lab's namespace), the MTU checks, the
//! checksum helpers, counters and the monitor's switch. What it does not:
//! the redirect itself (`bpf_redirect*` only records where the packet would
//! go; the kernel acts on it after the program returns, outside its run
//! time, in a test run and in `bpf_stats` alike), and caches as warm as a
//! busy path keeps them, which a loop of one packet makes warmer.
#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

mod common;
mod nat_lab;

use std::time::Duration;

use aya::programs::SchedClassifier;

use common::{TCP, eth, ipv4, run_repeated, tcp_seq};
use nat_lab::*;
use netfwd_common::names::{PROG_FROM_ENDPOINT, PROG_FROM_UPLINK};

/// Runs of the L2 path in one call.
const REPEAT: u32 = 100_000;
/// Calls of one run each, per path that rewrites its packet.
const CALLS: usize = 20_000;
/// New flows timed (the lab's table has room for 1024).
const NEW_FLOWS: u16 = 500;
/// What a request of TCP request/response carries.
const PAYLOAD: [u8; 64] = [0x5a; 64];
const PSH_ACK: u8 = 0x18;

#[test]
fn each_path_is_timed_and_takes_its_verdict() {
    with_lab("cost", (61000, 65535), |lab| {
        let (host_a, uplink) = (lab.host_a, lab.uplink);
        // A TCP flow opened and established, as a request/response run has.
        let (_, syn) = lab.send_from_a(REMOTE, TCP, tcp_seq(40000, 80, SYN, (100, 0), b""));
        let uplink_port = port(&syn, SPORT);
        let syn_ack = tcp_seq(80, uplink_port, SYN | ACK, (7000, 101), b"");
        lab.send_from_uplink(REMOTE, UPLINK_IP, TCP, syn_ack);
        lab.send_from_a(REMOTE, TCP, tcp_seq(40000, 80, ACK, (101, 7001), b""));
        assert_eq!(lab.state(REMOTE, 80), "established");

        // L2: A to B, addressed to B's MAC, so nothing is rewritten.
        let mut l2 = eth(B_MAC, A_MAC, 0x0800);
        let segment = tcp_seq(40000, 80, PSH_ACK, (1, 1), &PAYLOAD);
        l2.extend(ipv4(A_IP, B_IP, TCP, segment));
        let mut request = eth(lab.host_a_mac, A_MAC, 0x0800);
        let segment = tcp_seq(40000, 80, PSH_ACK, (101, 7001), &PAYLOAD);
        request.extend(ipv4(A_IP, REMOTE, TCP, segment));
        let segment = tcp_seq(80, uplink_port, PSH_ACK, (7001, 165), &PAYLOAD);
        let reply = lab.uplink_frame(REMOTE, UPLINK_IP, TCP, segment);
        // New flows: a SYN from a new source port each.
        let syns: Vec<Vec<u8>> = (0..NEW_FLOWS)
            .map(|i| {
                let mut frame = eth(lab.host_a_mac, A_MAC, 0x0800);
                let segment = tcp_seq(20000 + i, 80, SYN, (100, 0), b"");
                frame.extend(ipv4(A_IP, REMOTE, TCP, segment));
                frame
            })
            .collect();

        let from_endpoint = lab.datapath.program(PROG_FROM_ENDPOINT).unwrap();
        let (action, _, l2_repeated) = run_repeated(from_endpoint, &l2, host_a, REPEAT);
        assert_eq!(action, TC_ACT_REDIRECT, "L2");
        let rows = [
            (
                "L2, endpoint to endpoint",
                format!("{REPEAT} runs in one call, mean"),
                l2_repeated,
            ),
            timed_calls(
                from_endpoint,
                "L2, endpoint to endpoint",
                CALLS,
                |_| &l2,
                host_a,
            ),
            timed_calls(
                from_endpoint,
                "NAT egress, flow found",
                CALLS,
                |_| &request,
                host_a,
            ),
            timed_calls(
                from_endpoint,
                "NAT egress, SYN of a new flow",
                syns.len(),
                |i| &syns[i],
                host_a,
            ),
        ];
        let insns = from_endpoint.info().unwrap().verified_instruction_count();
        let from_uplink = lab.datapath.program(PROG_FROM_UPLINK).unwrap();
        let ingress = timed_calls(from_uplink, "NAT ingress, reply", CALLS, |_| &reply, uplink);
        let uplink_insns = from_uplink.info().unwrap().verified_instruction_count();

        println!("\n| path | timed as | ns per run |\n|---|---|---|");
        for (path, how, ns) in rows.iter().chain([&ingress]) {
            println!("| {path} | {how} | {} |", ns.as_nanos());
        }
        println!("{PROG_FROM_ENDPOINT}: {insns:?} instructions verified");
        println!("{PROG_FROM_UPLINK}: {uplink_insns:?} instructions verified");
    });
}

/// `calls` calls of one run each, on packet `packet(i)` for the `i`th,
/// arriving on `ifindex`, each redirected: the path's row, with the median.
fn timed_calls<'p>(
    prog: &SchedClassifier,
    path: &'static str,
    calls: usize,
    packet: impl Fn(usize) -> &'p Vec<u8>,
    ifindex: u32,
) -> (&'static str, String, Duration) {
    let mut times: Vec<Duration> = (0..calls)
        .map(|i| {
            let (action, _, took) = run_repeated(prog, packet(i), ifindex, 1);
            assert_eq!(action, TC_ACT_REDIRECT, "{path}");
            took
        })
        .collect();
    times.sort();
    (
        path,
        format!("{calls} calls of 1 run, median"),
        times[calls / 2],
    )
}
