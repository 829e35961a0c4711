//! Odd and hostile traffic: every frame an endpoint or the internet sends is
//! forwarded correctly or dropped and counted under a named reason, other
//! flows carry on meanwhile, and nothing leaks out of the network. Frames
//! are forged with scapy, a bounded number of each.

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use std::thread;

use netfwd_tests::{
    Lab, Sandbox, assert_ping, drops, endpoint, in_ns_ok,
    internet::{ECHO_PORT, INTERNET_IP, INTERNET_IP6, Internet, UPLINK_IP, in_netns, tcp_echo},
    lab, payload, scapy_sendp, snmp_counter, tcp_exchange, uplink_drops,
};
use serde_json::Value;

const SUBNET: &str = "10.97.0.0/24";
const GATEWAY: &str = "10.97.0.1";
const A: &str = "10.97.0.2";
const B: &str = "10.97.0.3";
const C: &str = "10.97.0.4";
const SUBNET6: &str = "fd00:97::/64";
const GATEWAY6: &str = "fd00:97::1";
/// a's IPv6 address: the lowest free, its endpoint's first.
const A6: &str = "fd00:97::2";
/// How many of each forged frame are sent.
const N: u32 = 20;

/// A network with an uplink and endpoints a (which forges), b and c.
struct Forging {
    sb: Sandbox,
    internet: Internet,
    net: String,
    a: String,
    b: String,
    c: String,
}

impl Forging {
    fn new(tag: &str) -> Forging {
        Forging::with(tag, "")
    }

    /// The same network, dual-stack.
    fn dual_stack(tag: &str) -> Forging {
        Forging::with(tag, &format!("subnet6 = \"{SUBNET6}\"\n"))
    }

    /// The network with `keys` among its `[network]` lines.
    fn with(tag: &str, keys: &str) -> Forging {
        let Lab {
            sb,
            internet,
            net,
            eps,
            ..
        } = Lab::builder(tag, SUBNET)
            .keys(keys)
            .uplink()
            .endpoint("a", Some(A))
            .endpoint("b", Some(B))
            .endpoint("c", Some(C))
            .up();
        let [a, b, c] = lab::named(eps);
        // a sends only what the test forges: no IPv6 chatter of its own (in
        // a dual-stack network it keeps IPv6, which its test forges).
        if keys.is_empty() {
            in_ns_ok(&a, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        }
        Forging {
            sb,
            internet,
            net,
            a,
            b,
            c,
        }
    }

    fn status(&self) -> Value {
        self.sb.network_status(&self.net)
    }

    /// `Ether(src=a's MAC, dst=the gateway's)` in scapy.
    fn ether_of_a(&self) -> String {
        let status = self.status();
        let ep = endpoint(&status, &self.a);
        format!(
            "Ether(src='{}', dst='{}')",
            ep["mac"].as_str().unwrap(),
            ep["host_mac"].as_str().unwrap()
        )
    }
}

fn counter(status: &Value, ns: &str, field: &str) -> u64 {
    endpoint(status, ns)["counters"][field].as_u64().unwrap()
}

/// Options, truncated headers, bad checksums, zero-length UDP, odd TCP
/// flags, ICMP other than echo, a non-IP ethertype: each forwarded as a
/// router would (a bad transport checksum stays bad: the receiver drops it)
/// or dropped under its reason; every frame is counted once; two transfers
/// through the network meanwhile arrive intact.
#[test]
fn odd_and_malformed_frames_are_forwarded_or_counted_while_other_flows_go_on() {
    let lab = Forging::new("odd");
    let before = lab.status();
    let inet_csum_errors = snmp_counter(&lab.internet.ns, "Udp", "InCsumErrors");

    let (b, c) = (lab.b.clone(), lab.c.clone());
    let nat_flow = thread::spawn({
        let b = b.clone();
        move || {
            in_netns(&b, || {
                tcp_echo(INTERNET_IP, ECHO_PORT, None, &payload("bg-nat", 4 << 20))
            })
        }
    });
    let local_flow =
        thread::spawn(move || tcp_exchange(&c, &b, B, 5555, &payload("bg-local", 4 << 20)));

    let eth = lab.ether_of_a();
    let ip = format!("IP(src='{A}', dst='{INTERNET_IP}')");
    let frames = format!(
        "[\
         {eth}/IP(src='{A}', dst='{INTERNET_IP}', options=[IPOption(b'\\x94\\x04\\x00\\x00')])/UDP(sport=4000, dport=7)/b'opt',\
         {eth}/{ip}/ICMP(type=13),\
         {eth}/{ip}/ICMP(type=3, code=3)/IP(src='{INTERNET_IP}', dst='{A}')/UDP(sport=7, dport=4000),\
         {eth_ip}/Raw(b'\\x45\\x00\\x00'),\
         {eth}/IP(src='{A}', dst='{INTERNET_IP}', proto=6)/Raw(b'\\x00\\x01'),\
         {eth}/IP(src='{A}', dst='{INTERNET_IP}', chksum=0x1234)/UDP(sport=4001, dport=7)/b'x',\
         {eth}/{ip}/UDP(sport=4002, dport=7, chksum=0x1234)/b'bad',\
         {eth}/{ip}/UDP(sport=4003, dport=9),\
         {eth}/{ip}/TCP(sport=4004, dport=9, flags='SF'),\
         {eth}/{ip}/TCP(sport=4005, dport=9, flags=0),\
         Ether(src='{a_mac}', dst='01:80:c2:00:00:0e', type=0x88cc)/Raw(b'\\x00' * 20)\
         ]",
        a_mac = endpoint(&before, &lab.a)["mac"].as_str().unwrap(),
        eth_ip = eth.replace(')', ", type=0x800)"),
    );
    let sent = scapy_sendp(&lab.a, "eth0", &frames, N);
    assert_eq!(sent, 11 * u64::from(N));

    nat_flow.join().unwrap().unwrap();
    local_flow.join().unwrap().unwrap();
    let after = lab.status();
    let delta = |f: &str| counter(&after, &lab.a, f) - counter(&before, &lab.a, f);
    let drop_delta = |r: &str| drops(&after, &lab.a, r) - drops(&before, &lab.a, r);
    let n = u64::from(N);
    // Options, ICMP timestamp, an ICMP error the endpoint made up.
    assert_eq!(drop_delta("unsupported"), 3 * n, "{after:#}");
    // Truncated IP, truncated TCP, a corrupt IP header.
    assert_eq!(drop_delta("malformed"), 3 * n, "{after:#}");
    // Bad UDP checksum, zero-length UDP, SYN+FIN, no flags (to a port
    // nobody listens on: the answers, an ICMP error or a reset, draw no
    // answer from a, so a sends only what the test forges).
    assert_eq!(delta("translated"), 4 * n, "{after:#}");
    assert_eq!(delta("to_host"), n, "the LLDP frames: {after:#}");
    assert_eq!(delta("rx_packets"), sent, "every frame counted once");
    assert!(
        snmp_counter(&lab.internet.ns, "Udp", "InCsumErrors") >= inet_csum_errors + n,
        "the corrupt UDP checksum was not carried through as corrupt"
    );
    assert_ping(&lab.a, INTERNET_IP);
}

/// The same kinds of garbage from the internet at the uplink: dropped and
/// counted; the host stays up and endpoints keep reaching out.
#[test]
fn garbage_from_the_internet_is_dropped_and_counted() {
    let lab = Forging::new("garbage");
    let up_mac = lab.sb.uplink_mac();
    let eth = format!("Ether(dst='{up_mac}')");
    let to_uplink = format!("{eth}/IP(src='{INTERNET_IP}', dst='{UPLINK_IP}'");
    // Each kind on its own, so none can hide behind another's count.
    let kinds = [
        (
            "truncated IP",
            format!("Ether(dst='{up_mac}', type=0x800)/Raw(b'\\x45\\x00')"),
            "malformed",
        ),
        (
            "corrupt IP header",
            format!("{to_uplink}, chksum=0x4321)/UDP(dport=61000)"),
            "malformed",
        ),
        (
            "truncated UDP",
            format!("{to_uplink}, proto=17)/Raw(b'\\x01')"),
            "malformed",
        ),
        (
            "uninvited SYN to an endpoint",
            format!("{eth}/IP(src='{INTERNET_IP}', dst='{B}')/TCP(dport=22, flags='S')"),
            "policy",
        ),
    ];
    let n = u64::from(N);
    for (kind, frame, reason) in kinds {
        let before = lab.status();
        scapy_sendp(&lab.internet.ns, "inet0", &format!("[{frame}]"), N);
        let after = lab.status();
        let delta = uplink_drops(&after, reason) - uplink_drops(&before, reason);
        assert_eq!(delta, n, "{kind}: {reason} {after:#}");
    }
    // A later fragment with no first, and an unknown ethertype: the host's
    // stack has them, as it would without netfwd.
    let before = lab.status();
    let frames = format!(
        "[{to_uplink}, frag=100)/Raw(b'later fragment'), \
         Ether(dst='ff:ff:ff:ff:ff:ff', type=0x9999)/Raw(b'\\xff' * 30)]"
    );
    scapy_sendp(&lab.internet.ns, "inet0", &frames, N);
    let after = lab.status();
    let to_host = |s: &Value| s["uplink"]["counters"]["to_host"].as_u64().unwrap();
    let dropped = |s: &Value| {
        let drops = s["uplink"]["counters"]["drops"].as_object().unwrap();
        drops.values().map(|v| v.as_u64().unwrap()).sum::<u64>()
    };
    // (The internet namespace's own ARP may add to the host's share.)
    assert!(to_host(&after) - to_host(&before) >= 2 * n, "{after:#}");
    assert_eq!(dropped(&after), dropped(&before), "{after:#}");
    for ns in [&lab.a, &lab.b, &lab.c] {
        let data = payload("after-garbage", 1 << 16);
        let peer = in_netns(ns, move || tcp_echo(INTERNET_IP, ECHO_PORT, None, &data)).unwrap();
        assert!(peer.starts_with(UPLINK_IP), "{peer}");
    }
}

/// TTL 1 at the gateway and TTL running out beyond the NAT: the sender gets
/// "time exceeded", the one from beyond translated back to its own flow.
#[test]
fn ttl_running_out_beyond_the_nat_comes_back_as_time_exceeded() {
    let lab = Forging::new("ttl");
    time_exceeded_beyond_the_nat(&lab, &BEYOND);
}

/// The IPv6 twin: the hop limit, ICMPv6's "time exceeded" through NAT66.
#[test]
fn over_ipv6_the_hop_limit_running_out_beyond_the_nat_comes_back_as_time_exceeded() {
    let lab = Forging::dual_stack("ttl6");
    time_exceeded_beyond_the_nat(&lab, &BEYOND6);
}

/// A family's world beyond the internet namespace for
/// [`time_exceeded_beyond_the_nat`]: a prefix it routes on and what makes
/// it forward; the probe's network layer (scapy, with `{hops}`, to an
/// address of the prefix) and the "time exceeded" type; the gateway, the internet's
/// address and a's, which the answers are from and to.
struct Beyond {
    prefix: &'static str,
    forwarding: &'static str,
    probe: &'static str,
    time_exceeded: u8,
    gateway: &'static str,
    internet: &'static str,
    a: &'static str,
}

const BEYOND: Beyond = Beyond {
    prefix: "198.51.100.0/24",
    forwarding: "net.ipv4.ip_forward=1",
    probe: "IP(dst='198.51.100.9', ttl={hops})",
    time_exceeded: 11,
    gateway: GATEWAY,
    internet: INTERNET_IP,
    a: A,
};

const BEYOND6: Beyond = Beyond {
    prefix: "2001:db8:c::/64",
    forwarding: "net.ipv6.conf.all.forwarding=1",
    probe: "IPv6(dst='2001:db8:c::9', hlim={hops})",
    time_exceeded: 3,
    gateway: GATEWAY6,
    internet: INTERNET_IP6,
    a: A6,
};

/// From a, a probe of 1 hop and of 2 (the internet namespace a router
/// towards `beyond.prefix`): "time exceeded" from the gateway, then from
/// the internet, each to a.
fn time_exceeded_beyond_the_nat(lab: &Forging, beyond: &Beyond) {
    let inet = lab.internet.ns.as_str();
    in_ns_ok(
        inet,
        &[
            "ip", "link", "add", "far0", "type", "veth", "peer", "name", "far1",
        ],
    );
    in_ns_ok(inet, &["ip", "link", "set", "far0", "up"]);
    in_ns_ok(inet, &["ip", "link", "set", "far1", "up"]);
    in_ns_ok(inet, &["ip", "route", "add", beyond.prefix, "dev", "far0"]);
    in_ns_ok(inet, &["sysctl", "-qw", beyond.forwarding]);
    // The first error back, whatever it quotes: scapy's own matching
    // compares the quoted transport header byte for byte, whose checksum
    // the NAT leaves as it left (as no receiver checks it).
    let probe = |hops: u8| {
        let layer = beyond.probe.replace("{hops}", &hops.to_string());
        let script = format!(
            "from scapy.all import *\n\
             is_error = lambda p: p.haslayer(ICMP) and p[ICMP].type == 11 \
                 or p.haslayer(ICMPv6TimeExceeded)\n\
             t = AsyncSniffer(iface='eth0', lfilter=is_error, count=1, timeout=3)\n\
             t.start(); time.sleep(0.5)\n\
             send({layer}/UDP(sport=33000, dport=33434), verbose=0)\n\
             t.join()\n\
             r = t.results[0].payload if t.results else None\n\
             print(f'{{r.payload.type}} {{r.src}} {{r.dst}}' if r else 'none')\n"
        );
        in_ns_ok(&lab.a, &["/usr/bin/python3", "-c", &script])
            .trim()
            .to_owned()
    };
    let (exceeded, a) = (beyond.time_exceeded, beyond.a);
    assert_eq!(probe(1), format!("{exceeded} {} {a}", beyond.gateway));
    assert_eq!(probe(2), format!("{exceeded} {} {a}", beyond.internet));
}

/// Broadcast, multicast (mDNS), a DHCP discover and IPv6 from an endpoint:
/// to the host's stack (counted `to_host`; DHCP's 0.0.0.0 source as
/// `ip_spoofed`; the subnet's broadcast, which the host would route out of
/// the uplink, as `no_endpoint`), never to another endpoint or out of the
/// uplink.
#[test]
fn broadcast_multicast_dhcp_and_ipv6_stay_on_the_host() {
    let lab = Forging::new("bcast");
    let before = lab.status();
    let a_mac = endpoint(&before, &lab.a)["mac"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = |ns: &str| snmp_counter(ns, "Ip", "InReceives");
    let watched = [lab.b.clone(), lab.c.clone(), lab.internet.ns.clone()];
    let seen_before: Vec<u64> = watched.iter().map(|ns| seen(ns)).collect();
    let eth = |dst: &str| format!("Ether(src='{a_mac}', dst='{dst}')");
    let frames = format!(
        "[\
         {}/IP(src='{A}', dst='255.255.255.255')/UDP(sport=9999, dport=9999),\
         {}/IP(src='{A}', dst='10.97.0.255')/UDP(sport=9999, dport=9999),\
         {}/IP(src='{A}', dst='224.0.0.251', ttl=255)/UDP(sport=5353, dport=5353)/b'mdns',\
         {}/IPv6(src='fe80::1', dst='ff02::1')/ICMPv6EchoRequest(),\
         {}/IP(src='0.0.0.0', dst='255.255.255.255')/UDP(sport=68, dport=67)/BOOTP(chaddr=b'\\x02' * 6)\
         ]",
        eth("ff:ff:ff:ff:ff:ff"),
        eth("ff:ff:ff:ff:ff:ff"),
        eth("01:00:5e:00:00:fb"),
        eth("33:33:00:00:00:01"),
        eth("ff:ff:ff:ff:ff:ff"),
    );
    scapy_sendp(&lab.a, "eth0", &frames, N);
    let after = lab.status();
    let n = u64::from(N);
    assert_eq!(
        counter(&after, &lab.a, "to_host") - counter(&before, &lab.a, "to_host"),
        3 * n,
        "{after:#}"
    );
    assert_eq!(
        drops(&after, &lab.a, "ip_spoofed") - drops(&before, &lab.a, "ip_spoofed"),
        n,
        "{after:#}"
    );
    assert_eq!(
        drops(&after, &lab.a, "no_endpoint") - drops(&before, &lab.a, "no_endpoint"),
        n,
        "{after:#}"
    );
    for (ns, was) in watched.iter().zip(seen_before) {
        assert_eq!(seen(ns), was, "an endpoint's broadcast reached {ns}");
    }
}
