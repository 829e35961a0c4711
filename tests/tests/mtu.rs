//! `mtu` applied (docs/config.md, docs/cni.md): from a config's
//! `[network] mtu` and from a CNI conf's `"mtu"`, both ends of every veth
//! (the host's and the endpoint's `eth0`) have it, and a datagram of exactly
//! that size crosses between endpoints, one byte more does not leave. A
//! network without the key has 1500. (Docker's
//! `com.docker.network.driver.mtu` is in `docker_options.rs`, with its
//! dockerd.)

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a broken expectation by panicking"
)]

use netfwd_tests::{Lab, Sandbox, cni::CniDirs, describe, endpoint, endpoints, in_ns, tool_ok};
use serde_json::{Value, json};

/// The MTU of `dev` in namespace `ns`.
fn mtu(ns: &str, dev: &str) -> u64 {
    let links: Value = serde_json::from_str(&tool_ok(
        "ip",
        &["-n", ns, "-j", "link", "show", "dev", dev],
    ))
    .unwrap();
    links[0]["mtu"].as_u64().unwrap()
}

/// Whether one `ping -M do` (don't fragment) with an IP packet of `size`
/// bytes from `ns` to `ip` is answered.
fn ping_sized(ns: &str, ip: &str, size: u64) -> bool {
    let payload = (size - 28).to_string();
    let out = in_ns(
        ns,
        &[
            "ping", "-n", "-c", "1", "-W", "5", "-M", "do", "-s", &payload, ip,
        ],
    );
    if !out.status.success() {
        eprintln!("{}", describe(&format!("ping -s {payload} {ip}"), &out));
    }
    out.status.success()
}

/// A config's `mtu = 1400`: both ends of each veth have 1400, a 1400-byte
/// packet goes from one endpoint to the other and a 1401-byte one does not
/// leave; another network on the host, without the key, has 1500.
#[test]
fn a_configs_mtu_is_on_both_ends_of_every_veth() {
    let lab = Lab::builder("mtucfg", "10.85.0.0/24")
        .keys("mtu = 1400")
        .endpoint("a", Some("10.85.0.2"))
        .endpoint("b", Some("10.85.0.3"))
        .up();
    let status = lab.sb.network_status(&lab.net);
    for ns in &lab.eps {
        let host_ifname = endpoint(&status, ns)["host_ifname"].as_str().unwrap();
        assert_eq!(
            (mtu(lab.sb.host(), host_ifname), mtu(ns, "eth0")),
            (1400, 1400),
            "{ns}"
        );
    }
    assert_eq!(status["mtu"], 1400);
    assert!(ping_sized(&lab.eps[0], "10.85.0.3", 1400), "1400 bytes");
    assert!(!ping_sized(&lab.eps[0], "10.85.0.3", 1401), "1401 bytes");

    let other = lab
        .network("10.86.0.0/24")
        .endpoint("c", Some("10.86.0.2"))
        .up();
    let status = lab.sb.network_status(&other.net);
    let host_ifname = endpoints(&status)[0]["host_ifname"].as_str().unwrap();
    assert_eq!(
        (mtu(lab.sb.host(), host_ifname), mtu(&other.eps[0], "eth0")),
        (1500, 1500),
        "without the key"
    );
}

/// A CNI conf's `"mtu": 1300`: the container's interface and the host's
/// end of its veth have 1300, and a 1300-byte packet reaches the other
/// container.
#[test]
fn a_cni_confs_mtu_is_on_both_ends_of_the_veth() {
    let sb = Sandbox::new("mtucni");
    let cni = CniDirs::new("mtucni");
    let net = sb.net_name();
    let mut conf = cni.conf("1.0.0", &net, "10.87.0.0/24");
    conf["mtu"] = json!(1300);
    let containers = [sb.precreated_ns("c1"), sb.precreated_ns("c2")];
    let mut ips = Vec::new();
    for (i, netns) in containers.iter().enumerate() {
        let id = format!("mtu{i}");
        let path = netns.path().display().to_string();
        let vars = [
            ("CNI_CONTAINERID", id.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", path.as_str()),
        ];
        let out = cni.plugin(sb.host(), "ADD", &vars, &conf.to_string());
        assert!(out.status.success(), "{}", describe("CNI ADD", &out));
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        let cidr = result["ips"][0]["address"].as_str().unwrap();
        ips.push(cidr.split('/').next().unwrap().to_owned());
    }
    let status = sb.network_status(&net);
    for ep in endpoints(&status) {
        let host_ifname = ep["host_ifname"].as_str().unwrap();
        assert_eq!(mtu(sb.host(), host_ifname), 1300, "{ep:#}");
    }
    assert_eq!(endpoints(&status).len(), 2, "{status:#}");
    for netns in &containers {
        assert_eq!(mtu(netns.name(), "eth0"), 1300, "{}", netns.name());
    }
    assert!(
        ping_sized(containers[0].name(), &ips[1], 1300),
        "1300 bytes"
    );
    assert!(
        !ping_sized(containers[0].name(), &ips[1], 1301),
        "1301 bytes"
    );
}
