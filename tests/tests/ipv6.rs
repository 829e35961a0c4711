//! Dual-stack networks: `subnet6` beside the IPv4 subnet. Endpoints get their
//! IPv6 addresses from netfwd (the lowest free, usable at once: no duplicate
//! address detection), reach the IPv6 gateway, and each other through the
//! datapath; a forged source or neighbour advertisement is dropped, a router
//! advertisement changes nothing of the host's or another endpoint's. A
//! network without an uplink keeps IPv6 to its prefix: beyond it, a packet
//! is dropped, counted, never forwarded with the endpoint's own address
//! (NAT66 through an uplink is `nat_egress`'s).
//! `icc = false` stops endpoint-to-endpoint IPv6 as it does IPv4.
//!
//! Run as root, one test at a time: `cargo xtask test`.

use netfwd_tests::{
    Lab, assert_ping, drops, endpoint, in_ns_ok, lab, ping, scapy_sendp, snmp_counter, tool_ok,
};

const SUBNET: &str = "10.86.0.0/24";
const SUBNET6: &str = "2001:db8:86::/64";
const GATEWAY6: &str = "2001:db8:86::1";

#[test]
fn dual_stack_endpoints_reach_the_gateway_and_each_other_and_nothing_else() {
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

    // Endpoint to endpoint, redirected by the datapath (the host forwards
    // no IPv6: its forwarding is off in the sandbox, as by default).
    let redirected = |status: &serde_json::Value| {
        endpoint(status, &ns[0])["counters"]["redirected"]
            .as_u64()
            .unwrap()
    };
    let before = redirected(&status);
    assert_ping(&ns[0], "2001:db8:86::3");
    assert_ping(&ns[2], "2001:db8:86::2");
    let status = lab.sb.network_status(&lab.net);
    assert!(redirected(&status) >= before + 3, "{status:#}");

    // A forged source, and a destination beyond the network (which has no
    // uplink, so no NAT66): dropped, never forwarded with its own address.
    let a = endpoint(&status, &ns[0]);
    let (mac, host_mac) = (a["mac"].as_str().unwrap(), a["host_mac"].as_str().unwrap());
    let (spoofed, unsupported) = (
        drops(&status, &ns[0], "ip_spoofed"),
        drops(&status, &ns[0], "unsupported"),
    );
    let frame = |src: &str, dst: &str| {
        format!(
            "Ether(src='{mac}', dst='{host_mac}')/IPv6(src='{src}', dst='{dst}')/ICMPv6EchoRequest()"
        )
    };
    scapy_sendp(
        &ns[0],
        "eth0",
        &frame("2001:db8:86::99", "2001:db8:86::3"),
        2,
    );
    scapy_sendp(
        &ns[0],
        "eth0",
        &frame("2001:db8:86::2", "2001:db8:99::1"),
        2,
    );
    let status = lab.sb.network_status(&lab.net);
    assert_eq!(
        drops(&status, &ns[0], "ip_spoofed"),
        spoofed + 2,
        "{status:#}"
    );
    assert_eq!(
        drops(&status, &ns[0], "unsupported"),
        unsupported + 2,
        "{status:#}"
    );
    assert_eq!(
        snmp_counter(lab.sb.host(), "Ip6", "OutForwDatagrams"),
        0,
        "the host forwarded an endpoint's IPv6"
    );

    // Neighbour advertisements: for another endpoint's address, or naming
    // another MAC, dropped; for its own address with its own MAC, passed.
    let nd_spoofed = drops(&status, &ns[0], "nd_spoofed");
    let advert = |target: &str, named: &str| {
        format!(
            "Ether(src='{mac}', dst='{host_mac}')/IPv6(src='fe80::a', dst='ff02::1')\
             /ICMPv6ND_NA(tgt='{target}', R=0, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr='{named}')"
        )
    };
    scapy_sendp(&ns[0], "eth0", &advert("2001:db8:86::3", mac), 1);
    scapy_sendp(
        &ns[0],
        "eth0",
        &advert("2001:db8:86::2", "02:00:00:00:66:66"),
        1,
    );
    scapy_sendp(&ns[0], "eth0", &advert("2001:db8:86::2", mac), 1);
    let status = lab.sb.network_status(&lab.net);
    assert_eq!(
        drops(&status, &ns[0], "nd_spoofed"),
        nd_spoofed + 2,
        "{status:#}"
    );

    // A router advertisement from an endpoint: dropped, counted, and no
    // route or address changes on the host or on another endpoint.
    let host = lab.sb.host();
    let routes = |ns: &str| tool_ok("ip", &["-n", ns, "-6", "route", "show"]);
    let addrs = |ns: &str| tool_ok("ip", &["-n", ns, "-6", "addr", "show", "scope", "global"]);
    let (host_routes, host_addrs) = (routes(host), addrs(host));
    let (b_routes, b_addrs) = (routes(&ns[1]), addrs(&ns[1]));
    let router_messages = drops(&status, &ns[0], "router_message");
    let ra = format!(
        "Ether(src='{mac}', dst='33:33:00:00:00:01')/IPv6(src='fe80::bad', dst='ff02::1')\
         /ICMPv6ND_RA(routerlifetime=1800)\
         /ICMPv6NDOptPrefixInfo(prefix='2001:db8:96::', prefixlen=64)"
    );
    scapy_sendp(&ns[0], "eth0", &ra, 3);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(routes(host), host_routes, "the host's routes changed");
    assert_eq!(addrs(host), host_addrs, "the host's addresses changed");
    assert_eq!(
        routes(&ns[1]),
        b_routes,
        "another endpoint's routes changed"
    );
    assert_eq!(
        addrs(&ns[1]),
        b_addrs,
        "another endpoint's addresses changed"
    );
    let status = lab.sb.network_status(&lab.net);
    assert!(
        drops(&status, &ns[0], "router_message") >= router_messages + 3,
        "{status:#}"
    );
    // An attached namespace gets the lowest free IPv6 address too, and is
    // reached by it; an address outside the prefix is refused.
    let other = lab.sb.precreated_ns("d");
    let path = other.path().display().to_string();
    let out = lab.sb.netfwd(&[
        "attach",
        "--name",
        &lab.net,
        "--netns-path",
        &path,
        "--ip6",
        "2001:db8:99::5",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = lab.sb.netfwd_ok(&[
        "attach",
        "--name",
        &lab.net,
        "--netns-path",
        &path,
        "--json",
    ]);
    let attached: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(attached["ip6"], "2001:db8:86::5", "{attached:#}");
    assert_ping(other.name(), "2001:db8:86::2");
    assert_ping(&ns[0], "2001:db8:86::5");
    lab.sb
        .netfwd_ok(&["detach", "--name", &lab.net, "--netns-path", &path]);
}

/// `icc = false` holds for IPv6 as for IPv4 (one gate decides both): the
/// endpoints cannot talk, each still reaches the gateway, and the host
/// reaches each.
#[test]
fn without_icc_ipv6_endpoints_cannot_talk_but_the_gateway_and_host_still_work() {
    let lab = Lab::builder("v6icc", "10.87.0.0/24")
        .keys("subnet6 = \"2001:db8:87::/64\"\nicc = false\n")
        .endpoint("a", None)
        .endpoint("b", None)
        .up();
    let [a, _b] = lab::named(lab.eps.clone());
    let icc = drops(&lab.sb.network_status(&lab.net), &a, "icc");
    assert!(!ping(&a, "2001:db8:87::3"));
    assert!(drops(&lab.sb.network_status(&lab.net), &a, "icc") >= icc + 3);
    assert_ping(&a, "2001:db8:87::1");
    assert_ping(lab.sb.host(), "2001:db8:87::3");
}

/// An endpoint asks for the gateway, and (holding the prefix on-link, as
/// Docker's containers do) for its peers, by neighbour solicitation: the
/// datapath answers as it answers ARP, with the host-side veth's MAC for
/// the gateway and the peer's own MAC for a peer, and the traffic flows.
#[test]
fn neighbour_solicitations_for_the_gateway_and_peers_are_answered_in_the_datapath() {
    let lab = Lab::builder("v6nd", "10.88.0.0/24")
        .keys("subnet6 = \"2001:db8:88::/64\"\n")
        .endpoint("a", None)
        .endpoint("b", None)
        .up();
    let [a, b] = lab::named(lab.eps.clone());
    tool_ok(
        "ip",
        &[
            "-n",
            &a,
            "-6",
            "route",
            "replace",
            "2001:db8:88::/64",
            "dev",
            "eth0",
        ],
    );
    let status = lab.sb.network_status(&lab.net);
    let answered = |status: &serde_json::Value| {
        endpoint(status, &a)["counters"]["arp_replies"]
            .as_u64()
            .unwrap()
    };
    let neighbour = |ip: &str| tool_ok("ip", &["-n", &a, "-6", "neigh", "show", ip]);
    let before = answered(&status);
    assert_ping(&a, "2001:db8:88::3");
    let b_mac = endpoint(&status, &b)["mac"].as_str().unwrap();
    assert!(
        neighbour("2001:db8:88::3").contains(b_mac),
        "b at its own MAC"
    );
    assert_ping(&a, "2001:db8:88::1");
    let host_mac = endpoint(&status, &a)["host_mac"].as_str().unwrap();
    assert!(
        neighbour("2001:db8:88::1").contains(host_mac),
        "the gateway at a's veth"
    );
    assert!(
        answered(&lab.sb.network_status(&lab.net)) >= before + 2,
        "both answered in the datapath"
    );
}
