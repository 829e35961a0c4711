//! Seed 002 on one host: `demo01` (10.0.1.2) and `demo02` (10.0.2.2), each
//! its own address behind a bare veth, the host as their router — a routed
//! network, forwarded in BPF with no `ip_forward` and no FORWARD rule.

use netfwd_tests::{
    Lab, Sandbox, assert_no_bridge_and_no_rules, assert_ping, in_ns_ok, ipv4_addrs, lab, payload,
    tcp_exchange,
};

const DEMO01: &str = "10.0.1.2";
const DEMO02: &str = "10.0.2.2";

/// A sandbox with a routed network of `demo01` and `demo02`.
fn routed(tag: &str) -> (Sandbox, String, String) {
    let Lab { sb, eps, .. } = Lab::builder(tag, "10.0.0.0/16")
        .kind("routed")
        .endpoint("demo01", Some(DEMO01))
        .endpoint("demo02", Some(DEMO02))
        .up();
    let [a, b] = lab::named(eps);
    (sb, a, b)
}

#[test]
fn routed_endpoints_hold_only_their_own_address() {
    let (_sb, a, _) = routed("r2addr");
    assert_eq!(ipv4_addrs(&a, "eth0"), [format!("{DEMO01}/32")]);
    let route = in_ns_ok(&a, &["ip", "route", "show", "default"]);
    assert!(route.contains("onlink"), "{route}");
}

#[test]
fn routed_endpoints_ping_and_exchange_tcp_both_ways_one_hop_apart() {
    let (_sb, a, b) = routed("r2ping");
    assert_ping(&a, DEMO02);
    assert_ping(&b, DEMO01);
    let out = in_ns_ok(&a, &["ping", "-c", "1", "-W", "1", DEMO02]);
    assert!(out.contains("ttl=63"), "one hop through the host: {out}");
    tcp_exchange(&a, &b, DEMO02, 8002, &payload("ab", 70_000)).unwrap();
    tcp_exchange(&b, &a, DEMO01, 8001, &payload("ba", 70_000)).unwrap();
}

#[test]
fn the_host_reaches_both_routed_endpoints_without_forwarding_rules() {
    let (sb, a, b) = routed("r2host");
    assert_ping(sb.host(), DEMO01);
    assert_ping(sb.host(), DEMO02);
    tcp_exchange(sb.host(), &a, DEMO01, 8003, b"host to demo01").unwrap();
    tcp_exchange(&b, sb.host(), "10.0.0.1", 8004, b"demo02 to the host").unwrap();
    let forward = in_ns_ok(sb.host(), &["sysctl", "-n", "net.ipv4.ip_forward"]);
    assert_eq!(forward.trim(), "0", "routing needs no ip_forward");
    assert_no_bridge_and_no_rules(sb.host());
}
