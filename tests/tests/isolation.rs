//! Docker's network isolation and `icc=false`: the netfwd networks of a host
//! cannot reach each other unless both sides `[[allow]]` it; with `icc =
//! false` a network's endpoints cannot reach each other, while egress and
//! published ports still work.

use netfwd_tests::{
    Lab, NetConfig, assert_no_bridge_and_no_rules, assert_ping, drops, in_ns_ok,
    internet::INTERNET_IP, lab::named, ping, snmp_counter,
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

/// `[[allow]] network = "<other>"` added to a config.
fn allow(other: &str) -> impl FnOnce(NetConfig) -> NetConfig {
    let table = format!("[[allow]]\nnetwork = \"{other}\"\n");
    move |cfg| cfg.tables(&table)
}

#[test]
fn networks_are_isolated_unless_both_allow_each_other() {
    let lab = Lab::builder("iso", "10.91.0.0/24")
        .uplink()
        .endpoint("a", Some("10.91.0.2"))
        .up();
    let second = lab
        .network("10.92.0.0/24")
        .endpoint("b", Some("10.92.0.2"))
        .up();
    let third = lab
        .network("10.93.0.0/24")
        .endpoint("c", Some("10.93.0.2"))
        .up();
    let [a] = named(lab.eps.clone());
    let [b] = named(second.eps.clone());
    let [c] = named(third.eps.clone());
    assert!(!ping(&a, "10.92.0.2"));
    assert!(!ping(&b, "10.91.0.2"));
    assert!(drops(&lab.sb.network_status(&lab.net), &a, "isolated") >= 3);
    // Egress is untouched.
    assert_ping(&a, INTERNET_IP);

    lab.up_again(allow(&second.net));
    assert!(!ping(&a, "10.92.0.2"), "one side's allow opened the pair");
    // Not even one way: datagrams from the allowing side do not arrive.
    let unreachable_before = snmp_counter(&b, "Udp", "NoPorts");
    send_udp(&a, "10.92.0.2", 5);
    assert_eq!(
        snmp_counter(&b, "Udp", "NoPorts"),
        unreachable_before,
        "datagrams crossed on one side's allow"
    );
    second.up_again(&lab, allow(&lab.net));
    assert_ping(&a, "10.92.0.2");
    assert_ping(&b, "10.91.0.2");
    // Exactly that pair: the third network stays apart.
    assert!(!ping(&a, "10.93.0.2"));
    assert!(!ping(&c, "10.91.0.2"));
    assert_no_bridge_and_no_rules(lab.sb.host());
}

#[test]
fn without_icc_endpoints_cannot_talk_but_egress_and_the_host_still_work() {
    let lab = Lab::builder("icc", "10.94.0.0/24")
        .uplink()
        .keys("icc = false\n")
        .endpoint("a", Some("10.94.0.2"))
        .endpoint("b", Some("10.94.0.3"))
        .up();
    let [a, _b] = named(lab.eps.clone());
    assert!(!ping(&a, "10.94.0.3"));
    assert!(drops(&lab.sb.network_status(&lab.net), &a, "icc") >= 3);
    assert_ping(&a, INTERNET_IP);
    assert_ping(&a, "10.94.0.1");
    assert_ping(lab.sb.host(), "10.94.0.3");
}
