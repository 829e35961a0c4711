//! Seed 002 on one host: `demo01` (10.0.1.2) and `demo02` (10.0.2.2), each
//! its own address behind a bare veth, the host as their router — a routed
//! network, forwarded in BPF with no `ip_forward` and no FORWARD rule. Each
//! test has its IPv6 twin on the same lab made dual-stack (`Family`): the
//! endpoints hold their IPv6 address alone as well, routed the same way.

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use netfwd_tests::{
    Lab, Sandbox, assert_no_bridge_and_no_rules, assert_ping, global_addrs, in_ns_ok, lab, payload,
    tcp_exchange,
};

/// One family's side of the lab.
struct Family {
    /// `[network]` lines that give the network the family.
    keys: &'static str,
    demo01: &'static str,
    demo02: &'static str,
    gateway: &'static str,
    /// `ip`'s option for the family.
    ip: &'static str,
    /// An endpoint's address's prefix length: the address alone.
    host_len: u8,
    /// The route an endpoint sends the others' packets by: on-link,
    /// through the gateway.
    route: &'static str,
    /// The host's sysctl that would have it forward the family.
    forwarding: &'static str,
}

const V4: Family = Family {
    keys: "",
    demo01: "10.0.1.2",
    demo02: "10.0.2.2",
    gateway: "10.0.0.1",
    ip: "-4",
    host_len: 32,
    route: "default",
    forwarding: "net.ipv4.ip_forward",
};

/// IPv6 beside the seed's IPv4: each endpoint the lowest free address of
/// the prefix, after the gateway's.
const V6: Family = Family {
    keys: "subnet6 = \"fd00:2::/64\"\n",
    demo01: "fd00:2::2",
    demo02: "fd00:2::3",
    gateway: "fd00:2::1",
    ip: "-6",
    host_len: 128,
    route: "fd00:2::/64",
    forwarding: "net.ipv6.conf.all.forwarding",
};

netfwd_tests::family_twins! {
    routed_endpoints_hold_only_their_own_address,
    routed_endpoints_hold_only_their_own_ipv6_address:
        hold_only_their_own_address("r2addr");
    routed_endpoints_ping_and_exchange_tcp_both_ways_one_hop_apart,
    routed_endpoints_ping_and_exchange_tcp_over_ipv6_one_hop_apart:
        ping_and_exchange_tcp_one_hop_apart("r2ping");
    the_host_reaches_both_routed_endpoints_without_forwarding_rules,
    the_host_reaches_both_routed_endpoints_over_ipv6_without_forwarding:
        host_reaches_both_without_forwarding("r2host");
}

/// A sandbox with a routed network of `demo01` and `demo02`, of `f`'s
/// family too.
fn routed(tag: &str, f: &Family) -> (Sandbox, String, String) {
    let Lab { sb, eps, .. } = Lab::builder(tag, "10.0.0.0/16")
        .kind("routed")
        .keys(f.keys)
        .endpoint("demo01", Some(V4.demo01))
        .endpoint("demo02", Some(V4.demo02))
        .up();
    let [a, b] = lab::named(eps);
    (sb, a, b)
}

fn hold_only_their_own_address(tag: &str, f: &Family) {
    let (_sb, a, _) = routed(tag, f);
    assert_eq!(
        global_addrs(&a, "eth0", f.ip),
        [format!("{}/{}", f.demo01, f.host_len)]
    );
    let route = in_ns_ok(&a, &["ip", f.ip, "route", "show", f.route]);
    assert!(route.contains("onlink"), "{route}");
    assert!(route.contains(&format!("via {}", f.gateway)), "{route}");
}

fn ping_and_exchange_tcp_one_hop_apart(tag: &str, f: &Family) {
    let (_sb, a, b) = routed(tag, f);
    assert_ping(&a, f.demo02);
    assert_ping(&b, f.demo01);
    // The hop limit, for IPv6: ping says `ttl` for both.
    let out = in_ns_ok(&a, &["ping", "-c", "1", "-W", "1", f.demo02]);
    assert!(out.contains("ttl=63"), "one hop through the host: {out}");
    tcp_exchange(&a, &b, f.demo02, 8002, &payload("ab", 70_000)).unwrap();
    tcp_exchange(&b, &a, f.demo01, 8001, &payload("ba", 70_000)).unwrap();
}

fn host_reaches_both_without_forwarding(tag: &str, f: &Family) {
    let (sb, a, b) = routed(tag, f);
    assert_ping(sb.host(), f.demo01);
    assert_ping(sb.host(), f.demo02);
    tcp_exchange(sb.host(), &a, f.demo01, 8003, b"host to demo01").unwrap();
    tcp_exchange(&b, sb.host(), f.gateway, 8004, b"demo02 to the host").unwrap();
    let forward = in_ns_ok(sb.host(), &["sysctl", "-n", f.forwarding]);
    assert_eq!(forward.trim(), "0", "routing needs no {}", f.forwarding);
    assert_no_bridge_and_no_rules(sb.host());
}
