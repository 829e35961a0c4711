//! `netfwd daemon --metrics ADDR` (docs/operations.md, "Metrics"): the
//! scrape parses with a Prometheus text-format parser, and its values agree
//! with `stats --json` and `status --json` taken right after; one spoofed
//! packet is one `ip_spoofed` drop of its length in both, and the ping's
//! NAT flow is one `icmp` `replied` flow of the uplink in both.

use netfwd_tests::{Daemon, Lab, assert_ping, in_ns_ok, internet::INTERNET_IP, lab, scapy_sendp};
use prometheus_parse::{Sample, Scrape, Value as Metric};
use serde_json::Value;

const SUBNET: &str = "10.86.0.0/24";
const ENDPOINT_IP: &str = "10.86.0.2";
/// In the subnet, but not the endpoint's.
const SPOOFED_IP: &str = "10.86.0.9";
/// In the sandbox's host namespace, so no other test's port.
const METRICS_ADDR: &str = "127.0.0.1:9464";
/// Packets that may pass between the scrape and `stats` (the ARP and
/// neighbour traffic of a quiet network).
const SLACK: u64 = 20;
/// Bytes that may pass meanwhile: [`SLACK`] packets of a full MTU.
const SLACK_BYTES: u64 = SLACK * 1514;
/// The spoofed frame's length: Ethernet, IPv4 and ICMP headers.
const SPOOFED_LEN: u64 = 14 + 20 + 8;

/// The value of the sample `name` whose labels include `labels`, summed
/// over the rest (0 when none has them).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> u64 {
    samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => v,
            _ => panic!("{name}: not a plain value"),
        })
        .sum::<f64>() as u64
}

/// The counter at JSON pointer `field` of `stats --json` (`/rx_bytes`,
/// `/drops/ip_spoofed`), summed over the interfaces of `roles`.
fn stats_sum(stats: &Value, roles: &[&str], field: &str) -> u64 {
    stats["interfaces"]
        .as_array()
        .expect("stats --json lists interfaces")
        .iter()
        .filter(|i| roles.iter().any(|r| i["role"] == *r))
        .map(|i| {
            i.pointer(field)
                .and_then(Value::as_u64)
                .unwrap_or_else(|| panic!("no counter {field}: {i:#}"))
        })
        .sum()
}

/// Counters read `then` from the scrape and `now` from `stats` right after:
/// never fewer now, and at most `slack` more.
fn assert_close(what: &str, then: u64, now: u64, slack: u64) {
    assert!(
        then <= now && now - then <= slack,
        "{what}: {then} scraped, {now} in stats right after"
    );
}

#[test]
fn the_metrics_parse_and_agree_with_stats_and_status() {
    let lab = Lab::builder("metrics", SUBNET)
        .uplink()
        .endpoint("a", Some(ENDPOINT_IP))
        .up();
    let [a] = lab::named(lab.eps.clone());
    let mut daemon = Daemon::start(&lab.sb, &lab.config, &["--metrics", METRICS_ADDR]);
    assert_ping(&a, INTERNET_IP);
    let endpoint = &lab.sb.network_status(&lab.net)["endpoints"][0];
    let (mac, host_mac) = (&endpoint["mac"], &endpoint["host_mac"]);
    let spoofed = format!(
        "Ether(src={mac}, dst={host_mac})/IP(src='{SPOOFED_IP}', dst='{INTERNET_IP}')/ICMP()"
    );
    assert_eq!(scapy_sendp(&a, "eth0", &spoofed, 1), 1);

    let url = format!("http://{METRICS_ADDR}/metrics");
    let text = in_ns_ok(lab.sb.host(), &["curl", "-sfS", "--max-time", "10", &url]);
    let stats = lab.stats();
    let status = lab.sb.network_status(&lab.net);
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let samples = &scrape.samples;
    let net = lab.net.as_str();

    for (direction, roles) in [
        ("egress", &["endpoint"][..]),
        ("ingress", &["uplink", "lan"]),
    ] {
        let labels = [("network", net), ("direction", direction)];
        let seen = stats_sum(&stats, roles, "/rx_packets");
        let dropped = stats_sum(&stats, roles, "/dropped");
        let seen_bytes = stats_sum(&stats, roles, "/rx_bytes");
        let dropped_bytes = stats_sum(&stats, roles, "/dropped_bytes");
        assert_close(
            &format!("{direction} packets"),
            value(samples, "netfwd_forward_packets_total", &labels),
            seen - dropped,
            SLACK,
        );
        assert_close(
            &format!("{direction} bytes"),
            value(samples, "netfwd_forward_bytes_total", &labels),
            seen_bytes - dropped_bytes,
            SLACK_BYTES,
        );
        assert_close(
            &format!("{direction} drops"),
            value(samples, "netfwd_drop_packets_total", &labels),
            dropped,
            SLACK,
        );
        assert_close(
            &format!("{direction} dropped bytes"),
            value(samples, "netfwd_drop_bytes_total", &labels),
            dropped_bytes,
            SLACK_BYTES,
        );
    }
    // The spoofed packet: no other drop of its kind can slip in between.
    let spoofed = [
        ("network", net),
        ("reason", "ip_spoofed"),
        ("direction", "egress"),
    ];
    let endpoint = ["endpoint"];
    assert_eq!(
        value(samples, "netfwd_drop_packets_total", &spoofed),
        stats_sum(&stats, &endpoint, "/drops/ip_spoofed")
    );
    assert_eq!(value(samples, "netfwd_drop_packets_total", &spoofed), 1);
    assert_eq!(
        value(samples, "netfwd_drop_bytes_total", &spoofed),
        stats_sum(&stats, &endpoint, "/drop_bytes/ip_spoofed")
    );
    assert_eq!(
        value(samples, "netfwd_drop_bytes_total", &spoofed),
        SPOOFED_LEN
    );
    assert!(
        value(
            samples,
            "netfwd_forward_packets_total",
            &[("direction", "egress")]
        ) >= 1
    );

    let nat = &status["nat"];
    let uplink = status["uplink"]["ifname"].as_str().unwrap();
    // The table is the lab's network's alone: its flows are the network's.
    let by_kind = nat["by_kind"].as_array().unwrap();
    let kinds_total: u64 = by_kind.iter().map(|k| k["flows"].as_u64().unwrap()).sum();
    assert_eq!(kinds_total, nat["flows"].as_u64().unwrap(), "{nat:#}");
    for kind in by_kind {
        let (proto, state) = (
            kind["proto"].as_str().unwrap(),
            kind["state"].as_str().unwrap(),
        );
        assert_eq!(
            value(
                samples,
                "netfwd_nat_flows",
                &[("uplink", uplink), ("proto", proto), ("state", state)]
            ),
            kind["flows"].as_u64().unwrap(),
            "{proto} {state}: {text}"
        );
    }
    assert_eq!(
        value(samples, "netfwd_nat_flows", &[("uplink", uplink)]),
        kinds_total,
        "no kind but status's: {text}"
    );
    assert!(
        samples
            .iter()
            .filter(|s| s.metric == "netfwd_nat_flows")
            .all(|s| s.labels.get("network").is_none()),
        "labelled by uplink, not network: {text}"
    );
    assert!(
        value(
            samples,
            "netfwd_nat_flows",
            &[("uplink", uplink), ("proto", "icmp"), ("state", "replied")]
        ) >= 1,
        "the ping's flow: {text}"
    );
    assert_eq!(
        value(samples, "netfwd_nat_max_flows", &[("uplink", uplink)]),
        nat["max_flows"].as_u64().unwrap()
    );
    assert!(
        samples
            .iter()
            .any(|s| s.metric == "netfwd_bpf_map_pressure" && s.labels.get("map") == Some("nat"))
    );
    for name in ["netfwd_nat_gc_runs_total", "netfwd_nat_gc_duration_seconds"] {
        assert!(samples.iter().any(|s| s.metric == name), "{name}: {text}");
    }
    assert_eq!(
        value(samples, "netfwd_endpoints", &[("network", net)]),
        status["endpoints"].as_array().unwrap().len() as u64
    );
    assert_eq!(
        value(samples, "netfwd_published_ports", &[("network", net)]),
        0
    );
    assert!(daemon.terminate().success());
}
