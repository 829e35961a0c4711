//! Docker's network isolation and `icc=false`: the netfwd networks of a host
//! cannot reach each other unless both sides `[[allow]]` it; with `icc =
//! false` a network's endpoints cannot reach each other, while egress and
//! published ports still work.

use netfwd_tests::{
    NetConfig, Sandbox, assert_no_bridge_and_no_rules, assert_ping, drops, in_ns_ok,
    internet::{INTERNET_IP, Internet, UPLINK},
    ping, snmp_counter,
};

/// Sends `count` datagrams from `ns` to a closed port of `ip` (the receiver
/// counts them under Udp NoPorts).
fn send_udp(ns: &str, ip: &str, count: u32) {
    let script = format!(
        "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         for _ in range({count}):\n    s.sendto(b'x', ('{ip}', 9))\n    time.sleep(0.05)\n"
    );
    in_ns_ok(ns, &["/usr/bin/python3", "-c", &script]);
}

/// Brings up network `name` behind the uplink with one endpoint per
/// `(netns, ip)`; `more` adds to its config.
fn up(
    sb: &Sandbox,
    name: &str,
    subnet: &str,
    eps: &[(&str, &str)],
    more: impl FnOnce(NetConfig) -> NetConfig,
) {
    let cfg = eps.iter().fold(
        NetConfig::new(name, subnet, None).uplink(UPLINK),
        |cfg, (ns, ip)| cfg.endpoint(ns, Some(ip)),
    );
    sb.up(&more(cfg));
}

#[test]
fn networks_are_isolated_unless_both_allow_each_other() {
    let sb = Sandbox::new("iso");
    let _internet = Internet::new(&sb);
    let (n1, n2, n3) = (sb.net_name(), sb.net_name(), sb.net_name());
    let (a, b, c) = (sb.ns("a"), sb.ns("b"), sb.ns("c"));
    up(&sb, &n1, "10.91.0.0/24", &[(&a, "10.91.0.2")], |cfg| cfg);
    up(&sb, &n2, "10.92.0.0/24", &[(&b, "10.92.0.2")], |cfg| cfg);
    up(&sb, &n3, "10.93.0.0/24", &[(&c, "10.93.0.2")], |cfg| cfg);
    assert!(!ping(&a, "10.92.0.2"));
    assert!(!ping(&b, "10.91.0.2"));
    assert!(drops(&sb.network_status(&n1), &a, "isolated") >= 3);
    // Egress is untouched.
    assert_ping(&a, INTERNET_IP);

    let allow = |other: &str| {
        let table = format!("[[allow]]\nnetwork = \"{other}\"\n");
        move |cfg: NetConfig| cfg.tables(&table)
    };
    up(&sb, &n1, "10.91.0.0/24", &[(&a, "10.91.0.2")], allow(&n2));
    assert!(!ping(&a, "10.92.0.2"), "one side's allow opened the pair");
    // Not even one way: datagrams from the allowing side do not arrive.
    let unreachable_before = snmp_counter(&b, "Udp", "NoPorts");
    send_udp(&a, "10.92.0.2", 5);
    assert_eq!(
        snmp_counter(&b, "Udp", "NoPorts"),
        unreachable_before,
        "datagrams crossed on one side's allow"
    );
    up(&sb, &n2, "10.92.0.0/24", &[(&b, "10.92.0.2")], allow(&n1));
    assert_ping(&a, "10.92.0.2");
    assert_ping(&b, "10.91.0.2");
    // Exactly that pair: the third network stays apart.
    assert!(!ping(&a, "10.93.0.2"));
    assert!(!ping(&c, "10.91.0.2"));
    assert_no_bridge_and_no_rules(sb.host());
}

#[test]
fn without_icc_endpoints_cannot_talk_but_egress_and_the_host_still_work() {
    let sb = Sandbox::new("icc");
    let _internet = Internet::new(&sb);
    let net = sb.net_name();
    let (a, b) = (sb.ns("a"), sb.ns("b"));
    up(
        &sb,
        &net,
        "10.94.0.0/24",
        &[(&a, "10.94.0.2"), (&b, "10.94.0.3")],
        |cfg| cfg.keys("icc = false"),
    );
    assert!(!ping(&a, "10.94.0.3"));
    assert!(drops(&sb.network_status(&net), &a, "icc") >= 3);
    assert_ping(&a, INTERNET_IP);
    assert_ping(&a, "10.94.0.1");
    assert_ping(sb.host(), "10.94.0.3");
}
