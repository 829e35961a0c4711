//! Dual-stack networks: `subnet6` beside the IPv4 subnet. Endpoints get their
//! IPv6 addresses from netfwd (the lowest free, usable at once: no duplicate
//! address detection) and reach the IPv6 gateway; nothing of IPv6 leaves
//! the network yet (no NAT66).
//!
//! Run as root, one test at a time: `cargo xtask test`.

use netfwd_tests::{Lab, assert_ping, endpoint, in_ns_ok, lab};

const SUBNET: &str = "10.86.0.0/24";
const SUBNET6: &str = "2001:db8:86::/64";
const GATEWAY6: &str = "2001:db8:86::1";

#[test]
fn dual_stack_endpoints_are_addressed_and_reach_the_gateway() {
    let lab = Lab::builder("v6dual", SUBNET)
        .keys(&format!("subnet6 = \"{SUBNET6}\"\n"))
        .endpoint("a", None)
        .endpoint("b", None)
        .endpoint("c", None)
        .up();
    let ns: [String; 3] = lab::named(lab.eps.clone());
    let status = lab.sb.network_status(&lab.net);
    assert_eq!(status["subnet6"], SUBNET6, "{status:#}");
    assert_eq!(status["gateway6"], GATEWAY6, "{status:#}");
    for (netns, want) in ns
        .iter()
        .zip(["2001:db8:86::2", "2001:db8:86::3", "2001:db8:86::4"])
    {
        assert_eq!(endpoint(&status, netns)["ip6"], want, "{status:#}");
        // Given by netfwd, so never tentative: usable at once.
        let addrs = in_ns_ok(netns, &["ip", "-6", "-o", "addr", "show", "dev", "eth0"]);
        let line = addrs
            .lines()
            .find(|l| l.contains(&format!("{want}/128")))
            .unwrap_or_else(|| panic!("{netns} lacks {want}: {addrs}"));
        assert!(!line.contains("tentative"), "{line}");
    }
    assert_ping(&ns[0], GATEWAY6);
}
