//! Seed 002 across hosts: sandbox hosts A and B, each with netfwd and its own
//! endpoint subnet, and a plain host C, all on one 192.0.2.0/24 link (a
//! switch namespace of the lab's own). Endpoints reach the other host's
//! endpoints by address, without NAT; C reaches A's endpoints through a
//! route via A; A's endpoints still reach the internet through SNAT.

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use netfwd_tests::{
    Lab, assert_no_bridge_and_no_rules, assert_nothing_left, assert_ping,
    internet::{
        ECHO_PORT, EchoServer, INTERNET_IP, Internet, UPLINK_IP, in_netns, ip_of, tcp_echo,
    },
    lab::named,
    payload, scapy_sendp,
    switch::Switch,
    tool_ok, uplink_drops,
};

const A_LAN: &str = "192.0.2.11";
const B_LAN: &str = "192.0.2.12";
const C_LAN: &str = "192.0.2.13";
const A_EP: &str = "10.0.1.2";
const B_EP: &str = "10.0.2.2";

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
    fn new(tag: &str, kind: &str) -> TwoHosts {
        // Each host's network on the LAN, with the other's subnet as a peer.
        let peer =
            |subnet: &str, via: &str| format!("[[peer]]\nsubnet = \"{subnet}\"\nvia = \"{via}\"\n");
        let (a, (switch, c)) = Lab::builder(&format!("{tag}a"), "10.0.1.0/24")
            .uplink()
            .kind(kind)
            .keys("lan = \"lan0\"\n")
            .tables(&peer("10.0.2.0/24", B_LAN))
            .endpoint("ep", Some(A_EP))
            .up_with(|sb| {
                let switch = Switch::new(&sb.ns("sw"));
                let c = sb.ns("c");
                tool_ok("ip", &["netns", "add", &c]);
                switch.plug(sb.host(), A_LAN, "p0");
                switch.plug(&c, C_LAN, "p2");
                tool_ok(
                    "ip",
                    &["-n", &c, "route", "add", "10.0.1.0/24", "via", A_LAN],
                );
                (switch, c)
            });
        let (b, ()) = Lab::builder(&format!("{tag}b"), "10.0.2.0/24")
            .kind(kind)
            .keys("lan = \"lan0\"\n")
            .tables(&peer("10.0.1.0/24", A_LAN))
            .endpoint("ep", Some(B_EP))
            .up_with(|sb| switch.plug(sb.host(), B_LAN, "p1"));
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

fn exchange(from: &str, to_ip: &'static str) -> String {
    let data = payload(from, 5000);
    in_netns(from, move || tcp_echo(to_ip, ECHO_PORT, None, &data)).unwrap()
}

#[test]
fn endpoints_on_two_hosts_reach_each_other_by_their_own_addresses() {
    for kind in ["bridge", "routed"] {
        let lab = TwoHosts::new(&format!("x{}", &kind[..1]), kind);
        assert_ping(&lab.a_ep, B_EP);
        assert_ping(&lab.b_ep, A_EP);
        let _on_b = EchoServer::start(&lab.b_ep, B_EP, ECHO_PORT);
        assert_eq!(
            ip_of(&exchange(&lab.a_ep, B_EP)),
            A_EP,
            "{kind}: B saw a NATed source"
        );
        let _on_a = EchoServer::start(&lab.a_ep, A_EP, ECHO_PORT);
        assert_eq!(ip_of(&exchange(&lab.b_ep, A_EP)), B_EP, "{kind}");
        assert_no_bridge_and_no_rules(lab.a.sb.host());
        assert_no_bridge_and_no_rules(lab.b.sb.host());
    }
}

#[test]
fn a_plain_host_routing_via_a_reaches_as_endpoints_and_gets_answers() {
    let lab = TwoHosts::new("xc", "bridge");
    assert_ping(&lab.c, A_EP);
    let _on_a = EchoServer::start(&lab.a_ep, A_EP, ECHO_PORT);
    assert_eq!(
        ip_of(&exchange(&lab.c, A_EP)),
        C_LAN,
        "the endpoint saw C as itself"
    );
}

#[test]
fn as_endpoints_still_reach_the_internet_through_snat() {
    let lab = TwoHosts::new("xi", "bridge");
    assert_ping(&lab.a_ep, INTERNET_IP);
    let data = payload("x", 3000);
    let seen = in_netns(&lab.a_ep, move || {
        tcp_echo(INTERNET_IP, ECHO_PORT, None, &data)
    })
    .unwrap();
    assert_eq!(ip_of(&seen), UPLINK_IP);
    // The internet namespace is no peer and not the LAN: it cannot get in.
    tool_ok(
        "ip",
        &[
            "-n",
            &lab.a.internet.ns,
            "route",
            "add",
            "10.0.1.0/24",
            "via",
            UPLINK_IP,
        ],
    );
    assert!(!netfwd_tests::ping(&lab.a.internet.ns, A_EP));
}

#[test]
fn down_on_each_host_leaves_nothing_and_no_route_to_the_peer() {
    let lab = TwoHosts::new("xd", "bridge");
    assert_ping(&lab.a_ep, B_EP);
    lab.a.sb.netfwd_ok(&["down", "--name", &lab.a.net]);
    lab.b.sb.netfwd_ok(&["down", "--name", &lab.b.net]);
    assert_nothing_left(lab.a.sb.host(), &lab.a.net, &[&lab.a_ep]);
    assert_nothing_left(lab.b.sb.host(), &lab.b.net, &[&lab.b_ep]);
    for (host, peer) in [
        (lab.a.sb.host(), "10.0.2.0/24"),
        (lab.b.sb.host(), "10.0.1.0/24"),
    ] {
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
#[test]
fn a_peers_or_lan_hosts_address_arriving_on_the_uplink_is_not_trusted() {
    let lab = TwoHosts::new("xt", "bridge");
    let frames = format!(
        "[Ether(dst='{mac}')/IP(src='{B_EP}', dst='{A_EP}')/UDP(sport=5000, dport=7)/b'x',\
         Ether(dst='{mac}')/IP(src='{C_LAN}', dst='{A_EP}')/ICMP()]",
        mac = lab.a.sb.uplink_mac()
    );
    let sent = scapy_sendp(&lab.a.internet.ns, "inet0", &frames, 5);
    let status = lab.a.sb.network_status(&lab.a.net);
    let policy = uplink_drops(&status, "policy");
    assert_eq!(policy, sent, "{status:#}");
    assert_ping(&lab.c, A_EP);
    assert_ping(&lab.b_ep, A_EP);
}
