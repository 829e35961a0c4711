//! Seed 000: two namespaces `netns_A` (172.18.0.2) and `netns_B` (172.18.0.3)
//! on 172.18.0.0/16 with gateway 172.18.0.1 — what the seed builds with bridge
//! `mybr0`, netfwd builds with veths and a TC program, and no bridge or rule.
//!
//! Run as root, one test at a time: `cargo xtask test` (or
//! `NETFWD_BIN=… cargo test -p netfwd-tests -- --test-threads=1`).

use netfwd_tests::{
    Lab, PING_COUNT, Sandbox, assert_no_bridge_and_no_rules, assert_ping, endpoint, has_link,
    ipv4_addrs, lab, payload, ping_counts,
    shared::{Lent, SharedLab},
    sum_counters, tcp_exchange,
};

const SUBNET: &str = "172.18.0.0/16";
const GATEWAY: &str = "172.18.0.1";
const IP_A: &str = "172.18.0.2";
const IP_B: &str = "172.18.0.3";
/// The same network dual-stack (`subnet6`): its IPv6 twin.
const SUBNET6: &str = "2001:db8:18::/64";
const GATEWAY6: &str = "2001:db8:18::1";
const IP6_A: &str = "2001:db8:18::2";
const IP6_B: &str = "2001:db8:18::3";

struct Seed000 {
    sb: Sandbox,
    net: String,
    a: String,
    b: String,
}

/// The seed's network, shared by the IPv4 tests: they only look and send
/// (see `netfwd_tests::shared`).
static SEED000: SharedLab<Seed000> = SharedLab::new();

fn seed000() -> Lent<Seed000> {
    SEED000.get(|| {
        let Lab { sb, net, eps, .. } = Lab::builder("s0", SUBNET)
            .gateway(GATEWAY)
            .endpoint("netns_A", Some(IP_A))
            .endpoint("netns_B", Some(IP_B))
            .up();
        let [a, b] = lab::named(eps);
        Seed000 { sb, net, a, b }
    })
}

#[test]
fn endpoints_get_eth0_with_their_address_and_a_default_route_via_the_gateway() {
    let s = seed000();
    for (ns, ip) in [(&s.a, IP_A), (&s.b, IP_B)] {
        assert!(has_link(ns, "eth0"), "no eth0 in {ns}");
        let addrs = ipv4_addrs(ns, "eth0");
        assert!(
            addrs.iter().any(|a| a.starts_with(&format!("{ip}/"))),
            "{ip} not on eth0 in {ns}: {addrs:?}"
        );
        let routes = netfwd_tests::in_ns_ok(ns, &["ip", "-4", "route", "show", "default"]);
        assert!(
            routes.contains(&format!("default via {GATEWAY} dev eth0")),
            "default route in {ns}: {routes}"
        );
    }
    let status = s.sb.network_status(&s.net);
    assert_eq!(status["subnet"], SUBNET, "{status:#}");
    assert_eq!(status["gateway"], GATEWAY, "{status:#}");
    for (ns, ip) in [(&s.a, IP_A), (&s.b, IP_B)] {
        let ep = endpoint(&status, ns);
        assert_eq!(ep["ip"], ip, "{ep:#}");
        let ifname = ep["host_ifname"].as_str().unwrap();
        assert!(
            ifname.starts_with(&format!("nf{}-", s.net)),
            "host veth name {ifname}"
        );
        assert!(has_link(s.sb.host(), ifname), "no {ifname} in the host");
        assert!(
            ipv4_addrs(s.sb.host(), ifname).contains(&format!("{GATEWAY}/32")),
            "gateway /32 missing on {ifname}: {:?}",
            ipv4_addrs(s.sb.host(), ifname)
        );
        assert!(!ep["program"].is_null(), "no program on {ifname}: {ep:#}");
    }
}

#[test]
fn endpoints_ping_each_other_both_ways() {
    let s = seed000();
    assert_ping(&s.a, IP_B);
    assert_ping(&s.b, IP_A);
}

#[test]
fn endpoints_exchange_tcp_both_ways() {
    let s = seed000();
    tcp_exchange(&s.a, &s.b, IP_B, 18001, &payload("a-to-b", 3000)).unwrap();
    tcp_exchange(&s.b, &s.a, IP_A, 18002, &payload("b-to-a", 70_000)).unwrap();
}

#[test]
fn sandbox_host_pings_both_endpoints() {
    let s = seed000();
    assert_ping(s.sb.host(), IP_A);
    assert_ping(s.sb.host(), IP_B);
}

#[test]
fn endpoints_ping_the_gateway() {
    let s = seed000();
    assert_ping(&s.a, GATEWAY);
    assert_ping(&s.b, GATEWAY);
}

#[test]
fn network_uses_no_bridge_and_no_firewall_rule() {
    let s = seed000();
    // After some traffic too: nothing may be added lazily.
    assert_ping(&s.a, IP_B);
    assert_no_bridge_and_no_rules(s.sb.host());
}

#[test]
fn redirected_counters_grow_by_at_least_the_echo_requests_and_replies_between_endpoints() {
    let s = seed000();
    let before = sum_counters(&s.sb.network_status(&s.net), "redirected");
    let (ab, out_ab) = ping_counts(&s.a, IP_B);
    let (ba, out_ba) = ping_counts(&s.b, IP_A);
    assert_eq!(
        ab.received,
        PING_COUNT,
        "{}",
        netfwd_tests::describe("ping A->B", &out_ab)
    );
    assert_eq!(
        ba.received,
        PING_COUNT,
        "{}",
        netfwd_tests::describe("ping B->A", &out_ba)
    );
    let after = sum_counters(&s.sb.network_status(&s.net), "redirected");
    // Every answered echo is one request and one reply, each redirected once.
    let sent = 2 * (ab.received + ba.received);
    assert!(
        after >= before + sent,
        "redirected grew by {} (from {before} to {after}), expected at least {sent}",
        after.saturating_sub(before)
    );
}

/// The seed dual-stack, its IPv6 side checked as the IPv4 one is above, on
/// one lab: each endpoint's address; ping and TCP both ways, every echo
/// redirected by the datapath; the gateway and the host reached; and still
/// no bridge and no rule.
#[test]
fn over_ipv6_endpoints_reach_each_other_the_gateway_and_the_host() {
    let Lab { sb, net, eps, .. } = Lab::builder("s0v6", SUBNET)
        .gateway(GATEWAY)
        .keys(&format!("subnet6 = \"{SUBNET6}\"\n"))
        .endpoint("netns_A", Some(IP_A))
        .endpoint("netns_B", Some(IP_B))
        .up();
    let [a, b] = lab::named(eps);
    let status = sb.network_status(&net);
    assert_eq!(status["gateway6"], GATEWAY6, "{status:#}");
    for (ns, ip6) in [(&a, IP6_A), (&b, IP6_B)] {
        assert_eq!(endpoint(&status, ns)["ip6"], ip6, "{status:#}");
    }
    let before = sum_counters(&status, "redirected");
    let mut received = 0;
    for (from, to) in [(&a, IP6_B), (&b, IP6_A)] {
        let (counts, out) = ping_counts(from, to);
        assert_eq!(
            counts.received,
            PING_COUNT,
            "{}",
            netfwd_tests::describe(&format!("ping {from}->{to}"), &out)
        );
        received += counts.received;
    }
    let after = sum_counters(&sb.network_status(&net), "redirected");
    assert!(after >= before + 2 * received, "from {before} to {after}");
    tcp_exchange(&a, &b, IP6_B, 18011, &payload("a-to-b", 3000)).unwrap();
    tcp_exchange(&b, &a, IP6_A, 18012, &payload("b-to-a", 70_000)).unwrap();
    for ns in [&a, &b] {
        assert_ping(ns, GATEWAY6);
    }
    assert_ping(sb.host(), IP6_A);
    assert_ping(sb.host(), IP6_B);
    assert_no_bridge_and_no_rules(sb.host());
}
