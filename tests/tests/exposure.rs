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
/// `keys` in its `[network]`.
fn two_endpoints(tag: &str, keys: &str) -> (Lab<Internet>, String, String) {
    let lab = Lab::builder(tag, "10.96.0.0/24")
        .uplink()
        .gateway(GATEWAY)
        .keys(keys)
        .endpoint("a", Some(A))
        .endpoint("b", Some(B))
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

/// What a router advertisement would change in namespace `ns` if it were
/// taken: the IPv6 routes (every table) and addresses, the neighbours
/// marked as routers, and what an advertisement sets on an interface (hop
/// limit, MTU, neighbour timers) beside the switches that let it.
fn router_config(ns: &str) -> String {
    // Link-local addresses of links just up are still being checked for
    // duplicates; their routes come when that ends.
    eventually(
        "duplicate address detection",
        Duration::from_secs(5),
        || {
            in_ns_ok(ns, &["ip", "-6", "addr", "show", "tentative"])
                .trim()
                .is_empty()
        },
    );
    let routes = in_ns_ok(ns, &["ip", "-6", "route", "show", "table", "all"]);
    let addrs = in_ns_ok(ns, &["ip", "-6", "-o", "addr", "show"]);
    // A neighbour's state moves on its own; whether it is a router does not.
    let neighbours = in_ns_ok(ns, &["ip", "-6", "neigh", "show"]);
    let routers: Vec<&str> = neighbours
        .lines()
        .filter(|l| l.contains(" router"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let settings = in_ns_ok(
        ns,
        &[
            "sh",
            "-c",
            "cd /proc/sys/net/ipv6 && grep -H . conf/*/hop_limit conf/*/mtu conf/*/accept_ra \
             conf/*/autoconf neigh/*/base_reachable_time_ms neigh/*/retrans_time_ms",
        ],
    );
    format!("{routes}\n{addrs}\nrouters {routers:?}\n{settings}")
}

/// One RA from inside an endpoint gave the host a default IPv6 route
/// through it and a SLAAC address; now it changes nothing of the host's
/// or of the other endpoint's (which it never reaches: nothing is flooded),
/// and it is counted. `keys` make the network dual-stack, or not.
fn a_router_advertisement_from_an_endpoint_changes_nothing(tag: &str, keys: &str) {
    let (lab, a, b) = two_endpoints(tag, keys);
    let host = lab.sb.host();
    let a_mac = mac_of(&lab, &a, "mac");
    // A sends only the advertisements: its own router solicitations would
    // be counted with them.
    in_ns_ok(
        &a,
        &["sysctl", "-qw", "net.ipv6.conf.eth0.router_solicitations=0"],
    );
    // Its prefix is the dual-stack network's own: taken, it would put A's
    // peers on-link.
    let ra = format!(
        "Ether(src='{a_mac}', dst='33:33:00:00:00:01')/IPv6(src='fe80::bad', dst='ff02::1')\
         /ICMPv6ND_RA(chlim=7, routerlifetime=1800, reachabletime=12345, retranstimer=2345)\
         /ICMPv6NDOptSrcLLAddr(lladdr='{a_mac}')/ICMPv6NDOptMTU(mtu=1280)\
         /ICMPv6NDOptPrefixInfo(prefix='2001:db8:96::', prefixlen=64)"
    );
    let (host_before, b_before) = (router_config(host), router_config(&b));
    let counted = || drops(&lab.sb.network_status(&lab.net), &a, "router_message");
    let before = counted();
    let sent = scapy_sendp(&a, "eth0", &ra, 3);
    // SLAAC and route installation are immediate on receipt; give the
    // stack a moment anyway before looking.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(router_config(host), host_before, "the host changed");
    assert_eq!(router_config(&b), b_before, "the other endpoint changed");
    assert_eq!(
        counted(),
        before + sent,
        "the advertisements were not counted"
    );
}

#[test]
fn a_router_advertisement_from_an_endpoint_configures_nothing_on_the_host() {
    a_router_advertisement_from_an_endpoint_changes_nothing("rogue-ra", "");
}

/// The same in a dual-stack network, where the endpoints' IPv6 is the
/// datapath's (`v6`) and not only the host's.
#[test]
fn a_router_advertisement_in_a_dual_stack_network_changes_no_endpoint_and_nothing_of_the_hosts() {
    a_router_advertisement_from_an_endpoint_changes_nothing(
        "rogue-ra6",
        "subnet6 = \"2001:db8:96::/64\"\n",
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
