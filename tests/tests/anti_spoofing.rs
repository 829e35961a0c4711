//! Anti-spoofing, for IPv4 and IPv6 alike in one dual-stack network: an
//! endpoint cannot send with another's address or MAC, nor claim another's
//! address or the gateway's to its neighbours (ARP, or neighbour discovery)
//! — there is no broadcast domain to poison, both are answered in BPF.
//! Frames are forged with scapy.

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use netfwd_tests::{
    Lab, Sandbox, assert_ping, drops, endpoint, in_ns_ok, lab, ping, scapy_sendp, snmp_counter,
};
use serde_json::Value;

const SUBNET6: &str = "2001:db8:95::/64";
/// A MAC no endpoint has.
const STRANGE_MAC: &str = "02:00:00:00:66:66";
/// The drop reasons an endpoint's forgeries are counted under.
const SPOOFING: [&str; 4] = ["ip_spoofed", "mac_spoofed", "arp_spoofed", "nd_spoofed"];

/// One address family of the lab's network: its addresses, and the frames
/// scapy forges in it.
struct Family {
    /// The subnet's addresses but their last number: the gateway is 1,
    /// endpoint A 2 and B 3 (IPv6 addresses are the lowest free in config
    /// order), and no endpoint holds 9.
    prefix: &'static str,
    /// An echo request from `src_mac` to `dst_mac`, `src` to `dst`.
    echo_request: fn(src_mac: &str, dst_mac: &str, src: &str, dst: &str) -> String,
    /// The kernel's counters of its ICMP (`Icmp`, `Icmp6`).
    icmp: &'static str,
    /// The two ways a neighbour table learns an address: an answer, and a
    /// question with the asker's MAC in it.
    advertisement: Claim,
    solicitation: Claim,
}

impl Family {
    fn gateway(&self) -> String {
        format!("{}1", self.prefix)
    }

    fn a(&self) -> String {
        format!("{}2", self.prefix)
    }

    fn b(&self) -> String {
        format!("{}3", self.prefix)
    }

    fn stranger(&self) -> String {
        format!("{}9", self.prefix)
    }
}

/// A frame that tells a neighbour table where an address is, and the drop
/// reasons the datapath gives its forgeries.
struct Claim {
    /// A frame from `mac` telling the link that `ip` is at `named`.
    frame: fn(mac: &str, ip: &str, named: &str) -> String,
    /// The reason for a claim of an address not the sender's.
    of_another_address: &'static str,
    /// The reason for a claim of the sender's own address at a MAC not its
    /// own.
    of_another_mac: &'static str,
}

/// An ARP packet of operation `op` from `mac` telling that `ip` is at `named`.
fn arp(op: u8, mac: &str, ip: &str, named: &str) -> String {
    format!(
        "Ether(src='{mac}', dst='ff:ff:ff:ff:ff:ff')/ARP(op={op}, hwsrc='{named}', psrc='{ip}', pdst='{}')",
        V4.gateway()
    )
}

const V4: Family = Family {
    prefix: "10.95.0.",
    echo_request: |src_mac, dst_mac, src, dst| {
        format!("Ether(src='{src_mac}', dst='{dst_mac}')/IP(src='{src}', dst='{dst}')/ICMP()")
    },
    icmp: "Icmp",
    advertisement: Claim {
        frame: |mac, ip, named| arp(2, mac, ip, named),
        of_another_address: "arp_spoofed",
        of_another_mac: "mac_spoofed",
    },
    solicitation: Claim {
        frame: |mac, ip, named| arp(1, mac, ip, named),
        of_another_address: "arp_spoofed",
        of_another_mac: "mac_spoofed",
    },
};

const V6: Family = Family {
    prefix: "2001:db8:95::",
    echo_request: |src_mac, dst_mac, src, dst| {
        format!(
            "Ether(src='{src_mac}', dst='{dst_mac}')/IPv6(src='{src}', dst='{dst}')/ICMPv6EchoRequest()"
        )
    },
    icmp: "Icmp6",
    // Unsolicited, to all nodes, with the override flag: an entry a node
    // has is replaced.
    advertisement: Claim {
        frame: |mac, ip, named| {
            format!(
                "Ether(src='{mac}', dst='33:33:00:00:00:01')/IPv6(src='fe80::a', dst='ff02::1')\
                 /ICMPv6ND_NA(tgt='{ip}', R=0, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr='{named}')"
            )
        },
        of_another_address: "nd_spoofed",
        of_another_mac: "nd_spoofed",
    },
    // For the gateway, to its solicited-node group, from the address.
    solicitation: Claim {
        frame: |mac, ip, named| {
            format!(
                "Ether(src='{mac}', dst='33:33:ff:00:00:01')/IPv6(src='{ip}', dst='ff02::1:ff00:1')\
                 /ICMPv6ND_NS(tgt='{}')/ICMPv6NDOptSrcLLAddr(lladdr='{named}')",
                V6.gateway()
            )
        },
        of_another_address: "ip_spoofed",
        of_another_mac: "nd_spoofed",
    },
};

/// Sends `frames` (a scapy expression) 5 times out of `eth0` in `ns`;
/// returns how many frames that was.
fn scapy_send(ns: &str, frames: &str) -> u64 {
    scapy_sendp(ns, "eth0", frames, 5)
}

/// A's forgeries the datapath dropped and counted, under any reason.
fn spoofing_drops(status: &Value, a: &str) -> u64 {
    SPOOFING.iter().map(|reason| drops(status, a, reason)).sum()
}

/// Endpoint A and endpoint B of a dual-stack network.
struct TwoEndpoints {
    sb: Sandbox,
    net: String,
    a: String,
    b: String,
}

impl TwoEndpoints {
    fn up(tag: &str) -> TwoEndpoints {
        let Lab { sb, net, eps, .. } = Lab::builder(tag, "10.95.0.0/24")
            .gateway(&V4.gateway())
            .keys(&format!("subnet6 = \"{SUBNET6}\"\n"))
            .endpoint("a", Some(&V4.a()))
            .endpoint("b", Some(&V4.b()))
            .up();
        let [a, b] = lab::named(eps);
        TwoEndpoints { sb, net, a, b }
    }

    fn status(&self) -> Value {
        self.sb.network_status(&self.net)
    }

    /// The MAC of the endpoint in `ns`.
    fn mac(&self, ns: &str) -> String {
        endpoint(&self.status(), ns)["mac"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// `ns`'s neighbour entries for `ip` (one a line, on any device).
fn neighbour(ns: &str, ip: &str) -> String {
    in_ns_ok(ns, &["ip", "neigh", "show", ip])
}

/// From A to B: a source address not A's, and A's with a MAC not A's.
fn forged_frames_reach_nobody(family: &Family, tag: &str) {
    let lab = TwoEndpoints::up(tag);
    let (a, b) = (&lab.a, &lab.b);
    assert_ping(a, &family.b());
    let (a_mac, b_mac) = (lab.mac(a), lab.mac(b));
    let seen = || snmp_counter(b, family.icmp, "InEchos");
    let before = seen();

    let echo = family.echo_request;
    scapy_send(a, &echo(&a_mac, &b_mac, &family.stranger(), &family.b()));
    scapy_send(a, &echo(STRANGE_MAC, &b_mac, &family.a(), &family.b()));
    assert_eq!(seen(), before, "a forged frame reached B");
    let status = lab.status();
    assert!(drops(&status, a, "ip_spoofed") >= 5, "{status:#}");
    assert!(drops(&status, a, "mac_spoofed") >= 5, "{status:#}");
}

#[test]
fn frames_with_a_forged_source_address_or_mac_reach_nobody_and_are_counted() {
    forged_frames_reach_nobody(&V4, "spoof");
}

#[test]
fn ipv6_frames_with_a_forged_source_address_or_mac_reach_nobody_and_are_counted() {
    forged_frames_reach_nobody(&V6, "spoof6");
}

/// A claims to be the gateway: every claim dropped and counted, and B
/// (which knew the gateway before) still reaches the host at the gateway's
/// true MAC.
fn a_claim_to_be_the_gateway_diverts_nothing(family: &Family, tag: &str) {
    let lab = TwoEndpoints::up(tag);
    let (a, b) = (&lab.a, &lab.b);
    let a_mac = lab.mac(a);
    assert_ping(b, &family.gateway());
    let (advertisement, solicitation) = (&family.advertisement, &family.solicitation);
    let claimed = |status: &Value| drops(status, a, advertisement.of_another_address);
    let status = lab.status();
    let (before, claimed_before) = (spoofing_drops(&status, a), claimed(&status));
    let advertised = scapy_send(a, &(advertisement.frame)(&a_mac, &family.gateway(), &a_mac));
    let solicited = scapy_send(a, &(solicitation.frame)(&a_mac, &family.gateway(), &a_mac));
    let status = lab.status();
    assert_eq!(
        spoofing_drops(&status, a),
        before + advertised + solicited,
        "{status:#}"
    );
    assert!(
        claimed(&status) >= claimed_before + advertised,
        "{status:#}"
    );
    assert!(ping(b, &family.gateway()));
    let neigh = neighbour(b, &family.gateway());
    assert!(
        !neigh.contains(&a_mac),
        "B's gateway entry points at A: {neigh}"
    );
    assert_ping(lab.sb.host(), &family.b());
}

#[test]
fn a_gratuitous_arp_for_the_gateway_diverts_nothing() {
    a_claim_to_be_the_gateway_diverts_nothing(&V4, "garp");
}

/// The twin of the gratuitous ARP: an unsolicited neighbour advertisement
/// (and a solicitation) for the gateway's IPv6 address.
#[test]
fn an_unsolicited_neighbour_advertisement_for_the_gateway_diverts_nothing() {
    a_claim_to_be_the_gateway_diverts_nothing(&V6, "gna");
}

/// Claims are checked as a neighbour table would learn from them (the
/// host's does): A claiming B's address, or its own at a MAC not its own,
/// is dropped and counted, and the host's entries for A and B (the victim's
/// table: nothing is flooded to other endpoints) keep their MACs; A's
/// honest claim goes on.
fn a_claim_teaches_the_host_nothing(family: &Family, claim: &Claim, tag: &str) {
    let lab = TwoEndpoints::up(tag);
    let (a, b, host) = (&lab.a, &lab.b, lab.sb.host());
    let (a_mac, b_mac) = (lab.mac(a), lab.mac(b));
    assert_ping(host, &family.a());
    assert_ping(host, &family.b());
    let reasons = [claim.of_another_address, claim.of_another_mac];
    let counted = |status: &Value| reasons.map(|reason| drops(status, a, reason));
    let status = lab.status();
    let (before, spoofing_before) = (counted(&status), spoofing_drops(&status, a));
    let of_b = scapy_send(a, &(claim.frame)(&a_mac, &family.b(), &a_mac));
    let of_a_elsewhere = scapy_send(a, &(claim.frame)(&a_mac, &family.a(), STRANGE_MAC));
    for (ip, mac) in [(&family.a(), &a_mac), (&family.b(), &b_mac)] {
        let neigh = neighbour(host, ip);
        assert!(
            neigh.contains(mac.as_str()) && neigh.lines().count() == 1,
            "the host's entry for {ip} changed: {neigh}"
        );
    }
    // Both reasons may be one.
    let want = if reasons[0] == reasons[1] {
        [of_b + of_a_elsewhere; 2]
    } else {
        [of_b, of_a_elsewhere]
    };
    let status = lab.status();
    let now = counted(&status);
    assert_eq!(
        [now[0] - before[0], now[1] - before[1]],
        want,
        "{reasons:?}: {status:#}"
    );
    scapy_send(a, &(claim.frame)(&a_mac, &family.a(), &a_mac));
    let status = lab.status();
    assert_eq!(
        spoofing_drops(&status, a),
        spoofing_before + of_b + of_a_elsewhere,
        "an honest claim was dropped: {status:#}"
    );
    assert_ping(b, &family.a());
}

/// ARP replies are checked like requests: the host's neighbour table
/// learns from them.
#[test]
fn an_arp_reply_claiming_another_endpoints_address_is_dropped_and_counted() {
    a_claim_teaches_the_host_nothing(&V4, &V4.advertisement, "arpreply");
}

#[test]
fn an_arp_request_claiming_another_endpoints_address_is_dropped_and_counted() {
    a_claim_teaches_the_host_nothing(&V4, &V4.solicitation, "arpreq");
}

#[test]
fn a_neighbour_advertisement_claiming_another_endpoints_address_is_dropped_and_counted() {
    a_claim_teaches_the_host_nothing(&V6, &V6.advertisement, "ndadvert");
}

/// The solicitation's source link-layer option is what the host learns
/// from, as from an ARP request's sender MAC.
#[test]
fn a_neighbour_solicitation_claiming_another_endpoints_address_is_dropped_and_counted() {
    a_claim_teaches_the_host_nothing(&V6, &V6.solicitation, "ndsolicit");
}

/// An ARP request of hardware type IEEE 802 (6), which Linux takes as
/// Ethernet's and learns from, claiming B's address: dropped as malformed
/// before the host sees it, as is any ARP that is not IPv4 over Ethernet.
#[test]
fn an_arp_request_of_another_hardware_type_teaches_the_host_nothing() {
    let lab = TwoEndpoints::up("arphw");
    let (a, host) = (&lab.a, lab.sb.host());
    let a_mac = lab.mac(a);
    scapy_send(
        a,
        &format!(
            "Ether(src='{a_mac}', dst='ff:ff:ff:ff:ff:ff')/ARP(hwtype=6, op=1, hwsrc='{a_mac}', psrc='{}', pdst='{}')",
            V4.b(),
            V4.gateway()
        ),
    );
    let status = lab.status();
    assert_eq!(drops(&status, a, "malformed"), 5, "{status:#}");
    let neigh = neighbour(host, &V4.b());
    assert!(
        !neigh.contains(&a_mac),
        "the host learnt B's address at A's MAC: {neigh}"
    );
}
