//! `mode = "xdp"`: XDP in front of TC on the host-side veths and the uplink
//! takes endpoint-to-endpoint traffic and the replies of NAT flows (the
//! kernel's own per-queue XDP counters show it did); `status` says which
//! mode each interface runs; where XDP cannot attach (a jumbo MTU on veth)
//! the interface runs TC alone after a one-line warning; switching the
//! config back to TC takes XDP off. (Every other scenario test runs in both
//! modes: `NETFWD_TEST_MODE=xdp`. These set their mode themselves, so the
//! XDP pass skips them: `xtask/src/xdp_pass.rs`.)

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use netfwd_tests::{
    Lab, assert_ping, endpoint, in_ns_ok,
    internet::{ECHO_PORT, INTERNET_IP, UPLINK, UPLINK_IP, in_netns, ip_of, tcp_echo},
    lab::named,
    payload, tcp_exchange,
};
use serde_json::Value;

const SUBNET: &str = "10.61.0.0/24";
const A_IP: &str = "10.61.0.2";
const B_IP: &str = "10.61.0.3";
/// The network is dual-stack: IPv6 between endpoints takes XDP too.
const SUBNET6_KEY: &str = "subnet6 = \"2001:db8:61::/64\"\n";
const B_IP6: &str = "2001:db8:61::3";

/// A per-queue counter of `ethtool -S dev` in `ns`, summed over queues.
fn xdp_stat(ns: &str, dev: &str, stat: &str) -> u64 {
    in_ns_ok(ns, &["ethtool", "-S", dev])
        .lines()
        .filter_map(|l| l.trim().split_once(": "))
        .filter(|(name, _)| name.ends_with(stat))
        .map(|(_, v)| v.trim().parse::<u64>().unwrap())
        .sum()
}

fn modes(status: &Value, a: &str, b: &str) -> (String, String, String) {
    let m = |v: &Value| v["mode"].as_str().unwrap().to_owned();
    (
        m(endpoint(status, a)),
        m(endpoint(status, b)),
        m(&status["uplink"]),
    )
}

#[test]
fn xdp_takes_endpoint_traffic_and_nat_replies_in_front_of_tc() {
    let lab = Lab::builder("xdp", SUBNET)
        .uplink()
        .keys(&format!("mode = \"xdp\"\n{SUBNET6_KEY}"))
        .endpoint("a", Some(A_IP))
        .endpoint("b", Some(B_IP))
        .up();
    let (sb, net) = (&lab.sb, &lab.net);
    let [a, b] = named(lab.eps.clone());
    // The far end as a wire (see `Internet`), whatever the test mode.
    in_ns_ok(
        &lab.internet.ns,
        &["ethtool", "-K", "inet0", "tx", "off", "gro", "on"],
    );
    let status = sb.network_status(net);
    assert_eq!(status["mode"], "xdp");
    assert_eq!(
        modes(&status, &a, &b),
        ("xdp".into(), "xdp".into(), "xdp".into()),
        "{status:#}"
    );

    let host = sb.host().to_owned();
    let a_veth = endpoint(&status, &a)["host_ifname"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = xdp_stat(&host, &a_veth, "xdp_redirect");
    tcp_exchange(&a, &b, B_IP, 5001, &payload("xdp-east-west", 1 << 20)).unwrap();
    assert_ping(&b, A_IP);
    assert!(
        xdp_stat(&host, &a_veth, "xdp_redirect") > before + 500,
        "the endpoint's frames did not take the XDP redirect"
    );
    let before = xdp_stat(&host, &a_veth, "xdp_redirect");
    tcp_exchange(&a, &b, B_IP6, 5002, &payload("xdp-ipv6", 1 << 20)).unwrap();
    assert!(
        xdp_stat(&host, &a_veth, "xdp_redirect") > before + 500,
        "the endpoint's IPv6 frames did not take the XDP redirect"
    );

    let before = xdp_stat(&host, UPLINK, "xdp_redirect");
    let data = payload("xdp-nat", 1 << 20);
    let peer = in_netns(&a, move || tcp_echo(INTERNET_IP, ECHO_PORT, None, &data)).unwrap();
    assert_eq!(ip_of(&peer), UPLINK_IP);
    assert!(
        xdp_stat(&host, UPLINK, "xdp_redirect") > before + 100,
        "the NAT replies did not take the XDP redirect"
    );

    // Back to TC: no XDP program of ours left, traffic as before.
    lab.up_again(|mut cfg| {
        cfg.keys = format!("mode = \"tc\"\n{SUBNET6_KEY}");
        cfg
    });
    let status = sb.network_status(net);
    assert_eq!(
        modes(&status, &a, &b),
        ("tc".into(), "tc".into(), "tc".into()),
        "{status:#}"
    );
    let links = in_ns_ok(&host, &["ip", "-d", "link"]);
    assert!(
        !links.contains("prog/xdp"),
        "XDP left after switching to TC:\n{links}"
    );
    tcp_exchange(&a, &b, B_IP, 5002, &payload("tc-again", 1 << 16)).unwrap();
}

#[test]
fn xdp_falls_back_to_tc_where_it_cannot_attach() {
    // veth takes no XDP program (that is not multi-buffer) at a jumbo MTU.
    let lab = Lab::builder("xdpfb", SUBNET)
        .keys("mode = \"xdp\"\nmtu = 9000\n")
        .endpoint("a", Some(A_IP))
        .endpoint("b", Some(B_IP))
        .up();
    let [a, b] = named(lab.eps.clone());
    // Every `up` tries XDP again and says where it cannot attach.
    let out = lab.sb.up_file(&lab.config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("XDP cannot attach"))
        .collect();
    assert_eq!(warnings.len(), 2, "one warning per veth:\n{stderr}");
    assert!(
        warnings.iter().all(|l| l.contains("TC only there")),
        "{stderr}"
    );
    let status = lab.sb.network_status(&lab.net);
    assert_eq!(endpoint(&status, &a)["mode"], "tc", "{status:#}");
    assert_eq!(endpoint(&status, &b)["mode"], "tc", "{status:#}");
    assert_ping(&a, B_IP);
    tcp_exchange(&a, &b, B_IP, 5003, &payload("fallback", 1 << 16)).unwrap();
}
