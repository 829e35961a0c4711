//! What a hostile endpoint or a stranger on the internet can no longer do
//! to the host and its neighbours (docs/security.md): configure the host's
//! IPv6 with a router advertisement, send a VLAN tag or a private source
//! out of the host, reach a published port with an internal source, or
//! lock the neighbours out of the NAT with unanswered datagrams. Frames
//! are forged with scapy.

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use std::time::Duration;

use netfwd_tests::{
    Lab, assert_ping, drops, endpoint, eventually, in_ns_ok,
    internet::{ECHO_PORT, EchoServer, INTERNET_IP, Internet, UPLINK_IP, in_netns, tcp_echo},
    lab, payload, scapy_sendp, snmp_counter, tool_ok,
};

const A: &str = "10.96.0.2";
const B: &str = "10.96.0.3";
const GATEWAY: &str = "10.96.0.1";

/// A network with endpoints A and B behind an uplink to the internet, with
/// `tables` in its config.
fn two_endpoints(tag: &str, tables: &str) -> (Lab<Internet>, String, String) {
    let lab = Lab::builder(tag, "10.96.0.0/24")
        .uplink()
        .gateway(GATEWAY)
        .endpoint("a", Some(A))
        .endpoint("b", Some(B))
        .tables(tables)
        .up();
    let [a, b] = lab::named(lab.eps.clone());
    (lab, a, b)
}

fn mac_of(lab: &Lab<Internet>, ns: &str, field: &str) -> String {
    endpoint(&lab.sb.network_status(&lab.net), ns)[field]
        .as_str()
        .unwrap()
        .to_owned()
}

/// One RA from inside an endpoint gave the host a default IPv6 route
/// through it and a SLAAC address; now neither, and it is counted.
#[test]
fn a_router_advertisement_from_an_endpoint_configures_nothing_on_the_host() {
    let (lab, a, _b) = two_endpoints("rogue-ra", "");
    let host = lab.sb.host();
    let ra = "Ether(dst='33:33:00:00:00:01')/IPv6(src='fe80::bad', dst='ff02::1')\
              /ICMPv6ND_RA(routerlifetime=1800)\
              /ICMPv6NDOptPrefixInfo(prefix='2001:db8:96::', prefixlen=64)";
    // The endpoint's own stack solicits routers too: count from here.
    let counted = || drops(&lab.sb.network_status(&lab.net), &a, "router_message");
    let before = counted();
    scapy_sendp(&a, "eth0", ra, 3);
    // SLAAC and route installation are immediate on receipt; give the
    // stack a moment anyway before looking.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let routes = tool_ok("ip", &["-n", host, "-6", "route", "show", "default"]);
    assert!(
        routes.trim().is_empty(),
        "a default route appeared: {routes}"
    );
    let addrs = tool_ok("ip", &["-n", host, "-6", "addr", "show", "scope", "global"]);
    assert!(
        !addrs.contains("2001:db8:96"),
        "an address appeared: {addrs}"
    );
    assert!(
        counted() >= before + 3,
        "the advertisements were not counted"
    );
}

/// Every way a packet with an endpoint's source could leave the host
/// untranslated: a VLAN tag, an address of the subnet no endpoint holds,
/// the subnet's broadcast, and an interface of the host other than the
/// uplink. None arrives; each is counted. A plain datagram to the internet
/// (the positive control) arrives, translated.
#[test]
fn an_endpoints_packet_leaves_the_host_only_translated() {
    let (lab, a, _b) = two_endpoints("ways-out", "");
    let host = lab.sb.host();
    let inet = lab.internet.ns.clone();
    let inet = &inet;
    // Another interface of the host, to a namespace of its own, with a
    // host route to an address beyond it.
    let other_ns = lab.sb.precreated_ns("other");
    let other = other_ns.name().to_owned();
    tool_ok(
        "ip",
        &[
            "-n", host, "link", "add", "side0", "type", "veth", "peer", "name", "side1", "netns",
            &other,
        ],
    );
    tool_ok(
        "ip",
        &["-n", host, "addr", "add", "198.51.100.2/24", "dev", "side0"],
    );
    tool_ok("ip", &["-n", host, "link", "set", "side0", "up"]);
    tool_ok(
        "ip",
        &[
            "-n",
            &other,
            "addr",
            "add",
            "198.51.100.9/24",
            "dev",
            "side1",
        ],
    );
    tool_ok("ip", &["-n", &other, "link", "set", "side1", "up"]);
    tool_ok(
        "ip",
        &[
            "-n",
            host,
            "route",
            "add",
            "192.0.2.77/32",
            "via",
            "198.51.100.9",
        ],
    );
    let a_mac = mac_of(&lab, &a, "mac");
    let gw_mac = mac_of(&lab, &a, "host_mac");
    let udp = |dst: &str| {
        format!(
            "Ether(src='{a_mac}', dst='{gw_mac}')/IP(src='{A}', dst='{dst}')/UDP(sport=4000, dport=9)"
        )
    };
    let seen_inet = || snmp_counter(inet, "Ip", "InReceives");
    let seen_other = || snmp_counter(&other, "Ip", "InReceives");
    let (inet_before, other_before) = (seen_inet(), seen_other());

    let tagged = format!(
        "Ether(src='{a_mac}', dst='{gw_mac}')/Dot1Q(vlan=5)/IP(src='{A}', dst='{INTERNET_IP}')/UDP(sport=4000, dport=9)"
    );
    scapy_sendp(&a, "eth0", &tagged, 2);
    scapy_sendp(&a, "eth0", &udp("10.96.0.77"), 2);
    scapy_sendp(&a, "eth0", &udp("10.96.0.255"), 2);
    scapy_sendp(&a, "eth0", &udp("198.51.100.9"), 2);
    scapy_sendp(&a, "eth0", &udp("192.0.2.77"), 2);
    // The positive control, sent last on the same path: once it arrived,
    // whatever went before it had its chance.
    scapy_sendp(&a, "eth0", &udp(INTERNET_IP), 2);
    eventually("the positive control", Duration::from_secs(10), || {
        seen_inet() >= inet_before + 2
    });
    assert_eq!(
        seen_inet(),
        inet_before + 2,
        "something reached the internet"
    );
    assert_eq!(
        seen_other(),
        other_before,
        "something left by another interface"
    );
    let status = lab.sb.network_status(&lab.net);
    assert_eq!(drops(&status, &a, "vlan_tagged"), 2);
    assert_eq!(drops(&status, &a, "no_endpoint"), 4);
    assert_eq!(drops(&status, &a, "not_uplink"), 4);
}

/// From the internet, datagrams to a published port with the gateway's or
/// a sibling's address as source reach nothing (the service's answer would
/// go to the sibling); a real client's do.
#[test]
fn internal_sources_from_the_internet_never_reach_a_published_port() {
    let lab = Lab::builder("martian", "10.96.0.0/24")
        .uplink()
        .gateway(GATEWAY)
        .endpoint("a", Some(A))
        .endpoint("b", Some(B))
        .publish("udp", 30053, 0, 53)
        .up();
    let [a, _b] = lab::named(lab.eps.clone());
    let inet = lab.internet.ns.clone();
    let inet = &inet;
    let _server = EchoServer::start(&a, A, 53);
    let received = || snmp_counter(&a, "Udp", "InDatagrams");
    let before = received();
    for src in [GATEWAY, B, UPLINK_IP, "127.0.0.1"] {
        let frame =
            format!("Ether()/IP(src='{src}', dst='{UPLINK_IP}')/UDP(sport=5000, dport=30053)/'x'");
        scapy_sendp(inet, "inet0", &frame, 2);
    }
    // A real client's datagram last: once it arrived, the martians before
    // it had their chance.
    let frame = format!(
        "Ether()/IP(src='{INTERNET_IP}', dst='{UPLINK_IP}')/UDP(sport=5000, dport=30053)/'x'"
    );
    scapy_sendp(inet, "inet0", &frame, 1);
    eventually("a real client's datagram", Duration::from_secs(10), || {
        received() > before
    });
    assert_eq!(received(), before + 1, "a martian reached the server");
    assert_eq!(lab.counter("uplink", "martian_source"), 8);
}

/// With a 256-flow table, 600 unanswered datagrams from the internet to a
/// published port, and 600 from one endpoint to an address that never
/// answers, leave the neighbour's new TCP connections working: each flood
/// is held to its share and gives up its oldest flows.
#[test]
fn unanswered_datagrams_do_not_lock_the_neighbours_out_of_the_nat() {
    let lab = Lab::builder("flood", "10.96.0.0/24")
        .uplink()
        .gateway(GATEWAY)
        .endpoint("a", Some(A))
        .endpoint("b", Some(B))
        .publish("udp", 30053, 0, 53)
        .tables("[nat]\nmax_flows = 256\n")
        .up();
    let [a, b] = lab::named(lab.eps.clone());
    let inet = lab.internet.ns.clone();
    // Nothing listens on 53: the datagrams go unanswered (no ICMP either).
    in_ns_ok(
        &a,
        &["iptables", "-A", "OUTPUT", "-p", "icmp", "-j", "DROP"],
    );
    let flood = format!(
        "[Ether()/IP(src='{INTERNET_IP}', dst='{UPLINK_IP}')/UDP(sport=p, dport=30053) for p in range(20000, 20600)]"
    );
    scapy_sendp(&inet, "inet0", &flood, 1);
    let a_mac = mac_of(&lab, &a, "mac");
    let gw_mac = mac_of(&lab, &a, "host_mac");
    let silent = format!(
        "[Ether(src='{a_mac}', dst='{gw_mac}')/IP(src='{A}', dst='198.51.100.99')/UDP(sport=p, dport=9) for p in range(20000, 20600)]"
    );
    scapy_sendp(&a, "eth0", &silent, 1);
    let flows = lab.nat_flows().len();
    assert!(flows <= 256, "{flows} flows in a table of 256");
    let data = payload(&b, 1000);
    in_netns(&b, move || tcp_echo(INTERNET_IP, ECHO_PORT, None, &data))
        .expect("B's new connection");
    assert_ping(&b, INTERNET_IP);
    let refused =
        lab.counter("endpoint", "unreplied_share") + lab.counter("uplink", "unreplied_share");
    assert!(refused > 0, "neither flood was held to its share");
}
