//! Seed 001: `ns1`..`ns3` on 192.168.28.0/24 with gateway 192.168.28.5 — the
//! seed's `vbridge` with the gateway address, rebuilt by netfwd without a
//! bridge. Only ns1 names its address: ns2 and ns3 get the next free ones.
//!
//! Run as root, one test at a time: `cargo xtask test` (or
//! `NETFWD_BIN=… cargo test -p netfwd-tests -- --test-threads=1`).

use netfwd_tests::{
    Lab, Sandbox, assert_no_bridge_and_no_rules, assert_ping, endpoint, ipv4_addrs, lab, payload,
    shared::{Lent, SharedLab},
    tcp_exchange, tool_ok,
};

const SUBNET: &str = "192.168.28.0/24";
const GATEWAY: &str = "192.168.28.5";
/// The addresses ns1 (given), ns2 and ns3 (allocated) end up with: .5 is the
/// gateway and .1 is taken, so the lowest free ones are .2 and .3.
const IPS: [&str; 3] = ["192.168.28.1", "192.168.28.2", "192.168.28.3"];
/// The same network dual-stack (`subnet6`, `gateway6`): its IPv6 twin,
/// whose addresses are all allocated, the lowest free first.
const SUBNET6: &str = "2001:db8:28::/64";
const GATEWAY6: &str = "2001:db8:28::5";
const IPS6: [&str; 3] = ["2001:db8:28::1", "2001:db8:28::2", "2001:db8:28::3"];
/// Another address of the sandbox host, outside the network (TEST-NET-2).
const HOST_OTHER: &str = "198.51.100.1";

struct Seed001 {
    sb: Sandbox,
    net: String,
    ns: [String; 3],
}

/// The seed's network, shared by the IPv4 tests: they look and send, and
/// put back what they add (see `netfwd_tests::shared`).
static SEED001: SharedLab<Seed001> = SharedLab::new();

fn seed001() -> Lent<Seed001> {
    SEED001.get(|| {
        let Lab { sb, net, eps, .. } = Lab::builder("s1", SUBNET)
            .gateway(GATEWAY)
            .endpoint("ns1", Some(IPS[0]))
            .endpoint("ns2", None)
            .endpoint("ns3", None)
            .up();
        let ns = lab::named(eps);
        Seed001 { sb, net, ns }
    })
}

#[test]
fn endpoints_without_ip_get_the_next_free_addresses_in_order() {
    let s = seed001();
    let status = s.sb.network_status(&s.net);
    assert_eq!(status["gateway"], GATEWAY, "{status:#}");
    for (ns, ip) in s.ns.iter().zip(IPS) {
        assert_eq!(endpoint(&status, ns)["ip"], ip, "{status:#}");
        let addrs = ipv4_addrs(ns, "eth0");
        assert!(
            addrs.iter().any(|a| a.starts_with(&format!("{ip}/"))),
            "{ip} not on eth0 in {ns}: {addrs:?}"
        );
    }
}

#[test]
fn every_endpoint_pings_every_other() {
    let s = seed001();
    for (i, from) in s.ns.iter().enumerate() {
        for (j, to_ip) in IPS.iter().enumerate() {
            if i != j {
                assert_ping(from, to_ip);
            }
        }
    }
}

#[test]
fn every_endpoint_exchanges_tcp_with_every_other() {
    let s = seed001();
    let mut port = 18100;
    for (i, from) in s.ns.iter().enumerate() {
        for (j, to) in s.ns.iter().enumerate() {
            if i != j {
                port += 1;
                let data = payload(&format!("{i}->{j}"), 20_000);
                tcp_exchange(from, to, IPS[j], port, &data).unwrap();
            }
        }
    }
}

#[test]
fn sandbox_host_pings_every_endpoint() {
    let s = seed001();
    for ip in IPS {
        assert_ping(s.sb.host(), ip);
    }
}

#[test]
fn endpoints_ping_the_gateway_and_another_address_of_the_host() {
    let s = seed001();
    let other = format!("{HOST_OTHER}/32");
    s.sb.add_host_addr(&other, "lo");
    for ns in &s.ns {
        assert_ping(ns, GATEWAY);
        assert_ping(ns, HOST_OTHER);
    }
    // The shared lab as it was.
    tool_ok(
        "ip",
        &["-n", s.sb.host(), "addr", "del", &other, "dev", "lo"],
    );
}

#[test]
fn network_uses_no_bridge_and_no_firewall_rule() {
    let s = seed001();
    assert_ping(&s.ns[0], IPS[2]);
    assert_no_bridge_and_no_rules(s.sb.host());
}

/// The seed dual-stack, its IPv6 side checked as the IPv4 one is above, on
/// one lab: addresses allocated in order around the gateway; every
/// endpoint pings and exchanges TCP with every other; the gateway and the
/// host reached; no bridge and no rule. (The host's addresses beyond the
/// prefix are not: IPv6 leaves the network only with NAT66 or routing.)
#[test]
fn over_ipv6_every_endpoint_reaches_every_other_the_gateway_and_the_host() {
    let Lab { sb, net, eps, .. } = Lab::builder("s1v6", SUBNET)
        .gateway(GATEWAY)
        .keys(&format!(
            "subnet6 = \"{SUBNET6}\"\ngateway6 = \"{GATEWAY6}\"\n"
        ))
        .endpoint("ns1", Some(IPS[0]))
        .endpoint("ns2", None)
        .endpoint("ns3", None)
        .up();
    let ns: [String; 3] = lab::named(eps);
    let status = sb.network_status(&net);
    assert_eq!(status["gateway6"], GATEWAY6, "{status:#}");
    for (netns, ip6) in ns.iter().zip(IPS6) {
        assert_eq!(endpoint(&status, netns)["ip6"], ip6, "{status:#}");
    }
    let mut port = 18200;
    for (i, from) in ns.iter().enumerate() {
        for (j, to) in ns.iter().enumerate() {
            if i != j {
                assert_ping(from, IPS6[j]);
                port += 1;
                let data = payload(&format!("{i}->{j}"), 20_000);
                tcp_exchange(from, to, IPS6[j], port, &data).unwrap();
            }
        }
        assert_ping(from, GATEWAY6);
        assert_ping(sb.host(), IPS6[i]);
    }
    assert_no_bridge_and_no_rules(sb.host());
}
