//! Docker's network isolation and `icc=false`: the netfwd networks of a host
//! cannot reach each other unless both sides `[[allow]]` it; with `icc =
//! false` a network's endpoints cannot reach each other, while egress and
//! published ports still work. Dual-stack networks are isolated over IPv6
//! too.

use netfwd_tests::{
    Lab, NetConfig, PING_COUNT, assert_no_bridge_and_no_rules, assert_ping, drops, in_ns_ok,
    internet::{INTERNET_IP, INTERNET_IP6},
    lab::named,
    ping, snmp_counter,
};

/// Whether datagrams from `ns` to a closed port of `ip` (of either family)
/// reach namespace `to`, which counts them under Udp or Udp6 NoPorts.
fn datagrams_arrive(ns: &str, to: &str, ip: &str) -> bool {
    let (family, group) = if ip.contains(':') {
        ("AF_INET6", "Udp6")
    } else {
        ("AF_INET", "Udp")
    };
    let before = snmp_counter(to, group, "NoPorts");
    let script = format!(
        "import socket, time\ns = socket.socket(socket.{family}, socket.SOCK_DGRAM)\n\
         for _ in range({DATAGRAMS}):\n    s.sendto(b'x', ('{ip}', 9))\n    time.sleep(0.05)\n"
    );
    in_ns_ok(ns, &["/usr/bin/python3", "-c", &script]);
    snmp_counter(to, group, "NoPorts") != before
}

/// Datagrams [`datagrams_arrive`] sends.
const DATAGRAMS: u64 = 5;

/// Endpoint `a` of the lab's network and endpoint `b` of another, at
/// `a_ip` and `b_ip`, cannot reach each other: pings fail both ways,
/// datagrams do not arrive, and `a`'s are counted under `reason`.
fn assert_isolated<U>(lab: &Lab<U>, [a, b]: [&str; 2], [a_ip, b_ip]: [&str; 2], reason: &str) {
    let counted = || drops(&lab.sb.network_status(&lab.net), a, reason);
    let before = counted();
    assert_no_ping_either_way([a, b], [a_ip, b_ip]);
    assert!(!datagrams_arrive(a, b, b_ip), "datagrams crossed");
    let status = lab.sb.network_status(&lab.net);
    assert!(
        drops(&status, a, reason) >= before + PING_COUNT + DATAGRAMS,
        "{status:#}"
    );
}

/// Neither `a` (at `a_ip`) nor `b` (at `b_ip`) gets an echo reply from
/// the other. The two pings run at once: each waits out its own timeout
/// for the replies that must not come, and neither sends to the other's
/// address, so neither can answer the other's.
fn assert_no_ping_either_way([a, b]: [&str; 2], [a_ip, b_ip]: [&str; 2]) {
    let (a_to_b, b_to_a) = std::thread::scope(|s| {
        let a_to_b = s.spawn(|| ping(a, b_ip));
        (a_to_b.join(), ping(b, a_ip))
    });
    assert!(!a_to_b.expect("the ping from a"), "{a} reached {b_ip}");
    assert!(!b_to_a, "{b} reached {a_ip}");
}

/// `[[allow]] network = "<other>"` added to a config.
fn allow(other: &str) -> impl FnOnce(NetConfig) -> NetConfig {
    let table = format!("[[allow]]\nnetwork = \"{other}\"\n");
    move |cfg| cfg.tables(&table)
}

/// Three dual-stack networks: each pair is isolated over both families
/// until both sides allow the other (then routed, each family by its own
/// table: `REMOTES`, `REMOTES6`).
#[test]
fn networks_are_isolated_unless_both_allow_each_other() {
    let lab = Lab::builder("iso", "10.91.0.0/24")
        .keys("subnet6 = \"2001:db8:91::/64\"\n")
        .uplink()
        .endpoint("a", Some("10.91.0.2"))
        .up();
    let second = lab
        .network("10.92.0.0/24")
        .keys("subnet6 = \"2001:db8:92::/64\"\n")
        .endpoint("b", Some("10.92.0.2"))
        .up();
    let third = lab
        .network("10.93.0.0/24")
        .keys("subnet6 = \"2001:db8:93::/64\"\n")
        .endpoint("c", Some("10.93.0.2"))
        .up();
    let [a] = named(lab.eps.clone());
    let [b] = named(second.eps.clone());
    let [c] = named(third.eps.clone());
    let (a6, b6, c6) = ("2001:db8:91::2", "2001:db8:92::2", "2001:db8:93::2");
    assert_isolated(&lab, [&a, &b], ["10.91.0.2", "10.92.0.2"], "isolated");
    assert_isolated(&lab, [&a, &b], [a6, b6], "isolated");
    // Egress is untouched.
    assert_ping(&a, INTERNET_IP);
    assert_ping(&a, INTERNET_IP6);

    lab.up_again(allow(&second.net));
    for b_ip in ["10.92.0.2", b6] {
        assert!(!ping(&a, b_ip), "one side's allow opened the pair");
        // Not even one way: datagrams from the allowing side do not arrive.
        assert!(
            !datagrams_arrive(&a, &b, b_ip),
            "datagrams crossed on one side's allow"
        );
    }
    second.up_again(&lab, allow(&lab.net));
    for (a_ip, b_ip, c_ip) in [("10.91.0.2", "10.92.0.2", "10.93.0.2"), (a6, b6, c6)] {
        assert_ping(&a, b_ip);
        assert_ping(&b, a_ip);
        // Exactly that pair: the third network stays apart.
        assert_no_ping_either_way([&a, &c], [a_ip, c_ip]);
    }
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
