//! Seed 002 on one host: `demo01` (10.0.1.2) and `demo02` (10.0.2.2), each
//! its own address behind a bare veth, the host as their router — a routed
//! network, forwarded in BPF with no `ip_forward` and no FORWARD rule.

use netfwd_tests::{
    NetConfig, Sandbox, assert_no_bridge_and_no_rules, assert_ping, in_ns_ok, ipv4_addrs, payload,
    tcp_exchange,
};

const DEMO01: &str = "10.0.1.2";
const DEMO02: &str = "10.0.2.2";

fn routed(sb: &Sandbox) -> (String, String, String) {
    let net = sb.net_name();
    let (a, b) = (sb.ns("demo01"), sb.ns("demo02"));
    let cfg = NetConfig::new(&net, "10.0.0.0/16", None)
        .endpoint(&a, Some(DEMO01))
        .endpoint(&b, Some(DEMO02));
    let path = sb.write_config(&cfg.to_toml().replacen(
        "[network]\n",
        "[network]\nkind = \"routed\"\n",
        1,
    ));
    sb.up_file(&path);
    (net, a, b)
}

#[test]
fn routed_endpoints_hold_only_their_own_address() {
    let sb = Sandbox::new("r2addr");
    let (_, a, _) = routed(&sb);
    assert_eq!(ipv4_addrs(&a, "eth0"), [format!("{DEMO01}/32")]);
    let route = in_ns_ok(&a, &["ip", "route", "show", "default"]);
    assert!(route.contains("onlink"), "{route}");
}

#[test]
fn routed_endpoints_ping_and_exchange_tcp_both_ways_one_hop_apart() {
    let sb = Sandbox::new("r2ping");
    let (_, a, b) = routed(&sb);
    assert_ping(&a, DEMO02);
    assert_ping(&b, DEMO01);
    let out = in_ns_ok(&a, &["ping", "-c", "1", "-W", "1", DEMO02]);
    assert!(out.contains("ttl=63"), "one hop through the host: {out}");
    tcp_exchange(&a, &b, DEMO02, 8002, &payload("ab", 70_000)).unwrap();
    tcp_exchange(&b, &a, DEMO01, 8001, &payload("ba", 70_000)).unwrap();
}

#[test]
fn the_host_reaches_both_routed_endpoints_without_forwarding_rules() {
    let sb = Sandbox::new("r2host");
    let (_, a, b) = routed(&sb);
    assert_ping(sb.host(), DEMO01);
    assert_ping(sb.host(), DEMO02);
    tcp_exchange(sb.host(), &a, DEMO01, 8003, b"host to demo01").unwrap();
    tcp_exchange(&b, sb.host(), "10.0.0.1", 8004, b"demo02 to the host").unwrap();
    let forward = in_ns_ok(sb.host(), &["sysctl", "-n", "net.ipv4.ip_forward"]);
    assert_eq!(forward.trim(), "0", "routing needs no ip_forward");
    assert_no_bridge_and_no_rules(sb.host());
}
