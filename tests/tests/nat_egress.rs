//! Egress SNAT and connection tracking (seeds 000/001's MASQUERADE and
//! FORWARD rules, done in BPF): endpoints reach an "internet" namespace
//! behind the sandbox host's uplink as the uplink's address; replies come
//! back; the outside cannot get in uninvited; the host's own traffic is
//! untouched; no iptables or nftables rule exists.
//!
//! Run as root, one test at a time: `cargo xtask test`.

use std::{
    thread,
    time::{Duration, Instant},
};

use netfwd_tests::{
    Daemon, Lab, Sandbox, assert_no_bridge_and_no_rules, assert_nothing_left, assert_ping,
    describe, in_ns_ok,
    internet::{
        ECHO_PORT, EchoStream, INTERNET_IP, INTERNET_IP6, Internet, UPLINK, UPLINK_IP, UPLINK_IP6,
        in_netns, ip_of, tcp_echo, udp_echo,
    },
    nsenter_net, payload, ping, scapy_sendp,
    shared::{Lent, SharedLab},
    tool_ok,
};
use serde_json::Value;

const SUBNET: &str = "192.168.28.0/24";
const GATEWAY: &str = "192.168.28.5";
const IPS: [&str; 3] = ["192.168.28.1", "192.168.28.2", "192.168.28.3"];
const SUBNET6: &str = "fd00:28::/64";
/// A public prefix (documentation range), routed to the host untranslated
/// with `nat6 = false`, and its endpoints' addresses (the lowest free
/// after the gateway's `::1`, in config order).
const PUBLIC6: &str = "2001:db8:28::/64";
const PUBLIC_IPS6: [&str; 3] = ["2001:db8:28::2", "2001:db8:28::3", "2001:db8:28::4"];

/// A network of three endpoints masqueraded behind the uplink, with
/// `tables` (`[nat]`, …) in its config.
fn nat_lab(tag: &str, tables: &str) -> Lab<Internet> {
    let mut lab = Lab::builder(tag, SUBNET).gateway(GATEWAY).uplink();
    for (t, ip) in ["a", "b", "c"].into_iter().zip(IPS) {
        lab = lab.endpoint(t, Some(ip));
    }
    lab.tables(tables).up()
}

/// [`nat_lab`], dual-stack: IPv6 masqueraded too (NAT66).
fn nat_lab6(tag: &str) -> Lab<Internet> {
    dual_stack_lab(tag, &format!("subnet6 = \"{SUBNET6}\"\n"))
}

/// [`nat_lab`], dual-stack with the IPv6 keys `keys6`.
fn dual_stack_lab(tag: &str, keys6: &str) -> Lab<Internet> {
    let mut lab = Lab::builder(tag, SUBNET)
        .gateway(GATEWAY)
        .keys(keys6)
        .uplink();
    for (t, ip) in ["a", "b", "c"].into_iter().zip(IPS) {
        lab = lab.endpoint(t, Some(ip));
    }
    lab.up()
}

/// [`nat_lab`] without tables and [`nat_lab6`], each shared by the tests
/// that leave it as they found it (`netfwd_tests::shared`): those that
/// change the uplink, the internet beyond it or the config, or look for
/// one flow among all, build their own.
static NAT: SharedLab<Lab<Internet>> = SharedLab::new();
static NAT6: SharedLab<Lab<Internet>> = SharedLab::new();

fn shared_nat_lab() -> Lent<Lab<Internet>> {
    NAT.get(|| nat_lab("nat", ""))
}

fn shared_nat_lab6() -> Lent<Lab<Internet>> {
    NAT6.get(|| nat_lab6("nat6"))
}

/// This file's name for the lab's NAT flows.
trait Flows {
    fn flows(&self) -> Vec<Value>;
}

impl Flows for Lab<Internet> {
    fn flows(&self) -> Vec<Value> {
        self.nat_flows()
    }
}

#[test]
fn every_endpoint_reaches_the_internet_by_ping_tcp_and_udp_as_the_uplink_address() {
    let lab = shared_nat_lab();
    reach_the_internet_as(&lab, INTERNET_IP, &[UPLINK_IP; 3]);
}

/// The IPv6 twin (NAT66, as Docker's ip6tables MASQUERADE), in a
/// dual-stack network: its own table, its ICMPv6 echo by identifier.
#[test]
fn over_ipv6_every_endpoint_reaches_the_internet_by_ping_tcp_and_udp_as_the_uplink_address() {
    let lab = shared_nat_lab6();
    reach_the_internet_as(&lab, INTERNET_IP6, &[UPLINK_IP6; 3]);
    let icmp = lab
        .flows()
        .into_iter()
        .filter(|f| f["protocol"] == "icmpv6")
        .count();
    assert!(icmp >= 3, "{:#?}", lab.flows());
}

/// `nat6 = false` (a public prefix, Docker's routed IPv6 gateway mode):
/// the endpoints' IPv6 leaves the uplink with their own addresses, routed
/// by the host (the internet routes the prefix via the uplink), while the
/// same network's IPv4 is still masqueraded. The outside gets in only with
/// replies: an unsolicited ping to an endpoint is dropped and counted.
#[test]
fn over_ipv6_with_nat6_off_endpoints_reach_the_internet_as_their_own_addresses() {
    let lab = dual_stack_lab(
        "nat6off",
        &format!("subnet6 = \"{PUBLIC6}\"\nnat6 = false\n"),
    );
    let route6 = [
        "-6",
        "-n",
        &lab.internet.ns,
        "route",
        "add",
        PUBLIC6,
        "via",
        UPLINK_IP6,
    ];
    tool_ok("ip", &route6);
    let status = lab.sb.status_json(&lab.net);
    assert_eq!(status["networks"][0]["nat6"], false, "{status:#}");
    reach_the_internet_as(&lab, INTERNET_IP6, &PUBLIC_IPS6);
    reach_the_internet_as(&lab, INTERNET_IP, &[UPLINK_IP; 3]);

    let policy_before = lab.counter("uplink", "policy");
    assert!(
        !ping(&lab.internet.ns, PUBLIC_IPS6[0]),
        "the internet reached an endpoint uninvited"
    );
    assert!(lab.counter("uplink", "policy") >= policy_before + 3);
}

/// Every endpoint of `lab` pings `internet_ip`, and its TCP and UDP echo
/// server sees the `i`th endpoint as `seen_as[i]` (the uplink's address
/// where masqueraded): carried both ways by the BPF NAT (nothing else
/// could have), each flow in `nat list`.
fn reach_the_internet_as(lab: &Lab<Internet>, internet_ip: &'static str, seen_as: &[&str; 3]) {
    let (endpoint_before, uplink_before) = (
        lab.counter("endpoint", "translated"),
        lab.counter("uplink", "translated"),
    );
    for (i, ep) in lab.eps.iter().enumerate() {
        assert_ping(ep, internet_ip);
        let data = payload(ep, 3000);
        let seen = in_netns(ep, move || tcp_echo(internet_ip, ECHO_PORT, None, &data));
        let seen = seen.expect("the TCP echo");
        assert_eq!(ip_of(&seen), seen_as[i], "TCP from {ep} seen as {seen}");
        let sport = 40000 + i as u16;
        let seen = in_netns(ep, move || udp_echo(internet_ip, ECHO_PORT, sport, b"udp"));
        let seen = seen.expect("the UDP echo");
        assert_eq!(ip_of(&seen), seen_as[i], "UDP from {ep} seen as {seen}");
    }
    assert!(lab.counter("endpoint", "translated") >= endpoint_before + 3 * 3);
    assert!(lab.counter("uplink", "translated") >= uplink_before + 3 * 3);
    assert_no_bridge_and_no_rules(lab.sb.host());
    let flows: Vec<Value> = lab
        .flows()
        .into_iter()
        .filter(|f| {
            f["outside"]
                .as_str()
                .is_some_and(|o| seen_as.contains(&ip_of(o)))
        })
        .collect();
    assert!(flows.len() >= 9, "{:#?}", lab.flows());
}

#[test]
fn two_endpoints_using_one_source_port_to_one_server_port_both_work_at_once() {
    let lab = shared_nat_lab();
    let handles: Vec<_> = lab.eps[..2]
        .iter()
        .map(|ep| {
            let ep = ep.clone();
            thread::spawn(move || {
                let data = payload(&ep, 200_000);
                in_netns(&ep, move || {
                    tcp_echo(INTERNET_IP, ECHO_PORT, Some(45000), &data)
                })
            })
        })
        .collect();
    let seen: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    assert!(seen.iter().all(|s| ip_of(s) == UPLINK_IP), "{seen:?}");
    assert_ne!(
        seen[0], seen[1],
        "the two flows share an uplink port: {seen:?}"
    );
    // UDP too.
    let a = in_netns(&lab.eps[0], || {
        udp_echo(INTERNET_IP, ECHO_PORT, 45001, b"a")
    })
    .unwrap();
    let b = in_netns(&lab.eps[1], || {
        udp_echo(INTERNET_IP, ECHO_PORT, 45001, b"b")
    })
    .unwrap();
    assert_ne!(a, b);
}

#[test]
fn three_hundred_concurrent_tcp_connections_from_three_endpoints_complete_intact() {
    let lab = shared_nat_lab();
    let workers: Vec<_> = lab
        .eps
        .iter()
        .flat_map(|ep| (0..100).map(move |i| (ep.clone(), i)))
        .map(|(ep, i)| {
            thread::spawn(move || {
                let data = payload(&format!("{ep}-{i}"), 4096 + i * 13);
                in_netns(&ep, move || tcp_echo(INTERNET_IP, ECHO_PORT, None, &data))
            })
        })
        .collect();
    let mut failures = Vec::new();
    for w in workers {
        match w.join().unwrap() {
            Ok(seen) => assert_eq!(ip_of(&seen), UPLINK_IP),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );
}

#[test]
fn a_large_tcp_transfer_completes_through_a_narrower_hop_by_path_mtu_discovery() {
    let lab = nat_lab("natpmtu", "");
    transfer_through_a_narrower_hop(&lab, &NARROW_HOP, UPLINK_IP);
}

/// The IPv6 twin: routers never fragment IPv6, so without ICMPv6 "packet
/// too big" translated back through the NAT, the transfer stalls.
#[test]
fn over_ipv6_a_large_tcp_transfer_completes_through_a_narrower_hop_by_path_mtu_discovery() {
    let lab = nat_lab6("nat6pmtu");
    transfer_through_a_narrower_hop(&lab, &NARROW_HOP6, UPLINK_IP6);
}

/// The addresses of a family's world beyond the internet namespace, for
/// [`transfer_through_a_narrower_hop`]: the narrow link's two ends, the
/// server's link's two ends, the server's prefix, and what makes a
/// namespace forward.
struct NarrowHop {
    inet: &'static str,
    far: &'static str,
    far_to_server: &'static str,
    server: &'static str,
    server_prefix: &'static str,
    forwarding: &'static str,
}

const NARROW_HOP: NarrowHop = NarrowHop {
    inet: "198.51.100.1/24",
    far: "198.51.100.2/24",
    far_to_server: "198.51.101.1/24",
    server: "198.51.101.2/24",
    server_prefix: "198.51.101.0/24",
    forwarding: "net.ipv4.ip_forward=1",
};

const NARROW_HOP6: NarrowHop = NarrowHop {
    inet: "2001:db8:a::1/64",
    far: "2001:db8:a::2/64",
    far_to_server: "2001:db8:b::1/64",
    server: "2001:db8:b::2/64",
    server_prefix: "2001:db8:b::/64",
    forwarding: "net.ipv6.conf.all.forwarding=1",
};

/// Beyond the internet namespace, a 1280-byte link between two routers
/// (internet and `far`), then the server on 1500 again: both ends keep a
/// 1500 MTU, so only ICMP "fragmentation needed" (ICMPv6 "packet too big")
/// from the routers, the endpoint's translated back through the NAT, can
/// shrink the segments. (A narrow MTU on one end of a veth alone would drop
/// the other side's full-size frames silently: a black hole, not a test.)
/// Two megabytes from the lab's first endpoint, seen as `uplink_ip`.
fn transfer_through_a_narrower_hop(lab: &Lab<Internet>, hop: &NarrowHop, uplink_ip: &str) {
    let (far, srv) = (lab.sb.ns("far"), lab.sb.ns("srv"));
    let inet = lab.internet.ns.clone();
    for ns in [&far, &srv] {
        tool_ok("ip", &["netns", "add", ns]);
        tool_ok("ip", &["-n", ns, "link", "set", "lo", "up"]);
    }
    let ip = |ns: &str, args: &str| {
        let mut all = vec!["-n", ns];
        all.extend(args.split_whitespace());
        tool_ok("ip", &all);
    };
    // Usable at once: no duplicate address detection (IPv6's).
    let addr = |ns: &str, addr: &str, dev: &str| {
        let nodad = if addr.contains(':') { "nodad" } else { "" };
        ip(ns, &format!("addr add {addr} dev {dev} {nodad}"));
    };
    let gateway = |addr: &str| addr.split_once('/').map_or(addr, |(ip, _)| ip).to_owned();
    ip(
        &inet,
        &format!("link add f0 mtu 1280 type veth peer name eth0 netns {far}"),
    );
    ip(&far, "link set eth0 mtu 1280");
    addr(&inet, hop.inet, "f0");
    ip(&inet, "link set f0 up");
    ip(
        &inet,
        &format!("route add {} via {}", hop.server_prefix, gateway(hop.far)),
    );
    addr(&far, hop.far, "eth0");
    ip(&far, "link set eth0 up");
    ip(
        &far,
        &format!("link add eth1 type veth peer name eth0 netns {srv}"),
    );
    addr(&far, hop.far_to_server, "eth1");
    ip(&far, "link set eth1 up");
    ip(
        &far,
        &format!("route add default via {}", gateway(hop.inet)),
    );
    addr(&srv, hop.server, "eth0");
    ip(&srv, "link set eth0 up");
    ip(
        &srv,
        &format!("route add default via {}", gateway(hop.far_to_server)),
    );
    for ns in [&inet, &far] {
        in_ns_ok(ns, &["sysctl", "-qw", hop.forwarding]);
    }
    let server_ip = gateway(hop.server);
    let server = netfwd_tests::internet::EchoServer::start(&srv, &server_ip, 9);
    let data = payload("pmtu", 2_000_000);
    let to = server_ip.clone();
    let result = in_netns(&lab.eps[0], move || tcp_echo(&to, 9, None, &data));
    drop(server);
    assert_eq!(ip_of(&result.expect("the transfer")), uplink_ip);
    let route = tool_ok("ip", &["-n", &lab.eps[0], "route", "get", &server_ip]);
    assert!(route.contains("mtu 1280"), "no learnt path MTU: {route}");
}

#[test]
fn flows_expire_on_their_timeouts_and_the_daemon_collects_them() {
    let lab = nat_lab("natexp", "[nat.timeouts]\nudp = 2\nicmp = 2\n");
    let mut daemon = Daemon::start(&lab.sb, &lab.config, &["--gc-interval", "1"]);
    in_netns(&lab.eps[0], || {
        udp_echo(INTERNET_IP, ECHO_PORT, 46000, b"x")
    })
    .unwrap();
    assert!(ping(&lab.eps[0], INTERNET_IP));
    assert!(!lab.flows().is_empty());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.flows().is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(500));
    }
    assert!(lab.flows().is_empty(), "{:#?}", lab.flows());
    daemon.stop();
    // The ports came back: the same flow works again.
    in_netns(&lab.eps[0], || {
        udp_echo(INTERNET_IP, ECHO_PORT, 46000, b"y")
    })
    .unwrap();
}

#[test]
fn a_full_port_range_drops_new_flows_as_no_port_and_keeps_the_live_ones() {
    // Two uplink ports per remote address and port.
    let lab = nat_lab("natfull", "[nat]\nport_min = 61000\nport_max = 61001\n");
    for sport in [47000, 47001] {
        in_netns(&lab.eps[0], move || {
            udp_echo(INTERNET_IP, ECHO_PORT, sport, b"a")
        })
        .unwrap();
    }
    let third = in_netns(&lab.eps[1], || {
        udp_echo(INTERNET_IP, ECHO_PORT, 47002, b"b")
    });
    assert!(third.is_err(), "a third flow got a port: {third:?}");
    assert!(lab.counter("endpoint", "no_port") >= 1);
    for sport in [47000, 47001] {
        in_netns(&lab.eps[0], move || {
            udp_echo(INTERNET_IP, ECHO_PORT, sport, b"again")
        })
        .unwrap();
    }
}

#[test]
fn unsolicited_packets_from_the_internet_to_an_endpoint_are_dropped_and_counted() {
    let lab = shared_nat_lab();
    tool_ok(
        "ip",
        &[
            "-n",
            &lab.internet.ns,
            "route",
            "add",
            SUBNET,
            "via",
            UPLINK_IP,
        ],
    );
    let policy = lab.counter("uplink", "policy");
    assert!(
        !ping(&lab.internet.ns, IPS[0]),
        "the internet reached an endpoint"
    );
    assert!(lab.counter("uplink", "policy") >= policy + 3);
    // Outbound still works.
    assert_ping(&lab.eps[0], INTERNET_IP);
    // The shared lab as it was.
    tool_ok("ip", &["-n", &lab.internet.ns, "route", "del", SUBNET]);
}

#[test]
fn host_connections_run_alongside_natted_ones_and_all_complete() {
    let lab = shared_nat_lab();
    let mut clients: Vec<String> = lab.eps.clone();
    clients.push(lab.sb.host().to_owned());
    let workers: Vec<_> = clients
        .iter()
        .flat_map(|ns| (0..20).map(move |i| (ns.clone(), i)))
        .map(|(ns, i)| {
            thread::spawn(move || {
                let data = payload(&format!("{ns}{i}"), 50_000);
                in_netns(&ns, move || tcp_echo(INTERNET_IP, ECHO_PORT, None, &data))
            })
        })
        .collect();
    for w in workers {
        let seen = w.join().unwrap().unwrap();
        assert_eq!(ip_of(&seen), UPLINK_IP);
    }
    assert_no_bridge_and_no_rules(lab.sb.host());
}

#[test]
fn a_tcp_stream_runs_across_a_daemon_restart_and_an_up_rerun_without_a_reset() {
    let lab = shared_nat_lab();
    let mut daemon = Daemon::start(&lab.sb, &lab.config, &[]);
    let mut stream = EchoStream::start(&lab.eps[0]);
    daemon.stop();
    stream.advances();
    daemon = Daemon::start(&lab.sb, &lab.config, &[]);
    stream.advances();
    lab.sb.up_file(&lab.config);
    stream.advances();
    stream.stop().unwrap();
    daemon.stop();
}

#[test]
fn down_leaves_nothing_and_the_uplink_as_it_was() {
    let lab = nat_lab("natdown", "");
    assert_ping(&lab.eps[0], INTERNET_IP);
    lab.sb.netfwd_ok(&["down", "--name", &lab.net]);
    let eps: Vec<&str> = lab.eps.iter().map(String::as_str).collect();
    assert_nothing_left(lab.sb.host(), &lab.net, &eps);
    // The host still reaches the internet over the uplink.
    assert_ping(lab.sb.host(), INTERNET_IP);
}

#[test]
fn bad_nat_settings_are_refused_naming_the_field() {
    let sb = Sandbox::new("natbad");
    let _internet = Internet::new(&sb);
    let net = sb.net_name();
    let ns = sb.ns("a");
    let base = format!("[network]\nname = \"{net}\"\nsubnet = \"{SUBNET}\"\n");
    let ep = format!("[[endpoint]]\nnetns = \"{ns}\"\n");
    let cases = [
        (
            format!("{base}uplink = \"{UPLINK}\"\n[nat]\nport_min = 40000\nport_max = 50000\n{ep}"),
            "nat.port_min",
        ),
        (
            format!("{base}uplink = \"{UPLINK}\"\n[nat]\nport_min = 64000\nport_max = 63000\n{ep}"),
            "nat.port_min",
        ),
        (
            format!("{base}uplink = \"nosuchif\"\n{ep}"),
            "network.uplink",
        ),
        (
            format!("{base}uplink = \"averyveryverylongname\"\n{ep}"),
            "network.uplink",
        ),
        (
            format!("{base}uplink = \"{UPLINK}\"\n[nat.timeouts]\ntcp_established = 0\n{ep}"),
            "nat.timeouts.tcp_established",
        ),
    ];
    for (text, field) in cases {
        let path = sb.write_config(&text);
        let out = sb.netfwd(&[std::ffi::OsStr::new("up"), "-c".as_ref(), path.as_os_str()]);
        let line = netfwd_tests::assert_bad_input(&out, field);
        assert!(line.contains(field), "{}", describe("netfwd up", &out));
        assert_nothing_left(sb.host(), &net, &[&ns]);
    }
}

#[test]
fn a_large_udp_datagram_and_its_large_reply_cross_the_nat_in_fragments() {
    let lab = shared_nat_lab();
    large_udp_echo_in_fragments(&lab, INTERNET_IP, UPLINK_IP);
}

/// The IPv6 twin: the endpoint's stack and the internet's fragment with a
/// fragment header (routers never fragment IPv6), which crosses NAT66 both
/// ways as IPv4's fragments cross the NAT.
#[test]
fn over_ipv6_a_large_udp_datagram_and_its_large_reply_cross_the_nat_in_fragments() {
    let lab = shared_nat_lab6();
    large_udp_echo_in_fragments(&lab, INTERNET_IP6, UPLINK_IP6);
}

/// An 8000-byte UDP datagram from the first endpoint, larger than every
/// MTU on its way, reaches the echo server at `internet_ip` as `uplink_ip`,
/// and its echo comes back whole: both cross in fragments, each translated
/// by the BPF NAT (none dropped, none left to the host).
fn large_udp_echo_in_fragments(lab: &Lab<Internet>, internet_ip: &'static str, uplink_ip: &str) {
    let (endpoint_before, uplink_before, unsupported_before) = (
        lab.counter("endpoint", "translated"),
        lab.counter("uplink", "translated"),
        lab.counter("endpoint", "unsupported"),
    );
    let data = payload("frag", 8000);
    let seen = in_netns(&lab.eps[0], move || {
        udp_echo(internet_ip, ECHO_PORT, 48000, &data)
    })
    .expect("the UDP echo in fragments");
    assert_eq!(ip_of(&seen), uplink_ip);
    // Six fragments of at most 1500 bytes each way.
    assert!(lab.counter("endpoint", "translated") >= endpoint_before + 6);
    assert!(lab.counter("uplink", "translated") >= uplink_before + 6);
    assert_eq!(lab.counter("endpoint", "unsupported"), unsupported_before);
}

#[test]
fn after_a_resize_new_flows_go_into_the_new_table() {
    let lab = nat_lab("natresize", "[nat]\nmax_flows = 2048\n");
    let ep = lab.eps[0].clone();
    let inside = |sport: u16| format!("{}:{sport}", IPS[0]);
    let in_list = |sport: u16| lab.flows().iter().any(|f| f["inside"] == inside(sport));
    let (ns, sport) = (ep.clone(), 40100);
    in_netns(&ns, move || {
        udp_echo(INTERNET_IP, ECHO_PORT, sport, b"before")
    })
    .unwrap();
    assert!(in_list(40100));

    let text = std::fs::read_to_string(&lab.config).unwrap();
    let resized = text.replace("max_flows = 2048", "max_flows = 4096");
    std::fs::write(&lab.config, resized).unwrap();
    lab.sb.up_file(&lab.config);
    let status = lab.sb.network_status(&lab.net);
    assert_eq!(
        status["nat"]["max_flows"].as_u64(),
        Some(4096),
        "{status:#}"
    );

    // The datapath uses the table netfwd reads: a flow made now is listed.
    let (ns, sport) = (ep, 40101);
    let seen = in_netns(&ns, move || {
        udp_echo(INTERNET_IP, ECHO_PORT, sport, b"after")
    })
    .unwrap();
    assert_eq!(ip_of(&seen), UPLINK_IP);
    assert!(
        in_list(40101),
        "the flow made after the resize is not in the table: {:#?}",
        lab.flows()
    );
}

#[test]
fn a_datagram_too_big_for_the_uplink_leaves_translated_in_fragments_never_untranslated() {
    let lab = nat_lab("natmtu", "");
    // Endpoints at 1500, the uplink's link at 1400 on both ends.
    tool_ok(
        "ip",
        &["-n", lab.sb.host(), "link", "set", UPLINK, "mtu", "1400"],
    );
    tool_ok(
        "ip",
        &[
            "-n",
            &lab.internet.ns,
            "link",
            "set",
            "inet0",
            "mtu",
            "1400",
        ],
    );
    let out = lab.sb.up_file(&lab.config);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("above uplink up0's 1400"), "{said}");

    // Everything that crosses the wire meanwhile.
    let capture = lab.sb.write_config("");
    let capture = capture.with_extension("pcap");
    let mut tcpdump = nsenter_net(&lab.internet.ns)
        .args(["--"])
        .args(["tcpdump", "-i", "inet0", "-n", "-U", "-w"])
        .arg(&capture)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // tcpdump makes the file once it captures.
    let started = Instant::now();
    while !capture.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "tcpdump never started capturing"
        );
        thread::sleep(Duration::from_millis(50));
    }

    // DF clear: fragmented on the way out, translated first.
    let ping = |df: &str| {
        nsenter_net(&lab.eps[0])
            .args([
                "--",
                "ping",
                "-c",
                "2",
                "-W",
                "2",
                "-M",
                df,
                "-s",
                "1460",
                INTERNET_IP,
            ])
            .output()
            .unwrap()
    };
    let dont = ping("dont");
    assert!(dont.status.success(), "{}", describe("ping -M dont", &dont));
    // DF set: "fragmentation needed" back to the endpoint, nothing sent on.
    let df = ping("do");
    assert!(!df.status.success());
    let said = String::from_utf8_lossy(&df.stdout);
    assert!(
        said.contains("mtu = 1400"),
        "{}",
        describe("ping -M do", &df)
    );

    // Every packet is written as it comes (-U): stop it once they came.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tcpdump.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    tcpdump.wait().unwrap();
    let read = |filter: &str| {
        let mut args = vec!["-r", capture.to_str().unwrap(), "-n"];
        args.extend(filter.split_whitespace());
        tool_ok("tcpdump", &args).lines().count()
    };
    assert_eq!(
        read("src net 192.168.28.0/24"),
        0,
        "an endpoint's address left the uplink"
    );
    assert!(
        read(&format!("src host {UPLINK_IP} and ip[6:2] & 0x3fff != 0")) >= 4,
        "no translated fragments left the uplink:\n{}",
        tool_ok("tcpdump", &["-r", capture.to_str().unwrap(), "-n", "-v"])
    );
}

/// A blind RST spray across every NAT port, from the very remote address
/// and port a stream talks to, with random sequence numbers: a RST counts
/// only within the window past what the endpoint acknowledged, so the
/// stream's flow stays established on its port (it used to turn `closing`,
/// its port free for the taking) and the stream goes on.
#[test]
fn a_blind_rst_spray_neither_closes_a_flow_nor_frees_its_port() {
    let lab = nat_lab("rstspray", "");
    let mut stream = EchoStream::start(&lab.eps[0]);
    let stream_flow = || {
        let flows = lab.sb.nat_flows(&lab.net);
        flows
            .into_iter()
            .find(|f| f["protocol"] == "tcp" && f["remote"] == format!("{INTERNET_IP}:{ECHO_PORT}"))
            .expect("the stream's flow")
    };
    let before = stream_flow();
    assert_eq!(before["state"], "established", "{before:#}");
    let frames = format!(
        "[Ether(dst='{}')/IP(src='{INTERNET_IP}', dst='{UPLINK_IP}')\
         /TCP(sport={ECHO_PORT}, dport=p, flags='R', seq=RandInt()) for p in range(61000, 65536)]",
        lab.sb.uplink_mac()
    );
    scapy_sendp(&lab.internet.ns, "inet0", &frames, 1);
    let after = stream_flow();
    assert_eq!(after["state"], "established", "{after:#}");
    assert_eq!(after["outside"], before["outside"]);
    stream.advances();
    stream.stop().unwrap();
}
