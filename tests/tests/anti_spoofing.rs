//! Anti-spoofing: an endpoint cannot send with another's address or MAC, and
//! a gratuitous ARP for the gateway diverts nothing — there is no broadcast
//! domain to poison, ARP is answered in BPF. Frames are forged with scapy.

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use netfwd_tests::{
    Lab, Sandbox, assert_ping, drops, endpoint, in_ns_ok, lab, ping, scapy_sendp, snmp_counter,
};

const A: &str = "10.95.0.2";
const B: &str = "10.95.0.3";
const GATEWAY: &str = "10.95.0.1";

/// Sends `frame` (a scapy expression) 5 times out of `eth0` in `ns`.
fn scapy_send(ns: &str, frame: &str) {
    scapy_sendp(ns, "eth0", frame, 5);
}

/// ICMP echo requests `ns` received.
fn echo_requests_seen(ns: &str) -> u64 {
    snmp_counter(ns, "Icmp", "InEchos")
}

/// A sandbox with network `net` of endpoints A and B in namespaces `a` and
/// `b`; A's MAC.
fn two_endpoints(tag: &str) -> (Sandbox, String, String, String, String) {
    let Lab { sb, net, eps, .. } = Lab::builder(tag, "10.95.0.0/24")
        .gateway(GATEWAY)
        .endpoint("a", Some(A))
        .endpoint("b", Some(B))
        .up();
    let [a, b] = lab::named(eps);
    let a_mac = endpoint(&sb.network_status(&net), &a)["mac"]
        .as_str()
        .unwrap()
        .to_owned();
    (sb, net, a, b, a_mac)
}

#[test]
fn frames_with_a_forged_source_address_or_mac_reach_nobody_and_are_counted() {
    let (sb, net, a, b, a_mac) = two_endpoints("spoof");
    assert_ping(&a, B);
    let b_mac = endpoint(&sb.network_status(&net), &b)["mac"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = echo_requests_seen(&b);

    // From A: B's own address as the source, then A's address with a MAC not A's.
    scapy_send(
        &a,
        &format!("Ether(src='{a_mac}', dst='{b_mac}')/IP(src='10.95.0.9', dst='{B}')/ICMP()"),
    );
    scapy_send(
        &a,
        &format!("Ether(src='02:00:00:00:66:66', dst='{b_mac}')/IP(src='{A}', dst='{B}')/ICMP()"),
    );
    assert_eq!(echo_requests_seen(&b), seen, "a forged frame reached B");
    assert!(drops(&sb.network_status(&net), &a, "ip_spoofed") >= 5);
    assert!(drops(&sb.network_status(&net), &a, "mac_spoofed") >= 5);
}

#[test]
fn a_gratuitous_arp_for_the_gateway_diverts_nothing() {
    let (sb, net, a, b, a_mac) = two_endpoints("garp");
    // A claims to be the gateway, as a request and as a reply.
    scapy_send(
        &a,
        &format!(
            "Ether(src='{a_mac}', dst='ff:ff:ff:ff:ff:ff')/ARP(op=1, hwsrc='{a_mac}', psrc='{GATEWAY}', pdst='{GATEWAY}')"
        ),
    );
    scapy_send(
        &a,
        &format!(
            "Ether(src='{a_mac}', dst='ff:ff:ff:ff:ff:ff')/ARP(op=2, hwsrc='{a_mac}', psrc='{GATEWAY}', pdst='{GATEWAY}')"
        ),
    );
    assert!(drops(&sb.network_status(&net), &a, "arp_spoofed") >= 5);
    // B still reaches the gateway (the host), and its neighbour entry for it
    // is not A's MAC.
    assert!(ping(&b, GATEWAY));
    let neigh = in_ns_ok(&b, &["ip", "neigh", "show", GATEWAY]);
    assert!(
        !neigh.contains(&a_mac),
        "B's gateway entry points at A: {neigh}"
    );
    assert_ping(sb.host(), B);
}

/// ARP replies are checked like requests: the host's neighbour table learns
/// from them, so a reply from A claiming B's address is dropped and
/// counted; A's honest reply goes to the host.
#[test]
fn an_arp_reply_claiming_another_endpoints_address_is_dropped_and_counted() {
    let (sb, net, a, b, a_mac) = two_endpoints("arpreply");
    let reply = |claimed: &str| {
        format!(
            "Ether(src='{a_mac}', dst='ff:ff:ff:ff:ff:ff')/ARP(op=2, hwsrc='{a_mac}', psrc='{claimed}', pdst='{GATEWAY}')"
        )
    };
    scapy_send(&a, &reply(B));
    scapy_send(&a, &reply(A));
    let status = sb.network_status(&net);
    assert_eq!(drops(&status, &a, "arp_spoofed"), 5, "{status:#}");
    assert_ping(&b, A);
}

/// An ARP request of hardware type IEEE 802 (6), which Linux takes as
/// Ethernet's and learns from, claiming B's address: dropped as malformed
/// before the host sees it, as is any ARP that is not IPv4 over Ethernet.
#[test]
fn an_arp_request_of_another_hardware_type_teaches_the_host_nothing() {
    let (sb, net, a, _b, a_mac) = two_endpoints("arphw");
    scapy_send(
        &a,
        &format!(
            "Ether(src='{a_mac}', dst='ff:ff:ff:ff:ff:ff')/ARP(hwtype=6, op=1, hwsrc='{a_mac}', psrc='{B}', pdst='{GATEWAY}')"
        ),
    );
    let status = sb.network_status(&net);
    assert_eq!(drops(&status, &a, "malformed"), 5, "{status:#}");
    let neigh = in_ns_ok(sb.host(), &["ip", "neigh", "show", B]);
    assert!(
        !neigh.contains(&a_mac),
        "the host learnt B's address at A's MAC: {neigh}"
    );
}
