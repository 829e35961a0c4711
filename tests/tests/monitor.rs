//! `netfwd monitor` (docs/operations.md, "Monitor"), on one lab: nothing is
//! written while no monitor listens; one spoofed packet is one `ip_spoofed`
//! event with its tuple; a new NAT flow and its removal by the kernel's
//! sweep are both heard; a flood is rate-limited, and what was suppressed
//! is counted and shown; traces, asked for, show a ping translated both ways.

use std::time::Duration;

use netfwd_tests::{
    Lab, Monitor, assert_ping, in_ns_ok, internet::INTERNET_IP, lab, scapy_sendp, scapy_sendp_on,
};
use serde_json::Value;

const SUBNET: &str = "10.62.0.0/24";
const ENDPOINT_IP: &str = "10.62.0.2";
/// In the subnet, but not the endpoint's.
const SPOOFED_IP: &str = "10.62.0.9";
/// Where the packet sent before any monitor listened went.
const UNHEARD_PORT: u16 = 1111;
const HEARD_PORT: u16 = 2222;
/// Frames of the flood: past a CPU's burst and second of budget however
/// fast scapy sends them.
const FLOOD: u32 = 6000;
const EVENT_WAIT: Duration = Duration::from_secs(20);

fn is_spoofed_to(line: &Value, port: u16) -> bool {
    line["drop_reason_desc"] == "ip_spoofed" && line["l4"]["UDP"]["destination_port"] == port
}

#[test]
fn drops_and_nat_flows_are_heard_only_while_a_monitor_listens_and_a_flood_is_rate_limited() {
    let lab = Lab::builder("monitor", SUBNET)
        .uplink()
        .endpoint("a", Some(ENDPOINT_IP))
        .tables("[nat.timeouts]\nicmp = 2\n")
        .up();
    let [a] = lab::named(lab.eps.clone());
    // a sends only what the test forges: its own router solicitations,
    // dropped as `router_message` every few seconds after it comes up,
    // would be suppressed in the flood's second and counted with it.
    in_ns_ok(&a, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    let endpoint = &lab.sb.network_status(&lab.net)["endpoints"][0];
    let (mac, host_mac) = (&endpoint["mac"], &endpoint["host_mac"]);
    let host_ifname = endpoint["host_ifname"].as_str().unwrap().to_owned();
    let spoofed = |port: u16| {
        format!(
            "Ether(src={mac}, dst={host_mac})/IP(src='{SPOOFED_IP}', dst='{INTERNET_IP}')\
             /UDP(sport=4242, dport={port})"
        )
    };

    // Nobody listens: the drop is counted, and no event is written.
    assert_eq!(scapy_sendp(&a, "eth0", &spoofed(UNHEARD_PORT), 1), 1);
    let mut monitor = Monitor::start(&lab.sb, &["--type", "drop", "--type", "nat"]);

    // One spoofed packet, one event, with its tuple.
    assert_eq!(scapy_sendp(&a, "eth0", &spoofed(HEARD_PORT), 1), 1);
    let events = monitor.wait_for("the spoofed packet's event", 1, EVENT_WAIT, |l| {
        is_spoofed_to(l, HEARD_PORT)
    });
    let event = &events[0];
    assert_eq!(event["network"], lab.net.as_str(), "{event}");
    assert_eq!(event["verdict"], "DROPPED", "{event}");
    assert_eq!(event["IP"]["source"], SPOOFED_IP, "{event}");
    assert_eq!(event["IP"]["destination"], INTERNET_IP, "{event}");
    assert_eq!(event["l4"]["UDP"]["source_port"], 4242, "{event}");
    assert_eq!(event["traffic_direction"], "EGRESS", "{event}");
    assert_eq!(event["interface"]["name"], host_ifname.as_str(), "{event}");
    assert!(event["length"].as_u64().unwrap() >= 42, "{event}");
    let point = if netfwd_tests::test_mode() == "xdp" {
        ["XDP", "TC"]
    } else {
        ["TC", "TC"]
    };
    assert!(
        point.contains(&event["trace_observation_point"].as_str().unwrap()),
        "{event}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        monitor.lines(|l| is_spoofed_to(l, HEARD_PORT)).len(),
        1,
        "exactly one event"
    );
    assert!(
        monitor.lines(|l| is_spoofed_to(l, UNHEARD_PORT)).is_empty(),
        "no event from before the monitor listened"
    );

    // A new flow (the ping's), and its removal once it expired.
    assert_ping(&a, INTERNET_IP);
    let is_ping_flow = |l: &Value, event: &str| {
        l["event"] == event
            && l["IP"]["source"] == ENDPOINT_IP
            && l["IP"]["destination"] == INTERNET_IP
            && l["l4"].get("ICMPv4").is_some()
    };
    let made = monitor.wait_for("the ping's NAT flow", 1, EVENT_WAIT, |l| {
        is_ping_flow(l, "nat_created")
    });
    let gone = monitor.wait_for("the ping's NAT flow removed", 1, EVENT_WAIT, |l| {
        is_ping_flow(l, "nat_expired")
    });
    assert_eq!(made[0]["nat"], gone[0]["nat"], "{made:?} {gone:?}");
    assert_eq!(made[0]["l4"], gone[0]["l4"], "{made:?} {gone:?}");
    let uplink = lab.sb.network_status(&lab.net)["uplink"]["addr"].clone();
    assert_eq!(made[0]["nat"]["source"], uplink, "{made:?}");

    // A flood from one CPU: a burst and a second's worth written, the rest
    // suppressed, counted and shown when the monitor stops.
    let sent = scapy_sendp_on(
        &["taskset", "-c", "0"],
        &a,
        "eth0",
        &spoofed(HEARD_PORT),
        FLOOD,
    );
    assert_eq!(sent, u64::from(FLOOD));
    // Until the monitor has read what was written.
    let mut heard_before = 0;
    netfwd_tests::eventually("the flood's events read", EVENT_WAIT, || {
        std::thread::sleep(Duration::from_millis(500));
        let heard = monitor.lines(|l| is_spoofed_to(l, HEARD_PORT)).len();
        std::mem::replace(&mut heard_before, heard) == heard
    });
    let status = monitor.terminate();
    assert!(status.success(), "monitor exited with {status}");
    let heard = monitor.lines(|l| is_spoofed_to(l, HEARD_PORT)).len() as u64;
    let missed = monitor.lines(|l| l.get("lost_events").is_some());
    let last = &missed.last().expect("the missed events shown on exit")["lost_events"];
    let suppressed = last["suppressed"].as_u64().unwrap();
    assert!(suppressed > 0, "the flood was rate-limited: {last}");
    assert!(
        heard < u64::from(FLOOD),
        "{heard} events for {FLOOD} packets"
    );
    assert_eq!(
        heard - 1 + last["num_events_lost"].as_u64().unwrap(),
        u64::from(FLOOD),
        "every packet heard or counted missed: {last}"
    );

    // Traces, opt-in: the ping translated out and back.
    let tracer = Monitor::start(&lab.sb, &["--type", "trace"]);
    assert_ping(&a, INTERNET_IP);
    let translated = |l: &Value, direction: &str| {
        l["event"] == "trace" && l["verdict"] == "TRANSLATED" && l["traffic_direction"] == direction
    };
    let out = tracer.wait_for("the ping translated out", 1, EVENT_WAIT, |l| {
        translated(l, "EGRESS")
    });
    assert_eq!(out[0]["IP"]["destination"], INTERNET_IP, "{out:?}");
    let back = tracer.wait_for("its reply translated back", 1, EVENT_WAIT, |l| {
        translated(l, "INGRESS")
    });
    assert_eq!(back[0]["IP"]["destination"], ENDPOINT_IP, "{back:?}");
    assert!(
        tracer.lines(|l| l["event"] == "drop").is_empty(),
        "drops not asked for"
    );
}
