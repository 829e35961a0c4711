//! IPv4 options (docs/datapath.md, "IPv4 options"): forwarded between
//! endpoints, options intact and straight from one veth to the other (no
//! router on the way records itself); not translated on the NAT path, where
//! they are dropped and counted `unsupported`.

use netfwd_tests::{
    Lab, PingResult, counters, drops, in_ns,
    internet::{INTERNET_IP, Internet},
    lab, ping_counts,
};

const SUBNET: &str = "10.82.0.0/24";
const GATEWAY: &str = "10.82.0.1";
const A_IP: &str = "10.82.0.2";
const B_IP: &str = "10.82.0.3";

/// One `ping -R` (the record-route option) from `ns` to `ip`, waiting
/// `wait` seconds for the reply: the replies received and the route
/// recorded, one address a line.
fn ping_record_route(ns: &str, ip: &str, wait: &str) -> (u64, Vec<String>) {
    let out = in_ns(ns, &["ping", "-n", "-R", "-c", "1", "-W", wait, ip]);
    let text = String::from_utf8_lossy(&out.stdout);
    let received = text
        .lines()
        .find_map(|l| {
            let (_, rest) = l.split_once("transmitted, ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no ping statistics in {text}"));
    // "RR: \t10.82.0.2\n\t10.82.0.3\n…" up to the first empty line.
    let route = text
        .split_once("RR:")
        .map(|(_, rr)| {
            rr.lines()
                .map(str::trim)
                .take_while(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    (received, route)
}

/// An echo request with the record-route option from one endpoint to
/// another is answered with the option intact and no hop but the two
/// endpoints in it, each way a redirect of netfwd's; to the gateway the
/// host's stack records itself (the control: the option shows a router).
/// To the internet the same ping is dropped at the endpoint's veth and
/// counted `unsupported`, once; without the option it goes through.
#[test]
fn ip_options_are_forwarded_between_endpoints_and_dropped_on_the_nat_path() {
    let lab: Lab<Internet> = Lab::builder("ipopt", SUBNET)
        .uplink()
        .gateway(GATEWAY)
        .endpoint("a", Some(A_IP))
        .endpoint("b", Some(B_IP))
        .up();
    let [a, b] = lab::named(lab.eps.clone());
    let status = || lab.sb.network_status(&lab.net);

    let before = status();
    assert_eq!(
        ping_record_route(&a, B_IP, "5"),
        (1, vec![A_IP.into(), B_IP.into(), B_IP.into(), A_IP.into()]),
        "endpoint to endpoint"
    );
    let after = status();
    for ns in [&a, &b] {
        assert_eq!(
            counters(&after, ns, "redirected") - counters(&before, ns, "redirected"),
            1,
            "{ns}'s packet redirected to its peer"
        );
    }
    assert_eq!(
        ping_record_route(&a, GATEWAY, "5"),
        (
            1,
            vec![A_IP.into(), GATEWAY.into(), GATEWAY.into(), A_IP.into()]
        ),
        "to the gateway"
    );

    let before = drops(&status(), &a, "unsupported");
    let (received, _) = ping_record_route(&a, INTERNET_IP, "1");
    assert_eq!(received, 0, "an option through the NAT");
    assert_eq!(drops(&status(), &a, "unsupported") - before, 1);
    let (plain, _) = ping_counts(&a, INTERNET_IP);
    assert_eq!(
        plain,
        PingResult {
            transmitted: 3,
            received: 3
        },
        "without the option"
    );
}
