//! `netfwd explain` (docs/operations.md, "Explain"): for each seed's path
//! (endpoint to endpoint, to the gateway, to the internet through the NAT,
//! routed), an isolated pair, a spoofed source and published ports open and
//! closed, and over IPv6 endpoint to endpoint, `icc = false` and a forged
//! source, its verdict is what real traffic then meets; and every map of
//! the network is byte for byte the same after it as before.
//!
//! Two labs: a dual-stack NAT network with two networks beside it (one
//! isolated, one dual-stack without `icc`), and a routed one (seed 002),
//! each shared by its cases.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use netfwd::loader::raw_map::{Entries, RawMap};
use netfwd_common::names::{MAP_NAT_EXPIRED, MAP_NAT_SWEEP, MAP_NAT6_EXPIRED, MAP_NAT6_SWEEP};
use netfwd_tests::{
    BPF_PIN_ROOT, Lab, Sandbox, assert_ping, drops, endpoint, eventually, in_ns_ok,
    internet::{ECHO_PORT, EchoServer, INTERNET_IP, UPLINK_IP, in_netns, ip_of, tcp_echo},
    lab, ping, scapy_sendp, test_mode,
};
use serde_json::Value;

const SUBNET: &str = "10.73.0.0/24";
const GATEWAY: &str = "10.73.0.1";
const A: &str = "10.73.0.2";
const B: &str = "10.73.0.3";
const SUBNET6: &str = "2001:db8:73::/64";
const GATEWAY6: &str = "2001:db8:73::1";
/// A's and B's IPv6 addresses: the lowest free, in order.
const A6: &str = "2001:db8:73::2";
const B6: &str = "2001:db8:73::3";
/// The second network's endpoint, isolated from the first's.
const C: &str = "10.74.0.2";
/// The third network's (dual-stack, `icc = false`) second endpoint.
const E6: &str = "2001:db8:75::3";
/// Published to B's port 80; the port above it is not published.
const PUBLISHED: u16 = 30080;
const CLOSED: u16 = 30081;
/// The port `explain` sends from.
const SOURCE_PORT: u16 = 40_000;
/// `netfwd explain`'s exit code when a hop drops the packet.
const EXIT_DROPPED: i32 = netfwd::error::EXIT_DROPPED as i32;

/// Maps the kernel changes with no packet: the NAT table's expiry sweep,
/// on its timer, writes its record (`NAT_SWEEP`) and its marks
/// (`NAT_EXPIRED`) at every step, whatever `explain` does; IPv6's table's
/// (`NAT6_SWEEP`, `NAT6_EXPIRED`) likewise.
const CHANGED_BY_THE_SWEEP: [&str; 4] = [
    MAP_NAT_SWEEP,
    MAP_NAT_EXPIRED,
    MAP_NAT6_SWEEP,
    MAP_NAT6_EXPIRED,
];

/// Turns IPv6 off in the namespaces `nss`: an interface's own router
/// solicitations, MLD reports and duplicate address checks reach the
/// datapath for seconds after it comes up, and move the counters that
/// the maps' comparison must see still unless `explain` moved them.
fn quiet(nss: &[&str]) {
    for ns in nss {
        for conf in ["all", "default"] {
            let key = format!("net.ipv6.conf.{conf}.disable_ipv6=1");
            in_ns_ok(ns, &["sysctl", "-q", "-w", &key]);
        }
    }
}

/// Keeps IPv6 on in the dual-stack endpoints `nss` but stops their router
/// solicitations (sent again and again, further apart, for as long as no
/// router answers); what they send once on coming up (multicast listener
/// reports) [`settle`] waits out.
fn quiet_dual_stack(nss: &[&str]) {
    for ns in nss {
        let key = "net.ipv6.conf.eth0.router_solicitations=0";
        in_ns_ok(ns, &["sysctl", "-q", "-w", key]);
    }
}

/// Waits until no map pinned in `dirs` changes for a second: the
/// endpoints' own packets of coming up have all been counted.
fn settle(dirs: &[String]) {
    const STILL: Duration = Duration::from_secs(1);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = maps(dirs);
    let mut still_since = Instant::now();
    // Looked at often, so the second of stillness is counted from the last
    // change seen rather than from a whole second's sampling.
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = maps(dirs);
        if now != last {
            last = now;
            still_since = Instant::now();
        } else if still_since.elapsed() >= STILL {
            return;
        }
        assert!(Instant::now() < deadline, "the maps never held still");
    }
}

/// Every map pinned in `dirs`, by path, but those the sweep changes.
fn maps(dirs: &[String]) -> BTreeMap<String, Entries> {
    let mut out = BTreeMap::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).expect("a pin directory") {
            let path = entry.expect("a pin").path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let name = name.unwrap_or_default();
            // `links/`, `programs/`: directories, no maps.
            if path.is_dir() || CHANGED_BY_THE_SWEEP.contains(&name.as_str()) {
                continue;
            }
            let map = RawMap::from_pin(&path).expect("a pinned map");
            let entries = map.entries().expect("a map's entries");
            out.insert(path.display().to_string(), entries);
        }
    }
    out
}

/// The network's pin directory, and its uplink's shared NAT table's.
fn pin_dirs(sb: &Sandbox, net: &str) -> Vec<String> {
    let status = sb.network_status(net);
    let mut dirs = vec![format!("{BPF_PIN_ROOT}/{net}")];
    if let Some(table) = status["nat"]["table"].as_str() {
        dirs.push(table.to_owned());
    }
    dirs
}

/// `netfwd explain --name NET ARGS… --json`: its exit code and answer,
/// with every map checked unchanged by it.
fn explain(sb: &Sandbox, net: &str, args: &[&str]) -> (i32, Value) {
    let dirs = pin_dirs(sb, net);
    let before = maps(&dirs);
    let mut all = vec!["explain", "--name", net, "--json"];
    all.extend(args);
    let out = sb.netfwd(&all);
    let after = maps(&dirs);
    let changed: Vec<&String> = before
        .iter()
        .filter(|(path, entries)| after.get(*path) != Some(entries))
        .map(|(path, _)| path)
        .collect();
    assert!(changed.is_empty(), "explain {args:?} changed {changed:?}");
    let code = out.status.code().expect("an exit code");
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "explain {args:?} exited {code}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, answer)
}

/// Where the packets XDP finishes in XDP mode are seen.
fn fast_path() -> &'static str {
    if test_mode() == "xdp" { "XDP" } else { "TC" }
}

fn hop(answer: &Value, n: usize) -> &Value {
    &answer["hops"][n]
}

#[test]
fn explain_answers_as_traffic_goes_on_a_nat_network() {
    let lab = Lab::builder("explain", SUBNET)
        .uplink()
        .gateway(GATEWAY)
        .keys(&format!("subnet6 = \"{SUBNET6}\"\n"))
        .endpoint("a", Some(A))
        .endpoint("b", Some(B))
        .publish("tcp", PUBLISHED, 1, 80)
        .up();
    let [a, b] = lab::named(lab.eps.clone());
    quiet_dual_stack(&[&a, &b]);
    let isolated = lab.network("10.74.0.0/24").endpoint("c", Some(C)).up();
    let no_icc = lab
        .network("10.75.0.0/24")
        .keys("subnet6 = \"2001:db8:75::/64\"\nicc = false\n")
        .endpoint("d", None)
        .endpoint("e", None)
        .up();
    let [c] = lab::named(isolated.eps.clone());
    let [d, e] = lab::named(no_icc.eps.clone());
    quiet_dual_stack(&[&d, &e]);
    let (sb, net) = (&lab.sb, lab.net.as_str());
    let inet = lab.internet.ns.clone();
    quiet(&[&c, &inet]);
    // Mostly still by now: the other networks came up meanwhile.
    settle(&pin_dirs(sb, net));
    let _service = EchoServer::start(&b, B, 80);
    let _service6 = EchoServer::start(&b, B6, 80);

    // First every question, while no traffic moves a counter (a failed
    // ping leaves its sender probing the gateway with ARP seconds after).

    // Seed 000: endpoint to endpoint, and back.
    let (code, answer) = explain(sb, net, &["--from", &a, "--to", B]);
    assert_eq!(code, 0, "{answer:#}");
    assert_eq!(answer["verdict"], "PASSED", "{answer:#}");
    assert_eq!(hop(&answer, 0)["verdict"], "REDIRECTED", "{answer:#}");
    assert_eq!(hop(&answer, 0)["to"]["name"], b.as_str(), "{answer:#}");
    assert_eq!(hop(&answer, 1)["leg"], "reply", "{answer:#}");
    assert_eq!(hop(&answer, 1)["to"]["name"], a.as_str(), "{answer:#}");
    // In XDP mode, XDP finishes both, as it does the real packets.
    let point = hop(&answer, 0)["trace_observation_point"].clone();
    assert_eq!(point, fast_path(), "{answer:#}");

    // Seed 001: the gateway is the host's, through its own stack.
    let (code, answer) = explain(sb, net, &["--from", A, "--to", GATEWAY]);
    assert_eq!(code, 0, "{answer:#}");
    assert_eq!(hop(&answer, 0)["verdict"], "TO_HOST", "{answer:#}");
    assert_eq!(hop(&answer, 0)["to"]["kind"], "host", "{answer:#}");

    // Seed 000/001: the internet, translated to the uplink's address both ways.
    let internet = format!("{INTERNET_IP}:{ECHO_PORT}");
    let (code, answer) = explain(sb, net, &["--from", &a, "--to", &internet]);
    assert_eq!(code, 0, "{answer:#}");
    let out = hop(&answer, 0);
    assert_eq!(out["verdict"], "TRANSLATED", "{answer:#}");
    let translated = out["translated"]["source"].as_str().map(ip_of);
    assert_eq!(translated, Some(UPLINK_IP), "{answer:#}");
    assert_eq!(out["to"]["kind"], "uplink", "{answer:#}");
    let back = hop(&answer, 1);
    assert_eq!(back["from"]["kind"], "uplink", "{answer:#}");
    assert_eq!(back["verdict"], "TRANSLATED", "{answer:#}");
    let restored = format!("{A}:{SOURCE_PORT}");
    assert_eq!(back["translated"]["destination"], restored, "{answer:#}");
    assert_eq!(back["to"]["name"], a.as_str(), "{answer:#}");
    assert_eq!(back["trace_observation_point"], fast_path(), "{answer:#}");
    // A flow's first packet is TC's in either mode.
    assert_eq!(out["trace_observation_point"], "TC", "{answer:#}");

    // An isolated pair: the other network of the host.
    let (code, answer) = explain(sb, net, &["--from", &a, "--to", C]);
    assert_eq!(code, EXIT_DROPPED, "{answer:#}");
    assert_eq!(answer["verdict"], "DROPPED", "{answer:#}");
    let reason = &hop(&answer, 0)["drop_reason_desc"];
    assert_eq!(reason, "isolated", "{answer:#}");
    assert_eq!(answer["hops"].as_array().map(Vec::len), Some(1));

    // A published port, open: into B, its answer out of the uplink.
    let published = format!("{UPLINK_IP}:{PUBLISHED}");
    let (code, answer) = explain(sb, net, &["--from", INTERNET_IP, "--to", &published]);
    assert_eq!(code, 0, "{answer:#}");
    let into = hop(&answer, 0);
    assert_eq!(into["from"]["kind"], "uplink", "{answer:#}");
    assert_eq!(into["verdict"], "TRANSLATED", "{answer:#}");
    let service = format!("{B}:80");
    assert_eq!(into["translated"]["destination"], service, "{answer:#}");
    assert_eq!(into["to"]["name"], b.as_str(), "{answer:#}");
    assert_eq!(hop(&answer, 1)["to"]["kind"], "uplink", "{answer:#}");

    // A port that is not published: the host's, which has nothing there.
    let closed = format!("{UPLINK_IP}:{CLOSED}");
    let (code, answer) = explain(sb, net, &["--from", INTERNET_IP, "--to", &closed]);
    assert_eq!(code, 0, "{answer:#}");
    assert_eq!(hop(&answer, 0)["verdict"], "TO_HOST", "{answer:#}");
    assert!(hop(&answer, 0)["translated"].is_null(), "{answer:#}");

    // A spoofed source: the gateway's address, from the internet.
    let (code, answer) = explain(sb, net, &["--from", GATEWAY, "--to", &published]);
    assert_eq!(code, EXIT_DROPPED, "{answer:#}");
    let reason = &hop(&answer, 0)["drop_reason_desc"];
    assert_eq!(reason, "martian_source", "{answer:#}");

    // IPv6 (a dual-stack network), endpoint to endpoint: TCP finished by
    // XDP in XDP mode, as IPv4's is.
    let service6 = format!("[{B6}]:80");
    let (code, answer) = explain(sb, net, &["--from", &a, "--to", &service6]);
    assert_eq!(code, 0, "{answer:#}");
    let source6 = format!("[{A6}]:{SOURCE_PORT}");
    assert_eq!(answer["packet"]["source"], source6, "{answer:#}");
    assert_eq!(hop(&answer, 0)["verdict"], "REDIRECTED", "{answer:#}");
    assert_eq!(hop(&answer, 0)["to"]["name"], b.as_str(), "{answer:#}");
    assert!(hop(&answer, 0)["translated"].is_null(), "{answer:#}");
    assert_eq!(hop(&answer, 1)["to"]["name"], a.as_str(), "{answer:#}");
    let point = hop(&answer, 0)["trace_observation_point"].clone();
    assert_eq!(point, fast_path(), "{answer:#}");

    // A forged IPv6 source: an ICMPv6 echo from A (named by its address)
    // with B's address.
    let args = ["--from", A6, "--source", B6, "--to", GATEWAY6];
    let (code, answer) = explain(sb, net, &args);
    assert_eq!(code, EXIT_DROPPED, "{answer:#}");
    assert_eq!(hop(&answer, 0)["from"]["name"], a.as_str(), "{answer:#}");
    let reason = &hop(&answer, 0)["drop_reason_desc"];
    assert_eq!(reason, "ip_spoofed", "{answer:#}");

    // `icc = false`: an ICMPv6 echo dropped, for the reason real traffic
    // meets below.
    settle(&pin_dirs(sb, &no_icc.net));
    let (code, answer) = explain(sb, &no_icc.net, &["--from", &d, "--to", E6]);
    assert_eq!(code, EXIT_DROPPED, "{answer:#}");
    assert_eq!(answer["packet"]["proto"], "icmp", "{answer:#}");
    assert_eq!(hop(&answer, 0)["drop_reason_desc"], "icc", "{answer:#}");

    // Then the traffic, which meets what explain said.
    assert_ping(&a, B);
    assert_ping(&a, GATEWAY);
    let seen = in_netns(&a, move || tcp_echo(INTERNET_IP, ECHO_PORT, None, b"x")).unwrap();
    assert_eq!(ip_of(&seen), UPLINK_IP);
    let isolated_before = drops(&sb.network_status(net), &a, "isolated");
    assert!(!ping(&a, C));
    assert!(drops(&sb.network_status(net), &a, "isolated") > isolated_before);
    assert!(!ping(&c, A));
    let client = inet.clone();
    in_netns(&client, move || tcp_echo(UPLINK_IP, PUBLISHED, None, b"x")).unwrap();
    let client = inet.clone();
    assert!(in_netns(&client, move || tcp_echo(UPLINK_IP, CLOSED, None, b"x")).is_err());
    let martians = lab.counter("uplink", "martian_source");
    let frame = format!(
        "Ether()/IP(src='{GATEWAY}', dst='{UPLINK_IP}')/TCP(sport=5000, dport={PUBLISHED})"
    );
    scapy_sendp(&inet, "inet0", &frame, 1);
    eventually(
        "the spoofed segment's drop",
        Duration::from_secs(10),
        || lab.counter("uplink", "martian_source") > martians,
    );

    // IPv6: redirected (counted so) and untranslated, B's address forged
    // from A dropped, and `icc = false` keeping D from E.
    let redirected = |status: &Value| endpoint(status, &a)["counters"]["redirected"].as_u64();
    let before = redirected(&sb.network_status(net));
    assert_ping(&a, B6);
    let seen = in_netns(&a, move || tcp_echo(B6, 80, None, b"x")).unwrap();
    assert_eq!(
        seen.rsplit_once(':').map(|(ip, _)| ip),
        Some(&*format!("[{A6}]"))
    );
    assert!(redirected(&sb.network_status(net)) > before);
    let spoofed = drops(&sb.network_status(net), &a, "ip_spoofed");
    let status = sb.network_status(net);
    let ep = endpoint(&status, &a);
    let (mac, host_mac) = (
        ep["mac"].as_str().unwrap(),
        ep["host_mac"].as_str().unwrap(),
    );
    let forged = format!(
        "Ether(src='{mac}', dst='{host_mac}')/IPv6(src='{B6}', dst='{GATEWAY6}')/ICMPv6EchoRequest()"
    );
    scapy_sendp(&a, "eth0", &forged, 1);
    assert!(drops(&sb.network_status(net), &a, "ip_spoofed") > spoofed);
    let icc = drops(&sb.network_status(&no_icc.net), &d, "icc");
    assert!(!ping(&d, E6));
    assert!(drops(&sb.network_status(&no_icc.net), &d, "icc") > icc);
}

#[test]
fn explain_answers_as_traffic_goes_on_a_routed_network() {
    const DEMO01: &str = "10.0.1.2";
    const DEMO02: &str = "10.0.2.2";
    let lab = Lab::builder("explainr", "10.0.0.0/16")
        .kind("routed")
        .endpoint("demo01", Some(DEMO01))
        .endpoint("demo02", Some(DEMO02))
        .up();
    let [demo01, demo02] = lab::named(lab.eps.clone());
    quiet(&[&demo01, &demo02]);
    let (code, answer) = explain(&lab.sb, &lab.net, &["--from", &demo01, "--to", DEMO02]);
    assert_eq!(code, 0, "{answer:#}");
    assert_eq!(hop(&answer, 0)["to"]["name"], demo02.as_str(), "{answer:#}");
    assert_eq!(hop(&answer, 1)["to"]["name"], demo01.as_str(), "{answer:#}");
    assert_ping(&demo01, DEMO02);

    // Bad input is named, and nothing is run.
    let out = lab.sb.netfwd(&[
        "explain", "--name", &lab.net, "--from", "nobody", "--to", DEMO02,
    ]);
    assert_eq!(out.status.code(), Some(netfwd_tests::EXIT_BAD_INPUT.into()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--from"), "{stderr}");
    // IPv6 in an IPv4-only network.
    let out = lab.sb.netfwd(&[
        "explain",
        "--name",
        &lab.net,
        "--from",
        &demo01,
        "--to",
        "2001:db8::1",
    ]);
    assert_eq!(out.status.code(), Some(netfwd_tests::EXIT_BAD_INPUT.into()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no IPv6"), "{stderr}");
    assert!(Path::new(&format!("{BPF_PIN_ROOT}/{}", lab.net)).exists());
}
