//! Seed 002 across hosts: sandbox hosts A and B, each with netfwd and its own
//! endpoint subnet, and a plain host C, all on one 192.0.2.0/24 link (a
//! switch namespace of the lab's own). Endpoints reach the other host's
//! endpoints by address, without NAT; C reaches A's endpoints through a
//! route via A; A's endpoints still reach the internet through SNAT. Each
//! test has its IPv6 twin on the same labs, the networks dual-stack and
//! their IPv6 prefixes peered over the LAN's IPv6 (`Family`). The tests
//! that leave the labs as they found them share one pair of bridge hosts a
//! family (`Family::bridged`); `routed` and `down` build their own.

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use netfwd_tests::{
    Lab, assert_no_bridge_and_no_rules, assert_nothing_left, assert_ping,
    internet::{
        ECHO_PORT, EchoServer, INTERNET_IP, INTERNET_IP6, Internet, UPLINK_IP, UPLINK_IP6,
        in_netns, ip_of, tcp_echo,
    },
    lab::named,
    payload, scapy_sendp,
    shared::{Lent, SharedLab},
    switch::Switch,
    tool_ok, uplink_drops,
};

/// One family's addresses in the labs: the hosts' on the LAN, and each
/// host's endpoint subnet and endpoint. IPv6's go beside IPv4's: the
/// networks dual-stack (`subnet6`), the hosts' LAN links with both.
struct Family {
    /// `[network]` lines of A's and B's networks.
    a_keys: &'static str,
    b_keys: &'static str,
    a_subnet: &'static str,
    b_subnet: &'static str,
    a_lan: &'static str,
    b_lan: &'static str,
    c_lan: &'static str,
    a_ep: &'static str,
    b_ep: &'static str,
    /// The internet namespace's echo server and the address the host
    /// masquerades behind.
    internet: &'static str,
    uplink: &'static str,
    /// scapy's network layer and echo request of the family.
    scapy_ip: &'static str,
    scapy_echo: &'static str,
    /// The family's shared bridge hosts.
    bridged: fn() -> Lent<TwoHosts>,
}

/// The seed's IPv4, the LAN on 192.0.2.0/24.
const V4: Family = Family {
    a_keys: "",
    b_keys: "",
    a_subnet: "10.0.1.0/24",
    b_subnet: "10.0.2.0/24",
    a_lan: LAN4[0],
    b_lan: LAN4[1],
    c_lan: LAN4[2],
    a_ep: "10.0.1.2",
    b_ep: "10.0.2.2",
    internet: INTERNET_IP,
    uplink: UPLINK_IP,
    scapy_ip: "IP",
    scapy_echo: "ICMP()",
    bridged: || BRIDGED4.get(|| TwoHosts::new("xs", "bridge", &V4)),
};

/// Its IPv6 twin: each network's prefix routed to the other host, the LAN
/// on 2001:db8:1::/64 (IPv4 stays on the LAN: `lan` needs an address of it).
const V6: Family = Family {
    a_keys: "subnet6 = \"fd00:1::/64\"\n",
    b_keys: "subnet6 = \"fd00:2::/64\"\n",
    a_subnet: "fd00:1::/64",
    b_subnet: "fd00:2::/64",
    a_lan: "2001:db8:1::11",
    b_lan: "2001:db8:1::12",
    c_lan: "2001:db8:1::13",
    a_ep: "fd00:1::2",
    b_ep: "fd00:2::2",
    internet: INTERNET_IP6,
    uplink: UPLINK_IP6,
    scapy_ip: "IPv6",
    scapy_echo: "ICMPv6EchoRequest()",
    bridged: || BRIDGED6.get(|| TwoHosts::new("xs6", "bridge", &V6)),
};

/// Bridge hosts of each family, shared by the tests that change nothing
/// for good (see `netfwd_tests::shared`).
static BRIDGED4: SharedLab<TwoHosts> = SharedLab::new();
static BRIDGED6: SharedLab<TwoHosts> = SharedLab::new();

/// The hosts' IPv4 addresses on the LAN: A, B, C.
const LAN4: [&str; 3] = ["192.0.2.11", "192.0.2.12", "192.0.2.13"];

/// Hosts A (with the internet behind its uplink) and B, each with its own
/// network and endpoint, and the plain host C, on one LAN.
struct TwoHosts {
    a: Lab<Internet>,
    b: Lab,
    c: String,
    /// The LAN, kept for the labs' lifetime.
    _switch: Switch,
    a_ep: String,
    b_ep: String,
}

impl TwoHosts {
    /// With `f`'s subnets peered (over `f`'s family), networks of `kind`.
    fn new(tag: &str, kind: &str, f: &Family) -> TwoHosts {
        // Each host's network on the LAN, with the other's subnet as a peer.
        let peer =
            |subnet: &str, via: &str| format!("[[peer]]\nsubnet = \"{subnet}\"\nvia = \"{via}\"\n");
        // On the LAN at its IPv4 address and, for IPv6, at `f`'s too.
        let plug = |switch: &Switch, host: &str, i: usize, addr: &str, port: &str| {
            switch.plug(host, LAN4[i], port);
            if addr != LAN4[i] {
                switch.add_addr6(host, addr);
            }
        };
        let (a, (switch, c)) = Lab::builder(&format!("{tag}a"), "10.0.1.0/24")
            .uplink()
            .kind(kind)
            .keys(&format!("lan = \"lan0\"\n{}", f.a_keys))
            .tables(&peer(f.b_subnet, f.b_lan))
            .endpoint("ep", Some("10.0.1.2"))
            .up_with(|sb| {
                let switch = Switch::new(&sb.ns("sw"));
                let c = sb.ns("c");
                tool_ok("ip", &["netns", "add", &c]);
                plug(&switch, sb.host(), 0, f.a_lan, "p0");
                plug(&switch, &c, 2, f.c_lan, "p2");
                tool_ok(
                    "ip",
                    &["-n", &c, "route", "add", f.a_subnet, "via", f.a_lan],
                );
                (switch, c)
            });
        let (b, ()) = Lab::builder(&format!("{tag}b"), "10.0.2.0/24")
            .kind(kind)
            .keys(&format!("lan = \"lan0\"\n{}", f.b_keys))
            .tables(&peer(f.a_subnet, f.a_lan))
            .endpoint("ep", Some("10.0.2.2"))
            .up_with(|sb| plug(&switch, sb.host(), 1, f.b_lan, "p1"));
        let [a_ep] = named(a.eps.clone());
        let [b_ep] = named(b.eps.clone());
        TwoHosts {
            a,
            b,
            c,
            _switch: switch,
            a_ep,
            b_ep,
        }
    }
}

netfwd_tests::family_twins! {
    endpoints_on_two_hosts_reach_each_other_by_their_own_addresses,
    endpoints_on_two_hosts_reach_each_other_by_their_own_ipv6_addresses:
        reach_each_other_by_their_own_addresses("x");
    a_plain_host_routing_via_a_reaches_as_endpoints_and_gets_answers,
    a_plain_host_routing_via_a_reaches_as_endpoints_over_ipv6:
        plain_host_reaches_as_endpoints("xc");
    as_endpoints_still_reach_the_internet_through_snat,
    as_endpoints_still_reach_the_internet_through_nat66:
        reach_the_internet_through_nat("xi");
    down_on_each_host_leaves_nothing_and_no_route_to_the_peer,
    down_on_each_host_leaves_nothing_and_no_ipv6_route_to_the_peer:
        down_leaves_no_route_to_the_peer("xd");
    a_peers_or_lan_hosts_address_arriving_on_the_uplink_is_not_trusted,
    a_peers_or_lan_hosts_ipv6_address_arriving_on_the_uplink_is_not_trusted:
        untrusted_on_the_uplink("xt");
}

fn exchange(from: &str, to_ip: &'static str) -> String {
    let data = payload(from, 5000);
    in_netns(from, move || tcp_echo(to_ip, ECHO_PORT, None, &data)).unwrap()
}

fn reach_each_other_by_their_own_addresses(tag: &str, f: &Family) {
    reach_each_other_on(&(f.bridged)(), "bridge", f);
    reach_each_other_on(&TwoHosts::new(&format!("{tag}r"), "routed", f), "routed", f);
}

/// Endpoints on `lab`'s two hosts (networks of `kind`) reach each other by
/// their own addresses.
fn reach_each_other_on(lab: &TwoHosts, kind: &str, f: &Family) {
    assert_ping(&lab.a_ep, f.b_ep);
    assert_ping(&lab.b_ep, f.a_ep);
    let seen = seen_by(&lab.b_ep, f.b_ep, &lab.a_ep);
    assert_eq!(seen, f.a_ep, "{kind}: B saw a NATed source");
    assert_eq!(seen_by(&lab.a_ep, f.a_ep, &lab.b_ep), f.b_ep, "{kind}");
    assert_no_bridge_and_no_rules(lab.a.sb.host());
    assert_no_bridge_and_no_rules(lab.b.sb.host());
}

/// The address a server at `ip` in `server` sees `client`'s TCP come from.
fn seen_by(server: &str, ip: &'static str, client: &str) -> String {
    let _server = EchoServer::start(server, ip, ECHO_PORT);
    ip_of(&exchange(client, ip)).to_owned()
}

fn plain_host_reaches_as_endpoints(_tag: &str, f: &Family) {
    let lab = (f.bridged)();
    assert_ping(&lab.c, f.a_ep);
    let seen = seen_by(&lab.a_ep, f.a_ep, &lab.c);
    assert_eq!(seen, f.c_lan, "the endpoint saw C as itself");
}

fn reach_the_internet_through_nat(_tag: &str, f: &Family) {
    let lab = (f.bridged)();
    assert_ping(&lab.a_ep, f.internet);
    let (internet, data) = (f.internet, payload("x", 3000));
    let seen = in_netns(&lab.a_ep, move || {
        tcp_echo(internet, ECHO_PORT, None, &data)
    })
    .unwrap();
    assert_eq!(ip_of(&seen), f.uplink);
    // The internet namespace is no peer and not the LAN: it cannot get in.
    tool_ok(
        "ip",
        &[
            "-n",
            &lab.a.internet.ns,
            "route",
            "add",
            f.a_subnet,
            "via",
            f.uplink,
        ],
    );
    assert!(!netfwd_tests::ping(&lab.a.internet.ns, f.a_ep));
    // The shared lab as it was.
    tool_ok(
        "ip",
        &["-n", &lab.a.internet.ns, "route", "del", f.a_subnet],
    );
}

fn down_leaves_no_route_to_the_peer(tag: &str, f: &Family) {
    let lab = TwoHosts::new(tag, "bridge", f);
    assert_ping(&lab.a_ep, f.b_ep);
    lab.a.sb.netfwd_ok(&["down", "--name", &lab.a.net]);
    lab.b.sb.netfwd_ok(&["down", "--name", &lab.b.net]);
    assert_nothing_left(lab.a.sb.host(), &lab.a.net, &[&lab.a_ep]);
    assert_nothing_left(lab.b.sb.host(), &lab.b.net, &[&lab.b_ep]);
    for (host, peer) in [(lab.a.sb.host(), f.b_subnet), (lab.b.sb.host(), f.a_subnet)] {
        let routes = tool_ok("ip", &["-n", host, "route", "show", peer]);
        assert!(
            routes.trim().is_empty(),
            "{host} still routes {peer}: {routes}"
        );
    }
}

/// Trust comes from the interface, not the address: packets claiming a
/// peer's endpoint (10.0.2.2) or a LAN host (C) as their source, arriving
/// on A's uplink instead of its LAN, are the internet's, and the FORWARD
/// policy drops them; on the LAN they still get in.
fn untrusted_on_the_uplink(_tag: &str, f: &Family) {
    let lab = (f.bridged)();
    let (b_ep, c_lan, a_ep, ip, echo) = (f.b_ep, f.c_lan, f.a_ep, f.scapy_ip, f.scapy_echo);
    let frames = format!(
        "[Ether(dst='{mac}')/{ip}(src='{b_ep}', dst='{a_ep}')/UDP(sport=5000, dport=7)/b'x',\
         Ether(dst='{mac}')/{ip}(src='{c_lan}', dst='{a_ep}')/{echo}]",
        mac = lab.a.sb.uplink_mac()
    );
    // A difference: the shared lab's uplink dropped others' before.
    let policy = || uplink_drops(&lab.a.sb.network_status(&lab.a.net), "policy");
    let before = policy();
    let sent = scapy_sendp(&lab.a.internet.ns, "inet0", &frames, 5);
    let status = lab.a.sb.network_status(&lab.a.net);
    let policy = uplink_drops(&status, "policy") - before;
    assert_eq!(policy, sent, "{status:#}");
    assert_ping(&lab.c, a_ep);
    assert_ping(&lab.b_ep, a_ep);
}
