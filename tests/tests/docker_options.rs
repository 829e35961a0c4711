//! Docker's `-o` options of docs/docker.md, on one dockerd:
//! `com.docker.network.bridge.enable_icc=false` (containers do not reach
//! each other, but do the gateway and the internet),
//! `com.docker.network.driver.mtu` (the container's interface and the
//! host's end of its veth have it), `com.docker.network.container_iface_prefix`
//! (the container's interface is named after it), and
//! `com.docker.network.bridge.enable_ip_masquerade=false` (no uplink: the
//! containers' packets leave with their own address), and
//! `com.docker.network.bridge.gateway_mode_ipv6=routed` (`nat6 = false`:
//! over IPv6 the container leaves with its own address, over IPv4
//! masqueraded). A network with none of them is the control for each.

use std::{
    thread,
    time::{Duration, Instant},
};

use netfwd_tests::{
    Sandbox,
    docker::DockerLab,
    endpoints,
    internet::ip_of,
    internet::{INTERNET_IP, INTERNET_IP6, Internet, UPLINK_IP},
    tool_ok,
};
use serde_json::Value;

/// The `--ipv6` network's prefix, routed to the sandbox host by the
/// internet.
const ROUTED6: &str = "2001:db8:92::/64";

/// netfwd's name for Docker network `id` (`dk` and the ID's first six hex
/// digits).
fn netfwd_name(id: &str) -> String {
    format!("dk{}", &id[..6])
}

/// How long a check expected to succeed is tried again (a loaded machine
/// may lose the first try); one expected to fail is tried once.
const RETRY_FOR: Duration = Duration::from_secs(10);

/// `attempt` until it gives `Some`, for up to [`RETRY_FOR`]; its last
/// `None` then.
fn retried<T>(mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + RETRY_FOR;
    loop {
        let done = attempt();
        if done.is_some() || Instant::now() >= deadline {
            return done;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// One ping from container `name` to `ip` (2 s for the reply), answered?
fn ping_once(lab: &DockerLab, name: &str, ip: &str) -> bool {
    lab.exec(name, &["ping", "-c1", "-W2", ip]).status.success()
}

/// Whether container `name` gets a reply from `ip` within [`RETRY_FOR`].
fn reaches(lab: &DockerLab, name: &str, ip: &str) -> bool {
    retried(|| ping_once(lab, name, ip).then_some(())).is_some()
}

/// The address the internet's echo server saw container `name` come from,
/// asked until it answers (for up to [`RETRY_FOR`]; empty if it never
/// did).
fn seen_by_internet(lab: &DockerLab, name: &str) -> String {
    seen_by(lab, name, INTERNET_IP)
}

/// The address the echo server at `server` saw container `name` come
/// from, as [`seen_by_internet`].
fn seen_by(lab: &DockerLab, name: &str, server: &str) -> String {
    retried(|| {
        let out = lab.exec(name, &["sh", "-c", &format!("echo hi | nc -w2 {server} 7")]);
        let text = String::from_utf8_lossy(&out.stdout);
        let peer = text.lines().next()?;
        Some(ip_of(peer).to_owned())
    })
    .unwrap_or_default()
}

/// Container `name`'s interfaces other than `lo`, as `name mtu` each.
fn container_links(lab: &DockerLab, name: &str) -> Vec<String> {
    let out = lab.docker_ok(&["exec", name, "ip", "-o", "link"]);
    out.lines()
        .filter_map(|l| {
            // "12: foo0@if13: <…> mtu 1400 qdisc …"
            let mut words = l.split_whitespace();
            let ifname = words.nth(1)?.trim_end_matches(':');
            let ifname = ifname.split('@').next()?;
            let mtu = words.skip_while(|w| *w != "mtu").nth(1)?;
            (ifname != "lo").then(|| format!("{ifname} {mtu}"))
        })
        .collect()
}

/// The MTUs of the host's ends of network `id`'s veths.
fn host_mtus(sb: &Sandbox, id: &str) -> Vec<u64> {
    let status = sb.network_status(&netfwd_name(id));
    endpoints(&status)
        .iter()
        .map(|ep| {
            let ifname = ep["host_ifname"].as_str().unwrap_or_default();
            let links: Value = serde_json::from_str(&tool_ok(
                "ip",
                &["-n", sb.host(), "-j", "link", "show", "dev", ifname],
            ))
            .unwrap_or(Value::Null);
            links[0]["mtu"].as_u64().unwrap_or(0)
        })
        .collect()
}

/// Three networks on one dockerd, two containers on each of the first two
/// and one on the third: `enable_icc=false` with `mtu=1400` and
/// `container_iface_prefix=foo`, the same without options (the control),
/// and `enable_ip_masquerade=false`, whose container reaches the internet
/// with its own address (the internet routes it back) where the others
/// show the uplink's; and an `--ipv6` one with `gateway_mode_ipv6=routed`,
/// whose container does so over IPv6 alone.
#[test]
fn icc_mtu_iface_prefix_and_ip_masquerade_options_do_what_docker_md_says() {
    let sb = Sandbox::new("dkopt");
    let internet = Internet::new(&sb);
    let lab = DockerLab::new(&sb);
    let isolated = lab.network(
        "isolated",
        "10.88.0.0/24",
        &[
            "--gateway",
            "10.88.0.1",
            "-o",
            "com.docker.network.bridge.enable_icc=false",
            "-o",
            "com.docker.network.driver.mtu=1400",
            "-o",
            "com.docker.network.container_iface_prefix=foo",
        ],
    );
    let plain = lab.network("plain", "10.89.0.0/24", &["--gateway", "10.89.0.1"]);
    let unmasqueraded = lab.network(
        "unmasq",
        "10.91.0.0/24",
        &[
            "--gateway",
            "10.91.0.1",
            "-o",
            "com.docker.network.bridge.enable_ip_masquerade=false",
        ],
    );
    let routed6 = lab.network(
        "routed6",
        "10.92.0.0/24",
        &[
            "--gateway",
            "10.92.0.1",
            "--ipv6",
            "--subnet",
            ROUTED6,
            "-o",
            "com.docker.network.bridge.gateway_mode_ipv6=routed",
        ],
    );
    for (name, net) in [
        ("iso1", "isolated"),
        ("iso2", "isolated"),
        ("plain1", "plain"),
        ("plain2", "plain"),
        ("unmasq1", "unmasq"),
        ("routed1", "routed6"),
    ] {
        lab.run(name, &["--network", net]);
    }

    // enable_icc=false: not each other, but the gateway and the internet.
    let iso2 = lab.ip_of("iso2", "isolated");
    assert!(reaches(&lab, "iso1", "10.88.0.1"), "iso1 -> its gateway");
    assert!(!ping_once(&lab, "iso1", &iso2), "iso1 -> iso2 with icc off");
    assert_eq!(seen_by_internet(&lab, "iso1"), UPLINK_IP);
    let plain2 = lab.ip_of("plain2", "plain");
    assert!(
        reaches(&lab, "plain1", &plain2),
        "plain1 -> plain2 (icc on)"
    );

    // mtu and container_iface_prefix.
    assert_eq!(container_links(&lab, "iso1"), ["foo0 1400"]);
    assert_eq!(host_mtus(&sb, &isolated), [1400, 1400]);
    assert_eq!(container_links(&lab, "plain1"), ["eth0 1500"]);
    assert_eq!(host_mtus(&sb, &plain), [1500, 1500]);

    // enable_ip_masquerade=false: no uplink, no NAT.
    let status = sb.network_status(&netfwd_name(&unmasqueraded));
    assert_eq!(status["uplink"], Value::Null, "{status:#}");
    assert!(
        reaches(&lab, "unmasq1", "10.91.0.1"),
        "unmasq1 -> its gateway"
    );
    internet.route_to_host("10.91.0.0/24");
    let own = lab.ip_of("unmasq1", "unmasq");
    assert_eq!(seen_by_internet(&lab, "unmasq1"), own, "not masqueraded");
    assert_eq!(seen_by_internet(&lab, "plain1"), UPLINK_IP, "masqueraded");

    // gateway_mode_ipv6=routed: IPv6 unmasqueraded, IPv4 masqueraded.
    let status = sb.network_status(&netfwd_name(&routed6));
    assert_eq!(status["nat6"], false, "{status:#}");
    internet.route_to_host(ROUTED6);
    let own6 = lab.docker_ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}",
        "routed1",
    ]);
    assert_eq!(seen_by(&lab, "routed1", INTERNET_IP6), own6.trim());
    assert_eq!(seen_by_internet(&lab, "routed1"), UPLINK_IP);

    lab.docker_ok(&[
        "rm", "-f", "iso1", "iso2", "plain1", "plain2", "unmasq1", "routed1",
    ]);
    lab.network_rm(&["isolated", "plain", "unmasq", "routed6"]);
}
