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

use std::{net::IpAddr, time::Duration};

use aya::programs::SchedClassifier;

use common::{TCP, eth, ip_frame, ipv4, run_repeated, tcp_seq};
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
        lab.dual_stack(0);
        let host_a = lab.host_a;

        // L2: A to B, addressed to B's MAC, so nothing is rewritten.
        let mut l2 = eth(B_MAC, A_MAC, 0x0800);
        let segment = tcp_seq(40000, 80, PSH_ACK, (1, 1), &PAYLOAD);
        l2.extend(ipv4(A_IP, B_IP, TCP, segment));
        let from_endpoint = lab.datapath.program(PROG_FROM_ENDPOINT).unwrap();
        let (action, _, l2_repeated) = run_repeated(from_endpoint, &l2, host_a, REPEAT);
        assert_eq!(action, TC_ACT_REDIRECT, "L2");
        let mut rows = vec![
            (
                "L2, endpoint to endpoint".to_string(),
                format!("{REPEAT} runs in one call, mean"),
                l2_repeated,
            ),
            timed_calls(
                from_endpoint,
                "L2, endpoint to endpoint".to_string(),
                CALLS,
                |_| &l2,
                host_a,
            ),
        ];
        rows.extend(nat_rows(lab, REMOTE.into(), UPLINK_IP.into()));
        rows.extend(nat_rows(lab, REMOTE6.into(), UPLINK_IP6.into()));

        println!("\n| path | timed as | ns per run |\n|---|---|---|");
        for (path, how, ns) in &rows {
            println!("| {path} | {how} | {} |", ns.as_nanos());
        }
        for name in [PROG_FROM_ENDPOINT, PROG_FROM_UPLINK] {
            let insns = lab.datapath.program(name).unwrap().info().unwrap();
            println!(
                "{name}: {:?} instructions verified",
                insns.verified_instruction_count()
            );
        }
    });
}

/// The NAT's rows for the family of `remote` (and of `uplink_ip`, the
/// uplink's address of that family): a TCP flow opened and established, as
/// a request/response run has, then its request and reply timed, and the
/// SYNs of new flows.
fn nat_rows(lab: &mut NatLab, remote: IpAddr, uplink_ip: IpAddr) -> Vec<Row> {
    let family = if remote.is_ipv4() { "IPv4" } else { "IPv6" };
    let sport_at = if remote.is_ipv4() { SPORT } else { SPORT6 };
    let (_, syn) = lab.send_from_a(remote, TCP, tcp_seq(40000, 80, SYN, (100, 0), b""));
    let uplink_port = port(&syn, sport_at);
    let syn_ack = tcp_seq(80, uplink_port, SYN | ACK, (7000, 101), b"");
    lab.send_from_uplink(remote, uplink_ip, TCP, syn_ack);
    lab.send_from_a(remote, TCP, tcp_seq(40000, 80, ACK, (101, 7001), b""));

    let a_ip: IpAddr = if remote.is_ipv4() {
        A_IP.into()
    } else {
        A_IP6.into()
    };
    let from_a = |segment| ip_frame((lab.host_a_mac, A_MAC), a_ip, remote, TCP, segment);
    let request = from_a(tcp_seq(40000, 80, PSH_ACK, (101, 7001), &PAYLOAD));
    // New flows: a SYN from a new source port each.
    let syns: Vec<Vec<u8>> = (0..NEW_FLOWS)
        .map(|i| from_a(tcp_seq(20000 + i, 80, SYN, (100, 0), b"")))
        .collect();
    let segment = tcp_seq(80, uplink_port, PSH_ACK, (7001, 165), &PAYLOAD);
    let reply = lab.uplink_frame(remote, uplink_ip, TCP, segment);

    let (host_a, uplink) = (lab.host_a, lab.uplink);
    let from_endpoint = lab.datapath.program(PROG_FROM_ENDPOINT).unwrap();
    let found = timed_calls(
        from_endpoint,
        format!("{family} NAT egress, flow found"),
        CALLS,
        |_| &request,
        host_a,
    );
    let new_flow = timed_calls(
        from_endpoint,
        format!("{family} NAT egress, SYN of a new flow"),
        syns.len(),
        |i| &syns[i],
        host_a,
    );
    let from_uplink = lab.datapath.program(PROG_FROM_UPLINK).unwrap();
    let reply = timed_calls(
        from_uplink,
        format!("{family} NAT ingress, reply"),
        CALLS,
        |_| &reply,
        uplink,
    );
    vec![found, new_flow, reply]
}

/// A row of the table: the path, how it was timed, ns per run.
type Row = (String, String, Duration);

/// `calls` calls of one run each, on packet `packet(i)` for the `i`th,
/// arriving on `ifindex`, each redirected: the path's row, with the median.
fn timed_calls<'p>(
    prog: &SchedClassifier,
    path: String,
    calls: usize,
    packet: impl Fn(usize) -> &'p Vec<u8>,
    ifindex: u32,
) -> Row {
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
