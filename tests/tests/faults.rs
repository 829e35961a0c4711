//! Faults under load: the daemon killed with SIGKILL mid-transfer, `down`
//! while traffic flows, the uplink going down and up or changing its
//! address, a full NAT table, and two `up` of one network at once.

use std::{
    net::UdpSocket,
    thread,
    time::{Duration, Instant},
};

use netfwd_tests::{
    Daemon, Lab, NetConfig, Sandbox, assert_nothing_left, assert_ping, describe, drops, endpoint,
    endpoints, in_ns_ok,
    internet::{ECHO_PORT, EchoStream, INTERNET_IP, Internet, UPLINK, in_netns, tcp_echo},
    netfwd_bin, retry_eintr, tool_ok,
};
use serde_json::Value;

const SUBNET: &str = "10.98.0.0/24";

/// A network of `n` endpoints behind the uplink; `nat` is a `[nat]`
/// section or empty.
fn uplinked(tag: &str, n: usize, nat: &str) -> Lab<Internet> {
    (0..n)
        .fold(Lab::builder(tag, SUBNET).uplink(), |lab, i| {
            lab.endpoint(&format!("e{i}"), None)
        })
        .tables(nat)
        .up()
}

/// SIGKILL leaves the pinned programs and maps working: the stream goes on,
/// and a new daemon adopts the NAT table without scrubbing its live flow.
#[test]
fn a_kill_9_of_the_daemon_mid_transfer_loses_no_flow() {
    let lab = uplinked("kill9", 1, "");
    let mut daemon = Daemon::start(&lab.sb, &lab.config, &["--gc-interval", "1"]);
    let mut stream = EchoStream::start(&lab.eps[0]);
    daemon.kill9();
    stream.advances();
    let to_echo = |flows: &[Value]| {
        flows
            .iter()
            .filter(|f| {
                f["remote"]
                    .as_str()
                    .is_some_and(|r| r.ends_with(&format!(":{ECHO_PORT}")))
            })
            .count()
    };
    assert_eq!(to_echo(&lab.nat_flows()), 1, "{:#?}", lab.nat_flows());
    // Ready means its first pass, which judged every flow, is done.
    let mut daemon = Daemon::start(&lab.sb, &lab.config, &["--gc-interval", "1"]);
    assert_eq!(
        to_echo(&lab.nat_flows()),
        1,
        "the restarted daemon scrubbed the live flow"
    );
    stream.advances();
    stream.stop().unwrap();
    daemon.stop();
}

/// `down` under traffic: exits 0 and leaves nothing (the streams die with
/// their endpoints); `up` right after makes a working network.
#[test]
fn down_while_traffic_flows_leaves_nothing_and_up_right_after_works() {
    let lab = uplinked("download", 3, "");
    let mut streams: Vec<EchoStream> = lab.eps.iter().map(|ep| EchoStream::start(ep)).collect();
    // Every stream flowing the moment `down` starts.
    for s in &mut streams {
        s.advances();
    }
    lab.sb.netfwd_ok(&["down", "--name", &lab.net]);
    let eps: Vec<&str> = lab.eps.iter().map(String::as_str).collect();
    assert_nothing_left(lab.sb.host(), &lab.net, &eps);
    let links = in_ns_ok(lab.sb.host(), &["ip", "-d", "link", "show", UPLINK]);
    assert!(
        !links.contains("prog/xdp"),
        "XDP left on the uplink:\n{links}"
    );
    // Their namespaces are gone; dropped, they end at their next time-out.
    drop(streams);
    lab.sb.up_file(&lab.config);
    for ep in &lab.eps {
        assert_ping(ep, INTERNET_IP);
    }
}

/// The uplink going down and up: a stream rides it out (TCP retransmits,
/// the flow's NAT entries stay). Its address changing: new flows leave with
/// the new address at once, no daemon needed (`bpf_fib_lookup` picks it).
#[test]
fn the_uplink_going_down_and_up_or_changing_its_address() {
    let lab = uplinked("uplink", 1, "");
    let host = lab.sb.host().to_owned();
    let ep = lab.eps[0].clone();
    // Taking the uplink down takes its routes with it.
    let default_route = || {
        tool_ok(
            "ip",
            &[
                "-n",
                &host,
                "route",
                "replace",
                "default",
                "via",
                INTERNET_IP,
            ],
        )
    };
    let mut stream = EchoStream::start(&ep);
    tool_ok("ip", &["-n", &host, "link", "set", UPLINK, "down"]);
    // An outage TCP retransmits across.
    thread::sleep(Duration::from_millis(500));
    tool_ok("ip", &["-n", &host, "link", "set", UPLINK, "up"]);
    default_route();
    stream.advances();
    stream.stop().unwrap();

    tool_ok(
        "ip",
        &["-n", &host, "addr", "del", "203.0.113.2/24", "dev", UPLINK],
    );
    tool_ok(
        "ip",
        &["-n", &host, "addr", "add", "203.0.113.3/24", "dev", UPLINK],
    );
    default_route();
    let peer = in_netns(&ep, || {
        tcp_echo(INTERNET_IP, ECHO_PORT, None, b"renumbered")
    })
    .unwrap();
    assert!(peer.starts_with("203.0.113.3:"), "the server saw {peer}");
}

/// UDP flows from `ns` to the echo server, one per source port in
/// `ports`; the count that was answered. One at a time, each answered
/// before the next is asked (an unanswered flow is what early drop may
/// evict), and each given a generous wait; once one goes unanswered the
/// table is full, and the rest are asked at once and awaited together, so
/// refused flows cost one wait, not one each.
fn udp_flows_answered(ns: &str, ports: std::ops::Range<u16>) -> u64 {
    const WAIT: Duration = Duration::from_secs(2);
    in_netns(ns, move || {
        let ask = |sport: u16| -> anyhow::Result<UdpSocket> {
            let socket = UdpSocket::bind(("0.0.0.0", sport))?;
            socket.send_to(b"fill", (INTERNET_IP, ECHO_PORT))?;
            Ok(socket)
        };
        let answered = |socket: &UdpSocket, deadline: Instant| -> anyhow::Result<bool> {
            let left = deadline.saturating_duration_since(Instant::now());
            socket.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            Ok(retry_eintr(|| socket.recv(&mut [0u8; 1500])).is_ok())
        };
        let mut ports = ports.into_iter();
        let mut count = 0;
        for sport in ports.by_ref() {
            if !answered(&ask(sport)?, Instant::now() + WAIT)? {
                break;
            }
            count += 1;
        }
        let rest: Vec<UdpSocket> = ports.map(ask).collect::<anyhow::Result<_>>()?;
        let deadline = Instant::now() + WAIT;
        for socket in &rest {
            if answered(socket, deadline)? {
                count += 1;
            }
        }
        Ok(count)
    })
    .unwrap_or_else(|e| panic!("UDP flows from {ns}: {e:#}"))
}

/// A NAT table far smaller than the flows asked of it: once full, new flows
/// are refused and counted (`nat_full`, as conntrack refuses when its table
/// is full), the flows in it keep working, status shows it full; when they
/// expire the kernel makes room again, with no netfwd process running.
#[test]
fn a_full_nat_table_refuses_new_flows_and_keeps_the_ones_in_it() {
    const MAX_FLOWS: u64 = 64;
    // Long enough that no flow expires while the table is filled.
    const UDP_TIMEOUT: u64 = 10;
    let lab = uplinked(
        "natfull",
        2,
        &format!("[nat]\nmax_flows = {MAX_FLOWS}\n[nat.timeouts]\nudp = {UDP_TIMEOUT}\n"),
    );
    let mut stream = EchoStream::start(&lab.eps[0]);
    let other = &lab.eps[1];
    let asked = MAX_FLOWS + 6;
    let answered = udp_flows_answered(other, 40000..40000 + asked as u16);
    let status = lab.sb.network_status(&lab.net);
    let nat = &status["nat"];
    assert_eq!(nat["max_flows"].as_u64(), Some(MAX_FLOWS));
    assert_eq!(nat["flows"].as_u64(), Some(MAX_FLOWS), "{nat:#}");
    // The stream holds one flow; the first UDP flows got the rest.
    assert_eq!(answered, MAX_FLOWS - 1, "{nat:#}");
    let refused = drops(&status, other, "nat_full");
    assert_eq!(refused, asked - answered);
    stream.advances();
    stream.stop().unwrap();

    // The UDP flows expire; the kernel's sweep frees their room, with no
    // netfwd process running (`status` only counts the table): room comes
    // back within a deadline past the timeout (a walk comes every half of
    // the shortest timeout), and new flows get in. Watched in the table
    // rather than by asking flows that must wait out a refusal each time.
    const NEW_FLOWS: u16 = 10;
    let deadline = Instant::now() + Duration::from_secs(UDP_TIMEOUT + 20);
    loop {
        let nat = lab.sb.network_status(&lab.net)["nat"].clone();
        if nat["flows"].as_u64().unwrap() + u64::from(NEW_FLOWS) <= MAX_FLOWS {
            break;
        }
        assert!(Instant::now() < deadline, "no room came back: {nat:#}");
        thread::sleep(Duration::from_millis(250));
    }
    let answered = udp_flows_answered(other, 50000..50000 + NEW_FLOWS);
    assert_eq!(
        answered,
        u64::from(NEW_FLOWS),
        "{:#}",
        lab.sb.network_status(&lab.net)["nat"]
    );
}

/// Two `up` of one network at once: the lock serialises them, both succeed,
/// one network results with every endpoint working.
#[test]
fn two_ups_at_once_build_one_network() {
    let sb = Sandbox::new("twoup");
    let net = sb.net_name();
    let eps: Vec<String> = (0..4).map(|i| sb.ns(&format!("e{i}"))).collect();
    let mut cfg = NetConfig::new(&net, SUBNET, None);
    for ep in &eps {
        cfg = cfg.endpoint(ep, None);
    }
    let path = sb.write_config(&cfg.to_toml());
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(netfwd_bin())
                .arg("--netns")
                .arg(sb.host())
                .arg("up")
                .arg("-c")
                .arg(&path)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", describe("concurrent up", &out));
    }
    let status = sb.network_status(&net);
    assert_eq!(endpoints(&status).len(), 4);
    assert!(
        endpoints(&status).iter().all(|e| e["program"].is_object()),
        "{status:#}"
    );
    for ep in &eps[1..] {
        let ip = endpoint(&status, ep)["ip"].as_str().unwrap().to_owned();
        assert_ping(&eps[0], &ip);
    }
}
